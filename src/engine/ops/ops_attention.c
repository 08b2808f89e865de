/* ops_attention.c — multi-head scaled-dot-product attention, plain and
 * causal, on our own AVX-512-shaped kernels (GCC vector extensions; below
 * AVX-512 the same loops on 4-row tiles of 8-wide vectors, further down).
 *
 * For every (batch, head) at once the keys are packed transposed in strips
 * of 32 keys, Kt[Tk'/32][D][32], and the values in panels of 16 columns,
 * V'[D'/16][Tk'][16], zero-padded (Tk' a multiple of 32, D' of 16); then the
 * (batch, head, TQ query rows) tiles are shared out over the thread team in
 * the same parallel region.  A tile walks the keys in blocks of KB with an
 * online softmax (running row max and sum, flash-attention style); per
 * block, each group of 8 rows in turn, on one 8 x KB score buffer that
 * stays in L1:
 *     S = (scale·log2(e)·q) · Kt[:, block]    register tiles of 8 rows x 32
 *                                             keys; the row maxima folded in
 *     m' = max(m, rowmax S); O *= 2^(m-m'); l = l·2^(m-m') + Σ 2^(S-m')
 *     O += 2^(S-m') · V'[block]               register tiles of 8 rows x 48
 *                                             (or 40, 32) columns
 * and ends with O / l.  Scores are kept in log2 units so the softmax's
 * exponential is a bare 2^t (ops_vec.h v16_exp2_neg: degree-4 fit, one
 * vscalefps; the row's last partial vector masked, no scalar libm calls).
 * No work is done on padding columns: D = 40 (SD 1.x's first level) runs
 * 40-wide P·V tiles (16 + 16 + 8), and QKᵀ loops over the real D; only
 * keys are padded, to a whole strip of 32 in QKᵀ, or of 16 when that is
 * enough (cross-attention's 77 → 80), and query rows to a multiple of MR
 * (8; 12 below AVX-512):
 * the executed-FLOP counter
 * counts both (attention_exec_flops).  So no score matrix larger
 * than 8 x KB ever exists and P·V runs on a kernel built for D' = 40..512
 * wide outputs instead of a general sgemm (oneDNN's reached ~73 % of peak
 * on these shapes).  Time at SD 1.5's 4096 x 4096, D = 40, one thread,
 * after this layout: QKᵀ and P·V each ~43 %, softmax ~10 %, packing ~1 %;
 * after round 3 (P broadcast from memory, vector row reductions): QKᵀ 42 %
 * (its register tile's stores and maxima ~5 points of it), P·V 41 %,
 * softmax 8 %, packing ~2 % (bench/README.md "Without AMX"); round 4: a
 * block's strips in one call with the row maxima in registers, the
 * exponential's reduction by vreduceps, V packed by vector copies.  Computing
 * 2^(s - m) in the QK tile's registers against a running maximum that
 * is not raised (no score pass) measured no faster: the exponentials
 * cost the same wherever they run.  Buffers grow once and are reused: no
 * allocation per call in steady state.  Checked against a naive
 * double-precision loop in tests/unit/test_ops.c.  In the bf16 precisions
 * on a CPU with AMX, plain attention runs on AMX tiles instead
 * (ops_attention_amx.c); causal attention (the text encoder's 77 tokens)
 * stays here. */
/* -std=c11 turns off FMA contraction; these kernels are a chain of a += b*c */
#pragma GCC optimize("fp-contract=fast")

#include "ops.h"
#include "ops_dnnl.h"
#include "ops_prof.h"
#include "../../base/alloc.h"
#include "ops_vec.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KB 512   /* keys per block (multiple of 32) */
#if defined(__AVX512F__)
#define TQ 128    /* query rows per task */
#define MR 8     /* rows per register tile */
#else
#define TQ 120    /* (a multiple of MR) */
#define MR 12     /* two 6-row tiles: 12 accumulators of 8 floats */
#endif

/* Keep loaded vectors in registers: without this GCC folds each reuse into
 * the FMA as a memory operand, and this CPU (one 512-bit load per cycle)
 * then waits on loads instead of multiplying. */
#if defined(__x86_64__) && defined(__AVX512F__)   /* 64-byte vectors fit one register */
#define KEEP1(a) __asm__("" : "+v"(a))
#define KEEP2(a, b) __asm__("" : "+v"(a), "+v"(b))
#define KEEP3(a, b, c) __asm__("" : "+v"(a), "+v"(b), "+v"(c))
#else
#define KEEP1(a) ((void)0)
#define KEEP2(a, b) ((void)0)
#define KEEP3(a, b, c) ((void)0)
#endif

/* Shared packs (grown by the calling thread) and per-thread tile scratch. */
static _Thread_local void *t_kt, *t_vp, *t_scr;
static _Thread_local size_t t_nkt, t_nvp, t_nscr;

/* The register tiles below are spelt out row by row (R8): GCC keeps arrays of
 * vectors indexed in loops in memory, not in registers. */
#define R8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* keys a QKᵀ pass over n keys computes: strips of 32, the last one 16 wide
 * when 16 or fewer keys are left in it */
static int qk_cols(int n)
{
    return n % 32 >= 1 && n % 32 <= 16 ? (n + 15) / 16 * 16 : (n + 31) / 32 * 32;
}

#if defined(__AVX512F__)
/* S[MR][32·ns] = Q[MR][D] · ns K strips [D][32] (contiguous), S rows KB
 * apart: per strip one register tile of 16 accumulators (8 query
 * broadcasts and 2 key loads per 16 FMAs).  With bm != NULL, bm[MR][16] =
 * the strips' lane-wise row maxima, so the softmax needs no pass for them:
 * 8 running maxima kept in registers (16 + 2 + 8 of the 32), so a strip's
 * epilogue is its 16 stores and 16 vmaxps — no maxima loaded and stored,
 * no call per strip (bench/README.md "round 4").  A last strip of 17..31
 * keys runs alone, bm NULL. */
static __attribute__((noinline)) void qk_strips(const float *Q, int D, const float *kp, int ns, float *S, float *bm)
{
#define QK_DECL(r) v16f a##r##0 = {0}, a##r##1 = {0};
#define QK_STEP(r) { float q = Q[r * D + d]; a##r##0 += q * k0; a##r##1 += q * k1; }
#define QK_STORE(r) v16_store(S + r * KB, a##r##0); v16_store(S + r * KB + 16, a##r##1);
#define QKS_MDECL(r) v16f m##r = v16_set1(-INFINITY);
#define QKS_MAX(r) m##r = v16_max(m##r, v16_max(a##r##0, a##r##1));
#define QKS_MSTORE(r) v16_store(bm + 16 * r, m##r);
    R8(QKS_MDECL)
    for (int s = 0; s < ns; s++, S += 32) {
        R8(QK_DECL)
        for (int d = 0; d < D; d++, kp += 32) {
            v16f k0 = v16_load(kp), k1 = v16_load(kp + 16);
            KEEP2(k0, k1);
            R8(QK_STEP)
        }
        R8(QK_STORE)
        R8(QKS_MAX)
    }
    if (bm) { R8(QKS_MSTORE) }
}

/* The last strip's keys when 16 or fewer (cross-attention's 77 = 32 + 32 +
 * 13): S[MR][16] from the strip's first 16 columns (kp rows still 32
 * apart), 8 accumulators, so 77 keys run as 80, not 96. */
static __attribute__((noinline)) void qk_tile16(const float *Q, int D, const float *kp, float *S)
{
#define QK16_DECL(r) v16f a##r = {0};
#define QK16_STEP(r) a##r += Q[r * D + d] * k0;
#define QK16_STORE(r) v16_store(S + r * KB, a##r);
    R8(QK16_DECL)
    for (int d = 0; d < D; d++, kp += 32) {
        v16f k0 = v16_load(kp);
        KEEP1(k0);
        R8(QK16_STEP)
    }
    R8(QK16_STORE)
}

/* O[MR][c..c+16·NV) += P[MR][0..nk) · V panels (NV of 16 columns, ldp
 * floats apart), P rows KB apart, O rows Dp apart: 8·NV accumulators, NV + 8
 * loads per 8·NV FMAs. */
static __attribute__((noinline)) void pv_tile3(const float *P, int nk, const float *V, size_t ldp, int Dp, float *O)
{
#define PV3_DECL(r) v16f c##r##0 = v16_load(O + r * Dp), c##r##1 = v16_load(O + r * Dp + 16), \
                         c##r##2 = v16_load(O + r * Dp + 32);
#define PV3_STEP(r) { float p = P[r * KB + j]; c##r##0 += p * v0; c##r##1 += p * v1; c##r##2 += p * v2; }
#define PV3_STORE(r) v16_store(O + r * Dp, c##r##0); v16_store(O + r * Dp + 16, c##r##1); \
                     v16_store(O + r * Dp + 32, c##r##2);
    R8(PV3_DECL)
    const float *p0 = V, *p1 = p0 + ldp, *p2 = p1 + ldp;
    for (int j = 0; j < nk; j++) {
        v16f v0 = v16_load(p0 + 16 * j), v1 = v16_load(p1 + 16 * j), v2 = v16_load(p2 + 16 * j);
        KEEP3(v0, v1, v2);
        R8(PV3_STEP)
    }
    R8(PV3_STORE)
}

/* 40 columns (16 + 16 + 8: D = 40, SD 1.x's first level, without computing
 * 8 padding columns): per row two 16-wide accumulators, and per pair of
 * rows one whose low half is the first row's last 8 columns and whose
 * high half the second's, fed by the pair's two P values blended into one
 * vector and the value panel's 8 columns in both halves.  On a CPU whose
 * FMA pipes are 512 bits wide (Zen 5) an 8-wide FMA costs a whole one, so
 * the 16 + 16 + 8 tile ran at most 40 / 48 of the pipes (~82 % measured);
 * this one spends 20 full FMAs a key on 8 rows instead of 16 full and 8
 * half ones (bench/README.md "Zen 5").  Each P value is broadcast once
 * from memory (a load, no shuffle: a scalar load with two register
 * broadcasts a row took FP-pipe shuffles from the FMAs, "round 3").  Each
 * output is the same chain of FMAs over the keys in order as before. */
static __attribute__((noinline)) void pv_tile40(const float *P, int nk, const float *V, size_t ldp, int Dp, float *O)
{
#define PV40_DECL(r) v16f c##r##0 = v16_load(O + r * Dp), c##r##1 = v16_load(O + r * Dp + 16);
#define PV40_STORE(r) v16_store(O + r * Dp, c##r##0); v16_store(O + r * Dp + 16, c##r##1);
#define PV40_TDECL(i) v16f t##i = v16_cat(v8_load(O + (2 * i) * Dp + 32), v8_load(O + (2 * i + 1) * Dp + 32));
#define PV40_TSTORE(i) v8_store(O + (2 * i) * Dp + 32, v16_lo(t##i)); v8_store(O + (2 * i + 1) * Dp + 32, v16_hi(t##i));
    R8(PV40_DECL)
    PV40_TDECL(0) PV40_TDECL(1) PV40_TDECL(2) PV40_TDECL(3)
    const float *p0 = V, *p1 = p0 + ldp, *p2 = p1 + ldp;
    for (int j = 0; j < nk; j++) {
        v16f v0 = v16_load(p0 + 16 * j), v1 = v16_load(p1 + 16 * j);
#if defined(__AVX512DQ__)
        v16f v2 = (v16f)_mm512_broadcast_f32x8(_mm256_loadu_ps(p2 + 16 * j));   /* one load, no shuffle */
#else
        v8f v2h = v8_load(p2 + 16 * j);
        v16f v2 = v16_cat(v2h, v2h);
#endif
        KEEP3(v0, v1, v2);
#define PV40_PAIR(i, ra, rb) { v16f pa = v16_bcast(P + ra * KB + j), pb = v16_bcast(P + rb * KB + j); KEEP2(pa, pb); \
                          c##ra##0 += pa * v0; c##ra##1 += pa * v1; c##rb##0 += pb * v0; c##rb##1 += pb * v1; \
                          t##i += (v16f)_mm512_mask_blend_ps(0xFF00, (__m512)pa, (__m512)pb) * v2; }
        PV40_PAIR(0, 0, 1) PV40_PAIR(1, 2, 3) PV40_PAIR(2, 4, 5) PV40_PAIR(3, 6, 7)
    }
    R8(PV40_STORE)
    PV40_TSTORE(0) PV40_TSTORE(1) PV40_TSTORE(2) PV40_TSTORE(3)
}

static __attribute__((noinline)) void pv_tile2(const float *P, int nk, const float *V, size_t ldp, int Dp, float *O)
{
#define PV2_DECL(r) v16f c##r##0 = v16_load(O + r * Dp), c##r##1 = v16_load(O + r * Dp + 16);
#define PV2_STEP(r) { float p = P[r * KB + j]; c##r##0 += p * v0; c##r##1 += p * v1; }
#define PV2_STORE(r) v16_store(O + r * Dp, c##r##0); v16_store(O + r * Dp + 16, c##r##1);
    R8(PV2_DECL)
    const float *p0 = V, *p1 = p0 + ldp;
    for (int j = 0; j < nk; j++) {
        v16f v0 = v16_load(p0 + 16 * j), v1 = v16_load(p1 + 16 * j);
        KEEP2(v0, v1);
        R8(PV2_STEP)
    }
    R8(PV2_STORE)
}

static void pv_tile1(const float *P, int nk, const float *V, int Dp, float *O)
{
    v16f acc[MR];
    for (int r = 0; r < MR; r++) acc[r] = v16_load(O + (size_t)r * Dp);
    for (int j = 0; j < nk; j++) {
        v16f v0 = v16_load(V + 16 * j);
        for (int r = 0; r < MR; r++) acc[r] += P[r * KB + j] * v0;
    }
    for (int r = 0; r < MR; r++) v16_store(O + (size_t)r * Dp, acc[r]);
}

/* 8 columns left (D = 8 mod 16, other than 40). */
static void pv_tile8(const float *P, int nk, const float *V, int Dp, float *O)
{
    v8f acc[MR];
    for (int r = 0; r < MR; r++) acc[r] = v8_load(O + (size_t)r * Dp);
    for (int j = 0; j < nk; j++) {
        v8f v0 = v8_load(V + 16 * j);
        for (int r = 0; r < MR; r++) acc[r] += P[r * KB + j] * v0;
    }
    for (int r = 0; r < MR; r++) v8_store(O + (size_t)r * Dp, acc[r]);
}

/* O[MR][..Dv) += P[MR][0..nk) · V[0..nk)[..Dv); Dv = D rounded up to 8.
 * V is packed in column panels of 16, each [Tkp][16] contiguous (V points at
 * the block's first key of panel 0, panels ldp floats apart).  Column tiles
 * of 48 (3 vectors), except that 40 left is one 40-wide tile and 64 left two
 * of 32, then 32/16/8: 80 = 48 + 32, 160 = 3·48 + 16 → 48+48+32+32, 512 =
 * 10·48 + 32. */
static void pv_block(const float *P, int nk, const float *V, size_t ldp, int Dv, int Dp, float *O)
{
    int c = 0;
    while (c < Dv) {
        int left = Dv - c;
        const float *Vc = V + (size_t)(c / 16) * ldp;
        if (left == 40) { pv_tile40(P, nk, Vc, ldp, Dp, O + c); c += 40; }
        else if (left >= 48 && left != 64) { pv_tile3(P, nk, Vc, ldp, Dp, O + c); c += 48; }
        else if (left >= 32) { pv_tile2(P, nk, Vc, ldp, Dp, O + c); c += 32; }
        else if (left >= 16) { pv_tile1(P, nk, Vc, Dp, O + c); c += 16; }
        else { pv_tile8(P, nk, Vc, Dp, O + c); c += 8; }
    }
}

#else
/* Below AVX-512 (16 registers of 8 floats): the same kernels on register
 * tiles of 6 rows x 16 keys or columns, 12 accumulators, 2 loads and 6
 * broadcasts per 12 FMAs (MR = 12 rows: two tiles).  The 8 x 32 and 8 x 48
 * tiles above need 16–24 64-byte accumulators, i.e. 32–48 of these
 * registers: spilled, they ran attention at ~2 % of the FMA peak on an
 * AVX2-only CPU; 4-row tiles (8 accumulators, as many as two FMA pipes of
 * latency 4 keep busy, no slack) ran it at ~70 % (bench/README.md "AVX2:
 * our own kernels").  Every score and output is the same chain of FMAs in
 * the same order as above, so the bits do not depend on which kernel ran. */
#define R6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define R12(X) R6(X) X(6) X(7) X(8) X(9) X(10) X(11)
#if defined(__AVX__)
#define KEEP8_2(a, b) __asm__("" : "+x"(a), "+x"(b))
#else
#define KEEP8_2(a, b) ((void)0)
#endif

/* S[6][16] = Q[6][D] · kp[D][16] (kp rows 32 apart, S rows KB apart);
 * m[6] (when not NULL) takes the lane-wise maxima */
static inline void qk_6x16(const float *Q, int D, const float *kp, float *S, v8f *m)
{
#define Q6_DECL(r) v8f a##r##0 = {0}, a##r##1 = {0};
#define Q6_STEP(r) { float q = Q[r * D + d]; a##r##0 += q * k0; a##r##1 += q * k1; }
#define Q6_STORE(r) v8_store(S + r * KB, a##r##0); v8_store(S + r * KB + 8, a##r##1);
#define Q6_MAX(r) m[r] = v8_max(m[r], v8_max(a##r##0, a##r##1));
    R6(Q6_DECL)
    #pragma GCC unroll 4
    for (int d = 0; d < D; d++, kp += 32) {
        v8f k0 = v8_load(kp), k1 = v8_load(kp + 8);
        KEEP8_2(k0, k1);
        R6(Q6_STEP)
    }
    R6(Q6_STORE)
    if (m) { R6(Q6_MAX) }
}

/* S[MR][32·ns] as the AVX-512 qk_strips; bm[MR][16] gets each row's
 * lane-wise maxima in both halves */
static __attribute__((noinline)) void qk_strips(const float *Q, int D, const float *kp, int ns, float *S, float *bm)
{
    v8f m[MR];
    for (int r = 0; r < MR; r++) m[r] = v8_set1(-INFINITY);
    for (int s = 0; s < ns; s++, S += 32, kp += (size_t)32 * D)
        for (int r0 = 0; r0 < MR; r0 += 6)
            for (int h = 0; h < 32; h += 16)
                qk_6x16(Q + (size_t)r0 * D, D, kp + h, S + (size_t)r0 * KB + h, m + r0);
    if (bm)
        for (int r = 0; r < MR; r++) { v8_store(bm + 16 * r, m[r]); v8_store(bm + 16 * r + 8, m[r]); }
}

static __attribute__((noinline)) void qk_tile16(const float *Q, int D, const float *kp, float *S)
{
    for (int r0 = 0; r0 < MR; r0 += 6) qk_6x16(Q + (size_t)r0 * D, D, kp, S + (size_t)r0 * KB, NULL);
}

/* O[6][16] += P[6][0..nk) · V[0..nk)[16] (V a panel, rows 16 apart) */
static inline void pv_6x16(const float *P, int nk, const float *V, int Dp, float *O)
{
#define P6_DECL(r) v8f c##r##0 = v8_load(O + r * Dp), c##r##1 = v8_load(O + r * Dp + 8);
#define P6_STEP(r) { float p = P[r * KB + j]; c##r##0 += p * v0; c##r##1 += p * v1; }
#define P6_STORE(r) v8_store(O + r * Dp, c##r##0); v8_store(O + r * Dp + 8, c##r##1);
    R6(P6_DECL)
    #pragma GCC unroll 4
    for (int j = 0; j < nk; j++) {
        v8f v0 = v8_load(V + 16 * j), v1 = v8_load(V + 16 * j + 8);
        KEEP8_2(v0, v1);
        R6(P6_STEP)
    }
    R6(P6_STORE)
}

/* O[MR][8] += P · V[..][8] (the last 8 columns when D = 8 mod 16) */
static inline void pv_12x8(const float *P, int nk, const float *V, int Dp, float *O)
{
#define P12_DECL(r) v8f c##r = v8_load(O + r * Dp);
#define P12_STEP(r) c##r += P[r * KB + j] * v0;
#define P12_STORE(r) v8_store(O + r * Dp, c##r);
    R12(P12_DECL)
    for (int j = 0; j < nk; j++) {
        v8f v0 = v8_load(V + 16 * j);
        R12(P12_STEP)
    }
    R12(P12_STORE)
}

/* O[MR][..Dv) += P[MR][0..nk) · V (panels of 16 columns, ldp apart) */
static __attribute__((noinline)) void pv_block(const float *P, int nk, const float *V, size_t ldp, int Dv, int Dp,
                                               float *O)
{
    for (int c = 0; c < Dv; c += 16) {
        const float *Vc = V + (size_t)(c / 16) * ldp;
        if (Dv - c >= 16)
            for (int r0 = 0; r0 < MR; r0 += 6) pv_6x16(P + (size_t)r0 * KB, nk, Vc, Dp, O + (size_t)r0 * Dp + c);
        else
            pv_12x8(P, nk, Vc, Dp, O + c);
    }
}
#endif

/* the softmax's vectors: 16 lanes with AVX-512, else 8 (one register) */
#if defined(__AVX512F__)
#define SW 16
#define SW_LANES {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
typedef v16f swf;
typedef v16i swi;
#define sw_load v16_load
#define sw_store v16_store
#define sw_set1 v16_set1
#define sw_max v16_max
#define sw_sel v16_sel
#define sw_hmax v16_hmax
#define sw_hsum v16_hsum
#define sw_exp2_neg v16_exp2_neg
#else
#define SW 8
#define SW_LANES {0, 1, 2, 3, 4, 5, 6, 7}
typedef v8f swf;
typedef v8i swi;
#define sw_load v8_load
#define sw_store v8_store
#define sw_set1 v8_set1
#define sw_max v8_max
#define sw_sel v8_sel
#define sw_hmax v8_hmax
#define sw_hsum v8_hsum
#define sw_exp2_neg v8_exp2_neg
#endif

/* Softmax step of a group of MR rows of the block's scores S (rows KB
 * apart, nk each; lim[i] of row i visible, the first nfull of whose maxima
 * qk_strips folded into BM[i][16]): per row m' = max(m, rowmax), s =
 * 2^(s-m') (masked keys 0), l = l·2^(m-m') + Σ s, O row *= 2^(m-m') when the
 * maximum moved (scores in log2 units: q is scaled by scale·log2(e)).  The
 * maxima first, then the exponentials two rows at a time: the 2^t chain is
 * ~40 cycles deep, and one row's 64 vectors then its sum left the pipeline
 * half empty at every row's end (bench/README.md "AVX2, round 4").  Each
 * row's sum is the same additions in the same order either way. */
static void softmax_rows(float *S, int nk, const int *lim, int nfull, const float *BM, float *mx, float *l, float *O,
                         int Dp)
{
    const swi lane = SW_LANES;
    const swf ninf = sw_set1(-INFINITY);
    float nm[MR], corr[MR];
    swf acc[MR];
    int done[MR];   /* keys whose 2^t is taken; -1: nothing visible in the row */
    for (int i = 0; i < MR; i++) {
        float *s = S + (size_t)i * KB;
        int j = nfull < lim[i] ? nfull : lim[i];
        swf vm = j > 0 ? sw_load(BM + 16 * i) : ninf;   /* (below AVX-512 BM's halves are equal) */
        for (; j + SW <= lim[i]; j += SW) vm = sw_max(vm, sw_load(s + j));
        /* the last partial vector: written by the QK strip, lanes past lim masked */
        if (j < lim[i]) vm = sw_max(vm, sw_sel(lane < lim[i] - j, sw_load(s + j), ninf));
        float bm = sw_hmax(vm);
        nm[i] = bm > mx[i] ? bm : mx[i];
        acc[i] = sw_set1(0.f);
        done[i] = 0;
        if (lim[i] == 0 || nm[i] == -INFINITY) {   /* nothing visible yet in this row */
            memset(s, 0, sizeof(float) * nk);
            done[i] = -1;
            continue;
        }
        corr[i] = mx[i] == -INFINITY ? 0.f : nm[i] == mx[i] ? 1.f : exp2f(mx[i] - nm[i]);
        mx[i] = nm[i];
    }
    /* whole vectors: two rows at a time where both see the same keys */
    for (int i = 0; i + 1 < MR; i += 2) {
        if (done[i] < 0 || done[i + 1] < 0 || lim[i] != lim[i + 1]) continue;
        float *s = S + (size_t)i * KB, *t = s + KB;
        float m0 = nm[i], m1 = nm[i + 1];
        swf a0 = acc[i], a1 = acc[i + 1];
        int j = 0;
        for (; j + SW <= lim[i]; j += SW) {
            swf e0 = sw_exp2_neg(sw_load(s + j) - m0), e1 = sw_exp2_neg(sw_load(t + j) - m1);
            sw_store(s + j, e0);
            sw_store(t + j, e1);
            a0 += e0;
            a1 += e1;
        }
        acc[i] = a0;
        acc[i + 1] = a1;
        done[i] = done[i + 1] = j;
    }
    for (int i = 0; i < MR; i++) {
        if (done[i] < 0) continue;   /* nothing visible */
        float *s = S + (size_t)i * KB;
        int j = done[i];
        for (; j + SW <= lim[i]; j += SW) {
            swf e = sw_exp2_neg(sw_load(s + j) - nm[i]);
            sw_store(s + j, e);
            acc[i] += e;
        }
        /* the last vector may reach past lim (not past the strip the QK tile
         * wrote): those lanes are masked keys, set to 0 */
        if (j < lim[i]) {
            swf e = sw_sel(lane < lim[i] - j, sw_exp2_neg(sw_load(s + j) - nm[i]), sw_set1(0.f));
            sw_store(s + j, e);
            acc[i] += e;
            j += SW;
        }
        for (; j < nk; j++) s[j] = 0.f;   /* masked keys */
        l[i] = l[i] * corr[i] + sw_hsum(acc[i]);
        float *o = O + (size_t)i * Dp;
        if (corr[i] != 1.f)
            for (int d = 0; d < Dp; d += SW) sw_store(o + d, sw_load(o + d) * corr[i]);
    }
}

/* dst[0..n) = src[0..n) · f: 16 and 8 lanes at a time (the query rows'
 * scaling and the output's 1/l, once per row: scalar loops cost cross
 * attention's 77 keys ~10 % of their time) */
static void scale_row(float *dst, const float *src, int n, float f)
{
    int d = 0;
    for (; d + 16 <= n; d += 16) v16_store(dst + d, v16_load(src + d) * f);
    if (n - d >= 8) { v8_store(dst + d, v8_load(src + d) * f); d += 8; }
    for (; d < n; d++) dst[d] = src[d] * f;
}

/* One tile of up to TQ query rows (global rows i0..i0+m) against all keys.
 * Per key block, each group of MR rows runs its QK, softmax and P·V in turn
 * on one MR x KB score buffer, so the scores never leave L1 (the key strips
 * and value panels stream in from L2 in order). */
static void tile(const float *q, int ldq, float scale, int i0, int m, int Tk, int D, int Dp,
                 const float *Kp, const float *Vp, size_t Tkp, int causal, float *out, int ldo, float *scr)
{
    int mp = (m + MR - 1) / MR * MR;
    float *Q = scr, *S = Q + (size_t)TQ * D, *O = S + (size_t)MR * KB, *BM = O + (size_t)TQ * Dp;
    float mx[TQ], l[TQ];
    scale *= 1.44269504088896341f;   /* scores in log2 units: the softmax takes 2^(s - max) */
    for (int i = 0; i < mp; i++) {
        float *qr = Q + (size_t)i * D;
        if (i < m) scale_row(qr, q + (size_t)i * ldq, D, scale);
        else memset(qr, 0, sizeof(float) * D);
        mx[i] = -INFINITY;
        l[i] = 0.f;
    }
    memset(O, 0, sizeof(float) * (size_t)mp * Dp);
    int kend = causal ? (i0 + m < Tk ? i0 + m : Tk) : Tk;   /* keys any row can see */
    for (int k0 = 0; k0 < kend; k0 += KB) {
        int nk = kend - k0 < KB ? kend - k0 : KB;
        /* keys whose row maxima the QK tiles fold in: whole strips, not causal */
        int nfull = causal ? 0 : nk / 32 * 32;
        for (int r0 = 0; r0 < mp; r0 += MR) {
            /* the whole strips with their maxima, then the rest without */
            if (nfull) qk_strips(Q + (size_t)r0 * D, D, Kp + (size_t)k0 * D, nfull / 32, S, BM);
            for (int j = nfull; j < nk; j += 32) {
                const float *kp = Kp + (size_t)(k0 + j) * D;
                if (nk - j <= 16) qk_tile16(Q + (size_t)r0 * D, D, kp, S + j);
                else qk_strips(Q + (size_t)r0 * D, D, kp, 1, S + j, NULL);
            }
            int lim[MR];
            for (int i = 0; i < MR; i++) {
                lim[i] = causal ? i0 + r0 + i + 1 - k0 : nk;   /* visible keys of this row in the block */
                lim[i] = lim[i] > nk ? nk : lim[i] < 0 ? 0 : lim[i];
            }
            softmax_rows(S, nk, lim, nfull, BM, mx + r0, l + r0, O + (size_t)r0 * Dp, Dp);
            pv_block(S, nk, Vp + (size_t)k0 * 16, Tkp * 16, (D + 7) / 8 * 8, Dp, O + (size_t)r0 * Dp);
        }
    }
    for (int i = 0; i < m; i++) scale_row(out + (size_t)i * ldo, O + (size_t)i * Dp, D, 1.f / l[i]);
}

/* dst[0..16) = src[0..n), zeros after: one vector copy for a whole panel
 * row, half of one for D = 40's last 8 columns (a memcpy call per 16 floats
 * took ~1.7 % of level 0's time: bench/README.md "round 4") */
static void pack_v16(float *dst, const float *src, int n)
{
    if (n == 16) { v16_store(dst, v16_load(src)); return; }
    v16f z = {0};
    v16_store(dst, z);
    if (n == 8) v8_store(dst, v8_load(src));
    else if (n) memcpy(dst, src, sizeof(float) * n);
}

/* QKᵀ and PV as the kernels here run them: every query tile's rows rounded
 * up to the register tile (MR), QKᵀ over its visible keys rounded up to a
 * strip of 32 or 16 (qk_cols: cross-attention's 77 keys run as 80), PV over the
 * visible keys; causal query tiles stop at the last key their rows can see
 * (tile's kend). */
static double attention_exec_flops(int B, int Tq, int Tk, int H, int D, int causal)
{
    double qk = 0, pv = 0;
    for (int i0 = 0; i0 < Tq; i0 += TQ) {
        int m = Tq - i0 < TQ ? Tq - i0 : TQ, mp = (m + MR - 1) / MR * MR;
        int kend = causal && i0 + m < Tk ? i0 + m : Tk;
        qk += (double)mp * qk_cols(kend);
        pv += (double)mp * kend;
    }
    return 2.0 * B * H * D * (qk + pv);
}

static void attention(const ops_m *mo, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                      int B, int Tq, int Tk, int H, int D, float scale, int causal, float *out)
{
    SD_ASSERT(q && k && v && out && B >= 1 && Tq >= 1 && Tk >= 1 && H >= 1 && D >= 1);
    SD_ASSERT(ldq >= H * D && ldk >= H * D && ldv >= H * D && (!causal || Tq == Tk));
    ops_ctx *c = mo->ctx;
    if (ops_faulted(c)) return;   /* out of memory earlier in this forward */
    double model = 4.0 * B * H * Tq * Tk * D;
    PROF_SHAPE("attention %dx%dx%d x %d keys, D %d%s", B, H, Tq, Tk, D, causal ? " causal" : "");
    if (!causal && mo->prec != OPS_FP32 && ops_attention_amx_ready()) {
        ops_flops_add(PROF_ATTN, model, model);
        ops_attention_amx(c, q, ldq, k, ldk, v, ldv, B, Tq, Tk, H, D, scale, out);
        return;
    }
    ops_flops_add(PROF_ATTN, model, attention_exec_flops(B, Tq, Tk, H, D, causal));
    int HD = H * D, Dp = (D + 15) / 16 * 16, ntiles = (Tq + TQ - 1) / TQ, BH = B * H;
    size_t Tkp = ((size_t)Tk + 31) / 32 * 32, kpn = (size_t)D * Tkp, vpn = Tkp * Dp;
    float *Kall = ops_grow(c, &t_kt, &t_nkt, sizeof(float) * kpn * BH);
    float *Vall = ops_grow(c, &t_vp, &t_nvp, sizeof(float) * vpn * BH);
    if (!Kall || !Vall) return;   /* out of memory: the ops fault is set */
    size_t scr_floats = (size_t)TQ * D + (size_t)MR * KB + (size_t)TQ * Dp + (size_t)MR * 16;
    long nstrips = (long)(Tkp / 32);
    double w0 = ops_prof_on ? ops_prof_now() : 0, busy = 0;   /* SD_PROFILE's thread account */
    int team = 1;
    #pragma omp parallel reduction(+ : busy)
    {
        double c0 = ops_prof_on ? ops_prof_cpu() : 0;
        if (omp_get_thread_num() == 0) team = omp_get_num_threads();
        /* pack every (batch, head): K in strips of 32 keys, Kp[j/32][d][j%32],
         * V in panels of 16 columns, Vp[d/16][j][d%16]; zero past Tk and D.
         * Contiguous strips/panels: power-of-two strides between the rows a
         * kernel reads would map them all to one cache set.  A task is one
         * strip of one image, all heads: each key row is read whole, in
         * order (a head's slice of every row in turn missed the caches:
         * bench/README.md "round 4"). */
        #pragma omp for schedule(static) nowait
        for (long t = 0; t < (long)B * nstrips; t++) {
            int b = (int)(t / nstrips);
            size_t j0 = (size_t)(t % nstrips) * 32;
            for (size_t j = j0; j < j0 + 32; j++) {
                int in = j < (size_t)Tk;   /* else a padding key: zeros */
                const float *kr = k + ((size_t)b * Tk + (in ? j : 0)) * ldk;
                const float *vr = v + ((size_t)b * Tk + (in ? j : 0)) * ldv;
                for (int h = 0; h < H; h++) {
                    float *ks = Kall + (size_t)(b * H + h) * kpn + j0 * D, *Vp = Vall + (size_t)(b * H + h) * vpn;
                    for (int d = 0; d < D; d++) ks[(size_t)d * 32 + (j - j0)] = in ? kr[h * D + d] : 0.f;
                    for (int p = 0; p < Dp / 16; p++)
                        pack_v16(Vp + (size_t)p * Tkp * 16 + j * 16, vr + h * D + p * 16,
                                 in ? (D - p * 16 < 16 ? D - p * 16 : 16) : 0);
                }
            }
        }
        /* the barriers are timed apart: a waiting thread spins, which counts as CPU time */
        if (ops_prof_on) busy += ops_prof_cpu() - c0;
        #pragma omp barrier
        c0 = ops_prof_on ? ops_prof_cpu() : 0;
        float *scr = ops_grow(c, &t_scr, &t_nscr, sizeof(float) * scr_floats);
        #pragma omp for schedule(dynamic, 1) nowait
        for (long t = 0; t < (long)BH * ntiles; t++) {
            if (!scr) continue;   /* this thread is out of memory: the ops fault is set */
            int bh = (int)(t / ntiles), b = bh / H, h = bh % H;
            int i0 = (int)(t % ntiles) * TQ, m = Tq - i0 < TQ ? Tq - i0 : TQ;
            tile(q + ((size_t)b * Tq + i0) * ldq + (size_t)h * D, ldq, scale, i0, m, Tk, D, Dp, Kall + bh * kpn,
                 Vall + bh * vpn, Tkp, causal, out + ((size_t)b * Tq + i0) * HD + (size_t)h * D, HD, scr);
        }
        if (ops_prof_on) busy += ops_prof_cpu() - c0;
    }
    if (ops_prof_on) ops_prof_team(PROF_ATTN, busy, ops_prof_now() - w0, team);
}

void op_attention(const ops_m *m, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                  int B, int Tq, int Tk, int H, int D, float scale, float *out)
{
    PROF_BEGIN;
    attention(m, q, ldq, k, ldk, v, ldv, B, Tq, Tk, H, D, scale, 0, out);
    PROF_END(PROF_ATTN);
}

void op_attention_causal(const ops_m *m, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                         int B, int T, int H, int D, float scale, float *out)
{
    PROF_BEGIN;
    attention(m, q, ldq, k, ldk, v, ldv, B, T, T, H, D, scale, 1, out);
    PROF_END(PROF_ATTN);
}
