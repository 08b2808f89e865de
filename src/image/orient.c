/* orient.c — EXIF orientation for decoded pictures: finds the EXIF block a
 * PNG / JPEG / WebP file carries (eXIf chunk, APP1 segment, EXIF chunk),
 * reads its Orientation, and turns the pixels upright (the flips and
 * quarter turns of orientations 2-8), so a phone photo taken sideways is
 * used the way its owner sees it.  Malformed or missing EXIF means "as
 * stored" (orientation 1): metadata never fails a decode. */
#include "codec.h"
#include "../base/alloc.h"

#include <stdlib.h>
#include <string.h>

int img_orientation(const uint8_t *data, size_t len)
{
    const uint8_t *tiff = NULL;
    size_t n = 0;
    sd_err ignored;
    sd_err_clear(&ignored);
    int found = 0;
    switch (img_sniff(data, len)) {
    case IMG_PNG: found = img_png_exif(data, len, &tiff, &n, &ignored); break;
    case IMG_JPEG: {
        size_t pos = 2;
        found = img_jpeg_next_exif(data, len, &pos, &tiff, &n, &ignored);
        break;
    }
    case IMG_WEBP: found = img_webp_exif(data, len, &tiff, &n, &ignored); break;
    default: break;
    }
    return found == 1 ? img_exif_orientation(tiff, n) : 1;
}

/* How orientation o maps an upright pixel (x, y) back to the stored one:
 * swap the axes first (5-8: the stored picture is on its side), then mirror
 * x and/or y.  Index 0 unused. */
static const struct { unsigned char swap, flip_x, flip_y; } moves[9] = {
    {0, 0, 0}, {0, 0, 0}, {0, 1, 0}, {0, 1, 1}, {0, 0, 1}, {1, 0, 0}, {1, 0, 1}, {1, 1, 1}, {1, 1, 0},
};

int img_orient(img_rgb *im, int orientation, const char *field, sd_err *err)
{
    if (orientation < 2 || orientation > 8 || !im->px) return 0;
    int sw = im->width, sh = im->height, swap = moves[orientation].swap;
    int flip_x = moves[orientation].flip_x, flip_y = moves[orientation].flip_y;
    int dw = swap ? sh : sw, dh = swap ? sw : sh;
    uint8_t *dst = sd_malloc((size_t)dw * dh * 3);
    if (!dst)
        return sd_errf(err, SD_ENOMEM, field ? field : "init_image", "out of memory turning a %dx%d image upright",
                       sw, sh);
    for (int y = 0; y < dh; y++) {
        for (int x = 0; x < dw; x++) {
            int sx = swap ? y : x, sy = swap ? x : y;
            if (flip_x) sx = sw - 1 - sx;
            if (flip_y) sy = sh - 1 - sy;
            memcpy(dst + ((size_t)y * dw + x) * 3, im->px + ((size_t)sy * sw + sx) * 3, 3);
        }
    }
    free(im->px);
    im->px = dst;
    im->width = dw;
    im->height = dh;
    return 1;
}
