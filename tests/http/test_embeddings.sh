#!/usr/bin/env bash
# test_embeddings.sh — textual-inversion embeddings end to end (issue 14
# item 4) on the real server and CLI with tiny-sd1: a folder holding
# "redapple" (A1111 emb_params, the token-table rows of "red apple"),
# "appletok" (diffusers form, the row of "apple"), a wrong-width one and a
# .pt; GET /embeddings lists them (fits or why not); a prompt and negative
# using the names give the pixels of the typed tokens (the server's log
# names each embedding), over HTTP and with
# `sdserve generate --embeddings-dir`; a negative too long because of the
# embedding's vectors is a 400 naming negative_prompt; on tiny-sdxl-s, GET
# /embeddings says the one-tensor SD1 embeddings do not fit, and why.
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

REF=${SD_REF:-../shared/reference}
ARGS='seed=7&width=64&height=48&num_inference_steps=3'
EMB=$TMP/embeddings
mkdir -p "$EMB"
# the rows of ids 736 ("red</w>") and 3055 ("apple</w>") of the text encoder's token table
python3 - "$REF/models/tiny-sd1/text_encoder/model.safetensors" "$EMB" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
t = json.loads(b[8:8 + n])["text_model.embeddings.token_embedding.weight"]
W = t["shape"][1]
row = lambda i: b[8 + n + t["data_offsets"][0] + 4 * W * i:][:4 * W]
def st(path, name, shape, data):
    h = json.dumps({name: {"dtype": "F32", "shape": shape, "data_offsets": [0, len(data)]}}).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
st(sys.argv[2] + "/redapple.safetensors", "emb_params", [2, W], row(736) + row(3055))
st(sys.argv[2] + "/appletok.safetensors", "<appletok>", [W], row(3055))
st(sys.argv[2] + "/wide.safetensors", "emb_params", [1, W + 1], b"\0" * 4 * (W + 1))
open(sys.argv[2] + "/old.pt", "wb").write(b"\x80\x02}q\x00.")
PY

start_server --model "$REF/models/tiny-sd1" --embeddings-dir "$EMB" || exit 1
st=$(curl -s -o "$TMP/list.json" -w '%{http_code}' "$BASE/embeddings")
check "GET /embeddings answers 200" $([ "$st" = 200 ]; echo $?) "status $st"
check "GET /embeddings lists the four files by name, sorted" \
  $([ "$(json "$TMP/list.json" '",".join(e["name"] for e in j["embeddings"])')" = "appletok,old,redapple,wide" ]; echo $?) \
  "$(cat "$TMP/list.json")"
check "redapple: 2 vectors that fit" \
  $([ "$(json "$TMP/list.json" '[(e["vectors"], e["fits"]) for e in j["embeddings"] if e["name"] == "redapple"][0]')" = "(2, True)" ]; echo $?) \
  "$(cat "$TMP/list.json")"
check "wide: refused, naming the width" \
  $(json "$TMP/list.json" '[e for e in j["embeddings"] if e["name"] == "wide"][0]["error"]' | grep -q "width"; echo $?) \
  "$(cat "$TMP/list.json")"
check "old.pt: refused as a pickle" \
  $(json "$TMP/list.json" '[e for e in j["embeddings"] if e["name"] == "old"][0]["error"]' | grep -q "pickle"; echo $?) \
  "$(cat "$TMP/list.json")"

check "typed tokens answer 200" \
  $([ "$(gen typed 'prompt=a red apple on a table' 'negative_prompt=apple, blurry')" = 200 ]; echo $?) "$(cat "$TMP/typed.json")"
check "embedding names answer 200" \
  $([ "$(gen named 'prompt=a redapple on a table' 'negative_prompt=appletok, blurry')" = 200 ]; echo $?) "$(cat "$TMP/named.json")"
check "the embeddings give the typed tokens' pixels" $(pixels_equal "$TMP/typed.png" "$TMP/named.png"; echo $?) \
  "$(pixel_diff "$TMP/typed.png" "$TMP/named.png")"
check "no embedding: another image (the check can fail)" \
  $([ "$(gen other 'prompt=a green apple on a table' 'negative_prompt=apple, blurry')" = 200 ] &&
    ! pixels_equal "$TMP/typed.png" "$TMP/other.png"; echo $?) "$(pixel_diff "$TMP/typed.png" "$TMP/other.png")"
long=$(for i in $(seq 304); do printf 'redapple '; done)
refused_field "a negative of 304 two-vector embeddings (9 chunks)" /txt2img "prompt=x&negative_prompt=$long" \
  negative_prompt 'too long'
check "the server log names each embedding, used or skipped and why" \
  $(grep -q '^embedding: redapple (2 vectors)' "$TMP/server.log" && grep -q '^embedding skipped: .*wide.*width' "$TMP/server.log" &&
    grep -q '^embedding skipped: .*pickle' "$TMP/server.log"; echo $?) "$(grep embedding "$TMP/server.log")"
stop_server

"$SDSERVE" generate --model "$REF/models/tiny-sd1" --embeddings-dir "$EMB" --prompt "a redapple on a table" \
  --negative "appletok, blurry" --seed 7 -W 64 -H 48 --steps 3 -o "$TMP/cli.png" >"$TMP/cli.out" 2>"$TMP/cli.err"
check "CLI --embeddings-dir runs" $? "$(tail -3 "$TMP/cli.err")"
check "CLI with the embeddings = HTTP typed tokens, pixel for pixel" $(pixels_equal "$TMP/typed.png" "$TMP/cli.png"; echo $?) \
  "$(pixel_diff "$TMP/typed.png" "$TMP/cli.png")"

# the same folder on an SDXL model: its one-tensor SD1 embeddings do not fit, saying why
start_server --model "$REF/models/tiny-sdxl-s" --embeddings-dir "$EMB" || exit 1
st=$(curl -s -o "$TMP/xl.json" -w '%{http_code}' "$BASE/embeddings")
check "SDXL: GET /embeddings says an SD1 embedding does not fit (needs a clip_l + clip_g pair)" \
  $([ "$st" = 200 ] && [ "$(json "$TMP/xl.json" '[(e["fits"], "clip_l + clip_g" in e["error"]) for e in j["embeddings"] if e["name"] == "redapple"][0]')" = "(False, True)" ]; echo $?) \
  "status $st $(head -c 600 "$TMP/xl.json")"
stop_server
