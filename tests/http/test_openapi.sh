#!/usr/bin/env bash
# test_openapi.sh — the OpenAPI document served at /openapi.json is
# docs/openapi.json, and real responses of the real server (success, error,
# job created, job status in every state, health) match the schemas it gives
# for their operation and status (openapi_check.py).
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

model=$(demo_model)
# a LoRA that fits and one that does not, an embedding that fits and one that
# does not: /loras and /embeddings then answer both shapes of an entry
# ("reason" / "error" null, and a string)
mkdir -p "$TMP/loras" "$TMP/emb"
"$BUILD/tools/make_lora" "$model" --rank 2 -o "$TMP/loras/fits.safetensors" >/dev/null
printf 'not a safetensors file' >"$TMP/loras/broken.safetensors"
python3 - "$model/model.safetensors" "$TMP/emb" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read(1 << 20)
n = struct.unpack("<Q", b[:8])[0]
W = [v for k, v in json.loads(b[8:8 + n]).items() if k.endswith("token_embedding.weight")][0]["shape"][1]
h = json.dumps({"emb_params": {"dtype": "F32", "shape": [1, W], "data_offsets": [0, 4 * W]}}).encode()
open(sys.argv[2] + "/fits.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + b"\0" * 4 * W)
open(sys.argv[2] + "/old.pt", "wb").write(b"\x80\x02}q\x00.")
PY
start_server --model "$model" --queue-size 1 --lora-dir "$TMP/loras" --embeddings-dir "$TMP/emb" || exit 1
curl -s -o "$TMP/doc.json" "$BASE/openapi.json"
same=$(python3 - "$TMP/doc.json" docs/openapi.json "$BASE" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ok = a["servers"][0]["url"] == sys.argv[3] and a["openapi"].startswith("3.")
for d in (a, b):
    d.pop("servers", None); d["info"].pop("version", None)
print("yes" if ok and a == b else "no")
PY
)
check "GET /openapi.json serves docs/openapi.json with this server's URL" $([ "$same" = yes ]; echo $?) "differs (run scripts/openapi-to-c.py after editing docs/openapi.json)"
# the OpenAI bodies: null is "not given" for every field but prompt (api_openai.c), so the schemas allow it
notnull=$(python3 - docs/openapi.json <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["components"]["schemas"]
bad = []
for k in ("OpenAIImageRequest", "OpenAIEditRequest"):
    for n, v in s[k]["properties"].items():
        t = v.get("type")
        nullable = (isinstance(t, list) and "null" in t and ("enum" not in v or None in v["enum"])) or \
                   any(a.get("type") == "null" for a in v.get("anyOf", []))
        if (n == "prompt") == nullable: bad.append(k + "." + n)
print(" ".join(bad))
PY
)
check "OpenAI request schemas: every optional field nullable, prompt not" $([ -z "$notnull" ]; echo $?) "$notnull"

# conform NAME METHOD TEMPLATE curl-args... : request, then check against the document
# (DOC_METHOD, when set, is the documented operation to check against: a 405
# belongs to the operation that exists on that path)
conform() {
  local name=$1 method=$2 tmpl=$3; shift 3
  local st
  st=$(curl -s -o "$TMP/r.json" -D "$TMP/r.hdr" -w '%{http_code}' -X "$method" "$@")
  local v
  v=$(python3 tests/http/openapi_check.py "$TMP/doc.json" "${DOC_METHOD:-$method}" "$tmpl" "$st" "$TMP/r.json" "$TMP/r.hdr")
  if [ "$v" = ok ]; then ok "$name ($st) matches the document"; else fail "$name ($st) matches the document" "$v; body $(head -c 300 "$TMP/r.json")"; fi
  LAST_STATUS=$st
}
F='Content-Type: application/x-www-form-urlencoded'
conform "txt2img success" POST /txt2img -H "$F" --data 'prompt=x&width=40&height=24&num_inference_steps=2&num_outputs=2' "$BASE/txt2img"
conform "txt2img JPEG output" POST /txt2img -H "$F" --data 'prompt=x&width=40&height=24&num_inference_steps=2&output_format=jpeg&output_quality=80' "$BASE/txt2img"
check "JPEG output answered image/jpeg" $([ "$(json "$TMP/r.json" 'j["images"][0]["mime_type"]')" = image/jpeg ]; echo $?) "$(head -c 300 "$TMP/r.json")"
conform "txt2img 400" POST /txt2img -H "$F" --data 'prompt=x&width=0' "$BASE/txt2img"
conform "txt2img 413" POST /txt2img -H "$F" -H 'Content-Length: 999999999' --data 'prompt=x' "$BASE/txt2img"
conform "txt2img 415" POST /txt2img -H 'Content-Type: text/plain' --data 'prompt=x' "$BASE/txt2img"
conform "img2img 400" POST /img2img -H "$F" --data 'prompt=x&init_image=%21' "$BASE/img2img"
conform "job 404" GET '/jobs/{id}' "$BASE/jobs/0123456789abcdef0123456789abcdef"
conform "health" GET /health "$BASE/health"
conform "samplers" GET /samplers "$BASE/samplers"
conform "embeddings (one fits, one does not)" GET /embeddings "$BASE/embeddings"
check "embeddings: error null when it fits, a text when not" \
  $([ "$(json "$TMP/r.json" '[(e["name"], e["fits"], type(e["error"]).__name__) for e in j["embeddings"]]')" = \
      "[('fits', True, 'NoneType'), ('old', False, 'str')]" ]; echo $?) "$(head -c 400 "$TMP/r.json")"
conform "loras (one fits, one does not)" GET /loras "$BASE/loras"
check "loras: reason null when it fits, a text when not" \
  $([ "$(json "$TMP/r.json" 'sorted((e["name"], e["fits"], type(e["reason"]).__name__) for e in j["loras"])')" = \
      "[('broken', False, 'str'), ('fits', True, 'NoneType')]" ]; echo $?) "$(head -c 400 "$TMP/r.json")"
conform "models" GET /models "$BASE/models"
conform "async created" POST /jobs/txt2img -H "$F" --data 'prompt=long&width=256&height=256&num_inference_steps=150' "$BASE/jobs/txt2img"
long=$(json "$TMP/r.json" 'j["status_url"]')
conform "async second job (queued)" POST /jobs/txt2img -H "$F" --data 'prompt=q&width=32&height=32&num_inference_steps=2' "$BASE/jobs/txt2img"
queued=$(json "$TMP/r.json" 'j["status_url"]')
conform "queue full 503" POST /txt2img -H "$F" --data 'prompt=x' "$BASE/txt2img"
check "queue full answered 503" $([ "$LAST_STATUS" = 503 ]; echo $?) "status $LAST_STATUS"
conform "job status queued" GET '/jobs/{id}' "$queued"
check "queued job state" $([ "$(json "$TMP/r.json" 'j["state"]')" = queued ]; echo $?) "$(cat "$TMP/r.json")"
for _ in $(seq 100); do curl -s -o "$TMP/s.json" "$long"; [ "$(json "$TMP/s.json" 'j["step"]>0')" = True ] && break; sleep 0.1; done
conform "job status running" GET '/jobs/{id}' "$long"
conform "job cancel (running)" DELETE '/jobs/{id}' "$long"
for _ in $(seq 100); do curl -s -o "$TMP/s.json" "$queued"; [ "$(json "$TMP/s.json" 'j["state"]')" = succeeded ] && break; sleep 0.1; done
conform "job status succeeded" GET '/jobs/{id}' "$queued"
check "succeeded job carries the synchronous body (status success, images)" $([ "$(json "$TMP/r.json" 'j["status"]=="success" and len(j["images"])==1')" = True ]; echo $?) "$(cat "$TMP/r.json")"
conform "job status cancelled" GET '/jobs/{id}' "$long"
check "cancelled job state" $([ "$(json "$TMP/r.json" 'j["state"]')" = cancelled ]; echo $?) "$(cat "$TMP/r.json")"
DOC_METHOD=POST conform "GET /txt2img -> 405" GET /txt2img "$BASE/txt2img"
# the OpenAI dialect (/v1): answers and errors in its own shapes
J='Content-Type: application/json'
conform "openai generations b64_json" POST /v1/images/generations -H "$J" --data '{"prompt":"x","size":"40x24","steps":2,"n":2}' "$BASE/v1/images/generations"
conform "openai generations url" POST /v1/images/generations -H "$J" --data '{"prompt":"x","size":"40x24","steps":2,"response_format":"url"}' "$BASE/v1/images/generations"
conform "openai generations 400" POST /v1/images/generations -H "$J" --data '{"prompt":"x","n":9}' "$BASE/v1/images/generations"
conform "openai generations 415" POST /v1/images/generations -H 'Content-Type: text/plain' --data 'x' "$BASE/v1/images/generations"
DOC_METHOD=POST conform "openai GET generations -> 405" GET /v1/images/generations "$BASE/v1/images/generations"
python3 -c 'import struct,zlib,sys
c=lambda t,d: struct.pack(">I",len(d))+t+d+struct.pack(">I",zlib.crc32(t+d)&0xffffffff)
sys.stdout.buffer.write(b"\x89PNG\r\n\x1a\n"+c(b"IHDR",struct.pack(">IIBBBBB",16,16,8,2,0,0,0))+c(b"IDAT",zlib.compress((b"\0"+b"\x80"*48)*16))+c(b"IEND",b""))' >"$TMP/edit.png"
conform "openai edits" POST /v1/images/edits -F image=@"$TMP/edit.png" -F prompt=x -F steps=2 "$BASE/v1/images/edits"
check "openai edit answered 16x16" $([ "$(json "$TMP/r.json" 'j["size"]')" = 16x16 ]; echo $?) "$(head -c 200 "$TMP/r.json")"
conform "openai edits, one image[] file (LibreChat's form)" POST /v1/images/edits -F "image[]=@$TMP/edit.png" -F prompt=x -F steps=2 -F size=24x16 "$BASE/v1/images/edits"
check "openai image[] edit answered 24x16" $([ "$(json "$TMP/r.json" 'j["size"]')" = 24x16 ]; echo $?) "$(head -c 200 "$TMP/r.json")"
printf '{"prompt":"x","steps":2,"images":[{"image_url":"data:image/png;base64,%s"}]}' "$(base64 -w0 "$TMP/edit.png")" >"$TMP/edit.json"
conform "openai edits, JSON images data: URL" POST /v1/images/edits -H "$J" --data @"$TMP/edit.json" "$BASE/v1/images/edits"
check "openai JSON edit answered a 16x16 b64_json" $([ "$(json "$TMP/r.json" 'j["size"]+str(len(j["data"][0]["b64_json"])>100)')" = 16x16True ]; echo $?) "$(head -c 200 "$TMP/r.json")"
conform "openai edits 400 (mask)" POST /v1/images/edits -F image=@"$TMP/edit.png" -F mask=@"$TMP/edit.png" -F prompt=x "$BASE/v1/images/edits"
conform "openai models" GET /v1/models "$BASE/v1/models"
mid=$(json "$TMP/r.json" 'j["data"][0]["id"]')
conform "openai model" GET '/v1/models/{id}' "$BASE/v1/models/$mid"
conform "openai model 404" GET '/v1/models/{id}' "$BASE/v1/models/no-such-model"
# the AUTOMATIC1111 dialect (issue 16): its answers and errors against the document
AJ='Content-Type: application/json'
conform "A1111 txt2img success" POST /sdapi/v1/txt2img -H "$AJ" --data '{"prompt":"x","width":40,"height":24,"steps":2,"batch_size":2}' "$BASE/sdapi/v1/txt2img"
conform "A1111 txt2img 422" POST /sdapi/v1/txt2img -H "$AJ" --data '{"prompt":"x","sampler_name":"UniPC"}' "$BASE/sdapi/v1/txt2img"
conform "A1111 txt2img 415" POST /sdapi/v1/txt2img -H 'Content-Type: text/plain' --data 'x' "$BASE/sdapi/v1/txt2img"
for p in options progress sd-models samplers schedulers sd-vae loras embeddings upscalers scripts cmd-flags memory; do
  conform "A1111 GET $p" GET "/sdapi/v1/$p" "$BASE/sdapi/v1/$p"
done
conform "A1111 POST options" POST /sdapi/v1/options -H "$AJ" --data '{"send_seed":false}' "$BASE/sdapi/v1/options"
conform "A1111 POST options 422" POST /sdapi/v1/options -H "$AJ" --data '{"sd_model_checkpoint":"nope"}' "$BASE/sdapi/v1/options"
conform "A1111 POST interrupt" POST /sdapi/v1/interrupt "$BASE/sdapi/v1/interrupt"
stop_server
check "clean exit on SIGTERM" $STOP_STATUS "status $STOP_STATUS"

# The security scheme: bearer, optional (either a key or nothing, as configured), /health open.
sec=$(json "$TMP/doc.json" 'j["components"]["securitySchemes"]["bearerAuth"]=={"type":"http","scheme":"bearer","description":j["components"]["securitySchemes"]["bearerAuth"]["description"]} and {"bearerAuth":[]} in j["security"] and j["paths"]["/health"]["get"]["security"]==[] and j["paths"]["/images/{name}"]["get"]["security"]==[]')
check "document: bearer security scheme, /health and /images need no key" $([ "$sec" = True ]; echo $?) "securitySchemes/security not as expected"

# 401 and 429 from a server with an API key and a rate limit of 2 requests (burst 2)
KEY=openapi-key-0123456789
SDSERVE_API_KEYS=$KEY start_server --model "$model" --rate-limit 2 --rate-burst 2 || exit 1
J0=$BASE/jobs/0123456789abcdef0123456789abcdef
conform "txt2img 401 without a key" POST /txt2img -H "$F" --data 'prompt=x' "$BASE/txt2img"
check "no key answered 401" $([ "$LAST_STATUS" = 401 ]; echo $?) "status $LAST_STATUS"
conform "job 401 with a wrong key" GET '/jobs/{id}' -H "Authorization: Bearer wrong-key-0123456789" "$J0"
conform "metrics 401 without a key" GET /metrics "$BASE/metrics"
conform "openai generations 401 with a wrong key" POST /v1/images/generations -H "Authorization: Bearer wrong-key-0123456789" -H 'Content-Type: application/json' --data '{"prompt":"x"}' "$BASE/v1/images/generations"
conform "A1111 options 401 without a key" GET /sdapi/v1/options "$BASE/sdapi/v1/options"
conform "image without a key (no key needed: unknown name)" GET '/images/{name}' "$BASE/images/0123456789abcdef0123456789abcdef"
check "image without a key answered 404, not 401" $([ "$LAST_STATUS" = 404 ]; echo $?) "status $LAST_STATUS"
conform "job with the key (1 of 2)" GET '/jobs/{id}' -H "Authorization: Bearer $KEY" "$J0"
conform "job with the key (2 of 2)" GET '/jobs/{id}' -H "Authorization: Bearer $KEY" "$J0"
conform "txt2img over the rate limit" POST /txt2img -H "Authorization: Bearer $KEY" -H "$F" --data 'prompt=x' "$BASE/txt2img"
check "third request of the key answered 429" $([ "$LAST_STATUS" = 429 ]; echo $?) "status $LAST_STATUS"
conform "openai generations over the rate limit" POST /v1/images/generations -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data '{"prompt":"x"}' "$BASE/v1/images/generations"
check "openai: 429 with code rate_limit_exceeded and Retry-After" $([ "$LAST_STATUS" = 429 ] &&
  [ "$(json "$TMP/r.json" 'j["error"]["code"]')" = rate_limit_exceeded ] && grep -qi '^Retry-After:' "$TMP/r.hdr"; echo $?) \
  "status $LAST_STATUS $(cat "$TMP/r.json")"
conform "health open with keys and rate limit" GET /health "$BASE/health"
check "health answered 200" $([ "$LAST_STATUS" = 200 ]; echo $?) "status $LAST_STATUS"
stop_server
check "clean exit on SIGTERM (keys)" $STOP_STATUS "status $STOP_STATUS"
