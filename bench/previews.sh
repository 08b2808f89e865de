#!/usr/bin/env bash
# previews.sh — the previews' decoders against a UNet step (issue 18 item 2;
# bench/README.md "Previews"): on an SD 1.5-shaped random checkpoint at
# 512x512 and the default precision, one UNet CFG step (median of 3), a
# TAESD decode of the 64x64 latent to 512x512 with random weights of the
# real taesd's shapes (`make-model --preset taesd`: 64 channels, blocks
# 1,3,3,3 / 3,3,3,1; median of 5) and the linear approximation (median of
# 20), in one `sdserve bench` run.  Goals: TAESD <= 10 % of the step, the
# approximation <= 2 ms.  The 2 GB checkpoint is written to a temporary
# folder and deleted afterwards (SD15=FILE: use that one, made earlier).
#   bench/previews.sh            (SD_BUILD=build, SD_REF=../shared/reference)
#   SIZE=512 REPEATS=3           image side and UNet repeats (smaller: to check the script)
set -eu
cd "$(dirname "$0")/.."
BUILD=${SD_BUILD:-build}
BIN=$BUILD/sdserve
REF=${SD_REF:-../shared/reference}
T=$(mktemp -d /tmp/sdserve-previews-XXXXXX)
trap 'rm -rf "$T"' EXIT

lscpu | sed -n 's/^Model name: *//p'
if grep -qw amx_bf16 /proc/cpuinfo; then echo "AMX: yes"; else echo "AMX: no"; fi
# SD15=FILE: an SD 1.5-shaped file made earlier (not deleted), else one is made here
SD15=${SD15:-$T/sd15.safetensors}
[ -f "$SD15" ] || "$BIN" make-model --preset sd15 -o "$SD15" -q
"$BIN" make-model --preset taesd -o "$T/taesd.safetensors" -q
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" bench --model "$SD15" --vocab "$REF/tokenizer/bpe_simple_vocab_16e6.txt.gz" -W "${SIZE:-512}" -H "${SIZE:-512}" \
  --repeats "${REPEATS:-3}" --skip load,decode,encode --preview-decoder "$T/taesd.safetensors"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
