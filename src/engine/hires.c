/* hires.c — A1111's "hires fix" (docs/SERVER.md "Hires fix"): a txt2img
 * pass at the base size, an upscale, and an img2img pass at the hires size
 * with the same seed and prompts, as A1111 v1.10's
 * StableDiffusionProcessingTxt2Img.sample_hr_pass:
 *   - latent upscalers ("Latent" = torch bilinear, "Latent (nearest-exact)"):
 *     pass 1 is not decoded; its SD-space latent is interpolated to the
 *     hires latent size and pass 2 starts from it (no VAE encode); its
 *     noise is the seed's first draw at the new shape (A1111's fresh
 *     ImageRNG);
 *   - Lanczos: pass 1 is decoded to RGB8 exactly as a plain run's final
 *     picture, resized with PIL's Lanczos (base/resample.h) and given to
 *     pass 2 as an ordinary init image, so a hires run equals txt2img ->
 *     Lanczos resize -> img2img through the public endpoints.
 * Pass 2 runs hr_steps (0: steps) at hr_strength with the img2img path's
 * strength rules (k-diffusion: t_enc = int(min(strength, 0.999) * steps);
 * A1111's img2img_fix_steps default is off), one image at a time (image i:
 * seed + i).  Progress counts both passes.  With an inpainting (9-channel)
 * UNet pass 2's extra channels are built at the hires size as A1111's
 * sample_hr_pass does at inpainting_mask_weight 1: an all-ones mask and
 * the latent of a zero (mid-grey) image (txt2img_image_conditioning for the
 * latent upscalers; img2img_image_conditioning of the upscaled picture with
 * no mask for Lanczos, the same tensor); the pipeline's start_inpaint runs
 * the latent path from the upscaled latent. */
#include "pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/alloc.h"
#include "../base/resample.h"
#include "samplers/kdiff_sched.h"
#include "samplers/samplers.h"

/* torch's source index of a destination index, align_corners=False: the
 * scale in float as torch's CPU kernels (area_pixel_compute_scale). */
static float hr_src_coord(int dst, float scale)
{
    float s = scale * (dst + 0.5f) - 0.5f;
    return s < 0 ? 0 : s;
}

static int hr_nearest_exact(int dst, float scale, int in)
{
    int s = (int)floorf((dst + 0.5f) * scale);
    return s < in - 1 ? s : in - 1;
}

static void hr_bilinear(const float *in, int C, int h, int w, float *out, int oh, int ow)
{
    const float sy = (float)h / oh, sx = (float)w / ow;
    for (int y = 0; y < oh; y++) {
        float fy = hr_src_coord(y, sy);
        int y0 = (int)fy, y1 = y0 + 1 < h ? y0 + 1 : h - 1;
        float ly = fy - y0;
        for (int x = 0; x < ow; x++) {
            float fx = hr_src_coord(x, sx);
            int x0 = (int)fx, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
            float lx = fx - x0;
            for (int c = 0; c < C; c++) {
                const float *p = in + (size_t)c * h * w;
                out[((size_t)c * oh + y) * ow + x] =
                    (1 - ly) * ((1 - lx) * p[y0 * w + x0] + lx * p[y0 * w + x1]) +
                    ly * ((1 - lx) * p[y1 * w + x0] + lx * p[y1 * w + x1]);
            }
        }
    }
}

void sd_hr_upscale_latent(sd_hr_upscaler mode, const float *in, int C, int h, int w, float *out, int oh,
                          int ow)
{
    if (mode == SD_HR_LATENT) {
        hr_bilinear(in, C, h, w, out, oh, ow);
        return;
    }
    const float sy = (float)h / oh, sx = (float)w / ow;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
                out[((size_t)c * oh + y) * ow + x] =
                    in[((size_t)c * h + hr_nearest_exact(y, sy, h)) * w + hr_nearest_exact(x, sx, w)];
}

/* The engine's own limits on the hires members, named as sd_gen_params does. */
static int hr_check(const sd_gen_params *p, sd_err *err)
{
    if ((unsigned)p->hr_upscaler > SD_HR_LANCZOS)
        return sd_errf(err, SD_EINVAL, "hr_upscaler", "unknown hires upscaler %d", (int)p->hr_upscaler);
    if (p->init_rgb)
        return sd_errf(err, SD_EINVAL, "hr_upscaler", "hires fix is for txt2img only, not with an init image");
    if (p->width < 1 || p->height < 1 || p->width > 4096 || p->height > 4096)
        return sd_errf(err, SD_EINVAL, p->width < 1 || p->width > 4096 ? "width" : "height",
                       "width and height must be 1..4096, got %dx%d", p->width, p->height);
    if (p->hr_width < 1 || p->hr_height < 1 || p->hr_width > 4096 || p->hr_height > 4096)
        return sd_errf(err, SD_EINVAL, p->hr_width < 1 || p->hr_width > 4096 ? "hr_width" : "hr_height",
                       "the hires size must be 1..4096 on a side, got %dx%d", p->hr_width, p->hr_height);
    if (p->hr_steps < 0 || p->hr_steps > SD_MAX_STEPS)
        return sd_errf(err, SD_EINVAL, "hr_steps", "hr_steps must be 0..%d, got %d", SD_MAX_STEPS, p->hr_steps);
    if (!(p->hr_strength > 0 && p->hr_strength <= 1))
        return sd_errf(err, SD_EINVAL, "hr_strength", "hr_strength must be in (0, 1], got %g", p->hr_strength);
    return 0;
}

/* Progress and previews over both passes: pass 1's steps, then each
 * image's pass 2, one count from 1 to t1 + n·t2. */
typedef struct hr_progress {
    const sd_gen_params *p;
    int pass;        /* 1 or 2 */
    int done;        /* steps reported before the current run */
    int t1, t2;      /* pass 1's total; pass 2's per image */
} hr_progress;

/* The count over both passes of this pass's step of total; *all = the run's total. */
static int hr_count(hr_progress *h, int step, int total, int *all)
{
    if (h->pass == 1) h->t1 = total;
    else h->t2 = total;
    *all = h->t1 + h->p->n * h->t2;
    return h->done + step;
}

static int hr_on_step(void *ud, int step, int total)
{
    hr_progress *h = ud;
    int all, at = hr_count(h, step, total, &all);
    return h->p->progress ? h->p->progress(h->p->progress_ud, at, all) : 0;
}

/* A pass's preview, counted as its progress. */
static void hr_on_preview(void *ud, int step, int total, const sd_image *img)
{
    hr_progress *h = ud;
    int all, at = hr_count(h, step, total, &all);
    h->p->preview(h->p->preview_ud, at, all, img);
}

/* A pass's parameters report progress and previews through h. */
static void hr_hook(sd_gen_params *q, hr_progress *h)
{
    q->progress = hr_on_step;
    q->progress_ud = h;
    if (h->p->preview) {
        q->preview = hr_on_preview;
        q->preview_ud = h;
    }
}

/* Pass 2 of image i from `init_rgb` (Lanczos) or the upscaled latent `lat`. */
static int hr_pass2(sd_engine *e, const sd_gen_params *p, hr_progress *h, int i, const uint8_t *init_rgb,
                    const float *lat, sd_image *out, sd_err *err)
{
    sd_gen_params p2 = *p;
    p2.hr_upscaler = SD_HR_NONE;
    p2.n = 1;
    p2.seed = p->seed + (uint64_t)i;
    p2.steps = p->hr_steps ? p->hr_steps : p->steps;
    p2.strength = p->hr_strength;
    p2.width = p2.init_width = p->hr_width;
    p2.height = p2.init_height = p->hr_height;
    p2.init_rgb = init_rgb;
    hr_hook(&p2, h);
    sd_gen_debug d = {.init_latent = lat, .image0 = i};   /* (lat NULL: from init_rgb) */
    int rc = sd_generate_debug(e, &p2, out, &d, err);
    h->done += h->t2;
    return rc;
}

/* The Lanczos path: each pass-1 picture resized, then pass 2 from it. */
static int hr_lanczos(sd_engine *e, const sd_gen_params *p, hr_progress *h, sd_image *first, sd_image *out,
                      sd_err *err)
{
    for (int i = 0; i < p->n; i++) {
        uint8_t *big = NULL;
        if (sd_resample(first[i].rgb, first[i].width, first[i].height, 3, p->hr_width, p->hr_height,
                        SD_FILTER_LANCZOS, &big, err))
            return -1;
        sd_image_free(&first[i]);
        int rc = hr_pass2(e, p, h, i, big, NULL, &out[i], err);
        free(big);
        if (rc) return -1;
    }
    return 0;
}

/* The latent path: pass-1 latents [n, C, lh, lw] interpolated, pass 2 from them. */
static int hr_latent(sd_engine *e, const sd_gen_params *p, hr_progress *h, const float *lat, int C, int lh,
                     int lw, sd_image *out, sd_err *err)
{
    int hw, hh;
    sd_latent_size(e, p->hr_width, p->hr_height, &hw, &hh);
    float *up = sd_malloc(sizeof(float) * C * hh * hw);
    if (!up) return sd_errf(err, SD_ENOMEM, NULL, "out of memory for the hires latent");
    int rc = 0;
    for (int i = 0; i < p->n && !rc; i++) {
        sd_hr_upscale_latent(p->hr_upscaler, lat + (size_t)i * C * lh * lw, C, lh, lw, up, hh, hw);
        rc = hr_pass2(e, p, h, i, NULL, up, &out[i], err);
    }
    free(up);
    return rc;
}

int sd_hires_generate(sd_engine *e, const sd_gen_params *p, sd_image *out, sd_err *err)
{
    if (hr_check(p, err)) return -1;
    if (p->n < 1 || p->n > 64) return sd_errf(err, SD_EINVAL, "n", "the number of images must be 1..64, got %d", p->n);
    sd_model_info mi;
    sd_engine_info(e, &mi);
    int lw, lh, C = mi.latent_channels;
    sd_latent_size(e, p->width, p->height, &lw, &lh);
    const int latent = p->hr_upscaler != SD_HR_LANCZOS;
    hr_progress h = {.p = p, .pass = 1, .t2 = sd_hires_pass2_steps(p)};
    sd_gen_params p1 = *p;
    p1.hr_upscaler = SD_HR_NONE;
    hr_hook(&p1, &h);
    sd_gen_debug d = {.latent_only = latent};
    sd_image *first = sd_calloc((size_t)p->n, sizeof *first);
    if (latent) d.final_latent = sd_malloc(sizeof(float) * p->n * C * lh * lw);
    for (int i = 0; i < p->n; i++) out[i].rgb = NULL;
    int rc = -1;
    if (!first || (latent && !d.final_latent)) {
        sd_errf(err, SD_ENOMEM, NULL, "out of memory for hires fix's first pass");
        goto out;
    }
    if (sd_generate_debug(e, &p1, first, &d, err)) goto out;
    h.done = h.t1;
    h.pass = 2;
    rc = latent ? hr_latent(e, p, &h, d.final_latent, d.lat_c, d.lat_h, d.lat_w, out, err)
                : hr_lanczos(e, p, &h, first, out, err);
out:
    if (rc)
        for (int i = 0; i < p->n; i++) sd_image_free(&out[i]);
    for (int i = 0; first && i < p->n; i++) sd_image_free(&first[i]);
    free(first);
    free(d.final_latent);
    return rc;
}
