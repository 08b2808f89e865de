#!/usr/bin/env bash
# tests/http/test_readme_model.sh — README's "serve a real checkpoint" command
# as a new user pastes it: the one README line starting with
# "build/sdserve serve --model " is run word for word (its example path
# replaced by the checkpoint, plus --port), from a fresh folder (so its
# default ./data is new) where build/ is this build; no --vocab and no
# tokenizer/ beside the file (the tiny files keep the LDM config the
# reference puts beside them: tiny-sd2's 16-channel heads cannot be guessed,
# as a real SD 2.x file needs its parameterization; the SD 1.5-shaped one
# has nothing beside it).
# It must become ready (GET /health 200) and answer one small txt2img whose
# image is served.  Checkpoints: the tiny single files of the reference
# (SD1 and SD2 naming), or those in $SD_README_MODELS (space-separated;
# bench/readme_sd15.sh passes an SD 1.5-shaped file).
set -u
cd "$(dirname "$0")/../.."
. tests/http/lib.sh
REPO=$PWD
REF=${SD_REF:-../shared/reference}
MODELS=${SD_README_MODELS:-$REF/models/tiny-sd1-fp16.safetensors $REF/models/tiny-sd2-fp16.safetensors}
EXAMPLE=/path/to/v1-5-pruned-emaonly.safetensors

line=$(grep '^    build/sdserve serve --model ' README.md)
check "README has exactly one 'build/sdserve serve --model' command, with the example path" \
  $([ "$(printf '%s\n' "$line" | grep -c .)" = 1 ] && printf '%s' "$line" | grep -qF -- "$EXAMPLE"; echo $?) "$line"
read -r -a words <<<"$line"

for model in $MODELS; do
  if [ ! -f "$model" ]; then fail "checkpoint $model" "missing"; continue; fi
  name=$(basename "$model" .safetensors)
  home=$TMP/$name
  mkdir -p "$home/run"
  ln -s "$REPO/$BUILD" "$home/run/build"
  abs=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")
  if [ -e "$(dirname "$abs")/tokenizer" ]; then fail "$name: no tokenizer/ beside the file" "$(dirname "$abs")/tokenizer exists"; fi
  cmd=()
  for w in "${words[@]}"; do cmd+=("${w/#$EXAMPLE/$abs}"); done
  PORT=$(free_port)
  BASE=http://127.0.0.1:$PORT
  t0=$(date +%s.%N)
  (cd "$home/run" && exec "${cmd[@]}" --port "$PORT") >"$TMP/server.log" 2>&1 &
  SERVER_PID=$!
  if ! wait_ready "$BASE/health" "$SERVER_PID" 3000; then
    fail "$name: README command becomes ready" "$(grep -v '^  ' "$TMP/server.log" | tail -3 | tr '\n' ' ')"
    stop_pid "$SERVER_PID" 50; SERVER_PID=; continue
  fi
  t1=$(date +%s.%N)
  ok "$name: README command ('${cmd[*]:0:3} .../$name.safetensors --port N') ready, no --vocab, no tokenizer beside the file"
  st=$(curl -s -o "$TMP/r.json" -w '%{http_code}' -d 'prompt=a red fox in snow' -d width=64 -d height=64 \
       -d num_inference_steps=1 -d seed=42 "$BASE/txt2img")
  url=$(json "$TMP/r.json" 'j["images"][0]["image_url"]')
  check "$name: one 64x64 txt2img, 200, its image served" \
    $([ "$st" = 200 ] && [ "$(curl -s -o "$TMP/a.png" -w '%{http_code}' "$url")" = 200 ] &&
      [ "$(png_size "$TMP/a.png")" = 64x64 ]; echo $?) "status $st: $(head -c 300 "$TMP/r.json")"
  t2=$(date +%s.%N)
  check "$name: the image went to the fresh default data dir (./data/images)" \
    $([ -n "$(ls "$home/run/data/images" 2>/dev/null)" ]; echo $?) "$(ls -R "$home/run" | head -5 | tr '\n' ' ')"
  stop_server
  check "$name: SIGTERM, clean exit" $STOP_STATUS "status $STOP_STATUS; $(tail -3 "$TMP/server.log" | tr '\n' ' ')"
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$name" \
    'BEGIN { printf "# %s: ready in %.1f s, first txt2img (64x64, 1 step) %.1f s\n", n, b - a, c - b }'
done
