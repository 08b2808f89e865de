/* kdiff_sched.h — engine-internal: the tables under A1111's k-diffusion
 * sampling (kdiff.h runs the samplers): the sampler/schedule name table
 * (A1111 display names, k_ names, scheduler names), the model's sigma table
 * (CompVisDenoiser: from an alphas_cumprod table, the LDM one — betas and
 * cumprod in float64, then float32 — or one a checkpoint stores; sigma =
 * sqrt((1 - acp) / acp), ascending with the train timestep), sigma_to_t /
 * t_to_sigma (log sigma interpolated linearly, fractional t), and A1111's
 * schedules.  Values are float32 as torch computes them; docs/KDIFFUSION.md
 * gives the measured agreement. */
#ifndef SD_KDIFF_SCHED_H
#define SD_KDIFF_SCHED_H

#include <stddef.h>

#include "../../base/err.h"

#define KD_TABLE_MAX 4096   /* entries of an alphas_cumprod table (LDM: 1000) */
#define KD_MAX_STEPS 1000   /* sampling steps of one run */

/* ---- names ---------------------------------------------------------------- */

typedef enum { KD_EULER = 0, KD_EULER_A, KD_HEUN, KD_LMS, KD_DPMPP_2M, KD_DPMPP_2M_SDE, KD_SAMPLER_COUNT } kd_sampler;
typedef enum {
    KD_SCHED_AUTOMATIC = 0, /* the sampler's A1111 default (kd_schedule_resolve) */
    KD_SCHED_UNIFORM,       /* t = linspace(t_max, 0, n) -> sigma, 0 appended */
    KD_SCHED_KARRAS,        /* rho 7 between the model's sigma_min and sigma_max */
    KD_SCHED_EXPONENTIAL,   /* exp(linspace(ln sigma_max, ln sigma_min, n)) */
    KD_SCHED_SGM_UNIFORM,   /* t = linspace(t(sigma_max), t(sigma_min), n+1)[:-1] -> sigma */
    KD_SCHED_COUNT
} kd_schedule;

typedef struct kd_choice {
    kd_sampler sampler;
    kd_schedule schedule;   /* as asked: AUTOMATIC stays AUTOMATIC */
} kd_choice;

/* A1111 label ("DPM++ 2M"), k_ name ("k_dpmpp_2m"); NULL when out of range. */
const char *kd_sampler_label(kd_sampler s);
const char *kd_sampler_kname(kd_sampler s);
/* A1111 label ("SGM Uniform"), request name ("sgm_uniform"). */
const char *kd_schedule_label(kd_schedule s);
const char *kd_schedule_name(kd_schedule s);
/* AUTOMATIC -> Karras for DPM++ 2M, Exponential for DPM++ 2M SDE, Uniform
 * for the rest; any other schedule is returned as is. */
kd_schedule kd_schedule_resolve(kd_sampler s, kd_schedule sch);

/* 1 when `name` selects k-diffusion semantics: an A1111 display name in its
 * exact spelling (label, optionally followed by " " and a schedule label:
 * "DPM++ 2M Karras") or a k_ name.  The lowercase names of samplers.h
 * ("euler_a", "dpmpp_2m_karras", ...) are not (diffusers semantics). */
int kd_is_name(const char *name);
/* sampler: display name or k_ name; scheduler: NULL/"" or a request name
 * (automatic|uniform|karras|exponential|sgm_uniform).  A schedule in the
 * display name and a different `scheduler` conflict.  0, or -1 with
 * SD_EINVAL naming "sampler" or "scheduler". */
int kd_parse(const char *sampler, const char *scheduler, kd_choice *out, sd_err *err);
/* A1111 display name: label, then " " + schedule label unless AUTOMATIC
 * ("DPM++ 2M Karras", "Euler a").  Returns snprintf's count. */
int kd_display_name(kd_choice c, char *buf, size_t size);

/* ---- model sigmas ------------------------------------------------------- */

typedef struct kd_model {
    int n;                          /* table entries; t_max = n - 1 */
    float sigmas[KD_TABLE_MAX];     /* ascending */
    float log_sigmas[KD_TABLE_MAX];
} kd_model;

/* LDM/A1111: betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2 and the
 * cumprod in float64, then float32.  acp (may be NULL) gets the table. */
void kd_model_init_ldm(kd_model *m, float *acp);
/* From a checkpoint's alphas_cumprod (n in 2..KD_TABLE_MAX, every value in
 * (0, 1), strictly decreasing).  0, or -1 with SD_EINVAL naming "alphas_cumprod". */
int kd_model_init_table(kd_model *m, const float *acp, int n, sd_err *err);
/* A1111's "Zero Terminal SNR" noise schedule (sd_models.py
 * rescale_zero_terminal_snr_abar; ComfyUI's zsnr the same): acp rescaled as
 * sd_zsnr_rescale (samplers.h), its last value set to KD_ZSNR_LAST, then
 * kd_model_init_table.  acp itself is not changed. */
#define KD_ZSNR_LAST 4.8973451890853435e-08
int kd_model_init_zsnr(kd_model *m, const float *acp, int n, sd_err *err);
float kd_sigma_min(const kd_model *m);
float kd_sigma_max(const kd_model *m);
/* CompVisDenoiser.sigma_to_t: fractional index by log-sigma interpolation
 * (clamped to [0, n-1]); t_to_sigma its inverse on t in [0, n-1]. */
float kd_sigma_to_t(const kd_model *m, float sigma);
float kd_t_to_sigma(const kd_model *m, float t);

/* ---- schedules ------------------------------------------------------------ */

/* out[steps + 1]: the schedule's sigmas, descending, out[steps] = 0.
 * steps 1..KD_MAX_STEPS.  0, or -1 with SD_EINVAL naming "steps". */
int kd_sigmas(const kd_model *m, kd_sampler s, kd_schedule sch, int steps, float *out, sd_err *err);

/* A1111's img2img start (sd_samplers_kdiffusion.sample_img2img, default
 * settings): t_enc = int(min(strength, 0.999) * steps) with strength as the
 * decimal it was written as (sd_strength_decimal); the run takes
 * sigmas[first..steps] (t_enc + 1 steps), first = steps - t_enc - 1, and
 * starts at x = init + noise * sigmas[first].  Returns first. */
int kd_img2img_first(int steps, double strength);

#endif
