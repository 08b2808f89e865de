#!/usr/bin/env bash
# bench/seeds_midsize.sh — the seed contract (API.md: image i of a
# num_outputs=n batch is the image seed+i gives alone) on a mid-size
# make-model checkpoint whose latents reach 32x32, with each batch-dependent
# path forced on in turn: SD_CONV_WINOGRAD=0/1/auto/wide at fp32, bf16x2
# with its split rule and with SD_SPLIT=k and =m, bf16, the default
# precision (auto: SD_PRECISION unset), and oneDNN capped below this CPU's
# ISA (ONEDNN_MAX_CPU_ISA=AVX512_CORE: AVX-512 without the bf16
# instructions; AVX2: no AVX-512, where oneDNN 2.6 has no bf16 matmul, so
# only fp32 runs there).  Per configuration: txt2img and img2img with
# `sdserve generate -n 4` against each seed alone (-n 1), one line per mode:
# "ok - ..." when all four PNGs are byte-identical, else "FAIL - ..." with
# each image's largest difference in 8-bit levels.  Ends with
# "N passed, N failed".
#
# Benchmark tier (a few minutes: 130 generations), not in `make test`:
# tests/parity/test_batch_seeds.c is the normal tier's version on the tiny
# models, tests/unit/test_batch_rows.c the per-op one.
#
# Usage: bench/seeds_midsize.sh [--sdserve PATH] [--model DIR] [--keep DIR]
#   --model  an existing checkpoint (default: made in a temp dir: demo
#            preset with UNet channels 96,192, attention on both levels)
#   --keep   keep the PNGs there
#   SEEDS_ONLY=REGEX in the environment: only the configurations whose
#   label matches (e.g. SEEDS_ONLY=ONEDNN)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
sdserve=$here/build/sdserve
model=""
keep=""
while [ $# -gt 0 ]; do
  case $1 in
    --sdserve) sdserve=$2; shift 2;;
    --model) model=$2; shift 2;;
    --keep) keep=$2; shift 2;;
    *) echo "usage: $0 [--sdserve PATH] [--model DIR] [--keep DIR]" >&2; exit 2;;
  esac
done
tmp=$(mktemp -d /tmp/seeds-midsize.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
out=${keep:-$tmp/out}
mkdir -p "$out"
if [ -z "$model" ]; then
  model=$tmp/model
  "$sdserve" make-model --preset demo -o "$model" --unet-channels 96,192 --unet-attn 0,1 -q || exit 1
fi
unset SD_PRECISION SD_CONV_WINOGRAD SD_SPLIT ONEDNN_MAX_CPU_ISA DNNL_MAX_CPU_ISA

# 256x256: latents 32x32, the UNet's first level at 32x32 (96 channels:
# Winograd under auto; the 192-channel upsampler there: direct under auto,
# Winograd under wide and 1)
W=256 H=256 SEED=4242 PROMPT="a lighthouse on a cliff at dusk"
pass=0 fail=0

# gen DIR ENV PRECISION SEED N OUT [generate args...]
gen() {
  local envs=$1 prec=$2 seed=$3 n=$4 o=$5; shift 5
  env $envs "$sdserve" generate --model "$model" --prompt "$PROMPT" --negative "fog" -W $W -H $H --steps 2 --cfg 7 \
    --seed "$seed" -n "$n" --precision "$prec" -o "$o" "$@" >/dev/null 2>"$o.log"
}

# one_mode LABEL ENV PRECISION MODE [generate args...]
one_mode() {
  local label=$1 envs=$2 prec=$3 mode=$4; shift 4
  local d=$out/$(echo "$label-$mode" | tr -c 'A-Za-z0-9_.-' '_')
  mkdir -p "$d"
  if ! gen "$envs" "$prec" $SEED 4 "$d/batch.png" "$@"; then
    echo "FAIL - [$label] $mode: the batch failed: $(tail -2 "$d/batch.png.log" | tr '\n' ' ')"; fail=$((fail + 1)); return
  fi
  local bad=0 detail="" i b
  for i in 0 1 2 3; do
    b=$d/batch.png; [ $i -gt 0 ] && b=$d/batch-$i.png
    gen "$envs" "$prec" $((SEED + i)) 1 "$d/one$i.png" "$@" || { bad=$((bad + 1)); detail="$detail seed $((SEED + i)) failed;"; continue; }
    if cmp -s "$b" "$d/one$i.png"; then detail="$detail $i:same"
    else bad=$((bad + 1)); detail="$detail $i:$(python3 "$here/tests/http/pngdiff.py" "$b" "$d/one$i.png" | tr ' ' '=')"; fi
  done
  if [ $bad -eq 0 ]; then echo "ok - [$label] $mode: num_outputs=4 = each seed alone, PNG bytes identical ($detail )"; pass=$((pass + 1))
  else echo "FAIL - [$label] $mode: $bad of 4 images differ from their seed alone ($detail )"; fail=$((fail + 1)); fi
}

# config LABEL ENV PRECISION
config() {
  [[ "$1" =~ ${SEEDS_ONLY:-.} ]] || return 0
  one_mode "$1" "$2" "$3" "txt2img ${W}x${H}"
  one_mode "$1" "$2" "$3" "img2img ${W}x${H} strength 0.6" --init-image "$init" --strength 0.6
}

init=$tmp/init.png
gen "" fp32 7 1 "$init" || { echo "FAIL - could not make the init image: $(tail -2 "$init.log")"; exit 1; }
echo "# model $model; $("$sdserve" --version 2>/dev/null | head -1); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
config "fp32, SD_CONV_WINOGRAD=0" "SD_CONV_WINOGRAD=0" fp32
config "fp32, SD_CONV_WINOGRAD=1" "SD_CONV_WINOGRAD=1" fp32
config "fp32, SD_CONV_WINOGRAD=auto" "SD_CONV_WINOGRAD=auto" fp32
config "fp32, SD_CONV_WINOGRAD=wide" "SD_CONV_WINOGRAD=wide" fp32
config "default precision (auto)" "" auto
config "bf16x2, split by rule" "" bf16x2
config "bf16x2, SD_SPLIT=k" "SD_SPLIT=k" bf16x2
config "bf16x2, SD_SPLIT=m" "SD_SPLIT=m" bf16x2
config "bf16" "" bf16
config "ONEDNN_MAX_CPU_ISA=AVX512_CORE, fp32" "ONEDNN_MAX_CPU_ISA=AVX512_CORE" fp32
config "ONEDNN_MAX_CPU_ISA=AVX512_CORE, bf16x2" "ONEDNN_MAX_CPU_ISA=AVX512_CORE" bf16x2
config "ONEDNN_MAX_CPU_ISA=AVX512_CORE, bf16" "ONEDNN_MAX_CPU_ISA=AVX512_CORE" bf16
config "ONEDNN_MAX_CPU_ISA=AVX2, fp32" "ONEDNN_MAX_CPU_ISA=AVX2" fp32
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
