#!/usr/bin/env bash
# bench/seeds_sd15.sh — the seed contract at full size (API.md: image i of a
# num_outputs=n batch is the image seed+i gives alone): the SD 1.5-shaped
# make-model checkpoint at 512x512, 1 step, through the real server — one
# num_outputs=4 txt2img request against each seed alone — at fp32, at the
# machine's default precision (--precision auto with SD_PRECISION unset:
# bf16x2 with a bf16 VAE on a CPU with AMX, fp32 elsewhere; when that is a
# precision already run, the run is not repeated) and at bf16x2 forced.
# Prints per image "identical" or "different" with the largest difference
# in 8-bit levels (tests/http/pngdiff.py), then "N passed, N failed".
#
# Benchmark tier (minutes: four 512x512 decodes and eight UNet passes per
# precision), not in `make test`; bench/seeds_midsize.sh does the same on a
# smaller checkpoint under every rule, tests/parity/test_batch_seeds.c on
# the tiny models.  Run it on a quiet machine; it needs ~7 GiB of RAM.
#
# Usage: [SDSERVE=PATH] [MODEL=FILE] [VOCAB=FILE] bench/seeds_sd15.sh
#   SDSERVE  default build/sdserve of this repo
#   MODEL    default /tmp/sd15.safetensors, made with
#            `sdserve make-model --preset sd15` when missing
#   VOCAB    CLIP vocabulary (default ../shared/reference/tokenizer/...)
#   PRECISIONS  the --precision values to run (default "fp32 auto bf16x2")
#   SIZE     width = height (default 512; smaller only to check the script)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
sdserve=${SDSERVE:-$here/build/sdserve}
model=${MODEL:-/tmp/sd15.safetensors}
vocab=${VOCAB:-${SD_REF:-$here/../shared/reference}/tokenizer/bpe_simple_vocab_16e6.txt.gz}
precisions=${PRECISIONS:-fp32 auto bf16x2} size=${SIZE:-512}
unset SD_PRECISION SD_CONV_WINOGRAD SD_SPLIT
. "$here/bench/lib.sh"
need_sd15_model "$sdserve" "$model" || exit 1
server_tmp seeds-sd15
pass=0 fail=0 done_precisions=" "
FORM=(-F 'prompt=a lighthouse on a cliff at dusk, oil painting' -F negative_prompt=blurry -F width="$size" -F height="$size"
      -F num_inference_steps=1 -F guidance_scale=7.5)

json() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }

# run PRECISION: one server, the batch, each seed alone
run() {
  local prec=$1 base used i t0
  if ! start_sd15_server "$sdserve" "$model" "$vocab" "$prec" "$tmp/data" "$tmp/server-$prec.log"; then
    echo "FAIL - [$prec] server did not start: $(tail -3 "$tmp/server-$prec.log")"; fail=$((fail + 1)); return
  fi
  used=$(grep -m1 '^precision:' "$tmp/server-$prec.log" | sed 's/^precision: //')
  if [[ "$done_precisions" == *" $used "* ]]; then
    echo "# --precision $prec is $used here: already run"
  else
    done_precisions="$done_precisions$used "
    t0=$(date +%s)
    curl -s -o "$tmp/b.json" "${FORM[@]}" -F seed=1234 -F num_outputs=4 "$base/txt2img"
    echo "# [$prec = $used] num_outputs=4: $(( $(date +%s) - t0 )) s"
    for i in 0 1 2 3; do
      t0=$(date +%s)
      curl -s -o "$tmp/s$i.json" "${FORM[@]}" -F seed=$((1234 + i)) -F num_outputs=1 "$base/txt2img"
      curl -s -o "$tmp/b$i.png" "$(json "$tmp/b.json" "j['images'][$i]['image_url']")"
      curl -s -o "$tmp/s$i.png" "$(json "$tmp/s$i.json" 'j["images"][0]["image_url"]')"
      local d
      if [ -s "$tmp/b$i.png" ] && cmp -s "$tmp/b$i.png" "$tmp/s$i.png"; then
        echo "ok - [$prec = $used] ${size}x${size} image $i (seed $((1234 + i))): identical to its seed alone (max 0 levels; $(( $(date +%s) - t0 )) s alone)"
        pass=$((pass + 1))
      else
        d=$(python3 "$here/tests/http/pngdiff.py" "$tmp/b$i.png" "$tmp/s$i.png" 2>&1 | tail -1)
        echo "FAIL - [$prec = $used] ${size}x${size} image $i (seed $((1234 + i))): different from its seed alone ($d)"
        fail=$((fail + 1))
      fi
    done
  fi
  kill $pid; wait $pid 2>/dev/null; pid=
}

echo "# $model, $("$sdserve" --version | head -1), CPU:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
for p in $precisions; do run "$p"; done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
