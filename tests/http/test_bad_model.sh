#!/usr/bin/env bash
# tests/http/test_bad_model.sh — `sdserve serve` with a model it cannot use:
# missing, not a checkpoint, truncated, a tensor's bytes cut, an empty
# diffusers folder, a UNet-only folder, a family it cannot run yet (the SDXL
# refiner), SDXL files with a tensor missing, reshaped or cut, a FIFO, a
# loop of symbolic links.  Each
# must exit non-zero within seconds with a message
# naming the file and what is wrong (once), and never become ready (the server
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

# a FIFO (never opened: it would block) and a loop of symbolic links: said as such, not
# "no such file"; the reason printed once, not again as "(loading it: ...)"
mkfifo "$TMP/fifo.safetensors"
try "a FIFO" "$TMP/fifo.safetensors" "fifo.safetensors: a FIFO \(named pipe\), not a file or folder"
ln -s "$TMP/loop-b" "$TMP/loop-a"; ln -s "$TMP/loop-a" "$TMP/loop-b"
try "a symbolic link loop" "$TMP/loop-a" "loop-a: a loop of symbolic links"
out=$(timeout 60 "$SDSERVE" serve --bind 127.0.0.1 --port "$(free_port)" --data-dir "$TMP/data" --model "$TMP/nope.safetensors" 2>&1)
n=$(printf '%s\n' "$out" | grep "^sdserve serve:" | grep -o "no such file or folder" | wc -l)
check "missing file: the error says the reason once" $([ "$n" = 1 ]; echo $?) \
  "$n times: $(printf '%s' "$out" | grep '^sdserve serve:')"

# a UNet-only folder (the inpainting UNet: a family it runs, without its text encoder)
try "inpainting UNet only" "$REF/models/tiny-sd1-inpaint" "not a whole checkpoint: it has no text encoder.*missing tensor 'text_encoder"

# a precision it does not know: refused at start, naming the setting (status 2: a usage error)
port=$(free_port)
out=$(timeout 60 "$SDSERVE" serve --bind 127.0.0.1 --port "$port" --data-dir "$TMP/data" --model "$GOOD" \
      --precision fast 2>&1); rc=$?
if [ "$rc" = 2 ] && printf '%s' "$out" | grep -q -- "--precision must be auto, fp32, bf16x2 or bf16; got 'fast'" &&
   ! printf '%s' "$out" | grep -qi "listening"; then echo "ok - unknown --precision: exit $rc naming it, never listened"
else echo "FAIL - unknown --precision: exit $rc: $(printf '%s' "$out" | tail -3 | tr '\n' ' ')"; fi

# --prediction / --zero-terminal-snr values it does not know: refused at start
for flag in "--prediction x0" "--zero-terminal-snr yes"; do
  port=$(free_port)
  out=$(timeout 60 "$SDSERVE" serve --bind 127.0.0.1 --port "$port" --data-dir "$TMP/data" --model "$GOOD" $flag 2>&1); rc=$?
  if [ "$rc" = 2 ] && printf '%s' "$out" | grep -q -- "${flag% *} must be auto, " &&
     ! printf '%s' "$out" | grep -qi "listening"; then echo "ok - unknown ${flag% *}: exit $rc naming it, never listened"
  else echo "FAIL - unknown ${flag% *}: exit $rc: $(printf '%s' "$out" | tail -3 | tr '\n' ' ')"; fi
done

# ---- SDXL (issue 15): broken copies of the tiny SDXL single file ---------
XL=$REF/models/tiny-sdxl-s-fp16.safetensors
# xlcopy OUT OP...: OUT = XL edited by ops "drop:NAME", "dropprefix:P",
# "rename:OLD_PREFIX:NEW_PREFIX", "shape:NAME:d0,d1" (data cut or zero-padded),
# with the model's ldm_config.json beside it (the heads and time-id width)
xlcopy() {
  cp "$REF/models/tiny-sdxl-s.ldm_config.json" "${1%.safetensors}.ldm_config.json"
  python3 - "$XL" "$@" <<'PY'
import json, struct, sys
src, out, ops = sys.argv[1], sys.argv[2], sys.argv[3:]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n]); body = raw[8 + n:]
meta = hdr.pop("__metadata__", None)
t = {k: (v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in hdr.items()}
size = {"F16": 2, "BF16": 2, "F32": 4, "I64": 8}
for op in ops:
    kind, _, arg = op.partition(":")
    if kind == "drop": del t[arg]
    elif kind == "dropprefix": t = {k: v for k, v in t.items() if not k.startswith(arg)}
    elif kind == "rename":
        a, b = arg.split(":")
        t = {(b + k[len(a):] if k.startswith(a) else k): v for k, v in t.items()}
    elif kind == "shape":
        name, dims = arg.split(":")
        d, shp, data = t[name]
        shp = [int(x) for x in dims.split(",")]
        nb = size[d]
        for x in shp: nb *= x
        t[name] = (d, shp, data[:nb].ljust(nb, b"\0"))
h, off, blobs = {}, 0, []
for k, (d, shp, data) in t.items():
    h[k] = {"dtype": d, "shape": shp, "data_offsets": [off, off + len(data)]}
    off += len(data); blobs.append(data)
if meta is not None: h["__metadata__"] = meta
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(hb))); f.write(hb); f.write(b"".join(blobs))
PY
}
# A checkpoint that loads but computes NaN (a tensor holding NaN: what an
# overflowing fp16 merge or a broken conversion leaves): the run fails
# saying the numbers are not finite, naming the stage, and writes no
# (black) picture.  nancopy OUT TENSOR: GOOD with TENSOR's values NaN.
nancopy() {
  cp "$REF/models/tiny-sd1.ldm_config.json" "${1%.safetensors}.ldm_config.json"
  python3 - "$GOOD" "$1" "$2" <<'PY'
import json, struct, sys
src, out, name = sys.argv[1:4]
raw = bytearray(open(src, "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
v = json.loads(raw[8:8 + n])[name]
a, b = v["data_offsets"]
assert v["dtype"] == "F16"
raw[8 + n + a:8 + n + b] = b"\x00\x7e" * ((b - a) // 2)   # fp16 quiet NaN
open(out, "wb").write(raw)
PY
}
for c in "nan-unet:model.diffusion_model.out.2.bias:sampled latents" \
         "nan-vae:first_stage_model.decoder.conv_out.bias:decoded pixels"; do
  f=${c%%:*}; rest=${c#*:}; tensor=${rest%%:*}; what=${rest#*:}
  nancopy "$TMP/$f.safetensors" "$tensor"
  rm -f "$TMP/g.png"
  out=$(timeout 120 "$SDSERVE" generate --model "$TMP/$f.safetensors" --prompt p -W 64 -H 64 --steps 2 -o "$TMP/g.png" 2>&1); rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && printf '%s' "$out" | grep -q -- "the $what of image 1 are not finite" && [ ! -e "$TMP/g.png" ]; then
    echo "ok - generate, $tensor NaN: exit $rc, '$what ... not finite', no picture"
  else echo "FAIL - generate, $tensor NaN: exit $rc: $(printf '%s' "$out" | tail -2 | tr '\n' ' ')"; fi
done

if [ -f "$XL" ]; then
  xlcopy "$TMP/xl-nolabel.safetensors" drop:model.diffusion_model.label_emb.0.2.weight
  try "SDXL without label_emb.0.2.weight" "$TMP/xl-nolabel.safetensors" "label_emb\.0\.2|add_embedding\.linear_2"
  xlcopy "$TMP/xl-note2.safetensors" drop:conditioner.embedders.1.model.transformer.resblocks.1.mlp.c_fc.weight
  try "SDXL without a te2 layer's c_fc" "$TMP/xl-note2.safetensors" "resblocks\.1\.mlp\.c_fc|layers\.1\.mlp\.fc1"
  xlcopy "$TMP/xl-reshaped.safetensors" shape:model.diffusion_model.label_emb.0.0.weight:128,100
  try "SDXL with label_emb.0.0 reshaped" "$TMP/xl-reshaped.safetensors" "label_emb\.0\.0|add_embedding\.linear_1|added"
  # the refiner's shape: only the OpenCLIP-bigG tower, as embedder 0, and an
  # add-embedding input of pooled + 5 ids (aesthetic score instead of the target size)
  xlcopy "$TMP/xl-refiner.safetensors" dropprefix:conditioner.embedders.0. \
    rename:conditioner.embedders.1.:conditioner.embedders.0. shape:model.diffusion_model.label_emb.0.0.weight:128,96
  try "SDXL refiner" "$TMP/xl-refiner.safetensors" "is an SDXL refiner checkpoint"
  # sdserve generate says the same and exits non-zero
  for c in "xl-nolabel:label_emb\\.0\\.2|add_embedding\\.linear_2" "xl-refiner:is an SDXL refiner checkpoint" \
           "xl-reshaped:label_emb\\.0\\.0|add_embedding\\.linear_1"; do
    out=$(timeout 60 "$SDSERVE" generate --model "$TMP/${c%%:*}.safetensors" --prompt p -o "$TMP/g.png" 2>&1); rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && printf '%s' "$out" | grep -qE -- "${c#*:}" && [ ! -e "$TMP/g.png" ]; then
      echo "ok - generate, ${c%%:*}: exit $rc with the message"
    else echo "FAIL - generate, ${c%%:*}: exit $rc: $(printf '%s' "$out" | tail -2 | tr '\n' ' ')"; fi
  done
  size=$(stat -c %s "$XL")
  head -c $((size * 3 / 4)) "$XL" > "$TMP/xl-cut.safetensors"
  try "SDXL truncated" "$TMP/xl-cut.safetensors" "truncated|data section|offsets"
else
  echo "FAIL - reference model $XL missing"
fi
