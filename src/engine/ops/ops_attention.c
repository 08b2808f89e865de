/* ops_attention.c — multi-head scaled-dot-product attention, plain and
 * causal, on our own AVX-512-shaped kernels (GCC vector extensions).
 *
 * For every (batch, head) at once the keys are packed transposed in strips
 * of 32 keys, Kt[Tk'/32][D][32], and the values in panels of 16 columns,
 * V'[D'/16][Tk'][16], zero-padded (Tk' a multiple of KB, D' of 16); then the
 * (batch, head, TQ query rows) tiles are shared out over the thread team in
 * the same parallel region.  A tile walks the keys in blocks of KB with an
 * online softmax
 * (running row max and sum, flash-attention style):
 *     S = (scale·q) · Kt[:, block]            register tiles of 4 rows x 32 keys,
 *                                             key strips outermost (L1 reuse)
 *     m' = max(m, rowmax S); O *= e^(m-m'); l = l·e^(m-m') + Σ e^(S-m')
 *     O += e^(S-m') · V'[block]                register tiles of 4 rows x 48 (or 40)
 *                                             columns
 * and ends with O / l.  So no score matrix larger than TQ x KB ever exists,
 * the blocks stay in L1/L2, and P·V runs on a kernel built for D' = 48..512
 * wide outputs instead of a general sgemm (oneDNN's reached ~73 % of peak on
 * these shapes).  Buffers grow once and are reused: no allocation per call
 * in steady state.  Checked against a naive double-precision loop in
 * tests/unit/test_ops.c. */
/* -std=c11 turns off FMA contraction; these kernels are a chain of a += b*c */
#pragma GCC optimize("fp-contract=fast")

#include "ops.h"
#include "ops_dnnl.h"
#include "ops_prof.h"
#include "ops_vec.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TQ 128    /* query rows per task */
#define KB 256   /* keys per block (multiple of 32) */
#define MR 4     /* rows per register tile */

/* Keep loaded vectors in registers: without this GCC folds each reuse into
 * the FMA as a memory operand, and this CPU (one 512-bit load per cycle)
 * then waits on loads instead of multiplying. */
#if defined(__x86_64__) && defined(__AVX512F__)   /* 64-byte vectors fit one register */
#define KEEP2(a, b) __asm__("" : "+v"(a), "+v"(b))
#define KEEP3(a, b, c) __asm__("" : "+v"(a), "+v"(b), "+v"(c))
#else
#define KEEP2(a, b) ((void)0)
#define KEEP3(a, b, c) ((void)0)
#endif

/* Shared packs (grown by the calling thread) and per-thread tile scratch. */
static _Thread_local void *t_kt, *t_vp, *t_scr;
static _Thread_local size_t t_nkt, t_nvp, t_nscr;

/* S[MR][32] = Q[MR][D] · K strip [D][32] (contiguous): one register tile
 * (8 accumulators); S rows KB apart. */
static void qk_tile(const float *Q, int D, const float *kp, float *S)
{
    v16f a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
    for (int d = 0; d < D; d++, kp += 32) {
        v16f k0 = v16_load(kp), k1 = v16_load(kp + 16);
        KEEP2(k0, k1);
        float q0 = Q[d], q1 = Q[D + d], q2 = Q[2 * D + d], q3 = Q[3 * D + d];
        a00 += q0 * k0; a01 += q0 * k1;
        a10 += q1 * k0; a11 += q1 * k1;
        a20 += q2 * k0; a21 += q2 * k1;
        a30 += q3 * k0; a31 += q3 * k1;
    }
    v16_store(S, a00); v16_store(S + 16, a01);
    v16_store(S + KB, a10); v16_store(S + KB + 16, a11);
    v16_store(S + 2 * KB, a20); v16_store(S + 2 * KB + 16, a21);
    v16_store(S + 3 * KB, a30); v16_store(S + 3 * KB + 16, a31);
}

/* O[MR][..Dv) += P[MR][0..nk) · V[0..nk)[..Dv); Dv = D rounded up to 8.
 * V is packed in column panels of 16, each [Tkp][16] contiguous (V points at
 * the block's first key of panel 0, panels ldp floats apart); O rows are Dp
 * apart.  Column tiles of 48, then 40 (16+16+8: D = 40, SD 1.x's first
 * level, without computing 8 padding columns), then 16 and 8. */
static void pv_block(const float *P, int nk, const float *V, size_t ldp, int Dv, int Dp, float *O)
{
    int c = 0;
    for (; c + 48 <= Dv; c += 48) {
        v16f acc[MR][3];
        for (int r = 0; r < MR; r++)
            for (int u = 0; u < 3; u++) acc[r][u] = v16_load(O + (size_t)r * Dp + c + 16 * u);
        const float *p0 = V + (size_t)(c / 16) * ldp, *p1 = p0 + ldp, *p2 = p1 + ldp;
        for (int j = 0; j < nk; j++) {
            v16f v0 = v16_load(p0 + 16 * j), v1 = v16_load(p1 + 16 * j), v2 = v16_load(p2 + 16 * j);
            KEEP3(v0, v1, v2);
            #pragma GCC unroll 4
            for (int r = 0; r < MR; r++) {
                float p = P[r * KB + j];
                acc[r][0] += p * v0; acc[r][1] += p * v1; acc[r][2] += p * v2;
            }
        }
        for (int r = 0; r < MR; r++)
            for (int u = 0; u < 3; u++) v16_store(O + (size_t)r * Dp + c + 16 * u, acc[r][u]);
    }
    if (Dv - c == 40) {
        v16f acc[MR][2];
        v8f acc8[MR];
        for (int r = 0; r < MR; r++) {
            acc[r][0] = v16_load(O + (size_t)r * Dp + c);
            acc[r][1] = v16_load(O + (size_t)r * Dp + c + 16);
            acc8[r] = v8_load(O + (size_t)r * Dp + c + 32);
        }
        const float *p0 = V + (size_t)(c / 16) * ldp, *p1 = p0 + ldp, *p2 = p1 + ldp;
        for (int j = 0; j < nk; j++) {
            v16f v0 = v16_load(p0 + 16 * j), v1 = v16_load(p1 + 16 * j);
            v8f v2 = v8_load(p2 + 16 * j);
            KEEP3(v0, v1, v2);
            #pragma GCC unroll 4
            for (int r = 0; r < MR; r++) {
                float p = P[r * KB + j];
                acc[r][0] += p * v0; acc[r][1] += p * v1; acc8[r] += p * v2;
            }
        }
        for (int r = 0; r < MR; r++) {
            v16_store(O + (size_t)r * Dp + c, acc[r][0]);
            v16_store(O + (size_t)r * Dp + c + 16, acc[r][1]);
            v8_store(O + (size_t)r * Dp + c + 32, acc8[r]);
        }
        return;
    }
    for (; c + 16 <= Dv; c += 16) {
        v16f acc[MR];
        for (int r = 0; r < MR; r++) acc[r] = v16_load(O + (size_t)r * Dp + c);
        const float *p0 = V + (size_t)(c / 16) * ldp;
        for (int j = 0; j < nk; j++) {
            v16f v0 = v16_load(p0 + 16 * j);
            for (int r = 0; r < MR; r++) acc[r] += P[r * KB + j] * v0;
        }
        for (int r = 0; r < MR; r++) v16_store(O + (size_t)r * Dp + c, acc[r]);
    }
    if (c < Dv) {   /* 8 columns left */
        v8f acc[MR];
        for (int r = 0; r < MR; r++) acc[r] = v8_load(O + (size_t)r * Dp + c);
        const float *p0 = V + (size_t)(c / 16) * ldp;
        for (int j = 0; j < nk; j++) {
            v8f v0 = v8_load(p0 + 16 * j);
            for (int r = 0; r < MR; r++) acc[r] += P[r * KB + j] * v0;
        }
        for (int r = 0; r < MR; r++) v8_store(O + (size_t)r * Dp + c, acc[r]);
    }
}

/* One tile of up to TQ query rows (global rows i0..i0+m) against all keys. */
static void tile(const float *q, int ldq, float scale, int i0, int m, int Tk, int D, int Dp,
                 const float *Kp, const float *Vp, size_t Tkp, int causal, float *out, int ldo, float *scr)
{
    int mp = (m + MR - 1) / MR * MR;
    float *Q = scr, *S = Q + (size_t)TQ * D, *O = S + (size_t)TQ * KB;
    float mx[TQ], l[TQ];
    for (int i = 0; i < mp; i++) {
        float *qr = Q + (size_t)i * D;
        if (i < m) for (int d = 0; d < D; d++) qr[d] = q[(size_t)i * ldq + d] * scale;
        else memset(qr, 0, sizeof(float) * D);
        mx[i] = -INFINITY;
        l[i] = 0.f;
    }
    memset(O, 0, sizeof(float) * (size_t)mp * Dp);
    int kend = causal ? (i0 + m < Tk ? i0 + m : Tk) : Tk;   /* keys any row can see */
    for (int k0 = 0; k0 < kend; k0 += KB) {
        int nk = kend - k0 < KB ? kend - k0 : KB;
        /* S = Q·Kt for the block: key strips outermost, so a strip of Kt
         * (D x 32) stays in L1 while every row group uses it */
        for (int j = 0; j < nk; j += 32)
            for (int r0 = 0; r0 < mp; r0 += MR)
                qk_tile(Q + (size_t)r0 * D, D, Kp + (size_t)(k0 + j) * D, S + (size_t)r0 * KB + j);
        for (int i = 0; i < mp; i++) {
            float *s = S + (size_t)i * KB;
            int lim = causal ? i0 + i + 1 - k0 : nk;   /* visible keys of this row in the block */
            if (lim > nk) lim = nk;
            if (lim < 0) lim = 0;
            float bm = -INFINITY;
            int j = 0;
            if (lim >= 16) {
                v16f vm = v16_load(s);
                for (j = 16; j + 16 <= lim; j += 16) vm = v16_max(vm, v16_load(s + j));
                for (int u = 0; u < 16; u++) bm = vm[u] > bm ? vm[u] : bm;
            }
            for (; j < lim; j++) bm = s[j] > bm ? s[j] : bm;
            float nm = bm > mx[i] ? bm : mx[i];
            if (lim == 0 || nm == -INFINITY) {   /* nothing visible yet in this row */
                memset(s, 0, sizeof(float) * nk);
                continue;
            }
            float corr = mx[i] == -INFINITY ? 0.f : expf(mx[i] - nm);
            mx[i] = nm;
            v16f acc = {0};
            for (j = 0; j + 16 <= lim; j += 16) {
                v16f e = v16_exp(v16_load(s + j) - nm);
                v16_store(s + j, e);
                acc += e;
            }
            float sum = 0.f;
            for (; j < lim; j++) { s[j] = expf(s[j] - nm); sum += s[j]; }
            for (; j < nk; j++) s[j] = 0.f;   /* masked keys */
            for (int u = 0; u < 16; u++) sum += acc[u];
            l[i] = l[i] * corr + sum;
            if (corr != 1.f) {
                float *o = O + (size_t)i * Dp;
                for (int d = 0; d < Dp; d += 16) v16_store(o + d, v16_load(o + d) * corr);
            }
        }
        for (int r0 = 0; r0 < mp; r0 += MR)
            pv_block(S + (size_t)r0 * KB, nk, Vp + (size_t)k0 * 16, Tkp * 16, (D + 7) / 8 * 8, Dp,
                     O + (size_t)r0 * Dp);
    }
    for (int i = 0; i < m; i++) {
        float inv = 1.f / l[i];
        for (int d = 0; d < D; d++) out[(size_t)i * ldo + d] = O[(size_t)i * Dp + d] * inv;
    }
}

static void attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                      int B, int Tq, int Tk, int H, int D, float scale, int causal, float *out)
{
    int HD = H * D, Dp = (D + 15) / 16 * 16, ntiles = (Tq + TQ - 1) / TQ, BH = B * H;
    size_t Tkp = ((size_t)Tk + KB - 1) / KB * KB, kpn = (size_t)D * Tkp, vpn = Tkp * Dp;
    float *Kall = ops_grow(&t_kt, &t_nkt, sizeof(float) * kpn * BH);
    float *Vall = ops_grow(&t_vp, &t_nvp, sizeof(float) * vpn * BH);
    size_t scr_floats = (size_t)TQ * D + (size_t)TQ * KB + (size_t)TQ * Dp;
    long nstrips = (long)(Tkp / 32);
    #pragma omp parallel
    {
        /* pack every (batch, head): K in strips of 32 keys, Kp[j/32][d][j%32],
         * V in panels of 16 columns, Vp[d/16][j][d%16]; zero past Tk and D.
         * Contiguous strips/panels: power-of-two strides between the rows a
         * kernel reads would map them all to one cache set. */
        #pragma omp for schedule(static)
        for (long t = 0; t < (long)BH * nstrips; t++) {
            int bh = (int)(t / nstrips), b = bh / H, h = bh % H;
            size_t j0 = (size_t)(t % nstrips) * 32;
            const float *kb = k + (size_t)b * Tk * ldk + (size_t)h * D;
            const float *vb = v + (size_t)b * Tk * ldv + (size_t)h * D;
            float *ks = Kall + bh * kpn + j0 * D, *Vp = Vall + bh * vpn;
            for (size_t j = j0; j < j0 + 32; j++) {
                int in = j < (size_t)Tk;
                const float *kr = kb + (in ? j : 0) * ldk, *vr = vb + (in ? j : 0) * ldv;
                for (int d = 0; d < D; d++) ks[(size_t)d * 32 + (j - j0)] = in ? kr[d] : 0.f;
                for (int p = 0; p < Dp / 16; p++) {
                    float *dst = Vp + (size_t)p * Tkp * 16 + j * 16;
                    for (int u = 0; u < 16; u++) dst[u] = in && p * 16 + u < D ? vr[p * 16 + u] : 0.f;
                }
            }
        }
        float *scr = ops_grow(&t_scr, &t_nscr, sizeof(float) * scr_floats);
        #pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < (long)BH * ntiles; t++) {
            int bh = (int)(t / ntiles), b = bh / H, h = bh % H;
            int i0 = (int)(t % ntiles) * TQ, m = Tq - i0 < TQ ? Tq - i0 : TQ;
            tile(q + ((size_t)b * Tq + i0) * ldq + (size_t)h * D, ldq, scale, i0, m, Tk, D, Dp, Kall + bh * kpn,
                 Vall + bh * vpn, Tkp, causal, out + ((size_t)b * Tq + i0) * HD + (size_t)h * D, HD, scr);
        }
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
