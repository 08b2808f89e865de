#!/usr/bin/env bash
# bench/peer_sdcpp.sh — side-by-side speed check against stable-diffusion.cpp
# (issue 4): runs the peer's CLI R times on the same checkpoint, size, steps
# and threads as `sdserve bench`, prints per run its seconds per sampling step
# (CFG step: cond + uncond UNet), VAE decode seconds and peak RSS, then the
# medians; then runs `sdserve bench` with the same settings and prints the
# ratios peer/ours per step and per decode.  The peer is built separately
# (see bench/README.md, "Side-by-side with stable-diffusion.cpp"); nothing of
# it lives in this repo.
#
# Usage: bench/peer_sdcpp.sh [--sd PATH] [--model M] [-W N] [-H N] [--steps N]
#            [--threads N] [--repeats R] [--ours PATH] [--vocab PATH]
#            [--logs DIR] [--skip-ours] [--parse LOG...]
#   --sd       peer CLI (default /work/peer/sdcpp/build/bin/sd-cli, or .../sd)
#   --model    checkpoint for both (default /tmp/sd15.safetensors)
#   --ours     our binary (default build/sdserve next to this script's repo)
#   --logs     keep the peer's logs there (default: a temp dir, removed)
#   --parse    only parse existing peer logs (written with -v under
#              /usr/bin/time -v) and print their numbers; runs nothing
# Run it on an idle machine: the numbers are only comparable when both
# programs ran in the same session under the same load.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/lib.sh"
sd=""
model=/tmp/sd15.safetensors
W=512 H=512 steps=2 threads=2 repeats=3
ours="$here/build/sdserve"
vocab=""
logs=""
skip_ours=0
parse_only=0

die() { echo "peer_sdcpp: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --sd) sd=${2?}; shift 2 ;;
        --model) model=${2?}; shift 2 ;;
        -W|--width) W=${2?}; shift 2 ;;
        -H|--height) H=${2?}; shift 2 ;;
        --steps) steps=${2?}; shift 2 ;;
        --threads|-t) threads=${2?}; shift 2 ;;
        --repeats) repeats=${2?}; shift 2 ;;
        --ours) ours=${2?}; shift 2 ;;
        --vocab) vocab=${2?}; shift 2 ;;
        --logs) logs=${2?}; shift 2 ;;
        --skip-ours) skip_ours=1; shift ;;
        --parse) parse_only=1; shift; break ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
need_positive_ints W H steps threads repeats

# parse_log LOG -> "sampling_s steps s_per_step decode_s rss_gb step_list"
# The peer prints (src/stable-diffusion.cpp of the commit in bench/README.md):
#   "... sampling completed, taking X.XXs"
#   "... decode_first_stage completed, taking X.XXs"
#   progress "| k/n - X.XXs/it" (or "it/s" when under a second), \r-separated
# and /usr/bin/time -v adds "Maximum resident set size (kbytes): N".
parse_log() {
    tr '\r' '\n' < "$1" | awk '
        /sampling completed, taking/ { s = $NF; sub(/s$/, "", s); samp = s }
        /decode_first_stage completed, taking/ { s = $NF; sub(/s$/, "", s); dec = s }
        /Maximum resident set size \(kbytes\)/ { rss = $NF / 1048576 }
        /[0-9]+\/[0-9]+ - [0-9.]+(s\/it|it\/s)/ {
            for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\/[0-9]+$/) { split($i, kn, "/"); k = kn[1]; n = kn[2] }
            v = $NF; unit = (v ~ /it\/s/) ? "ips" : "spi"; sub(/(s\/it|it\/s).*/, "", v)
            if (unit == "ips" && v > 0) v = 1 / v
            if (!(k in st)) { st[k] = v; order[++ns] = k }
        }
        END {
            if (samp == "" || dec == "" || n == "") { print "bad"; exit }
            list = ""; for (i = 1; i <= ns; i++) list = list (i > 1 ? "," : "") st[order[i]]
            printf "%s %d %.3f %s %.2f %s\n", samp, n, samp / n, dec, rss, list
        }'
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
    if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

peer_header() { printf '%-4s %10s %10s %10s %8s  %s\n' run "s/step" "decode s" "sampling s" "RSS GiB" "per-step (progress bar)"; }

if [ "$parse_only" = 1 ]; then
    [ $# -gt 0 ] || die "--parse needs at least one log"
    peer_header
    i=0
    for f in "$@"; do
        i=$((i + 1))
        r=$(parse_log "$f")
        [ "$r" != bad ] || die "$f: no 'sampling completed' / 'decode_first_stage completed' lines (run with -v?)"
        set -- $r
        printf '%-4s %10s %10s %10s %8s  %s\n' "$i" "$3" "$4" "$1" "$5" "$6"
    done
    exit 0
fi

if [ -z "$sd" ]; then
    for c in /work/peer/sdcpp/build/bin/sd-cli /work/peer/sdcpp/build/bin/sd; do
        [ -x "$c" ] && { sd=$c; break; }
    done
fi
[ -n "$sd" ] && [ -x "$sd" ] || die "peer binary not found (give --sd PATH)"
[ -r "$model" ] || die "model '$model' not readable (make it with: build/sdserve make-model --preset sd15 --dtype f16 -o $model)"
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
if [ "$skip_ours" = 0 ]; then
    [ -x "$ours" ] || die "our binary '$ours' not found (make -j2, or --ours PATH)"
    if [ -z "$vocab" ]; then
        vocab=${SD_REF:-$here/../shared/reference}/tokenizer/bpe_simple_vocab_16e6.txt.gz
        [ -r "$vocab" ] || vocab=/work/shared/reference/tokenizer/bpe_simple_vocab_16e6.txt.gz
    fi
    [ -r "$vocab" ] || die "vocabulary not found (give --vocab PATH)"
fi

cleanup=""
if [ -z "$logs" ]; then logs=$(mktemp -d); cleanup=$logs; fi
mkdir -p "$logs"
trap '[ -n "$cleanup" ] && rm -rf "$cleanup"' EXIT

prompt="a photograph of an astronaut riding a horse on the moon, detailed, 8k"
neg="blurry, low quality"

echo "peer: $sd"
echo "model $model, ${W}x${H}, $steps steps euler, cfg 7, $threads threads, $repeats runs; load $(cut -d' ' -f1-3 /proc/loadavg)"
peer_header
: > "$logs/peer.tsv"
for i in $(seq 1 "$repeats"); do
    log="$logs/peer_$i.log"
    if ! /usr/bin/time -v "$sd" -m "$model" -p "$prompt" -n "$neg" -W "$W" -H "$H" \
            --steps "$steps" --sampling-method euler --cfg-scale 7 -t "$threads" -s 42 -v \
            -o "$logs/peer_$i.png" > "$log" 2>&1; then
        tail -5 "$log" >&2
        die "peer run $i failed (log: $log)"
    fi
    r=$(parse_log "$log")
    [ "$r" != bad ] || die "run $i: could not find the timing lines in $log"
    set -- $r
    printf '%-4s %10s %10s %10s %8s  %s\n' "$i" "$3" "$4" "$1" "$5" "$6"
    printf '%s\t%s\t%s\n' "$3" "$4" "$5" >> "$logs/peer.tsv"
done
p_step=$(cut -f1 "$logs/peer.tsv" | median)
p_dec=$(cut -f2 "$logs/peer.tsv" | median)
p_rss=$(cut -f3 "$logs/peer.tsv" | median)
printf '%-4s %10s %10s %10s %8s\n' median "$p_step" "$p_dec" "" "$p_rss"
echo "(s/step = 'sampling completed' time / steps: each step is one CFG step, cond + uncond UNet;"
echo " the first step includes the peer's graph allocation, as in its own sampling total)"

[ "$skip_ours" = 0 ] || exit 0

echo
echo "ours: $ours bench (load $(cut -d' ' -f1-3 /proc/loadavg))"
out="$logs/ours.log"
if ! "$ours" bench --model "$model" --vocab "$vocab" -W "$W" -H "$H" --steps "$steps" \
        --threads "$threads" --repeats "$repeats" --skip load,text,encode > "$out" 2>&1; then
    cat "$out" >&2
    die "sdserve bench failed"
fi
cat "$out"
o_step=$(awk '$1 == "unet" && $2 == "cfg" && $3 == "step" { print $4 }' "$out")
o_dec=$(awk '$1 == "vae" && $2 == "decode" { print $3 }' "$out")
[ -n "$o_step" ] && [ -n "$o_dec" ] || die "no 'unet cfg step' / 'vae decode' lines in sdserve bench output"

echo
awk -v ps="$p_step" -v os="$o_step" -v pd="$p_dec" -v od="$o_dec" 'BEGIN {
    printf "ratio per step   peer/ours = %.3f / %.3f = %.2fx\n", ps, os, ps / os
    printf "ratio per decode peer/ours = %.3f / %.3f = %.2fx\n", pd, od, pd / od }'
