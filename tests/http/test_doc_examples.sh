#!/usr/bin/env bash
# tests/http/test_doc_examples.sh — "docs whose examples work when pasted":
# the curl, CLI and SDK examples of README's "Use the API" and "Generate from
# the command line" and of docs/KDIFFUSION.md, PROMPTS.md, INPAINTING.md,
# SDXL.md and CLIENTS.md that run against README's default server, read
# from the docs and run as a reader pastes them, in a fresh folder whose
# build/ is this build (tests/http/doc_examples.py says which blocks, what
# is substituted — only the port and the placeholders — and what each must
# answer).  README's "serve a real checkpoint" line is test_readme_model.sh's;
# docs/SCALE.md's nginx config is test_cluster.sh's.
set -u
cd "$(dirname "$0")/../.."
. tests/http/lib.sh
REPO=$PWD

home=$TMP/home
mkdir -p "$home/data"
ln -s "$REPO/$BUILD" "$home/build"
# the default server makes ./data/demo-model on its first start; the shared
# one is the same preset, made once per build
ln -s "$REPO/$(demo_model)" "$home/data/demo-model"
if ! SDK=$(bash tests/http/setup_openai_sdk.sh 2>"$TMP/install.log"); then
  fail "the openai npm package installs (for docs/CLIENTS.md's Node snippet)" "$(tail -3 "$TMP/install.log" | tr '\n' ' ')"
  SDK=
fi
python3 tests/http/doc_examples.py "$REPO" "$REPO/$BUILD" "$home" "$SDK"
check "the examples' runner ran to the end" $? "see the FAIL lines above"
