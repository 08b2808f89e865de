#!/usr/bin/env bash
# scripts/fuzz.sh — builds and runs the libFuzzer targets tests/fuzz/fuzz_*.c
# (clang, -fsanitize=fuzzer,address,undefined).  Each target names the
# sources it needs in its "fuzz-sources:" / "fuzz-libs:" comment lines.
#
#   scripts/fuzz.sh [SECONDS [TARGET...]]
#
# SECONDS per target (default 20); TARGET = params, base64, image,
# safetensors, tokenizer, http, kdiff, a1111_prompt, lora, embeddings, vae, lora_tags, wire, etag, pyfloat (default all).  Inputs start from the seed corpus
# tests/fuzz/corpus/<target>/ (which also holds every crash found so far, as
# a regression case), with the dictionary tests/fuzz/fuzz_<target>.dict
# when present; new inputs go to $FUZZ_DIR/work/<target>/ and crashes to
# $FUZZ_DIR/crashes/ (FUZZ_DIR defaults to ${SD_BUILD:-build}/fuzz, outside git).
# Prints "ok - fuzz <target> N execs in S s (cov C, corpus K)" or
# "FAIL - fuzz <target>: ..." per target; exit status 1 when one failed.
set -u
cd "$(dirname "$0")/.."
SECS=${1:-20}
shift 2>/dev/null || true
TARGETS=${*:-params base64 image safetensors tokenizer http kdiff a1111_prompt lora embeddings vae lora_tags wire etag pyfloat}
FUZZ_DIR=${FUZZ_DIR:-${SD_BUILD:-build}/fuzz}
CLANG=${CLANG:-clang}
export SD_REF=${SD_REF:-$PWD/../shared/reference}
mkdir -p "$FUZZ_DIR/work" "$FUZZ_DIR/crashes" "$FUZZ_DIR/log"

if ! command -v "$CLANG" >/dev/null; then
  echo "FAIL - fuzz: $CLANG not found (scripts/setup.sh installs clang)"; exit 1
fi
PKG_CFLAGS=$(pkg-config --cflags libmicrohttpd libpng libjpeg libwebp jansson zlib 2>/dev/null)
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=undefined -w $PKG_CFLAGS"

# fuzz_one TARGET — builds (when stale) and runs one target; prints its
# ok/FAIL line; status 1 when it failed.
fuzz_one() {
  local t=$1 src bin deps libs rebuild f log dict rc runs took cov corp art why
  src=tests/fuzz/fuzz_$t.c
  bin=$FUZZ_DIR/fuzz_$t
  if [ ! -f "$src" ]; then echo "FAIL - fuzz $t: no $src"; return 1; fi
  deps=$(sed -n 's/^ \* fuzz-sources://p' "$src")
  libs=$(sed -n 's/^ \* fuzz-libs://p' "$src" | sed 's|\*/||')
  # rebuild when the target or one of its sources is newer than the binary
  rebuild=0
  [ -x "$bin" ] || rebuild=1
  for f in $src $deps $(ls src/*/*.h src/*/*/*.h 2>/dev/null); do [ "$f" -nt "$bin" ] && rebuild=1; done
  if [ $rebuild = 1 ]; then
    # shellcheck disable=SC2086
    if ! $CLANG $CFLAGS -o "$bin" "$src" $deps $libs >"$FUZZ_DIR/log/$t.build" 2>&1; then
      echo "FAIL - fuzz $t: build failed: $(tail -3 "$FUZZ_DIR/log/$t.build" | tr '\n' ' ')"; return 1
    fi
  fi
  mkdir -p "$FUZZ_DIR/work/$t" "tests/fuzz/corpus/$t"
  log=$FUZZ_DIR/log/$t.log
  dict=; [ -f "tests/fuzz/fuzz_$t.dict" ] && dict=-dict=tests/fuzz/fuzz_$t.dict
  "$bin" $dict -max_total_time="$SECS" -timeout=10 -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1 \
         -artifact_prefix="$FUZZ_DIR/crashes/$t-" "$FUZZ_DIR/work/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  took=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  if [ $rc -eq 0 ] && [ -n "$runs" ]; then
    echo "ok - fuzz $t ${runs} execs in ${took} s (cov ${cov:-?}, corpus ${corp:-?})"
  else
    art=$(grep -o "Test unit written to [^ ]*" "$log" | tail -1)
    why=$(grep -m1 -E 'ERROR: |runtime error|deadly signal|out-of-memory|timeout' "$log")
    echo "FAIL - fuzz $t: exit $rc: ${why:-see $log} ${art}"
    return 1
  fi
}

# Targets run JOBS at a time (default: the cores, at most 2 — the CI
# machine's), each single-threaded, so the wall time halves on 2 cores while
# every target still gets SECONDS of fuzzing.  Each prints its line when done.
JOBS=${FUZZ_JOBS:-$(n=$(nproc 2>/dev/null || echo 1); [ "$n" -gt 2 ] && n=2; echo "$n")}
STATUS_DIR=$(mktemp -d)
running=0
for t in $TARGETS; do
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
  ( fuzz_one "$t" || touch "$STATUS_DIR/$t.failed" ) &
  running=$((running + 1))
done
wait
status=0
[ -z "$(ls -A "$STATUS_DIR")" ] || status=1
rm -rf "$STATUS_DIR"
exit $status
