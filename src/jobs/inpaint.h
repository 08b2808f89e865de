/* inpaint.h — inpainting's pixel side (issue 18, docs/INPAINTING.md): the
 * mask as a client sends it turned into the init-sized plane the engine
 * reads (sd_gen_params.mask), and the run of one inpainting request around
 * sd_generate with AUTOMATIC1111's steps (blur, "only masked" crop, fill,
 * overlay; image/mask.c).  Every dialect and the CLI use these. */
#ifndef SD_JOBS_INPAINT_H
#define SD_JOBS_INPAINT_H

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
 * stored as r->gen.mask; a mask with nothing left to repaint is refused
 * (SD_EINVAL naming `field`).  0 or -1. */
int inpaint_set_mask(sd_request *r, uint8_t *plane, int pw, int ph, const char *field, sd_err *err);
/* Generates p (r's img2img with p->mask set, as gen_run passes it) with
 * A1111's pixel steps around the engine: mask_blur, inpaint_full_res
 * (crop around the mask, grown by the padding to the output's aspect,
 * generated at the output size and pasted back), inpainting_fill, and the
 * overlay of the original's unmasked pixels (mask_overlay).  Without a mask
 * it is sd_generate.  out[0..p->n) are the init image's size. */
int inpaint_generate(sd_engine *e, const sd_request *r, const sd_gen_params *p, sd_image *out, sd_err *err);

#endif
