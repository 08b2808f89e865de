#!/usr/bin/env bash
# test_transport.sh — the HTTP transport's edges (issue 12 items 3, 5, 7),
# with the server's default settings:
#  - raw-socket cases (tests/http/transport_cases.py): absolute-form targets
#    are routed by their path; a %00 in a path is 404 (not the path before
#    it); two different Content-Length headers get 400 at once and the
#    connection closed; and libmicrohttpd 0.9.75's own answers that no
#    option or callback can change, asserted as they are today so that an
#    upgrade that fixes them shows up (docs/RELIABILITY.md);
#  - the default per-address connection limit (64): of 70 connections from
#    127.0.0.1, 6 are closed at once while 64 are held, another address is
#    still served, and the start-up log states the limit and the body cap.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

start_server --model "$(demo_model)" || exit 1
python3 tests/http/transport_cases.py "$PORT"

python3 - "$PORT" >"$TMP/perip.txt" <<'PY'
import http.client, select, socket, sys, time
port = int(sys.argv[1])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(70)]
time.sleep(0.5)
r, _, _ = select.select(socks, [], [], 0.5)
closed = 0
for s in r:
    try:
        closed += s.recv(1) == b""
    except OSError:
        closed += 1
try:   # from 127.0.0.2: another address
    h = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=("127.0.0.2", 0))
    h.request("GET", "/health")
    other = h.getresponse().status
except Exception as e:
    other = repr(e).replace(" ", "_")
print("closed", closed)
print("other", other)
for s in socks:
    s.close()
PY
v() { awk -v k="$1" '$1 == k {print $2}' "$TMP/perip.txt"; }
check "default per-address limit: 6 of 70 connections from one address closed at once" $([ "$(v closed)" = 6 ]; echo $?) "$(v closed) closed"
check "another address served while one holds 64 connections" $([ "$(v other)" = 200 ]; echo $?) "$(v other)"
st=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")
check "the address is served again once its connections close" $([ "$st" = 200 ]; echo $?) "status $st"
check "start-up log states the body cap and the per-address limit" \
  $(grep -qE '^request bodies: at most [0-9]+ MiB buffered at once, 20 MiB each, 64 connections per address$' "$TMP/server.log"; echo $?) \
  "$(grep '^request bodies' "$TMP/server.log")"
stop_server
check "clean exit on SIGTERM" $STOP_STATUS "status $STOP_STATUS"
