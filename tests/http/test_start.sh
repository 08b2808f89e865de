#!/usr/bin/env bash
# tests/http/test_start.sh — the start order of `sdserve serve` (docs/SERVER.md
# "Start-up"): it listens before the model loads.  A port in use fails at
# once, with one message and before any model load.  While the model loads
# (held here by a --model-config that is a FIFO: the loader blocks opening it
# until the test writes it, so no timing is involved) /health answers 503
# "loading", the generation routes 503 + Retry-After with the JSON error
# shape, other routes answer; once the config is written the same server
# becomes ready and generates.  A model that fails to load after listening
# still ends the process with status 1 and a clear message.  Listening on a
# non-loopback address without --public-url prints a hint naming it.  Start
# errors name the flag to fix (--model, --vocab, --data-dir, --lora-dir, --model-dir,
# --api-keys-file, --s3-bucket, --public-url): status 2 for values refused as
# given, 1 for what they name (docs/SERVER.md "Exit status").  A second stop
# signal during the load ends the process at once; SIGHUP stops cleanly.
set -u
cd "$(dirname "$0")/../.."
. tests/http/lib.sh
REF=${SD_REF:-../shared/reference}
MODEL=$REF/models/tiny-sd1-fp16.safetensors
CONFIG=$REF/models/tiny-sd1.ldm_config.json
if [ ! -f "$MODEL" ]; then echo "FAIL - reference model $MODEL missing"; exit 1; fi

# ---- a port in use: fails before the model load, one message --------------
port=$(free_port)
python3 -c 'import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); print("up", flush=True); time.sleep(120)' "$port" >"$TMP/holder.out" 2>&1 &
HOLDER=$!
for _ in $(seq 50); do grep -q up "$TMP/holder.out" && break; sleep 0.1; done
out=$(timeout 60 "$SDSERVE" serve --bind 127.0.0.1 --port "$port" --data-dir "$TMP/busy" --model "$MODEL" 2>&1); rc=$?
kill "$HOLDER" 2>/dev/null; wait "$HOLDER" 2>/dev/null
n=$(printf '%s\n' "$out" | grep -c -i -e "already in use" -e "failed to bind")
check "port in use: exit status 1" $([ "$rc" = 1 ]; echo $?) "status $rc"
check "port in use: the error names --port and says why, printed once (not libmicrohttpd's too)" \
  $(printf '%s' "$out" | grep -q -- "cannot listen on 127.0.0.1 port $port: Address already in use (another program has it: choose another --port)" &&
    [ "$n" = 1 ]; echo $?) "$n lines: $(printf '%s' "$out" | grep -i -e "in use" -e "failed to bind" | tr '\n' ' ')"
check "port in use: fails before the model load" \
  $(! printf '%s' "$out" | grep -q -e "loading model" -e "^model: "; echo $?) "$(printf '%s' "$out" | tail -3 | tr '\n' ' ')"

# ---- start errors a user sees name the flag to fix -------------------------
# start_fails STATUS NAME PATTERN serve-args...: exit STATUS and a message
# matching PATTERN (docs/SERVER.md "Exit status": 2 = the settings as given,
# refused before listening; 1 = what they name)
start_fails() {
  local want=$1 name=$2 pat=$3 out rc; shift 3
  out=$(timeout 60 "$SDSERVE" serve --bind 127.0.0.1 --port 0 "$@" 2>&1); rc=$?
  check "start error names the flag: $name (status $want)" \
    $([ "$rc" = "$want" ] && printf '%s' "$out" | grep -q -- "$pat" && { [ "$want" = 1 ] || ! printf '%s' "$out" | grep -q '^listening'; }; echo $?) \
    "status $rc: $(printf '%s' "$out" | grep '^sdserve serve:' | tail -1)"
}
start_error() { start_fails 1 "$@"; }
start_error "missing model" "nope.safetensors: no such file or folder (give --model " --data-dir "$TMP/e1" --model "$TMP/nope.safetensors"
start_error "missing --vocab" "the vocabulary given by --vocab: vocabulary $TMP/nope.txt.gz does not exist" \
  --data-dir "$TMP/e2" --model "$MODEL" --vocab "$TMP/nope.txt.gz"
: >"$TMP/file"
start_error "data dir under a file" "cannot create $TMP/file/d (--data-dir): Not a directory" --data-dir "$TMP/file/d" --model "$MODEL"
# a --lora-dir that is missing or a file: refused (was: a server whose every LoRA request failed)
start_error "missing --lora-dir" "--lora-dir $TMP/nope-loras: No such file or directory" \
  --data-dir "$TMP/e3" --model "$MODEL" --lora-dir "$TMP/nope-loras"
start_error "--lora-dir a file" "--lora-dir $TMP/file is not a folder" --data-dir "$TMP/e4" --model "$MODEL" --lora-dir "$TMP/file"
# --model-dir missing: the flag and the reason (was "cannot read the model folder X"); a file: not a folder
start_error "missing --model-dir" "--model-dir $TMP/nope-models: No such file or directory (give the folder of checkpoints" \
  --data-dir "$TMP/e5" --model-dir "$TMP/nope-models"
start_error "--model-dir a file" "--model-dir $TMP/file is not a folder" --data-dir "$TMP/e5" --model-dir "$TMP/file"
# an --api-keys-file that is a folder: said so (was the first read's "Is a directory")
start_error "--api-keys-file a folder" "--api-keys-file $TMP is a folder; give the file of API keys" \
  --data-dir "$TMP/e6" --model "$MODEL" --api-keys-file "$TMP"
# values refused as given: status 2, as the settings table's own refusals
# (were 1); the message names the flag and shows what was typed
start_fails 2 "--port out of range (the settings table)" "--port must be in \[0, 65535\], got 70000" \
  --data-dir "$TMP/e7" --model "$MODEL" --port 70000
start_fails 2 "--precision fp16" "--precision must be auto, fp32, bf16x2 or bf16; got 'fp16'" \
  --data-dir "$TMP/e7" --model "$MODEL" --precision fp16
start_fails 2 "--storage s4" "--storage must be local or s3, got 's4'" --data-dir "$TMP/e7" --model "$MODEL" --storage s4
start_fails 2 "--storage s3 without a bucket" "--storage s3 needs a bucket: --s3-bucket NAME (or SDSERVE_S3_BUCKET)" \
  --data-dir "$TMP/e7" --model "$MODEL" --storage s3
start_fails 2 "a bad --s3-bucket: the flag first" "--s3-bucket: the S3 bucket name must be 3 to 63 .*got 'b'" \
  --data-dir "$TMP/e7" --model "$MODEL" --storage s3 --s3-bucket b
start_fails 2 "--public-url not a URL: the flag and what was typed" \
  "--public-url must start with http:// or https:// (.*), got 'notaurl'$" --data-dir "$TMP/e7" --model "$MODEL" --public-url notaurl
start_fails 2 "--api-keys of separators only" "--api-keys holds no API key" --data-dir "$TMP/e7" --model "$MODEL" --api-keys ,
start_fails 2 "--vae-decoder taesd without --preview-decoder" "--vae-decoder taesd needs a TAESD file (--preview-decoder)" \
  --data-dir "$TMP/e7" --model "$MODEL" --vae-decoder taesd

# ---- listening while the model loads ------------------------------------
mkfifo "$TMP/config.fifo"
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
"$SDSERVE" serve --bind 0.0.0.0 --port "$PORT" --data-dir "$TMP/data" --model "$MODEL" \
  --model-config "$TMP/config.fifo" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
if ! wait_http "$BASE/health" "$SERVER_PID" 600; then
  echo "FAIL - server listens while loading: $(tail -5 "$TMP/server.log" | tr '\n' ' ')"; exit 1
fi
st=$(curl -s -o "$TMP/h.json" -w '%{http_code}' "$BASE/health")
check "loading: GET /health 503, status loading, model_loaded false, no model yet" \
  $([ "$st" = 503 ] && [ "$(json "$TMP/h.json" 'j["status"], j["model_loaded"], j["model"]["name"]')" = "('loading', False, None)" ]; echo $?) \
  "status $st: $(cat "$TMP/h.json")"
for ep in txt2img jobs/txt2img img2img; do
  st=$(curl -s -D "$TMP/hdr" -o "$TMP/e.json" -w '%{http_code}' -d 'prompt=a fox' -d width=64 -d height=64 "$BASE/$ep")
  check "loading: POST /$ep 503 + Retry-After, JSON error saying the model is loading" \
    $([ "$st" = 503 ] && grep -qi '^Retry-After: [1-9]' "$TMP/hdr" &&
      [ "$(json "$TMP/e.json" 'j["status"]=="error" and "field" in j and "still loading" in j["message"]')" = True ]; echo $?) \
    "status $st: $(cat "$TMP/e.json")"
done
st=$(curl -s -o "$TMP/doc.json" -w '%{http_code}' "$BASE/openapi.json")
check "loading: other routes answer (GET /openapi.json 200)" $([ "$st" = 200 ]; echo $?) "status $st"
# the loading answers match the OpenAPI document (Health enum, 503s)
st=$(curl -s -o "$TMP/h.json" -D "$TMP/h.hdr" -w '%{http_code}' "$BASE/health")
v=$(python3 tests/http/openapi_check.py "$TMP/doc.json" GET /health "$st" "$TMP/h.json" "$TMP/h.hdr")
check "loading: GET /health ($st) matches the document" $([ "$v" = ok ]; echo $?) "$v"
st=$(curl -s -o "$TMP/e.json" -D "$TMP/e.hdr" -w '%{http_code}' -d 'prompt=a fox' "$BASE/jobs/txt2img")
v=$(python3 tests/http/openapi_check.py "$TMP/doc.json" POST /jobs/txt2img "$st" "$TMP/e.json" "$TMP/e.hdr")
check "loading: POST /jobs/txt2img ($st) matches the document" $([ "$v" = ok ]; echo $?) "$v"
check "loading: the log says it listens and loads; the model is not ready yet" \
  $(grep -q "^listening on 0.0.0.0 port $PORT; .*loading the model" "$TMP/server.log" && ! grep -q "^ready" "$TMP/server.log"; echo $?) \
  "$(grep -v '^  ' "$TMP/server.log" | tail -4 | tr '\n' ' ')"
check "bind 0.0.0.0 without --public-url: the log suggests --public-url" \
  $(grep -q "^NOTE: listening on 0.0.0.0, but returned URLs (image_url, status_url) use http://127.0.0.1:$PORT.* --public-url http://HOST:$PORT" "$TMP/server.log"; echo $?) \
  "$(grep -i public "$TMP/server.log" | tail -2 | tr '\n' ' ')"

cat "$CONFIG" >"$TMP/config.fifo"
if wait_ready "$BASE/health" "$SERVER_PID" 600; then ok "loaded: /health 200 on the same server"
else fail "loaded: /health 200 on the same server" "$(tail -3 "$TMP/server.log" | tr '\n' ' ')"; fi
check "loaded: /health names the model" \
  $(curl -s -o "$TMP/h.json" "$BASE/health"; [ "$(json "$TMP/h.json" 'j["status"], j["model_loaded"], j["model"]["name"]')" = "('ok', True, 'tiny-sd1-fp16')" ]; echo $?) \
  "$(cat "$TMP/h.json")"
st=$(curl -s -o "$TMP/r.json" -w '%{http_code}' -d 'prompt=a fox' -d width=64 -d height=64 -d num_inference_steps=1 -d seed=3 "$BASE/txt2img")
url=$(json "$TMP/r.json" 'j["images"][0]["image_url"]')
check "loaded: POST /txt2img 200 and its image is served" \
  $([ "$st" = 200 ] && [ "$(curl -s -o "$TMP/a.png" -w '%{http_code}' "$url")" = 200 ] && [ "$(png_size "$TMP/a.png")" = 64x64 ]; echo $?) \
  "status $st: $(head -c 300 "$TMP/r.json")"
stop_server
check "loaded server: SIGTERM, clean exit" $STOP_STATUS "status $STOP_STATUS; $(tail -3 "$TMP/server.log" | tr '\n' ' ')"

# ---- a model that fails to load after listening: the process ends -------
rm -f "$TMP/config.fifo"; mkfifo "$TMP/config.fifo"
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
"$SDSERVE" serve --bind 127.0.0.1 --port "$PORT" --data-dir "$TMP/data2" --model "$MODEL" \
  --model-config "$TMP/config.fifo" >"$TMP/server2.log" 2>&1 &
SERVER_PID=$!
wait_http "$BASE/health" "$SERVER_PID" 600
st=$(curl -s -o "$TMP/h.json" -w '%{http_code}' "$BASE/health")
check "failing load: /health said loading first" $([ "$st" = 503 ] && [ "$(json "$TMP/h.json" 'j["status"]')" = loading ]; echo $?) "status $st"
echo '{"unet": {"model_channels": "not a number"' >"$TMP/config.fifo"
wait "$SERVER_PID"; rc=$?; SERVER_PID=
check "failing load: exit status 1 with the error after the server listened" \
  $([ "$rc" = 1 ] && grep -q "^sdserve serve: loading model .*tiny-sd1-fp16.safetensors" "$TMP/server2.log"; echo $?) \
  "status $rc: $(tail -2 "$TMP/server2.log" | tr '\n' ' ')"
check "failing load: never ready; bind 127.0.0.1 prints no --public-url hint" \
  $(! grep -q -e "^ready" -e "^NOTE: listening" "$TMP/server2.log"; echo $?) "$(grep -e ready -e NOTE "$TMP/server2.log")"
# ---- stop signals while the model loads: a second one stops at once -------
# (the load held by a FIFO nobody writes: before, the second SIGINT was
# ignored and the process waited for the load for ever)
rm -f "$TMP/config.fifo"; mkfifo "$TMP/config.fifo"
PORT=$(free_port)
"$SDSERVE" serve --bind 127.0.0.1 --port "$PORT" --data-dir "$TMP/data4" --model "$MODEL" \
  --model-config "$TMP/config.fifo" >"$TMP/server4.log" 2>&1 &
SERVER_PID=$!
wait_http "http://127.0.0.1:$PORT/health" "$SERVER_PID" 600
kill -INT "$SERVER_PID"
for _ in $(seq 100); do grep -q "^waiting for the model load" "$TMP/server4.log" && break; sleep 0.1; done
check "stop during the load: says it waits and that a second signal stops now" \
  $(kill -0 "$SERVER_PID" 2>/dev/null && grep -q "^waiting for the model load to finish before stopping (send the signal again to stop now)" "$TMP/server4.log"; echo $?) \
  "$(tail -3 "$TMP/server4.log" | tr '\n' ' ')"
kill -INT "$SERVER_PID"
rc=
for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || { wait "$SERVER_PID"; rc=$?; break; }; sleep 0.1; done
[ -n "$rc" ] || { kill -KILL "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; }
SERVER_PID=
check "second SIGINT during the load: exits at once, status 130, saying so" \
  $([ "$rc" = 130 ] && grep -q "^received SIGINT again: stopping without waiting for the model load" "$TMP/server4.log"; echo $?) \
  "status ${rc:-none: still running after 10 s}: $(tail -2 "$TMP/server4.log" | tr '\n' ' ')"

# ---- SIGHUP (a closed terminal or SSH session): the same clean stop --------
PORT=$(free_port)
"$SDSERVE" serve --bind 127.0.0.1 --port "$PORT" --data-dir "$TMP/data5" --model "$MODEL" --model-config "$CONFIG" \
  >"$TMP/server5.log" 2>&1 &
SERVER_PID=$!
wait_ready "http://127.0.0.1:$PORT/health" "$SERVER_PID" 600
kill -HUP "$SERVER_PID"; wait "$SERVER_PID"; rc=$?; SERVER_PID=
check "SIGHUP: stops cleanly with status 0, as SIGTERM" \
  $([ "$rc" = 0 ] && grep -q "^received SIGHUP: refusing new requests" "$TMP/server5.log" && grep -q "^stopped cleanly" "$TMP/server5.log"; echo $?) \
  "status $rc: $(tail -2 "$TMP/server5.log" | tr '\n' ' ')"

# ---- bound to one address: returned URLs use it, no --public-url hint -------
# (127.0.0.2 and ::1 are not reachable at 127.0.0.1, the default URL's host)
for addr in 127.0.0.2 ::1; do
  case $addr in *:*) host="[$addr]";; *) host=$addr;; esac
  if [ "$addr" = ::1 ] && ! python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    echo "ok - bind $addr: skipped (no IPv6 loopback here)"; continue
  fi
  PORT=$(free_port)
  "$SDSERVE" serve --bind "$addr" --port "$PORT" --data-dir "$TMP/data3" --model "$MODEL" --model-config "$CONFIG" \
    >"$TMP/server3.log" 2>&1 &
  SERVER_PID=$!
  wait_ready "http://$host:$PORT/health" "$SERVER_PID" 600
  st=$(curl -s -o "$TMP/r3.json" -w '%{http_code}' -d 'prompt=a fox' -d width=64 -d height=64 -d num_inference_steps=1 \
    "http://$host:$PORT/txt2img")
  url=$(json "$TMP/r3.json" 'j["images"][0]["image_url"]')
  check "bind $addr: image_url on http://$host:$PORT and served there; no --public-url hint" \
    $([ "$st" = 200 ] && case $url in "http://$host:$PORT/images/"*) true;; *) false;; esac &&
      [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ] && ! grep -q "^NOTE: listening" "$TMP/server3.log"; echo $?) \
    "status $st, image_url '$url': $(grep -e '^listening' -e '^NOTE' "$TMP/server3.log" | tr '\n' ' ')"
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; SERVER_PID=
  if grep -qE 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$TMP/server3.log"; then
    fail "bind $addr: no sanitizer report" "$(grep -E 'runtime error:|Sanitizer' "$TMP/server3.log" | head -2)"
  fi
done

if grep -qE 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$TMP/server2.log"; then
  fail "failing load: no sanitizer report" "$(grep -E 'runtime error:|Sanitizer' "$TMP/server2.log" | head -2)"
fi
