/* ops_conv.c — op_conv2d on oneDNN convolution primitives in the library's
 * preferred (blocked) memory formats.
 *
 * A primitive is built once per distinct shape (N, IC, H, W, OC, KH, KW,
 * stride, pad, bias or not) with every memory format left to oneDNN ("any")
 * and kept in a small LRU cache with the reorders that bring the caller's
 * plain NCHW activations into the primitive's layout and back.  Weights are
 * reordered once per (weight pointer, layout) into a cache that lives until
 * ops_release_weights() (called when a checkpoint is closed); a fingerprint
 * of sampled values guards against a freed pointer being reused for other
 * weights.  Blocked activations go through per-thread buffers that only grow,
 * so steady-state steps allocate nothing.  Stride-1 3x3 convolutions may use
 * Winograd (SD_CONV_WINOGRAD=1): faster, but its error must be checked
 * against the parity tolerances, so it is off by default.
 * Any oneDNN failure is a bug: print and abort. */
#include "ops.h"
#include "ops_prof.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CONV_CACHE 96
/* Winograd by default only where the image is large: there it is ~2.5x
 * faster than direct on this class of CPU, and the layers there have small
 * weights, so the larger Winograd weight copies cost little memory. */
#ifndef WINO_MIN_PIXELS
#define WINO_MIN_PIXELS (32 * 32)
#endif
/* ... and not where the input is huge (the VAE's 256²/512² layers): oneDNN's
 * Winograd scratch is ~4x the input, gigabytes there. */
#define WINO_MAX_INPUT (1L << 24)

/* nhwc: the caller's activations are NHWC (else NCHW); accum: y += conv(x). */
typedef struct conv_key { int N, IC, H, W, OC, KH, KW, stride, pad, bias, nhwc, accum; } conv_key;

typedef struct conv_entry {
    conv_key key;
    unsigned long long used;       /* LRU stamp; 0 = empty slot */
    dnnl_primitive_t prim;
    dnnl_primitive_t rsrc, rdst;   /* plain->blocked src, blocked->plain dst; NULL if plain */
    dnnl_primitive_t rdin;         /* plain->blocked dst before an accumulating conv; or NULL */
    dnnl_memory_desc_t src, wei, bia, dst;      /* as the primitive wants them */
    dnnl_memory_desc_t psrc, pwei, pdst;        /* plain NCHW / OIHW */
    dnnl_memory_desc_t scratch;                 /* user-managed scratchpad */
} conv_entry;

/* One reordered copy of a weight tensor in one layout. */
typedef struct wcache {
    const float *ptr;
    dnnl_memory_desc_t md;
    float finger[8];
    void *buf;
} wcache;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t g_engine;
static conv_entry g_cache[CONV_CACHE];
static unsigned long long g_clock;
static wcache *g_w;
static size_t g_nw, g_capw;
static int g_wino;
/* Checkpoint memory whose conv weights may be dropped once copied. */
#define MAX_RANGES 16
static struct { uintptr_t lo, hi; } g_rng[MAX_RANGES];
static int g_nrng;
static _Thread_local dnnl_stream_t t_stream;
static _Thread_local void *t_bsrc, *t_bdst, *t_scr;
static _Thread_local size_t t_nsrc, t_ndst, t_nscr;

static void ck(dnnl_status_t st, const char *what)
{
    if (st != dnnl_success) {
        fprintf(stderr, "ops: oneDNN %s failed (status %d)\n", what, (int)st);
        abort();
    }
}

static void engine_init(void)
{
    ck(dnnl_engine_create(&g_engine, dnnl_cpu, 0), "engine_create");
    /* SD_CONV_WINOGRAD: 0 = never, 1 = every stride-1 3x3 conv, unset/auto =
     * stride-1 3x3 convs with outputs of at least WINO_MIN_PIXELS pixels */
    const char *s = getenv("SD_CONV_WINOGRAD");
    g_wino = !s || !*s || !strcmp(s, "auto") ? 2 : *s == '1';
}

static void *grow(void **buf, size_t *have, size_t need)
{
    if (need > *have) {
        free(*buf);
        *buf = aligned_alloc(64, (need + 63) & ~(size_t)63);
        if (!*buf) { fprintf(stderr, "ops: conv buffer allocation failed (%zu bytes)\n", need); abort(); }
        *have = need;
    }
    return *buf;
}

static dnnl_primitive_t make_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to)
{
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    ck(dnnl_reorder_primitive_desc_create(&pd, from, g_engine, to, g_engine, NULL), "reorder desc");
    ck(dnnl_primitive_create(&p, pd), "reorder primitive");
    dnnl_primitive_desc_destroy(pd);
    return p;
}

static void run_reorder(dnnl_primitive_t r, const dnnl_memory_desc_t *from, const void *src,
                        const dnnl_memory_desc_t *to, void *dst)
{
    dnnl_memory_t a, b;
    ck(dnnl_memory_create(&a, from, g_engine, (void *)src), "memory reorder src");
    ck(dnnl_memory_create(&b, to, g_engine, dst), "memory reorder dst");
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
    ck(dnnl_primitive_execute(r, t_stream, 2, args), "reorder execute");
    ck(dnnl_stream_wait(t_stream), "stream_wait");
    dnnl_memory_destroy(a);
    dnnl_memory_destroy(b);
}

static int try_build(conv_entry *e, const conv_key *k, dnnl_alg_kind_t alg)
{
    int OH = (k->H + 2 * k->pad - k->KH) / k->stride + 1, OW = (k->W + 2 * k->pad - k->KW) / k->stride + 1;
    dnnl_dims_t sd = {k->N, k->IC, k->H, k->W}, wd = {k->OC, k->IC, k->KH, k->KW}, bd = {k->OC},
                dd = {k->N, k->OC, OH, OW};
    /* right padding chosen so that oneDNN's output size equals the floor formula */
    dnnl_dims_t strides = {k->stride, k->stride}, pl = {k->pad, k->pad},
                pr = {(OH - 1) * k->stride + k->KH - k->H - k->pad, (OW - 1) * k->stride + k->KW - k->W - k->pad};
    dnnl_memory_desc_t as, aw, ad;
    dnnl_format_tag_t plain = k->nhwc ? dnnl_nhwc : dnnl_nchw;
    ck(dnnl_memory_desc_init_by_tag(&e->psrc, 4, sd, dnnl_f32, plain), "md src");
    ck(dnnl_memory_desc_init_by_tag(&e->pwei, 4, wd, dnnl_f32, dnnl_oihw), "md weights");
    ck(dnnl_memory_desc_init_by_tag(&e->bia, 1, bd, dnnl_f32, dnnl_x), "md bias");
    ck(dnnl_memory_desc_init_by_tag(&e->pdst, 4, dd, dnnl_f32, plain), "md dst");
    /* NHWC callers get NHWC in and out for direct convs (oneDNN's brgconv
     * kernels work on it natively: no reorders); Winograd picks its own. */
    dnnl_format_tag_t act = k->nhwc && alg == dnnl_convolution_direct ? dnnl_nhwc : dnnl_format_tag_any;
    ck(dnnl_memory_desc_init_by_tag(&as, 4, sd, dnnl_f32, act), "md src any");
    ck(dnnl_memory_desc_init_by_tag(&aw, 4, wd, dnnl_f32, dnnl_format_tag_any), "md weights any");
    ck(dnnl_memory_desc_init_by_tag(&ad, 4, dd, dnnl_f32, act), "md dst any");
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, alg, &as, &aw, k->bias ? &e->bia : NULL,
                                           &ad, strides, pl, pr) != dnnl_success)
        return -1;
    dnnl_primitive_attr_t attr;
    ck(dnnl_primitive_attr_create(&attr), "attr_create");
    /* one scratchpad for all convs (ours, grown once), not one per cached primitive */
    ck(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "attr_set_scratchpad_mode");
    if (k->accum) {   /* dst = conv(src) + dst: the residual add as a "sum" post-op */
        dnnl_post_ops_t po;
        ck(dnnl_post_ops_create(&po), "post_ops_create");
        ck(dnnl_post_ops_append_sum(po, 1.f), "post_ops_append_sum");
        ck(dnnl_primitive_attr_set_post_ops(attr, po), "attr_set_post_ops");
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &cd, attr, g_engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return -1;
    e->src = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    e->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    e->wei = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    e->dst = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    ck(dnnl_primitive_create(&e->prim, pd), "convolution primitive");
    dnnl_primitive_desc_destroy(pd);
    e->rsrc = dnnl_memory_desc_equal(&e->src, &e->psrc) ? NULL : make_reorder(&e->psrc, &e->src);
    e->rdst = dnnl_memory_desc_equal(&e->dst, &e->pdst) ? NULL : make_reorder(&e->dst, &e->pdst);
    e->rdin = e->rdst && k->accum ? make_reorder(&e->pdst, &e->dst) : NULL;
    e->key = *k;
    return 0;
}

static void conv_entry_build(conv_entry *e, const conv_key *k)
{
    long px = (long)k->H * k->W;
    int big = px >= WINO_MIN_PIXELS && px * k->IC <= WINO_MAX_INPUT;
    if ((g_wino == 1 || (g_wino == 2 && big)) && k->KH == 3 && k->KW == 3 && k->stride == 1 && k->pad == 1 &&
        try_build(e, k, dnnl_convolution_winograd) == 0)
        return;
    if (try_build(e, k, dnnl_convolution_direct)) {
        fprintf(stderr, "ops: oneDNN convolution desc failed\n");
        abort();
    }
}

static void conv_entry_clear(conv_entry *e)
{
    dnnl_primitive_destroy(e->prim);
    if (e->rsrc) dnnl_primitive_destroy(e->rsrc);
    if (e->rdst) dnnl_primitive_destroy(e->rdst);
    if (e->rdin) dnnl_primitive_destroy(e->rdin);
}

/* Find or build the primitive for k; returns it with the cache lock released.
 * Entries are never destroyed while in use because only the engine's single
 * worker thread runs convs at a time; the lock guards the table itself. */
static conv_entry *conv_lookup(const conv_key *k)
{
    pthread_mutex_lock(&g_lock);
    conv_entry *hit = NULL, *victim = &g_cache[0];
    for (int i = 0; i < CONV_CACHE; i++) {
        conv_entry *e = &g_cache[i];
        if (e->used && !memcmp(&e->key, k, sizeof *k)) { hit = e; break; }
        if (e->used < victim->used) victim = e;
    }
    if (!hit) {
        if (victim->used) conv_entry_clear(victim);
        conv_entry_build(victim, k);
        hit = victim;
    }
    hit->used = ++g_clock;
    pthread_mutex_unlock(&g_lock);
    return hit;
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

/* The weights of e in its layout, reordered on first use.  A tensor in
 * checkpoint memory has its original pages dropped after the first copy;
 * another layout of it is then reordered from that copy.  Elsewhere a
 * fingerprint of sampled values catches a freed pointer reused for other
 * weights. */
static void *weights_for(conv_entry *e, const float *w)
{
    if (dnnl_memory_desc_equal(&e->wei, &e->pwei)) return (void *)w;
    size_t n = (size_t)e->key.OC * e->key.IC * e->key.KH * e->key.KW;
    pthread_mutex_lock(&g_lock);
    int rel = releasable(w, n * sizeof(float));
    float f[8] = {0};
    if (!rel) fingerprint(w, n, f);
    wcache *other = NULL;
    for (size_t i = 0; i < g_nw; i++) {
        wcache *c = &g_w[i];
        if (c->ptr != w) continue;
        if (!rel && memcmp(c->finger, f, sizeof f)) {   /* stale copy of reused memory */
            free(c->buf);
            *c = g_w[--g_nw];
            i--;
            continue;
        }
        if (dnnl_memory_desc_equal(&c->md, &e->wei)) {
            pthread_mutex_unlock(&g_lock);
            return c->buf;
        }
        if (c->md.format_kind == dnnl_blocked) other = c;   /* Winograd layouts cannot be reordered from */
    }
    if (g_nw == g_capw) {
        size_t cap = g_capw ? 2 * g_capw : 256;
        size_t oi = other ? (size_t)(other - g_w) : 0;
        wcache *nw = realloc(g_w, cap * sizeof *nw);
        if (!nw) { fprintf(stderr, "ops: weight cache allocation failed\n"); abort(); }
        g_w = nw;
        g_capw = cap;
        if (other) other = &g_w[oi];
    }
    wcache *c = &g_w[g_nw];
    c->ptr = w;
    c->md = e->wei;
    memcpy(c->finger, f, sizeof f);
    size_t bytes = dnnl_memory_desc_get_size(&e->wei);
    c->buf = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!c->buf) { fprintf(stderr, "ops: weight cache allocation failed (%zu bytes)\n", bytes); abort(); }
    const dnnl_memory_desc_t *from = other ? &other->md : &e->pwei;
    const void *src = other ? other->buf : (const void *)w;
    void *plain = NULL;
    if (other && e->wei.format_kind != dnnl_blocked) {
        /* Winograd layouts reorder only from plain OIHW: unblock the copy first */
        plain = malloc(n * sizeof(float));
        if (!plain) { fprintf(stderr, "ops: weight reorder allocation failed\n"); abort(); }
        dnnl_primitive_t r0 = make_reorder(from, &e->pwei);
        run_reorder(r0, from, src, &e->pwei, plain);
        dnnl_primitive_destroy(r0);
        from = &e->pwei;
        src = plain;
    }
    dnnl_primitive_t r = make_reorder(from, &e->wei);
    run_reorder(r, from, src, &e->wei, c->buf);
    dnnl_primitive_destroy(r);
    free(plain);
    g_nw++;
    if (rel && !other && e->wei.format_kind == dnnl_blocked) {
        /* first plain-reorderable copy: the original is not read again */
        uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)w + ps - 1) & ~(ps - 1),
                  b = ((uintptr_t)w + n * sizeof(float)) & ~(ps - 1);
        if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
    }
    pthread_mutex_unlock(&g_lock);
    return c->buf;
}

void ops_conv_set_winograd(int mode)
{
    pthread_once(&g_once, engine_init);
    pthread_mutex_lock(&g_lock);
    g_wino = mode;
    for (int i = 0; i < CONV_CACHE; i++)   /* primitives are rebuilt under the new rule */
        if (g_cache[i].used) {
            conv_entry_clear(&g_cache[i]);
            g_cache[i].used = 0;
        }
    pthread_mutex_unlock(&g_lock);
}

int ops_conv_winograd(void)
{
    pthread_once(&g_once, engine_init);
    return g_wino;
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

static void conv2d(const float *x, int N, int IC, int H, int W,
                   const float *w, const float *b, int OC, int KH, int KW,
                   int stride, int pad, float *y, int nhwc, int accum)
{
    conv_key k;
    memset(&k, 0, sizeof k);   /* padding bytes take part in memcmp */
    k.N = N; k.IC = IC; k.H = H; k.W = W; k.OC = OC; k.KH = KH; k.KW = KW;
    k.stride = stride; k.pad = pad; k.bias = b != NULL; k.nhwc = nhwc; k.accum = accum;
    pthread_once(&g_once, engine_init);
    if (!t_stream) ck(dnnl_stream_create(&t_stream, g_engine, dnnl_stream_default_flags), "stream_create");
    conv_entry *e = conv_lookup(&k);
    void *wb = weights_for(e, w);
    const void *src = x;
    void *dst = y;
    if (e->rsrc) {
        void *bs = grow(&t_bsrc, &t_nsrc, dnnl_memory_desc_get_size(&e->src));
        run_reorder(e->rsrc, &e->psrc, x, &e->src, bs);
        src = bs;
    }
    if (e->rdst) {
        dst = grow(&t_bdst, &t_ndst, dnnl_memory_desc_get_size(&e->dst));
        if (e->rdin) run_reorder(e->rdin, &e->pdst, y, &e->dst, dst);
    }
    dnnl_memory_t ms, mw, mb = NULL, md;
    ck(dnnl_memory_create(&ms, &e->src, g_engine, (void *)src), "memory src");
    ck(dnnl_memory_create(&mw, &e->wei, g_engine, wb), "memory weights");
    ck(dnnl_memory_create(&md, &e->dst, g_engine, dst), "memory dst");
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};
    int nargs = 3;
    size_t nscr = dnnl_memory_desc_get_size(&e->scratch);
    dnnl_memory_t mscr = NULL;
    if (nscr) {
        ck(dnnl_memory_create(&mscr, &e->scratch, g_engine, grow(&t_scr, &t_nscr, nscr)), "memory scratchpad");
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mscr};
    }
    if (b) {
        ck(dnnl_memory_create(&mb, &e->bia, g_engine, (void *)b), "memory bias");
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mb};
    }
    ck(dnnl_primitive_execute(e->prim, t_stream, nargs, args), "convolution execute");
    ck(dnnl_stream_wait(t_stream), "stream_wait");
    dnnl_memory_destroy(ms); dnnl_memory_destroy(mw); dnnl_memory_destroy(md);
    if (mb) dnnl_memory_destroy(mb);
    if (mscr) dnnl_memory_destroy(mscr);
    if (e->rdst) run_reorder(e->rdst, &e->dst, dst, &e->pdst, y);
}

void op_conv2d(const float *x, int N, int IC, int H, int W,
               const float *w, const float *b, int OC, int KH, int KW,
               int stride, int pad, float *y)
{
    PROF_BEGIN;
    conv2d(x, N, IC, H, W, w, b, OC, KH, KW, stride, pad, y, 0, 0);
    PROF_END(PROF_CONV);
}

void op_conv2d_nhwc(const float *x, int N, int IC, int H, int W,
                    const float *w, const float *b, int OC, int KH, int KW,
                    int stride, int pad, float *y, int accum)
{
    PROF_BEGIN;
    conv2d(x, N, IC, H, W, w, b, OC, KH, KW, stride, pad, y, 1, accum);
    PROF_END(PROF_CONV);
}
