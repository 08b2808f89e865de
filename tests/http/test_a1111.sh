#!/usr/bin/env bash
# test_a1111.sh — the AUTOMATIC1111 dialect (/sdapi/v1/*, src/http/api_a1111.c)
# against the real server and the demo model, for what the client replays
# (test_clients_replay.sh) do not cover: every endpoint's shape; a batch
# whose images are each exactly its seed alone; img2img from init_images;
# "DPM++ 2M" + scheduler "Karras" = "DPM++ 2M Karras"; CLIP skip through
# override_settings; send_images false; n_iter; options per API key (and
# server-wide without keys); progress while a job runs and interrupt
# stopping it, per key; HTTP Basic; the server serving afterwards.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

MODEL=$(demo_model)
start_server --model "$MODEL" || exit 1
J='Content-Type: application/json'

# post PATH JSON OUT [curl args...]: the status
post() { local p=$1 b=$2 o=$3; shift 3; curl -s -o "$o" -w '%{http_code}' -H "$J" "$@" -d "$b" "$BASE$p"; }
# images OUT.json PREFIX: writes PREFIX0.png ...; prints how many
images() {
  python3 -c '
import base64, json, sys
j = json.load(open(sys.argv[1]))
for i, b in enumerate(j["images"]): open("%s%d.png" % (sys.argv[2], i), "wb").write(base64.b64decode(b, validate=True))
print(len(j["images"]))' "$1" "$2" 2>/dev/null
}
info() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); i=json.loads(j["info"]); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }

# ---- every endpoint answers its shape -------------------------------------
shape() { # shape NAME METHOD PATH PY-CONDITION-ON-j
  local st
  st=$(curl -s -o "$TMP/s.json" -w '%{http_code}' -X "$2" "$BASE$3")
  local v
  v=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("yes" if eval(sys.argv[2]) else "no")' "$TMP/s.json" "$4" 2>&1)
  check "$1" $([ "$st" = 200 ] && [ "$v" = yes ]; echo $?) "status $st: $(head -c 300 "$TMP/s.json")"
}
shape "GET sd-models: title 'name [hash]', model_name, hash, sha256, filename, config" GET /sdapi/v1/sd-models \
  'len(j) == 1 and j[0]["title"] == "%s [%s]" % (j[0]["model_name"], j[0]["hash"]) and all(k in j[0] for k in ("sha256", "filename", "config"))'
shape "GET samplers: the six A1111 samplers we have, with aliases and options" GET /sdapi/v1/samplers \
  '[s["name"] for s in j] == ["Euler", "Euler a", "Heun", "LMS", "DPM++ 2M", "DPM++ 2M SDE"] and j[4]["aliases"] == ["k_dpmpp_2m"] and j[0]["options"] == {}'
shape "GET schedulers: name, label, aliases, default_rho, need_inner_model" GET /sdapi/v1/schedulers \
  '[s["label"] for s in j][:3] == ["Automatic", "Uniform", "Karras"] and all(set(s) == {"name", "label", "aliases", "default_rho", "need_inner_model"} for s in j)'
shape "GET options: the current model's title, sd_vae, CLIP skip, samples_format, the hash or null (never \"\")" GET /sdapi/v1/options \
  'j["sd_model_checkpoint"].startswith("demo-model [") and j["sd_vae"] == "Automatic" and j["CLIP_stop_at_last_layers"] == 1 and j["samples_format"] == "png" and (j["sd_checkpoint_hash"] is None or len(j["sd_checkpoint_hash"]) == 64)'
shape "GET progress idle: progress 0, state.job_count 0, current_image null" GET /sdapi/v1/progress \
  'j["progress"] == 0 and j["state"]["job_count"] == 0 and j["current_image"] is None and "eta_relative" in j and "sampling_steps" in j["state"]'
shape "GET loras: a list" GET /sdapi/v1/loras 'j == []'
shape "GET embeddings: loaded and skipped" GET /sdapi/v1/embeddings 'j == {"loaded": {}, "skipped": {}}'
shape "GET sd-vae: none without --vae" GET /sdapi/v1/sd-vae 'j == []'
shape "GET upscalers: Lanczos (hires fix)" GET /sdapi/v1/upscalers '[u["name"] for u in j] == ["Lanczos"]'
shape "GET latent-upscale-modes: Latent, Latent (nearest-exact)" GET /sdapi/v1/latent-upscale-modes \
  '[u["name"] for u in j] == ["Latent", "Latent (nearest-exact)"]'
for p in hypernetworks face-restorers realesrgan-models prompt-styles sd-modules; do
  shape "GET $p: an empty list (none here)" GET "/sdapi/v1/$p" 'j == []'
done
shape "GET cmd-flags: {}" GET /sdapi/v1/cmd-flags 'j == {}'
shape "GET scripts: no txt2img or img2img scripts" GET /sdapi/v1/scripts 'j == {"txt2img": [], "img2img": []}'
shape "GET memory: an object" GET /sdapi/v1/memory 'isinstance(j, dict)'
shape "POST refresh-checkpoints: 200" POST /sdapi/v1/refresh-checkpoints 'j == {}'
shape "POST interrupt with no body: 200" POST /sdapi/v1/interrupt 'j == {}'
shape "POST skip with no body: 200" POST /sdapi/v1/skip 'j == {}'
st=$(curl -s -o "$TMP/s.json" -w '%{http_code}' "$BASE/sdapi/v1/nothing-here")
check "unknown /sdapi/v1 path: 404 {\"detail\": ...}" $([ "$st" = 404 ] && [ "$(json "$TMP/s.json" 'j["detail"]')" = "Not Found" ]; echo $?) "$st $(cat "$TMP/s.json")"

# ---- a batch: each image is its seed alone ----------------------------------
G='"prompt": "a red fox", "width": 64, "height": 64, "steps": 2'
st=$(post /sdapi/v1/txt2img "{$G, \"seed\": 1234, \"batch_size\": 2, \"restore_faces\": true, \"unknown_field\": 1}" "$TMP/b.json")
n=$(images "$TMP/b.json" "$TMP/b")
check "batch_size 2: 200 with 2 images" $([ "$st" = 200 ] && [ "$n" = 2 ]; echo $?) "$st $(head -c 300 "$TMP/b.json")"
check "info.all_seeds = [seed, seed + 1], info.seed = seed" \
  $([ "$(info "$TMP/b.json" 'i["all_seeds"], i["seed"]')" = "[1234, 1235] 1234" ] || [ "$(info "$TMP/b.json" '(i["all_seeds"], i["seed"])')" = "([1234, 1235], 1234)" ]; echo $?) \
  "$(info "$TMP/b.json" 'i["all_seeds"]')"
check "info: infotexts per image with its seed, sampler Euler (A1111's API default)" \
  $([ "$(info "$TMP/b.json" 'all("Seed: %d," % s in t and "Sampler: Euler," in t for s, t in zip(i["all_seeds"], i["infotexts"]))')" = True ]; echo $?) \
  "$(info "$TMP/b.json" 'i["infotexts"]')"
check "info keys of A1111's Processed.js()" \
  $([ "$(info "$TMP/b.json" 'all(k in i for k in ("prompt","all_prompts","negative_prompt","all_negative_prompts","seed","all_seeds","subseed","all_subseeds","width","height","sampler_name","cfg_scale","steps","batch_size","restore_faces","sd_model_name","sd_model_hash","clip_skip","denoising_strength","infotexts","styles","job_timestamp","index_of_first_image","version"))')" = True ]; echo $?) \
  "$(json "$TMP/b.json" 'j["info"]' | head -c 300)"
check "restore_faces is ignored and info says so" \
  $([ "$(info "$TMP/b.json" 'any("restore_faces" in n for n in i["notes"])')" = True ]; echo $?) "$(info "$TMP/b.json" 'i["notes"]')"
st=$(post /sdapi/v1/txt2img "{$G, \"seed\": 5, \"subseed\": -1, \"subseed_strength\": 0.5, \"seed_resize_from_w\": 32, \"seed_resize_from_h\": 32}" "$TMP/sub.json")
check "subseed_strength with subseed -1 and seed_resize_from_*: ignored and info says so" \
  $([ "$st" = 200 ] && [ "$(info "$TMP/sub.json" 'any("subseed" in n for n in i["notes"]) and any("seed_resize_from" in n for n in i["notes"])')" = True ]; echo $?) \
  "$st $(info "$TMP/sub.json" 'i["notes"]')"
check "parameters: the request as read, defaults filled" \
  $([ "$(json "$TMP/b.json" '(j["parameters"]["seed"], j["parameters"]["batch_size"], j["parameters"]["n_iter"], j["parameters"]["sampler_name"])')" = "(1234, 2, 1, 'Euler')" ]; echo $?) \
  "$(json "$TMP/b.json" 'j["parameters"]')"
st=$(post /sdapi/v1/txt2img "{$G, \"seed\": 1235}" "$TMP/one.json")
images "$TMP/one.json" "$TMP/one" >/dev/null
check "image 2 of the batch = seed 1235 alone (pixels)" $(pixels_equal "$TMP/b1.png" "$TMP/one0.png"; echo $?) "$(pixel_diff "$TMP/b1.png" "$TMP/one0.png")"
st=$(post /sdapi/v1/txt2img "{$G, \"seed\": 1234}" "$TMP/one.json")
images "$TMP/one.json" "$TMP/zero" >/dev/null
check "image 1 of the batch = seed 1234 alone (pixels)" $(pixels_equal "$TMP/b0.png" "$TMP/zero0.png"; echo $?) "$(pixel_diff "$TMP/b0.png" "$TMP/zero0.png")"
st=$(post /sdapi/v1/txt2img "{$G, \"seed\": 7, \"batch_size\": 2, \"n_iter\": 2}" "$TMP/n.json")
check "batch_size 2 x n_iter 2: 4 images, seeds 7..10" \
  $([ "$st" = 200 ] && [ "$(images "$TMP/n.json" "$TMP/n")" = 4 ] && [ "$(info "$TMP/n.json" 'i["all_seeds"]')" = "[7, 8, 9, 10]" ]; echo $?) "$st"
st=$(post /sdapi/v1/txt2img "{$G, \"seed\": -1}" "$TMP/r.json")
check "seed -1: a random seed, told in info" $([ "$st" = 200 ] && [ "$(info "$TMP/r.json" 'i["seed"] >= 0')" = True ]; echo $?) "$st"

# ---- sampler names --------------------------------------------------------------
post /sdapi/v1/txt2img "{$G, \"seed\": 9, \"sampler_name\": \"DPM++ 2M\", \"scheduler\": \"Karras\"}" "$TMP/k1.json" >/dev/null
post /sdapi/v1/txt2img "{$G, \"seed\": 9, \"sampler_name\": \"DPM++ 2M Karras\"}" "$TMP/k2.json" >/dev/null
post /sdapi/v1/txt2img "{$G, \"seed\": 9, \"sampler_index\": \"DPM++ 2M\", \"scheduler\": \"karras\"}" "$TMP/k3.json" >/dev/null
G4='"prompt": "a red fox", "width": 64, "height": 64, "steps": 4, "seed": 9'
post /sdapi/v1/txt2img "{$G4, \"sampler_name\": \"DPM++ 2M\", \"scheduler\": \"Uniform\"}" "$TMP/k4.json" >/dev/null
post /sdapi/v1/txt2img "{$G4, \"sampler_name\": \"DPM++ 2M Karras\"}" "$TMP/k5.json" >/dev/null
st=$(post /sdapi/v1/txt2img "{$G, \"seed\": 9, \"sampler_name\": \"\", \"sampler_index\": \"DPM++ 2M Karras\"}" "$TMP/k6.json")
check "sampler_name \"\" falls back to sampler_index (A1111's sampler_name or sampler_index)" \
  $([ "$st" = 200 ] && [ "$(info "$TMP/k6.json" 'i["sampler_name"]')" = "DPM++ 2M Karras" ]; echo $?) "$st $(head -c 300 "$TMP/k6.json")"
for k in 1 2 3 4 5; do images "$TMP/k$k.json" "$TMP/k$k-" >/dev/null; done
check "\"DPM++ 2M\" + scheduler \"Karras\" = \"DPM++ 2M Karras\"" $(pixels_equal "$TMP/k1-0.png" "$TMP/k2-0.png"; echo $?) "$(pixel_diff "$TMP/k1-0.png" "$TMP/k2-0.png")"
check "sampler_index + scheduler \"karras\" = the same" $(pixels_equal "$TMP/k3-0.png" "$TMP/k2-0.png"; echo $?) "$(pixel_diff "$TMP/k3-0.png" "$TMP/k2-0.png")"
check "the schedule is used: DPM++ 2M Uniform differs from Karras (4 steps)" $(! pixels_equal "$TMP/k4-0.png" "$TMP/k5-0.png"; echo $?) "same pixels"
check "infotext: Sampler: DPM++ 2M, Schedule type: Karras" \
  $([ "$(info "$TMP/k1.json" '"Sampler: DPM++ 2M, Schedule type: Karras" in i["infotexts"][0]')" = True ]; echo $?) "$(info "$TMP/k1.json" 'i["infotexts"][0]')"

# ---- CLIP skip, send_images ------------------------------------------------------
post /sdapi/v1/txt2img "{$G, \"seed\": 11, \"override_settings\": {\"CLIP_stop_at_last_layers\": 1}}" "$TMP/c1.json" >/dev/null
post /sdapi/v1/txt2img "{$G, \"seed\": 11, \"override_settings\": {\"CLIP_stop_at_last_layers\": 2}}" "$TMP/c2.json" >/dev/null
images "$TMP/c1.json" "$TMP/c1-" >/dev/null
images "$TMP/c2.json" "$TMP/c2-" >/dev/null
check "override_settings CLIP_stop_at_last_layers 2 changes the image vs 1" $(! pixels_equal "$TMP/c1-0.png" "$TMP/c2-0.png"; echo $?) "same pixels"
check "info.clip_skip 2 and the infotext says Clip skip: 2" \
  $([ "$(info "$TMP/c2.json" 'i["clip_skip"] == 2 and "Clip skip: 2" in i["infotexts"][0]')" = True ]; echo $?) "$(info "$TMP/c2.json" 'i["infotexts"][0]')"
st=$(post /sdapi/v1/txt2img "{$G, \"seed\": 3, \"send_images\": false}" "$TMP/ns.json")
check "send_images false: 200, images [] and info still there" \
  $([ "$st" = 200 ] && [ "$(json "$TMP/ns.json" '(j["images"], json.loads(j["info"])["seed"])')" = "([], 3)" ]; echo $?) "$st $(head -c 200 "$TMP/ns.json")"
# booleans as A1111's pydantic reads them: 0/1 and the words, in any case (before: only JSON false counted)
bad=""
for v in 0 '"false"' '"No"' '"off"'; do
  st=$(post /sdapi/v1/txt2img "{$G, \"seed\": 3, \"send_images\": $v}" "$TMP/ns.json")
  [ "$st" = 200 ] && [ "$(json "$TMP/ns.json" 'j["images"]')" = "[]" ] || bad="$bad $v:$st"
done
check "send_images 0, \"false\", \"No\", \"off\": no images, as false" $([ -z "$bad" ]; echo $?) "$bad"

# ---- img2img -----------------------------------------------------------------------
B64=$(base64 -w0 "$TMP/b0.png")
st=$(post /sdapi/v1/img2img "{\"prompt\": \"a fox in winter\", \"init_images\": [\"$B64\"], \"denoising_strength\": 0.5, \"steps\": 4, \"seed\": 5, \"width\": 512, \"height\": 512}" "$TMP/i.json")
images "$TMP/i.json" "$TMP/i" >/dev/null
check "img2img from init_images: 200, a 64x64 PNG (the init image's size)" \
  $([ "$st" = 200 ] && [ "$(png_size "$TMP/i0.png")" = 64x64 ]; echo $?) "$st $(head -c 300 "$TMP/i.json")"
check "img2img info: denoising_strength 0.5, a note that width/height were not used" \
  $([ "$(info "$TMP/i.json" 'i["denoising_strength"] == 0.5 and any("init image" in n for n in i["notes"]) and "Denoising strength: 0.5" in i["infotexts"][0]')" = True ]; echo $?) \
  "$(json "$TMP/i.json" 'j["info"]' | head -c 400)"

# denoising_strength 1 (a full repaint): A1111 runs min(strength, 0.999) of the steps
st=$(post /sdapi/v1/img2img "{\"prompt\": \"a fox in winter\", \"init_images\": [\"$B64\"], \"denoising_strength\": 1, \"steps\": 4, \"seed\": 5}" "$TMP/i1.json")
images "$TMP/i1.json" "$TMP/i1" >/dev/null
st2=$(post /sdapi/v1/img2img "{\"prompt\": \"a fox in winter\", \"init_images\": [\"$B64\"], \"denoising_strength\": 0.9995, \"steps\": 4, \"seed\": 5}" "$TMP/i2.json")
images "$TMP/i2.json" "$TMP/i2" >/dev/null
check "img2img denoising_strength 1: 200, the picture of 0.9995 (both run as A1111's 0.999), info says 1" \
  $([ "$st" = 200 ] && [ "$st2" = 200 ] && pixels_equal "$TMP/i10.png" "$TMP/i20.png" && \
    [ "$(info "$TMP/i1.json" 'i["denoising_strength"] == 1 and "Denoising strength: 1" in [x.strip() for x in i["infotexts"][0].split(",")]')" = True ]; echo $?) \
  "$st $st2 $(pixel_diff "$TMP/i10.png" "$TMP/i20.png") $(info "$TMP/i1.json" 'i["denoising_strength"], i["infotexts"][0]')"

# ---- options without keys: server-wide ------------------------------------------------
curl -s -o "$TMP/o.json" "$BASE/sdapi/v1/options"
st=$(post /sdapi/v1/options "$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); j["send_seed"]=False; j["my_client_option"]={"a":[1,2]}; print(json.dumps(j))' "$TMP/o.json")" "$TMP/p.json")
curl -s -o "$TMP/o2.json" "$BASE/sdapi/v1/options"
check "POST options with the whole dict GET returned: 200; keys read back" \
  $([ "$st" = 200 ] && [ "$(json "$TMP/o2.json" '(j["send_seed"], j["my_client_option"], j["sd_model_checkpoint"].startswith("demo-model"))')" = "(False, {'a': [1, 2]}, True)" ]; echo $?) "$st $(head -c 300 "$TMP/o2.json")"
st=$(post /sdapi/v1/options '{"CLIP_stop_at_last_layers": 2}' "$TMP/p.json")
post /sdapi/v1/txt2img "{$G, \"seed\": 11}" "$TMP/c3.json" >/dev/null
images "$TMP/c3.json" "$TMP/c3-" >/dev/null
check "options CLIP_stop_at_last_layers 2 applies to later generations" $(pixels_equal "$TMP/c3-0.png" "$TMP/c2-0.png"; echo $?) "$(pixel_diff "$TMP/c3-0.png" "$TMP/c2-0.png")"
post /sdapi/v1/options '{"CLIP_stop_at_last_layers": 12}' "$TMP/p.json" >/dev/null
st=$(post /sdapi/v1/txt2img "{$G, \"seed\": 11}" "$TMP/c12.json")
check "a stored CLIP_stop_at_last_layers deeper than the model: 422 naming it and saying it is the stored option" \
  $([ "$st" = 422 ] && [ "$(json "$TMP/c12.json" 'j["detail"][0]["loc"][-1] == "CLIP_stop_at_last_layers" and "stored with POST /sdapi/v1/options" in j["detail"][0]["msg"]')" = True ]; echo $?) \
  "$st $(head -c 300 "$TMP/c12.json")"
post /sdapi/v1/options '{"CLIP_stop_at_last_layers": 1}' "$TMP/p.json" >/dev/null
big=$(python3 -c 'print("{\"huge\": \"%s\"}" % ("x" * 70000))')
st=$(post /sdapi/v1/options "$big" "$TMP/p.json")
check "options past the stored-size cap: 422" $([ "$st" = 422 ]; echo $?) "$st $(head -c 200 "$TMP/p.json")"
check "the server still serves after all that" $([ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ]; echo $?) "$(tail -3 "$TMP/server.log")"
stop_server
check "clean exit" $([ "$STOP_STATUS" = 0 ]; echo $?) "exit $STOP_STATUS"

# ---- with API keys: options, progress, interrupt per key; Basic -------------------------
KA=key-alpha-0123456789abcdef
KB=key-bravo-0123456789abcdef
SDSERVE_API_KEYS="$KA,$KB" start_server --model "$MODEL" || exit 1
A=(-u "alice:$KA")
Bk=(-u "bob:$KB")
st=$(curl -s -o "$TMP/u.json" -D "$TMP/u.hdr" -w '%{http_code}' -u "x:wrong-key-000000000000" "$BASE/sdapi/v1/options")
check "Basic with a wrong key: 401 in A1111's shape, WWW-Authenticate: Basic" \
  $([ "$st" = 401 ] && [ -n "$(json "$TMP/u.json" 'j["detail"]')" ] && grep -qi '^WWW-Authenticate: Basic' "$TMP/u.hdr"; echo $?) "$st $(cat "$TMP/u.json")"
st=$(curl -s -o "$TMP/u.json" -w '%{http_code}' "$BASE/sdapi/v1/options")
check "no key on /sdapi: 401 whose message names Basic first (A1111 clients send only Basic)" \
  $([ "$st" = 401 ] && json "$TMP/u.json" 'j["detail"]' | grep -q 'send Authorization: HTTP Basic with the key as the password'; echo $?) "$st $(cat "$TMP/u.json")"
st=$(curl -s -o /dev/null -w '%{http_code}' "${A[@]}" "$BASE/sdapi/v1/options")
check "Basic user:KEY (user ignored): 200" $([ "$st" = 200 ]; echo $?) "$st"
st=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KB" "$BASE/sdapi/v1/options")
check "Bearer KEY: 200" $([ "$st" = 200 ]; echo $?) "$st"
post /sdapi/v1/options '{"send_seed": false, "CLIP_stop_at_last_layers": 2}' "$TMP/p.json" "${A[@]}" >/dev/null
curl -s -o "$TMP/oa.json" "${A[@]}" "$BASE/sdapi/v1/options"
curl -s -o "$TMP/ob.json" "${Bk[@]}" "$BASE/sdapi/v1/options"
check "key A's options are A's" $([ "$(json "$TMP/oa.json" '(j["send_seed"], j["CLIP_stop_at_last_layers"])')" = "(False, 2)" ]; echo $?) "$(head -c 200 "$TMP/oa.json")"
check "key B does not see them" $([ "$(json "$TMP/ob.json" '(j["send_seed"], j["CLIP_stop_at_last_layers"])')" = "(True, 1)" ]; echo $?) "$(head -c 200 "$TMP/ob.json")"

# a longer job of key A (256x256, 150 steps: seconds, so the interrupts land while it runs): progress moves, B sees none of it, A's interrupt stops it
post /sdapi/v1/txt2img '{"prompt": "a long job", "width": 256, "height": 256, "steps": 150, "seed": 1}' "$TMP/long.json" "${A[@]}" >"$TMP/long.st" &
LONG=$!
seen=no
for _ in $(seq 300); do
  curl -s -o "$TMP/pa.json" "${A[@]}" "$BASE/sdapi/v1/progress"
  if [ "$(json "$TMP/pa.json" 'j["progress"] > 0 and j["state"]["job_count"] >= 1 and j["state"]["sampling_steps"] == 150')" = True ]; then seen=yes; break; fi
  sleep 0.1
done
check "progress during A's job: progress > 0, job_count >= 1, sampling_steps 150" $([ $seen = yes ]; echo $?) "$(cat "$TMP/pa.json")"
curl -s -o "$TMP/pb.json" "${Bk[@]}" "$BASE/sdapi/v1/progress"
check "key B's progress does not show A's job (job_count 0)" $([ "$(json "$TMP/pb.json" 'j["state"]["job_count"]')" = 0 ]; echo $?) "$(cat "$TMP/pb.json")"
curl -s -o /dev/null -X POST "${Bk[@]}" "$BASE/sdapi/v1/interrupt"
sleep 0.5
curl -s -o "$TMP/pa2.json" "${A[@]}" "$BASE/sdapi/v1/progress"
check "key B's interrupt leaves A's job running" $([ "$(json "$TMP/pa2.json" 'j["state"]["job_count"]')" = 1 ] && kill -0 $LONG 2>/dev/null; echo $?) "$(cat "$TMP/pa2.json")"
st=$(curl -s -o /dev/null -w '%{http_code}' -X POST "${A[@]}" "$BASE/sdapi/v1/interrupt")
wait $LONG
check "A's interrupt (no body): 200; the waiting txt2img answers 200, images [], info interrupted" \
  $([ "$st" = 200 ] && [ "$(cat "$TMP/long.st")" = 200 ] && [ "$(json "$TMP/long.json" '(j["images"], json.loads(j["info"])["interrupted"])')" = "([], True)" ]; echo $?) \
  "$st $(cat "$TMP/long.st") $(head -c 300 "$TMP/long.json")"
curl -s -o "$TMP/pa3.json" "${A[@]}" "$BASE/sdapi/v1/progress"
check "after the interrupt: progress 0, job_count 0" $([ "$(json "$TMP/pa3.json" '(j["progress"], j["state"]["job_count"])')" = "(0, 0)" ] || [ "$(json "$TMP/pa3.json" '(j["progress"], j["state"]["job_count"])')" = "(0.0, 0)" ]; echo $?) "$(cat "$TMP/pa3.json")"
st=$(post /sdapi/v1/txt2img "{$G, \"seed\": 11}" "$TMP/c4.json" "${A[@]}")
images "$TMP/c4.json" "$TMP/c4-" >/dev/null
check "key A's CLIP skip option applies to A's generation" $([ "$st" = 200 ] && pixels_equal "$TMP/c4-0.png" "$TMP/c2-0.png"; echo $?) "$st"
check "the keyed server still serves" $([ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ]; echo $?) "$(tail -3 "$TMP/server.log")"
stop_server
check "keyed server: clean exit" $([ "$STOP_STATUS" = 0 ]; echo $?) "exit $STOP_STATUS"
