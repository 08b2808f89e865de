/* lora_merge.c — W' = W + m·((up·(alpha/rank)) @ down) in fp32 (see lora.h,
 * step 3).
 *
 * For each output element, acc = Σ_r (up[o,r]·scale)·down[r,j] in rank
 * order, then W' = W + m·acc, each step rounded to fp32 as the reference
 * (torch) does it: the result is the same for any thread count and
 * blocking, and within one rounding of the diffusers goldens.  The work is
 * tiled as blocks of 8 rows × 64-column strips: a strip of down (rank × 64
 * floats) stays in L1 while every row of the block uses it, and two rows'
 * 64 accumulators each stay in eight vector registers over the rank loop
 * (the loop is bound by loads of down; two rows share each load).  Row
 * blocks run in parallel (OpenMP) when the product is big enough to pay
 * for the team.  Must not: write anywhere but the caller's buffer. */
#include "lora.h"

#include <string.h>

/* Rows per parallel block, columns per strip (4 vectors of 16). */
#define MERGE_ROWS 8
#define MERGE_STRIP 64
/* Below this many multiply-adds one thread does it. */
#define MERGE_PAR_MIN (1 << 18)

typedef float v16 __attribute__((vector_size(64)));

/* out[0..64) = w[0..64) + m·acc, four vectors. */
#define STRIP_FINISH(w, out, a0, a1, a2, a3)                                              \
    do {                                                                                  \
        v16 x0, x1, x2, x3;                                                               \
        memcpy(&x0, (w), 64), memcpy(&x1, (w) + 16, 64), memcpy(&x2, (w) + 32, 64);       \
        memcpy(&x3, (w) + 48, 64);                                                        \
        x0 += m * a0, x1 += m * a1, x2 += m * a2, x3 += m * a3;                           \
        memcpy((out), &x0, 64), memcpy((out) + 16, &x1, 64), memcpy((out) + 32, &x2, 64); \
        memcpy((out) + 48, &x3, 64);                                                      \
    } while (0)

/* Columns [j0, j0+64) of rows a and b (scaled up rows ua, ub; w/out point
 * at row a, row b is `in` further): eight accumulators in registers share
 * each load of down.  No v16 crosses a function boundary, so builds
 * without AVX-512 keep their ABI. */
static void strip64x2(const float *ua, const float *ub, const float *down, int R, int64_t in, float m,
                      const float *w, float *out, int64_t j0)
{
    v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0}, d0, d1, d2, d3;
    for (int r = 0; r < R; r++) {
        const float u = ua[r], v = ub[r], *d = down + (int64_t)r * in + j0;
        memcpy(&d0, d, 64), memcpy(&d1, d + 16, 64), memcpy(&d2, d + 32, 64), memcpy(&d3, d + 48, 64);
        a0 += u * d0, a1 += u * d1, a2 += u * d2, a3 += u * d3;
        b0 += v * d0, b1 += v * d1, b2 += v * d2, b3 += v * d3;
    }
    STRIP_FINISH(w + j0, out + j0, a0, a1, a2, a3);
    STRIP_FINISH(w + in + j0, out + in + j0, b0, b1, b2, b3);
}

/* The same for one row. */
static void strip64(const float *ua, const float *down, int R, int64_t in, float m, const float *w, float *out,
                    int64_t j0)
{
    v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, d0, d1, d2, d3;
    for (int r = 0; r < R; r++) {
        const float u = ua[r], *d = down + (int64_t)r * in + j0;
        memcpy(&d0, d, 64), memcpy(&d1, d + 16, 64), memcpy(&d2, d + 32, 64), memcpy(&d3, d + 48, 64);
        a0 += u * d0, a1 += u * d1, a2 += u * d2, a3 += u * d3;
    }
    STRIP_FINISH(w + j0, out + j0, a0, a1, a2, a3);
}

/* Columns [j0, in) of one row, one at a time (the same arithmetic). */
static void strip_tail(const float *ua, const float *down, int R, int64_t in, float m, const float *w, float *out,
                       int64_t j0)
{
    for (int64_t j = j0; j < in; j++) {
        float acc = 0.0f;
        for (int r = 0; r < R; r++) acc += ua[r] * down[(int64_t)r * in + j];
        out[j] = w[j] + m * acc;
    }
}

/* Rows [o0, o1) (at most MERGE_ROWS): up·scale once, then strip by strip,
 * two rows at a time. */
static void merge_rows(const lora_module *mod, float m, const float *w, float *out, int64_t o0, int64_t o1)
{
    const int R = mod->rank, n = (int)(o1 - o0);
    const int64_t in = mod->in, full = in - in % MERGE_STRIP;
    float us[MERGE_ROWS * LORA_MAX_RANK];
    for (int i = 0; i < n * R; i++) us[i] = mod->up[o0 * R + i] * mod->scale;
    for (int64_t j0 = 0; j0 < full; j0 += MERGE_STRIP) {
        int i = 0;
        for (; i + 1 < n; i += 2)
            strip64x2(us + i * R, us + (i + 1) * R, mod->down, R, in, m, w + (o0 + i) * in, out + (o0 + i) * in, j0);
        if (i < n) strip64(us + i * R, mod->down, R, in, m, w + (o0 + i) * in, out + (o0 + i) * in, j0);
    }
    for (int i = 0; full < in && i < n; i++)
        strip_tail(us + i * R, mod->down, R, in, m, w + (o0 + i) * in, out + (o0 + i) * in, full);
}

void lora_merge_module(const lora_module *mod, float m, const float *w, float *out)
{
    const int64_t rows = mod->out, blocks = (rows + MERGE_ROWS - 1) / MERGE_ROWS;
    const int par = (double)rows * (double)mod->in * mod->rank >= MERGE_PAR_MIN;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t o0 = b * MERGE_ROWS, o1 = o0 + MERGE_ROWS < rows ? o0 + MERGE_ROWS : rows;
        merge_rows(mod, m, w, out, o0, o1);
    }
}
