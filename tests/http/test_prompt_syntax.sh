#!/usr/bin/env bash
# test_prompt_syntax.sh — A1111 prompt syntax in requests end to end on the
# real server and CLI with tiny-sd1: a weighted prompt gives another image
# than the plain one and the same as `sdserve generate` with the same text;
# BREAK and prompt editing run; the PNG's parameters keep the prompt and
# negative prompt as typed; AND and an unreadable weight are refused with
# 400 naming the field on /txt2img and /jobs/txt2img (no job made); a
# weight whose emphasis overflows float32 is a 400 naming the field.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

REF=${SD_REF:-../shared/reference}
COMMON='seed=11&width=64&height=48&num_inference_steps=3'   # the CLI run below uses the same

# gen NAME PROMPT [NEGATIVE]: POST /txt2img (url-encoded), the image in $TMP/NAME.png; prints the status
gen() {
  local st url
  st=$(curl -s -o "$TMP/$1.json" -w '%{http_code}' --data-urlencode "prompt=$2" \
    --data-urlencode "negative_prompt=${3:-}" --data "$COMMON" "$BASE/txt2img")
  url=$(json "$TMP/$1.json" 'j["images"][0]["image_url"]')
  [ "$st" = 200 ] && curl -s -o "$TMP/$1.png" "$url"
  echo "$st"
}

start_server --model "$REF/models/tiny-sd1" || exit 1
W='a (photograph:1.4) of an ((astronaut)) riding a [horse]'
check "plain prompt -> 200" $([ "$(gen plain 'a photograph of an astronaut riding a horse')" = 200 ]; echo $?) "$(cat "$TMP/plain.json")"
check "weighted prompt -> 200" $([ "$(gen weighted "$W" '(blurry:1.2)')" = 200 ]; echo $?) "$(cat "$TMP/weighted.json")"
check "the weighted prompt gives another image than the plain one" \
  $(! pixels_equal "$TMP/plain.png" "$TMP/weighted.png"; echo $?) "$(pixel_diff "$TMP/plain.png" "$TMP/weighted.png")"
check "the PNG's parameters keep the prompt as typed" \
  $(grep -aqF "$W" "$TMP/weighted.png" && grep -aqF 'Negative prompt: (blurry:1.2)' "$TMP/weighted.png"; echo $?) \
  "$(grep -ao 'a (photo[^\x00]*' "$TMP/weighted.png" | head -1)"

"$SDSERVE" generate --model "$REF/models/tiny-sd1" --prompt "$W" --negative '(blurry:1.2)' --seed 11 -W 64 -H 48 \
  --steps 3 -o "$TMP/cli.png" >"$TMP/cli.out" 2>"$TMP/cli.err"
check "CLI with the weighted prompt runs" $? "$(tail -3 "$TMP/cli.err")"
check "CLI = HTTP for the weighted prompt, pixel for pixel" $(pixels_equal "$TMP/weighted.png" "$TMP/cli.png"; echo $?) \
  "$(pixel_diff "$TMP/weighted.png" "$TMP/cli.png")"

check "BREAK -> 200" $([ "$(gen brk 'a photograph BREAK an astronaut riding a horse')" = 200 ]; echo $?) "$(cat "$TMP/brk.json")"
check "BREAK changes the image" $(! pixels_equal "$TMP/plain.png" "$TMP/brk.png"; echo $?) "$(pixel_diff "$TMP/plain.png" "$TMP/brk.png")"
check "prompt editing [cat:dog:1] -> 200" $([ "$(gen edit 'a [cat:dog:1] on a mat')" = 200 ]; echo $?) "$(cat "$TMP/edit.json")"
gen cat 'a cat on a mat' >/dev/null
gen dog 'a dog on a mat' >/dev/null
check "[cat:dog:1] differs from 'cat' and from 'dog' alone" \
  $(! pixels_equal "$TMP/edit.png" "$TMP/cat.png" && ! pixels_equal "$TMP/edit.png" "$TMP/dog.png"; echo $?) \
  "cat: $(pixel_diff "$TMP/edit.png" "$TMP/cat.png") dog: $(pixel_diff "$TMP/edit.png" "$TMP/dog.png")"

submitted() { curl -s "$BASE/metrics" | awk '$1 == "sdserve_jobs_total{outcome=\"submitted\"}" {print $2}'; }
sub0=$(submitted)
for path in /txt2img /jobs/txt2img; do
  st=$(curl -s -o "$TMP/and.json" -w '%{http_code}' --data-urlencode 'prompt=a cat AND a dog' "$BASE$path")
  check "$path: AND -> 400 naming prompt, saying composable diffusion" \
    $([ "$st" = 400 ] && [ "$(json "$TMP/and.json" 'j["field"]')" = prompt ] && grep -q 'composable diffusion' "$TMP/and.json"; echo $?) \
    "status $st $(cat "$TMP/and.json")"
  st=$(curl -s -o "$TMP/w.json" -w '%{http_code}' --data-urlencode 'prompt=x' --data-urlencode 'negative_prompt=(ugly:abc)' "$BASE$path")
  check "$path: (ugly:abc) in the negative -> 400 naming negative_prompt" \
    $([ "$st" = 400 ] && [ "$(json "$TMP/w.json" 'j["field"]')" = negative_prompt ]; echo $?) "status $st $(cat "$TMP/w.json")"
done
check "no job made for the refused async requests" $([ -n "$sub0" ] && [ "$(submitted)" = "$sub0" ]; echo $?) "submitted $sub0 -> $(submitted)"

# A weight below FLT_MAX whose product with the text encoder's output
# overflows float32 ((x:3e38)): the emphasis would make the context inf/NaN
# and the picture black; the request is a 400 naming the field instead.
big="(x:3$(printf '0%.0s' $(seq 38)))"
st=$(curl -s -o "$TMP/big.json" -w '%{http_code}' --data-urlencode "prompt=$big" --data "$COMMON" "$BASE/txt2img")
check "(x:3e38) -> 400 naming prompt: the emphasis overflows (not a black image)" \
  $([ "$st" = 400 ] && [ "$(json "$TMP/big.json" 'j["field"]')" = prompt ] && grep -q 'overflow' "$TMP/big.json"; echo $?) \
  "status $st $(head -c 300 "$TMP/big.json")"
st=$(curl -s -o "$TMP/big.json" -w '%{http_code}' --data-urlencode 'prompt=x' --data-urlencode "negative_prompt=$big" \
  --data "$COMMON&sampler=Euler" "$BASE/txt2img")
check "(x:3e38) in the negative (A1111 sampler) -> 400 naming negative_prompt" \
  $([ "$st" = 400 ] && [ "$(json "$TMP/big.json" 'j["field"]')" = negative_prompt ]; echo $?) "status $st $(head -c 300 "$TMP/big.json")"
stop_server
