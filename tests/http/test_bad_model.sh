#!/usr/bin/env bash
# tests/http/test_bad_model.sh — `sdserve serve` with a model it cannot use:
# missing, not a checkpoint, truncated, a tensor's bytes cut, an empty
# diffusers folder, a family it cannot run yet (SDXL, inpainting).  Each
# must exit non-zero within seconds with a message
# naming the file and what is wrong, and never become ready (the server
# listens while the model loads, answering 503: docs/SERVER.md "Start-up";
# test_start.sh).  A --precision it does not know is refused before it
# listens (the message names the setting).
set -u
cd "$(dirname "$0")/../.."
. tests/http/lib.sh
REF=${SD_REF:-../shared/reference}
GOOD=$REF/models/tiny-sd1-fp16.safetensors
if [ ! -f "$GOOD" ]; then echo "FAIL - reference model $GOOD missing"; exit 1; fi

# try NAME MODEL PATTERN: serve must fail, naming MODEL's file and matching PATTERN
try() {
  local name=$1 model=$2 pat=$3 port out rc
  port=$(free_port)
  out=$(timeout 60 "$SDSERVE" serve --bind 127.0.0.1 --port "$port" --data-dir "$TMP/data" --model "$model" 2>&1)
  rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then echo "ok - $name: exits with status $rc"
  else echo "FAIL - $name: exit status $rc"; fi
  if printf '%s' "$out" | grep -q -- "$(basename "$model")" && printf '%s' "$out" | grep -qiE -- "$pat"; then
    echo "ok - $name: message names the file and says why"
  else
    echo "FAIL - $name: message: $(printf '%s' "$out" | tail -3 | tr '\n' ' ')"
  fi
  if printf '%s' "$out" | grep -q -e "^ready" -e "^model: "; then echo "FAIL - $name: it became ready"
  else echo "ok - $name: never ready"; fi
}

try "missing file" "$TMP/nope.safetensors" "no such file|cannot open|not found"
head -c 4096 /dev/urandom > "$TMP/garbage.safetensors"
try "random bytes" "$TMP/garbage.safetensors" "header|safetensors|format"
size=$(stat -c %s "$GOOD")
head -c $((size / 2)) "$GOOD" > "$TMP/half.safetensors"
try "truncated to half" "$TMP/half.safetensors" "truncated|data section|offsets"
head -c 6 "$GOOD" > "$TMP/six.safetensors"
try "6 bytes" "$TMP/six.safetensors" "header|short|truncated|safetensors"
mkdir -p "$TMP/emptydir"
try "empty folder" "$TMP/emptydir" "model_index|unet|no .*safetensors|not a|folder|director"

# families this version cannot run yet: refused by family, before any part loads
try "inpainting UNet" "$REF/models/tiny-sd1-inpaint" "is an sd1-inpaint checkpoint \(its UNet takes mask"

# a precision it does not know: refused at start, naming the setting
port=$(free_port)
out=$(timeout 60 "$SDSERVE" serve --bind 127.0.0.1 --port "$port" --data-dir "$TMP/data" --model "$GOOD" \
      --precision fast 2>&1); rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && printf '%s' "$out" | grep -q -- "--precision must be auto, fp32, bf16x2 or bf16; got 'fast'" &&
   ! printf '%s' "$out" | grep -qi "listening"; then echo "ok - unknown --precision: exit $rc naming it, never listened"
else echo "FAIL - unknown --precision: exit $rc: $(printf '%s' "$out" | tail -3 | tr '\n' ' ')"; fi
