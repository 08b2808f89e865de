/* ops_conv.c — op_conv2d_nhwc (and op_conv2d_nhwc_up2, the decoders'
 * upsample + conv) on oneDNN convolution primitives.
 *
 * A primitive is built once per distinct shape (N, IC, H, W, OC, KH, KW,
 * stride, pad, bias, accumulate, band, precision) and kept in the context's
 * small LRU cache (an entry is pinned while a conv runs on it, so two
 * threads may share a context) with
 * the reorders that bring the caller's NHWC activations into the
 * primitive's layout and back (none for fp32 and bf16 direct convs: oneDNN's
 * brgconv kernels take NHWC natively).  Weights come from their handles
 * (ops_weights.c), reordered once.
 * accumulate = a "sum" post-op: y += conv(x), the residual add fused;
 * relu (OPS_CONV_RELU) an eltwise post-op after it: y = max(y, 0).
 * In the bf16 precisions (ops.h) the input is converted per call — to
 * bf16, or for bf16x2 to 2·IC channels [hi | lo] against the bf16 weights
 * stacked twice along IC (one conv, f32 sums) — and the weight copy is
 * bf16: oneDNN's AMX kernels, ~10x faster than fp32 direct, so there is no
 * Winograd then (oneDNN has none in bf16 either).
 * In fp32, stride-1 3x3 convs use Winograd by the rules below (SD_CONV_WINOGRAD=0/1
 * forces it off/on, =wide drops the weight-size rule): our own on every CPU
 * (ops_wino.c, run by conv_own; oneDNN's jit_wino_4x3, AVX-512 only, ran
 * SD 1.5's 64x64 convs ~16 % slower on a Zen 5, bench/README.md); its
 * error against direct is ~4e-6 (a UNet step) to ~1e-5 (a decode) relative
 * at full size, inside the parity tolerances (tests/parity/test_winograd.sh,
 * bench --winograd-check; docs/ACCURACY.md).  Blocked
 * activations and the scratchpad go through per-thread buffers that only
 * grow, so steady-state steps allocate nothing of ours.
 * Out of memory (ours or oneDNN's) sets the ops fault (ops.h) and the op
 * does nothing; any other oneDNN failure is a bug: sd_panic. */
#include "ops.h"
#include "ops_dnnl.h"
#include "ops_prof.h"
#include "../../base/alloc.h"
#include "ops_tile.h"
#include "ops_wino.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdint.h>
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
/* ... and not where the input is huge (the VAE's 256²/512² layers): the
 * padded copy of the input would be hundreds of MB there (the transformed
 * tiles are not: ops_wino.c works in chunks of at most 32 MB).  Those
 * convs run in bands of rows with inputs of at most this many floats
 * instead (2^23, sized for oneDNN's Winograd, whose scratch was ~4x the
 * input: ~128 MB; 2^24 cost 150 MB more peak RSS at 512x512, no faster). */
#define WINO_MAX_INPUT (1L << 23)
/* ... and only where the Winograd weight copy (up to 4x the fp32 weights
 * with F(4,3): 36·IC·OC floats) is at most 3x the input activation of a
 * CFG pair (WINO_ROWS images of H·W·IC floats), i.e. 12·OC <= 2·H·W.  So it
 * is used on large images (the UNet's first level, its 640-channel
 * upsampler included, the VAE's 64²..512² layers), where most of the time
 * goes, and not on the UNet's 32x32 and deeper levels, whose copies would
 * cost gigabytes (SD 1.5 at 512x512: peak RSS 5.6 GiB; `wide` 7.2, all 13).
 * 18·OC (2x) left the UNet's upsampler direct: 0.3 s a step slower for
 * 56 MB less.  The rule counts a fixed WINO_ROWS, never the batch: an
 * image's algorithm, and so its bits, must not depend on the batch it is
 * in (API.md: seed+i alone reproduces image i). */
#define WINO_WEIGHT_RATIO 12
#define WINO_ROWS 2
/* SD_CONV_WINOGRAD=wide (OPS_WINO_WIDE) keeps the first two rules only: also
 * the UNet's 32x32 level and the VAE's 64x64 one, ~12 % faster steps and
 * ~8 % faster decodes for ~1.6 GiB more at 512x512 (bench/README.md). */

/* pad: left/right (and top/bottom unless banded); pt, pb: top/bottom;
 * accum: y += conv(x); relu: then y = max(y, 0);
 * wino: the context's Winograd rule it was built under;
 * band: 0 = a whole conv (the Winograd rule looks at this shape), else a band
 * of rows of a larger one whose rule said Winograd (1) or direct (2). */
typedef struct conv_key { int N, IC, H, W, OC, KH, KW, stride, pad, pt, pb, bias, accum, band, prec, split, wino, relu; } conv_key;

typedef struct conv_entry {
    conv_key key;
    unsigned long long used;       /* LRU stamp; 0 = empty slot */
    dnnl_primitive_t prim;
    dnnl_primitive_t rsrc, rdst;   /* plain->blocked src, blocked->plain dst; NULL if plain */
    dnnl_primitive_t rdin;         /* plain->blocked dst before an accumulating conv; or NULL */
    dnnl_memory_desc_t src, wei, bia, dst;      /* as the primitive wants them */
    dnnl_memory_desc_t psrc, pwei, pdst;        /* plain: NHWC activations, OIHW weights */
    dnnl_memory_desc_t scratch;                 /* user-managed scratchpad */
    int own;                                    /* run on conv_own (fp32 below AVX-512; Winograd) */
    dnnl_memory_desc_t wown;                    /* conv_own's weights: Ohwi16o */
    int wino_own;                               /* conv_own runs it as our Winograd (ops_wino.c) */
    dnnl_memory_desc_t wkey;                    /* its transformed weights' key (ops_weights_derived) */
    int busy;                                   /* convs running on it now: not evicted */
    int temp;                                   /* built outside the table (every entry busy) */
} conv_entry;

/* A context's primitives (its lock guards the table and the pins). */
struct conv_cache {
    pthread_mutex_t lock;
    conv_entry e[CONV_CACHE];
    unsigned long long clock;
};

static _Thread_local void *t_bsrc, *t_bdst;
static _Thread_local size_t t_nsrc, t_ndst;

struct conv_cache *ops_conv_cache_new(void)
{
    struct conv_cache *cc = sd_calloc(1, sizeof *cc);
    if (cc) pthread_mutex_init(&cc->lock, NULL);
    return cc;
}

/* Output rows and columns of a conv of this key (a band's rows padded by pt/pb). */
static void conv_out_hw(const conv_key *k, int *OH, int *OW)
{
    *OH = (k->H + k->pt + k->pb - k->KH) / k->stride + 1;
    *OW = (k->W + 2 * k->pad - k->KW) / k->stride + 1;
}

static int try_build(ops_ctx *c, conv_entry *e, const conv_key *k)
{
    int OH, OW;
    conv_out_hw(k, &OH, &OW);
    /* bf16x2 (ops_dnnl.h): [hi | lo] channels, or hi and lo images with
     * the bias and the residual added when the halves are combined */
    int IC = k->split == OPS_SPLIT_COLS ? 2 * k->IC : k->IC, N = k->split == OPS_SPLIT_ROWS ? 2 * k->N : k->N;
    int bias = k->bias && k->split != OPS_SPLIT_ROWS, accum = k->accum && k->split != OPS_SPLIT_ROWS;
    dnnl_dims_t sd = {N, IC, k->H, k->W}, wd = {k->OC, IC, k->KH, k->KW}, bd = {k->OC},
                dd = {N, k->OC, OH, OW};
    /* right padding chosen so that oneDNN's output size equals the floor formula */
    dnnl_dims_t strides = {k->stride, k->stride}, pl = {k->pt, k->pad},
                pr = {(OH - 1) * k->stride + k->KH - k->H - k->pt, (OW - 1) * k->stride + k->KW - k->W - k->pad};
    dnnl_memory_desc_t as, aw, ad;
    dnnl_format_tag_t plain = dnnl_nhwc;
    dnnl_data_type_t dt = k->prec != OPS_FP32 ? dnnl_bf16 : dnnl_f32;   /* src and weights; dst and bias f32 */
    ops_ck(c, dnnl_memory_desc_init_by_tag(&e->psrc, 4, sd, dt, plain), "md src");
    ops_ck(c, dnnl_memory_desc_init_by_tag(&e->pwei, 4, wd, dnnl_f32, dnnl_oihw), "md weights");
    ops_ck(c, dnnl_memory_desc_init_by_tag(&e->bia, 1, bd, dnnl_f32, dnnl_x), "md bias");
    ops_ck(c, dnnl_memory_desc_init_by_tag(&e->pdst, 4, dd, dnnl_f32, plain), "md dst");
    /* NHWC callers get NHWC in and out (oneDNN's brgconv kernels work on it
     * natively: no reorders) */
    ops_ck(c, dnnl_memory_desc_init_by_tag(&as, 4, sd, dt, dnnl_nhwc), "md src");
    ops_ck(c, dnnl_memory_desc_init_by_tag(&aw, 4, wd, dt, dnnl_format_tag_any), "md weights any");
    ops_ck(c, dnnl_memory_desc_init_by_tag(&ad, 4, dd, dnnl_f32, dnnl_nhwc), "md dst");
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &as, &aw,
                                           bias ? &e->bia : NULL,
                                           &ad, strides, pl, pr) != dnnl_success)
        return -1;
    dnnl_primitive_attr_t attr;
    ops_ck(c, dnnl_primitive_attr_create(&attr), "attr_create");
    /* one scratchpad for all convs (ours, grown once), not one per cached primitive */
    ops_ck(c, dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "attr_set_scratchpad_mode");
    int relu = k->relu && k->split != OPS_SPLIT_ROWS;   /* split rows: after the halves are added */
    if (accum || relu) {   /* dst = conv(src) + dst: the residual add as a "sum" post-op; then max(dst, 0) */
        dnnl_post_ops_t po;
        ops_ck(c, dnnl_post_ops_create(&po), "post_ops_create");
        if (accum) ops_ck(c, dnnl_post_ops_append_sum(po, 1.f), "post_ops_append_sum");
        if (relu) ops_ck(c, dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_relu, 0.f, 0.f), "post_ops_append_eltwise");
        ops_ck(c, dnnl_primitive_attr_set_post_ops(attr, po), "attr_set_post_ops");
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &cd, attr, ops_engine(), NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st == dnnl_out_of_memory) ops_set_fault(c);
    if (st != dnnl_success) return -1;
    /* fp32 direct convs where oneDNN has no AVX-512 kernel run on our own
     * (conv_own); the primitive stays as the shape's cache entry */
    const char *impl = NULL;
    e->own = k->prec == OPS_FP32 &&
             dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
             strncmp(impl, "brg", 3) && !strstr(impl, "avx512");
    e->src = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    e->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    e->wei = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    e->dst = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    e->prim = NULL;
    if (ops_ck(c, dnnl_primitive_create(&e->prim, pd), "convolution primitive")) e->prim = NULL;
    dnnl_primitive_desc_destroy(pd);
    if (!e->prim) return -1;   /* out of memory: the fault is set */
    e->rsrc = dnnl_memory_desc_equal(&e->src, &e->psrc) ? NULL : ops_make_reorder(c, &e->psrc, &e->src);
    e->rdst = dnnl_memory_desc_equal(&e->dst, &e->pdst) ? NULL : ops_make_reorder(c, &e->dst, &e->pdst);
    e->rdin = e->rdst && accum ? ops_make_reorder(c, &e->pdst, &e->dst) : NULL;
    if (ops_faulted(c)) {   /* a reorder could not be made: no half-built entry */
        dnnl_primitive_t made[4] = {e->prim, e->rsrc, e->rdst, e->rdin};
        for (int i = 0; i < 4; i++) if (made[i]) dnnl_primitive_destroy(made[i]);
        e->prim = NULL;
        return -1;
    }
    e->key = *k;
    return 0;
}

static int wino_shape(const conv_key *k)
{
    return k->prec == OPS_FP32 && k->KH == 3 && k->KW == 3 && k->stride == 1 && k->pad == 1 && k->pt <= 1 && k->pb <= 1;
}

/* The rule for a whole conv of this shape, leaving out the input-size
 * limit (which banding takes care of); k->N plays no part. */
static int wino_wanted(const conv_key *k)
{
    long px = (long)k->H * k->W;
    int mode = k->wino;
    if (!wino_shape(k) || mode == OPS_WINO_OFF) return 0;
    if (mode == OPS_WINO_ALL) return 1;
    return px >= WINO_MIN_PIXELS && (mode == OPS_WINO_WIDE || (long)WINO_WEIGHT_RATIO * k->OC <= WINO_ROWS * px);
}

/* A whole (not banded) conv of this shape runs as Winograd. */
static int wino_whole(const conv_key *k)
{
    return wino_wanted(k) && (k->wino == OPS_WINO_ALL || (long)k->H * k->W * k->IC <= WINO_MAX_INPUT);
}

static void conv_entry_build(ops_ctx *c, conv_entry *e, const conv_key *k)
{
    e->prim = NULL;
    e->own = e->wino_own = 0;   /* nothing left from the slot's last shape */
    if (try_build(c, e, k) && !ops_faulted(c)) sd_panic("ops: oneDNN convolution desc failed");
    if (!e->prim) return;   /* out of memory: the fault is set */
    /* where the rule says Winograd: ours, on every CPU (ops_wino.c, run by
     * conv_own; the primitive stays as the shape's cache entry), for IC and
     * OC multiples of 8; other shapes run direct */
    int wino = k->band ? k->band == 1 && wino_shape(k) : wino_whole(k);
    e->wino_own = wino && ops_wino_fits(k->IC, k->OC);
    e->own |= e->wino_own;
    if (e->own) {   /* conv_own's weights: Ohwi16o (Winograd's are made from them) */
        dnnl_dims_t wd = {k->OC, k->IC, k->KH, k->KW};
        ops_ck(c, dnnl_memory_desc_init_by_tag(&e->wown, 4, wd, dnnl_f32, dnnl_Ohwi16o), "md weights own");
    }
    if (e->wino_own) {
        dnnl_dims_t d = {OWINO_P, (k->OC + DW - 1) / DW, k->IC, DW};   /* U[p][panel][ic][16] */
        ops_ck(c, dnnl_memory_desc_init_by_tag(&e->wkey, 4, d, dnnl_f32, dnnl_abcd), "md weights winograd");
    }
}

static void conv_entry_clear(conv_entry *e)
{
    if (!e->prim) return;   /* never built, or its build failed (and cleaned up) */
    dnnl_primitive_destroy(e->prim);
    if (e->rsrc) dnnl_primitive_destroy(e->rsrc);
    if (e->rdst) dnnl_primitive_destroy(e->rdst);
    if (e->rdin) dnnl_primitive_destroy(e->rdin);
}

/* Find or build the primitive for k in c's cache, pinned (busy) until
 * conv_unpin: a thread sharing the context cannot evict it meanwhile.  The
 * least recently used idle entry makes room; if every entry is busy the
 * primitive is built outside the table and freed after use.  NULL when out
 * of memory (the fault is set). */
static conv_entry *conv_lookup(ops_ctx *c, const conv_key *k)
{
    struct conv_cache *cc = c->conv;
    pthread_mutex_lock(&cc->lock);
    conv_entry *hit = NULL, *victim = NULL;
    for (int i = 0; i < CONV_CACHE; i++) {
        conv_entry *e = &cc->e[i];
        if (e->used && !memcmp(&e->key, k, sizeof *k)) { hit = e; break; }
        if (!e->busy && (!victim || e->used < victim->used)) victim = e;
    }
    if (!hit) {
        if (victim) {
            if (victim->used) conv_entry_clear(victim);
        } else if ((victim = sd_calloc(1, sizeof *victim))) {
            victim->temp = 1;
        } else {
            ops_set_fault(c);
            pthread_mutex_unlock(&cc->lock);
            return NULL;
        }
        conv_entry_build(c, victim, k);
        hit = victim;
    }
    if (!hit->temp) hit->used = hit->prim ? ++cc->clock : 0;   /* not kept when out of memory */
    hit->busy++;
    pthread_mutex_unlock(&cc->lock);
    return hit;
}

static void conv_unpin(ops_ctx *c, conv_entry *e)
{
    pthread_mutex_lock(&c->conv->lock);
    e->busy--;
    pthread_mutex_unlock(&c->conv->lock);
    if (e->temp) {
        conv_entry_clear(e);
        free(e);
    }
}

/* Every idle primitive dropped (busy ones stay: they are rebuilt when evicted). */
static void conv_cache_clear(struct conv_cache *cc)
{
    for (int i = 0; i < CONV_CACHE; i++)
        if (cc->e[i].used && !cc->e[i].busy) {
            conv_entry_clear(&cc->e[i]);
            cc->e[i].used = 0;
        }
}

void ops_conv_cache_free(struct conv_cache *cc)
{
    if (!cc) return;
    conv_cache_clear(cc);
    pthread_mutex_destroy(&cc->lock);
    free(cc);
}

void ops_conv_set_winograd(ops_ctx *c, int mode)
{
    pthread_mutex_lock(&c->conv->lock);
    c->wino = mode;
    conv_cache_clear(c->conv);   /* primitives are rebuilt under the new rule */
    pthread_mutex_unlock(&c->conv->lock);
}

int ops_conv_winograd(const ops_ctx *c) { return c->wino; }

/* The FLOPs a oneDNN (direct) conv of k executes (bf16x2: both halves). */
static void conv_count_exec(const conv_key *k)
{
    int OH, OW;
    conv_out_hw(k, &OH, &OW);
    int IC = k->split == OPS_SPLIT_COLS ? 2 * k->IC : k->IC, N = k->split == OPS_SPLIT_ROWS ? 2 * k->N : k->N;
    ops_flops_add(PROF_CONV, 0, ops_conv_exec_flops(0, N, IC, k->OC, OH, OW, k->KH, k->KW));
}

/* The model's FLOPs of a conv (its nominal shape, direct count). */
static void conv_count_model(int N, int IC, int H, int W, int OC, int KH, int KW, int stride, int pad)
{
    int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    ops_flops_add(PROF_CONV, ops_conv_exec_flops(0, N, IC, OC, OH, OW, KH, KW), 0);
    PROF_SHAPE("conv %dx%d/%d %dx%dx%dx%d -> %d", KH, KW, stride, N, H, W, IC, OC);
}

/* OPS_CONV_RELU of a bf16x2 split-rows conv, once its halves are added. */
static void conv_relu(float *y, size_t n)
{
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

static size_t conv_out_px(const conv_key *k)
{
    int OH, OW;
    conv_out_hw(k, &OH, &OW);
    return (size_t)OH * OW;
}

/* fp32 direct convs below AVX-512, on the register tile of ops_tile.h (as
 * the linears: ops_gemm.c linear_dots).  Output pixels (n, oh, ow) in
 * order, 6 to a tile whatever rows they cross; each output is one FMA chain
 * over the taps (kh, kw) and, within a tap, the input channels, in order,
 * then + b, then + y (accumulate), then max(·, 0) (relu): the order of
 * oneDNN's post-ops, and no dependence on the batch or the tile.  A padded
 * (or in-place) conv's input is copied once into a zero-padded buffer, so a
 * tap of a tile is 6 plain pointers; the weights are oneDNN's Ohwi16o copy, wp[p][tap][ic][16], made
 * once per weight (ops_weights_get).  oneDNN's jit:avx2 direct convs
 * (NHWC) ran SD 1.5's at ~56 % of the FMA loop on a Zen 3 CPU
 * (bench/README.md "AVX2: our own kernels").  A conv the Winograd rule
 * picks (e->wino_own, on every CPU) goes from the padded buffer to
 * ops_wino_conv, with the weights transformed once from an Ohwi16o copy
 * made for it alone. */
#define CCB 64    /* outputs per work item (4 panels) */
#define CRB 96    /* output pixels per work item (16 tiles) */
#define CKC 256   /* input channels per block */
static _Thread_local void *t_cacc;
static _Thread_local size_t t_ncacc;
static _Thread_local void *t_cxp;
static _Thread_local size_t t_ncxp;

/* ops_weights_derived's maker of our Winograd weights from conv_own's panels. */
static void wino_derive(const void *src, void *dst, void *ud)
{
    const int *dims = ud;
    ops_wino_weights(src, dims[0], dims[1], dst);
}

/* pre (or NULL): the group norm feeding the conv (op_gn_conv2d_nhwc), a
 * scale and shift per sample and channel, pre[0][N][IC] and pre[1][N][IC],
 * applied (then SiLU with pre_silu) as the input is copied into the padded
 * buffer: the normalised image is never written whole. */
static void conv_own(ops_ctx *c, const conv_entry *e, const conv_key *k, const float *x, ops_weight *w,
                     const float *b, float *y, const float *const pre[2], int pre_silu)
{
    int OH, OW;
    conv_out_hw(k, &OH, &OW);
    int N = k->N, IC = k->IC, H = k->H, W = k->W, OC = k->OC, KH = k->KH, KW = k->KW, S = k->stride;
    int T = KH * KW, Hp = H + k->pt + k->pb, Wp = W + 2 * k->pad;
    /* wt[p][kh][kw][ic][16]: panels of 16 outputs, zeros past OC (a copy kept on the handle); for our
     * Winograd its 36 products' copy instead (made from those panels, which are not kept) */
    size_t nw = (size_t)OC * IC * T;
    int dims[2] = {IC, OC};
    const float *wt = e->wino_own ? ops_weights_derived(c, w, nw, &e->pwei, &e->wown, &e->wkey, wino_derive, dims)
                                  : ops_weights_get(c, w, nw, &e->pwei, &e->wown, 0);
    if (!wt) return;   /* out of memory: the ops fault is set */
    /* an unpadded conv (1x1) reads the input itself, unless it writes over it */
    size_t nin = (size_t)N * H * W * IC, nout = (size_t)N * OH * OW * OC;
    uintptr_t xa = (uintptr_t)x, ya = (uintptr_t)y;
    int overlap = ya < xa + nin * sizeof(float) && xa < ya + nout * sizeof(float);
    const float *xp = x;
    if (k->pad || k->pt || k->pb || overlap || pre) {
        float *pd = ops_grow(c, &t_cxp, &t_ncxp, sizeof(float) * (size_t)N * Hp * Wp * IC);
        if (!pd) return;   /* out of memory: the ops fault is set */
        #pragma omp parallel for schedule(static)
        for (long r = 0; r < (long)N * Hp; r++) {
            int n = (int)(r / Hp), i = (int)(r % Hp) - k->pt;
            float *dst = pd + (size_t)r * Wp * IC;
            if (i < 0 || i >= H) { memset(dst, 0, sizeof(float) * (size_t)Wp * IC); continue; }
            memset(dst, 0, sizeof(float) * (size_t)k->pad * IC);
            const float *src = x + ((size_t)n * H + i) * W * IC;
            if (pre)
                for (int j = 0; j < W; j++)
                    ops_affine_row(src + (size_t)j * IC, IC, pre[0] + (size_t)n * IC, pre[1] + (size_t)n * IC,
                                   pre_silu, dst + (size_t)(k->pad + j) * IC);
            else
                memcpy(dst + (size_t)k->pad * IC, src, sizeof(float) * (size_t)W * IC);
            memset(dst + (size_t)(k->pad + W) * IC, 0, sizeof(float) * (size_t)k->pad * IC);
        }
        xp = pd;
    }
    if (e->wino_own) {
        ops_wino_conv(c, xp, N, Hp, Wp, IC, OH, OW, wt, OC, b, y, k->accum, k->relu);
        return;
    }
    long npx = (long)N * OH * OW;
    int ncb = (OC + CCB - 1) / CCB;
    long nrb = (npx + CRB - 1) / CRB;
    ops_flops_add(PROF_CONV, 0, dk_exec_flops(npx, OC, (long)IC * T));
    #pragma omp parallel for schedule(static)
    for (long it = 0; it < ncb * nrb; it++) {
        /* output blocks outer: dk_item's rows-first order measured the same
         * on SD 1.5's convs (within +-5 %, noise) and no better on the VAE's */
        int j0 = (int)(it / nrb) * CCB;
        long q0 = (it % nrb) * CRB;
        int nq = npx - q0 < CRB ? (int)(npx - q0) : CRB, nj = OC - j0 < CCB ? OC - j0 : CCB;
        int np = (nj + DW - 1) / DW, ntile = (nq + DR - 1) / DR;
        const float *wp = wt + (size_t)j0 * T * IC;   /* the block's panels */
        float *acc = ops_grow(c, &t_cacc, &t_ncacc, sizeof(float) * CRB * CCB);
        if (!acc) continue;   /* out of memory: the ops fault is set */
        size_t base[CRB];   /* each pixel's first input float (tap 0, channel 0) in xp */
        for (int i = 0; i < ntile * DR; i++) {
            long q = q0 + (i < nq ? i : nq - 1);   /* a last partial tile repeats its last pixel */
            int n = (int)(q / ((long)OH * OW)), rem = (int)(q % ((long)OH * OW)), oh = rem / OW, ow = rem % OW;
            base[i] = (((size_t)n * Hp + (size_t)oh * S) * Wp + (size_t)ow * S) * IC;
        }
        for (int tap = 0; tap < T; tap++) {
            size_t toff = ((size_t)(tap / KW) * Wp + tap % KW) * IC;
            for (int ic0 = 0; ic0 < IC; ic0 += CKC) {
                int kc = IC - ic0 < CKC ? IC - ic0 : CKC;
                int last = tap == T - 1 && ic0 + kc == IC;
                for (int t = 0; t < ntile; t++) {
                    const float *xr[DR];
                    for (int r = 0; r < DR; r++) xr[r] = xp + base[t * DR + r] + toff + ic0;
                    dk_out o = {y + (size_t)(q0 + t * DR) * OC + j0, OC, b ? b + j0 : NULL,
                                nq - t * DR < DR ? nq - t * DR : DR, k->accum, k->relu, 0};
                    dk_panels(xr, wp + ((size_t)tap * IC + ic0) * DW, (size_t)T * IC * DW, np, nj, kc,
                              acc + (size_t)t * DR * CCB, CCB, tap == 0 && ic0 == 0, last ? &o : NULL);
                }
            }
        }
        int done = nj / DW * DW;   /* the outputs already in y: the full panels' */
        if (done < nj)
            dk_store(y + (size_t)q0 * OC + j0 + done, OC, acc + done, CCB, nq, nj - done, b ? b + j0 + done : NULL,
                     k->accum, k->relu);
    }
}

/* ready: the input already in the bf16 layout the key's precision and split
 * want (written by the op before, ops_bf16_buffer), or NULL: x converted. */
static void conv_exec(ops_ctx *c, const conv_entry *e, const conv_key *k, const float *x, ops_weight *w,
                      const float *b, float *y, const void *ready)
{
    if (e->own && !ready) {
        conv_own(c, e, k, x, w, b, y, NULL, 0);
        return;
    }
    int OC = k->OC, IC = k->IC, KH = k->KH, KW = k->KW;
    void *wb = ops_weights_get(c, w, (size_t)OC * IC * KH * KW, &e->pwei, &e->wei, k->split == OPS_SPLIT_COLS ? OC : 0);
    const void *src = ready ? ready
                      : k->prec != OPS_FP32 ? ops_bf16_input(c, x, (size_t)k->N * k->H * k->W, IC, k->split)
                                            : (const void *)x;
    if (!wb || !src || !e->prim) return;
    conv_count_exec(k);
    if (k->split == OPS_SPLIT_ROWS) {   /* hi and lo images, added with the bias (and residual) */
        ops_run_forward_split(c, e->prim, "convolution execute", &e->src, src, &e->wei, wb, &e->dst, &e->scratch, y,
                              OC, b, k->accum);
        if (k->relu) conv_relu(y, (size_t)k->N * conv_out_px(k) * OC);
        return;
    }
    void *dst = y;
    if (e->rsrc) {
        void *bs = ops_grow(c, &t_bsrc, &t_nsrc, dnnl_memory_desc_get_size(&e->src));
        if (!bs) return;
        ops_run_reorder(c, e->rsrc, &e->psrc, src, &e->src, bs);
        src = bs;
    }
    if (e->rdst) {
        dst = ops_grow(c, &t_bdst, &t_ndst, dnnl_memory_desc_get_size(&e->dst));
        if (!dst) return;
        if (e->rdin) ops_run_reorder(c, e->rdin, &e->pdst, y, &e->dst, dst);
    }
    ops_run_forward(c, e->prim, "convolution execute", &e->src, src, &e->wei, wb, &e->bia, b, &e->dst, dst,
                    &e->scratch);
    if (e->rdst) ops_run_reorder(c, e->rdst, &e->dst, dst, &e->pdst, y);
}

static void conv_run(ops_ctx *c, const conv_key *k, const float *x, ops_weight *w, const float *b, float *y,
                     const void *ready)
{
    if (ops_faulted(c)) return;   /* out of memory earlier in this forward */
    conv_entry *e = conv_lookup(c, k);
    if (!e) return;
    conv_exec(c, e, k, x, w, b, y, ready);
    conv_unpin(c, e);
}

/* Output rows per band for an H-row conv whose bands may have at most rmax:
 * balanced bands of whole Winograd tiles (nb bands of H/nb rows rounded up
 * to 4).  The caller moves the last band up over its neighbour, recomputing
 * a few rows to the same values, so that every band has one shape — one
 * Winograd weight layout, not three — except when accumulating (rows would
 * be added twice), where the last band is shorter. */
static int band_rows(int H, int rmax)
{
    if (rmax < 8) rmax = 8;
    int nb = (H + rmax - 1) / rmax;
    int R = ((H + nb - 1) / nb + 3) / 4 * 4;
    return R < H ? R : H;
}

/* The key of the band of output rows [r0, r0 + R) (clipped to k's H rows)
 * of the whole conv k; *in0 gets its first input row (a one-row halo, zero
 * padding only at the image's top and bottom). */
static conv_key band_key(const conv_key *k, int band, int r0, int R, int *in0)
{
    int r1 = r0 + R < k->H ? r0 + R : k->H;
    *in0 = r0 > 0 ? r0 - 1 : 0;
    conv_key kb = *k;
    kb.H = (r1 < k->H ? r1 + 1 : k->H) - *in0;
    kb.pt = r0 == 0;
    kb.pb = r1 == k->H;
    kb.band = band;
    return kb;
}

/* Huge NHWC stride-1 3x3 convs (the VAE's 256² and 512² layers) run in
 * bands of output rows, each a conv of its own over its rows plus a one-row
 * halo (zero padding only at the image's top and bottom): the same result,
 * but Winograd's scratch (~4x the input) stays bounded, so Winograd can be
 * used there too.  Bands are rows of NHWC: plain pointer offsets. */
/* The key of a whole conv at the caller's precision and the context's Winograd rule. */
static conv_key conv_whole_key(const ops_m *m, int N, int IC, int H, int W, int OC, int KH, int KW, int stride, int pad, int bias,
                               int accum)
{
    conv_key k;
    memset(&k, 0, sizeof k);   /* padding bytes take part in memcmp */
    k.N = N; k.IC = IC; k.H = H; k.W = W; k.OC = OC; k.KH = KH; k.KW = KW;
    k.stride = stride; k.pad = k.pt = k.pb = pad; k.bias = bias; k.prec = m->prec;
    k.accum = (accum & OPS_CONV_ACCUM) != 0;
    k.relu = (accum & OPS_CONV_RELU) != 0;   /* the eltwise post-op */
    k.wino = m->ctx->wino;
    if (k.prec == OPS_BF16X2) k.split = ops_split_mode(1, (size_t)OC * IC * KH * KW, IC * KH * KW, OC);
    return k;
}

/* conv_bands' plan: output rows per band (*R) and band_key's band flag
 * (1: the whole conv's rule says Winograd, 2: direct). */
static int band_plan(const conv_key *k, int *R)
{
    *R = band_rows(k->H, (int)(WINO_MAX_INPUT / ((long)k->W * k->IC)) - 2);
    return wino_wanted(k) ? 1 : 2;
}

static _Thread_local void *t_gnb;
static _Thread_local size_t t_ngnb;

/* conv_run with pre (or NULL): a group norm's scale and shift per channel,
 * pre[0][IC] and pre[1][IC], applied (then SiLU with silu) to the input as
 * conv_own pads it; a shape that runs on another kernel gets its input
 * normalised into a scratch buffer first. */
static void conv_run_pre(ops_ctx *c, const conv_key *k, const float *x, ops_weight *w, const float *b, float *y,
                         const float *const pre[2], int silu)
{
    if (!pre) {
        conv_run(c, k, x, w, b, y, NULL);
        return;
    }
    if (ops_faulted(c)) return;   /* out of memory earlier in this forward */
    conv_entry *e = conv_lookup(c, k);
    if (!e) return;
    if (e->own) {
        conv_own(c, e, k, x, w, b, y, pre, silu);
    } else {
        long px = (long)k->N * k->H * k->W;
        float *t = ops_grow(c, &t_gnb, &t_ngnb, sizeof(float) * (size_t)px * k->IC);
        if (t) {
            #pragma omp parallel for schedule(static)
            for (long p = 0; p < px; p++)
                ops_affine_row(x + (size_t)p * k->IC, k->IC, pre[0], pre[1], silu, t + (size_t)p * k->IC);
            conv_exec(c, e, k, t, w, b, y, NULL);
        }
    }
    conv_unpin(c, e);
}

/* One image's conv in bands of rows (its input is over WINO_MAX_INPUT);
 * pre and silu as conv_run_pre. */
static void conv_bands(ops_ctx *c, const conv_key *k, const float *x, ops_weight *w, const float *b, float *y,
                       const float *const pre[2], int silu)
{
    long rowin = (long)k->W * k->IC;
    int R, band = band_plan(k, &R);
    for (int r0 = 0; r0 < k->H; r0 += R) {
        if (!k->accum && r0 + R > k->H) r0 = k->H - R;   /* see band_rows */
        int in0;
        conv_key kb = band_key(k, band, r0, R, &in0);
        conv_run_pre(c, &kb, x + (size_t)in0 * rowin, w, b, y + (size_t)r0 * k->W * k->OC, pre, silu);
    }
}

/* An image too big for one Winograd conv: run in bands of rows (conv_bands) */
static int conv_banded(const conv_key *k)
{
    return k->wino >= OPS_WINO_AUTO && wino_shape(k) && (long)k->H * k->W * k->IC > WINO_MAX_INPUT;
}

/* Convs run on the whole batch: oneDNN's direct kernels and our Winograd
 * give each image the same bits whatever N (tests/unit/test_batch_rows.c).
 * Huge ones run in bands of rows (conv_bands), one image at a time. */
static void conv2d(const ops_m *m, const float *x, int N, int IC, int H, int W,
                   ops_weight *w, const float *b, int OC, int KH, int KW,
                   int stride, int pad, float *y, int accum)
{
    ops_ctx *c = m->ctx;
    conv_key k = conv_whole_key(m, N, IC, H, W, OC, KH, KW, stride, pad, b != NULL, accum);
    if (!conv_banded(&k)) {
        conv_run(c, &k, x, w, b, y, NULL);
        return;
    }
    k.N = 1;
    int OH, OW;
    conv_out_hw(&k, &OH, &OW);
    size_t in = (size_t)H * W * IC, out = (size_t)OH * OW * OC;
    for (int n = 0; n < N; n++) conv_bands(c, &k, x + n * in, w, b, y + n * out, NULL, 0);
}

/* Nearest 2x upsampling followed by a 3x3 conv (the decoders' upsamplers),
 * without the upsampled image: bands of output rows (a multiple of 4, the
 * Winograd tile) whose upsampled input rows, halo included, are made in a
 * per-thread buffer of at most UP_BAND floats; the Winograd rule is the
 * whole conv's. */
#define UP_BAND (1L << 22)
static _Thread_local void *t_up;
static _Thread_local size_t t_nup;

void op_conv2d_nhwc_up2(const ops_m *m, const float *x, int N, int IC, int H, int W, ops_weight *w, const float *b,
                        int OC, float *y)
{
    SD_ASSERT(x && w && y && N >= 1 && IC >= 1 && H >= 1 && W >= 1 && OC >= 1);
    PROF_BEGIN;
    int OH = 2 * H, OW = 2 * W;
    conv_count_model(N, IC, OH, OW, OC, 3, 3, 1, 1);
    PROF_SHAPE("conv 3x3/1 up2 %dx%dx%dx%d -> %d", N, OH, OW, IC, OC);
    long rowin = (long)OW * IC;
    int R = band_rows(OH, (int)(UP_BAND / rowin) - 2);
    conv_key k = conv_whole_key(m, 1, IC, OH, OW, OC, 3, 3, 1, 1, b != NULL, 0);
    int band = wino_wanted(&k) ? 1 : 2;
    float *buf = ops_grow(m->ctx, &t_up, &t_nup, sizeof(float) * (size_t)(R + 2) * rowin);
    if (!buf) { PROF_END(PROF_CONV); return; }   /* out of memory: the ops fault is set */
    for (int n = 0; n < N; n++)
        for (int r0 = 0; r0 < OH; r0 += R) {
            if (r0 + R > OH) r0 = OH - R;   /* see band_rows */
            int in0;
            conv_key kb = band_key(&k, band, r0, R, &in0);
            #pragma omp parallel for schedule(static)
            for (int i = in0; i < in0 + kb.H; i++) {
                const float *xr = x + ((size_t)n * H + i / 2) * W * IC;
                float *br = buf + (size_t)(i - in0) * rowin;
                for (int j = 0; j < OW; j++) memcpy(br + (size_t)j * IC, xr + (size_t)(j / 2) * IC, sizeof(float) * IC);
            }
            conv_run(m->ctx, &kb, buf, w, b, y + ((size_t)n * OH + r0) * OW * OC, NULL);
        }
    PROF_END(PROF_CONV);
}

void op_conv2d_nhwc(const ops_m *m, const float *x, int N, int IC, int H, int W,
                    ops_weight *w, const float *b, int OC, int KH, int KW,
                    int stride, int pad, float *y, int accum)
{
    SD_ASSERT(x && w && y && N >= 1 && IC >= 1 && H >= 1 && W >= 1 && OC >= 1 && KH >= 1 && KW >= 1);
    SD_ASSERT(stride >= 1 && pad >= 0 && H + 2 * pad >= KH && W + 2 * pad >= KW);
    PROF_BEGIN;
    conv_count_model(N, IC, H, W, OC, KH, KW, stride, pad);
    conv2d(m, x, N, IC, H, W, w, b, OC, KH, KW, stride, pad, y, accum);
    PROF_END(PROF_CONV);
}

/* op_gn_conv2d_nhwc at fp32 where the conv runs on conv_own, whole or in
 * bands of rows: the norm's coefficients, then the conv applying them as it
 * copies its input (one pass over the image instead of three).  0 when the
 * conv runs otherwise (the caller goes through norm_out), else 1. */
static _Thread_local void *t_pre;
static _Thread_local size_t t_npre;

/* The norm's scale and shift of every sample into sc[2][N][C] (t_pre):
 * NULL when out of memory (the ops fault is set). */
static float *gn_coefs_all(ops_ctx *c, const float *x, int N, int C, int HW, int G, const float *pre_bias,
                           const float *gamma, const float *beta, float eps)
{
    float *sc = ops_grow(c, &t_pre, &t_npre, sizeof(float) * 2 * (size_t)N * C);
    PROF_BEGIN;
    PROF_SHAPE("group norm stats %dx%dx%d", N, HW, C);
    for (int n = 0; n < N && sc; n++)
        if (ops_gn_coefs(c, x + (size_t)n * HW * C, C, HW, G, pre_bias ? pre_bias + (size_t)n * C : NULL, gamma, beta,
                         eps, sc + (size_t)n * C, sc + (size_t)(N + n) * C))
            sc = NULL;   /* out of memory: the ops fault is set */
    PROF_END(PROF_NORM);
    return sc;
}

/* gn_conv_own for a conv that runs in bands of rows: the coefficients from
 * the whole image, then conv_bands applying them to each band's rows as
 * conv_own pads them.  0 (nothing done) when the bands do not run on
 * conv_own (direct bands with AVX-512, oneDNN's: also Winograd bands of
 * channel counts ours does not take, not multiples of 8). */
static int gn_conv_bands(ops_ctx *c, const conv_key *k, const float *x, int N, int G, const float *pre_bias,
                         const float *gamma, const float *beta, float eps, int silu, ops_weight *w, const float *b,
                         float *y)
{
    int R, band = band_plan(k, &R), in0;
    conv_key kb = band_key(k, band, 0, R, &in0);
    conv_entry *e = conv_lookup(c, &kb);
    if (!e) return 1;   /* out of memory: the ops fault is set */
    int own = e->own;
    conv_unpin(c, e);
    if (!own) return 0;
    float *sc = gn_coefs_all(c, x, N, k->IC, k->H * k->W, G, pre_bias, gamma, beta, eps);
    if (!sc) return 1;
    PROF_BEGIN;
    conv_count_model(N, k->IC, k->H, k->W, k->OC, k->KH, k->KW, k->stride, k->pad);
    for (int n = 0; n < N; n++) {
        const float *pre[2] = {sc + (size_t)n * k->IC, sc + (size_t)(N + n) * k->IC};
        conv_bands(c, k, x + (size_t)n * k->H * k->W * k->IC, w, b, y + (size_t)n * k->H * k->W * k->OC, pre, silu);
    }
    PROF_END(PROF_CONV);
    return 1;
}

static int gn_conv_own(const ops_m *m, const float *x, int N, int C, int H, int W, int G, const float *pre_bias,
                       const float *gamma, const float *beta, float eps, int silu, ops_weight *w, const float *b, int OC,
                       int KH, int KW, int stride, int pad, float *y, int accum)
{
    ops_ctx *c = m->ctx;
    conv_key k = conv_whole_key(m, 1, C, H, W, OC, KH, KW, stride, pad, b != NULL, accum);
    if (ops_faulted(c)) return 1;   /* out of memory earlier in this forward */
    if (conv_banded(&k)) return gn_conv_bands(c, &k, x, N, G, pre_bias, gamma, beta, eps, silu, w, b, y);
    k.N = N;
    conv_entry *e = conv_lookup(c, &k);
    if (!e) return 1;   /* out of memory: the ops fault is set */
    if (!e->own) {
        conv_unpin(c, e);
        return 0;
    }
    float *sc = gn_coefs_all(c, x, N, C, H * W, G, pre_bias, gamma, beta, eps);
    if (sc) {
        const float *pre[2] = {sc, sc + (size_t)N * C};
        PROF_BEGIN;
        conv_count_model(N, C, H, W, OC, KH, KW, stride, pad);
        conv_own(c, e, &k, x, w, b, y, pre, silu);
        PROF_END(PROF_CONV);
    }
    conv_unpin(c, e);
    return 1;
}

void op_gn_conv2d_nhwc(const ops_m *m, const float *x, int N, int C, int H, int W, int G, const float *pre_bias,
                       const float *gamma, const float *beta, float eps, int silu, float *norm_out, ops_weight *w,
                       const float *b, int OC, int KH, int KW, int stride, int pad, float *y, int accum)
{
    SD_ASSERT(G >= 1 && C % G == 0 && norm_out);
    if (m->prec == OPS_FP32 && gn_conv_own(m, x, N, C, H, W, G, pre_bias, gamma, beta, eps, silu, w, b, OC, KH, KW,
                                           stride, pad, y, accum))
        return;
    if (m->prec == OPS_FP32) {   /* through norm_out: the conv may run as Winograd, in bands */
        op_group_norm_nhwc(m, x, N, C, H * W, G, pre_bias, gamma, beta, eps, silu, norm_out);
        op_conv2d_nhwc(m, norm_out, N, C, H, W, w, b, OC, KH, KW, stride, pad, y, accum);
        return;
    }
    conv_key k = conv_whole_key(m, N, C, H, W, OC, KH, KW, stride, pad, b != NULL, accum);
    size_t n = (size_t)N * H * W * C;
    uint16_t *in = ops_bf16_buffer(m->ctx, n * sizeof(uint16_t) * (k.split ? 2 : 1));
    if (!in) return;   /* out of memory: the ops fault is set */
    ops_group_norm_bf16(m->ctx, x, N, C, H * W, G, pre_bias, gamma, beta, eps, silu, in, k.split);
    PROF_BEGIN;
    conv_count_model(N, C, H, W, OC, KH, KW, stride, pad);
    conv_run(m->ctx, &k, NULL, w, b, y, in);
    PROF_END(PROF_CONV);
}
