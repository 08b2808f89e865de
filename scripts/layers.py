#!/usr/bin/env python3
"""layers.py — the real include graph of src/, by layer, against the rule.

A layer is a folder of src/ (the engine's sub-folders count as layers of
their own; src/engine/*.c|h is "engine", src/main.c is "main").  Every
`#include "..."` that resolves to a file in another layer is an edge.
ALLOWED says which layers each layer may include; docs/ARCHITECTURE.md
shows the graph this script prints between its "layers" markers.

  scripts/layers.py            print the graph (markdown) to stdout
  scripts/layers.py --check    "ok - " / "FAIL - " lines (tests/unit/test_layers.sh):
                               every edge allowed, every layer known, and the
                               block in docs/ARCHITECTURE.md equal to the graph
"""
import collections
import os
import re
import sys

# Who may include whom (besides itself).  The engine's public face is one
# header, engine/sd.h: outside src/engine only it may be included (the
# tools/tests exception is tests/unit/test_engine_headers.sh's business).
ALLOWED = {
    "base": [],
    "engine/ops": ["base"],
    "engine/loader": ["base", "engine/ops"],
    "engine/tokenizer": ["base"],
    "engine/models": ["base", "engine/ops", "engine/loader"],
    "engine/samplers": ["base", "engine"],
    "engine/prompt": ["base", "engine", "engine/tokenizer", "engine/models", "engine/loader"],
    "engine/lora": ["base", "engine", "engine/loader", "engine/ops"],
    "engine": ["base", "engine/ops", "engine/loader", "engine/tokenizer", "engine/models",
               "engine/samplers", "engine/prompt", "engine/lora"],
    "image": ["base"],
    "storage": ["base"],
    "jobs": ["base", "engine", "image", "storage"],
    "http": ["base", "engine", "image", "storage", "jobs"],
    "cli": ["base", "engine", "image", "storage", "jobs", "http",
            # the tools among the commands (bench, make-model): test_engine_headers.sh
            "engine/ops", "engine/loader", "engine/models"],
    "main": ["base", "engine", "cli"],
}

ROLE = {
    "base": "errors, the allocation seam, settings, sha256, Python's float() grammar (pyfloat.c), a folder's sorted names (dirnames.c), a file's or folder's state, to notice changes (filestate.c), PIL's resampling: bilinear, bicubic, Lanczos (resample.c): depends on nothing",
    "engine/ops": "the only code that knows oneDNN",
    "engine/loader": "safetensors, diffusers folders, LDM names, the family",
    "engine/tokenizer": "CLIP BPE",
    "engine/models": "text encoder, UNet, VAE",
    "engine/samplers": "schedules, samplers, Philox",
    "engine/prompt": "A1111 prompt syntax",
    "engine/lora": "LoRA files: names, checks, merge; applied per request through the weight seam",
    "engine": "sd.h (the public header) and the pipeline",
    "image": "codecs, base64, EXIF, A1111 metadata",
    "storage": "the storage vtable: local folder, S3",
    "jobs": "the jobs interface, the in-process queue, one generation",
    "http": "transport, route table, bodies, dialects",
    "cli": "the commands: serve, generate, bench, make-model",
    "main": "main.c: picks the command",
}

INCLUDE = re.compile(r'\s*#\s*include\s+"([^"]+)"')


def layer_of(path):
    parts = path.split(os.sep)   # src/...
    if len(parts) == 2:
        return os.path.splitext(parts[1])[0]
    if parts[1] == "engine" and len(parts) > 3:
        return "engine/" + parts[2]
    return parts[1]


def graph(root):
    edges = collections.defaultdict(lambda: collections.defaultdict(set))
    layers = set()
    for d, _, files in os.walk(os.path.join(root, "src")):
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            p = os.path.relpath(os.path.join(d, f), root)
            a = layer_of(p)
            layers.add(a)
            with open(os.path.join(root, p), errors="replace") as fh:
                for line in fh:
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    t = os.path.normpath(os.path.join(os.path.dirname(p), m.group(1)))
                    if not t.startswith("src" + os.sep) or not os.path.exists(os.path.join(root, t)):
                        continue
                    b = layer_of(t)
                    if a != b:
                        edges[a][b].add(p)
    return layers, edges


ORDER = list(ALLOWED)


def render(layers, edges):
    out = ["| layer | includes | role |", "|---|---|---|"]
    for a in sorted(layers, key=lambda x: (ORDER.index(x) if x in ORDER else 99, x)):
        dst = edges.get(a, {})
        inc = ", ".join(b for b in sorted(dst, key=lambda x: (ORDER.index(x) if x in ORDER else 99, x)))
        out.append(f"| {a} | {inc or '—'} | {ROLE.get(a, '')} |")
    return "\n".join(out) + "\n"


def main():
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    layers, edges = graph(root)
    text = render(layers, edges)
    if "--check" not in sys.argv:
        sys.stdout.write(text)
        return 0
    bad = 0
    for a in sorted(layers):
        if a not in ALLOWED:
            print(f"FAIL - layer {a} has no rule in scripts/layers.py ALLOWED")
            bad += 1
            continue
        for b, files in sorted(edges.get(a, {}).items()):
            if b not in ALLOWED[a]:
                print(f"FAIL - {a} may not include {b}: {', '.join(sorted(files))}")
                bad += 1
    if not bad:
        n = sum(len(v) for v in edges.values())
        print(f"ok - {len(layers)} layers, {n} edges between them, all allowed by the rule")
    doc = open(os.path.join(root, "docs", "ARCHITECTURE.md")).read()
    m = re.search(r"<!-- layers:begin -->\n(.*?)<!-- layers:end -->", doc, re.S)
    if not m:
        print("FAIL - docs/ARCHITECTURE.md has the layers block (<!-- layers:begin/end -->)")
    elif m.group(1) != text:
        print("FAIL - docs/ARCHITECTURE.md's layers block equals scripts/layers.py's output (regenerate it)")
    else:
        print("ok - docs/ARCHITECTURE.md's layers block is the real include graph")
    return 0


if __name__ == "__main__":
    sys.exit(main())
