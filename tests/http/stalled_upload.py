#!/usr/bin/env python3
"""tests/http/stalled_upload.py PORT SERVER-PID N MIB KIND — the stalled-upload
attack: N connections to POST /txt2img, each declaring a body of MIB MiB
(KIND form: application/x-www-form-urlencoded; multipart: one
multipart/form-data field), sending all of it but the last KiB, then
stalling.  Prints:
  rss_before KB / rss_stalled KB   the server's VmRSS before, and while every
                                   upload is stalled
  health_during STATUS             GET /health while they are held
  answered N, status_S N           connections answered early, by status
  buffered BYTES LIMIT             GET /metrics' request-body gauges once they
                                   have settled (every byte sent and read)
  newcomer STATUS RETRY FIELD      what one more upload gets at once, before
                                   sending its body, while they are held, when
                                   it declares one byte more than the cap
                                   leaves (status, Retry-After, the error
                                   body's field; - when absent)
  released BYTES                   the buffered gauge once the stalled
                                   connections are closed
  after STATUS                     a whole body of the same size with a
                                   too-long prompt, once the stalled
                                   connections are closed: 400 when their bytes
                                   were released, 503 when not."""
import http.client, json, select, socket, sys, time

port, pid, n, mib, kind = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
size = mib << 20
if kind == "multipart":
    ctype = "multipart/form-data; boundary=B0undary"
    head = b'--B0undary\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n'
    tail = b"\r\n--B0undary--\r\n"
else:
    ctype = "application/x-www-form-urlencoded"
    head, tail = b"prompt=", b""


def rss():
    for line in open("/proc/%s/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def connect(length=size):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(("POST /txt2img HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
               % (ctype, length)).encode())
    return s


def gauges():
    """(buffered, limit) from GET /metrics; (-1, -1) when unreadable"""
    try:
        h = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        h.request("GET", "/metrics")
        text = h.getresponse().read().decode()
        h.close()
        v = dict(l.split(" ", 1) for l in text.splitlines() if l.startswith("sdserve_request_body_bytes_"))
        return int(v["sdserve_request_body_bytes_buffered"]), int(v["sdserve_request_body_bytes_limit"])
    except Exception:
        return -1, -1


def settled():
    """the gauges once the server has read what was sent: the same twice,
    0.3 s apart (at most 30 s)"""
    last = gauges()
    for _ in range(100):
        time.sleep(0.3)
        now = gauges()
        if now == last:
            break
        last = now
    return last


def read_early(socks, answers, wait):
    r, _, _ = select.select([s for i, s in enumerate(socks) if i not in answers], [], [], wait)
    for s in r:
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        answers[socks.index(s)] = data.decode("latin-1") if data else "closed"


def stall_all():
    """opens the N uploads and sends each all but its last KiB, round-robin"""
    socks = [connect() for _ in range(n)]
    for s in socks:
        s.setblocking(False)
    answers, sent, todo = {}, [0] * n, size - 1024
    body = head + b"a" * (todo - len(head))
    while not all(i in answers or sent[i] >= todo for i in range(n)):
        moved = False
        for i, s in enumerate(socks):
            if i in answers or sent[i] >= todo:
                continue
            try:
                k = s.send(body[sent[i]:sent[i] + (1 << 20)])
            except (BlockingIOError, InterruptedError):
                k = 0
            except OSError:
                answers[i] = "reset"
                continue
            sent[i] += k
            moved = moved or k > 0
        read_early(socks, answers, 0 if moved else 0.05)
    time.sleep(1.0)
    read_early(socks, answers, 0.5)
    return socks, answers


def newcomer(length):
    s = connect(length)
    s.settimeout(3)
    data = b""
    try:
        while not (b"\r\n\r\n" in data and data.rstrip().endswith(b"}")):
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError:
        pass
    s.close()
    text = data.decode("latin-1")
    if not text.startswith("HTTP/"):
        return "none - -"
    hdr, _, body = text.partition("\r\n\r\n")
    ra = "-"
    for line in hdr.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "retry-after":
            ra = v.strip()
    try:
        field = json.loads(body)["field"]
        field = "null" if field is None else field
    except Exception:
        field = "-"
    return "%s %s %s" % (hdr.split(" ")[1], ra, field)


def after():
    body = head + b"a" * (size - len(head) - len(tail)) + tail
    h = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h.request("POST", "/txt2img", body, {"Content-Type": ctype})
    st = h.getresponse().status
    h.close()
    return st


before = rss()
socks, answers = stall_all()
stalled = rss()
try:
    h = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h.request("GET", "/health")
    health = h.getresponse().status
except Exception:
    health = "error"
print("rss_before", before)
print("rss_stalled", stalled)
print("health_during", health)
print("answered", len(answers))
counts = {}
for a in answers.values():
    st = a.split(" ", 2)[1] if a.startswith("HTTP/") else a
    counts[st] = counts.get(st, 0) + 1
for st, c in sorted(counts.items()):
    print("status_%s" % st, c)
buffered, limit = settled()
print("buffered", buffered, limit)
print("newcomer", newcomer(limit - buffered + 1))
for s in socks:
    s.close()
st = None
for _ in range(30):   # the server notices the closed connections within moments
    st = after()
    if st != 503:
        break
    time.sleep(0.2)
print("after", st)
print("released", gauges()[0])
