#!/usr/bin/env bash
# test_preview_decoder.sh — the preview decoder options (issue 18 item 2;
# docs/SERVER.md "Previews") end to end with tiny-sd1 and the reference's
# tiny TAESD: `serve --preview-decoder DIR --vae-decoder taesd` answers with
# final images decoded by the TAESD (other pixels than the VAE's) whose
# parameters end with A1111's "VAE Decoder: TAESD" (none with the VAE), and
# `generate` with the same options gives the same pixels and text; a missing file,
# --vae-decoder taesd without a decoder, an unknown --vae-decoder and a TAESD
# of another latent width stop serve / worker / generate at start-up with a
# message naming the option (serve and worker never become ready).
set -u
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

REF=${SD_REF:-../shared/reference}
M=$REF/models/tiny-sd1
TAESD=$REF/models/tiny-taesd
ARGS='prompt=a photograph of an astronaut riding a horse&negative_prompt=blurry&seed=7&width=48&height=64&num_inference_steps=3'

start_server --model "$M" || exit 1
check "VAE decode: txt2img answers 200" $([ "$(gen vae)" = 200 ]; echo $?) "$(cat "$TMP/vae.json")"
params() { grep -ao 'Steps: [^[:cntrl:]]*' "$1" | head -1; }
check "VAE decode: no VAE Decoder entry in the parameters" $(params "$TMP/vae.png" | grep -q 'Steps: 3' && \
  ! params "$TMP/vae.png" | grep -q 'VAE Decoder'; echo $?) "$(params "$TMP/vae.png")"
stop_server

start_server --model "$M" --preview-decoder "$TAESD" --vae-decoder taesd || exit 1
check "--vae-decoder taesd: txt2img answers 200" $([ "$(gen taesd)" = 200 ]; echo $?) "$(cat "$TMP/taesd.json")"
check "--vae-decoder taesd: 48x64 PNG" $([ "$(png_size "$TMP/taesd.png")" = 48x64 ]; echo $?) "$(png_size "$TMP/taesd.png")"
check "--vae-decoder taesd: other pixels than the VAE's" $(! pixels_equal "$TMP/vae.png" "$TMP/taesd.png"; echo $?)
check "--vae-decoder taesd: parameters end with A1111's VAE Decoder: TAESD" \
  $(params "$TMP/taesd.png" | grep -q ', VAE Decoder: TAESD$'; echo $?) "$(params "$TMP/taesd.png")"
stop_server
check "--vae-decoder taesd: server stops cleanly" $([ "$STOP_STATUS" = 0 ]; echo $?) "status $STOP_STATUS"

"$SDSERVE" generate --model "$M" --prompt "a photograph of an astronaut riding a horse" --negative blurry --seed 7 \
  -W 48 -H 64 --steps 3 --preview-decoder "$TAESD" --vae-decoder taesd -o "$TMP/cli.png" >/dev/null 2>"$TMP/cli.err"
check "generate --vae-decoder taesd runs" $? "$(tail -3 "$TMP/cli.err")"
check "generate --vae-decoder taesd = serve's pixels" $(pixels_equal "$TMP/taesd.png" "$TMP/cli.png"; echo $?) \
  "$(pixel_diff "$TMP/taesd.png" "$TMP/cli.png")"
check "generate --vae-decoder taesd: VAE Decoder: TAESD in its parameters too" \
  $(params "$TMP/cli.png" | grep -q ', VAE Decoder: TAESD$'; echo $?) "$(params "$TMP/cli.png")"

"$SDSERVE" make-model --preset taesd --latent-channels 3 -q -o "$TMP/taesd3.safetensors" >/dev/null 2>&1

# NAME | options | what the message must say
bad_cases() {
  printf '%s\n' \
    "missing file|--preview-decoder $TMP/absent_decoder.safetensors|preview-decoder" \
    "taesd without a decoder|--vae-decoder taesd|--preview-decoder" \
    "unknown vae-decoder|--vae-decoder fast|vae-decoder" \
    "3 latent channels|--preview-decoder $TMP/taesd3.safetensors|latent channels"
}
while IFS='|' read -r name opts says; do
  # shellcheck disable=SC2086
  for mode in serve worker; do
    port=$(free_port)
    extra=
    [ $mode = worker ] && extra="--queue redis://127.0.0.1:1/0"
    out=$(timeout 120 "$SDSERVE" $mode --bind 127.0.0.1 --port "$port" --data-dir "$TMP/data" --model "$M" $extra \
      $opts 2>&1)
    rc=$?
    [ $mode = worker ] && [ "$name" = "3 latent channels" ] && continue   # loads the model only once Redis answers
    check "$mode $name: exits non-zero naming it" $([ $rc -ne 0 ] && [ $rc -ne 124 ] \
      && printf '%s' "$out" | grep -q -- "$says"; echo $?) "rc=$rc $(printf '%s' "$out" | tail -2)"
    check "$mode $name: never ready" $(! printf '%s' "$out" | grep -q '^ready'; echo $?)
  done
  # shellcheck disable=SC2086
  "$SDSERVE" generate --model "$M" --prompt x --steps 1 -W 64 -H 64 $opts -o "$TMP/no.png" >/dev/null 2>"$TMP/g.err"
  rc=$?
  check "generate $name: exits non-zero naming it" $([ $rc -ne 0 ] && grep -q -- "$says" "$TMP/g.err"; echo $?) \
    "rc=$rc $(cat "$TMP/g.err")"
done < <(bad_cases)
