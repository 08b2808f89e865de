#!/usr/bin/env bash
# test_vae.sh — the VAE override (--vae / SDSERVE_VAE; docs/LOADING.md "VAE
# override") end to end with tiny-sd1: a copy of its own diffusers vae/
# folder given to `serve --vae` gives the same pixels as the built-in VAE,
# GET /health names it, the PNG's parameters carry A1111's "VAE hash" (first
# 10 hex of the file's sha256) and "VAE" entries; the SDSERVE_VAE environment
# variable does the same; `generate --vae` matches the server pixel for
# pixel; a .pt file or a missing path fails the start (serve) or the run
# (generate, exit 1) with a message naming vae and never becomes ready.
set -u
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

REF=${SD_REF:-../shared/reference}
M=$REF/models/tiny-sd1
ARGS='prompt=a photograph of an astronaut riding a horse&negative_prompt=blurry&seed=7&width=64&height=48&num_inference_steps=3'
mkdir -p "$TMP/myvae"
cp "$M/vae/config.json" "$M/vae/diffusion_pytorch_model.safetensors" "$TMP/myvae/"
HASH=$(sha256sum "$TMP/myvae/diffusion_pytorch_model.safetensors" | cut -c1-10)

start_server --model "$M" || exit 1
check "built-in VAE: txt2img answers 200" $([ "$(gen base)" = 200 ]; echo $?) "$(cat "$TMP/base.json")"
curl -s "$BASE/health" >"$TMP/health0.json"
check "built-in VAE: /health model.vae is null" $([ "$(json "$TMP/health0.json" 'j["model"]["vae"]')" = None ]; echo $?) \
  "$(cat "$TMP/health0.json")"
check "built-in VAE: no VAE entries in the parameters" $(! grep -aq 'VAE hash: ' "$TMP/base.png"; echo $?)
stop_server

start_server --model "$M" --vae "$TMP/myvae" || exit 1
check "--vae: txt2img answers 200" $([ "$(gen over)" = 200 ]; echo $?) "$(cat "$TMP/over.json")"
check "--vae (the model's own VAE, copied): same pixels" $(pixels_equal "$TMP/base.png" "$TMP/over.png"; echo $?) \
  "$(pixel_diff "$TMP/base.png" "$TMP/over.png")"
curl -s "$BASE/health" >"$TMP/health1.json"
check "--vae: /health model.vae names it" $([ "$(json "$TMP/health1.json" 'j["model"]["vae"]')" = myvae ]; echo $?) \
  "$(cat "$TMP/health1.json")"
check "--vae: parameters say VAE hash: $HASH, VAE: myvae" \
  $(grep -aq "VAE hash: $HASH, VAE: myvae" "$TMP/over.png"; echo $?) "$(grep -ao 'Steps: [^\x00]*' "$TMP/over.png" | head -1)"
check "--vae: the start-up log names it" $(grep -q "^VAE: myvae (hash $HASH)" "$TMP/server.log"; echo $?)
stop_server

SDSERVE_VAE="$TMP/myvae" start_server --model "$M" || exit 1
curl -s "$BASE/health" >"$TMP/health2.json"
check "SDSERVE_VAE: /health model.vae names it" $([ "$(json "$TMP/health2.json" 'j["model"]["vae"]')" = myvae ]; echo $?) \
  "$(cat "$TMP/health2.json")"
stop_server

"$SDSERVE" generate --model "$M" --prompt "a photograph of an astronaut riding a horse" --negative blurry --seed 7 \
  -W 64 -H 48 --steps 3 --vae "$TMP/myvae" -o "$TMP/cli.png" >"$TMP/cli.out" 2>"$TMP/cli.err"
check "CLI --vae runs" $? "$(tail -3 "$TMP/cli.err")"
check "CLI --vae = server --vae, pixel for pixel" $(pixels_equal "$TMP/over.png" "$TMP/cli.png"; echo $?) \
  "$(pixel_diff "$TMP/over.png" "$TMP/cli.png")"
check "CLI --vae: parameters carry the VAE entries" $(grep -aq "VAE hash: $HASH, VAE: myvae" "$TMP/cli.png"; echo $?)

: >"$TMP/vae.pt"
"$SDSERVE" generate --model "$M" --prompt x --steps 1 -W 64 -H 64 --vae "$TMP/vae.pt" -o "$TMP/no.png" \
  >/dev/null 2>"$TMP/pt.err"
rc=$?
check "CLI --vae x.pt exits 1 naming vae and pickles" $([ $rc = 1 ] && grep -q 'vae' "$TMP/pt.err" \
  && grep -q 'pickle' "$TMP/pt.err"; echo $?) "rc=$rc $(cat "$TMP/pt.err")"

# serve with a bad --vae: exits non-zero, names the VAE, never ready
for bad in "$TMP/vae.pt" "$TMP/absent.safetensors"; do
  port=$(free_port)
  out=$(timeout 120 "$SDSERVE" serve --bind 127.0.0.1 --port "$port" --data-dir "$TMP/data" --model "$M" \
    --vae "$bad" 2>&1)
  rc=$?
  check "serve --vae $(basename "$bad"): exits non-zero" $([ $rc -ne 0 ] && [ $rc -ne 124 ]; echo $?) "rc=$rc"
  check "serve --vae $(basename "$bad"): message names the VAE override" \
    $(printf '%s' "$out" | grep -q "VAE override .*$(basename "$bad")"; echo $?) "$(printf '%s' "$out" | tail -3)"
  check "serve --vae $(basename "$bad"): never ready" $(! printf '%s' "$out" | grep -q '^ready'; echo $?)
done
