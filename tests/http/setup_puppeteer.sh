#!/usr/bin/env bash
# tests/http/setup_puppeteer.sh — installs puppeteer-core (the Chrome
# DevTools Protocol client the web page's browser test drives Debian's
# chromium with), once, from the npm registry into a cache folder outside
# the repo, and prints the module's folder.  puppeteer-core downloads no
# browser.  24.43.1 is the newest release that runs on node 20 (25.x asks
# for node >= 22.12); it drives Chromium 156 over CDP.
set -u
VER=24.43.1
DIR=${SD_PUPPETEER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sdserve/puppeteer-core-$VER}
exec bash "$(dirname "$0")/../common/npm_cached.sh" puppeteer-core "$VER" "$DIR" "the browser test"
