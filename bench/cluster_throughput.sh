#!/usr/bin/env bash
# bench/cluster_throughput.sh — the Redis queue's throughput and cost (issue
# 17, bench/README.md "Cluster throughput"): the same batch of small async
# jobs (JOBS, WxH, STEPS, all submitted at once, timed until the last one has
# ended: tests/http/cluster_load.py batch) through
#   1w   one API node (--workers 0) + 1 `sdserve worker` --threads 1
#   2w   the same + a 2nd worker (--threads 1 each)
#   ip   `sdserve serve` with the in-process queue at --threads 2
# ROUNDS runs each (after one warm-up batch), medians and the ratios; then the
# cost of the queue per job: LAT sequential synchronous 1-step 32x32 jobs,
# median ms through Redis (API node + 1 worker, --threads 1) vs in-process
# (--threads 1), and Redis's own CPU per job from INFO commandstats.
# Also printed: the CPU time our sdserve processes spent per job and the load
# average (the machine is shared: other processes' load shows in the times).
# Local storage declared shared (--shared-data-dir 1): the bench is the
# queue's, not S3's.  Run at normal priority on a quiet machine.
#
# Usage: [SD_BUILD=build] [JOBS=40] [SIZE=128] [STEPS=4] [ROUNDS=3] [LAT=30]
#        bench/cluster_throughput.sh
set -u
cd "$(dirname "$0")/.."
. tests/http/lib.sh
JOBS=${JOBS:-40}; SIZE=${SIZE:-128}; STEPS=${STEPS:-4}; ROUNDS=${ROUNDS:-3}; LAT=${LAT:-30}
MODEL=$(demo_model)
RPORT=$(free_port)
PIDS=()
bench_cleanup() {
  for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && stop_pid "$p" 50; done
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1
  cleanup
}
trap bench_cleanup EXIT
LOAD=tests/http/cluster_load.py
R() { redis-cli -p "$RPORT" "$@"; }

redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly yes --dir "$TMP" >"$TMP/redis.log" 2>&1 &
for _ in $(seq 50); do R ping >/dev/null 2>&1 && break; sleep 0.1; done
Q=(--queue "redis://127.0.0.1:$RPORT/0" --shared-data-dir 1 --data-dir "$TMP/data" --model "$MODEL" --access-log 0)

# serve NAME PORT ARGS...: starts `sdserve serve`, waits until it is ready
serve() {
  local name=$1 port=$2; shift 2
  "$SDSERVE" serve --bind 127.0.0.1 --port "$port" --queue-size 256 "$@" >"$TMP/$name.log" 2>&1 &
  PIDS+=($!)
  wait_ready "http://127.0.0.1:$port/health" "$!" 600 || { echo "$name did not start"; tail "$TMP/$name.log"; exit 1; }
}
# worker NAME: starts `sdserve worker --threads 1`, waits for its "ready"
worker() {
  "$SDSERVE" worker "${Q[@]}" --threads 1 --public-url "$BASE" >"$TMP/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 600); do grep -q '^ready' "$TMP/$1.log" 2>/dev/null && return 0; sleep 0.1; done
  echo "$1 did not start"; exit 1
}
stop_all() { for p in "${PIDS[@]}"; do stop_pid "$p" 100; wait "$p" 2>/dev/null; done; PIDS=(); }
# cpu_ms: CPU time (user + system, all threads) of our sdserve processes so far, in ms
cpu_ms() {
  local p t=0
  for p in "${PIDS[@]}"; do t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat") )); done
  echo $(( t * 1000 / $(getconf CLK_TCK) ))
}
# runs NAME: a warm-up batch, then ROUNDS timed ones; prints and keeps the median
declare -A MED
runs() {
  local name=$1 t=() r c0 load
  python3 $LOAD batch "$BASE" "$JOBS" "$SIZE" "$SIZE" "$STEPS" >/dev/null
  c0=$(cpu_ms); load=$(cut -d' ' -f1 /proc/loadavg)
  for r in $(seq "$ROUNDS"); do
    set -- $(python3 $LOAD batch "$BASE" "$JOBS" "$SIZE" "$SIZE" "$STEPS")
    [ "$2" = "$JOBS" ] || echo "# $name: only $2 of $JOBS jobs succeeded"
    t+=("$1")
  done
  MED[$name]=$(printf '%s\n' "${t[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p")
  printf '%-3s %s s (runs: %s) = %.2f jobs/s; sdserve CPU %d ms/job; load average before: %s\n' "$name" \
    "${MED[$name]}" "${t[*]}" "$(echo "$JOBS / ${MED[$name]}" | bc -l)" $(( ($(cpu_ms) - c0) / (JOBS * ROUNDS) )) "$load"
}

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus, redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
echo "# $JOBS async jobs ${SIZE}x${SIZE}, $STEPS steps, demo model; $ROUNDS rounds; $(date -u +%FT%TZ)"
PORT=$(free_port); BASE=http://127.0.0.1:$PORT
serve api "$PORT" "${Q[@]}" --workers 0
worker w1
runs 1w
worker w2
runs 2w
stop_all
PORT=$(free_port); BASE=http://127.0.0.1:$PORT
serve ip "$PORT" --data-dir "$TMP/data" --model "$MODEL" --access-log 0 --threads 2
runs ip
stop_all
printf '2 workers / 1 worker: %.2fx (goal >= 1.8)\n' "$(echo "${MED[1w]} / ${MED[2w]}" | bc -l)"
printf '2 workers x 1 thread / in-process --threads 2: %.2fx (goal >= 0.9)\n' "$(echo "${MED[ip]} / ${MED[2w]}" | bc -l)"

# ---- the queue's cost per job -----------------------------------------------------------------
PORT=$(free_port); BASE=http://127.0.0.1:$PORT
serve api "$PORT" "${Q[@]}" --workers 0
worker w1
python3 $LOAD latency "$BASE" 5 32 32 1 >/dev/null
R config resetstat >/dev/null
set -- $(python3 $LOAD latency "$BASE" "$LAT" 32 32 1); q_med=$1
R info commandstats | tr -d '\r' | grep -v -e '^cmdstat_info:' -e '^cmdstat_config' |
  sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),usec=\([0-9]*\),.*/\1 \2 \3/p' >"$TMP/cmdstats"
calls=$(awk '{s += $2} END {print s}' "$TMP/cmdstats"); usec=$(awk '{s += $3} END {print s}' "$TMP/cmdstats")
stop_all
PORT=$(free_port); BASE=http://127.0.0.1:$PORT
serve ip "$PORT" --data-dir "$TMP/data" --model "$MODEL" --access-log 0 --threads 1
python3 $LOAD latency "$BASE" 5 32 32 1 >/dev/null
set -- $(python3 $LOAD latency "$BASE" "$LAT" 32 32 1); i_med=$1
stop_all
echo "# $LAT synchronous 1-step 32x32 jobs one after the other, median ms each"
printf 'through Redis %s ms, in process %s ms: the queue adds %.1f ms per job\n' "$q_med" "$i_med" \
  "$(echo "$q_med - $i_med" | bc -l)"
printf 'Redis: %d commands, %.0f us of CPU per job (commandstats over the %d jobs, 1 step each):\n' \
  "$(( calls / LAT ))" "$(echo "$usec / $LAT" | bc -l)" "$LAT"
awk -v n="$LAT" '{printf "  %-12s %5.1f calls/job %6.1f us/job\n", $1, $2 / n, $3 / n}' "$TMP/cmdstats" | sort -k4 -nr
