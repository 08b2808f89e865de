/* ops_amx_peak.c — the practical bf16 peak of AMX (issue 19 item 1): the
 * inner loop of a bf16 matmul on tiles, run from L1 — each step loads two A
 * and two B tiles (16 rows x 64 bytes) from a 16 KB ring of 16 tiles and does
 * the 2x2 TDPBF16PS into four accumulator tiles (four independent chains: the
 * instruction's latency is under four of its issue intervals), as
 * ops_attention_amx.c's and oneDNN's kernels do, minus their packing.
 *
 * The tiles hold random bf16 values in [-1, 1) or zeros: on AMX the
 * operands' bits change the clock (bench/README.md: oneDNN's matmuls ran at
 * 4.4-5.2 TFLOP/s on zeros, 1.8-2.5 on random data), so the random loop is
 * the peak real weights and activations can reach, and what `sdserve bench`
 * and SD_PROFILE=1 measure the bf16 kernels against. */
#pragma GCC target("amx-tile,amx-bf16")

#include "ops.h"
#include "ops_dnnl.h"
#include "ops_prof.h"

#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

static volatile float g_peak_sink;

/* One thread's loop: per step A tiles 0-1 and B tiles 2-3 loaded from the
 * ring, C tiles 4-7 += A x B, iters steps; the sum of C's first tile
 * returned so the loop is not dropped. */
static float tile_loop(long iters, int random, uint32_t seed)
{
    static _Thread_local uint16_t ab[16][512] __attribute__((aligned(64)));
    static _Thread_local float c[256] __attribute__((aligned(64)));
    for (int t = 0; t < 16; t++)
        for (int i = 0; i < 512; i++) {
            seed = seed * 1664525u + 1013904223u;
            float v = (float)(seed >> 8) * (2.0f / 16777216.0f) - 1.0f;
            uint32_t bits;
            memcpy(&bits, &v, sizeof bits);
            ab[t][i] = random ? (uint16_t)(bits >> 16) : 0;
        }
    ops_amx_tiles_config();
    _tile_zero(4);
    _tile_zero(5);
    _tile_zero(6);
    _tile_zero(7);
    for (long i = 0; i < iters; i++) {
        const uint16_t *r = ab[(i & 3) * 4];
        _tile_loadd(0, r, 64);
        _tile_loadd(1, r + 512, 64);
        _tile_loadd(2, r + 1024, 64);
        _tile_loadd(3, r + 1536, 64);
        _tile_dpbf16ps(4, 0, 2);
        _tile_dpbf16ps(5, 0, 3);
        _tile_dpbf16ps(6, 1, 2);
        _tile_dpbf16ps(7, 1, 3);
    }
    _tile_stored(4, c, 64);
    _tile_release();
    float s = 0;
    for (int i = 0; i < 256; i++) s += c[i];
    return s;
}

double ops_amx_peak(int threads, int random)
{
    if (threads < 1 || !ops_attention_amx_ready()) return 0;
    const long iters = 5000000;               /* 20 M instructions a thread: ~0.1-0.5 s */
    const double flops = 2.0 * 16 * 16 * 32;  /* one TDPBF16PS: 16x16 outputs, 32 products each */
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = ops_prof_now();
        #pragma omp parallel num_threads(threads)
        {
            float r = tile_loop(iters, random, 0x9e3779b9u * (uint32_t)(omp_get_thread_num() + 1));
            #pragma omp atomic
            g_peak_sink += r;
        }
        double gf = (double)threads * iters * 4 * flops / (ops_prof_now() - t0) * 1e-9;
        if (gf > best) best = gf;
    }
    return best;
}
