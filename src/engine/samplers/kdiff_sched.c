/* kdiff_sched.c — the k-diffusion side of A1111's sampling that is not a
 * sampler step: the sampler/schedule name table (A1111 display names, k_
 * names, scheduler names), the model's sigma table (CompVisDenoiser) with
 * sigma_to_t / t_to_sigma, and A1111's schedules (Uniform, Karras,
 * Exponential, SGM Uniform, and what "Automatic" picks).
 *
 * Arithmetic follows what torch does on the CPU in float32 (the sigma
 * tables, the interpolations, torch.linspace's two-ended evaluation) so the
 * sigmas agree with the reference to the last bits; docs/KDIFFUSION.md. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kdiff_sched.h"
#include "samplers.h"

/* ---- names ---------------------------------------------------------------- */

static const struct { const char *label, *kname; } SAMPLERS[KD_SAMPLER_COUNT] = {
    [KD_EULER] = {"Euler", "k_euler"},           [KD_EULER_A] = {"Euler a", "k_euler_a"},
    [KD_HEUN] = {"Heun", "k_heun"},              [KD_LMS] = {"LMS", "k_lms"},
    [KD_DPMPP_2M] = {"DPM++ 2M", "k_dpmpp_2m"}, [KD_DPMPP_2M_SDE] = {"DPM++ 2M SDE", "k_dpmpp_2m_sde"},
};
static const struct { const char *label, *name; } SCHEDULES[KD_SCHED_COUNT] = {
    [KD_SCHED_AUTOMATIC] = {"Automatic", "automatic"},       [KD_SCHED_UNIFORM] = {"Uniform", "uniform"},
    [KD_SCHED_KARRAS] = {"Karras", "karras"},                [KD_SCHED_EXPONENTIAL] = {"Exponential", "exponential"},
    [KD_SCHED_SGM_UNIFORM] = {"SGM Uniform", "sgm_uniform"},
};

const char *kd_sampler_label(kd_sampler s) { return s >= 0 && s < KD_SAMPLER_COUNT ? SAMPLERS[s].label : NULL; }
const char *kd_sampler_kname(kd_sampler s) { return s >= 0 && s < KD_SAMPLER_COUNT ? SAMPLERS[s].kname : NULL; }
const char *kd_schedule_label(kd_schedule s) { return s >= 0 && s < KD_SCHED_COUNT ? SCHEDULES[s].label : NULL; }
const char *kd_schedule_name(kd_schedule s) { return s >= 0 && s < KD_SCHED_COUNT ? SCHEDULES[s].name : NULL; }

kd_schedule kd_schedule_resolve(kd_sampler s, kd_schedule sch)
{
    if (sch != KD_SCHED_AUTOMATIC) return sch;
    if (s == KD_DPMPP_2M) return KD_SCHED_KARRAS;
    if (s == KD_DPMPP_2M_SDE) return KD_SCHED_EXPONENTIAL;
    return KD_SCHED_UNIFORM;
}

/* The sampler whose label is exactly the first len bytes of name; -1 if none. */
static int label_match(const char *name, size_t len)
{
    for (int s = 0; s < KD_SAMPLER_COUNT; s++)
        if (strlen(SAMPLERS[s].label) == len && !strncmp(name, SAMPLERS[s].label, len)) return s;
    return -1;
}

/* A display name: "<label>" or "<label> <schedule label>".  0 or -1. */
static int parse_display(const char *name, kd_choice *c)
{
    int s = label_match(name, strlen(name));
    if (s >= 0) { c->sampler = (kd_sampler)s; c->schedule = KD_SCHED_AUTOMATIC; return 0; }
    size_t len = strlen(name);
    for (int k = 0; k < KD_SCHED_COUNT; k++) {
        size_t sl = strlen(SCHEDULES[k].label);
        if (len < sl + 2 || name[len - sl - 1] != ' ' || strcmp(name + len - sl, SCHEDULES[k].label)) continue;
        if ((s = label_match(name, len - sl - 1)) < 0) continue;
        c->sampler = (kd_sampler)s;
        c->schedule = (kd_schedule)k;
        return 0;
    }
    return -1;
}

static int parse_kname(const char *name, kd_choice *c)
{
    for (int s = 0; s < KD_SAMPLER_COUNT; s++)
        if (!strcmp(name, SAMPLERS[s].kname)) { c->sampler = (kd_sampler)s; c->schedule = KD_SCHED_AUTOMATIC; return 0; }
    return -1;
}

int kd_is_name(const char *name)
{
    kd_choice c;
    return name && (parse_display(name, &c) == 0 || parse_kname(name, &c) == 0);
}

static int parse_schedule(const char *name, kd_schedule *out)
{
    for (int k = 0; k < KD_SCHED_COUNT; k++)
        if (!strcmp(name, SCHEDULES[k].name)) { *out = (kd_schedule)k; return 0; }
    return -1;
}

int kd_parse(const char *sampler, const char *scheduler, kd_choice *out, sd_err *err)
{
    kd_choice c;
    if (!sampler || (parse_display(sampler, &c) && parse_kname(sampler, &c)))
        return sd_errf(err, SD_EINVAL, "sampler",
                       "unknown k-diffusion sampler \"%.80s\": use an A1111 name (\"Euler\", \"Euler a\", \"Heun\", "
                       "\"LMS\", \"DPM++ 2M\", \"DPM++ 2M SDE\", optionally followed by a schedule: \"DPM++ 2M "
                       "Karras\") or k_euler, k_euler_a, k_heun, k_lms, k_dpmpp_2m, k_dpmpp_2m_sde",
                       sampler ? sampler : "");
    if (scheduler && *scheduler) {
        kd_schedule k;
        if (parse_schedule(scheduler, &k))
            return sd_errf(err, SD_EINVAL, "scheduler",
                           "unknown scheduler \"%.80s\": use automatic, uniform, karras, exponential or sgm_uniform",
                           scheduler);
        if (c.schedule != KD_SCHED_AUTOMATIC && c.schedule != k)
            return sd_errf(err, SD_EINVAL, "scheduler", "scheduler \"%s\" contradicts the sampler name \"%.80s\"",
                           scheduler, sampler);
        c.schedule = k;
    }
    *out = c;
    return 0;
}

int kd_display_name(kd_choice c, char *buf, size_t size)
{
    const char *l = kd_sampler_label(c.sampler), *s = kd_schedule_label(c.schedule);
    if (!l || !s) return snprintf(buf, size, "?");
    if (c.schedule == KD_SCHED_AUTOMATIC) return snprintf(buf, size, "%s", l);
    return snprintf(buf, size, "%s %s", l, s);
}

/* ---- model sigmas ------------------------------------------------------- */

#define LDM_STEPS 1000

void kd_model_init_ldm(kd_model *m, float *acp)
{
    float table[LDM_STEPS];
    const double b0 = sqrt(0.00085), b1 = sqrt(0.012), step = (b1 - b0) / (LDM_STEPS - 1);
    double prod = 1.0;
    for (int i = 0; i < LDM_STEPS; i++) {
        /* torch.linspace(float64) evaluates the upper half from the end */
        double b = i < LDM_STEPS / 2 ? b0 + step * i : b1 - step * (LDM_STEPS - 1 - i);
        prod *= 1.0 - b * b;
        table[i] = (float)prod;
    }
    if (acp) memcpy(acp, table, sizeof table);
    kd_model_init_table(m, table, LDM_STEPS, NULL);
}

int kd_model_init_table(kd_model *m, const float *acp, int n, sd_err *err)
{
    if (!acp || n < 2 || n > KD_TABLE_MAX)
        return sd_errf(err, SD_EINVAL, "alphas_cumprod", "alphas_cumprod has %d entries, need 2..%d", n, KD_TABLE_MAX);
    for (int i = 0; i < n; i++) {
        if (!(acp[i] > 0.0f && acp[i] < 1.0f))
            return sd_errf(err, SD_EINVAL, "alphas_cumprod", "alphas_cumprod[%d] = %g is not in (0, 1)", i, (double)acp[i]);
        if (i > 0 && !(acp[i] < acp[i - 1]))
            return sd_errf(err, SD_EINVAL, "alphas_cumprod", "alphas_cumprod is not decreasing at entry %d", i);
    }
    m->n = n;
    for (int i = 0; i < n; i++) {
        m->sigmas[i] = sqrtf((1.0f - acp[i]) / acp[i]);
        m->log_sigmas[i] = logf(m->sigmas[i]);
        /* the interpolations need finite, strictly increasing log sigmas */
        if (!isfinite(m->log_sigmas[i]) || (i > 0 && !(m->log_sigmas[i] > m->log_sigmas[i - 1]))) {
            m->n = 0;
            return sd_errf(err, SD_EINVAL, "alphas_cumprod",
                           "alphas_cumprod gives no usable noise level at entry %d (sigma %g)", i, (double)m->sigmas[i]);
        }
    }
    return 0;
}

int kd_model_init_zsnr(kd_model *m, const float *acp, int n, sd_err *err)
{
    float t[KD_TABLE_MAX];
    if (!acp || n < 2 || n > KD_TABLE_MAX) return kd_model_init_table(m, acp, n, err);
    memcpy(t, acp, sizeof(float) * (size_t)n);
    sd_zsnr_rescale(t, n);
    t[n - 1] = (float)KD_ZSNR_LAST;
    return kd_model_init_table(m, t, n, err);
}

float kd_sigma_min(const kd_model *m) { return m->sigmas[0]; }
float kd_sigma_max(const kd_model *m) { return m->sigmas[m->n - 1]; }

float kd_sigma_to_t(const kd_model *m, float sigma)
{
    if (!(sigma > 0.0f)) return 0.0f;
    const float ls = logf(sigma);
    int at_or_below = 0;   /* table entries with log sigma <= ls (a prefix: ascending) */
    while (at_or_below < m->n && ls - m->log_sigmas[at_or_below] >= 0.0f) at_or_below++;
    int lo = at_or_below > 0 ? at_or_below - 1 : 0;
    if (lo > m->n - 2) lo = m->n - 2;
    const float low = m->log_sigmas[lo], high = m->log_sigmas[lo + 1];
    float w = (low - ls) / (low - high);
    w = w > 0.0f ? (w < 1.0f ? w : 1.0f) : 0.0f;   /* NaN -> 0 */
    return (1.0f - w) * (float)lo + w * (float)(lo + 1);
}

float kd_t_to_sigma(const kd_model *m, float t)
{
    const float tmax = (float)(m->n - 1);
    t = !(t > 0.0f) ? 0.0f : t > tmax ? tmax : t;
    const float f = floorf(t), w = t - f;
    const int lo = (int)f, hi = (int)ceilf(t);
    return expf((1.0f - w) * m->log_sigmas[lo] + w * m->log_sigmas[hi]);
}

/* ---- schedules ------------------------------------------------------------ */

/* torch.linspace(a, b, n) in float32 as torch's CPU kernel computes it:
 * the first half from a, the second from b (by index of the 8-wide vector
 * a value falls in, for the part done in pairs of vectors), each vector
 * value = its first value + k * step, the first value computed with FMA. */
static void torch_linspace(float a, float b, int n, float *out)
{
    if (n == 1) { out[0] = a; return; }
    enum { LANES = 8 };
    const float step = (b - a) / (float)(n - 1);
    const int half = n / 2, vectorised = n / (2 * LANES) * (2 * LANES);
    for (int i = 0; i < n; i++) {
        const int first = i < vectorised ? i - i % LANES : i;
        const float v0 = first < half ? fmaf(step, (float)first, a) : fmaf(-step, (float)(n - 1 - first), b);
        out[i] = v0 + (float)(i - first) * step;
    }
}

static void sched_uniform(const kd_model *m, int steps, float *out)
{
    torch_linspace((float)(m->n - 1), 0.0f, steps, out);
    for (int i = 0; i < steps; i++) out[i] = kd_t_to_sigma(m, out[i]);
}

static void sched_karras(const kd_model *m, int steps, float *out)
{
    const double rho = 7.0;
    const double lo = pow((double)kd_sigma_min(m), 1.0 / rho), hi = pow((double)kd_sigma_max(m), 1.0 / rho);
    torch_linspace(0.0f, 1.0f, steps, out);
    for (int i = 0; i < steps; i++) out[i] = powf((float)hi + out[i] * (float)(lo - hi), (float)rho);
}

static void sched_exponential(const kd_model *m, int steps, float *out)
{
    torch_linspace((float)log((double)kd_sigma_max(m)), (float)log((double)kd_sigma_min(m)), steps, out);
    for (int i = 0; i < steps; i++) out[i] = expf(out[i]);
}

/* A1111 sd_schedulers.sgm_uniform: n+1 points evenly spaced in t from
 * t(sigma_max) to t(sigma_min), the last dropped. */
static void sched_sgm_uniform(const kd_model *m, int steps, float *out)
{
    float t[KD_MAX_STEPS + 1];
    torch_linspace(kd_sigma_to_t(m, kd_sigma_max(m)), kd_sigma_to_t(m, kd_sigma_min(m)), steps + 1, t);
    for (int i = 0; i < steps; i++) out[i] = kd_t_to_sigma(m, t[i]);
}

int kd_sigmas(const kd_model *m, kd_sampler s, kd_schedule sch, int steps, float *out, sd_err *err)
{
    if (steps < 1 || steps > KD_MAX_STEPS)
        return sd_errf(err, SD_EINVAL, "steps", "steps must be in 1..%d, got %d", KD_MAX_STEPS, steps);
    if (s < 0 || s >= KD_SAMPLER_COUNT || sch < 0 || sch >= KD_SCHED_COUNT)
        return sd_errf(err, SD_EINVAL, "sampler", "no such k-diffusion sampler/schedule (%d/%d)", (int)s, (int)sch);
    switch (kd_schedule_resolve(s, sch)) {
    case KD_SCHED_KARRAS: sched_karras(m, steps, out); break;
    case KD_SCHED_EXPONENTIAL: sched_exponential(m, steps, out); break;
    case KD_SCHED_SGM_UNIFORM: sched_sgm_uniform(m, steps, out); break;
    default: sched_uniform(m, steps, out); break;
    }
    out[steps] = 0.0f;
    return 0;
}

int kd_img2img_first(int steps, double strength)
{
    double st = sd_strength_decimal(strength);
    if (!(st > 0)) st = 0;
    int t_enc = (int)((st < 0.999 ? st : 0.999) * steps);
    return steps - t_enc - 1;
}
