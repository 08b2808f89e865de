#!/usr/bin/env bash
# bench/vae_tiled.sh — the tiled VAE decode at full size (issue 15 item 6):
# the SD 1.5-shaped make-model checkpoint's VAE (SDXL's has the same shapes)
# at fp32, through build/tools/vaetile (only the VAE's tensors loaded):
#   1. 1024x1024 untiled then tiled in one process: PSNR and max abs
#      difference of tiled against untiled, and each one's time;
#   2. 1024x1024 untiled and tiled, REPEATS runs each in its own process:
#      every run's time (take the median) and each process's peak RSS;
#   3. 2048x2048 tiled and untiled, one run each in its own process: time
#      and peak RSS (/usr/bin/time -v).
# Benchmark tier (tens of minutes on 2 cores), not in `make test`;
# tests/parity/test_vae_tiled.c checks the same on tiny-sd1.  The untiled
# 2048x2048 decode needs ~12 GiB of RAM.  Figures: bench/README.md "Tiled
# VAE decode".
#
# Usage: [MODEL=FILE] [REPEATS=3] bench/vae_tiled.sh
#   MODEL    default /tmp/sd15.safetensors, made with
#            `sdserve make-model --preset sd15` when missing
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
model=${MODEL:-/tmp/sd15.safetensors}
reps=${REPEATS:-3}
tool=$here/build/tools/vaetile
[ -x "$tool" ] || { echo "build it first: make -j2 tools" >&2; exit 1; }
if [ ! -f "$model" ]; then
  echo "# making $model (make-model --preset sd15)"
  "$here/build/sdserve" make-model --preset sd15 -o "$model" --quiet || exit 1
fi
export SD_PRECISION=fp32
run() {
  echo "== vaetile $*"
  /usr/bin/time -v "$tool" "$model" "$@" 2>&1 |
    grep -E '^vaetile|Maximum resident|Elapsed|failed'
}
run 1024 both 0 1
run 1024 off 0 "$reps"
run 1024 on 0 "$reps"
run 2048 on 0 1
run 2048 off 0 1
