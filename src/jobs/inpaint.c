/* inpaint.c — inpainting's pixel side (inpaint.h): AUTOMATIC1111's steps
 * around sd_generate (StableDiffusionProcessingImg2Img .init and
 * apply_overlay, v1.10.1), built from image/mask.c; "only masked" crops
 * resized with PIL's LANCZOS as A1111 (base/resample.h).  The masks from
 * files: mask_req.c. */
#include "inpaint.h"

#include <stdlib.h>
#include <string.h>

#include "../base/alloc.h"
#include "../base/resample.h"
#include "../image/image.h"

/* ---- the run ------------------------------------------------------------- */

/* One run's pixels: what the engine gets (work_*) and what the overlay
 * needs; box = the "only masked" crop, cropped = 0 for the whole picture. */
typedef struct inpaint_run {
    int w, h;
    uint8_t *blurred;      /* the blurred mask, w x h */
    uint8_t *overlay;      /* the overlay's mask (A1111's mask_for_overlay) */
    uint8_t *work_rgb, *work_mask;
    int box[4], cropped;
} inpaint_run;

static void run_free(inpaint_run *u)
{
    free(u->blurred);
    free(u->overlay);
    free(u->work_rgb);
    free(u->work_mask);
}

/* The box of a w x h picture of ch channels, cropped and resized to w x h. */
static int crop_to_size(const uint8_t *src, int w, int h, int ch, const int box[4], uint8_t **out, sd_err *err)
{
    uint8_t *c = NULL;
    int bw = box[2] - box[0], bh = box[3] - box[1];
    if (img_crop(src, w, ch, box, &c, err)) return -1;
    int rc = sd_resample(c, bw, bh, ch, w, h, SD_FILTER_LANCZOS, out, err);   /* A1111's resize_image(2, ...) */
    free(c);
    return rc;
}

/* A w x h plane of ch channels as the engine gets it: the crop resized to
 * w x h ("only masked"), else a copy. */
static int work_plane(const inpaint_run *u, const uint8_t *src, int ch, uint8_t **out, sd_err *err)
{
    if (u->cropped) return crop_to_size(src, u->w, u->h, ch, u->box, out, err);
    size_t n = (size_t)u->w * u->h * ch;
    if (!(*out = sd_malloc(n))) return sd_errf(err, SD_ENOMEM, "mask_image", "out of memory");
    memcpy(*out, src, n);
    return 0;
}

/* A1111's init: blur; the overlay mask; the crop of "only masked"; fill. */
static int prepare(const sd_request *r, const sd_gen_params *p, inpaint_run *u, sd_err *err)
{
    size_t n = (size_t)u->w * u->h;
    u->blurred = sd_malloc(n);
    u->overlay = sd_malloc(n);
    if (!u->blurred || !u->overlay) return sd_errf(err, SD_ENOMEM, "mask_image", "out of memory");
    memcpy(u->blurred, p->mask, n);
    int sx, sy;
    req_mask_blur(r, &sx, &sy);
    if (img_mask_blur(u->blurred, u->w, u->h, sx, sy, err)) return -1;
    for (size_t i = 0; i < n; i++)   /* whole picture: the blurred mask doubled; only masked: as blurred */
        u->overlay[i] = r->inpaint_full_res ? u->blurred[i] : (uint8_t)(u->blurred[i] > 127 ? 255 : 2 * u->blurred[i]);
    u->cropped = r->inpaint_full_res && img_mask_box(u->blurred, u->w, u->h, r->inpaint_full_res_padding, u->box);
    if (u->cropped) img_box_expand(u->box, u->w, u->h, u->w, u->h);
    if (work_plane(u, p->init_rgb, 3, &u->work_rgb, err) || work_plane(u, u->blurred, 1, &u->work_mask, err)) return -1;
    /* a thin mask blurred below 128 everywhere would leave the engine nothing
     * to repaint (it binarizes at 128; A1111 then silently repaints
     * nothing): the engine gets the sharp mask instead */
    int keep = 1;
    for (size_t i = 0; i < n && keep; i++) keep = u->work_mask[i] < 128;
    if (keep) {
        free(u->work_mask);
        u->work_mask = NULL;
        if (work_plane(u, p->mask, 1, &u->work_mask, err)) return -1;
    }
    /* A1111 fills for every choice but 1 "original" (2 and 3 then replace the latents) */
    return r->inpainting_fill != 1 ? img_mask_fill(u->work_rgb, u->work_mask, u->w, u->h, err) : 0;
}

/* One output: the crop's result pasted back, then the overlay. */
static int finish(const sd_request *r, const sd_gen_params *p, const inpaint_run *u, sd_image *im, sd_err *err)
{
    if (u->cropped) {
        int bw = u->box[2] - u->box[0], bh = u->box[3] - u->box[1];
        uint8_t *small = NULL, *full = sd_malloc((size_t)u->w * u->h * 3);
        if (!full) return sd_errf(err, SD_ENOMEM, "mask_image", "out of memory");
        if (sd_resample(im->rgb, im->width, im->height, 3, bw, bh, SD_FILTER_LANCZOS, &small, err)) {
            free(full);
            return -1;
        }
        memcpy(full, p->init_rgb, (size_t)u->w * u->h * 3);
        img_paste(full, u->w, 3, u->box, small);
        free(small);
        free(im->rgb);
        im->rgb = full;
        im->width = u->w;
        im->height = u->h;
    }
    if (r->mask_overlay) img_mask_overlay(im->rgb, p->init_rgb, u->overlay, (size_t)u->w * u->h);
    return 0;
}

static sd_inpaint_fill engine_fill(int a1111_fill)
{
    return a1111_fill == 2 ? SD_FILL_LATENT_NOISE : a1111_fill == 3 ? SD_FILL_LATENT_NOTHING : SD_FILL_ORIGINAL;
}

int inpaint_generate(sd_engine *e, const sd_request *r, const sd_gen_params *p, sd_image *out, sd_err *err)
{
    if (!p->mask || !p->init_rgb) return sd_generate(e, p, out, err);
    inpaint_run u = {.w = p->init_width, .h = p->init_height};
    int rc = prepare(r, p, &u, err);
    sd_gen_params q = *p;
    q.init_rgb = u.work_rgb;
    q.mask = u.work_mask;
    q.inpaint_fill = engine_fill(r->inpainting_fill);
    if (!rc) rc = sd_generate(e, &q, out, err);
    int made = !rc;
    for (int i = 0; !rc && i < p->n; i++) rc = finish(r, p, &u, &out[i], err);
    for (int i = 0; rc && made && i < p->n; i++) sd_image_free(&out[i]);
    if (rc && !err->code) sd_errf(err, SD_EINTERNAL, "mask_image", "inpainting failed");
    run_free(&u);
    return rc;
}
