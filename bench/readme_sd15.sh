#!/usr/bin/env bash
# bench/readme_sd15.sh — README's "serve a real checkpoint" command with an SD
# 1.5-shaped single file (`sdserve make-model --preset sd15 --dtype f16`,
# 2.1 GB, its .ldm_config.json removed so the .safetensors stands alone):
# runs tests/http/test_readme_model.sh on it (fresh folder, default ./data,
# no --vocab, no tokenizer beside the file, one 64x64 txt2img) and prints its
# times.  Benchmark tier, not in `make test`: making the file takes ~40 s and
# the run ~40 s more on 2 cores (bench/README.md).
#   bench/readme_sd15.sh [FOLDER]   FOLDER keeps sd15.safetensors between runs
#                                   (default ${SD_BUILD:-build}/bench-sd15)
set -u
cd "$(dirname "$0")/.."
BUILD=${SD_BUILD:-build}
DIR=${1:-$BUILD/bench-sd15}
mkdir -p "$DIR"
if [ ! -f "$DIR/sd15.safetensors" ]; then
  t0=$(date +%s.%N)
  "$BUILD/sdserve" make-model --preset sd15 --dtype f16 -o "$DIR/sd15.safetensors" --quiet || exit 1
  echo "# make-model --preset sd15 --dtype f16: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
fi
rm -f "$DIR/sd15.ldm_config.json"
t0=$(date +%s.%N)
SD_BUILD=$BUILD SD_README_MODELS="$DIR/sd15.safetensors" bash tests/http/test_readme_model.sh
echo "# whole run (start, ready, one txt2img, stop): $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
