#!/usr/bin/env bash
# test_faults.sh — storage faults and abrupt stops on the real `sdserve
# serve` with the demo model:
#  1. disk full for real: the server runs under a file-size limit (ulimit -f,
#     RLIMIT_FSIZE: the kernel fails the write with EFBIG); the client gets a
#     500 JSON error naming the storage, no file is left, the server keeps
#     serving, and the same request succeeds once the limit is lifted;
#  2. read-only folder (EROFS), disk filling up mid-file (ENOSPC after 512
#     bytes) and a failing fsync (EIO), injected by tests/http/fault_shim.c
#     (LD_PRELOAD; needs neither root nor mount), for synchronous and async
#     jobs, then the fault switched off: same checks;
#  3. leftover temp files at start: stale ones removed, fresh ones kept but
#     never served;
#  4. SIGTERM with a synchronous job running and one queued: both clients get
#     503 + Retry-After saying the job was cancelled, exit status 0;
#  5. kill -9 at random moments while jobs generate and write (writes slowed
#     by the shim so kills land inside them), restart on the same folder:
#     every image file is complete (decodes; its name is the SHA-256 of its
#     bytes) and served intact, temp files are never served.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

MODEL=$(demo_model)
FORM='Content-Type: application/x-www-form-urlencoded'
IMGINFO=$BUILD/tools/imginfo
[ -x "$IMGINFO" ] || { echo "FAIL - tools built: $IMGINFO missing (make tools)"; exit 1; }

post() { # post PATH OUT DATA -> status; headers in OUT.h
  curl -s -o "$2" -D "$2.h" -w '%{http_code}' -H "$FORM" --data "$3" "$BASE$1"
}
# files in the image folder other than complete images named <sha256/32>.<ext>
stray_files() { ls -A "$TMP/data/images" 2>/dev/null | grep -Ev '^[0-9a-f]{32}\.(png|jpg|webp)$'; }
# image_ok URL: the served bytes decode fully and their SHA-256 starts with the name
image_ok() {
  local name=${1##*/}
  curl -s -o "$TMP/got.img" "$1" || return 1
  [ "$(sha256sum "$TMP/got.img" | cut -c1-32)" = "${name%%.*}" ] && "$IMGINFO" "$TMP/got.img" >/dev/null 2>&1
}
# json3 FILE EXPR ARG: like json, with ARG as sys.argv[3]
json3() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@" 2>/dev/null; }
# storage_error FILE STATUS ERRNO-TEXT: a 500 JSON error on field "storage" whose message names the errno
storage_error() {
  [ "$2" = 500 ] && [ "$(json3 "$1" 'j["status"]=="error" and j["code"]=="io_error" and j["field"]=="storage" and sys.argv[3] in j["message"]' "$3")" = True ]
}

# ---- 1. disk full: RLIMIT_FSIZE ---------------------------------------------
# The wrapper starts the log writer before lowering the limit, so only the
# server's own file writes are limited (4 KiB: a 64x64 noise PNG is ~12 KiB,
# an 8x8 one ~1 KiB).
cat >"$TMP/fsize.sh" <<EOF
#!/usr/bin/env bash
exec > >(exec cat) 2>&1
ulimit -S -f 4
exec "$PWD/$SDSERVE" "\$@"
EOF
chmod +x "$TMP/fsize.sh"
REAL_SDSERVE=$SDSERVE
SDSERVE=$TMP/fsize.sh start_server --model "$MODEL" --access-log 0 || exit 1
big='prompt=full disk&seed=5&width=64&height=64&num_inference_steps=2'
st=$(post /txt2img "$TMP/f1.json" "$big")
storage_error "$TMP/f1.json" "$st" "File too large"
check "disk full (EFBIG): 500 JSON error naming the storage and the cause" $? "status $st $(head -c 300 "$TMP/f1.json")"
check "disk full: no file left in the image folder" $([ -z "$(ls -A "$TMP/data/images")" ]; echo $?) "$(ls -A "$TMP/data/images")"
st=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")
check "disk full: server alive and healthy" $([ "$st" = 200 ]; echo $?) "health $st"
st=$(post /txt2img "$TMP/f2.json" 'prompt=small&seed=5&width=8&height=8&num_inference_steps=2')
check "disk full: an image that fits is still stored and served" $([ "$st" = 200 ] && image_ok "$(json "$TMP/f2.json" 'j["images"][0]["image_url"]')"; echo $?) "status $st $(head -c 300 "$TMP/f2.json")"
prlimit --pid "$SERVER_PID" --fsize=unlimited
st=$(post /txt2img "$TMP/f3.json" "$big")
check "space back: the same request succeeds, its image complete" $([ "$st" = 200 ] && image_ok "$(json "$TMP/f3.json" 'j["images"][0]["image_url"]')"; echo $?) "status $st $(head -c 300 "$TMP/f3.json")"
stop_server
check "disk full: clean exit on SIGTERM" $STOP_STATUS "status $STOP_STATUS"
SDSERVE=$REAL_SDSERVE
rm -rf "$TMP/data"

# ---- 2. EROFS / ENOSPC / EIO through the shim --------------------------------
cc -shared -fPIC -O1 -o "$TMP/fault_shim.so" tests/http/fault_shim.c
check "fault shim builds" $? "cc failed"
CTL=$TMP/fault
# Under ASan the runtime wants to be first in the preload list; the shim is harmless after it.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
LD_PRELOAD=$TMP/fault_shim.so SDFAULT_CTL=$CTL start_server --model "$MODEL" --access-log 0 || exit 1
n=0
for f in "erofs:Read-only file system" "enospc:No space left on device" "eio-fsync:Input/output error"; do
  mode=${f%%:*} text=${f#*:}
  echo "$mode" >"$CTL"
  st=$(post /txt2img "$TMP/$mode.json" "prompt=$mode&seed=7&width=32&height=32&num_inference_steps=2&num_outputs=2")
  storage_error "$TMP/$mode.json" "$st" "$text"
  check "$mode: synchronous request gets a 500 JSON error naming the storage ($text)" $? "status $st $(head -c 300 "$TMP/$mode.json")"
  st=$(post /jobs/txt2img "$TMP/$mode.a.json" "prompt=$mode async&seed=7&width=32&height=32&num_inference_steps=2")
  url=$(json "$TMP/$mode.a.json" 'j["status_url"]')
  for _ in $(seq 100); do curl -s -o "$TMP/$mode.s.json" "$url"; [ "$(json "$TMP/$mode.s.json" 'j["state"]')" = failed ] && break; sleep 0.1; done
  check "$mode: async job reported failed with the storage error" $([ "$(json3 "$TMP/$mode.s.json" 'j["state"]=="failed" and j["field"]=="storage" and sys.argv[3] in j["message"]' "$text")" = True ]; echo $?) "$(head -c 400 "$TMP/$mode.s.json")"
  check "$mode: no partial or temporary file left" $([ -z "$(ls -A "$TMP/data/images")" ]; echo $?) "$(ls -A "$TMP/data/images")"
  st=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")
  check "$mode: server still healthy" $([ "$st" = 200 ]; echo $?) "health $st"
  n=$((n + 2))
done
rm -f "$CTL"
st=$(post /txt2img "$TMP/ok.json" 'prompt=erofs&seed=7&width=32&height=32&num_inference_steps=2&num_outputs=2')
good=0
for i in 0 1; do image_ok "$(json "$TMP/ok.json" "j['images'][$i]['image_url']")" || good=1; done
check "fault cleared: the same request succeeds, both images complete" $([ "$st" = 200 ] && [ $good = 0 ]; echo $?) "status $st $(head -c 300 "$TMP/ok.json")"
check "each storage failure is in the server's log with its cause" $([ "$(grep -cE 'job [0-9a-f]{32} failed: .*(Read-only file system|No space left on device|Input/output error)' "$TMP/server.log")" = "$n" ]; echo $?) "$(grep failed "$TMP/server.log" | head -3)"
curl -s -o "$TMP/m.txt" "$BASE/metrics"
check "metrics: $n failed jobs, 0 lost" $(grep -q "^sdserve_jobs_total{outcome=\"failed\"} $n\$" "$TMP/m.txt"; echo $?) "$(grep jobs_total "$TMP/m.txt")"

# ---- 3. leftover temp files at start -------------------------------------------
stop_server
check "faults: clean exit on SIGTERM" $STOP_STATUS "status $STOP_STATUS"
old=.tmp-deadbeef-999991-1 new=.tmp-cafebabe-999992-1
head -c 700 /dev/urandom >"$TMP/data/images/$old"
head -c 700 /dev/urandom >"$TMP/data/images/$new"
touch -d '2 hours ago' "$TMP/data/images/$old"
start_server --model "$MODEL" --access-log 0 || exit 1
check "start: a temp file older than an hour is removed" $([ ! -e "$TMP/data/images/$old" ]; echo $?) "still there"
check "start: a recent temp file (maybe another process's) is kept" $([ -e "$TMP/data/images/$new" ]; echo $?) "removed"
bad=""
for p in "$new" "%2Etmp-cafebabe-999992-1" cafebabe; do
  st=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/images/$p")
  [ "$st" = 404 ] || bad="$bad $p:$st"
done
check "temp files are never served (404)" $([ -z "$bad" ]; echo $?) "$bad"

# ---- 4. SIGTERM with a synchronous job running and one queued -------------------
long='prompt=long&width=256&height=256&num_inference_steps=150'
curl -s -o "$TMP/t1.json" -D "$TMP/t1.h" -w '%{http_code}' -H "$FORM" --data "$long&seed=1" "$BASE/txt2img" >"$TMP/t1.code" &
c1=$!
for _ in $(seq 100); do
  curl -s -o "$TMP/h.json" "$BASE/health"; [ "$(json "$TMP/h.json" 'j["running"]')" = 1 ] && break; sleep 0.1
done
curl -s -o "$TMP/t2.json" -D "$TMP/t2.h" -w '%{http_code}' -H "$FORM" --data "$long&seed=2" "$BASE/txt2img" >"$TMP/t2.code" &
c2=$!
for _ in $(seq 100); do
  curl -s -o "$TMP/h.json" "$BASE/health"; [ "$(json "$TMP/h.json" 'j["queue_depth"]')" = 1 ] && break; sleep 0.1
done
# and one queued in A1111's dialect (its answer went through the first-error-wins sd_err: 409)
curl -s -o "$TMP/t3.json" -D "$TMP/t3.h" -w '%{http_code}' -H 'Content-Type: application/json' \
  -d '{"prompt":"long","width":256,"height":256,"steps":150,"seed":3}' "$BASE/sdapi/v1/txt2img" >"$TMP/t3.code" &
c3=$!
for _ in $(seq 100); do
  curl -s -o "$TMP/h.json" "$BASE/health"; [ "$(json "$TMP/h.json" 'j["queue_depth"]')" = 2 ] && break; sleep 0.1
done
stop_server
wait $c1 $c2 $c3
st=$(cat "$TMP/t3.code")
check "SIGTERM: a queued A1111 client gets 503 + Retry-After in its dialect's shape, naming the shutdown" \
  $([ "$st" = 503 ] && grep -qi '^Retry-After: [1-9]' "$TMP/t3.h" && [ "$(json "$TMP/t3.json" '"shutting down" in j["detail"]')" = True ]; echo $?) \
  "status $st $(head -c 300 "$TMP/t3.json")"
for i in 1 2; do
  st=$(cat "$TMP/t$i.code")
  check "SIGTERM: waiting client $i ($([ $i = 1 ] && echo running || echo queued)) gets 503 + Retry-After, job reported cancelled" \
    $([ "$st" = 503 ] && grep -qi '^Retry-After: [1-9]' "$TMP/t$i.h" && [ "$(json "$TMP/t$i.json" 'j["code"]=="busy" and "cancelled" in j["message"] and "shutting down" in j["message"]')" = True ]; echo $?) \
    "status $st $(head -c 300 "$TMP/t$i.json")"
done
check "SIGTERM during jobs: exit status 0" $STOP_STATUS "status $STOP_STATUS"
check "SIGTERM: no partial file (only complete images and the kept temp file)" $([ "$(stray_files)" = "$new" ]; echo $?) "$(stray_files)"
rm -f "$TMP/data/images/$new"

# ---- 5. kill -9 during generation and writes, then restart ----------------------
# Each round: start (writes slowed by the shim), queue 3 jobs of 4 images,
# kill -9 at a random moment (odd rounds: 0.2-2.0 s after queueing, while
# generating or writing; even rounds: 0-0.4 s after the first write began),
# then check every file in the folder.
echo slow >"$CTL"
ROUNDS=${SD_KILL_ROUNDS:-8}
partial=0 images=0 bad=""
RANDOM=4242
for r in $(seq "$ROUNDS"); do
  LD_PRELOAD=$TMP/fault_shim.so SDFAULT_CTL=$CTL start_server --model "$MODEL" --access-log 0 || exit 1
  for k in 1 2 3; do
    post /jobs/txt2img "$TMP/k.json" "prompt=round $r job $k&seed=$((r * 10 + k))&width=64&height=64&num_inference_steps=2&num_outputs=4" >/dev/null
  done
  pid=$SERVER_PID
  if [ $((r % 2)) = 0 ]; then
    # even rounds: a random moment once the first image write has begun
    for _ in $(seq 100); do ls -A "$TMP/data/images" | grep -q -- "-$pid-" && break; sleep 0.1; done
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.4 * r / 32767 }')"
  else
    # odd rounds: a random moment after the jobs were queued (generating or writing)
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.2 + 1.8 * r / 32767 }')"
  fi
  kill -KILL "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=
  t=$(ls -A "$TMP/data/images" | grep '^\.tmp-' | grep -c -- "-$pid-")
  [ "$t" -gt 0 ] && partial=$((partial + 1))
  for f in "$TMP"/data/images/*; do
    [ -e "$f" ] || continue
    name=${f##*/}
    [ "$(sha256sum "$f" | cut -c1-32)" = "${name%%.*}" ] && "$IMGINFO" "$f" >/dev/null 2>&1 || bad="$bad $name"
  done
done
rm -f "$CTL"
start_server --model "$MODEL" --access-log 0 || exit 1
served=0
for f in "$TMP"/data/images/*; do
  [ -e "$f" ] || continue
  name=${f##*/}
  if image_ok "$BASE/images/${name%%.*}" && cmp -s "$TMP/got.img" "$f"; then served=$((served + 1)); else bad="$bad served:$name"; fi
done
tbad=""
for f in "$TMP"/data/images/.tmp-*; do
  [ -e "$f" ] || continue
  st=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/images/${f##*/}")
  [ "$st" = 404 ] || tbad="$tbad ${f##*/}:$st"
done
ntmp=$(ls -A "$TMP/data/images" | grep -c '^\.tmp-')
echo "# kill -9: $ROUNDS kills, $partial left a half-written temp file ($ntmp in all), $served complete images"
check "kill -9 x$ROUNDS: every image file is complete (decodes, name = SHA-256 of its bytes)" $([ -z "$bad" ]; echo $?) "$bad"
check "kill -9: kills landed in the middle of writes (half-written temp files left)" $([ "$partial" -ge 1 ]; echo $?) "$partial rounds with temp files, $served images"
check "after restart: every image served intact, no temp file served" $([ -z "$tbad" ]; echo $?) "$tbad"
st=$(post /txt2img "$TMP/after.json" 'prompt=after&seed=3&width=32&height=32&num_inference_steps=2')
check "after restart: generates and stores again" $([ "$st" = 200 ] && image_ok "$(json "$TMP/after.json" 'j["images"][0]["image_url"]')"; echo $?) "status $st"
stop_server
check "clean exit on SIGTERM" $STOP_STATUS "status $STOP_STATUS"
