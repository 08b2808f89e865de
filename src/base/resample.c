/* resample.c — PIL-exact resampling of 8-bit pictures (resample.h) with
 * PIL's bilinear, bicubic and Lanczos filters.  Per output axis: the first
 * source index and the fixed-point weights of each output index (PIL's
 * precompute_coeffs + normalize_coeffs_8bpc), then a separable pass per
 * axis that changes size.  Facts from Pillow's src/libImaging/Resample.c;
 * the code is ours. */
#include "resample.h"
#include "alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LZ_SUPPORT 3.0
#define LZ_BITS 22   /* PIL's PRECISION_BITS = 32 - 8 - 2 */

double sd_lanczos3(double x)
{
    if (x < -LZ_SUPPORT || x >= LZ_SUPPORT) return 0.0;
    if (x == 0.0) return 1.0;
    double px = x * M_PI, px3 = px / LZ_SUPPORT;
    return (sin(px) / px) * (sin(px3) / px3);
}

double sd_bicubic(double x)
{
    const double a = -0.5;
    if (x < 0) x = -x;
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

static double bilinear(double x)
{
    if (x < 0) x = -x;
    return x < 1 ? 1 - x : 0;
}

/* A PIL filter: its kernel and support (PIL's struct filter). */
typedef struct lz_filter {
    double (*fn)(double);
    double support;
} lz_filter;

static const lz_filter FILTERS[] = {
    [SD_FILTER_BILINEAR] = {bilinear, 1.0},
    [SD_FILTER_BICUBIC] = {sd_bicubic, 2.0},
    [SD_FILTER_LANCZOS] = {sd_lanczos3, LZ_SUPPORT},
};

/* The weights of one axis: output i reads src[first[i] .. first[i]+count[i]) with
 * k[i*ksize ..]. */
typedef struct lz_axis {
    int ksize;
    int *first, *count;
    int32_t *k;
} lz_axis;

static void lz_axis_free(lz_axis *a)
{
    free(a->first);
    free(a->count);
    free(a->k);
}

/* Fills one output index's double weights in `w` (ksize slots), returns its count. */
static int lz_weights(const lz_filter *f, int in, double scale, double fscale, double support, int i,
                      int *first, double *w, int ksize)
{
    double center = (i + 0.5) * scale, ss = 1.0 / fscale, sum = 0;
    int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
    if (lo < 0) lo = 0;
    if (hi > in) hi = in;
    int n = hi - lo;
    if (n > ksize) n = ksize;
    for (int x = 0; x < n; x++) {
        w[x] = f->fn((x + lo - center + 0.5) * ss);
        sum += w[x];
    }
    for (int x = 0; x < n && sum != 0.0; x++) w[x] /= sum;
    *first = lo;
    return n;
}

static int lz_axis_make(lz_axis *a, const lz_filter *f, int in, int out)
{
    double scale = (double)in / out, fscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * fscale;
    a->ksize = (int)ceil(support) * 2 + 1;
    a->first = sd_malloc(sizeof(int) * out);
    a->count = sd_malloc(sizeof(int) * out);
    a->k = sd_calloc((size_t)out * a->ksize, sizeof(int32_t));
    double *w = sd_malloc(sizeof(double) * a->ksize);
    if (!a->first || !a->count || !a->k || !w) {
        free(w);
        return -1;
    }
    for (int i = 0; i < out; i++) {
        int n = lz_weights(f, in, scale, fscale, support, i, &a->first[i], w, a->ksize);
        a->count[i] = n;
        for (int x = 0; x < n; x++)
            a->k[(size_t)i * a->ksize + x] =
                (int32_t)(w[x] < 0 ? -0.5 + w[x] * (1 << LZ_BITS) : 0.5 + w[x] * (1 << LZ_BITS));
    }
    free(w);
    return 0;
}

static uint8_t lz_clip8(int64_t v)
{
    v >>= LZ_BITS;   /* arithmetic: floor, as PIL's lookup by in >> PRECISION_BITS */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One pass along an axis: `lines` lines of `len_out` output samples; s_/d_
 * sstep and lstep are the byte strides between samples and between lines of
 * the source and the destination; `ch` channels per sample. */
static void lz_pass(const uint8_t *src, uint8_t *dst, const lz_axis *a, int lines, int len_out,
                    size_t s_sstep, size_t s_lstep, size_t d_sstep, size_t d_lstep, int ch)
{
    for (int l = 0; l < lines; l++)
        for (int i = 0; i < len_out; i++) {
            const int32_t *k = a->k + (size_t)i * a->ksize;
            const uint8_t *s = src + l * s_lstep + (size_t)a->first[i] * s_sstep;
            uint8_t *d = dst + l * d_lstep + i * d_sstep;
            for (int c = 0; c < ch; c++) {
                int64_t acc = 1 << (LZ_BITS - 1);
                for (int x = 0; x < a->count[i]; x++) acc += (int64_t)s[x * s_sstep + c] * k[x];
                d[c] = lz_clip8(acc);
            }
        }
}

int sd_resample(const uint8_t *src, int sw, int sh, int ch, int dw, int dh, sd_filter f, uint8_t **out,
                sd_err *err)
{
    *out = NULL;
    if (!src || sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0 || ch < 1 || ch > 4)
        return sd_errf(err, SD_EINVAL, "image", "cannot resize %dx%d (%d channels) to %dx%d", sw,
                       sh, ch, dw, dh);
    if ((unsigned)f > SD_FILTER_LANCZOS)
        return sd_errf(err, SD_EINVAL, "image", "unknown resampling filter %d", (int)f);
    const lz_filter *flt = &FILTERS[f];
    lz_axis ax = {0}, ay = {0};
    uint8_t *mid = sd_malloc((size_t)dw * sh * ch), *dst = sd_malloc((size_t)dw * dh * ch);
    int bad = !mid || !dst || lz_axis_make(&ax, flt, sw, dw) || lz_axis_make(&ay, flt, sh, dh);
    if (!bad) {
        if (dw != sw)
            lz_pass(src, mid, &ax, sh, dw, ch, (size_t)sw * ch, ch, (size_t)dw * ch, ch);
        else
            memcpy(mid, src, (size_t)sw * sh * ch);
        if (dh != sh)
            lz_pass(mid, dst, &ay, dw, dh, (size_t)dw * ch, ch, (size_t)dw * ch, ch, ch);
        else
            memcpy(dst, mid, (size_t)dw * dh * ch);
    }
    free(mid);
    lz_axis_free(&ax);
    lz_axis_free(&ay);
    if (bad) {
        free(dst);
        return sd_errf(err, SD_ENOMEM, "image", "out of memory resizing %dx%d to %dx%d", sw, sh,
                       dw, dh);
    }
    *out = dst;
    return 0;
}
