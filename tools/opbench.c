/* opbench.c — times single engine ops on SD 1.5's shapes at 512x512 (CFG
 * batch 2): the self- and cross-attention of each UNet level, the VAE's
 * mid-block attention, the transformer linears and the 3x3 convs of each
 * level, direct and Winograd.  Median of 7 runs after one warm-up; GFLOP/s
 * counts the nominal multiply-adds (so Winograd shows above the peak);
 * "exec" the FLOPs the kernels executed (ops.h's counters: Winograd's
 * transforms and GEMMs, bf16x2's two products).
 * At the ops layer's precision (SD_PRECISION: bf16x2 by default on AMX
 * CPUs, where the Winograd column is left out; fp32 elsewhere).
 * For bench/README.md; `build/tools/opbench [attention|linear|conv]`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/engine/ops/ops.h"
#include "tops.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *fill(size_t n, unsigned seed)
{
    float *p = malloc(sizeof(float) * n);
    if (!p) { fprintf(stderr, "opbench: out of memory\n"); exit(1); }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / 16777216.f - 0.5f;
    }
    return p;
}

#define RUNS 7
/* median seconds of RUNS calls of the statement, after one warm-up */
#define TIME(stmt, out) do { double t_[RUNS]; stmt; \
    for (int r_ = 0; r_ < RUNS; r_++) { double a_ = now(); stmt; t_[r_] = now() - a_; } \
    qsort(t_, RUNS, sizeof t_[0], cmp); out = t_[RUNS / 2]; } while (0)

/* GFLOP/s in executed FLOPs of the TIME just done (RUNS + 1 calls since
 * the counters were reset), at median time t. */
static double exec_rate(double t)
{
    ops_flops f;
    ops_flops_get(&f);
    double ex = 0;
    for (int i = 0; i < PROF_NKIND; i++) ex += f.exec[i];
    return ex / (RUNS + 1) / t * 1e-9;
}

static void attention(void)
{
    static const struct { const char *what; int B, Tq, Tk, H, D; } s[] = {
        {"UNet level 0 self (64x64)", 2, 4096, 4096, 8, 40},
        {"UNet level 1 self (32x32)", 2, 1024, 1024, 8, 80},
        {"UNet level 2 self (16x16)", 2, 256, 256, 8, 160},
        {"UNet level 0 cross (77 tokens)", 2, 4096, 77, 8, 40},
        {"VAE mid block (64x64, 1 head)", 1, 4096, 4096, 1, 512},
    };
    printf("attention (op_attention)\n");
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        int C = s[i].H * s[i].D;
        size_t nq = (size_t)s[i].B * s[i].Tq * C, nk = (size_t)s[i].B * s[i].Tk * C;
        float *q = fill(nq, 1), *k = fill(nk, 2), *v = fill(nk, 3), *o = malloc(sizeof(float) * nq);
        double t;
        ops_prof_reset();
        TIME(op_attention(t_ops(), q, C, k, C, v, C, s[i].B, s[i].Tq, s[i].Tk, s[i].H, s[i].D, 1.f / sqrtf((float)s[i].D), o), t);
        double fl = 4.0 * s[i].B * s[i].H * (double)s[i].Tq * s[i].Tk * s[i].D;
        printf("  %-32s B%d Tq%-5d Tk%-5d H%d D%-4d %8.2f ms %7.1f GFLOP/s\n", s[i].what, s[i].B, s[i].Tq,
               s[i].Tk, s[i].H, s[i].D, t * 1e3, fl / t * 1e-9);
        if (ops_prof_enabled()) ops_prof_print(stdout, "(all 8 calls)", NULL);   /* SD_PROFILE=1: threads' busy share */
        free(q); free(k); free(v); free(o);
    }
}

static void linear(void)
{
    static const int s[][3] = {{8192, 320, 320}, {8192, 320, 2560}, {8192, 1280, 320},
                               {2048, 640, 640}, {2048, 640, 5120}, {2048, 2560, 640},
                               {512, 1280, 1280}, {512, 1280, 10240}, {512, 5120, 1280}};
    printf("linear (op_linear, rows x in -> out)\n");
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        int M = s[i][0], K = s[i][1], N = s[i][2];
        float *x = fill((size_t)M * K, 4), *w = fill((size_t)K * N, 5 + (unsigned)i), *b = fill(N, 6);
        float *y = malloc(sizeof(float) * M * N);
        double t;
        ops_flops_reset();
        ops_weight *wh = t_w(w, (size_t)K * N);   /* its copies made in the warm-up, as a model's */
        TIME(op_linear(t_ops(), x, M, K, wh, b, N, y), t);
        printf("  %5d x %5d -> %5d %8.2f ms %7.1f GFLOP/s (exec %7.1f)\n", M, K, N, t * 1e3,
               2.0 * M * K * N / t * 1e-9, exec_rate(t));
        free(x); free(w); free(b); free(y);
    }
}

static void conv(void)
{
    static const int s[][4] = {{2, 320, 64, 320}, {2, 640, 32, 640}, {2, 1920, 32, 640},
                               {2, 1280, 32, 1280}, {2, 1280, 16, 1280}, {2, 2560, 16, 1280},
                               {2, 1280, 8, 1280}, {1, 512, 64, 512}, {1, 512, 128, 512},
                               {1, 256, 256, 256}, {1, 128, 512, 128}};
    static const struct { int mode; const char *name; } m[] = {{OPS_WINO_OFF, "direct"}, {OPS_WINO_ALL, "Winograd"}};
    printf("3x3 conv (op_conv2d_nhwc, stride 1; N x IC x HxW -> OC)\n");
    int saved = ops_conv_winograd(t_ops()->ctx);
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        int N = s[i][0], IC = s[i][1], H = s[i][2], OC = s[i][3];
        float *x = fill((size_t)N * H * H * IC, 7), *w = fill((size_t)OC * IC * 9, 8 + (unsigned)i);
        float *b = fill(OC, 9), *y = malloc(sizeof(float) * N * H * H * OC);
        printf("  %d x %4d x %3dx%-3d -> %4d", N, IC, H, H, OC);
        for (int j = 0; j < (t_ops()->prec == OPS_FP32 ? 2 : 1); j++) {   /* no Winograd in bf16 */
            double t;
            ops_conv_set_winograd(t_ops()->ctx, m[j].mode);
            ops_weight *wh = t_w(w, (size_t)OC * IC * 3 * 3);   /* its copies made in the warm-up, as a model's */
            ops_flops_reset();
            TIME(op_conv2d_nhwc(t_ops(), x, N, IC, H, H, wh, b, OC, 3, 3, 1, 1, y, 0), t);
            printf("   %s %8.2f ms %6.1f GFLOP/s (exec %6.1f)", m[j].name, t * 1e3,
                   2.0 * N * H * H * (double)IC * OC * 9 / t * 1e-9, exec_rate(t));
        }
        printf("\n");
        ops_release_weights(t_ops()->ctx);   /* the Winograd copies of big weights add up */
        free(x); free(w); free(b); free(y);
    }
    ops_conv_set_winograd(t_ops()->ctx, saved);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    if (only && strcmp(only, "attention") && strcmp(only, "linear") && strcmp(only, "conv")) {
        fprintf(stderr, "usage: opbench [attention|linear|conv]\n");
        return 2;
    }
    t_ops_init(0);
    printf("threads %d, %s convs/matmuls/attention (SD_PRECISION), median of %d runs\n", ops_ctx_threads(t_ops()->ctx),
           ops_precision_name(t_ops()->prec), RUNS);
    if (!only || !strcmp(only, "attention")) attention();
    if (!only || !strcmp(only, "linear")) linear();
    if (!only || !strcmp(only, "conv")) conv();
    return 0;
}
