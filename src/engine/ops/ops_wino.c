/* ops_wino.c — our own fp32 Winograd F(4x4, 3x3), on every CPU
 * (ops_wino.h): the weight transform, and the conv as three passes — the
 * input tiles transformed into V[36][rows][IC], 36 products V·U on the
 * register tile of ops_tile.h into M[36][rows][OC], and M transformed back
 * into the output with the post-ops.  The transforms are Toom-Cook's (as in
 * Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016)
 * for the points 0, 1, -1, 2, -1/2 and ∞, which Barabasz et al. ("Error
 * analysis and improving the accuracy of Winograd convolution", 2020) found
 * the most accurate for F(4, 3): against a double direct conv over 320
 * channels, half the largest error of 0, ±1, ±2 (4.7e-6 against 9.5e-6 of
 * the largest output) and 0.7x its rms.  Rows of Bᵀ and columns of Aᵀ are
 * scaled by powers of 2 (exact) into small integers, G's rows by the
 * inverse.  With 36 products per 16 outputs instead of 144 it does a
 * quarter of the direct conv's multiplications.  The passes are
 * bound by memory more than by FMAs (V, M and the weights of a 64x64 conv
 * of 320 channels are 12-15 MB each): with AVX-512, V and M are written past
 * the caches (a Zen 5: 8.9 -> 6.7 ms an image on SD 1.5's 64x64 convs). */
#include "ops_wino.h"
#include "ops_dnnl.h"
#include "ops_prof.h"
#include "ops_tile.h"

#include <string.h>

#define WCB 64    /* outputs per work item (4 panels) */
#define WRB 96    /* tiles per work item (16 register tiles) */
#define WKC 256   /* input channels per block */
/* V and M of a chunk of tiles at most this many floats (32 MB): the
 * buffers stay small next to the images, and whole chunks run at the
 * speed of one (the tiles are independent: the same bits either way) */
#define WINO_CHUNK (1L << 23)

static _Thread_local void *t_v, *t_m, *t_acc, *t_zero;
static _Thread_local size_t t_nv, t_nm, t_nacc, t_nzero;

/* The transforms' vectors: one 512-bit register with AVX-512, else 8
 * lanes (the same arithmetic per lane either way: the same bits).  n, the
 * lanes used, is WV but for a last half vector (8·odd channels, AVX-512).
 * wv_st_nt: with AVX-512, V's stores bypass the caches (as M's, dk_out.nt):
 * V is read only once the whole chunk is transformed, and a cached store
 * first reads each line in.  The stores are fenced before another thread
 * reads them (WINO_FENCE). */
#if defined(__AVX512F__)
typedef v16f wv;
#define WV 16
static inline wv wv_ld(const float *p, int n) { return n == WV ? v16_load(p) : (wv)_mm512_maskz_loadu_ps(0xFF, p); }
static inline void wv_st(float *p, wv v, int n)
{
    if (n == WV) v16_store(p, v);
    else _mm512_mask_storeu_ps(p, 0xFF, (__m512)v);
}
static inline void wv_st_nt(float *p, wv v, int n)
{
    if (n == WV && !((uintptr_t)p & 63)) _mm512_stream_ps(p, (__m512)v);
    else wv_st(p, v, n);
}
#define wv_set1 v16_set1
#define wv_max v16_max
#define WINO_FENCE() _mm_sfence()
#else
typedef v8f wv;
#define WV 8
static inline wv wv_ld(const float *p, int n) { (void)n; return v8_load(p); }
static inline void wv_st(float *p, wv v, int n) { (void)n; v8_store(p, v); }
#define wv_st_nt wv_st
#define wv_set1 v8_set1
#define wv_max v8_max
#define WINO_FENCE() ((void)0)
#endif

int ops_wino_fits(int IC, int OC) { return IC % 8 == 0 && OC % 8 == 0; }

static int round16(int n) { return (n + DW - 1) / DW * DW; }

/* G (6x3): the weight transform's rows, one per point (0, 1, -1, 2, -1/2,
 * ∞): [1, a, a²] / Π(a - a_j) over the other finite points, divided by
 * the power of 2 its row of Bᵀ is scaled by (2, 2, 2, 2, 1, 2) and, for
 * -1/2, by its column of Aᵀ's (-8). */
static const double G[OWINO_A][3] = {
    {1.0 / 2, 0, 0},
    {-1.0 / 6, -1.0 / 6, -1.0 / 6},
    {1.0 / 6, -1.0 / 6, 1.0 / 6},
    {1.0 / 30, 1.0 / 15, 2.0 / 15},
    {2.0 / 15, -1.0 / 15, 1.0 / 30},
    {0, 0, 1.0 / 2},
};

void ops_wino_weights(const float *wp, int IC, int OC, float *U)
{
    int np = round16(OC) / DW;
    #pragma omp parallel for schedule(static)
    for (long pi = 0; pi < (long)np * IC; pi++) {
        int p = (int)(pi / IC), ic = (int)(pi % IC);
        for (int lane = 0; lane < DW; lane++) {
            double g[3][3], t[OWINO_A][3];
            for (int tap = 0; tap < 9; tap++) g[tap / 3][tap % 3] = wp[(((size_t)p * 9 + tap) * IC + ic) * DW + lane];
            for (int i = 0; i < OWINO_A; i++)
                for (int kw = 0; kw < 3; kw++) t[i][kw] = G[i][0] * g[0][kw] + G[i][1] * g[1][kw] + G[i][2] * g[2][kw];
            for (int i = 0; i < OWINO_A; i++)
                for (int j = 0; j < OWINO_A; j++) {
                    double u = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
                    U[((((size_t)(i * OWINO_A + j)) * np + p) * IC + ic) * DW + lane] = (float)u;
                }
        }
    }
}

/* Bᵀ applied to a column of six: the input transform's 1-D pass.  Bᵀ's
 * rows (the coefficients of Π(x - a_j) / (x - a_i), and of Π(x - a_j) for
 * ∞), scaled: [2 3 -4 -3 2 0], [0 -2 -5 -1 2 0], [0 2 1 -5 2 0],
 * [0 -1 -2 1 2 0], [0 2 -1 -2 1 0], [0 2 3 -4 -3 2]. */
static inline void bt6(const wv d[OWINO_A], wv t[OWINO_A])
{
    wv two = wv_set1(2.f), three = wv_set1(3.f), four = wv_set1(4.f), five = wv_set1(5.f);
    wv d13 = d[1] - d[3];
    t[0] = (two * (d[0] + d[4]) + three * d13) - four * d[2];
    t[1] = (two * (d[4] - d[1]) - five * d[2]) - d[3];
    t[2] = (two * (d[1] + d[4]) + d[2]) - five * d[3];
    t[3] = two * (d[4] - d[2]) - d13;
    t[4] = two * d13 + (d[4] - d[2]);
    t[5] = (two * (d[1] + d[5]) + three * (d[2] - d[4])) - four * d[3];
}

/* Aᵀ applied to a column of six: the output transform's 1-D pass.  Aᵀ's
 * columns are the powers a⁰..a³ of each point (∞: [0 0 0 1]); -1/2's
 * scaled by -8: rows [1 1 1 1 -8 0], [0 1 -1 2 4 0], [0 1 1 4 -2 0],
 * [0 1 -1 8 1 1]. */
static inline void at6(const wv m[OWINO_A], wv o[OWINO_M])
{
    wv two = wv_set1(2.f), four = wv_set1(4.f), eight = wv_set1(8.f);
    wv s12 = m[1] + m[2], d12 = m[1] - m[2];
    o[0] = (m[0] + s12) + (m[3] - eight * m[4]);
    o[1] = d12 + (two * m[3] + four * m[4]);
    o[2] = s12 + (four * m[3] - two * m[4]);
    o[3] = (d12 + (eight * m[3] + m[4])) + m[5];
}

/* Tile t's input, every channel, into row r of V[p][R][·]; zero: IC zeros
 * (a tile's points past the padded image read them: no test per load). */
static void input_tile(const float *xp, int Hp, int Wp, int IC, int TH, int TW, long t, long r, long R,
                       const float *zero, float *V)
{
    long per = (long)TH * TW;
    int n = (int)(t / per), ty = (int)(t % per / TW), tx = (int)(t % TW);
    const float *pt[OWINO_A][OWINO_A];
    for (int i = 0; i < OWINO_A; i++)
        for (int j = 0; j < OWINO_A; j++) {
            int h = ty * OWINO_M + i, w = tx * OWINO_M + j;
            pt[i][j] = h < Hp && w < Wp ? xp + (((size_t)n * Hp + h) * Wp + w) * IC : zero;
        }
    for (int c = 0; c < IC; c += WV) {
        int nl = IC - c < WV ? IC - c : WV;
        wv d[OWINO_A][OWINO_A], t2[OWINO_A][OWINO_A];
        for (int i = 0; i < OWINO_A; i++)
            for (int j = 0; j < OWINO_A; j++) d[i][j] = wv_ld(pt[i][j] + c, nl);
        for (int j = 0; j < OWINO_A; j++) {   /* the columns: Bᵀ d */
            wv col[OWINO_A], out[OWINO_A];
            for (int i = 0; i < OWINO_A; i++) col[i] = d[i][j];
            bt6(col, out);
            for (int i = 0; i < OWINO_A; i++) t2[i][j] = out[i];
        }
        for (int i = 0; i < OWINO_A; i++) {   /* the rows: (Bᵀ d) B */
            wv out[OWINO_A];
            bt6(t2[i], out);
            for (int j = 0; j < OWINO_A; j++) wv_st_nt(V + ((size_t)(i * OWINO_A + j) * R + r) * IC + c, out[j], nl);
        }
    }
    WINO_FENCE();
}

/* Tile t's outputs from row r of M[p][R][·]: Aᵀ m A, + b, + y (accum), relu. */
static void output_tile(const float *M, long R, int OCp, int OC, int OH, int OW, int TH, int TW, long t, long r,
                        const float *b, float *y, int accum, int relu)
{
    long per = (long)TH * TW;
    int n = (int)(t / per), ty = (int)(t % per / TW), tx = (int)(t % TW);
    int nh = OH - ty * OWINO_M < OWINO_M ? OH - ty * OWINO_M : OWINO_M;
    int nw = OW - tx * OWINO_M < OWINO_M ? OW - tx * OWINO_M : OWINO_M;
    for (int c = 0; c < OC; c += WV) {
        int nl = OC - c < WV ? OC - c : WV;
        wv s[OWINO_M][OWINO_A];
        for (int j = 0; j < OWINO_A; j++) {   /* the columns: Aᵀ m */
            wv col[OWINO_A], out[OWINO_M];
            for (int i = 0; i < OWINO_A; i++) col[i] = wv_ld(M + ((size_t)(i * OWINO_A + j) * R + r) * OCp + c, nl);
            at6(col, out);
            for (int a = 0; a < OWINO_M; a++) s[a][j] = out[a];
        }
        wv bias = b ? wv_ld(b + c, nl) : (wv){0};
        for (int a = 0; a < nh; a++) {   /* the rows: (Aᵀ m) A */
            wv o[OWINO_M];
            at6(s[a], o);
            float *yr = y + (((size_t)n * OH + ty * OWINO_M + a) * OW + (size_t)tx * OWINO_M) * OC + c;
            for (int e = 0; e < nw; e++) {
                wv v = o[e];
                if (b) v += bias;
                if (accum) v = wv_ld(yr + (size_t)e * OC, nl) + v;
                if (relu) v = wv_max((wv){0}, v);
                wv_st(yr + (size_t)e * OC, v, nl);
            }
        }
    }
}

/* Tiles [r0, r0 + R) of the conv: V and M hold R tiles' products. */
static void wino_chunk(ops_ctx *c, const float *xp, int Hp, int Wp, int IC, int OH, int OW, int TH, int TW,
                       const float *U, int OC, const float *b, float *y, int accum, int relu, long r0, long R,
                       const float *zero, float *V, float *M)
{
    int OCp = round16(OC), np_all = OCp / DW;
    #pragma omp parallel for schedule(static)
    for (long r = 0; r < R; r++) input_tile(xp, Hp, Wp, IC, TH, TW, r0 + r, r, R, zero, V);
    int ncb = (OCp + WCB - 1) / WCB;
    long nrb = (R + WRB - 1) / WRB;
    #pragma omp parallel for schedule(static)
    for (long it = 0; it < OWINO_P * ncb * nrb; it++) {
        int p = (int)(it / (ncb * nrb));
        long rem = it % (ncb * nrb);
        int j0 = (int)(rem / nrb) * WCB;
        long q0 = (rem % nrb) * WRB;
        int nq = R - q0 < WRB ? (int)(R - q0) : WRB, nj = OCp - j0 < WCB ? OCp - j0 : WCB;
        int np = nj / DW, ntile = (nq + DR - 1) / DR;
        const float *Vp = V + (size_t)p * R * IC;
        const float *Up = U + ((size_t)p * np_all + j0 / DW) * IC * DW;
        float *Mp = M + (size_t)p * R * OCp;
        float *acc = ops_grow(c, &t_acc, &t_nacc, sizeof(float) * WRB * WCB);
        if (!acc) continue;   /* out of memory: the ops fault is set */
        for (int ic0 = 0; ic0 < IC; ic0 += WKC) {
            int kc = IC - ic0 < WKC ? IC - ic0 : WKC, last = ic0 + kc == IC;
            for (int t = 0; t < ntile; t++) {
                const float *xr[DR];
                for (int i = 0; i < DR; i++) {
                    int q = t * DR + i < nq ? t * DR + i : nq - 1;   /* a last partial tile repeats its last row */
                    xr[i] = Vp + (size_t)(q0 + q) * IC + ic0;
                }
                dk_out o = {Mp + (size_t)(q0 + t * DR) * OCp + j0, OCp, NULL, nq - t * DR < DR ? nq - t * DR : DR, 0, 0, 1};
                dk_panels(xr, Up + (size_t)ic0 * DW, (size_t)IC * DW, np, nj, kc, acc + (size_t)t * DR * WCB, WCB,
                          ic0 == 0, last ? &o : NULL);
            }
        }
        WINO_FENCE();   /* M's streamed stores (o.nt) */
    }
    if (ops_faulted(c)) return;
    #pragma omp parallel for schedule(static)
    for (long r = 0; r < R; r++) output_tile(M, R, OCp, OC, OH, OW, TH, TW, r0 + r, r, b, y, accum, relu);
}

void ops_wino_conv(ops_ctx *c, const float *xp, int N, int Hp, int Wp, int IC, int OH, int OW, const float *U, int OC,
                   const float *b, float *y, int accum, int relu)
{
    int TH = (OH + OWINO_M - 1) / OWINO_M, TW = (OW + OWINO_M - 1) / OWINO_M, OCp = round16(OC);
    long R = (long)N * TH * TW;
    /* tiles per chunk: V and M within WINO_CHUNK floats, whole row blocks,
     * at least 3 (fewer: U, read once a chunk, costs more than it saves) */
    long per = (long)OWINO_P * (IC + OCp), ch = WINO_CHUNK / per / WRB * WRB;
    if (ch < 3 * WRB) ch = 3 * WRB;
    if (ch > R) ch = R;
    float *V = ops_grow(c, &t_v, &t_nv, sizeof(float) * OWINO_P * (size_t)ch * IC);
    float *M = V ? ops_grow(c, &t_m, &t_nm, sizeof(float) * OWINO_P * (size_t)ch * OCp) : NULL;
    float *zero = M ? ops_grow(c, &t_zero, &t_nzero, sizeof(float) * (size_t)IC) : NULL;
    if (!zero) return;   /* out of memory: the ops fault is set */
    memset(zero, 0, sizeof(float) * (size_t)IC);
    ops_flops_add(PROF_CONV, 0, ops_conv_exec_flops(1, N, IC, OC, OH, OW, 3, 3));
    for (long r0 = 0; r0 < R && !ops_faulted(c); r0 += ch)
        wino_chunk(c, xp, Hp, Wp, IC, OH, OW, TH, TW, U, OC, b, y, accum, relu, r0, R - r0 < ch ? R - r0 : ch, zero,
                   V, M);
}
