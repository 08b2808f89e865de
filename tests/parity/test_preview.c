/* test_preview.c — live previews (issue 18 item 2, engine side): the
 * latent-to-RGB approximation against its formula computed here with the
 * published factors; the samplers' denoised-estimate hook (diffusers Euler
 * and DDIM against x0 recomputed here from the model output, k-diffusion's
 * denoiser output passed through); and whole runs on tiny-sd1 with and
 * without previews: identical bytes, previews at the steps asked (not after
 * the last), image 0's estimate at latent size, in both sampling paths. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe_case.h"
#include "ref_ops.h"
#include "t.h"
#include "../../src/engine/preview.h"
#include "../../src/engine/samplers/kdiff.h"
#include "../../src/engine/samplers/samplers.h"

/* ComfyUI latent_formats.py SD15 and SDXL: [channel][r, g, b] and bias */
static const float F_SD1[4][3] = {{0.3512f, 0.2297f, 0.3227f}, {0.3250f, 0.4974f, 0.2350f},
                                  {-0.2829f, 0.1762f, 0.2721f}, {-0.2120f, -0.2616f, -0.7177f}};
static const float B_SD1[3] = {0, 0, 0};
static const float F_XL[4][3] = {{0.3651f, 0.4232f, 0.4341f}, {-0.2533f, -0.0042f, 0.1068f},
                                 {0.1076f, 0.1111f, -0.0362f}, {-0.3165f, -0.2492f, -0.2188f}};
static const float B_XL[3] = {0.1084f, -0.0175f, -0.0011f};

static void check_approx(int sdxl)
{
    const int h = 3, w = 5, n = h * w;
    float *lat = ref_rand(4 * n, 77 + sdxl);
    for (int i = 0; i < 4 * n; i++) lat[i] *= 2.5f;   /* some values clamp */
    lat[0] = NAN;
    uint8_t rgb[3 * 15];
    preview_approx(preview_factors_of(sdxl), lat, h, w, rgb);
    const float (*F)[3] = sdxl ? F_XL : F_SD1;
    const float *B = sdxl ? B_XL : B_SD1;
    int bad = 0, clamped = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double v = B[c];
                for (int l = 0; l < 4; l++) v += (double)lat[(l * h + y) * w + x] * F[l][c];
                double u = (v + 1) / 2;
                int want = isnan(u) ? 0 : u <= 0 ? 0 : u >= 1 ? 255 : (int)lround(u * 255);
                clamped += want == 0 || want == 255;
                int got = rgb[(y * w + x) * 3 + c];
                if (abs(got - want) > (y == 0 && x == 0 ? 0 : 1) || (y == 0 && x == 0 && got != 0)) bad++;
            }
    CHECKF(bad == 0 && clamped > 0, sdxl ? "approx sdxl = formula" : "approx sd1 = formula",
           "%d of %d bytes differ (%d clamped)", bad, 3 * n, clamped);
    free(lat);
}

/* ---- the samplers' hook --------------------------------------------------- */

typedef struct hook_rec {
    size_t n;
    float *last_out;     /* model output of the last call */
    float *x_before;     /* state before the last step */
    float *x_cur;        /* the state as the sampler runs (for x_before) */
    const sd_sched *s;
    int sampler;
    double worst;
    int calls, steps_seen, bad_step;
} hook_rec;

static int fake_model(void *ud, const float *x_in, float t, int call, float *out, sd_err *err)
{
    hook_rec *r = ud;
    for (size_t i = 0; i < r->n; i++) out[i] = 0.3f * x_in[i] + 0.1f * sinf((float)i + t * 0.01f);
    memcpy(r->last_out, out, r->n * sizeof *out);
    memcpy(r->x_before, r->x_cur, r->n * sizeof *out);
    r->calls++;
    return 0;
}

static void on_x0(void *ud, int step, int total, const float *x0)
{
    hook_rec *r = ud;
    const int k = step - 1 + r->s->start;
    if (step != ++r->steps_seen || total != r->s->steps - r->s->start) r->bad_step++;
    for (size_t i = 0; i < r->n; i++) {
        double want;
        if (r->sampler == SD_SAMPLER_DDIM) {
            double acp = r->s->train.alphas_cumprod[r->s->t_int[k]];
            want = (r->x_before[i] - sqrt(1 - acp) * r->last_out[i]) / sqrt(acp);
        } else {
            want = r->x_before[i] - r->s->sigmas[k] * r->last_out[i];
        }
        double d = fabs(x0[i] - want) / (1 + fabs(want));
        if (d > r->worst) r->worst = d;
    }
}

static void on_state(void *ud, int call, const float *x)
{
    hook_rec *r = ud;
    memcpy(r->x_cur, x, r->n * sizeof *x);
}

static void check_sampler_hook(sd_sampler smp)
{
    const size_t n = 4 * 3 * 2;
    sd_sched *s = calloc(1, sizeof *s);
    hook_rec r = {.n = n, .s = s, .sampler = smp};
    r.last_out = calloc(n, sizeof(float));
    r.x_before = calloc(n, sizeof(float));
    r.x_cur = calloc(n, sizeof(float));
    float *noise = ref_rand(n, 5), *x = calloc(n, sizeof(float));
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_sched_init(s, smp, SD_SPACING_LEADING, 6, &err);
    sd_sched_start_txt2img(s, noise, x, n);
    memcpy(r.x_cur, x, n * sizeof *x);
    sd_sample_req req = {.sched = s, .pred = SD_PRED_EPS, .batch = 1, .per_image = n, .model = fake_model,
                         .model_ud = &r, .on_step = on_state, .on_step_ud = &r,
                         .on_denoised = on_x0, .on_denoised_ud = &r};
    rc = rc || sd_sample(&req, x, &err);
    char name[96];
    snprintf(name, sizeof name, "on_denoised %s = x0 of the step", sd_sampler_name(smp));
    CHECKF(rc == 0 && r.steps_seen == 6 && r.bad_step == 0 && r.worst < 1e-5, name,
           "rc %d steps %d bad %d worst %.3g: %s", rc, r.steps_seen, r.bad_step, r.worst, err.msg);
    free(s); free(r.last_out); free(r.x_before); free(r.x_cur); free(noise); free(x);
}

typedef struct kd_rec {
    size_t n;
    float last[24];
    int steps, bad;
} kd_rec;

static int fake_denoise(void *ud, const float *x, float sigma, int call, float *den, sd_err *err)
{
    kd_rec *r = ud;
    for (size_t i = 0; i < r->n; i++) den[i] = 0.5f * x[i] / (sigma + 1) + 0.01f * (float)i;
    memcpy(r->last, den, r->n * sizeof *den);
    return 0;
}

static void kd_x0(void *ud, int step, int total, const float *x0)
{
    kd_rec *r = ud;
    if (step != ++r->steps || total != 5 || memcmp(x0, r->last, r->n * sizeof *x0)) r->bad++;
}

static void check_kd_hook(void)
{
    kd_model *m = malloc(sizeof *m);
    kd_model_init_ldm(m, NULL);
    float sig[6], x[24];
    kd_rec r = {.n = 24};
    sd_err err;
    sd_err_clear(&err);
    int rc = kd_sigmas(m, KD_EULER, KD_SCHED_KARRAS, 5, sig, &err);
    float *noise = ref_rand(24, 9);
    kd_start(sig, noise, x, 24);
    kd_sample_req req = {.sampler = KD_HEUN, .sigmas = sig, .steps = 5, .batch = 1, .per_image = 24,
                         .denoise = fake_denoise, .denoise_ud = &r, .on_denoised = kd_x0, .on_denoised_ud = &r};
    rc = rc || kd_sample(&req, x, &err);
    CHECKF(rc == 0 && r.steps == 5 && r.bad == 0, "on_denoised k-diffusion = the denoiser's last output",
           "rc %d steps %d bad %d: %s", rc, r.steps, r.bad, err.msg);
    free(m); free(noise);
}

/* ---- whole runs ----------------------------------------------------------- */

typedef struct shots {
    int count, steps[64], total, w, h, changed;
    uint64_t sum_prev;
} shots;

static void collect(void *ud, int step, int total, const sd_image *img)
{
    shots *s = ud;
    if (s->count < 64) s->steps[s->count] = step;
    s->count++;
    s->total = total;
    s->w = img->width;
    s->h = img->height;
    uint64_t sum = 0;
    for (int i = 0; i < img->width * img->height * 3; i++) sum = sum * 31 + img->rgb[i];
    s->changed += s->count > 1 && sum != s->sum_prev;
    s->sum_prev = sum;
}

/* n = 2: image 1 is untouched by image 0's previews too */
static void check_run(sd_engine *e, const char *label, const char *sampler, int steps, int every, int img2img, int n)
{
    sd_gen_params p = {.prompt = "a red house by the sea", .negative = "blurry", .width = 48, .height = 64,
                       .steps = steps, .cfg = 7.0f, .seed = 42, .n = n};
    sd_ksampler ks;
    sd_scheduler sch;
    sd_sampler_parse(sampler, &p.sampler, &ks, &sch);
    p.ksampler = ks;
    p.name_schedule = sch;
    uint8_t *init = NULL;
    if (img2img) {
        init = malloc(48 * 64 * 3);
        for (int i = 0; i < 48 * 64 * 3; i++) init[i] = (uint8_t)(i * 7 % 251);
        p.init_rgb = init; p.init_width = 48; p.init_height = 64; p.strength = 0.6f;
    }
    sd_image a[2] = {{0}}, b[2] = {{0}};
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_generate(e, &p, a, &err);
    shots s = {0};
    p.preview = collect; p.preview_ud = &s; p.preview_every = every;
    rc = rc || sd_generate(e, &p, b, &err);
    char name[160];
    snprintf(name, sizeof name, "preview %s: same bytes with and without previews", label);
    CHECKF(rc == 0 && !memcmp(a[0].rgb, b[0].rgb, 48 * 64 * 3) && (n < 2 || !memcmp(a[1].rgb, b[1].rgb, 48 * 64 * 3)), name,
           "rc %d: %s", rc, err.msg);
    int want = 0, bad = 0;
    for (int k = every; k < s.total; k += every) {
        if (want < 64 && s.steps[want] != k) bad++;
        want++;
    }
    snprintf(name, sizeof name, "preview %s: every %d steps of %d, not after the last", label, every, s.total);
    CHECKF(rc == 0 && s.count == want && want > 0 && !bad, name, "%d previews, want %d (%d at other steps)",
           s.count, want, bad);
    snprintf(name, sizeof name, "preview %s: latent-size RGB that changes", label);
    CHECKF(s.w == 6 && s.h == 8 && (want < 2 || s.changed > 0), name, "%dx%d, changed %d", s.w, s.h, s.changed);
    for (int i = 0; i < 2; i++) { sd_image_free(&a[i]); sd_image_free(&b[i]); }
    free(init);
}

int main(void)
{
    check_approx(0);
    check_approx(1);
    check_sampler_hook(SD_SAMPLER_EULER);
    check_sampler_hook(SD_SAMPLER_DDIM);
    check_kd_hook();
    if (!t_have_ref()) { CHECKF(0, "reference data", "../shared/reference not found (set SD_REF)"); return t_done(); }
    char msg[600];
    sd_engine *e = pipe_load(0, 0, NULL, msg, sizeof msg);
    CHECKF(e != NULL, "load tiny-sd1", "%s", msg);
    if (!e) return t_done();
    check_run(e, "euler, 2 images", "euler", 4, 1, 0, 2);
    check_run(e, "ddim img2img", "ddim", 10, 2, 1, 1);
    check_run(e, "Euler a (k-diffusion), 2 images", "Euler a", 5, 2, 0, 2);
    check_run(e, "DPM++ 2M Karras (k-diffusion)", "DPM++ 2M Karras", 4, 1, 0, 1);
    sd_engine_free(e);
    return t_done();
}
