/* ops_attention.c — multi-head scaled-dot-product attention, plain and causal.
 * Work is split over (batch, head, tile of TQ query rows); each task computes
 * S = q_tile·kᵀ (TQ×Tk) with op_gemm, a max-subtracted softmax per row in
 * fp32, then out_tile = S·v with op_gemm.  So at most one TQ×Tk score block
 * per thread exists at a time, never the full [H,Tq,Tk] matrix. */
#include "ops.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define TQ 64

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
            for (int i = 0; i < m; i++) {
                float *s = S + (size_t)i * nk;
                int lim = causal ? i0 + i + 1 : nk;
                float mx = -INFINITY, sum = 0.f;
                for (int j = 0; j < lim; j++) mx = s[j] > mx ? s[j] : mx;
                for (int j = 0; j < lim; j++) { s[j] = expf(s[j] - mx); sum += s[j]; }
                float inv = 1.f / sum;
                for (int j = 0; j < lim; j++) s[j] *= inv;
                for (int j = lim; j < nk; j++) s[j] = 0.f;
            }
            op_gemm(0, m, D, nk, 1.f, S, nk, vb, ldv, 0.f, ot, HD);
        }
        free(S);
    }
}

void op_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                  int B, int Tq, int Tk, int H, int D, float scale, float *out)
{
    attention(q, ldq, k, ldk, v, ldv, B, Tq, Tk, H, D, scale, 0, out);
}

void op_attention_causal(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                         int B, int T, int H, int D, float scale, float *out)
{
    attention(q, ldq, k, ldk, v, ldv, B, T, T, H, D, scale, 1, out);
}
