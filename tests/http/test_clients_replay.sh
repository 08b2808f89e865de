#!/usr/bin/env bash
# test_clients_replay.sh — replays what Open WebUI, SillyTavern and LibreChat
# send (tests/http/clients/<client>.json: every step cites the client's
# source file and commit) against the real `sdserve serve` with the demo
# model, and checks every field those clients read in the answers
# (tests/http/clients_replay.py): the A1111 dialect (/sdapi/v1/*: options
# GET / POST with the whole dict, sd-models, samplers, schedulers, upscalers,
# sd-vae, progress with state.job_count, txt2img with the clients' own extra
# fields, interrupt) and the OpenAI dialect (/v1/images/generations).  Two
# servers: one started with an API key (clients send it as HTTP Basic
# "user:KEY" or Bearer; a wrong key is a 401), one without keys (clients with
# no auth string still send "Authorization: Basic ", which must be accepted).
# One "ok - <client>: <step>" line per step; a FAIL names the missing or
# wrong field.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

# the runner itself: against a fake server giving wrong answers, every
# failure names the field that is wrong
python3 tests/http/clients_replay.py --selftest

KEY=replay-key-0123456789abcdef
MODEL=$(demo_model)

# the server without keys: its own port, log and data folder
OPEN_PID=
stop_open() { [ -n "$OPEN_PID" ] && kill -0 "$OPEN_PID" 2>/dev/null && stop_pid "$OPEN_PID" 50; }
trap 'stop_open; cleanup' EXIT
OPEN_PORT=$(free_port)
OPEN_BASE=http://127.0.0.1:$OPEN_PORT
"$SDSERVE" serve --bind 127.0.0.1 --port "$OPEN_PORT" --data-dir "$TMP/open-data" --model "$MODEL" \
  >"$TMP/open.log" 2>&1 &
OPEN_PID=$!

SDSERVE_API_KEYS=$KEY start_server --model "$MODEL" || exit 1
if ! wait_ready "$OPEN_BASE/health" "$OPEN_PID" 600; then
  echo "FAIL - the server without keys starts: $(tail -5 "$TMP/open.log" | tr '\n' ' ')"; exit 1
fi

python3 tests/http/clients_replay.py --keyed "$BASE" --open "$OPEN_BASE" --key "$KEY" \
  tests/http/clients/open-webui.json tests/http/clients/sillytavern.json tests/http/clients/librechat.json

# nothing a client sent may have taken a server down
check "the keyed server still serves after the replays" \
  $([ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ]; echo $?) "$(tail -3 "$TMP/server.log")"
check "the server without keys still serves after the replays" \
  $([ "$(curl -s -o /dev/null -w '%{http_code}' "$OPEN_BASE/health")" = 200 ]; echo $?) "$(tail -3 "$TMP/open.log")"
stop_server
check "the keyed server exits cleanly" $([ "$STOP_STATUS" = 0 ]; echo $?) "exit $STOP_STATUS"
