#!/usr/bin/env bash
# test_s3_serve.sh — `sdserve serve --storage s3` end to end on the demo
# model, against the SigV4-verifying fake S3 server on loopback: PNG, JPEG
# and WebP outputs are uploaded, their pre-signed image_url fetches the
# object, which decodes to the requested size with the A1111 `parameters`
# text equal to what was asked; credentials never show in the log; with the
# S3 server stopped a request gets retries then a clear 502 and no URL, the
# server keeps serving, and works again once S3 is back.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh
. tests/storage/lib_s3.sh

IMGINFO=$BUILD/tools/imginfo
s3_setup || exit 0
MODEL=$(demo_model)
# credentials through the server's own settings (environment), not AWS_*
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
export SDSERVE_S3_ACCESS_KEY=$S3_AK SDSERVE_S3_SECRET_KEY=$S3_SK
start_server --model "$MODEL" --sync-wait 120 --storage s3 --s3-endpoint "$EP" --s3-addressing path \
  --s3-bucket "$S3_BUCKET" --s3-prefix e2e/ --s3-presign-expires 900 --s3-timeout 5 --s3-attempts 3 || exit 0
unset SDSERVE_S3_ACCESS_KEY SDSERVE_S3_SECRET_KEY
check "start-up summary hides the credentials and names the bucket" \
  $(grep -q "s3-secret-key .*(set, not shown)" "$TMP/server.log" && grep -q "storage: S3 bucket $S3_BUCKET at $EP (path-style, prefix e2e/), pre-signed URLs" "$TMP/server.log"; echo $?) \
  "$(grep -i -e s3 -e storage "$TMP/server.log" | head -20)"

mline=$(grep -m1 '^model: ' "$TMP/server.log")
MNAME=$(sed -E 's/^model: (.*) \(.*, hash ([0-9a-f]+)\)$/\1/' <<<"$mline")
MHASH=$(sed -E 's/^model: (.*) \(.*, hash ([0-9a-f]+)\)$/\2/' <<<"$mline")
PROMPT='a lighthouse, "quoted", at dusk: ünïcode'
NEG='blurry, low quality'
body() { # body FORMAT -> JSON request
  python3 -c 'import json,sys; print(json.dumps({"prompt":sys.argv[1],"negative_prompt":sys.argv[2],"seed":1234,"width":64,"height":48,"num_inference_steps":2,"guidance_scale":7.5,"output_format":sys.argv[3],"output_quality":85}))' \
    "$PROMPT" "$NEG" "$1"
}
expected=$(python3 -c 'import sys; print(sys.argv[1] + "\nNegative prompt: " + sys.argv[2] + "\nSteps: 2, Sampler: euler_a, CFG scale: 7.5, Seed: 1234, Size: 64x48, Model hash: " + sys.argv[3] + ", Model: " + sys.argv[4], end="")' "$PROMPT" "$NEG" "$MHASH" "$MNAME")

for fmt in png jpeg webp; do
  case $fmt in png) mime=image/png ext=png;; jpeg) mime=image/jpeg ext=jpg;; webp) mime=image/webp ext=webp;; esac
  st=$(curl -s -o "$TMP/$fmt.json" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$(body $fmt)" "$BASE/txt2img")
  url=$(json "$TMP/$fmt.json" 'j["images"][0]["image_url"]')
  m=$(json "$TMP/$fmt.json" 'j["images"][0]["mime_type"]')
  gst=$(curl -s -D "$TMP/$fmt.h" -o "$TMP/out.$ext" -w '%{http_code}' "$url")
  key=$(sha256sum "$TMP/out.$ext" | cut -c1-32)
  check "$fmt: 200, mime_type $mime, pre-signed URL of e2e/<sha256 of the bytes>.$ext on the S3 server fetches it" \
    $([ "$st" = 200 ] && [ "$m" = "$mime" ] && [ "$gst" = 200 ] && [[ "$url" == "$EP/$S3_BUCKET/e2e/$key.$ext?X-Amz-Algorithm=AWS4-HMAC-SHA256&"* ]] && tr -d '\r' <"$TMP/$fmt.h" | grep -qi "^Content-Type: $mime\$"; echo $?) \
    "status $st mime $m get $gst url $url body $(head -c 300 "$TMP/$fmt.json")"
  "$IMGINFO" "$TMP/out.$ext" >"$TMP/$fmt.info" 2>&1
  check "$fmt: decodes as $fmt 64x48" $([ "$(head -1 "$TMP/$fmt.info")" = "$fmt 64x48" ]; echo $?) "$(head -3 "$TMP/$fmt.info")"
  got=$(tail -n +2 "$TMP/$fmt.info")
  check "$fmt: embedded parameters text equals the request's A1111 parameters" \
    $([ "$got" = "$expected" ]; echo $?) "got [$got] want [$expected]"
done
st=$(curl -s -o "$TMP/gif.json" -w '%{http_code}' -d prompt=x -d output_format=gif "$BASE/txt2img")
check "output_format=gif -> 400 naming output_format" \
  $([ "$st" = 400 ] && grep -q output_format "$TMP/gif.json"; echo $?) "status $st $(cat "$TMP/gif.json")"
st=$(curl -s -o "$TMP/q.json" -w '%{http_code}' -d prompt=x -d output_format=jpeg -d output_quality=101 "$BASE/txt2img")
check "output_quality=101 -> 400 naming output_quality" \
  $([ "$st" = 400 ] && grep -q output_quality "$TMP/q.json"; echo $?) "status $st $(cat "$TMP/q.json")"

# S3 down: retries, then 502 with a clear error and no image URL; the server keeps serving
s3_stop
st=$(curl -s -o "$TMP/down.json" -w '%{http_code}' -d 'prompt=a fox' -d seed=5 -d width=64 -d height=64 -d num_inference_steps=2 "$BASE/txt2img")
check "S3 stopped: POST /txt2img -> 502 with a storage error and no image_url" \
  $([ "$st" = 502 ] && grep -q "S3 upload to bucket '$S3_BUCKET'" "$TMP/down.json" && grep -q "failed after 3 attempts" "$TMP/down.json" && ! grep -q image_url "$TMP/down.json"; echo $?) \
  "status $st $(head -c 600 "$TMP/down.json")"
check "the server log shows the retries" \
  $([ "$(grep -c 'S3 upload of e2e/.*retrying in' "$TMP/server.log")" = 2 ]; echo $?) "$(grep 'S3 upload' "$TMP/server.log" | tail -4)"
st=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")
check "the server keeps serving (GET /health 200)" $([ "$st" = 200 ]; echo $?) "status $st"
s3_start "$S3_PORT" || exit 0
st=$(curl -s -o "$TMP/back.json" -w '%{http_code}' -d 'prompt=a fox' -d seed=5 -d width=64 -d height=64 -d num_inference_steps=2 "$BASE/txt2img")
url=$(json "$TMP/back.json" 'j["images"][0]["image_url"]')
gst=$(curl -s -o "$TMP/back.png" -w '%{http_code}' "$url")
check "S3 back: the same request -> 200 and its URL fetches a 64x64 PNG" \
  $([ "$st" = 200 ] && [ "$gst" = 200 ] && [ "$(png_size "$TMP/back.png")" = 64x64 ]; echo $?) "status $st get $gst $(head -c 300 "$TMP/back.json")"
# (a pre-signed URL carries the access key id by design, X-Amz-Credential;
# the secret key never leaves the server)
check "no credential in the server log; no secret key in any answer" \
  $(! grep -q -e "$S3_AK" -e "sdtest/secret" -e "sdtest%2Fsecret" "$TMP/server.log" && ! cat "$TMP"/*.json | grep -q -e "sdtest/secret" -e "sdtest%2Fsecret" -e "Key=0123"; echo $?) "found a credential"
stop_server
check "clean SIGTERM exit" $STOP_STATUS "status $STOP_STATUS"
