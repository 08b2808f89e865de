#!/usr/bin/env bash
# tests/http/setup_openai_sdk.sh — installs the official `openai` npm package
# used by test_openai_sdk.sh, once, from the npm registry into a cache
# folder outside the repo, and prints the package's folder.
# openai 5.23.2 (pinned: the v5 line, no dependencies) runs on Node 20 (it
# uses the built-in fetch, FormData and Blob; v5 wants Node >= 18).
set -u
VER=5.23.2
exec bash "$(dirname "$0")/../common/npm_cached.sh" openai "$VER" \
  "${SD_OPENAI_SDK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sdserve/openai-$VER}"
