/* test_samplers.c — replays the reference pipeline runs through sd_sample
 * without a UNet: for tiny-sd1 (epsilon) and tiny-sd2 (v-prediction) and
 * every txt2img run at 4 and 10 steps and img2img run at 10 steps, the
 * recorded UNet outputs (CFG 7.5 applied here, as the pipeline's model
 * callback does) stand in for the model and the recorded random draws for
 * the noise source.  Checks, per run: the timesteps given to the UNet, the
 * scaled model inputs (vs unet_in, both CFG rows), the latent after each
 * step, the final latent, and the number of noise draws used.  Prints
 * "metric samplers/<model>/<run> <what> <value> tol <tol>" lines for
 * docs/ACCURACY.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "t.h"
#include "../../src/engine/samplers/samplers.h"

#define TOL_IN 1e-5     /* model input, relative to max |unet_in| of the call */
#define TOL_STEP 1e-4   /* latent after each step, relative to max |latent| */
#define TOL_FINAL 1e-4  /* final latent, relative to max |final latent| */
#define CFG 7.5f

typedef struct replay {
    npy ts, uin, uout, lps, draws;
    size_t per;              /* 4*8*6 */
    int calls_seen, bad_t;
    double in_err, step_err; /* worst relative errors */
    int draws_used_max;
} replay;

static int replay_model(void *ud, const float *x_in, float t, int call, float *out, sd_err *err)
{
    replay *r = ud;
    const size_t per = r->per;
    if (call != r->calls_seen || (size_t)call >= r->ts.n)
        return sd_errf(err, SD_EINTERNAL, "replay", "unexpected call %d (seen %d, recorded %zu)", call, r->calls_seen,
                       r->ts.n);
    r->calls_seen++;
    if (t != r->ts.f[call]) {
        if (!r->bad_t) fprintf(stderr, "call %d: timestep %.9g, recorded %.9g\n", call, (double)t, (double)r->ts.f[call]);
        r->bad_t++;
    }
    const float *rec_in = r->uin.f + (size_t)call * 2 * per;
    const float *u = r->uout.f + (size_t)call * 2 * per, *c = u + per;
    for (int row = 0; row < 2; row++) {
        double e = npy_maxdiff(x_in, rec_in + row * per, per) / npy_maxabs(rec_in + row * per, per);
        if (e > r->in_err) r->in_err = e;
    }
    for (size_t i = 0; i < per; i++) out[i] = u[i] + CFG * (c[i] - u[i]);
    return 0;
}

static void replay_step(void *ud, int call, const float *x)
{
    replay *r = ud;
    if ((size_t)call >= (size_t)r->lps.shape[0]) return;
    const float *ref = r->lps.f + (size_t)call * r->per;
    double e = npy_maxdiff(x, ref, r->per) / npy_maxabs(ref, r->per);
    if (e > r->step_err) r->step_err = e;
}

static void replay_noise(void *ud, uint64_t seed, uint64_t draw, float *out, size_t n)
{
    replay *r = ud;
    if ((int)draw + 1 > r->draws_used_max) r->draws_used_max = (int)draw + 1;
    if (seed != 1234 || n != r->per || r->draws.ndim == 0 || draw >= (uint64_t)r->draws.shape[0]) {
        for (size_t i = 0; i < n; i++) out[i] = NAN;  /* poisons the run: the test then fails */
        return;
    }
    memcpy(out, r->draws.f + draw * r->per, n * sizeof *out);
}

static int load(const char *model, const char *run, const char *what, npy *a)
{
    char rel[256];
    snprintf(rel, sizeof rel, "goldens/%s/pipe/%s/%s.npy", model, run, what);
    return npy_load(t_ref(rel), a);
}

static void run_one(const char *model, sd_prediction pred, const char *run, sd_sampler smp, int steps, int img2img,
                    sd_sched *sc)
{
    char name[256];
    snprintf(name, sizeof name, "samplers/%s/%s", model, run);
    replay r;
    memset(&r, 0, sizeof r);
    npy fin, init_noise = { 0 }, mean = { 0 }, std = { 0 };
    if (load(model, run, "timesteps", &r.ts) || load(model, run, "unet_in", &r.uin) ||
        load(model, run, "unet_out", &r.uout) || load(model, run, "latents_per_step", &r.lps) ||
        load(model, run, "final_latent", &fin)) {
        CHECKF(0, name, "cannot load the run's goldens");
        return;
    }
    r.per = fin.n;
    /* deterministic runs (ddim, dpm++) draw nothing and have no noise_draws file */
    char dpath[256];
    snprintf(dpath, sizeof dpath, "goldens/%s/pipe/%s/noise_draws.npy", model, run);
    FILE *df = fopen(t_ref(dpath), "rb");
    if (df) {
        fclose(df);
        if (load(model, run, "noise_draws", &r.draws)) { CHECKF(0, name, "cannot load noise_draws"); return; }
    }
    sd_err err;
    sd_err_clear(&err);
    if (sd_sched_init(sc, smp, SD_SPACING_LEADING, steps, &err)) { CHECKF(0, name, "%s", err.msg); return; }
    sd_noise_src ns = { replay_noise, &r, 1234, 0 };
    float *x = malloc(r.per * sizeof *x), *eps = malloc(r.per * sizeof *x), *init = malloc(r.per * sizeof *x);
    char path[256];
    if (!img2img) {
        snprintf(path, sizeof path, "goldens/%s/pipe/init_noise_8x6.npy", model);
        if (npy_load(t_ref(path), &init_noise) || init_noise.n != r.per) { CHECKF(0, name, "init noise"); return; }
        sd_sched_start_txt2img(sc, init_noise.f, x, r.per);
    } else {
        snprintf(path, sizeof path, "goldens/%s/pipe/init_enc_mean.npy", model);
        int bad = npy_load(t_ref(path), &mean);
        snprintf(path, sizeof path, "goldens/%s/pipe/init_enc_std.npy", model);
        bad |= npy_load(t_ref(path), &std);
        if (bad || mean.n != r.per || std.n != r.per) { CHECKF(0, name, "init latent goldens"); return; }
        int run_steps = sd_sched_set_strength(sc, 0.7);
        CHECKF(run_steps == (int)r.ts.n, name, "img2img runs %d steps, recorded %zu", run_steps, r.ts.n);
        sd_noise_next(&ns, 1, r.per, eps);                 /* draw 0: posterior eps */
        sd_posterior_sample(mean.f, std.f, eps, 0.18215f, init, r.per);
        sd_noise_next(&ns, 1, r.per, eps);                 /* draw 1: add-noise noise */
        sd_sched_start_img2img(sc, init, eps, x, r.per);
    }
    sd_sample_req req = { .sched = sc, .pred = pred, .batch = 1, .per_image = r.per, .model = replay_model,
                          .model_ud = &r, .noise = &ns, .on_step = replay_step, .on_step_ud = &r };
    int rc = sd_sample(&req, x, &err);
    char cname[300];
    snprintf(cname, sizeof cname, "%s runs", name);
    CHECKF(rc == 0 && r.calls_seen == (int)r.ts.n, cname, "rc %d calls %d of %zu: %s", rc, r.calls_seen, r.ts.n, err.msg);
    snprintf(cname, sizeof cname, "%s timesteps", name);
    CHECKF(r.bad_t == 0, cname, "%d calls with a different timestep", r.bad_t);
    /* draws: euler's per-step draw is unused in diffusers (s_churn 0) and skipped here */
    int want = r.draws.ndim ? (int)r.draws.shape[0] : 0;
    if (smp == SD_SAMPLER_EULER) want = img2img ? 2 : 0;
    snprintf(cname, sizeof cname, "%s noise draws", name);
    CHECKF((int)ns.draw == want && r.draws_used_max == want, cname, "used %d, want %d", (int)ns.draw, want);
    double fe = npy_maxdiff(x, fin.f, r.per) / npy_maxabs(fin.f, r.per);
    snprintf(cname, sizeof cname, "%s model input", name);
    CHECKF(r.in_err <= TOL_IN, cname, "max rel err %.3g", r.in_err);
    snprintf(cname, sizeof cname, "%s latent per step", name);
    CHECKF(r.step_err <= TOL_STEP, cname, "max rel err %.3g", r.step_err);
    snprintf(cname, sizeof cname, "%s final latent", name);
    CHECKF(fe <= TOL_FINAL, cname, "max abs err / max|latent| = %.3g", fe);
    printf("metric %s unet_in_rel %.3g tol %g\n", name, r.in_err, TOL_IN);
    printf("metric %s step_latent_rel %.3g tol %g\n", name, r.step_err, TOL_STEP);
    printf("metric %s final_latent_rel %.3g tol %g\n", name, fe, TOL_FINAL);
    free(x); free(eps); free(init);
    npy_free(&r.ts); npy_free(&r.uin); npy_free(&r.uout); npy_free(&r.lps); npy_free(&r.draws); npy_free(&fin);
    npy_free(&init_noise); npy_free(&mean); npy_free(&std);
}

/* Batching and the noise plumbing: two images in one batch equal each image
 * run alone (Philox, seed + i), and cancellation stops between steps. */
static int const_model(void *ud, const float *x_in, float t, int call, float *out, sd_err *err)
{
    size_t per = *(size_t *)ud;
    (void)t; (void)call;
    for (size_t i = 0; i < 2 * per; i++) out[i] = 0.1f * x_in[i] + 0.01f * (float)(i % per);
    return 0;
}
static int const_model1(void *ud, const float *x_in, float t, int call, float *out, sd_err *err)
{
    size_t per = *(size_t *)ud;
    (void)t; (void)call;
    for (size_t i = 0; i < per; i++) out[i] = 0.1f * x_in[i] + 0.01f * (float)i;
    return 0;
}
typedef struct counted { size_t per; int calls; } counted;
static int counting_model(void *ud, const float *x_in, float t, int call, float *out, sd_err *err)
{
    counted *c = ud;
    c->calls++;
    return const_model1(&c->per, x_in, t, call, out, err);
}
static int failing_model(void *ud, const float *x_in, float t, int call, float *out, sd_err *err)
{
    (void)ud; (void)x_in; (void)t; (void)out;
    return call == 1 ? sd_errf(err, SD_EIO, "unet", "simulated failure") : 0;
}
static int cancel_at_2(void *ud, int step, int total) { (void)ud; (void)total; return step == 2; }

static void check_batch(sd_sched *sc)
{
    size_t per = 4 * 8 * 6;
    float *xb = malloc(2 * per * sizeof(float)), *x1 = malloc(per * sizeof(float)), *n0 = malloc(2 * per * sizeof(float));
    sd_err err; sd_err_clear(&err);
    const sd_sampler which[] = { SD_SAMPLER_EULER_A, SD_SAMPLER_LCM, SD_SAMPLER_DPMPP_2M };
    for (int w = 0; w < 3; w++) {
        sd_sched_init(sc, which[w], SD_SPACING_LEADING, 6, &err);
        sd_noise_src ns = { NULL, NULL, 77, 0 };
        sd_noise_next(&ns, 2, per, n0);
        sd_sched_start_txt2img(sc, n0, xb, 2 * per);
        sd_sample_req req = { .sched = sc, .pred = SD_PRED_EPS, .batch = 2, .per_image = per, .model = const_model,
                              .model_ud = &per, .noise = &ns };
        int rc = sd_sample(&req, xb, &err);
        int same = rc == 0;
        for (int b = 0; b < 2; b++) {
            sd_noise_src n1 = { NULL, NULL, 77 + (uint64_t)b, 0 };
            sd_noise_next(&n1, 1, per, x1);
            sd_sched_start_txt2img(sc, x1, x1, per);
            sd_sample_req r1 = { .sched = sc, .pred = SD_PRED_EPS, .batch = 1, .per_image = per, .model = const_model1,
                                 .model_ud = &per, .noise = &n1 };
            same &= sd_sample(&r1, x1, &err) == 0 && !memcmp(x1, xb + b * per, per * sizeof(float));
        }
        char name[128];
        snprintf(name, sizeof name, "%s batch of 2 = each seed alone", sd_sampler_name(which[w]));
        CHECKF(same, name, "rc %d %s", rc, err.msg);
    }
    sd_sched_init(sc, SD_SAMPLER_EULER, SD_SPACING_LEADING, 5, &err);
    counted cm = { per, 0 };
    sd_sample_req req = { .sched = sc, .pred = SD_PRED_EPS, .batch = 1, .per_image = per, .model = counting_model,
                          .model_ud = &cm, .progress = cancel_at_2 };
    sd_err_clear(&err);
    memset(x1, 0, per * sizeof(float));
    CHECKF(sd_sample(&req, x1, &err) == -1 && err.code == SD_ECANCELLED && cm.calls == 2, "progress callback cancels",
           "code %d after %d calls", (int)err.code, cm.calls);
    req.model = failing_model;
    req.progress = NULL;
    sd_err_clear(&err);
    CHECKF(sd_sample(&req, x1, &err) == -1 && err.code == SD_EIO && !strcmp(err.field, "unet"),
           "model callback error is returned", "code %d %s", (int)err.code, err.msg);
    free(xb); free(x1); free(n0);
}

int main(void)
{
    static sd_sched sc;
    if (!t_have_ref()) { CHECKF(0, "reference present", "set SD_REF"); return t_done(); }
    static const struct { const char *model; sd_prediction pred; } models[] = {
        { "tiny-sd1", SD_PRED_EPS }, { "tiny-sd2", SD_PRED_V } };
    static const sd_sampler txt[] = { SD_SAMPLER_EULER, SD_SAMPLER_EULER_A, SD_SAMPLER_DDIM, SD_SAMPLER_DPMPP_2M,
                                      SD_SAMPLER_DPMPP_2M_KARRAS, SD_SAMPLER_LCM };
    static const sd_sampler i2i[] = { SD_SAMPLER_EULER, SD_SAMPLER_DDIM, SD_SAMPLER_EULER_A };
    for (int m = 0; m < 2; m++) {
        char run[64];
        for (int s = 0; s < 6; s++)
            for (int st = 4; st <= 10; st += 6) {
                snprintf(run, sizeof run, "txt2img_%s_%d", sd_sampler_name(txt[s]), st);
                run_one(models[m].model, models[m].pred, run, txt[s], st, 0, &sc);
            }
        for (int s = 0; s < 3; s++) {
            snprintf(run, sizeof run, "img2img_%s_10", sd_sampler_name(i2i[s]));
            run_one(models[m].model, models[m].pred, run, i2i[s], 10, 1, &sc);
        }
    }
    check_batch(&sc);
    return t_done();
}
