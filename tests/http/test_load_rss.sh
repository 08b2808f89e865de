#!/usr/bin/env bash
# test_load_rss.sh — resident memory stays flat over 1000 jobs: 1000
# synchronous txt2img requests on the demo model (8x8, 1 step, seeds
# 1..1000, so every job stores a new image) over one keep-alive connection
# (tests/http/soak.py); the server's VmRSS is read after the first 100
# (warm-up: engine buffers, allocator arenas) and after each further 100.
# Checks: 1000 answers 200 with 1000 distinct image URLs, growth from job 100
# to job 1000 under 5 MB, the metrics count 1000 succeeded jobs.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

MODEL=$(demo_model)
start_server --model "$MODEL" --access-log 0 || exit 1
N=${SD_RSS_JOBS:-1000}
python3 tests/http/soak.py "$BASE" "$SERVER_PID" "$N" 100 >"$TMP/soak.txt"
cat "$TMP/soak.txt" | grep '^#'
read -r ok distinct < <(awk '$1 == "result" {print $2, $3}' "$TMP/soak.txt")
first=$(awk '$1 == "rss" && $2 == 100 {print $3}' "$TMP/soak.txt")
last=$(awk -v n="$N" '$1 == "rss" && $2 == n {print $3}' "$TMP/soak.txt")
echo "# RSS after job 100: $first kB, after job $N: $last kB (growth $((last - first)) kB)"
check "$N jobs answered 200, each with its own image" $([ "$ok" = "$N" ] && [ "$distinct" = "$N" ]; echo $?) "$ok ok, $distinct distinct images"
if [ "${SD_SANITIZED:-0}" = 1 ]; then
  # the sanitizer tier of tests/run.sh: ASan's quarantine and allocator
  # metadata hold freed memory, so RSS grows by design; LeakSanitizer checks
  # for leaks at the server's exit instead
  echo "# sanitizer tier: RSS growth not checked (ASan holds freed memory)"
else
  check "RSS flat: growth from job 100 to job $N under 5 MB" $([ -n "$first" ] && [ -n "$last" ] && [ $((last - first)) -lt 5120 ]; echo $?) "first $first kB, last $last kB"
fi
curl -s -o "$TMP/m.txt" "$BASE/metrics"
check "metrics: $N succeeded jobs, none failed" $(grep -q "^sdserve_jobs_total{outcome=\"succeeded\"} $N\$" "$TMP/m.txt" && grep -q '^sdserve_jobs_total{outcome="failed"} 0$' "$TMP/m.txt"; echo $?) "$(grep jobs_total "$TMP/m.txt")"
stop_server
check "clean exit on SIGTERM" $STOP_STATUS "status $STOP_STATUS"
