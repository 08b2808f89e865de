#!/usr/bin/env python3
"""tests/http/transport_cases.py PORT — raw-socket cases of the HTTP transport
(issue 12 items 5 and 7), sent byte for byte to a running server; prints
"ok - " / "FAIL - " lines.  Two kinds of case:
  fixed     what sdserve answers itself (absolute-form targets, %00 in paths,
            conflicting Content-Length headers);
  known     what libmicrohttpd 0.9.75 answers before sdserve sees the request
            and no option or callback can change (docs/RELIABILITY.md, "HTTP
            transport"): these assert today's behaviour, so that a library
            upgrade that fixes one fails here with "changed" and the test and
            the document are updated together."""
import json, re, socket, sys, time

port = int(sys.argv[1])


def exchange(raw, wait=3.0):
    """sends raw, reads until the server closes or `wait` s of silence;
    returns (bytes, seconds, closed)"""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(raw)
    s.settimeout(wait)
    data, t0, closed = b"", time.time(), False
    try:
        while True:
            d = s.recv(65536)
            if not d:
                closed = True
                break
            data += d
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    s.close()
    return data, time.time() - t0, closed


def parse(data):
    """(status, headers dict, body) of the first answer in data"""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ")[1])
    except (IndexError, ValueError):
        status = 0
    hdr = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdr[k.strip().lower()] = v.strip()
    return status, hdr, body


def error_shape(body, field):
    try:
        j = json.loads(body)
    except ValueError:
        return "body is not JSON: %r" % body[:120]
    if j.get("status") != "error" or not {"code", "field", "message"} <= set(j):
        return "not the error shape: %r" % j
    if j["field"] != field:
        return "field %r, expected %r" % (j["field"], field)
    return "ok"


def check(name, cond, detail):
    print(("ok - %s" if cond else "FAIL - %s: " + detail.replace("%", "%%")) % name)


def req(target, extra="", method="GET", body=b"", close=True):
    """a request; close=False leaves the connection to the server (keep-alive)"""
    conn = "Connection: close\r\n" if close else ""
    return ("%s %s HTTP/1.1\r\nHost: x\r\n%s%s\r\n" % (method, target, conn, extra)).encode() + body


NAME = "0123456789abcdef0123456789abcdef"

# ---- fixed: absolute-form targets (RFC 9112 §3.2.2) -------------------------
for target, want in (("http://127.0.0.1/health", 200), ("HTTP://example.com:80/health", 200),
                     ("http://example.com/openapi.json", 200), ("http://example.com", 200),
                     ("http://example.com/nothing", 404)):
    d, _, _ = exchange(req(target))
    st, _, body = parse(d)
    check("absolute-form GET %s -> %d" % (target, want), st == want, "got %d %r" % (st, body[:120]))
d, _, _ = exchange(req("http://example.com/txt2img", "Content-Type: application/json\r\nContent-Length: 2\r\n",
                       "POST", b"{}"))
st, _, body = parse(d)
check("absolute-form POST http://example.com/txt2img is routed (400 prompt)",
      st == 400 and error_shape(body, "prompt") == "ok", "got %d %r" % (st, body[:160]))

# ---- fixed: %00 in a path is 404, not the path before it ---------------------
for target in ("/health%00", "/health%00junk", "/images/%s%%00.png" % NAME, "/openapi.json%00",
               "/jobs/%s%%00" % NAME, "http://example.com/health%00"):
    d, _, _ = exchange(req(target))
    st, _, body = parse(d)
    v = error_shape(body, None)
    check("GET %s -> 404 in the error shape" % target, st == 404 and v == "ok" and b"%00" in body,
          "got %d, %s" % (st, v))
d, _, _ = exchange(req("/txt2img%00", "Content-Type: application/json\r\nContent-Length: 2\r\n", "POST", b"{}"))
st, _, body = parse(d)
check("POST /txt2img%00 -> 404", st == 404 and error_shape(body, None) == "ok", "got %d %r" % (st, body[:120]))
d, _, _ = exchange(req("/health?probe=%00"))
check("a %00 in the query (ignored) does not change the path: /health?probe=%00 -> 200", parse(d)[0] == 200,
      "got %d" % parse(d)[0])

# ---- fixed: two different Content-Length headers -----------------------------
for cls, body in ((("5", "2"), b"{}"), (("2", "3"), b"{}")):
    extra = "Content-Type: application/json\r\n" + "".join("Content-Length: %s\r\n" % v for v in cls)
    d, t, closed = exchange(req("/txt2img", extra, "POST", body, close=False))
    st, _, b = parse(d)
    v = error_shape(b, "Content-Length")
    check("Content-Length %s and %s -> 400 naming Content-Length at once, connection closed" % cls,
          st == 400 and v == "ok" and closed and t < 2.5, "got %d, %s, closed %s, %.1f s" % (st, v, closed, t))
d, _, _ = exchange(req("/txt2img", "Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 2\r\n",
                       "POST", b"{}"))
st, _, b = parse(d)
check("Content-Length 2 twice (the same value) is one length: 400 prompt", st == 400 and error_shape(b, "prompt") == "ok",
      "got %d %r" % (st, b[:120]))

# ---- fixed: a refusal decided from the headers waits for the body ------------
# (answered at once, the connection was closed with the body unread: a client
# still sending saw a reset, not the answer); the connection then stays open.
def refused_after_body(name, target, headers, size, want):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    err, data = None, b""
    try:
        s.sendall(req(target, headers + "Content-Length: %d\r\n" % size, "POST", close=False))
        s.sendall(b"x" * size)
        s.sendall(req("/health"))   # the next request on the same connection
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError as e:
        err = repr(e)
    s.close()
    st = parse(data)[0]
    statuses = [int(x) for x in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
    second = statuses[1] if len(statuses) > 1 else 0
    check("%s with a %d MiB body sent in full -> %d, then the connection serves the next request" % (name, size >> 20, want),
          err is None and st == want and second == 200, "error %s, statuses %d %d" % (err, st, second))

refused_after_body("POST /txt2img as text/plain", "/txt2img", "Content-Type: text/plain\r\n", 4 << 20, 415)
refused_after_body("POST /v1/images/variations (no such path)", "/v1/images/variations",
                   "Content-Type: multipart/form-data; boundary=XyZ\r\n", 4 << 20, 404)
# over --max-body-mb (20 MiB): 413, also after the body (up to 4 times the limit)
refused_after_body("POST /v1/images/edits over --max-body-mb", "/v1/images/edits",
                   "Content-Type: multipart/form-data; boundary=XyZ\r\n", 21 << 20, 413)
d, t, closed = exchange(req("/txt2img", "Content-Type: text/plain\r\nContent-Length: %d\r\nExpect: 100-continue\r\n"
                            % (4 << 20), "POST", close=False), wait=1.0)
check("the same with Expect: 100-continue and no body sent: 415 at once (the client waits for it)",
      parse(d)[0] == 415 and b"100 Continue" not in d, "got %r" % d[:80])

def refused_at_once(name, headers, body, field):
    """a POST /txt2img with these headers: 400 naming `field`, closed at once"""
    d, t, closed = exchange(req("/txt2img", headers, "POST", body, close=False))
    st, _, b = parse(d)
    v = error_shape(b, field)
    check("%s -> 400 naming %s, connection closed" % (name, field),
          st == 400 and v == "ok" and closed and t < 2.5, "got %d, %s, closed %s, %.1f s" % (st, v, closed, t))


for te in ("chunked", "gzip, chunked"):
    refused_at_once("Content-Length beside Transfer-Encoding: %s" % te, "Content-Type: application/json\r\n"
                    "Content-Length: 40\r\nTransfer-Encoding: %s\r\n" % te, b"2\r\n{}\r\n0\r\n\r\n", "Content-Length")

# a Transfer-Encoding other than chunked: no way to tell where the body ends
# (gzip alone) or a coding we cannot undo (before chunked); libmicrohttpd
# waited for the idle timeout on `gzip`
for te in ("gzip", "gzip, chunked", "identity", "chunked, gzip", "chunked "):
    refused_at_once("Transfer-Encoding: %r, at once" % te, "Content-Type: application/x-www-form-urlencoded\r\n"
                    "Transfer-Encoding: %s\r\n" % te, b"prompt=x", "Transfer-Encoding")
d, t, closed = exchange(req("/health", "Transfer-Encoding: CHUNKED\r\n", "GET", b"0\r\n\r\n"))
st, _, b = parse(d)
check("Transfer-Encoding: CHUNKED (any case) is chunked: GET /health 200", st == 200, "got %d %r" % (st, b[:200]))

# ---- known: libmicrohttpd 0.9.75's own answers -------------------------------
CHANGED = " (changed: a libmicrohttpd upgrade? update docs/RELIABILITY.md and this case)"


def known(name, raw, status, doubled):
    """libmicrohttpd answers `status` with an HTML body, its status line and
    headers twice when `doubled`"""
    d, _, _ = exchange(raw)
    st, hdr, body = parse(d)
    twice = d.count(b"HTTP/1.1 %d" % status) == 2
    html = b"<html>" in d
    check("known libmicrohttpd 0.9.75: %s -> %d, HTML body%s" % (name, status, ", header block twice" if doubled else ""),
          st == status and html and twice == doubled, "got %r%s" % (d[:200], CHANGED))


post = "POST /txt2img HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
for v in ("-1", "abc"):
    known("Content-Length: %s" % v, (post + "Content-Length: %s\r\n\r\n{}" % v).encode(), 400, True)
known("Content-Length: 10^23", (post + "Content-Length: 1%s\r\n\r\n{}" % ("0" * 23)).encode(), 413, True)
known("a header line without a colon", b"GET /health HTTP/1.1\r\nHost x\r\n\r\n", 400, False)
known("a 300 kB target", b"GET /" + b"a" * 300000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, False)
known("a 300 kB header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 300000 + b"\r\n\r\n", 431, False)
known("HTTP/2.5", b"GET /health HTTP/2.5\r\nHost: x\r\n\r\n", 505, False)
# a 1-character multipart boundary (RFC 2046 allows 1 to 70): libmicrohttpd's
# post processor refuses it, so sdserve answers its own 400 naming Content-Type
mp = b'--a\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n--a--\r\n'
d, _, _ = exchange(req("/txt2img", "Content-Type: multipart/form-data; boundary=a\r\nContent-Length: %d\r\n" % len(mp),
                       "POST", mp))
st, _, b = parse(d)
check("known libmicrohttpd 0.9.75: a 1-character multipart boundary is refused (400 naming Content-Type)",
      st == 400 and error_shape(b, "Content-Type") == "ok" and b"boundary" in b, "got %d %r%s" % (st, b[:160], CHANGED))
# the same with a 2-character boundary is read (an unknown field stops it at validation)
mp2 = b'--ab\r\nContent-Disposition: form-data; name="widht"\r\n\r\n64\r\n--ab--\r\n'
d, _, _ = exchange(req("/txt2img", "Content-Type: multipart/form-data; boundary=ab\r\nContent-Length: %d\r\n" % len(mp2),
                       "POST", mp2))
st, _, b = parse(d)
check("a 2-character multipart boundary is read (400 naming the unknown field)",
      st == 400 and error_shape(b, "widht") == "ok", "got %d %r" % (st, b[:160]))
