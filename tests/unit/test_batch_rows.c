/* test_batch_rows.c — the ops' results for one image do not depend on the
 * batch it is in (API.md: an image of a num_outputs=n batch is the image
 * its seed gives alone).  Every op a model runs on a batch — convs (direct,
 * Winograd under each SD_CONV_WINOGRAD rule, 1x1, strided, accumulating,
 * huge inputs that run in bands), group norm + conv, linears (plain and
 * accumulating, both bf16x2 splits), attention — is run on a batch of N
 * images (N = 2, 4, 8: the UNet's rows for num_outputs = 1, 2, 4 with CFG)
 * and on each image alone, at fp32, bf16x2 and bf16, and must give the
 * same bits per image.  The shapes are the ones where a rule looked at N:
 * the Winograd weight rule at 32x32 (160 and 320 output channels), rows
 * that oneDNN may block or split differently for a larger M, text-length
 * (77-row) contexts.  Thread counts 2 and 7 (a 7-thread team on any CPU:
 * odd splits of the work).  test_batch_rows_isa.sh runs it again with
 * oneDNN capped below this CPU (ONEDNN_MAX_CPU_ISA): other kernels; below
 * AVX-512 oneDNN has no bf16 kernels, and only fp32 runs.  The sanitizer
 * tier (SD_SANITIZED=1) runs the 2-thread pass only, without the huge conv. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "../../src/engine/ops/ops.h"
#include "ref_ops.h"
#include "t.h"
#include "tops.h"

static float *rnd(size_t n, unsigned seed) { return ref_rand(n, seed); }

static const char *g_cfg = "";   /* precision / rule / threads, for the check names */

/* per image of N: batch output yb vs the image's own output y1[i]; one check */
static void same_rows(const char *what, int N, const float *yb, float *const *y1, size_t per)
{
    int bad = 0;
    double md = 0;
    for (int i = 0; i < N; i++) {
        if (memcmp(yb + (size_t)i * per, y1[i], per * sizeof(float))) bad++;
        for (size_t j = 0; j < per; j++) md = fmax(md, fabs((double)yb[(size_t)i * per + j] - y1[i][j]));
    }
    char name[240];
    snprintf(name, sizeof name, "%s %s: batch of %d = each image alone, bit for bit", g_cfg, what, N);
    CHECKF(!bad, name, "%d of %d images differ, max |diff| %.3g", bad, N, md);
}

typedef struct conv_case { const char *name; int IC, H, W, OC, K, stride, pad, accum, gn; } conv_case;

static void run_conv(const conv_case *c, int N, const float *x, const float *w, const float *b, const float *g,
                     const float *be, float *y, float *nrm)
{
    if (c->gn)
        op_gn_conv2d_nhwc(t_ops(), x, N, c->IC, c->H, c->W, 8, NULL, g, be, 1e-5f, 1, nrm, t_w(w, (size_t)c->OC * c->IC * c->K * c->K), b, c->OC, c->K, c->K, c->stride,
                          c->pad, y, c->accum);
    else
        op_conv2d_nhwc(t_ops(), x, N, c->IC, c->H, c->W, t_w(w, (size_t)c->OC * c->IC * c->K * c->K), b, c->OC, c->K, c->K, c->stride, c->pad, y, c->accum);
}

static void conv_batch(const conv_case *c, int N)
{
    int OH = (c->H + 2 * c->pad - c->K) / c->stride + 1, OW = (c->W + 2 * c->pad - c->K) / c->stride + 1;
    size_t in = (size_t)c->H * c->W * c->IC, out = (size_t)OH * OW * c->OC;
    float *x = rnd(in * N, 11), *w = rnd((size_t)c->OC * c->IC * c->K * c->K, 12), *b = rnd(c->OC, 13);
    float *g = rnd(c->IC, 14), *be = rnd(c->IC, 15), *y0 = rnd(out * N, 16);   /* y0: the residual when accum */
    float *yb = malloc(sizeof(float) * out * N), *nrm = malloc(sizeof(float) * in * N), *y1[8] = {0};
    memcpy(yb, y0, sizeof(float) * out * N);
    run_conv(c, N, x, w, b, g, be, yb, nrm);
    for (int i = 0; i < N; i++) {
        y1[i] = malloc(sizeof(float) * out);
        memcpy(y1[i], y0 + i * out, sizeof(float) * out);
        run_conv(c, 1, x + i * in, w, b, g, be, y1[i], nrm);
    }
    same_rows(c->name, N, yb, y1, out);
    for (int i = 0; i < N; i++) free(y1[i]);
    free(x); free(w); free(b); free(g); free(be); free(y0); free(yb); free(nrm);
}

typedef struct lin_case { const char *name; int T, IN, OUT, accum; } lin_case;

static void lin_batch(const lin_case *c, int N)
{
    size_t in = (size_t)c->T * c->IN, out = (size_t)c->T * c->OUT;
    float *x = rnd(in * N, 21), *w = rnd((size_t)c->IN * c->OUT, 22), *b = rnd(c->OUT, 23), *y0 = rnd(out * N, 24);
    float *yb = malloc(sizeof(float) * out * N), *y1[8];
    memcpy(yb, y0, sizeof(float) * out * N);
    (c->accum ? op_linear_acc : op_linear)(t_ops(), x, N * c->T, c->IN, t_w(w, (size_t)c->IN * c->OUT), b, c->OUT, yb);
    for (int i = 0; i < N; i++) {
        y1[i] = malloc(sizeof(float) * out);
        memcpy(y1[i], y0 + i * out, sizeof(float) * out);
        (c->accum ? op_linear_acc : op_linear)(t_ops(), x + i * in, c->T, c->IN, t_w(w, (size_t)c->IN * c->OUT), b,
                                               c->OUT, y1[i]);
    }
    same_rows(c->name, N, yb, y1, out);
    for (int i = 0; i < N; i++) free(y1[i]);
    free(x); free(w); free(b); free(y0); free(yb);
}

typedef struct attn_case { const char *name; int Tq, Tk, H, D, causal; } attn_case;

static void attn_batch(const attn_case *c, int N)
{
    int HD = c->H * c->D;
    size_t nq = (size_t)c->Tq * HD, nk = (size_t)c->Tk * HD;
    float *q = rnd(nq * N, 31), *k = rnd(nk * N, 32), *v = rnd(nk * N, 33);
    float *yb = malloc(sizeof(float) * nq * N), *y1[8];
    if (c->causal) op_attention_causal(t_ops(), q, HD, k, HD, v, HD, N, c->Tq, c->H, c->D, 0.125f, yb);
    else op_attention(t_ops(), q, HD, k, HD, v, HD, N, c->Tq, c->Tk, c->H, c->D, 0.125f, yb);
    for (int i = 0; i < N; i++) {
        y1[i] = malloc(sizeof(float) * nq);
        if (c->causal) op_attention_causal(t_ops(), q + i * nq, HD, k + i * nk, HD, v + i * nk, HD, 1, c->Tq, c->H, c->D,
                                           0.125f, y1[i]);
        else op_attention(t_ops(), q + i * nq, HD, k + i * nk, HD, v + i * nk, HD, 1, c->Tq, c->Tk, c->H, c->D, 0.125f,
                          y1[i]);
    }
    same_rows(c->name, N, yb, y1, nq);
    for (int i = 0; i < N; i++) free(y1[i]);
    free(q); free(k); free(v); free(yb);
}

static const conv_case CONVS[] = {
    {"conv 3x3 32x32 64->64 (Winograd under auto)", 64, 32, 32, 64, 3, 1, 1, 0, 0},
    {"conv 3x3 32x32 32->160 (weight rule: Winograd from 2 rows)", 32, 32, 32, 160, 3, 1, 1, 0, 0},
    {"conv 3x3 32x32 32->320 (weight rule: Winograd from 4 rows)", 32, 32, 32, 320, 3, 1, 1, 0, 0},
    {"conv 3x3 32x32 32->320 accumulating", 32, 32, 32, 320, 3, 1, 1, 1, 0},
    {"group norm + conv 3x3 32x32 64->96", 64, 32, 32, 96, 3, 1, 1, 0, 1},
    {"group norm + conv 3x3 16x16 64->64 accumulating", 64, 16, 16, 64, 3, 1, 1, 1, 1},
    {"conv 3x3 16x16 64->128", 64, 16, 16, 128, 3, 1, 1, 0, 0},
    {"conv 1x1 32x32 96->64", 96, 32, 32, 64, 1, 1, 0, 0, 0},
    {"conv 3x3 stride 2 32x32 64->64", 64, 32, 32, 64, 3, 2, 1, 0, 0},
    {"conv 3x3 8x8 4->32 (conv_in)", 4, 8, 8, 32, 3, 1, 1, 0, 0},
    /* the tiny models' latents at 64x48 (8x6 .. 4x3): few rows per thread */
    {"conv 3x3 6x8 32->32", 32, 6, 8, 32, 3, 1, 1, 0, 0},
    {"conv 3x3 3x4 64->64", 64, 3, 4, 64, 3, 1, 1, 0, 0},
    {"conv 3x3 3x4 128->64", 128, 3, 4, 64, 3, 1, 1, 0, 0},
    {"group norm + conv 3x3 6x8 32->32", 32, 6, 8, 32, 3, 1, 1, 0, 1},
    {"group norm + conv 3x3 3x4 64->64 accumulating", 64, 3, 4, 64, 3, 1, 1, 1, 1},
    {"conv 3x3 stride 2 6x8 32->32", 32, 6, 8, 32, 3, 2, 1, 0, 0},
    {"conv 1x1 3x4 128->64", 128, 3, 4, 64, 1, 1, 0, 0, 0},
    {"conv 3x3 6x8 32->4 (conv_out)", 32, 6, 8, 4, 3, 1, 1, 0, 0},
};
/* a conv whose one image is over the banding limit (2^23 floats in) */
static const conv_case HUGE_CONV = {"conv 3x3 528x512 32->16 (huge input: bands)", 32, 528, 512, 16, 3, 1, 1, 0, 0};

static const lin_case LINS[] = {
    {"linear 64 rows 320->320", 64, 320, 320, 0},
    {"linear 64 rows 320->1280", 64, 320, 1280, 0},
    {"linear 64 rows 1280->320 accumulating", 64, 1280, 320, 1},
    {"linear 77 rows 768->320 (text context)", 77, 768, 320, 0},
    {"linear 77 rows 64->256 (text MLP)", 77, 64, 256, 0},
    {"linear 1 row 320->1280 (time embedding)", 1, 320, 1280, 0},
    {"linear 256 rows 160->640", 256, 160, 640, 0},
    {"linear 12 rows 64->64", 12, 64, 64, 0},
    {"linear 48 rows 32->256", 48, 32, 256, 0},
    {"linear 12 rows 256->64 accumulating", 12, 256, 64, 1},
    {"linear 12 rows 256->64", 12, 256, 64, 0},
    {"linear 20 rows 320->320", 20, 320, 320, 0},
    {"linear 20 rows 1280->320", 20, 1280, 320, 0},
};

static const attn_case ATTNS[] = {
    {"self-attention 256 tokens 5x64", 256, 256, 5, 64, 0},
    {"cross-attention 1024x77 8x40", 1024, 77, 8, 40, 0},
    {"causal attention 77 tokens 4x16", 77, 77, 4, 16, 1},
    {"self-attention 12 tokens 2x32", 12, 12, 2, 32, 0},
    {"cross-attention 48x77 1x32", 48, 77, 1, 32, 0},
};

static void all_ops(int huge)
{
    static const int NS[] = {2, 4, 8};
    for (size_t c = 0; c < sizeof CONVS / sizeof CONVS[0]; c++)
        for (int n = 0; n < 3; n++) conv_batch(&CONVS[c], NS[n]);
    if (huge) conv_batch(&HUGE_CONV, 2);
    for (size_t c = 0; c < sizeof LINS / sizeof LINS[0]; c++)
        for (int n = 0; n < 3; n++) lin_batch(&LINS[c], NS[n]);
    for (size_t c = 0; c < sizeof ATTNS / sizeof ATTNS[0]; c++)
        for (int n = 0; n < 3; n += 2) attn_batch(&ATTNS[c], NS[n]);
}

int main(void)
{
    static char cfg[96];
    g_cfg = cfg;
    static const int THREADS[] = {2, 7};
    const char *san = getenv("SD_SANITIZED");
    int nthr = san && *san == '1' ? 1 : 2;
    for (int t = 0; t < nthr; t++) {
        t_ops_init(THREADS[t]);
        /* fp32 under each Winograd rule */
        static const char *wn[] = {"0", "1", "auto", "wide"};
        for (int m = 0; m < 4; m++) {
            t_set_prec(OPS_FP32);
            ops_conv_set_winograd(t_ops()->ctx, m == 0 ? OPS_WINO_OFF : m == 1 ? OPS_WINO_ALL : m == 2 ? OPS_WINO_AUTO
                                                                                         : OPS_WINO_WIDE);
            snprintf(cfg, sizeof cfg, "[fp32, SD_CONV_WINOGRAD=%s, %d threads]", wn[m], THREADS[t]);
            all_ops(t == 0 && m >= 2 && nthr == 2);
        }
        ops_conv_set_winograd(t_ops()->ctx, OPS_WINO_AUTO);
        unsigned isa = (unsigned)dnnl_get_effective_cpu_isa(), avx512 = (unsigned)dnnl_cpu_isa_avx512_core;
        if ((isa & avx512) != avx512) {
            printf("# oneDNN runs below AVX-512 here: no bf16 kernels, bf16x2 and bf16 skipped\n");
            continue;
        }
        /* bf16x2 by the split rule and with each split forced, and bf16 */
        static const char *sp[] = {NULL, "k", "m"};
        for (int s = 0; s < 3; s++) {
            if (sp[s]) setenv("SD_SPLIT", sp[s], 1);
            else unsetenv("SD_SPLIT");
            t_set_prec(OPS_BF16X2);
            snprintf(cfg, sizeof cfg, "[bf16x2, SD_SPLIT=%s, %d threads]", sp[s] ? sp[s] : "rule", THREADS[t]);
            all_ops(0);
        }
        unsetenv("SD_SPLIT");
        t_set_prec(OPS_BF16);
        snprintf(cfg, sizeof cfg, "[bf16, %d threads]", THREADS[t]);
        all_ops(0);
    }
    ops_release_weights(t_ops()->ctx);
    return t_done();
}
