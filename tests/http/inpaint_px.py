#!/usr/bin/env python3
"""tests/http/inpaint_px.py — pictures and pixel checks for test_inpaint_api.sh
(no PIL on this machine: PNGs are written with zlib, read with pngdiff.py's
decoder).
  make-init OUT W H               an RGB gradient
  make-mask OUT W H X0 Y0 X1 Y1 [inv]   RGB: white box [X0,X1)x[Y0,Y1) on black (inv: black on white)
  make-rgba OUT W H X0 Y0 X1 Y1 [gray]  RGBA: the box fully transparent, opaque elsewhere
                                  (gray: the init gradient's colours, else white)
  make-dot OUT W H X Y             grayscale: black with the one white pixel (X, Y)
  b64 FILE                        base64 of a file, one line
  b64-json JSON KEY IDX OUT       data[KEY][IDX] (or data[KEY][IDX]["b64_json"]) of a JSON answer, decoded to OUT
  compare ORIG OUT X0 Y0 X1 Y1 MARGIN
      prints "outside_equal A/B inside_changed C/D": pixels further than
      MARGIN from the box that equal ORIG exactly, and pixels inside it that differ
"""
import base64, json, struct, sys, zlib

_src = open(__file__.replace("inpaint_px.py", "pngdiff.py")).read().split("wa, ha, a = load")[0]
exec(_src)   # load(path) -> (w, h, rgb bytes) of an 8-bit RGB PNG


def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)


def write_png(path, w, h, ctype, px):
    n = {0: 1, 2: 3, 6: 4}[ctype]
    rows = b"".join(b"\0" + bytes(px[y * w * n:(y + 1) * w * n]) for y in range(h))
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0)) +
                           chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def gradient(x, y, w, h):
    return [x * 255 // w, y * 255 // h, (x * 7 + y * 13) % 256]


def main(a):
    cmd = a[0]
    if cmd == "make-init":
        w, h = int(a[2]), int(a[3])
        write_png(a[1], w, h, 2, [c for y in range(h) for x in range(w) for c in gradient(x, y, w, h)])
    elif cmd in ("make-mask", "make-rgba"):
        w, h, x0, y0, x1, y1 = map(int, a[2:8])
        flag = a[8] if len(a) > 8 else ""
        px = []
        for y in range(h):
            for x in range(w):
                inside = x0 <= x < x1 and y0 <= y < y1
                if cmd == "make-mask":
                    px += [255 if inside != (flag == "inv") else 0] * 3
                else:
                    px += (gradient(x, y, w, h) if flag == "gray" else [255, 255, 255]) + [0 if inside else 255]
        write_png(a[1], w, h, 6 if cmd == "make-rgba" else 2, px)
    elif cmd == "make-dot":
        w, h, x0, y0 = map(int, a[2:6])
        write_png(a[1], w, h, 0, [255 if (x, y) == (x0, y0) else 0 for y in range(h) for x in range(w)])
    elif cmd == "b64":
        print(base64.b64encode(open(a[1], "rb").read()).decode())
    elif cmd == "b64-json":
        it = json.load(open(a[1]))[a[2]][int(a[3])]
        open(a[4], "wb").write(base64.b64decode(it["b64_json"] if isinstance(it, dict) else it))
    elif cmd == "compare":
        wa, ha, o = load(a[1])
        wb, hb, r = load(a[2])
        x0, y0, x1, y1, m = map(int, a[3:8])
        if (wa, ha) != (wb, hb):
            print("size %dx%d vs %dx%d" % (wa, ha, wb, hb))
            return
        eq = out = ch = ins = 0
        for y in range(ha):
            for x in range(wa):
                i = 3 * (y * wa + x)
                if x0 - m <= x < x1 + m and y0 - m <= y < y1 + m:
                    if x0 <= x < x1 and y0 <= y < y1:
                        ins += 1
                        ch += o[i:i + 3] != r[i:i + 3]
                    continue
                out += 1
                eq += o[i:i + 3] == r[i:i + 3]
        print("outside_equal %d/%d inside_changed %d/%d" % (eq, out, ch, ins))


main(sys.argv[1:])
