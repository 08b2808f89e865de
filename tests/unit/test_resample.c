/* test_resample.c — base/resample.c's Lanczos against a naive double-precision
 * Lanczos-3 written here from PIL's definition (support widened by the scale
 * when shrinking, weights normalised to sum 1, horizontal then vertical):
 * equal within 1 level when the naive one also rounds its intermediate to 8
 * bits (the fixed-point weights are the only difference), within 2 when it
 * only clamps;
 * constants stay constant, an unchanged size is a copy, bad sizes fail. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "../../src/base/resample.h"

static double naive_k(double x)
{
    if (x <= -3 || x >= 3) return 0;
    if (fabs(x) < 1e-12) return 1;
    return 3 * sin(M_PI * x) * sin(M_PI * x / 3) / (M_PI * M_PI * x * x);
}

/* out[i] for a line of `in` samples (stride `st`) resized to `out` samples. */
static double naive_at(const double *line, int st, int in, int out, int i)
{
    double scale = (double)in / out, fs = scale < 1 ? 1 : scale, c = (i + 0.5) * scale;
    double sum = 0, wsum = 0;
    for (int j = 0; j < in; j++) {
        double d = (j + 0.5 - c) / fs;
        if (fabs(j + 0.5 - c) > 3 * fs + 0.5) continue;
        double w = naive_k(d);
        sum += w * line[j * st];
        wsum += w;
    }
    return wsum != 0 ? sum / wsum : 0;
}

static double q8(double v, int round8)
{
    if (round8) v = floor(v + 0.5);
    return v < 0 ? 0 : v > 255 ? 255 : v;
}

/* The naive resize in double, each pass clamped to 0..255; round8: also
 * rounded to 8 bits after each pass, as PIL. */
static double *naive_resize(const uint8_t *src, int sw, int sh, int ch, int dw, int dh, int round8)
{
    double *s = malloc(sizeof(double) * sw * sh * ch), *m = malloc(sizeof(double) * dw * sh * ch);
    double *d = malloc(sizeof(double) * dw * dh * ch);
    for (int i = 0; i < sw * sh * ch; i++) s[i] = src[i];
    for (int y = 0; y < sh; y++)
        for (int x = 0; x < dw; x++)
            for (int c = 0; c < ch; c++)
                m[(y * dw + x) * ch + c] =
                    dw == sw ? s[(y * sw + x) * ch + c]
                             : q8(naive_at(s + (size_t)y * sw * ch + c, ch, sw, dw, x), round8);
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++)
            for (int c = 0; c < ch; c++)
                d[(y * dw + x) * ch + c] =
                    dh == sh ? m[(y * dw + x) * ch + c]
                             : q8(naive_at(m + x * ch + c, dw * ch, sh, dh, y), round8);
    free(s);
    free(m);
    return d;
}

static uint8_t *pattern(int w, int h, int ch, unsigned seed)
{
    uint8_t *p = malloc((size_t)w * h * ch);
    for (int i = 0; i < w * h * ch; i++) {
        seed = seed * 1103515245u + 12345u;
        /* edges and flats: a random mix of 0, 255 and mid values */
        unsigned r = (seed >> 16) % 8;
        p[i] = r == 0 ? 0 : r == 1 ? 255 : (uint8_t)((seed >> 8) & 0xff);
    }
    return p;
}

/* Max |ours - naive| over the picture, and how many samples differ at all. */
static void compare(int sw, int sh, int ch, int dw, int dh, unsigned seed)
{
    char name[128];
    uint8_t *src = pattern(sw, sh, ch, seed), *out = NULL;
    sd_err e;
    sd_err_clear(&e);
    int rc = sd_lanczos_resize(src, sw, sh, ch, dw, dh, &out, &e);
    snprintf(name, sizeof name, "lanczos %dx%dx%d -> %dx%d runs", sw, sh, ch, dw, dh);
    CHECKF(rc == 0 && out, name, "%s", e.msg);
    if (rc) {
        free(src);
        return;
    }
    double *n8 = naive_resize(src, sw, sh, ch, dw, dh, 1), *nd = naive_resize(src, sw, sh, ch, dw, dh, 0);
    double max8 = 0, maxd = 0;
    int diff8 = 0, n = dw * dh * ch;
    for (int i = 0; i < n; i++) {
        double a = fabs(out[i] - n8[i]), b = fabs(out[i] - nd[i]);
        if (a > max8) max8 = a;
        if (b > maxd) maxd = b;
        diff8 += a > 0;
    }
    snprintf(name, sizeof name, "lanczos %dx%d -> %dx%d: within 1 of naive 8-bit", sw, sh, dw, dh);
    CHECKF(max8 <= 1 && diff8 * 100 <= n, name, "max %g, %d of %d differ", max8, diff8, n);
    snprintf(name, sizeof name, "lanczos %dx%d -> %dx%d: within 2 of naive clamped double", sw, sh, dw, dh);
    CHECKF(maxd <= 2.0 + 1e-9, name, "max %g", maxd);
    free(n8);
    free(nd);
    free(out);
    free(src);
}

static void constant_stays(void)
{
    uint8_t src[20 * 10 * 3], *out = NULL;
    memset(src, 137, sizeof src);
    sd_err e;
    sd_err_clear(&e);
    int rc = sd_lanczos_resize(src, 20, 10, 3, 47, 9, &out, &e), ok = rc == 0;
    for (int i = 0; ok && i < 47 * 9 * 3; i++) ok = out[i] == 137;
    CHECK(ok, "lanczos keeps a constant picture constant");
    free(out);
}

static void same_size_copies(void)
{
    uint8_t *src = pattern(13, 11, 4, 7), *out = NULL;
    sd_err e;
    sd_err_clear(&e);
    int rc = sd_lanczos_resize(src, 13, 11, 4, 13, 11, &out, &e);
    CHECK(rc == 0 && !memcmp(out, src, 13 * 11 * 4), "lanczos to the same size is a copy");
    free(out);
    free(src);
}

static void bad_sizes(void)
{
    uint8_t px[3] = {1, 2, 3}, *out = px;
    sd_err e;
    sd_err_clear(&e);
    int rc = sd_lanczos_resize(px, 1, 1, 3, 0, 4, &out, &e);
    CHECK(rc == -1 && out == NULL && e.code == SD_EINVAL && !strcmp(e.field, "image"),
          "lanczos to 0 wide fails naming image");
    sd_err_clear(&e);
    rc = sd_lanczos_resize(px, 1, 1, 5, 2, 2, &out, &e);
    CHECK(rc == -1 && e.code == SD_EINVAL, "lanczos with 5 channels fails");
}

int main(void)
{
    /* the kernel itself */
    CHECK(sd_lanczos3(0) == 1 && sd_lanczos3(3) == 0 && sd_lanczos3(-3.0001) == 0,
          "lanczos3 kernel support [-3, 3)");
    CHECK(fabs(sd_lanczos3(1.3) - naive_k(1.3)) < 1e-12 && fabs(sd_lanczos3(-2.7) - naive_k(-2.7)) < 1e-12,
          "lanczos3 kernel equals sinc(x)sinc(x/3)");
    compare(16, 12, 3, 40, 30, 1);   /* enlarge, as hires fix does */
    compare(32, 32, 3, 64, 64, 2);   /* exactly 2x */
    compare(37, 23, 3, 11, 7, 3);    /* shrink: support widened */
    compare(30, 20, 1, 61, 9, 4);    /* one axis up, one down; masks are 1 channel */
    compare(9, 14, 4, 9, 33, 5);     /* width unchanged: that pass skipped */
    constant_stays();
    same_size_copies();
    bad_sizes();
    return t_done();
}
