#!/usr/bin/env bash
# bench/sdxl_check.sh — the SDXL 1.0-shaped checkpoint end to end at
# 1024x1024 (issue 15 "must show"): writes it with bench/make_sdxl.sh when
# FILE does not exist, then, under /usr/bin/time -v, `sdserve bench` loads
# it and runs the text encoders, one CFG UNet step with the added vector
# and a decode at the model's native size (no -W/-H: 1024²) at the default
# precision.  Checks: exit 0, family sdxl at 1024x1024, the UNet output and
# the decoded image all finite, and the process's peak RSS ≤ 18 GB (issue
# 15 item 6, where the default precision is fp32; set MAX_RSS_GB).
# Benchmark tier, not in `make test`: minutes, ~15 GB of memory.  It will
# not start with less than 17 GiB available (MemAvailable): the machine is
# shared, so run nothing else of that size at the same time.
#   bench/sdxl_check.sh [FILE]   default ${SD_BUILD:-build}/bench-sdxl/sdxl.safetensors
#   SD_REF=...                   reference data (for the tokenizer vocabulary)
#   MIN_AVAIL_GIB=17             MemAvailable needed to start (less: for a tiny model)
set -u
cd "$(dirname "$0")/.."
BUILD=${SD_BUILD:-build}
REF=${SD_REF:-$PWD/../shared/reference}
FILE=${1:-$BUILD/bench-sdxl/sdxl.safetensors}
MAX=${MAX_RSS_GB:-18}
V="$REF/tokenizer/bpe_simple_vocab_16e6.txt.gz"
fail=0
ok() { echo "ok - $1"; }
bad() { echo "FAIL - $1"; fail=1; }

if [ ! -f "$FILE" ]; then
  bench/make_sdxl.sh "$FILE" || { bad "make-model --preset sdxl"; exit 1; }
fi
avail=$(awk '/^MemAvailable:/ { printf "%d", $2 / 1048576 }' /proc/meminfo)
if [ "$avail" -lt "${MIN_AVAIL_GIB:-17}" ]; then
  echo "# only $avail GiB available: not starting a ~15 GB process on a shared machine"; exit 2
fi
log=$(mktemp); out=$(mktemp); trap 'rm -f "$log" "$out"' EXIT
vocab=(); [ -f "$V" ] && vocab=(--vocab "$V")
/usr/bin/time -v "$BUILD/sdserve" bench --model "$FILE" "${vocab[@]}" --repeats 1 --skip encode >"$out" 2>"$log"
rc=$?
cat "$out"
[ $rc -eq 0 ] && ok "bench exits 0" || bad "bench exits $rc: $(grep -v '^\s' "$log" | tail -2)"
grep -q "(sdxl, .*), 1024x1024," "$out" && ok "family sdxl at its native 1024x1024" || bad "not sdxl at 1024x1024: $(head -1 "$out")"
n=$(grep -c "values finite" "$out")
[ "$n" = 2 ] && ok "UNet CFG step output and decoded image: no NaN/Inf" || bad "finite checks passed: $n of 2"
kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
wall=$(sed -n 's/.*Elapsed (wall clock) time.*): //p' "$log")
gb=$(awk -v k="${kb:-0}" 'BEGIN { printf "%.2f", k * 1024 / 1e9 }')
echo "# whole run: wall $wall, peak RSS $gb GB ($((${kb:-0} / 1024)) MiB)"
awk -v g="$gb" -v m="$MAX" 'BEGIN { exit !(g > 0 && g <= m) }' && ok "peak RSS $gb GB <= $MAX GB" || bad "peak RSS $gb GB > $MAX GB"
exit $fail
