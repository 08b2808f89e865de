# tests/storage/lib_s3.sh — shared by the S3 shell tests: installs (once) and
# starts the fake S3 server on 127.0.0.1 with signature checking on, and stops
# it on exit.  Source after tests/http/lib.sh (which provides TMP, check,
# free_port, wait_http, stop_pid and the trap that calls cleanup).
S3_BUCKET=sdimgs
S3_AK=SDTESTKEY0000EXAMPLE
S3_SK='sdtest/secret+Key=0123456789abcdefghij'
S3_PID=
S3_PORT=
S3_MOD=

s3_cleanup() {
  if [ -n "$S3_NOSIG_PID" ]; then kill -TERM "$S3_NOSIG_PID" 2>/dev/null; wait "$S3_NOSIG_PID" 2>/dev/null; S3_NOSIG_PID=; fi
  if [ -n "$S3_PID" ] && kill -0 "$S3_PID" 2>/dev/null; then stop_pid "$S3_PID" 30; fi
  S3_PID=
}
# chain onto lib.sh's cleanup so that both the S3 server and sdserve stop
eval "orig_$(declare -f cleanup)"
cleanup() { s3_cleanup; orig_cleanup; }
trap cleanup EXIT

# s3_install: sets S3_MOD; prints a FAIL line and returns 1 when impossible.
s3_install() {
  S3_MOD=$(bash tests/storage/setup_s3rver.sh 2>"$TMP/s3-install.log")
  if [ -z "$S3_MOD" ]; then
    echo "FAIL - install the fake S3 server from npm: $(tail -3 "$TMP/s3-install.log" | tr '\n' ' ')"
    return 1
  fi
}

# s3_setup: s3_install, s3_start and EP (the endpoint URL): what every S3
# test does first; prints the FAIL line and returns 1 when it cannot.
s3_setup() {
  s3_install && s3_start || return 1
  EP=http://127.0.0.1:$S3_PORT
}

# s3_start [PORT]: starts it (data in $TMP/s3data, kept across restarts).
s3_start() {
  S3_PORT=${1:-$(free_port)}
  node tests/storage/s3rver_run.js "$S3_MOD" "$S3_PORT" "$TMP/s3data" "$S3_BUCKET" "$S3_AK" "$S3_SK" \
    >>"$TMP/s3.log" 2>&1 &
  S3_PID=$!
  s3_wait "$S3_PID" "$S3_PORT"
}

# s3_start_nosig PORT: a second server on the same data with signature
# checking OFF (sets S3_NOSIG_PID); only for virtual-hosted requests, whose
# SigV4 canonical URI this fake server computes as "/bucket/key" (SigV2's
# rule) where AWS uses the path as sent ("/key").
S3_NOSIG_PID=
s3_start_nosig() {
  node tests/storage/s3rver_run.js "$S3_MOD" "$1" "$TMP/s3data" "$S3_BUCKET" "$S3_AK" "$S3_SK" nosig \
    >>"$TMP/s3-nosig.log" 2>&1 &
  S3_NOSIG_PID=$!
  s3_wait "$S3_NOSIG_PID" "$1"
}

# s3_wait PID PORT
s3_wait() {
  wait_http "http://127.0.0.1:$2/" "$1" 100 && return 0
  echo "FAIL - fake S3 server starts: $(tail -5 "$TMP/s3.log" | tr '\n' ' ')"
  return 1
}

s3_stop() { s3_cleanup; }
