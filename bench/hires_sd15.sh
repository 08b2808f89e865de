#!/usr/bin/env bash
# bench/hires_sd15.sh — hires fix on an SD 1.5-shaped checkpoint (issue 18
# item 3): 512x512 -> 1024x1024, 20 first-pass steps + 10 second-pass steps,
# A1111's defaults otherwise (sampler "Euler a" on k-diffusion semantics,
# upscaler Latent, denoising strength 0.7: the second pass runs
# t_enc + 1 = int(0.7 x 10) + 1 = 8 of its 10 steps), at the default
# precision, through `sdserve generate` under /usr/bin/time -v.  Each
# progress line is time-stamped: pass 1 = start -> step 20 (text encoder
# and 20 UNet steps), pass 2 = step 20 -> exit (the latent upscale, 8 UNet
# steps at 1024x1024 and the VAE decode).  REPEATS runs (median by hand).
# Benchmark tier (several minutes on 2 cores), not in `make test`.
# Figures: bench/README.md "Hires fix".
#
# Usage: [MODEL=FILE] [REPEATS=2] [UPSCALER=latent] bench/hires_sd15.sh
#   MODEL    default /tmp/sd15-hires.safetensors, made with
#            `sdserve make-model --preset sd15` when missing (delete it after)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
model=${MODEL:-/tmp/sd15-hires.safetensors}
reps=${REPEATS:-2}
up=${UPSCALER:-latent}
bin=$here/build/sdserve
[ -x "$bin" ] || { echo "build it first: make -j2" >&2; exit 1; }
if [ ! -f "$model" ]; then
  echo "# making $model (make-model --preset sd15)"
  "$bin" make-model --preset sd15 -o "$model" --quiet || exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq 1 "$reps"); do
  t0=$(date +%s.%N)
  /usr/bin/time -v "$bin" generate --model "$model" --prompt "a photograph of an astronaut riding a horse" \
    --seed $((42 + i)) -W 512 -H 512 --steps 20 --sampler "Euler a" --hr-scale 2 --hr-upscaler "$up" \
    --hr-steps 10 --hr-strength 0.7 -o "$out/hr$i.png" 2>&1 >/dev/null |
    while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done >"$out/log$i"
  t1=$(tail -1 "$out/log$i" | cut -d' ' -f1)
  s20=$(grep -m1 ' step 20/' "$out/log$i" | cut -d' ' -f1)
  last=$(grep ' step [0-9]*/' "$out/log$i" | tail -1 | sed 's/.* step \([0-9]*\/[0-9]*\).*/\1/')
  rss=$(grep 'Maximum resident' "$out/log$i" | awk '{print $NF}')
  awk -v a="$t0" -v b="$s20" -v c="$t1" -v r="$rss" -v i="$i" -v l="$last" 'BEGIN {
    printf "run %d: pass 1 %.1f s, pass 2 %.1f s, total %.1f s, last step %s, peak RSS %.2f GiB\n",
      i, b - a, c - b, c - a, l, r / 1048576 }'
done
