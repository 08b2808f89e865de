/* inpaint.h — inpainting's pixel side (issue 18, docs/INPAINTING.md): the
 * run of one inpainting request around sd_generate with AUTOMATIC1111's
 * steps (blur, "only masked" crop, fill, overlay; image/mask.c).  The
 * request side (a client's mask -> the engine's plane) is mask_req.h,
 * included here. */
#ifndef SD_JOBS_INPAINT_H
#define SD_JOBS_INPAINT_H

#include <stddef.h>
#include <stdint.h>

#include "mask_req.h"
#include "request.h"

/* Generates p (r's img2img with p->mask set, as gen_run passes it) with
 * A1111's pixel steps around the engine: mask_blur, inpaint_full_res
 * (crop around the mask, grown by the padding to the output's aspect,
 * generated at the output size and pasted back), inpainting_fill, and the
 * overlay of the original's unmasked pixels (mask_overlay).  Without a mask
 * it is sd_generate.  out[0..p->n) are the init image's size. */
int inpaint_generate(sd_engine *e, const sd_request *r, const sd_gen_params *p, sd_image *out, sd_err *err);

#endif
