#!/usr/bin/env bash
# tests/run.sh — runs every built test binary (build/tests/*/test_*) and the
# shell tests (tests/*/test_*.sh), counts the "ok - " / "FAIL - " lines they
# print, and ends with "N passed, N failed".  A binary that crashes or exits
# non-zero without printing a FAIL line counts as one failure.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
pass=0; fail=0
export SD_BUILD=$BUILD
# reference data for the parity tests: ../shared/reference beside the repo (CI), or $SD_REF
export SD_REF=${SD_REF:-$PWD/../shared/reference}
run_one() {
  local name=$1; shift
  local out rc
  out=$("$@" 2>"$BUILD/tests/$name.stderr"); rc=$?
  printf '%s\n' "$out" | sed "s|^|[$name] |"
  local p f
  p=$(printf '%s\n' "$out" | grep -c '^ok - ')
  f=$(printf '%s\n' "$out" | grep -c '^FAIL - ')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "[$name] FAIL - exited with status $rc"; tail -5 "$BUILD/tests/$name.stderr" | sed "s|^|[$name] |"; f=1
  fi
  pass=$((pass + p)); fail=$((fail + f))
}
mkdir -p "$BUILD/tests"
for t in $(find "$BUILD/tests" -type f -name 'test_*' -perm -u+x | sort); do
  run_one "$(basename "$t")" "$t"
done
for t in $(find tests -type f -name 'test_*.sh' | sort); do
  run_one "$(basename "$t" .sh)" bash "$t"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
