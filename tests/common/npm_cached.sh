#!/usr/bin/env bash
# tests/common/npm_cached.sh — installs one pinned npm package, once, from
# the npm registry into a cache folder outside the repo, and prints its
# module folder; what the tests that drive node tools share
# (tests/storage/setup_s3rver.sh, tests/http/setup_puppeteer.sh,
# tests/http/setup_openai_sdk.sh).
#   bash tests/common/npm_cached.sh PACKAGE VERSION DIR [WHAT]
# WHAT names the tests in the messages ("the S3 tests"; default: the tests
# that use PACKAGE).  Exit 1 (with a
# message on stderr) when node/npm are missing or the install fails.
set -u
PKG=$1 VER=$2 DIR=$3 WHAT=${4:-the tests that use $1}
MOD=$DIR/node_modules/$PKG
# one install at a time per folder (tests/run.sh runs tests side by side)
mkdir -p "$(dirname "$DIR")" || exit 1
exec 9>"$DIR.lock" && flock 9
if [ -f "$MOD/package.json" ] && grep -q "\"version\": \"$VER\"" "$MOD/package.json"; then
  echo "$MOD"; exit 0
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are needed for $WHAT (scripts/setup.sh installs them)" >&2; exit 1
fi
mkdir -p "$DIR" || exit 1
if ! npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "$PKG@$VER" >&2; then
  echo "npm install $PKG@$VER into $DIR failed" >&2; exit 1
fi
[ -f "$MOD/package.json" ] || { echo "$PKG not found in $DIR after npm install" >&2; exit 1; }
echo "$MOD"
