#!/usr/bin/env bash
# bench/e2e_sd15.sh — issue 19 item 6's end-to-end figures: the time from a
# synchronous `POST /txt2img` to its answer with the image URL (text
# encoding, every UNet step, the decode, PNG encoding and storage), through
# the real server on an SD 1.5-shaped checkpoint at the default precision.
# One server; a 1-step warm-up request first (weight copies, primitives:
# printed as `first request`), then ROUNDS rounds, each one picture of the
# two kinds interleaved: STEPS steps at guidance 7.5 (issue 19: 20 steps,
# goal <= 28 s on AMX) and FAST steps at guidance 1 (4 steps, no
# unconditional pass, goal <= 4 s).  Prints each request's seconds (curl's
# time_total) with the load average, then per kind the median:
#   e2e steps=20 guidance=7.5 512x512: median 27.1 s  runs 27.0 27.1 27.4
# Benchmark tier (SD 1.5 sizes: run it under `flock /tmp/sdbench.lock`).
#
# Usage: [SDSERVE=PATH] [MODEL=FILE] [VOCAB=FILE] [SIZE=512] [ROUNDS=3]
#        [STEPS=20] [FAST=4] [PRECISION=auto] bench/e2e_sd15.sh
#   MODEL  default /tmp/sd15.safetensors (`make-model --preset sd15` when missing)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
sdserve=${SDSERVE:-$here/build/sdserve}
model=${MODEL:-/tmp/sd15.safetensors}
vocab=${VOCAB:-${SD_REF:-$here/../shared/reference}/tokenizer/bpe_simple_vocab_16e6.txt.gz}
size=${SIZE:-512} rounds=${ROUNDS:-3} steps=${STEPS:-20} fast=${FAST:-4} prec=${PRECISION:-auto}
unset SD_PRECISION SD_CONV_WINOGRAD SD_SPLIT
. "$here/bench/lib.sh"
need_sd15_model "$sdserve" "$model" || exit 1
server_tmp e2e-sd15
t0=$(date +%s.%N)
start_sd15_server "$sdserve" "$model" "$vocab" "$prec" "$tmp/data" "$tmp/server.log" ||
  { echo "FAIL - server did not start: $(tail -3 "$tmp/server.log")"; exit 1; }
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; $model ${size}x${size}, $rounds rounds"
echo "# server ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s; $(grep -m1 '^precision:' "$tmp/server.log")"

# request STEPS GUIDANCE: one synchronous txt2img; prints its seconds, fails without an image URL
request() {
  local t
  t=$(curl -s -o "$tmp/r.json" -w '%{time_total}' -F 'prompt=a lighthouse on a cliff at dusk, oil painting' \
      -F negative_prompt=blurry -F width="$size" -F height="$size" -F num_inference_steps="$1" \
      -F guidance_scale="$2" -F seed=42 "$base/txt2img")
  grep -q '"image_url"' "$tmp/r.json" || { echo "FAIL - steps=$1 guidance=$2: $(head -c 300 "$tmp/r.json")" >&2; return 1; }
  printf '%.3f\n' "$t"
}

first=$(request 1 7.5) || exit 1
echo "first request (1 step, weight copies and primitives built): $first s"
: > "$tmp/slow"; : > "$tmp/fast"
for r in $(seq "$rounds"); do
  s=$(request "$steps" 7.5) || exit 1; echo "$s" >> "$tmp/slow"
  echo "round $r steps=$steps guidance=7.5: $s s (load $(cut -d' ' -f1-3 /proc/loadavg))"
  f=$(request "$fast" 1) || exit 1; echo "$f" >> "$tmp/fast"
  echo "round $r steps=$fast guidance=1: $f s (load $(cut -d' ' -f1-3 /proc/loadavg))"
done
med() { sort -g "$1" | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
echo "e2e steps=$steps guidance=7.5 ${size}x${size}: median $(med "$tmp/slow") s  runs $(tr '\n' ' ' < "$tmp/slow")"
echo "e2e steps=$fast guidance=1 ${size}x${size}: median $(med "$tmp/fast") s  runs $(tr '\n' ' ' < "$tmp/fast")"
