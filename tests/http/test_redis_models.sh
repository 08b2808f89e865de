#!/usr/bin/env bash
# test_redis_models.sh — routing on the shared Redis queue (issue 17 item 3,
# docs/SCALE.md "API nodes without weights"): a real redis-server on a free
# loopback port, an API node with --workers 0 and --model-dir of two demo
# models (alpha, beta: different seeds, so different hashes), workers
# started with --model of one file:
#   the API node loads no weights (its log and /health say so; its VmRSS
#   is under a full node's); a job for alpha (served) succeeds, for beta
#   (no worker) 503 + Retry-After naming model; a too-long prompt for beta
#   is 400 at submit all the same; a worker for beta comes: /health lists
#   it and beta succeeds (/metrics: a busy gauge per worker); it is killed: 503 again once its announcement
#   expires; the precision is pinned: a bf16x2 worker alone gets 503
#   naming the precision, and a queued fp32 job is put back by it, never
#   run, then run by an fp32 worker; a worker whose file for a name has
#   another hash is not sent that name's jobs, nor counted for it in
#   /health's workers_per_model.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

command -v redis-server >/dev/null || { echo "ok - # SKIP redis-server not installed"; exit 0; }
RPORT=$(free_port)
MD=$TMP/models
mkdir -p "$MD" "$TMP/other"
for m in alpha:1 beta:2; do
  "$SDSERVE" make-model --preset demo --seed "${m#*:}" -o "$MD/${m%%:*}" --quiet >/dev/null 2>&1
done
"$SDSERVE" make-model --preset demo --seed 3 -o "$TMP/other/beta" --quiet >/dev/null 2>&1   # beta, another file
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
declare -A WPID
finish() {
  for p in "${WPID[@]}" $NODE_PID; do kill -9 "$p" 2>/dev/null; done
  kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null
  cleanup
}
trap finish EXIT

Q=(--queue "redis://127.0.0.1:$RPORT/0" --queue-timeout 1 --claim-timeout 2 --shared-data-dir 1 --data-dir "$TMP/data"
   --threads 1)
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
"$SDSERVE" serve --bind 127.0.0.1 --port "$PORT" --workers 0 "${Q[@]}" --model-dir "$MD" >"$TMP/node.log" 2>&1 &
NODE_PID=$!
wait_ready "$BASE/health" "$NODE_PID" 600 || { echo "FAIL - API node starts: $(tail -5 "$TMP/node.log")"; exit 0; }

health() { curl -s -o "$TMP/health.json" "$BASE/health"; json "$TMP/health.json" "$1"; }
start_worker() {   # start_worker NAME MODEL-PATH [options]: waits for its announcement
  local name=$1 model=$2; shift 2
  "$SDSERVE" worker "${Q[@]}" --model "$model" --public-url "$BASE" "$@" >"$TMP/worker-$name.log" 2>&1 &
  WPID[$name]=$!
  for _ in $(seq 600); do   # listed by the API node's /health (its cache: a second at most)
    [ "$(health "any(w['id'].split(':')[1] == '${WPID[$name]}' for w in j['queue']['live_workers'])")" = True ] &&
      return 0
    sleep 0.1
  done
  echo "FAIL - worker $name starts: $(tail -5 "$TMP/worker-$name.log" | tr '\n' ' ')"; return 1
}
# post MODEL [PROMPT]: status of a sync 64x64 2-step job, body in $TMP/r.json, headers in $TMP/r.hdr
post() {
  curl -s -m 60 -D "$TMP/r.hdr" -o "$TMP/r.json" -w '%{http_code}' --data-urlencode "prompt=${2:-fox}" -d width=64 \
    -d height=64 -d num_inference_steps=2 -d "model=$1" "$BASE/txt2img"
}
vmrss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

check "--workers 0: the log says no engine was loaded" \
  $(grep -q 'API node without weights' "$TMP/node.log" && ! grep -q '^loading model' "$TMP/node.log"; echo $?) \
  "$(grep -iE 'weights|loading' "$TMP/node.log")"
check "/health: no local worker, no weights, no worker yet" \
  $([ "$(health 'j["queue"]["local_worker"], j["queue"]["weights_loaded"], j["queue"]["live_workers"]')" = \
      "(False, False, [])" ]; echo $?) "$(cat "$TMP/health.json")"

start_worker a "$MD/alpha" || exit 0
check "/health lists worker A: its models (alpha) and precision (fp32), idle" \
  $([ "$(health '[(w["models"][0]["name"], w["precision"], w["state"]) for w in j["queue"]["live_workers"]] + [
                 j["queue"]["workers_per_model"]]')" = "[('alpha', 'fp32', 'idle'), {'alpha': 1}]" ]; echo $?) \
  "$(cat "$TMP/health.json")"
st=$(post alpha)
check "a job for alpha (worker A serves it) -> 200" $([ "$st" = 200 ]; echo $?) "$st $(cat "$TMP/r.json")"
st=$(post beta)
check "a job for beta (no worker serves it) -> 503 + Retry-After naming model" \
  $([ "$st" = 503 ] && grep -qi '^Retry-After: [0-9]' "$TMP/r.hdr" &&
    [ "$(json "$TMP/r.json" 'j["field"], "beta" in j["message"]')" = "('model', True)" ]; echo $?) \
  "$st $(cat "$TMP/r.json")"
long=$(python3 -c 'print("x " * 601)')
st=$(post beta "$long")
check "a 601-token prompt for beta -> 400 naming prompt at submit, with no worker for beta" \
  $([ "$st" = 400 ] && [ "$(json "$TMP/r.json" 'j["field"]')" = prompt ]; echo $?) "$st $(cat "$TMP/r.json")"
st=$(post gamma)
check "an unknown model -> 400 naming model" $([ "$st" = 400 ] && [ "$(json "$TMP/r.json" 'j["field"]')" = model ]
  echo $?) "$st $(cat "$TMP/r.json")"

start_worker b "$MD/beta" || exit 0
st=$(post beta)
check "worker B (beta) started: a job for beta -> 200" $([ "$st" = 200 ]; echo $?) "$st $(cat "$TMP/r.json")"
check "/health: 2 live workers, one per model" \
  $([ "$(health 'j["queue"]["workers"], sorted(j["queue"]["workers_per_model"].items())')" = \
      "(2, [('alpha', 1), ('beta', 1)])" ]
    echo $?) "$(cat "$TMP/health.json")"

curl -s "$BASE/metrics" >"$TMP/metrics.txt"
check "/metrics: one sdserve_worker_busy gauge per live worker, with its precision" \
  $([ "$(grep -cE '^sdserve_worker_busy\{worker="[^"]+:('"${WPID[a]}|${WPID[b]}"'):[0-9a-f]+",precision="fp32"\} [01]$' \
        "$TMP/metrics.txt")" = 2 ]; echo $?) "$(grep worker_busy "$TMP/metrics.txt")"
# RSS: the API node (no weights) vs an API node with its own worker and the same models loaded
node_kb=$(vmrss "$NODE_PID")
P2=$(free_port)
"$SDSERVE" serve --bind 127.0.0.1 --port "$P2" "${Q[@]}" --model-dir "$MD" >"$TMP/full.log" 2>&1 &
FULL_PID=$!
wait_ready "http://127.0.0.1:$P2/health" "$FULL_PID" 600
full_kb=$(vmrss "$FULL_PID")
stop_pid "$FULL_PID" 100
check "the API node's VmRSS (${node_kb} kB) is under a node with a worker and loaded weights (${full_kb} kB)" \
  $([ -n "$node_kb" ] && [ -n "$full_kb" ] && [ "$node_kb" -lt "$full_kb" ]; echo $?) "node $node_kb full $full_kb"

kill -9 "${WPID[b]}"; wait "${WPID[b]}" 2>/dev/null; unset 'WPID[b]'
t0=$(date +%s)
for _ in $(seq 150); do [ "$(health '"beta" in j["queue"]["workers_per_model"]')" = False ] && break; sleep 0.1; done
t1=$(date +%s)
st=$(post beta)
check "worker B killed: gone from /health after its TTL ($((t1 - t0)) s), then beta -> 503 naming model" \
  $([ "$st" = 503 ] && [ "$(json "$TMP/r.json" 'j["field"]')" = model ]; echo $?) "$st $(cat "$TMP/r.json")"

R() { redis-cli -p "$RPORT" "$@"; }
# ---- precision pinned: the node runs fp32 (needs a bf16 worker: AVX-512) ----
if ! cpu_bf16; then
  echo "# no AVX-512 here: no bf16x2 worker can load, the pinned-precision checks skipped"
else
  start_worker b16 "$MD/beta" --precision bf16x2 || exit 0
  st=$(post beta)
  check "only a bf16x2 worker serves beta: 503 naming model and the pinned precision fp32" \
    $([ "$st" = 503 ] && [ "$(json "$TMP/r.json" 'j["field"], "precision fp32" in j["message"]')" = "('model', True)" ]
      echo $?) "$st $(cat "$TMP/r.json")"
  # a job queued while an fp32 worker for beta was announced (stopped right after: SIGSTOP)
  start_worker b32 "$MD/beta" || exit 0
  kill -STOP "${WPID[b32]}"
  id=$(curl -s -d prompt=pinned -d width=64 -d height=64 -d num_inference_steps=2 -d model=beta "$BASE/jobs/txt2img" |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("id",""))')
  for _ in $(seq 100); do grep -q "job $id put back: it is pinned to precision fp32" "$TMP/worker-b16.log" && break
    sleep 0.1; done
  sleep 1
  check "the bf16x2 worker puts the fp32 job back and never runs it (queued, attempts 0)" \
    $(grep -q "job $id put back: it is pinned to precision fp32" "$TMP/worker-b16.log" &&
      [ "$(R hmget "sdserve:job:$id" state attempts precision | tr '\n' ' ')" = "queued 0 fp32 " ]; echo $?) \
    "$(R hgetall "sdserve:job:$id" | grep -v request | tr '\n' ' ') $(grep "$id" "$TMP/worker-b16.log")"
  kill -CONT "${WPID[b32]}"
  for _ in $(seq 300); do [ "$(R hget "sdserve:job:$id" state)" = succeeded ] && break; sleep 0.1; done
  by=$(R hget "sdserve:job:$id" worker)
  check "... the fp32 worker runs it (succeeded, attempts 1)" \
    $([ "$(R hmget "sdserve:job:$id" state attempts | tr '\n' ' ')" = "succeeded 1 " ] &&
      [ "$(echo "$by" | cut -d: -f2)" = "${WPID[b32]}" ]; echo $?) "by $by; b32 ${WPID[b32]}"
  stop_pid "${WPID[b16]}" 100; unset 'WPID[b16]'
  stop_pid "${WPID[b32]}" 100; unset 'WPID[b32]'
fi

# ---- the same name, another file: no jobs for that name ----
start_worker x "$TMP/other/beta" || exit 0
st=$(post beta)
check "a worker whose 'beta' has another hash: 503 naming model, and the node logs why" \
  $([ "$st" = 503 ] && grep -q "serves a different file as model 'beta'" "$TMP/node.log"; echo $?) \
  "$st $(cat "$TMP/r.json") $(grep different "$TMP/node.log")"
check "/health: that worker is listed (announcing beta) but workers_per_model does not count it for beta" \
  $([ "$(health '([m["name"] for w in j["queue"]["live_workers"] for m in w["models"]].count("beta"),
                  sorted(j["queue"]["workers_per_model"].items()))')" = "(1, [('alpha', 1)])" ]; echo $?) \
  "$(cat "$TMP/health.json")"

# (its own key: worker B's, killed -9 above, may still wait for its TTL in Redis)
xp=${WPID[x]}
kill -TERM "$xp"; wait "$xp"; w=$?; unset 'WPID[x]'
check "a stopped worker withdraws its announcement at once" \
  $([ "$w" = 0 ] && ! R keys "sdserve:worker:*:$xp:*" | grep -q .; echo $?) "exit $w; $(R keys 'sdserve:worker:*')"
kill -TERM "$NODE_PID"; wait "$NODE_PID"; w=$?; NODE_PID=
check "the API node stops cleanly" $([ "$w" = 0 ]; echo $?) "exit $w"
bad=$(grep -lE 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$TMP"/*.log 2>/dev/null)
check "no sanitizer report in any log" $([ -z "$bad" ]; echo $?) "$bad"
