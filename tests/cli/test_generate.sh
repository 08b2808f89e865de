#!/usr/bin/env bash
# test_generate.sh — `sdserve generate` end to end with the random-weight demo
# model: exact output sizes (odd ones too), the same seed gives identical
# bytes, -n N naming and seeds (image i of a batch = a single run with seed+i),
# no -H gives the model's native height, SDXL's size flags are ignored by
# SD1, img2img keeps the init size (upright per its EXIF orientation), JPEG/WebP outputs (-o's extension decides, an
# unknown one is refused before any work), the A1111 parameters in the
# file, progress on stderr, exit status 2 for every kind of bad argument (an
# -o that is a folder or in a missing one too, before any work) and 1 for a
# missing model; --help lines whole (--hr-upscaler's was cut).
set -u
BUILD=${SD_BUILD:-build}
BIN="$BUILD/sdserve"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

ok() { echo "ok - $1"; }
fail() { echo "FAIL - $1: $2"; }
check() { if eval "$2"; then ok "$1"; else fail "$1" "${3:-$2}"; fi; }

# width x height of a PNG from its IHDR
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{printf "%dx%d", $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8}'; }

if ! "$BIN" make-model --preset demo -o "$T/demo" >"$T/mm.log" 2>&1; then
  fail "make demo model" "$(tail -3 "$T/mm.log")"; exit 1
fi
M="$T/demo"
gen() { "$BIN" generate --model "$M" --prompt "a red bicycle" --steps 3 "$@"; }

gen -W 64 -H 48 --seed 5 -o "$T/a.png" >"$T/out1" 2>"$T/err1"; rc=$?
check "txt2img exits 0" '[ $rc -eq 0 ]' "rc=$rc $(tail -2 "$T/err1")"
check "PNG has the requested size 64x48" '[ "$(png_size "$T/a.png")" = 64x48 ]' "got $(png_size "$T/a.png")"
check "stdout names the file and its seed" 'grep -qx "$T/a.png seed=5" "$T/out1"' "$(cat "$T/out1")"
check "progress on stderr" 'grep -q "step 3/3, .* it/s\|step 3/3, .* s/it" "$T/err1"' "$(cat "$T/err1")"
check "parameters chunk in the PNG" 'grep -qa "Steps: 3, Sampler: euler_a, CFG scale: 7, Seed: 5, Size: 64x48" "$T/a.png"'

gen -W 64 -H 48 --seed 5 -o "$T/b.png" >/dev/null 2>&1
check "same seed gives identical bytes" 'cmp -s "$T/a.png" "$T/b.png"'
gen -W 64 -H 48 --seed 6 -o "$T/c.png" >/dev/null 2>&1
check "another seed gives another image" '! cmp -s "$T/a.png" "$T/c.png"'

gen -W 64 -H 48 --seed 5 -n 3 -o "$T/batch.png" >"$T/out2" 2>/dev/null
check "-n 3 writes out, out-1, out-2" '[ -f "$T/batch.png" ] && [ -f "$T/batch-1.png" ] && [ -f "$T/batch-2.png" ]'
check "-n 3 prints each file with seed, seed+1, seed+2" \
  '[ "$(cat "$T/out2")" = "$(printf "%s seed=5\n%s seed=6\n%s seed=7" "$T/batch.png" "$T/batch-1.png" "$T/batch-2.png")" ]' \
  "$(cat "$T/out2")"
check "batch image 0 = single run with its seed" 'cmp -s "$T/batch.png" "$T/a.png"'
check "batch image 1 = single run with its seed" 'cmp -s "$T/batch-1.png" "$T/c.png"'

# issue 15: no -H = the model's native height (the demo model is SD1: 512);
# SDXL's size flags are accepted and ignored by an SD1 model
gen -W 64 --steps 1 --seed 1 -o "$T/native.png" >/dev/null 2>&1
check "no -H: the model's native 512 (64x512)" '[ "$(png_size "$T/native.png")" = 64x512 ]' "got $(png_size "$T/native.png")"
gen -W 64 -H 48 --seed 5 --original-width 4096 --crop-top 16 --target-height 2048 -o "$T/ids.png" >/dev/null 2>&1
check "SDXL size flags ignored by an SD1 model (same bytes)" 'cmp -s "$T/ids.png" "$T/a.png"'

gen -W 37 -H 29 --seed 1 -o "$T/odd.png" >/dev/null 2>&1
check "odd size 37x29 is exact" '[ "$(png_size "$T/odd.png")" = 37x29 ]' "got $(png_size "$T/odd.png")"

gen -W 64 -H 64 --seed 1 -o "$T/x.jpg" >/dev/null 2>&1
check "-o .jpg writes JPEG with EXIF" '[ "$(od -An -tx1 -N3 "$T/x.jpg" | tr -d " ")" = ffd8ff ] && grep -qa "Exif" "$T/x.jpg"'
gen -W 64 -H 64 --seed 1 --format webp --quality 50 -o "$T/x.img" >/dev/null 2>&1
check "--format webp" '[ "$(head -c 4 "$T/x.img")" = RIFF ] && [ "$(dd if="$T/x.img" bs=1 skip=8 count=4 2>/dev/null)" = WEBP ]'
# -o's extension decides the format for every file of a batch, or is refused before any work
is_webp() { [ "$(head -c 4 "$1")" = RIFF ] && [ "$(dd if="$1" bs=1 skip=8 count=4 2>/dev/null)" = WEBP ]; }
gen -W 64 -H 48 --seed 5 -n 2 -o "$T/w.WebP" >"$T/outw" 2>/dev/null
check "-n 2 -o w.WebP writes w.WebP and w-1.WebP, both WebP" 'is_webp "$T/w.WebP" && is_webp "$T/w-1.WebP"' "$(cat "$T/outw")"
"$BIN" generate --model "$T/nothing-here" --prompt p -o "$T/out.gif" >/dev/null 2>"$T/errg"; rc=$?
check "-o out.gif: exit 2 naming -o before the model is read, no file" \
  '[ $rc -eq 2 ] && grep -q "^sdserve generate: -o .*out.gif: .\.gif. is not a format" "$T/errg" && [ ! -e "$T/out.gif" ]' \
  "rc=$rc $(cat "$T/errg")"
"$BIN" generate --model "$T/nothing-here" --prompt p --format jpeg --output "$T/o.png" >/dev/null 2>"$T/errf"; rc=$?
check "--format jpeg with --output o.png: exit 2 naming --output" \
  '[ $rc -eq 2 ] && grep -q "^sdserve generate: --output .*o.png names a png file but --format asks for jpeg" "$T/errf"' \
  "rc=$rc $(cat "$T/errf")"

# -o a folder, or in a folder that does not exist: refused before the model is read (was: after
# the whole generation, "cannot write ...: Is a directory")
mkdir -p "$T/odir"
"$BIN" generate --model "$T/nothing-here" --prompt p -o "$T/odir" >/dev/null 2>"$T/errd"; rc=$?
check "-o a folder: exit 2 naming -o and the folder, before the model is read" \
  '[ $rc -eq 2 ] && grep -q "^sdserve generate: -o .*/odir is a folder; give a file name, e.g. .*/odir/out.png" "$T/errd"' \
  "rc=$rc $(cat "$T/errd")"
"$BIN" generate --model "$T/nothing-here" --prompt p --output "$T/no/such/x.png" >/dev/null 2>"$T/errn"; rc=$?
check "--output in a missing folder: exit 2 naming --output and the folder, before the model is read" \
  '[ $rc -eq 2 ] && grep -q "^sdserve generate: --output .*/no/such/x.png: the folder .*/no/such does not exist" "$T/errn"' \
  "rc=$rc $(cat "$T/errn")"
mkdir -p "$T/odir/b-1.png"
"$BIN" generate --model "$T/nothing-here" --prompt p -n 2 -o "$T/odir/b.png" >/dev/null 2>"$T/errb"; rc=$?
check "-n 2 whose second file is a folder: exit 2 naming it" \
  '[ $rc -eq 2 ] && grep -q "^sdserve generate: -o .*/odir/b-1.png is a folder" "$T/errb" && [ ! -e "$T/odir/b.png" ]' \
  "rc=$rc $(cat "$T/errb")"

gen --init-image "$T/a.png" --strength 0.5 --seed 2 -o "$T/i2i.png" >/dev/null 2>"$T/err3"; rc=$?
check "img2img exits 0" '[ $rc -eq 0 ]' "rc=$rc $(tail -2 "$T/err3")"
check "img2img output has the init size" '[ "$(png_size "$T/i2i.png")" = 64x48 ]' "got $(png_size "$T/i2i.png")"
check "img2img parameters carry the strength" 'grep -qa "Denoising strength: 0.5" "$T/i2i.png"'
# an init JPEG whose EXIF says "turned 90 degrees" (orientation 6) is used upright: 64x48 stored -> 48x64
gen -W 64 -H 48 --seed 3 -o "$T/side.jpg" >/dev/null 2>&1
python3 "$(dirname "$0")/../common/jpeg_orient.py" "$T/side.jpg" "$T/side6.jpg" 6
gen --init-image "$T/side6.jpg" --strength 0.5 --seed 2 -o "$T/up.png" >/dev/null 2>"$T/err6"; rc=$?
check "img2img from an EXIF orientation 6 JPEG: output upright 48x64" \
  '[ $rc -eq 0 ] && [ "$(png_size "$T/up.png")" = 48x64 ]' "rc=$rc got $(png_size "$T/up.png") $(tail -2 "$T/err6")"

# every kind of bad argument: exit 2 and a message naming the flag
bad() {
  local name=$1 frag=$2; shift 2
  "$BIN" generate "$@" >/dev/null 2>"$T/bad.err"; local rc=$?
  if [ $rc -eq 2 ] && grep -q -- "$frag" "$T/bad.err"; then ok "exit 2: $name"
  else fail "exit 2: $name" "rc=$rc $(cat "$T/bad.err")"; fi
}
bad "unknown flag" "--frobnicate" --model "$M" --prompt p --frobnicate
bad "missing value" "--seed needs a value" --model "$M" --prompt p --seed
bad "non-numeric" "--steps expects an integer" --model "$M" --prompt p --steps many
bad "width out of range" "-W must be in \[1, 2048\]" --model "$M" --prompt p -W 2049
bad "cfg out of range" "--cfg must be in" --model "$M" --prompt p --cfg 0
bad "strength out of range" "--strength must be in" --model "$M" --prompt p --init-image "$T/a.png" --strength 1.5
bad "bad sampler" "--sampler must be one of" --model "$M" --prompt p --sampler heun
bad "count out of range" "-n must be in \[1, 4\]" --model "$M" --prompt p -n 9
bad "missing --model" "--model is required" --prompt p
bad "missing --prompt" "--prompt is required" --model "$M"
bad "unknown precision" "--precision must be auto, fp32, bf16x2 or bf16" --model "$M" --prompt p --precision fast
# the prediction overrides (issue 15, docs/LOADING.md "Prediction markers")
bad "unknown prediction" "--prediction must be auto, eps or v; got 'x0'" --model "$M" --prompt p --prediction x0
bad "unknown zero-terminal-snr" "--zero-terminal-snr must be auto, on or off" --model "$M" --prompt p --zero-terminal-snr yes
gen -W 64 -H 48 --seed 5 --steps 1 --prediction v --zero-terminal-snr on -o "$T/pv.png" >/dev/null 2>"$T/pverr"; rc=$?
check "--prediction v --zero-terminal-snr on: runs and reports both" \
  '[ $rc -eq 0 ] && grep -q "v_prediction, zero terminal SNR" "$T/pverr"' "rc=$rc $(cat "$T/pverr")"

# the precisions: each writes its image and says so; bf16 rounds, so its bytes differ from fp32's
gen -W 64 -H 48 --seed 5 --precision fp32 -o "$T/p32.png" >/dev/null 2>"$T/perr1"; rc=$?
check "--precision fp32 writes the image and reports it" '[ $rc -eq 0 ] && grep -q "precision fp32" "$T/perr1"' "rc=$rc $(cat "$T/perr1")"
gen -W 64 -H 48 --seed 5 --precision bf16 -o "$T/p16.png" >/dev/null 2>"$T/perr2"; rc=$?
if grep -qw avx512f /proc/cpuinfo; then
  check "--precision bf16 writes the image and reports it" '[ $rc -eq 0 ] && grep -q "precision bf16$" "$T/perr2"' "rc=$rc $(cat "$T/perr2")"
  check "bf16 and fp32 images differ (bf16 rounds)" '! cmp -s "$T/p32.png" "$T/p16.png"'
else   # an AVX2-only CPU: no bf16 kernels
  check "no AVX-512 here: --precision bf16 exits 1 naming AVX-512 and fp32, no file" '[ $rc -eq 1 ] && grep -q "precision bf16 needs a CPU with AVX-512.*--precision fp32" "$T/perr2" && [ ! -e "$T/p16.png" ]' "rc=$rc $(cat "$T/perr2")"
fi
check "fp32 is the default under SD_PRECISION=fp32" 'cmp -s "$T/p32.png" "$T/a.png" || [ "${SD_PRECISION:-}" != fp32 ]'
# a bf16 precision where oneDNN may not use AVX-512 (capped here as on an older CPU): refused at load, not an abort
ONEDNN_MAX_CPU_ISA=AVX2 gen -W 64 -H 48 --seed 5 --precision bf16x2 -o "$T/pavx2.png" >/dev/null 2>"$T/perr3"; rc=$?
check "bf16x2 below AVX-512: exit 1 naming the precision and fp32, no file" '[ $rc -eq 1 ] && grep -q "precision bf16x2 needs a CPU with AVX-512.*--precision fp32" "$T/perr3" && [ ! -e "$T/pavx2.png" ]' "rc=$rc $(cat "$T/perr3")"
ONEDNN_MAX_CPU_ISA=AVX2 gen -W 64 -H 48 --seed 5 --precision fp32 -o "$T/pavx2.png" >/dev/null 2>&1
check "fp32 below AVX-512 still works" '[ -s "$T/pavx2.png" ]'

"$BIN" generate --model "$T/nothing-here" --prompt p -o "$T/none.png" >/dev/null 2>"$T/err4"; rc=$?
check "missing model: exit 1 with a message, no file" '[ $rc -eq 1 ] && [ -s "$T/err4" ] && [ ! -e "$T/none.png" ]' "rc=$rc"
printf 'not an image' >"$T/bad.png"
gen --init-image "$T/bad.png" -o "$T/none.png" >/dev/null 2>"$T/err5"; rc=$?
check "bad init image: exit 1 naming it" '[ $rc -eq 1 ] && grep -q "init-image" "$T/err5" && [ ! -e "$T/none.png" ]' "rc=$rc $(cat "$T/err5")"
"$BIN" generate --help >"$T/help" 2>&1; rc=$?
check "--help exits 0 and documents -n naming" '[ $rc -eq 0 ] && grep -q "out-1.png" "$T/help"'
# each request field's help line is whole: --hr-upscaler's was cut at 160
# characters and listed its names twice
l=$(grep -- '--hr-upscaler' "$T/help")
check "--help: the --hr-upscaler line is whole and names each upscaler once" \
  '[ "$(grep -o "latent-nearest-exact" <<<"$l" | wc -l)" = 1 ] && grep -q "lanczos (A1111.s names too) \[latent\]$" <<<"$l"' "$l"
# -o replaces an existing file (as make-model -o does): --help says so
check "--help: -o says an existing file is replaced" 'grep -q -- "-o, --output F .*(replaced if it exists)" "$T/help"' \
  "$(grep -- '--output' "$T/help")"
# a LoRA not in --lora-dir: the message names the flag and the folder (was the
# server's "in the LoRA directory (GET /loras lists them)")
mkdir -p "$T/loras"
gen -W 64 -H 64 --steps 1 --lora-dir "$T/loras" --lora nope -o "$T/lora.png" >"$T/lora.out" 2>"$T/lora.err"; rc=$?
check "unknown --lora: exit 1 naming --lora-dir and its folder, not GET /loras" \
  '[ $rc -eq 1 ] && grep -q "unknown LoRA .nope.: no nope.safetensors in --lora-dir $T/loras$" "$T/lora.err" && ! grep -q "GET /loras" "$T/lora.err"' \
  "rc=$rc $(tail -1 "$T/lora.err")"
# ... found before the model loads (a load of SDXL takes many seconds): no "model ..." line first
check "unknown --lora: refused before the model is loaded" \
  '[ $rc -eq 1 ] && grep -q "unknown LoRA" "$T/lora.err" && ! grep -q "^model " "$T/lora.err"' "$(head -2 "$T/lora.err")"
gen -W 64 -H 64 --steps 1 --lora-dir "$T/loras" --prompt "a cat <lora:gone:0.5>" -o "$T/lora.png" >"$T/lora.out" 2>"$T/lora.err"; rc=$?
check "unknown <lora:> tag in the prompt: exit 1 before the model is loaded" \
  '[ $rc -eq 1 ] && grep -q "unknown LoRA .gone.: no gone.safetensors in --lora-dir $T/loras$" "$T/lora.err" && ! grep -q "^model " "$T/lora.err"' \
  "rc=$rc $(cat "$T/lora.err")"
