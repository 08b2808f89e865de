/* ops_conv.c — op_conv2d_nhwc on oneDNN convolution primitives.
 *
 * A primitive is built once per distinct shape (N, IC, H, W, OC, KH, KW,
 * stride, pad, bias, layout, accumulate) and kept in a small LRU cache with
 * the reorders that bring the caller's activations into the primitive's
 * layout and back.  NHWC callers (the UNet and VAE) get NHWC in and out for
 * direct convs, which oneDNN's brgconv kernels use natively: no reorders.
 * Weights come from the shared cache (ops_weights.c), reordered once.
 * accumulate = a "sum" post-op: y += conv(x), the residual add fused.
 * Stride-1 3x3 convs use Winograd by the rule below (SD_CONV_WINOGRAD=0/1
 * forces it off/on, =wide drops the weight-size part of the rule): its error against direct is ~4e-6 relative at full size,
 * inside the parity tolerances (tests/parity/test_winograd.sh, bench
 * --winograd-check).  Blocked activations and the scratchpad go through
 * per-thread buffers that only grow, so steady-state steps allocate nothing.
 * Any oneDNN failure is a bug: print and abort. */
#include "ops.h"
#include "ops_dnnl.h"
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
/* ... and only where the Winograd weight copy (up to 4x the fp32 weights
 * with F(4,3): 36·IC·OC floats) is at most twice the input activation
 * (N·H·W·IC floats), i.e. 18·OC <= N·H·W.  So it is used on large images
 * (UNet first level, the VAE's 128²..512² layers), where most of the time
 * goes, and not on the UNet's 640/1280-channel or the VAE's 64² layers,
 * whose copies would cost gigabytes (peak RSS at 512x512 ~6 -> ~8 GB). */
#define WINO_WEIGHT_RATIO 18
/* SD_CONV_WINOGRAD=wide (OPS_WINO_WIDE) keeps the first two rules only: also
 * the UNet's 32x32 level and the VAE's 64x64 one, ~10 % faster steps and
 * decodes for ~1.4 GB more at 512x512 (bench/README.md). */

/* pad: left/right (and top/bottom unless banded); pt, pb: top/bottom;
 * nhwc: the caller's activations are NHWC (else NCHW); accum: y += conv(x). */
typedef struct conv_key { int N, IC, H, W, OC, KH, KW, stride, pad, pt, pb, bias, nhwc, accum; } conv_key;

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

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static conv_entry g_cache[CONV_CACHE];
static unsigned long long g_clock;
static int g_wino;
static _Thread_local void *t_bsrc, *t_bdst;
static _Thread_local size_t t_nsrc, t_ndst;

static void engine_init(void)
{
    /* SD_CONV_WINOGRAD: 0 = never, 1 = every stride-1 3x3 conv, unset/auto =
     * by the rules above, wide = by the first two */
    const char *s = getenv("SD_CONV_WINOGRAD");
    g_wino = OPS_WINO_AUTO;
    if (s && !strcmp(s, "0")) g_wino = OPS_WINO_OFF;
    else if (s && !strcmp(s, "1")) g_wino = OPS_WINO_ALL;
    else if (s && !strcmp(s, "wide")) g_wino = OPS_WINO_WIDE;
    else if (s && *s && strcmp(s, "auto"))
        fprintf(stderr, "sdserve: SD_CONV_WINOGRAD=%s is not 0, 1, auto or wide; using auto\n", s);
}

static int try_build(conv_entry *e, const conv_key *k, dnnl_alg_kind_t alg)
{
    int OH = (k->H + k->pt + k->pb - k->KH) / k->stride + 1, OW = (k->W + 2 * k->pad - k->KW) / k->stride + 1;
    dnnl_dims_t sd = {k->N, k->IC, k->H, k->W}, wd = {k->OC, k->IC, k->KH, k->KW}, bd = {k->OC},
                dd = {k->N, k->OC, OH, OW};
    /* right padding chosen so that oneDNN's output size equals the floor formula */
    dnnl_dims_t strides = {k->stride, k->stride}, pl = {k->pt, k->pad},
                pr = {(OH - 1) * k->stride + k->KH - k->H - k->pt, (OW - 1) * k->stride + k->KW - k->W - k->pad};
    dnnl_memory_desc_t as, aw, ad;
    dnnl_format_tag_t plain = k->nhwc ? dnnl_nhwc : dnnl_nchw;
    ops_ck(dnnl_memory_desc_init_by_tag(&e->psrc, 4, sd, dnnl_f32, plain), "md src");
    ops_ck(dnnl_memory_desc_init_by_tag(&e->pwei, 4, wd, dnnl_f32, dnnl_oihw), "md weights");
    ops_ck(dnnl_memory_desc_init_by_tag(&e->bia, 1, bd, dnnl_f32, dnnl_x), "md bias");
    ops_ck(dnnl_memory_desc_init_by_tag(&e->pdst, 4, dd, dnnl_f32, plain), "md dst");
    /* NHWC callers get NHWC in and out for direct convs (oneDNN's brgconv
     * kernels work on it natively: no reorders); Winograd picks its own. */
    dnnl_format_tag_t act = k->nhwc && alg == dnnl_convolution_direct ? dnnl_nhwc : dnnl_format_tag_any;
    ops_ck(dnnl_memory_desc_init_by_tag(&as, 4, sd, dnnl_f32, act), "md src any");
    ops_ck(dnnl_memory_desc_init_by_tag(&aw, 4, wd, dnnl_f32, dnnl_format_tag_any), "md weights any");
    ops_ck(dnnl_memory_desc_init_by_tag(&ad, 4, dd, dnnl_f32, act), "md dst any");
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, alg, &as, &aw, k->bias ? &e->bia : NULL,
                                           &ad, strides, pl, pr) != dnnl_success)
        return -1;
    dnnl_primitive_attr_t attr;
    ops_ck(dnnl_primitive_attr_create(&attr), "attr_create");
    /* one scratchpad for all convs (ours, grown once), not one per cached primitive */
    ops_ck(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "attr_set_scratchpad_mode");
    if (k->accum) {   /* dst = conv(src) + dst: the residual add as a "sum" post-op */
        dnnl_post_ops_t po;
        ops_ck(dnnl_post_ops_create(&po), "post_ops_create");
        ops_ck(dnnl_post_ops_append_sum(po, 1.f), "post_ops_append_sum");
        ops_ck(dnnl_primitive_attr_set_post_ops(attr, po), "attr_set_post_ops");
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &cd, attr, ops_engine(), NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return -1;
    e->src = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    e->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    e->wei = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    e->dst = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    ops_ck(dnnl_primitive_create(&e->prim, pd), "convolution primitive");
    dnnl_primitive_desc_destroy(pd);
    e->rsrc = dnnl_memory_desc_equal(&e->src, &e->psrc) ? NULL : ops_make_reorder(&e->psrc, &e->src);
    e->rdst = dnnl_memory_desc_equal(&e->dst, &e->pdst) ? NULL : ops_make_reorder(&e->dst, &e->pdst);
    e->rdin = e->rdst && k->accum ? ops_make_reorder(&e->pdst, &e->dst) : NULL;
    e->key = *k;
    return 0;
}

static int wino_shape(const conv_key *k)
{
    return k->KH == 3 && k->KW == 3 && k->stride == 1 && k->pad == 1 && k->pt <= 1 && k->pb <= 1;
}

static void conv_entry_build(conv_entry *e, const conv_key *k)
{
    long px = (long)k->H * k->W;
    int big = px >= WINO_MIN_PIXELS && px * k->IC <= WINO_MAX_INPUT &&
              (g_wino == OPS_WINO_WIDE || (long)WINO_WEIGHT_RATIO * k->OC <= k->N * px);
    if ((g_wino == OPS_WINO_ALL || (g_wino >= OPS_WINO_AUTO && big)) && wino_shape(k) &&
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

static void conv_run(const conv_key *k, const float *x, const float *w, const float *b, float *y)
{
    int OC = k->OC, IC = k->IC, KH = k->KH, KW = k->KW;
    conv_entry *e = conv_lookup(k);
    void *wb = ops_weights_get(w, (size_t)OC * IC * KH * KW, &e->pwei, &e->wei);
    const void *src = x;
    void *dst = y;
    if (e->rsrc) {
        void *bs = ops_grow(&t_bsrc, &t_nsrc, dnnl_memory_desc_get_size(&e->src));
        ops_run_reorder(e->rsrc, &e->psrc, x, &e->src, bs);
        src = bs;
    }
    if (e->rdst) {
        dst = ops_grow(&t_bdst, &t_ndst, dnnl_memory_desc_get_size(&e->dst));
        if (e->rdin) ops_run_reorder(e->rdin, &e->pdst, y, &e->dst, dst);
    }
    ops_run_forward(e->prim, "convolution execute", &e->src, src, &e->wei, wb, &e->bia, b, &e->dst, dst,
                    &e->scratch);
    if (e->rdst) ops_run_reorder(e->rdst, &e->dst, dst, &e->pdst, y);
}

/* Huge NHWC stride-1 3x3 convs (the VAE's 256² and 512² layers) run in
 * bands of output rows, each a conv of its own over its rows plus a one-row
 * halo (zero padding only at the image's top and bottom): the same result,
 * but Winograd's scratch (~4x the input) stays bounded, so Winograd can be
 * used there too.  Bands are rows of NHWC: plain pointer offsets. */
static void conv2d(const float *x, int N, int IC, int H, int W,
                   const float *w, const float *b, int OC, int KH, int KW,
                   int stride, int pad, float *y, int nhwc, int accum)
{
    conv_key k;
    memset(&k, 0, sizeof k);   /* padding bytes take part in memcmp */
    k.N = N; k.IC = IC; k.H = H; k.W = W; k.OC = OC; k.KH = KH; k.KW = KW;
    k.stride = stride; k.pad = k.pt = k.pb = pad; k.bias = b != NULL; k.nhwc = nhwc; k.accum = accum;
    pthread_once(&g_once, engine_init);
    long rowin = (long)W * IC;
    if (!nhwc || N != 1 || g_wino < OPS_WINO_AUTO || !wino_shape(&k) || (long)H * rowin <= WINO_MAX_INPUT) {
        conv_run(&k, x, w, b, y);
        return;
    }
    int R = (int)(WINO_MAX_INPUT / rowin) - 2;   /* output rows per band */
    if (R < 8) R = 8;
    for (int r0 = 0; r0 < H; r0 += R) {
        int r1 = r0 + R < H ? r0 + R : H;
        int in0 = r0 > 0 ? r0 - 1 : 0, in1 = r1 < H ? r1 + 1 : H;
        conv_key kb = k;
        kb.H = in1 - in0;
        kb.pt = r0 == 0;
        kb.pb = r1 == H;
        conv_run(&kb, x + (size_t)in0 * rowin, w, b, y + (size_t)r0 * W * OC);
    }
}

void op_conv2d_nhwc(const float *x, int N, int IC, int H, int W,
                    const float *w, const float *b, int OC, int KH, int KW,
                    int stride, int pad, float *y, int accum)
{
    PROF_BEGIN;
    conv2d(x, N, IC, H, W, w, b, OC, KH, KW, stride, pad, y, 1, accum);
    PROF_END(PROF_CONV);
}
