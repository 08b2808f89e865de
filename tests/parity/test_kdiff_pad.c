/* test_kdiff_pad.c — A1111's default pad_cond_uncond = off on the
 * k-diffusion runs (CFGDenoiser.forward, A1111 v1.10.1): a prompt and a
 * negative prompt of different 75-token chunk counts are NOT padded to one
 * length; the prompt rows and the negative rows are two UNet calls, each
 * with its own context.  On tiny-sd1 at fp32, 64x48 px, "DPM++ 2M" 4 steps,
 * sd_generate's final latent is compared with a run built here from
 * kd_sample + kd_cfg_denoise over hand-made unet_forward calls:
 *   - different lengths (2-chunk prompt with an empty or 1-chunk negative,
 *     1-chunk prompt with a 2-chunk negative): equal to two separate calls
 *     (rel <= 1e-5; measured 0), and different from the padded batch (by
 *     > 1e-4 relative; the empty negative agrees with its padded form
 *     within 1e-5: its padding is the same chunk again, so attention
 *     averages the same keys twice);
 *   - equal lengths (1+1 and 2+2 chunks): equal, bit for bit, to ONE
 *     batched call on [prompt; negative] (the path of before);
 *   - guidance 1 (no unconditional pass): the prompt rows alone at their
 *     own length, so the negative prompt changes no bit.
 * Prints "metric kdiffpad/<case> <what> <value>" (docs/KDIFFUSION.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "pipe_case.h"
#include "t.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/samplers/kdiff.h"

enum { W = 48, H = 64, LH = 8, LW = 6, PER = 4 * LH * LW, STEPS = 4 };
#define SEED 4321
#define SHORT "a photograph of an astronaut riding a horse"
#define NEG1 "blurry, low quality"

static char LONG_P[1024], LONG_N[1024];   /* 2 chunks each (checked) */

/* Text rows [2][T][W] (row 0 negative, row 1 prompt) for one pair; NULL on failure. */
static float *encode(sd_engine *e, const char *prompt, const char *negative, int *T, int *Wd)
{
    sd_gen_params p = {.prompt = prompt, .negative = negative, .steps = STEPS, .clip_skip = 1};
    float *ctx = NULL;
    sd_err err;
    sd_err_clear(&err);
    return sd_encode_text(e, &p, &ctx, T, Wd, &err) ? NULL : ctx;
}

/* The model calls built by hand: rows [prompt; negative] with contexts
 * ctx[r] of T[r] tokens, as `calls` unet_forward calls (1 = one batch, which
 * needs T[0] == T[1] and ctx[1] right after ctx[0]). */
typedef struct hand {
    sd_unet *u;
    const float *ctx[2];
    int T[2], Wd, calls;
} hand;

static int hand_unet(void *ud, const float *x_in, int rows, float t, int call, float *eps, sd_err *err)
{
    hand *h = ud;
    float tt[2] = {t, t};
    for (int r = 0, n = h->calls == 1 ? rows : 1; r < rows; r += n) {
        unet_cond c = unet_cond_text(h->ctx[r], h->T[r]);
        c.ctx_dim = h->Wd;
        if (unet_forward(h->u, x_in + (size_t)r * PER, tt, &c, n, LH, LW, eps + (size_t)r * PER, err)) return -1;
    }
    return 0;
}

/* kd_sample "DPM++ 2M" over h from Philox draw 0 of SEED; 0 or -1. */
static int hand_run(hand *h, float cfg, float *x)
{
    static kd_model m;
    float sig[STEPS + 1];
    kd_choice c;
    sd_err err;
    sd_err_clear(&err);
    kd_model_init_ldm(&m, NULL);
    if (kd_parse("DPM++ 2M", NULL, &c, &err) || kd_sigmas(&m, c.sampler, c.schedule, STEPS, sig, &err)) return -1;
    float noise[PER];
    sd_noise_src ns = {NULL, NULL, SEED, 0};
    sd_noise_next(&ns, 1, PER, noise);
    kd_start(sig, noise, x, PER);
    kd_cfg g = {.unet = hand_unet, .ud = h, .model = &m, .cfg = cfg, .batch = 1, .per_image = PER};
    kd_sample_req r = {.sampler = c.sampler, .sigmas = sig, .steps = STEPS, .batch = 1, .per_image = PER,
                       .denoise = kd_cfg_denoise, .denoise_ud = &g, .noise = &ns};
    return kd_sample(&r, x, &err);
}

/* sd_generate's final latent for the pair; 0 or -1. */
static int engine_run(sd_engine *e, const char *prompt, const char *negative, float cfg, float *lat)
{
    sd_gen_params p = {.prompt = prompt, .negative = negative, .width = W, .height = H, .steps = STEPS,
                       .cfg = cfg, .seed = SEED, .n = 1, .clip_skip = 1};
    if (sd_sampler_parse("DPM++ 2M", &p.sampler, &p.ksampler, &p.name_schedule)) return -1;
    sd_gen_debug d = {.final_latent = lat};
    sd_image out = {0};
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_generate_debug(e, &p, &out, &d, &err);
    sd_image_free(&out);
    return rc;
}

static double rel(const float *a, const float *b)
{
    double m = npy_maxabs(b, PER);
    return npy_maxdiff(a, b, PER) / (m > 0 ? m : 1);
}

/* Different lengths: the engine = two calls with own contexts, and
 * differs from the padded batch by more than min_pad (relative), or, with
 * min_pad < 0, agrees with it within -min_pad (the same picture in exact
 * arithmetic). */
static void check_split(sd_engine *e, const char *name, const char *prompt, const char *negative, double min_pad)
{
    int Tp, Tn, Tpad, Wd;
    float *cp = encode(e, prompt, prompt, &Tp, &Wd), *cn = encode(e, negative, negative, &Tn, &Wd);
    float *cpad = encode(e, prompt, negative, &Tpad, &Wd);
    static float eng[PER], own[PER], pad[PER];
    int ok = cp && cn && cpad && Tp != Tn && Tpad == (Tp > Tn ? Tp : Tn) && engine_run(e, prompt, negative, 7.5f, eng) == 0;
    hand h = {.u = sd_engine_unet(e), .ctx = {ok ? cp + (size_t)Tp * Wd : NULL, cn}, .T = {Tp, Tn}, .Wd = Wd, .calls = 2};
    ok = ok && hand_run(&h, 7.5f, own) == 0;
    /* the padded batch: [prompt; negative] both of Tpad tokens, one call */
    float *both = ok ? malloc(sizeof(float) * 2 * (size_t)Tpad * Wd) : NULL;
    if (both) {
        memcpy(both, cpad + (size_t)Tpad * Wd, sizeof(float) * (size_t)Tpad * Wd);
        memcpy(both + (size_t)Tpad * Wd, cpad, sizeof(float) * (size_t)Tpad * Wd);
    }
    hand hp = {.u = h.u, .ctx = {both, both ? both + (size_t)Tpad * Wd : NULL}, .T = {Tpad, Tpad}, .Wd = Wd, .calls = 1};
    ok = ok && both && hand_run(&hp, 7.5f, pad) == 0;
    double r_own = ok ? rel(eng, own) : INFINITY, r_pad = ok ? rel(eng, pad) : 0;
    printf("metric kdiffpad/%s vs_two_calls_rel %.3g tol 1e-5\n", name, r_own);
    printf("metric kdiffpad/%s vs_padded_rel %.3g (%s %.0e)\n", name, r_pad, min_pad < 0 ? "within" : "above",
           fabs(min_pad));
    char msg[200];
    snprintf(msg, sizeof msg, "%s (T %d and %d): = two UNet calls with their own contexts, %s padded to %d", name, Tp,
             Tn, min_pad < 0 ? "~" : "!=", Tpad);
    CHECKF(ok && r_own <= 1e-5 && (min_pad < 0 ? r_pad <= -min_pad : r_pad > min_pad), msg, "ok %d own %.3g padded %.3g", ok, r_own, r_pad);
    free(cp); free(cn); free(cpad); free(both);
}

/* Equal lengths: the engine = one batched call on [prompt; negative], bit for bit. */
static void check_batched(sd_engine *e, const char *name, const char *prompt, const char *negative)
{
    int T, Wd;
    float *c = encode(e, prompt, negative, &T, &Wd);
    float *both = c ? malloc(sizeof(float) * 2 * (size_t)T * Wd) : NULL;
    static float eng[PER], one[PER];
    int ok = both && engine_run(e, prompt, negative, 7.5f, eng) == 0;
    if (ok) {
        memcpy(both, c + (size_t)T * Wd, sizeof(float) * (size_t)T * Wd);
        memcpy(both + (size_t)T * Wd, c, sizeof(float) * (size_t)T * Wd);
    }
    hand h = {.u = sd_engine_unet(e), .ctx = {both, both ? both + (size_t)T * Wd : NULL}, .T = {T, T}, .Wd = Wd, .calls = 1};
    ok = ok && hand_run(&h, 7.5f, one) == 0;
    char msg[200];
    snprintf(msg, sizeof msg, "%s (T %d both): = one batched UNet call on [prompt; negative], bit for bit", name, T);
    CHECKF(ok && !memcmp(eng, one, sizeof eng), msg, "ok %d rel %.3g", ok, ok ? rel(eng, one) : INFINITY);
    free(c); free(both);
}

/* Guidance 1: the prompt rows alone at their own length; the negative
 * (even a longer one) changes nothing. */
static void check_no_guidance(sd_engine *e)
{
    int T, Wd;
    float *c = encode(e, SHORT, SHORT, &T, &Wd);
    static float eng_long[PER], eng_none[PER], own[PER];
    int ok = c && engine_run(e, SHORT, LONG_N, 1.0f, eng_long) == 0 && engine_run(e, SHORT, "", 1.0f, eng_none) == 0;
    hand h = {.u = sd_engine_unet(e), .ctx = {c ? c + (size_t)T * Wd : NULL, NULL}, .T = {T, 0}, .Wd = Wd, .calls = 2};
    ok = ok && hand_run(&h, 1.0f, own) == 0;
    CHECKF(ok && !memcmp(eng_long, own, sizeof own) && !memcmp(eng_none, own, sizeof own),
           "guidance 1, 1-chunk prompt, 2-chunk negative: the prompt rows alone at T 77 (no uncond pass, no padding), "
           "= with an empty negative, bit for bit",
           "ok %d T %d rel %.3g / %.3g", ok, T, ok ? rel(eng_long, own) : INFINITY, ok ? rel(eng_none, own) : INFINITY);
    free(c);
}

int main(void)
{
    if (!t_have_ref()) { CHECKF(0, "reference data", "../shared/reference not found (set SD_REF)"); return t_done(); }
    for (int i = 0; i < 9; i++) strcat(LONG_P, SHORT ", ");   /* ~90 tokens: 2 chunks */
    for (int i = 0; i < 12; i++) strcat(LONG_N, "blurry, low quality, jpeg artifacts, ");
    char msg[600];
    sd_engine *e = pipe_load(0, 0, "fp32", msg, sizeof msg);
    CHECKF(e != NULL, "load tiny-sd1 at fp32", "%s", msg);
    if (!e) return t_done();
    int T1, T2, T3, Wd;
    float *a = encode(e, LONG_P, LONG_P, &T1, &Wd), *b = encode(e, LONG_N, LONG_N, &T2, &Wd), *c = encode(e, "", "", &T3, &Wd);
    CHECKF(a && b && c && T1 == 154 && T2 == 154 && T3 == 77, "test prompts: 2, 2 and 1 chunks", "T %d %d %d", T1, T2, T3);
    free(a); free(b); free(c);
    /* an empty negative padded with the empty prompt's chunk attends to each
     * key twice: the same softmax average, so only rounding tells them apart */
    check_split(e, "long_prompt_empty_negative", LONG_P, "", -1e-5);
    check_split(e, "long_prompt_short_negative", LONG_P, NEG1, 1e-4);
    check_split(e, "short_prompt_long_negative", SHORT, LONG_N, 1e-4);
    check_batched(e, "short_pair", SHORT, NEG1);
    check_batched(e, "long_pair", LONG_P, LONG_N);
    check_no_guidance(e);
    sd_engine_free(e);
    return t_done();
}
