/* ops_attention.c — multi-head scaled-dot-product attention, plain and causal.
 * Work is split over (batch, head, tile of TQ query rows); each task computes
 * S = q_tile·kᵀ (TQ×Tk) with op_gemm, exp(S - rowmax) in fp32, then
 * out_tile = S·v with op_gemm scaled by 1/rowsum.  So at most one TQ×Tk score block
 * per thread exists at a time, never the full [H,Tq,Tk] matrix. */
#include "ops.h"
#include "ops_prof.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TQ 128

/* Softmax numerator with GCC vector extensions (8 floats; AVX when the
 * target has it, SSE pairs otherwise), so it vectorises without -ffast-math.
 * e^x for x <= 0 (scores after max subtraction) = 2^n · e^r, |r| <= ln2/2,
 * degree-6 Taylor polynomial: relative error < 2e-7. */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

/* In place (a by-pointer argument: returning a 32-byte vector warns about the
 * ABI on targets without AVX). */
static inline void exp8_nonpos(v8f *xp)
{
    v8f x = *xp;
    v8i small = x < -87.f;                       /* clamp: e^-87 ~ 1.6e-38, still normal */
    x = (v8f)((small & (v8i)(x * 0.f - 87.f)) | (~small & (v8i)x));
    v8i ni = __builtin_convertvector(x * 1.44269504f - 0.5f, v8i);   /* x <= 0: trunc = round */
    v8f n = __builtin_convertvector(ni, v8f);
    v8f r = x - n * 0.693145751953125f - n * 1.428606765330187e-06f;
    v8f p = 1.f + r * (1.f + r * (0.5f + r * (1.f / 6 + r * (1.f / 24 + r * (1.f / 120 + r * (1.f / 720))))));
    *xp = p * (v8f)((ni + 127) << 23);
}

/* s[0..n) <- exp(s - max(s)); returns the sum (> 0). */
static float softmax_row(float *s, int n)
{
    int n8 = n & ~7, j;
    float mx = -INFINITY, sum = 0.f;
    v8f m8 = {0};
    m8 -= INFINITY;
    for (j = 0; j < n8; j += 8) {
        v8f v;
        memcpy(&v, s + j, sizeof v);
        v8i gt = v > m8;
        m8 = (v8f)((gt & (v8i)v) | (~gt & (v8i)m8));
    }
    for (int l = 0; l < 8; l++) mx = m8[l] > mx ? m8[l] : mx;
    for (; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    v8f acc = {0};
    for (j = 0; j < n8; j += 8) {
        v8f v;
        memcpy(&v, s + j, sizeof v);
        v -= mx;
        exp8_nonpos(&v);
        memcpy(s + j, &v, sizeof v);
        acc += v;
    }
    if (j < n) {   /* tail: pad with -inf-like values whose exp is ~0 and not stored */
        v8f v;
        for (int l = 0; l < 8; l++) v[l] = j + l < n ? s[j + l] - mx : -100.f;
        exp8_nonpos(&v);
        for (int l = 0; l < 8 && j + l < n; l++) { s[j + l] = v[l]; acc[l] += v[l]; }
    }
    for (int l = 0; l < 8; l++) sum += acc[l];
    return sum;
}

static void attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                      int B, int Tq, int Tk, int H, int D, float scale, int causal, float *out)
{
    int ntiles = (Tq + TQ - 1) / TQ, HD = H * D;
    long ntask = (long)B * H * ntiles;
    #pragma omp parallel
    {
        float *S = malloc(sizeof(float) * (size_t)TQ * Tk);
        if (!S) { fprintf(stderr, "ops: attention scratch allocation failed\n"); abort(); }
        #pragma omp for schedule(dynamic, 1)
        for (long task = 0; task < ntask; task++) {
            int b = (int)(task / ((long)H * ntiles)), h = (int)(task / ntiles % H), t = (int)(task % ntiles);
            int i0 = t * TQ, m = Tq - i0 < TQ ? Tq - i0 : TQ;
            int nk = causal ? (i0 + m < Tk ? i0 + m : Tk) : Tk;   /* keys any row of the tile can see */
            const float *qt = q + ((size_t)b * Tq + i0) * ldq + (size_t)h * D;
            const float *kb = k + (size_t)b * Tk * ldk + (size_t)h * D;
            const float *vb = v + (size_t)b * Tk * ldv + (size_t)h * D;
            float *ot = out + ((size_t)b * Tq + i0) * HD + (size_t)h * D;
            op_gemm(1, m, nk, D, scale, qt, ldq, kb, ldk, 0.f, S, nk);
            float inv[TQ];
            for (int i = 0; i < m; i++) {
                float *s = S + (size_t)i * nk;
                int lim = causal ? i0 + i + 1 : nk;
                inv[i] = 1.f / softmax_row(s, lim);
                for (int j = lim; j < nk; j++) s[j] = 0.f;
            }
            op_gemm(0, m, D, nk, 1.f, S, nk, vb, ldv, 0.f, ot, HD);
            for (int i = 0; i < m; i++)   /* normalise after P·V: D multiplies per row, not Tk */
                for (int d = 0; d < D; d++) ot[(size_t)i * HD + d] *= inv[i];
        }
        free(S);
    }
}

void op_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                  int B, int Tq, int Tk, int H, int D, float scale, float *out)
{
    PROF_BEGIN;
    attention(q, ldq, k, ldk, v, ldv, B, Tq, Tk, H, D, scale, 0, out);
    PROF_END(PROF_ATTN);
}

void op_attention_causal(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                         int B, int T, int H, int D, float scale, float *out)
{
    PROF_BEGIN;
    attention(q, ldq, k, ldk, v, ldv, B, T, T, H, D, scale, 1, out);
    PROF_END(PROF_ATTN);
}
