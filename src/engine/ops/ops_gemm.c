/* ops_gemm.c — gemm and the linear layers.
 *
 * op_gemm goes straight to oneDNN's sgemm (row-major; sequential when called
 * inside a parallel region).  op_linear / op_linear_acc run on oneDNN matmul
 * primitives (brgemm kernels) with the weights in the layout the primitive
 * prefers, reordered once onto the weight's handle (ops_weights.c);
 * bias is an argument and the residual add a "sum" post-op, so a layer is
 * one pass over its output.  On this class of CPU that is ~5-15 % faster
 * than sgemm on the UNet's shapes and up to 1.5x on the text encoder's
 * 77-row ones.  In the bf16 precisions (ops.h) the input is converted per
 * call — to bf16, or for bf16x2 to [hi | lo] rows of 2·IN against the bf16
 * weights stacked twice ([IN; IN] x OUT, one product, f32 sums) — and the
 * weight copy is bf16: oneDNN's AMX kernels.
 * Primitives are cached per shape and precision in the context (LRU; an
 * entry is pinned while a matmul runs on it).  Out of memory
 * sets the ops fault (ops.h) and the op does nothing; any other oneDNN
 * failure is a bug: sd_panic.
 * A row's result must not depend on how many rows the call has (an image's
 * bits on its batch): oneDNN's brgemm kernels (AVX-512 with bf16, AMX) give
 * every row the same bits for any M, its other matmuls (gemm:jit, below
 * AVX-512 or bf16 without the bf16 instructions) do not — they split small
 * M differently — but do for any row position within one M
 * (tests/unit/test_batch_rows.c under ONEDNN_MAX_CPU_ISA).  So a layer
 * whose MM_CHUNK-row primitive is not brgemm runs at fp32 on our own kernel
 * (linear_dots, below), in the bf16 precisions in chunks of exactly
 * MM_CHUNK rows, the last one zero-padded. */
#include "ops.h"
#include "ops_dnnl.h"
#include "ops_prof.h"
#include "../../base/alloc.h"
#include "ops_tile.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void op_gemm(int transB, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    SD_ASSERT(ldc >= N && (M <= 0 || N <= 0 || K <= 0 || (lda >= K && ldb >= (transB ? K : N))));
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.f ? 0.f : beta * C[(size_t)i * ldc + j];
        return;
    }
    ops_ck(NULL, dnnl_sgemm('N', transB ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), "sgemm");
}

#define MM_CACHE 128
#define MM_CHUNK 16

typedef struct mm_key { int M, IN, OUT, bias, accum, prec, split; } mm_key;

typedef struct mm_entry {
    mm_key key;
    unsigned long long used;   /* LRU stamp; 0 = empty */
    dnnl_primitive_t prim;
    dnnl_memory_desc_t src, wei, pwei, bia, dst, scratch;
    int brgemm;                /* oneDNN picked a brgemm kernel: rows are M-invariant */
    int busy;                  /* matmuls running on it now: not evicted */
    int temp;                  /* built outside the table (every entry busy) */
} mm_entry;

/* A context's matmul primitives (its lock guards the table and the pins). */
struct mm_cache {
    pthread_mutex_t lock;
    mm_entry e[MM_CACHE];
    unsigned long long clock;
};

struct mm_cache *ops_mm_cache_new(void)
{
    struct mm_cache *mc = sd_calloc(1, sizeof *mc);
    if (mc) pthread_mutex_init(&mc->lock, NULL);
    return mc;
}

void ops_mm_cache_free(struct mm_cache *mc)
{
    if (!mc) return;
    for (int i = 0; i < MM_CACHE; i++)
        if (mc->e[i].used) dnnl_primitive_destroy(mc->e[i].prim);
    pthread_mutex_destroy(&mc->lock);
    free(mc);
}

static void mm_build(ops_ctx *c, mm_entry *e, const mm_key *k)
{
    /* bf16x2 (ops_dnnl.h): [hi | lo] against [w; w], or hi and lo rows with
     * the bias and the residual added when the halves are combined */
    int K = k->split == OPS_SPLIT_COLS ? 2 * k->IN : k->IN, M = k->split == OPS_SPLIT_ROWS ? 2 * k->M : k->M;
    int bias = k->bias && k->split != OPS_SPLIT_ROWS, accum = k->accum && k->split != OPS_SPLIT_ROWS;
    dnnl_dims_t sd = {M, K}, wd = {K, k->OUT}, bd = {1, k->OUT}, dd = {M, k->OUT};
    dnnl_memory_desc_t aw;
    dnnl_data_type_t dt = k->prec != OPS_FP32 ? dnnl_bf16 : dnnl_f32;   /* src and weights; dst and bias f32 */
    ops_ck(c, dnnl_memory_desc_init_by_tag(&e->src, 2, sd, dt, dnnl_ab), "md src");
    /* w is [OUT, IN] row-major: as [IN, OUT] that is "ba" */
    ops_ck(c, dnnl_memory_desc_init_by_tag(&e->pwei, 2, wd, dnnl_f32, dnnl_ba), "md weights");
    ops_ck(c, dnnl_memory_desc_init_by_tag(&aw, 2, wd, dt, dnnl_format_tag_any), "md weights any");
    ops_ck(c, dnnl_memory_desc_init_by_tag(&e->bia, 2, bd, dnnl_f32, dnnl_ab), "md bias");
    ops_ck(c, dnnl_memory_desc_init_by_tag(&e->dst, 2, dd, dnnl_f32, dnnl_ab), "md dst");
    dnnl_matmul_desc_t md;
    ops_ck(c, dnnl_matmul_desc_init(&md, &e->src, &aw, bias ? &e->bia : NULL, &e->dst), "matmul desc");
    dnnl_primitive_attr_t attr;
    ops_ck(c, dnnl_primitive_attr_create(&attr), "attr_create");
    ops_ck(c, dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "attr_set_scratchpad_mode");
    if (accum) {
        dnnl_post_ops_t po;
        ops_ck(c, dnnl_post_ops_create(&po), "post_ops_create");
        ops_ck(c, dnnl_post_ops_append_sum(po, 1.f), "post_ops_append_sum");
        ops_ck(c, dnnl_primitive_attr_set_post_ops(attr, po), "attr_set_post_ops");
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    e->prim = NULL;
    e->brgemm = 0;
    int bad = ops_ck(c, dnnl_primitive_desc_create(&pd, &md, attr, ops_engine(), NULL), "matmul primitive desc");
    dnnl_primitive_attr_destroy(attr);
    if (bad) return;   /* out of memory: the fault is set */
    e->wei = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    e->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    const char *impl = NULL;
    e->brgemm = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
                !strncmp(impl, "brg", 3);
    if (ops_ck(c, dnnl_primitive_create(&e->prim, pd), "matmul primitive")) e->prim = NULL;
    dnnl_primitive_desc_destroy(pd);
    e->key = *k;
}

/* The primitive for k in c's cache, pinned (busy) until mm_unpin: a thread
 * sharing the context cannot evict it meanwhile.  The least recently used
 * idle entry makes room; if every entry is busy the primitive is built
 * outside the table and freed after use.  NULL when out of memory. */
static mm_entry *mm_lookup(ops_ctx *c, const mm_key *k)
{
    struct mm_cache *mc = c->mm;
    pthread_mutex_lock(&mc->lock);
    mm_entry *hit = NULL, *victim = NULL;
    for (int i = 0; i < MM_CACHE; i++) {
        mm_entry *e = &mc->e[i];
        if (e->used && !memcmp(&e->key, k, sizeof *k)) { hit = e; break; }
        if (!e->busy && (!victim || e->used < victim->used)) victim = e;
    }
    if (!hit) {
        if (victim) {
            if (victim->used) dnnl_primitive_destroy(victim->prim);
        } else if ((victim = sd_calloc(1, sizeof *victim))) {
            victim->temp = 1;
        } else {
            ops_set_fault(c);
            pthread_mutex_unlock(&mc->lock);
            return NULL;
        }
        mm_build(c, victim, k);
        hit = victim;
    }
    if (!hit->temp) hit->used = hit->prim ? ++mc->clock : 0;   /* not kept when out of memory */
    hit->busy++;
    pthread_mutex_unlock(&mc->lock);
    return hit;
}

static void mm_unpin(ops_ctx *c, mm_entry *e)
{
    pthread_mutex_lock(&c->mm->lock);
    e->busy--;
    pthread_mutex_unlock(&c->mm->lock);
    if (e->temp) {
        if (e->prim) dnnl_primitive_destroy(e->prim);
        free(e);
    }
}

/* Whether the primitive for k is a brgemm kernel (0 when out of memory). */
static int mm_brgemm(ops_ctx *c, const mm_key *k)
{
    mm_entry *e = mm_lookup(c, k);
    if (!e) return 0;
    int brg = e->brgemm;
    mm_unpin(c, e);
    return brg;
}

/* y[k->M, OUT] (+)= x·wᵀ + b on the primitive e for k */
static void linear_exec(ops_ctx *c, const mm_entry *e, const mm_key *k, const float *x, ops_weight *w,
                        const float *b, float *y)
{
    int M = k->M, IN = k->IN, OUT = k->OUT, accum = k->accum;
    void *wb = ops_weights_get(c, w, (size_t)IN * OUT, &e->pwei, &e->wei, k->split == OPS_SPLIT_COLS ? OUT : 0);
    const void *src = k->prec != OPS_FP32 ? ops_bf16_input(c, x, (size_t)M, IN, k->split) : (const void *)x;
    if (!wb || !src || !e->prim) return;   /* out of memory: the ops fault is set */
    ops_flops_add(PROF_LINEAR, 0, 2.0 * M * IN * OUT * (k->split ? 2 : 1));   /* bf16x2: hi and lo */
    if (k->split == OPS_SPLIT_ROWS) {   /* hi and lo rows, added with the bias (and residual) */
        ops_run_forward_split(c, e->prim, "matmul execute", &e->src, src, &e->wei, wb, &e->dst, &e->scratch, y, OUT,
                              b, accum);
        return;
    }
    ops_run_forward(c, e->prim, "matmul execute", &e->src, src, &e->wei, wb, &e->bia, b, &e->dst, y, &e->scratch);
}

static void linear_run(ops_ctx *c, const mm_key *k, const float *x, ops_weight *w, const float *b, float *y)
{
    mm_entry *e = mm_lookup(c, k);
    if (!e) return;
    linear_exec(c, e, k, x, w, b, y);
    mm_unpin(c, e);
}

static _Thread_local void *t_cx, *t_cy;   /* a zero-padded last chunk */
static _Thread_local size_t t_ncx, t_ncy;

/* M rows in chunks of exactly MM_CHUNK rows (kc.M), the last one through
 * zero-padded buffers (the calling thread's), the chunks shared among the
 * team and each run on one thread: gemm:jit splitting one chunk among
 * threads gives a row bits that depend on its position in the chunk (an
 * image's 12 rows alone and as rows 12..23 of a batch differed by 2e-6 on
 * a 2-core AVX2 CPU; tests/unit/test_batch_rows.c).  Always inside a
 * parallel region, one chunk too, so that oneDNN never splits one. */
static void linear_chunks(ops_ctx *c, const mm_key *kc, int M, const float *x, ops_weight *w, const float *b,
                          float *y)
{
    int IN = kc->IN, OUT = kc->OUT, nch = (M + MM_CHUNK - 1) / MM_CHUNK;
    mm_entry *e = mm_lookup(c, kc);
    if (!e) return;   /* out of memory: the ops fault is set */
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < nch; i++) {
        int r0 = i * MM_CHUNK, n = M - r0 < MM_CHUNK ? M - r0 : MM_CHUNK;
        if (n == MM_CHUNK) {
            linear_exec(c, e, kc, x + (size_t)r0 * IN, w, b, y + (size_t)r0 * OUT);
            continue;
        }
        float *cx = ops_grow(c, &t_cx, &t_ncx, sizeof(float) * MM_CHUNK * IN);
        float *cy = ops_grow(c, &t_cy, &t_ncy, sizeof(float) * MM_CHUNK * OUT);
        if (!cx || !cy) continue;   /* out of memory: the ops fault is set */
        memcpy(cx, x + (size_t)r0 * IN, sizeof(float) * n * IN);
        memset(cx + (size_t)n * IN, 0, sizeof(float) * (MM_CHUNK - n) * IN);
        memset(cy, 0, sizeof(float) * MM_CHUNK * OUT);
        if (kc->accum) memcpy(cy, y + (size_t)r0 * OUT, sizeof(float) * n * OUT);
        linear_exec(c, e, kc, cx, w, b, cy);
        memcpy(y + (size_t)r0 * OUT, cy, sizeof(float) * n * OUT);
    }
    mm_unpin(c, e);
}

/* fp32 linears where oneDNN has no brgemm (below AVX-512), on our own
 * kernel: every output is one chain of FMAs over k in order, from 0 —
 * acc = x[i][k]·w[j][k] + acc for k = 0..IN-1 — then + b, then + y (the
 * residual), whatever the tile around it, so a row's bits never depend on
 * M: no chunks, no padding rows computed.  The chain is cut into K blocks of
 * KC whose accumulators wait in a buffer between blocks (a store and a load
 * are exact).  Register tile: 6 rows x 16 outputs (ops_tile.h), w in
 * panels of 16 outputs, wp[IN][16] (a copy made once per weight); a last
 * partial row tile repeats its last row.  Work items are (CB outputs, RB
 * rows), shared out over the team (each output on one thread) in
 * dk_item's order; a full panel's last K block goes straight to y
 * (a scalar pass over an accumulator buffer had cost 16 % of the
 * 8192 x 320 -> 2560 feed-forward).
 * The 16-row oneDNN gemm:jit chunks this replaces ran the SD 1.5 step's
 * linears at ~50 % of the FMA loop on a Zen 3 CPU, 66-75 GFLOP/s on the
 * feed-forward's wide ones (bench/README.md "AVX2: our own kernels"). */
#define CB 64     /* outputs per work item (4 panels) */
#define RB 96     /* rows per work item (16 tiles) */
#define KC 256    /* k per block */

static _Thread_local void *t_acc;   /* a work item's accumulators */
static _Thread_local size_t t_nacc;

static void linear_dots(ops_ctx *c, const float *x, int M, int IN, ops_weight *wh, const float *b, int OUT, float *y,
                        int accum)
{
    /* w as a 1x1 conv's weights, [OUT][IN][1][1], in oneDNN's Ohwi16o: panels
     * of 16 outputs, wt[p][IN][16], zeros past OUT (a copy kept on the handle) */
    dnnl_memory_desc_t plain, blk;
    dnnl_dims_t wd = {OUT, IN, 1, 1};
    if (ops_ck(c, dnnl_memory_desc_init_by_tag(&plain, 4, wd, dnnl_f32, dnnl_oihw), "md weights") ||
        ops_ck(c, dnnl_memory_desc_init_by_tag(&blk, 4, wd, dnnl_f32, dnnl_Ohwi16o), "md weights own"))
        return;
    const float *wt = ops_weights_get(c, wh, (size_t)IN * OUT, &plain, &blk, 0);
    if (!wt) return;   /* out of memory: the ops fault is set */
    ops_flops_add(PROF_LINEAR, 0, dk_exec_flops(M, OUT, IN));
    long ncb = (OUT + CB - 1) / CB, nrb = (M + RB - 1) / RB;
    #pragma omp parallel for schedule(static)
    for (long it = 0; it < ncb * nrb; it++) {
        long rb, cb;
        dk_item(it, nrb, ncb, M >= OUT, &rb, &cb);
        int r0 = (int)rb * RB, j0 = (int)cb * CB;
        int nr = M - r0 < RB ? M - r0 : RB, nj = OUT - j0 < CB ? OUT - j0 : CB, np = (nj + DW - 1) / DW;
        int ntile = (nr + DR - 1) / DR;
        const float *wp = wt + (size_t)j0 * IN;   /* the block's panels */
        float *acc = ops_grow(c, &t_acc, &t_nacc, sizeof(float) * RB * CB);
        if (!acc) continue;   /* out of memory: the ops fault is set */
        for (int k0 = 0; k0 < IN; k0 += KC) {
            int kc = IN - k0 < KC ? IN - k0 : KC;
            for (int t = 0; t < ntile; t++) {
                const float *xr[DR];
                for (int r = 0; r < DR; r++) {
                    int row = r0 + t * DR + r < M ? r0 + t * DR + r : M - 1;
                    xr[r] = x + (size_t)row * IN + k0;
                }
                dk_out o = {y + (size_t)(r0 + t * DR) * OUT + j0, OUT, b ? b + j0 : NULL,
                            nr - t * DR < DR ? nr - t * DR : DR, accum, 0, 0};
                dk_panels(xr, wp + (size_t)k0 * DW, (size_t)IN * DW, np, nj, kc, acc + (size_t)t * DR * CB, CB, k0 == 0,
                          k0 + kc == IN ? &o : NULL);
            }
        }
        int done = nj / DW * DW;   /* the outputs already in y: the full panels' */
        if (done < nj)
            dk_store(y + (size_t)r0 * OUT + j0 + done, OUT, acc + done, CB, nr, nj - done, b ? b + j0 + done : NULL,
                     accum, 0);
    }
}

static void linear(const ops_m *m, const float *x, int M, int IN, ops_weight *w, const float *b, int OUT, float *y,
                   int accum)
{
    SD_ASSERT(M >= 0 && IN >= 1 && OUT >= 0 && (M == 0 || OUT == 0 || (x && w && y)));
    ops_ctx *c = m->ctx;
    if (M <= 0 || OUT <= 0 || ops_faulted(c)) return;
    ops_flops_add(PROF_LINEAR, 2.0 * M * IN * OUT, 0);
    PROF_SHAPE("linear %dx%d -> %d%s", M, IN, OUT, accum ? " +y" : "");
    mm_key k = {MM_CHUNK, IN, OUT, b != NULL, accum, m->prec, 0};
    if (k.prec == OPS_BF16X2) k.split = ops_split_mode(0, (size_t)IN * OUT, IN, OUT);
    if (!mm_brgemm(c, &k)) {   /* decided on the chunk's shape: the same for every M */
        if (k.prec == OPS_FP32) linear_dots(c, x, M, IN, w, b, OUT, y, accum);
        else linear_chunks(c, &k, M, x, w, b, y);
        return;
    }
    k.M = M;
    linear_run(c, &k, x, w, b, y);
}

void op_linear(const ops_m *m, const float *x, int M, int IN, ops_weight *w, const float *b, int OUT, float *y)
{
    PROF_BEGIN;
    linear(m, x, M, IN, w, b, OUT, y, 0);
    PROF_END(PROF_LINEAR);
}

void op_linear_acc(const ops_m *m, const float *x, int M, int IN, ops_weight *w, const float *b, int OUT, float *y)
{
    PROF_BEGIN;
    linear(m, x, M, IN, w, b, OUT, y, 1);
    PROF_END(PROF_LINEAR);
}
