/* ops_tile.h — internal to the ops layer: the fp32 register tile of our own
 * linears and convs below AVX-512 (ops_gemm.c linear_dots, ops_conv.c
 * conv_own), where oneDNN has no brgemm kernels, and of our Winograd's
 * products on every CPU (ops_wino.c).
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
#define DK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)   /* X for each of the DR rows */
#define DW 16     /* outputs per register tile (a panel) */

/* Where a tile's last k block goes: y's rows (ldy apart), the first nrows
 * of the DR (the rest are a partial tile's repeats), a full panel of DW
 * outputs; + b (if b), then + y (accum), then max(0, ·) (relu) — oneDNN's
 * bias, sum and eltwise post-ops, in order, as dk_store does them.  nt:
 * with AVX-512, stores that bypass the caches (y 64-byte aligned, rows
 * too; the caller fences before y is read), for a big output read only
 * after the whole product is done (Winograd's M): no read of the lines
 * before they are written.  Only dk_tile4_to's full four panels stream;
 * the other tiles store as usual. */
typedef struct {
    float *y;
    size_t ldy;
    const float *b;
    int nrows, accum, relu, nt;
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
    DK_ROWS(DK_DECL)
    #pragma GCC unroll 4
    for (int k = 0; k < kc; k++, wp += DW) {
        v8f w0 = v8_load(wp), w1 = v8_load(wp + 8);
        DK_ROWS(DK_STEP)
    }
    if (o) {
        v8f b0 = o->b ? v8_load(o->b) : (v8f){0}, b1 = o->b ? v8_load(o->b + 8) : (v8f){0};
        DK_ROWS(DK_OUT)
    } else {
        DK_ROWS(DK_STORE)
    }
#undef DK_DECL
#undef DK_STEP
#undef DK_STORE
#undef DK_OUT
}

/* o (NULL: none) moved to panel p of its row: its y and b p·DW further, in *tmp. */
static inline const dk_out *dk_out_at(const dk_out *o, int p, dk_out *tmp)
{
    if (!o) return NULL;
    *tmp = *o;
    tmp->y += p * DW;
    if (tmp->b) tmp->b += p * DW;
    return tmp;
}

#if defined(__AVX512F__)
/* dk_tile_to for four panels at once (panel q's weights at wp + q·pstride,
 * its accumulators at acc + q·DW, its y and b at o's + q·DW) on 512-bit
 * registers: 24 accumulators, 4 loads and 6 broadcasts per 24 FMAs.  A
 * 256-bit FMA takes a whole issue slot of a 512-bit pipe (Zen 5), so the
 * 8-wide tile above runs at half the FMA loop there.  Each output is the
 * same FMA chain over k as in dk_tile_to: the same bits. */
static inline __attribute__((always_inline)) void dk_tile4_to(const float *const xr[DR], const float *wp,
                                                             size_t pstride, int kc, float *acc, int lda, int first,
                                                             const dk_out *o)
{
    const float *x0 = xr[0], *x1 = xr[1], *x2 = xr[2], *x3 = xr[3], *x4 = xr[4], *x5 = xr[5];
    const float *wa = wp, *wb = wp + pstride, *wc = wp + 2 * pstride, *wd = wp + 3 * pstride;
#define DZ_LD(r, q) (first ? _mm512_setzero_ps() : _mm512_loadu_ps(acc + r * lda + q * DW))
#define DZ_DECL(r) __m512 c##r##0 = DZ_LD(r, 0), c##r##1 = DZ_LD(r, 1), c##r##2 = DZ_LD(r, 2), c##r##3 = DZ_LD(r, 3);
#define DZ_STEP(r) { __m512 xb = _mm512_set1_ps(x##r[k]); c##r##0 = _mm512_fmadd_ps(xb, w0, c##r##0); \
                     c##r##1 = _mm512_fmadd_ps(xb, w1, c##r##1); c##r##2 = _mm512_fmadd_ps(xb, w2, c##r##2); \
                     c##r##3 = _mm512_fmadd_ps(xb, w3, c##r##3); }
#define DZ_STORE(r) _mm512_storeu_ps(acc + r * lda, c##r##0); _mm512_storeu_ps(acc + r * lda + DW, c##r##1); \
                    _mm512_storeu_ps(acc + r * lda + 2 * DW, c##r##2); _mm512_storeu_ps(acc + r * lda + 3 * DW, c##r##3);
#define DZ_PUT(r, q) { __m512 v = c##r##q; \
                       if (o->b) v = _mm512_add_ps(v, _mm512_loadu_ps(o->b + q * DW)); \
                       if (o->accum) v = _mm512_add_ps(_mm512_loadu_ps(yr + q * DW), v); \
                       if (o->relu) v = _mm512_max_ps(_mm512_setzero_ps(), v); \
                       if (o->nt) _mm512_stream_ps(yr + q * DW, v); else _mm512_storeu_ps(yr + q * DW, v); }
#define DZ_OUT(r) if (r < o->nrows) { float *yr = o->y + r * o->ldy; DZ_PUT(r, 0) DZ_PUT(r, 1) DZ_PUT(r, 2) DZ_PUT(r, 3) }
    DK_ROWS(DZ_DECL)
    for (int k = 0; k < kc; k++) {
        __m512 w0 = _mm512_loadu_ps(wa + (size_t)k * DW), w1 = _mm512_loadu_ps(wb + (size_t)k * DW);
        __m512 w2 = _mm512_loadu_ps(wc + (size_t)k * DW), w3 = _mm512_loadu_ps(wd + (size_t)k * DW);
        DK_ROWS(DZ_STEP)
    }
    if (o) {
        DK_ROWS(DZ_OUT)
    } else {
        DK_ROWS(DZ_STORE)
    }
#undef DZ_LD
#undef DZ_DECL
#undef DZ_STEP
#undef DZ_STORE
#undef DZ_PUT
#undef DZ_OUT
}
#endif

/* One row tile across np panels of a work item (panel p's weights at
 * wp + p·pstride, its accumulators at acc + p·DW): for a last k block (o
 * not NULL, its y and b at panel 0) the full panels, p·DW + DW <= nj, go
 * straight to o's rows; the rest wait in acc (dk_store takes a partial
 * last panel).  With AVX-512, four full panels at a time on dk_tile4_to. */
static inline void dk_panels(const float *const xr[DR], const float *wp, size_t pstride, int np, int nj, int kc,
                             float *acc, int lda, int first, const dk_out *o)
{
    dk_out op;
    int p = 0;
#if defined(__AVX512F__)
    for (; p + 4 <= np && (!o || (p + 4) * DW <= nj); p += 4)
        dk_tile4_to(xr, wp + p * pstride, pstride, kc, acc + p * DW, lda, first, dk_out_at(o, p, &op));
#endif
    for (; p < np; p++)
        dk_tile_to(xr, wp + p * pstride, kc, acc + p * DW, lda, first,
                   (p + 1) * DW <= nj ? dk_out_at(o, p, &op) : NULL);   /* a partial panel waits in acc */
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
