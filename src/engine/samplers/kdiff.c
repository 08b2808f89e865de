/* kdiff.c — A1111's samplers on k-diffusion semantics (sampling.py at
 * ab527a9a): Euler, Euler a, Heun, LMS, DPM++ 2M, DPM++ 2M SDE, each one
 * step function over a denoiser callback; the CFG denoiser A1111 wraps
 * around the UNet (CFGDenoiser over CompVisDenoiser); A1111's truncating
 * 8-bit conversion.  The per-step scalars are float32 as torch computes
 * them on 0-dim tensors; the element loops follow the reference's operation
 * order.  kdiff.h describes the driving API and the noise accounting. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kdiff.h"

/* One run's state: the request, its buffers and the multistep history. */
typedef struct kd_run {
    const kd_sample_req *r;
    size_t n;                 /* batch * per_image */
    int call;                 /* next model call number */
    float *den, *tmp, *old;   /* denoised, scratch, previous denoised */
    float *ds[4];             /* LMS: derivatives of the last 4 steps, ds[0] newest */
    int have_old, nds;
    float h_last;
} kd_run;

static int model(kd_run *k, const float *x, float sigma, float *out, sd_err *err)
{
    return k->r->denoise(k->r->denoise_ud, x, sigma, k->call++, out, err);
}

/* The next draw of each image into out (used = 1) or only counted, as
 * k-diffusion's unused randn_like (used = 0). */
static int draw(kd_run *k, float *out, int used, sd_err *err)
{
    sd_noise_src *ns = k->r->noise;
    if (!ns) return used ? sd_errf(err, SD_EINTERNAL, "noise", "this sampler needs a noise source") : 0;
    if (used) sd_noise_next(ns, k->r->batch, k->r->per_image, out);
    else ns->draw++;
    return 0;
}

/* x += (x - den) / sigma * dt, k-diffusion's to_d then the Euler update;
 * d (may be NULL) keeps the derivative. */
static void euler_update(float *x, const float *den, float sigma, float dt, float *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float di = (x[i] - den[i]) / sigma;
        if (d) d[i] = di;
        x[i] = x[i] + di * dt;
    }
}

static int step_euler(kd_run *k, int i, float *x, sd_err *err)
{
    const float *s = k->r->sigmas;
    if (draw(k, NULL, 0, err) || model(k, x, s[i], k->den, err)) return -1;
    euler_update(x, k->den, s[i], s[i + 1] - s[i], NULL, k->n);
    return 0;
}

static int step_heun(kd_run *k, int i, float *x, sd_err *err)
{
    const float *s = k->r->sigmas;
    const float dt = s[i + 1] - s[i];
    if (draw(k, NULL, 0, err) || model(k, x, s[i], k->den, err)) return -1;
    if (s[i + 1] == 0.0f) { euler_update(x, k->den, s[i], dt, NULL, k->n); return 0; }
    float *x2 = k->tmp, *d = k->ds[0];
    memcpy(x2, x, k->n * sizeof *x);
    euler_update(x2, k->den, s[i], dt, d, k->n);
    if (model(k, x2, s[i + 1], k->den, err)) return -1;
    for (size_t j = 0; j < k->n; j++) {
        float d2 = (x2[j] - k->den[j]) / s[i + 1];
        x[j] = x[j] + (d[j] + d2) / 2.0f * dt;
    }
    return 0;
}

static int step_euler_a(kd_run *k, int i, float *x, sd_err *err)
{
    const float *s = k->r->sigmas;
    const float from = s[i], to = s[i + 1];
    if (model(k, x, from, k->den, err)) return -1;
    /* get_ancestral_step, eta 1 */
    float up = sqrtf(to * to * (from * from - to * to) / (from * from));
    if (up > to) up = to;
    const float down = sqrtf(to * to - up * up);
    euler_update(x, k->den, from, down - from, NULL, k->n);
    if (!(to > 0.0f)) return 0;
    if (draw(k, k->tmp, 1, err)) return -1;
    for (size_t j = 0; j < k->n; j++) x[j] = x[j] + k->tmp[j] * 1.0f * up;
    return 0;
}

/* Gauss-Legendre, 3 points on [-1, 1]: exact for the cubic Lagrange bases. */
static double integrate_basis(const double *t, int i, int order, int j)
{
    static const double node[3] = {-0.774596669241483377, 0.0, 0.774596669241483377};
    static const double weight[3] = {5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0};
    const double a = t[i], b = t[i + 1], half = (b - a) / 2, mid = (a + b) / 2;
    double sum = 0;
    for (int q = 0; q < 3; q++) {
        const double tau = mid + half * node[q];
        double prod = 1.0;
        for (int m = 0; m < order; m++)
            if (m != j) prod *= (tau - t[i - m]) / (t[i - j] - t[i - m]);
        sum += weight[q] * prod;
    }
    return sum * half;
}

int kd_lms_coeffs(const float *sigmas, int i, double coef[4])
{
    const int order = i + 1 < 4 ? i + 1 : 4;
    double t[KD_MAX_STEPS + 1];
    for (int m = i - order + 1; m <= i + 1; m++) t[m] = sigmas[m];
    for (int j = 0; j < 4; j++) coef[j] = j < order ? integrate_basis(t, i, order, j) : 0.0;
    return order;
}

static int step_lms(kd_run *k, int i, float *x, sd_err *err)
{
    const float *s = k->r->sigmas;
    if (model(k, x, s[i], k->den, err)) return -1;
    float *oldest = k->ds[3];
    memmove(k->ds + 1, k->ds, 3 * sizeof k->ds[0]);
    k->ds[0] = oldest;
    for (size_t j = 0; j < k->n; j++) k->ds[0][j] = (x[j] - k->den[j]) / s[i];
    if (k->nds < 4) k->nds++;
    double coef[4];
    const int order = kd_lms_coeffs(s, i, coef);
    for (size_t j = 0; j < k->n; j++) {
        float acc = (float)coef[0] * k->ds[0][j];
        for (int o = 1; o < order; o++) acc = acc + (float)coef[o] * k->ds[o][j];
        x[j] = x[j] + acc;
    }
    return 0;
}

static void keep_denoised(kd_run *k)
{
    memcpy(k->old, k->den, k->n * sizeof *k->old);
    k->have_old = 1;
}

static int step_dpmpp_2m(kd_run *k, int i, float *x, sd_err *err)
{
    const float *s = k->r->sigmas;
    if (model(k, x, s[i], k->den, err)) return -1;
    const float t = -logf(s[i]), t_next = -logf(s[i + 1]), h = t_next - t;
    const float ratio = expf(-t_next) / expf(-t), b = expm1f(-h);
    if (!k->have_old || s[i + 1] == 0.0f) {
        for (size_t j = 0; j < k->n; j++) x[j] = ratio * x[j] - b * k->den[j];
    } else {
        const float r = (t - -logf(s[i - 1])) / h;
        const float c_new = 1.0f + 1.0f / (2.0f * r), c_old = 1.0f / (2.0f * r);
        for (size_t j = 0; j < k->n; j++) x[j] = ratio * x[j] - b * (c_new * k->den[j] - c_old * k->old[j]);
    }
    keep_denoised(k);
    return 0;
}

/* midpoint solver, eta 1, s_noise 1 */
static int step_dpmpp_2m_sde(kd_run *k, int i, float *x, sd_err *err)
{
    const float *s = k->r->sigmas;
    if (model(k, x, s[i], k->den, err)) return -1;
    if (s[i + 1] == 0.0f) {
        memcpy(x, k->den, k->n * sizeof *x);
        keep_denoised(k);
        return 0;
    }
    const float h = -logf(s[i + 1]) - -logf(s[i]), eta_h = 1.0f * h;
    const float a = s[i + 1] / s[i] * expf(-eta_h), b = -expm1f(-h - eta_h);
    for (size_t j = 0; j < k->n; j++) x[j] = a * x[j] + b * k->den[j];
    if (k->have_old) {
        const float c = 0.5f * b * (1.0f / (k->h_last / h));
        for (size_t j = 0; j < k->n; j++) x[j] = x[j] + c * (k->den[j] - k->old[j]);
    }
    if (draw(k, k->tmp, 1, err)) return -1;
    const float amp = sqrtf(-expm1f(-2.0f * eta_h));
    for (size_t j = 0; j < k->n; j++) x[j] = x[j] + k->tmp[j] * s[i + 1] * amp * 1.0f;
    keep_denoised(k);
    k->h_last = h;
    return 0;
}

typedef int (*step_fn)(kd_run *k, int i, float *x, sd_err *err);
static const step_fn STEPS[KD_SAMPLER_COUNT] = {
    [KD_EULER] = step_euler, [KD_EULER_A] = step_euler_a, [KD_HEUN] = step_heun,
    [KD_LMS] = step_lms,     [KD_DPMPP_2M] = step_dpmpp_2m, [KD_DPMPP_2M_SDE] = step_dpmpp_2m_sde,
};

void kd_start(const float *sigmas, const float *noise, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = noise[i] * sigmas[0];
}

static int check_req(const kd_sample_req *r, sd_err *err)
{
    if (!r || r->sampler < 0 || r->sampler >= KD_SAMPLER_COUNT)
        return sd_errf(err, SD_EINVAL, "sampler", "no such k-diffusion sampler");
    if (r->steps < 1 || r->steps > KD_MAX_STEPS)
        return sd_errf(err, SD_EINVAL, "steps", "steps must be in 1..%d, got %d", KD_MAX_STEPS, r->steps);
    if (!r->sigmas || !r->denoise || r->batch < 1 || r->per_image < 1)
        return sd_errf(err, SD_EINTERNAL, "sampler", "incomplete k-diffusion sampling request");
    for (int i = 0; i < r->steps; i++)
        if (!(r->sigmas[i] > 0.0f) || !(r->sigmas[i + 1] < r->sigmas[i]) || r->sigmas[i + 1] < 0.0f)
            return sd_errf(err, SD_EINVAL, "sigmas", "sigmas must decrease from a positive value to >= 0 (step %d)", i);
    return 0;
}

int kd_sample(const kd_sample_req *r, float *x, sd_err *err)
{
    if (check_req(r, err)) return -1;
    kd_run k = {.r = r, .n = (size_t)r->batch * r->per_image};
    float *mem = malloc(7 * k.n * sizeof *mem);
    if (!mem) return sd_errf(err, SD_ENOMEM, "sampler", "no memory for the sampler's %zu-float state", 7 * k.n);
    k.den = mem; k.tmp = mem + k.n; k.old = mem + 2 * k.n;
    for (int j = 0; j < 4; j++) k.ds[j] = mem + (3 + j) * k.n;
    int rc = 0;
    for (int i = 0; i < r->steps && rc == 0; i++) {
        if (r->on_step) r->on_step(r->on_step_ud, i, x);
        rc = STEPS[r->sampler](&k, i, x, err);
        if (rc == 0 && r->on_denoised) r->on_denoised(r->on_denoised_ud, i + 1, r->steps, k.den);
        if (rc == 0 && r->progress && r->progress(r->progress_ud, i + 1, r->steps))
            rc = sd_errf(err, SD_ECANCELLED, "", "cancelled after step %d of %d", i + 1, r->steps);
    }
    free(mem);
    return rc;
}

/* ---- CFG denoiser ------------------------------------------------------- */

int kd_cfg_denoise(void *ud, const float *x, float sigma, int call, float *denoised, sd_err *err)
{
    kd_cfg *g = ud;
    const size_t n = (size_t)g->batch * g->per_image;
    const int guided = g->cfg != 1.0f, rows = guided ? 2 * g->batch : g->batch;
    const size_t rn = (size_t)rows * g->per_image;
    float *mem = g->work ? g->work : malloc(2 * rn * sizeof *mem);
    if (!mem) return sd_errf(err, SD_ENOMEM, "sampler", "no memory for the CFG rows");
    float *x_in = mem, *eps = mem + rn;
    const float c_in = 1.0f / sqrtf(sigma * sigma + 1.0f), t = kd_sigma_to_t(g->model, sigma);
    for (size_t i = 0; i < rn; i++) x_in[i] = x[i % n] * c_in;
    int rc = g->unet(g->ud, x_in, rows, t, call, eps, err);
    if (rc == 0 && g->on_call) g->on_call(g->on_call_ud, call, x_in, t, eps);
    if (rc == 0) {
        /* CompVisDenoiser: d = x + eps * (-sigma); A1111: d_u + (d_c - d_u) * cfg */
        for (size_t i = 0; i < n; i++) {
            const float dc = x[i] + eps[i] * -sigma;
            if (!guided) { denoised[i] = dc; continue; }
            const float du = x[i] + eps[n + i] * -sigma;
            denoised[i] = du + (dc - du) * g->cfg;
        }
    }
    if (!g->work) free(mem);
    return rc;
}

/* ---- 8-bit output --------------------------------------------------------- */

void kd_rgb8_a1111(const float *img, int h, int w, uint8_t *rgb)
{
    const size_t plane = (size_t)h * w;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++) rgb[p * 3 + c] = kd_u8_a1111(img[c * plane + p]);
}
