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
#   tests/run.sh --quick BUILD             the quick tier (`make test-quick`)
#
# The quick tier is the normal suite without the tests named in FULL_ONLY
# below (load and latency under wrk, RSS and stalled uploads, slow clients,
# storage faults and kill rounds, valgrind, S3 against s3rver, the fuzz run,
# the Winograd parity rerun, the Redis cluster and the headless browser),
# with SD_SKIP_FULLSIZE=1 (test_sd15 skips its full-size run) and SD_QUICK=1
# (test_pipeline and test_precision run the sanitizer tier's subset,
# t_subset() in tests/common/t.h; test_make_model skips the 2.1 GB sd15
# preset, t_quick()): unit, parity on the tiny models, the server end to end.  It is the inner loop; `make test` (what .ci/run runs) stays the
# full suite.
#
# The sanitizer tier runs the same binaries and shell tests again from a
# build made with -fsanitize=address,undefined (`make` builds it into
# build-asan/).  Every sanitized process of a test — the binary itself, or
# each `sdserve` a shell test starts — writes its reports to
# SANBUILD/tests/san/<test>.<pid> (log_path), and any such report counts as
# one FAIL for that test.  halt_on_error stops a process at its first report;
# LeakSanitizer runs at every sanitized process's exit.
# The tier sets SD_SANITIZED=1 (test_pipeline runs each of its runs once
# instead of on every model/source pair; test_previews, test_redis,
# test_sizes, test_cluster run smaller or fewer jobs, the first three
# saying so in a "# " line; docs/RELIABILITY.md), SD_SKIP_FULLSIZE=1
# (test_sd15 keeps its small checks, skips the full-size run) and
# SD_FUZZ_SECONDS=0 (the fuzzers carry their own sanitizers;
# test_fuzz_regress still runs).
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0
# reference data for the parity tests: ../shared/reference beside the repo (CI), or $SD_REF
export SD_REF=${SD_REF:-$PWD/../shared/reference}
# the parity tolerances are fp32's: on a CPU with AMX the engine would pick
# bf16 by default (test_bf16 checks that choice itself)
export SD_PRECISION=${SD_PRECISION:-fp32}

# the tests the quick tier leaves to the full suite (names without .sh)
FULL_ONLY="test_load test_load_health test_load_rss test_slow_clients test_stalled_upload
  test_faults test_valgrind test_s3 test_s3_serve test_fuzz test_winograd
  test_redis test_webui_browser test_cluster"
# test_ops_avx2 runs build-vg's binaries, which only `make vg` (`make test`) builds
FULL_ONLY="$FULL_ONLY test_ops_avx2"

NORMAL=; SAN=; QUICK=0
while [ $# -gt 0 ]; do
  case $1 in
    --sanitized) SAN=${2:?--sanitized needs a build folder}; shift 2;;
    --quick) QUICK=1; shift;;
    *) NORMAL=$1; shift;;
  esac
done
[ -n "$NORMAL$SAN" ] || NORMAL=build
if [ "$QUICK" = 1 ]; then
  [ -z "$SAN" ] || { echo "tests/run.sh: --quick runs the normal tier only" >&2; exit 2; }
  export SD_SKIP_FULLSIZE=1 SD_QUICK=1
fi

# quick_skips NAME — true when the quick tier leaves NAME to the full suite
quick_skips() {
  [ "$QUICK" = 1 ] && case " $(echo $FULL_ONLY) " in *" $1 "*) true;; *) false;; esac
}

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
    quick_skips "$(basename "$t")" && continue
    SD_BUILD=$build run_one "$tag" "$build/tests" "$(basename "$t")" "$t"
  done
  for t in $(find tests -type f -name 'test_*.sh' | sort); do
    quick_skips "$(basename "$t" .sh)" && continue
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
