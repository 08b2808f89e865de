#!/usr/bin/env bash
# bench/models_rss.sh — several models (docs/SERVER.md "Several models"):
# two SD 1.5-shaped single files (`make-model --preset sd15 --dtype f16`,
# seeds 1 and 2, ~2.1 GB each) in one --model-dir, served with
# --max-loaded 1 and then 2; requests alternate between them (64x64, one
# step, euler), after a baseline run that sends every request to the
# default model.  Prints per request its time and the server's RSS after
# it, then per setting the peak RSS (VmHWM) and the median of 3 of the
# requests that switch model (with --max-loaded 1 every one: unload + load
# + generate; the last 3, with the files in the page cache) beside the
# median of 3 that do not (--max-loaded 2, both resident).  Benchmark tier, not in `make test`; the files are deleted at
# the end unless KEEP=1.  Results: bench/README.md "Model switching".
#   bench/models_rss.sh [FOLDER]    (default ${SD_BUILD:-build}/bench-models)
set -u
cd "$(dirname "$0")/.."
BUILD=${SD_BUILD:-build}
DIR=${1:-$BUILD/bench-models}
mkdir -p "$DIR/models"
for s in 1 2; do
  f=$DIR/models/sd15-seed$s.safetensors
  [ -f "$f" ] && continue
  t0=$(date +%s.%N)
  "$BUILD/sdserve" make-model --preset sd15 --dtype f16 --seed $s -o "$f" --quiet || exit 1
  echo "# make-model --preset sd15 --seed $s: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
done
ls -l "$DIR/models" | sed 's/^/# /'

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

run() { # run MAX_LOADED [MODELS...]: prints the per-request lines and the summary line
  local ml=$1 port pid base i m t rss switch=() same=() seq
  shift
  seq=${*:-sd15-seed2 sd15-seed1 sd15-seed2 sd15-seed1 sd15-seed2 sd15-seed1 sd15-seed2}
  port=$(free_port)
  base=http://127.0.0.1:$port
  "$BUILD/sdserve" serve --bind 127.0.0.1 --port "$port" --data-dir "$DIR/data" --model-dir "$DIR/models" \
    --max-loaded "$ml" --access-log 0 >"$DIR/server-$ml.log" 2>&1 &
  pid=$!
  for _ in $(seq 1200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/health")" = 200 ] && break
    kill -0 "$pid" 2>/dev/null || { echo "server exited: $(tail -3 "$DIR/server-$ml.log")"; return 1; }
    sleep 0.5
  done
  echo "# --max-loaded $ml: ready with sd15-seed1, RSS $(( $(kib "$pid" VmRSS) / 1024 )) MiB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  i=0
  for m in $seq; do
    i=$((i + 1))
    t=$(curl -s -o "$DIR/r.json" -w '%{time_total}' -d "prompt=a fox&width=64&height=64&num_inference_steps=1&sampler=euler&seed=$i&model=$m" "$base/txt2img")
    grep -q '"success"' "$DIR/r.json" || echo "# request $i failed: $(head -c 300 "$DIR/r.json")"
    rss=$(( $(kib "$pid" VmRSS) / 1024 ))
    echo "--max-loaded $ml request $i model=$m: $t s, RSS after $rss MiB, loaded $(curl -s "$base/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["models_loaded"])')"
    # alternating with 1: every request switches; with 2 only the first
    # loads (seed2), the rest are hits; one model only: all hits
    if [ "$ml" = 1 ] && [ -z "$*" ]; then switch+=("$t"); elif [ $i -gt 1 ]; then same+=("$t"); fi
  done
  local hwm=$(( $(kib "$pid" VmHWM) / 1024 ))
  kill -TERM "$pid"; wait "$pid"
  if [ ${#switch[@]} -gt 0 ]; then
    # the last three: the files are in the page cache by then (the first switches read them from disk)
    echo "SUMMARY --max-loaded 1, alternating: peak RSS $hwm MiB; request that switches model (median of the last 3): $(median3 "${switch[@]:4:3}") s"
  else
    echo "SUMMARY --max-loaded $ml${*:+, only $*}: peak RSS $hwm MiB; request on a resident model (median of 3): $(median3 "${same[@]:0:3}") s"
  fi
}

echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; sdserve $("$BUILD/sdserve" --version 2>/dev/null | head -1)"
run 1 sd15-seed1 sd15-seed1 sd15-seed1 sd15-seed1   # one model, no switch: the baseline peak
run 1
run 2
[ "${KEEP:-0}" = 1 ] || rm -rf "$DIR/models" "$DIR/data"
