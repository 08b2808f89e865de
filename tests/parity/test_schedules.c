/* test_schedules.c — the training schedule (betas, alphas_cumprod, sigmas)
 * and every inference schedule in reference/goldens/schedules/ (euler,
 * euler_a, euler_karras, ddim, dpmpp_2m, dpmpp_2m_karras, lcm, pndm x
 * leading/linspace/trailing x 4/10/20/30 steps): integer timesteps must match
 * exactly, fractional ones and sigmas to 1e-6 relative.  Also the img2img
 * start index and the sampler name table. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "npy.h"
#include "t.h"
#include "../../src/engine/samplers/samplers.h"

static double max_rel(const float *a, const float *b, size_t n)
{
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]), s = fabs((double)b[i]);
        double r = s > 1e-30 ? d / s : d;
        if (r > w) w = r;
    }
    return w;
}

static void check_train(double *worst)
{
    sd_train_sched tr;
    sd_train_sched_init(&tr);
    npy b, a, s;
    if (npy_load(t_ref("goldens/schedules/betas.npy"), &b) || npy_load(t_ref("goldens/schedules/alphas_cumprod.npy"), &a) ||
        npy_load(t_ref("goldens/schedules/sigmas_train.npy"), &s)) {
        CHECK(0, "train schedule goldens load");
        return;
    }
    CHECKF(b.n == 1000 && !memcmp(b.f, tr.betas, sizeof tr.betas), "betas bit-exact", "max abs %g",
           npy_maxdiff(b.f, tr.betas, 1000));
    CHECKF(a.n == 1000 && !memcmp(a.f, tr.alphas_cumprod, sizeof tr.alphas_cumprod), "alphas_cumprod bit-exact",
           "max abs %g", npy_maxdiff(a.f, tr.alphas_cumprod, 1000));
    double r = max_rel(tr.sigmas, s.f, 1000);
    CHECKF(r <= 1e-6, "train sigmas", "max rel %g", r);
    printf("metric schedules/train sigmas_rel %.3g tol 1e-6\n", r);
    if (r > *worst) *worst = r;
    npy_free(&b); npy_free(&a); npy_free(&s);
}

static void check_family(const char *fam, sd_sched_kind kind, int has_sigmas, double *worst_t, double *worst_s,
                         sd_sched *sc)
{
    static const char *sp_names[] = { "leading", "linspace", "trailing" };
    static const int steps_list[] = { 4, 10, 20, 30 };
    for (int sp = 0; sp < 3; sp++)
        for (int si = 0; si < 4; si++) {
            int steps = steps_list[si];
            char rel[256], name[256];
            sd_err err; sd_err_clear(&err);
            snprintf(name, sizeof name, "schedule %s %s %d", fam, sp_names[sp], steps);
            if (sd_sched_init_kind(sc, kind, (sd_spacing)sp, steps, &err)) { CHECKF(0, name, "%s", err.msg); continue; }
            snprintf(rel, sizeof rel, "goldens/schedules/%s_%s_%d_timesteps.npy", fam, sp_names[sp], steps);
            npy t;
            if (npy_load(t_ref(rel), &t)) { CHECKF(0, name, "cannot load %s", rel); continue; }
            int ok = t.n == (size_t)sc->n;
            double rt = 0;
            for (size_t i = 0; ok && i < t.n; i++) {
                if (t.is_int) ok &= (int64_t)sc->t_int[i] == t.i[i] && sc->timesteps[i] == (float)t.i[i];
            }
            if (ok && !t.is_int) rt = max_rel(sc->timesteps, t.f, t.n);
            if (rt > *worst_t) *worst_t = rt;
            char tname[300];
            snprintf(tname, sizeof tname, "%s timesteps", name);
            CHECKF(ok && rt <= 1e-6, tname, "n %d vs %zu, first %g vs %g, rel %g", sc->n, t.n, (double)sc->timesteps[0],
                   (double)t.f[0], rt);
            npy_free(&t);
            if (!has_sigmas) continue;
            snprintf(rel, sizeof rel, "goldens/schedules/%s_%s_%d_sigmas.npy", fam, sp_names[sp], steps);
            npy s;
            if (npy_load(t_ref(rel), &s)) { CHECKF(0, name, "cannot load %s", rel); continue; }
            double rs = s.n == (size_t)steps + 1 ? max_rel(sc->sigmas, s.f, s.n) : 1e30;
            if (rs > *worst_s) *worst_s = rs;
            snprintf(tname, sizeof tname, "%s sigmas", name);
            CHECKF(rs <= 1e-6, tname, "max rel %g (last %g vs %g)", rs, (double)sc->sigmas[steps], (double)s.f[s.n - 1]);
            npy_free(&s);
        }
}

static void check_misc(sd_sched *sc)
{
    sd_err err; sd_err_clear(&err);
    /* documented values (reference README / manifest notes) */
    sd_sched_init(sc, SD_SAMPLER_EULER, SD_SPACING_LEADING, 4, &err);
    CHECKF(fabsf(sc->init_noise_sigma - sqrtf(sc->sigmas[0] * sc->sigmas[0] + 1)) < 1e-6 && sc->sigmas[0] > 4,
           "euler leading init_noise_sigma = sqrt(sigma0^2+1)", "%g", (double)sc->init_noise_sigma);
    sd_sched_init(sc, SD_SAMPLER_DPMPP_2M, SD_SPACING_LEADING, 4, &err);
    CHECKF(sc->t_int[0] == 801 && sc->t_int[3] == 201 && fabsf(sc->sigmas[4] - 0.0292f) < 1e-4 && sc->init_noise_sigma == 1,
           "dpm++ leading 801..201, final sigma 0.0292", "%d %d %g", sc->t_int[0], sc->t_int[3], (double)sc->sigmas[4]);
    sd_sched_init(sc, SD_SAMPLER_LCM, SD_SPACING_LEADING, 4, &err);
    CHECKF(sc->t_int[0] == 999 && sc->t_int[1] == 759 && sc->t_int[2] == 499 && sc->t_int[3] == 259, "lcm 4 steps",
           "%d %d %d %d", sc->t_int[0], sc->t_int[1], sc->t_int[2], sc->t_int[3]);
    sd_err_clear(&err);
    CHECK(sd_sched_init(sc, SD_SAMPLER_LCM, SD_SPACING_LEADING, 51, &err) == -1 && err.code == SD_EINVAL,
          "lcm rejects > 50 steps");
    sd_err_clear(&err);
    CHECK(sd_sched_init(sc, SD_SAMPLER_EULER, SD_SPACING_LEADING, 0, &err) == -1 && err.code == SD_EINVAL &&
          !strcmp(err.field, "num_inference_steps"), "steps 0 rejected");
    sd_err_clear(&err);
    CHECK(sd_sched_init(sc, (sd_sampler)99, SD_SPACING_LEADING, 10, &err) == -1 && err.code == SD_EINVAL,
          "unknown sampler rejected");
    /* img2img start (diffusers get_timesteps) */
    CHECK(sd_img2img_start(10, 0.7) == 3 && sd_img2img_start(10, 0.7f) == 3, "img2img 10 steps 0.7 starts at 3");
    CHECK(sd_img2img_start(150, 0.7f) == 45 && sd_img2img_start(100, 0.29) == 72, "img2img python int() semantics");
    CHECK(sd_img2img_start(10, 0.05) == 9 && sd_img2img_start(10, 1.0) == 0, "img2img runs at least one step");
    sd_err_clear(&err);
    sd_sched_init(sc, SD_SAMPLER_DDIM, SD_SPACING_LEADING, 10, &err);
    CHECK(sd_sched_set_strength(sc, 0.7) == 7 && sc->start == 3, "set_strength runs 7 of 10");
    /* names */
    int names_ok = 1;
    for (int i = 0; i < SD_SAMPLER_COUNT; i++) {
        sd_sampler back;
        names_ok &= sd_sampler_from_name(sd_sampler_name((sd_sampler)i), &back) == 0 && back == (sd_sampler)i;
    }
    CHECK(names_ok, "sampler names round-trip");
    sd_sampler x;
    CHECK(sd_sampler_from_name("Euler", &x) == -1 && sd_sampler_from_name(NULL, &x) == -1, "unknown names rejected");
    CHECK(!strcmp(sd_sampler_a1111_name(SD_SAMPLER_EULER_A), "Euler a") &&
          !strcmp(sd_sampler_a1111_name(SD_SAMPLER_DPMPP_2M_KARRAS), "DPM++ 2M Karras") &&
          !strcmp(sd_sampler_a1111_name(SD_SAMPLER_LCM), "LCM") && !strcmp(sd_sampler_a1111_name(SD_SAMPLER_DDIM), "DDIM"),
          "a1111 names");
}

int main(void)
{
    static sd_sched sc;
    if (!t_have_ref()) { CHECKF(0, "reference present", "set SD_REF"); return t_done(); }
    double wt = 0, ws = 0, wtr = 0;
    check_train(&wtr);
    check_family("euler", SD_SCHED_EULER, 1, &wt, &ws, &sc);
    check_family("euler_a", SD_SCHED_EULER, 1, &wt, &ws, &sc);
    check_family("euler_karras", SD_SCHED_EULER_KARRAS, 1, &wt, &ws, &sc);
    check_family("ddim", SD_SCHED_DDIM, 0, &wt, &ws, &sc);
    check_family("dpmpp_2m", SD_SCHED_DPM, 1, &wt, &ws, &sc);
    check_family("dpmpp_2m_karras", SD_SCHED_DPM_KARRAS, 1, &wt, &ws, &sc);
    check_family("lcm", SD_SCHED_LCM, 0, &wt, &ws, &sc);
    check_family("pndm", SD_SCHED_PNDM, 0, &wt, &ws, &sc);
    printf("metric schedules/all timesteps_rel %.3g tol 1e-6\n", wt);
    printf("metric schedules/all sigmas_rel %.3g tol 1e-6\n", ws);
    check_misc(&sc);
    return t_done();
}
