#!/usr/bin/env bash
# test_bench.sh — `sdserve bench` on the reference tiny models: with no
# -W/-H it runs at the family's native size (SDXL 1024, SD1 512); on SDXL
# it encodes with both text towers and runs the UNet with the added vector
# (the step would fail without it), and every stage reports its FLOPs
# counted from the model (tests/unit/test_flops.c checks the counts) and
# the outputs' finiteness check, with the FLOPs the kernels executed
# (issue 19 item 5: an "executed" line per stage, SD_PROFILE's per-op
# GFLOP) and, on CPUs with avx512_bf16, the bf16 dot loop's peak; with
# AMX, its matmul loop on random operands (issue 19 item 1).  An unknown
# --skip stage is refused; a missing --lora file too, before the load,
# naming its folder.  Small sizes: seconds.
set -u
BUILD=${SD_BUILD:-build}
BIN="$BUILD/sdserve"
REF=${SD_REF:-$(cd "$(dirname "$0")/../.." && pwd)/../shared/reference}
V="$REF/tokenizer/bpe_simple_vocab_16e6.txt.gz"
XL="$REF/models/tiny-sdxl-s-fp16.safetensors"
SD1="$REF/models/tiny-sd1-fp16.safetensors"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

ok() { echo "ok - $1"; }
fail() { echo "FAIL - $1: $2"; }
check() { if eval "$2"; then ok "$1"; else fail "$1" "${3:-$2}"; fi; }
if [ ! -f "$XL" ] || [ ! -f "$SD1" ]; then ok "skipped: no reference models"; exit 0; fi
# the GFLOP figure of a stage line
gflop() { awk -v s="$1" 'index($0, s) == 1 { for (i = 1; i <= NF; i++) if ($i == "GFLOP") print $(i - 1) }' "$2"; }

"$BIN" bench --model "$XL" --vocab "$V" --repeats 1 --skip load,text,unet,decode,encode >"$T/xl0" 2>&1; rc=$?
check "sdxl, no size given: exits 0" '[ $rc -eq 0 ]' "rc=$rc $(tail -2 "$T/xl0")"
check "sdxl, no size given: 1024x1024" 'grep -q "(sdxl, .*), 1024x1024," "$T/xl0"' "$(head -1 "$T/xl0")"
"$BIN" bench --model "$SD1" --vocab "$V" --repeats 1 --skip load,text,unet,decode,encode >"$T/sd0" 2>&1; rc=$?
check "sd1, no size given: 512x512" '[ $rc -eq 0 ] && grep -q "(sd1, .*), 512x512," "$T/sd0"' "$(head -1 "$T/sd0")"

# --skip with a name that is no stage: refused before the load (was: read with strstr, a typo
# such as "vae" skipped nothing and "decoder" skipped decode)
"$BIN" bench --model "$T/nothing-here" --skip load,vae >"$T/skip" 2>&1; rc=$?
check "--skip load,vae: exit 2 naming --skip, the stage and the stage names" \
  '[ $rc -eq 2 ] && grep -q "^bench: --skip: unknown stage .vae.; the stages are load, text, unet, decode, encode" "$T/skip"' \
  "rc=$rc $(cat "$T/skip")"

# --lora naming a missing file: refused before the load, pointing at its folder (was, after the
# UNet stage was timed: "... in the LoRA directory (GET /loras lists them)", the server's wording)
"$BIN" bench --model "$SD1" --vocab "$V" --repeats 1 -W 64 -H 64 --lora "$T/nope.safetensors:0.5" >"$T/lora" 2>&1; rc=$?
check "--lora missing: exit 1 before the load, naming --lora and its folder, not GET /loras" \
  '[ $rc -eq 1 ] && grep -q "^bench: --lora $T/nope.safetensors:0.5: no nope.safetensors in $T (the folder of --lora): No such file" "$T/lora" &&
   ! grep -q -e "GET /loras" -e "^unet" "$T/lora"' "rc=$rc $(tail -2 "$T/lora")"

for m in xl sd1; do
  f=$XL; [ $m = sd1 ] && f=$SD1
  "$BIN" bench --model "$f" --vocab "$V" --repeats 2 -W 64 -H 64 --skip load >"$T/$m" 2>&1; rc=$?
  check "$m 64x64: exits 0" '[ $rc -eq 0 ]' "rc=$rc $(tail -3 "$T/$m")"
  check "$m 64x64: UNet output and decoded image finite" \
    '[ "$(grep -c "values finite" "$T/$m")" = 2 ]' "$(grep -i finite "$T/$m")"
  for s in "unet cfg step" "vae decode" "vae encode"; do
    g=$(gflop "$s" "$T/$m")
    check "$m 64x64: $s reports positive FLOPs" 'awk -v g="${g:-0}" "BEGIN { exit !(g > 0) }"' "got '$g'"
  done
done
# issue 19 item 5: executed FLOPs beside the model's, the bf16 dot loop where the CPU has one
for m in xl sd1; do
  check "$m 64x64: an executed-FLOPs line under the UNet step, the decode and the encode" \
    '[ "$(grep -c "^  executed .* GFLOP .* % of peak" "$T/$m")" = 3 ]' "$(grep executed "$T/$m")"
  # the first run makes the weight copies: timed apart, not in the median
  check "$m 64x64: a first-run line under the UNet step, the decode and the encode" \
    '[ "$(grep -c "^  first run  *[0-9.]* s  (weight copies and kernels made: not in the median)" "$T/$m")" = 3 ]' \
    "$(grep "first run" "$T/$m")"
done
if grep -qw avx512_bf16 /proc/cpuinfo; then
  check "avx512_bf16: the bf16 dot loop measured beside the FMA loop" \
    'grep -Eq "^bf16 dot loop \(vdpbf16ps, [0-9]+ threads\): [1-9][0-9.]* GFLOP/s" "$T/sd1"' "$(sed -n 2,3p "$T/sd1")"
fi
SD_PROFILE=1 "$BIN" bench --model "$SD1" --vocab "$V" --repeats 1 -W 64 -H 64 --skip load,text,decode,encode >"$T/prof" 2>&1; rc=$?
check "SD_PROFILE=1: convs' model and executed GFLOP, rate and share of the peak" \
  '[ $rc -eq 0 ] && grep -Eq "^    conv .* calls +[0-9.]+ GFLOP model +[0-9.]+ executed +[0-9.]+ GFLOP/s +[0-9.]+ % of peak" "$T/prof"' \
  "rc=$rc $(grep -A3 profile "$T/prof")"
check "SD_PROFILE=1: no table by shape" '! grep -q "by shape" "$T/prof"' "$(grep -A2 'by shape' "$T/prof")"
# SD_PROFILE=2: the same lines, then a row per (kind, shape) whose calls add up to each kind's
SD_PROFILE=2 "$BIN" bench --model "$SD1" --vocab "$V" --repeats 1 -W 64 -H 64 --skip load,text,decode,encode >"$T/prof2" 2>&1; rc=$?
bad=$(awk '/^  profile /                  { p = 1 }
           p && /^    [a-z]+ +[0-9.]+ s +[0-9.]+ % +[0-9]+ calls/ { kc[$1] = $6; ks[$1] = $2 }
           /by shape/                    { b = 1; next }
           b && /^    [a-z]+ / && $2 != "shape" { for (i = NF; i > 0; i--) if ($i ~ /^[0-9]+$/ && $(i+1) ~ /^[0-9.]+$/ && $(i+2) ~ /^[0-9.]+$/) break;
                                           rc[$1] += $i; rt[$1] += $(i+1) / 1000; n++ }
           END { if (!n) print "no rows";
                 for (k in kc) if (kc[k] != rc[k] || (ks[k] - rt[k])^2 > 0.002^2) print k ": " kc[k] " calls " ks[k] " s, rows " rc[k] " " rt[k] }' "$T/prof2")
check "SD_PROFILE=2: rows by shape whose calls and times add up to each kind's line" \
  '[ $rc -eq 0 ] && [ -z "$bad" ]' "rc=$rc $bad"
check "SD_PROFILE=2: rows name the shapes (conv_in 2x8x8x4 -> its channels, cross-attention's 77 keys, the GEGLU)" \
  'grep -Eq "^    conv +conv 3x3/1 2x8x8x4 -> [0-9]+ " "$T/prof2" && grep -Eq "^    attention +attention 2x[0-9]+x[0-9]+ x 77 keys" "$T/prof2" &&
   grep -Eq "^    elementwise +geglu [0-9]+x[0-9]+ " "$T/prof2"' "$(sed -n '/by shape/,$p' "$T/prof2" | head -20)"
above=$(sed -n 's/^    all [0-9]* shapes: .* \([0-9.]*\) ms above the peak.*/\1/p' "$T/prof2")
# each row is printed to 0.01 ms: their sum may be off the total by up to 0.005 ms a row
# (after the calls: ms, %, then GFLOP, GFLOP/s, % peak where the op counts FLOPs, then ms above,
# then % of the bf16 loop where the CPU has one: the column is found from the calls, not the end)
read -r sum nrows < <(awk '/by shape/ { b = 1; next }
  b && /^    [a-z]+ / && $2 != "shape" && $1 != "all" {
    for (i = NF; i > 0; i--) if ($i ~ /^[0-9]+$/ && $(i+1) ~ /^[0-9.]+$/ && $(i+2) ~ /^[0-9.]+$/) break;
    s += (NF - i >= 6) ? $(i+6) : $(i+3); n++ }
  END { printf "%.2f %d\n", s, n }' "$T/prof2")
check "SD_PROFILE=2: the rows' ms above the peak add up to the run's (to their rounding)" \
  'awk -v a="${above:-x}" -v s="$sum" -v n="$nrows" "BEGIN { exit !(a != \"x\" && (a - s)^2 <= (0.005 * n + 0.01)^2) }"' \
  "total '$above', rows $sum ($nrows rows)"
# issue 19 item 5, round 2: attention's thread account, busy CPU time within its parallel regions
busy=$(sed -n 's/^      threads .* CPU busy of .* team time (\([0-9.]*\) %).*/\1/p' "$T/prof" | head -1)
check "SD_PROFILE=1: attention's threads busy for a share of the team time in (0, 100] %" \
  'grep -A1 "^    attention " "$T/prof" | grep -Eq "^      threads .* in busy time +[0-9.]+ GFLOP/s" &&
   awk -v b="${busy:-0}" "BEGIN { exit !(b > 0 && b <= 100) }"' "busy '$busy': $(grep -A1 attention "$T/prof")"
# issue 19 item 1: the bf16 kernels measured against AMX's matmul loop on random operands where there
# is AMX (zeros beside it), else against the vdpbf16ps loop
if grep -qw amx_tile /proc/cpuinfo; then
  check "AMX: the tile matmul loop on random operands and zeros measured beside the FMA loop" \
    'grep -Eq "^AMX bf16 matmul loop .*: random operands [1-9][0-9.]* GFLOP/s, zeros [1-9][0-9.]* GFLOP/s" "$T/sd1"' \
    "$(sed -n 2,4p "$T/sd1")"
  check "SD_PROFILE=1 on AMX: convs' share of the AMX loop" \
    'grep -Eq "^    conv .* % of peak +[0-9.]+ % of the AMX loop" "$T/prof"' "$(grep -A2 profile "$T/prof")"
else
  check "no AMX: no AMX loop line" '! grep -q "^AMX" "$T/sd1"' "$(grep AMX "$T/sd1")"
  if grep -qw avx512_bf16 /proc/cpuinfo; then
    check "SD_PROFILE=1 on avx512_bf16: convs' share of the bf16 dot loop" \
      'grep -Eq "^    conv .* % of peak +[0-9.]+ % of the bf16 dot loop" "$T/prof"' "$(grep -A2 profile "$T/prof")"
  fi
fi
check "sdxl: both text towers timed as one stage" 'grep -q "^text encoders " "$T/xl"' "$(grep text "$T/xl")"
check "sd1: one text tower" 'grep -q "^text encoder " "$T/sd1"' "$(grep text "$T/sd1")"

# issue 18: --preview-decoder times a TAESD decode and the previews' approximation after the UNet step
"$BIN" bench --model "$SD1" --vocab "$V" --repeats 1 -W 64 -H 64 --skip load,decode,encode \
  --preview-decoder "$REF/models/tiny-taesd" >"$T/pv" 2>&1; rc=$?
g=$(gflop "taesd decode" "$T/pv")
check "--preview-decoder: taesd decode with positive FLOPs" '[ $rc -eq 0 ] && awk -v g="${g:-0}" "BEGIN { exit !(g > 0) }"' \
  "rc=$rc $(tail -3 "$T/pv")"
check "--preview-decoder: the approximation and the share of a UNet step" \
  'grep -q "^preview approx .* ms" "$T/pv" && grep -q "^previews: taesd decode 64x64 = .* % of a unet step" "$T/pv"' \
  "$(tail -3 "$T/pv")"
