#!/usr/bin/env bash
# test_batch_rows_isa.sh — test_batch_rows (an image's bits do not depend on
# its batch, per op) with oneDNN capped below this CPU's ISA, as on older
# CPUs: ONEDNN_MAX_CPU_ISA=AVX512_CORE (AVX-512 without the bf16
# instructions: bf16 by emulation, gemm kernels for bf16 matmuls) and AVX2
# (no AVX-512: gemm:jit matmuls, fp32 only).  Check names get the cap as a
# prefix.  Skipped when the CPU has less than the cap.
cd "$(dirname "$0")/../.."
BIN=${SD_BUILD:-build}/tests/unit/test_batch_rows
for isa in AVX512_CORE AVX2; do
  flag=$([ $isa = AVX2 ] && echo avx2 || echo avx512f)
  if ! grep -qw "$flag" /proc/cpuinfo; then echo "# CPU without $flag: $isa skipped"; continue; fi
  # an AVX2-only CPU already runs test_batch_rows at AVX2 itself
  if [ $isa = AVX2 ] && ! grep -qw avx512f /proc/cpuinfo; then echo "# CPU without avx512f: test_batch_rows ran at AVX2 already"; continue; fi
  ONEDNN_MAX_CPU_ISA=$isa "$BIN" | sed -e "s/^ok - /ok - [ONEDNN_MAX_CPU_ISA=$isa] /" \
    -e "s/^FAIL - /FAIL - [ONEDNN_MAX_CPU_ISA=$isa] /"
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || echo "FAIL - [ONEDNN_MAX_CPU_ISA=$isa] test_batch_rows exited with status $rc"
done
