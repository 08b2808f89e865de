#!/usr/bin/env bash
# test_no_exit.sh — the failure policy's static half (docs/ARCHITECTURE.md
# "One failure policy"): no abort(), exit(), _Exit(), quick_exit() or
# assert() anywhere in src/ except sd_panic in src/base/alloc.c, and
# sd_panic / SD_ASSERT (programming errors: an impossible oneDNN argument, a
# shape an op cannot take) called only inside the ops layer.  Together with
# tests/unit/test_alloc_fail (every allocation of a request failed in turn,
# abort and exit wrapped to fail the test) this is how "no abort reachable
# from a request" is checked.
set -u
cd "$(dirname "$0")/../.."
# code lines only: drop // comments and lines inside or starting /* */ comments
strip() { sed -E 's://.*$::' "$1" | awk '
  { line = $0; out = "";
    while (length(line)) {
      if (inc) { i = index(line, "*/"); if (!i) { line = ""; break } line = substr(line, i + 2); inc = 0 }
      else { i = index(line, "/*"); if (!i) { out = out line; line = ""; break } out = out substr(line, 1, i - 1); line = substr(line, i + 2); inc = 1 }
    }
    print out }'; }
n=0; bad=0
for f in $(find src -name '*.[ch]' | sort); do
  n=$((n + 1))
  hits=$(strip "$f" | grep -nE '(^|[^_a-zA-Z0-9.>])(abort|exit|_Exit|quick_exit|assert)[[:space:]]*\(' | grep -v '_Static_assert')
  if [ -n "$hits" ] && [ "$f" != src/base/alloc.c ]; then
    echo "FAIL - $f calls abort/exit/assert: $(echo "$hits" | head -3 | tr '\n' ' ')"; bad=$((bad + 1))
  fi
  case "$f" in src/engine/ops/*|src/base/alloc.[ch]) continue;; esac
  p=$(strip "$f" | grep -nE '\b(sd_panic|SD_ASSERT)[[:space:]]*\(')
  if [ -n "$p" ]; then echo "FAIL - $f outside the ops layer calls sd_panic/SD_ASSERT: $(echo "$p" | head -3 | tr '\n' ' ')"; bad=$((bad + 1)); fi
done
a=$(strip src/base/alloc.c | grep -cE '\babort[[:space:]]*\(')
[ "$a" -eq 1 ] && echo "ok - src/base/alloc.c has the one abort() (sd_panic)" || echo "FAIL - src/base/alloc.c has exactly one abort(), found $a"
[ "$bad" -eq 0 ] && echo "ok - $n files of src/: no abort/exit/assert outside sd_panic, sd_panic and SD_ASSERT only in the ops layer"
[ "$n" -gt 50 ] || echo "FAIL - found the files of src/ ($n)"
