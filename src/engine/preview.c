/* preview.c — live previews of a run: the per-family linear latent-to-RGB
 * approximation and the sampler hook (preview.h).
 *
 * The factors are the published "latent_rgb_factors" least-squares fits
 * from latents to the VAE's pixels: ComfyUI's comfy/latent_formats.py SD15
 * (SD 1.x and 2.x share the VAE's latent space) and SDXL (with a bias).
 * What is previewed: the sampler's current denoised estimate x0 of image
 * 0 (A1111's default live_preview_content "Prompt"), which is the picture
 * being formed; the noisy latent itself shows mostly noise early on. */
#include "preview.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/alloc.h"
#include "models/taesd.h"

static const preview_factors FACTORS_SD1 = {
    .rgb = {{0.3512f, 0.2297f, 0.3227f},
            {0.3250f, 0.4974f, 0.2350f},
            {-0.2829f, 0.1762f, 0.2721f},
            {-0.2120f, -0.2616f, -0.7177f}},
    .bias = {0.0f, 0.0f, 0.0f},
};

static const preview_factors FACTORS_SDXL = {
    .rgb = {{0.3651f, 0.4232f, 0.4341f},
            {-0.2533f, -0.0042f, 0.1068f},
            {0.1076f, 0.1111f, -0.0362f},
            {-0.3165f, -0.2492f, -0.2188f}},
    .bias = {0.1084f, -0.0175f, -0.0011f},
};

const preview_factors *preview_factors_of(int sdxl)
{
    return sdxl ? &FACTORS_SDXL : &FACTORS_SD1;
}

/* [-1, 1] -> 8 bits, rounded (NaN -> 0) */
static uint8_t unit_u8(float v)
{
    float f = (v + 1.0f) * 0.5f;
    f = f > 0.0f ? (f < 1.0f ? f : 1.0f) : 0.0f;
    return (uint8_t)lrintf(f * 255.0f);
}

void preview_approx(const preview_factors *f, const float *lat, int h, int w, uint8_t *rgb)
{
    const size_t plane = (size_t)h * w;
    for (size_t i = 0; i < plane; i++) {
        const float l0 = lat[i], l1 = lat[plane + i], l2 = lat[2 * plane + i], l3 = lat[3 * plane + i];
        for (int c = 0; c < 3; c++)
            rgb[i * 3 + c] = unit_u8(f->bias[c] + l0 * f->rgb[0][c] + l1 * f->rgb[1][c] + l2 * f->rgb[2][c] +
                                     l3 * f->rgb[3][c]);
    }
}

void preview_run_init(preview_run *r, const sd_gen_params *p, const preview_factors *f, struct taesd *taesd,
                      int C, int h, int w, int out_w, int out_h, int crop_x, int crop_y)
{
    *r = (preview_run){.p = p, .f = C == 4 ? f : NULL, .taesd = taesd, .C = C, .h = h, .w = w,
                       .crop_x = crop_x, .crop_y = crop_y, .out_w = out_w, .out_h = out_h};
}

void preview_run_close(preview_run *r)
{
    free(r->rgb);
    free(r->pix);
    r->rgb = NULL;
    r->pix = NULL;
}

/* TAESD's picture of x0, cropped to the output size as the final image. */
static int preview_taesd(preview_run *r, const float *x0, sd_image *img)
{
    const int s = taesd_scale(r->taesd), PH = r->h * s, PW = r->w * s;
    if (!r->pix) r->pix = sd_malloc(sizeof(float) * 3 * PH * PW);
    if (!r->rgb) r->rgb = sd_malloc((size_t)r->out_w * r->out_h * 3);
    if (!r->pix || !r->rgb) return -1;
    sd_err err = {0};
    if (taesd_decode(r->taesd, x0, r->h, r->w, r->pix, &err)) return -1;
    const size_t plane = (size_t)PH * PW;
    for (int y = 0; y < r->out_h; y++)
        for (int x = 0; x < r->out_w; x++)
            for (int c = 0; c < 3; c++)
                r->rgb[((size_t)y * r->out_w + x) * 3 + c] =
                    unit_u8(r->pix[c * plane + (size_t)(y + r->crop_y) * PW + x + r->crop_x]);
    *img = (sd_image){.width = r->out_w, .height = r->out_h, .rgb = r->rgb, .seed = r->p->seed};
    return 0;
}

static int preview_cheap(preview_run *r, const float *x0, sd_image *img)
{
    if (!r->rgb) r->rgb = sd_malloc((size_t)r->h * r->w * 3);
    if (!r->rgb) return -1;
    preview_approx(r->f, x0, r->h, r->w, r->rgb);
    *img = (sd_image){.width = r->w, .height = r->h, .rgb = r->rgb, .seed = r->p->seed};
    return 0;
}

/* Every preview_every steps but the last (its picture is the result). */
static void preview_step(void *ud, int step, int total, const float *x0)
{
    preview_run *r = ud;
    if (step % r->p->preview_every != 0 || step >= total) return;
    sd_image img;
    int rc = r->taesd ? preview_taesd(r, x0, &img) : preview_cheap(r, x0, &img);
    if (rc) return;   /* no memory for a preview: the run goes on without it */
    r->shown++;
    r->p->preview(r->p->preview_ud, step, total, &img);
}

preview_hook_fn preview_hook(const preview_run *r)
{
    if (!r->p || !r->p->preview || r->p->preview_every < 1) return NULL;
    if (!r->taesd && !r->f) return NULL;
    return preview_step;
}

int sd_vae_decoder_known(const char *name)
{
    return name && (!strcmp(name, "vae") || !strcmp(name, "taesd")) ? 0 : -1;
}
