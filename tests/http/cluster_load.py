#!/usr/bin/env python3
"""tests/http/cluster_load.py — a client load for the cluster test
(tests/http/test_cluster.sh) and the throughput benchmark
(bench/cluster_throughput.sh); standard library only.

  cluster_load.py mixed BASE N PARALLEL OUT.json
      N jobs through BASE, even ones synchronous (POST /txt2img), odd ones
      async (POST /jobs/txt2img, then GET /jobs/{id} until it ends), each a
      seed of its own, PARALLEL at a time; writes one record per job:
      {"i", "kind", "status", "state", "id", "images": [url...], "error"}.
  cluster_load.py batch BASE N WIDTH HEIGHT STEPS
      N async jobs submitted at once (one thread each), then each polled in
      turn until it ends; prints "SECONDS SUCCEEDED" (from the first submit
      to the last job seen ended, within 50 ms).
  cluster_load.py latency BASE N WIDTH HEIGHT STEPS
      N synchronous jobs one after the other; prints the median and the
      mean milliseconds of one request.
"""
import concurrent.futures as cf
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

FINAL = ("succeeded", "failed", "cancelled")


def call(method, url, form=None, timeout=300):
    """(status, parsed JSON or None) of one request."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        body, status = e.read(), e.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def poll(base, job_id, limit=300.0):
    """The job's final status JSON (or the last one seen after `limit` s)."""
    end, j = time.time() + limit, None
    while time.time() < end:
        _, j = call("GET", "%s/jobs/%s" % (base, job_id))
        if j and j.get("state") in FINAL:
            return j
        time.sleep(0.05)
    return j or {}


def urls(j):
    return [im.get("image_url") for im in (j or {}).get("images") or []]


def one_mixed(base, i):
    form = {"prompt": "cluster job %d" % i, "seed": 1000 + i, "width": 32 + 32 * (i % 2),
            "height": 64, "num_inference_steps": 1 + i % 4}
    rec = {"i": i, "kind": "sync" if i % 2 == 0 else "async", "id": None, "error": None}
    if rec["kind"] == "sync":
        status, j = call("POST", base + "/txt2img", form)
        rec.update(status=status, state=(j or {}).get("status"), images=urls(j))
    else:
        status, j = call("POST", base + "/jobs/txt2img", form)
        rec["status"], rec["id"] = status, (j or {}).get("id")
        j = poll(base, rec["id"]) if rec["id"] else j
        rec.update(state=(j or {}).get("state"), images=urls(j))
    if rec["state"] not in ("success", "succeeded"):
        rec["error"] = j
    return rec


def mixed(base, n, parallel, out):
    with cf.ThreadPoolExecutor(int(parallel)) as ex:
        recs = list(ex.map(lambda i: one_mixed(base, i), range(int(n))))
    with open(out, "w") as f:
        json.dump(recs, f)


def batch(base, n, w, h, steps):
    n = int(n)
    form = lambda i: {"prompt": "batch %d" % i, "seed": i, "width": w, "height": h, "num_inference_steps": steps}
    t0 = time.time()
    with cf.ThreadPoolExecutor(n) as ex:
        ids = list(ex.map(lambda i: (call("POST", base + "/jobs/txt2img", form(i))[1] or {}).get("id"), range(n)))
    ok = 0
    for job_id in ids:  # in submission order: about one request per 50 ms
        ok += bool(job_id) and poll(base, job_id, 1800).get("state") == "succeeded"
    print("%.3f %d" % (time.time() - t0, ok))


def latency(base, n, w, h, steps):
    ms = []
    for i in range(int(n)):
        form = {"prompt": "latency %d" % i, "seed": i, "width": w, "height": h, "num_inference_steps": steps}
        t0 = time.time()
        status, _ = call("POST", base + "/txt2img", form)
        ms.append((time.time() - t0) * 1000 if status == 200 else float("inf"))
    ms.sort()
    print("%.1f %.1f" % (ms[len(ms) // 2], sum(ms) / len(ms)))


if __name__ == "__main__":
    {"mixed": mixed, "batch": batch, "latency": latency}[sys.argv[1]](*sys.argv[2:])
