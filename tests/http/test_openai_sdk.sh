#!/usr/bin/env bash
# test_openai_sdk.sh — the official `openai` npm package (pinned:
# setup_openai_sdk.sh) against the real `sdserve serve` with the demo model
# and an API key: images.generate (b64_json by default, url, n=2, sizes
# 64x64 and 96x64, the seed extra field: same seed = same bytes, image 2 of
# seed S = seed S+1 alone), images.edit with a PNG (toFile) and a size,
# images.edit with an RGBA mask (every opaque-mask pixel equals the input,
# the transparent ones change), the model list, and the SDK's own error
# classes (AuthenticationError for a wrong key, BadRequestError naming
# param 'n' or 'mask' (a mask without alpha), NotFoundError), also for a
# wrong key or an unknown path with a 3 MiB upload still being sent, and
# the 413 of a 21 MiB image (over --max-body-mb).
# Every PNG's IHDR is decoded and its size asserted (openai_sdk.mjs).
# Missing node/npm, or a failed install, is a FAIL, never a skip.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

if ! SDK=$(bash tests/http/setup_openai_sdk.sh 2>"$TMP/install.log"); then
  fail "the openai npm package installs" "$(tail -3 "$TMP/install.log" | tr '\n' ' ')"; exit 1
fi
ok "the openai npm package is installed ($(json "$SDK/package.json" 'j["version"]'))"

KEY=sdk-key-0123456789abcdef
SDSERVE_API_KEYS=$KEY start_server --model "$(demo_model)" || exit 1
node tests/http/openai_sdk.mjs "$SDK" "$BASE" "$KEY"
check "the node driver ran to the end" $? "node exited non-zero (see the FAIL lines above)"
check "the server still serves afterwards" $([ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ]; echo $?) \
  "$(tail -3 "$TMP/server.log")"
stop_server
check "clean exit on SIGTERM" $STOP_STATUS "status $STOP_STATUS"
