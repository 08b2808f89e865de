#!/usr/bin/env bash
# tests/common/npm_install.sh PACKAGE VERSION DIR — installs one pinned npm
# package, once, from the npm registry into DIR (a cache folder outside the
# repo), and prints DIR/node_modules/PACKAGE.  Used by the setup scripts of
# the tests that drive a Node package (setup_s3rver.sh, setup_openai_sdk.sh).
# Missing node/npm or a failed install: a message on stderr and exit 1.
set -u
PKG=$1 VER=$2 DIR=$3
MOD=$DIR/node_modules/$PKG
if [ -f "$MOD/package.json" ] && grep -q "\"version\": \"$VER\"" "$MOD/package.json"; then
  echo "$MOD"; exit 0
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are needed for the tests that use $PKG (scripts/setup.sh installs them)" >&2; exit 1
fi
mkdir -p "$DIR" || exit 1
if ! npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "$PKG@$VER" >&2; then
  echo "npm install $PKG@$VER into $DIR failed" >&2; exit 1
fi
[ -f "$MOD/package.json" ] || { echo "$PKG not found in $DIR after npm install" >&2; exit 1; }
echo "$MOD"
