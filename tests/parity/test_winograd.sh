#!/usr/bin/env bash
# tests/parity/test_winograd.sh — the UNet, VAE and whole-pipeline parity
# tests again with every stride-1 3x3 convolution on Winograd (ours,
# src/engine/ops/ops_wino.c; SD_CONV_WINOGRAD=1).  By default Winograd is
# used only on large images (>= 32x32 outputs), which the tiny reference
# models never reach, so without this run its error would never meet the
# goldens.  Same tolerances (1e-4).
set -u
cd "$(dirname "$0")/../.."
B=${SD_BUILD:-build}
export SD_CONV_WINOGRAD=1
for t in test_unet test_vae test_pipeline; do
  bin=$B/tests/parity/$t
  if [ ! -x "$bin" ]; then echo "FAIL - winograd: $bin not built"; continue; fi
  out=$("$bin" 2>/dev/null); rc=$?
  printf '%s\n' "$out" | grep -E '^(ok|FAIL) - ' | sed "s/^\(ok\|FAIL\) - /\1 - winograd: /"
  [ "$rc" -eq 0 ] || echo "FAIL - winograd: $t exited with status $rc"
done
