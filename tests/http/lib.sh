# tests/http/lib.sh — shared by the shell tests of the HTTP server: starts
# the real `sdserve serve` on a free loopback port, prints "ok - " / "FAIL - "
# lines, and always stops the server (trap).  Source it from a test_*.sh.
set -u
BUILD=${SD_BUILD:-build}
SDSERVE=$BUILD/sdserve
TMP=$(mktemp -d /tmp/sdserve-test.XXXXXX)
# Under `make asan`: oneDNN's process-lifetime caches are not leaks of ours.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/http/lsan.supp}
SERVER_PID=
PORT=
BASE=

ok() { echo "ok - $1"; }
# 0 when the CPU has AVX-512 (avx512bw: oneDNN's avx512_core), so that the
# bf16 precisions load; below it they are refused (docs/SERVER.md)
cpu_bf16() { grep -qw avx512bw /proc/cpuinfo; }
fail() { echo "FAIL - $1: $2"; }
check() { # check NAME CONDITION-EXIT-STATUS DETAIL
  if [ "$2" -eq 0 ]; then ok "$1"; else fail "$1" "$3"; fi
}

# stop_pid PID TENTHS: SIGTERM, wait up to TENTHS tenths of a second, then SIGKILL.
stop_pid() {
  kill -TERM "$1" 2>/dev/null
  for _ in $(seq "$2"); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null
}

# wait_http URL PID TENTHS: 0 as soon as URL answers (any status); 1 when
# PID has exited or after TENTHS tenths of a second.
wait_http() {
  for _ in $(seq "$3"); do
    if curl -s -o /dev/null "$1"; then return 0; fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# wait_ready URL PID TENTHS: 0 as soon as URL answers 200 (GET /health: the
# model has loaded; it answers 503 "loading" before); 1 when PID has exited
# or after TENTHS tenths of a second.
wait_ready() {
  for _ in $(seq "$3"); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then stop_pid "$SERVER_PID" 50; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# A demo model shared by the shell tests (made once per build folder).
demo_model() {
  local d=$BUILD/tests/demo-model
  if [ ! -f "$d/model.safetensors" ]; then
    rm -rf "$d.tmp$$"
    "$SDSERVE" make-model --preset demo -o "$d.tmp$$" --quiet >/dev/null 2>&1 && mv "$d.tmp$$" "$d" 2>/dev/null
    rm -rf "$d.tmp$$"
  fi
  echo "$d"
}

# start_server [serve options...]: data in $TMP/data, log in $TMP/server.log.
start_server() {
  PORT=$(free_port)
  BASE=http://127.0.0.1:$PORT
  "$SDSERVE" serve --bind 127.0.0.1 --port "$PORT" --data-dir "$TMP/data" "$@" >"$TMP/server.log" 2>&1 &
  SERVER_PID=$!
  wait_ready "$BASE/health" "$SERVER_PID" 600 && return 0
  echo "FAIL - server starts: $(tail -5 "$TMP/server.log" | tr '\n' ' ')"
  return 1
}

# wait_workers N: until the server's /health lists N live workers on its
# queue (a node's own --workers announce themselves after /health answers,
# later still under a sanitizer; a job sent before that is refused 503)
wait_workers() {
  for _ in $(seq 600); do
    curl -s -o "$TMP/health-w.json" "$BASE/health"
    [ "$(json "$TMP/health-w.json" 'len(j["queue"]["live_workers"])')" = "$1" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "# wait_workers: $(head -c 300 "$TMP/health-w.json")"
  return 1
}

# stop_server: SIGTERM, wait; sets STOP_STATUS to the exit status (and to 1
# when a sanitizer reported anything in the server's log).
stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID"
  STOP_STATUS=$?
  SERVER_PID=
  if grep -qE 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$TMP/server.log"; then
    grep -E 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$TMP/server.log" | head -3 | sed 's/^/# /'
    STOP_STATUS=1
  fi
}

# json FILE EXPR: evaluates a Python expression on the parsed JSON `j`.
json() {
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null
}

# png_size FILE -> "WxH" or "not-png"
png_size() {
  python3 -c '
import struct,sys
d=open(sys.argv[1],"rb").read(24)
print("%dx%d" % struct.unpack(">II", d[16:24]) if d[:8]==b"\x89PNG\r\n\x1a\n" and d[12:16]==b"IHDR" else "not-png")' "$1"
}

# same_image A.png B.png: 0 when the bytes are equal (API.md: a batch image
# is exactly its seed alone, at every precision); else 1, printing how far
# the pixels are apart.
same_image() {
  if cmp -s "$1" "$2"; then echo "bytes equal"; return 0; fi
  python3 "$(dirname "${BASH_SOURCE[0]}")/pngdiff.py" "$1" "$2"
  return 1
}

# pixels_equal A.png B.png: 0 when every RGB sample is equal (PNG metadata
# may differ); pixel_diff A.png B.png prints "max M mean X".
pixels_equal() { python3 "$(dirname "${BASH_SOURCE[0]}")/pngdiff.py" "$1" "$2" | grep -q '^max 0 '; }
pixel_diff() { python3 "$(dirname "${BASH_SOURCE[0]}")/pngdiff.py" "$1" "$2"; }
# ---- request-field tests (test_clip_skip.sh, test_samplers.sh) ----
# gen NAME [field=value...]: POST /txt2img with the form $ARGS plus the
# fields, the image saved as $TMP/NAME.png; prints the status
gen() {
  local name=$1 body=$ARGS st url
  shift
  for kv in "$@"; do body="$body&$kv"; done
  st=$(curl -s -o "$TMP/$name.json" -w '%{http_code}' -H 'Content-Type: application/x-www-form-urlencoded' \
    --data "$body" "$BASE/txt2img")
  url=$(json "$TMP/$name.json" 'j["images"][0]["image_url"]')
  [ "$st" = 200 ] && curl -s -o "$TMP/$name.png" "$url"
  echo "$st"
}
# refused_field NAME PATH BODY FIELD FRAGMENT: a form POST answers 400 naming FIELD, message has FRAGMENT
refused_field() {
  local st
  st=$(curl -s -o "$TMP/bad.json" -w '%{http_code}' -H 'Content-Type: application/x-www-form-urlencoded' \
    --data "$3" "$BASE$2")
  check "$1: 400 naming $4" \
    $([ "$st" = 400 ] && [ "$(json "$TMP/bad.json" 'j["field"]')" = "$4" ] &&
      grep -q "$5" "$TMP/bad.json"; echo $?) "status $st $(cat "$TMP/bad.json")"
}

# post_image NAME PATH CONTENT-TYPE-HEADER BODY: POST $BASE$PATH, the answer
# in $TMP/NAME.json and its first image in $TMP/NAME.png; prints the status
post_image() {
  local st url
  st=$(curl -s -o "$TMP/$1.json" -w '%{http_code}' -H "$3" --data "$4" "$BASE$2")
  url=$(json "$TMP/$1.json" 'j["images"][0]["image_url"]')
  [ "$st" = 200 ] && curl -s -o "$TMP/$1.png" "$url"
  echo "$st"
}

# refused_field_ct NAME PATH CONTENT-TYPE-HEADER BODY FIELD FRAGMENT: a 400
# naming FIELD whose body holds FRAGMENT (grep pattern)
refused_field_ct() {
  local st
  st=$(curl -s -o "$TMP/bad.json" -w '%{http_code}' -H "$3" --data "$4" "$BASE$2")
  check "$1: 400 naming $5" \
    $([ "$st" = 400 ] && [ "$(json "$TMP/bad.json" 'j["field"]')" = "$5" ] && grep -q -- "$6" "$TMP/bad.json"; echo $?) \
    "status $st $(cat "$TMP/bad.json")"
}
