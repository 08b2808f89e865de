/* mask_req.c — inpainting's request side (mask_req.h): a client's mask file
 * decoded as A1111 or OpenAI take it (image/mask.c), OpenAI's transparent
 * pixels as the mask, and the plane fitted to the init image (PIL's
 * LANCZOS, as A1111), inverted and checked by the engine's rule (some value
 * at least SD_MASK_REPAINT), so a mask with nothing to repaint is refused
 * before its job is queued.  No engine call: the HTTP fuzzer links it
 * without the engine. */
#include "mask_req.h"

#include <stdlib.h>

#include "../base/alloc.h"
#include "../base/resample.h"
#include "../image/image.h"

int inpaint_decode_mask(const uint8_t *data, size_t len, inpaint_mask_mode mode, const char *field, int w, int h,
                        uint8_t **out, sd_err *err)
{
    return img_mask_decode(data, len, mode == INPAINT_MASK_ALPHA, field, w, h, out, err);
}

int inpaint_mask_from_alpha(const uint8_t *alpha, int w, int h, uint8_t **out, sd_err *err)
{
    size_t n = (size_t)w * h;
    *out = NULL;
    int transparent = 0;
    for (size_t i = 0; alpha && i < n && !transparent; i++) transparent = alpha[i] == 0;
    if (!transparent) return 0;
    uint8_t *m = sd_malloc(n);
    if (!m) return sd_errf(err, SD_ENOMEM, "image", "out of memory");
    for (size_t i = 0; i < n; i++) m[i] = alpha[i] == 0 ? 255 : 0;
    *out = m;
    return 0;
}

int inpaint_set_mask(sd_request *r, uint8_t *plane, int pw, int ph, const char *field, sd_err *err)
{
    int w = r->gen.init_width, h = r->gen.init_height;
    if (pw != w || ph != h) {
        uint8_t *fit = NULL;
        int rc = sd_resample(plane, pw, ph, 1, w, h, SD_FILTER_LANCZOS, &fit, err);
        free(plane);
        if (rc) return -1;
        plane = fit;
    }
    size_t n = (size_t)w * h;
    if (r->inpainting_mask_invert)
        for (size_t i = 0; i < n; i++) plane[i] = (uint8_t)(255 - plane[i]);
    /* the engine's rule (inpaint_check): the resize leaves grey values, and
     * a mask whose white shrank below SD_MASK_REPAINT repaints nothing */
    if (!sd_mask_repaints(plane, n)) {
        free(plane);
        const char *inv = r->inpainting_mask_invert ? " and inverted (inpainting_mask_invert)" : "";
        /* said in the dialect's own rule: OpenAI's masks repaint where transparent */
        if (r->mask_mode == INPAINT_MASK_ALPHA)
            return sd_errf(err, SD_EINVAL, field, "%s has nothing to repaint: no pixel is fully transparent (alpha "
                           "0)%s (transparent = repaint)", field, inv);
        return sd_errf(err, SD_EINVAL, field, "%s has nothing to repaint: no pixel is at least half white once "
                       "fitted to the init image (%dx%d)%s (white = repaint)", field, w, h, inv);
    }
    free((uint8_t *)r->gen.mask);
    r->gen.mask = plane;
    return 0;
}
