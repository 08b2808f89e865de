#!/usr/bin/env bash
# bench/ab.sh — two sdserve binaries timed in one sitting: `sdserve bench`
# (one CFG UNet step and one VAE decode, --repeats medians each) run
# alternately A, B, A, B, ... ROUNDS times per precision, so the machine's
# drift hits both alike; prints each run's medians, then per stage the median
# over the rounds for A and B and the ratio B/A.  For "speed unchanged"
# checks of a refactor (bench/README.md "Before/after").  Run at normal
# priority on a machine as quiet as you can get it (no tuning).
#
# Usage: A=OLD_BINARY [B=NEW_BINARY] [MODEL=FILE] [SIZE=256] [ROUNDS=3]
#        [REPEATS=3] [PRECISIONS="fp32 bf16x2"] bench/ab.sh
#   MODEL  default /tmp/sd15.safetensors (`sdserve make-model --preset sd15`
#          when missing)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
a=${A:?A=path of the "before" sdserve}
b=${B:-$here/build/sdserve}
model=${MODEL:-/tmp/sd15.safetensors}
size=${SIZE:-256}; rounds=${ROUNDS:-3}; repeats=${REPEATS:-3}
precs=${PRECISIONS:-fp32 bf16x2}
vocab=${VOCAB:-${SD_REF:-$here/../shared/reference}/tokenizer/bpe_simple_vocab_16e6.txt.gz}
unset SD_PRECISION SD_CONV_WINOGRAD SD_SPLIT
if [ ! -f "$model" ]; then
  echo "# making $model (make-model --preset sd15)"
  "$b" make-model --preset sd15 -o "$model" --quiet || exit 1
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; A=$a B=$b"
echo "# model $model ${size}x${size}, $rounds rounds x $repeats repeats, $(date -u +%FT%TZ)"
for p in $precs; do
  for r in $(seq "$rounds"); do
    for side in A B; do
      bin=$a; [ "$side" = B ] && bin=$b
      "$bin" bench --model "$model" --vocab "$vocab" -W "$size" -H "$size" --repeats "$repeats" \
        --precision "$p" --skip load,text,encode > "$tmp/out" 2>&1 || { echo "FAIL - $side bench at $p"; cat "$tmp/out"; exit 1; }
      u=$(awk '/^unet cfg step/ {print $4}' "$tmp/out"); d=$(awk '/^vae decode/ {print $3}' "$tmp/out")
      echo "$p round $r $side: unet step $u s, decode $d s"
      echo "$u $d" >> "$tmp/$p.$side"
    done
  done
  med() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
  for col in 1 2; do
    name="unet step"; [ $col = 2 ] && name="vae decode"
    ma=$(cut -d' ' -f$col "$tmp/$p.A" | med); mb=$(cut -d' ' -f$col "$tmp/$p.B" | med)
    echo "$p $name: A $ma s, B $mb s, B/A $(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.3f", b/a}')"
  done
done
