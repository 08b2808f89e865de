/* image.h — pictures in and out of sdserve: base64 init images, PNG / JPEG /
 * WebP decoding to RGB8 and encoding from RGB8 with generation parameters
 * embedded, resizing, and the AUTOMATIC1111-style "parameters" text.
 *
 * Everything works on memory buffers (no files) and reports failure through
 * sd_err (base/err.h); nothing a client sends can crash or abort here.
 * Decoders check the declared size against limits BEFORE allocating pixels
 * (decompression bombs) and trust magic bytes, never a client's content type.
 * Names are img_* so they do not clash with the engine's sd_image. */
#ifndef SD_IMAGE_H
#define SD_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../base/err.h"

/* ---- pixels ------------------------------------------------------------ */

/* An RGB8 picture: width*height*3 bytes, rows top to bottom, no padding. */
typedef struct img_rgb {
    int width, height;
    uint8_t *px;          /* malloc'd; img_rgb_free() */
} img_rgb;
void img_rgb_free(img_rgb *im);   /* frees px, zeroes the struct; NULL-safe */

/* ---- formats ----------------------------------------------------------- */

typedef enum { IMG_UNKNOWN = 0, IMG_PNG, IMG_JPEG, IMG_WEBP } img_format;

/* From the first bytes (magic numbers), never from a client's claim. */
img_format img_sniff(const uint8_t *data, size_t len);
/* "png" / "jpeg" / "jpg" / "webp" (case-insensitive) -> format; IMG_UNKNOWN otherwise. */
img_format img_format_from_name(const char *name);
const char *img_format_name(img_format f);   /* "png", "jpeg", "webp", "unknown" */
const char *img_format_mime(img_format f);   /* "image/png", ... , "application/octet-stream" */
const char *img_format_ext(img_format f);    /* "png", "jpg", "webp", "bin" (no dot) */

/* ---- base64 (init_image) ------------------------------------------------ */

/* Decodes `len` bytes of text (need not be NUL-terminated) into a malloc'd
 * buffer.  Accepts an optional "data:image/...;base64," prefix, the standard
 * and URL-safe alphabets (even mixed), missing '=' padding, and ignores
 * \r \n \t \f \v.  A SPACE is read as '+' (form bodies whose '+' was not
 * percent-encoded).  Any other byte -> SD_EINVAL naming `field` (NULL =
 * "init_image") and the byte offset; more than `max_out` decoded bytes ->
 * SD_ETOOLARGE.  Returns 0, or -1 with *out = NULL. */
int img_base64_decode(const char *text, size_t len, size_t max_out, const char *field,
                      uint8_t **out, size_t *out_len, sd_err *err);
/* Standard alphabet with padding; malloc'd, NUL-terminated; NULL on OOM. */
char *img_base64_encode(const uint8_t *data, size_t len, size_t *out_len);

/* ---- decoding ------------------------------------------------------------ */

#define IMG_DEFAULT_MAX_SIDE   8192
#define IMG_DEFAULT_MAX_PIXELS (8192LL * 8192LL / 2)   /* 32 Mpx = 96 MiB of RGB */

typedef struct img_decode_opts {
    int max_side;          /* 0 = IMG_DEFAULT_MAX_SIDE */
    int64_t max_pixels;    /* 0 = IMG_DEFAULT_MAX_PIXELS */
    const char *field;     /* field named in errors; NULL = "init_image" */
    /* non-NULL = *alpha receives the file's alpha plane (w*h bytes,
     * malloc'd, upright like the pixels), or NULL when it has no alpha
     * channel (JPEG, RGB PNG/WebP without tRNS) */
    uint8_t **alpha;
} img_decode_opts;

/* PNG / JPEG / WebP (sniffed) -> RGB8.  Alpha is composited on white;
 * grayscale, palette, 16-bit, interlaced PNG and CMYK JPEG are converted;
 * an EXIF Orientation 2-8 (JPEG APP1, WebP EXIF, PNG eXIf) is applied, so
 * the result is upright (width and height swap for 5-8) and the limits
 * apply to the stored size, which has the same sides.
 * Errors: SD_EINVAL (not an image / unsupported format / corrupt or truncated
 * data), SD_ETOOLARGE (declared size over a limit; nothing allocated),
 * SD_ENOMEM.  `opts` may be NULL.  Returns 0 or -1 (out zeroed). */
int img_decode(const uint8_t *data, size_t len, const img_decode_opts *opts,
               img_rgb *out, sd_err *err);

/* EXIF Orientation of a PNG / JPEG / WebP file, 1..8; 1 (as stored) when
 * there is no EXIF block or it is malformed. */
int img_orientation(const uint8_t *data, size_t len);
/* Turns `im` upright for EXIF orientation 2..8 (mirrors, 180 degrees, and
 * the quarter turns that swap width and height) into a new pixel buffer.
 * Returns 1 if changed, 0 for 1 or any other value, -1 on OOM (im kept;
 * `field` named, NULL = "init_image"). */
int img_orient(img_rgb *im, int orientation, const char *field, sd_err *err);

/* ---- encoding ------------------------------------------------------------ */

typedef struct img_encode_opts {
    img_format format;        /* IMG_PNG (default when IMG_UNKNOWN), IMG_JPEG, IMG_WEBP */
    int quality;              /* JPEG/WebP 1..100; 0 = 90 */
    const char *parameters;   /* A1111 text, or NULL: PNG tEXt/iTXt "parameters",
                                 JPEG/WebP EXIF UserComment */
} img_encode_opts;

/* RGB8 -> file bytes in a malloc'd buffer.  Returns 0 or -1. */
int img_encode(const uint8_t *rgb, int width, int height, const img_encode_opts *opts,
               uint8_t **out, size_t *out_len, sd_err *err);

/* Reads the "parameters" text back from an encoded file (PNG tEXt / iTXt /
 * zTXt, or EXIF UserComment in JPEG APP1 / WebP EXIF chunk).  *out is a
 * malloc'd UTF-8 string, or NULL with return 0 when there is none.
 * Returns -1 only on malformed data or OOM. */
int img_read_parameters(const uint8_t *data, size_t len, char **out, sd_err *err);

/* ---- EXIF (used by the JPEG and WebP writers and orient.c; exposed for tests) */

/* A minimal big-endian TIFF/EXIF block (no "Exif\0\0" prefix): IFD0 ->
 * ExifIFD -> UserComment, "UNICODE\0" + UTF-16BE as AUTOMATIC1111 writes it.
 * Text longer than fits in a JPEG APP1 segment is cut at a character
 * boundary.  Returns a malloc'd buffer or NULL on OOM. */
uint8_t *img_exif_build(const char *utf8, size_t *out_len);
/* Finds UserComment in a TIFF block (with or without "Exif\0\0") and returns
 * it as malloc'd UTF-8 (NULL + 0 when absent; -1 when malformed/OOM). */
int img_exif_user_comment(const uint8_t *tiff, size_t len, char **out, sd_err *err);
/* IFD0's Orientation (tag 0x0112) in a TIFF block (with or without
 * "Exif\0\0"): 1..8, or 1 when absent, out of range or malformed.  Reads
 * IFD0 only, with every offset checked: no chain to loop on. */
int img_exif_orientation(const uint8_t *tiff, size_t len);

/* ---- resizing ------------------------------------------------------------ */

/* If a side exceeds max_side, scales `im` down in place to fit with PIL's
 * Lanczos (base/resample.h), keeping the aspect ratio (sides rounded, at
 * least 1).  Returns 1 if resized, 0 if unchanged, -1 on error.  Resizing
 * to a given size: sd_resample(..., SD_FILTER_LANCZOS, ...) directly. */
int img_fit_within(img_rgb *im, int max_side, sd_err *err);

/* ---- inpainting masks (mask.c) -------------------------
 * One byte per pixel, 255 = repaint, 0 = keep, rows top to bottom.  These
 * are AUTOMATIC1111's pixel steps (modules/processing.py, masking.py). */

/* A mask file (PNG/JPEG/WebP) as a w x h plane (the image's size as sent),
 * 255 = repaint.  openai 0: A1111's create_binary_mask (an RGBA file whose
 * alpha is not all opaque gives its alpha, else PIL's luminance; > 128 is
 * 255), resized to w x h when its size differs.  openai 1: the alpha
 * channel, 0 = repaint; a file without alpha, or of another size, is
 * refused.  0, or -1 + SD_EINVAL / SD_ETOOLARGE / SD_ENOMEM naming field
 * (jobs/mask_req.h inpaint_decode_mask is the request-side name). */
int img_mask_decode(const uint8_t *data, size_t len, int openai, const char *field, int w, int h, uint8_t **out,
                    sd_err *err);
/* PIL's convert('L') of RGB8: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. */
void img_luminance(const uint8_t *rgb, size_t n, uint8_t *out);
/* A1111's mask blur, in place: cv2.GaussianBlur along x with sigma sx
 * (kernel 2*int(2.5*sx + 0.5) + 1, border reflect-101), then along y with
 * sy; a sigma of 0 skips its axis.  Returns 0 or -1 (out of memory). */
int img_mask_blur(uint8_t *m, int w, int h, int sx, int sy, sd_err *err);
/* A1111's get_crop_region_v2: the box [x1, y1, x2, y2) of the non-zero
 * pixels grown by pad on each side and clipped to the picture; 0 when the
 * mask is all zero (box untouched), else 1. */
int img_mask_box(const uint8_t *m, int w, int h, int pad, int box[4]);
/* A1111's expand_crop_region: the box grown along one axis to the aspect
 * pw:ph of the processing size, kept inside iw x ih. */
void img_box_expand(int box[4], int pw, int ph, int iw, int ih);
/* The box's pixels of a w-wide picture of ch channels, into a new buffer. */
int img_crop(const uint8_t *src, int w, int ch, const int box[4], uint8_t **out, sd_err *err);
/* Pastes a (box's size) picture of ch channels into dst (w wide) at the box. */
void img_paste(uint8_t *dst, int w, int ch, const int box[4], const uint8_t *src);
/* A1111's masking.fill, in place: the masked area filled from the colours
 * around it, blurred at radii 256, 64, 16, 4, 2, 0 (PIL GaussianBlur: three
 * box passes) and alpha-composited.  Returns 0 or -1. */
int img_mask_fill(uint8_t *rgb, const uint8_t *m, int w, int h, sd_err *err);
/* A1111's apply_overlay: orig composited over rgb with alpha 255 - m (PIL's
 * alpha_composite), n pixels: where m is 0 rgb becomes orig exactly. */
void img_mask_overlay(uint8_t *rgb, const uint8_t *orig, const uint8_t *m, size_t n);

/* ---- AUTOMATIC1111 "parameters" text ------------------------------------ */

/* Inpainting's entries in the infotext (A1111 v1.10.1 processing.py, img2img
 * with a mask), in its order: "Mask mode: Inpaint not masked" (inverted),
 * "Mask blur: N" (N > 0: x and y equal and not both 0), "Inpaint area: Only
 * masked, Masked area padding: P", "Masked content: fill | latent noise |
 * latent nothing" (not for "original").  on 0: none of them. */
typedef struct img_inpaint_info {
    int on;
    int inverted;
    int mask_blur;              /* 0 -> omitted */
    int only_masked, padding;
    const char *masked_content; /* NULL -> omitted */
} img_inpaint_info;

typedef struct img_gen_info {
    const char *prompt;
    const char *negative;       /* NULL or "" -> no "Negative prompt:" line */
    int steps;
    const char *sampler;        /* A1111 name, e.g. "DPM++ 2M" (jobs/request.h req_sampler_label) */
    const char *schedule;       /* "Schedule type: Karras" right after the sampler; NULL -> omitted */
    const char *spacing;        /* "Timestep spacing: trailing" (diffusers samplers); NULL -> omitted */
    float cfg;
    uint64_t seed;
    int width, height;
    const char *model_hash;     /* NULL/"" -> omitted */
    const char *model_name;     /* NULL/"" -> omitted */
    const char *family;         /* "Model family: sdxl" after Model (req_gen_family); NULL/"" -> omitted */
    const char *vae_hash;       /* the VAE override's (A1111 "VAE hash"); NULL/"" -> omitted */
    const char *vae_name;       /* its file name (A1111 "VAE"); NULL/"" -> omitted */
    float denoise;              /* img2img strength; < 0 -> omitted (txt2img) */
    int clip_skip;              /* "Clip skip: N" when N > 1 (as A1111 writes it) */
    const char *lora_hashes;    /* "name: hash, ..." -> Lora hashes: "..." (A1111); NULL/"" -> omitted */
    /* SDXL's size conditioning as the request gave it (sd_gen_params); 0 ->
     * omitted (the default; A1111 writes none of these, its crop is a setting) */
    int orig_width, orig_height, crop_top, crop_left, target_width, target_height;
    /* hires fix (A1111's entries, before Lora hashes): "Hires upscale: X" when
     * hr_scale > 0 and no resize, else "Hires resize: WxH" when hr_resize is
     * set; "Hires steps: N" when N > 0; "Hires upscaler: U" when U set */
    float hr_scale;
    int hr_resize_x, hr_resize_y, hr_steps;
    const char *hr_upscaler;    /* A1111's name ("Latent"); NULL -> no hires entries */
    img_inpaint_info inpaint;   /* after the SDXL entries, before the hires ones */
    const char *vae_decoder;    /* "VAE Decoder: TAESD" last (A1111's extra_generation_params
                                 * entry, set at the decode); NULL/"" -> omitted */
} img_gen_info;

/* "<prompt>\nNegative prompt: <neg>\nSteps: N, Sampler: S, CFG scale: X,
 * Seed: S, Size: WxH, Model hash: H, Model: M[, Model family: F][, VAE hash: V, VAE: N][, Denoising strength: D]
 * [, Clip skip: N][, Timestep spacing: T][, Original width: N, ..., Target height: N]
 * [, Mask mode: ..][, Mask blur: N][, Inpaint area: Only masked, Masked area padding: P][, Masked content: C]
 * [, Hires upscale: X | Hires resize: WxH][, Hires steps: N][, Hires upscaler: U]
 * [, Lora hashes: "name: hash, ..."][, VAE Decoder: TAESD]", with ", Schedule type: K"
 * after the sampler when given (A1111 v1.10.1's order).
 * Values holding ',' ':' '"' or a newline are quoted as A1111 does.
 * Returns a malloc'd string or NULL on OOM. */
char *img_a1111_parameters(const img_gen_info *g);

#endif
