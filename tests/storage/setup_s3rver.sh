#!/usr/bin/env bash
# tests/storage/setup_s3rver.sh — installs the fake S3 server used by the
# storage tests, once, from the npm registry into a cache folder outside the
# repo, and prints the module's folder.  @20minutes/s3rver 5.0.0 is a
# maintained fork of s3rver that verifies AWS Signature Version 4 (headers
# and pre-signed query strings); s3rver 3.7.1 only checks the key id.
# Its package.json asks for node >= 24 but it runs on node 20 (Debian 12 +
# NodeSource); npm's engine warning is harmless.
set -u
VER=5.0.0
DIR=${SD_S3RVER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sdserve/s3rver-$VER}
MOD=$DIR/node_modules/@20minutes/s3rver
if [ -f "$MOD/package.json" ] && grep -q "\"version\": \"$VER\"" "$MOD/package.json"; then
  echo "$MOD"; exit 0
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are needed for the S3 tests (scripts/setup.sh installs them)" >&2; exit 1
fi
mkdir -p "$DIR" || exit 1
if ! npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "@20minutes/s3rver@$VER" >&2; then
  echo "npm install @20minutes/s3rver@$VER into $DIR failed" >&2; exit 1
fi
[ -f "$MOD/package.json" ] || { echo "s3rver not found in $DIR after npm install" >&2; exit 1; }
echo "$MOD"
