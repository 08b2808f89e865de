#!/usr/bin/env bash
# bench/amx_sitting.sh — the AMX machine's whole measurement sitting in one
# command (bench/README.md "The AMX sitting"): every figure issues 12, 14,
# 15 and 19 still owe from a CPU with AMX, by the existing bench scripts and
# `sdserve bench`, one process at a time, SD 1.5-sized items first and the
# SDXL ones last (memory stays bounded), A/B pairs interleaved where a ratio
# is asked, the load average logged before every command; ends with one
# table (item, issue, goal, median and runs, load, met) to paste into
# bench/README.md.  Refuses to run on a CPU without AMX unless --anyway (then
# every line says the figures are not AMX ones).
#
# Usage: bench/amx_sitting.sh [--dir DIR] [--only LIST] [--quick] [--dry-run]
#            [--anyway] [--rounds N] [--repeats N] [--sdxl-peer-repeats N]
#            [--logs DIR] [--lock FILE]
#   --dir     model files, made there when missing and reused when present
#             (default /tmp/amx-sitting): sd15-f16.safetensors (make-model
#             --preset sd15), sd15-q8_0.gguf (sd.cpp's convert), sd15-lora-r32
#             .safetensors (tools/make_lora --rank 32), sdxl.safetensors
#             (bench/make_sdxl.sh, 6.9 GB)
#   --only    comma list of items (default all, in this order):
#             sd15 profile batch noamx lora previews seeds e2e peers sdxl
#   --quick   a smoke run of every item's code path in minutes: 64x64 on the
#             SD 1.5 file, 1 round of 1 repeat, the shared tiny-sdxl-s for
#             SDXL (256x256), the SD 1.5 file at 64x64 standing in for sd.cpp's
#             SDXL run; the figures mean nothing
#   --dry-run print the commands (and the files that would be made), run nothing
#   --anyway  run on a CPU without AMX too (the output is labelled so)
#   --rounds  A/B rounds and runs per figure (default 3; --quick 1)
#   --repeats `sdserve bench --repeats` (default 3; --quick 1)
#   --sdxl-peer-repeats  stable-diffusion.cpp SDXL runs (default 3; ~9 min each)
#   --logs    keep every command's output there (default DIR/logs-<UTC time>)
#   --lock    lock file held for the whole sitting (default /tmp/sdbench.lock,
#             as every SD 1.5-sized run here; '' = none)
#   SDCPP=PATH  stable-diffusion.cpp's CLI (default /work/peer/sdcpp/build/bin/sd-cli;
#             its build: bench/README.md "Side-by-side with stable-diffusion.cpp")
#   DIFFUSERS=DIR  diffusers' source for the PyTorch peer (default
#             /work/peer/diffusers/src; bench/README.md "Peers in one sitting")
# The peers (items peers and sdxl) are checked before anything runs: a
# missing one stops the sitting at once (exit 2) naming it and how to get it,
# rather than after half an hour of the other items.
# Exit status: 0 when every command ran (goals met or not), 1 when one failed,
# 2 on a usage error or a CPU without AMX.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 2        # the commands are printed relative to the repository
B=build/sdserve
REF=${SD_REF:-../shared/reference}
V=$REF/tokenizer/bpe_simple_vocab_16e6.txt.gz
SDCPP=${SDCPP:-/work/peer/sdcpp/build/bin/sd-cli}
DIFFUSERS=${DIFFUSERS:-/work/peer/diffusers/src}
ITEMS="sd15 profile batch noamx lora previews seeds e2e peers sdxl"
dir=/tmp/amx-sitting only="" quick=0 dry=0 anyway=0 rounds="" repeats="" sdxl_peer_repeats=3 logs="" lock=/tmp/sdbench.lock

die() { echo "amx_sitting: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=${2?}; shift 2 ;;
    --only) only=${2?}; shift 2 ;;
    --quick) quick=1; shift ;;
    --dry-run) dry=1; shift ;;
    --anyway) anyway=1; shift ;;
    --rounds) rounds=${2?}; shift 2 ;;
    --repeats) repeats=${2?}; shift 2 ;;
    --sdxl-peer-repeats) sdxl_peer_repeats=${2?}; shift 2 ;;
    --logs) logs=${2?}; shift 2 ;;
    --lock) lock=${2?}; shift 2 ;;
    -h|--help) sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[ $quick = 1 ] && { : "${rounds:=1}"; : "${repeats:=1}"; }
: "${rounds:=3}" "${repeats:=3}"
. bench/lib.sh
need_positive_ints rounds repeats sdxl_peer_repeats
sel=$ITEMS
if [ -n "$only" ]; then
  for i in ${only//,/ }; do case " $ITEMS " in *" $i "*) ;; *) die "--only: unknown item '$i' (items: $ITEMS)" ;; esac; done
  sel=""; for i in $ITEMS; do case ",$only," in *",$i,"*) sel="$sel $i" ;; esac; done
fi

amx=0; lscpu | grep -qw amx_bf16 && amx=1
label=""
if [ $amx = 0 ]; then
  label="NOT AN AMX CPU (--anyway): these figures are not the issues' AMX ones"
  if [ $dry = 0 ] && [ $anyway = 0 ]; then
    die "this CPU has no AMX (lscpu: no amx_bf16); the sitting is for an AMX machine (--anyway runs it here)"
  fi
fi
[ $quick = 1 ] && label="${label:+$label; }QUICK smoke run (tiny sizes, 1 repeat): the figures mean nothing"

# sizes and files
S=512; XS=""; sd15=$dir/sd15-f16.safetensors; q8=$dir/sd15-q8_0.gguf
lora=$dir/sd15-lora-r32.safetensors; xl=$dir/sdxl.safetensors
PS=$S   # the peers' size: --quick 128 (PyTorch's bf16 UNet at 64², 1x1 at its lowest level, gave NaN at times)
if [ $quick = 1 ]; then S=64; PS=128; XS=256; xl=$REF/models/tiny-sdxl-s-fp16.safetensors; fi
BA=(--model "$sd15" --vocab "$V" -W "$S" -H "$S" --threads 2 --repeats "$repeats")
[ -n "$logs" ] || logs=$dir/logs-$(date -u +%Y%m%dT%H%M%SZ)
fail=0 t_start=$(date +%s)

# ---- helpers -------------------------------------------------------------
load1() { cut -d' ' -f1 /proc/loadavg; }
# quoted ARGS...: a shell line (arguments quoted only where they need it)
quoted() { local a o=""; for a in "$@"; do
  if [[ "$a" =~ ^[A-Za-z0-9_./=,:+@%-]+$ ]]; then o="$o $a"; else o="$o $(printf '%q' "$a")"; fi; done; echo "${o# }"; }
# est ITEM: its minutes on the AMX machine (bench/README.md "The AMX sitting": from the figures there)
est() { case $1 in sd15) echo 2 ;; profile) echo 1 ;; batch|noamx|seeds) echo 3 ;; lora|previews) echo 2 ;;
  e2e) echo 4 ;; peers) echo 16 ;; sdxl) echo $((6 + 6 * sdxl_peer_repeats)) ;; esac; }
# run [-g] ITEM LOG CMD...: CMD's output into LOGS/LOG (echoed with
# --dry-run); the 1-minute load before it is kept for ITEM's row.  -g: CMD
# exits 1 when a goal it checks is not met (the table says which), so only
# other statuses count as a failed command.
run() {
  local g=0; [ "$1" = -g ] && { g=1; shift; }
  local item=$1 log=$2 rc; shift 2
  if [ $dry = 1 ]; then echo "  $(quoted "$@")"; return 0; fi
  load1 >> "$logs/load.$item"
  echo "$(date -u +%H:%M:%S) $item: $log (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$@" > "$logs/$log" 2>&1; rc=$?
  [ $rc = 0 ] && return 0
  [ $g = 1 ] && [ $rc = 1 ] && { echo "  ($log: exit 1, a goal it checks not met)"; return 0; }
  echo "  FAIL - $log exited $rc: $(tail -2 "$logs/$log" | tr '\n' ' ')"; fail=1; return 1
}
# make FILE CMD...: CMD when FILE is missing (it writes FILE)
make_file() {
  local f=$1; shift
  [ -e "$f" ] && { [ $dry = 1 ] && echo "  # reusing $f"; return 0; }
  [ $dry = 1 ] && { echo "  # $f is missing: made by"; echo "  $(quoted "$@")"; return 0; }
  echo "$(date -u +%H:%M:%S) making $f"
  "$@" > "$logs/make-$(basename "$f").log" 2>&1 || { echo "  FAIL - making $f: $(tail -2 "$logs/make-$(basename "$f").log")"; fail=1; return 1; }
}
med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {if (!NR) {print "nan"; exit}
  if (NR % 2) print v[(NR+1)/2]; else printf "%.4g\n", (v[NR/2]+v[NR/2+1])/2}'; }
# first field before the word W on lines whose first field is K (in LOG)
before() { awk -v k="$1" -v w="$2" '$1 == k { for (i = 2; i <= NF; i++) if ($i == w) { print $(i-1); exit } }' "$3"; }
step_of() { awk '$1 == "unet" && ($2 == "cfg" || $2 == "step") { for (i = 2; i <= NF; i++) if ($i == "s") { print $(i-1); exit } }' "$1"; }
dec_of() { awk '$1 == "vae" && $2 == "decode" { print $3; exit }' "$1"; }
# the same share per run against the loop measured around it, median of the runs ("paired": robust to a slow phase)
paired_pct() { sed -n 's/^  paired .* median \([0-9.]*\) % of peak$/\1/p' "$1" | head -1; }
# fig ITEM ISSUE WHAT GOAL(op limit or "-") UNIT "RUNS": one summary row; the median of RUNS
fig() {
  local item=$1 issue=$2 what=$3 goal=$4 unit=$5 runs=$6 m met ld
  m=$(echo "$runs" | med)
  met=$(awk -v m="$m" -v g="$goal" 'BEGIN { split(g, a, " "); if (g == "-" || m == "nan") { print "—"; exit }
    ok = (a[1] == "<=") ? m <= a[2] : (a[1] == ">=") ? m >= a[2] : (a[1] == "<") ? m < a[2] : (a[1] == "=") ? m == a[2] : m > a[2]
    print ok ? "**met**" : "not met" }')
  ld=$(sort -g "$logs/load.$item" 2>/dev/null | sed -n '1p;$p' | paste -sd- | sed 's/^\(.*\)-\1$/\1/')
  printf '| %s | %s | %s | %s | %s %s | %s | %s | %s |\n' "$item" "$issue" "$what" \
    "$([ "$goal" = - ] && echo — || echo "$goal $unit")" "$m" "$unit" "$(echo $runs)" "${ld:-?}" "$met" >> "$logs/summary"
  echo "  => $what: $m $unit (runs: $(echo $runs))${goal:+ goal $goal $unit: $met}" | sed 's/goal - [^:]*: —//'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "" && a != "nan") printf "%.3f\n", a / b; else print "nan" }'; }

# ---- items ---------------------------------------------------------------
# sd15 (issue 19): auto and bf16 interleaved, one bench process each per round
item_sd15() {
  local r p
  for r in $(seq "$rounds"); do for p in auto bf16; do
    run sd15 "sd15-$p-$r.log" "$B" bench "${BA[@]}" --precision "$p" --skip load,text,encode
  done; done
  [ $dry = 1 ] && return
  fig sd15 19 "SD 1.5 ${S}² CFG UNet step, auto" "<= 1.2" s "$(for r in $(seq "$rounds"); do step_of "$logs/sd15-auto-$r.log"; done)"
  fig sd15 19 "SD 1.5 ${S}² VAE decode, auto" "<= 0.9" s "$(for r in $(seq "$rounds"); do dec_of "$logs/sd15-auto-$r.log"; done)"
  fig sd15 19 "SD 1.5 ${S}² CFG UNet step, bf16" "<= 0.9" s "$(for r in $(seq "$rounds"); do step_of "$logs/sd15-bf16-$r.log"; done)"
}

# profile (issue 19 items 1, 3): SD_PROFILE=2 at auto (per kind, then by
# shape: which shapes keep a kind under 80 %); the random-operand
# bf16 matmul peak is `sdserve bench`'s own AMX loop (tdpbf16ps from L1 on
# random bf16 tiles; ops_amx_peak.c), the vdpbf16ps loop where there is no AMX
item_profile() {
  run profile profile-auto.log env SD_PROFILE=2 "$B" bench "${BA[@]}" --precision auto --skip load,text,decode,encode
  [ $dry = 1 ] && return
  local peak k r
  peak=$(sed -n 's/^AMX bf16 matmul loop .*: random operands \([0-9.]*\) GFLOP\/s.*/\1/p' "$logs/profile-auto.log")
  [ -n "$peak" ] || peak=$(sed -n 's/^bf16 dot loop (vdpbf16ps.*: \([0-9.]*\) GFLOP\/s.*/\1/p' "$logs/profile-auto.log")
  echo "  random-operand bf16 matmul peak (sdserve bench's loop): ${peak:-none} GFLOP/s"
  for k in conv linear attention; do
    r=$(before "$k" GFLOP/s "$logs/profile-auto.log")
    fig profile 19 "$k at auto: executed GFLOP/s / matmul peak (${peak:-none}) %" \
      "$([ $k = attention ] && echo - || echo '>= 80')" % "$(awk -v r="$r" -v p="${peak:-0}" 'BEGIN { if (p > 0 && r != "") printf "%.1f", 100 * r / p; else print "nan" }')"
  done
}

# batch (issue 19 item 4): num_outputs 1 and 4 back to back, per image
item_batch() {
  local r b
  for r in $(seq "$rounds"); do for b in 1 4; do
    run batch "batch$b-$r.log" "$B" bench "${BA[@]}" --precision auto --batch "$b" --skip load,text,decode,encode
  done; done
  [ $dry = 1 ] && return
  local one four
  one=$(for r in $(seq "$rounds"); do step_of "$logs/batch1-$r.log"; done)
  four=$(for r in $(seq "$rounds"); do ratio "$(step_of "$logs/batch4-$r.log")" 4; done)
  fig batch 19 "UNet step per image, num_outputs=1, auto" - s "$one"
  fig batch 19 "UNet step per image, num_outputs=4, auto" - s "$four"
  fig batch 19 "per image: 4 / 1 (pairs)" "< 1" x "$(for r in $(seq "$rounds"); do
      ratio "$(ratio "$(step_of "$logs/batch4-$r.log")" 4)" "$(step_of "$logs/batch1-$r.log")"; done)"
}

# noamx (issue 19 item 5): oneDNN capped below AMX (has_amx reads oneDNN's
# effective ISA: src/engine/ops/ops_weights.c); fp32 vs auto (= fp32 + the
# per-layer rule on vdpbf16ps) interleaved
item_noamx() {
  local r p
  for r in $(seq "$rounds"); do for p in fp32 auto; do
    run noamx "noamx-$p-$r.log" env ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 "$B" bench "${BA[@]}" --precision "$p" \
      --skip load,text,decode,encode
  done; done
  [ $dry = 1 ] && return
  echo "  capped auto is: $(sed -n 's/.*precision \(.*\)$/\1/p' "$logs/noamx-auto-1.log" | head -1)"
  fig noamx 19 "no AMX (ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16): fp32 step, executed % of the FMA loop (paired)" ">= 85" % \
    "$(for r in $(seq "$rounds"); do paired_pct "$logs/noamx-fp32-$r.log"; done)"
  fig noamx 19 "no AMX: vdpbf16ps loop / FMA loop (the CPU's bf16 peak)" - x "$(for r in $(seq "$rounds"); do
      sed -n 's/^bf16 dot loop .*, \([0-9.]*\)x the FMA loop$/\1/p' "$logs/noamx-fp32-$r.log"; done)"
  fig noamx 19 "no AMX: fp32 CFG UNet step" - s "$(for r in $(seq "$rounds"); do step_of "$logs/noamx-fp32-$r.log"; done)"
  fig noamx 19 "no AMX: auto (fp32 + bf16 rule) / fp32 step" "< 1" x "$(for r in $(seq "$rounds"); do
      ratio "$(step_of "$logs/noamx-auto-$r.log")" "$(step_of "$logs/noamx-fp32-$r.log")"; done)"
}

# lora (issue 14): a rank-32 LoRA over every attention and conv layer
item_lora() {
  make_file "$lora" "build/tools/make_lora" "$sd15" --rank 32 -o "$lora" || return
  local r
  for r in $(seq "$rounds"); do
    run lora "lora-$r.log" "$B" bench "${BA[@]}" --precision auto --skip load,text,decode,encode --lora "$lora"
  done
  [ $dry = 1 ] && return
  local first="" cached="" rss="" f
  for r in $(seq "$rounds"); do
    f=$logs/lora-$r.log
    first="$first $(awk '/^lora .*against one UNet step of/ { s = $(NF-1) } /apply, first/ { a = $3 }
        /unet step after/ { u = $4 } END { if (s > 0) printf "%.3f", (a + u - s) / s; else print "nan" }' "$f")"
    cached="$cached $(awk '/apply, cached/ { print $3 }' "$f")"
    rss="$rss $(sed -n 's/.*; peak .*(\([-+0-9.]*\) %)$/\1/p' "$f")"
  done
  fig lora 14 "first apply + first step's merge, in UNet steps (auto)" "<= 1" steps "$first"
  fig lora 14 "apply again (cached)" "<= 0.001" s "$cached"
  fig lora 14 "peak RSS with the LoRA" "<= 15" "% more" "$rss"
}

# previews (issue 18): TAESD's share of a step at the default
item_previews() {
  local r
  for r in $(seq "$rounds"); do
    run previews "previews-$r.log" env SD15="$sd15" SIZE="$S" REPEATS="$repeats" "bench/previews.sh"
  done
  [ $dry = 1 ] && return
  fig previews 18 "TAESD decode / UNet step (auto)" "<= 10" % "$(for r in $(seq "$rounds"); do
      sed -n 's/^previews: taesd decode [0-9x]* = \([0-9.]*\) %.*/\1/p' "$logs/previews-$r.log"; done)"
}

# seeds (issue 12): num_outputs=4 vs each seed alone, default first, then fp32
item_seeds() {
  run -g seeds seeds.log env MODEL="$sd15" SIZE="$S" PRECISIONS="auto fp32" "bench/seeds_sd15.sh"
  [ $dry = 1 ] && return
  local p
  # where auto is fp32 (no bf16 on the CPU) the script runs fp32 once, as
  # "[auto = fp32]": that run counts for both rows
  for p in auto fp32; do
    fig seeds 12 "images of num_outputs=4 identical to their seed alone, $p" "= 4" "of 4" \
      "$(grep -c -e "^ok - \[$p = " -e "^ok - \[auto = $p\] " "$logs/seeds.log")"
  done
}

# e2e (issue 19 item 6): through POST /txt2img, 20 steps and 4 steps at guidance 1
item_e2e() {
  run e2e e2e.log env MODEL="$sd15" SIZE="$S" ROUNDS="$rounds" "bench/e2e_sd15.sh"
  [ $dry = 1 ] && return
  fig e2e 19 "POST /txt2img ${S}², 20 steps, auto" "<= 28" s "$(sed -n 's/^e2e steps=20 .*runs \(.*\)/\1/p' "$logs/e2e.log")"
  fig e2e 19 "POST /txt2img ${S}², 4 steps guidance 1, auto" "<= 4" s "$(sed -n 's/^e2e steps=4 .*runs \(.*\)/\1/p' "$logs/e2e.log")"
}

# peers (issue 19): ours auto and bf16, PyTorch bf16, sd.cpp f16 and q8_0
item_peers() {
  make_file "$q8" "$SDCPP" -M convert -m "$sd15" -o "$q8" --type q8_0 || return
  run peers peers.log "bench/peers.sh" --rounds "$rounds" --precisions "auto bf16" --lock '' \
    --only ours-auto,ours-bf16,torch-bf16,sdcpp-f16,sdcpp-q8_0 --sdcpp-repeats 1 --f16 "$sd15" --q8 "$q8" \
    -W "$PS" -H "$PS" --threads 2 --diffusers "$DIFFUSERS" --sd "$SDCPP" --logs "$logs/peers"
  [ $dry = 1 ] && return
  local t="$logs/peers/table" c
  [ -f "$t" ] || t=/dev/null   # peers.sh writes it at its end
  col() { awk -v c="$1" -v n="$2" '$1 == c { print $n }' "$t"; }
  for c in torch-bf16 sdcpp-f16 sdcpp-q8_0; do
    fig peers 19 "$c / ours auto, per step (medians of rounds)" "$([ $c = torch-bf16 ] && echo '>= 3.5' || echo -)" x \
      "$(ratio "$(col $c 2)" "$(col ours-auto 2)")"
    fig peers 19 "$c / ours auto, per decode" - x "$(ratio "$(col $c 3)" "$(col ours-auto 3)")"
  done
}

# sdxl (issue 15): peak RSS, the FLOP rule against SD 1.5, sd.cpp f16 side by side
item_sdxl() {
  [ $quick = 1 ] || make_file "$xl" "bench/make_sdxl.sh" "$xl" || return
  local mem=(MAX_RSS_GB=12) peer=(--model "$xl" -W 1024 -H 1024)
  [ $quick = 1 ] && mem+=(MIN_AVAIL_GIB=1) && peer=(--model "$sd15" -W "$S" -H "$S")   # stand-in: sd.cpp needs real SDXL shapes
  run -g sdxl sdxl-check.log env "${mem[@]}" "bench/sdxl_check.sh" "$xl"
  run -g sdxl sdxl-vs-sd15.log env SD15_SIZE="$S" ${XS:+XL_SIZE=$XS} "bench/sdxl_vs_sd15.sh" "$sd15" "$xl" "$repeats"
  run sdxl sdxl-sdcpp.log "bench/peer_sdcpp.sh" "${peer[@]}" --steps 1 --threads 2 \
    --repeats "$sdxl_peer_repeats" --skip-ours --sd "$SDCPP"
  [ $dry = 1 ] && return
  local f=$logs/sdxl-vs-sd15.log ps pd os od
  fig sdxl 15 "SDXL whole bench (load, text, step, decode): peak RSS" "<= 12" GB \
    "$(sed -n 's/^# whole run: .*peak RSS \([0-9.]*\) GB.*/\1/p' "$logs/sdxl-check.log")"
  os=$(sed -n 's/.*SDXL unet cfg step \([0-9.]*\) s.*/\1/p' "$f"); od=$(sed -n 's/.*SDXL vae decode \([0-9.]*\) s.*/\1/p' "$f")
  fig sdxl 15 "SDXL ${XS:-1024}² CFG UNet step, auto" - s "$os"
  fig sdxl 15 "SDXL ${XS:-1024}² VAE decode, auto" - s "$od"
  fig sdxl 15 "SDXL step / allowed (FLOPs x SD 1.5 step + 15 %)" "<= 1" x "$(sed -n 's/.*SDXL unet cfg step .*SDXL\/allowed \([0-9.]*\)).*/\1/p' "$f")"
  fig sdxl 15 "SDXL decode / allowed" "<= 1" x "$(sed -n 's/.*SDXL vae decode .*SDXL\/allowed \([0-9.]*\)).*/\1/p' "$f")"
  read -r ps pd < <(awk '$1 == "median" { print $2, $3 }' "$logs/sdxl-sdcpp.log")
  fig sdxl 15 "sd.cpp f16 / ours per step$([ $quick = 1 ] && echo ' (quick: SD 1.5 stand-in)')" ">= 10" x "$(ratio "$ps" "$os")"
  fig sdxl 15 "sd.cpp f16 / ours per decode$([ $quick = 1 ] && echo ' (quick: SD 1.5 stand-in)')" ">= 10" x "$(ratio "$pd" "$od")"
}

# peer_gaps: what the selected items' peers lack, one "; "-separated line
# (empty when nothing is missing)
peer_gaps() {
  local g="" sd=0 torch=0 i
  for i in $sel; do case $i in peers) sd=1; torch=1 ;; sdxl) sd=1 ;; esac; done
  [ $sd = 1 ] && [ ! -x "$SDCPP" ] &&
    g="$g; stable-diffusion.cpp's CLI $SDCPP (SDCPP=; bench/README.md \"Side-by-side with stable-diffusion.cpp\")"
  [ $torch = 1 ] && ! /usr/bin/python3 -c 'import torch' 2>/dev/null &&
    g="$g; Debian's python3-torch (apt-get install python3-torch python3-packaging)"
  [ $torch = 1 ] && [ ! -d "$DIFFUSERS" ] &&
    g="$g; diffusers' source $DIFFUSERS (DIFFUSERS=; bench/README.md \"Peers in one sitting\")"
  echo "${g#; }"
}

# ---- the sitting ---------------------------------------------------------
echo "# AMX sitting: $(date -u +%FT%TZ); $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, AMX $([ $amx = 1 ] && echo yes || echo no)"
echo "# $(cd "$here" && git log -1 --format='commit %h "%s"' 2>/dev/null); files in $dir; items:$sel"
echo "# rounds $rounds, bench repeats $repeats, ${S}x${S}; SD 1.5 items first, SDXL last, one process at a time"
[ -n "$label" ] && echo "# *** $label ***"
[ $amx = 0 ] && [ $anyway = 0 ] && echo "# (a real run on this CPU needs --anyway)"
gaps=$(peer_gaps)
[ -n "$gaps" ] && [ $dry = 1 ] && echo "# missing for the peers (a real run stops here): $gaps"
if [ $dry = 0 ]; then
  [ -x "$B" ] || die "$B missing: make -j2 && make -j2 tests tools"
  [ -z "$gaps" ] || die "missing for the peers: $gaps; or leave out peers and sdxl with --only"
  mkdir -p "$dir" "$logs" || die "cannot make $dir / $logs"
  if [ -n "$lock" ]; then
    exec 9>>"$lock"
    flock -n 9 || { echo "# waiting for $lock (another full-size run)"; flock 9; }
  fi
  echo "# logs in $logs; load $(cut -d' ' -f1-3 /proc/loadavg); memory $(free -g | awk '/^Mem:/ { print $2 " GiB, " $7 " available" }')"
  : > "$logs/summary"
fi
[ $dry = 1 ] && echo "files:"
make_file "$sd15" "$B" make-model --preset sd15 --dtype f16 -o "$sd15" --quiet || exit 1
for i in $sel; do
  [ $dry = 1 ] && echo "$i:"
  "item_$i"
done
if [ $dry = 1 ]; then
  tot=1; for i in $sel; do tot=$((tot + $(est "$i"))); done
  echo "# estimated on the AMX machine (full sizes, idle): $(for i in $sel; do printf '%s %s, ' "$i" "$(est "$i")"; done)files ~1-4: ~$tot min"
  exit 0
fi
{
  echo
  echo "## AMX sitting $(date -u +%F), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs${label:+ — $label}"
  echo
  echo "wall $(( ($(date +%s) - t_start) / 60 )) min $(( ($(date +%s) - t_start) % 60 )) s; medians over $rounds round(s); load = 1-minute load average before each command (min-max)"
  echo
  echo "| item | issue | figure | goal | median | runs | load | met |"
  echo "|---|---|---|---|---|---|---|---|"
  cat "$logs/summary"
} | tee "$logs/summary.md"
[ $fail = 0 ] || echo "# some commands failed: see $logs"
exit $fail
