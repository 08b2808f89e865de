/* webp.c — WebP via libwebp: decoding still images to RGB8 (size limits
 * checked from the bitstream header before any pixel buffer), encoding
 * lossy RGB8, and wrapping it in an extended (VP8X) container with an EXIF
 * chunk when there are parameters to carry.  The container is a few bytes of
 * RIFF written here, so libwebpmux is not needed. */
#include "codec.h"
#include "../base/alloc.h"

#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/encode.h>

static const char *vp8_status_text(VP8StatusCode s)
{
    switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "the data is truncated";
    default: return "decoding failed";
    }
}

int img_webp_decode(const uint8_t *data, size_t len, const img_limits *lim, img_rgb *out, sd_err *err)
{
    WebPBitstreamFeatures f;
    VP8StatusCode st = WebPGetFeatures(data, len, &f);
    if (st != VP8_STATUS_OK)
        return sd_errf(err, SD_EINVAL, lim->field, "%s: the WebP image is corrupt or truncated (%s)",
                       lim->field, vp8_status_text(st));
    if (f.has_animation)
        return sd_errf(err, SD_EINVAL, lim->field, "%s is an animated WebP; send a still image", lim->field);
    if (img_check_size(lim, "WebP", f.width, f.height, err)) return -1;
    size_t npix = (size_t)f.width * (size_t)f.height;
    int nc = f.has_alpha ? 4 : 3;
    uint8_t *px = sd_malloc(npix * nc);
    if (!px) return sd_errf(err, SD_ENOMEM, lim->field, "out of memory decoding a %dx%d WebP", f.width, f.height);
    uint8_t *ok = f.has_alpha ? WebPDecodeRGBAInto(data, len, px, npix * 4, f.width * 4)
                              : WebPDecodeRGBInto(data, len, px, npix * 3, f.width * 3);
    if (!ok) {
        free(px);
        return sd_errf(err, SD_EINVAL, lim->field, "%s: the WebP image is corrupt or truncated", lim->field);
    }
    if (f.has_alpha && img_keep_alpha(lim, px, npix, err)) {
        free(px);
        return -1;
    }
    if (f.has_alpha) {
        img_rgba_on_white(px, npix);
        uint8_t *s = sd_realloc(px, npix * 3);
        if (s) px = s;
    }
    out->width = f.width;
    out->height = f.height;
    out->px = px;
    return 0;
}

static void le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void le24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
}

int img_webp_encode(const uint8_t *rgb, int w, int h, int quality, const char *params,
                    uint8_t **out, size_t *out_len, sd_err *err)
{
    uint8_t *simple = NULL;
    size_t n = WebPEncodeRGB(rgb, w, h, w * 3, (float)quality, &simple);
    if (!n || !simple || n < 20 || memcmp(simple + 12, "VP8", 3) != 0) {
        WebPFree(simple);
        return sd_errf(err, SD_EINTERNAL, "image", "WebP encoding of a %dx%d image failed", w, h);
    }
    if (!params) {
        uint8_t *b = sd_malloc(n);
        if (b) memcpy(b, simple, n);
        WebPFree(simple);
        if (!b) return sd_errf(err, SD_ENOMEM, "image", "out of memory encoding WebP");
        *out = b;
        *out_len = n;
        return 0;
    }
    size_t exif_len;
    uint8_t *exif = img_exif_build(params, &exif_len);
    size_t body = n - 12;                          /* the VP8 chunk of the simple file */
    size_t total = 12 + 18 + body + 8 + exif_len + (exif_len & 1);
    uint8_t *b = exif ? sd_malloc(total) : NULL;
    if (!b) {
        free(exif);
        WebPFree(simple);
        return sd_errf(err, SD_ENOMEM, "image", "out of memory encoding WebP");
    }
    uint8_t *p = b;
    memcpy(p, "RIFF", 4);
    le32(p + 4, (uint32_t)(total - 8));
    memcpy(p + 8, "WEBP", 4);
    p += 12;
    memcpy(p, "VP8X", 4);
    le32(p + 4, 10);
    p[8] = 0x08;                                    /* EXIF present */
    p[9] = p[10] = p[11] = 0;
    le24(p + 12, (uint32_t)(w - 1));
    le24(p + 15, (uint32_t)(h - 1));
    p += 18;
    memcpy(p, simple + 12, body);
    p += body;
    memcpy(p, "EXIF", 4);
    le32(p + 4, (uint32_t)exif_len);
    memcpy(p + 8, exif, exif_len);
    p += 8 + exif_len;
    if (exif_len & 1) *p++ = 0;
    free(exif);
    WebPFree(simple);
    *out = b;
    *out_len = total;
    return 0;
}

int img_webp_exif(const uint8_t *d, size_t len, const uint8_t **tiff, size_t *tiff_len, sd_err *err)
{
    size_t p = 12;
    while (p + 8 <= len) {
        uint32_t n = img_le32(d + p + 4);
        if (n > len - p - 8) return sd_errf(err, SD_EINVAL, "image", "WebP chunk overruns the file");
        if (!memcmp(d + p, "EXIF", 4)) {
            *tiff = d + p + 8;
            *tiff_len = n;
            return 1;
        }
        p += 8 + (size_t)n + (n & 1);
    }
    return 0;
}

int img_webp_read_parameters(const uint8_t *d, size_t len, char **out, sd_err *err)
{
    *out = NULL;
    const uint8_t *t;
    size_t tn;
    int r = img_webp_exif(d, len, &t, &tn, err);
    return r == 1 ? img_exif_user_comment(t, tn, out, err) : r;
}
