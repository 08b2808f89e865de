/* ops_dnnl.h — internal to the ops layer: the context's layout (struct
 * ops_ctx), the one oneDNN engine, a stream per calling thread, reorder
 * helpers, grow-only buffers, the weight handles' copies in the layouts
 * primitives ask for, and the bf16 input conversions (ops_weights.c); the
 * AMX attention's entry points.  Convolutions (ops_conv.c) and matmuls
 * (ops_gemm.c) share it.  Everything that can run out of memory takes the
 * context whose fault it sets. */
#ifndef SD_OPS_DNNL_H
#define SD_OPS_DNNL_H

#include "ops.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

struct conv_cache;   /* ops_conv.c */
struct mm_cache;     /* ops_gemm.c */

/* An engine's ops state (ops.h). */
struct ops_ctx {
    int threads;               /* team size */
    int wino;                  /* OPS_WINO_* */
    atomic_int fault;          /* out of memory since the last ops_take_fault */
    pthread_mutex_t lock;      /* the weight registry and every handle's copies */
    struct ops_weight *weights;   /* the registry: a list through ops_weight.next */
    struct conv_cache *conv;
    struct mm_cache *mm;
};
struct conv_cache *ops_conv_cache_new(void);
void ops_conv_cache_free(struct conv_cache *cc);
struct mm_cache *ops_mm_cache_new(void);
void ops_mm_cache_free(struct mm_cache *mc);

/* 0 on success.  dnnl_out_of_memory sets the ops fault (ops_take_fault in
 * ops.h) and returns -1; any other failure is a bug, never user input:
 * sd_panic (src/base/alloc.h). */
int ops_ck(ops_ctx *c, dnnl_status_t st, const char *what);
/* The ops fault: set when an op could not get memory; while it is set ops
 * skip their work (their outputs are then meaningless) and the pipeline
 * answers SD_ENOMEM. */
void ops_set_fault(ops_ctx *c);
int ops_faulted(const ops_ctx *c);
dnnl_engine_t ops_engine(void);
/* bf16x2 splits an input x into hi = bf16(x) and lo = bf16(x - hi) and
 * meets both with the same bf16 weights, one of two ways:
 *   OPS_SPLIT_COLS  each row [hi | lo] (2·cols) against the weights stacked
 *                   twice along their input dim: one product, f32 sums,
 *                   but twice the weight bytes;
 *   OPS_SPLIT_ROWS  rows [all hi; all lo] (2·rows) against the weights once,
 *                   the two output halves added after (ops_split_combine):
 *                   for layers with large weights and few rows. */
enum { OPS_SPLIT_NONE = 0, OPS_SPLIT_COLS = 1, OPS_SPLIT_ROWS = 2 };
/* x[rows][cols] as bf16 in the calling thread's one conversion buffer
 * (valid until its next call): the input of a bf16 conv or matmul, split
 * as above or not. */
const void *ops_bf16_input(ops_ctx *c, const float *x, size_t rows, int cols, int split);
/* One row of n floats to bf16: hi = bf16(x), and lo = bf16(x - hi) unless
 * lo is NULL (vcvtne2ps2bf16 where the CPU has it). */
void ops_bf16_row(const float *x, int n, uint16_t *hi, uint16_t *lo);
/* The calling thread's conversion buffer (the one ops_bf16_input fills),
 * at least `bytes` long: for an op that writes a conv's input itself. */
void *ops_bf16_buffer(ops_ctx *c, size_t bytes);
/* Group norm as one scale and shift per channel, y = x·sc + sh, for one
 * sample xn[HW,C] (ops.c; pb a per-channel bias added before the norm, or
 * NULL): 0, or -1 when out of memory (the fault set).  ops_affine_row
 * applies them (then SiLU) to one pixel's C channels: together, the bits
 * of op_group_norm_nhwc. */
int ops_gn_coefs(ops_ctx *c, const float *xn, int C, int HW, int G, const float *pb, const float *gamma,
                 const float *beta, float eps, float *sc, float *sh);
void ops_affine_row(const float *xr, int C, const float *sc, const float *sh, int silu, float *yr);
/* op_group_norm_nhwc into a conv's bf16 input laid out for `split`
 * (OPS_SPLIT_NONE: rows of C bf16; the others as ops_bf16_input). */
void ops_group_norm_bf16(ops_ctx *c, const float *x, int N, int C, int HW, int G, const float *pre_bias, const float *gamma,
                         const float *beta, float eps, int silu, uint16_t *yb, int split);
/* ops_run_forward of a row-split (OPS_SPLIT_ROWS) primitive, built without
 * bias or "sum" post-op, whose dst dmd holds a hi and a lo half of n
 * outputs each: into the calling thread's buffer, then y[i] = the halves
 * added + b[i % C] (b may be NULL), plus y[i] if accum. */
void ops_run_forward_split(ops_ctx *c, dnnl_primitive_t prim, const char *what, const dnnl_memory_desc_t *smd, const void *src,
                           const dnnl_memory_desc_t *wmd, const void *wei, const dnnl_memory_desc_t *dmd,
                           const dnnl_memory_desc_t *scratch, float *y, int C, const float *b, int accum);
/* Which split a bf16x2 conv (conv = 1) or linear with wparams weights,
 * `in` inputs and `out` outputs per row uses (SD_SPLIT=k|m forces one,
 * for tests and measurements). */
int ops_split_mode(int conv, size_t wparams, int in, int out);
dnnl_stream_t ops_stream(void);   /* the calling thread's */
/* *buf grown (64-byte aligned, contents dropped) to at least need bytes.
 * buf is one of the calling thread's _Thread_local slots: the buffer is freed
 * (and *buf, *have zeroed) when the thread ends. */
/* NULL (and c's fault set) when memory runs out. */
void *ops_grow(ops_ctx *c, void **buf, size_t *have, size_t need);
dnnl_primitive_t ops_make_reorder(ops_ctx *c, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to);
void ops_run_reorder(ops_ctx *c, dnnl_primitive_t r, const dnnl_memory_desc_t *from, const void *src,
                     const dnnl_memory_desc_t *to, void *dst);
/* Run a forward primitive (conv, matmul: built with the user scratchpad mode)
 * on src, weights, bias (bmd/bias may be NULL) and dst, with the calling
 * thread's one grow-only scratchpad, and wait for it.  `what` names it in a
 * panic message.  Does nothing if an input is NULL (an earlier fault). */
void ops_run_forward(ops_ctx *c, dnnl_primitive_t prim, const char *what, const dnnl_memory_desc_t *smd, const void *src,
                     const dnnl_memory_desc_t *wmd, const void *wei, const dnnl_memory_desc_t *bmd,
                     const void *bias, const dnnl_memory_desc_t *dmd, void *dst,
                     const dnnl_memory_desc_t *scratch);
/* The weight's n floats (described by `plain`) in layout `want`: its
 * current fp32 values themselves when the layouts are equal, else a copy
 * made on first use and kept on the handle.  stack_rows > 0 (bf16x2): the
 * weight is stack_rows rows, and `plain` describes each of them twice in a
 * row (the weights that meet an activation's hi and lo halves).  NULL (and
 * c's fault set) when memory runs out. */
void *ops_weights_get(ops_ctx *c, ops_weight *w, size_t n, const dnnl_memory_desc_t *plain,
                      const dnnl_memory_desc_t *want, int stack_rows);
/* A copy no reorder makes (our own Winograd weights): derive(src, dst, ud)
 * writes it from the weight's copy in layout `from` (ops_weights_get's);
 * kept on the handle under `key`, a descriptor naming it whose size is the
 * copy's bytes, and dropped with the other copies.  NULL (and c's fault
 * set) when memory runs out. */
typedef void (*ops_weights_derive_fn)(const void *src, void *dst, void *ud);
void *ops_weights_derived(ops_ctx *c, ops_weight *w, size_t n, const dnnl_memory_desc_t *plain,
                          const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *key, ops_weights_derive_fn derive,
                          void *ud);

/* The bf16 attention on AMX tiles (ops_attention_amx.c): usable only if
 * ready() says so (AMX, and the kernel's permission to use its tiles). */
int ops_attention_amx_ready(void);
/* Loads the tile configuration both AMX loops use (palette 1, tiles 0..7
 * of 16 rows x 64 bytes) on the calling thread; call after ready(). */
void ops_amx_tiles_config(void);
void ops_attention_amx(ops_ctx *c, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                       int B, int Tq, int Tk, int H, int D, float scale, float *out);

#endif
