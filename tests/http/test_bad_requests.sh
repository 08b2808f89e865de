#!/usr/bin/env bash
# test_bad_requests.sh — table-driven: every case of bad_requests*.cases
# (bad_requests.cases: the seed API; one more file per API dialect) is sent
# with curl to the real server (demo model) and must get the documented status
# and the error shape of the path's dialect with the field named and the
# message fragment present; afterwards the server must still serve (/health,
# and a real generation).  Shapes, by path:
#   seed API      {"status":"error","code","field","message"}
#   /sdapi/...    A1111 (FastAPI): {"detail":[{"loc":["body",FIELD],"msg",...}]}
#                 for validation (422), {"detail": MESSAGE} otherwise
#   /v1/...       OpenAI: {"error":{"message","type","param","code"}}
cd "$(dirname "$0")/../.."
. tests/http/lib.sh

model=$(demo_model)
start_server --model "$model" || exit 1

# Bodies and a manifest from the case file (python3 only builds the bytes).
python3 - "$TMP" tests/http/bad_requests*.cases <<'PY'
import base64, json, struct, sys, zlib
tmp, case_files = sys.argv[1], sys.argv[2:]
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
def png(w, h, rows):
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
def rgba(w, h, a):
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)) + chunk(b"IDAT", zlib.compress((b"\0" + bytes([9, 9, 9, a]) * w) * h)) + chunk(b"IEND", b"")
small = png(8, 8, b"".join(b"\0" + bytes(range(24)) for _ in range(8)))
b64 = lambda b: base64.b64encode(b).decode()
subs = {
    "{PNG}": b64(small), "{TRUNC}": b64(small[:45]), "{TEXT}": b64(b"hello, this is text and not an image"),
    "{HUGE}": b64(png(20000, 20000, b"\0" * 64)), "{DEEP}": "[" * 10000 + "]" * 10000, "{LONG}": "a" * 9000,
    "{CRLF}": "\r\n",
    "{WORDS700}": "x " * 700,
    # A1111 prompt syntax (issue 14)
    "{COMMAS3000}": "x," * 3000, "{BREAK1000}": "BREAK " * 1000, "{WEIGHT1E400}": "(a:1" + "0" * 400 + ")",
    "{PAREN1000}": "(" * 1000 + "a",
    "{ALT150}": "a long scene, " * 40 + "[" + "|".join("w%d" % i for i in range(150)) + "]",
    # inpainting masks (issue 18): 8x8 like {PNG}; RGBA ones for OpenAI
    "{BLACK}": b64(png(8, 8, b"\0" * (8 * 25))), "{WHITE}": b64(png(8, 8, (b"\0" + b"\xff" * 24) * 8)),
    "{RGBA_OPAQUE}": b64(rgba(8, 8, 255)), "{RGBA16}": b64(rgba(16, 16, 0)),
}
out = open(tmp + "/manifest", "w")
k = 0
for line in (l for cases in case_files for l in open(cases, encoding="utf-8")):
    line = line.rstrip("\n")
    if not line.strip() or line.startswith("#"): continue
    f = [x.strip() for x in line.split(" | ")]
    if len(f) != 8: sys.exit("bad case line: " + line)
    name, method, path, ctype, body, status, field, frag = f
    k += 1
    bodyfile = "-"
    if body == "@100M":
        bodyfile = tmp + "/big100m"
        with open(bodyfile, "wb") as g:
            g.write(b"prompt=")
            g.truncate(100 * 1024 * 1024)
    elif body or method in ("POST", "PUT"):
        for a, b in subs.items(): body = body.replace(a, b)
        data = body.encode("utf-8").replace(b"{FF}", b"\xff").replace(b"{NUL}", b"\0")
        bodyfile = "%s/body%d" % (tmp, k)
        open(bodyfile, "wb").write(data)
    ctype = {"form": "application/x-www-form-urlencoded;charset=utf-8", "json": "application/json"}.get(ctype, ctype)
    out.write("\t".join([name, method, path, ctype, bodyfile, status, field, frag]) + "\n")
PY

# Every case's answer goes to $TMP/resp.K; one python3 afterwards judges them
# all (one interpreter start instead of one per case: the same checks).
ncases=0
: >"$TMP/answers"
while IFS=$'\t' read -r name method path ctype bodyfile status field frag; do
  ncases=$((ncases + 1))
  args=(-s -o "$TMP/resp.$ncases" -w '%{http_code}' -X "$method")
  if [ "$ctype" = "-" ]; then args+=(-H 'Content-Type:'); else args+=(-H "Content-Type: $ctype"); fi
  [ "$bodyfile" != "-" ] && args+=(--data-binary @"$bodyfile")
  : >"$TMP/resp.$ncases"
  got=$(curl "${args[@]}" "$BASE$path" 2>/dev/null)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$got" "$TMP/resp.$ncases" "$field" "$frag" "$path" \
    >>"$TMP/answers"
done <"$TMP/manifest"
python3 - "$TMP/answers" <<'PY'
import json, sys

def verdict(resp, field, frag, path):
    """'ok', or what is wrong with the answer's body for this case."""
    try:
        j = json.load(open(resp, "rb"))
    except Exception:
        return "body is not JSON: %r" % open(resp, "rb").read()[:200]
    if not isinstance(j, dict): return "body is not an object"
    if path.startswith("/sdapi/"):
        d = j.get("detail")
        if isinstance(d, list) and d and isinstance(d[0], dict) and isinstance(d[0].get("loc"), list) and "msg" in d[0]:
            got_field, msg = (d[0]["loc"][-1] if len(d[0]["loc"]) > 1 else None), d[0]["msg"]
        elif isinstance(d, str):
            got_field, msg = None, d
        else:
            return "no A1111 'detail' (a string, or a list of {loc, msg})"
    elif path.startswith("/v1/"):
        e = j.get("error")
        if not isinstance(e, dict): return "no OpenAI 'error' object"
        for k in ("message", "type", "param", "code"):
            if k not in e: return "no 'error.%s' key" % k
        got_field, msg = e["param"], e["message"]
    else:
        if j.get("status") != "error": return "status is not 'error'"
        for k in ("code", "field", "message"):
            if k not in j: return "no '%s' key" % k
        got_field, msg = j["field"], j["message"]
    if field == "null" and got_field is not None: return "field %r, expected null" % got_field
    if field not in ("-", "null") and got_field != field: return "field %r, expected %r" % (got_field, field)
    if not isinstance(msg, str) or frag.lower() not in msg.lower(): return "message %r lacks %r" % (msg, frag)
    return "ok"

for line in open(sys.argv[1], encoding="utf-8", errors="surrogateescape"):
    name, status, got, resp, field, frag, path = line.rstrip("\n").split("\t")
    v = verdict(resp, field, frag, path)
    if got == status and v == "ok":
        print("ok - %s -> %s" % (name, status))
    else:
        print("FAIL - %s -> %s: got %s, %s" % (name, status, got, v))
    sys.stdout.flush()
PY
check "at least 40 cases ran" $([ "$ncases" -ge 40 ]; echo $?) "$ncases cases"

# r2mends: a dialect's errors say its names in the message too (dialect_name_field), not only in the field
printf 'hello, not a picture' >"$TMP/not_a_picture.txt"
st=$(curl -s -o "$TMP/oai_name.json" -w '%{http_code}' -F "image=@$TMP/not_a_picture.txt" -F prompt=winter "$BASE/v1/images/edits")
check "openai: an undecodable image's message says image, not init_image" \
  $([ "$st" = 400 ] && [ "$(json "$TMP/oai_name.json" 'j["error"]["param"]')" = image ] &&
    json "$TMP/oai_name.json" 'j["error"]["message"]' | grep -q '^image ' &&
    ! grep -q init_image "$TMP/oai_name.json"; echo $?) "status $st $(cat "$TMP/oai_name.json")"

st=$(curl -s -o "$TMP/h.json" -w '%{http_code}' "$BASE/health")
check "server still serving afterwards (/health 200)" $([ "$st" = 200 ] && [ "$(json "$TMP/h.json" 'j["status"]')" = ok ]; echo $?) "status $st"
st=$(curl -s -o "$TMP/g.json" -w '%{http_code}' -d 'prompt=still alive' -d width=32 -d height=32 -d num_inference_steps=2 "$BASE/txt2img")
check "server still generates afterwards" $([ "$st" = 200 ] && [ "$(json "$TMP/g.json" 'j["status"]')" = success ]; echo $?) "status $st $(head -c 200 "$TMP/g.json")"
bad=$(ls -A "$TMP/data/images" | grep -Ev '^[0-9a-f]{32}\.png$' | head -3)
check "no stray files left in the image folder" $([ -z "$bad" ]; echo $?) "$bad"
stop_server
check "clean exit on SIGTERM" $STOP_STATUS "status $STOP_STATUS"
