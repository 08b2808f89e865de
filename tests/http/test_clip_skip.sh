#!/usr/bin/env bash
# test_clip_skip.sh — the clip_skip request field end to end on the real
# server and CLI with the tiny reference models: on tiny-sd1 clip_skip=2
# changes the image, equals `sdserve generate --clip-skip 2` pixel for pixel
# and is written as "Clip skip: 2" into the PNG's parameters; out-of-range
# and non-integer values and a value above the text encoder's layers are
# refused with 400 naming clip_skip (also on /jobs/txt2img, before a job is
# made); on tiny-sd2 (SD2 ignores clip skip, as A1111) 1 and 2 give the same
# pixels.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

REF=${SD_REF:-../shared/reference}
F='Content-Type: application/x-www-form-urlencoded'
ARGS='prompt=a photograph of an astronaut riding a horse&negative_prompt=blurry&seed=7&width=64&height=48&num_inference_steps=3'

# refused NAME PATH BODY FRAGMENT: 400, field clip_skip, message fragment (gen, pixels_equal: lib.sh)
refused() { refused_field "$1" "$2" "$3" clip_skip "$4"; }

start_server --model "$REF/models/tiny-sd1" || exit 1
check "tiny-sd1: clip_skip=1 answers 200" $([ "$(gen one clip_skip=1)" = 200 ]; echo $?) "$(cat "$TMP/one.json")"
check "tiny-sd1: no clip_skip answers 200" $([ "$(gen default)" = 200 ]; echo $?) "$(cat "$TMP/default.json")"
check "tiny-sd1: clip_skip=2 answers 200" $([ "$(gen two clip_skip=2)" = 200 ]; echo $?) "$(cat "$TMP/two.json")"
check "tiny-sd1: clip_skip=1 is the default" $(pixels_equal "$TMP/one.png" "$TMP/default.png"; echo $?) \
  "$(python3 tests/http/pngdiff.py "$TMP/one.png" "$TMP/default.png")"
check "tiny-sd1: clip_skip=2 gives another image than 1" $(! pixels_equal "$TMP/one.png" "$TMP/two.png"; echo $?) \
  "$(python3 tests/http/pngdiff.py "$TMP/one.png" "$TMP/two.png")"
check "PNG parameters say Clip skip: 2 (and nothing for 1)" \
  $(grep -aq 'Clip skip: 2' "$TMP/two.png" && ! grep -aq 'Clip skip' "$TMP/one.png"; echo $?) \
  "$(grep -ao 'Steps: [^\x00]*' "$TMP/two.png" | head -1)"

"$SDSERVE" generate --model "$REF/models/tiny-sd1" --prompt "a photograph of an astronaut riding a horse" \
  --negative blurry --seed 7 -W 64 -H 48 --steps 3 --clip-skip 2 -o "$TMP/cli.png" >"$TMP/cli.out" 2>"$TMP/cli.err"
check "CLI --clip-skip 2 runs" $?  "$(tail -3 "$TMP/cli.err")"
check "CLI --clip-skip 2 = HTTP clip_skip=2, pixel for pixel" $(pixels_equal "$TMP/two.png" "$TMP/cli.png"; echo $?) \
  "$(python3 tests/http/pngdiff.py "$TMP/two.png" "$TMP/cli.png")"

refused "clip_skip=0" /txt2img "$ARGS&clip_skip=0" 'clip_skip must be in \[1, 12\]'
refused "clip_skip=13" /txt2img "$ARGS&clip_skip=13" 'clip_skip must be in \[1, 12\]'
refused "clip_skip=2.5" /txt2img "$ARGS&clip_skip=2.5" 'whole number'
refused "clip_skip=abc" /txt2img "$ARGS&clip_skip=abc" 'must be an integer'
refused "clip_skip=3 beyond tiny-sd1's 2 text encoder layers" /txt2img "$ARGS&clip_skip=3" 'larger than the 2 layers'
refused "async: clip_skip=3 refused before a job is made" /jobs/txt2img "$ARGS&clip_skip=3" 'larger than the 2 layers'
refused "img2img: clip_skip=13" /img2img 'prompt=x&clip_skip=13' 'clip_skip must be in'
st=$(curl -s -o "$TMP/async.json" -w '%{http_code}' -H "$F" --data "$ARGS&clip_skip=2" "$BASE/jobs/txt2img")
check "async: clip_skip=2 (tiny-sd1's first layer) accepted" $([ "$st" = 202 ]; echo $?) "status $st $(cat "$TMP/async.json")"
stop_server

start_server --model "$REF/models/tiny-sd2" || exit 1
check "tiny-sd2: clip_skip=1 answers 200" $([ "$(gen sd2one clip_skip=1)" = 200 ]; echo $?) "$(cat "$TMP/sd2one.json")"
check "tiny-sd2: clip_skip=2 answers 200" $([ "$(gen sd2two clip_skip=2)" = 200 ]; echo $?) "$(cat "$TMP/sd2two.json")"
check "tiny-sd2: clip_skip is ignored (1 and 2 give the same pixels)" \
  $(pixels_equal "$TMP/sd2one.png" "$TMP/sd2two.png"; echo $?) \
  "$(python3 tests/http/pngdiff.py "$TMP/sd2one.png" "$TMP/sd2two.png")"
check "tiny-sd2: parameters name the family (Model family: sd2)" \
  $(grep -aq 'Model: tiny-sd2, Model family: sd2' "$TMP/sd2one.png"; echo $?) \
  "$(grep -ao 'Steps: [^\x00]*' "$TMP/sd2one.png" | head -1)"
refused "tiny-sd2: clip_skip=13 still out of range" /txt2img "$ARGS&clip_skip=13" 'clip_skip must be in'
stop_server
