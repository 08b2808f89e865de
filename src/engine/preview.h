/* preview.h — engine-internal: live previews of a run (sd_gen_params.preview,
 * docs/SERVER.md "Previews"): the per-family latent-to-RGB approximation and
 * the sampler hook that turns image 0's denoised estimate into an RGB8
 * picture every preview_every steps, by TAESD when the engine has a preview
 * decoder, else by the approximation.  Previews only read the sampler's
 * state: a run with them gives the same bytes as one without. */
#ifndef SD_PREVIEW_H
#define SD_PREVIEW_H

#include <stdint.h>

#include "sd.h"

struct taesd;

/* rgb = bias + sum over the 4 latent channels c of lat[c] * rgb[c] (the
 * "Approx cheap" linear map, in the VAE's [-1, 1] image range). */
typedef struct preview_factors {
    float rgb[4][3];
    float bias[3];
} preview_factors;

/* The factors of a family: sdxl != 0 SDXL's, else SD 1.x/2.x's (one latent space). */
const preview_factors *preview_factors_of(int sdxl);

/* lat [4][h][w] (SD-space latent, as the UNet sees it) -> rgb[h][w][3] at
 * latent size: v = bias + sum_c lat[c] * f[c], byte = round(clamp((v+1)/2, 0, 1) * 255). */
void preview_approx(const preview_factors *f, const float *lat, int h, int w, uint8_t *rgb);

/* One run's previews.  Fill with preview_run_init; the hook allocates its
 * buffers at the first preview (nothing when p->preview is NULL). */
typedef struct preview_run {
    const sd_gen_params *p;
    const preview_factors *f;  /* the approximation's factors (NULL: no approximation for these latents) */
    struct taesd *taesd;       /* the preview decoder, or NULL */
    int C, h, w;               /* latent of one image */
    int crop_x, crop_y;        /* TAESD: where the output's pixels start in the decoded picture */
    int out_w, out_h;          /* TAESD: the output size (the final image's) */
    uint8_t *rgb;              /* the preview picture */
    float *pix;                /* TAESD's decoded [3][h*s][w*s] */
    int shown;                 /* previews delivered */
} preview_run;

void preview_run_init(preview_run *r, const sd_gen_params *p, const preview_factors *f, struct taesd *taesd,
                      int C, int h, int w, int out_w, int out_h, int crop_x, int crop_y);
void preview_run_close(preview_run *r);

/* The sampler hook (sd_sample_req / kd_sample_req .on_denoised): NULL when
 * the run wants no previews, so the samplers skip it at no cost. */
typedef void (*preview_hook_fn)(void *ud, int step, int total, const float *x0);
preview_hook_fn preview_hook(const preview_run *r);

#endif
