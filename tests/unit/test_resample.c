/* test_resample.c — base/resample.c's Lanczos against a naive double-precision
 * Lanczos-3 written here from PIL's definition (support widened by the scale
 * when shrinking, weights normalised to sum 1, horizontal then vertical):
 * equal within 1 level when the naive one also rounds its intermediate to 8
 * bits (the fixed-point weights are the only difference), within 2 when it
 * only clamps;
 * constants stay constant, an unchanged size is a copy, bad sizes fail.
 * sd_resample's three filters equal Pillow 9.4's Image.resize byte for byte
 * on fixed pictures (the expected bytes generated once with python3-pil and
 * committed here; the suite does not need Pillow). */
#include <math.h>
#include <stdio.h>
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
    int rc = sd_resample(src, sw, sh, ch, dw, dh, SD_FILTER_LANCZOS, &out, &e);
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
    int rc = sd_resample(src, 20, 10, 3, 47, 9, SD_FILTER_LANCZOS, &out, &e), ok = rc == 0;
    for (int i = 0; ok && i < 47 * 9 * 3; i++) ok = out[i] == 137;
    CHECK(ok, "lanczos keeps a constant picture constant");
    free(out);
}

static void same_size_copies(void)
{
    uint8_t *src = pattern(13, 11, 4, 7), *out = NULL;
    sd_err e;
    sd_err_clear(&e);
    int rc = sd_resample(src, 13, 11, 4, 13, 11, SD_FILTER_LANCZOS, &out, &e);
    CHECK(rc == 0 && !memcmp(out, src, 13 * 11 * 4), "lanczos to the same size is a copy");
    free(out);
    free(src);
}

static void bad_sizes(void)
{
    uint8_t px[3] = {1, 2, 3}, *out = px;
    sd_err e;
    sd_err_clear(&e);
    int rc = sd_resample(px, 1, 1, 3, 0, 4, SD_FILTER_LANCZOS, &out, &e);
    CHECK(rc == -1 && out == NULL && e.code == SD_EINVAL && !strcmp(e.field, "image"),
          "lanczos to 0 wide fails naming image");
    sd_err_clear(&e);
    rc = sd_resample(px, 1, 1, 5, 2, 2, SD_FILTER_LANCZOS, &out, &e);
    CHECK(rc == -1 && e.code == SD_EINVAL, "lanczos with 5 channels fails");
}

/* ---- Pillow 9.4's bytes ---------------------------------------------------- */

/* The source picture of the Pillow cases, i = byte index. */
static uint8_t pil_src(int i)
{
    if (i % 5 == 0) return 0;
    if (i % 7 == 0) return 255;
    return (uint8_t)((i * 73 + (i * i % 13) * 19) % 256);
}

typedef struct pil_case {
    int sw, sh, ch, dw, dh;
    sd_filter f;
    uint8_t want[130];
} pil_case;

/* Image.frombytes(mode, (sw, sh), src).resize((dw, dh), filter).tobytes() */
static const pil_case PIL_CASES[] = {
    {9, 7, 1, 4, 3, SD_FILTER_BICUBIC, {67,143,103,73,170,125,143,80,140,141,122,129}},
    {9, 7, 1, 13, 10, SD_FILTER_BICUBIC, {0,36,131,226,177,119,88,0,20,135,255,169,32,128,70,60,165,143,124,143,155,110,57,142,98,16,182,76,0,70,131,167,175,231,150,0,19,35,36,6,24,25,0,172,244,127,76,48,32,0,48,113,122,162,188,167,102,104,180,178,108,23,90,72,31,232,247,255,255,72,0,122,234,203,109,147,95,30,234,224,222,234,109,7,3,179,251,252,151,111,111,37,148,220,98,159,218,212,76,78,199,210,131,52,73,92,126,147,151,165,186,86,47,84,181,137,55,200,67,29,255,121,14,61,142,94,0,126,135,88}},
    {9, 7, 1, 5, 11, SD_FILTER_LANCZOS, {37,203,44,104,168,85,144,124,113,95,99,69,218,91,12,4,80,185,25,40,67,125,155,37,60,245,155,141,139,55,255,153,62,241,90,202,159,80,230,128,99,177,178,125,140,87,151,134,78,123,117,125,66,82,107}},
    {9, 7, 1, 14, 4, SD_FILTER_BILINEAR, {87,70,62,136,153,137,134,126,112,82,87,149,93,36,99,96,92,90,116,158,156,151,143,74,36,51,57,59,180,202,226,210,148,64,90,132,191,182,169,152,106,68,105,104,112,159,155,122,139,128,90,83,105,169,122,73}},
    {6, 5, 3, 10, 3, SD_FILTER_LANCZOS, {0,73,128,71,86,80,195,113,21,130,141,30,94,135,89,183,112,151,172,140,238,63,186,254,9,141,88,7,96,0,197,133,182,147,87,192,90,31,187,132,42,143,144,115,109,101,192,99,113,231,71,173,217,41,175,170,66,161,143,91,136,100,156,82,127,201,1,172,213,4,182,101,70,161,26,188,129,60,255,71,72,255,38,58,160,77,164,104,120,225}},
    {40, 24, 1, 5, 3, SD_FILTER_BICUBIC, {112,122,116,115,121,108,115,119,115,119,116,112,108,112,125}},
};

static void pillow_bytes(void)
{
    static const char *names[] = {"bilinear", "bicubic", "lanczos"};
    for (size_t c = 0; c < sizeof PIL_CASES / sizeof PIL_CASES[0]; c++) {
        const pil_case *k = &PIL_CASES[c];
        int n = k->sw * k->sh * k->ch, m = k->dw * k->dh * k->ch, bad = 0;
        uint8_t *src = malloc(n), *out = NULL;
        for (int i = 0; i < n; i++) src[i] = pil_src(i);
        sd_err e = {0};
        int rc = sd_resample(src, k->sw, k->sh, k->ch, k->dw, k->dh, k->f, &out, &e);
        for (int i = 0; !rc && i < m; i++) bad += out[i] != k->want[i];
        char name[96];
        snprintf(name, sizeof name, "%s %dx%dx%d -> %dx%d equals Pillow 9.4", names[k->f], k->sw, k->sh,
                 k->ch, k->dw, k->dh);
        CHECKF(rc == 0 && bad == 0, name, "rc %d, %d bytes differ", rc, bad);
        free(src);
        free(out);
    }
    sd_err e = {0};
    uint8_t px[3] = {1, 2, 3}, *out = NULL;
    CHECK(sd_resample(px, 1, 1, 3, 2, 2, (sd_filter)7, &out, &e) == -1 && e.code == SD_EINVAL && !out,
          "an unknown filter fails");
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
    pillow_bytes();
    return t_done();
}
