/* tops.c — see tops.h. */
#include "tops.h"

#include <stdio.h>
#include <stdlib.h>

#include <oneapi/dnnl/dnnl.h>

static ops_m g_m;
static int g_prec_set;

void t_ops_init(int threads)
{
    ops_ctx_free(g_m.ctx);
    g_m.ctx = ops_ctx_new(threads);
    if (!g_m.ctx) {
        fprintf(stderr, "tops: out of memory for an ops context\n");
        exit(1);
    }
    if (!g_prec_set) g_m.prec = ops_default_precision();
    g_prec_set = 1;
}

ops_m *t_ops(void)
{
    if (!g_m.ctx) t_ops_init(0);
    return &g_m;
}

void t_set_prec(int prec) { t_ops()->prec = prec; }

ops_weight *t_w(const float *w, size_t n)
{
    ops_weight *h = ops_weight_register(t_ops()->ctx, w, n, NULL, NULL);
    if (!h) {
        fprintf(stderr, "tops: out of memory for a weight handle\n");
        exit(1);
    }
    return h;
}

int t_own_tile(void)
{
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa(), avx512 = (unsigned)dnnl_cpu_isa_avx512_core;
    return (isa & avx512) != avx512;
}
