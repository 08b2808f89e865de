#!/usr/bin/env bash
# test_s3.sh — the S3 backend against a real (fake) S3 server that verifies
# AWS Signature Version 4 on every request, on loopback: uploads through
# build/tools/s3put (the storage code the server uses) come back byte for
# byte through the returned URL — pre-signed (path-style and virtual-hosted)
# and public; a tampered or expired pre-signed URL is refused; wrong
# credentials fail at once with a clear error that holds no secret; a server
# answering 503 is retried until it succeeds; a stopped server gives retries
# and then a clear error within the time limit.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh
. tests/storage/lib_s3.sh

S3PUT=$BUILD/tools/s3put
s3_setup || exit 0
export AWS_ACCESS_KEY_ID=$S3_AK AWS_SECRET_ACCESS_KEY=$S3_SK
unset AWS_SESSION_TOKEN

head -c 70000 /dev/urandom >"$TMP/a.bin"
head -c 1300000 /dev/urandom >"$TMP/big.bin"

# 1. path-style, pre-signed
url=$("$S3PUT" --endpoint "$EP" --bucket "$S3_BUCKET" --addressing path --prefix sd/test/ --expires 600 \
      --file "$TMP/a.bin" --ext png 2>"$TMP/err1")
st=$(curl -s -D "$TMP/h1" -o "$TMP/a.got" -w '%{http_code}' "$url")
check "path-style upload, pre-signed GET returns the same bytes" \
  $([ "$st" = 200 ] && cmp -s "$TMP/a.bin" "$TMP/a.got"; echo $?) "status $st url $url $(cat "$TMP/err1")"
key=$(sha256sum "$TMP/a.bin" | cut -c1-32)
check "object name is prefix + content hash + .png, URL pre-signed for 600 s" \
  $([[ "$url" == "$EP/$S3_BUCKET/sd/test/$key.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&"* && "$url" == *"&X-Amz-Expires=600&"* ]]; echo $?) "$url"
h=$(tr -d '\r' <"$TMP/h1")
check "object has Content-Type image/png and a long immutable Cache-Control" \
  $(grep -qi '^Content-Type: image/png$' <<<"$h" && grep -qi '^Cache-Control: public, max-age=31536000, immutable$' <<<"$h"; echo $?) "$h"
st=$(curl -s -o "$TMP/bad.xml" -w '%{http_code}' "${url%?}$([ "${url: -1}" = 0 ] && echo 1 || echo 0)")
check "a pre-signed URL with one signature digit changed is refused (403 SignatureDoesNotMatch)" \
  $([ "$st" = 403 ] && grep -q SignatureDoesNotMatch "$TMP/bad.xml"; echo $?) "status $st $(head -c 300 "$TMP/bad.xml")"
st=$(curl -s -o /dev/null -w '%{http_code}' "${url%%\?*}")
check "the object itself exists (anonymous GET on the fake server) = the URL points at a real object" \
  $([ "$st" = 200 ]; echo $?) "status $st"

# 2. a 1.3 MB object (libcurl sends Expect: 100-continue above 1 MiB)
url=$("$S3PUT" --endpoint "$EP" --bucket "$S3_BUCKET" --addressing path --file "$TMP/big.bin" --ext webp 2>"$TMP/err2")
st=$(curl -s -D "$TMP/h2" -o "$TMP/big.got" -w '%{http_code}' "$url")
check "1.3 MB upload round-trips, Content-Type image/webp" \
  $([ "$st" = 200 ] && cmp -s "$TMP/big.bin" "$TMP/big.got" && tr -d '\r' <"$TMP/h2" | grep -qi '^Content-Type: image/webp$'; echo $?) "status $st $(cat "$TMP/err2")"

# 3. virtual-hosted: BUCKET.s3.localhost (libcurl and curl resolve *.localhost
# to loopback).  The fake server checks SigV4 with the canonical URI
# "/bucket/key" for virtual-hosted requests (SigV2's rule; AWS uses the path as
# sent, "/key", which is what we sign: the AWS example in test_s3_sign pins
# it), so it refuses correct virtual-hosted signatures: shown here, then the
# addressing itself is checked on a second server with checks off.
VEP=http://s3.localhost:$S3_PORT
"$S3PUT" --endpoint "$VEP" --bucket "$S3_BUCKET" --addressing virtual --prefix v/ --file "$TMP/a.bin" --ext jpg \
  >/dev/null 2>"$TMP/err3"
check "(fake-server limit) virtual-hosted SigV4 is refused by the checking fake server: SignatureDoesNotMatch" \
  $(grep -q SignatureDoesNotMatch "$TMP/err3"; echo $?) "$(cat "$TMP/err3")"
NPORT=$(free_port)
if s3_start_nosig "$NPORT"; then
  url=$("$S3PUT" --endpoint "http://s3.localhost:$NPORT" --bucket "$S3_BUCKET" --addressing virtual --prefix v/ \
        --file "$TMP/a.bin" --ext jpg 2>"$TMP/err3b")
  st=$(curl -s -o "$TMP/v.got" -w '%{http_code}' "$url")
  st2=$(curl -s -o "$TMP/v2.got" -w '%{http_code}' "$EP/$S3_BUCKET/v/$key.jpg")
  check "virtual-hosted upload lands in $S3_BUCKET/v/KEY.jpg; its URL at $S3_BUCKET.s3.localhost returns the same bytes" \
    $([[ "$url" == "http://$S3_BUCKET.s3.localhost:$NPORT/v/$key.jpg?X-Amz-"* ]] && [ "$st" = 200 ] && [ "$st2" = 200 ] && cmp -s "$TMP/a.bin" "$TMP/v.got" && cmp -s "$TMP/a.bin" "$TMP/v2.got"; echo $?) \
    "status $st/$st2 url $url $(cat "$TMP/err3b")"
  kill -TERM "$S3_NOSIG_PID" 2>/dev/null; wait "$S3_NOSIG_PID" 2>/dev/null; S3_NOSIG_PID=
fi

# 4. public base URL: no signature in the URL, anonymous GET
url=$("$S3PUT" --endpoint "$EP" --bucket "$S3_BUCKET" --addressing path --prefix pub/ --public-url "$EP/$S3_BUCKET/" \
      --file "$TMP/a.bin" --ext png 2>"$TMP/err4")
st=$(curl -s -o "$TMP/p.got" -w '%{http_code}' "$url")
check "public URL = base + prefix + key.png, anonymous GET returns the same bytes" \
  $([ "$url" = "$EP/$S3_BUCKET/pub/$key.png" ] && [ "$st" = 200 ] && cmp -s "$TMP/a.bin" "$TMP/p.got"; echo $?) \
  "status $st url $url $(cat "$TMP/err4")"

# 5. expiry: a URL valid for 2 s works at once and is refused 3 s later
# (X-Amz-Date has whole seconds: a 1 s URL signed late in a second could
# already have expired when fetched "at once")
url=$("$S3PUT" --endpoint "$EP" --bucket "$S3_BUCKET" --addressing path --expires 2 --file "$TMP/a.bin" 2>/dev/null)
st0=$(curl -s -o /dev/null -w '%{http_code}' "$url")
sleep 3.2
st=$(curl -s -o "$TMP/exp.xml" -w '%{http_code}' "$url")
check "pre-signed URL with --expires 2: 200 at once, 403 'Request has expired' after 3 s" \
  $([ "$st0" = 200 ] && [ "$st" = 403 ] && grep -q "Request has expired" "$TMP/exp.xml"; echo $?) \
  "first $st0 then $st $(head -c 300 "$TMP/exp.xml")"

# 6. wrong credentials: one attempt (no retry on 403), clear message, no secret
t0=$(date +%s.%N)
AWS_SECRET_ACCESS_KEY='WRONGsecretWRONGsecret' "$S3PUT" --endpoint "$EP" --bucket "$S3_BUCKET" --addressing path \
  --file "$TMP/a.bin" >"$TMP/out6" 2>"$TMP/err6"; rc=$?
check "wrong secret key: fails after 1 attempt with SignatureDoesNotMatch and a hint about credentials" \
  $([ "$rc" = 1 ] && ! [ -s "$TMP/out6" ] && grep -q "after 1 attempt in" "$TMP/err6" && grep -q "HTTP 403 SignatureDoesNotMatch" "$TMP/err6" && grep -q "check the S3 credentials" "$TMP/err6"; echo $?) "rc $rc $(cat "$TMP/err6")"
check "the error and log hold neither the secret key nor the access key id" \
  $(! grep -q -e WRONGsecret -e "$S3_AK" -e "sdtest/secret" "$TMP/err6"; echo $?) "$(cat "$TMP/err6")"
AWS_ACCESS_KEY_ID=NOSUCHKEY0000000000 "$S3PUT" --endpoint "$EP" --bucket "$S3_BUCKET" --addressing path \
  --file "$TMP/a.bin" >/dev/null 2>"$TMP/err7"; rc=$?
check "unknown access key id: InvalidAccessKeyId, clear error" \
  $([ "$rc" = 1 ] && grep -q "HTTP 403 InvalidAccessKeyId" "$TMP/err7" && ! grep -q NOSUCHKEY "$TMP/err7"; echo $?) "rc $rc $(cat "$TMP/err7")"
"$S3PUT" --endpoint "$EP" --bucket nosuchbucket --addressing path --file "$TMP/a.bin" >/dev/null 2>"$TMP/err8"; rc=$?
check "missing bucket: NoSuchBucket with a hint" \
  $([ "$rc" = 1 ] && grep -q "NoSuchBucket" "$TMP/err8" && grep -q "check the bucket name" "$TMP/err8"; echo $?) "rc $rc $(cat "$TMP/err8")"

# 7. 5xx answers are retried with backoff: a stand-in answers 503 twice, then 200
FPORT=$(free_port)
python3 - "$FPORT" >"$TMP/flaky.log" 2>&1 <<'PY' &
import http.server, sys
n = [0]
class H(http.server.BaseHTTPRequestHandler):
    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        n[0] += 1
        print("PUT", n[0], flush=True)   # before answering: the client may be done at once
        if n[0] <= 2:
            body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            self.send_response(503)
        else:
            body = b""
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
FPID=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$FPORT/" && break; sleep 0.1; done
"$S3PUT" --endpoint "http://127.0.0.1:$FPORT" --bucket "$S3_BUCKET" --addressing path --attempts 5 --timeout 20 \
  --file "$TMP/a.bin" >"$TMP/out9" 2>"$TMP/err9"; rc=$?
kill "$FPID" 2>/dev/null; wait "$FPID" 2>/dev/null
check "503 SlowDown twice, then 200: success on the 3rd attempt, retries logged" \
  $([ "$rc" = 0 ] && [ "$(grep -c 'retrying in' "$TMP/err9")" = 2 ] && grep -q "attempt 2 failed (HTTP 503 SlowDown" "$TMP/err9" && [ "$(grep -c '^PUT' "$TMP/flaky.log")" = 3 ]; echo $?) \
  "rc $rc $(cat "$TMP/err9") $(cat "$TMP/flaky.log")"

# 8. the S3 server stopped: retries with growing delays, then a clear error within the limit
s3_stop
t0=$(date +%s.%N)
"$S3PUT" --endpoint "$EP" --bucket "$S3_BUCKET" --addressing path --attempts 4 --timeout 10 \
  --file "$TMP/a.bin" >"$TMP/out10" 2>"$TMP/err10"; rc=$?
el=$(python3 -c "import time; print('%.1f' % (time.time() - $t0))")
grep -o 'retrying in [0-9.]*' "$TMP/err10" | sed 's/^/# /'
check "S3 server down: 3 retries logged, then 'failed after 4 attempts' naming the connection error" \
  $([ "$rc" = 1 ] && [ "$(grep -c 'retrying in' "$TMP/err10")" = 3 ] && grep -q "failed after 4 attempts" "$TMP/err10" && grep -qi "connect" "$TMP/err10" && ! [ -s "$TMP/out10" ]; echo $?) \
  "rc $rc $(cat "$TMP/err10")"
# the uploader's own clock, as it reports it (not this script's wall clock,
# which a loaded machine stretches): its retries stopped within the limit
took=$(grep -o 'failed after [0-9]* attempts\? in [0-9.]* s' "$TMP/err10" | head -1 | grep -o '[0-9.]* s$' | tr -d ' s')
echo "# wall clock ${el}s, reported ${took}s"
check "retries stay within the time limit (reported ${took}s, limit 10s)" \
  $([ -n "$took" ] && python3 -c "import sys; sys.exit(0 if $took <= 10.0 else 1)"; echo $?) "reported '$took' s"
"$S3PUT" --endpoint "$EP" --bucket "$S3_BUCKET" --addressing path --attempts 50 --timeout 1.5 \
  --file "$TMP/a.bin" >/dev/null 2>"$TMP/err11"; rc=$?
check "the time limit ends retries before the attempts run out" \
  $([ "$rc" = 1 ] && grep -q "failed after [0-9] attempts in 1\.[0-9] s" "$TMP/err11"; echo $?) "rc $rc $(tail -1 "$TMP/err11")"
