/* codec.h — private to src/image: the per-format decoders/encoders that
 * image.c dispatches to, and the shared limit check.  Not for other modules. */
#ifndef SD_IMAGE_CODEC_H
#define SD_IMAGE_CODEC_H

#include "image.h"

/* Resolved decode limits (defaults filled in). */
typedef struct img_limits {
    int max_side;
    int64_t max_pixels;
    const char *field;
    uint8_t **alpha;   /* img_decode_opts.alpha */
} img_limits;

/* RGBA8 -> *lim->alpha (a new plane) when the caller asked for it. */
int img_keep_alpha(const img_limits *lim, const uint8_t *rgba, size_t npix, sd_err *err);

/* Refuses a declared size before any pixel allocation: SD_EINVAL for a zero
 * side, SD_ETOOLARGE over a limit.  `what` is "PNG", "JPEG", "WebP". */
int img_check_size(const img_limits *lim, const char *what, int64_t w, int64_t h, sd_err *err);

/* RGBA8 (w*h*4) -> RGB8 composited on white, in place (result in the first w*h*3 bytes). */
void img_rgba_on_white(uint8_t *px, size_t npix);

int img_png_decode(const uint8_t *data, size_t len, const img_limits *lim, img_rgb *out, sd_err *err);
int img_jpeg_decode(const uint8_t *data, size_t len, const img_limits *lim, img_rgb *out, sd_err *err);
int img_webp_decode(const uint8_t *data, size_t len, const img_limits *lim, img_rgb *out, sd_err *err);

int img_png_encode(const uint8_t *rgb, int w, int h, const char *parameters,
                   uint8_t **out, size_t *out_len, sd_err *err);
int img_jpeg_encode(const uint8_t *rgb, int w, int h, int quality, const char *parameters,
                    uint8_t **out, size_t *out_len, sd_err *err);
int img_webp_encode(const uint8_t *rgb, int w, int h, int quality, const char *parameters,
                    uint8_t **out, size_t *out_len, sd_err *err);

int img_png_read_parameters(const uint8_t *data, size_t len, char **out, sd_err *err);
int img_jpeg_read_parameters(const uint8_t *data, size_t len, char **out, sd_err *err);
int img_webp_read_parameters(const uint8_t *data, size_t len, char **out, sd_err *err);

/* The EXIF (TIFF) block a file carries: returns 1 with *tiff pointing into
 * data, 0 when there is none, -1 (err set) when the container is malformed
 * before one is found.  JPEG: the next APP1 "Exif" segment from *pos (2 =
 * after SOI), *pos moved past it, so a caller can look at each in turn. */
int img_png_exif(const uint8_t *data, size_t len, const uint8_t **tiff, size_t *tiff_len, sd_err *err);
int img_jpeg_next_exif(const uint8_t *data, size_t len, size_t *pos, const uint8_t **tiff, size_t *tiff_len,
                       sd_err *err);
int img_webp_exif(const uint8_t *data, size_t len, const uint8_t **tiff, size_t *tiff_len, sd_err *err);

/* Big-endian readers used by the chunk walkers. */
static inline uint32_t img_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint32_t img_le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

#endif
