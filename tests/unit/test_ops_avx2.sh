#!/usr/bin/env bash
# test_ops_avx2.sh — the ops layer as built for AVX2-only CPUs: test_ops
# and test_unet from VG_BUILD (default build-vg, made by `make vg`, which
# `make test` does, with -march=x86-64-v3: no AVX-512, so ops_vec.h's
# 16-lane helpers take their AVX2 / generic fallbacks — exp2 without
# vscalefps, SiLU without vrcp14ps) — and oneDNN held to AVX2
# (ONEDNN_MAX_CPU_ISA: no Winograd, no bf16), as such a CPU runs them.
# Check names get "[x86-64-v3] " as a prefix.  Full normal tier only
# (tests/run.sh FULL_ONLY: `make test-quick` does not build build-vg; not
# in the sanitizer tier); skipped on a CPU without AVX2.
cd "$(dirname "$0")/../.."
fail() { echo "FAIL - $1: $2"; }

if [ "${SD_SANITIZED:-0}" = 1 ]; then
  echo "# skipped in the sanitizer tier (runs build-vg's binaries in the normal tier)"
  exit 0
fi
if ! grep -qw avx2 /proc/cpuinfo; then echo "# CPU without avx2: skipped"; exit 0; fi
VG_BUILD=${VG_BUILD:-build-vg}
for t in unit/test_ops parity/test_unet; do
  bin=$VG_BUILD/tests/$t
  if [ ! -x "$bin" ]; then fail "$bin built" "missing (make vg)"; continue; fi
  ONEDNN_MAX_CPU_ISA=AVX2 "$bin" | sed -e "s/^ok - /ok - [x86-64-v3] /" -e "s/^FAIL - /FAIL - [x86-64-v3] /"
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || fail "[x86-64-v3] $t exits 0" "status $rc"
done
