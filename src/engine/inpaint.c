/* inpaint.c — an inpainting run's masks, latents and blends (inpaint.h):
 * diffusers' StableDiffusionInpaintPipeline (v0.25.1) for the
 * diffusers-semantics samplers, AUTOMATIC1111's img2img inpainting (v1.10.1
 * processing.py, sd_samplers_cfg_denoiser.py) for the k-diffusion runs.
 * docs/INPAINTING.md "Engine" states the rules. */
#include "inpaint.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../base/alloc.h"
#include "../base/resample.h"

#define MASK_HALF SD_MASK_REPAINT   /* value/255 >= 0.5 (diffusers' binarize, A1111's round): repaint */

int inpaint_check(const sd_gen_params *p, sd_err *err)
{
    if (!p->mask) return 0;
    if (!p->init_rgb)
        return sd_errf(err, SD_EINVAL, "mask", "a mask needs an init image: it marks the part of that image to "
                       "repaint");
    if ((unsigned)p->inpaint_fill > SD_FILL_LATENT_NOTHING)
        return sd_errf(err, SD_EINVAL, "inpaint_fill", "unknown inpainting fill %d", (int)p->inpaint_fill);
    if (p->init_width < 1 || p->init_height < 1) return 0;   /* check_params names the init image */
    if (sd_mask_repaints(p->mask, (size_t)p->init_width * p->init_height)) return 0;
    return sd_errf(err, SD_EINVAL, "mask", "the mask has nothing to repaint: no pixel is at least half white "
                   "(white = repaint, black = keep)");
}

/* ---- masks --------------------------------------------------------------- */

/* The request's mask at PW x PH, padded right/bottom by edge repeat as the
 * init image is; all 255 without one (a 9-channel UNet's default). */
static uint8_t *pixel_mask(const sd_gen_params *p, int PW, int PH)
{
    uint8_t *m = sd_malloc((size_t)PW * PH);
    if (!m) return NULL;
    for (int y = 0; y < PH; y++)
        for (int x = 0; x < PW; x++) {
            int sy = y < p->init_height ? y : p->init_height - 1, sx = x < p->init_width ? x : p->init_width - 1;
            m[(size_t)y * PW + x] = p->mask ? p->mask[(size_t)sy * p->init_width + sx] : 255;
        }
    return m;
}

/* F.interpolate(binarized mask, size=(lh, lw)), mode nearest: cell (i, j)
 * takes pixel (i·PH/lh, j·PW/lw), the top-left of its block. */
static void mask_nearest(const uint8_t *m, int PW, int PH, int lw, int lh, float *out)
{
    for (int i = 0; i < lh; i++)
        for (int j = 0; j < lw; j++)
            out[(size_t)i * lw + j] = m[(size_t)(i * PH / lh) * PW + j * PW / lw] >= MASK_HALF ? 1.0f : 0.0f;
}

/* A1111's latmask: the mask resized to the latent with PIL's default
 * (bicubic, base/resample.h), /255 and rounded. */
static int mask_a1111(const uint8_t *m, int PW, int PH, int lw, int lh, float *out, sd_err *err)
{
    uint8_t *small = NULL;
    if (sd_resample(m, PW, PH, 1, lw, lh, SD_FILTER_BICUBIC, &small, err)) return -1;
    for (size_t i = 0; i < (size_t)lw * lh; i++) out[i] = small[i] >= MASK_HALF ? 1.0f : 0.0f;
    free(small);
    return 0;
}

/* ---- setup --------------------------------------------------------------- */

/* VAE posterior moments of img (or of img where the mask keeps, the repaint
 * area set to 0 = mid grey: diffusers image·(mask < 0.5), A1111
 * image·(1 - round(mask))). */
static int encode(inpaint_run *r, const inpaint_in *in, const uint8_t *m, float **mean, float **stdv, sd_err *err)
{
    const size_t per = (size_t)r->C * r->lh * r->lw, npx = (size_t)in->PH * in->PW;
    *mean = sd_malloc(sizeof(float) * per);
    *stdv = sd_malloc(sizeof(float) * per);
    float *src = m ? sd_malloc(sizeof(float) * 3 * npx) : NULL;
    if (!*mean || !*stdv || (m && !src)) { free(src); return sd_errf(err, SD_ENOMEM, NULL, "out of memory"); }
    if (m)
        for (size_t c = 0; c < 3; c++)
            for (size_t i = 0; i < npx; i++) src[c * npx + i] = m[i] >= MASK_HALF ? 0.0f : in->img[c * npx + i];
    int rc = vae_encode(in->vae, m ? src : in->img, 1, in->PH, in->PW, *mean, *stdv, err);
    free(src);
    return rc;
}

int inpaint_open(inpaint_run *r, const inpaint_in *in, sd_err *err)
{
    const sd_gen_params *p = in->p;
    memset(r, 0, sizeof *r);
    *r = (inpaint_run){.kd = in->kd, .masked = p->mask != NULL, .B = in->B, .C = in->C, .lh = in->lh,
                       .lw = in->lw, .extra = in->extra, .scaling = vae_scaling_factor(in->vae),
                       .fill = p->inpaint_fill};
    const size_t cells = (size_t)in->lh * in->lw, n = (size_t)in->B * in->C * cells;
    uint8_t *m = pixel_mask(p, in->PW, in->PH);
    r->repaint = sd_malloc(sizeof(float) * cells);
    r->image_lat = sd_calloc(n, sizeof(float));
    r->noise = sd_calloc(n, sizeof(float));
    r->cond = in->extra ? sd_calloc((size_t)in->B * in->extra * cells, sizeof(float)) : NULL;
    int rc = -1;
    if (!m || !r->repaint || !r->image_lat || !r->noise || (in->extra && !r->cond)) {
        sd_errf(err, SD_ENOMEM, NULL, "out of memory");
        goto out;
    }
    if (in->extra && in->extra != 1 + in->C) {
        sd_errf(err, SD_EFORMAT, "model", "the UNet takes %d extra input channels; inpainting gives 1 + %d",
                in->extra, in->C);
        goto out;
    }
    if (in->kd) {
        if (mask_a1111(m, in->PW, in->PH, in->lw, in->lh, r->repaint, err)) goto out;
    } else {
        mask_nearest(m, in->PW, in->PH, in->lw, in->lh, r->repaint);
    }
    /* the image's latents: A1111 always; diffusers for the 4-channel blend or a partial strength */
    int need_img = p->init_rgb && (in->kd || !in->extra || p->strength < 1.0f);
    if (need_img && encode(r, in, NULL, &r->img_mean, &r->img_std, err)) goto out;
    if (in->extra && encode(r, in, m, &r->msk_mean, &r->msk_std, err)) goto out;
    if (in->extra)   /* channel 0 of each image's rows: the mask, binarized, nearest */
        for (int b = 0; b < in->B; b++) mask_nearest(m, in->PW, in->PH, in->lw, in->lh, r->cond + (size_t)b * in->extra * cells);
    rc = 0;
out:
    free(m);
    return rc;
}

/* image latents' masked cells from the fill mode: "latent noise" = fill,
 * "latent nothing" = 0 (A1111's init_latent·mask + fill·nmask). */
static void apply_fill(inpaint_run *r, const float *fill)
{
    const sd_inpaint_fill mode = r->fill;
    if (!r->masked || mode == SD_FILL_ORIGINAL) return;
    const size_t cells = (size_t)r->lh * r->lw, n = (size_t)r->B * r->C * cells;
    for (size_t i = 0; i < n; i++) {
        float m = r->repaint[i % cells];
        r->image_lat[i] = r->image_lat[i] * (1.0f - m) + (mode == SD_FILL_LATENT_NOISE ? fill[i] * m : 0.0f);
    }
}

/* out[b] = scaling·(mean + std·eps[b]), one image's moments for every b
 * (eps NULL: the mean), into rows of `stride` floats at `off`. */
static void posterior(const inpaint_run *r, const float *mean, const float *stdv, const float *eps, float *out,
                      size_t stride, size_t off)
{
    const size_t per = (size_t)r->C * r->lh * r->lw;
    for (int b = 0; b < r->B; b++)
        for (size_t i = 0; i < per; i++)
            out[b * stride + off + i] = (mean[i] + (eps ? stdv[i] * eps[b * per + i] : 0.0f)) * r->scaling;
}

int inpaint_start(inpaint_run *r, const sd_sched *s, sd_noise_src *ns, int strength_max, float *x, sd_err *err)
{
    const size_t cells = (size_t)r->lh * r->lw, per = r->C * cells, n = r->B * per;
    float *eps = sd_malloc(sizeof(float) * n);
    if (!r->extra && !r->work) r->work = sd_malloc(sizeof(float) * n);   /* the blend's noisy image latents */
    if (!eps || (!r->extra && !r->work)) { free(eps); return sd_errf(err, SD_ENOMEM, NULL, "out of memory"); }
    r->sched = s;
    if (r->img_mean) {   /* draw: the image's posterior eps */
        sd_noise_next(ns, r->B, per, eps);
        posterior(r, r->img_mean, r->img_std, eps, r->image_lat, per, 0);
    }
    sd_noise_next(ns, r->B, per, r->noise);   /* draw: the noise */
    apply_fill(r, r->noise);   /* "latent noise": the add_noise draw, as A1111's fill is its start noise */
    if (strength_max) sd_sched_start_txt2img(s, r->noise, x, n);
    else sd_sched_start_img2img(s, r->image_lat, r->noise, x, n);
    sd_noise_next(ns, r->B, per, eps);        /* draw: the masked image's posterior eps (4-channel: unused) */
    if (r->cond) posterior(r, r->msk_mean, r->msk_std, eps, r->cond, r->extra * cells, cells);
    free(eps);
    return 0;
}

void inpaint_kd_init(inpaint_run *r, const sd_noise_src *ns)
{
    const size_t cells = (size_t)r->lh * r->lw, per = r->C * cells;
    if (r->img_mean) posterior(r, r->img_mean, NULL, NULL, r->image_lat, per, 0);
    if (r->img_mean && r->masked && r->fill == SD_FILL_LATENT_NOISE) {
        sd_noise_src first = *ns;   /* create_random_tensors(all_seeds): each image's draw 0 */
        first.draw = 0;
        sd_noise_next(&first, r->B, per, r->noise);
    }
    if (r->img_mean) apply_fill(r, r->noise);
    if (r->cond) posterior(r, r->msk_mean, NULL, NULL, r->cond, r->extra * cells, cells);
}

int inpaint_rows(inpaint_run *r, int rows, sd_err *err)
{
    if (!r->cond) return 0;
    const size_t one = (size_t)r->extra * r->lh * r->lw;
    free(r->rows);
    if (!(r->rows = sd_malloc(sizeof(float) * rows * one))) return sd_errf(err, SD_ENOMEM, NULL, "out of memory");
    for (int j = 0; j < rows; j++) memcpy(r->rows + j * one, r->cond + (j % r->B) * one, sizeof(float) * one);
    return 0;
}

void inpaint_after_step(void *ud, int k, float *x)
{
    inpaint_run *r = ud;
    const size_t cells = (size_t)r->lh * r->lw, n = (size_t)r->B * r->C * cells;
    const float *keep = r->image_lat;
    if (k + 1 < r->sched->steps) {   /* diffusers: add_noise at timesteps[i + 1] */
        sd_sched_add_noise(r->sched, k + 1, r->image_lat, r->noise, r->work, n);
        keep = r->work;
    }
    for (size_t i = 0; i < n; i++) {
        float m = r->repaint[i % cells];
        x[i] = (1.0f - m) * keep[i] + m * x[i];
    }
}

void inpaint_kd_blend(const inpaint_run *r, float *x)
{
    if (!r || !r->masked) return;
    const size_t cells = (size_t)r->lh * r->lw, n = (size_t)r->B * r->C * cells;
    for (size_t i = 0; i < n; i++) {
        float m = r->repaint[i % cells];
        x[i] = x[i] * m + r->image_lat[i] * (1.0f - m);
    }
}

void inpaint_close(inpaint_run *r)
{
    free(r->repaint); free(r->image_lat); free(r->noise); free(r->cond); free(r->rows); free(r->work);
    free(r->img_mean); free(r->img_std); free(r->msk_mean); free(r->msk_std);
    memset(r, 0, sizeof *r);
}
