/* ops_gemm.c — the compute-bound dense ops: gemm, linear and conv2d.
 * gemm and linear go straight to oneDNN's sgemm (row-major, threaded on the
 * OpenMP team).  conv2d: 1x1 stride-1 convs are a gemm over the channel
 * dimension; other convs unfold the input (im2col) into a scratch buffer and
 * run one gemm per image.  A failure inside oneDNN is a bug: print, abort. */
#include "ops.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dnnl_check(dnnl_status_t st, const char *what)
{
    if (st != dnnl_success) {
        fprintf(stderr, "ops: oneDNN %s failed (status %d)\n", what, (int)st);
        abort();
    }
}

void op_gemm(int transB, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.f ? 0.f : beta * C[(size_t)i * ldc + j];
        return;
    }
    dnnl_check(dnnl_sgemm('N', transB ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), "sgemm");
}

/* Fill rows of y[M,OUT] with b (or zero). */
static void fill_rows(float *y, int M, int OUT, const float *b)
{
    #pragma omp parallel for schedule(static) if ((size_t)M * OUT >= 65536)
    for (int r = 0; r < M; r++) {
        if (b) memcpy(y + (size_t)r * OUT, b, sizeof(float) * OUT);
        else memset(y + (size_t)r * OUT, 0, sizeof(float) * OUT);
    }
}

void op_linear(const float *x, int M, int IN, const float *w, const float *b, int OUT, float *y)
{
    if (b) fill_rows(y, M, OUT, b);
    op_gemm(1, M, OUT, IN, 1.f, x, IN, w, IN, b ? 1.f : 0.f, y, OUT);
}

/* col[IC*KH*KW, OH*OW] from one image x[IC,H,W]. */
static void im2col(const float *x, int IC, int H, int W, int KH, int KW, int stride, int pad,
                   int OH, int OW, float *col)
{
    int K = IC * KH * KW;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < K; r++) {
        int ic = r / (KH * KW), kh = (r / KW) % KH, kw = r % KW;
        const float *xp = x + (size_t)ic * H * W;
        float *cp = col + (size_t)r * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            int ih = oh * stride - pad + kh;
            float *crow = cp + (size_t)oh * OW;
            if (ih < 0 || ih >= H) { memset(crow, 0, sizeof(float) * OW); continue; }
            for (int ow = 0; ow < OW; ow++) {
                int iw = ow * stride - pad + kw;
                crow[ow] = (iw >= 0 && iw < W) ? xp[(size_t)ih * W + iw] : 0.f;
            }
        }
    }
}

void op_conv2d(const float *x, int N, int IC, int H, int W,
               const float *w, const float *b, int OC, int KH, int KW,
               int stride, int pad, float *y)
{
    int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    int K = IC * KH * KW, P = OH * OW;
    int direct = KH == 1 && KW == 1 && stride == 1 && pad == 0;
    float *col = direct ? NULL : malloc(sizeof(float) * (size_t)K * P);
    if (!direct && !col) { fprintf(stderr, "ops: conv2d scratch allocation failed\n"); abort(); }
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * IC * H * W;
        float *yn = y + (size_t)n * OC * P;
        if (b)
            for (int oc = 0; oc < OC; oc++)
                for (int i = 0; i < P; i++) yn[(size_t)oc * P + i] = b[oc];
        if (!direct) im2col(xn, IC, H, W, KH, KW, stride, pad, OH, OW, col);
        op_gemm(0, OC, P, K, 1.f, w, K, direct ? xn : col, P, b ? 1.f : 0.f, yn, P);
    }
    free(col);
}
