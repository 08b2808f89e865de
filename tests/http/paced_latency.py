#!/usr/bin/env python3
"""tests/http/paced_latency.py URL COUNT INTERVAL_MS — sends COUNT GET
requests to URL on one keep-alive connection, one every INTERVAL_MS (the way
a health checker polls, not as fast as possible), and prints
"n ok p50 p99 max" (latencies in ms; ok = answers with status 200)."""
import http.client, sys, time, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
n, gap = int(sys.argv[2]), float(sys.argv[3]) / 1000
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
lat, ok = [], 0
t_next = time.monotonic()
for _ in range(n):
    t0 = time.monotonic()
    conn.request("GET", u.path)
    r = conn.getresponse()
    r.read()
    lat.append((time.monotonic() - t0) * 1000)
    ok += r.status == 200
    t_next += gap
    time.sleep(max(0.0, t_next - time.monotonic()))
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print("%d %d %.2f %.2f %.2f" % (n, ok, pick(0.5), pick(0.99), lat[-1]))
