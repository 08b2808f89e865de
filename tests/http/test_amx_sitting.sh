#!/usr/bin/env bash
# test_amx_sitting.sh — bench/amx_sitting.sh's command line, without running
# a benchmark: --dry-run lists every item with its commands (rounds, the
# files it would make or reuse, the SDXL peer repeats), --only picks items,
# --quick switches to the tiny sizes, bad options exit 2 naming themselves,
# a missing peer stops a real run before anything is made, and on a CPU
# without AMX a real run refuses to start without --anyway.
# Seconds; nothing is built or made (bench/README.md "The AMX sitting").
cd "$(dirname "$0")/../.."
. tests/http/lib.sh
S=bench/amx_sitting.sh
D=$TMP/files

out=$($S --dry-run --dir "$D" 2>&1); rc=$?
check "--dry-run exits 0" $rc "$out"
for i in sd15 profile batch noamx lora previews seeds e2e peers sdxl; do
  check "--dry-run lists item $i" $(grep -q "^$i:$" <<<"$out"; echo $?) "$out"
done
n=$(grep -c -- '--precision bf16 --skip load,text,encode$' <<<"$out")
check "sd15: auto and bf16 interleaved, 3 rounds (6 bench lines, bf16 x3)" \
  $([ "$(grep -c '^  build/sdserve bench .* --skip load,text,encode$' <<<"$out")" = 6 ] && [ "$n" = 3 ]; echo $?) "bf16 lines: $n"
check "profile: SD_PROFILE=2 bench (which measures the random-operand bf16 peak itself; by shape too)" \
  $(grep -q 'env SD_PROFILE=2 build/sdserve bench' <<<"$out"; echo $?) ""
check "batch: num_outputs 1 and 4, three pairs" $([ "$(grep -c -- '--batch 4 ' <<<"$out")" = 3 ]; echo $?) ""
check "noamx: oneDNN capped below AMX, fp32 and auto" \
  $([ "$(grep -c 'ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 .*--precision fp32' <<<"$out")" = 3 ]; echo $?) ""
check "lora: a rank-32 LoRA made in --dir, then bench --lora" \
  $(grep -q "make_lora $D/sd15-f16.safetensors --rank 32 -o $D/sd15-lora-r32.safetensors" <<<"$out" &&
    grep -q -- "--lora $D/sd15-lora-r32.safetensors" <<<"$out"; echo $?) ""
check "seeds, e2e, previews: the existing scripts at 512" \
  $(grep -q 'SIZE=512 PRECISIONS=auto\\ fp32 bench/seeds_sd15.sh' <<<"$out" && grep -q 'SIZE=512 ROUNDS=3 bench/e2e_sd15.sh' <<<"$out" &&
    grep -q 'SIZE=512 REPEATS=3 bench/previews.sh' <<<"$out"; echo $?) ""
check "peers: peers.sh with auto and bf16, 3 rounds, no lock of its own" \
  $(grep -q "bench/peers.sh --rounds 3 --precisions auto\\\\ bf16 --lock ''" <<<"$out"; echo $?) "$(grep peers.sh <<<"$out")"
check "sdxl: make_sdxl.sh, RSS <= 12 GB, the FLOP rule, sd.cpp at 1024 x3" \
  $(grep -q "bench/make_sdxl.sh $D/sdxl.safetensors" <<<"$out" && grep -q 'MAX_RSS_GB=12 bench/sdxl_check.sh' <<<"$out" &&
    grep -q 'bench/sdxl_vs_sd15.sh' <<<"$out" &&
    grep -q "peer_sdcpp.sh --model $D/sdxl.safetensors -W 1024 -H 1024 --steps 1 --threads 2 --repeats 3 " <<<"$out"; echo $?) ""
check "SD 1.5 items before the SDXL ones" \
  $([ "$(grep -n '^sdxl:$' <<<"$out" | cut -d: -f1)" -gt "$(grep -n '^peers:$' <<<"$out" | cut -d: -f1)" ]; echo $?) ""
est=$(sed -n 's/.*: ~\([0-9]*\) min$/\1/p' <<<"$out")
check "an estimate of the sitting's minutes, within 2 hours" $([ -n "$est" ] && [ "$est" -le 120 ]; echo $?) "estimate '$est'"
check "missing files are listed as made" $([ "$(grep -c 'is missing: made by' <<<"$out")" = 4 ]; echo $?) ""

mkdir -p "$D" && : > "$D/sd15-f16.safetensors"
out=$($S --dry-run --dir "$D" --only sd15,e2e,peers --sdxl-peer-repeats 2 2>&1)
check "--only sd15,e2e,peers: those three, in order" \
  $([ "$(grep -E '^[a-z0-9]+:$' <<<"$out" | tr '\n' ' ')" = "files: sd15: e2e: peers: " ]; echo $?) "$(grep -E '^[a-z0-9]+:$' <<<"$out")"
check "an existing file is reused" $(grep -q "reusing $D/sd15-f16.safetensors" <<<"$out"; echo $?) ""
out=$($S --dry-run --dir "$D" --only sdxl --sdxl-peer-repeats 2 2>&1)
check "--sdxl-peer-repeats 2" $(grep -q 'peer_sdcpp.sh .*--repeats 2 --skip-ours' <<<"$out"; echo $?) "$out"

out=$($S --dry-run --quick --dir "$D" 2>&1)
check "--quick: 64x64, 1 repeat, 1 round, the tiny SDXL at 256, no 6.9 GB file" \
  $(grep -q -- '-W 64 -H 64 --threads 2 --repeats 1 ' <<<"$out" && [ "$(grep -c -- '--batch 4' <<<"$out")" = 1 ] &&
    grep -q 'XL_SIZE=256 bench/sdxl_vs_sd15.sh .*tiny-sdxl-s' <<<"$out" && ! grep -q make_sdxl <<<"$out"; echo $?) "$out"

for bad in "--only sd15,bogus" "--rounds 0" "--repeats x" "--sdxl-peer-repeats -1" "--frobnicate"; do
  # shellcheck disable=SC2086
  msg=$($S --dry-run $bad 2>&1); rc=$?
  word=${bad%% *}; word=${word#--}; word=${word//-/_}; [ "$word" = only ] && word=bogus
  check "$bad: exit 2 naming it" $([ $rc = 2 ] && grep -q -- "$word" <<<"$msg"; echo $?) "rc $rc: $msg"
done

# the peers are checked before anything runs
out=$(SDCPP=$TMP/no-sd-cli DIFFUSERS=$TMP/no-diffusers $S --dry-run --dir "$D" --only peers 2>&1)
check "--dry-run names the peers' missing programs" \
  $(grep -q "^# missing for the peers.*$TMP/no-sd-cli.*$TMP/no-diffusers" <<<"$out"; echo $?) "$out"
out=$(SDCPP=$TMP/my-sd-cli $S --dry-run --dir "$D" --only peers 2>&1)
check "SDCPP= reaches the peers item's sd.cpp runs (peers.sh --sd)" \
  $(grep -q "bench/peers.sh .*--sd $TMP/my-sd-cli " <<<"$out"; echo $?) "$(grep peers.sh <<<"$out")"
# peers.sh gives --sd to peer_sdcpp.sh: a stand-in CLI that notes its call and fails
printf '#!/bin/sh\necho called > "%s"\nexit 1\n' "$TMP/sd-called" > "$TMP/fake-sd" && chmod +x "$TMP/fake-sd"
: > "$TMP/empty.safetensors"
msg=$(bench/peers.sh --only sdcpp-f16 --sd "$TMP/fake-sd" --f16 "$TMP/empty.safetensors" --lock '' \
  --sdcpp-repeats 1 --logs "$TMP/peerlogs" 2>&1); rc=$?
check "peers.sh --sd: that CLI is the one run (it fails here: exit 2, named)" \
  $([ $rc = 2 ] && [ -f "$TMP/sd-called" ] && grep -q "sdcpp-f16 round 1 failed" <<<"$msg"; echo $?) "rc $rc: $msg"
out=$(SDCPP=/bin/true $S --dry-run --dir "$D" --only sdxl 2>&1)
check "sdxl needs only sd.cpp: nothing missing when it is there" $(! grep -q "missing for the peers" <<<"$out"; echo $?) "$out"
msg=$(SDCPP=$TMP/no-sd-cli $S --anyway --dir "$TMP/never2" --only seeds,sdxl 2>&1); rc=$?
check "a missing peer stops a real run at once (exit 2, named), nothing made" \
  $([ $rc = 2 ] && grep -q "missing for the peers: .*$TMP/no-sd-cli" <<<"$msg" && [ ! -e "$TMP/never2" ]; echo $?) "rc $rc: $msg"

if lscpu | grep -qw amx_bf16; then
  echo "# skipped the refusal check: this CPU has AMX"
else
  msg=$($S --dir "$TMP/never" --only sd15 2>&1); rc=$?
  check "no AMX, no --anyway: refused before making anything" \
    $([ $rc = 2 ] && grep -q 'no AMX' <<<"$msg" && [ ! -e "$TMP/never" ]; echo $?) "rc $rc: $msg"
fi
