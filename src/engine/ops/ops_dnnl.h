/* ops_dnnl.h — internal to the ops layer: the one oneDNN engine, a stream
 * per calling thread, reorder helpers, grow-only buffers, and the cache of
 * weights reordered to the layouts primitives ask for (ops_weights.c).
 * Convolutions (ops_conv.c) and matmuls (ops_gemm.c) share it. */
#ifndef SD_OPS_DNNL_H
#define SD_OPS_DNNL_H

#include <oneapi/dnnl/dnnl.h>
#include <stddef.h>

/* Abort with a message on any oneDNN failure (a bug, never user input). */
void ops_ck(dnnl_status_t st, const char *what);
dnnl_engine_t ops_engine(void);
/* x[0..n) as bf16 in the calling thread's one conversion buffer (valid
 * until its next call): the input of a bf16 conv or matmul. */
const void *ops_bf16_input(const float *x, size_t n);
dnnl_stream_t ops_stream(void);   /* the calling thread's */
/* *buf grown (64-byte aligned, contents dropped) to at least need bytes.
 * buf is one of the calling thread's _Thread_local slots: the buffer is freed
 * (and *buf, *have zeroed) when the thread ends. */
void *ops_grow(void **buf, size_t *have, size_t need);
dnnl_primitive_t ops_make_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to);
void ops_run_reorder(dnnl_primitive_t r, const dnnl_memory_desc_t *from, const void *src,
                     const dnnl_memory_desc_t *to, void *dst);
/* Run a forward primitive (conv, matmul: built with the user scratchpad mode)
 * on src, weights, bias (bmd/bias may be NULL) and dst, with the calling
 * thread's one grow-only scratchpad, and wait for it.  `what` names it in an
 * abort message. */
void ops_run_forward(dnnl_primitive_t prim, const char *what, const dnnl_memory_desc_t *smd, const void *src,
                     const dnnl_memory_desc_t *wmd, const void *wei, const dnnl_memory_desc_t *bmd,
                     const void *bias, const dnnl_memory_desc_t *dmd, void *dst,
                     const dnnl_memory_desc_t *scratch);
/* The n floats at w (described by `plain`) in layout `want`: w itself when
 * the layouts are equal, else a copy made on first use and cached — until
 * ops_weights_drop_transient if made with transient set. */
void *ops_weights_get(const float *w, size_t n, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want,
                      int transient);

/* The bf16 attention on AMX tiles (ops_attention_amx.c): usable only if
 * ready() says so (AMX, and the kernel's permission to use its tiles). */
int ops_attention_amx_ready(void);
void ops_attention_amx(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                       int B, int Tq, int Tk, int H, int D, float scale, float *out);

#endif
