#!/usr/bin/env bash
# test_auth_e2e.sh — API keys and the rate limit on the real `sdserve serve`
# with the demo model: keys from SDSERVE_API_KEYS and --api-keys-file, 401 +
# JSON error + WWW-Authenticate without / with a wrong key, /health open,
# /metrics closed unless --metrics-open 1, keys never printed, a bad key
# refused at start with a non-zero exit; jobs belong to their key (another key
# gets the unknown-id 404 on GET and DELETE, the job runs on), image URLs
# open without a key (sync and async); then --rate-limit: 429 + Retry-After
# once a key's burst is spent, other keys and /health unaffected.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

KEY_ENV=env-key-0123456789abcdef
KEY_FILE=file-key-abcdefghijklmnop
printf '# test keys\n%s\n' "$KEY_FILE" >"$TMP/keys"
MODEL=$(demo_model)

code() { # code URL curl-args... -> HTTP status; body in $TMP/body, headers in $TMP/hdr
  local url=$1; shift
  curl -s -o "$TMP/body" -D "$TMP/hdr" -w '%{http_code}' "$@" "$url"
}

# a malformed key stops the server at start, naming the setting, not the key
SDSERVE_API_KEYS=tooshort "$SDSERVE" serve --bind 127.0.0.1 --port 0 --model "$MODEL" --data-dir "$TMP/bad" >"$TMP/bad.log" 2>&1
st=$?
check "a too-short API key: non-zero exit naming api-keys" $([ $st -ne 0 ] && grep -q 'api-keys' "$TMP/bad.log" && ! grep -q tooshort "$TMP/bad.log"; echo $?) "exit $st: $(tail -2 "$TMP/bad.log")"

export SDSERVE_API_KEYS=$KEY_ENV
start_server --model "$MODEL" --api-keys-file "$TMP/keys" || exit 1
unset SDSERVE_API_KEYS
check "keys are not printed in the log" $(! grep -q -e "$KEY_ENV" -e "$KEY_FILE" "$TMP/server.log"; echo $?) "key found in log"
check "start-up summary says 2 API keys" $(grep -q 'API keys: 2' "$TMP/server.log"; echo $?) "$(grep 'API keys' "$TMP/server.log")"
# images need no key (docs/SERVER.md "API keys"): the summary and --help say so
check "start-up summary: /images needs no key" \
  $(grep -q 'API keys: 2 (every request but GET /health and /images/NAME needs one)' "$TMP/server.log"; echo $?) \
  "$(grep 'API keys' "$TMP/server.log")"
# (the line is printed just after /health turns 200: give it a moment)
for _ in $(seq 20); do grep -q '^ready' "$TMP/server.log" && break; sleep 0.1; done
check "ready line: its curl sends the Authorization header" \
  $(grep -q "^ready: try: curl -s -H 'Authorization: Bearer KEY' -d " "$TMP/server.log"; echo $?) \
  "$(grep '^ready' "$TMP/server.log")"
check "serve --help: --api-keys exempts GET /images/NAME" \
  $("$SDSERVE" serve --help 2>&1 | tr -s ' \n' ' ' | grep -q 'but GET /health and GET /images/NAME'; echo $?) \
  "$("$SDSERVE" serve --help 2>&1 | grep -A2 -- '--api-keys ')"

st=$(code "$BASE/health")
check "GET /health without a key -> 200" $([ "$st" = 200 ]; echo $?) "status $st"
st=$(code "$BASE/metrics")
check "GET /metrics without a key -> 401" $([ "$st" = 401 ]; echo $?) "status $st"
st=$(code "$BASE/txt2img" -d 'prompt=a fox&width=64&height=64&num_inference_steps=1')
c=$(json "$TMP/body" 'j["status"]+"/"+j["code"]')
check "POST /txt2img without a key -> 401 JSON error" $([ "$st" = 401 ] && [ "$c" = error/unauthorized ]; echo $?) "status $st body $(head -c 200 "$TMP/body")"
check "401 carries WWW-Authenticate: Bearer" $(grep -qi '^WWW-Authenticate: Bearer' "$TMP/hdr"; echo $?) "$(cat "$TMP/hdr")"
st=$(code "$BASE/txt2img" -H "Authorization: Bearer ${KEY_ENV}x" -d 'prompt=a fox&width=64&height=64&num_inference_steps=1')
m=$(json "$TMP/body" 'j["message"]')
check "wrong key -> 401 'not valid'" $([ "$st" = 401 ] && [[ "$m" == *"not valid"* ]]; echo $?) "status $st body $(head -c 200 "$TMP/body")"
st=$(code "$BASE/txt2img" -H "Authorization: Basic $KEY_ENV" -d 'prompt=a fox')
check "Basic with the bare key (not user:password in base64) -> 401" $([ "$st" = 401 ]; echo $?) "status $st"
st=$(code "$BASE/txt2img" -H "Authorization: Basic $(printf 'webui:%sx' "$KEY_ENV" | base64 -w0)" -d 'prompt=a fox')
check "Basic with a wrong password -> 401" $([ "$st" = 401 ]; echo $?) "status $st"
st=$(code "$BASE/txt2img" -H "Authorization: Basic $(printf 'webui:%s' "$KEY_ENV" | base64 -w0)" -d 'prompt=a fox&width=64&height=64&num_inference_steps=1&seed=5')
check "Basic user:KEY (A1111 clients' --api-auth) -> 200" $([ "$st" = 200 ]; echo $?) "status $st body $(head -c 200 "$TMP/body")"
st=$(code "$BASE/txt2img" -H "Authorization: Bearer $KEY_ENV" -d 'prompt=a fox&width=64&height=64&num_inference_steps=1&seed=5')
n=$(json "$TMP/body" 'len(j["images"]) if j.get("status")=="success" else -1')
check "key from SDSERVE_API_KEYS: txt2img -> 200 with an image" $([ "$st" = 200 ] && [ "$n" = 1 ]; echo $?) "status $st body $(head -c 300 "$TMP/body")"
url=$(json "$TMP/body" 'j["images"][0]["image_url"]')
st=$(code "$url")
check "sync image URL opens without a key (browser) -> 200 PNG" $([ "$st" = 200 ] && [ "$(png_size "$TMP/body")" = 64x64 ]; echo $?) "status $st"
st=$(code "$url" -H "Authorization: Bearer $KEY_FILE")
check "key from --api-keys-file: image -> 200 PNG" $([ "$st" = 200 ] && [ "$(png_size "$TMP/body")" = 64x64 ]; echo $?) "status $st"
st=$(code "$BASE/metrics" -H "Authorization: Bearer $KEY_FILE")
check "GET /metrics with a key -> 200" $([ "$st" = 200 ]; echo $?) "status $st"

# jobs belong to the key that made them: another key gets the unknown-id 404
A="Authorization: Bearer $KEY_ENV"; B="Authorization: Bearer $KEY_FILE"
st=$(code "$BASE/jobs/txt2img" -H "$A" -d 'prompt=long&width=256&height=256&num_inference_steps=150')
aurl=$(json "$TMP/body" 'j["status_url"]'); aid=${aurl##*/}
check "key A: POST /jobs/txt2img -> 202" $([ "$st" = 202 ] && [ ${#aid} = 32 ]; echo $?) "status $st body $(head -c 200 "$TMP/body")"
fake=0123456789abcdef0123456789abcdef
code "$BASE/jobs/$fake" -H "$B" >/dev/null; cp "$TMP/body" "$TMP/unknown.json"
st=$(code "$aurl" -H "$B")
same=$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); u=json.load(open(sys.argv[2])); print(a==json.loads(json.dumps(u).replace(sys.argv[4], sys.argv[3])))' "$TMP/body" "$TMP/unknown.json" "$aid" "$fake" 2>&1)
check "key B: GET of A's job -> 404, same body as an unknown id" $([ "$st" = 404 ] && [ "$same" = True ]; echo $?) "status $st same $same body $(head -c 200 "$TMP/body")"
st=$(code "$aurl" -X DELETE -H "$B")
check "key B: DELETE of A's job -> 404" $([ "$st" = 404 ] && [ "$(json "$TMP/body" 'j["code"]')" = not_found ]; echo $?) "status $st body $(head -c 200 "$TMP/body")"
st=$(code "$aurl" -H "$A")
s1=$(json "$TMP/body" 'j["state"]')
check "key A still reads its job, not cancelled by B" $([ "$st" = 200 ] && { [ "$s1" = queued ] || [ "$s1" = running ]; }; echo $?) "status $st state $s1"
st=$(code "$aurl")
check "GET of a job without a key -> 401" $([ "$st" = 401 ]; echo $?) "status $st"
st=$(code "$aurl" -X DELETE -H "$A")
check "key A: DELETE of its own job -> 200" $([ "$st" = 200 ]; echo $?) "status $st body $(head -c 200 "$TMP/body")"
code "$BASE/jobs/txt2img" -H "$A" -d 'prompt=a fox&width=64&height=64&num_inference_steps=1&seed=6' >/dev/null
aurl=$(json "$TMP/body" 'j["status_url"]')
for _ in $(seq 300); do code "$aurl" -H "$A" >/dev/null; [ "$(json "$TMP/body" 'j["state"]')" = succeeded ] && break; sleep 0.1; done
iurl=$(json "$TMP/body" 'j["images"][0]["image_url"]')
check "key A: async job succeeds" $([ -n "$iurl" ]; echo $?) "$(head -c 300 "$TMP/body")"
st=$(code "$iurl")
check "async image URL opens without a key -> 200 PNG" $([ "$st" = 200 ] && [ "$(png_size "$TMP/body")" = 64x64 ]; echo $?) "status $st"
st=$(code "$aurl" -H "$B")
check "key B: GET of A's finished job -> 404" $([ "$st" = 404 ]; echo $?) "status $st"
stop_server
check "stops cleanly" $([ "$STOP_STATUS" = 0 ]; echo $?) "exit $STOP_STATUS"

# rate limit: 2 a minute, burst 3, per key
SDSERVE_API_KEYS="$KEY_ENV,$KEY_FILE" start_server --model "$MODEL" --rate-limit 2 --rate-burst 3 --metrics-open 1 || exit 1
codes=""
for i in 1 2 3 4; do codes="$codes $(code "$BASE/openapi.json" -H "Authorization: Bearer $KEY_ENV")"; done
check "burst of 3 then 429" $([ "$codes" = " 200 200 200 429" ]; echo $?) "codes$codes"
ra=$(tr -d '\r' <"$TMP/hdr" | sed -n 's/^[Rr]etry-[Aa]fter: //p')
c=$(json "$TMP/body" 'j["code"]')
check "429 has Retry-After >= 1 and code rate_limited" $([ -n "$ra" ] && [ "$ra" -ge 1 ] && [ "$c" = rate_limited ]; echo $?) "Retry-After '$ra' code '$c'"
st=$(code "$BASE/openapi.json" -H "Authorization: Bearer $KEY_FILE")
check "another key is not limited" $([ "$st" = 200 ]; echo $?) "status $st"
st=$(code "$BASE/health")
check "/health is never limited" $([ "$st" = 200 ]; echo $?) "status $st"
st=$(code "$BASE/metrics")
check "--metrics-open 1: /metrics without a key -> 200" $([ "$st" = 200 ]; echo $?) "status $st"
