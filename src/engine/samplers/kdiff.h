/* kdiff.h — engine-internal: AUTOMATIC1111's samplers and schedules on
 * k-diffusion semantics (k-diffusion ab527a9a, the commit A1111 v1.10.1
 * pins), beside the diffusers-semantics samplers of samplers.h, which they
 * do not change.  Requests reach it through sd_gen_params.ksampler
 * (pipeline.c, kd_generate); docs/KDIFFUSION.md says what is measured
 * against the reference.
 *
 * The names, the model's sigma table and the schedules are kdiff_sched.h.
 *
 * How a caller drives a txt2img run (B images of per = C*H*W floats):
 *
 *   kd_model m;  kd_model_init_ldm(&m);            // or kd_model_init_table
 *   kd_choice c; kd_parse("DPM++ 2M Karras", NULL, &c, err);
 *   float sig[KD_MAX_STEPS + 1];
 *   kd_sigmas(&m, c.sampler, c.schedule, steps, sig, err);   // steps+1, last 0
 *   sd_noise_src ns = { fn, ud, seed, 0 };
 *   sd_noise_next(&ns, B, per, x);                  // draw 0: start noise
 *   kd_start(sig, x, B * per);                      // x = draw0 * sigma[0]
 *   kd_cfg g = { .unet = cb, .ud = ctx, .cfg = 7.5f, .model = &m, ... };
 *   kd_sample_req r = { .sampler = c.sampler, .sigmas = sig, .steps = steps,
 *                       .batch = B, .per_image = per, .denoise = kd_cfg_denoise,
 *                       .denoise_ud = &g, .noise = &ns };
 *   kd_sample(&r, x, err);                          // x: final SD-space latent
 *   ... vae decode of x / scaling, then kd_rgb8_a1111 (truncating).
 *
 * Noise accounting as A1111: every k-diffusion randn_like is the next draw
 * of the image's own stream (seed + i for image i).  Euler and Heun draw one
 * unused tensor per step (s_churn 0: the draw is only counted, ns->draw++),
 * Euler a one per step except the last, DPM++ 2M SDE one per step except
 * the last (used), LMS and DPM++ 2M none.
 *
 * DPM++ 2M SDE: stock A1111 takes that sampler's noise from a torchsde
 * BrownianTree seeded with the image seed; here it is the next draw of the
 * image stream, as the reference run records it.  The update rule is
 * exact, but a picture from A1111 with DPM++ 2M SDE is NOT reproduced
 * (that needs torchsde's Brownian interval algorithm).
 *
 * Fixed A1111 defaults: eta 1, s_noise 1, s_churn 0 (s_tmin 0, s_tmax inf),
 * LMS order 4, DPM++ 2M SDE midpoint solver. */
#ifndef SD_KDIFF_H
#define SD_KDIFF_H

#include <stddef.h>
#include <stdint.h>

#include "kdiff_sched.h"
#include "samplers.h"

/* ---- sampling ------------------------------------------------------------- */

/* x[batch][per_image] at noise level sigma -> denoised[batch][per_image]
 * (the x0 estimate); call = 0-based model call number. 0, or -1 with err. */
typedef int (*kd_denoise_fn)(void *ud, const float *x, float sigma, int call, float *denoised, sd_err *err);

typedef struct kd_sample_req {
    kd_sampler sampler;
    const float *sigmas;            /* [steps + 1] from kd_sigmas */
    int steps;
    int batch;
    size_t per_image;
    kd_denoise_fn denoise; void *denoise_ud;
    sd_noise_src *noise;            /* advanced by every sampler but LMS and DPM++ 2M (may be NULL for those) */
    /* optional: after each step (1..steps); non-zero = cancel (SD_ECANCELLED) */
    sd_progress_fn progress; void *progress_ud;
    /* optional: the state x at the start of each step (k-diffusion's callback) */
    void (*on_step)(void *ud, int step, const float *x); void *on_step_ud;
    /* optional: the last denoised estimate [batch][per_image] after each step
     * (step 1..steps, as progress; live previews); read only */
    void (*on_denoised)(void *ud, int step, int total, const float *x0); void *on_denoised_ud;
} kd_sample_req;

/* txt2img start latent: x = noise * sigmas[0] (in place allowed). */
void kd_start(const float *sigmas, const float *noise, float *x, size_t n);
/* Runs every step on x (in: start latent, out: final SD-space latent).
 * 0, or -1 with err (the denoiser's, SD_ECANCELLED, SD_ENOMEM, SD_EINVAL). */
int kd_sample(const kd_sample_req *r, float *x, sd_err *err);

/* LMS: the integrated Lagrange coefficients of step i (order min(i+1, 4)):
 * coef[j] multiplies the derivative of step i - j.  Returns the order. */
int kd_lms_coeffs(const float *sigmas, int i, double coef[4]);

/* ---- A1111's CFG denoiser (CFGDenoiser over CompVisDenoiser) ------------ */

/* x_in[rows][per] -> eps[rows][per] at UNet timestep t (same for every
 * row).  rows = 2*batch: images' prompt rows first, then their negative
 * rows ([cond, uncond] for one image, A1111's order); rows = batch
 * (prompt only) when there is no guidance. */
typedef int (*kd_unet_fn)(void *ud, const float *x_in, int rows, float t, int call, float *eps, sd_err *err);

typedef struct kd_cfg {
    kd_unet_fn unet; void *ud;
    const kd_model *model;          /* for sigma_to_t */
    float cfg;                      /* 1 = no unconditional rows */
    int batch;
    size_t per_image;
    float *work;                    /* NULL: kd_cfg_denoise allocates per call; else 4*batch*per floats */
    /* optional: each call's rows (tests): x_in, t, eps */
    void (*on_call)(void *ud, int call, const float *x_in, float t, const float *eps); void *on_call_ud;
} kd_cfg;

/* kd_denoise_fn over a kd_cfg (ud): c_in = 1/sqrt(sigma^2+1),
 * t = sigma_to_t(sigma), eps = unet(x*c_in), d = x - sigma*eps per row,
 * denoised = d_uncond + (d_cond - d_uncond) * cfg (cfg 1: d_cond). */
int kd_cfg_denoise(void *ud, const float *x, float sigma, int call, float *denoised, sd_err *err);

/* One value of it: uint8(255 * clamp((v+1)/2, 0, 1)), truncated; NaN -> 0. */
static inline uint8_t kd_u8_a1111(float v)
{
    v = (v + 1.0f) / 2.0f;
    v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f;
    return (uint8_t)(255.0f * v);
}

/* A1111's 8-bit conversion of a decoded image img[3][h][w] (nominally in
 * [-1, 1]): uint8(255 * clamp((v+1)/2, 0, 1)) TRUNCATED, into rgb[h][w][3]. */
void kd_rgb8_a1111(const float *img, int h, int w, uint8_t *rgb);

#endif
