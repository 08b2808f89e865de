#!/usr/bin/env bash
# test_fuzz.sh — the time-bounded CI fuzz run: every libFuzzer target in
# tests/fuzz/fuzz_*.c for SD_FUZZ_SECONDS (default 5) seconds each, starting
# from the seed corpus (which holds every crash found so far as a regression
# input).  5 s keeps CI's wall time down (15 targets, two at a time: ~40 s of
# fuzzing plus the builds); the long runs are `make fuzz` (20 s each) and
# `scripts/fuzz.sh SECONDS [TARGET...]`.  SD_FUZZ_SECONDS=0 skips with a
# "# " line (no ok: nothing was checked).
# Prints "ok - fuzz <target> N execs ..." or "FAIL - fuzz <target>: ..." per
# target (scripts/fuzz.sh does the work).
cd "$(dirname "$0")/../.."
SECS=${SD_FUZZ_SECONDS:-5}
if [ "$SECS" = 0 ]; then echo "# fuzz skipped (SD_FUZZ_SECONDS=0)"; exit 0; fi
scripts/fuzz.sh "$SECS"
