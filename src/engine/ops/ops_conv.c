/* ops_conv.c — op_conv2d on oneDNN convolution primitives.
 *
 * A primitive is built once per distinct shape (N, IC, H, W, OC, KH, KW,
 * stride, pad, bias or not) and kept in a small LRU cache, so a UNet forward
 * builds each conv shape once and later steps only execute.  Memory formats
 * are plain NCHW/OIHW for now; a later switch to blocked layouts only changes
 * the descriptors built in conv_entry_build (and adds reorders at model load).
 * Memory objects wrap the caller's buffers per call, so execution needs no
 * copies.  Any oneDNN failure is a bug: print and abort. */
#include "ops.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONV_CACHE 64

typedef struct conv_key { int N, IC, H, W, OC, KH, KW, stride, pad, bias; } conv_key;

typedef struct conv_entry {
    conv_key key;
    unsigned long long used;       /* LRU stamp; 0 = empty slot */
    dnnl_primitive_t prim;
    dnnl_memory_desc_t src, wei, bia, dst;
} conv_entry;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t g_engine;
static conv_entry g_cache[CONV_CACHE];
static unsigned long long g_clock;
static _Thread_local dnnl_stream_t t_stream;

static void ck(dnnl_status_t st, const char *what)
{
    if (st != dnnl_success) {
        fprintf(stderr, "ops: oneDNN %s failed (status %d)\n", what, (int)st);
        abort();
    }
}

static void engine_init(void) { ck(dnnl_engine_create(&g_engine, dnnl_cpu, 0), "engine_create"); }

static void conv_entry_build(conv_entry *e, const conv_key *k)
{
    int OH = (k->H + 2 * k->pad - k->KH) / k->stride + 1, OW = (k->W + 2 * k->pad - k->KW) / k->stride + 1;
    dnnl_dims_t sd = {k->N, k->IC, k->H, k->W}, wd = {k->OC, k->IC, k->KH, k->KW}, bd = {k->OC},
                dd = {k->N, k->OC, OH, OW};
    /* right padding chosen so that oneDNN's output size equals the floor formula */
    dnnl_dims_t strides = {k->stride, k->stride}, pl = {k->pad, k->pad},
                pr = {(OH - 1) * k->stride + k->KH - k->H - k->pad, (OW - 1) * k->stride + k->KW - k->W - k->pad};
    ck(dnnl_memory_desc_init_by_tag(&e->src, 4, sd, dnnl_f32, dnnl_nchw), "md src");
    ck(dnnl_memory_desc_init_by_tag(&e->wei, 4, wd, dnnl_f32, dnnl_oihw), "md weights");
    ck(dnnl_memory_desc_init_by_tag(&e->bia, 1, bd, dnnl_f32, dnnl_x), "md bias");
    ck(dnnl_memory_desc_init_by_tag(&e->dst, 4, dd, dnnl_f32, dnnl_nchw), "md dst");
    dnnl_convolution_desc_t cd;
    ck(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct,
                                          &e->src, &e->wei, k->bias ? &e->bia : NULL, &e->dst,
                                          strides, pl, pr), "convolution desc");
    dnnl_primitive_desc_t pd;
    ck(dnnl_primitive_desc_create(&pd, &cd, NULL, g_engine, NULL), "convolution primitive desc");
    ck(dnnl_primitive_create(&e->prim, pd), "convolution primitive");
    dnnl_primitive_desc_destroy(pd);
    e->key = *k;
}

/* Find or build the primitive for k; returns it with the cache lock released.
 * Entries are never destroyed while in use because only the engine's single
 * worker thread runs convs at a time; the lock guards the table itself. */
static conv_entry *conv_lookup(const conv_key *k)
{
    pthread_once(&g_once, engine_init);
    pthread_mutex_lock(&g_lock);
    conv_entry *hit = NULL, *victim = &g_cache[0];
    for (int i = 0; i < CONV_CACHE; i++) {
        conv_entry *e = &g_cache[i];
        if (e->used && !memcmp(&e->key, k, sizeof *k)) { hit = e; break; }
        if (e->used < victim->used) victim = e;
    }
    if (!hit) {
        if (victim->used) dnnl_primitive_destroy(victim->prim);
        conv_entry_build(victim, k);
        hit = victim;
    }
    hit->used = ++g_clock;
    pthread_mutex_unlock(&g_lock);
    return hit;
}

void op_conv2d(const float *x, int N, int IC, int H, int W,
               const float *w, const float *b, int OC, int KH, int KW,
               int stride, int pad, float *y)
{
    conv_key k;
    memset(&k, 0, sizeof k);   /* padding bytes take part in memcmp */
    k.N = N; k.IC = IC; k.H = H; k.W = W; k.OC = OC; k.KH = KH; k.KW = KW;
    k.stride = stride; k.pad = pad; k.bias = b != NULL;
    conv_entry *e = conv_lookup(&k);
    if (!t_stream) ck(dnnl_stream_create(&t_stream, g_engine, dnnl_stream_default_flags), "stream_create");
    dnnl_memory_t ms, mw, mb = NULL, md;
    ck(dnnl_memory_create(&ms, &e->src, g_engine, (void *)x), "memory src");
    ck(dnnl_memory_create(&mw, &e->wei, g_engine, (void *)w), "memory weights");
    ck(dnnl_memory_create(&md, &e->dst, g_engine, y), "memory dst");
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};
    int nargs = 3;
    if (b) {
        ck(dnnl_memory_create(&mb, &e->bia, g_engine, (void *)b), "memory bias");
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mb};
    }
    ck(dnnl_primitive_execute(e->prim, t_stream, nargs, args), "convolution execute");
    ck(dnnl_stream_wait(t_stream), "stream_wait");
    dnnl_memory_destroy(ms); dnnl_memory_destroy(mw); dnnl_memory_destroy(md);
    if (mb) dnnl_memory_destroy(mb);
}
