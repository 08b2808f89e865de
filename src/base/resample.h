/* resample.h — Lanczos resampling of 8-bit pictures, as PIL's
 * Image.resize(size, Image.LANCZOS) does it (Pillow's libImaging/Resample.c):
 * a = 3, the support widened by the scale when shrinking, weights normalised
 * to sum 1 then fixed-point (22 fractional bits) with rounding, a horizontal
 * pass then a vertical one through an 8-bit intermediate, each result clamped
 * to 0..255.  An axis whose size does not change is copied, as PIL skips it.
 * One implementation for the whole tree: the engine (hires fix) and image/
 * (masks and init images, which A1111 resizes with LANCZOS) both call it. */
#ifndef SD_RESAMPLE_H
#define SD_RESAMPLE_H

#include <stdint.h>

#include "err.h"

/* Resizes the interleaved 8-bit picture `src` (sw x sh, `ch` channels, 1..4)
 * to dw x dh into a new malloc'd buffer *out (free with free()).  0 or -1 with
 * `err` set (SD_EINVAL naming "image" for bad sizes, SD_ENOMEM). */
int sd_lanczos_resize(const uint8_t *src, int sw, int sh, int ch, int dw, int dh, uint8_t **out,
                      sd_err *err);

/* The Lanczos-3 kernel PIL uses: sinc(x)·sinc(x/3) for -3 <= x < 3, else 0. */
double sd_lanczos3(double x);

#endif
