#!/usr/bin/env python3
"""tests/http/pngdiff.py A.png B.png — prints "max M mean X": the largest and mean
absolute difference of the RGB samples of two 8-bit RGB PNGs (the server's
output format), or "size ..." when they differ in size.  Used by the e2e test
to compare a batch image with the same seed rendered alone."""
import sys, zlib, struct
def load(path):
    d = open(path, "rb").read()
    assert d[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(d):
        n, t = struct.unpack(">I4s", d[pos:pos + 8]); body = d[pos + 8:pos + 8 + n]; pos += 12 + n
        if t == b"IHDR":
            w, h, depth, ctype, _, _, inter = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype == 2 and inter == 0
        elif t == b"IDAT": idat += body
    raw = zlib.decompress(idat); bpp, stride = 3, w * 3
    out, prev, i = bytearray(), bytearray(stride), 0
    for y in range(h):
        f = raw[i]; row = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
        for x in range(stride):
            a = row[x - bpp] if x >= bpp else 0; b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
            if f == 1: row[x] = (row[x] + a) & 255
            elif f == 2: row[x] = (row[x] + b) & 255
            elif f == 3: row[x] = (row[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[x] = (row[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += row; prev = row
    return w, h, bytes(out)
wa, ha, a = load(sys.argv[1]); wb, hb, b = load(sys.argv[2])
if (wa, ha) != (wb, hb): print("size %dx%d vs %dx%d" % (wa, ha, wb, hb)); sys.exit(0)
diffs = [abs(x - y) for x, y in zip(a, b)]
print("max %d mean %.4f" % (max(diffs), sum(diffs) / len(diffs)))
