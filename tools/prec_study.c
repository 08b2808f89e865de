/* prec_study.c — the per-layer precision study (issue 19 item 2;
 * docs/ACCURACY.md "Precision per layer"): for each candidate rule
 * (unet_set_layer_rule: the layers that run at plain bf16), how far the
 * pictures move and how much of a CFG step's work the rule covers.
 *
 *   prec_study tiny [--subset] [--base fp32|bf16x2] RULE...
 *       every pipeline run test_precision replays (tiny-sd1 folder, tiny-sd2
 *       single file, tiny-sdxl-s folder) at "base + RULE" (bf16x2: the VAE at
 *       bf16, as `auto` on AMX; fp32: the VAE at fp32) against the run's
 *       image.png: one line per rule with the worst levels, lowest PSNR and
 *       mean levels over all runs (--subset: every third run)
 *   prec_study sd15 CKPT [--base fp32|bf16x2] RULE...
 *       a few 256², 6-step txt2img runs of a full-size SD 1.5 checkpoint
 *       (random weights: make-model), each at "base + RULE" against the same
 *       run at fp32 (every layer)
 *   prec_study flops SD15 SDXL RULE...
 *       each rule's share of unet_flops for one CFG step (B 2) at 512² (SD
 *       1.5, T 77) and 1024² (SDXL, T 77), from the checkpoints' headers
 *       alone (nothing is read or widened)
 * A rule "none" is the base alone.  SD_REF names the reference folder. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe_case.h"
#include "t.h"
#include "../src/engine/loader/weights.h"
#include "../src/engine/models/unet.h"
#include "../src/engine/models/vae.h"
#include "../src/engine/ops/ops.h"
#include "../src/engine/pipeline.h"

#define MAX_RULES 64

typedef struct stats { int runs, worst; double psnr, mean; } stats;

static void stats_add(stats *s, int levels, double psnr, double mean)
{
    if (!s->runs || levels > s->worst) s->worst = levels;
    if (!s->runs || psnr < s->psnr) s->psnr = psnr;
    s->mean += mean;
    s->runs++;
}

static void stats_print(const char *what, const char *base, const char *rule, const stats *s)
{
    printf("%s base %s rule %-16s runs %2d worst %2d levels  lowest %5.1f dB  mean %.3f levels\n", what, base, rule,
           s->runs, s->worst, s->psnr, s->runs ? s->mean / s->runs : 0);
}

/* The sum of n stats (over models). */
static stats stats_sum(const stats *s, int n)
{
    stats t = {0};
    for (int i = 0; i < n; i++) {
        if (!s[i].runs) continue;
        if (!t.runs || s[i].worst > t.worst) t.worst = s[i].worst;
        if (!t.runs || s[i].psnr < t.psnr) t.psnr = s[i].psnr;
        t.mean += s[i].mean;
        t.runs += s[i].runs;
    }
    return t;
}

static int set_rule(sd_engine *e, const char *rule)
{
    sd_err err;
    sd_err_clear(&err);
    if (unet_set_layer_rule(sd_engine_unet(e), rule, &err)) {
        fprintf(stderr, "prec_study: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* tiny: every rule over the three tiny models' runs */
static int study_tiny(const char *base, int subset, char **rules, int nr)
{
    static const struct { int m, single; const char *name; int w, h; } MODELS[] = {
        {0, 0, "tiny-sd1", 48, 64}, {1, 1, "tiny-sd2", 48, 64}, {2, 0, "tiny-sdxl-s", 96, 64}};
    int bf = !strcmp(base, "bf16x2");
    static stats st[MAX_RULES][3];   /* per rule, per model */
    memset(st, 0, sizeof st);
    for (int m = 0; m < 3; m++) {
        char msg[600];
        sd_engine *e = pipe_load(MODELS[m].m, MODELS[m].single, base, msg, sizeof msg);
        if (!e) { fprintf(stderr, "prec_study: %s: %s\n", MODELS[m].name, msg); return 1; }
        if (bf) vae_set_precision(sd_engine_vae(e), OPS_BF16);   /* as auto on AMX */
        int n = m == 2 ? PIPE_SDXL_NRUNS : PIPE_NRUNS;
        for (int r = 0; r < nr; r++) {
            if (set_rule(e, rules[r])) { sd_engine_free(e); return 2; }
            for (int k = 0; k < n; k++) {
                if (subset && k % 3) continue;
                pipe_result res;
                pipe_case(e, MODELS[m].name, m == 2 ? PIPE_SDXL_RUNS[k] : PIPE_RUNS[k], &res);
                if (!res.ran || res.bad_draw) { fprintf(stderr, "prec_study: %s\n", res.msg); sd_engine_free(e); return 1; }
                stats_add(&st[r][m], res.png_max, res.psnr, res.png_mean);
            }
            fprintf(stderr, "# %s %s done\n", MODELS[m].name, rules[r]);
        }
        sd_engine_free(e);
    }
    for (int r = 0; r < nr; r++) {   /* all three, tiny-sd1 + tiny-sd2 (test_precision's mean), each */
        stats all = stats_sum(st[r], 3), sd12 = stats_sum(st[r], 2);
        stats_print("tiny", base, rules[r], &all);
        stats_print("  sd1+sd2", base, rules[r], &sd12);
        for (int m = 0; m < 3; m++) stats_print(MODELS[m].name, base, rules[r], &st[r][m]);
    }
    return 0;
}

/* sd15: a few short runs of a full-size checkpoint against its fp32 output */
#define SD15_RUNS 3
static int sd15_gen(sd_engine *e, int k, sd_image *out)
{
    static const sd_sampler SAMP[SD15_RUNS] = {SD_SAMPLER_EULER_A, SD_SAMPLER_EULER, SD_SAMPLER_DPMPP_2M};
    sd_gen_params p;
    memset(&p, 0, sizeof p);
    p.prompt = "a photograph of an astronaut riding a horse";
    p.negative = "blurry";
    p.width = p.height = 256;
    p.steps = 6;
    p.cfg = 7.5f;
    p.sampler = SAMP[k];
    p.seed = 1000 + (uint64_t)k;
    p.n = 1;
    sd_err err;
    sd_err_clear(&err);
    if (sd_generate(e, &p, out, &err)) { fprintf(stderr, "prec_study: %s\n", err.msg); return -1; }
    return 0;
}

static sd_engine *sd15_load(const char *path, const char *prec)
{
    sd_load_opts o;
    memset(&o, 0, sizeof o);
    o.model_path = path;
    o.precision = prec;
    o.vocab_path = t_ref("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    if (!e) fprintf(stderr, "prec_study: %s: %s\n", path, err.msg);
    return e;
}

static void image_diff(const sd_image *a, const sd_image *b, int *worst, double *psnr, double *mean)
{
    size_t n = (size_t)a->width * a->height * 3;
    double se = 0, sa = 0;
    int mx = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a->rgb[i] - (int)b->rgb[i]);
        mx = d > mx ? d : mx;
        sa += d;
        se += (double)d * d;
    }
    *worst = mx;
    *mean = sa / n;
    *psnr = se ? 10 * log10(255.0 * 255.0 / (se / n)) : 999;
}

static int study_sd15(const char *path, const char *base, char **rules, int nr)
{
    sd_image ref[SD15_RUNS];
    memset(ref, 0, sizeof ref);
    sd_engine *e = sd15_load(path, "fp32");
    if (!e) return 1;
    for (int k = 0; k < SD15_RUNS; k++)
        if (sd15_gen(e, k, &ref[k])) { sd_engine_free(e); return 1; }
    sd_engine_free(e);   /* one full-size engine at a time */
    e = sd15_load(path, base);
    if (!e) return 1;
    if (!strcmp(base, "bf16x2")) vae_set_precision(sd_engine_vae(e), OPS_BF16);
    int rc = 0;
    for (int r = 0; r < nr && !rc; r++) {
        stats st = {0};
        rc = set_rule(e, rules[r]);
        for (int k = 0; k < SD15_RUNS && !rc; k++) {
            sd_image img;
            memset(&img, 0, sizeof img);
            if ((rc = sd15_gen(e, k, &img))) break;
            int w;
            double p, mn;
            image_diff(&img, &ref[k], &w, &p, &mn);
            stats_add(&st, w, p, mn);
            sd_image_free(&img);
        }
        if (!rc) stats_print("sd15", base, rules[r], &st);
        fflush(stdout);
    }
    sd_engine_free(e);
    for (int k = 0; k < SD15_RUNS; k++) sd_image_free(&ref[k]);
    return rc;
}

/* flops: shape-only models from the headers */
static sd_unet *header_unet(const char *path, sd_weights **w)
{
    sd_err err;
    sd_err_clear(&err);
    *w = sdw_open_header(path, &err);
    sd_unet *u = *w ? unet_load(*w, NULL, NULL, &err) : NULL;
    if (!u) fprintf(stderr, "prec_study: %s: %s\n", path, err.msg);
    return u;
}

static int study_flops(const char *sd15, const char *sdxl, char **rules, int nr)
{
    sd_weights *w1 = NULL, *w2 = NULL;
    sd_unet *u1 = header_unet(sd15, &w1), *u2 = u1 ? header_unet(sdxl, &w2) : NULL;
    int rc = u1 && u2 ? 0 : 1;
    double t1 = rc ? 0 : unet_flops(u1, 2, 64, 64, 77), t2 = rc ? 0 : unet_flops(u2, 2, 128, 128, 77);
    for (int r = 0; r < nr && !rc; r++) {
        double f1 = unet_flops_rule(u1, 2, 64, 64, 77, rules[r]), f2 = unet_flops_rule(u2, 2, 128, 128, 77, rules[r]);
        if (f1 < 0) { fprintf(stderr, "prec_study: bad rule %s\n", rules[r]); rc = 2; break; }
        printf("flops rule %-16s sd15-512 %5.1f %%  sdxl-1024 %5.1f %%  (of %.1f / %.1f GFLOP per CFG step)\n", rules[r],
               100 * f1 / t1, 100 * f2 / t2, t1 * 1e-9, t2 * 1e-9);
    }
    if (u1) unet_free(u1);
    if (u2) unet_free(u2);
    if (w1) sdw_close(w1);
    if (w2) sdw_close(w2);
    return rc;
}

int main(int argc, char **argv)
{
    const char *base = "bf16x2";
    int subset = 0, a = 2;
    if (argc < 2) goto usage;
    const char *mode = argv[1], *p1 = NULL, *p2 = NULL;
    if (!strcmp(mode, "sd15") || !strcmp(mode, "flops")) p1 = a < argc ? argv[a++] : NULL;
    if (!strcmp(mode, "flops")) p2 = a < argc ? argv[a++] : NULL;
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (!strcmp(argv[a], "--subset")) subset = 1;
        else if (!strcmp(argv[a], "--base") && a + 1 < argc) base = argv[++a];
        else goto usage;
    }
    if (strcmp(base, "fp32") && strcmp(base, "bf16x2")) goto usage;
    char **rules = argv + a;
    int nr = argc - a;
    if (nr < 1 || nr > MAX_RULES) goto usage;
    if (!strcmp(mode, "tiny")) return study_tiny(base, subset, rules, nr);
    if (!strcmp(mode, "sd15") && p1) return study_sd15(p1, base, rules, nr);
    if (!strcmp(mode, "flops") && p2) return study_flops(p1, p2, rules, nr);
usage:
    fprintf(stderr, "usage: prec_study tiny [--subset] [--base fp32|bf16x2] RULE...\n"
                    "       prec_study sd15 CKPT [--base fp32|bf16x2] RULE...\n"
                    "       prec_study flops SD15 SDXL RULE...\n");
    return 2;
}
