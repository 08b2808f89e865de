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
#
# Tests run SD_TEST_JOBS at a time (default 2: most of them wait on servers,
# sockets and sleeps, so on 2 cores a pair takes ~60 % of the time of one
# after the other), both tiers in one pool, the longest first (LONG
# below); each test's lines are printed together when it ends.  The tests
# in ALONE measure RSS, latency or timeouts and run with nothing beside
# them, at the end.
set -u
cd "$(dirname "$0")/.."
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

# in_list NAME LIST — true when NAME is a word of LIST
in_list() { case " $(echo $2) " in *" $1 "*) true;; *) false;; esac; }
# quick_skips NAME — true when the quick tier leaves NAME to the full suite
quick_skips() { [ "$QUICK" = 1 ] && in_list "$1" "$FULL_ONLY"; }

# run_one TAG LOGDIR NAME CMD... — LOGDIR holds NAME.stderr (and, in the
# sanitizer tier, the reports in san/NAME.*); the counts go to $CNT
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
  echo "$p $f" >"$CNT"
}

# the pool: jobs are lines "TIER NAME CMD..." (TIER normal or san)
JOBS=${SD_TEST_JOBS:-2}
# two tests' OpenMP teams share the cores: a thread waiting at a barrier
# sleeps instead of spinning on a core the other test needs
[ "$JOBS" -gt 1 ] && export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
LONG="test_sd15 test_previews test_valgrind test_fuzz test_redis_models test_redis test_e2e test_generate test_doc_examples
  test_batch_seeds test_alloc_fail test_lora_apply test_make_model test_sizes test_inpaint_api test_a1111"
ALONE="test_load test_load_health test_load_rss test_slow_clients test_stalled_upload test_faults"
R=$(mktemp -d /tmp/sdserve-run.XXXXXX)
trap 'rm -rf "$R"' EXIT
: >"$R/jobs"

# add_suite BUILD TIER — every test binary of BUILD, then every shell test
add_suite() {
  local build=$1 tier=$2 t
  mkdir -p "$build/tests"
  for t in $(find "$build/tests" -type f -name 'test_*' -perm -u+x | sort); do
    [ "$tier" = normal ] && quick_skips "$(basename "$t")" && continue
    echo "$tier $build $(basename "$t") $t" >>"$R/jobs"
  done
  for t in $(find tests -type f -name 'test_*.sh' | sort); do
    [ "$tier" = normal ] && quick_skips "$(basename "$t" .sh)" && continue
    echo "$tier $build $(basename "$t" .sh) bash $t" >>"$R/jobs"
  done
}

# job N TIER BUILD NAME CMD... — one test, its lines printed when it ends
job() {
  local i=$1 tier=$2 build=$3 name=$4; shift 4
  CNT=$R/$i.cnt
  if [ "$tier" = san ]; then
    SD_BUILD=$build san_env "$name" run_one "asan " "$build/tests" "$name" "$@" >"$R/$i.out"
  else
    SD_BUILD=$build run_one "" "$build/tests" "$name" "$@" >"$R/$i.out"
  fi
  flock "$R/print.lock" cat "$R/$i.out"
}

if [ -n "$SAN" ]; then
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
fi
[ -n "$NORMAL" ] && add_suite "$NORMAL" normal
[ -n "$SAN" ] && add_suite "$SAN" san

t0=$(date +%s)
# the order: LONG ones first (their list order), then the rest, then ALONE
{
  for n in $LONG; do awk -v n="$n" '$3 == n' "$R/jobs"; done
  awk -v l=" $(echo $LONG $ALONE) " 'index(l, " " $3 " ") == 0' "$R/jobs"
  for n in $ALONE; do awk -v n="$n" '$3 == n' "$R/jobs"; done
} >"$R/order"
i=0
while read -r tier build name cmd; do
  i=$((i + 1))
  if in_list "$name" "$ALONE"; then
    wait
    job "$i" "$tier" "$build" "$name" $cmd </dev/null
    continue
  fi
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  job "$i" "$tier" "$build" "$name" $cmd </dev/null &
done <"$R/order"
wait
pass=0; fail=0
for c in "$R"/*.cnt; do
  [ -f "$c" ] || continue
  read -r p f <"$c"
  pass=$((pass + p)); fail=$((fail + f))
done
njobs=$(wc -l <"$R/order")
ran=$(ls "$R"/*.cnt 2>/dev/null | wc -l)
if [ "$ran" -ne "$njobs" ]; then
  echo "FAIL - tests/run.sh: $((njobs - ran)) of $njobs tests left no result"; fail=$((fail + njobs - ran))
fi
echo "# $njobs tests, $JOBS at a time: $(( $(date +%s) - t0 )) s"
# the failures once more, so that the last lines of a long log name them
if [ "$fail" -gt 0 ]; then
  echo "# failures:"
  grep -h 'FAIL - ' "$R"/*.out 2>/dev/null | head -12
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
