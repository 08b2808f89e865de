#!/usr/bin/env bash
# test_slow_clients.sh — slow clients cannot keep others out.  The server
# runs with a 2 s header deadline (--header-timeout), a 3 s idle timeout
# (--conn-timeout) and at most 30 connections per address
# (--max-conn-per-ip); tests/http/slowloris.py opens 40 connections from
# 127.0.0.2 that send their headers a byte every 0.25 s (so the idle timeout
# alone would never close them), 10 idle ones from 127.0.0.3 and an idle
# keep-alive one, while a normal client on 127.0.0.1 makes requests:
#  - the 10 connections over the per-address limit are refused at once;
#  - the normal client is served while the 30 slow ones are held;
#  - every slow, idle and idle keep-alive connection is closed by the server
#    after the deadline (not before 1.5 s);
#  - a synchronous request that waits longer than the deadline (queued
#    behind a long job) is not cut: the deadline covers headers only.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

MODEL=$(demo_model)
start_server --model "$MODEL" --header-timeout 2 --conn-timeout 3 --max-conn-per-ip 30 || exit 1
python3 tests/http/slowloris.py "$PORT" 40 10 6 2 >"$TMP/slow.txt"
v() { awk -v k="$1" '$1 == k {print $2}' "$TMP/slow.txt"; }
echo "# slow clients: $(tr '\n' ' ' <"$TMP/slow.txt")"
check "over the per-address limit: 10 of 40 slow connections refused at once" $([ "$(v slow_refused)" = 10 ]; echo $?) "$(v slow_refused) refused"
check "normal client served 5 of 5 while 30 slow connections were held" $([ "$(v normal_ok)" = 5 ] && [ "$(v normal_during)" = 5 ]; echo $?) "$(v normal_ok) ok, $(v normal_during) during"
check "all 30 header-tricklers closed by the header deadline (not before 1.5 s)" \
  $([ "$(v slow_cut)" = 30 ] && [ "$(v slow_open)" = 0 ]; echo $?) \
  "cut $(v slow_cut), open $(v slow_open), first cut at $(v slow_first_cut) s"
check "idle connections closed (10 of 10) and an idle keep-alive one too" $([ "$(v idle_cut)" = 10 ] && [ "$(v keepalive_cut)" = 1 ]; echo $?) "idle cut $(v idle_cut) open $(v idle_open), keep-alive cut $(v keepalive_cut)"
# a synchronous request held for 3 s (queued behind a long job that is then
# cancelled), longer than the 2 s deadline: it must get its answer
curl -s -o "$TMP/lj.json" -d prompt=long -d width=256 -d height=256 -d num_inference_steps=150 "$BASE/jobs/txt2img"
curl -s -o "$TMP/sync.json" -w '%{http_code}' -d prompt=short -d width=32 -d height=32 -d num_inference_steps=2 "$BASE/txt2img" >"$TMP/sync.code" &
cpid=$!
sleep 3
curl -s -X DELETE -o /dev/null "$(json "$TMP/lj.json" 'j["status_url"]')"
wait $cpid
st=$(cat "$TMP/sync.code")
check "a synchronous request waiting past the deadline gets its answer" $([ "$st" = 200 ] && [ "$(json "$TMP/sync.json" 'j["status"]')" = success ]; echo $?) "status $st $(head -c 200 "$TMP/sync.json")"
check "server healthy" $([ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ]; echo $?) "health not 200"
stop_server
check "clean exit on SIGTERM" $STOP_STATUS "status $STOP_STATUS"
