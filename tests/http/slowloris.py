#!/usr/bin/env python3
"""tests/http/slowloris.py PORT SLOW IDLE SECONDS DEADLINE — slow clients
against the server on 127.0.0.1:PORT (header deadline DEADLINE s) for SECONDS:
  SLOW connections from 127.0.0.2 send a request line, then one header byte
  every 0.25 s (never finishing their headers, never idle long enough for an
  inactivity timeout); IDLE connections from 127.0.0.3 send nothing; one
  keep-alive connection from 127.0.0.4 makes a request and then idles;
  meanwhile a normal client on 127.0.0.1 makes 5 requests (fresh
  connections) to GET /health.
Prints "key value" lines: slow_refused (closed by the server before 3/4 of
the deadline: over the per-address limit), slow_cut (closed later), slow_open (still open
at the end), slow_first_cut (seconds), idle_cut, idle_open, keepalive_cut,
normal_ok (200 answers of 5), normal_during (those made while slow
connections were held)."""
import select, socket, sys, time

port, n_slow, n_idle, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
early = 0.75 * float(sys.argv[5])

def connect(src):
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s

t0 = time.monotonic()
now = lambda: time.monotonic() - t0
slow = [connect("127.0.0.2") for _ in range(n_slow)]
idle = [connect("127.0.0.3") for _ in range(n_idle)]
ka = connect("127.0.0.4")
ka.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
closed = {}

def gone(s):
    """True when the server closed s (EOF or reset); reads and drops anything else."""
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        return s.recv(65536) == b""
    except OSError:
        return True

for s in slow:
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    except OSError:
        closed[s] = now()
normal_ok = normal_during = 0
asked = 0
while now() < secs:
    for s in slow:
        if s in closed:
            continue
        try:
            s.send(b"X")
        except OSError:
            closed[s] = now()
    for s in slow + idle + [ka]:
        if s not in closed and gone(s):
            closed[s] = now()
    if asked < 5 and now() > 0.3 + 0.2 * asked:
        asked += 1
        held = sum(1 for s in slow if s not in closed)
        try:
            c = connect("127.0.0.1")
            c.settimeout(5)
            c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            d = b""
            while True:
                x = c.recv(65536)
                if not x:
                    break
                d += x
            c.close()
            if d.startswith(b"HTTP/1.1 200"):
                normal_ok += 1
                if held > 0:
                    normal_during += 1
        except OSError:
            pass
    time.sleep(0.25)

cut = [t for s, t in closed.items() if s in slow]
print("slow_refused", sum(1 for t in cut if t < early))
print("slow_cut", sum(1 for t in cut if t >= early))
print("slow_open", n_slow - len(cut))
print("slow_first_cut %.2f" % min([t for t in cut if t >= early] or [-1]))
print("idle_cut", sum(1 for s in idle if s in closed))
print("idle_open", sum(1 for s in idle if s not in closed))
print("keepalive_cut", int(ka in closed))
print("normal_ok", normal_ok)
print("normal_during", normal_during)
