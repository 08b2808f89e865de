/* resample.h — PIL-style resampling of 8-bit pictures, as Pillow's
 * Image.resize(size, filter) does it (libImaging/Resample.c): the support
 * widened by the scale when shrinking, weights normalised to sum 1 then
 * fixed-point (22 fractional bits) with rounding, a horizontal pass then a
 * vertical one through an 8-bit intermediate, each result clamped to
 * 0..255.  An axis whose size does not change is copied, as PIL skips it.
 * Filters: BILINEAR (triangle, support 1), BICUBIC (a = -0.5, support 2),
 * LANCZOS (a = 3, support 3).  One implementation for the whole tree: the
 * engine (hires fix, A1111's bicubic latent mask) and jobs/ + image/
 * (masks and "only masked" crops, which A1111 resizes with LANCZOS). */
#ifndef SD_RESAMPLE_H
#define SD_RESAMPLE_H

#include <stdint.h>

#include "err.h"

typedef enum sd_filter { SD_FILTER_BILINEAR, SD_FILTER_BICUBIC, SD_FILTER_LANCZOS } sd_filter;

/* Resizes the interleaved 8-bit picture `src` (sw x sh, `ch` channels, 1..4)
 * to dw x dh with PIL's filter `f` into a new malloc'd buffer *out (free with
 * free()).  0 or -1 with `err` set (SD_EINVAL naming "image" for bad sizes or
 * filter, SD_ENOMEM). */
int sd_resample(const uint8_t *src, int sw, int sh, int ch, int dw, int dh, sd_filter f, uint8_t **out,
                sd_err *err);

/* The Lanczos-3 kernel PIL uses: sinc(x)·sinc(x/3) for -3 <= x < 3, else 0. */
double sd_lanczos3(double x);
/* PIL's bicubic kernel, a = -0.5: 0 for |x| >= 2. */
double sd_bicubic(double x);

#endif
