/* mask.c — the pixel steps of inpainting as AUTOMATIC1111 does them
 * (modules/processing.py StableDiffusionProcessingImg2Img.init, masking.py,
 * apply_overlay): luminance of a mask image, its Gaussian blur, the crop
 * box of "only masked" and its expansion to the output's aspect, the
 * "fill" of the masked area from the colours around it, and the final
 * composite of the original's unmasked pixels.  Pure functions on memory
 * buffers (image.h); jobs/inpaint.c runs them around sd_generate. */
#include "image.h"
#include "../base/alloc.h"
#include "../base/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void img_luminance(const uint8_t *rgb, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++, rgb += 3)
        out[i] = (uint8_t)((rgb[0] * 19595u + rgb[1] * 38470u + rgb[2] * 7471u + 0x8000u) >> 16);
}

/* ---- masks from files ---------------------------------------------------- */

/* Decoded masks: the init image's limits (http/api_seed.c). */
#define MASK_MAX_SIDE 4096
#define MASK_MAX_PIXELS (4096LL * 4096LL)

/* 1 when some byte of a[0..n) is not v. */
static int any_not(const uint8_t *a, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != v) return 1;
    return 0;
}

/* A1111's create_binary_mask (mask_round): alpha when the file has
 * transparency, else luminance; > 128 -> 255, else 0. */
static void binary_mask(const img_rgb *im, const uint8_t *alpha, uint8_t *m)
{
    size_t n = (size_t)im->width * im->height;
    if (alpha && any_not(alpha, n, 255))
        memcpy(m, alpha, n);
    else
        img_luminance(im->px, n, m);
    for (size_t i = 0; i < n; i++) m[i] = m[i] > 128 ? 255 : 0;
}

int img_mask_decode(const uint8_t *data, size_t len, int openai, const char *field, int w, int h, uint8_t **out,
                    sd_err *err)
{
    *out = NULL;
    uint8_t *alpha = NULL, *m = NULL;
    img_decode_opts o = {.max_side = MASK_MAX_SIDE, .max_pixels = MASK_MAX_PIXELS, .field = field, .alpha = &alpha};
    img_rgb im = {0};
    if (img_decode(data, len, &o, &im, err)) return -1;
    int rc = 0;
    if (openai && !alpha)
        rc = sd_errf(err, SD_EINVAL, field, "%s must be a PNG with an alpha channel: its fully transparent pixels "
                     "are repainted (this one has no transparency channel)", field);
    else if (openai && (im.width != w || im.height != h))
        rc = sd_errf(err, SD_EINVAL, field, "%s must have the same size as the image: the mask is %dx%d, the image "
                     "%dx%d", field, im.width, im.height, w, h);
    else if (!(m = sd_malloc((size_t)im.width * im.height)))
        rc = sd_errf(err, SD_ENOMEM, field, "out of memory decoding %s", field);
    if (!rc && openai)
        for (size_t i = 0; i < (size_t)w * h; i++) m[i] = alpha[i] == 0 ? 255 : 0;
    else if (!rc)
        binary_mask(&im, alpha, m);
    if (!rc && (im.width != w || im.height != h)) {   /* A1111 resizes a mask of another size */
        uint8_t *r = NULL;
        rc = sd_resample(m, im.width, im.height, 1, w, h, SD_FILTER_LANCZOS, &r, err);
        free(m);
        m = r;
    }
    free(alpha);
    img_rgb_free(&im);
    if (rc) {
        free(m);
        return -1;
    }
    *out = m;
    return 0;
}

/* ---- A1111's mask blur: cv2.GaussianBlur per axis ----------------------- */

/* cv2's BORDER_REFLECT_101 index into [0, n). */
static int reflect101(int i, int n)
{
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

/* One line of n samples, `stride` apart, convolved with k[0..2r]. */
static void blur_line(uint8_t *p, int n, size_t stride, const float *k, int r, float *tmp)
{
    for (int i = 0; i < n; i++) tmp[i] = p[(size_t)i * stride];
    for (int i = 0; i < n; i++) {
        float acc = 0;
        for (int j = -r; j <= r; j++) acc += k[j + r] * tmp[reflect101(i + j, n)];
        int v = (int)floorf(acc + 0.5f);
        p[(size_t)i * stride] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

/* getGaussianKernel(2*int(2.5*s + 0.5) + 1, s), normalised; returns r. */
static int gauss_kernel(int s, float **k)
{
    int r = (int)(2.5 * s + 0.5);
    *k = sd_malloc(sizeof(float) * (size_t)(2 * r + 1));
    if (!*k) return -1;
    double sum = 0;
    for (int j = -r; j <= r; j++) sum += exp(-(double)j * j / (2.0 * s * s));
    for (int j = -r; j <= r; j++) (*k)[j + r] = (float)(exp(-(double)j * j / (2.0 * s * s)) / sum);
    return r;
}

static int blur_axis(uint8_t *m, int w, int h, int s, int along_x, sd_err *err)
{
    if (s <= 0) return 0;
    float *k = NULL;
    int r = gauss_kernel(s, &k);
    float *tmp = sd_malloc(sizeof(float) * (size_t)(w > h ? w : h));
    if (r < 0 || !tmp) {
        free(k);
        free(tmp);
        return sd_errf(err, SD_ENOMEM, "mask_blur", "out of memory blurring the mask");
    }
    if (along_x)
        for (int y = 0; y < h; y++) blur_line(m + (size_t)y * w, w, 1, k, r, tmp);
    else
        for (int x = 0; x < w; x++) blur_line(m + x, h, (size_t)w, k, r, tmp);
    free(k);
    free(tmp);
    return 0;
}

int img_mask_blur(uint8_t *m, int w, int h, int sx, int sy, sd_err *err)
{
    return blur_axis(m, w, h, sx, 1, err) || blur_axis(m, w, h, sy, 0, err) ? -1 : 0;
}

/* ---- "only masked": the crop box ----------------------------------------- */

int img_mask_box(const uint8_t *m, int w, int h, int pad, int box[4])
{
    int x1 = w, y1 = h, x2 = 0, y2 = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (m[(size_t)y * w + x]) {
                if (x < x1) x1 = x;
                if (x + 1 > x2) x2 = x + 1;
                if (y < y1) y1 = y;
                if (y + 1 > y2) y2 = y + 1;
            }
    if (x2 == 0) return 0;
    box[0] = x1 - pad > 0 ? x1 - pad : 0;
    box[1] = y1 - pad > 0 ? y1 - pad : 0;
    box[2] = x2 + pad < w ? x2 + pad : w;
    box[3] = y2 + pad < h ? y2 + pad : h;
    return 1;
}

/* One axis of expand_crop_region: [*a, *b) grown to `want`, inside [0, n]. */
static void expand_span(int *a, int *b, double want, int n)
{
    int diff = (int)(want - (*b - *a));
    /* Python's // floors: diff may be negative only by float rounding */
    int half = diff >= 0 ? diff / 2 : -((-diff + 1) / 2);
    *a -= half;
    *b += diff - half;
    if (*b >= n) {
        int d = *b - n;
        *b -= d;
        *a -= d;
    }
    if (*a < 0) {
        *b -= *a;
        *a = 0;
    }
    if (*b >= n) *b = n;
}

void img_box_expand(int box[4], int pw, int ph, int iw, int ih)
{
    double crop = (double)(box[2] - box[0]) / (box[3] - box[1]), proc = (double)pw / ph;
    if (crop > proc)
        expand_span(&box[1], &box[3], (box[2] - box[0]) / proc, ih);
    else
        expand_span(&box[0], &box[2], (box[3] - box[1]) * proc, iw);
}

int img_crop(const uint8_t *src, int w, int ch, const int box[4], uint8_t **out, sd_err *err)
{
    size_t bw = (size_t)(box[2] - box[0]), bh = (size_t)(box[3] - box[1]);
    size_t bytes = bw * bh * (size_t)ch;
    *out = sd_malloc(bytes ? bytes : 1);
    if (!*out) return sd_errf(err, SD_ENOMEM, "mask", "out of memory cropping the image");
    for (size_t y = 0; y < bh; y++)
        memcpy(*out + y * bw * ch, src + (((size_t)box[1] + y) * w + box[0]) * ch, bw * ch);
    return 0;
}

void img_paste(uint8_t *dst, int w, int ch, const int box[4], const uint8_t *src)
{
    size_t bw = (size_t)(box[2] - box[0]), bh = (size_t)(box[3] - box[1]);
    for (size_t y = 0; y < bh; y++)
        memcpy(dst + (((size_t)box[1] + y) * w + box[0]) * ch, src + y * bw * ch, bw * ch);
}

/* ---- PIL's alpha_composite and A1111's masking.fill ---------------------- */

/* src over dst, RGBA8, as PIL's AlphaComposite.c (7 bits of extra precision). */
static void alpha_over(uint8_t *d, const uint8_t *s)
{
    if (s[3] == 0) return;
    unsigned blend = d[3] * (255u - s[3]), outa255 = s[3] * 255u + blend;
    unsigned coef1 = s[3] * 255u * 255u * 128u / outa255, coef2 = 255u * 128u - coef1;
#define DIV255(a) ((((a) >> 8) + (a)) >> 8)
    for (int c = 0; c < 3; c++) {
        unsigned t = s[c] * coef1 + d[c] * coef2 + (0x80u << 7);
        d[c] = (uint8_t)(DIV255(t) >> 7);
    }
    d[3] = (uint8_t)DIV255(outa255 + 0x80u);
#undef DIV255
}

void img_mask_overlay(uint8_t *rgb, const uint8_t *orig, const uint8_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t d[4] = {rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 255};
        const uint8_t s[4] = {orig[3 * i], orig[3 * i + 1], orig[3 * i + 2], (uint8_t)(255 - m[i])};
        alpha_over(d, s);
        memcpy(rgb + 3 * i, d, 3);
    }
}

/* PIL's GaussianBlur box radius for three passes (ImagingGaussianBlur). */
static double box_radius(double radius)
{
    double sigma2 = radius * radius / 3, L = sqrt(12.0 * sigma2 + 1.0), l = floor((L - 1.0) / 2.0);
    double a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
    a /= 6 * (sigma2 - (l + 1) * (l + 1));
    return l + a;
}

/* One box pass of fractional radius fr over n samples `stride` apart (edges
 * repeated, as PIL's box blur). */
static void box_line(float *p, int n, size_t stride, double fr, float *tmp)
{
    int ri = (int)fr;
    double frac = fr - ri, norm = 1.0 / (2 * fr + 1);
#define AT(i) tmp[(i) < 0 ? 0 : (i) >= n ? n - 1 : (i)]
    for (int i = 0; i < n; i++) tmp[i] = p[(size_t)i * stride];
    double sum = 0;
    for (int j = -ri; j <= ri; j++) sum += AT(j);
    for (int i = 0; i < n; i++) {
        p[(size_t)i * stride] = (float)((sum + frac * (AT(i - ri - 1) + AT(i + ri + 1))) * norm);
        sum += AT(i + ri + 1) - AT(i - ri);
    }
#undef AT
}

/* PIL GaussianBlur(radius) of a premultiplied RGBa8 picture, into out (RGBA8). */
static void gauss_rgba(const float *pm, float *work, float *tmp, int w, int h, double radius, uint8_t *out)
{
    size_t n = (size_t)w * h;
    memcpy(work, pm, sizeof(float) * n * 4);
    double fr = radius > 0 ? box_radius(radius) : 0;
    for (int pass = 0; radius > 0 && pass < 3; pass++)
        for (int c = 0; c < 4; c++) {
            for (int y = 0; y < h; y++) box_line(work + (size_t)y * w * 4 + c, w, 4, fr, tmp);
            for (int x = 0; x < w; x++) box_line(work + (size_t)x * 4 + c, h, (size_t)w * 4, fr, tmp);
        }
    for (size_t i = 0; i < n; i++) {
        int a = (int)floorf(work[4 * i + 3] + 0.5f);
        a = a < 0 ? 0 : a > 255 ? 255 : a;
        out[4 * i + 3] = (uint8_t)a;
        for (int c = 0; c < 3; c++) {
            int v = (int)floorf(work[4 * i + c] + 0.5f);
            v = v < 0 ? 0 : v > 255 ? 255 : v;
            if (a && a < 255) v = 255 * v / a;   /* RGBa -> RGBA */
            out[4 * i + c] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
}

int img_mask_fill(uint8_t *rgb, const uint8_t *m, int w, int h, sd_err *err)
{
    static const struct { double radius; int repeats; } steps[] = {{256, 1}, {64, 1}, {16, 2}, {4, 4}, {2, 2}, {0, 1}};
    size_t n = (size_t)w * h;
    float *pm = sd_malloc(sizeof(float) * n * 4), *work = sd_malloc(sizeof(float) * n * 4);
    float *tmp = sd_malloc(sizeof(float) * (size_t)(w > h ? w : h));
    uint8_t *blurred = sd_malloc(n * 4), *mod = sd_calloc(n * 4, 1);
    int rc = pm && work && tmp && blurred && mod ? 0 : sd_errf(err, SD_ENOMEM, "inpainting_fill", "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {   /* the unmasked pixels, premultiplied by alpha 255 - m */
        unsigned a = 255u - m[i];
        for (int c = 0; c < 3; c++) {
            unsigned t = rgb[3 * i + c] * a + 128u;
            pm[4 * i + c] = (float)(((t >> 8) + t) >> 8);
        }
        pm[4 * i + 3] = (float)a;
    }
    for (size_t s = 0; !rc && s < sizeof steps / sizeof steps[0]; s++) {
        gauss_rgba(pm, work, tmp, w, h, steps[s].radius, blurred);
        for (int r = 0; r < steps[s].repeats; r++)
            for (size_t i = 0; i < n; i++) alpha_over(mod + 4 * i, blurred + 4 * i);
    }
    for (size_t i = 0; !rc && i < n; i++) memcpy(rgb + 3 * i, mod + 4 * i, 3);
    free(pm);
    free(work);
    free(tmp);
    free(blurred);
    free(mod);
    return rc;
}
