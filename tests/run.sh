#!/usr/bin/env bash
# tests/run.sh — runs every built test binary (BUILD/tests/*/test_*) and the
# shell tests (tests/*/test_*.sh), counts the "ok - " / "FAIL - " lines they
# print, and ends with ONE line "N passed, N failed" for everything it ran.
# A binary that crashes or exits non-zero without printing a FAIL line counts
# as one failure.
#
#   tests/run.sh BUILD                     the normal suite
#   tests/run.sh BUILD --sanitized SANBUILD  the normal suite, then the
#                                          sanitizer tier
#   tests/run.sh --sanitized SANBUILD      the sanitizer tier alone
#
# The sanitizer tier runs the same binaries and shell tests again from a
# build made with -fsanitize=address,undefined (`make` builds it into
# build-asan/).  Every sanitized process of a test — the binary itself, or
# each `sdserve` a shell test starts — writes its reports to
# SANBUILD/tests/san/<test>.<pid> (log_path), and any such report counts as
# one FAIL for that test.  halt_on_error stops a process at its first report;
# LeakSanitizer runs at every sanitized process's exit.
# The tier sets SD_SANITIZED=1 (test_pipeline runs each of its runs once
# instead of on every model/source pair), SD_SKIP_FULLSIZE=1 (test_sd15 keeps
# its small checks, skips the full-size run) and SD_FUZZ_SECONDS=0 (the
# fuzzers carry their own sanitizers; test_fuzz_regress still runs).
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0
# reference data for the parity tests: ../shared/reference beside the repo (CI), or $SD_REF
export SD_REF=${SD_REF:-$PWD/../shared/reference}
# the parity tolerances are fp32's: on a CPU with AMX the engine would pick
# bf16 by default (test_bf16 checks that choice itself)
export SD_PRECISION=${SD_PRECISION:-fp32}

NORMAL=; SAN=
while [ $# -gt 0 ]; do
  case $1 in
    --sanitized) SAN=${2:?--sanitized needs a build folder}; shift 2;;
    *) NORMAL=$1; shift;;
  esac
done
[ -n "$NORMAL$SAN" ] || NORMAL=build

# run_one TAG LOGDIR NAME CMD... — LOGDIR holds NAME.stderr (and, in the
# sanitizer tier, the reports in san/NAME.*)
run_one() {
  local tag=$1 dir=$2 name=$3; shift 3
  local out rc t0 t1 p f
  t0=$(date +%s)
  out=$("$@" 2>"$dir/$name.stderr"); rc=$?
  t1=$(date +%s)
  printf '%s\n' "$out" | sed "s|^|[$tag$name] |"
  p=$(printf '%s\n' "$out" | grep -c '^ok - ')
  f=$(printf '%s\n' "$out" | grep -c '^FAIL - ')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "[$tag$name] FAIL - exited with status $rc"; tail -5 "$dir/$name.stderr" | sed "s|^|[$tag$name] |"; f=1
  fi
  if [ -n "$tag" ]; then
    # a report in a log file of this test, or on its stderr: one failure
    local rep
    rep=$(ls "$dir/san/$name".* 2>/dev/null | head -1)
    if [ -n "$rep" ] || grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$dir/$name.stderr"; then
      echo "[$tag$name] FAIL - sanitizer report (${rep:-$dir/$name.stderr}):"
      grep -hE 'ERROR: |runtime error:|SUMMARY:|^    #[0-3] ' ${rep:+"$rep"} "$dir/$name.stderr" 2>/dev/null \
        | head -8 | sed "s|^|[$tag$name] # |"
      f=$((f + 1))
    fi
  fi
  echo "[$tag$name] # $p passed, $f failed, $((t1 - t0)) s"
  pass=$((pass + p)); fail=$((fail + f))
}

# run_suite BUILD TAG — every test binary of BUILD, then every shell test
run_suite() {
  local build=$1 tag=$2 t
  mkdir -p "$build/tests"
  for t in $(find "$build/tests" -type f -name 'test_*' -perm -u+x | sort); do
    SD_BUILD=$build run_one "$tag" "$build/tests" "$(basename "$t")" "$t"
  done
  for t in $(find tests -type f -name 'test_*.sh' | sort); do
    SD_BUILD=$build run_one "$tag" "$build/tests" "$(basename "$t" .sh)" bash "$t"
  done
}

if [ -n "$NORMAL" ]; then
  run_suite "$NORMAL" ""
fi
if [ -n "$SAN" ]; then
  t0=$(date +%s)
  rm -rf "$SAN/tests/san"; mkdir -p "$SAN/tests/san"
  log=$PWD/$SAN/tests/san
  # Each test gets its own log prefix.  No LSan suppressions: oneDNN's
  # caches stay reachable, and tests/http/lsan.supp (which lib.sh uses outside
  # this tier) would also hide a leaked oneDNN object of ours.
  san_env() { # san_env NAME CMD...
    local l=$log/$1; shift
    ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:log_path=$l" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$l" \
    LSAN_OPTIONS="log_path=$l" \
    SD_SANITIZED=1 SD_SKIP_FULLSIZE=1 SD_FUZZ_SECONDS=0 "$@"
  }
  for t in $(find "$SAN/tests" -type f -name 'test_*' -perm -u+x | sort); do
    n=$(basename "$t")
    SD_BUILD=$SAN san_env "$n" run_one "asan " "$SAN/tests" "$n" "$t"
  done
  for t in $(find tests -type f -name 'test_*.sh' | sort); do
    n=$(basename "$t" .sh)
    SD_BUILD=$SAN san_env "$n" run_one "asan " "$SAN/tests" "$n" bash "$t"
  done
  echo "# sanitizer tier ($SAN): $(( $(date +%s) - t0 )) s"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
