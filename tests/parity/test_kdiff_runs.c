/* test_kdiff_runs.c — A1111's sampler runs (goldens/a1111-samplers/runs/:
 * k-diffusion ab527a9a under A1111 v1.10.1, tiny-sd1, 64x48 px, seed 1234,
 * CFG 7.5) replayed through the k-diffusion module (kdiff.h) with the real
 * tiny-sd1 UNet and VAE at fp32: the schedule from the LDM sigma table, the
 * start latent draw0 * sigma0, the recorded noise draws as the image's draw
 * stream (their count checked: A1111's accounting), A1111's CFG denoiser
 * over the UNet with the stored conditioning rows [prompt, negative].
 * Checks per run: sigmas, x_start, every call's UNet input (both rows) and
 * timestep, every call's CFG-denoised output, the state at each step, the
 * final latent (1e-4 * max|latent|), the decoded image (1/255) and A1111's
 * truncating 8-bit picture against image.png (<= 1 level).  Also: LMS's
 * integrated coefficients (lms_coeffs.npy); our text encoder gives the
 * stored conditioning for this plain prompt; a batch of two equals each
 * seed alone; CFG 1 runs the prompt rows only; cancellation and a failing
 * UNet stop a run.
 * Prints "metric kdiff/<run> <what> <value> tol <tol>" (docs/KDIFFUSION.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "pipe_case.h"
#include "t.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/models/vae.h"
#include "../../src/engine/samplers/kdiff.h"
#include "../../src/image/image.h"

#define GOLD "goldens/a1111-samplers/"
#define PROMPT "a photograph of an astronaut riding a horse"
#define NEGATIVE "blurry, low quality"
#define TOL_REL 1e-4     /* unet_in, denoised, per-step x, final latent: relative to the array's max |.| */
#define TOL_T 1e-3       /* UNet t, absolute */
#define TOL_COND 1e-4

enum { LH = 8, LW = 6, PER = 4 * LH * LW, CTX_T = 77, CTX_W = 64 };

static const struct run_def { const char *dir; kd_sampler s; kd_schedule k; int steps; } RUNS[] = {
    {"euler_automatic_10", KD_EULER, KD_SCHED_AUTOMATIC, 10},
    {"euler_a_automatic_10", KD_EULER_A, KD_SCHED_AUTOMATIC, 10},
    {"euler_a_automatic_10_cpu_rng", KD_EULER_A, KD_SCHED_AUTOMATIC, 10},
    {"heun_automatic_10", KD_HEUN, KD_SCHED_AUTOMATIC, 10},
    {"lms_automatic_10", KD_LMS, KD_SCHED_AUTOMATIC, 10},
    {"dpmpp_2m_uniform_10", KD_DPMPP_2M, KD_SCHED_UNIFORM, 10},
    {"dpmpp_2m_karras_10", KD_DPMPP_2M, KD_SCHED_AUTOMATIC, 10},   /* Automatic = Karras for DPM++ 2M */
    {"dpmpp_2m_sde_exponential_10", KD_DPMPP_2M_SDE, KD_SCHED_AUTOMATIC, 10},
    {"euler_karras_4", KD_EULER, KD_SCHED_KARRAS, 4},
};

typedef struct golden { npy sigmas, draws, xstart, uin, ut, den, xps, fin, image; } golden;

/* One replay's state and its worst errors. */
typedef struct replay {
    golden g;
    sd_unet *unet;
    const float *ctx;          /* [2, 77, 64]: prompt row, negative row */
    kd_cfg cfg;
    int calls, draws_max, bad_draw;
    double in_err, t_err, den_err, step_err;
} replay;

static void golden_free(golden *g)
{
    npy *all[] = {&g->sigmas, &g->draws, &g->xstart, &g->uin, &g->ut, &g->den, &g->xps, &g->fin, &g->image};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) npy_free(all[i]);
}

static int golden_load(const char *dir, golden *g)
{
    static const char *const files[] = {"sigmas", "noise_draws", "x_start", "unet_in", "unet_t",
                                        "denoised", "x_per_step", "final_latent", "image"};
    npy *all[] = {&g->sigmas, &g->draws, &g->xstart, &g->uin, &g->ut, &g->den, &g->xps, &g->fin, &g->image};
    memset(g, 0, sizeof *g);
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, GOLD "runs/%s/%s.npy", dir, files[i]);
        if (npy_load(t_ref(rel), all[i])) return -1;
    }
    return g->fin.n == PER && g->xstart.n == PER ? 0 : -1;
}

static double rel_to_max(const float *a, const float *ref, size_t n)
{
    double m = npy_maxabs(ref, n);
    return npy_maxdiff(a, ref, n) / (m > 0 ? m : 1);
}

static void replay_noise(void *ud, uint64_t seed, uint64_t draw, float *out, size_t n)
{
    replay *r = ud;
    if ((int)draw + 1 > r->draws_max) r->draws_max = (int)draw + 1;
    if (seed != 1234 || n != PER || draw >= (uint64_t)r->g.draws.shape[0]) {
        r->bad_draw = 1;
        for (size_t i = 0; i < n; i++) out[i] = NAN;
        return;
    }
    memcpy(out, r->g.draws.f + draw * PER, n * sizeof *out);
}

static int replay_unet(void *ud, const float *x_in, int rows, float t, int call, float *eps, sd_err *err)
{
    replay *r = ud;
    float ts[2] = {t, t};
    if (rows != 2) return sd_errf(err, SD_EINTERNAL, "replay", "%d UNet rows, want [cond, uncond]", rows);
    unet_cond c = unet_cond_text(r->ctx, CTX_T);
    return unet_forward(r->unet, x_in, ts, &c, rows, LH, LW, eps, err);
}

static void replay_call(void *ud, int call, const float *x_in, float t, const float *eps)
{
    replay *r = ud;
    if ((size_t)call >= r->g.ut.n) return;
    for (int row = 0; row < 2; row++) {
        double e = rel_to_max(x_in + row * PER, r->g.uin.f + ((size_t)call * 2 + row) * PER, PER);
        if (e > r->in_err) r->in_err = e;
    }
    double et = fabs((double)t - r->g.ut.f[call]);
    if (et > r->t_err) r->t_err = et;
}

/* kd_cfg_denoise, then the result against the recorded CFG output */
static int replay_denoise(void *ud, const float *x, float sigma, int call, float *den, sd_err *err)
{
    replay *r = ud;
    if ((size_t)call >= r->g.ut.n) return sd_errf(err, SD_EINTERNAL, "replay", "call %d beyond the recorded ones", call);
    r->calls++;
    if (kd_cfg_denoise(&r->cfg, x, sigma, call, den, err)) return -1;
    double e = rel_to_max(den, r->g.den.f + (size_t)call * PER, PER);
    if (e > r->den_err) r->den_err = e;
    return 0;
}

static void replay_step(void *ud, int step, const float *x)
{
    replay *r = ud;
    if (step >= r->g.xps.shape[0]) { r->step_err = INFINITY; return; }
    double e = rel_to_max(x, r->g.xps.f + (size_t)step * PER, PER);
    if (e > r->step_err) r->step_err = e;
}

/* image.png as RGB8 */
static int load_png(const char *dir, img_rgb *im)
{
    char rel[256];
    snprintf(rel, sizeof rel, GOLD "runs/%s/image.png", dir);
    return pipe_load_png(rel, im);
}

/* Decodes the final latent, compares with image.npy and A1111's 8-bit
 * picture with image.png. */
static void check_image(sd_engine *e, const struct run_def *d, const float *lat, const golden *g)
{
    char name[200];
    sd_err err;
    sd_err_clear(&err);
    sd_vae *v = sd_engine_vae(e);
    float z[PER], *img = malloc(sizeof(float) * 3 * 64 * 48);
    uint8_t rgb[64 * 48 * 3];
    for (int i = 0; i < PER; i++) z[i] = lat[i] / vae_scaling_factor(v);
    int rc = vae_decode(v, z, 1, LH, LW, img, &err);
    double ie = rc ? INFINITY : npy_maxdiff(img, g->image.f, g->image.n) / 2;
    img_rgb png = {0};
    int levels = 999;
    if (rc == 0 && g->image.n == 3 * 64 * 48 && load_png(d->dir, &png) == 0 && png.width == 48 && png.height == 64) {
        kd_rgb8_a1111(img, 64, 48, rgb);
        levels = 0;
        for (int i = 0; i < 64 * 48 * 3; i++) {
            int dl = abs((int)rgb[i] - png.px[i]);
            if (dl > levels) levels = dl;
        }
    }
    printf("metric kdiff/%s image_maxabs_01 %.3g tol %.3g\n", d->dir, ie, 1.0 / 255);
    printf("metric kdiff/%s png_max_level_diff %d tol 1\n", d->dir, levels);
    snprintf(name, sizeof name, "kdiff/%s: decoded image within 1/255, A1111 8-bit picture within 1 level", d->dir);
    CHECKF(ie <= 1.0 / 255 && levels <= 1, name, "rc %d image err %.3g, %d levels %s", rc, ie, levels, err.msg);
    img_rgb_free(&png);
    free(img);
}

static void report(const struct run_def *d, const replay *r, double xs_err, double fe, double sig_err)
{
    char name[200];
    const char *what[] = {"sigmas_maxrel", "x_start_rel", "unet_in_rel", "unet_t_maxabs", "denoised_rel",
                          "step_x_rel", "final_latent_rel"};
    double val[] = {sig_err, xs_err, r->in_err, r->t_err, r->den_err, r->step_err, fe};
    double tol[] = {1e-6, 1e-6, TOL_REL, TOL_T, TOL_REL, TOL_REL, TOL_REL};
    for (int i = 0; i < 7; i++) {
        printf("metric kdiff/%s %s %.3g tol %g\n", d->dir, what[i], val[i], tol[i]);
        snprintf(name, sizeof name, "kdiff/%s: %s", d->dir, what[i]);
        CHECKF(val[i] <= tol[i], name, "%.3g > %g", val[i], tol[i]);
    }
}

static void run_one(sd_engine *e, const kd_model *m, const float *ctx, const struct run_def *d)
{
    char name[200];
    replay r;
    memset(&r, 0, sizeof r);
    if (golden_load(d->dir, &r.g)) {
        snprintf(name, sizeof name, "kdiff/%s: goldens readable", d->dir);
        CHECK(0, name);
        golden_free(&r.g);
        return;
    }
    sd_err err;
    sd_err_clear(&err);
    float sig[KD_MAX_STEPS + 1], x[PER];
    int rc = kd_sigmas(m, d->s, d->k, d->steps, sig, &err);
    double sig_err = rc || r.g.sigmas.n != (size_t)d->steps + 1 ? INFINITY : 0;
    for (int i = 0; i < d->steps && sig_err < INFINITY; i++) {
        double e = fabs((double)sig[i] - r.g.sigmas.f[i]) / fabs((double)r.g.sigmas.f[i]);
        if (!(e <= sig_err)) sig_err = e == e ? e : INFINITY;
    }
    if (sig_err < INFINITY && sig[d->steps] != r.g.sigmas.f[d->steps]) sig_err = INFINITY;
    /* the golden's own sigmas drive the run, so a schedule error shows once, above */
    memcpy(sig, r.g.sigmas.f, sizeof(float) * r.g.sigmas.n);
    r.unet = sd_engine_unet(e);
    r.ctx = ctx;
    r.cfg = (kd_cfg){.unet = replay_unet, .ud = &r, .model = m, .cfg = 7.5f, .batch = 1, .per_image = PER,
                     .on_call = replay_call, .on_call_ud = &r};
    sd_noise_src ns = {replay_noise, &r, 1234, 0};
    sd_noise_next(&ns, 1, PER, x);   /* draw 0: the start noise */
    kd_start(sig, x, x, PER);
    double xs_err = rel_to_max(x, r.g.xstart.f, PER);
    kd_sample_req req = {.sampler = d->s, .sigmas = sig, .steps = d->steps, .batch = 1, .per_image = PER,
                         .denoise = replay_denoise, .denoise_ud = &r, .noise = &ns,
                         .on_step = replay_step, .on_step_ud = &r};
    rc = kd_sample(&req, x, &err);
    snprintf(name, sizeof name, "kdiff/%s: runs with the recorded number of UNet calls and noise draws", d->dir);
    CHECKF(rc == 0 && r.calls == (int)r.g.ut.n && (int)ns.draw == (int)r.g.draws.shape[0] && !r.bad_draw, name,
           "rc %d calls %d of %zu, draws %d of %d (bad %d): %s", rc, r.calls, r.g.ut.n, (int)ns.draw,
           (int)r.g.draws.shape[0], r.bad_draw, err.msg);
    double fe = rc ? INFINITY : rel_to_max(x, r.g.fin.f, PER);
    report(d, &r, xs_err, fe, sig_err);
    if (rc == 0) check_image(e, d, x, &r.g);
    golden_free(&r.g);
}

/* A1111's conditioning of this plain prompt is ours (row order aside). */
static void check_conditioning(sd_engine *e, const npy *cond, const npy *uncond)
{
    float *ctx = NULL;
    int T = 0, W = 0;
    sd_err err;
    sd_err_clear(&err);
    sd_gen_params gp = {.prompt = PROMPT, .negative = NEGATIVE};
    int rc = sd_encode_text(e, &gp, &ctx, &T, &W, &err);
    double dc = INFINITY, du = INFINITY;
    if (rc == 0 && T == CTX_T && W == CTX_W) {
        du = npy_maxdiff(ctx, uncond->f, CTX_T * CTX_W);
        dc = npy_maxdiff(ctx + CTX_T * CTX_W, cond->f, CTX_T * CTX_W);
    }
    printf("metric kdiff/conditioning maxabs %.3g tol %g\n", dc > du ? dc : du, TOL_COND);
    CHECKF(dc <= TOL_COND && du <= TOL_COND, "kdiff: sd_encode_text = A1111's stored cond/uncond rows", "rc %d %s %g %g",
           rc, err.msg, dc, du);
    free(ctx);
}

static void check_lms_coeffs(void)
{
    /* lms_coeffs.npy holds k-diffusion's float64 values stored as float32 */
    npy s = {0}, w = {0};
    if (npy_load(t_ref("goldens/a1111-samplers/runs/lms_automatic_10/lms_coeffs.npy"), &w) || w.n != 40 ||
        npy_load(t_ref("goldens/a1111-samplers/runs/lms_automatic_10/sigmas.npy"), &s) || s.n != 11) {
        CHECK(0, "LMS coefficient goldens readable");
        npy_free(&s); npy_free(&w);
        return;
    }
    const float *want = w.f;
    double worst = 0;
    int orders_ok = 1;
    for (int i = 0; i < 10; i++) {
        double c[4];
        orders_ok &= kd_lms_coeffs(s.f, i, c) == (i < 3 ? i + 1 : 4);
        for (int j = 0; j < 4; j++) {
            double e = fabs(c[j] - want[i * 4 + j]) / (fabs(want[i * 4 + j]) > 1e-3 ? fabs(want[i * 4 + j]) : 1e-3);
            if (e > worst) worst = e;
        }
    }
    printf("metric kdiff/lms_coeffs maxrel %.3g tol %g\n", worst, 1e-6);
    CHECKF(orders_ok && worst <= 1e-6, "LMS integrated Lagrange coefficients = k-diffusion's (order 1..4)", "max rel %g",
           worst);
    npy_free(&s); npy_free(&w);
}

/* ---- batching, cancellation, errors (a made-up row-local "UNet") ---------- */

static int toy_unet(void *ud, const float *x_in, int rows, float t, int call, float *eps, sd_err *err)
{
    (void)ud; (void)call;
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < PER; i++) {
            const float v = x_in[r * PER + i];
            eps[r * PER + i] = 0.9f * v + 0.001f * t * (r < rows / 2 ? 1.0f : -1.0f) + 0.01f * (float)(i % 7);
        }
    return 0;
}

static int toy_unet_fails(void *ud, const float *x_in, int rows, float t, int call, float *eps, sd_err *err)
{
    return call == 2 ? sd_errf(err, SD_EIO, "unet", "simulated failure") : toy_unet(ud, x_in, rows, t, call, eps, err);
}

static int cancel_at_3(void *ud, int step, int total) { (void)ud; (void)total; return step == 3; }

static int toy_run(const kd_model *m, kd_sampler s, int batch, uint64_t seed, float *x, kd_unet_fn unet,
                   sd_progress_fn progress, sd_err *err)
{
    float sig[8];
    sd_noise_src ns = {NULL, NULL, seed, 0};   /* Philox, seed + i per image */
    kd_sigmas(m, s, KD_SCHED_AUTOMATIC, 7, sig, err);
    sd_noise_next(&ns, batch, PER, x);
    kd_start(sig, x, x, (size_t)batch * PER);
    kd_cfg g = {.unet = unet, .model = m, .cfg = 5.0f, .batch = batch, .per_image = PER};
    kd_sample_req req = {.sampler = s, .sigmas = sig, .steps = 7, .batch = batch, .per_image = PER,
                         .denoise = kd_cfg_denoise, .denoise_ud = &g, .noise = &ns, .progress = progress};
    return kd_sample(&req, x, err);
}

/* cfg 1 runs the prompt rows only (denoised = x - sigma*eps); a caller's
 * work buffer gives the same bits as the per-call one. */
typedef struct rows_seen { int rows; } rows_seen;
static int toy_unet_rows(void *ud, const float *x_in, int rows, float t, int call, float *eps, sd_err *err)
{
    ((rows_seen *)ud)->rows = rows;
    return toy_unet(NULL, x_in, rows, t, call, eps, err);
}

static void check_cfg(const kd_model *m)
{
    static float x[2 * PER], d1[2 * PER], d2[2 * PER], eps[4 * PER], in[4 * PER], work[4 * 2 * PER];
    for (int i = 0; i < 2 * PER; i++) x[i] = sinf(0.37f * (float)i) * 3.0f;
    const float sigma = 2.5f;
    rows_seen seen = {0};
    sd_err err;
    sd_err_clear(&err);
    kd_cfg g = {.unet = toy_unet_rows, .ud = &seen, .model = m, .cfg = 1.0f, .batch = 2, .per_image = PER};
    int rc = kd_cfg_denoise(&g, x, sigma, 0, d1, &err);
    const float c_in = 1.0f / sqrtf(sigma * sigma + 1.0f), t = kd_sigma_to_t(m, sigma);
    for (int i = 0; i < 2 * PER; i++) in[i] = x[i] * c_in;
    toy_unet(NULL, in, 2, t, 0, eps, &err);
    int same = rc == 0 && seen.rows == 2;
    for (int i = 0; i < 2 * PER; i++) same &= d1[i] == x[i] + eps[i] * -sigma;
    CHECKF(same, "kdiff CFG 1: prompt rows only, denoised = x - sigma*eps", "rc %d rows %d", rc, seen.rows);
    g.cfg = 7.0f;
    rc = kd_cfg_denoise(&g, x, sigma, 0, d1, &err);
    int rows = seen.rows;
    g.work = work;
    rc |= kd_cfg_denoise(&g, x, sigma, 0, d2, &err);
    CHECKF(rc == 0 && rows == 4 && seen.rows == 4 && !memcmp(d1, d2, sizeof d1),
           "kdiff CFG 7: [prompt x2, negative x2] rows; a caller's work buffer gives the same bits", "rc %d rows %d", rc,
           rows);
}

static void check_batch_and_errors(const kd_model *m)
{
    static float xb[2 * PER], x1[PER];
    for (int s = 0; s < KD_SAMPLER_COUNT; s++) {
        sd_err err;
        sd_err_clear(&err);
        int same = toy_run(m, (kd_sampler)s, 2, 900, xb, toy_unet, NULL, &err) == 0;
        for (int b = 0; b < 2; b++)
            same &= toy_run(m, (kd_sampler)s, 1, 900 + (uint64_t)b, x1, toy_unet, NULL, &err) == 0 &&
                    !memcmp(x1, xb + b * PER, sizeof x1);
        char name[128];
        snprintf(name, sizeof name, "kdiff %s: batch of 2 = each seed alone, bit for bit", kd_sampler_label((kd_sampler)s));
        CHECKF(same, name, "%s", err.msg);
    }
    sd_err err;
    sd_err_clear(&err);
    CHECKF(toy_run(m, KD_HEUN, 1, 5, x1, toy_unet, cancel_at_3, &err) == -1 && err.code == SD_ECANCELLED,
           "kdiff: the progress callback cancels", "code %d %s", err.code, err.msg);
    sd_err_clear(&err);
    CHECKF(toy_run(m, KD_LMS, 1, 5, x1, toy_unet_fails, NULL, &err) == -1 && err.code == SD_EIO &&
           !strcmp(err.field, "unet"), "kdiff: a UNet error stops the run and is returned", "code %d %s", err.code,
           err.msg);
    float bad[3] = {5.0f, 7.0f, 0.0f};
    kd_sample_req req = {.sampler = KD_EULER, .sigmas = bad, .steps = 2, .batch = 1, .per_image = PER,
                         .denoise = kd_cfg_denoise};
    sd_err_clear(&err);
    CHECKF(kd_sample(&req, x1, &err) == -1 && err.code == SD_EINVAL && !strcmp(err.field, "sigmas"),
           "kdiff: increasing sigmas refused", "%s", err.msg);
}

int main(void)
{
    if (!t_have_ref()) { CHECKF(0, "reference data", "../shared/reference not found (set SD_REF)"); return t_done(); }
    static kd_model m;
    kd_model_init_ldm(&m, NULL);
    check_lms_coeffs();
    check_cfg(&m);
    check_batch_and_errors(&m);
    char msg[600];
    sd_engine *e = pipe_load(0, 0, "fp32", msg, sizeof msg);
    CHECKF(e != NULL, "load tiny-sd1 at fp32", "%s", msg);
    npy cond = {0}, uncond = {0};
    if (!e || npy_load(t_ref(GOLD "cond.npy"), &cond) || npy_load(t_ref(GOLD "uncond.npy"), &uncond) ||
        cond.n != CTX_T * CTX_W || uncond.n != CTX_T * CTX_W) {
        CHECK(0, "kdiff: conditioning goldens readable");
    } else {
        check_conditioning(e, &cond, &uncond);
        /* A1111's batch order: prompt row first, then the negative */
        static float ctx[2 * CTX_T * CTX_W];
        memcpy(ctx, cond.f, sizeof(float) * CTX_T * CTX_W);
        memcpy(ctx + CTX_T * CTX_W, uncond.f, sizeof(float) * CTX_T * CTX_W);
        for (size_t i = 0; i < sizeof RUNS / sizeof *RUNS; i++) run_one(e, &m, ctx, &RUNS[i]);
    }
    npy_free(&cond); npy_free(&uncond);
    sd_engine_free(e);
    return t_done();
}
