/* tops.h — the ops context of a test or tool that calls ops directly
 * (src/engine/ops/ops.h): one per process, made on first use, with the
 * precision the test sets, and weight handles made per call. */
#ifndef SD_TOPS_H
#define SD_TOPS_H

#include <stddef.h>

#include "../../src/engine/ops/ops.h"

/* The test's context and precision (ops_default_precision() at first). */
ops_m *t_ops(void);
/* A new context of `threads` (as ops_ctx_new), replacing the test's: every
 * handle of the old one goes with it. */
void t_ops_init(int threads);
/* The precision the test's next direct op calls run at. */
void t_set_prec(int prec);
/* A new handle of the test's context for the n floats at w (no source:
 * they must stay valid until the handle is used for the last time).  Kept
 * until the context goes: a handle per call, as tests reuse buffers for new
 * values. */
ops_weight *t_w(const float *w, size_t n);
/* 1 when the fp32 linears and direct convs run on our own register tile
 * (src/engine/ops/ops_tile.h: below AVX-512 — an AVX2-only CPU, or
 * ONEDNN_MAX_CPU_ISA=AVX2 as tests/unit/test_ops_avx2.sh sets), 0 on
 * oneDNN's kernels.  Winograd is ours everywhere (ops_wino.c). */
int t_own_tile(void);

#endif
