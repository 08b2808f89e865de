/* image.c — format sniffing and the img_decode / img_encode /
 * img_read_parameters entry points that dispatch to png.c, jpeg.c, webp.c. */
#include "codec.h"
#include "../base/alloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void img_rgb_free(img_rgb *im)
{
    if (!im) return;
    free(im->px);
    im->px = NULL;
    im->width = im->height = 0;
}

img_format img_sniff(const uint8_t *d, size_t n)
{
    if (!d) return IMG_UNKNOWN;
    if (n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8)) return IMG_PNG;
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return IMG_JPEG;
    if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4)) return IMG_WEBP;
    return IMG_UNKNOWN;
}

/* A name for formats we recognise but do not accept, for a clearer message. */
static const char *other_format(const uint8_t *d, size_t n)
{
    if (n >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6))) return "GIF";
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') return "BMP";
    if (n >= 4 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4))) return "TIFF";
    if (n >= 12 && !memcmp(d + 4, "ftyp", 4)) return "HEIF/AVIF";
    if (n >= 5 && (!memcmp(d, "<?xml", 5) || !memcmp(d, "<svg", 4))) return "SVG";
    return NULL;
}

img_format img_format_from_name(const char *s)
{
    if (!s) return IMG_UNKNOWN;
    if (!strcasecmp(s, "png")) return IMG_PNG;
    if (!strcasecmp(s, "jpeg") || !strcasecmp(s, "jpg")) return IMG_JPEG;
    if (!strcasecmp(s, "webp")) return IMG_WEBP;
    return IMG_UNKNOWN;
}

static const struct { img_format f; const char *name, *mime, *ext; } formats[] = {
    {IMG_PNG, "png", "image/png", "png"},
    {IMG_JPEG, "jpeg", "image/jpeg", "jpg"},
    {IMG_WEBP, "webp", "image/webp", "webp"},
};

const char *img_format_name(img_format f)
{
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (formats[i].f == f) return formats[i].name;
    return "unknown";
}

const char *img_format_mime(img_format f)
{
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (formats[i].f == f) return formats[i].mime;
    return "application/octet-stream";
}

const char *img_format_ext(img_format f)
{
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (formats[i].f == f) return formats[i].ext;
    return "bin";
}

int img_check_size(const img_limits *lim, const char *what, int64_t w, int64_t h, sd_err *err)
{
    if (w <= 0 || h <= 0)
        return sd_errf(err, SD_EINVAL, lim->field, "%s: the %s image declares an empty size %lldx%lld",
                       lim->field, what, (long long)w, (long long)h);
    if (w > lim->max_side || h > lim->max_side)
        return sd_errf(err, SD_ETOOLARGE, lim->field,
                       "%s: the %s image is %lldx%lld; the largest side accepted is %d pixels",
                       lim->field, what, (long long)w, (long long)h, lim->max_side);
    if (w * h > lim->max_pixels)
        return sd_errf(err, SD_ETOOLARGE, lim->field,
                       "%s: the %s image is %lldx%lld = %lld pixels; at most %lld are accepted",
                       lim->field, what, (long long)w, (long long)h, (long long)(w * h),
                       (long long)lim->max_pixels);
    return 0;
}

void img_rgba_on_white(uint8_t *px, size_t npix)
{
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *s = px + 4 * i;
        unsigned a = s[3], ia = 255 - a;
        uint8_t r = (uint8_t)((s[0] * a + 255 * ia + 127) / 255);
        uint8_t g = (uint8_t)((s[1] * a + 255 * ia + 127) / 255);
        uint8_t b = (uint8_t)((s[2] * a + 255 * ia + 127) / 255);
        px[3 * i] = r;
        px[3 * i + 1] = g;
        px[3 * i + 2] = b;
    }
}

int img_keep_alpha(const img_limits *lim, const uint8_t *rgba, size_t npix, sd_err *err)
{
    if (!lim->alpha) return 0;
    uint8_t *a = sd_malloc(npix ? npix : 1);
    if (!a) return sd_errf(err, SD_ENOMEM, lim->field, "out of memory keeping the alpha channel");
    for (size_t i = 0; i < npix; i++) a[i] = rgba[4 * i + 3];
    *lim->alpha = a;
    return 0;
}

/* The alpha plane turned upright like the pixels (w x h: the upright size). */
static int orient_plane(uint8_t **plane, int w, int h, int orientation, const img_limits *lim, sd_err *err)
{
    if (orientation < 2 || orientation > 8) return 0;
    int swap = orientation >= 5;
    img_rgb t = {swap ? h : w, swap ? w : h, sd_malloc((size_t)w * h * 3)};
    if (!t.px) return sd_errf(err, SD_ENOMEM, lim->field, "out of memory");
    for (size_t i = 0; i < (size_t)w * h; i++) t.px[3 * i] = t.px[3 * i + 1] = t.px[3 * i + 2] = (*plane)[i];
    if (img_orient(&t, orientation, lim->field, err) < 0) {
        img_rgb_free(&t);
        return -1;
    }
    for (size_t i = 0; i < (size_t)w * h; i++) (*plane)[i] = t.px[3 * i];
    img_rgb_free(&t);
    return 0;
}

int img_decode(const uint8_t *data, size_t len, const img_decode_opts *opts, img_rgb *out, sd_err *err)
{
    img_limits lim = {IMG_DEFAULT_MAX_SIDE, IMG_DEFAULT_MAX_PIXELS, "init_image", NULL};
    if (opts) {
        if (opts->max_side > 0) lim.max_side = opts->max_side;
        if (opts->max_pixels > 0) lim.max_pixels = opts->max_pixels;
        if (opts->field) lim.field = opts->field;
        lim.alpha = opts->alpha;
    }
    if (lim.alpha) *lim.alpha = NULL;
    memset(out, 0, sizeof *out);
    if (!data || len == 0)
        return sd_errf(err, SD_EINVAL, lim.field, "%s is empty", lim.field);
    int rc;
    switch (img_sniff(data, len)) {
    case IMG_PNG: rc = img_png_decode(data, len, &lim, out, err); break;
    case IMG_JPEG: rc = img_jpeg_decode(data, len, &lim, out, err); break;
    case IMG_WEBP: rc = img_webp_decode(data, len, &lim, out, err); break;
    default: {
        const char *o = other_format(data, len);
        if (o)
            return sd_errf(err, SD_EINVAL, lim.field,
                           "%s is a %s image; only PNG, JPEG and WebP are accepted", lim.field, o);
        return sd_errf(err, SD_EINVAL, lim.field,
                       "%s is not a PNG, JPEG or WebP image (unrecognised first bytes)", lim.field);
    }
    }
    int orientation = rc == 0 ? img_orientation(data, len) : 1;
    if (rc == 0 && img_orient(out, orientation, lim.field, err) < 0) rc = -1;
    if (rc == 0 && lim.alpha && *lim.alpha && orient_plane(lim.alpha, out->width, out->height, orientation, &lim, err))
        rc = -1;
    if (rc != 0) {
        img_rgb_free(out);
        if (lim.alpha) {
            free(*lim.alpha);
            *lim.alpha = NULL;
        }
    }
    return rc;
}

int img_encode(const uint8_t *rgb, int w, int h, const img_encode_opts *opts,
               uint8_t **out, size_t *out_len, sd_err *err)
{
    *out = NULL;
    *out_len = 0;
    img_format f = opts ? opts->format : IMG_PNG;
    int q = opts && opts->quality ? opts->quality : 90;
    const char *params = opts ? opts->parameters : NULL;
    if (!rgb || w <= 0 || h <= 0 || w > 16383 || h > 16383)
        return sd_errf(err, SD_EINVAL, "image", "cannot encode a %dx%d image", w, h);
    if (q < 1 || q > 100)
        return sd_errf(err, SD_EINVAL, "quality", "quality must be in [1, 100], got %d", q);
    switch (f) {
    case IMG_UNKNOWN:
    case IMG_PNG: return img_png_encode(rgb, w, h, params, out, out_len, err);
    case IMG_JPEG: return img_jpeg_encode(rgb, w, h, q, params, out, out_len, err);
    case IMG_WEBP: return img_webp_encode(rgb, w, h, q, params, out, out_len, err);
    }
    return sd_errf(err, SD_EINVAL, "format", "unknown output format %d", (int)f);
}

int img_read_parameters(const uint8_t *data, size_t len, char **out, sd_err *err)
{
    *out = NULL;
    switch (img_sniff(data, len)) {
    case IMG_PNG: return img_png_read_parameters(data, len, out, err);
    case IMG_JPEG: return img_jpeg_read_parameters(data, len, out, err);
    case IMG_WEBP: return img_webp_read_parameters(data, len, out, err);
    default: return sd_errf(err, SD_EINVAL, "image", "not a PNG, JPEG or WebP file");
    }
}
