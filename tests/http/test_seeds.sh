#!/usr/bin/env bash
# test_seeds.sh — API.md's seed contract through the real server on the tiny
# reference models: image i of a num_outputs=4 request has the same content
# name (the same PNG bytes) as seed+i requested alone, txt2img and img2img,
# at the machine's default precision (`--precision auto` with SD_PRECISION
# unset — tests/run.sh exports fp32 — so bf16x2 with a bf16 VAE on a CPU
# with AMX, fp32 elsewhere), at fp32, and (tiny-sd1) at bf16x2 forced;
# tests/parity/test_batch_seeds.c covers bf16 and more cases in process.
# tiny-sd1 as its fp16 single file (with --vocab), tiny-sd2 as its folder.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh
unset SD_PRECISION
REF=${SD_REF:-$PWD/../shared/reference}
if [ ! -d "$REF/models" ]; then echo "# reference models not found ($REF): skipped"; exit 0; fi
VOCAB=$REF/tokenizer/bpe_simple_vocab_16e6.txt.gz

post() { # post PATH OUTFILE curl-args... -> prints HTTP status
  local path=$1 out=$2; shift 2
  curl -s -o "$out" -w '%{http_code}' "$@" "$BASE$path"
}

# names_of FILE: the image names of a response, space-separated
names_of() { json "$1" '" ".join(i["image_url"].rsplit("/", 1)[-1] for i in j["images"])'; }

# batch_vs_alone LABEL ROUTE curl-args...: num_outputs=4 vs each seed alone
batch_vs_alone() {
  local label=$1 route=$2; shift 2
  local st got want="" i
  st=$(post "$route" "$TMP/b.json" "$@" -F seed=500 -F num_outputs=4)
  got=$(names_of "$TMP/b.json")
  for i in 0 1 2 3; do
    post "$route" "$TMP/s.json" "$@" -F seed=$((500 + i)) -F num_outputs=1 >/dev/null
    want="$want${want:+ }$(names_of "$TMP/s.json")"
  done
  check "$label: num_outputs=4 -> the names of seeds 500..503 alone" \
    $([ "$st" = 200 ] && [ -n "$got" ] && [ "$got" = "$want" ]; echo $?) "status $st; batch: $got; alone: $want"
}

# one_server LABEL PRECISION serve-args...
one_server() {
  local label=$1 prec=$2; shift 2
  start_server --precision "$prec" "$@" || return
  local used
  used=$(grep '^precision:' "$TMP/server.log" | head -1)
  label="$label, --precision $prec ($used)"
  batch_vs_alone "$label txt2img 64x64" /txt2img -F 'prompt=Anime girl putting her hair up' -F negative_prompt=blurry \
    -F width=64 -F height=64 -F num_inference_steps=2 -F guidance_scale=7.5
  if [ ! -f "$TMP/init.png" ]; then
    post /txt2img "$TMP/i.json" -F prompt=init -F seed=3 -F width=64 -F height=64 -F num_inference_steps=1 >/dev/null
    curl -s -o "$TMP/init.png" "$(json "$TMP/i.json" 'j["images"][0]["image_url"]')"
  fi
  batch_vs_alone "$label img2img 64x64" /img2img -F 'prompt=Anime girl putting her hair up' \
    -F num_inference_steps=3 -F guidance_scale=7 -F strength=0.7 -F "init_image=@$TMP/init.png;type=image/png"
  stop_server
  check "$label: clean stop" "$STOP_STATUS" "exit status $STOP_STATUS"
}

for p in auto fp32 bf16x2; do
  if [ $p = bf16x2 ] && ! cpu_bf16; then echo "# no AVX-512 here: bf16x2 is refused at load, skipped"; continue; fi
  one_server "tiny-sd1 single file" $p --model "$REF/models/tiny-sd1-fp16.safetensors" --vocab "$VOCAB"
done
for p in auto fp32; do
  one_server "tiny-sd2 folder" $p --model "$REF/models/tiny-sd2"
done
