/* test_vpred.c — v-prediction checkpoints marked the NoobAI way (issue 15
 * item 1; docs/LOADING.md "Prediction markers"): copies of the tiny models
 * with a "v_pred" and/or "ztsnr" marker tensor appended (safetensors
 * writer) load as v-prediction / zero-terminal-SNR, the --prediction and
 * --zero-terminal-snr overrides win over the markers; one Euler step of the
 * pipeline equals the step computed here from our own UNet call with the v
 * formula (and differs from the eps one), on the LDM and the zero-terminal-
 * SNR schedules; the rescaled schedules against the formula (first and
 * last alphas_cumprod, the sigma table's ends) for the diffusers-semantics
 * samplers (2^-24) and the k-diffusion ones (A1111's 4.8973451890853435e-08).
 * SDXL: the marked tiny-sdxl-s copies report v / zero SNR and take the
 * same hand-computed step through the SDXL pipeline (the UNet call here
 * given the added vector as the pipeline builds it: pooled + 6 time ids). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t.h"
#include "../../src/engine/loader/safetensors.h"
#include "../../src/engine/loader/st_write.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/pipeline.h"
#include "../../src/engine/samplers/kdiff_sched.h"
#include "../../src/engine/samplers/samplers.h"

static char tmpdir[64];

/* Copy src to dst with the marker tensors (one F32 scalar each) appended,
 * and cfg (an ldm_config.json) beside dst.  0 on success. */
static int copy_marked(const char *src, const char *cfg, const char *dst, const char *const *markers, int nm)
{
    st_file f;
    sd_err err;
    sd_err_clear(&err);
    if (st_open(&f, src, &err)) return -1;
    stw_tensor *t = calloc(f.n + (size_t)nm, sizeof *t);
    int rc = -1;
    if (!t) goto out;
    for (size_t i = 0; i < f.n; i++) {
        t[i].name = f.e[i].name;
        t[i].dtype = f.e[i].dtype_name;
        t[i].ndim = f.e[i].ndim;
        for (int d = 0; d < f.e[i].ndim; d++) t[i].shape[d] = f.e[i].shape[d];
    }
    for (int m = 0; m < nm; m++) t[f.n + m] = (stw_tensor){markers[m], "F32", 0, {0}};
    FILE *o = stw_begin(dst, t, f.n + (size_t)nm, &err);
    if (!o) goto out;
    for (size_t i = 0; i < f.n; i++) fwrite(f.e[i].data, 1, f.e[i].nbytes, o);
    const float one = 1.0f;
    for (int m = 0; m < nm; m++) fwrite(&one, 4, 1, o);
    rc = stw_end(o, dst, &err);
    if (rc == 0 && cfg) {
        char c[512];
        snprintf(c, sizeof c, "%.*s.ldm_config.json", (int)(strlen(dst) - strlen(".safetensors")), dst);
        size_t n;
        unsigned char *b = t_slurp(cfg, &n);
        /* what the markers decide is not to be pre-empted by the config's own
         * "parameterization" (tiny-sd1's says eps): renamed away */
        char *k = b ? memmem(b, n, "\"parameterization\"", 18) : NULL;
        if (k) k[1] = 'P';
        FILE *cf = b ? fopen(c, "wb") : NULL;
        rc = cf && fwrite(b, 1, n, cf) == n && fclose(cf) == 0 ? 0 : -1;
        free(b);
    }
out:
    free(t);
    st_close(&f);
    return rc;
}

static sd_engine *load(const char *path, sd_prediction pred, int zsnr)
{
    sd_load_opts o = {.model_path = path, .precision = "fp32", .threads = 2, .prediction = pred, .zero_snr = zsnr};
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    if (!e) fprintf(stderr, "# load %s: %s\n", path, err.msg);
    return e;
}

/* What a copy reports: prediction and zero SNR. */
static void expect_info(const char *what, const char *path, sd_prediction pred, int zsnr, const char *want_pred,
                        int want_zsnr)
{
    sd_engine *e = load(path, pred, zsnr);
    sd_model_info mi;
    if (e) sd_engine_info(e, &mi);
    CHECKF(e && !strcmp(mi.prediction, want_pred) && mi.zero_snr == want_zsnr, what, "%s, zero SNR %d",
           e ? mi.prediction : "not loaded", e ? mi.zero_snr : -9);
    sd_engine_free(e);
}

static void noise_fn(void *ud, uint64_t seed, uint64_t draw, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = sinf(0.37f * (float)i + (float)seed + 1.3f * (float)draw);
}

/* One Euler step (the only one: to sigma 0) by the pipeline against
 * x0 = x/(s^2+1) - v*s/sqrt(s^2+1) (v) or x - s*eps (eps) from our UNet call. */
static void check_step(const char *what, const char *path, sd_prediction flag, sd_prediction pred, int zsnr)
{
    sd_engine *e = load(path, flag, 0);
    if (!e) { CHECK(0, what); return; }
    sd_gen_params p = {.prompt = "a red fox", .width = 64, .height = 64, .steps = 1, .cfg = 1.0f,
                       .sampler = SD_SAMPLER_EULER, .seed = 7, .n = 1, .noise = noise_fn,
                       .spacing = SD_TSPACING_TRAILING};
    int lw, lh;
    sd_latent_size(e, p.width, p.height, &lw, &lh);
    const int C = 4;
    const size_t n = (size_t)C * lw * lh;
    float *got = calloc(n, sizeof *got), *x = calloc(n, sizeof *x), *xin = calloc(n, sizeof *xin),
          *out = calloc(n, sizeof *out), *ctx = NULL, *pooled = NULL, *vec = NULL;
    sd_sched *s = calloc(1, sizeof *s);
    sd_gen_debug dbg = {.final_latent = got};
    sd_image img = {0};
    sd_err err;
    sd_err_clear(&err);
    int T = 0, W = 0, P = 0;
    int ok = got && x && xin && out && s && !sd_generate_debug(e, &p, &img, &dbg, &err) &&
             !sd_encode_text_pooled(e, &p, &ctx, &T, &W, &pooled, &P, &err) &&
             !sd_sched_init_zsnr(s, SD_SAMPLER_EULER, SD_SPACING_TRAILING, 1, zsnr, &err);
    /* SDXL: the added vector as the pipeline builds it (the prompt's pooled
     * row, then the 6 time ids: original, crop, target = the output size) */
    const int add = unet_get_info(sd_engine_unet(e))->add_dim;
    if (ok && add && (add != P + 6 || !(vec = calloc((size_t)add, sizeof *vec)))) ok = 0;
    if (vec) {
        const float ids[6] = {(float)p.height, (float)p.width, 0, 0, (float)p.height, (float)p.width};
        memcpy(vec, pooled + P, sizeof(float) * P);
        memcpy(vec + P, ids, sizeof ids);
    }
    double worst = 0, amax = 0, apart = 0, xmax = 0;
    if (ok) {
        noise_fn(NULL, p.seed, 0, x, n);
        const float sg = s->sigmas[0], t = s->timesteps[0];
        for (size_t i = 0; i < n; i++) x[i] *= s->init_noise_sigma;
        for (size_t i = 0; i < n; i++) xin[i] = x[i] / sqrtf(sg * sg + 1.0f);
        unet_cond c = unet_cond_text(ctx + (size_t)T * W, T);   /* row 1: the prompt */
        c.ctx_dim = W;
        c.vec = vec;
        c.vec_dim = vec ? add : 0;
        ok = !unet_forward(sd_engine_unet(e), xin, &t, &c, 1, lh, lw, out, &err);
        for (size_t i = 0; ok && i < n; i++) {
            double v = (double)x[i] / ((double)sg * sg + 1) - (double)out[i] * sg / sqrt((double)sg * sg + 1);
            double eps = (double)x[i] - (double)sg * out[i];
            double want = pred == SD_PRED_V ? v : eps, other = pred == SD_PRED_V ? eps : v;
            worst = fmax(worst, fabs(got[i] - want));
            apart = fmax(apart, fabs(got[i] - other));
            amax = fmax(amax, fabs(want));
            xmax = fmax(xmax, fabs(x[i]));
        }
    }
    /* the step's x - (x - x0) in float rounds at x's scale (4096 at zero SNR): 2 ulps of it allowed */
    const double tol = 1e-4 * amax + 2 * FLT_EPSILON * xmax;
    printf("# %s: sigma %g, |pipeline - hand| %.3g of max %.3g (tolerance %.3g)\n", what,
           ok ? (double)s->sigmas[0] : 0.0, worst, amax, tol);
    CHECKF(ok && worst <= tol && apart > 1e-2 * amax, what,
           "%s; |pipeline - hand step| %.3g of max %.3g, %.3g from the other formula", ok ? "ran" : err.msg, worst,
           amax, apart);
    sd_image_free(&img);
    free(got); free(x); free(xin); free(out); free(ctx); free(pooled); free(vec); free(s);
    sd_engine_free(e);
}

/* The rescaled schedules against the formula. */
static void check_schedules(void)
{
    sd_train_sched base;
    sd_train_sched_init(&base);
    sd_sched *s = calloc(1, sizeof *s);
    sd_err err;
    sd_err_clear(&err);
    if (!s || sd_sched_init_zsnr(s, SD_SAMPLER_EULER, SD_SPACING_TRAILING, 1, 1, &err)) {
        CHECK(0, "zero-SNR schedule builds");
        free(s);
        return;
    }
    const int N = SD_TRAIN_STEPS;
    const float *a = s->train.alphas_cumprod;
    double s0 = sqrt(base.alphas_cumprod[0]), sT = sqrt(base.alphas_cumprod[N - 1]), worst = 0;
    for (int i = 0; i < N - 1; i++) {
        double r = (sqrt(base.alphas_cumprod[i]) - sT) * s0 / (s0 - sT);
        worst = fmax(worst, fabs(a[i] - r * r) / (r * r));
    }
    CHECKF(fabs(a[0] - base.alphas_cumprod[0]) <= 1e-6 * base.alphas_cumprod[0] && worst < 1e-5,
           "zero SNR (diffusers): first alphas_cumprod kept, the rest as the formula", "first %.9g vs %.9g, worst rel %.3g",
           a[0], base.alphas_cumprod[0], worst);
    CHECKF(a[N - 1] == 0x1p-24f && fabsf(s->train.sigmas[N - 1] - 4096.0f) < 0.01f,
           "zero SNR (diffusers): last alphas_cumprod 2^-24, sigma_max 4096", "last %.9g sigma %.6g", a[N - 1],
           s->train.sigmas[N - 1]);
    CHECKF(s->timesteps[0] == 999.0f && fabsf(s->sigmas[0] - 4096.0f) < 0.01f && s->sigmas[1] == 0.0f,
           "zero SNR (diffusers): 1 trailing Euler step from t 999 at sigma 4096 to 0", "t %g sigma %g -> %g",
           s->timesteps[0], s->sigmas[0], s->sigmas[1]);
    sd_train_sched_init(&s->train);
    CHECKF(sd_sched_init(s, SD_SAMPLER_EULER, SD_SPACING_TRAILING, 1, &err) == 0 && fabsf(s->sigmas[0] - 14.6146f) < 1e-3f,
           "without zero SNR: sigma_max stays 14.6146", "%g", s->sigmas[0]);

    kd_model *m = calloc(2, sizeof *m);
    float acp[SD_TRAIN_STEPS];
    if (!m) { CHECK(0, "memory"); free(s); return; }
    kd_model_init_ldm(&m[0], acp);
    int rc = kd_model_init_zsnr(&m[1], acp, N, &err);
    double want_max = sqrt((1 - KD_ZSNR_LAST) / KD_ZSNR_LAST);
    CHECKF(rc == 0 && fabs(kd_sigma_max(&m[1]) - want_max) < 1e-3 * want_max &&
           fabsf(kd_sigma_min(&m[1]) - kd_sigma_min(&m[0])) < 1e-6f * kd_sigma_min(&m[0]),
           "zero SNR (k-diffusion): sigma_max from 4.8973451890853435e-08, sigma_min kept",
           "max %.6g (want %.6g), min %.6g vs %.6g", kd_sigma_max(&m[1]), want_max, kd_sigma_min(&m[1]),
           kd_sigma_min(&m[0]));
    double r = (sqrt(acp[500]) - sqrt(acp[N - 1])) * sqrt(acp[0]) / (sqrt(acp[0]) - sqrt(acp[N - 1]));
    double sig500 = sqrt((1 - r * r) / (r * r));
    CHECKF(fabs(m[1].sigmas[500] - sig500) < 1e-5 * sig500 && fabsf(kd_sigma_max(&m[0]) - 14.6146f) < 1e-3f,
           "zero SNR (k-diffusion): a middle sigma as the formula; the table itself untouched", "%.7g vs %.7g",
           m[1].sigmas[500], sig500);
    free(m);
    free(s);
}

int main(void)
{
    check_schedules();
    if (!t_have_ref()) { CHECK(0, "reference data present (set SD_REF)"); return t_done(); }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sd-vpred.XXXXXX");
    if (!mkdtemp(tmpdir)) { CHECK(0, "temporary folder"); return t_done(); }
    char xl_v[128], xl_vz[128], sd1_v[128], sd1_vz[128];
    snprintf(xl_v, sizeof xl_v, "%s/xl-v.safetensors", tmpdir);
    snprintf(xl_vz, sizeof xl_vz, "%s/xl-vz.safetensors", tmpdir);
    snprintf(sd1_v, sizeof sd1_v, "%s/sd1-v.safetensors", tmpdir);
    snprintf(sd1_vz, sizeof sd1_vz, "%s/sd1-vz.safetensors", tmpdir);
    static const char *const v[] = {"v_pred"}, *const vz[] = {"v_pred", "ztsnr"};
    char xl[512], xlcfg[512], sd1[512], sd1cfg[512];
    snprintf(xl, sizeof xl, "%s", t_ref("models/tiny-sdxl-s-fp16.safetensors"));
    snprintf(xlcfg, sizeof xlcfg, "%s", t_ref("models/tiny-sdxl-s.ldm_config.json"));
    snprintf(sd1, sizeof sd1, "%s", t_ref("models/tiny-sd1-fp16.safetensors"));
    snprintf(sd1cfg, sizeof sd1cfg, "%s", t_ref("models/tiny-sd1.ldm_config.json"));
    int w = copy_marked(xl, xlcfg, xl_v, v, 1) || copy_marked(xl, xlcfg, xl_vz, vz, 2) ||
            copy_marked(sd1, sd1cfg, sd1_v, v, 1) || copy_marked(sd1, sd1cfg, sd1_vz, vz, 2);
    CHECK(!w, "marked copies of tiny-sdxl-s and tiny-sd1 written");
    if (!w) {
        expect_info("tiny-sdxl-s as published: epsilon, no zero SNR", xl, SD_PRED_AUTO, 0, "epsilon", 0);
        expect_info("SDXL + v_pred marker: v_prediction", xl_v, SD_PRED_AUTO, 0, "v_prediction", 0);
        expect_info("SDXL + v_pred + ztsnr markers: v_prediction, zero SNR", xl_vz, SD_PRED_AUTO, 0, "v_prediction", 1);
        expect_info("--prediction eps wins over the v_pred marker", xl_vz, SD_PRED_EPS, 0, "epsilon", 1);
        expect_info("--zero-terminal-snr off wins over the ztsnr marker", xl_vz, SD_PRED_AUTO, -1, "v_prediction", 0);
        expect_info("--prediction v and --zero-terminal-snr on without markers", xl, SD_PRED_V, 1, "v_prediction", 1);
        check_step("v_pred marker: the pipeline's Euler step = the hand-computed v step", sd1_v, SD_PRED_AUTO,
                   SD_PRED_V, 0);
        check_step("v_pred + ztsnr markers: the pipeline's step = the hand v step from sigma 4096", sd1_vz,
                   SD_PRED_AUTO, SD_PRED_V, 1);
        check_step("--prediction eps on the marked file: the hand eps step", sd1_v, SD_PRED_EPS, SD_PRED_EPS, 0);
        check_step("SDXL v_pred marker: the pipeline's Euler step = the hand-computed v step", xl_v, SD_PRED_AUTO,
                   SD_PRED_V, 0);
        check_step("SDXL v_pred + ztsnr markers: the pipeline's step = the hand v step from sigma 4096", xl_vz,
                   SD_PRED_AUTO, SD_PRED_V, 1);
        check_step("SDXL --prediction eps on the marked file: the hand eps step", xl_v, SD_PRED_EPS, SD_PRED_EPS, 0);
    }
    t_rmtree(tmpdir);
    return t_done();
}
