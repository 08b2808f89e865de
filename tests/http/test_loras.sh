#!/usr/bin/env bash
# test_loras.sh — LoRA per request end to end on the real server and CLI
# with tiny-sd1 and the reference LoRAs (goldens/lora-tiny-sd1/lora) as
# --lora-dir: the `loras` field (JSON and form) and a <lora:name:w> prompt
# tag give the same pixels, which differ from no LoRA; a request without
# LoRA afterwards gives the first no-LoRA pixels again; the PNG parameters
# keep the prompt as typed and name the LoRA's hash; GET /loras lists the
# four files; `sdserve generate --lora-dir` with a tag or --lora gives the
# server's pixels; unknown, malformed, too many, out-of-range and the same
# LoRAs on tiny-sd2 are 400s naming the field, before a job is made; a
# weight in the tag and in the field is read as Python's float() (A1111's
# tag parser) reads it: 0x1p1 refused, ' 7e-1 ' and 0.7_0 are 0.7; on
# tiny-sdxl-s an SDXL LoRA written by make_lora fits and tiny-sd1's does not
# (GET /loras, and a 400 naming loras), and the SDXL one on tiny-sd1 likewise;
# on tiny-sdxl-s the SDXL LoRA changes the picture, no LoRA afterwards gives
# the first pixels again, and POST /img2img (multipart init image, DPM++ 2M
# Karras, with the LoRA) answers 200 with an image of the init image's size.
# A LoRA file truncated, then rewritten in place, after its first use is
# seen as it is now by requests, GET /loras and the PNG's Lora hashes;
# GET /loras and /sdapi/v1/loras list in A1111's order.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

REF=${SD_REF:-../shared/reference}
LD="$REF/goldens/lora-tiny-sd1/lora"
F='Content-Type: application/x-www-form-urlencoded'
J='Content-Type: application/json'
P='a photograph of an astronaut riding a horse'
ARGS="prompt=$P&negative_prompt=blurry&seed=7&width=48&height=64&num_inference_steps=3&sampler=euler"

gen() { post_image "$1" /txt2img "$2" "$3"; }
refused() { refused_field_ct "$@"; }

start_server --model "$REF/models/tiny-sd1" --lora-dir "$LD" || exit 1
JSON_ARGS='"prompt": "'"$P"'", "negative_prompt": "blurry", "seed": 7, "width": 48, "height": 64, "num_inference_steps": 3, "sampler": "euler"'
check "no LoRA answers 200" $([ "$(gen base "$F" "$ARGS")" = 200 ]; echo $?) "$(cat "$TMP/base.json")"
check "loras field (JSON) answers 200" \
  $([ "$(gen field "$J" "{$JSON_ARGS, \"loras\": [{\"name\": \"lora_a_kohya\", \"weight\": 0.7}]}")" = 200 ]; echo $?) \
  "$(cat "$TMP/field.json")"
check "loras field (form, name:weight) answers 200" \
  $([ "$(gen form "$F" "$ARGS&loras=lora_a_kohya:0.7")" = 200 ]; echo $?) "$(cat "$TMP/form.json")"
check "prompt tag answers 200" \
  $([ "$(gen tag "$F" "prompt=$P <lora:lora_a_kohya:0.7>&negative_prompt=blurry&seed=7&width=48&height=64&num_inference_steps=3&sampler=euler")" = 200 ]; echo $?) \
  "$(cat "$TMP/tag.json")"
check "the LoRA changes the picture" $(! pixels_equal "$TMP/base.png" "$TMP/field.png"; echo $?) "same pixels"
check "loras field (JSON) = loras field (form), pixel for pixel" $(pixels_equal "$TMP/field.png" "$TMP/form.png"; echo $?) \
  "$(python3 tests/http/pngdiff.py "$TMP/field.png" "$TMP/form.png")"
check "loras field = <lora:lora_a_kohya:0.7> tag, pixel for pixel" $(pixels_equal "$TMP/field.png" "$TMP/tag.png"; echo $?) \
  "$(python3 tests/http/pngdiff.py "$TMP/field.png" "$TMP/tag.png")"
check "no LoRA after a LoRA gives the first no-LoRA pixels" \
  $([ "$(gen again "$F" "$ARGS")" = 200 ] && pixels_equal "$TMP/base.png" "$TMP/again.png"; echo $?) \
  "$(python3 tests/http/pngdiff.py "$TMP/base.png" "$TMP/again.png")"
hash=$(sha256sum "$LD/lora_a_kohya.safetensors" | cut -c1-12)
check "PNG parameters keep the tag as typed and say Lora hashes" \
  $(grep -aq "<lora:lora_a_kohya:0.7>" "$TMP/tag.png" && grep -aq "Lora hashes: \"lora_a_kohya: $hash\"" "$TMP/tag.png" &&
    ! grep -aq "Lora hashes" "$TMP/base.png"; echo $?) "$(grep -ao 'Steps: [^\x00]*' "$TMP/tag.png" | head -1)"

st=$(curl -s -o "$TMP/list.json" -w '%{http_code}' "$BASE/loras")
check "GET /loras lists the four LoRAs, rank 4, fitting, hashed" \
  $([ "$st" = 200 ] && [ "$(json "$TMP/list.json" 'sorted(l["name"] for l in j["loras"] if l["fits"] and l["rank"]==4 and l["modules"]==129 and len(l["hash"])==12 and l["size"]>0) == ["lora_a_kohya","lora_a_peft","lora_b_kohya","lora_b_peft"] and j["count"]==4')" = True ]; echo $?) \
  "status $st $(head -c 600 "$TMP/list.json")"

# the server's wording names where its clients see the names, not the folder (the CLIs name --lora-dir)
refused "unknown LoRA" /txt2img "$J" "{$JSON_ARGS, \"loras\": [{\"name\": \"nosuch\"}]}" loras \
  "unknown LoRA 'nosuch': no nosuch.safetensors in the LoRA directory (GET /loras lists them)"
refused "unknown LoRA in a tag" /txt2img "$F" "prompt=x <lora:nosuch:1>" loras "unknown LoRA 'nosuch'"
refused "async: unknown LoRA refused before a job is made" /jobs/txt2img "$F" "prompt=x&loras=nosuch" loras "unknown LoRA"
refused "malformed tag <lora:x" /txt2img "$F" "prompt=x <lora:lora_a_kohya" prompt "no closing"
refused "malformed tag <lora:x:abc>" /txt2img "$F" "prompt=x <lora:lora_a_kohya:abc>" prompt "malformed LoRA tag"
# a weight is read as A1111 reads a tag's, by Python's float(): no hex; inf and nan are numbers the range refuses
refused "hex weight in a tag <lora:x:0x1p1>" /txt2img "$F" "prompt=x <lora:lora_a_kohya:0x1p1>" prompt "malformed LoRA tag"
refused "hex weight in the field (form) x:0x1p1" /txt2img "$F" "prompt=x&loras=lora_a_kohya:0x1p1" loras "is not a number: '0x1p1'"
refused "weight inf in a tag" /txt2img "$F" "prompt=x <lora:lora_a_kohya:-inf>" prompt "weight '-inf' is outside"
# a long weight (Unicode digits, as Python reads them) is shown cut at a character, marked, quoted
refused "a 25-digit Arabic-Indic weight: said cut at a character, quoted" /txt2img "$F" \
  "prompt=x <lora:lora_a_kohya:$(python3 -c 'import urllib.parse; print(urllib.parse.quote("1" + "\u0669" * 25))')>" prompt \
  "weight '1$(printf '\\\\u0669%.0s' $(seq 19))\.\.\.' is outside"
refused "weight nan in the field (form)" /txt2img "$F" "prompt=x&loras=lora_a_kohya:NaN" loras "must be in \[-4, 4\], got nan"
check "weights in Python float() spellings (tag ' 7e-1 ', field '0.7_0'): the loras field's pixels" \
  $([ "$(gen pyf_tag "$F" "prompt=$P <lora:lora_a_kohya:%207e-1%20>&negative_prompt=blurry&seed=7&width=48&height=64&num_inference_steps=3&sampler=euler")" = 200 ] &&
    pixels_equal "$TMP/field.png" "$TMP/pyf_tag.png" && [ "$(gen pyf_form "$F" "$ARGS&loras=lora_a_kohya:0.7_0")" = 200 ] &&
    pixels_equal "$TMP/field.png" "$TMP/pyf_form.png"; echo $?) "$(cat "$TMP/pyf_tag.json" "$TMP/pyf_form.json" 2>/dev/null | head -c 400)"
tags=$(python3 -c 'print("".join("<lora:lora_a_kohya:0.01>" for _ in range(100)))')
refused "100 stacked tags" /txt2img "$F" "prompt=x $tags" loras "too many LoRAs"
many=$(python3 -c 'print(",".join("lora_a_kohya:0.01" for _ in range(100)))')
refused "100 stacked in the field" /txt2img "$F" "prompt=x&loras=$many" loras "at most 16"
refused "weight 5" /txt2img "$J" '{"prompt": "x", "loras": [{"name": "lora_a_kohya", "weight": 5}]}' loras "must be in \[-4, 4\]"
refused "weight 4.0000001 (said as sent, not rounded to 4)" /txt2img "$J" '{"prompt": "x", "loras": [{"name": "lora_a_kohya", "weight": 4.0000001}]}' loras "got 4.0000001\"}"
refused "a path for a name" /txt2img "$J" '{"prompt": "x", "loras": [{"name": "../lora/lora_a_kohya"}]}' loras "is not a name"
refused "img2img: unknown LoRA" /img2img "$F" "prompt=x&loras=nosuch&init_image=iVBORw0KGgo=" loras "unknown LoRA"

"$SDSERVE" generate --model "$REF/models/tiny-sd1" --lora-dir "$LD" --prompt "$P <lora:lora_a_kohya:0.7>" \
  --negative blurry --seed 7 -W 48 -H 64 --steps 3 --sampler euler -o "$TMP/cli.png" >"$TMP/cli.out" 2>"$TMP/cli.err"
check "CLI: a tag in --prompt runs" $? "$(tail -3 "$TMP/cli.err")"
check "CLI tag = HTTP loras field, pixel for pixel" $(pixels_equal "$TMP/field.png" "$TMP/cli.png"; echo $?) \
  "$(python3 tests/http/pngdiff.py "$TMP/field.png" "$TMP/cli.png")"
"$SDSERVE" generate --model "$REF/models/tiny-sd1" --lora-dir "$LD" --prompt "$P" --lora lora_a_kohya:0.35 \
  --lora lora_a_kohya:0.35 --negative blurry --seed 7 -W 48 -H 64 --steps 3 --sampler euler -o "$TMP/cli2.png" \
  >"$TMP/cli.out" 2>"$TMP/cli.err"
check "CLI: --lora twice runs (stacked)" $? "$(tail -3 "$TMP/cli.err")"
check "CLI: 0.35 + 0.35 stacked differs from no LoRA" $(! pixels_equal "$TMP/base.png" "$TMP/cli2.png"; echo $?) "same pixels"
"$SDSERVE" generate --model "$REF/models/tiny-sd1" --lora-dir "$LD" --prompt "x" --lora nosuch -o "$TMP/cli3.png" \
  >"$TMP/cli.out" 2>"$TMP/cli.err"
check "CLI: an unknown --lora fails, naming it" $([ $? != 0 ] && grep -q "unknown LoRA 'nosuch'" "$TMP/cli.err"; echo $?) \
  "$(tail -3 "$TMP/cli.err")"
stop_server

start_server --model "$REF/models/tiny-sd2" --lora-dir "$LD" || exit 1
refused "tiny-sd2: a tiny-sd1 LoRA" /txt2img "$F" "prompt=x&loras=lora_a_kohya" loras "LoRA 'lora_a_kohya'"
refused "tiny-sd2: a tiny-sd1 LoRA as a tag" /txt2img "$F" "prompt=x <lora:lora_b_peft:0.5>" loras "LoRA 'lora_b_peft'"
curl -s -o "$TMP/list2.json" "$BASE/loras"
check "tiny-sd2: GET /loras says the tiny-sd1 LoRAs do not fit" \
  $([ "$(json "$TMP/list2.json" 'j["count"]==4 and all(not l["fits"] and l["reason"] for l in j["loras"])')" = True ]; echo $?) \
  "$(head -c 600 "$TMP/list2.json")"
stop_server

# a FIFO under a LoRA's name (an operator's mistake): opening it used to block until a writer came,
# holding the LoRA cache's lock, until no HTTP thread was left (SIGTERM too); now it is a file that does not load
mkdir -p "$TMP/lfifo" && cp "$LD/lora_a_kohya.safetensors" "$TMP/lfifo/" && mkfifo "$TMP/lfifo/evil.safetensors"
start_server --model "$REF/models/tiny-sd1" --lora-dir "$TMP/lfifo" || exit 1
st=$(timeout 20 curl -s -o "$TMP/lf.json" -w '%{http_code}' "$BASE/loras")
check "a FIFO in --lora-dir: GET /loras answers at once, the FIFO listed as not fitting, with a reason" \
  $([ "$st" = 200 ] && [ "$(json "$TMP/lf.json" '[(l["name"], l["fits"], bool(l["reason"])) for l in sorted(j["loras"], key=lambda l: l["name"])]')" = \
      "[('evil', False, True), ('lora_a_kohya', True, False)]" ]; echo $?) "status $st $(head -c 400 "$TMP/lf.json")"
refused "a FIFO in --lora-dir named" /txt2img "$F" "prompt=x&loras=evil" loras "evil"
st=$(timeout 20 curl -s -o /dev/null -w '%{http_code}' "$BASE/health")
check "a FIFO in --lora-dir: /health still 200" $([ "$st" = 200 ]; echo $?) "status $st"
stop_server
check "a FIFO in --lora-dir: clean exit on SIGTERM" $STOP_STATUS "status $STOP_STATUS"

# A LoRA file changed after its first use (issue: the cache kept the file as first read): every
# use, GET /loras and A1111's list see it as it is now; both lists are in A1111's order
CD=$TMP/lchange
mkdir -p "$CD"
for n in zeta lora10 x Mid alpha lora9 b_1 B; do cp "$LD/lora_a_kohya.safetensors" "$CD/$n.safetensors"; done
start_server --model "$REF/models/tiny-sd1" --lora-dir "$CD" || exit 1
check "changed file: x (= lora_a_kohya) at 0.7 gives the loras field's pixels" \
  $([ "$(gen chg1 "$F" "$ARGS&loras=x:0.7")" = 200 ] && pixels_equal "$TMP/field.png" "$TMP/chg1.png"; echo $?) \
  "$(head -c 300 "$TMP/chg1.json")"
curl -s -o "$TMP/chg_l1.json" "$BASE/loras"
curl -s -o "$TMP/chg_a1.json" "$BASE/sdapi/v1/loras"
check "GET /loras and /sdapi/v1/loras are in A1111's order (case folded, numbers by value)" \
  $([ "$(json "$TMP/chg_l1.json" '[l["name"] for l in j["loras"]]')" = "['alpha', 'B', 'b_1', 'lora9', 'lora10', 'Mid', 'x', 'zeta']" ] &&
    [ "$(json "$TMP/chg_a1.json" '[l["name"] for l in j]')" = "['alpha', 'B', 'b_1', 'lora9', 'lora10', 'Mid', 'x', 'zeta']" ]; echo $?) \
  "$(head -c 300 "$TMP/chg_l1.json") $(head -c 300 "$TMP/chg_a1.json")"
head -c 1000 "$LD/lora_a_kohya.safetensors" >"$TMP/trunc.safetensors" && cat "$TMP/trunc.safetensors" >"$CD/x.safetensors"
curl -s -o "$TMP/chg_l2.json" "$BASE/loras"
check "x truncated after its use: GET /loras says it does not fit, with the reason, and its new size" \
  $([ "$(json "$TMP/chg_l2.json" '[(l["fits"], bool(l["reason"]), l["size"]) for l in j["loras"] if l["name"] == "x"]')" = "[(False, True, 1000)]" ]
    echo $?) "$(head -c 600 "$TMP/chg_l2.json")"
refused "x truncated after its use" /txt2img "$F" "$ARGS&loras=x:0.7" loras "LoRA 'x'"
refused "x truncated after its use, as a tag (async)" /jobs/txt2img "$F" "prompt=x <lora:x:0.7>" loras "LoRA 'x'"
cat "$LD/lora_b_kohya.safetensors" >"$CD/x.safetensors"   # rewritten in place: lora_b_kohya now
hash_b=$(sha256sum "$LD/lora_b_kohya.safetensors" | cut -c1-12)
curl -s -o "$TMP/chg_l3.json" "$BASE/loras"
check "x rewritten with lora_b_kohya: GET /loras says it fits, with lora_b's hash" \
  $([ "$(json "$TMP/chg_l3.json" '[(l["fits"], l["hash"]) for l in j["loras"] if l["name"] == "x"]')" = "[(True, '$hash_b')]" ]
    echo $?) "$(head -c 600 "$TMP/chg_l3.json")"
check "x rewritten: the same request gives other pixels, and its PNG names lora_b's hash" \
  $([ "$(gen chg2 "$F" "prompt=$P <lora:x:0.7>&negative_prompt=blurry&seed=7&width=48&height=64&num_inference_steps=3&sampler=euler")" = 200 ] &&
    ! pixels_equal "$TMP/field.png" "$TMP/chg2.png" && grep -aq "Lora hashes: \"x: $hash_b\"" "$TMP/chg2.png"; echo $?) \
  "$(head -c 300 "$TMP/chg2.json") $(grep -ao 'Lora hashes: [^,]*' "$TMP/chg2.png")"
stop_server

# SDXL: a LoRA made for tiny-sdxl-s by make_lora (lora_te1_/lora_te2_, lora_unet_) fits;
# tiny-sd1's does not, and the SDXL one does not fit tiny-sd1 — each saying why
XD=$TMP/xl-loras
mkdir -p "$XD"
"$BUILD/tools/make_lora" "$REF/models/tiny-sdxl-s" --rank 4 -o "$XD/xl_r4.safetensors" >/dev/null
ln -s "$(cd "$LD" && pwd)/lora_a_kohya.safetensors" "$XD/lora_a_kohya.safetensors"
start_server --model "$REF/models/tiny-sdxl-s" --lora-dir "$XD" || exit 1
curl -s -o "$TMP/xl.json" "$BASE/loras"
check "tiny-sdxl-s: GET /loras: the SDXL LoRA fits (283 modules), tiny-sd1's does not, as an SD 1.x/2.x LoRA" \
  $([ "$(json "$TMP/xl.json" 'sorted((l["name"], l["fits"], l["modules"], "is for SD 1.x/2.x" in (l["reason"] or "")) for l in j["loras"])')" = \
      "[('lora_a_kohya', False, 0, True), ('xl_r4', True, 283, False)]" ]; echo $?) "$(head -c 600 "$TMP/xl.json")"
refused "tiny-sdxl-s: a tiny-sd1 LoRA" /txt2img "$F" "prompt=x&loras=lora_a_kohya" loras "is for SD 1.x/2.x, not this SDXL model"
XARGS="prompt=$P&negative_prompt=blurry&seed=7&width=64&height=64&num_inference_steps=2&sampler=euler_a"
check "tiny-sdxl-s: no LoRA answers 200" $([ "$(gen xbase "$F" "$XARGS")" = 200 ]; echo $?) "$(cat "$TMP/xbase.json")"
check "tiny-sdxl-s: the SDXL LoRA answers 200" $([ "$(gen xlora "$F" "$XARGS&loras=xl_r4:0.8")" = 200 ]; echo $?) \
  "$(cat "$TMP/xlora.json")"
check "tiny-sdxl-s: the SDXL LoRA changes the picture" $(! pixels_equal "$TMP/xbase.png" "$TMP/xlora.png"; echo $?) \
  "same pixels"
check "tiny-sdxl-s: no LoRA after the LoRA gives the first no-LoRA pixels" \
  $([ "$(gen xagain "$F" "$XARGS")" = 200 ] && pixels_equal "$TMP/xbase.png" "$TMP/xagain.png"; echo $?) \
  "$(python3 tests/http/pngdiff.py "$TMP/xbase.png" "$TMP/xagain.png")"
st=$(curl -s -o "$TMP/xi.json" -w '%{http_code}' -F "prompt=$P" -F seed=3 -F num_inference_steps=3 -F strength=0.6 \
  -F "sampler=DPM++ 2M Karras" -F "loras=xl_r4:0.8" -F "init_image=@$TMP/xbase.png;type=image/png" "$BASE/img2img")
[ "$st" = 200 ] && curl -s -o "$TMP/xi.png" "$(json "$TMP/xi.json" 'j["images"][0]["image_url"]')"
check "tiny-sdxl-s: POST /img2img (DPM++ 2M Karras, LoRA) answers 200 with a 64x64 PNG" \
  $([ "$st" = 200 ] && [ "$(png_size "$TMP/xi.png")" = 64x64 ] && ! pixels_equal "$TMP/xbase.png" "$TMP/xi.png"; echo $?) \
  "status $st $(head -c 300 "$TMP/xi.json") size $(png_size "$TMP/xi.png")"
stop_server
start_server --model "$REF/models/tiny-sd1" --lora-dir "$XD" || exit 1
refused "tiny-sd1: an SDXL LoRA as a tag" /txt2img "$F" "prompt=x <lora:xl_r4:0.5>" loras "is for SDXL, not this SD 1.x/2.x model"
curl -s -o "$TMP/xl1.json" "$BASE/loras"
check "tiny-sd1: GET /loras says the SDXL LoRA does not fit, as an SDXL LoRA" \
  $([ "$(json "$TMP/xl1.json" '[(l["fits"], "is for SDXL" in l["reason"]) for l in j["loras"] if l["name"] == "xl_r4"]')" = "[(False, True)]" ]; echo $?) \
  "$(head -c 600 "$TMP/xl1.json")"
stop_server
