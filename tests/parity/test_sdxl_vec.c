/* test_sdxl_vec.c — what SDXL's added vector (unet_cond.vec: pooled text |
 * 6 time ids) carries into every UNet call of whole sd_generate runs on
 * tiny-sdxl-s, seen through the UNet's debug tap (unet_set_tap):
 * - the time ids: each add_time_proj row (the sinusoid [cos | sin] of one
 *   id) read back as atan2(sin, cos) / freq at the lowest frequency, and
 *   the whole row matched against the sinusoid of that id; every row of
 *   every call, the negative rows too, must carry [orig_h, orig_w,
 *   crop_top, crop_left, target_h, target_w] in that order: distinct
 *   values through a diffusers sampler and a k-diffusion one, and the
 *   defaults (the size asked, crops 0) for an output of 100 x 60;
 * - each side's pooled text when a k-diffusion run splits prompt and
 *   negative into two UNet calls (different chunk counts): the first
 *   call's add_embedding rows equal a guidance-1 run of the prompt, the
 *   second's a guidance-1 run of the negative text, and the two differ. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe_case.h"
#include "t.h"
#include "../../src/engine/models/unet.h"

#define MAX_CALLS 16

/* What the tap saw over one run. */
typedef struct seen {
    float want[6];               /* the ids every add_time_proj row must carry, by slot */
    int A;                       /* unet_info.add_time_dim: the width of one id's row */
    int calls, rows, bad_shape;  /* add_time_proj calls, their rows / 6, shapes not [n*6, A] */
    double worst_id, worst_row;  /* largest |recovered id - wanted|, |row - sinusoid of wanted| */
    char first_bad[200];
    float *emb[MAX_CALLS];       /* add_embedding of each call, [emb_rows][te] */
    int emb_rows[MAX_CALLS], n_emb, te;
} seen;

/* The lowest frequency of an A-wide timestep embedding (diffusers'
 * get_timestep_embedding, shift 0): exp(-ln(10000)·(half-1)/half). */
static double low_freq(int A)
{
    const int half = A / 2;
    return exp(-log(10000.0) * (half - 1) / half);
}

/* One id read back from its row [cos(id·f_k) | sin(id·f_k)], k < half. */
static double recover_id(const float *row, int A)
{
    const int half = A / 2;
    return atan2(row[half + half - 1], row[half - 1]) / low_freq(A);
}

/* Largest |row - [cos(id·f_k) | sin(id·f_k)]|. */
static double row_err(const float *row, int A, double id)
{
    const int half = A / 2;
    double d = 0;
    for (int k = 0; k < half; k++) {
        const double f = exp(-log(10000.0) * k / half);
        d = fmax(d, fmax(fabs(row[k] - cos(id * f)), fabs(row[half + k] - sin(id * f))));
    }
    return d;
}

static void time_rows(seen *s, const float *d, int n, int c)
{
    s->calls++;
    if (n % 6 || c != s->A) { s->bad_shape = 1; return; }
    s->rows += n / 6;
    for (int r = 0; r < n; r++) {
        const double id = recover_id(d + (size_t)r * c, c), want = s->want[r % 6];
        const double e = fabs(id - want), re = row_err(d + (size_t)r * c, c, want);
        if ((e > 0.01 || re > 1e-3) && !s->first_bad[0])
            snprintf(s->first_bad, sizeof s->first_bad, "call %d row %d slot %d: id %.3f, want %.0f", s->calls,
                     r / 6, r % 6, id, want);
        s->worst_id = fmax(s->worst_id, e);
        s->worst_row = fmax(s->worst_row, re);
    }
}

static void keep_rows(seen *s, const float *d, int n, int c)
{
    if (s->n_emb >= MAX_CALLS) return;
    float *copy = malloc(sizeof(float) * (size_t)n * c);
    if (!copy) return;
    memcpy(copy, d, sizeof(float) * (size_t)n * c);
    s->te = c;
    s->emb_rows[s->n_emb] = n;
    s->emb[s->n_emb++] = copy;
}

static void on_tap(void *ud, const char *name, const float *d, int n, int c, int h, int w)
{
    if (!strcmp(name, "add_time_proj")) time_rows(ud, d, n, c);
    else if (!strcmp(name, "add_embedding")) keep_rows(ud, d, n, c);
}

static void seen_free(seen *s)
{
    for (int i = 0; i < s->n_emb; i++) free(s->emb[i]);
}

/* Runs gp with `sampler` (a name sd_sampler_parse knows) under the tap
 * into s (s->want set by the caller).  0 or -1 (err). */
static int tapped_run(sd_engine *e, sd_gen_params *gp, const char *sampler, seen *s, sd_err *err)
{
    sd_unet *u = sd_engine_unet(e);
    s->A = unet_get_info(u)->add_time_dim;
    sd_err_clear(err);
    if (sd_sampler_parse(sampler, &gp->sampler, &gp->ksampler, &gp->name_schedule))
        return sd_errf(err, SD_EINVAL, "sampler", "unknown sampler %s", sampler);
    sd_image out = {0};
    unet_set_tap(u, on_tap, s);
    int rc = sd_generate(e, gp, &out, err);
    unet_set_tap(u, NULL, NULL);
    sd_image_free(&out);
    return rc;
}

/* Every add_time_proj row of every call carries s->want; `rows_per_call`
 * rows in each of `calls` calls. */
static void check_ids(const seen *s, const char *name, int rc, const sd_err *err, int calls, int rows_per_call)
{
    if (rc) { CHECKF(0, name, "run failed: %s", err->msg); return; }
    CHECKF(!s->bad_shape && s->calls == calls && s->rows == calls * rows_per_call && !s->first_bad[0] &&
               s->worst_id <= 0.01 && s->worst_row <= 1e-3,
           name, "%d calls (want %d), %d rows (want %d), shape ok %d, worst id err %.3g, row err %.3g; %s", s->calls,
           calls, s->rows, calls * rows_per_call, !s->bad_shape, s->worst_id, s->worst_row, s->first_bad);
}

/* Item 1: the 6 time ids in their slots, every row of every call. */
static void ids_cases(sd_engine *e)
{
    static const struct { const char *name, *sampler, *neg; int w, h, ow, oh, ct, cl, tw, th, calls; } K[] = {
        {"diffusers euler, cfg 5, distinct ids", "euler", NULL, 96, 64, 200, 120, 16, 8, 112, 80, 2},
        {"k-diffusion Euler, cfg 5 with a negative, distinct ids", "Euler", "blurry", 96, 64, 200, 120, 16, 8, 112,
         80, 2},
        {"diffusers euler, cfg 5, ids unset, 100 x 60 output", "euler", NULL, 100, 60, 0, 0, 0, 0, 0, 0, 2},
        {"k-diffusion DPM++ 2M, cfg 5, ids unset, 100 x 60 output", "DPM++ 2M", "blurry", 100, 60, 0, 0, 0, 0, 0, 0,
         2},
    };
    for (size_t k = 0; k < sizeof K / sizeof K[0]; k++) {
        sd_gen_params gp = {.prompt = "a photograph of an astronaut riding a horse", .negative = K[k].neg,
                            .width = K[k].w, .height = K[k].h, .steps = 2, .cfg = 5.0f, .n = 1, .seed = 11,
                            .orig_width = K[k].ow, .orig_height = K[k].oh, .crop_top = K[k].ct, .crop_left = K[k].cl,
                            .target_width = K[k].tw, .target_height = K[k].th};
        seen s = {.want = {K[k].oh ? K[k].oh : K[k].h, K[k].ow ? K[k].ow : K[k].w, K[k].ct, K[k].cl,
                           K[k].th ? K[k].th : K[k].h, K[k].tw ? K[k].tw : K[k].w}};
        char name[200];
        snprintf(name, sizeof name, "sdxl time ids: %s: every row of every UNet call carries "
                 "[%.0f,%.0f,%.0f,%.0f,%.0f,%.0f]", K[k].name, s.want[0], s.want[1], s.want[2], s.want[3],
                 s.want[4], s.want[5]);
        double top = 0;
        for (int i = 0; i < 6; i++) top = fmax(top, s.want[i]);
        sd_err err;
        int rc = tapped_run(e, &gp, K[k].sampler, &s, &err);
        CHECKF(top * low_freq(s.A) < M_PI, "sdxl time ids: the largest id is below pi at the lowest frequency",
               "id %.0f not recoverable at A = %d", top, s.A);
        check_ids(&s, name, rc, &err, K[k].calls, 2);
        seen_free(&s);
    }
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* A guidance-1 Euler run of `prompt` (one UNet row per call): its first
 * call's add_embedding row into s.  0 or -1. */
static int pooled_ref(sd_engine *e, const char *prompt, seen *s, sd_err *err)
{
    sd_gen_params gp = {.prompt = prompt, .width = 96, .height = 64, .steps = 1, .cfg = 1.0f, .n = 1, .seed = 11};
    memcpy(s->want, (float[6]){64, 96, 0, 0, 64, 96}, sizeof s->want);
    if (tapped_run(e, &gp, "Euler", s, err)) return -1;
    if (s->n_emb < 1 || s->emb_rows[0] != 1) return sd_errf(err, SD_EINVAL, NULL, "%d add_embedding calls", s->n_emb);
    return 0;
}

/* Item 2: each side's pooled text in the split calls. */
static void split_case(sd_engine *e)
{
    static const char *PROMPT =
        "a photograph of an astronaut riding a horse on the moon, highly detailed, dramatic lighting, film grain, "
        "wide angle, golden hour, volumetric fog, sharp focus, intricate details, cinematic composition, award "
        "winning photography, trending on artstation, octane render, ultra realistic, depth of field, bokeh, soft "
        "shadows, rim light, vivid colors, masterpiece, best quality, high resolution, professional, studio";
    static const char *NEG = "blurry, low quality, watermark";
    const char *name = "sdxl split k-diffusion calls: each side's pooled text";
    int wp = 0, wn = 0;
    sd_err err;
    sd_err_clear(&err);
    if (sd_prompt_windows(e, PROMPT, &wp, NULL, &err) || sd_prompt_windows(e, NEG, &wn, NULL, &err) || wp != 2 ||
        wn != 1) {
        CHECKF(0, name, "prompt %d chunks, negative %d (want 2 and 1) %s", wp, wn, err.msg);
        return;
    }
    seen rp = {0}, rn = {0}, sp = {.want = {64, 96, 0, 0, 64, 96}};
    sd_gen_params gp = {.prompt = PROMPT, .negative = NEG, .width = 96, .height = 64, .steps = 2, .cfg = 5.0f,
                        .n = 1, .seed = 11};
    if (pooled_ref(e, PROMPT, &rp, &err) || pooled_ref(e, NEG, &rn, &err) ||
        tapped_run(e, &gp, "Euler", &sp, &err)) {
        CHECKF(0, name, "run failed: %s", err.msg);
        goto done;
    }
    check_ids(&sp, "sdxl time ids: k-diffusion Euler split calls (2-chunk prompt, 1-chunk negative): every row "
              "of every call carries [64,96,0,0,64,96]", 0, &err, 4, 1);
    const size_t te = (size_t)sp.te;
    double dp = 0, dn = 0, apart = 1e9;
    int shape = sp.n_emb == 4 && rp.te == sp.te && rn.te == sp.te;
    for (int i = 0; shape && i < sp.n_emb; i++) {
        shape &= sp.emb_rows[i] == 1;
        if (!shape) break;
        if (i % 2 == 0) dp = fmax(dp, max_diff(sp.emb[i], rp.emb[0], te));
        else dn = fmax(dn, max_diff(sp.emb[i], rn.emb[0], te));
        if (i % 2) apart = fmin(apart, max_diff(sp.emb[i], sp.emb[i - 1], te));
    }
    CHECKF(shape, "sdxl split k-diffusion calls: 2 steps make 4 UNet calls of 1 row", "%d calls, rows %d %d",
           sp.n_emb, sp.emb_rows[0], sp.emb_rows[1]);
    CHECKF(shape && dp <= 1e-6, "sdxl split k-diffusion calls: the prompt call's add_embedding is the prompt's "
           "alone (guidance 1)", "max diff %.3g", dp);
    CHECKF(shape && dn <= 1e-6, "sdxl split k-diffusion calls: the negative call's add_embedding is the negative "
           "text's alone (guidance 1)", "max diff %.3g", dn);
    CHECKF(shape && apart > 1e-3, "sdxl split k-diffusion calls: the two sides' add_embedding differ",
           "closest %.3g", apart);
done:
    seen_free(&rp);
    seen_free(&rn);
    seen_free(&sp);
}

int main(void)
{
    if (!t_have_ref()) { CHECKF(0, "reference data", "../shared/reference not found (set SD_REF)"); return t_done(); }
    char msg[600];
    sd_engine *e = pipe_load(2, 0, NULL, msg, sizeof msg);
    CHECKF(e != NULL, "load tiny-sdxl-s diffusers", "%s", msg);
    if (!e) return t_done();
    ids_cases(e);
    split_case(e);
    sd_engine_free(e);
    return t_done();
}
