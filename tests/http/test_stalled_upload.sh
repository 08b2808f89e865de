#!/usr/bin/env bash
# test_stalled_upload.sh — the stalled-upload attack against the global cap on
# buffered request bodies (--max-buffered-mb): 30 connections each send all
# but the last KiB of a 16 MiB body and stall (tests/http/stalled_upload.py),
# once as form bodies, once as multipart; the server runs with a 64 MiB cap.
# Checks, each time: the server's RSS grows by less than twice the cap plus
# 32 MiB (connection buffers, allocator slack; without the cap the same run
# grew by ~500 MiB); GET /health answers 200 meanwhile; /metrics' gauge of
# buffered body bytes stays within the cap; one more upload declaring one
# byte more than the cap leaves (the gauge, once settled) gets 503 +
# Retry-After in the error shape at once, before sending its body (sized
# from the gauge: how many stalled uploads survive the race to the cap, and
# how much of theirs the server has read, vary with the machine's load);
# once the stalled connections close, their bytes are released (the gauge
# back to 0, and a 16 MiB body then gets its 400, not 503).
# Normal tier only: RSS means nothing under ASan (SD_SANITIZED=1 skips it).
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

if [ "${SD_SANITIZED:-0}" = 1 ]; then
  echo "# sanitizer tier: skipped (ASan's allocator makes RSS meaningless)"
  exit 0
fi
CAP=64
start_server --model "$(demo_model)" --access-log 0 --max-buffered-mb "$CAP" --max-body-mb 20 || exit 1
for kind in form multipart; do
  python3 tests/http/stalled_upload.py "$PORT" "$SERVER_PID" 30 16 "$kind" >"$TMP/$kind.txt"
  v() { awk -v k="$1" '$1 == k {$1 = ""; sub(/^ /, ""); print}' "$TMP/$kind.txt"; }
  b=$(v rss_before); a=$(v rss_stalled)
  grow=$(( (a - b) / 1024 ))
  bound=$(( 2 * CAP + 32 ))
  echo "# $kind: 30 stalled 16 MiB uploads, cap $CAP MiB: RSS $((b / 1024)) -> $((a / 1024)) MiB (+$grow MiB, bound $bound)"
  check "$kind: RSS growth under 2 x cap + 32 MiB while 30 uploads stall" $([ -n "$b" ] && [ -n "$a" ] && [ "$grow" -lt "$bound" ]; echo $?) "+$grow MiB"
  check "$kind: /health 200 while they stall" $([ "$(v health_during)" = 200 ]; echo $?) "$(v health_during)"
  set -- $(v buffered); held=${1:--1}; limit=${2:--1}
  echo "# $kind: buffered body bytes $held of $limit once settled"
  check "$kind: /metrics' buffered gauge within the cap, the cap as set" $([ "$held" -gt 0 ] && [ "$held" -le "$limit" ] && [ "$limit" = $((CAP << 20)) ]; echo $?) "$held of $limit"
  check "$kind: an upload declaring one byte more than the cap leaves gets 503 + Retry-After before its body" $([ "$(v newcomer)" = "503 5 null" ]; echo $?) "got $(v newcomer)"
  check "$kind: bytes released when the stalled connections close (400, not 503; gauge 0)" $([ "$(v after)" = 400 ] && [ "$(v released)" = 0 ]; echo $?) "got $(v after), gauge $(v released)"
done
check "server healthy" $([ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ]; echo $?) "health not 200"
stop_server
check "clean exit on SIGTERM" $STOP_STATUS "status $STOP_STATUS"
