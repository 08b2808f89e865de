#!/usr/bin/env bash
# test_hires.sh — hires fix (docs/SERVER.md "Hires fix") end to end on
# tiny-sd1 at 64x64 -> 128x128: with the Lanczos upscaler a two-pass
# POST /txt2img equals, pixel for pixel, POST /txt2img of the first pass,
# its PNG resized by tools/lanczos (base/resample.c, PIL's Lanczos) and
# POST /img2img of that with the same seed, strength = hr_strength and
# steps = hr_steps; the same through A1111's /sdapi/v1 dialect (k-diffusion
# "Euler a", enable_hr); the latent upscalers give the hires size and
# A1111's infotext; enable_hr false ignores the hr_ fields; /jobs/txt2img
# reports the final size and counts both passes' steps.  An OpenAI edit
# with a `size` resizes its image with the same Lanczos (A1111's "Just
# resize"): equal to the edit of the tools/lanczos-resized image.
set -u
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

REF=${SD_REF:-../shared/reference}
M=$REF/models/tiny-sd1
LANCZOS=$BUILD/tools/lanczos
P='a photograph of an astronaut riding a horse'
ARGS="prompt=$P&negative_prompt=blurry&seed=11&width=64&height=64&num_inference_steps=4"
HR='hr_scale=2&hr_upscaler=lanczos&hr_steps=5&hr_strength=0.6'

start_server --model "$M" || exit 1

# ---- seed API: hires (Lanczos) = txt2img -> Lanczos -> img2img ---------------
st=$(gen hr hr_scale=2 hr_upscaler=lanczos hr_steps=5 hr_strength=0.6)
check "seed API: txt2img with hires fix (lanczos) answers 200" $([ "$st" = 200 ]; echo $?) "$(cat "$TMP/hr.json")"
check "seed API: the hires picture is 128x128" $([ "$(png_size "$TMP/hr.png")" = 128x128 ]; echo $?) \
  "$(png_size "$TMP/hr.png")"
check "seed API: infotext has Size 64x64 and A1111's Hires entries" \
  $(grep -aq 'Size: 64x64, .*Denoising strength: 0.6, Hires upscale: 2, Hires steps: 5, Hires upscaler: Lanczos' \
    "$TMP/hr.png"; echo $?) "$(grep -ao 'Steps: [^\x00]*' "$TMP/hr.png" | head -1)"
st=$(gen base)
check "seed API: the first pass alone answers 200" $([ "$st" = 200 ]; echo $?)
"$LANCZOS" "$TMP/base.png" 128 128 "$TMP/up.png"
check "tools/lanczos resizes the first pass to 128x128" $([ "$(png_size "$TMP/up.png")" = 128x128 ]; echo $?)
st=$(curl -s -o "$TMP/i2i.json" -w '%{http_code}' -F "prompt=$P" -F negative_prompt=blurry -F seed=11 \
  -F num_inference_steps=5 -F strength=0.6 -F "init_image=@$TMP/up.png" "$BASE/img2img")
[ "$st" = 200 ] && curl -s -o "$TMP/i2i.png" "$(json "$TMP/i2i.json" 'j["images"][0]["image_url"]')"
check "seed API: img2img of the resized first pass answers 200" $([ "$st" = 200 ]; echo $?) "$(cat "$TMP/i2i.json")"
check "seed API: hires (lanczos) = txt2img -> Lanczos -> img2img, pixel for pixel" \
  $(pixels_equal "$TMP/hr.png" "$TMP/i2i.png"; echo $?) "$(pixel_diff "$TMP/hr.png" "$TMP/i2i.png")"
check "seed API: and differs from a plain upscale (the second pass ran)" \
  $(! pixels_equal "$TMP/hr.png" "$TMP/up.png"; echo $?)

# ---- an edit's image resized to `size` with Lanczos, as A1111 -----
PX="python3 tests/http/inpaint_px.py"
"$LANCZOS" "$TMP/up.png" 80 48 "$TMP/up80.png"
for e in "sized up.png 80x48" "pre up80.png auto"; do
  set -- $e
  st=$(curl -s -o "$TMP/ed-$1.json" -w '%{http_code}' -F "prompt=$P" -F seed=11 -F steps=3 -F strength=0.6 \
    -F "size=$3" -F "image=@$TMP/$2" "$BASE/v1/images/edits")
  $PX b64-json "$TMP/ed-$1.json" data 0 "$TMP/ed-$1.png" 2>/dev/null
  check "OpenAI edit ($1, size $3) answers 200 at 80x48" \
    $([ "$st" = 200 ] && [ "$(png_size "$TMP/ed-$1.png")" = 80x48 ]; echo $?) "$st $(head -c 300 "$TMP/ed-$1.json")"
done
check "OpenAI edit: size 80x48 = the edit of the Lanczos-resized image, pixel for pixel" \
  $(pixels_equal "$TMP/ed-sized.png" "$TMP/ed-pre.png"; echo $?) "$(pixel_diff "$TMP/ed-sized.png" "$TMP/ed-pre.png")"

# ---- the latent upscalers ----------------------------------------------------
for u in latent latent-nearest-exact; do
  st=$(gen "lat-$u" hr_scale=1.5 "hr_upscaler=$u")
  check "seed API: hires $u answers 200 at 96x96" \
    $([ "$st" = 200 ] && [ "$(png_size "$TMP/lat-$u.png")" = 96x96 ]; echo $?) "$st $(cat "$TMP/lat-$u.json")"
done
check "seed API: the two latent upscalers give different pictures" \
  $(! pixels_equal "$TMP/lat-latent.png" "$TMP/lat-latent-nearest-exact.png"; echo $?)
check "seed API: default strength 0.75 and upscaler Latent in the infotext" \
  $(grep -aq 'Denoising strength: 0.75, Hires upscale: 1.5, Hires upscaler: Latent' "$TMP/lat-latent.png"; echo $?) \
  "$(grep -ao 'Steps: [^\x00]*' "$TMP/lat-latent.png" | head -1)"
st=$(gen rs hr_resize_x=80)
check "seed API: hr_resize_x 80 alone keeps the aspect: 80x80" \
  $([ "$st" = 200 ] && [ "$(png_size "$TMP/rs.png")" = 80x80 ]; echo $?) "$st $(cat "$TMP/rs.json")"

# ---- /jobs/txt2img: the final size, progress over both passes ---------------
st=$(curl -s -o "$TMP/job.json" -w '%{http_code}' -H 'Content-Type: application/x-www-form-urlencoded' \
  --data "$ARGS&$HR" "$BASE/jobs/txt2img")
id=$(json "$TMP/job.json" 'j["id"]')
for _ in $(seq 1 600); do
  curl -s -o "$TMP/js.json" "$BASE/jobs/$id"
  case "$(json "$TMP/js.json" 'j["state"]')" in succeeded|failed|cancelled) break ;; esac
  sleep 0.1
done
check "/jobs/txt2img with hires: succeeded, status width x height 128x128" \
  $([ "$(json "$TMP/js.json" 'j["state"]')" = succeeded ] &&
    [ "$(json "$TMP/js.json" '"%dx%d" % (j["width"], j["height"])')" = 128x128 ]; echo $?) \
  "$(head -c 600 "$TMP/js.json")"
# euler_a (diffusers): pass 1 runs 4 steps, pass 2 int(5 * 0.6) = 3
check "/jobs/txt2img with hires: step = total_steps = 4 + 3" \
  $([ "$(json "$TMP/js.json" 'j["total_steps"]')" = 7 ] && [ "$(json "$TMP/js.json" 'j["step"]')" = 7 ]; echo $?) \
  "$(head -c 600 "$TMP/js.json")"

# ---- A1111 dialect ------------------------------------------------------------
J='Content-Type: application/json'
a1111() { curl -s -o "$2" -w '%{http_code}' -H "$J" -d "$1" "$BASE$3"; }
b64png() { python3 -c 'import base64,json,sys; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["images"][0]))' "$1" "$2"; }
A='"prompt": "'"$P"'", "negative_prompt": "blurry", "seed": 11, "width": 64, "height": 64, "sampler_name": "Euler a"'
st=$(a1111 "{$A, \"steps\": 4, \"enable_hr\": true, \"hr_scale\": 2, \"hr_upscaler\": \"Lanczos\", \"hr_second_pass_steps\": 5, \"denoising_strength\": 0.6}" \
  "$TMP/a_hr.json" /sdapi/v1/txt2img)
[ "$st" = 200 ] && b64png "$TMP/a_hr.json" "$TMP/a_hr.png"
check "A1111: txt2img enable_hr (Lanczos) answers 200 at 128x128" \
  $([ "$st" = 200 ] && [ "$(png_size "$TMP/a_hr.png")" = 128x128 ]; echo $?) "$st $(head -c 400 "$TMP/a_hr.json")"
st=$(a1111 "{$A, \"steps\": 4, \"hr_scale\": 2, \"denoising_strength\": 0.6}" "$TMP/a_base.json" /sdapi/v1/txt2img)
[ "$st" = 200 ] && b64png "$TMP/a_base.json" "$TMP/a_base.png"
check "A1111: enable_hr absent ignores hr_scale and denoising_strength: 64x64" \
  $([ "$st" = 200 ] && [ "$(png_size "$TMP/a_base.png")" = 64x64 ]; echo $?) "$st $(head -c 400 "$TMP/a_base.json")"
st=$(a1111 "{$A, \"steps\": 4, \"enable_hr\": 1, \"hr_scale\": 2, \"hr_upscaler\": \"Lanczos\", \"hr_second_pass_steps\": 5, \"denoising_strength\": 0.6}" \
  "$TMP/a_hr1.json" /sdapi/v1/txt2img)
[ "$st" = 200 ] && b64png "$TMP/a_hr1.json" "$TMP/a_hr1.png"
check "A1111: enable_hr 1 is true (as A1111's pydantic reads it): 128x128, the same image as true" \
  $([ "$st" = 200 ] && [ "$(png_size "$TMP/a_hr1.png")" = 128x128 ] && cmp -s "$TMP/a_hr.png" "$TMP/a_hr1.png"; echo $?) "$st $(head -c 400 "$TMP/a_hr1.json")"
"$LANCZOS" "$TMP/a_base.png" 128 128 "$TMP/a_up.png"
st=$(a1111 "{$A, \"init_images\": [\"$(base64 -w0 "$TMP/a_up.png")\"], \"steps\": 5, \"denoising_strength\": 0.6}" \
  "$TMP/a_i2i.json" /sdapi/v1/img2img)
[ "$st" = 200 ] && b64png "$TMP/a_i2i.json" "$TMP/a_i2i.png"
check "A1111: img2img of the resized first pass answers 200" $([ "$st" = 200 ]; echo $?) "$(head -c 400 "$TMP/a_i2i.json")"
check "A1111 (k-diffusion Euler a): hires = txt2img -> Lanczos -> img2img, pixel for pixel" \
  $(pixels_equal "$TMP/a_hr.png" "$TMP/a_i2i.png"; echo $?) "$(pixel_diff "$TMP/a_hr.png" "$TMP/a_i2i.png")"
st=$(a1111 "{$A, \"steps\": 4, \"enable_hr\": true}" "$TMP/a_lat.json" /sdapi/v1/txt2img)
[ "$st" = 200 ] && b64png "$TMP/a_lat.json" "$TMP/a_lat.png"
check "A1111: enable_hr alone = hr_scale 2, Latent: 128x128" \
  $([ "$st" = 200 ] && [ "$(png_size "$TMP/a_lat.png")" = 128x128 ]; echo $?) "$st $(head -c 400 "$TMP/a_lat.json")"
notes() { python3 -c 'import json,sys; print(json.dumps(json.loads(json.load(open(sys.argv[1]))["info"])["notes"]))' "$1"; }
st=$(a1111 "{$A, \"steps\": 4, \"enable_hr\": true, \"hr_prompt\": \"\", \"hr_sampler_name\": \"Use same sampler\", \"hr_scheduler\": \"Use same scheduler\", \"hr_checkpoint_name\": \"Use same checkpoint\", \"hr_negative_prompt\": \"blurry\", \"cfg_scale\": 7, \"hr_cfg\": 7.0}" "$TMP/a_same.json" /sdapi/v1/txt2img)
check "A1111: hr_ fields that say 'the same' (\"\", Use same ..., the first pass's text): no notes, the same image" \
  $([ "$st" = 200 ] && [ "$(notes "$TMP/a_same.json")" = "[]" ] && b64png "$TMP/a_same.json" "$TMP/a_same.png" && cmp -s "$TMP/a_same.png" "$TMP/a_lat.png"; echo $?) "$st $(notes "$TMP/a_same.json" 2>&1 | head -c 300)"
st=$(a1111 "{$A, \"steps\": 4, \"enable_hr\": true, \"hr_prompt\": \"a castle\", \"hr_sampler_name\": \"DPM++ 2M\", \"hr_checkpoint_name\": \"other.safetensors\"}" "$TMP/a_diff.json" /sdapi/v1/txt2img)
check "A1111: a second pass's own prompt, sampler or checkpoint is noted as ignored, naming each" \
  $([ "$st" = 200 ] && notes "$TMP/a_diff.json" | grep -q 'hr_prompt: the second pass uses the first pass.s prompt, ignored' && \
    notes "$TMP/a_diff.json" | grep -q 'hr_sampler_name: ' && notes "$TMP/a_diff.json" | grep -q 'hr_checkpoint_name: '; echo $?) \
  "$st $(notes "$TMP/a_diff.json" 2>&1 | head -c 400)"
check "A1111: its info text names Hires upscale 2 and Hires upscaler Latent" \
  $(grep -aq 'Hires upscale: 2, Hires upscaler: Latent' "$TMP/a_lat.png"; echo $?) \
  "$(grep -ao 'Steps: [^\x00]*' "$TMP/a_lat.png" | head -1)"

stop_server
check "server exits cleanly" "$STOP_STATUS"
