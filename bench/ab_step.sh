#!/usr/bin/env bash
# bench/ab_step.sh — two sdserve binaries alternated A, B, A, B, ... on one
# stage of `sdserve bench` (SD_PROFILE=1, 512x512, fp32, 2 threads): per run
# the stage's median of REPEATS, its share of the FMA loop (executed FLOPs;
# "paired": each run against the loop measured around it, median) and the
# per-kind seconds of its last run.
# For machines whose speed swings between runs: compare medians over the
# rounds, never two single runs (bench/README.md "AVX2, round 2").
#
# Usage: bench/ab_step.sh A_BINARY B_BINARY [ROUNDS=3] [unet|decode]
#   MODEL (default /tmp/sd15-f16.safetensors), REPEATS (3 for unet, 1 for
#   decode), VOCAB as bench/ab.sh
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
a=${1:?A binary}; b=${2:?B binary}; rounds=${3:-3}; stage=${4:-unet}
model=${MODEL:-/tmp/sd15-f16.safetensors}
vocab=${VOCAB:-${SD_REF:-$here/../shared/reference}/tokenizer/bpe_simple_vocab_16e6.txt.gz}
if [ "$stage" = unet ]; then skip=load,text,decode,encode; rep=${REPEATS:-3}; pat='^unet cfg step'; col=4
else skip=load,text,unet,encode; rep=${REPEATS:-1}; pat='^vae decode'; col=3; fi
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; A=$a B=$b; $stage, $rounds rounds, $(date -u +%FT%TZ)"
for r in $(seq "$rounds"); do
  for side in A B; do
    bin=$a; [ "$side" = B ] && bin=$b
    out=$(SD_PROFILE=1 "$bin" bench --model "$model" --vocab "$vocab" -W 512 -H 512 --repeats "$rep" --threads 2 \
      --precision fp32 --skip "$skip" 2>&1) || { echo "FAIL - $side: $(echo "$out" | tail -3)"; exit 1; }
    echo "$side $(echo "$out" | awk -v pat="$pat" -v col="$col" '/^peak \(/ {p=$(NF-1)} /^peak now / {p=$3} $0 ~ pat {s=$col}
      / conv  / {c=$2} / linear  / {l=$2} / attention  / {t=$2} / norm  / {n=$2} / elementwise  / {e=$2}
      /^  executed/ {x=$(NF-8)} /^  paired/ {q=$(NF-3)}
      END {print "peak", p, "'"$stage"'", s, "exec%", x, "paired%", q, "conv", c, "linear", l, "attention", t,
           "norm", n, "elementwise", e}')"
  done
done
