#!/usr/bin/env bash
# test_sizes.sh — output sizes per model family and per server (issue 15
# items 2 and 4) on the real server with the tiny reference models: a
# request without width/height gets the model's native size (tiny-sd1: a
# 512x512 picture, "Size: 512x512" in its parameters, width/height 512 in
# the job status; tiny-sdxl-s: 1024x1024 in the job status, validation
# only); /health names the family; --max-side / --max-pixels (flag and
# SDSERVE_* variable) refuse 1216x832 at the defaults and accept SDXL's
# 1216x832 and 1344x768 once raised (jobs accepted, queued behind a small
# holding job, then cancelled: no generation at those sizes), refusing what
# passes --max-pixels; SDXL's
# size-conditioning fields are accepted and ignored by an SD1 model (same
# pixels) and range-checked on every model.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

REF=${SD_REF:-../shared/reference}
F='Content-Type: application/x-www-form-urlencoded'
ARGS='prompt=a photograph of an astronaut riding a horse&seed=7&num_inference_steps=1'

# submit NAME BODY: POST /jobs/txt2img of 150 steps (cancelled after one,
# by job_size); prints the status, body in $TMP/NAME.json
submit() {
  curl -s -o "$TMP/$1.json" -w '%{http_code}' -H "$F" --data "${2/num_inference_steps=1/num_inference_steps=150}" \
    "$BASE/jobs/txt2img"
}
# job_size NAME: "WxH" of the job NAME's status (GET /jobs/ID), then cancels it
job_size() {
  local id
  id=$(json "$TMP/$1.json" 'j["id"]')
  curl -s -o "$TMP/$1.status" "$BASE/jobs/$id"
  curl -s -o /dev/null -X DELETE "$BASE/jobs/$id"
  json "$TMP/$1.status" '"%dx%d" % (j["width"], j["height"])'
}
# accepted_size LABEL NAME BODY WANT: the job is accepted (202) and its status shows WANT ("WxH")
accepted_size() {
  local st
  st=$(submit "$2" "$3")
  check "$1" $([ "$st" = 202 ] && [ "$(job_size "$2")" = "$4" ]; echo $?) "status $st $(cat "$TMP/$2.json")"
}
health_family() { curl -s -o "$TMP/health.json" "$BASE/health"; json "$TMP/health.json" 'j["model"]["family"]'; }
# hold_worker: an async 128x128 job of 150 steps occupies the server's one
# job worker, so the size jobs after it stay queued (their status shows the
# size; DELETE drops them at once) instead of running a first step at up to
# 1344x768 — minutes under ASan.  release_worker cancels it (it stops
# within one 128x128 step) and waits until it has.
hold_worker() {
  curl -s -o "$TMP/hold.json" -H "$F" --data 'prompt=hold&seed=1&width=128&height=128&num_inference_steps=150' \
    "$BASE/jobs/txt2img"
  HOLD_ID=$(json "$TMP/hold.json" 'j["id"]')
}
release_worker() {
  curl -s -o /dev/null -X DELETE "$BASE/jobs/$HOLD_ID"
  for _ in $(seq 600); do
    curl -s -o "$TMP/hold.json" "$BASE/jobs/$HOLD_ID"
    case $(json "$TMP/hold.json" 'j["state"]') in cancelled|succeeded|failed) return 0;; esac
    sleep 0.1
  done
}

# --- tiny-sd1: native size 512 -------------------------------------------
start_server --model "$REF/models/tiny-sd1" || exit 1
check "tiny-sd1: /health names the family sd1" $([ "$(health_family)" = sd1 ]; echo $?) "$(cat "$TMP/health.json")"
ARGS_SMALL='prompt=a photograph of an astronaut riding a horse&seed=7&width=64&height=48&num_inference_steps=2'
# The 512x512 generation takes ~2 min under ASan and checks nothing the
# sanitizers add to: the sanitized tier keeps the async size checks below.
if [ "${SD_SANITIZED:-0}" = 1 ]; then
  echo "# sanitized tier: the 512x512 generation is the normal tier's"
else
  check "no width/height answers 200" $([ "$(gen native)" = 200 ]; echo $?) "$(cat "$TMP/native.json")"
  check "no width/height: the model's native 512x512" $([ "$(png_size "$TMP/native.png")" = 512x512 ]; echo $?) \
    "$(png_size "$TMP/native.png")"
  check "its parameters say Size: 512x512, and no Model family for SD1" \
    $(grep -aq 'Size: 512x512' "$TMP/native.png" && ! grep -aq 'Model family' "$TMP/native.png"; echo $?) \
    "$(grep -ao 'Steps: [^\x00]*' "$TMP/native.png" | head -1)"
fi
hold_worker
accepted_size "async, no size: the job status shows 512x512" nojob "$ARGS" 512x512
accepted_size "async, width only: 320x512 (height native)" onlyw "$ARGS&width=320" 320x512
release_worker
refused_field "1216x832 over the default --max-side" /txt2img "$ARGS&width=1216&height=832" width \
  'at most 1024 on this server (--max-side)'
# SDXL's size conditioning on an SD1 model: accepted and ignored
ARGS=$ARGS_SMALL
check "SD1: plain 64x48 answers 200" $([ "$(gen plain)" = 200 ]; echo $?) "$(cat "$TMP/plain.json")"
check "SD1: SDXL size ids answer 200" \
  $([ "$(gen ids original_width=4096 original_height=3072 crop_top=64 crop_left=32 target_width=2048 target_height=1536)" \
       = 200 ]; echo $?) "$(cat "$TMP/ids.json")"
check "SD1: SDXL size ids are ignored (same pixels)" $(pixels_equal "$TMP/plain.png" "$TMP/ids.png"; echo $?) \
  "$(pixel_diff "$TMP/plain.png" "$TMP/ids.png")"
refused_field "crop_left 8193 refused" /txt2img "$ARGS&crop_left=8193" crop_left 'crop_left must be in \[0, 8192\]'
stop_server
ARGS='prompt=a photograph of an astronaut riding a horse&seed=7&num_inference_steps=1'

# --- raised limits: SDXL's landscape sizes ---------------------------------
SDSERVE_MAX_SIDE=1344 start_server --model "$REF/models/tiny-sd1" --max-pixels 1048576 || exit 1
check "startup summary shows --max-side 1344 from SDSERVE_MAX_SIDE" \
  $(grep -q 'max-side.*1344' "$TMP/server.log"; echo $?) "$(grep max- "$TMP/server.log")"
hold_worker
accepted_size "--max-side 1344 --max-pixels 1048576: 1216x832 accepted" land "$ARGS&width=1216&height=832" 1216x832
accepted_size "--max-side 1344 --max-pixels 1048576: 1344x768 accepted" wide "$ARGS&width=1344&height=768" 1344x768
release_worker
refused_field "1344x1024 over --max-pixels names width and the limit" /jobs/txt2img "$ARGS&width=1344&height=1024" \
  width 'at most 1048576 pixels on this server (--max-pixels)'
refused_field "1400 over --max-side 1344 names height" /txt2img "$ARGS&width=512&height=1400" height \
  'at most 1344 on this server'
stop_server

# --- tiny-sdxl-s: native size 1024 (validation only) ----------------------
start_server --model "$REF/models/tiny-sdxl-s" || exit 1
check "tiny-sdxl-s: /health names the family sdxl" $([ "$(health_family)" = sdxl ]; echo $?) "$(cat "$TMP/health.json")"
hold_worker
accepted_size "SDXL, no size: the job status shows 1024x1024" xl \
  "$ARGS&original_width=2048&original_height=2048&crop_top=0&crop_left=0" 1024x1024
release_worker
refused_field "SDXL: original_height -1 refused" /jobs/txt2img "$ARGS&original_height=-1" original_height \
  'original_height must be in \[0, 8192\]'
refused_field "SDXL: 1216x832 over the default --max-side" /jobs/txt2img "$ARGS&width=1216&height=832" width \
  'at most 1024'
stop_server

# --- tiny-sdxl-s under a lower --max-side: the start-up note, and a request
# without a size is refused with a message saying where its size came from
start_server --model "$REF/models/tiny-sdxl-s" --max-side 768 || exit 1
check "SDXL under --max-side 768: the log notes the native 1024x1024 is over the limit" \
  $(grep -q 'native size 1024x1024 is over --max-side 768' "$TMP/server.log"; echo $?) "$(grep -i note "$TMP/server.log")"
refused_field "SDXL under --max-side 768: no size refused, naming the native size" /jobs/txt2img "$ARGS" width \
  "at most 768 on this server (--max-side), got 1024x1024 (a request without a size gets the model's native size)"
stop_server
