/* schedule.c — SD's training noise schedule and the inference schedules
 * (timesteps and sigmas) of each sampler, img2img start index, add-noise and
 * the VAE posterior sample.
 *
 * Reproduces diffusers v0.25.1 (numpy/torch float32 where it matters):
 *   - betas: torch.linspace(sqrt(0.00085), sqrt(0.012), 1000, float32)^2,
 *     bit-exact with torch 1.13's AVX2 kernel (see train_linspace);
 *   - alphas_cumprod: torch.cumprod (accumulates in double on the CPU);
 *   - sigmas: sqrt((1-acp)/acp) in float32; interpolation, Karras sigmas and
 *     sigma->t in double like numpy, stored as float32 like the schedulers.
 * Spacings (steps_offset 1): leading t = (n-1-i)*(1000/n) + 1; linspace
 * t = linspace(0, 999, n) reversed; trailing t = round(1000 - i*1000/n) - 1.
 * DPM-Solver++ uses 1000/(n+1) for leading and n+1 points for linspace. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "samplers.h"

/* torch 1.13 CPU linspace in float32 (AVX2 build): the first half counts
 * up from start, the second half down from end; vectorised blocks of 8
 * start from base = fma(step, idx, start) (the compiler contracts it) and
 * add k*step; the tail after the last 16-element chunk is scalar. */
static void train_linspace(float start, float end, int steps, float *out)
{
    const float step = (end - start) / (float)(steps - 1);
    const int halfway = steps / 2, W = 8, vec_end = steps / (2 * W) * (2 * W);
    for (int i = 0; i < steps; i++) {
        int base_i = i < vec_end ? i / W * W : i;
        float base = base_i < halfway ? fmaf(step, (float)base_i, start)
                                      : fmaf(-step, (float)(steps - base_i - 1), end);
        out[i] = base + (float)(i - base_i) * step;
    }
}

void sd_train_sched_init(sd_train_sched *t)
{
    train_linspace((float)sqrt(0.00085), (float)sqrt(0.012), SD_TRAIN_STEPS, t->betas);
    double acc = 1.0;
    for (int i = 0; i < SD_TRAIN_STEPS; i++) {
        float b = t->betas[i];
        t->betas[i] = b * b;
        acc *= (double)(1.0f - t->betas[i]);
        float a = (float)acc;
        t->alphas_cumprod[i] = a;
        t->sigmas[i] = sqrtf((1.0f - a) / a);
        t->log_sigmas[i] = logf(t->sigmas[i]);
    }
}

void sd_zsnr_rescale(float *acp, int n)
{
    double s0 = sqrt((double)acp[0]), sT = sqrt((double)acp[n - 1]);
    for (int i = 0; i < n; i++) {
        double r = (sqrt((double)acp[i]) - sT) * (s0 / (s0 - sT));
        acp[i] = (float)(r * r);
    }
    acp[n - 1] = 0.0f;
}

void sd_train_sched_zsnr(sd_train_sched *t)
{
    float abar[SD_TRAIN_STEPS];
    memcpy(abar, t->alphas_cumprod, sizeof abar);
    sd_zsnr_rescale(abar, SD_TRAIN_STEPS);
    double acc = 1.0;
    for (int i = 0; i < SD_TRAIN_STEPS; i++) {
        double alpha = i ? (double)abar[i] / (double)abar[i - 1] : (double)abar[0];
        t->betas[i] = (float)(1.0 - alpha);
        acc *= (double)(1.0f - t->betas[i]);
        float a = i == SD_TRAIN_STEPS - 1 ? 0x1p-24f : (float)acc;
        t->alphas_cumprod[i] = a;
        t->sigmas[i] = sqrtf((1.0f - a) / a);
        t->log_sigmas[i] = logf(t->sigmas[i]);
    }
}

/* numpy.linspace(start, stop, num)[i] */
static double np_linspace(double start, double stop, int num, int i)
{
    if (num == 1) return start;
    if (i == num - 1) return stop;
    return i * ((stop - start) / (num - 1)) + start;
}

/* numpy.interp(x, arange(1000), table) in double. */
static double interp_table(const float *table, double x)
{
    if (x <= 0) return table[0];
    if (x >= SD_TRAIN_STEPS - 1) return table[SD_TRAIN_STEPS - 1];
    int j = (int)floor(x);
    double slope = ((double)table[j + 1] - (double)table[j]) / 1.0;
    return slope * (x - j) + table[j];
}

/* diffusers _sigma_to_t: fractional train timestep of sigma by linear
 * interpolation of log sigma (log_sigmas ascending). */
static double sigma_to_t(const sd_train_sched *tr, double sigma)
{
    double ls = log(sigma > 1e-10 ? sigma : 1e-10);
    int cnt = 0;
    for (int j = 0; j < SD_TRAIN_STEPS; j++) cnt += ls - (double)tr->log_sigmas[j] >= 0;
    int lo = cnt > 0 ? cnt - 1 : 0;
    if (lo > SD_TRAIN_STEPS - 2) lo = SD_TRAIN_STEPS - 2;
    double low = tr->log_sigmas[lo], high = tr->log_sigmas[lo + 1];
    double w = (low - ls) / (low - high);
    if (w < 0) w = 0;
    if (w > 1) w = 1;
    return (1 - w) * lo + w * (lo + 1);
}

/* Karras et al. (2022) rho = 7 schedule from sigma_max down to sigma_min. */
static void karras(double sigma_min, double sigma_max, int n, double *out)
{
    const double rho = 7.0;
    double min_inv = pow(sigma_min, 1 / rho), max_inv = pow(sigma_max, 1 / rho);
    for (int i = 0; i < n; i++)
        out[i] = pow(max_inv + np_linspace(0, 1, n, i) * (min_inv - max_inv), rho);
}

/* Timesteps (as doubles, descending) for the three spacings.  `m` points;
 * leading uses `ratio` (1000/n, or 1000/(n+1) for DPM). */
static void spacing_timesteps(sd_spacing sp, int m, int ratio, double *t)
{
    for (int i = 0; i < m; i++) {
        switch (sp) {
        case SD_SPACING_LEADING: t[i] = (double)(m - 1 - i) * ratio + 1; break;
        case SD_SPACING_LINSPACE: t[i] = np_linspace(0, SD_TRAIN_STEPS - 1, m, m - 1 - i); break;
        case SD_SPACING_TRAILING: {
            /* numpy.arange(1000, 0, -1000/m): start + i*delta */
            double delta = -(double)SD_TRAIN_STEPS / m;
            delta = ((double)SD_TRAIN_STEPS + delta) - SD_TRAIN_STEPS;
            t[i] = nearbyint(SD_TRAIN_STEPS + i * delta) - 1;
            break;
        }
        }
    }
}

static const char *kind_name(sd_sched_kind k)
{
    static const char *names[] = { "euler", "euler_karras", "ddim", "dpmpp_2m", "dpmpp_2m_karras", "lcm", "pndm" };
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static int init_kind(sd_sched *s, sd_sched_kind kind, sd_spacing spacing, int steps, int zsnr, sd_err *err);

int sd_sched_init_kind(sd_sched *s, sd_sched_kind kind, sd_spacing spacing, int steps, sd_err *err)
{
    return init_kind(s, kind, spacing, steps, 0, err);
}

static int init_kind(sd_sched *s, sd_sched_kind kind, sd_spacing spacing, int steps, int zsnr, sd_err *err)
{
    if ((unsigned)kind > SD_SCHED_PNDM || (unsigned)spacing > SD_SPACING_TRAILING)
        return sd_errf(err, SD_EINVAL, "sampler", "unknown schedule kind %d / spacing %d", (int)kind, (int)spacing);
    if (steps < 1 || steps > SD_MAX_STEPS)
        return sd_errf(err, SD_EINVAL, "num_inference_steps", "steps must be in 1..%d, got %d", SD_MAX_STEPS, steps);
    if (kind == SD_SCHED_LCM && steps > SD_LCM_ORIGINAL_STEPS)
        return sd_errf(err, SD_EINVAL, "num_inference_steps", "the LCM sampler supports at most %d steps, got %d",
                       SD_LCM_ORIGINAL_STEPS, steps);
    memset(s, 0, offsetof(sd_sched, train));
    sd_train_sched_init(&s->train);
    if (zsnr) sd_train_sched_zsnr(&s->train);
    const sd_train_sched *tr = &s->train;
    s->kind = kind;
    s->spacing = spacing;
    s->steps = steps;
    s->n = steps;
    s->start = 0;
    s->init_noise_sigma = 1.0f;
    static const sd_sampler samplers[] = { SD_SAMPLER_EULER, SD_SAMPLER_COUNT, SD_SAMPLER_DDIM, SD_SAMPLER_DPMPP_2M,
                                           SD_SAMPLER_DPMPP_2M_KARRAS, SD_SAMPLER_LCM, SD_SAMPLER_COUNT };
    s->sampler = samplers[kind];

    double t[SD_MAX_STEPS + 1], sig[SD_MAX_STEPS + 1];
    const int n = steps;
    switch (kind) {
    case SD_SCHED_EULER:
    case SD_SCHED_EULER_KARRAS:
        spacing_timesteps(spacing, n, SD_TRAIN_STEPS / n, t);
        for (int i = 0; i < n; i++) sig[i] = interp_table(tr->sigmas, t[i]);
        if (kind == SD_SCHED_EULER_KARRAS) {
            karras(sig[n - 1], sig[0], n, sig);
            for (int i = 0; i < n; i++) t[i] = sigma_to_t(tr, sig[i]);
        }
        for (int i = 0; i < n; i++) {
            s->timesteps[i] = (float)t[i];
            s->t_int[i] = (int)nearbyint(t[i]);
            s->sigmas[i] = (float)sig[i];
        }
        s->sigmas[n] = 0.0f;
        {
            float smax = 0;
            for (int i = 0; i < n; i++) smax = s->sigmas[i] > smax ? s->sigmas[i] : smax;
            s->init_noise_sigma = spacing == SD_SPACING_LEADING ? sqrtf(smax * smax + 1.0f) : smax;
        }
        break;
    case SD_SCHED_DDIM:
    case SD_SCHED_PNDM: {
        int asc[SD_MAX_STEPS];
        spacing_timesteps(spacing, n, SD_TRAIN_STEPS / n, t);
        for (int i = 0; i < n; i++) asc[n - 1 - i] = (int)nearbyint(t[i]);
        if (kind == SD_SCHED_DDIM) {
            for (int i = 0; i < n; i++) s->t_int[i] = asc[n - 1 - i];
        } else {
            /* PLMS without PRK steps: ascending [t0..t(n-2), t(n-2), t(n-1)], reversed */
            int m = 0, plms[SD_MAX_STEPS + 1];
            for (int i = 0; i < n - 1; i++) plms[m++] = asc[i];
            if (n >= 2) plms[m++] = asc[n - 2];
            plms[m++] = asc[n - 1];
            s->n = m;
            for (int i = 0; i < m; i++) s->t_int[i] = plms[m - 1 - i];
        }
        for (int i = 0; i < s->n; i++) s->timesteps[i] = (float)s->t_int[i];
        break;
    }
    case SD_SCHED_DPM:
    case SD_SCHED_DPM_KARRAS:
        if (kind == SD_SCHED_DPM) {
            if (spacing == SD_SPACING_TRAILING) spacing_timesteps(spacing, n, 0, t);
            else spacing_timesteps(spacing, n + 1, SD_TRAIN_STEPS / (n + 1), t); /* drop the last (t = 0 or 1) */
            for (int i = 0; i < n; i++) {
                s->t_int[i] = (int)nearbyint(t[i]);
                s->sigmas[i] = tr->sigmas[s->t_int[i]];
            }
            s->sigmas[n] = tr->sigmas[0];  /* diffusers 0.25: ends at sigma(t=0), not 0 */
        } else {
            /* Karras between the extreme train sigmas, whatever the spacing */
            karras(tr->sigmas[0], tr->sigmas[SD_TRAIN_STEPS - 1], n, sig);
            for (int i = 0; i < n; i++) {
                s->t_int[i] = (int)nearbyint(sigma_to_t(tr, sig[i]));
                s->sigmas[i] = (float)sig[i];
            }
            s->sigmas[n] = s->sigmas[n - 1];
        }
        for (int i = 0; i < n; i++) s->timesteps[i] = (float)s->t_int[i];
        break;
    case SD_SCHED_LCM: {
        /* candidates 999, 979, ..., 19 (50 of them); take floor(linspace(0, 50, n, endpoint=False)) */
        const int k = SD_TRAIN_STEPS / SD_LCM_ORIGINAL_STEPS;
        for (int i = 0; i < n; i++) {
            int idx = (int)floor(i * ((double)SD_LCM_ORIGINAL_STEPS / n));
            s->t_int[i] = (SD_LCM_ORIGINAL_STEPS - idx) * k - 1;
            s->timesteps[i] = (float)s->t_int[i];
        }
        break;
    }
    }
    for (int i = 0; i < s->n; i++)
        if (!(s->timesteps[i] >= 0 && s->timesteps[i] <= SD_TRAIN_STEPS - 1))
            return sd_errf(err, SD_EINTERNAL, "sampler", "%s schedule of %d steps produced timestep %g",
                           kind_name(kind), steps, (double)s->timesteps[i]);
    return 0;
}

int sd_sched_init(sd_sched *s, sd_sampler sampler, sd_spacing spacing, int steps, sd_err *err)
{
    return sd_sched_init_zsnr(s, sampler, spacing, steps, 0, err);
}

int sd_sched_init_zsnr(sd_sched *s, sd_sampler sampler, sd_spacing spacing, int steps, int zsnr, sd_err *err)
{
    static const sd_sched_kind kinds[SD_SAMPLER_COUNT] = {
        [SD_SAMPLER_EULER] = SD_SCHED_EULER, [SD_SAMPLER_EULER_A] = SD_SCHED_EULER,
        [SD_SAMPLER_DDIM] = SD_SCHED_DDIM, [SD_SAMPLER_DPMPP_2M] = SD_SCHED_DPM,
        [SD_SAMPLER_DPMPP_2M_KARRAS] = SD_SCHED_DPM_KARRAS, [SD_SAMPLER_LCM] = SD_SCHED_LCM,
    };
    if ((unsigned)sampler >= SD_SAMPLER_COUNT)
        return sd_errf(err, SD_EINVAL, "sampler", "unknown sampler %d", (int)sampler);
    if (init_kind(s, kinds[sampler], spacing, steps, zsnr, err)) return -1;
    s->sampler = sampler;
    return 0;
}

double sd_strength_decimal(double strength)
{
    /* A value that came through a float (0.7f = 0.69999998...) is taken as
     * the decimal it was written as. */
    if ((double)(float)strength == strength) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.7g", strength);
        strength = strtod(buf, NULL);
    }
    return strength;
}

int sd_img2img_start(int steps, double strength)
{
    strength = sd_strength_decimal(strength);   /* then multiplied like Python does */
    if (!(strength > 0)) strength = 0;
    if (strength > 1) strength = 1;
    int init_t = (int)(steps * strength);
    if (init_t > steps) init_t = steps;
    int t_start = steps - init_t;
    if (t_start < 0) t_start = 0;
    if (t_start > steps - 1) t_start = steps - 1;
    return t_start;
}

int sd_sched_set_strength(sd_sched *s, double strength)
{
    s->start = sd_img2img_start(s->steps, strength);
    return s->steps - s->start;
}

void sd_posterior_sample(const float *mean, const float *std, const float *eps, float scaling, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = (mean[i] + std[i] * eps[i]) * scaling;
}

void sd_sched_start_txt2img(const sd_sched *s, const float *noise, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = noise[i] * s->init_noise_sigma;
}

void sd_sched_start_img2img(const sd_sched *s, const float *init, const float *noise, float *x, size_t n)
{
    sd_sched_add_noise(s, s->start, init, noise, x, n);
}

void sd_sched_add_noise(const sd_sched *s, int k, const float *init, const float *noise, float *x, size_t n)
{
    switch (s->kind) {
    case SD_SCHED_EULER:
    case SD_SCHED_EULER_KARRAS: {
        float sigma = s->sigmas[k];
        for (size_t i = 0; i < n; i++) x[i] = init[i] + noise[i] * sigma;
        break;
    }
    case SD_SCHED_DPM:
    case SD_SCHED_DPM_KARRAS: {
        float sigma = s->sigmas[k];
        float alpha = 1.0f / sqrtf(sigma * sigma + 1.0f), sigma_t = sigma * alpha;
        for (size_t i = 0; i < n; i++) x[i] = alpha * init[i] + sigma_t * noise[i];
        break;
    }
    default: {
        float acp = s->train.alphas_cumprod[s->t_int[k]];
        float a = sqrtf(acp), b = sqrtf(1.0f - acp);
        for (size_t i = 0; i < n; i++) x[i] = a * init[i] + b * noise[i];
        break;
    }
    }
}

void sd_noise_next(sd_noise_src *ns, int batch, size_t per_image, float *out)
{
    for (int b = 0; b < batch; b++) {
        float *o = out + (size_t)b * per_image;
        if (ns->fn) ns->fn(ns->ud, ns->seed + (uint64_t)b, ns->draw, o, per_image);
        else sd_philox_normal(ns->seed + (uint64_t)b, ns->draw, o, per_image);
    }
    ns->draw++;
}
