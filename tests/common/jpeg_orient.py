#!/usr/bin/env python3
"""tests/common/jpeg_orient.py IN.jpg OUT.jpg ORIENTATION — writes IN with an
APP1 "Exif" segment right after SOI whose IFD0 holds only an Orientation tag
(1-8; big-endian TIFF, or little-endian with --le), as a camera held sideways
would.  Used by the shell tests of EXIF orientation (generate and img2img)."""
import struct, sys

args = [a for a in sys.argv[1:] if a != "--le"]
e = "<" if "--le" in sys.argv else ">"
src, dst, orientation = args[0], args[1], int(args[2])
tiff = (b"II" if e == "<" else b"MM") + struct.pack(e + "HIH", 42, 8, 1) \
    + struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(e + "I", 0)
jpg = open(src, "rb").read()
if jpg[:2] != b"\xff\xd8":
    sys.exit("%s is not a JPEG" % src)
seg = b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + b"Exif\0\0" + tiff
open(dst, "wb").write(jpg[:2] + seg + jpg[2:])
