/* ops_weights.c — the ops layer's oneDNN plumbing: one engine, a stream per
 * calling thread, reorders, grow-only buffers, the weight cache, and the
 * precision (fp32, bf16x2, bf16: ops.h) with its fp32 -> bf16 conversions
 * of conv and matmul inputs and bf16x2's choice of split.
 *
 * A primitive (conv, matmul) may want its weights in a blocked layout of its
 * own; ops_weights_get reorders them once per (weight pointer, layout) into a
 * cache that lives until ops_release_weights() (called when a checkpoint is
 * closed).  Weights inside memory declared with ops_weights_releasable (the
 * loader's widened checkpoint) have their original pages given back to the
 * OS after the first blocked copy, so they are resident once, not twice;
 * other layouts of them are then reordered from that copy.  Elsewhere a
 * fingerprint of sampled values catches a freed pointer reused for other
 * weights. */
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

/* One reordered copy of a weight tensor in one layout. */
typedef struct wcache {
    const float *ptr;
    dnnl_memory_desc_t md;
    float finger[8];
    void *buf;
    int gave_back;   /* made from checkpoint memory whose pages were then given back */
} wcache;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t g_engine;
static wcache *g_w;
static size_t g_nw, g_capw;
/* Checkpoint memory whose weights may be dropped once copied. */
#define MAX_RANGES 16
static struct { uintptr_t lo, hi; } g_rng[MAX_RANGES];
static int g_nrng;
static _Thread_local dnnl_stream_t t_stream;
static _Thread_local void *t_scr;   /* the convs' and matmuls' scratchpad */
static _Thread_local size_t t_nscr;
/* What a thread made for itself (its stream, the buffers ops_grow grew in its
 * _Thread_local slots) is freed when the thread ends, by g_tkey's destructor:
 * without it every server worker lost them at shutdown. */
static pthread_key_t g_tkey;
#define MAX_TBUF 16
static _Thread_local void **t_buf[MAX_TBUF];
static _Thread_local size_t *t_have[MAX_TBUF];
static _Thread_local int t_nbuf;

/* Set when an op could not get memory (our seam or oneDNN's
 * dnnl_out_of_memory); ops skip their work while it is set and the pipeline
 * turns it into SD_ENOMEM (ops_take_fault).  Process-wide, as the rest of
 * the ops state: one generating thread at a time. */
static atomic_int g_fault;

void ops_set_fault(void) { atomic_store(&g_fault, 1); }
int ops_faulted(void) { return atomic_load_explicit(&g_fault, memory_order_relaxed); }
int ops_take_fault(void) { return atomic_exchange(&g_fault, 0); }

int ops_ck(dnnl_status_t st, const char *what)
{
    if (st == dnnl_success) return 0;
    if (st == dnnl_out_of_memory) {
        ops_set_fault();
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
 * overrides.  (oneDNN 2.6 ignores the bf16 "fpmath mode" on f32 tensors, so
 * the tensors themselves are bf16.) */
static int g_prec;
static int g_vec;   /* the CPU converts to bf16 in vectors (avx512bf16) */

static int has_amx(void)
{
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();   /* what oneDNN may use here, OS support included */
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core_amx) == (unsigned)dnnl_cpu_isa_avx512_core_amx;
}

static void engine_init(void)
{
    ops_ck(dnnl_engine_create(&g_engine, dnnl_cpu, 0), "engine_create");
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

int ops_precision(void)
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

void ops_set_precision(int prec)
{
    pthread_once(&g_once, engine_init);
    g_prec = prec;
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

void *ops_bf16_buffer(size_t bytes)
{
    return ops_grow(&t_b16, &t_nb16, bytes);
}

const void *ops_bf16_input(const float *x, size_t rows, int cols, int split)
{
    size_t n = rows * (size_t)cols;
    uint16_t *y = ops_grow(&t_b16, &t_nb16, n * sizeof(uint16_t) * (split ? 2 : 1));
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
        ops_ck(dnnl_stream_create(&t_stream, ops_engine(), dnnl_stream_default_flags), "stream_create");
        at_thread_end();
    }
    return t_stream;
}

void *ops_grow(void **buf, size_t *have, size_t need)
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
        if (!*buf) ops_set_fault();
    }
    return *buf;
}

dnnl_primitive_t ops_make_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to)
{
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p = NULL;
    if (ops_ck(dnnl_reorder_primitive_desc_create(&pd, from, ops_engine(), to, ops_engine(), NULL), "reorder desc"))
        return NULL;   /* out of memory: the fault is set */
    if (ops_ck(dnnl_primitive_create(&p, pd), "reorder primitive")) p = NULL;
    dnnl_primitive_desc_destroy(pd);
    return p;
}

void ops_run_reorder(dnnl_primitive_t r, const dnnl_memory_desc_t *from, const void *src,
                        const dnnl_memory_desc_t *to, void *dst)
{
    dnnl_memory_t a = NULL, b = NULL;
    if (!r || ops_ck(dnnl_memory_create(&a, from, ops_engine(), (void *)src), "memory reorder src") ||
        ops_ck(dnnl_memory_create(&b, to, ops_engine(), dst), "memory reorder dst"))
        goto done;   /* out of memory: the fault is set */
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
    if (!ops_ck(dnnl_primitive_execute(r, ops_stream(), 2, args), "reorder execute"))
        ops_ck(dnnl_stream_wait(ops_stream()), "stream_wait");
done:
    if (a) dnnl_memory_destroy(a);
    if (b) dnnl_memory_destroy(b);
}

static void fingerprint(const float *w, size_t n, float f[8])
{
    for (int i = 0; i < 8; i++) f[i] = w[(n - 1) * i / 7];
}

static int releasable(const float *w, size_t bytes)
{
    for (int i = 0; i < g_nrng; i++)
        if ((uintptr_t)w >= g_rng[i].lo && (uintptr_t)w + bytes <= g_rng[i].hi) return 1;
    return 0;
}

void ops_weights_releasable(const void *p, size_t bytes)
{
    if (!p || !bytes) return;
    pthread_mutex_lock(&g_lock);
    if (g_nrng < MAX_RANGES) {
        g_rng[g_nrng].lo = (uintptr_t)p;
        g_rng[g_nrng].hi = (uintptr_t)p + bytes;
        g_nrng++;
    }
    pthread_mutex_unlock(&g_lock);
}

/* One argument of a primitive: a oneDNN memory over ptr, appended to m and
 * args; -1 when oneDNN is out of memory (the fault is set). */
static int add_arg(dnnl_memory_t *m, dnnl_exec_arg_t *args, int *n, int arg, const dnnl_memory_desc_t *md,
                   const void *ptr, const char *what)
{
    if (ops_ck(dnnl_memory_create(&m[*n], md, ops_engine(), (void *)ptr), what)) return -1;
    args[*n] = (dnnl_exec_arg_t){arg, m[*n]};
    (*n)++;
    return 0;
}

void ops_run_forward(dnnl_primitive_t prim, const char *what, const dnnl_memory_desc_t *smd, const void *src,
                     const dnnl_memory_desc_t *wmd, const void *wei, const dnnl_memory_desc_t *bmd,
                     const void *bias, const dnnl_memory_desc_t *dmd, void *dst,
                     const dnnl_memory_desc_t *scratch)
{
    dnnl_memory_t m[5];
    dnnl_exec_arg_t args[5];
    int n = 0;
    size_t nscr = dnnl_memory_desc_get_size(scratch);
    void *scr = nscr ? ops_grow(&t_scr, &t_nscr, nscr) : NULL;
    if (!prim || !src || !wei || !dst || (nscr && !scr) ||   /* a fault earlier on (ops_faulted) */
        add_arg(m, args, &n, DNNL_ARG_SRC, smd, src, "memory src") ||
        add_arg(m, args, &n, DNNL_ARG_WEIGHTS, wmd, wei, "memory weights") ||
        add_arg(m, args, &n, DNNL_ARG_DST, dmd, dst, "memory dst") ||
        (bias && add_arg(m, args, &n, DNNL_ARG_BIAS, bmd, bias, "memory bias")) ||
        (nscr && add_arg(m, args, &n, DNNL_ARG_SCRATCHPAD, scratch, scr, "memory scratchpad")))
        goto done;
    dnnl_stream_t st = ops_stream();
    if (!ops_ck(dnnl_primitive_execute(prim, st, n, args), what)) ops_ck(dnnl_stream_wait(st), "stream_wait");
done:
    for (int i = 0; i < n; i++) dnnl_memory_destroy(m[i]);
}

static _Thread_local void *t_y2;   /* the two output halves of a row-split product */
static _Thread_local size_t t_ny2;

void ops_run_forward_split(dnnl_primitive_t prim, const char *what, const dnnl_memory_desc_t *smd, const void *src,
                           const dnnl_memory_desc_t *wmd, const void *wei, const dnnl_memory_desc_t *dmd,
                           const dnnl_memory_desc_t *scratch, float *y, int C, const float *b, int accum)
{
    size_t n = dnnl_memory_desc_get_size(dmd) / sizeof(float) / 2;
    float *y2 = ops_grow(&t_y2, &t_ny2, 2 * n * sizeof(float));
    if (!y2) return;
    ops_run_forward(prim, what, smd, src, wmd, wei, NULL, NULL, dmd, y2, scratch);
    if (!ops_faulted()) split_combine(y, y2, n, C, b, accum);
}

/* ops_weights_get's way out when memory runs out: the fault set, the cache
 * lock released, NULL. */
static void *no_memory(void)
{
    ops_set_fault();
    pthread_mutex_unlock(&g_lock);
    return NULL;
}

/* The weights at w in layout `want`, reordered on first use.  A tensor in
 * checkpoint memory has its original pages dropped after the first copy;
 * another layout of it is then reordered from that copy.  Elsewhere a
 * fingerprint of sampled values catches a freed pointer reused for other
 * weights. */
void *ops_weights_get(const float *w, size_t n, const dnnl_memory_desc_t *pwei, const dnnl_memory_desc_t *wei,
                      int stack_rows)
{
    if (dnnl_memory_desc_equal(wei, pwei)) return (void *)w;
    pthread_once(&g_once, engine_init);
    pthread_mutex_lock(&g_lock);
    int rel = releasable(w, n * sizeof(float));
    float f[8] = {0};
    if (!rel) fingerprint(w, n, f);
    wcache *other = NULL;
    int gone = 0;   /* the original's pages were given back */
    for (size_t i = 0; i < g_nw; i++) {
        wcache *c = &g_w[i];
        if (c->ptr != w) continue;
        if (!rel && memcmp(c->finger, f, sizeof f)) {   /* stale copy of reused memory */
            free(c->buf);
            *c = g_w[--g_nw];
            i--;
            continue;
        }
        if (dnnl_memory_desc_equal(&c->md, wei)) {
            pthread_mutex_unlock(&g_lock);
            return c->buf;
        }
        /* a blocked copy of the same tensor can be the source of another
         * layout (Winograd layouts cannot); same pointer, other dims is not
         * the same tensor */
        if (c->md.format_kind == dnnl_blocked && c->md.ndims == wei->ndims &&
            !memcmp(c->md.dims, wei->dims, sizeof(dnnl_dim_t) * (size_t)wei->ndims) &&
            (c->md.data_type == dnnl_f32 || c->md.data_type == wei->data_type))   /* never from bf16 to f32 */
            other = c;
        gone |= c->gave_back;
    }
    if (!other && gone) {
        /* the original is needed (a first copy at another precision or
         * shape) but its pages were given back: a checkpoint's weights are
         * used at one precision (chosen before its first use) and shape */
        sd_panic("ops: a weight tensor was wanted at another precision or shape after its original was given back");
    }
    if (g_nw == g_capw) {
        size_t cap = g_capw ? 2 * g_capw : 256;
        size_t oi = other ? (size_t)(other - g_w) : 0;
        wcache *nw = sd_realloc(g_w, cap * sizeof *nw);
        if (!nw) return no_memory();
        g_w = nw;
        g_capw = cap;
        if (other) other = &g_w[oi];
    }
    wcache *c = &g_w[g_nw];
    c->ptr = w;
    c->md = *wei;
    c->gave_back = 0;
    memcpy(c->finger, f, sizeof f);
    size_t bytes = dnnl_memory_desc_get_size(wei);
    c->buf = sd_aligned_alloc(64, bytes);
    if (!c->buf) return no_memory();
    const dnnl_memory_desc_t *from = other ? &other->md : pwei;
    const void *src = other ? other->buf : (const void *)w;
    void *plain = NULL;
    if (stack_rows && !other) {
        /* bf16x2: every row of w twice in a row, as pwei describes */
        size_t L = n / (size_t)stack_rows;
        float *st = sd_malloc(2 * n * sizeof(float));
        if (!st) { free(c->buf); return no_memory(); }
        for (size_t r = 0; r < (size_t)stack_rows; r++) {
            memcpy(st + 2 * r * L, w + r * L, L * sizeof(float));
            memcpy(st + 2 * r * L + L, w + r * L, L * sizeof(float));
        }
        plain = st;
        src = st;
    }
    else if (other && wei->format_kind != dnnl_blocked) {
        /* Winograd layouts reorder only from the plain layout: unblock the copy first */
        plain = sd_malloc(n * sizeof(float));
        if (!plain) { free(c->buf); return no_memory(); }
        dnnl_primitive_t r0 = ops_make_reorder(from, pwei);
        ops_run_reorder(r0, from, src, pwei, plain);
        dnnl_primitive_destroy(r0);
        from = pwei;
        src = plain;
    }
    dnnl_primitive_t r = ops_make_reorder(from, wei);
    ops_run_reorder(r, from, src, wei, c->buf);
    dnnl_primitive_destroy(r);
    free(plain);
    g_nw++;
    if (rel && !other && wei->format_kind == dnnl_blocked) {
        /* first plain-reorderable copy: the original is not read again */
        uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)w + ps - 1) & ~(ps - 1),
                  b = ((uintptr_t)w + n * sizeof(float)) & ~(ps - 1);
        if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
        g_w[g_nw - 1].gave_back = 1;
    }
    pthread_mutex_unlock(&g_lock);
    return c->buf;
}

void ops_weights_stats(size_t *copies, size_t *bytes, size_t *wino_bytes)
{
    pthread_mutex_lock(&g_lock);
    *copies = g_nw;
    *bytes = *wino_bytes = 0;
    for (size_t i = 0; i < g_nw; i++) {
        size_t b = dnnl_memory_desc_get_size(&g_w[i].md);
        *bytes += b;
        if (g_w[i].md.format_kind != dnnl_blocked) *wino_bytes += b;
    }
    pthread_mutex_unlock(&g_lock);
}

void ops_release_weights(void)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_nw; i++) free(g_w[i].buf);
    free(g_w);
    g_w = NULL;
    g_nw = g_capw = 0;
    g_nrng = 0;
    pthread_mutex_unlock(&g_lock);
}

void ops_weights_forget(const void *p, size_t bytes)
{
    if (!p) return;
    uintptr_t lo = (uintptr_t)p, hi = lo + bytes;
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_nw; i++)
        if ((uintptr_t)g_w[i].ptr >= lo && (uintptr_t)g_w[i].ptr < hi) {
            free(g_w[i].buf);
            g_w[i--] = g_w[--g_nw];
        }
    for (int i = 0; i < g_nrng; i++)
        if (g_rng[i].lo == lo && g_rng[i].hi == hi) g_rng[i--] = g_rng[--g_nrng];
    pthread_mutex_unlock(&g_lock);
}

