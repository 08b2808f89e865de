/* ops_ctx.c — the engine context (ops_ctx, ops.h): made with its primitive
 * caches, Winograd rule and team size, freed with its weight handles, and
 * its team size applied to a calling thread.  Above the rest of the ops
 * layer: it only puts the parts together. */
#include "ops.h"
#include "ops_dnnl.h"
#include "ops_prof.h"
#include "../../base/alloc.h"

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SD_CONV_WINOGRAD: 0 = never, 1 = every stride-1 3x3 conv, unset/auto =
 * by ops_conv.c's rules, wide = by the first two */
static int winograd_from_env(void)
{
    const char *s = getenv("SD_CONV_WINOGRAD");
    if (s && !strcmp(s, "0")) return OPS_WINO_OFF;
    if (s && !strcmp(s, "1")) return OPS_WINO_ALL;
    if (s && !strcmp(s, "wide")) return OPS_WINO_WIDE;
    if (s && *s && strcmp(s, "auto"))
        fprintf(stderr, "sdserve: SD_CONV_WINOGRAD=%s is not 0, 1, auto or wide; using auto\n", s);
    return OPS_WINO_AUTO;
}

ops_ctx *ops_ctx_new(int threads)
{
    const char *p = getenv("SD_PROFILE");
    if (p && (*p == '1' || *p == '2')) ops_prof_on = *p - '0';
    ops_ctx *c = sd_calloc(1, sizeof *c);
    if (!c) return NULL;
    int n = threads > 0 ? threads : omp_get_num_procs();
    c->threads = n < 1 ? 1 : n;
    c->wino = winograd_from_env();
    atomic_init(&c->fault, 0);
    pthread_mutex_init(&c->lock, NULL);
    c->conv = ops_conv_cache_new();
    c->mm = ops_mm_cache_new();
    if (!c->conv || !c->mm) {
        ops_ctx_free(c);
        return NULL;
    }
    ops_ctx_attach(c);
    return c;
}

void ops_ctx_free(ops_ctx *c)
{
    if (!c) return;
    while (c->weights) ops_weight_free(c->weights);
    ops_conv_cache_free(c->conv);
    ops_mm_cache_free(c->mm);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* OpenMP's thread count is per calling thread: a thread that did not set it
 * (the server's job worker) would use every core. */
void ops_ctx_attach(const ops_ctx *c)
{
    if (c && omp_get_max_threads() != c->threads) omp_set_num_threads(c->threads);
}

int ops_ctx_threads(const ops_ctx *c) { return c->threads; }
