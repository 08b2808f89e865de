/* ops_gemm.c — gemm and linear: straight to oneDNN's sgemm (row-major,
 * threaded on the OpenMP team; sequential when called inside a parallel
 * region, as the attention tiles do).  conv2d lives in ops_conv.c.  A
 * failure inside oneDNN is a bug: print, abort. */
#include "ops.h"
#include "ops_prof.h"

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
    PROF_BEGIN;
    if (b) fill_rows(y, M, OUT, b);
    op_gemm(1, M, OUT, IN, 1.f, x, IN, w, IN, b ? 1.f : 0.f, y, OUT);
    PROF_END(PROF_LINEAR);
}

void op_linear_acc(const float *x, int M, int IN, const float *w, const float *b, int OUT, float *y)
{
    PROF_BEGIN;
    if (b) {
        #pragma omp parallel for schedule(static) if ((size_t)M * OUT >= 65536)
        for (int r = 0; r < M; r++)
            for (int j = 0; j < OUT; j++) y[(size_t)r * OUT + j] += b[j];
    }
    op_gemm(1, M, OUT, IN, 1.f, x, IN, w, IN, 1.f, y, OUT);
    PROF_END(PROF_LINEAR);
}
