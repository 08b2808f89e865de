/* samplers.c — the six samplers (one step function each) and the loop that
 * drives them: model input scaling, prediction-type conversion, noise draws,
 * progress/cancel between steps.
 *
 * Each step follows the diffusers v0.25.1 scheduler of the same name in
 * float32 with the same operation order, so replaying recorded model outputs
 * reproduces the recorded latents to float rounding:
 *   euler            EulerDiscreteScheduler (s_churn 0: its random draw is
 *                    multiplied by 0, so we do not draw at all)
 *   euler_a          EulerAncestralDiscreteScheduler (one draw per step)
 *   ddim             DDIMScheduler, eta 0, final alpha = alphas_cumprod[0]
 *   dpmpp_2m(_karras) DPMSolverMultistepScheduler, dpmsolver++ order 2,
 *                    midpoint, first order on the first step and (below 15
 *                    steps) on the last.  With Karras sigmas the
 *                    schedule ends sigma_min -> sigma_min, so the last
 *                    UNet call changes nothing (as in diffusers 0.25.1)
 *   lcm              LCMScheduler (timestep_scaling 10; draws on every step
 *                    but the last) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "samplers.h"
#include "../../base/alloc.h"

static const struct { const char *name, *a1111; } sampler_names[SD_SAMPLER_COUNT] = {
    [SD_SAMPLER_EULER] = { "euler", "Euler" },
    [SD_SAMPLER_EULER_A] = { "euler_a", "Euler a" },
    [SD_SAMPLER_DDIM] = { "ddim", "DDIM" },
    [SD_SAMPLER_DPMPP_2M] = { "dpmpp_2m", "DPM++ 2M" },
    [SD_SAMPLER_DPMPP_2M_KARRAS] = { "dpmpp_2m_karras", "DPM++ 2M Karras" },
    [SD_SAMPLER_LCM] = { "lcm", "LCM" },
};

int sd_sampler_from_name(const char *name, sd_sampler *out)
{
    if (!name) return -1;
    for (int i = 0; i < SD_SAMPLER_COUNT; i++)
        if (!strcmp(name, sampler_names[i].name)) { *out = (sd_sampler)i; return 0; }
    return -1;
}

const char *sd_sampler_name(sd_sampler s)
{
    return (unsigned)s < SD_SAMPLER_COUNT ? sampler_names[s].name : "unknown";
}

const char *sd_sampler_a1111_name(sd_sampler s)
{
    return (unsigned)s < SD_SAMPLER_COUNT ? sampler_names[s].a1111 : "unknown";
}

/* State of one run, shared by the step functions. */
typedef struct run {
    const sd_sample_req *r;
    const sd_sched *s;
    size_t n;          /* batch * per_image */
    int v;             /* v-prediction */
    float *noise;      /* [n] */
    float *x0_prev;    /* DPM++: previous data prediction [n] */
    int have_prev;
} run;

/* k-diffusion data prediction from a model output at sigma (Euler family). */
static void k_denoised(const run *u, float sigma, const float *x, const float *m, float *x0)
{
    if (u->v) {
        float c_out = -sigma / sqrtf(sigma * sigma + 1.0f), c_skip = sigma * sigma + 1.0f;
        for (size_t i = 0; i < u->n; i++) x0[i] = m[i] * c_out + x[i] / c_skip;
    } else {
        for (size_t i = 0; i < u->n; i++) x0[i] = x[i] - sigma * m[i];
    }
}

/* x0 from a model output at train timestep t (DDIM, LCM). */
static void vp_denoised(const run *u, float acp, const float *x, const float *m, float *x0)
{
    float sa = sqrtf(acp), sb = sqrtf(1.0f - acp);
    if (u->v) for (size_t i = 0; i < u->n; i++) x0[i] = sa * x[i] - sb * m[i];
    else for (size_t i = 0; i < u->n; i++) x0[i] = (x[i] - sb * m[i]) / sa;
}

static void step_euler(run *u, int k, float *x, float *m)
{
    const float sigma = u->s->sigmas[k], dt = u->s->sigmas[k + 1] - sigma;
    float *x0 = m;  /* in place: m is not needed after the data prediction */
    k_denoised(u, sigma, x, m, x0);
    for (size_t i = 0; i < u->n; i++) {
        float d = (x[i] - x0[i]) / sigma;
        x[i] = x[i] + d * dt;
    }
}

static void step_euler_a(run *u, int k, float *x, float *m)
{
    const float sf = u->s->sigmas[k], st = u->s->sigmas[k + 1];
    const float sigma_up = sqrtf(st * st * (sf * sf - st * st) / (sf * sf));
    const float sigma_down = sqrtf(st * st - sigma_up * sigma_up), dt = sigma_down - sf;
    float *x0 = m;
    k_denoised(u, sf, x, m, x0);
    for (size_t i = 0; i < u->n; i++) {
        float d = (x[i] - x0[i]) / sf;
        x[i] = x[i] + d * dt;
    }
    sd_noise_next(u->r->noise, u->r->batch, u->r->per_image, u->noise);
    for (size_t i = 0; i < u->n; i++) x[i] = x[i] + u->noise[i] * sigma_up;
}

static void step_ddim(run *u, int k, float *x, float *m)
{
    const sd_sched *s = u->s;
    const int t = s->t_int[k], prev = t - SD_TRAIN_STEPS / s->steps;
    const float acp = s->train.alphas_cumprod[t];
    const float acp_prev = prev >= 0 ? s->train.alphas_cumprod[prev] : s->train.alphas_cumprod[0];
    const float sa = sqrtf(acp), sb = sqrtf(1.0f - acp);
    const float a_prev = sqrtf(acp_prev), dir = sqrtf(1.0f - acp_prev);
    for (size_t i = 0; i < u->n; i++) {
        float x0, eps;
        if (u->v) { x0 = sa * x[i] - sb * m[i]; eps = sa * m[i] + sb * x[i]; }
        else { x0 = (x[i] - sb * m[i]) / sa; eps = m[i]; }
        x[i] = a_prev * x0 + dir * eps;
    }
}

/* alpha_t, sigma_t of the VP process at k-diffusion sigma; lambda = log(alpha/sigma). */
static float dpm_lambda(float sigma, float *alpha, float *sigma_t)
{
    *alpha = 1.0f / sqrtf(sigma * sigma + 1.0f);
    *sigma_t = sigma * *alpha;
    return logf(*alpha) - logf(*sigma_t);
}

static void step_dpmpp_2m(run *u, int k, float *x, float *m)
{
    const sd_sched *s = u->s;
    float a_s0, s_s0, a_t, s_t;
    const float lam_s0 = dpm_lambda(s->sigmas[k], &a_s0, &s_s0);
    const float lam_t = dpm_lambda(s->sigmas[k + 1], &a_t, &s_t);
    float *x0 = m;  /* data prediction, in place */
    for (size_t i = 0; i < u->n; i++) x0[i] = u->v ? a_s0 * x[i] - s_s0 * m[i] : (x[i] - s_s0 * m[i]) / a_s0;
    const int last = k == s->steps - 1;
    const int first_order = !u->have_prev || (last && s->steps < 15);
    const float h = lam_t - lam_s0, ratio = s_t / s_s0, c = a_t * (expf(-h) - 1.0f);
    if (first_order) {
        for (size_t i = 0; i < u->n; i++) x[i] = ratio * x[i] - c * x0[i];
    } else {
        float a_s1, s_s1;
        const float lam_s1 = dpm_lambda(s->sigmas[k - 1], &a_s1, &s_s1);
        const float r0 = (lam_s0 - lam_s1) / h, inv_r0 = 1.0f / r0, half_c = 0.5f * c;
        for (size_t i = 0; i < u->n; i++) {
            float d1 = inv_r0 * (x0[i] - u->x0_prev[i]);
            x[i] = ratio * x[i] - c * x0[i] - half_c * d1;
        }
    }
    memcpy(u->x0_prev, x0, u->n * sizeof *x0);
    u->have_prev = 1;
}

static void step_lcm(run *u, int k, float *x, float *m)
{
    const sd_sched *s = u->s;
    const int t = s->t_int[k], last = k == s->steps - 1;
    const int prev = last ? t : s->t_int[k + 1];
    const float acp = s->train.alphas_cumprod[t], acp_prev = s->train.alphas_cumprod[prev];
    /* consistency-model boundary scalings, sigma_data 0.5, timestep_scaling 10 */
    const float st = (float)t * 10.0f, den = st * st + 0.25f;
    const float c_skip = 0.25f / den, c_out = st / sqrtf(den);
    float *x0 = m;
    vp_denoised(u, acp, x, m, x0);
    for (size_t i = 0; i < u->n; i++) x[i] = c_out * x0[i] + c_skip * x[i];
    if (!last) {
        const float a = sqrtf(acp_prev), b = sqrtf(1.0f - acp_prev);
        sd_noise_next(u->r->noise, u->r->batch, u->r->per_image, u->noise);
        for (size_t i = 0; i < u->n; i++) x[i] = a * x[i] + b * u->noise[i];
    }
}

int sd_sample(const sd_sample_req *r, float *x, sd_err *err)
{
    const sd_sched *s = r->sched;
    if (!s || !r->model || r->batch < 1 || r->per_image < 1)
        return sd_errf(err, SD_EINTERNAL, "sampler", "sd_sample: missing schedule, model or sizes");
    if ((unsigned)s->sampler >= SD_SAMPLER_COUNT)
        return sd_errf(err, SD_EINTERNAL, "sampler", "schedule kind %d has no sampler", (int)s->kind);
    if ((s->sampler == SD_SAMPLER_EULER_A || s->sampler == SD_SAMPLER_LCM) && !r->noise)
        return sd_errf(err, SD_EINTERNAL, "sampler", "%s needs a noise source", sd_sampler_name(s->sampler));
    if ((size_t)r->batch > SIZE_MAX / sizeof(float) / 4 / r->per_image)
        return sd_errf(err, SD_ETOOLARGE, "sampler", "latent of %d x %zu floats is too large", r->batch, r->per_image);
    run u = { .r = r, .s = s, .n = (size_t)r->batch * r->per_image, .v = r->pred == SD_PRED_V };
    float *buf = sd_malloc(u.n * 4 * sizeof(float));
    if (!buf) return sd_errf(err, SD_ENOMEM, "sampler", "out of memory for %zu latent floats", u.n * 4);
    float *x_in = buf, *m = buf + u.n;
    u.noise = buf + 2 * u.n;
    u.x0_prev = buf + 3 * u.n;
    const int total = s->steps - s->start;
    int rc = 0;
    for (int k = s->start; k < s->steps; k++) {
        const int call = k - s->start;
        const int scaled = s->kind == SD_SCHED_EULER || s->kind == SD_SCHED_EULER_KARRAS;
        if (scaled) {
            const float sg = s->sigmas[k], den = sqrtf(sg * sg + 1.0f);
            for (size_t i = 0; i < u.n; i++) x_in[i] = x[i] / den;
        } else {
            memcpy(x_in, x, u.n * sizeof *x);
        }
        if (r->model(r->model_ud, x_in, s->timesteps[k], call, m, err)) {
            if (err && err->code == SD_OK) sd_errf(err, SD_EINTERNAL, "unet", "model callback failed at step %d", call);
            rc = -1;
            break;
        }
        switch (s->sampler) {
        case SD_SAMPLER_EULER: step_euler(&u, k, x, m); break;
        case SD_SAMPLER_EULER_A: step_euler_a(&u, k, x, m); break;
        case SD_SAMPLER_DDIM: step_ddim(&u, k, x, m); break;
        case SD_SAMPLER_DPMPP_2M:
        case SD_SAMPLER_DPMPP_2M_KARRAS: step_dpmpp_2m(&u, k, x, m); break;
        case SD_SAMPLER_LCM: step_lcm(&u, k, x, m); break;
        default: break;
        }
        if (r->after_step) r->after_step(r->after_step_ud, k, x);
        if (r->on_step) r->on_step(r->on_step_ud, call, x);
        if (r->progress && r->progress(r->progress_ud, call + 1, total)) {
            rc = sd_errf(err, SD_ECANCELLED, "", "cancelled after step %d of %d", call + 1, total);
            break;
        }
    }
    free(buf);
    return rc;
}
