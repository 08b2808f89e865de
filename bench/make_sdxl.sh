#!/usr/bin/env bash
# bench/make_sdxl.sh — writes the SDXL 1.0-shaped random checkpoint
# (`sdserve make-model --preset sdxl`, 6.9 GB as F16) under /usr/bin/time -v
# and checks the file: its size is 8 + header length + data_bytes of
# reference/sdxl/tensors.json, and its header lists the tensors of
# `make-model --preset sdxl --list` (same count).  Prints the wall time and
# peak RSS.  Benchmark tier, not in `make test` (minutes, 7 GB of disk).
#   bench/make_sdxl.sh [FILE]   default ${SD_BUILD:-build}/bench-sdxl/sdxl.safetensors
#   SD_REF=...                  reference data (default ../shared/reference)
set -u
cd "$(dirname "$0")/.."
BUILD=${SD_BUILD:-build}
REF=${SD_REF:-$PWD/../shared/reference}
FILE=${1:-$BUILD/bench-sdxl/sdxl.safetensors}
mkdir -p "$(dirname "$FILE")"
log=$(mktemp); trap 'rm -f "$log"' EXIT
/usr/bin/time -v "$BUILD/sdserve" make-model --preset sdxl -o "$FILE" --quiet 2>"$log" || { cat "$log"; exit 1; }
wall=$(sed -n 's/.*Elapsed (wall clock) time.*): //p' "$log")
user=$(sed -n 's/.*User time (seconds): //p' "$log")
sys=$(sed -n 's/.*System time (seconds): //p' "$log")
rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
echo "# make-model --preset sdxl: wall $wall, CPU user $user s + sys $sys s, peak RSS $((rss / 1024)) MB"
want=$(grep -o '"data_bytes": *[0-9]*' "$REF/sdxl/tensors.json" | grep -o '[0-9]*$')
hlen=$(od -An -t u8 -N 8 "$FILE" | tr -d ' ')
size=$(stat -c %s "$FILE")
fail=0
if [ "$size" = $((8 + hlen + want)) ]; then
  echo "ok - size $size = 8 + header $hlen + data_bytes $want"
else
  echo "FAIL - size $size != 8 + header $hlen + data_bytes $want"; fail=1
fi
n=$(head -c $((8 + hlen)) "$FILE" | tail -c "$hlen" | grep -o '"data_offsets"' | wc -l)
listed=$("$BUILD/sdserve" make-model --preset sdxl --list | grep -vc '^#')
if [ "$n" = 2515 ] && [ "$listed" = 2515 ]; then
  echo "ok - header has the 2515 tensors of --list"
else
  echo "FAIL - header has $n tensors, --list $listed (want 2515)"; fail=1
fi
exit $fail
