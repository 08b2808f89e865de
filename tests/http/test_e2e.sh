#!/usr/bin/env bash
# test_e2e.sh — the real `sdserve serve` on the random-weight demo model (made
# on first start, as on a fresh machine), driven with curl the way the product
# document's client does: form-urlencoded (init_image base64 with + / = both
# percent-encoded and raw), plus JSON and multipart.  Returned URLs must fetch
# PNGs of the requested size, every returned seed must reproduce its image
# alone (content-derived names: same bytes = same URL), async jobs, cancel,
# caching headers (If-None-Match: a tag, *, lists, weak tags -> 304), JSON bodies ending with a newline and the job-status words,
# an EXIF-rotated init JPEG used upright, and a clean SIGTERM.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

start_server --sync-wait 120 || exit 1
grep -q "DEMO model: its pictures are noise" "$TMP/server.log"
check "no --model: demo model created, log says its pictures are noise" $? "$(head -30 "$TMP/server.log")"
grep -q "^precision: ${SD_PRECISION:-[a-z0-9]}" "$TMP/server.log"
check "the start-up log names the precision in effect" $? "$(grep '^precision:' "$TMP/server.log")"

FORM='Content-Type: application/x-www-form-urlencoded;charset=utf-8'
post() { # post PATH OUTFILE curl-args... -> prints HTTP status
  local path=$1 out=$2; shift 2
  curl -s -o "$out" -w '%{http_code}' "$@" "$BASE$path"
}

# 1. txt2img exactly as the original client: form body, 3 outputs, odd size
st=$(post /txt2img "$TMP/t1.json" -H "$FORM" --data 'prompt=Anime girl putting her hair up&seed=10086&num_outputs=3&width=72&height=40&num_inference_steps=3&guidance_scale=7.5')
n=$(json "$TMP/t1.json" 'len(j["images"]) if j.get("status")=="success" else -1')
check "form txt2img -> 200 success with 3 images" $([ "$st" = 200 ] && [ "$n" = 3 ]; echo $?) "status $st body $(head -c 300 "$TMP/t1.json")"
seeds=$(json "$TMP/t1.json" '" ".join(str(i["seed"]) for i in j["images"])')
check "seeds are seed+i" $([ "$seeds" = "10086 10087 10088" ]; echo $?) "$seeds"
mimes=$(json "$TMP/t1.json" '" ".join(i["mime_type"] for i in j["images"])')
check "mime types image/png" $([ "$mimes" = "image/png image/png image/png" ]; echo $?) "$mimes"
all_png=0
for i in 0 1 2; do
  url=$(json "$TMP/t1.json" "j['images'][$i]['image_url']")
  case "$url" in "$BASE"/images/*) ;; *) all_png=1; echo "# bad url $url";; esac
  name=${url##*/}
  [[ "$name" =~ ^[0-9a-f]{32}$ ]] || { all_png=1; echo "# name not hex: $name"; }
  curl -s -o "$TMP/img$i.png" "$url"
  sz=$(png_size "$TMP/img$i.png")
  [ "$sz" = 72x40 ] || { all_png=1; echo "# image $i is $sz"; }
done
check "returned URLs fetch 72x40 PNGs with hexadecimal names" $all_png "see above"

# 2. each seed reproduces its image alone
for i in 0 1 2; do
  s=$((10086 + i))
  post /txt2img "$TMP/r$i.json" -H "$FORM" --data "prompt=Anime girl putting her hair up&seed=$s&num_outputs=1&width=72&height=40&num_inference_steps=3&guidance_scale=7.5" >/dev/null
  u1=$(json "$TMP/t1.json" "j['images'][$i]['image_url']")
  u2=$(json "$TMP/r$i.json" "j['images'][0]['image_url']")
  curl -s -o "$TMP/rep$i.png" "$u2"
  d=$(same_image "$TMP/img$i.png" "$TMP/rep$i.png"); rc=$?
  check "seed $s alone reproduces image $i ($d)" $rc "$u1 vs $u2: $d"
done

# 3. the same request as JSON and as multipart gives the same image
post /txt2img "$TMP/j.json" -H 'Content-Type: application/json' --data '{"prompt":"Anime girl putting her hair up","seed":10087,"num_outputs":1,"width":72,"height":40,"num_inference_steps":3,"guidance_scale":7.5}' >/dev/null
check "JSON body: same image as the form body" $([ "$(json "$TMP/j.json" 'j["images"][0]["image_url"]')" = "$(json "$TMP/t1.json" 'j["images"][1]["image_url"]')" ]; echo $?) "$(head -c 300 "$TMP/j.json")"
post /txt2img "$TMP/m.json" -F 'prompt=Anime girl putting her hair up' -F seed=10088 -F width=72 -F height=40 -F num_inference_steps=3 -F guidance_scale=7.5 >/dev/null
check "multipart body: same image as the form body" $([ "$(json "$TMP/m.json" 'j["images"][0]["image_url"]')" = "$(json "$TMP/t1.json" 'j["images"][2]["image_url"]')" ]; echo $?) "$(head -c 300 "$TMP/m.json")"

# 4. no seed: random, in range, and it reproduces
post /txt2img "$TMP/rs.json" -H "$FORM" --data 'prompt=a fox&width=64&height=64&num_inference_steps=2&seed=' >/dev/null
rs=$(json "$TMP/rs.json" 'j["images"][0]["seed"]')
post /txt2img "$TMP/rs2.json" -H "$FORM" --data "prompt=a fox&width=64&height=64&num_inference_steps=2&seed=$rs" >/dev/null
check "empty seed: random seed in [0, 2^53) that reproduces" $(python3 -c "import sys; sys.exit(0 if 0 <= int('$rs') < 2**53 else 1)" && [ "$(json "$TMP/rs.json" 'j["images"][0]["image_url"]')" = "$(json "$TMP/rs2.json" 'j["images"][0]["image_url"]')" ]; echo $?) "seed $rs"

# 5. img2img: an init image whose base64 has + / and =
found=
for s in 1 2 3 4 5 6 7 8 9 10 11 12; do
  post /txt2img "$TMP/i.json" -H "$FORM" --data "prompt=init&seed=$s&width=48&height=32&num_inference_steps=2" >/dev/null
  curl -s -o "$TMP/init.png" "$(json "$TMP/i.json" 'j["images"][0]["image_url"]')"
  b64=$(base64 -w0 "$TMP/init.png")
  if [[ "$b64" == *+* && "$b64" == */* && "$b64" == *= ]]; then found=1; break; fi
done
check "found an init image whose base64 has + / =" $([ -n "$found" ]; echo $?) "none in 12 seeds"
enc=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read().strip(), safe=""))' <(echo "$b64"))
common='prompt=Anime girl putting her hair up&seed=77&num_outputs=2&num_inference_steps=4&guidance_scale=7&strength=0.7'
st=$(post /img2img "$TMP/e.json" -H "$FORM" --data-binary "$common&init_image=$enc")
ue=$(json "$TMP/e.json" 'j["images"][0]["image_url"]')
curl -s -o "$TMP/e.png" "$ue"
check "img2img, percent-encoded base64 -> 200, output has the init image's size" $([ "$st" = 200 ] && [ "$(png_size "$TMP/e.png")" = 48x32 ]; echo $?) "status $st $(head -c 300 "$TMP/e.json") size $(png_size "$TMP/e.png")"
st=$(post /img2img "$TMP/raw.json" -H "$FORM" --data-binary "$common&init_image=$b64")
check "img2img, raw base64 (+ sent as space) -> same images" $([ "$st" = 200 ] && [ "$(json "$TMP/raw.json" 'j["images"]')" = "$(json "$TMP/e.json" 'j["images"]')" ]; echo $?) "status $st $(head -c 300 "$TMP/raw.json")"
python3 -c 'import json,sys; print(json.dumps({"prompt":"Anime girl putting her hair up","seed":77,"num_outputs":2,"num_inference_steps":4,"guidance_scale":7,"strength":0.7,"init_image":"data:image/png;base64,"+sys.argv[1]}))' "$b64" >"$TMP/img.json"
post /img2img "$TMP/ij.json" -H 'Content-Type: application/json' --data-binary @"$TMP/img.json" >/dev/null
check "img2img JSON with a data: URL prefix -> same images" $([ "$(json "$TMP/ij.json" 'j["images"]')" = "$(json "$TMP/e.json" 'j["images"]')" ]; echo $?) "$(head -c 300 "$TMP/ij.json")"
post /img2img "$TMP/im.json" -F 'prompt=Anime girl putting her hair up' -F seed=77 -F num_outputs=2 -F num_inference_steps=4 -F guidance_scale=7 -F strength=0.7 -F "init_image=@$TMP/init.png;type=image/png" >/dev/null
check "img2img multipart with the image as a file part -> same images" $([ "$(json "$TMP/im.json" 'j["images"]')" = "$(json "$TMP/e.json" 'j["images"]')" ]; echo $?) "$(head -c 300 "$TMP/im.json")"
# A batch of 2 and a batch of 1 run different matrix shapes, but no op's
# algorithm or blocking depends on that: the same seed gives the same bytes.
for i in 0 1; do
  post /img2img "$TMP/i7$i.json" -H "$FORM" --data-binary "prompt=Anime girl putting her hair up&seed=$((77 + i))&num_outputs=1&num_inference_steps=4&guidance_scale=7&strength=0.7&init_image=$enc" >/dev/null
  curl -s -o "$TMP/b$i.png" "$(json "$TMP/e.json" "j['images'][$i]['image_url']")"
  curl -s -o "$TMP/a$i.png" "$(json "$TMP/i7$i.json" 'j["images"][0]["image_url"]')"
  d=$(same_image "$TMP/b$i.png" "$TMP/a$i.png"); rc=$?
  check "img2img seed $((77 + i)) alone reproduces batch image $i ($d)" $rc "$d"
done

# 6. an init image larger than 1024 is scaled down keeping its aspect ratio
python3 - "$TMP/wide.png" <<'PY'
import struct, sys, zlib
w, h = 1100, 200
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
rows = b"".join(b"\0" + bytes(v for x in range(w) for v in (x * 7 % 256, y % 256, 90)) for y in range(h))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
post /img2img "$TMP/big.json" -F prompt=wide -F seed=1 -F num_inference_steps=2 -F strength=0.5 -F "init_image=@$TMP/wide.png" >/dev/null
curl -s -o "$TMP/big.png" "$(json "$TMP/big.json" 'j["images"][0]["image_url"]')"
check "1100x200 init image -> 1024x186 output" $([ "$(png_size "$TMP/big.png")" = 1024x186 ]; echo $?) "$(png_size "$TMP/big.png") $(head -c 300 "$TMP/big.json")"

# 7. async: 202, status with progress fields, result = synchronous body
st=$(post /jobs/txt2img "$TMP/a.json" -H "$FORM" --data 'prompt=Anime girl putting her hair up&seed=10086&num_outputs=1&width=72&height=40&num_inference_steps=3&guidance_scale=7.5')
surl=$(json "$TMP/a.json" 'j["status_url"]')
check "POST /jobs/txt2img -> 202 with status_url" $([ "$st" = 202 ] && [[ "$surl" == "$BASE/jobs/"* ]]; echo $?) "status $st $(cat "$TMP/a.json")"
state=
for _ in $(seq 300); do
  curl -s -o "$TMP/s.json" "$surl"; state=$(json "$TMP/s.json" 'j["state"]')
  [ "$state" = succeeded ] && break; sleep 0.1
done
check "async job succeeds with the same image as the sync call" $([ "$state" = succeeded ] && [ "$(json "$TMP/s.json" 'j["images"][0]["image_url"]')" = "$(json "$TMP/t1.json" 'j["images"][0]["image_url"]')" ] && [ "$(json "$TMP/s.json" 'j["step"]==j["total_steps"]==3')" = True ]; echo $?) "$(cat "$TMP/s.json")"
post /jobs/txt2img "$TMP/long.json" -H "$FORM" --data 'prompt=long&width=256&height=256&num_inference_steps=150' >/dev/null
lurl=$(json "$TMP/long.json" 'j["status_url"]')
for _ in $(seq 100); do curl -s -o "$TMP/ls.json" "$lurl"; [ "$(json "$TMP/ls.json" 'j["step"]>0')" = True ] && break; sleep 0.1; done
check "running job reports step, total and an ETA" $([ "$(json "$TMP/ls.json" 'j["state"]=="running" and j["total_steps"]==150 and j["eta_seconds"] is not None')" = True ]; echo $?) "$(cat "$TMP/ls.json")"
curl -s -X DELETE -o /dev/null "$lurl"
for _ in $(seq 100); do curl -s -o "$TMP/ls.json" "$lurl"; [ "$(json "$TMP/ls.json" 'j["state"]')" = cancelled ] && break; sleep 0.1; done
check "DELETE stops a running job between steps" $([ "$(json "$TMP/ls.json" 'j["state"]=="cancelled" and j["step"]<150')" = True ]; echo $?) "$(cat "$TMP/ls.json")"

# 7b. (issue 12) the answer as a README curl sees it: a final newline on every
# JSON body, the 202 and the status in one vocabulary, rounded seconds; and an
# init JPEG marked EXIF orientation 6 used upright (72x40 stored -> 40x72 out)
ends_nl() { [ "$(tail -c 1 "$1" | od -An -tx1 | tr -d ' ')" = 0a ]; }
st=$(post /jobs/txt2img "$TMP/nl.json" -H "$FORM" --data 'prompt=newline&width=16&height=16&num_inference_steps=1')
nurl=$(json "$TMP/nl.json" 'j["status_url"]')
check "202 body: status pending, state queued, final newline" $([ "$st" = 202 ] && [ "$(json "$TMP/nl.json" 'j["status"]+" "+j["state"]')" = "pending queued" ] && ends_nl "$TMP/nl.json"; echo $?) "$(cat "$TMP/nl.json")"
for _ in $(seq 300); do curl -s -o "$TMP/nls.json" "$nurl"; [ "$(json "$TMP/nls.json" 'j["state"]')" = succeeded ] && break; sleep 0.1; done
check "job status: final newline, elapsed_seconds with at most 3 decimals" $(ends_nl "$TMP/nls.json" && grep -qE '"elapsed_seconds":[0-9]+(\.[0-9]{1,3})?[,}]' "$TMP/nls.json"; echo $?) "$(cat "$TMP/nls.json")"
curl -s -o "$TMP/h.json" "$BASE/health"
curl -s -o "$TMP/e.json" "$BASE/nope"
check "sync 200, /health and a 404 end with a newline" $(ends_nl "$TMP/t1.json" && ends_nl "$TMP/h.json" && ends_nl "$TMP/e.json"; echo $?) "$(tail -c 20 "$TMP/t1.json" | od -c | tail -2)"
post /txt2img "$TMP/sj.json" -H "$FORM" --data 'prompt=side&seed=4&width=72&height=40&num_inference_steps=1&output_format=jpeg' >/dev/null
curl -s -o "$TMP/side.jpg" "$(json "$TMP/sj.json" 'j["images"][0]["image_url"]')"
python3 tests/common/jpeg_orient.py --le "$TMP/side.jpg" "$TMP/side6.jpg" 6
post /img2img "$TMP/up.json" -F prompt=upright -F seed=1 -F num_inference_steps=2 -F strength=0.5 -F "init_image=@$TMP/side6.jpg" >/dev/null
curl -s -o "$TMP/up.png" "$(json "$TMP/up.json" 'j["images"][0]["image_url"]')"
check "img2img from a 72x40 JPEG marked EXIF orientation 6 -> 40x72 output" $([ "$(png_size "$TMP/up.png")" = 40x72 ]; echo $?) "$(png_size "$TMP/up.png") $(head -c 300 "$TMP/up.json")"
# 7b. prompt length in token windows (issue 12): 8 windows of 75 tokens are
# accepted (600 one-letter words = 600 tokens with any CLIP vocabulary), 601
# tokens are refused by the async endpoint with 400 before a job exists
words() { python3 -c 'import json, sys; print(json.dumps({"prompt": "x " * int(sys.argv[1]), "negative_prompt": "y " * int(sys.argv[2]), "width": 64, "height": 64, "num_inference_steps": 1, "seed": 5}))' "$@"; }
words 600 600 >"$TMP/w600.json"
st=$(post /txt2img "$TMP/w600r.json" -H 'Content-Type: application/json' --data-binary @"$TMP/w600.json")
check "prompt and negative of 8 windows (600 tokens) -> 200" $([ "$st" = 200 ] && [ "$(json "$TMP/w600r.json" 'j["status"]')" = success ]; echo $?) "status $st $(head -c 300 "$TMP/w600r.json")"
submitted() { curl -s "$BASE/metrics" | awk '$1 == "sdserve_jobs_total{outcome=\"submitted\"}" {print $2}'; }
sub0=$(submitted)
words 601 0 >"$TMP/w601.json"
st=$(post /jobs/txt2img "$TMP/w601r.json" -H 'Content-Type: application/json' --data-binary @"$TMP/w601.json")
check "async prompt of 601 tokens -> 400 naming prompt, the count and the limit, no job" $([ "$st" = 400 ] && [ "$(json "$TMP/w601r.json" 'j["field"]=="prompt" and "601 tokens" in j["message"] and "the limit is 8 windows" in j["message"]')" = True ] && [ "$(submitted)" = "$sub0" ]; echo $?) "status $st $(cat "$TMP/w601r.json") submitted $sub0 -> $(submitted)"
words 1 700 >"$TMP/n700.json"
st=$(post /jobs/txt2img "$TMP/n700r.json" -H 'Content-Type: application/json' --data-binary @"$TMP/n700.json")
check "async negative_prompt of 700 tokens -> 400 naming negative_prompt" $([ "$st" = 400 ] && [ "$(json "$TMP/n700r.json" 'j["field"]')" = negative_prompt ]; echo $?) "status $st $(cat "$TMP/n700r.json")"

# 8. caching headers and 304
u=$(json "$TMP/t1.json" 'j["images"][0]["image_url"]')
h=$(curl -s -D - -o /dev/null "$u" | tr -d '\r')
check "image has ETag and immutable Cache-Control" $(grep -q '^ETag: "'"${u##*/}"'"' <<<"$h" && grep -qi '^Cache-Control: .*immutable' <<<"$h" && grep -qi '^Content-Type: image/png' <<<"$h"; echo $?) "$h"
st=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: \"${u##*/}\"" "$u")
check "If-None-Match -> 304" $([ "$st" = 304 ]; echo $?) "status $st"
# RFC 9110 13.1.2: "*", a list, a weak tag (the weak comparison), several lines; no
# match or a value that is no list -> 200; a 304 has no Content-Type and the 200's length
inm_bad=
for v in '*' ' * ' '"0", W/"'"${u##*/}"'"' 'W/"'"${u##*/}"'"' ', "'"${u##*/}"'",'; do
  st=$(curl -s -o "$TMP/inm.bin" -w '%{http_code}' -H "If-None-Match: $v" "$u")
  { [ "$st" = 304 ] && [ ! -s "$TMP/inm.bin" ]; } || inm_bad="$inm_bad [$v] $st"
done
st=$(curl -s -o /dev/null -w '%{http_code}' -H 'If-None-Match: "0"' -H "If-None-Match: \"${u##*/}\"" "$u")
[ "$st" = 304 ] || inm_bad="$inm_bad [two lines] $st"
for v in '"0"' '*, "'"${u##*/}"'"' '"'"${u##*/}"'" x' "${u##*/}"; do
  st=$(curl -s -o "$TMP/inm.bin" -w '%{http_code}' -H "If-None-Match: $v" "$u")
  { [ "$st" = 200 ] && [ -s "$TMP/inm.bin" ]; } || inm_bad="$inm_bad [$v] $st"
done
st=$(curl -s -o /dev/null -w '%{http_code}' -H 'If-None-Match: *' "$BASE/images/0123456789abcdef0123456789abcdef")
[ "$st" = 404 ] || inm_bad="$inm_bad [* on no image] $st"
check "If-None-Match: * / lists / weak tags -> 304, no match or not a list -> 200, * on no image -> 404" \
  $([ -z "$inm_bad" ]; echo $?) "$inm_bad"
h304=$(curl -s -D - -o /dev/null -H 'If-None-Match: *' "$u" | tr -d '\r')
len=$(curl -s -o /dev/null -w '%{size_download}' "$u")
check "a 304 carries ETag and Cache-Control, no Content-Type, Content-Length the 200's ($len)" \
  $(grep -q '^ETag: "'"${u##*/}"'"' <<<"$h304" && grep -qi '^Cache-Control: .*immutable' <<<"$h304" &&
    ! grep -qi '^Content-Type:' <<<"$h304" && grep -qi "^Content-Length: $len\$" <<<"$h304"; echo $?) "$h304"

# 9. metrics count what happened; access log has lines
curl -s -o "$TMP/metrics.txt" "$BASE/metrics"
check "metrics: requests by endpoint/status, images, latency histogram" $(grep -q 'sdserve_http_requests_total{endpoint="/txt2img",status="200"}' "$TMP/metrics.txt" && grep -q '^sdserve_images_generated_total [1-9]' "$TMP/metrics.txt" && grep -q '^sdserve_job_latency_seconds_count [1-9]' "$TMP/metrics.txt" && awk '$1 == "sdserve_seconds_per_step" && $2 > 0 {f=1} END {exit !f}' "$TMP/metrics.txt"; echo $?) "$(head -40 "$TMP/metrics.txt")"
check "metrics: no request body held when idle, and its cap (--max-buffered-mb) > 0" $(grep -q '^sdserve_request_body_bytes_buffered 0$' "$TMP/metrics.txt" && grep -q '^sdserve_request_body_bytes_limit [1-9]' "$TMP/metrics.txt"; echo $?) "$(grep request_body "$TMP/metrics.txt")"
check "access log line per request" $(grep -qE '^[0-9T:-]+Z 127\.0\.0\.1 "POST /txt2img" 200 [0-9]+ [0-9]+ms' "$TMP/server.log" && grep -qE '"GET /images/[0-9a-f]{32}" 304 ' "$TMP/server.log"; echo $?) "$(tail -3 "$TMP/server.log")"

# 10. a synchronous client that hangs up while its job is queued: the job leaves the queue
post /jobs/txt2img "$TMP/l3.json" -H "$FORM" --data 'prompt=long&width=256&height=256&num_inference_steps=150' >/dev/null
l3=$(json "$TMP/l3.json" 'j["status_url"]')
for _ in $(seq 100); do curl -s -o "$TMP/ls.json" "$l3"; [ "$(json "$TMP/ls.json" 'j["state"]')" = running ] && break; sleep 0.1; done
curl -s -o "$TMP/m0.txt" "$BASE/metrics"
c0=$(awk '$1 == "sdserve_jobs_total{outcome=\"cancelled\"}" {print $2}' "$TMP/m0.txt")
curl -s -o /dev/null --max-time 1 -H "$FORM" --data 'prompt=impatient&width=32&height=32&num_inference_steps=2' "$BASE/txt2img"
gone=
for _ in $(seq 50); do
  curl -s -o "$TMP/m1.txt" "$BASE/metrics"
  c1=$(awk '$1 == "sdserve_jobs_total{outcome=\"cancelled\"}" {print $2}' "$TMP/m1.txt")
  d1=$(awk '$1 == "sdserve_queue_depth" {print $2}' "$TMP/m1.txt")
  [ "$c1" = $((c0 + 1)) ] && [ "$d1" = 0 ] && { gone=1; break; }
  sleep 0.1
done
check "client hung up while queued: its job cancelled and out of the queue" $([ -n "$gone" ]; echo $?) "cancelled $c0 -> $c1, depth $d1"
grep -q '"POST /txt2img" 499 .*client-gone' "$TMP/server.log"
check "access log marks the request client-gone (499)" $? "$(grep 499 "$TMP/server.log" | tail -2)"
curl -s -X DELETE -o /dev/null "$l3"

# 11. SIGTERM with a job running: explicit cancel, clean exit, no partial files
post /jobs/txt2img "$TMP/l2.json" -H "$FORM" --data 'prompt=long&width=256&height=256&num_inference_steps=150' >/dev/null
l2=$(json "$TMP/l2.json" 'j["status_url"]')
for _ in $(seq 100); do curl -s -o "$TMP/ls.json" "$l2"; [ "$(json "$TMP/ls.json" 'j["step"]>0')" = True ] && break; sleep 0.1; done
stop_server
check "SIGTERM: exit status 0" $STOP_STATUS "status $STOP_STATUS"
check "SIGTERM: log says jobs were cancelled and it stopped cleanly" $(grep -q "cancelling queued and running jobs" "$TMP/server.log" && grep -q "stopped cleanly" "$TMP/server.log"; echo $?) "$(tail -5 "$TMP/server.log")"
bad=$(ls -A "$TMP/data/images" | grep -Ev '^[0-9a-f]{32}\.(png|jpg)$' | head -3)
check "no partial or temporary files in the image folder" $([ -z "$bad" ]; echo $?) "$bad"
