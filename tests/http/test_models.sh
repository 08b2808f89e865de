#!/usr/bin/env bash
# test_models.sh — several models (--model-dir, --max-loaded, the model
# field; docs/SERVER.md "Several models") end to end: two demo models made
# with different seeds and a broken file in one folder.  Requests
# alternating between them by `model` give each model's own images, byte
# for byte (so also by name) the images a single-model server of that
# checkpoint gives, and different between the two; the PNG parameters name
# the model used; with --max-loaded 1 GET /health lists one loaded model at
# a time, the one the last request used (asserted after each request), and
# with --max-loaded 2 both; GET /models lists every checkpoint with its
# fields (family and hash read from the header, size, loaded, default);
# an unknown model is a 400 naming model with the names (seed API, async
# API, JSON), before any job; the broken file is listed and refused with a
# 400, and the server keeps serving; --model NAME picks the default in the
# folder, SDSERVE_MODEL_DIR works as the flag.  Files that are not whole
# checkpoints (a TAESD file, a UNet alone, from the reference folder; a
# checkpoint without its VAE) are listed without family and refused with a
# 400 naming model (A1111: a 422 naming sd_model_checkpoint, its options
# too), never a 500, and GET /models says why (usable, reason).  A
# checkpoint removed after start is refused with the reason (400, each
# time) and left out of the client lists until it is back; a link to a
# file not there yet is listed, refused, and usable once the file is
# there.  A model that is not loaded
# is still checked before queueing, on its checker (no weights read): a
# too-long prompt or negative, a clip_skip past its text encoder's layers,
# an unknown LoRA, on the seed and the async API, are 400s naming the field,
# and they load nothing.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

F='Content-Type: application/x-www-form-urlencoded'
J='Content-Type: application/json'
ARGS='prompt=a red fox&seed=5&width=64&height=64&num_inference_steps=2'
M=$TMP/models
mkdir -p "$M"
for s in alpha:1 beta:2; do
  "$SDSERVE" make-model --preset demo --seed "${s#*:}" -o "$M/${s%%:*}" --quiet >/dev/null 2>&1 ||
    echo "FAIL - make-model ${s%%:*}: exit $?"
done
printf 'not a checkpoint' >"$M/broken.safetensors"
: >"$M/notes.txt"

gen() { post_image "$1" /txt2img "$F" "$ARGS${2:-}"; }
# loaded_is NAME EXPECTED: /health's models_loaded is EXPECTED (a Python list literal)
loaded_is() {
  curl -s -o "$TMP/h.json" "$BASE/health"
  check "$1: /health models_loaded = $2" \
    $([ "$(json "$TMP/h.json" 'j["models_loaded"] == '"$2"' and j["model"]["name"] == "alpha"')" = True ]; echo $?) \
    "$(cat "$TMP/h.json")"
}

# ---- reference images: one single-model server per checkpoint ----------
for n in alpha beta; do
  start_server --model "$M/$n" || exit 1
  check "single $n: 200" $([ "$(gen single_$n)" = 200 ]; echo $?) "$(cat "$TMP/single_$n.json")"
  stop_server
done

# ---- one server, the folder, one model at a time -----------------------
mkdir -p "$TMP/loras"
start_server --model-dir "$M" --max-loaded 1 --lora-dir "$TMP/loras" || exit 1
curl -s -o "$TMP/h0.json" "$BASE/health"
check "/health: max_loaded 1, the default (first by name) loaded" \
  $([ "$(json "$TMP/h0.json" '(j["max_loaded"], j["models_loaded"], j["model"]["name"], j["model"]["family"])')" = \
      "(1, ['alpha'], 'alpha', 'sd1')" ]; echo $?) "$(cat "$TMP/h0.json")"
st=$(curl -s -o "$TMP/models.json" -w '%{http_code}' "$BASE/models")
check "GET /models: alpha, beta, broken (notes.txt left out)" \
  $([ "$st" = 200 ] && [ "$(json "$TMP/models.json" '[m["name"] for m in j["models"]]')" = "['alpha', 'beta', 'broken']" ]; echo $?) \
  "status $st $(cat "$TMP/models.json")"
size=$(stat -c %s "$M/alpha/model.safetensors")
check "GET /models: every field; alpha default and loaded, beta not; sizes from the files" \
  $([ "$(json "$TMP/models.json" 'all(set(m) == {"name","family","hash","sha256","file","size","loaded","default","usable","reason"} for m in j["models"]) and [(m["family"], m["loaded"], m["default"], m["size"]) for m in j["models"][:2]] == [("sd1", True, True, '"$size"'), ("sd1", False, False, '"$size"')] and j["models"][0]["file"].endswith("/alpha")')" = True ]; echo $?) \
  "$(cat "$TMP/models.json")"
check "GET /models: the two hashes differ and match /health's" \
  $([ "$(json "$TMP/models.json" 'len(j["models"][0]["hash"]) == 8 and j["models"][0]["hash"] != j["models"][1]["hash"] and j["models"][0]["hash"] == '"$(json "$TMP/h0.json" 'repr(j["model"]["hash"])')")" = True ]; echo $?) \
  "$(cat "$TMP/models.json")"
check "GET /models: the broken file listed without family or hash, not usable, with the reason" \
  $([ "$(json "$TMP/models.json" '(j["models"][2]["family"], j["models"][2]["hash"], j["models"][2]["loaded"], j["models"][2]["usable"], "does not fit the file" in j["models"][2]["reason"], j["models"][0]["usable"], j["models"][0]["reason"])')" = "(None, None, False, False, True, True, None)" ]; echo $?) "$(cat "$TMP/models.json")"

i=0
for n in beta alpha beta alpha; do
  i=$((i + 1))
  check "request $i (model=$n): 200" $([ "$(gen multi_${n}_$i "&model=$n")" = 200 ]; echo $?) "$(cat "$TMP/multi_${n}_$i.json")"
  check "request $i: the same bytes (and name) as a single-model server of $n" \
    $(cmp -s "$TMP/multi_${n}_$i.png" "$TMP/single_$n.png" && [ "$(json "$TMP/multi_${n}_$i.json" 'j["images"][0]["image_url"].rsplit("/",1)[1]')" = \
      "$(json "$TMP/single_$n.json" 'j["images"][0]["image_url"].rsplit("/",1)[1]')" ]; echo $?) ""
  check "request $i: the parameters name $n" $(grep -aq "Model: $n" "$TMP/multi_${n}_$i.png"; echo $?) ""
  curl -s -o "$TMP/h.json" "$BASE/health"
  check "request $i: /health lists only $n as loaded (--max-loaded 1)" \
    $([ "$(json "$TMP/h.json" 'j["models_loaded"]')" = "['$n']" ]; echo $?) "$(cat "$TMP/h.json")"
done
check "the two models give different images" $(! cmp -s "$TMP/single_alpha.png" "$TMP/single_beta.png"; echo $?) ""
check "no model field: the default (alpha)" $([ "$(gen multi_default)" = 200 ] && cmp -s "$TMP/multi_default.png" "$TMP/single_alpha.png"; echo $?) ""
check "an empty model field: the default" $([ "$(gen multi_empty "&model=")" = 200 ] && cmp -s "$TMP/multi_empty.png" "$TMP/single_alpha.png"; echo $?) ""
loaded_is "after the default" "['alpha']"

refused_field_ct "unknown model (form)" /txt2img "$F" "$ARGS&model=gamma" model "alpha, beta, broken"
refused_field_ct "unknown model (JSON)" /txt2img "$J" '{"prompt": "a fox", "model": "gamma"}' model "unknown model 'gamma'"
refused_field_ct "unknown model (async)" /jobs/txt2img "$F" "$ARGS&model=gamma" model "gamma"
refused_field_ct "model not a string" /txt2img "$J" '{"prompt": "a fox", "model": 3}' model "string"
refused_field_ct "broken checkpoint" /txt2img "$F" "$ARGS&model=broken" model "cannot be used"
# ---- checks of a model that is not loaded (beta): its checker ----------
LONG=$(python3 -c 'print("word " * 700)')
NOPROMPT='seed=5&width=64&height=64&num_inference_steps=2'
refused_field_ct "beta not loaded: a too-long prompt" /txt2img "$F" "$NOPROMPT&model=beta&prompt=$LONG" prompt "windows"
refused_field_ct "beta not loaded: a too-long negative" /txt2img "$F" "$ARGS&model=beta&negative_prompt=$LONG" \
  negative_prompt "windows"
refused_field_ct "beta not loaded: clip_skip past its layers" /txt2img "$F" "$ARGS&model=beta&clip_skip=12" clip_skip \
  "layers of this model"
refused_field_ct "beta not loaded: an unknown LoRA" /txt2img "$F" "$NOPROMPT&model=beta&prompt=a fox <lora:nope:1>" loras \
  "unknown LoRA 'nope'"
refused_field_ct "beta not loaded: clip_skip (async)" /jobs/txt2img "$F" "$ARGS&model=beta&clip_skip=12" clip_skip \
  "clip_skip"
refused_field_ct "beta not loaded: too long (JSON, async)" /jobs/txt2img "$J" "{\"prompt\": \"$LONG\", \"model\": \"beta\"}" \
  prompt "windows"
curl -s -o "$TMP/m1.json" "$BASE/models"
check "the checker's refusals load nothing (beta not loaded)" \
  $([ "$(json "$TMP/m1.json" '[m["name"] for m in j["models"] if m["loaded"]]')" = "['alpha']" ]; echo $?) \
  "$(cat "$TMP/m1.json")"
check "beta's good request still runs after its refusals" $([ "$(gen beta_ok "&model=beta&clip_skip=2")" = 200 ]; echo $?) \
  "$(cat "$TMP/beta_ok.json")"
gen alpha_back >/dev/null
curl -s -o "$TMP/m2.json" "$BASE/models"
check "refusals load nothing" $([ "$(json "$TMP/m2.json" '[m["name"] for m in j["models"] if m["loaded"]]')" = "['alpha']" ]; echo $?) \
  "$(cat "$TMP/m2.json")"

# the async API picks the model too
st=$(curl -s -o "$TMP/job.json" -w '%{http_code}' -H "$F" --data "$ARGS&model=beta" "$BASE/jobs/txt2img")
id=$(json "$TMP/job.json" 'j["id"]')
for _ in $(seq 300); do
  curl -s -o "$TMP/js.json" "$BASE/jobs/$id"
  case $(json "$TMP/js.json" 'j["status"]') in success|error|cancelled) break;; esac
  sleep 0.1
done
url=$(json "$TMP/js.json" 'j["images"][0]["image_url"]')
curl -s -o "$TMP/job.png" "$url"
check "POST /jobs/txt2img model=beta: beta's image" $([ "$st" = 202 ] && cmp -s "$TMP/job.png" "$TMP/single_beta.png"; echo $?) \
  "status $st $(cat "$TMP/js.json")"
check "the server still serves" $([ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ]; echo $?) ""
stop_server
check "--max-loaded 1 server: clean exit" $STOP_STATUS

# ---- two resident -------------------------------------------------------
start_server --model-dir "$M" --max-loaded 2 || exit 1
gen two_b "&model=beta" >/dev/null
curl -s -o "$TMP/h2.json" "$BASE/health"
check "--max-loaded 2: both stay loaded" \
  $([ "$(json "$TMP/h2.json" '(j["max_loaded"], j["models_loaded"])')" = "(2, ['alpha', 'beta'])" ]; echo $?) "$(cat "$TMP/h2.json")"
gen two_a "&model=alpha" >/dev/null
check "--max-loaded 2: each model's own image with both resident" \
  $(cmp -s "$TMP/two_a.png" "$TMP/single_alpha.png" && cmp -s "$TMP/two_b.png" "$TMP/single_beta.png"; echo $?) ""
stop_server

# ---- --model NAME in the folder; the environment variable --------------
SDSERVE_MODEL_DIR=$M start_server --model beta || exit 1
curl -s -o "$TMP/h3.json" "$BASE/health"
check "SDSERVE_MODEL_DIR + --model beta: beta is the default" \
  $([ "$(json "$TMP/h3.json" '(j["model"]["name"], j["models_loaded"])')" = "('beta', ['beta'])" ]; echo $?) "$(cat "$TMP/h3.json")"
check "default beta: a request without model gets beta's image" \
  $([ "$(gen env_default)" = 200 ] && cmp -s "$TMP/env_default.png" "$TMP/single_beta.png"; echo $?) ""
stop_server

# ---- a default that cannot load ends the start, naming the file ---------
port=$(free_port)
out=$(timeout 120 "$SDSERVE" serve --bind 127.0.0.1 --port "$port" --data-dir "$TMP/data" --model-dir "$M" \
  --model broken 2>&1)
rc=$?
check "--model broken: exits 1 naming the file" $([ $rc = 1 ] && printf '%s' "$out" | grep -q "broken.safetensors"; echo $?) \
  "rc=$rc $(printf '%s' "$out" | tail -2)"
out=$(timeout 60 "$SDSERVE" serve --bind 127.0.0.1 --port "$port" --data-dir "$TMP/data" --model-dir "$TMP/absent" 2>&1)
rc=$?
check "--model-dir missing: exits 1 naming --model-dir and why" \
  $([ $rc = 1 ] && printf '%s' "$out" | grep -q -- "--model-dir $TMP/absent: No such file or directory"; echo $?) \
  "rc=$rc $(printf '%s' "$out" | tail -2)"

# ---- files that are not whole checkpoints ------------------------------
# A TAESD file (no UNet), a UNet alone (no text encoder): listed without
# family or hash, refused with a 400 (422 in A1111's dialect) naming the
# model field with the reason, never a 500; A1111's options refuse them
# too, so the caller's default stays usable.  A checkpoint without its VAE
# passes the header but not the checker: also a 400 naming model.
REF=${SD_REF:-../shared/reference}
N=$TMP/notwhole
mkdir -p "$N"
if [ -d "$REF/models/tiny-sd1" ]; then
  for f in tiny-sd1 tiny-taesd_decoder.safetensors tiny-sd1-inpaint-unet-fp16.safetensors; do
    ln -s "$(realpath "$REF/models/$f")" "$N/$f"
  done
  mkdir -p "$N/novae"
  cp -r "$M/alpha/tokenizer" "$N/novae/"
  python3 - "$M/alpha/model.safetensors" "$N/novae/model.safetensors" <<'PY'
import json, struct, sys
src = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", src[:8])[0]
head, data = json.loads(src[8:8 + n]), src[8 + n:]
out, blobs, at = {}, [], 0
for k, v in head.items():
    if k == "__metadata__" or k.startswith("first_stage_model."):
        continue
    b, e = v["data_offsets"]
    blobs.append(data[b:e])
    out[k] = dict(v, data_offsets=[at, at + e - b])
    at += e - b
h = json.dumps(out).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
  start_server --model-dir "$N" --model tiny-sd1 || exit 1
  curl -s -o "$TMP/nw.json" "$BASE/models"
  check "GET /models: the TAESD file and the UNet alone listed without family or hash; tiny-sd1 is sd1" \
    $([ "$(json "$TMP/nw.json" '[(m["name"], m["family"], m["hash"] is None) for m in j["models"]]')" = \
        "[('novae', 'sd1', False), ('tiny-sd1', 'sd1', False), ('tiny-sd1-inpaint-unet-fp16', None, True), ('tiny-taesd_decoder', None, True)]" ]
      echo $?) "$(cat "$TMP/nw.json")"
  refused_field_ct "a TAESD file named (JSON)" /txt2img "$J" \
    '{"prompt": "x", "model": "tiny-taesd_decoder", "num_inference_steps": 2, "width": 64, "height": 64}' model \
    "not a whole checkpoint: it has no UNet"
  refused_field_ct "a UNet alone named (async)" /jobs/txt2img "$F" "$ARGS&model=tiny-sd1-inpaint-unet-fp16" model \
    "no text encoder"
  refused_field_ct "a checkpoint without its VAE (its checker cannot open it)" /txt2img "$F" "$ARGS&model=novae" model \
    "model 'novae' cannot be used"
  st=$(curl -s -o "$TMP/nw_oai.json" -w '%{http_code}' -H "$J" \
    -d '{"prompt": "x", "model": "tiny-taesd_decoder", "size": "256x256"}' "$BASE/v1/images/generations")
  check "OpenAI: a TAESD file as model: 400, param model" \
    $([ "$st" = 400 ] && [ "$(json "$TMP/nw_oai.json" 'j["error"]["param"]')" = model ]; echo $?) "status $st $(cat "$TMP/nw_oai.json")"
  a1111_refused() { # NAME PATH BODY: 422 whose detail names sd_model_checkpoint and says why
    st=$(curl -s -o "$TMP/nw_a.json" -w '%{http_code}' -H "$J" -d "$3" "$BASE$2")
    check "A1111 $1: 422 naming sd_model_checkpoint" \
      $([ "$st" = 422 ] && [ "$(json "$TMP/nw_a.json" 'j["detail"][0]["loc"][-1]')" = sd_model_checkpoint ] &&
        grep -q "not a whole checkpoint" "$TMP/nw_a.json"; echo $?) "status $st $(cat "$TMP/nw_a.json")"
  }
  a1111_refused "override_settings" /sdapi/v1/txt2img \
    '{"prompt": "x", "steps": 2, "width": 64, "height": 64, "override_settings": {"sd_model_checkpoint": "tiny-taesd_decoder"}}'
  a1111_refused "POST options" /sdapi/v1/options '{"sd_model_checkpoint": "tiny-sd1-inpaint-unet-fp16"}'
  curl -s -o "$TMP/nw_o.json" "$BASE/sdapi/v1/options"
  st=$(curl -s -o "$TMP/nw_t.json" -w '%{http_code}' -H "$J" -d '{"prompt": "x", "steps": 2, "width": 64, "height": 64}' \
    "$BASE/sdapi/v1/txt2img")
  check "A1111 after the refused option: the default is still tiny-sd1 and txt2img answers 200" \
    $([ "$st" = 200 ] && json "$TMP/nw_o.json" 'j["sd_model_checkpoint"]' | grep -q '^tiny-sd1 '; echo $?) \
    "status $st $(head -c 300 "$TMP/nw_t.json") $(head -c 200 "$TMP/nw_o.json")"
  curl -s -o "$TMP/nw_sdm.json" "$BASE/sdapi/v1/sd-models"
  curl -s -o "$TMP/nw_v1.json" "$BASE/v1/models"
  st=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/models/tiny-taesd_decoder")
  # (novae too: its checker failed on the request above, and it stays refused while its files are as they are)
  check "A1111 sd-models and OpenAI's /v1/models offer only the usable ones (404 for a refused id)" \
    $([ "$(json "$TMP/nw_sdm.json" 'sorted(m["model_name"] for m in j)')" = "['tiny-sd1']" ] &&
      [ "$(json "$TMP/nw_v1.json" 'sorted(m["id"] for m in j["data"])')" = "['tiny-sd1']" ] && [ "$st" = 404 ]
      echo $?) "status $st $(cat "$TMP/nw_sdm.json" "$TMP/nw_v1.json" | head -c 600)"
  curl -s -o "$TMP/nw2.json" "$BASE/models"
  check "GET /models: usable and reason (the refusal) for each; novae's checker failure is kept" \
    $([ "$(json "$TMP/nw2.json" '[(m["name"], m["usable"], "VAE" in (m["reason"] or "") if m["name"] == "novae" else bool(m["reason"])) for m in j["models"]]')" = \
        "[('novae', False, True), ('tiny-sd1', True, False), ('tiny-sd1-inpaint-unet-fp16', False, True), ('tiny-taesd_decoder', False, True)]" ]
      echo $?) "$(cat "$TMP/nw2.json")"
  stop_server
  check "not-whole-checkpoints server: clean exit" $STOP_STATUS

  # ---- checkpoints that vanish, come back, or are not there yet ----------
  # A file removed after start was still listed as usable and every request naming it
  # re-opened it (a 404 each time); a link to a file not there at start was not listed at all
  V=$TMP/vanish
  mkdir -p "$V"
  ln -s "$(realpath "$REF/models/tiny-sd1")" "$V/tiny-sd1"
  ln -s "$(realpath "$REF/models/tiny-sd2-fp16.safetensors")" "$V/gone.safetensors"
  ln -s "$TMP/later/late.safetensors" "$V/late.safetensors"
  ln -s "$(realpath "$REF/models/tiny-sd2.ldm_config.json")" "$V/late.ldm_config.json"   # its heads (docs/LOADING.md)
  start_server --model-dir "$V" --model tiny-sd1 || exit 1
  usable() { curl -s -o "$TMP/vm.json" "$BASE/models"; json "$TMP/vm.json" '[(m["name"], m["usable"], bool(m["reason"])) for m in j["models"]]'; }
  check "GET /models at start: gone usable, late (a link to nothing yet) listed, not usable, with the reason" \
    $([ "$(usable)" = "[('gone', True, False), ('late', False, True), ('tiny-sd1', True, False)]" ]; echo $?) \
    "$(cat "$TMP/vm.json")"
  rm "$V/gone.safetensors"
  check "gone removed: GET /models says it is not usable, with the reason" \
    $([ "$(usable)" = "[('gone', False, True), ('late', False, True), ('tiny-sd1', True, False)]" ]; echo $?) \
    "$(cat "$TMP/vm.json")"
  curl -s -o "$TMP/vm_sdm.json" "$BASE/sdapi/v1/sd-models"
  curl -s -o "$TMP/vm_v1.json" "$BASE/v1/models"
  check "gone removed: A1111's and OpenAI's lists leave it out" \
    $([ "$(json "$TMP/vm_sdm.json" '[m["model_name"] for m in j]')" = "['tiny-sd1']" ] &&
      [ "$(json "$TMP/vm_v1.json" '[m["id"] for m in j["data"]]')" = "['tiny-sd1']" ]; echo $?) \
    "$(cat "$TMP/vm_sdm.json" "$TMP/vm_v1.json" | head -c 600)"
  refused_field_ct "gone removed: a request naming it" /txt2img "$F" "$ARGS&model=gone" model "model 'gone' cannot be used"
  refused_field_ct "gone removed: the next request naming it (async)" /jobs/txt2img "$F" "$ARGS&model=gone" model \
    "model 'gone' cannot be used"
  ln -s "$(realpath "$REF/models/tiny-sd2-fp16.safetensors")" "$V/gone.safetensors"
  mkdir -p "$TMP/later" && ln -s "$(realpath "$REF/models/tiny-sd2-fp16.safetensors")" "$TMP/later/late.safetensors"
  check "gone back, late there now: both usable" \
    $([ "$(usable)" = "[('gone', True, False), ('late', True, False), ('tiny-sd1', True, False)]" ] &&
      [ "$(json "$TMP/vm.json" '[m["family"] for m in j["models"]]')" = "['sd2', 'sd2', 'sd1']" ]; echo $?) \
    "$(cat "$TMP/vm.json")"
  LONGP=$(python3 -c 'print(" ".join(["red fox"] * 400))')
  refused_field_ct "late, not loaded: checked on its checker (a too-long prompt)" /txt2img "$F" \
    "prompt=$LONGP&model=late" prompt "windows"
  stop_server
  check "vanishing-checkpoints server: clean exit" $STOP_STATUS
else
  echo "FAIL - reference models missing ($REF/models/tiny-sd1)"
fi
