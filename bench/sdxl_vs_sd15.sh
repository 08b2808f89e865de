#!/usr/bin/env bash
# bench/sdxl_vs_sd15.sh — issue 15 item 6's speed rule, in one sitting: the
# SDXL CFG step is no slower than (SDXL FLOPs / SD 1.5 FLOPs) x SD 1.5's
# step + 15 %, and the same for the decode.  Runs `sdserve bench` on the SD
# 1.5-shaped file at 512², then the SDXL-shaped one at its native 1024²,
# then SD 1.5 again (its figure: the median of the two runs' medians), each
# stage the median of R repeats at the default precision; FLOPs are the ones
# bench counts from each model.  Prints the stages, the load average, and
# ok/FAIL per rule.  Benchmark tier (minutes; the SDXL run takes ~15 GB).
#   bench/sdxl_vs_sd15.sh SD15_FILE SDXL_FILE [R]     (R default 3)
#   BENCH_ARGS="--precision fp32" ...                 extra bench flags for all runs
#   SD15_SIZE=512 XL_SIZE=N ...                       sizes (XL default: native 1024²)
set -u
cd "$(dirname "$0")/.."
BUILD=${SD_BUILD:-build}
REF=${SD_REF:-$PWD/../shared/reference}
SD15=${1:?SD 1.5-shaped file}; XL=${2:?SDXL-shaped file}; R=${3:-3}
V="$REF/tokenizer/bpe_simple_vocab_16e6.txt.gz"
vocab=(); [ -f "$V" ] && vocab=(--vocab "$V")
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail=0

# field of a stage line: median seconds or GFLOP ("unet cfg step" / "vae decode" / "text encoders")
stage() { awk -v s="$1" -v what="$2" 'index($0, s) == 1 {
    for (i = 1; i <= NF; i++) { if ($i == "s" && !sec) sec = $(i - 1); if ($i == "GFLOP") gf = $(i - 1) }
    print (what == "s" ? sec : gf); exit }' "$3"; }

run() {   # run NAME FILE [bench args...]
  local name=$1 f=$2; shift 2
  echo "# $name: $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  if ! "$BUILD/sdserve" bench --model "$f" "${vocab[@]}" --repeats "$R" --skip load,encode ${BENCH_ARGS:-} "$@" \
       >"$T/$name" 2>&1; then
    cat "$T/$name"; echo "FAIL - bench on $f"; exit 1
  fi
  grep -E "^(model|peak|text|unet cfg|vae decode)" "$T/$name"
}

S15=${SD15_SIZE:-512}
run sd15a "$SD15" -W "$S15" -H "$S15"
run sdxl "$XL" ${XL_SIZE:+-W "$XL_SIZE" -H "$XL_SIZE"}
run sd15b "$SD15" -W "$S15" -H "$S15"
echo "# done: $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"

for s in "unet cfg step" "vae decode"; do
  a=$(stage "$s" s "$T/sd15a"); b=$(stage "$s" s "$T/sd15b"); x=$(stage "$s" s "$T/sdxl")
  fa=$(stage "$s" gf "$T/sd15a"); fx=$(stage "$s" gf "$T/sdxl")
  line=$(awk -v a="$a" -v b="$b" -v x="$x" -v fa="$fa" -v fx="$fx" 'BEGIN {
      t = (a + b) / 2; lim = fx / fa * t * 1.15
      printf "%s %.3f s (SD 1.5 %.3f, %.3f s; FLOPs x%.2f: allowed %.3f s; SDXL/allowed %.3f)", (x <= lim ? "ok" : "FAIL"),
             x, a, b, fx / fa, lim, x / lim }')
  case $line in ok*) echo "ok - SDXL $s ${line#ok }" ;; *) echo "FAIL - SDXL $s ${line#FAIL }"; fail=1 ;; esac
done
exit $fail
