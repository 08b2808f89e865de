/* resize.c — resampling RGB8 pictures: area averaging when shrinking (each
 * output pixel is the mean of the source area it covers, so no aliasing),
 * bilinear with pixel-centre alignment when enlarging.  Separable, one output
 * row at a time, so memory stays O(width) whatever the source size. */
#include "image.h"
#include "../base/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* For each output index: the first source index, how many, and their weights. */
typedef struct axis {
    int *first, *count;
    float *w;
    int stride;   /* weights per output index */
} axis;

static void axis_free(axis *a)
{
    free(a->first);
    free(a->count);
    free(a->w);
}

static int axis_make(axis *a, int src, int dst)
{
    double scale = (double)src / dst;
    a->stride = scale > 1 ? (int)ceil(scale) + 1 : 2;
    a->first = sd_malloc(sizeof(int) * dst);
    a->count = sd_malloc(sizeof(int) * dst);
    a->w = sd_calloc((size_t)dst * a->stride, sizeof(float));
    if (!a->first || !a->count || !a->w) return -1;
    for (int i = 0; i < dst; i++) {
        float *w = a->w + (size_t)i * a->stride;
        if (scale >= 1) {
            double lo = i * scale, hi = (i + 1) * scale;
            int j0 = (int)floor(lo), j1 = (int)ceil(hi);
            if (j1 > src) j1 = src;
            int k = 0;
            for (int j = j0; j < j1 && k < a->stride; j++, k++) {
                double a0 = j > lo ? j : lo, a1 = j + 1 < hi ? j + 1 : hi;
                w[k] = (float)((a1 - a0) / scale);
            }
            a->first[i] = j0;
            a->count[i] = k;
        } else {
            double c = (i + 0.5) * scale - 0.5;
            if (c < 0) c = 0;
            int j0 = (int)floor(c);
            if (j0 > src - 1) j0 = src - 1;
            double t = c - j0;
            a->first[i] = j0;
            if (j0 + 1 < src && t > 0) {
                a->count[i] = 2;
                w[0] = (float)(1 - t);
                w[1] = (float)t;
            } else {
                a->count[i] = 1;
                w[0] = 1;
            }
        }
    }
    return 0;
}

int img_resize(const uint8_t *src, int sw, int sh, int dw, int dh, uint8_t **out, sd_err *err)
{
    *out = NULL;
    if (!src || sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0)
        return sd_errf(err, SD_EINVAL, "image", "cannot resize %dx%d to %dx%d", sw, sh, dw, dh);
    axis ax = {0}, ay = {0};
    float *row = sd_malloc(sizeof(float) * dw * 3), *acc = sd_malloc(sizeof(float) * dw * 3);
    uint8_t *dst = sd_malloc((size_t)dw * dh * 3);
    if (!row || !acc || !dst || axis_make(&ax, sw, dw) || axis_make(&ay, sh, dh)) {
        free(row);
        free(acc);
        free(dst);
        axis_free(&ax);
        axis_free(&ay);
        return sd_errf(err, SD_ENOMEM, "image", "out of memory resizing to %dx%d", dw, dh);
    }
    for (int y = 0; y < dh; y++) {
        memset(acc, 0, sizeof(float) * dw * 3);
        const float *wy = ay.w + (size_t)y * ay.stride;
        for (int k = 0; k < ay.count[y]; k++) {
            const uint8_t *s = src + (size_t)(ay.first[y] + k) * sw * 3;
            for (int x = 0; x < dw; x++) {
                const float *wx = ax.w + (size_t)x * ax.stride;
                const uint8_t *p = s + (size_t)ax.first[x] * 3;
                float r = 0, g = 0, b = 0;
                for (int m = 0; m < ax.count[x]; m++, p += 3) {
                    r += wx[m] * p[0];
                    g += wx[m] * p[1];
                    b += wx[m] * p[2];
                }
                row[3 * x] = r;
                row[3 * x + 1] = g;
                row[3 * x + 2] = b;
            }
            for (int i = 0; i < dw * 3; i++) acc[i] += wy[k] * row[i];
        }
        uint8_t *d = dst + (size_t)y * dw * 3;
        for (int i = 0; i < dw * 3; i++) {
            float v = acc[i] + 0.5f;
            d[i] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
        }
    }
    free(row);
    free(acc);
    axis_free(&ax);
    axis_free(&ay);
    *out = dst;
    return 0;
}

int img_fit_within(img_rgb *im, int max_side, sd_err *err)
{
    if (max_side <= 0) return sd_errf(err, SD_EINVAL, "image", "max side must be positive");
    if (im->width <= max_side && im->height <= max_side) return 0;
    int w, h;
    if (im->width >= im->height) {
        w = max_side;
        h = (int)((double)im->height * max_side / im->width + 0.5);
    } else {
        h = max_side;
        w = (int)((double)im->width * max_side / im->height + 0.5);
    }
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    uint8_t *px;
    if (img_resize(im->px, im->width, im->height, w, h, &px, err)) return -1;
    free(im->px);
    im->px = px;
    im->width = w;
    im->height = h;
    return 1;
}
