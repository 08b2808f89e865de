#!/usr/bin/env bash
# scripts/setup.sh — install the Debian packages sdserve needs (build, run, test).
# Idempotent; needs root (or sudo) on Debian 12.
set -eu
PKGS="build-essential pkg-config libdnnl-dev libmicrohttpd-dev libpng-dev libjpeg62-turbo-dev
      libwebp-dev libcurl4-openssl-dev libjansson-dev zlib1g-dev curl python3
      clang libclang-rt-14-dev wrk valgrind
      redis-server libhiredis-dev
      nginx-light
      chromium"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
# The S3 tests (tests/storage) run a fake S3 server from the npm registry, and
# the web page's browser test (tests/http/test_webui_browser.sh) drives
# chromium with puppeteer-core from it: they need node and npm.  A node
# already on the machine is kept (Debian's nodejs package would conflict with
# it).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi
