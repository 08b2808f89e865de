/* test_kdiff.c — the k-diffusion module's tables and names (kdiff_sched.h),
 * no model: the LDM alphas_cumprod and model sigmas against the reference
 * (goldens/a1111-samplers/schedules/), every A1111 schedule (Automatic,
 * Karras, Exponential at 4/10/20/30 steps) and its UNet t, SGM Uniform
 * against its formula (no golden), sigma_to_t / t_to_sigma, a checkpoint's
 * own table and the refused ones, and the name table: A1111 display names,
 * k_ names and scheduler names parse and print back, unknown ones are
 * refused naming the field.  The samplers are test_kdiff_runs.c.
 * Prints "metric kdiff/<what> <value> tol <tol>" lines (docs/KDIFFUSION.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "t.h"
#include "../../src/engine/samplers/kdiff_sched.h"

#define DIR "goldens/a1111-samplers/schedules/"
#define TOL_SIGMA 1e-6   /* relative, per sigma */
#define TOL_T 1e-4       /* UNet t, absolute (t in 0..999) */

static double rel_err(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]), s = fabs((double)b[i]);
        double e = s > 0 ? d / s : d;
        if (e > worst || e != e) worst = e != e ? INFINITY : e;
    }
    return worst;
}

static void check_model(kd_model *m)
{
    static float acp[1000];
    kd_model_init_ldm(m, acp);
    npy a = {0}, s = {0};
    if (npy_load(t_ref(DIR "alphas_cumprod_ldm.npy"), &a) || npy_load(t_ref(DIR "model_sigmas.npy"), &s) ||
        a.n != 1000 || s.n != 1000) {
        CHECK(0, "LDM schedule goldens readable");
        npy_free(&a); npy_free(&s);
        return;
    }
    double ea = npy_maxdiff(acp, a.f, 1000), es = rel_err(m->sigmas, s.f, 1000);
    printf("metric kdiff/alphas_cumprod_ldm maxabs %.3g tol 0\n", ea);
    printf("metric kdiff/model_sigmas maxrel %.3g tol 0\n", es);
    CHECKF(ea == 0, "LDM alphas_cumprod (float64 betas and cumprod) = reference bit for bit", "max abs %g", ea);
    CHECKF(es == 0 && m->n == 1000, "model sigmas = reference bit for bit", "max rel %g", es);
    CHECKF(kd_sigma_min(m) == 0.029167532920837402f && kd_sigma_max(m) == 14.614642143249512f,
           "sigma_min 0.029168, sigma_max 14.614642", "%.9g %.9g", (double)kd_sigma_min(m), (double)kd_sigma_max(m));
    npy_free(&a); npy_free(&s);
}

static void check_schedules(const kd_model *m)
{
    static const struct { const char *name; kd_sampler s; kd_schedule k; } kinds[] = {
        {"automatic", KD_EULER, KD_SCHED_AUTOMATIC},   /* Euler, Euler a, Heun, LMS: Uniform */
        {"karras", KD_DPMPP_2M, KD_SCHED_AUTOMATIC},   /* DPM++ 2M's Automatic */
        {"exponential", KD_DPMPP_2M_SDE, KD_SCHED_AUTOMATIC},
    };
    static const int steps[] = {4, 10, 20, 30};
    double worst_s = 0, worst_t = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
        for (size_t j = 0; j < 4; j++) {
            char rel[128], name[128];
            npy gs = {0}, gt = {0};
            snprintf(rel, sizeof rel, DIR "%s_%d_sigmas.npy", kinds[k].name, steps[j]);
            int bad = npy_load(t_ref(rel), &gs);
            snprintf(rel, sizeof rel, DIR "%s_%d_t.npy", kinds[k].name, steps[j]);
            bad |= npy_load(t_ref(rel), &gt);
            snprintf(name, sizeof name, "schedule %s, %d steps: sigmas and UNet t", kinds[k].name, steps[j]);
            if (bad || gs.n != (size_t)steps[j] + 1 || gt.n != (size_t)steps[j]) {
                CHECKF(0, name, "goldens missing or of another size");
                npy_free(&gs); npy_free(&gt);
                continue;
            }
            float sig[KD_MAX_STEPS + 1], tt[KD_MAX_STEPS], sig2[KD_MAX_STEPS + 1];
            sd_err err;
            sd_err_clear(&err);
            int rc = kd_sigmas(m, kinds[k].s, kinds[k].k, steps[j], sig, &err);
            /* the explicit schedule name gives the same as the sampler's Automatic */
            kd_schedule explicit = kinds[k].k == KD_SCHED_AUTOMATIC ? kd_schedule_resolve(kinds[k].s, kinds[k].k) : kinds[k].k;
            rc |= kd_sigmas(m, KD_EULER, explicit, steps[j], sig2, &err);
            for (int i = 0; i < steps[j]; i++) tt[i] = kd_sigma_to_t(m, sig[i]);
            double es = rel_err(sig, gs.f, gs.n), et = npy_maxdiff(tt, gt.f, gt.n);
            if (es > worst_s) worst_s = es;
            if (et > worst_t) worst_t = et;
            CHECKF(rc == 0 && es <= TOL_SIGMA && et <= TOL_T && sig[steps[j]] == 0 &&
                   !memcmp(sig, sig2, sizeof(float) * (steps[j] + 1)),
                   name, "rc %d sigma rel %g t abs %g %s", rc, es, et, err.msg);
            npy_free(&gs); npy_free(&gt);
        }
    printf("metric kdiff/schedules sigma_maxrel %.3g tol %g\n", worst_s, TOL_SIGMA);
    printf("metric kdiff/schedules unet_t_maxabs %.3g tol %g\n", worst_t, TOL_T);
}

/* SGM Uniform has no golden: A1111's sd_schedulers.sgm_uniform takes n+1
 * t evenly spaced from t(sigma_max) = 999 to t(sigma_min) = 0, drops the
 * last, maps each to sigma by log-sigma interpolation and appends 0.
 * Computed here independently in double. */
static void check_sgm_uniform(const kd_model *m)
{
    double worst = 0;
    int ok = 1;
    for (int n = 1; n <= 40; n++) {
        float sig[KD_MAX_STEPS + 1];
        sd_err err;
        ok &= kd_sigmas(m, KD_EULER, KD_SCHED_SGM_UNIFORM, n, sig, &err) == 0 && sig[n] == 0;
        for (int i = 0; i < n; i++) {
            double t = 999.0 * (1.0 - (double)i / n);
            int lo = (int)floor(t), hi = lo < 999 ? lo + 1 : lo;
            double w = t - lo, ls = (1 - w) * log((double)m->sigmas[lo]) + w * log((double)m->sigmas[hi]);
            double e = fabs(sig[i] - exp(ls)) / exp(ls);
            if (e > worst) worst = e;
            if (i > 0) ok &= sig[i] < sig[i - 1];
        }
        ok &= fabsf(sig[0] / kd_sigma_max(m) - 1) < 1e-6f;
    }
    printf("metric kdiff/sgm_uniform formula_maxrel %.3g tol %g\n", worst, 1e-5);
    CHECKF(ok && worst <= 1e-5, "SGM Uniform = A1111's formula (t evenly from 999 toward 0, n+1 points, last dropped)",
           "ok %d max rel %g", ok, worst);
    /* and it is not Uniform: Uniform reaches t = 0, SGM Uniform stops a step before */
    float u[11], s[11];
    sd_err err;
    kd_sigmas(m, KD_EULER, KD_SCHED_UNIFORM, 10, u, &err);
    kd_sigmas(m, KD_EULER, KD_SCHED_SGM_UNIFORM, 10, s, &err);
    CHECKF(fabsf(u[9] / kd_sigma_min(m) - 1) < 1e-6f && s[9] > 2 * u[9], "SGM Uniform ends above sigma_min, Uniform at it", "%g %g",
           (double)u[9], (double)s[9]);
}

static void check_t_maps(const kd_model *m)
{
    double worst = 0;
    for (int i = 0; i <= 999 * 4; i++) {
        float t = (float)i / 4;
        double e = fabs(kd_sigma_to_t(m, kd_t_to_sigma(m, t)) - t);
        if (e > worst) worst = e;
    }
    CHECKF(worst <= 2e-3, "sigma_to_t(t_to_sigma(t)) = t on 0..999 in quarter steps", "max abs %g", worst);
    CHECKF(kd_sigma_to_t(m, 1e-6f) == 0 && kd_sigma_to_t(m, 1e6f) == 999 && kd_sigma_to_t(m, 0) == 0 &&
           kd_sigma_to_t(m, NAN) == 0 && kd_t_to_sigma(m, -5) == kd_t_to_sigma(m, 0) &&
           fabsf(kd_t_to_sigma(m, 0) / kd_sigma_min(m) - 1) < 1e-6f && kd_t_to_sigma(m, 5000) == kd_t_to_sigma(m, 999) &&
           fabsf(kd_t_to_sigma(m, 999) / kd_sigma_max(m) - 1) < 1e-6f,
           "t and sigma outside the table clamp to its ends", "%g %g", (double)kd_sigma_to_t(m, 1e-6f),
           (double)kd_sigma_to_t(m, 1e6f));
}

static void expect_table_refused(const char *what, const float *acp, int n)
{
    static kd_model m;
    sd_err err;
    sd_err_clear(&err);
    int rc = kd_model_init_table(&m, acp, n, &err);
    CHECKF(rc == -1 && err.code == SD_EINVAL && !strcmp(err.field, "alphas_cumprod"), what, "rc %d code %d field %s: %s",
           rc, err.code, err.field, err.msg);
}

/* A checkpoint's own alphas_cumprod (here the LDM table rounded to F16, as
 * some files store it) drives the sigmas; broken tables are refused. */
static void check_table(void)
{
    static kd_model ldm, own;
    static float acp[1000], bad[1000];
    kd_model_init_ldm(&ldm, acp);
    for (int i = 0; i < 1000; i++) {
        /* round to 11 significant bits, as F16 would in this range */
        int e;
        float f = frexpf(acp[i], &e);
        acp[i] = ldexpf(roundf(f * 2048) / 2048, e);
    }
    /* F16 rounding makes neighbours equal at the top: keep them strictly decreasing as real files are */
    for (int i = 1; i < 1000; i++) if (!(acp[i] < acp[i - 1])) acp[i] = nextafterf(acp[i - 1], 0);
    sd_err err;
    sd_err_clear(&err);
    int rc = kd_model_init_table(&own, acp, 1000, &err);
    float a[11], b[11];
    kd_sigmas(&ldm, KD_DPMPP_2M, KD_SCHED_KARRAS, 10, a, &err);
    kd_sigmas(&own, KD_DPMPP_2M, KD_SCHED_KARRAS, 10, b, &err);
    CHECKF(rc == 0 && own.n == 1000 && a[0] != b[0] && fabs(a[0] - b[0]) / a[0] < 1e-2,
           "a checkpoint's alphas_cumprod sets the sigmas (F16-rounded table: close, not equal)", "rc %d %s %g %g", rc,
           err.msg, (double)a[0], (double)b[0]);
    memcpy(bad, acp, sizeof bad);
    bad[500] = bad[499];
    expect_table_refused("refused: alphas_cumprod not decreasing", bad, 1000);
    memcpy(bad, acp, sizeof bad);
    bad[0] = 1.0f;
    expect_table_refused("refused: alphas_cumprod entry 1", bad, 1000);
    bad[0] = NAN;
    expect_table_refused("refused: alphas_cumprod NaN", bad, 1000);
    expect_table_refused("refused: alphas_cumprod of 1 entry", acp, 1);
    expect_table_refused("refused: alphas_cumprod longer than the table", acp, KD_TABLE_MAX + 1);
    float sig[5];
    sd_err_clear(&err);
    CHECKF(kd_sigmas(&ldm, KD_EULER, KD_SCHED_UNIFORM, 0, sig, &err) == -1 && !strcmp(err.field, "steps"),
           "refused: 0 steps", "%s", err.msg);
}

/* ---- names ---------------------------------------------------------------- */

static void expect_name(const char *sampler, const char *scheduler, kd_sampler s, kd_schedule k, const char *display)
{
    char name[200], shown[64];
    kd_choice c = {0};
    sd_err err;
    sd_err_clear(&err);
    int rc = kd_parse(sampler, scheduler, &c, &err);
    kd_display_name(c, shown, sizeof shown);
    snprintf(name, sizeof name, "name \"%s\"%s%s -> %s", sampler, scheduler ? " + scheduler " : "",
             scheduler ? scheduler : "", display);
    CHECKF(rc == 0 && c.sampler == s && c.schedule == k && !strcmp(shown, display) && kd_is_name(sampler), name,
           "rc %d (%d, %d) shown '%s' %s", rc, c.sampler, c.schedule, shown, err.msg);
}

static void expect_name_refused(const char *sampler, const char *scheduler, const char *field)
{
    char name[200];
    kd_choice c;
    sd_err err;
    sd_err_clear(&err);
    int rc = kd_parse(sampler, scheduler, &c, &err);
    snprintf(name, sizeof name, "refused: sampler \"%s\" scheduler \"%s\" (field %s)", sampler ? sampler : "(null)",
             scheduler ? scheduler : "", field);
    CHECKF(rc == -1 && err.code == SD_EINVAL && !strcmp(err.field, field), name, "rc %d code %d field %s: %s", rc,
           err.code, err.field, err.msg);
}

static void check_names(void)
{
    expect_name("Euler", NULL, KD_EULER, KD_SCHED_AUTOMATIC, "Euler");
    expect_name("Euler a", NULL, KD_EULER_A, KD_SCHED_AUTOMATIC, "Euler a");
    expect_name("Heun", "", KD_HEUN, KD_SCHED_AUTOMATIC, "Heun");
    expect_name("LMS", NULL, KD_LMS, KD_SCHED_AUTOMATIC, "LMS");
    expect_name("DPM++ 2M", NULL, KD_DPMPP_2M, KD_SCHED_AUTOMATIC, "DPM++ 2M");
    expect_name("DPM++ 2M Karras", NULL, KD_DPMPP_2M, KD_SCHED_KARRAS, "DPM++ 2M Karras");
    expect_name("DPM++ 2M SDE", NULL, KD_DPMPP_2M_SDE, KD_SCHED_AUTOMATIC, "DPM++ 2M SDE");
    expect_name("DPM++ 2M SDE Karras", NULL, KD_DPMPP_2M_SDE, KD_SCHED_KARRAS, "DPM++ 2M SDE Karras");
    expect_name("DPM++ 2M SDE Exponential", NULL, KD_DPMPP_2M_SDE, KD_SCHED_EXPONENTIAL, "DPM++ 2M SDE Exponential");
    expect_name("Euler a SGM Uniform", NULL, KD_EULER_A, KD_SCHED_SGM_UNIFORM, "Euler a SGM Uniform");
    expect_name("DPM++ 2M", "karras", KD_DPMPP_2M, KD_SCHED_KARRAS, "DPM++ 2M Karras");
    expect_name("DPM++ 2M Karras", "karras", KD_DPMPP_2M, KD_SCHED_KARRAS, "DPM++ 2M Karras");
    expect_name("Euler", "sgm_uniform", KD_EULER, KD_SCHED_SGM_UNIFORM, "Euler SGM Uniform");
    /* k_ names with every scheduler name: parse, then print back both names */
    static const char *const knames[] = {"k_euler", "k_euler_a", "k_heun", "k_lms", "k_dpmpp_2m", "k_dpmpp_2m_sde"};
    static const char *const scheds[] = {"automatic", "uniform", "karras", "exponential", "sgm_uniform"};
    int ok = 1;
    for (int s = 0; s < 6; s++)
        for (int k = 0; k < 5; k++) {
            kd_choice c;
            sd_err err;
            char shown[64], again[64];
            kd_choice back;
            ok &= kd_parse(knames[s], scheds[k], &c, &err) == 0 && c.sampler == (kd_sampler)s &&
                  c.schedule == (kd_schedule)k && !strcmp(kd_sampler_kname(c.sampler), knames[s]) &&
                  !strcmp(kd_schedule_name(c.schedule), scheds[k]);
            /* the display name of the same choice parses back to it */
            kd_display_name(c, shown, sizeof shown);
            ok &= kd_parse(shown, NULL, &back, &err) == 0 && back.sampler == c.sampler && back.schedule == c.schedule;
            kd_display_name(back, again, sizeof again);
            ok &= !strcmp(shown, again);
        }
    CHECK(ok, "k_ names x scheduler names round-trip (and through their display names)");
    CHECK(!kd_is_name("euler_a") && !kd_is_name("dpmpp_2m_karras") && !kd_is_name("ddim") && !kd_is_name("lcm") &&
              !kd_is_name("euler a") && !kd_is_name("Euler A") && !kd_is_name(NULL),
          "the lowercase diffusers names and other spellings are not k-diffusion names");
    expect_name_refused("euler_a", NULL, "sampler");
    expect_name_refused("Euler A", NULL, "sampler");
    expect_name_refused("DPM++ 2M karras", NULL, "sampler");
    expect_name_refused("DPM++ 2M  Karras", NULL, "sampler");
    expect_name_refused("DPM++ 3M SDE", NULL, "sampler");
    expect_name_refused("k_euler Karras", NULL, "sampler");
    expect_name_refused("", NULL, "sampler");
    expect_name_refused(NULL, NULL, "sampler");
    expect_name_refused(" Karras", NULL, "sampler");
    expect_name_refused("k_euler", "Karras", "scheduler");
    expect_name_refused("k_euler", "beta", "scheduler");
    expect_name_refused("DPM++ 2M Karras", "exponential", "scheduler");
}

int main(void)
{
    static kd_model m;
    if (!t_have_ref()) { CHECKF(0, "reference present", "set SD_REF"); return t_done(); }
    check_model(&m);
    check_schedules(&m);
    check_sgm_uniform(&m);
    check_t_maps(&m);
    check_table();
    check_names();
    return t_done();
}
