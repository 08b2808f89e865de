#!/usr/bin/env python3
"""tests/http/clients_replay.py — replays what real clients send (the cases in
tests/http/clients/<client>.json, each step citing the client's source file
and commit) against a running sdserve, and checks every field the client
reads in the answer.  Used by tests/http/test_clients_replay.sh; stdlib only.

  clients_replay.py --keyed URL --open URL --key KEY CASE.json...
  clients_replay.py --selftest   (the runner against a fake server whose
                                  wrong answers each FAIL naming the field)

--keyed is a server started with the API key KEY, --open one without keys;
a step runs on the one its "server" names ("keyed" unless it says "open").
Prints one "ok - <client>: <step>" or "FAIL - <client>: <step>: <why>" line
per step; the why names the JSON path that was missing or wrong.

Templates in header values and string body values:
  ${KEY} / ${WRONG_KEY}   the server's API key / a key it does not have
  b64(TEXT)               TEXT base64-encoded (for "Basic b64(user:${KEY})")
  ${NAME}                 a value saved by an earlier step ("save")
A step's "body_from": NAME starts its JSON body from a saved object (a client
that posts back the whole /options dict), "body" is merged over it.

Read types (expect.reads[].type): int, number, string, bool, array, object,
any, base64-png (plain base64, no data: prefix, a PNG that decodes, of
"size" [w, h] when given), url-png (a URL whose GET answers such a PNG),
json-string (a string that parses as JSON; "then" checks paths inside it).
"eq" asserts the exact value, "min"/"len" an array's length.  A path is
dotted keys and [i] indices; [*] applies the rest of the path to every
element.
"""
import argparse
import base64
import json
import re
import struct
import sys
import urllib.error
import urllib.request
import zlib

KEY_WRONG = "wrong-key-0000000000000000"


class Missing(Exception):
    """a path that is not in the answer"""


def expand(text, ctx):
    """${KEY}, ${WRONG_KEY}, ${saved} then b64(...) in a string"""
    def var(m):
        name = m.group(1)
        if name not in ctx:
            raise KeyError("template ${%s}: the earlier step that saves %s failed" % (name, name))
        v = ctx[name]
        return v if isinstance(v, str) else json.dumps(v)
    text = re.sub(r"\$\{(\w+)\}", var, text)
    return re.sub(r"b64\(([^)]*)\)", lambda m: base64.b64encode(m.group(1).encode()).decode(), text)


def expand_tree(v, ctx):
    if isinstance(v, str):
        whole = re.fullmatch(r"\$\{(\w+)\}", v)
        if whole and whole.group(1) in ctx:  # keep the saved value's own type
            return ctx[whole.group(1)]
        return expand(v, ctx)
    if isinstance(v, list):
        return [expand_tree(x, ctx) for x in v]
    if isinstance(v, dict):
        return {k: expand_tree(x, ctx) for k, x in v.items()}
    return v


def split_path(path):
    """"a.b[0][*].c" -> ["a", "b", 0, "*", "c"]"""
    out = []
    if path == "$":
        return out
    for part in re.findall(r"[^.\[\]]+|\[[^\]]*\]", path):
        if part.startswith("["):
            inner = part[1:-1]
            out.append("*" if inner == "*" else int(inner))
        else:
            out.append(part)
    return out


def lookup(obj, parts, shown=""):
    """[(path, value)] for every value the path reaches; raises Missing"""
    if not parts:
        return [(shown or "$", obj)]
    head, rest = parts[0], parts[1:]
    if head == "*":
        if not isinstance(obj, list):
            raise Missing("%s is %s, not an array" % (shown or "$", type(obj).__name__))
        out = []
        for i, x in enumerate(obj):
            out += lookup(x, rest, "%s[%d]" % (shown, i))
        return out
    if isinstance(head, int):
        if not isinstance(obj, list) or head >= len(obj):
            raise Missing("%s[%d] is missing (%s)" % (shown, head, describe(obj)))
        return lookup(obj[head], rest, "%s[%d]" % (shown, head))
    if not isinstance(obj, dict) or head not in obj:
        where = ("%s.%s" % (shown, head)) if shown else head
        raise Missing("%s is missing (%s)" % (where, describe(obj)))
    return lookup(obj[head], rest, ("%s.%s" % (shown, head)) if shown else head)


def describe(obj):
    if isinstance(obj, dict):
        return "keys: " + ", ".join(sorted(obj)[:12])
    if isinstance(obj, list):
        return "array of %d" % len(obj)
    return "a %s" % type(obj).__name__


def png_check(raw, size):
    """None when raw is a PNG that decodes (of size [w, h] when given), else why"""
    if raw[:8] != b"\x89PNG\r\n\x1a\n":
        return "not a PNG (starts %r)" % raw[:8]
    pos, ihdr, idat = 8, None, b""
    while pos + 8 <= len(raw):
        n, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        data = raw[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat += data
        elif kind == b"IEND":
            break
        pos += 12 + n
    if ihdr is None:
        return "PNG without IHDR"
    w, h, depth, color = ihdr[:4]
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color)
    if channels is None or depth != 8:
        return "PNG of depth %d colour type %d" % (depth, color)
    try:
        pixels = zlib.decompress(idat)
    except zlib.error as e:
        return "PNG pixels do not decompress: %s" % e
    if len(pixels) != h * (1 + w * channels):
        return "PNG pixel data is %d bytes, %dx%d needs %d" % (len(pixels), w, h, h * (1 + w * channels))
    if size and [w, h] != list(size):
        return "PNG is %dx%d, the client asked for %dx%d" % (w, h, size[0], size[1])
    return None


def fetch(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=300) as r:
        return r.read()


def check_value(path, v, read, ctx):
    """None when v has the shape the read needs, else why"""
    t = read.get("type", "any")
    simple = {"int": int, "number": (int, float), "string": str, "bool": bool,
              "array": list, "object": dict}
    if t in simple:
        ok = isinstance(v, simple[t]) and not (t in ("int", "number") and isinstance(v, bool))
        if not ok:
            return "%s is %s, the client needs a %s" % (path, json.dumps(v)[:60], t)
    elif t == "base64-png":
        if not isinstance(v, str):
            return "%s is %s, not a base64 string" % (path, type(v).__name__)
        if v.startswith("data:"):
            return "%s has a data: prefix; the client wants plain base64" % path
        try:
            raw = base64.b64decode(v, validate=True)
        except ValueError as e:
            return "%s is not base64: %s" % (path, e)
        why = png_check(raw, read.get("size"))
        if why:
            return "%s: %s" % (path, why)
    elif t == "url-png":
        if not isinstance(v, str) or not v.startswith(("http://", "https://", "/")):
            return "%s is %s, not a URL" % (path, json.dumps(v)[:60])
        url = v if not v.startswith("/") else ctx["_base"] + v
        try:
            why = png_check(fetch(url), read.get("size"))
        except (urllib.error.URLError, OSError) as e:
            return "%s: GET %s failed: %s" % (path, url, e)
        if why:
            return "%s: %s" % (path, why)
    elif t == "json-string":
        if not isinstance(v, str):
            return "%s is %s; the client parses it as a JSON string" % (path, type(v).__name__)
        try:
            inner = json.loads(v)
        except ValueError as e:
            return "%s does not parse as JSON: %s" % (path, e)
        for sub in read.get("then", []):
            why = check_read(inner, sub, ctx, prefix=path + "→")
            if why:
                return why
    if "eq" in read and v != expand_tree(read["eq"], ctx):
        return "%s is %s, the client waits for %s" % (path, json.dumps(v), json.dumps(expand_tree(read["eq"], ctx)))
    if isinstance(v, list):
        if "min" in read and len(v) < read["min"]:
            return "%s has %d entries, the client needs at least %d" % (path, len(v), read["min"])
        if "len" in read and len(v) != read["len"]:
            return "%s has %d entries, the client asked for %d" % (path, len(v), read["len"])
    return None


def check_read(obj, read, ctx, prefix=""):
    try:
        found = lookup(obj, split_path(read["path"]))
    except Missing as e:
        return prefix + str(e)
    for path, v in found:
        why = check_value(prefix + path, v, read, ctx)
        if why:
            return why
    return None


def run_step(step, ctx, bases):
    server = step.get("server", "keyed")
    base = bases[server]
    ctx["_base"] = base
    headers = {k: expand(v, ctx) for k, v in step.get("headers", {}).items()}
    body = None
    if "body_from" in step or "body" in step:
        obj = dict(ctx[step["body_from"]]) if "body_from" in step else {}
        obj.update(expand_tree(step.get("body", {}), ctx))
        body = json.dumps(obj).encode()
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(base + step["path"], data=body, headers=headers, method=step["method"])
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    exp = step["expect"]
    if status != exp["status"]:
        return "%s %s answered %d, expected %d: %s" % (step["method"], step["path"], status,
                                                         exp["status"], raw[:200].decode("utf-8", "replace"))
    if not exp.get("reads") and "save" not in step:
        return None
    try:
        answer = json.loads(raw)
    except ValueError:
        return "the answer is not JSON: %r" % raw[:120]
    for read in exp.get("reads", []):
        why = check_read(answer, read, ctx)
        if why:
            return why
    for name, path in step.get("save", {}).items():
        try:
            ctx[name] = answer if path == "$" else lookup(answer, split_path(path))[0][1]
        except Missing as e:
            return "save %s: %s" % (name, e)
    return None


def tiny_png(w, h):
    """a grey w x h RGB PNG (for the self-test's fake answers)"""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + b"\x80" * (3 * w) for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def selftest():
    """the runner against a fake server giving wrong answers: each failure
    must name the field that is wrong; one "ok - replay runner: ..." a case"""
    import http.server
    import threading
    good = base64.b64encode(tiny_png(64, 64)).decode()
    info = json.dumps({"seed": 7, "width": 64, "height": 64, "infotexts": ["a, Steps: 2"]})
    answers = {
        "/good": {"images": [good], "info": info},
        "/prefix": {"images": ["data:image/png;base64," + good], "info": info},
        "/small": {"images": [base64.b64encode(tiny_png(8, 8)).decode()], "info": info},
        "/info-object": {"images": [good], "info": {"seed": 7}},
        "/info-noseed": {"images": [good], "info": json.dumps({"width": 64})},
        "/progress": {"progress": 0, "state": {"job_no": 0}},
        "/busy": {"progress": 0.5, "state": {"job_count": 1}},
        "/samplers": [{"name": "Euler"}, {"label": "DDIM"}],
    }

    class Fake(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(answers.get(self.path, {})).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % srv.server_address[1]
    img = [{"path": "images[0]", "type": "base64-png", "size": [64, 64]},
           {"path": "info", "type": "json-string", "then": [{"path": "seed", "type": "int"}]}]
    prog = [{"path": "progress", "type": "number", "eq": 0}, {"path": "state.job_count", "type": "int", "eq": 0}]
    cases = [("/good", img, None), ("/prefix", img, "images[0] has a data: prefix"),
             ("/small", img, "images[0]: PNG is 8x8, the client asked for 64x64"),
             ("/info-object", img, "info is dict; the client parses it as a JSON string"),
             ("/info-noseed", img, "info→seed is missing"),
             ("/progress", prog, "state.job_count is missing"),
             ("/busy", prog, "progress is 0.5, the client waits for 0"),
             ("/samplers", [{"path": "[*].name", "type": "string"}], "[1].name is missing")]
    failed = 0
    for path, reads, want in cases:
        step = {"method": "GET", "path": path, "expect": {"status": 200, "reads": reads}}
        why = run_step(step, {}, {"keyed": base})
        good_why = (why is None) if want is None else (why is not None and why.startswith(want))
        label = "replay runner: %s %s" % (path, "passes" if want is None else "fails naming: " + want)
        print(("ok - %s" if good_why else "FAIL - %s: got %r") % ((label,) if good_why else (label, why)))
        failed += not good_why
    srv.shutdown()
    return 1 if failed else 0


def main():
    if sys.argv[1:] == ["--selftest"]:
        return selftest()
    ap = argparse.ArgumentParser()
    ap.add_argument("--keyed", required=True)
    ap.add_argument("--open", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("cases", nargs="+")
    a = ap.parse_args()
    bases = {"keyed": a.keyed, "open": a.open}
    failed = 0
    for path in a.cases:
        case = json.load(open(path))
        ctx = {"KEY": a.key, "WRONG_KEY": KEY_WRONG}
        for step in case["steps"]:
            name = "%s: %s" % (case["client"], step["name"])
            try:
                why = run_step(step, ctx, bases)
            except (urllib.error.URLError, OSError, KeyError) as e:
                why = "request failed: %s" % e
            if why:
                failed += 1
                print("FAIL - %s: %s" % (name, why))
            else:
                print("ok - %s" % name)
            sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
