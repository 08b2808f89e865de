#!/usr/bin/env bash
# bench/peers.sh — the peers in one sitting (issue 19, "Must show": peers):
# runs, one after the other in one order per round, `sdserve bench` at two
# precisions, plain PyTorch (bench/peer_torch.py) in bf16 and fp32 and
# stable-diffusion.cpp (bench/peer_sdcpp.sh) on an f16 and a q8_0 file, all on
# SD 1.5 shapes at the same size and thread count, each command under
# `flock /tmp/sdbench.lock` (other sessions' full-size runs wait for it);
# keeps every log, then prints per configuration the median over the rounds of
# each run's median seconds per CFG UNet step and per VAE decode, and the
# ratios peer/ours against each of our precisions.
#
# Usage: bench/peers.sh [--rounds N] [--only LIST] [--logs DIR] [--threads N] [--lock F]
#            [-W N] [-H N] [--f16 FILE] [--q8 FILE] [--ours PATH]
#            [--diffusers DIR] [--openblas DIR] [--precisions "fp32 bf16"]
#            [--sdcpp-repeats N] [--sd PATH]
#   --only      comma list of configurations to run (default all):
#               ours-<precision>, torch-bf16, torch-fp32, sdcpp-f16, sdcpp-q8_0
#   --f16       our make-model SD 1.5 f16 file (default /tmp/sd15-f16.safetensors)
#   --q8        the same converted to q8_0 by the peer (default /tmp/sd15-q8_0.gguf;
#               sd-cli -M convert -m F16 -o Q8 --type q8_0)
#   --sdcpp-repeats  runs of each stable-diffusion.cpp file (default 3; a run
#               is a whole generation, 2 steps: slow on a loaded machine)
#   --sd        stable-diffusion.cpp's CLI, passed on to peer_sdcpp.sh (default:
#               its default, /work/peer/sdcpp/build/bin/sd-cli or .../sd)
#   --lock      the lock file each command runs under (default
#               /tmp/sdbench.lock; '' = none, e.g. when the whole sitting runs
#               under one `flock /tmp/sdbench.lock bench/peers.sh --lock ''`)
#   --openblas  directory with OpenBLAS's libblas.so.3 for PyTorch's fp32
#               linears (default /work/peer/openblas/usr/lib/x86_64-linux-gnu/
#               openblas-pthread if it exists; Debian's default reference BLAS
#               runs them at ~2 GFLOP/s)
#   --logs      keep the logs there (default: a new directory under /tmp)
# Timings are only comparable within one sitting; the load average is logged
# before each command.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/lib.sh"
rounds=1 only="" logs="" threads=2 W=512 H=512
f16=/tmp/sd15-f16.safetensors q8=/tmp/sd15-q8_0.gguf
ours="$here/build/sdserve" diffusers=/work/peer/diffusers/src
openblas=/work/peer/openblas/usr/lib/x86_64-linux-gnu/openblas-pthread
precisions="fp32 bf16"
lock=/tmp/sdbench.lock sdcpp_repeats=3 sd=""

die() { echo "peers: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=${2?}; shift 2 ;;
        --only) only=${2?}; shift 2 ;;
        --logs) logs=${2?}; shift 2 ;;
        --threads) threads=${2?}; shift 2 ;;
        -W|--width) W=${2?}; shift 2 ;;
        -H|--height) H=${2?}; shift 2 ;;
        --f16) f16=${2?}; shift 2 ;;
        --q8) q8=${2?}; shift 2 ;;
        --ours) ours=${2?}; shift 2 ;;
        --diffusers) diffusers=${2?}; shift 2 ;;
        --openblas) openblas=${2?}; shift 2 ;;
        --precisions) precisions=${2?}; shift 2 ;;
        --sdcpp-repeats) sdcpp_repeats=${2?}; shift 2 ;;
        --sd) sd=${2?}; shift 2 ;;
        --lock) lock=${2?}; shift 2 ;;
        -h|--help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
need_positive_ints rounds threads W H sdcpp_repeats

configs=""
for p in $precisions; do configs="$configs ours-$p"; done
configs="$configs torch-bf16 sdcpp-f16 torch-fp32 sdcpp-q8_0"
if [ -n "$only" ]; then
    for c in ${only//,/ }; do
        case " $configs " in *" $c "*) ;; *) die "--only: unknown configuration '$c'" ;; esac
    done
    configs=${only//,/ }
fi

V=${SD_REF:-$here/../shared/reference}/tokenizer/bpe_simple_vocab_16e6.txt.gz
[ -r "$V" ] || V=/work/shared/reference/tokenizer/bpe_simple_vocab_16e6.txt.gz
[ -n "$logs" ] || logs=$(mktemp -d /tmp/peers.XXXXXX)
mkdir -p "$logs"
echo "peers: logs in $logs; $W x $H, $threads threads, $rounds round(s): $configs"

# locked CMD...: CMD under the lock (if any)
locked() { if [ -n "$lock" ]; then flock "$lock" "$@"; else "$@"; fi; }

# run_one CONFIG LOG: one median-of-3 run of CONFIG, its output in LOG
run_one() {
    local c=$1 log=$2
    case "$c" in
        ours-*)
            locked "$ours" bench --model "$f16" --vocab "$V" -W "$W" -H "$H" \
                --threads "$threads" --repeats 3 --skip load,encode --precision "${c#ours-}" ;;
        torch-*)
            local env=()
            [ -d "$openblas" ] && env=(LD_LIBRARY_PATH="$openblas" OPENBLAS_NUM_THREADS="$threads")
            locked env "${env[@]}" /usr/bin/python3 "$here/bench/peer_torch.py" \
                --diffusers "$diffusers" --dtype "${c#torch-}" -W "$W" -H "$H" \
                --threads "$threads" --repeats 3 ;;
        sdcpp-f16)
            locked "$here/bench/peer_sdcpp.sh" --model "$f16" -W "$W" -H "$H" \
                --steps 2 --threads "$threads" --repeats "$sdcpp_repeats" --skip-ours ${sd:+--sd "$sd"} ;;
        sdcpp-q8_0)
            locked "$here/bench/peer_sdcpp.sh" --model "$q8" -W "$W" -H "$H" \
                --steps 2 --threads "$threads" --repeats "$sdcpp_repeats" --skip-ours ${sd:+--sd "$sd"} ;;
    esac > "$log" 2>&1
}

# step_decode LOG -> "step_s decode_s" (sdserve bench / peer_torch.py lines,
# or peer_sdcpp.sh's "median" line)
step_decode() {
    awk '$1 == "unet" && $2 == "cfg" && $3 == "step" { s = $4 }
         $1 == "vae" && $2 == "decode" { d = $3 }
         $1 == "median" { s = $2; d = $3 }
         END { print (s == "" ? "nan" : s), (d == "" ? "nan" : d) }' "$1"
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
    if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

for r in $(seq 1 "$rounds"); do
    for c in $configs; do
        log="$logs/$c.$r.log"
        echo "$(date -u +%H:%M:%S) round $r $c (load $(cut -d' ' -f1-3 /proc/loadavg))"
        run_one "$c" "$log" || { tail -5 "$log" >&2; die "$c round $r failed (log: $log)"; }
        echo "    step / decode s: $(step_decode "$log")"
    done
done

echo
printf '%-12s %10s %10s\n' config "s/step" "decode s"
: > "$logs/table"
for c in $configs; do
    s=$(for f in "$logs/$c".*.log; do step_decode "$f" | cut -d' ' -f1; done | median)
    d=$(for f in "$logs/$c".*.log; do step_decode "$f" | cut -d' ' -f2; done | median)
    printf '%-12s %10s %10s\n' "$c" "$s" "$d" | tee -a "$logs/table"
done
echo
for o in $configs; do
    case "$o" in ours-*) ;; *) continue ;; esac
    read -r _ os od < <(grep "^$o " "$logs/table")
    for c in $configs; do
        case "$c" in ours-*) continue ;; esac
        read -r _ ps pd < <(grep "^$c " "$logs/table")
        awk -v c="$c" -v o="$o" -v ps="$ps" -v os="$os" -v pd="$pd" -v od="$od" 'BEGIN {
            printf "%-11s / %-10s step %.2fx  decode %.2fx\n", c, o, ps / os, pd / od }'
    done
done
