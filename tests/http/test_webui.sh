#!/usr/bin/env bash
# test_webui.sh — the web page's HTTP side (src/http/webui.c) on the real
# `sdserve serve` with the demo model: GET and HEAD /ui/ serve the built-in
# page as text/html with a strict Content-Security-Policy, its script and
# style likewise; the served bytes name no other host; /ui redirects to
# /ui/, unknown /ui/ paths are 404 in the error shape; GET / sends a browser
# (Accept asks for HTML, not JSON) to /ui/ and keeps answering JSON to API
# clients (curl's default, Accept: application/json, both, text/html;q=0);
# with API keys the page and the browser's redirect need none while the API
# still does; the CSP names the --public-url and S3 --s3-public-url origins
# the images come from; the start-up log names the page (web page: URL/ui/).
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

MODEL=$(demo_model)
BROWSER='text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8'
get() { # get NAME URL curl-args... -> status; body in $TMP/NAME.body, headers in $TMP/NAME.hdr
  local name=$1 url=$2; shift 2
  curl -s -o "$TMP/$name.body" -D "$TMP/$name.hdr" -w '%{http_code}' "$@" "$url"
}
hdr() { grep -i "^$2:" "$TMP/$1.hdr" | head -1 | cut -d' ' -f2- | tr -d '\r'; }

start_server --model "$MODEL" || exit 1
for _ in $(seq 20); do grep -q '^web page' "$TMP/server.log" && break; sleep 0.1; done
check "the start-up log names the page: 'web page: $BASE/ui/'" $(grep -qx "web page: $BASE/ui/" "$TMP/server.log"; echo $?) \
  "$(grep -e '^ready' -e '^web' "$TMP/server.log")"

st=$(get page "$BASE/ui/")
check "GET /ui/ -> 200 text/html; charset=utf-8" \
  $([ "$st" = 200 ] && [ "$(hdr page Content-Type)" = "text/html; charset=utf-8" ]; echo $?) "status $st $(cat "$TMP/page.hdr")"
check "the page is the built-in index.html, byte for byte" $(cmp -s "$TMP/page.body" src/http/webui/index.html; echo $?) \
  "$(head -c 200 "$TMP/page.body")"
csp=$(hdr page Content-Security-Policy)
check "CSP: default-src, script-src, style-src, connect-src 'self'; no inline, no eval" \
  $([[ "$csp" == *"default-src 'self'"* && "$csp" == *"script-src 'self';"* && "$csp" == *"style-src 'self';"* &&
       "$csp" == *"connect-src 'self';"* && "$csp" != *unsafe* ]]; echo $?) "CSP: $csp"
check "CSP: img-src 'self' data: and the public URL's origin" \
  $([[ "$csp" == *"img-src 'self' data: $BASE"* ]]; echo $?) "CSP: $csp"
check "Cache-Control no-cache, nosniff" \
  $([ "$(hdr page Cache-Control)" = no-cache ] && [ "$(hdr page X-Content-Type-Options)" = nosniff ]; echo $?) \
  "$(cat "$TMP/page.hdr")"
st=$(get js "$BASE/ui/app.js"); st2=$(get css "$BASE/ui/app.css")
check "GET /ui/app.js and /ui/app.css -> 200 with their types" \
  $([ "$st$st2" = 200200 ] && [ "$(hdr js Content-Type)" = "text/javascript; charset=utf-8" ] &&
    [ "$(hdr css Content-Type)" = "text/css; charset=utf-8" ] && cmp -s "$TMP/js.body" src/http/webui/app.js &&
    cmp -s "$TMP/css.body" src/http/webui/app.css; echo $?) "status $st $st2"
# the page loads nothing from another host: no absolute URL at all in what is served
ext=$(cat "$TMP/page.body" "$TMP/js.body" "$TMP/css.body" | grep -oiE '(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|https?://' | head -3)
check "the served page, script and style name no other host (no http:// or https://)" $([ -z "$ext" ]; echo $?) "$ext"
check "the page links only its own script and style" \
  $(grep -oE '(src|href)="[^"]*"' "$TMP/page.body" | sort | tr '\n' ' ' | grep -qx 'href="app.css" href="data:," src="app.js" '; echo $?) \
  "$(grep -oE '(src|href)="[^"]*"' "$TMP/page.body" | tr '\n' ' ')"
st=$(get head "$BASE/ui/" -I)
check "HEAD /ui/ -> 200, headers only" \
  $([ "$st" = 200 ] && ! grep -qi '<!doctype' "$TMP/head.body" && [ "$(hdr head Content-Length)" = "$(wc -c <src/http/webui/index.html)" ] &&
    [ -n "$(hdr head Content-Security-Policy)" ]; echo $?) "status $st $(cat "$TMP/head.hdr")"

st=$(get dir "$BASE/ui")
check "GET /ui -> 301 Location /ui/" $([ "$st" = 301 ] && [ "$(hdr dir Location)" = /ui/ ]; echo $?) "status $st $(cat "$TMP/dir.hdr")"
for p in /ui/xyz /ui/index.html /ui/app.js/ /ui/../etc/passwd /uix; do
  st=$(get nf "$BASE$p" --path-as-is)
  check "GET $p -> 404 error shape" \
    $([ "$st" = 404 ] && [ "$(json "$TMP/nf.body" 'j["status"]+"/"+j["code"]')" = error/not_found ]; echo $?) \
    "status $st $(head -c 200 "$TMP/nf.body")"
done
st=$(get post "$BASE/ui/" -X POST -d x=1)
check "POST /ui/ -> 405 Allow: GET, HEAD" $([ "$st" = 405 ] && [ "$(hdr post Allow)" = "GET, HEAD" ]; echo $?) "status $st"

st=$(get root "$BASE/" -H "Accept: $BROWSER")
check "GET / from a browser (Accept: text/html ...) -> 302 Location /ui/" \
  $([ "$st" = 302 ] && [ "$(hdr root Location)" = /ui/ ]; echo $?) "status $st $(cat "$TMP/root.hdr")"
st=$(get root "$BASE/" -I -H "Accept: $BROWSER")
check "HEAD / from a browser -> 302" $([ "$st" = 302 ]; echo $?) "status $st"
for a in '' 'application/json' 'text/html, application/json' 'text/html;q=0, */*' '*/*'; do
  if [ -n "$a" ]; then st=$(get root "$BASE/" -H "Accept: $a"); else st=$(get root "$BASE/"); fi
  check "GET / with Accept '${a:-(curl default)}' -> 200 JSON endpoint list" \
    $([ "$st" = 200 ] && [ "$(json "$TMP/root.body" 'j["name"]')" = sdserve ]; echo $?) "status $st $(head -c 200 "$TMP/root.body")"
done
stop_server

# with API keys: the page and a browser's redirect need no key, the API does
KEY=webui-test-key-0123456789
SDSERVE_API_KEYS=$KEY start_server --model "$MODEL" --public-url http://sd.example.test:8443 || exit 1
st=$(get page "$BASE/ui/")
check "keys set: GET /ui/ without a key -> 200" $([ "$st" = 200 ]; echo $?) "status $st"
csp=$(hdr page Content-Security-Policy)
check "CSP img-src names the --public-url origin" $([[ "$csp" == *"img-src 'self' data: http://sd.example.test:8443" ]]; echo $?) "CSP: $csp"
st=$(get root "$BASE/" -H "Accept: $BROWSER")
check "keys set: a browser's GET / -> 302 /ui/ without a key" $([ "$st" = 302 ]; echo $?) "status $st"
st=$(get root "$BASE/")
check "keys set: GET / as an API client without a key -> 401" $([ "$st" = 401 ]; echo $?) "status $st"
st=$(get root "$BASE/" -H "Authorization: Bearer $KEY")
check "keys set: GET / with the key -> 200 JSON" $([ "$st" = 200 ] && [ "$(json "$TMP/root.body" 'j["name"]')" = sdserve ]; echo $?) "status $st"
st=$(get nf "$BASE/ui/nope")
check "keys set: unknown /ui/ path -> 404 without a key" $([ "$st" = 404 ]; echo $?) "status $st"
stop_server

# S3 storage with a public URL: the images' origin is in img-src (nothing is
# uploaded here, so the endpoint need not answer)
AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret start_server --model "$MODEL" --storage s3 \
  --s3-endpoint http://127.0.0.1:9 --s3-bucket webui --s3-addressing path --s3-public-url https://cdn.example.test/imgs || exit 1
st=$(get page "$BASE/ui/")
csp=$(hdr page Content-Security-Policy)
check "S3 storage: CSP img-src names the --s3-public-url origin" \
  $([ "$st" = 200 ] && [[ "$csp" == *"img-src 'self' data: $BASE https://cdn.example.test" ]]; echo $?) "status $st CSP: $csp"
stop_server
check "server exits cleanly" $([ "$STOP_STATUS" = 0 ]; echo $?) "exit $STOP_STATUS"
