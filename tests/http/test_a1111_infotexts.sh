#!/usr/bin/env bash
# test_a1111_infotexts.sh — the A1111 dialect's info.infotexts are the
# images' own parameters text (job_image.parameters), as A1111 answers the
# text it saved with each image: with tiny-sd1 and a VAE override (whose
# "VAE hash" / "VAE" entries the infotexts once left out), then with
# `--vae-decoder taesd` ("VAE Decoder: TAESD"), for a txt2img batch of two
# and an inpainting img2img, each infotexts[i] equals the parameters text
# read from the PNG of images[i], byte for byte; the same through the Redis
# queue (the text travels in the result, docs/WIRE.md) when redis-server is
# installed.  Also info.sd_vae_name / sd_vae_hash: the VAE override's file
# name and the first 10 hex of its sha256 (A1111's), equal to the
# infotexts' "VAE" / "VAE hash" entries (a name with a comma too); null
# without an override.
set -u
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

REF=${SD_REF:-../shared/reference}
M=$REF/models/tiny-sd1
TAESD=$REF/models/tiny-taesd
mkdir -p "$TMP/myvae"
cp "$M/vae/config.json" "$M/vae/diffusion_pytorch_model.safetensors" "$TMP/myvae/"
J='Content-Type: application/json'

# post PATH JSON OUT: the status
post() { curl -s -o "$3" -w '%{http_code}' -H "$J" -d "$2" "$BASE$1"; }
# same_texts OUT.json ENTRY: "same N" when there are N images, infotexts has
# N entries, each equal to the PNG's parameters text of its image and
# holding ENTRY; else what differs
same_texts() {
  python3 - "$1" "$2" <<'EOF'
import base64, json, struct, sys, zlib
def png_parameters(png):
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos = 8
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        d = png[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"tEXt":
            k, v = d.split(b"\0", 1)
            if k == b"parameters": return v.decode("latin-1")
        elif kind == b"zTXt":
            k, v = d.split(b"\0", 1)
            if k == b"parameters": return zlib.decompress(v[1:]).decode("latin-1")
        elif kind == b"iTXt":
            k, v = d.split(b"\0", 1)
            comp, v = v[0], v[2:]
            v = v.split(b"\0", 2)[2]
            if k == b"parameters": return (zlib.decompress(v) if comp else v).decode("utf-8")
    return None
j = json.load(open(sys.argv[1]))
texts = json.loads(j["info"])["infotexts"]
imgs = [base64.b64decode(b, validate=True) for b in j["images"]]
if len(texts) != len(imgs) or not imgs:
    sys.exit(print("%d images, %d infotexts" % (len(imgs), len(texts))))
for i, (t, png) in enumerate(zip(texts, imgs)):
    p = png_parameters(png)
    if p != t:
        sys.exit(print("image %d: infotext %r != PNG %r" % (i, t, p)))
    if sys.argv[2] not in t:
        sys.exit(print("image %d: no %r in %r" % (i, sys.argv[2], t)))
print("same %d" % len(imgs))
EOF
}
# vae_info OUT.json: "info.sd_vae_name|info.sd_vae_hash" (None when null)
vae_info() { json "$1" '"%s|%s" % tuple(json.loads(j["info"]).get(k, "absent") for k in ("sd_vae_name", "sd_vae_hash"))'; }
# want_vae NAME FILE: "NAME|" + the first 10 hex of FILE's sha256
want_vae() { echo "$1|$(sha256sum "$2" | cut -c1-10)"; }
# first_image OUT.json: images[0] (base64)
first_image() { json "$1" 'j["images"][0]'; }

T2I='"prompt": "a lighthouse, at dusk", "negative_prompt": "blurry", "seed": 11, "steps": 2, "width": 64, "height": 48, "batch_size": 2'

start_server --model "$M" --vae "$TMP/myvae" || exit 1
st=$(post /sdapi/v1/txt2img "{$T2I}" "$TMP/v.json")
r=$(same_texts "$TMP/v.json" "VAE hash: ")
check "--vae: txt2img batch of 2: each infotext = its PNG's parameters (with VAE hash)" \
  $([ "$st" = 200 ] && [ "$r" = "same 2" ]; echo $?) "status $st: $r"
r=$(vae_info "$TMP/v.json") w=$(want_vae myvae "$TMP/myvae/diffusion_pytorch_model.safetensors")
check "--vae folder: info.sd_vae_name, sd_vae_hash = its name, sha256[:10]" $([ "$r" = "$w" ]; echo $?) "got $r, want $w"
r=$(same_texts "$TMP/v.json" "VAE hash: ${w#*|}, VAE: myvae")
check "--vae folder: the infotexts' VAE hash, VAE entries are the same" $([ "$r" = "same 2" ]; echo $?) "$r"
B64=$(first_image "$TMP/v.json")
st=$(post /sdapi/v1/img2img "{\"prompt\": \"a lighthouse\", \"init_images\": [\"$B64\"], \"mask\": \"$B64\", \"mask_blur\": 2, \"inpainting_fill\": 1, \"denoising_strength\": 0.6, \"steps\": 2, \"seed\": 3}" "$TMP/vi.json")
r=$(same_texts "$TMP/vi.json" "Mask blur: 2")
check "--vae: inpainting img2img: its infotext = its PNG's parameters (with Mask blur)" \
  $([ "$st" = 200 ] && [ "$r" = "same 1" ]; echo $?) "status $st: $r"
stop_server

# a single-file VAE whose name the infotext quotes (it holds a comma)
cp "$M/vae/diffusion_pytorch_model.safetensors" "$TMP/my, vae.safetensors"
start_server --model "$M" --vae "$TMP/my, vae.safetensors" || exit 1
st=$(post /sdapi/v1/txt2img "{$T2I}" "$TMP/f.json")
r=$(same_texts "$TMP/f.json" ', VAE: "my, vae.safetensors"')
check "--vae file with a comma: the infotexts quote its name" $([ "$st" = 200 ] && [ "$r" = "same 2" ]; echo $?) "status $st: $r"
r=$(vae_info "$TMP/f.json") w=$(want_vae "my, vae.safetensors" "$TMP/my, vae.safetensors")
check "--vae file: info.sd_vae_name, sd_vae_hash = its file name, sha256[:10]" $([ "$r" = "$w" ]; echo $?) "got $r, want $w"
stop_server

start_server --model "$M" --preview-decoder "$TAESD" --vae-decoder taesd || exit 1
st=$(post /sdapi/v1/txt2img "{$T2I}" "$TMP/t.json")
r=$(same_texts "$TMP/t.json" ", VAE Decoder: TAESD")
check "--vae-decoder taesd: txt2img batch of 2: each infotext = its PNG's parameters (VAE Decoder: TAESD)" \
  $([ "$st" = 200 ] && [ "$r" = "same 2" ]; echo $?) "status $st: $r"
r=$(vae_info "$TMP/t.json")
check "no VAE override: info.sd_vae_name, sd_vae_hash are null" $([ "$r" = "None|None" ]; echo $?) "got $r"
stop_server
check "--vae-decoder taesd: server stops cleanly" $([ "$STOP_STATUS" = 0 ]; echo $?) "status $STOP_STATUS"

# ---- through the Redis queue: the text travels with the result -------------------
command -v redis-server >/dev/null || { echo "ok - # SKIP redis-server not installed"; exit 0; }
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
trap 'kill "$REDIS_PID" 2>/dev/null; cleanup' EXIT
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
start_server --model "$M" --vae "$TMP/myvae" --queue "redis://127.0.0.1:$RPORT/0" --shared-data-dir 1 --workers 1 || exit 1
wait_workers 1
st=$(post /sdapi/v1/txt2img "{$T2I}" "$TMP/r.json")
r=$(same_texts "$TMP/r.json" "VAE hash: ")
check "--queue redis --vae: txt2img batch of 2: each infotext = its PNG's parameters (with VAE hash)" \
  $([ "$st" = 200 ] && [ "$r" = "same 2" ]; echo $?) "status $st: $r"
check "--queue redis: the same texts as the in-process queue" \
  $([ "$(json "$TMP/r.json" 'json.loads(j["info"])["infotexts"]')" = "$(json "$TMP/v.json" 'json.loads(j["info"])["infotexts"]')" ]; echo $?)
r=$(vae_info "$TMP/r.json") w=$(vae_info "$TMP/v.json")
check "--queue redis --vae: info.sd_vae_name, sd_vae_hash as in process" $([ "$r" = "$w" ] && [ "${r%|*}" = myvae ]; echo $?) "got $r, want $w"
stop_server
