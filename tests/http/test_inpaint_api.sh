#!/usr/bin/env bash
# test_inpaint_api.sh — inpainting through every dialect on the real server with
# tiny-sd1 (docs/INPAINTING.md): the seed API's /img2img (JSON and multipart
# mask), /jobs/img2img, A1111's /sdapi/v1/img2img and OpenAI's
# /v1/images/edits (an RGBA mask; an image with its own transparency),
# `sdserve generate --mask`, tiny-sd1-inpaint (a 9-channel UNet), and a job
# through the Redis queue.  With the overlay (always in A1111, default
# elsewhere) every pixel further than the blur from the mask equals the
# original exactly and the masked pixels change; mask_overlay=0 differs;
# the CLI equals the seed API pixel for pixel; a mask of another size is
# resized (one whose white a downsizing averages below 128 is refused
# before queueing, /jobs/img2img too); an all-white mask repaints
# everything; A1111's infotext entries
# (Mask blur, Mask mode, Inpaint area, Masked area padding, Masked content)
# in the PNG and A1111's info; mask_blur_x / _y blur one axis each.
# Bad masks are refused in
# bad_requests*.cases (test_bad_requests.sh); the engine side is tests/parity/test_inpaint.c.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

REF=${SD_REF:-../shared/reference}
PX="python3 tests/http/inpaint_px.py"
J='Content-Type: application/json'
W=64 H=48 X0=24 Y0=16 X1=40 Y1=32
$PX make-init "$TMP/init.png" $W $H
$PX make-mask "$TMP/mask.png" $W $H $X0 $Y0 $X1 $Y1
$PX make-mask "$TMP/mask_small.png" 32 24 12 8 20 16     # the same box at half size
$PX make-mask "$TMP/white.png" $W $H 0 0 $W $H
$PX make-rgba "$TMP/rgba_mask.png" $W $H $X0 $Y0 $X1 $Y1
$PX make-rgba "$TMP/rgba_init.png" $W $H $X0 $Y0 $X1 $Y1 gray
INIT=$($PX b64 "$TMP/init.png")
MASK=$($PX b64 "$TMP/mask.png")

# body NAME EXTRA-JSON: the seed API's JSON body with the init image and mask
body() {
  printf '{"prompt": "a red door", "seed": 11, "num_inference_steps": 2, "strength": 0.9, "init_image": "%s", %s}' \
    "$INIT" "$1" >"$TMP/$2.body"
  echo "@$TMP/$2.body"
}
# seed NAME EXTRA-JSON: POST /img2img, the image in $TMP/NAME.png; prints the status
seed() { post_image "$1" /img2img "$J" "$(body "$2" "$1")"; }
# outside_equal NAME ORIG OUT MARGIN: every pixel beyond MARGIN of the box equals ORIG, and some inside changed
outside_equal() {
  local r
  r=$($PX compare "$2" "$3" $X0 $Y0 $X1 $Y1 "$4")
  check "$1" $(echo "$r" | awk '{split($2, a, "/"); split($4, b, "/"); exit !(a[1] == a[2] && a[2] > 0 && b[1] > 0)}'; echo $?) "$r"
}

start_server --model "$REF/models/tiny-sd1" || exit 1

st=$(seed whole "\"mask_image\": \"$MASK\", \"inpaint_full_res\": false, \"inpainting_fill\": 1")
check "seed API: /img2img with mask_image (whole picture) answers 200" $([ "$st" = 200 ]; echo $?) "$(head -c 300 "$TMP/whole.json")"
outside_equal "seed API whole picture: unmasked pixels equal the original exactly, masked ones change" \
  "$TMP/init.png" "$TMP/whole.png" 11
check "the output keeps the init image's size" $([ "$(png_size "$TMP/whole.png")" = ${W}x$H ]; echo $?) "$(png_size "$TMP/whole.png")"
check "the parameters are an img2img's (Denoising strength)" $(grep -aq 'Denoising strength: 0.9' "$TMP/whole.png"; echo $?) ""

st=$(seed noover "\"mask_image\": \"$MASK\", \"inpaint_full_res\": false, \"inpainting_fill\": 1, \"mask_overlay\": false")
check "mask_overlay=false answers 200" $([ "$st" = 200 ]; echo $?) "$(head -c 300 "$TMP/noover.json")"
r=$($PX compare "$TMP/init.png" "$TMP/noover.png" $X0 $Y0 $X1 $Y1 11)
check "mask_overlay=false: the model's output as is (unmasked pixels not all the original's)" \
  $(! pixels_equal "$TMP/whole.png" "$TMP/noover.png" && echo "$r" | awk '{split($2, a, "/"); exit !(a[1] < a[2])}'; echo $?) "$r"

st=$(seed onlymasked "\"mask_image\": \"$MASK\", \"inpaint_full_res_padding\": 4")
check "only masked (inpaint_full_res default) with padding answers 200" $([ "$st" = 200 ]; echo $?) "$(head -c 300 "$TMP/onlymasked.json")"
outside_equal "only masked: unmasked pixels equal the original exactly, masked ones change" \
  "$TMP/init.png" "$TMP/onlymasked.png" 11
check "only masked differs from the whole-picture run" $(! pixels_equal "$TMP/whole.png" "$TMP/onlymasked.png"; echo $?) ""

st=$(curl -s -o "$TMP/multi.json" -w '%{http_code}' -F prompt="a red door" -F seed=11 -F num_inference_steps=2 \
  -F strength=0.9 -F inpaint_full_res=0 -F inpainting_fill=1 -F "init_image=@$TMP/init.png" \
  -F "mask_image=@$TMP/mask.png" "$BASE/img2img")
[ "$st" = 200 ] && curl -s -o "$TMP/multi.png" "$(json "$TMP/multi.json" 'j["images"][0]["image_url"]')"
check "multipart: mask_image as a file part gives the same pixels as base64 JSON" \
  $([ "$st" = 200 ] && pixels_equal "$TMP/whole.png" "$TMP/multi.png"; echo $?) "status $st $(pixel_diff "$TMP/whole.png" "$TMP/multi.png" 2>&1 | head -1)"

SMALL=$($PX b64 "$TMP/mask_small.png")
st=$(seed small "\"mask_image\": \"$SMALL\", \"inpaint_full_res\": false, \"inpainting_fill\": 1")
outside_equal "a mask of another size is resized to the image (A1111)" "$TMP/init.png" "$TMP/small.png" 12

WHITE=$($PX b64 "$TMP/white.png")
st=$(seed white "\"mask_image\": \"$WHITE\"")
check "an all-white mask is allowed (repaints everything)" $([ "$st" = 200 ]; echo $?) "$(head -c 300 "$TMP/white.json")"
$PX make-mask "$TMP/thin.png" $W $H 31 8 32 40     # 1 pixel wide: blurred below 128 everywhere
for fr in true false; do
  st=$(seed thin$fr "\"mask_image\": \"$($PX b64 "$TMP/thin.png")\", \"inpaint_full_res\": $fr")
  check "a 1-pixel line blurred below the engine's 128 still runs (only masked: $fr)" $([ "$st" = 200 ]; echo $?) \
    "$(head -c 300 "$TMP/thin$fr.json")"
done
for fill in 2; do   # (0 is the default: the only-masked run above)
  st=$(seed fill$fill "\"mask_image\": \"$MASK\", \"inpainting_fill\": $fill")
  outside_equal "inpainting_fill=$fill: 200, unmasked pixels the original's" "$TMP/init.png" "$TMP/fill$fill.png" 11
done
st=$(seed inv "\"mask_image\": \"$($PX make-mask "$TMP/inv.png" $W $H $X0 $Y0 $X1 $Y1 inv; $PX b64 "$TMP/inv.png")\", \"inpainting_mask_invert\": 1, \"inpaint_full_res\": false, \"inpainting_fill\": 1")
check "inpainting_mask_invert of the inverted mask = the mask" $([ "$st" = 200 ] && pixels_equal "$TMP/whole.png" "$TMP/inv.png"; echo $?) \
  "status $st $(pixel_diff "$TMP/whole.png" "$TMP/inv.png" 2>&1 | head -1)"

st=$(curl -s -o "$TMP/job.json" -w '%{http_code}' -H "$J" --data "$(body "\"mask_image\": \"$MASK\", \"inpaint_full_res\": false, \"inpainting_fill\": 1" job)" "$BASE/jobs/img2img")
id=$(json "$TMP/job.json" 'j["id"]')
for _ in $(seq 1 100); do
  curl -s -o "$TMP/jobst.json" "$BASE/jobs/$id"
  grep -q '"state": *"succeeded"' "$TMP/jobst.json" && break
  sleep 0.1
done
curl -s -o "$TMP/job.png" "$(json "$TMP/jobst.json" 'j["images"][0]["image_url"]')"
check "/jobs/img2img with a mask: 202, then the same pixels as /img2img" \
  $([ "$st" = 202 ] && pixels_equal "$TMP/whole.png" "$TMP/job.png"; echo $?) "status $st $(head -c 300 "$TMP/jobst.json")"
# a mask whose only white pixel the resize to the image averages below the
# engine's 128: nothing to repaint, refused before queueing on both routes
$PX make-dot "$TMP/dot.png" 4096 1 4095 0
DOT=$($PX b64 "$TMP/dot.png")
refused_field_ct "/jobs/img2img, a 4096x1 mask white only in its last pixel: nothing to repaint once resized" \
  /jobs/img2img "$J" "$(body "\"mask_image\": \"$DOT\"" dotjob)" mask_image "nothing to repaint"
refused_field_ct "/img2img, the same mask" /img2img "$J" "$(body "\"mask_image\": \"$DOT\"" dotsync)" mask_image \
  "nothing to repaint.*fitted to the init image"

# A1111: always the overlay
printf '{"prompt": "a red door", "seed": 11, "steps": 2, "denoising_strength": 0.9, "init_images": ["%s"], "mask": "%s", "mask_blur": 4, "inpainting_fill": 1, "inpaint_full_res": false, "inpaint_full_res_padding": 32, "inpainting_mask_invert": 0}' \
  "$INIT" "$MASK" >"$TMP/a1.body"
st=$(curl -s -o "$TMP/a1.json" -w '%{http_code}' -H "$J" --data "@$TMP/a1.body" "$BASE/sdapi/v1/img2img")
$PX b64-json "$TMP/a1.json" images 0 "$TMP/a1.png" 2>/dev/null
check "A1111 /sdapi/v1/img2img with mask answers 200" $([ "$st" = 200 ]; echo $?) "$(head -c 300 "$TMP/a1.json")"
outside_equal "A1111 overlay path: unmasked pixels equal the original exactly, masked ones change" "$TMP/init.png" "$TMP/a1.png" 11
sed -e 's/"inpaint_full_res": false/"inpaint_full_res": true/' "$TMP/a1.body" >"$TMP/a1b.body"
st=$(curl -s -o "$TMP/a1b.json" -w '%{http_code}' -H "$J" --data "@$TMP/a1b.body" "$BASE/sdapi/v1/img2img")
$PX b64-json "$TMP/a1b.json" images 0 "$TMP/a1b.png" 2>/dev/null
outside_equal "A1111 only masked (padding 32): unmasked pixels the original's" "$TMP/init.png" "$TMP/a1b.png" 11

# ---- r2follow: A1111's inpainting infotext, mask_blur_x / mask_blur_y ----
# params FILE: the PNG's "parameters" text
params() { grep -ao 'Steps: [^[:cntrl:]]*' "$1" | head -1; }
# info FILE: A1111's info.infotexts[0]
info() { json "$1" 'json.loads(j["info"])["infotexts"][0]' | tr -d '\n'; }
# has NAME TEXT WANT [UNWANTED]: a check that TEXT holds WANT and not the regex UNWANTED
has() {
  check "$1" $(echo "$2" | grep -qF -- "$3" && { [ -z "${4:-}" ] || ! echo "$2" | grep -q -- "$4"; }; echo $?) "$2"
}
has "infotext, whole picture, original: Mask blur: 4, no Inpaint area nor Masked content" \
  "$(params "$TMP/whole.png")" ', Mask blur: 4' 'Inpaint area\|Masked content\|Mask mode'
has "infotext, only masked, fill: ..., Mask blur: 4, Inpaint area: Only masked, Masked area padding: 4, Masked content: fill" \
  "$(params "$TMP/onlymasked.png")" ', Mask blur: 4, Inpaint area: Only masked, Masked area padding: 4, Masked content: fill'
has "A1111 info (whole picture, original): Mask blur: 4, no Inpaint area" \
  "$(info "$TMP/a1.json")" ', Mask blur: 4' 'Inpaint area\|Masked content'
has "A1111 info (only masked): Mask blur: 4, Inpaint area: Only masked, Masked area padding: 32" \
  "$(info "$TMP/a1b.json")" ', Mask blur: 4, Inpaint area: Only masked, Masked area padding: 32'
sed -e 's/"mask_blur": 4/"mask_blur_x": 2, "mask_blur_y": 6/' -e 's/"inpainting_fill": 1/"inpainting_fill": 2/' \
  -e 's/"inpaint_full_res": false, "inpaint_full_res_padding": 32, "inpainting_mask_invert": 0/"inpaint_full_res": true, "inpaint_full_res_padding": 8, "inpainting_mask_invert": 1/' \
  "$TMP/a1.body" >"$TMP/a1c.body"
st=$(curl -s -o "$TMP/a1c.json" -w '%{http_code}' -H "$J" --data "@$TMP/a1c.body" "$BASE/sdapi/v1/img2img")
i=$(info "$TMP/a1c.json")
check "A1111 info (inverted, blur 2 x 6, latent noise): Mask mode: Inpaint not masked, no Mask blur, padding 8, latent noise" \
  $([ "$st" = 200 ] && echo "$i" | grep -q ', Mask mode: Inpaint not masked, Inpaint area: Only masked, Masked area padding: 8, Masked content: latent noise' &&
    ! echo "$i" | grep -q 'Mask blur'; echo $?) "$st $i"
W1='"mask_image": "'$MASK'", "inpaint_full_res": false, "inpainting_fill": 1'
seed blur3 "$W1, \"mask_blur\": 3" >/dev/null
st=$(seed blurxy3 "$W1, \"mask_blur_x\": 3, \"mask_blur_y\": 3")
check "mask_blur_x = mask_blur_y = 3 gives mask_blur 3's pixels" \
  $([ "$st" = 200 ] && pixels_equal "$TMP/blur3.png" "$TMP/blurxy3.png"; echo $?) "$st $(pixel_diff "$TMP/blur3.png" "$TMP/blurxy3.png")"
# a given mask_blur sets both axes, whatever mask_blur_x/_y say and
# in either order (A1111 v1.10.1's mask_blur setter)
for order in "\"mask_blur\": 3, \"mask_blur_y\": 0" "\"mask_blur_y\": 0, \"mask_blur_x\": 9, \"mask_blur\": 3"; do
  st=$(seed blurw "$W1, $order")
  p=$(params "$TMP/blurw.png")
  check "mask_blur 3 wins over the axes ($order): mask_blur 3's pixels, Mask blur: 3" \
    $([ "$st" = 200 ] && pixels_equal "$TMP/blur3.png" "$TMP/blurw.png" && echo "$p" | grep -q ', Mask blur: 3'; echo $?) \
    "$st $p $(pixel_diff "$TMP/blur3.png" "$TMP/blurw.png")"
done
sed -e 's/"mask_blur": 4/"mask_blur_x": 2, "mask_blur": 4, "mask_blur_y": 6/' "$TMP/a1.body" >"$TMP/a1w.body"
st=$(curl -s -o "$TMP/a1w.json" -w '%{http_code}' -H "$J" --data "@$TMP/a1w.body" "$BASE/sdapi/v1/img2img")
$PX b64-json "$TMP/a1w.json" images 0 "$TMP/a1w.png" 2>/dev/null
check "A1111: mask_blur 4 between mask_blur_x 2 and _y 6 wins: Mask blur: 4, the pixels of mask_blur 4 alone" \
  $([ "$st" = 200 ] && info "$TMP/a1w.json" | grep -q ', Mask blur: 4' && pixels_equal "$TMP/a1.png" "$TMP/a1w.png"; echo $?) \
  "$st $(info "$TMP/a1w.json")"
st=$(seed blurx4 "$W1, \"mask_blur_y\": 0")
p=$(params "$TMP/blurx4.png")
check "mask_blur_y 0 alone: x keeps the default 4, another overlay (x only), no Mask blur entry" \
  $([ "$st" = 200 ] && ! pixels_equal "$TMP/whole.png" "$TMP/blurx4.png" && echo "$p" | grep -q "Steps: 2" && ! echo "$p" | grep -q 'Mask blur'; echo $?) "$st $p"

# OpenAI: the alpha channel, transparent = repaint, no blur
st=$(curl -s -o "$TMP/oai.json" -w '%{http_code}' -F prompt="a red door" -F seed=11 -F steps=2 \
  -F "image=@$TMP/init.png" -F "mask=@$TMP/rgba_mask.png" "$BASE/v1/images/edits")
$PX b64-json "$TMP/oai.json" data 0 "$TMP/oai.png" 2>/dev/null
check "OpenAI edits with an RGBA mask answers 200" $([ "$st" = 200 ]; echo $?) "$(head -c 300 "$TMP/oai.json")"
outside_equal "OpenAI: every opaque-mask pixel equals the input exactly (no blur), the transparent ones change" \
  "$TMP/init.png" "$TMP/oai.png" 0
printf '{"prompt": "a red door", "seed": 11, "steps": 2, "images": [{"image_url": "data:image/png;base64,%s"}], "mask": {"image_url": "data:image/png;base64,%s"}}' \
  "$INIT" "$($PX b64 "$TMP/rgba_mask.png")" >"$TMP/oaij.body"
st=$(curl -s -o "$TMP/oaij.json" -w '%{http_code}' -H "$J" --data "@$TMP/oaij.body" "$BASE/v1/images/edits")
$PX b64-json "$TMP/oaij.json" data 0 "$TMP/oaij.png" 2>/dev/null
check "OpenAI JSON edit: mask {image_url: data URL} gives the multipart pixels" \
  $([ "$st" = 200 ] && pixels_equal "$TMP/oai.png" "$TMP/oaij.png"; echo $?) "status $st $(head -c 300 "$TMP/oaij.json")"
st=$(curl -s -o "$TMP/oai2.json" -w '%{http_code}' -F prompt="a red door" -F seed=11 -F steps=2 \
  -F "image=@$TMP/rgba_init.png" "$BASE/v1/images/edits")
$PX b64-json "$TMP/oai2.json" data 0 "$TMP/oai2.png" 2>/dev/null
outside_equal "OpenAI without a mask: the image's own transparent pixels are repainted, the opaque kept" \
  "$TMP/init.png" "$TMP/oai2.png" 0

stop_server
check "clean exit on SIGTERM" $STOP_STATUS "status $STOP_STATUS"

# a 9-channel inpainting UNet (the mask and masked image as UNet input):
# tiny-sd1's folder with tiny-sd1-inpaint's unet/ (as tests/parity/test_inpaint.c)
M9=$TMP/tiny-sd1-inpaint9
mkdir -p "$M9"
for part in model_index.json scheduler text_encoder tokenizer vae; do ln -s "$(realpath "$REF/models/tiny-sd1/$part")" "$M9/$part"; done
ln -s "$(realpath "$REF/models/tiny-sd1-inpaint/unet")" "$M9/unet"
start_server --model "$M9" || exit 1
st=$(seed nine "\"mask_image\": \"$MASK\", \"inpaint_full_res\": false, \"inpainting_fill\": 1")
check "9-channel model: /img2img with a mask answers 200" $([ "$st" = 200 ]; echo $?) "$(head -c 300 "$TMP/nine.json")"
outside_equal "9-channel model: unmasked pixels equal the original exactly, masked ones change" \
  "$TMP/init.png" "$TMP/nine.png" 11
check "9-channel model: another picture than the 4-channel one" $(! pixels_equal "$TMP/whole.png" "$TMP/nine.png"; echo $?) ""
stop_server

# the shared Redis queue: the decoded mask travels to the worker (docs/WIRE.md mask_image)
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
start_server --model "$REF/models/tiny-sd1" --queue "redis://127.0.0.1:$RPORT/0" --shared-data-dir 1 --workers 1 || exit 1
wait_workers 1
st=$(seed redis "\"mask_image\": \"$MASK\", \"inpaint_full_res\": false, \"inpainting_fill\": 1")
check "through the Redis queue: the same pixels as in process" \
  $([ "$st" = 200 ] && pixels_equal "$TMP/whole.png" "$TMP/redis.png"; echo $?) "status $st $(head -c 300 "$TMP/redis.json")"
stop_server
redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1
wait "$REDIS_PID" 2>/dev/null

"$SDSERVE" generate --model "$REF/models/tiny-sd1" --prompt "a red door" --seed 11 --steps 2 --strength 0.9 \
  --init-image "$TMP/init.png" --mask "$TMP/mask.png" --inpaint-full-res 0 --inpainting-fill 1 \
  -o "$TMP/cli.png" >"$TMP/cli.out" 2>"$TMP/cli.err"
check "CLI --mask runs" $? "$(tail -3 "$TMP/cli.err")"
check "CLI --mask = the seed API, pixel for pixel" $(pixels_equal "$TMP/whole.png" "$TMP/cli.png"; echo $?) \
  "$(pixel_diff "$TMP/whole.png" "$TMP/cli.png" 2>&1)"
"$SDSERVE" generate --model "$REF/models/tiny-sd1" --prompt x --steps 2 --mask "$TMP/mask.png" -o "$TMP/x.png" \
  >/dev/null 2>"$TMP/cli2.err"
check "CLI --mask without --init-image is refused" $([ $? = 2 ] && grep -q -- '--mask only applies' "$TMP/cli2.err"; echo $?) \
  "$(cat "$TMP/cli2.err")"
