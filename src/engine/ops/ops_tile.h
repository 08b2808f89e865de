/* ops_tile.h — internal to the ops layer: the fp32 register tile of our own
 * linears and convs below AVX-512 (ops_gemm.c linear_dots, ops_conv.c
 * conv_own), where oneDNN has no brgemm kernels.
 *
 * acc[DR][DW] = (first ? 0 : acc) + Σ_k x_r[k] · wp[k][0..DW) for the DR
 * rows x_r (any addresses: rows of a matrix, or the input pixels under a
 * conv's tap) and a panel of DW outputs packed as wp[k][DW].  Every output
 * is one chain of FMAs over k in order, so its bits do not depend on the
 * rows beside it in the tile, or on how the caller cuts k into blocks (the
 * accumulators wait in acc between blocks: a store and a load are exact).
 * 12 accumulators, 2 loads and 6 broadcasts per 12 FMAs in 16 registers;
 * unrolled by 4: 77 -> 87-90 GFLOP/s a thread in L1 on a Zen 3, whose FMA
 * loop gives ~95.  A tile's last k block can go straight to the output
 * (dk_tile_to), with the post-ops on the registers. */
#ifndef SD_OPS_TILE_H
#define SD_OPS_TILE_H

#include "ops_vec.h"

#define DR 6      /* rows per register tile */
#define DW 16     /* outputs per register tile (a panel) */

/* Where a tile's last k block goes: y's rows (ldy apart), the first nrows
 * of the DR (the rest are a partial tile's repeats), a full panel of DW
 * outputs; + b (if b), then + y (accum), then max(0, ·) (relu) — oneDNN's
 * bias, sum and eltwise post-ops, in order, as dk_store does them. */
typedef struct {
    float *y;
    size_t ldy;
    const float *b;
    int nrows, accum, relu;
} dk_out;

static inline __attribute__((always_inline)) void dk_tile_to(const float *const xr[DR], const float *wp, int kc,
                                                            float *acc, int lda, int first, const dk_out *o)
{
    const float *x0 = xr[0], *x1 = xr[1], *x2 = xr[2], *x3 = xr[3], *x4 = xr[4], *x5 = xr[5];
#define DK_DECL(r) v8f c##r##0 = first ? (v8f){0} : v8_load(acc + r * lda), \
                       c##r##1 = first ? (v8f){0} : v8_load(acc + r * lda + 8);
#define DK_STEP(r) { v8f xb = v8_set1(x##r[k]); c##r##0 = v8_fma(xb, w0, c##r##0); \
                     c##r##1 = v8_fma(xb, w1, c##r##1); }
#define DK_STORE(r) v8_store(acc + r * lda, c##r##0); v8_store(acc + r * lda + 8, c##r##1);
#define DK_OUT(r) if (r < o->nrows) { float *yr = o->y + r * o->ldy; \
                      if (o->b) { c##r##0 += b0; c##r##1 += b1; } \
                      if (o->accum) { c##r##0 = v8_load(yr) + c##r##0; c##r##1 = v8_load(yr + 8) + c##r##1; } \
                      if (o->relu) { c##r##0 = v8_max((v8f){0}, c##r##0); c##r##1 = v8_max((v8f){0}, c##r##1); } \
                      v8_store(yr, c##r##0); v8_store(yr + 8, c##r##1); }
    DK_DECL(0) DK_DECL(1) DK_DECL(2) DK_DECL(3) DK_DECL(4) DK_DECL(5)
    #pragma GCC unroll 4
    for (int k = 0; k < kc; k++, wp += DW) {
        v8f w0 = v8_load(wp), w1 = v8_load(wp + 8);
        DK_STEP(0) DK_STEP(1) DK_STEP(2) DK_STEP(3) DK_STEP(4) DK_STEP(5)
    }
    if (o) {
        v8f b0 = o->b ? v8_load(o->b) : (v8f){0}, b1 = o->b ? v8_load(o->b + 8) : (v8f){0};
        DK_OUT(0) DK_OUT(1) DK_OUT(2) DK_OUT(3) DK_OUT(4) DK_OUT(5)
    } else {
        DK_STORE(0) DK_STORE(1) DK_STORE(2) DK_STORE(3) DK_STORE(4) DK_STORE(5)
    }
#undef DK_DECL
#undef DK_STEP
#undef DK_STORE
#undef DK_OUT
}

static inline void dk_tile(const float *const xr[DR], const float *wp, int kc, float *acc, int lda, int first)
{
    dk_tile_to(xr, wp, kc, acc, lda, first, NULL);
}

/* One row tile across np panels of a work item (panel p's weights at
 * wp + p·pstride, its accumulators at acc + p·DW): for a last k block (o
 * not NULL, its y and b at panel 0) the full panels, p·DW + DW <= nj, go
 * straight to o's rows; the rest wait in acc (dk_store takes a partial
 * last panel). */
static inline void dk_panels(const float *const xr[DR], const float *wp, size_t pstride, int np, int nj, int kc,
                             float *acc, int lda, int first, const dk_out *o)
{
    for (int p = 0; p < np; p++) {
        const float *wk = wp + p * pstride;
        if (o && (p + 1) * DW <= nj) {
            dk_out op = *o;
            op.y += p * DW;
            if (op.b) op.b += p * DW;
            dk_tile_to(xr, wk, kc, acc + p * DW, lda, first, &op);
        } else
            dk_tile(xr, wk, kc, acc + p * DW, lda, first);
    }
}

/* y[i][u] (rows ldy apart) for i < nrows, u < ncols from the finished
 * accumulators acc (rows lda apart): + b[u] (if b), then + y (accum), then
 * max(·, 0) (relu) — oneDNN's bias, sum and eltwise post-ops, in order */
static inline void dk_store(float *y, size_t ldy, const float *acc, int lda, int nrows, int ncols, const float *b,
                            int accum, int relu)
{
    for (int i = 0; i < nrows; i++, y += ldy, acc += lda)
        for (int u = 0; u < ncols; u++) {
            float v = b ? acc[u] + b[u] : acc[u];
            if (accum) v = y[u] + v;
            y[u] = relu && v < 0.f ? 0.f : v;
        }
}

/* Work item it of nrb row blocks x ncb output blocks: its row block *rb and
 * output block *cb.  Row blocks outer when there are at least as many rows
 * as outputs (rows_first): the thread keeps a block of x in L2 while the
 * weight panels stream in, one sequential stream each; else output blocks
 * outer, the panels kept while the rows stream (6 strided streams a tile).
 * On a Zen 3 the wrong order cost 8-20 % on SD 1.5's 8192-row linears and
 * 512-row feed-forwards alike.  The order never changes a result's bits. */
static inline void dk_item(long it, long nrb, long ncb, int rows_first, long *rb, long *cb)
{
    *rb = rows_first ? it / ncb : it % nrb;
    *cb = rows_first ? it % ncb : it / nrb;
}

/* The FLOPs the tile executes for rows x outs outputs of k products each:
 * rows rounded up to DR, outputs to DW (the padding is computed too). */
static inline double dk_exec_flops(long rows, int outs, long k)
{
    return 2.0 * ((rows + DR - 1) / DR * DR) * ((outs + DW - 1) / DW * DW) * (double)k;
}

#endif
