/* lora_merge.c — W' = W + m·((up·(alpha/rank)) @ down) in fp32 (see lora.h,
 * step 3).
 *
 * The product is formed row by row of the output in blocks of columns: for
 * output row o and a block of columns, acc = Σ_r (up[o,r]·scale)·down[r,·]
 * in rank order, then W' = W + m·acc, each step rounded to fp32 as the
 * reference (torch) does it, so the result is the same for any thread
 * count and within one rounding of the diffusers goldens.  Rows run in
 * parallel (OpenMP) when the product is big enough to pay for the team;
 * the column loops are `omp simd` (gcc -O2 does not vectorise them alone),
 * which changes no rounding: every element is its own chain.
 * Must not: write anywhere but the caller's buffer. */
#include "lora.h"


/* Columns per block: the accumulator lives on the stack. */
#define MERGE_BLOCK 512
/* Below this many multiply-adds one thread does it. */
#define MERGE_PAR_MIN (1 << 18)

static void merge_row(const lora_module *mod, float m, const float *w, float *out, int64_t o)
{
    const int R = mod->rank;
    const int64_t in = mod->in;
    float us[LORA_MAX_RANK];
    for (int r = 0; r < R; r++) us[r] = mod->up[o * R + r] * mod->scale;
    for (int64_t j0 = 0; j0 < in; j0 += MERGE_BLOCK) {
        const int64_t nb = in - j0 < MERGE_BLOCK ? in - j0 : MERGE_BLOCK;
        float acc[MERGE_BLOCK];
        for (int64_t j = 0; j < nb; j++) acc[j] = 0.0f;
        for (int r = 0; r < R; r++) {
            const float u = us[r], *d = mod->down + (int64_t)r * in + j0;
#pragma omp simd
            for (int64_t j = 0; j < nb; j++) acc[j] += u * d[j];
        }
        const float *wr = w + o * in + j0;
        float *orow = out + o * in + j0;
#pragma omp simd
        for (int64_t j = 0; j < nb; j++) {
            const float delta = m * acc[j];
            orow[j] = wr[j] + delta;
        }
    }
}

void lora_merge_module(const lora_module *mod, float m, const float *w, float *out)
{
    const int64_t rows = mod->out;
    const int par = (double)rows * (double)mod->in * mod->rank >= MERGE_PAR_MIN;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t o = 0; o < rows; o++) merge_row(mod, m, w, out, o);
}
