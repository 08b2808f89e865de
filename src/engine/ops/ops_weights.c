/* ops_weights.c — the ops layer's oneDNN plumbing: one engine, a stream per
 * calling thread, reorders, grow-only buffers, the weight cache, and the
 * precision (fp32, bf16x2, bf16: ops.h) with its fp32 -> bf16 conversions
 * of conv and matmul inputs and bf16x2's choice of split.
 *
 * A primitive (conv, matmul) may want its weights in a blocked layout of its
 * own; ops_weights_get reorders a weight handle (ops_weight, ops.h) once per
 * layout into a copy kept on the handle, until the handle is freed, its
 * weight replaced or restored, or ops_release_weights.  A handle's owner
 * with a source (the loader) is told when the first blocked copy exists and
 * may give the original's pages back then, so the weights are resident
 * once, not twice; other layouts are then reordered from that copy, or
 * from the original re-derived through the source. */
#include "ops.h"
#include "ops_dnnl.h"
#include "../../base/alloc.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* One reordered copy of a weight in one layout. */
typedef struct wcopy {
    dnnl_memory_desc_t md;
    void *buf;
    int derived;   /* ops_weights_derived's: a key, not a layout (never a reorder's source) */
} wcopy;

struct ops_weight {
    ops_ctx *ctx;
    struct ops_weight *prev, *next;   /* the context's registry */
    const float *orig;                /* the owner's original */
    float *patched;                   /* a replacement (ours), or NULL */
    ops_patch_fn patch;               /* a lazy replacement: patch(original), made when a copy needs it */
    void *patch_ud;
    size_t n;
    const ops_weight_src *src;
    void *ud;
    int orig_gone;                    /* the owner was told it may give the original's pages back */
    wcopy *copies;
    int ncopies, capcopies;
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t g_engine;   /* oneDNN's CPU engine: stateless, shared by every context */
static _Thread_local dnnl_stream_t t_stream;
static _Thread_local void *t_scr;   /* the convs' and matmuls' scratchpad */
static _Thread_local size_t t_nscr;
/* What a thread made for itself (its stream, the buffers ops_grow grew in its
 * _Thread_local slots) is freed when the thread ends, by g_tkey's destructor:
 * without it every server worker lost them at shutdown. */
static pthread_key_t g_tkey;
#define MAX_TBUF 32   /* every ops_grow slot of the ops layer fits (26 of them) */
static _Thread_local void **t_buf[MAX_TBUF];
static _Thread_local size_t *t_have[MAX_TBUF];
static _Thread_local int t_nbuf;

/* Set when an op could not get memory (our seam or oneDNN's
 * dnnl_out_of_memory); the context's ops skip their work while it is set
 * and the pipeline turns it into SD_ENOMEM (ops_take_fault).  Atomic: the
 * team's threads may set it. */
void ops_set_fault(ops_ctx *c)
{
    if (c) atomic_store(&c->fault, 1);
}
int ops_faulted(const ops_ctx *c) { return c && atomic_load_explicit(&c->fault, memory_order_relaxed); }
int ops_take_fault(ops_ctx *c) { return c && atomic_exchange(&c->fault, 0); }

int ops_ck(ops_ctx *c, dnnl_status_t st, const char *what)
{
    if (st == dnnl_success) return 0;
    if (st == dnnl_out_of_memory) {
        ops_set_fault(c);
        return -1;
    }
    sd_panic("ops: oneDNN %s failed (status %d)", what, (int)st);
}

static void thread_end(void *unused)
{
    for (int i = 0; i < t_nbuf; i++) { free(*t_buf[i]); *t_buf[i] = NULL; *t_have[i] = 0; }
    t_nbuf = 0;
    if (t_stream) dnnl_stream_destroy(t_stream);
    t_stream = NULL;
}

/* Precision of convs and matmuls (ops.h): fp32; bf16 — bf16 activations
 * and weights into oneDNN's kernels, f32 accumulation, sums, bias and
 * output; or bf16x2 — the activation split into two bf16 terms, hi + lo,
 * that meet the same bf16 weight, so only the weights are rounded.  By
 * default bf16x2 where the CPU has AMX (oneDNN's AMX kernels make even the
 * doubled work ~4x faster than fp32), fp32 elsewhere; SD_PRECISION
 * overrides (the default; each model passes its own, ops_m).  (oneDNN 2.6
 * ignores the bf16 "fpmath mode" on f32 tensors, so the tensors themselves
 * are bf16.) */
static int g_prec;
static int g_vec;   /* the CPU converts to bf16 in vectors (avx512bf16) */

static int has_amx(void)
{
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();   /* what oneDNN may use here, OS support included */
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core_amx) == (unsigned)dnnl_cpu_isa_avx512_core_amx;
}

static void engine_init(void)
{
    ops_ck(NULL, dnnl_engine_create(&g_engine, dnnl_cpu, 0), "engine_create");
    const char *p = getenv("SD_PRECISION");
    g_prec = ops_precision_from_name(p);
    if (g_prec < 0) {
        if (p && *p && strcmp(p, "auto"))
            fprintf(stderr, "sdserve: SD_PRECISION=%s is not fp32, bf16x2, bf16 or auto; using auto\n", p);
        g_prec = has_amx() ? OPS_BF16X2 : OPS_FP32;
    }
    g_vec = __builtin_cpu_supports("avx512bf16");
    if (pthread_key_create(&g_tkey, thread_end)) sd_panic("ops: pthread_key_create failed");
}

/* Have thread_end run when the calling thread ends (any non-NULL value). */
static void at_thread_end(void)
{
    pthread_once(&g_once, engine_init);
    pthread_setspecific(g_tkey, &g_tkey);
}

int ops_default_precision(void)
{
    pthread_once(&g_once, engine_init);
    return g_prec;
}

static const char *const PREC_NAMES[] = {[OPS_FP32] = "fp32", [OPS_BF16] = "bf16", [OPS_BF16X2] = "bf16x2"};

const char *ops_precision_name(int prec)
{
    return prec >= 0 && prec < 3 ? PREC_NAMES[prec] : "fp32";
}

int ops_precision_from_name(const char *name)
{
    for (int i = 0; name && i < 3; i++)
        if (!strcmp(name, PREC_NAMES[i])) return i;
    return -1;
}

int ops_cpu_amx(void)
{
    pthread_once(&g_once, engine_init);
    return has_amx();
}

int ops_cpu_bf16(void)
{
    pthread_once(&g_once, engine_init);
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core) == (unsigned)dnnl_cpu_isa_avx512_core;
}

/* fp32 -> bf16, round to nearest even (NaN stays NaN). */
static inline uint16_t f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* 32 at a time with vcvtne2ps2bf16 (the same rounding) where the CPU has it,
 * while 32 are left; returns how many it did.  The conversion runs before
 * every bf16 conv and matmul, at memory speed. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static size_t to_bf16_avx512(const float *x, size_t n,
                                                                                   uint16_t *y)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
        _mm512_storeu_si512((void *)(y + i), (__m512i)v);
    }
    return i;
}

static void ops_to_bf16_serial(const float *x, size_t n, uint16_t *y)
{
    size_t i = g_vec ? to_bf16_avx512(x, n, y) : 0;
    for (; i < n; i++) y[i] = f2bf(x[i]);
}

void ops_to_bf16(const float *x, size_t n, uint16_t *y)
{
    pthread_once(&g_once, engine_init);
    #pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t b = 0; b < (n + 8191) / 8192; b++) {
        size_t i0 = b * 8192, i1 = i0 + 8192 < n ? i0 + 8192 : n;
        ops_to_bf16_serial(x + i0, i1 - i0, y + i0);
    }
}

static _Thread_local void *t_b16;
static _Thread_local size_t t_nb16;

/* hi = bf16(x), lo = bf16(x - hi): 16 at a time while 16 are left; returns
 * how many it did */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static int split_row_avx512(const float *x, int n,
                                                                                  uint16_t *hi, uint16_t *lo)
{
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
        __m512 hf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        _mm256_storeu_si256((__m256i *)(hi + i), h);
        _mm256_storeu_si256((__m256i *)(lo + i), (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(v, hf)));
    }
    return i;
}

/* hi = bf16(x), lo = bf16(x - hi) for one row of n */
static void split_row(const float *x, int n, uint16_t *hi, uint16_t *lo)
{
    int i = g_vec ? split_row_avx512(x, n, hi, lo) : 0;
    for (; i < n; i++) {
        hi[i] = f2bf(x[i]);
        uint32_t u = (uint32_t)hi[i] << 16;
        float h;
        memcpy(&h, &u, 4);
        lo[i] = f2bf(x[i] - h);
    }
}

void ops_bf16_row(const float *x, int n, uint16_t *hi, uint16_t *lo)
{
    if (lo) split_row(x, n, hi, lo);
    else ops_to_bf16_serial(x, (size_t)n, hi);
}

void *ops_bf16_buffer(ops_ctx *c, size_t bytes)
{
    return ops_grow(c, &t_b16, &t_nb16, bytes);
}

const void *ops_bf16_input(ops_ctx *c, const float *x, size_t rows, int cols, int split)
{
    size_t n = rows * (size_t)cols;
    uint16_t *y = ops_grow(c, &t_b16, &t_nb16, n * sizeof(uint16_t) * (split ? 2 : 1));
    if (!y) return NULL;
    if (!split) {
        ops_to_bf16(x, n, y);
        return y;
    }
    #pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t r = 0; r < rows; r++) {
        if (split == OPS_SPLIT_COLS) split_row(x + r * cols, cols, y + 2 * r * cols, y + 2 * r * cols + cols);
        else split_row(x + r * cols, cols, y + r * cols, y + n + r * cols);
    }
    return y;
}

/* Stacked weights cost their bf16 bytes twice over, split rows the second
 * output half (written, read back, added: ~16 bytes an output).  Measured
 * on SD 1.5's shapes on AMX, CFG pair and batch of 4 (bench/README.md):
 * convs split rows once their weights reach 2M parameters (the stacked copy,
 * 8 MB, no longer stays in cache: 640 channels up, 960->320 at 64x64 2x
 * faster), linears once their input is at least twice their output (the
 * output half is then small: 2560->640, 5120->1280); otherwise stacking
 * wins (320-channel convs, 320->2560, 640->5120: 1.6-1.9x faster). */
int ops_split_mode(int conv, size_t wparams, int in, int out)
{
    const char *s = getenv("SD_SPLIT");
    if (s && *s == 'k') return OPS_SPLIT_COLS;
    if (s && *s == 'm') return OPS_SPLIT_ROWS;
    if (conv) return wparams >= (2u << 20) ? OPS_SPLIT_ROWS : OPS_SPLIT_COLS;
    return in >= 2 * out ? OPS_SPLIT_ROWS : OPS_SPLIT_COLS;
}

/* y = Y[0..n) + Y[n..2n) + b[i % C] (+ y if accum): the two halves of a
 * row-split (bf16x2) product added, its bias and residual with them. */
static void split_combine(float *y, const float *Y, size_t n, int C, const float *b, int accum)
{
    size_t rows = n / (size_t)C;
    #pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t r = 0; r < rows; r++) {
        const float *h = Y + r * C, *l = h + n;
        float *o = y + r * C;
        for (int c = 0; c < C; c++) o[c] = (accum ? o[c] : 0.f) + (h[c] + l[c]) + (b ? b[c] : 0.f);
    }
}

dnnl_engine_t ops_engine(void)
{
    pthread_once(&g_once, engine_init);
    return g_engine;
}

dnnl_stream_t ops_stream(void)
{
    if (!t_stream) {
        ops_ck(NULL, dnnl_stream_create(&t_stream, ops_engine(), dnnl_stream_default_flags), "stream_create");
        at_thread_end();
    }
    return t_stream;
}

void *ops_grow(ops_ctx *c, void **buf, size_t *have, size_t need)
{
    if (!*buf) {   /* a slot this thread has not used yet: free it at thread end */
        int i = 0;
        while (i < t_nbuf && t_buf[i] != buf) i++;
        if (i == t_nbuf) {
            if (t_nbuf == MAX_TBUF) sd_panic("ops: more than %d per-thread buffers", MAX_TBUF);
            t_buf[t_nbuf] = buf; t_have[t_nbuf++] = have;
            at_thread_end();
        }
    }
    if (need > *have) {
        free(*buf);
        *buf = sd_aligned_alloc(64, need);
        *have = *buf ? need : 0;
        if (!*buf) ops_set_fault(c);
    }
    return *buf;
}

dnnl_primitive_t ops_make_reorder(ops_ctx *c, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to)
{
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p = NULL;
    if (ops_ck(c, dnnl_reorder_primitive_desc_create(&pd, from, ops_engine(), to, ops_engine(), NULL), "reorder desc"))
        return NULL;   /* out of memory: the fault is set */
    if (ops_ck(c, dnnl_primitive_create(&p, pd), "reorder primitive")) p = NULL;
    dnnl_primitive_desc_destroy(pd);
    return p;
}

void ops_run_reorder(ops_ctx *c, dnnl_primitive_t r, const dnnl_memory_desc_t *from, const void *src,
                     const dnnl_memory_desc_t *to, void *dst)
{
    dnnl_memory_t a = NULL, b = NULL;
    if (!r || ops_ck(c, dnnl_memory_create(&a, from, ops_engine(), (void *)src), "memory reorder src") ||
        ops_ck(c, dnnl_memory_create(&b, to, ops_engine(), dst), "memory reorder dst"))
        goto done;   /* out of memory: the fault is set */
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
    if (!ops_ck(c, dnnl_primitive_execute(r, ops_stream(), 2, args), "reorder execute"))
        ops_ck(c, dnnl_stream_wait(ops_stream()), "stream_wait");
done:
    if (a) dnnl_memory_destroy(a);
    if (b) dnnl_memory_destroy(b);
}

/* One argument of a primitive: a oneDNN memory over ptr, appended to m and
 * args; -1 when oneDNN is out of memory (the fault is set). */
static int add_arg(ops_ctx *c, dnnl_memory_t *m, dnnl_exec_arg_t *args, int *n, int arg, const dnnl_memory_desc_t *md,
                   const void *ptr, const char *what)
{
    if (ops_ck(c, dnnl_memory_create(&m[*n], md, ops_engine(), (void *)ptr), what)) return -1;
    args[*n] = (dnnl_exec_arg_t){arg, m[*n]};
    (*n)++;
    return 0;
}

void ops_run_forward(ops_ctx *c, dnnl_primitive_t prim, const char *what, const dnnl_memory_desc_t *smd, const void *src,
                     const dnnl_memory_desc_t *wmd, const void *wei, const dnnl_memory_desc_t *bmd,
                     const void *bias, const dnnl_memory_desc_t *dmd, void *dst,
                     const dnnl_memory_desc_t *scratch)
{
    dnnl_memory_t m[5];
    dnnl_exec_arg_t args[5];
    int n = 0;
    size_t nscr = dnnl_memory_desc_get_size(scratch);
    void *scr = nscr ? ops_grow(c, &t_scr, &t_nscr, nscr) : NULL;
    if (!prim || !src || !wei || !dst || (nscr && !scr) ||   /* a fault earlier on (ops_faulted) */
        add_arg(c, m, args, &n, DNNL_ARG_SRC, smd, src, "memory src") ||
        add_arg(c, m, args, &n, DNNL_ARG_WEIGHTS, wmd, wei, "memory weights") ||
        add_arg(c, m, args, &n, DNNL_ARG_DST, dmd, dst, "memory dst") ||
        (bias && add_arg(c, m, args, &n, DNNL_ARG_BIAS, bmd, bias, "memory bias")) ||
        (nscr && add_arg(c, m, args, &n, DNNL_ARG_SCRATCHPAD, scratch, scr, "memory scratchpad")))
        goto done;
    dnnl_stream_t st = ops_stream();
    if (!ops_ck(c, dnnl_primitive_execute(prim, st, n, args), what)) ops_ck(c, dnnl_stream_wait(st), "stream_wait");
done:
    for (int i = 0; i < n; i++) dnnl_memory_destroy(m[i]);
}

static _Thread_local void *t_y2;   /* the two output halves of a row-split product */
static _Thread_local size_t t_ny2;

void ops_run_forward_split(ops_ctx *c, dnnl_primitive_t prim, const char *what, const dnnl_memory_desc_t *smd, const void *src,
                           const dnnl_memory_desc_t *wmd, const void *wei, const dnnl_memory_desc_t *dmd,
                           const dnnl_memory_desc_t *scratch, float *y, int C, const float *b, int accum)
{
    size_t n = dnnl_memory_desc_get_size(dmd) / sizeof(float) / 2;
    float *y2 = ops_grow(c, &t_y2, &t_ny2, 2 * n * sizeof(float));
    if (!y2) return;
    ops_run_forward(c, prim, what, smd, src, wmd, wei, NULL, NULL, dmd, y2, scratch);
    if (!ops_faulted(c)) split_combine(y, y2, n, C, b, accum);
}


/* ------------------------------------------------------------ weight handles */

static const float *current(const ops_weight *w) { return w->patched ? w->patched : w->orig; }

ops_weight *ops_weight_register(ops_ctx *c, const float *data, size_t n, const ops_weight_src *src, void *ud)
{
    SD_ASSERT(c && n >= 1);   /* data NULL: a shape-only handle (a checker engine's), never run */
    ops_weight *w = sd_calloc(1, sizeof *w);
    if (!w) return NULL;
    w->ctx = c;
    w->orig = data;
    w->n = n;
    w->src = src;
    w->ud = ud;
    pthread_mutex_lock(&c->lock);
    w->next = c->weights;
    if (c->weights) c->weights->prev = w;
    c->weights = w;
    pthread_mutex_unlock(&c->lock);
    return w;
}

size_t ops_weight_numel(const ops_weight *w) { return w->n; }

void ops_weight_given_back(ops_weight *w)
{
    SD_ASSERT(w->src && w->src->reload);
    pthread_mutex_lock(&w->ctx->lock);
    w->orig_gone = 1;
    pthread_mutex_unlock(&w->ctx->lock);
}

/* Every derived copy of w dropped (the context's lock held). */
static void drop_copies(ops_weight *w)
{
    for (int i = 0; i < w->ncopies; i++) free(w->copies[i].buf);
    w->ncopies = 0;
}

void ops_weight_free(ops_weight *w)
{
    if (!w) return;
    ops_ctx *c = w->ctx;
    pthread_mutex_lock(&c->lock);
    if (w->prev) w->prev->next = w->next;
    else c->weights = w->next;
    if (w->next) w->next->prev = w->prev;
    drop_copies(w);
    pthread_mutex_unlock(&c->lock);
    free(w->copies);
    free(w->patched);
    free(w);
}

/* The original's values into a new buffer through the owner's source (its
 * pages were given back).  NULL when out of memory. */
static float *reload_original(const ops_weight *w)
{
    float *p = sd_malloc(w->n * sizeof(float));
    if (p && w->src->reload(w->ud, p, w->n)) {
        free(p);
        p = NULL;
    }
    return p;
}

/* The original's values into dst. */
static int read_original(const ops_weight *w, float *dst)
{
    if (!w->orig_gone) {
        memcpy(dst, w->orig, w->n * sizeof(float));
        return 0;
    }
    return w->src->reload(w->ud, dst, w->n);
}

/* A lazy replacement's values in a new buffer: the original through
 * w->patch.  NULL when out of memory or the patch failed. */
static float *materialize(const ops_weight *w)
{
    float *p = sd_malloc(w->n * sizeof(float));
    if (p && (read_original(w, p) || w->patch(w->patch_ud, p, w->n))) {
        free(p);
        p = NULL;
    }
    return p;
}

int ops_weight_read(const ops_weight *w, float *dst)
{
    if (w->patch && !w->patched) return read_original(w, dst) || w->patch(w->patch_ud, dst, w->n) ? -1 : 0;
    if (w->patched || !w->orig_gone) {
        memcpy(dst, current(w), w->n * sizeof(float));
        return 0;
    }
    return w->src->reload(w->ud, dst, w->n);
}

int ops_weight_replace(ops_weight *w, const float *data)
{
    float *p = sd_malloc(w->n * sizeof(float));
    if (!p) return -1;
    memcpy(p, data, w->n * sizeof(float));
    pthread_mutex_lock(&w->ctx->lock);
    drop_copies(w);
    free(w->patched);
    w->patched = p;
    w->patch = NULL;
    pthread_mutex_unlock(&w->ctx->lock);
    return 0;
}

int ops_weight_replace_lazy(ops_weight *w, ops_patch_fn patch, void *ud)
{
    pthread_mutex_lock(&w->ctx->lock);
    drop_copies(w);
    free(w->patched);
    w->patched = NULL;
    w->patch = patch;
    w->patch_ud = ud;
    pthread_mutex_unlock(&w->ctx->lock);
    return 0;
}

int ops_weight_restore(ops_weight *w)
{
    pthread_mutex_lock(&w->ctx->lock);
    if (w->patched || w->patch) drop_copies(w);   /* made from the replacement; the original's are re-derived on use */
    free(w->patched);
    w->patched = NULL;
    w->patch = NULL;
    pthread_mutex_unlock(&w->ctx->lock);
    return 0;
}

void ops_release_weights(ops_ctx *c)
{
    pthread_mutex_lock(&c->lock);
    for (ops_weight *w = c->weights; w; w = w->next) drop_copies(w);
    pthread_mutex_unlock(&c->lock);
}

void ops_weight_release(ops_weight *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->ctx->lock);
    drop_copies(w);
    pthread_mutex_unlock(&w->ctx->lock);
}

void ops_weights_stats(ops_ctx *c, size_t *copies, size_t *bytes, size_t *wino_bytes)
{
    *copies = *bytes = *wino_bytes = 0;
    pthread_mutex_lock(&c->lock);
    for (ops_weight *w = c->weights; w; w = w->next)
        for (int i = 0; i < w->ncopies; i++) {
            size_t b = dnnl_memory_desc_get_size(&w->copies[i].md);
            (*copies)++;
            *bytes += b;
            if (w->copies[i].md.format_kind != dnnl_blocked || w->copies[i].derived) *wino_bytes += b;
        }
    pthread_mutex_unlock(&c->lock);
}

/* The copy of w in layout wei, or a blocked copy of the same dims another
 * layout can be reordered from (*other; never from bf16 to f32: Winograd
 * layouts cannot be a source either). */
static wcopy *find_copy(ops_weight *w, const dnnl_memory_desc_t *wei, wcopy **other)
{
    *other = NULL;
    for (int i = 0; i < w->ncopies; i++) {
        wcopy *c = &w->copies[i];
        if (dnnl_memory_desc_equal(&c->md, wei)) return c;
        if (!c->derived && c->md.format_kind == dnnl_blocked && c->md.ndims == wei->ndims &&
            !memcmp(c->md.dims, wei->dims, sizeof(dnnl_dim_t) * (size_t)wei->ndims) &&
            (c->md.data_type == dnnl_f32 || c->md.data_type == wei->data_type))
            *other = c;
    }
    return NULL;
}

/* Into buf (layout wei): from another copy, or from the fp32 values at base
 * (plain layout pwei; with stack_rows every row twice in a row first).
 * 0, or -1 when out of memory (the fault is set). */
static int make_copy(ops_ctx *c, const wcopy *other, const float *base, size_t n, const dnnl_memory_desc_t *pwei,
                     const dnnl_memory_desc_t *wei, int stack_rows, void *buf)
{
    const dnnl_memory_desc_t *from = other ? &other->md : pwei;
    const void *src = other ? other->buf : (const void *)base;
    void *plain = NULL;
    if (stack_rows && !other) {
        /* bf16x2: every row twice in a row, as pwei describes */
        size_t L = n / (size_t)stack_rows;
        float *st = sd_malloc(2 * n * sizeof(float));
        if (!st) return ops_set_fault(c), -1;
        for (size_t r = 0; r < (size_t)stack_rows; r++) {
            memcpy(st + 2 * r * L, base + r * L, L * sizeof(float));
            memcpy(st + 2 * r * L + L, base + r * L, L * sizeof(float));
        }
        plain = st;
        src = st;
    }
    else if (other && wei->format_kind != dnnl_blocked) {
        /* Winograd layouts reorder only from the plain layout: unblock the copy first */
        plain = sd_malloc(n * sizeof(float));
        if (!plain) return ops_set_fault(c), -1;
        dnnl_primitive_t r0 = ops_make_reorder(c, from, pwei);
        ops_run_reorder(c, r0, from, src, pwei, plain);
        if (r0) dnnl_primitive_destroy(r0);
        from = pwei;
        src = plain;
    }
    dnnl_primitive_t r = ops_make_reorder(c, from, wei);
    ops_run_reorder(c, r, from, src, wei, buf);
    if (r) dnnl_primitive_destroy(r);
    free(plain);
    return ops_faulted(c) ? -1 : 0;
}

/* Room for one more copy on w (c's lock held): 0, or -1 out of memory. */
static int copies_room(ops_weight *w)
{
    if (w->ncopies < w->capcopies) return 0;
    int cap = w->capcopies ? 2 * w->capcopies : 2;
    wcopy *nc = sd_realloc(w->copies, (size_t)cap * sizeof *nc);
    if (!nc) return -1;
    w->copies = nc;
    w->capcopies = cap;
    return 0;
}

/* A new buffer holding w in layout wei (c's lock held), made from another
 * copy (other, or NULL) or from the fp32 values (re-derived when the owner
 * gave them back); NULL with the fault set when memory runs out. */
static void *new_layout(ops_ctx *c, ops_weight *w, size_t n, const dnnl_memory_desc_t *pwei,
                        const dnnl_memory_desc_t *wei, int stack_rows, const wcopy *other)
{
    void *buf = sd_aligned_alloc(64, dnnl_memory_desc_get_size(wei));
    if (!buf) return ops_set_fault(c), NULL;
    float *reloaded = NULL;
    const float *base = current(w);
    int lazy = !other && w->patch && !w->patched;   /* a lazy replacement, made for this copy only */
    if ((lazy || (!other && !w->patched && w->orig_gone)) &&
        !(base = reloaded = lazy ? materialize(w) : reload_original(w))) {
        free(buf);
        return ops_set_fault(c), NULL;
    }
    int rc = make_copy(c, other, base, n, pwei, wei, stack_rows, buf);
    free(reloaded);
    if (rc) {
        free(buf);
        return NULL;   /* the fault is set */
    }
    return buf;
}

/* w has a copy other layouts can come from now (a blocked one, or our
 * Winograd weights): the owner's original is not needed again (re-derived
 * through reload if it is), so the owner may give its pages back. */
static void original_done(ops_weight *w)
{
    if (w->patched || w->patch || w->orig_gone || !w->src) return;
    w->orig_gone = 1;
    if (w->src->copied) w->src->copied(w->ud, w->orig, w->n);
}

/* The weight in layout `want`, made on first use and kept on the handle.
 * The first blocked copy of an original tells its owner (src->copied): it
 * may give the original's pages back.  Later copies come from a blocked
 * copy, or from the original re-derived through the source. */
void *ops_weights_get(ops_ctx *c, ops_weight *w, size_t n, const dnnl_memory_desc_t *pwei,
                      const dnnl_memory_desc_t *wei, int stack_rows)
{
    SD_ASSERT(w && w->ctx == c && n == w->n);
    int plain_ok = !stack_rows && dnnl_memory_desc_equal(wei, pwei);
    if (plain_ok && (w->patched || (!w->patch && !w->orig_gone))) return (void *)current(w);
    pthread_mutex_lock(&c->lock);
    wcopy *other, *hit = find_copy(w, wei, &other);
    void *out = hit ? hit->buf : NULL;
    if (!hit) {
        size_t oi = other ? (size_t)(other - w->copies) : 0;
        if (copies_room(w)) ops_set_fault(c);
        else if ((out = new_layout(c, w, n, pwei, wei, stack_rows, other ? &w->copies[oi] : NULL))) {
            w->copies[w->ncopies++] = (wcopy){*wei, out, 0};
            if (!other && wei->format_kind == dnnl_blocked) original_done(w);
        }
    }
    pthread_mutex_unlock(&c->lock);
    return out;
}

void *ops_weights_derived(ops_ctx *c, ops_weight *w, size_t n, const dnnl_memory_desc_t *pwei,
                          const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *key, ops_weights_derive_fn derive,
                          void *ud)
{
    SD_ASSERT(w && w->ctx == c && n == w->n);
    pthread_mutex_lock(&c->lock);
    wcopy *other, *hit = find_copy(w, key, &other);   /* (a key no layout has) */
    void *out = hit ? hit->buf : NULL;
    if (!out && copies_room(w)) ops_set_fault(c);
    else if (!out) {
        /* the source layout: a copy already kept, or one made for this
         * derivation only (not kept: the derived copy is all the conv needs) */
        hit = find_copy(w, from, &other);
        void *tmp = NULL;
        const void *src = hit ? hit->buf : (tmp = new_layout(c, w, n, pwei, from, 0, other));
        void *buf = src ? sd_aligned_alloc(64, dnnl_memory_desc_get_size(key)) : NULL;
        if (buf) {
            derive(src, buf, ud);
            w->copies[w->ncopies++] = (wcopy){*key, buf, 1};
            out = buf;
            original_done(w);
        } else if (src)
            ops_set_fault(c);
        free(tmp);
    }
    pthread_mutex_unlock(&c->lock);
    return out;
}
