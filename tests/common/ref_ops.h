/* ref_ops.h — plain double-precision loops that the op tests compare the
 * engine's kernels with (tests/unit/test_ops.c, test_bf16.c), and the
 * seeded test data they run on. */
#ifndef SD_TEST_REF_OPS_H
#define SD_TEST_REF_OPS_H

#include <stddef.h>

/* softmax(q·kᵀ·scale)·v per (batch, head), optionally causal; q[B,Tq,ldq],
 * k/v[B,Tk,ldk/ldv] with head h at h*D; out[B,Tq,H*D] packed. */
void ref_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                   int B, int Tq, int Tk, int H, int D, float scale, int causal, float *out);

/* n floats in [-0.5, 0.5) from a linear congruential stream started at
 * seed (the same seed, the same floats); malloc'd. */
float *ref_rand(size_t n, unsigned seed);

#endif
