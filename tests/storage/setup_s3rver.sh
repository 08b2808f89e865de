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
exec bash "$(dirname "$0")/../common/npm_install.sh" @20minutes/s3rver "$VER" \
  "${SD_S3RVER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sdserve/s3rver-$VER}"
