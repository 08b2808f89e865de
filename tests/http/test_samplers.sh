#!/usr/bin/env bash
# test_samplers.sh — the sampler / scheduler / timestep_spacing fields end
# to end on the real server and CLI with tiny-sd1: sampler="DPM++ 2M Karras"
# (an A1111 display name, k-diffusion semantics) answers 200 on /txt2img and
# on /jobs/txt2img, is written as "Sampler: DPM++ 2M, Schedule type: Karras",
# equals "DPM++ 2M" + scheduler=karras and `sdserve generate --sampler
# "DPM++ 2M" --scheduler karras` pixel for pixel; a diffusers-semantics run
# is written by its own name (euler_a, not A1111's "Euler a"); scheduler with
# euler, a contradicting scheduler, an unknown sampler, and timestep_spacing
# with a k-sampler are 400s naming their field (before a job is made);
# timestep_spacing=trailing changes the picture of a diffusers sampler;
# GET /samplers lists every name; a diffusers folder whose scheduler config
# says trailing makes that the default spacing.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

REF=${SD_REF:-../shared/reference}
F='Content-Type: application/x-www-form-urlencoded'
ARGS='prompt=a photograph of an astronaut riding a horse&negative_prompt=blurry&seed=7&width=64&height=48&num_inference_steps=4'

# refused NAME PATH BODY FIELD FRAGMENT (gen, pixels_equal: lib.sh)
refused() { refused_field "$@"; }

start_server --model "$REF/models/tiny-sd1" || exit 1
check "sampler=DPM++ 2M Karras answers 200" $([ "$(gen karras 'sampler=DPM%2B%2B%202M%20Karras')" = 200 ]; echo $?) \
  "$(cat "$TMP/karras.json")"
check "sampler=DPM++ 2M with scheduler=karras answers 200" \
  $([ "$(gen split 'sampler=DPM%2B%2B%202M' scheduler=karras)" = 200 ]; echo $?) "$(cat "$TMP/split.json")"
check "\"DPM++ 2M Karras\" = \"DPM++ 2M\" + scheduler=karras, pixel for pixel" \
  $(pixels_equal "$TMP/karras.png" "$TMP/split.png"; echo $?) "$(python3 tests/http/pngdiff.py "$TMP/karras.png" "$TMP/split.png")"
check "PNG parameters: Sampler: DPM++ 2M, Schedule type: Karras" \
  $(grep -aq 'Steps: 4, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7' "$TMP/karras.png"; echo $?) \
  "$(grep -ao 'Steps: [^,]*, [^,]*, [^,]*' "$TMP/karras.png" | head -1)"
check "k_dpmpp_2m with scheduler=exponential answers 200" \
  $([ "$(gen kexp sampler=k_dpmpp_2m scheduler=exponential)" = 200 ]; echo $?) "$(cat "$TMP/kexp.json")"
check "another schedule, another picture" $(! pixels_equal "$TMP/karras.png" "$TMP/kexp.png"; echo $?) "same pixels"
check "diffusers euler_a answers 200" $([ "$(gen dea sampler=euler_a)" = 200 ]; echo $?) "$(cat "$TMP/dea.json")"
check "\"Euler a\" (k-diffusion) answers 200" $([ "$(gen kea 'sampler=Euler%20a')" = 200 ]; echo $?) "$(cat "$TMP/kea.json")"
check "diffusers euler_a and A1111's Euler a are different pictures" \
  $(! pixels_equal "$TMP/dea.png" "$TMP/kea.png"; echo $?) "same pixels"
check "PNG parameters name them apart: Sampler: euler_a / Sampler: Euler a, Schedule type: Automatic" \
  $(grep -aq 'Sampler: euler_a, CFG' "$TMP/dea.png" && grep -aq 'Sampler: Euler a, Schedule type: Automatic, CFG' "$TMP/kea.png"; echo $?) \
  "$(grep -ao 'Sampler: [^,]*' "$TMP/dea.png" "$TMP/kea.png")"
check "euler with timestep_spacing=trailing answers 200" \
  $([ "$(gen trail sampler=euler timestep_spacing=trailing)" = 200 ] && [ "$(gen lead sampler=euler timestep_spacing=leading)" = 200 ] &&
    [ "$(gen euler sampler=euler)" = 200 ]; echo $?) "$(cat "$TMP/trail.json")"
check "timestep_spacing: trailing changes the picture, leading is tiny-sd1's own (its scheduler config)" \
  $(! pixels_equal "$TMP/trail.png" "$TMP/lead.png" && pixels_equal "$TMP/lead.png" "$TMP/euler.png"; echo $?) \
  "$(python3 tests/http/pngdiff.py "$TMP/lead.png" "$TMP/euler.png")"

st=$(curl -s -o "$TMP/job.json" -w '%{http_code}' -H "$F" --data "$ARGS&sampler=DPM%2B%2B%202M%20Karras" "$BASE/jobs/txt2img")
id=$(json "$TMP/job.json" 'j["id"]')
for _ in $(seq 1 120); do
  curl -s -o "$TMP/jobst.json" "$BASE/jobs/$id"
  s=$(json "$TMP/jobst.json" 'j["state"]')
  [ "$s" = succeeded ] || [ "$s" = failed ] && break
  sleep 0.5
done
url=$(json "$TMP/jobst.json" 'j["images"][0]["image_url"]')
curl -s -o "$TMP/job.png" "$url"
check "/jobs/txt2img with sampler=DPM++ 2M Karras: 202, then the same picture" \
  $([ "$st" = 202 ] && [ "$s" = succeeded ] && pixels_equal "$TMP/karras.png" "$TMP/job.png"; echo $?) \
  "status $st job $s $(head -c 300 "$TMP/jobst.json")"

"$SDSERVE" generate --model "$REF/models/tiny-sd1" --prompt "a photograph of an astronaut riding a horse" \
  --negative blurry --seed 7 -W 64 -H 48 --steps 4 --sampler "DPM++ 2M" --scheduler karras -o "$TMP/cli.png" \
  >"$TMP/cli.out" 2>"$TMP/cli.err"
check "CLI --sampler \"DPM++ 2M\" --scheduler karras runs" $? "$(tail -3 "$TMP/cli.err")"
check "CLI --sampler \"DPM++ 2M\" --scheduler karras = HTTP, pixel for pixel" \
  $(pixels_equal "$TMP/karras.png" "$TMP/cli.png"; echo $?) "$(python3 tests/http/pngdiff.py "$TMP/karras.png" "$TMP/cli.png")"
"$SDSERVE" generate --model "$REF/models/tiny-sd1" --prompt x --sampler euler --scheduler karras -o "$TMP/no.png" \
  >/dev/null 2>"$TMP/cli2.err"
check "CLI --scheduler with --sampler euler: exit 2 naming --scheduler" \
  $([ $? = 2 ] && grep -q 'scheduler' "$TMP/cli2.err"; echo $?) "$(cat "$TMP/cli2.err")"

refused "scheduler with euler" /txt2img "$ARGS&sampler=euler&scheduler=karras" scheduler 'diffusers semantics'
refused "scheduler with the default (euler_a)" /txt2img "$ARGS&scheduler=karras" scheduler 'k-diffusion'
refused "scheduler contradicting the name" /txt2img "$ARGS&sampler=DPM%2B%2B%202M%20Karras&scheduler=exponential" scheduler contradicts
refused "async: scheduler with euler refused before a job is made" /jobs/txt2img "$ARGS&sampler=euler&scheduler=karras" scheduler 'diffusers semantics'
refused "unknown sampler lists the names" /txt2img "$ARGS&sampler=heun" sampler 'DPM++ 2M SDE'
refused "near-miss spelling" /txt2img "$ARGS&sampler=dpm%2B%2B%202m%20karras" sampler 'k_dpmpp_2m'
refused "unknown scheduler" /txt2img "$ARGS&sampler=Euler&scheduler=simple" scheduler 'sgm_uniform'
refused "timestep_spacing with a k-sampler" /txt2img "$ARGS&sampler=Euler&timestep_spacing=trailing" timestep_spacing 'diffusers'
refused "img2img: unknown timestep_spacing" /img2img "prompt=x&timestep_spacing=spaced" timestep_spacing 'leading, linspace or trailing'

st=$(curl -s -o "$TMP/s.json" -w '%{http_code}' "$BASE/samplers")
v=$(json "$TMP/s.json" '"%d %d %s %s %s" % (len(j["samplers"]), len(j["schedulers"]), [s for s in j["samplers"] if s["name"]=="DPM++ 2M"][0]["automatic"], [s for s in j["samplers"] if s["name"]=="euler_a"][0]["semantics"], "DPM++ 2M SDE Karras" in [n for s in j["samplers"] for n in s.get("with_schedule", [])])')
check "GET /samplers: 12 samplers, 5 schedulers, DPM++ 2M automatic = karras, euler_a diffusers, display names" \
  $([ "$st" = 200 ] && [ "$v" = "12 5 karras diffusers True" ]; echo $?) "status $st: $v $(head -c 300 "$TMP/s.json")"
stop_server

# the diffusers samplers' default spacing is the folder's scheduler config:
# tiny-sd1 with "timestep_spacing": "trailing" in it = --timestep-spacing trailing
mkdir -p "$TMP/trailing-sd1/scheduler"
for p in "$REF"/models/tiny-sd1/*; do [ "$(basename "$p")" = scheduler ] || ln -s "$(realpath "$p")" "$TMP/trailing-sd1/"; done
sed 's/"leading"/"trailing"/' "$REF/models/tiny-sd1/scheduler/scheduler_config.json" >"$TMP/trailing-sd1/scheduler/scheduler_config.json"
cli() { "$SDSERVE" generate --prompt x --seed 3 -W 64 -H 48 --steps 3 --sampler euler "$@" >/dev/null 2>>"$TMP/cli3.err"; }
cli --model "$TMP/trailing-sd1" -o "$TMP/cfg-trailing.png" &&
  cli --model "$REF/models/tiny-sd1" --timestep-spacing trailing -o "$TMP/asked-trailing.png" &&
  cli --model "$REF/models/tiny-sd1" -o "$TMP/own-leading.png"
check "a folder whose scheduler config says trailing: its default = --timestep-spacing trailing" \
  $(pixels_equal "$TMP/cfg-trailing.png" "$TMP/asked-trailing.png" && ! pixels_equal "$TMP/cfg-trailing.png" "$TMP/own-leading.png"; echo $?) \
  "$(tail -3 "$TMP/cli3.err") $(python3 tests/http/pngdiff.py "$TMP/cfg-trailing.png" "$TMP/asked-trailing.png")"
check "the parameters text names the spacing only when asked" \
  $(grep -aq 'Timestep spacing: trailing' "$TMP/asked-trailing.png" && ! grep -aq 'Timestep spacing' "$TMP/cfg-trailing.png"; echo $?) \
  "$(grep -ao 'Sampler: [^\x00]*' "$TMP/asked-trailing.png" | head -1)"
