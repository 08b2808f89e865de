/* mask_req.h — inpainting's request side (issue 18, docs/INPAINTING.md):
 * the mask as a client sends it turned into the init-sized plane the
 * engine reads (sd_gen_params.mask).  The dialects (api_seed.c) and the CLI
 * call these while decoding a request; they need no engine, so the HTTP
 * fuzzer links this file alone (jobs/inpaint.h has the run). */
#ifndef SD_JOBS_MASK_REQ_H
#define SD_JOBS_MASK_REQ_H

#include <stddef.h>
#include <stdint.h>

#include "request.h"

typedef enum {
    INPAINT_MASK_LUMA = 0,   /* seed API, A1111, CLI: white = repaint (an RGBA file with transparency: its alpha) */
    INPAINT_MASK_ALPHA,      /* OpenAI: the alpha channel, transparent (0) = repaint; same size as the image */
} inpaint_mask_mode;

/* A mask file (PNG/JPEG/WebP) as a w x h plane (the init image's size as
 * sent), 255 = repaint, 0 = keep.  LUMA: A1111's create_binary_mask (an
 * RGBA file whose alpha is not all opaque gives its alpha, else PIL's
 * luminance; > 128 is 255), resized to w x h when its size differs.
 * ALPHA: a file without an alpha channel, or of another size, is refused.
 * 0, or -1 + SD_EINVAL / SD_ETOOLARGE / SD_ENOMEM naming `field`. */
int inpaint_decode_mask(const uint8_t *data, size_t len, inpaint_mask_mode mode, const char *field, int w, int h,
                        uint8_t **out, sd_err *err);
/* OpenAI's rule for an edit without a mask: the image's own alpha (w x h,
 * NULL = none) is the mask when some pixel is fully transparent; *out NULL
 * (plain img2img) otherwise.  0 or -1 (out of memory). */
int inpaint_mask_from_alpha(const uint8_t *alpha, int w, int h, uint8_t **out, sd_err *err);
/* The plane (pw x ph, taken) fitted to the init image as finally decoded
 * (gen.init_width x init_height), inverted when inpainting_mask_invert, and
 * stored as r->gen.mask; a mask with nothing left to repaint (no value
 * >= SD_MASK_REPAINT, the engine's rule: the resize leaves grey values) is
 * refused (SD_EINVAL naming `field`).  0 or -1. */
int inpaint_set_mask(sd_request *r, uint8_t *plane, int pw, int ph, const char *field, sd_err *err);

#endif
