/* philox.c — the default noise source: normal draws equal to
 * torch.randn(shape, device="cuda") right after torch.manual_seed(seed).
 *
 * Counter-based Philox4x32-10 (Salmon et al., "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11): key = the 64-bit seed (low word, high word),
 * counter = (offset, 0, element index low, element index high).  Each output
 * element uses the first two words of its own block through one Box-Muller
 * branch: u = x0*2^-32 + 2^-33, v = (x1*2^-32 + 2^-33)*2*pi, value =
 * sqrt(-2 ln u) * sin v.  `offset` is 0 for the first draw after seeding and
 * +1 for each later draw (the convention of the CUDA-compatible generators of
 * AUTOMATIC1111 and stable-diffusion.cpp).  Element i only depends on
 * (seed, offset, i), so any slice of a draw can be computed independently. */
#include <math.h>

#include "../sd.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u   /* golden ratio */
#define PHILOX_W1 0xBB67AE85u   /* sqrt(3) - 1 */

/* Ten rounds of Philox4x32 on counter c with key k (k is modified locally). */
static void philox4x32_10(uint32_t c[4], uint32_t k0, uint32_t k1)
{
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
        uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ c[1] ^ k0;
        uint32_t n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0; c[1] = lo1; c[2] = n2; c[3] = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
}

void sd_philox_normal(uint64_t seed, uint64_t offset, float *out, size_t n)
{
    /* u and v are formed in float32 exactly as the reference does (this is
     * what decides the last bits); log, sqrt and sin are evaluated in double
     * and rounded once, which stays within one float ulp of the reference. */
    const float inv32 = 2.3283064e-10f;                      /* 2^-32 */
    const float inv32_2pi = (float)(2.3283064e-10 * 6.2831855); /* 2^-32 * 2 pi */
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (size_t i = 0; i < n; i++) {
        uint32_t c[4] = { (uint32_t)offset, 0u, (uint32_t)i, (uint32_t)((uint64_t)i >> 32) };
        philox4x32_10(c, k0, k1);
        float u = (float)c[0] * inv32 + inv32 / 2;
        float v = (float)c[1] * inv32_2pi + inv32_2pi / 2;
        out[i] = (float)(sqrt(-2.0 * log((double)u)) * sin((double)v));
    }
}
