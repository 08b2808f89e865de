#!/usr/bin/env python3
"""tests/http/soak.py BASE-URL SERVER-PID N EVERY — sends N synchronous
txt2img requests (8x8, 1 step, seeds 1..N) over one keep-alive connection
and prints the server's VmRSS every EVERY jobs as "rss JOB KB", then
"result OK DISTINCT" (answers with status 200, distinct image URLs) and a
"# " line with the RSS trace."""
import http.client, json, sys, urllib.parse

base, pid, n, every = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
u = urllib.parse.urlsplit(base)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)

def rss():
    for line in open("/proc/%s/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1

ok, urls, trace = 0, set(), []
for i in range(1, n + 1):
    body = "prompt=soak&width=8&height=8&num_inference_steps=1&seed=%d" % i
    conn.request("POST", "/txt2img", body, {"Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    data = r.read()
    if r.status == 200:
        ok += 1
        urls.add(json.loads(data)["images"][0]["image_url"])
    if i % every == 0:
        kb = rss()
        trace.append(kb)
        print("rss %d %d" % (i, kb))
print("result %d %d" % (ok, len(urls)))
print("# RSS (kB) every %d jobs: %s" % (every, " ".join(map(str, trace))))
