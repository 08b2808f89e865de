/* samplers.h — engine-internal: noise schedules, the six samplers, img2img
 * start latents and the noise-source plumbing.
 *
 * Semantics follow diffusers v0.25.1 as used by the SD 1.x/2.x and SDXL pipelines
 * (scaled_linear betas 0.00085..0.012, 1000 train steps, steps_offset 1,
 * "leading" spacing); docs/ACCURACY.md "## Samplers" gives the measured
 * agreement with the reference runs.
 *
 * How a pipeline drives a run (B images of C*H*W latent floats each):
 *
 *   sd_sched s;                                   // ~28 KB: heap or static
 *   sd_sched_init(&s, SD_SAMPLER_EULER_A, SD_SPACING_LEADING, steps, err);
 *   sd_noise_src ns = { p->noise, p->noise_ud, p->seed, 0 };
 *   // txt2img: draw 0 is the initial noise
 *   sd_noise_next(&ns, B, per, noise);
 *   sd_sched_start_txt2img(&s, noise, x, B * per);      // x = noise * init_noise_sigma
 *   // img2img instead: draw 0 = posterior eps, draw 1 = add-noise noise
 *   sd_sched_set_strength(&s, strength);                // s.start = first step run
 *   sd_noise_next(&ns, B, per, eps);
 *   sd_posterior_sample(mean, std, eps, 0.18215f, init, B * per);
 *   sd_noise_next(&ns, B, per, noise);
 *   sd_sched_start_img2img(&s, init, noise, x, B * per);
 *   // then, both cases:
 *   sd_sample_req r = { .sched = &s, .pred = SD_PRED_EPS or SD_PRED_V,
 *                       .batch = B, .per_image = per, .model = cb, .model_ud = ctx,
 *                       .noise = &ns, .progress = p->progress, .progress_ud = ... };
 *   sd_sample(&r, x, err);                              // x: final latent (SD space)
 *
 * The model callback receives the scaled model input x_in [B][per] (already
 * divided by sqrt(sigma^2+1) for the Euler family), the timestep value to
 * give the UNet (fractional only for Karras-Euler schedules) and the call
 * number 0..calls-1; it runs the UNet (with CFG: uncond/cond rows, guided =
 * u + cfg*(c-u)) and writes the guided prediction [B][per] in the model's
 * own parameterization (epsilon or v); the sampler converts.
 *
 * Noise: every random tensor is one "draw" numbered per image; image i of a
 * batch uses seed + i, so an image of a batch equals the same seed rendered
 * alone.  Samplers that need noise (euler_a each step, lcm each step but the
 * last) continue the numbering where the caller left it. */
#ifndef SD_SAMPLERS_H
#define SD_SAMPLERS_H

#include <stddef.h>
#include <stdint.h>

#include "../sd.h"

#define SD_TRAIN_STEPS 1000
#define SD_MAX_STEPS 1000        /* inference steps of one schedule */
#define SD_LCM_ORIGINAL_STEPS 50 /* LCM: original_inference_steps; also its step limit */

/* ---- training schedule ---------------------------------------------------- */

/* SD's training noise schedule, float32 exactly as torch 1.13 computes it. */
typedef struct sd_train_sched {
    float betas[SD_TRAIN_STEPS];          /* linspace(sqrt(0.00085), sqrt(0.012))^2 */
    float alphas_cumprod[SD_TRAIN_STEPS]; /* cumprod(1 - betas) */
    float sigmas[SD_TRAIN_STEPS];         /* sqrt((1 - acp) / acp), k-diffusion sigma of t */
    float log_sigmas[SD_TRAIN_STEPS];
} sd_train_sched;
void sd_train_sched_init(sd_train_sched *t);
/* Zero terminal SNR (Lin et al. 2023; diffusers rescale_betas_zero_snr):
 * sqrt(acp) shifted so its last value is 0 and scaled so its first is kept,
 * betas re-derived from it, acp = cumprod(1 - betas), then the last acp set
 * to 2^-24 (diffusers' Euler: a finite sigma_max of ~4096; used by every
 * sampler here, also DDIM, whose diffusers version keeps 0). */
void sd_train_sched_zsnr(sd_train_sched *t);
/* An alphas_cumprod table (n >= 2) rescaled in place as above (sqrt shifted
 * and scaled, in double); acp[n-1] comes out 0, for the caller to set
 * (diffusers 2^-24, A1111 KD_ZSNR_LAST). */
void sd_zsnr_rescale(float *acp, int n);

/* ---- inference schedules -------------------------------------------------- */

typedef enum { SD_SPACING_LEADING = 0, SD_SPACING_LINSPACE, SD_SPACING_TRAILING } sd_spacing;

/* Schedule families (more than there are samplers: the reference also
 * covers Euler with Karras sigmas and PNDM timesteps). */
typedef enum {
    SD_SCHED_EULER = 0,    /* Euler / Euler a: sigma(t) interpolated, final 0 */
    SD_SCHED_EULER_KARRAS, /* Karras (rho 7) between the spacing's end sigmas, fractional t */
    SD_SCHED_DDIM,         /* integer t, alphas_cumprod */
    SD_SCHED_DPM,          /* DPM-Solver++: "leading" = 999//(n+1) spacing, final sigma(t=0) */
    SD_SCHED_DPM_KARRAS,   /* Karras over the whole train range, t rounded, final sigma_min */
    SD_SCHED_LCM,          /* LCM: 50 original steps, spacing ignored */
    SD_SCHED_PNDM          /* PLMS order (one repeated t); timesteps only, no sampler */
} sd_sched_kind;

typedef struct sd_sched {
    sd_sampler sampler;        /* SD_SAMPLER_COUNT for a schedule-only kind */
    sd_sched_kind kind;
    sd_spacing spacing;
    int steps;                 /* inference steps asked for */
    int n;                     /* entries in timesteps[] (= steps; steps+1 for PNDM) */
    int start;                 /* first step run: 0, or the img2img t_start */
    float timesteps[SD_MAX_STEPS + 1]; /* value passed to the UNet at step i */
    int t_int[SD_MAX_STEPS + 1];       /* integer train timestep (DDIM, LCM, DPM, PNDM) */
    float sigmas[SD_MAX_STEPS + 1];    /* k-diffusion sigma of step i, [steps] = final
                                          (Euler family and DPM++ only; else 0) */
    float init_noise_sigma;    /* txt2img start latent = noise * this */
    sd_train_sched train;
} sd_sched;

/* Schedule of a sampler: 0, or -1 with err (steps out of 1..SD_MAX_STEPS, LCM > 50). */
int sd_sched_init(sd_sched *s, sd_sampler sampler, sd_spacing spacing, int steps, sd_err *err);
/* Same for a schedule family (the sampler field is set when one matches). */
int sd_sched_init_kind(sd_sched *s, sd_sched_kind kind, sd_spacing spacing, int steps, sd_err *err);
/* sd_sched_init on the zero-terminal-SNR training schedule when zsnr is set
 * (sd_train_sched_zsnr): v-prediction checkpoints marked "ztsnr". */
int sd_sched_init_zsnr(sd_sched *s, sd_sampler sampler, sd_spacing spacing, int steps, int zsnr, sd_err *err);

/* ---- img2img -------------------------------------------------------------- */

/* diffusers get_timesteps: init_timestep = min(int(steps*strength), steps),
 * t_start = steps - init_timestep.  Returns t_start, clamped so that at
 * least one step runs (diffusers fails on an empty schedule).  strength is
 * the user's decimal value; float inputs such as 0.7f count as 0.7. */
int sd_img2img_start(int steps, double strength);
/* The steps hires fix's pass 2 runs per image: hr_steps (0: steps) at
 * hr_strength by the sampler's img2img rule (choice.c; sd.h
 * sd_hires_total_steps adds pass 1's). */
int sd_hires_pass2_steps(const sd_gen_params *p);
/* strength as the decimal it was written as when it came through a float
 * (0.7f -> 0.7), else as is. */
double sd_strength_decimal(double strength);
/* Sets s->start from strength; returns the number of steps that will run. */
int sd_sched_set_strength(sd_sched *s, double strength);

/* VAE posterior sample in SD latent space: out = scaling * (mean + std * eps). */
void sd_posterior_sample(const float *mean, const float *std, const float *eps, float scaling,
                         float *out, size_t n);

/* Start latents.  txt2img: x = noise * init_noise_sigma.  img2img: the
 * scheduler's add_noise at timesteps[start]: Euler family x = init +
 * noise*sigma; DDIM/LCM x = sqrt(acp)*init + sqrt(1-acp)*noise; DPM++
 * x = alpha*init + alpha*sigma*noise with alpha = 1/sqrt(sigma^2+1). */
void sd_sched_start_txt2img(const sd_sched *s, const float *noise, float *x, size_t n);
void sd_sched_start_img2img(const sd_sched *s, const float *init, const float *noise, float *x, size_t n);
/* The scheduler's add_noise at step k's timestep (the same formulas; the
 * inpainting blend of 4-channel models takes it at every step). */
void sd_sched_add_noise(const sd_sched *s, int k, const float *init, const float *noise, float *x, size_t n);

/* ---- noise ---------------------------------------------------------------- */

typedef struct sd_noise_src {
    sd_noise_fn fn; void *ud;  /* NULL fn = Philox (sd_philox_normal) */
    uint64_t seed;             /* image i of the batch uses seed + i */
    uint64_t draw;             /* number of the next draw (same for every image) */
} sd_noise_src;
/* Fill out[batch][per_image] with the next draw of each image; draw++. */
void sd_noise_next(sd_noise_src *ns, int batch, size_t per_image, float *out);

/* ---- sampling ------------------------------------------------------------- */

/* x_in, out: [batch][per_image].  t: UNet timestep; call: 0-based call number.
 * Returns 0, or -1 with err set (the run stops and returns that error). */
typedef int (*sd_model_fn)(void *ud, const float *x_in, float t, int call, float *out, sd_err *err);

typedef struct sd_sample_req {
    const sd_sched *sched;
    sd_prediction pred;        /* SD_PRED_EPS or SD_PRED_V (AUTO counts as EPS) */
    int batch;
    size_t per_image;          /* C*H*W */
    sd_model_fn model; void *model_ud;
    sd_noise_src *noise;       /* advanced by euler_a and lcm; may be NULL for the others */
    /* optional: after each step (1..total); non-zero return = cancel (SD_ECANCELLED) */
    sd_progress_fn progress; void *progress_ud;
    /* optional: may rewrite the latent after step k (0-based schedule index)
     * before on_step sees it (inpainting's blend with the image latents) */
    void (*after_step)(void *ud, int k, float *x); void *after_step_ud;
    /* optional: sees the latent after each step (tests, previews) */
    void (*on_step)(void *ud, int call, const float *x); void *on_step_ud;
    /* optional: the step's data prediction x0 [batch][per_image] after each
     * step (step 1..total, as progress; live previews); read only */
    void (*on_denoised)(void *ud, int step, int total, const float *x0); void *on_denoised_ud;
} sd_sample_req;

/* Runs steps sched->start .. steps-1 on x (in: start latent from
 * sd_sched_start_*, out: final latent).  0, or -1 with err. */
int sd_sample(const sd_sample_req *r, float *x, sd_err *err);

#endif
