#!/usr/bin/env bash
# test_valgrind.sh — the real `sdserve serve` under valgrind memcheck (leak
# check full): the demo model made on first start, txt2img as a form and as
# JSON, img2img with a base64 init image, bad
# requests, an async job that succeeds and one cancelled with DELETE while
# running, then SIGTERM during a running job.  Valgrind must report zero
# errors (invalid reads/writes, uninitialised values, bad frees) and no
# definitely lost block.  Tiny sizes and steps: valgrind runs ~50x slower.
#
# valgrind 3.19 has no AVX-512, so this runs a separate build without
# -march=native: VG_BUILD (default build-vg, made by `make vg`, which `make
# test` does), with oneDNN held to AVX2 (ONEDNN_MAX_CPU_ISA; the log's oneDNN
# ISA line is checked) and to one OpenMP thread (OMP_NUM_THREADS=1; valgrind
# runs one thread at a time anyway).  With an OpenMP team of 2, valgrind loses
# track of the stack of oneDNN's JIT kernels in the OpenMP worker thread
# ("client switching stacks?", then uninitialised values and leaks reported
# in libgomp/libdnnl/JIT frames only); the sanitizer tier of `make test` runs
# the same server tests with the full team.  No suppressions.  Figures go to
# stdout as "# " lines.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

if [ "${SD_SANITIZED:-0}" = 1 ]; then
  # the sanitizer tier of tests/run.sh: this test checks build-vg, not the
  # sanitized build, and has already run in the normal tier
  echo "# skipped in the sanitizer tier (runs build-vg/sdserve in the normal tier)"
  exit 0
fi
VG_BUILD=${VG_BUILD:-build-vg}
if ! command -v valgrind >/dev/null; then fail "valgrind installed" "not found (scripts/setup.sh installs it)"; exit 1; fi
if [ ! -x "$VG_BUILD/sdserve" ]; then fail "$VG_BUILD/sdserve built" "missing (make vg)"; exit 1; fi

VGLOG=$TMP/valgrind.log
cat >"$TMP/vgserve" <<EOF
#!/bin/sh
export ONEDNN_MAX_CPU_ISA=AVX2 ONEDNN_VERBOSE=1 OMP_NUM_THREADS=1
exec valgrind --error-exitcode=97 --leak-check=full --show-leak-kinds=definite \\
  --errors-for-leak-kinds=definite --num-callers=24 --track-origins=no \\
  --log-file="$VGLOG" ${VG_EXTRA:-} \\
  "$PWD/$VG_BUILD/sdserve" "\$@"
EOF
chmod +x "$TMP/vgserve"
SDSERVE=$TMP/vgserve
t0=$(date +%s)
start_server --sync-wait 600 --threads 1 || { sed 's/^/# /' "$VGLOG" | tail -20; exit 1; }
check "server up under valgrind, demo model made on first start" \
  $(grep -q "DEMO model" "$TMP/server.log"; echo $?) "$(tail -5 "$TMP/server.log")"
t_up=$(($(date +%s) - t0))
FORM='Content-Type: application/x-www-form-urlencoded;charset=utf-8'
post() { # post PATH OUTFILE curl-args... -> prints HTTP status
  local path=$1 out=$2; shift 2
  curl -s -o "$out" -w '%{http_code}' "$@" "$BASE$path"
}
fetch_png() { # fetch_png JSON OUT.png -> prints WxH
  curl -s -o "$2" "$(json "$1" 'j["images"][0]["image_url"]')"; png_size "$2"
}

st=$(post /txt2img "$TMP/f.json" -H "$FORM" --data 'prompt=a red fox&seed=7&width=32&height=32&num_inference_steps=2&guidance_scale=7')
sz=$(fetch_png "$TMP/f.json" "$TMP/f.png")
check "form txt2img -> 200, 32x32 PNG" $([ "$st" = 200 ] && [ "$sz" = 32x32 ]; echo $?) "status $st size $sz $(head -c 200 "$TMP/f.json")"
st=$(post /txt2img "$TMP/j.json" -H 'Content-Type: application/json' --data '{"prompt":"a red fox","seed":8,"width":32,"height":32,"num_inference_steps":2,"sampler":"ddim"}')
check "JSON txt2img -> 200" $([ "$st" = 200 ] && [ "$(fetch_png "$TMP/j.json" "$TMP/j.png")" = 32x32 ]; echo $?) "status $st $(head -c 200 "$TMP/j.json")"
b64=$(base64 -w0 "$TMP/f.png")
python3 -c 'import json,sys; print(json.dumps({"prompt":"a fox at night","seed":3,"num_inference_steps":2,"strength":0.6,"init_image":"data:image/png;base64,"+sys.argv[1]}))' "$b64" >"$TMP/i.req"
st=$(post /img2img "$TMP/i.json" -H 'Content-Type: application/json' --data-binary @"$TMP/i.req")
check "img2img, JSON with a base64 init image -> 200 at the init size" \
  $([ "$st" = 200 ] && [ "$(fetch_png "$TMP/i.json" "$TMP/i.png")" = 32x32 ]; echo $?) "status $st $(head -c 200 "$TMP/i.json")"

# bad requests: each answered with its status and a JSON error
head -c 200 "$TMP/f.png" >"$TMP/trunc.png"
bad() { # bad NAME WANT-STATUS curl-args...
  local name=$1 want=$2; shift 2
  local st; st=$(curl -s -o "$TMP/bad.json" -w '%{http_code}' "$@")
  check "bad request: $name -> $want" $([ "$st" = "$want" ] && [ "$(json "$TMP/bad.json" 'j["status"]=="error" and len(j["message"])>0')" = True ]; echo $?) "status $st $(head -c 200 "$TMP/bad.json")"
}
bad "missing prompt" 400 -H "$FORM" --data 'width=32' "$BASE/txt2img"
bad "width 1025" 400 -H "$FORM" --data 'prompt=x&width=1025' "$BASE/txt2img"
bad "broken JSON" 400 -H 'Content-Type: application/json' --data '{"prompt": "x",' "$BASE/txt2img"
bad "invalid UTF-8" 400 -H "$FORM" --data-binary $'prompt=\xff\xfe' "$BASE/txt2img"
bad "truncated init image" 400 -F prompt=x -F "init_image=@$TMP/trunc.png;type=image/png" "$BASE/img2img"
bad "unknown Content-Type" 415 -H 'Content-Type: text/plain' --data 'prompt=x' "$BASE/txt2img"
bad "GET /txt2img" 405 "$BASE/txt2img"
bad "unknown job" 404 "$BASE/jobs/0123456789abcdef0123456789abcdef"

# async: one job to success, one cancelled while running
st=$(post /jobs/txt2img "$TMP/a.json" -H "$FORM" --data 'prompt=async&seed=5&width=32&height=32&num_inference_steps=1')
surl=$(json "$TMP/a.json" 'j["status_url"]')
state=
for _ in $(seq 600); do
  curl -s -o "$TMP/s.json" "$surl"; state=$(json "$TMP/s.json" 'j["state"]')
  case $state in succeeded|failed|cancelled) break;; esac; sleep 0.2
done
check "async job -> 202, then succeeded with an image" \
  $([ "$st" = 202 ] && [ "$state" = succeeded ] && [ "$(fetch_png "$TMP/s.json" "$TMP/s.png")" = 32x32 ]; echo $?) "status $st $(head -c 300 "$TMP/s.json")"
long() { # long OUT.json: a long async job; waits until it has run a step, prints its status URL
  post /jobs/txt2img "$1" -H "$FORM" --data 'prompt=long&width=32&height=32&num_inference_steps=150' >/dev/null
  local u; u=$(json "$1" 'j["status_url"]')
  for _ in $(seq 600); do curl -s -o "$TMP/ls.json" "$u"; [ "$(json "$TMP/ls.json" 'j["step"]>0')" = True ] && break; sleep 0.2; done
  echo "$u"
}
lurl=$(long "$TMP/l.json")
st=$(curl -s -X DELETE -o /dev/null -w '%{http_code}' "$lurl")
for _ in $(seq 600); do curl -s -o "$TMP/ls.json" "$lurl"; [ "$(json "$TMP/ls.json" 'j["state"]')" = cancelled ] && break; sleep 0.2; done
check "DELETE of a running job -> cancelled between steps" \
  $([ "$(json "$TMP/ls.json" 'j["state"]=="cancelled" and 0 < j["step"] < 150')" = True ]; echo $?) "DELETE $st $(cat "$TMP/ls.json")"

# SIGTERM with a job running
long "$TMP/l2.json" >/dev/null
stop_server
t_all=$(($(date +%s) - t0))
isa=$(grep -m1 -o 'cpu,isa:[^,]*' "$TMP/server.log")
check "SIGTERM during a job: clean exit, status 0 (valgrind's error status is 97)" $STOP_STATUS "status $STOP_STATUS; $(tail -3 "$TMP/server.log" | tr '\n' ' ')"
check "oneDNN held to AVX2 under valgrind" $([ "$isa" = "cpu,isa:Intel AVX2" ]; echo $?) "log says '$isa'"

errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$VGLOG" | tr -d , | tail -1)
defl=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$VGLOG" | tr -d , | tail -1)
check "valgrind: 0 errors (invalid reads/writes, uninitialised values, frees)" \
  $([ "$errors" = 0 ]; echo $?) "ERROR SUMMARY '$errors'; $(grep -m3 -A6 -E 'Invalid|uninitialised|Mismatched|free' "$VGLOG" | head -30 | tr '\n' '|')"
check "valgrind: no definitely lost block" $([ "${defl:-0}" = 0 ]; echo $?) "$(grep -m1 -A12 'definitely lost in loss record' "$VGLOG" | tr '\n' '|')"
echo "# valgrind figures: $(grep -E 'ERROR SUMMARY|definitely lost:|indirectly lost:|possibly lost:|still reachable:|suppressed:|total heap usage' "$VGLOG" | sed 's/^==[0-9]*== *//' | tr -s ' ' | tr '\n' ';')"
echo "# valgrind: server up in ${t_up} s, whole exchange ${t_all} s (log $VGLOG while the test runs)"
