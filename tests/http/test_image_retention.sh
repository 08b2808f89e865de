#!/usr/bin/env bash
# test_image_retention.sh — local image retention on the real `sdserve serve`
# with the demo model (docs/STORAGE.md "Retention"): fake images of 400 KiB
# with set ages in DATA/images, then
#   1. --image-retention 86400 --image-store-max-mb 1 --image-min-age 2: the
#      sweep at start removes the 2-day-old image (age) and the oldest of the
#      rest until the store is under 1 MiB (cap); other files stay; a removed
#      image's URL answers 404; a generated image is served at once; an image
#      dropped in behind the server's back takes the store over the cap and a
#      periodic sweep removes the oldest again;
#   2. --image-min-age 3600: over the cap, the one image older than that is
#      removed and the younger ones are pinned (the log says why); a new
#      image is stored and served.
#   3. --storage s3 with --image-retention: refused at start.
# The normal tier only: it measures the store on disk.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

if [ "${SD_SANITIZED:-0}" = 1 ]; then
  echo "# sanitizer tier: skipped (the store's size is measured; test_storage covers the sweeper under ASan)"
  exit 0
fi
MODEL=$(demo_model)
IMG=$TMP/data/images
mkdir -p "$IMG"

# fake TAG KIB AGE: an image file "<TAG as 32 hex>.png" of KIB KiB, its mtime AGE seconds ago
fake() {
  python3 - "$IMG" "$1" "$2" "$3" <<'PY'
import os, sys, time
d, tag, kib, age = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
p = os.path.join(d, "%032x.png" % tag)
open(p, "wb").write(os.urandom(kib * 1024))
t = time.time() - age
os.utime(p, (t, t))
PY
}
has() { [ -f "$IMG/$(printf '%032x' "$1").png" ]; }
# gone TAG: waits up to 10 s for the sweeper to remove it
gone() { for _ in $(seq 100); do has "$1" || return 0; sleep 0.1; done; return 1; }
store_kib() { python3 -c 'import os,sys,re; d=sys.argv[1]; print(sum(os.path.getsize(os.path.join(d,f)) for f in os.listdir(d) if re.fullmatch(r"[0-9a-f]{32}\.(png|jpg|webp)", f))//1024)' "$IMG"; }
code() { local url=$1; shift; curl -s -o "$TMP/body" -w '%{http_code}' "$@" "$url"; }

fake 1 400 7200; fake 2 400 5400; fake 3 400 3600; fake 4 10 172800
echo "not an image" >"$IMG/notes.txt"; touch -d '3 days ago' "$IMG/notes.txt"
start_server --model "$MODEL" --image-retention 86400 --image-store-max-mb 1 --image-min-age 2 || exit 1
check "start-up summary shows the retention settings" $(grep -q 'image retention: age limit 86400 s, size cap 1 MiB' "$TMP/server.log"; echo $?) "$(grep 'image retention' "$TMP/server.log")"
gone 4; r4=$?; gone 1; r1=$?
check "sweep at start: the 2-day-old image (age) and the oldest 400 KiB one (cap) removed" $([ $r4 = 0 ] && [ $r1 = 0 ] && has 2 && has 3; echo $?) "$(ls "$IMG")"
check "a file that is not an image is left alone" $([ -f "$IMG/notes.txt" ]; echo $?) "notes.txt removed"
check "the removal is logged" $(grep -q 'image retention: removed 2 images' "$TMP/server.log"; echo $?) "$(grep 'image retention' "$TMP/server.log")"
st=$(code "$BASE/images/$(printf '%032x' 1)")
check "a removed image's URL -> 404" $([ "$st" = 404 ]; echo $?) "status $st"
st=$(code "$BASE/txt2img" -d 'prompt=a fox&width=64&height=64&num_inference_steps=1&seed=11')
url=$(json "$TMP/body" 'j["images"][0]["image_url"]')
st2=$(code "$url")
check "a generated image is stored and served" $([ "$st" = 200 ] && [ "$st2" = 200 ] && [ "$(png_size "$TMP/body")" = 64x64 ]; echo $?) "status $st / $st2"
kib=$(store_kib)
check "the store is under its 1 MiB cap" $([ "$kib" -le 1024 ]; echo $?) "$kib KiB"
fake 5 400 1800   # behind the server's back: 800 + 400 KiB + the new image
gone 2; r2=$?
kib=$(store_kib)
check "over the cap again: a periodic sweep removes the oldest image, the new ones stay" $([ $r2 = 0 ] && has 3 && has 5 && [ "$kib" -le 1024 ]; echo $?) "$(ls "$IMG"), $kib KiB"
st=$(code "$url")
check "the generated image is still served" $([ "$st" = 200 ]; echo $?) "status $st"
stop_server
check "stops cleanly" $([ "$STOP_STATUS" = 0 ]; echo $?) "exit $STOP_STATUS"

# the pin: young images are kept over the cap
fake 6 400 10; fake 7 400 20; fake 8 400 30
start_server --model "$MODEL" --image-store-max-mb 1 --image-min-age 3600 || exit 1
for _ in $(seq 100); do grep -q 'younger than 3600 s' "$TMP/server.log" && break; sleep 0.1; done
check "over the cap: the image older than --image-min-age removed, the 5 younger pinned (4 fakes, the first run's image), and the log says so" $(grep -q 'removed 1 image (.*5 past a limit are kept because they are younger than 3600 s' "$TMP/server.log" && ! has 3 && has 5 && has 6 && has 7 && has 8; echo $?) "$(grep 'image retention' "$TMP/server.log"; ls "$IMG")"
st=$(code "$BASE/txt2img" -d 'prompt=a fox&width=64&height=64&num_inference_steps=1&seed=12')
url=$(json "$TMP/body" 'j["images"][0]["image_url"]')
st2=$(code "$url")
kib=$(store_kib)
echo "# store over the cap with pinned images: $kib KiB"
check "a new image over the cap is stored and served (pinned)" $([ "$st" = 200 ] && [ "$st2" = 200 ] && [ "$kib" -gt 1024 ]; echo $?) "status $st / $st2, $kib KiB"
stop_server
check "stops cleanly (pinned)" $([ "$STOP_STATUS" = 0 ]; echo $?) "exit $STOP_STATUS"

# S3: the limits are refused at start (a bucket lifecycle rule does that there)
AWS_ACCESS_KEY_ID=AKIAEXAMPLE AWS_SECRET_ACCESS_KEY=example-secret "$SDSERVE" serve --bind 127.0.0.1 --port 0 \
  --model "$MODEL" --data-dir "$TMP/s3" --storage s3 --s3-endpoint http://127.0.0.1:9 --s3-bucket images \
  --image-retention 60 >"$TMP/s3.log" 2>&1
st=$?
check "--image-retention with --storage s3: refused at start naming the setting" $([ $st -ne 0 ] && grep -q 'image-retention.*lifecycle' "$TMP/s3.log"; echo $?) "exit $st: $(tail -2 "$TMP/s3.log")"
