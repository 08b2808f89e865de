/* ops_vec.h — internal to the ops layer: 16-wide fp32 vector helpers (GCC
 * vector extensions: one AVX-512 register with -march=native here, pairs of
 * narrower ones elsewhere) for the transcendental functions the memory-bound
 * ops need — exp, SiLU, erf-GELU — so they vectorise without -ffast-math.
 * Accuracy: exp relative error < 2e-7 on [-87, 88]; erf absolute error
 * < 1.5e-7 (Abramowitz & Stegun 7.1.26 on top of that exp). */
#ifndef SD_OPS_VEC_H
#define SD_OPS_VEC_H

#include <stdint.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

static inline v16f v16_load(const float *p) { v16f v; memcpy(&v, p, sizeof v); return v; }
static inline void v16_store(float *p, v16f v) { memcpy(p, &v, sizeof v); }
static inline v8f v8_load(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
static inline void v8_store(float *p, v8f v) { memcpy(p, &v, sizeof v); }
static inline v16f v16_set1(float a) { return (v16f){0} + a; }
/* a in every lane (one vbroadcastss: (v8f){0} + a kept an add, as 0 + -0 is +0) */
#if defined(__AVX__)
static inline v8f v8_set1(float a) { return (v8f)_mm256_set1_ps(a); }
#else
static inline v8f v8_set1(float a) { return (v8f){a, a, a, a, a, a, a, a}; }
#endif
/* a·b + c with one rounding where the CPU has FMA (explicit: contraction of
 * a += b*c is GCC's choice per call site, and a kernel whose lanes must agree
 * bit for bit between two loops cannot leave it to that) */
#if defined(__FMA__)
static inline v8f v8_fma(v8f a, v8f b, v8f c) { return (v8f)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c); }
#else
static inline v8f v8_fma(v8f a, v8f b, v8f c) { return a * b + c; }
#endif
static inline v8f v8_sel(v8i m, v8f a, v8f b) { return (v8f)((m & (v8i)a) | (~m & (v8i)b)); }
static inline v8i v8_lt(v8f a, v8f b) { return a < b; }
#if defined(__AVX__)
static inline v8f v8_max(v8f a, v8f b) { return (v8f)_mm256_max_ps((__m256)a, (__m256)b); }
static inline v8f v8_min(v8f a, v8f b) { return (v8f)_mm256_min_ps((__m256)a, (__m256)b); }
#else
static inline v8f v8_max(v8f a, v8f b) { return v8_sel(a > b, a, b); }
static inline v8f v8_min(v8f a, v8f b) { return v8_sel(a < b, a, b); }
#endif
/* *p in every lane (one broadcast load) and the low 8 lanes of v (no
 * instruction: the low half of the same register) */
#if defined(__AVX512F__)
static inline v16f v16_bcast(const float *p) { return (v16f)_mm512_set1_ps(*p); }
#else
static inline v16f v16_bcast(const float *p) { return v16_set1(*p); }
#endif
static inline v8f v16_lo(v16f v) { return __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7); }
static inline v8f v16_hi(v16f v) { return __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15); }
static inline v16f v16_cat(v8f lo, v8f hi)
{
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
static inline v16f v16_sel(v16i m, v16f a, v16f b) { return (v16f)((m & (v16i)a) | (~m & (v16i)b)); }
/* Lane masks a < b (all ones where true; false with a NaN).  Below AVX-512
 * GCC 12 makes a 16-lane compare 16 scalar compares and moves (GEGLU's erf
 * ran at ~35 cycles an element on a Zen 3): two AVX compares instead, and
 * min/max as two vminps/vmaxps. */
#if defined(__AVX__) && !defined(__AVX512F__)
static inline v16i v16_lt(v16f a, v16f b)
{
    v8f lo = (v8f)_mm256_cmp_ps((__m256)v16_lo(a), (__m256)v16_lo(b), _CMP_LT_OQ);
    v8f hi = (v8f)_mm256_cmp_ps((__m256)v16_hi(a), (__m256)v16_hi(b), _CMP_LT_OQ);
    return (v16i)v16_cat(lo, hi);
}
#else
static inline v16i v16_lt(v16f a, v16f b) { return a < b; }
#endif
#if defined(__AVX512F__)
/* vminps/vmaxps: a < b ? a : b and a > b ? a : b exactly (b when either is
 * NaN), one instruction where the select took a compare and two xors */
static inline v16f v16_min(v16f a, v16f b) { return (v16f)_mm512_min_ps((__m512)a, (__m512)b); }
static inline v16f v16_max(v16f a, v16f b) { return (v16f)_mm512_max_ps((__m512)a, (__m512)b); }
#elif defined(__AVX__)
static inline v16f v16_min(v16f a, v16f b)
{
    return v16_cat((v8f)_mm256_min_ps((__m256)v16_lo(a), (__m256)v16_lo(b)),
                   (v8f)_mm256_min_ps((__m256)v16_hi(a), (__m256)v16_hi(b)));
}
static inline v16f v16_max(v16f a, v16f b)
{
    return v16_cat((v8f)_mm256_max_ps((__m256)v16_lo(a), (__m256)v16_lo(b)),
                   (v8f)_mm256_max_ps((__m256)v16_hi(a), (__m256)v16_hi(b)));
}
#else
static inline v16f v16_min(v16f a, v16f b) { return v16_sel(a < b, a, b); }
static inline v16f v16_max(v16f a, v16f b) { return v16_sel(a > b, a, b); }
#endif

/* the largest lane and the sum of the lanes (the softmax's row maximum and
 * row sum: shuffle trees with AVX-512, not 16 lane extractions) */
#if defined(__AVX512F__)
static inline float v16_hmax(v16f v) { return _mm512_reduce_max_ps((__m512)v); }
static inline float v16_hsum(v16f v) { return _mm512_reduce_add_ps((__m512)v); }
#else
static inline float v16_hmax(v16f v)
{
    float m = v[0];
    for (int u = 1; u < 16; u++) m = v[u] > m ? v[u] : m;
    return m;
}
static inline float v16_hsum(v16f v)
{
    float s = 0.f;
    for (int u = 0; u < 16; u++) s += v[u];
    return s;
}
#endif

/* e^x: x clamped to [-87, 88]; x = n·ln2 + r, |r| <= ln2/2, degree-6 Taylor;
 * erf(x) for any x: sign(x)·(1 − poly(t)·e^{−x²}), t = 1/(1 + p|x|); and the
 * exact-erf GELU, x/2 · (1 + erf(x/√2)).  Written once for a vector type
 * (prefix P: P##_max, _min, _lt, _sel, _set1) and made for 8 lanes always,
 * for 16 with AVX-512.  Below AVX-512 the 16-lane forms are the 8-lane ones
 * on each half (the same operations lane for lane, so the same bits): GCC 12
 * compiled their 64-byte integer conversions and shifts through the stack
 * (bench/README.md "AVX2, round 3").
 * The _k forms work on x[0..K) (K a constant, at most SD_VEC_K), each step
 * for all K before the next; the one-vector forms are K = 1.  One GELU is a
 * chain of ~50 dependent operations (a division among them): four side by
 * side let the core overlap them (a Zen 5, one thread, in cache: 0.65 ->
 * 0.46 ns a value; GEGLU's loop, v16_gelu4). */
#define SD_VEC_K 4
#define SD_VEC_EACH(K) _Pragma("GCC unroll 4") for (int k = 0; k < (K); k++)
#define SD_VEC_EXP_ERF(P, VF, VI)                                                                              \
    static inline __attribute__((always_inline)) void P##_exp_k(VF *x, const int K)                            \
    {                                                                                                          \
        VF t[SD_VEC_K], n[SD_VEC_K], r[SD_VEC_K], p[SD_VEC_K];                                                 \
        VI ni[SD_VEC_K];                                                                                       \
        SD_VEC_EACH(K) x[k] = P##_max(P##_min(x[k], P##_set1(88.f)), P##_set1(-87.f));                         \
        SD_VEC_EACH(K) t[k] = x[k] * 1.44269504f;                                                              \
        SD_VEC_EACH(K) ni[k] = __builtin_convertvector(t[k] + P##_sel(P##_lt(t[k], P##_set1(0.f)),             \
                                                                      P##_set1(-0.5f), P##_set1(0.5f)), VI);   \
        SD_VEC_EACH(K) n[k] = __builtin_convertvector(ni[k], VF);                                              \
        SD_VEC_EACH(K) r[k] = x[k] - n[k] * 0.693145751953125f - n[k] * 1.428606765330187e-06f;                \
        SD_VEC_EACH(K) p[k] = 1.f + r[k] * (1.f + r[k] * (0.5f + r[k] * (1.f / 6 + r[k] * (1.f / 24 +          \
                              r[k] * (1.f / 120 + r[k] * (1.f / 720))))));                                    \
        SD_VEC_EACH(K) x[k] = p[k] * (VF)((ni[k] + 127) << 23);                                                \
    }                                                                                                          \
    static inline __attribute__((always_inline)) void P##_gelu_k(VF *x, const int K)                           \
    {                                                                                                          \
        VF a[SD_VEC_K], t[SD_VEC_K], poly[SD_VEC_K], e[SD_VEC_K], y[SD_VEC_K];                                 \
        VI neg[SD_VEC_K];                                                                                      \
        SD_VEC_EACH(K) a[k] = x[k] * 0.70710678118654752f;   /* erf's argument, then its |·| */               \
        SD_VEC_EACH(K) neg[k] = P##_lt(a[k], P##_set1(0.f));                                                   \
        SD_VEC_EACH(K) a[k] = P##_sel(neg[k], -a[k], a[k]);                                                    \
        SD_VEC_EACH(K) t[k] = 1.f / (1.f + 0.3275911f * a[k]);                                                 \
        SD_VEC_EACH(K) poly[k] = t[k] * (0.254829592f + t[k] * (-0.284496736f + t[k] * (1.421413741f +         \
                                 t[k] * (-1.453152027f + t[k] * 1.061405429f))));                              \
        SD_VEC_EACH(K) e[k] = -a[k] * a[k];                                                                    \
        P##_exp_k(e, K);                                                                                       \
        SD_VEC_EACH(K) y[k] = 1.f - poly[k] * e[k];                                                            \
        SD_VEC_EACH(K) y[k] = P##_sel(neg[k], -y[k], y[k]);                                                    \
        SD_VEC_EACH(K) x[k] = 0.5f * x[k] * (1.f + y[k]);                                                      \
    }                                                                                                          \
    static inline VF P##_exp(VF x) { P##_exp_k(&x, 1); return x; }                                             \
    static inline VF P##_gelu(VF x) { P##_gelu_k(&x, 1); return x; }
SD_VEC_EXP_ERF(v8, v8f, v8i)
#if defined(__AVX512F__)
SD_VEC_EXP_ERF(v16, v16f, v16i)
static inline void v16_gelu4(v16f x[4]) { v16_gelu_k(x, 4); }   /* v16_gelu of x[0..3], the same bits */
#else
static inline v16f v16_exp(v16f x) { return v16_cat(v8_exp(v16_lo(x)), v8_exp(v16_hi(x))); }
static inline v16f v16_gelu(v16f x) { return v16_cat(v8_gelu(v16_lo(x)), v8_gelu(v16_hi(x))); }
static inline void v16_gelu4(v16f x[4])
{
    for (int k = 0; k < 4; k++) x[k] = v16_gelu(x[k]);
}
#endif

/* e^x for x <= 88 (softmax: x <= 0), in fewer instructions than v16_exp:
 * 2^t with t = x·log2(e) split as n + f, |f| <= 1/2, degree-6 Taylor of 2^f,
 * and n applied by vscalefps (which also turns very negative x into 0, so no
 * clamping).  Relative error < 3e-7 for |x| < 10 (the rounding of t adds
 * ~6e-8·|x|, irrelevant for the tiny values far below the maximum). */
#if defined(__AVX512F__)
static inline v16f v16_exp_fast(v16f x)
{
    __m512 t = _mm512_mul_ps((__m512)x, _mm512_set1_ps(1.44269504088896341f));
    __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v16f f = (v16f)_mm512_sub_ps(t, n);
    v16f p = 1.f + f * (0.693147180559945f + f * (0.240226506959101f + f * (0.0555041086648216f +
             f * (0.00961812910762848f + f * (0.00133335581464284f + f * 0.000154035303933816f)))));
    return (v16f)_mm512_scalef_ps((__m512)p, n);
}
#else
static inline v16f v16_exp_fast(v16f x) { return v16_exp(x); }
#endif

/* 2^t for t <= 0 (attention's softmax, whose scores are kept in log2 units
 * so no multiply by log2(e) is needed): t = n + f, |f| <= 1/2, 2^f =
 * 1 + f·q(f) with q the degree-4 Chebyshev fit of (2^f - 1)/f on
 * [-1/2, 1/2] (one FMA fewer than v16_exp_fast; exactly 1 at t = 0, so a
 * row's maximum keeps weight 1), n applied by vscalefps (t far below -126
 * gives 0, no clamping; t finite).  Relative error < 3e-7 on [-126, 0] (2.0e-7 in
 * exact arithmetic, the rest float rounding), absolute error < 1.2e-38
 * below (the denormals): tests/unit/test_ops.c "v16_exp2_neg". */
#define EXP2_POLY(f) EXP2_POLY_TIMES(f, 1.f)
/* that polynomial times the power of two s, folded into its coefficients:
 * every step is the unscaled one's value times s, exactly, while it stays
 * normal */
#define EXP2_POLY_TIMES(f, s) ((s) + (f) * (0.6931471805599453f * (s) + (f) * (0.2402234903802036f * (s) + (f) * \
    (0.05550381013796457f * (s) + (f) * (0.009666368515385448f * (s) + (f) * (0.0013381302537320797f * (s)))))))
static inline v16f v16_exp2_poly(v16f f) { return EXP2_POLY(f); }   /* 2^f for |f| <= 1/2 */
#if defined(__AVX512F__) && defined(__AVX512DQ__)
/* With AVX-512 DQ one instruction fewer: f = t - floor(t) in [0, 1)
 * straight from vreduceps (exact), 2^f = 1 + f·q(f) with q the degree-4 fit of
 * (2^f - 1)/f on [0, 1) minimising the relative error (8.2e-8 in exact
 * arithmetic; exactly 1 at f = 0), and vscalefps takes t itself, as it
 * multiplies by 2^floor(t) (bench/README.md "round 4"). */
static inline v16f v16_exp2_poly01(v16f f)   /* 2^f for 0 <= f < 1 */
{
    return 1.f + f * (0.6931513052234013f + f * (0.24016453074501085f + f * (0.05579961830631803f +
           f * (0.009017443312836371f + f * 0.0018669348676099058f))));
}
static inline v16f v16_exp2_neg(v16f t)
{
    v16f f = (v16f)_mm512_reduce_ps((__m512)t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    return (v16f)_mm512_scalef_ps((__m512)v16_exp2_poly01(f), (__m512)t);
}
#elif defined(__AVX512F__)
static inline v16f v16_exp2_neg(v16f t)   /* AVX-512F alone: round to nearest, f in [-1/2, 1/2] */
{
    __m512 n = _mm512_roundscale_ps((__m512)t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v16f f = (v16f)_mm512_sub_ps((__m512)t, n);
    return (v16f)_mm512_scalef_ps((__m512)v16_exp2_poly(f), n);
}
#else
/* Without vscalefps: n and its exponent field from one add of 1.5·2^23 + 191
 * (t + that rounds t to the nearest integer n in the low bits, and those
 * bits shifted into the exponent field are 2^(n + 64), normal for n >= -190),
 * then p·2^-64 (the polynomial's coefficients times 2^-64: exact) times
 * 2^(n+64), which rounds once to the denormals or 0 as vscalefps does; t
 * clamped at -190, where the result is 0 already.  Ten operations where
 * splitting 2^n into two factors by integer conversions and shifts took
 * seventeen (bench/README.md "AVX2, round 3"; the 2^-64 as its own multiply
 * made eleven, and cost the softmax's loop ~11 %: "round 4"). */
static inline v8f v8_exp2_neg(v8f t)
{
    const float magic = 12582912.f + 191.f;
    t = v8_max(t, v8_set1(-190.f));
    v8f j = t + magic;
    v8f f = t - (j - magic);
    return EXP2_POLY_TIMES(f, 5.421010862427522e-20f) * (v8f)((v8i)j << 23);   /* 2^-64 */
}
static inline v16f v16_exp2_neg(v16f t) { return v16_cat(v8_exp2_neg(v16_lo(t)), v8_exp2_neg(v16_hi(t))); }
#endif

/* 8 lanes (one AVX2 register): what attention's softmax needs on a CPU
 * without AVX-512, where the 16-lane forms above take two registers each
 * and their selects and reductions go through memory.  (v8_exp2_neg,
 * below AVX-512, is above: v16_exp2_neg is it on each half.) */
static inline float v8_hmax(v8f v)
{
    v8f h = v8_max(v, __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3));
    h = v8_max(h, __builtin_shufflevector(h, h, 2, 3, 0, 1, 6, 7, 4, 5));
    return h[0] > h[1] ? h[0] : h[1];
}
static inline float v8_hsum(v8f v)
{
    v8f h = v + __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
    h += __builtin_shufflevector(h, h, 2, 3, 0, 1, 6, 7, 4, 5);
    return h[0] + h[1];
}

/* SiLU, x·sigmoid(x) = x / (1 + e^-x).  With AVX-512: e^-x by the fast exp
 * (its argument clamped to 87 so the sum stays finite; below x = -87, where
 * SiLU is under 1e-36, the result is 0) and the division as vrcp14ps plus
 * a Newton step (relative error ~1e-7 near 0, ~6e-8·|x| from the fast
 * exp's rounding further out; vdivps cost as much as the rest of the group
 * norm's last pass). */
#if defined(__AVX512F__)
static inline v16f v16_silu(v16f v)
{
    __m512 d = _mm512_add_ps(_mm512_set1_ps(1.f), (__m512)v16_exp_fast(v16_min(-v, v16_set1(87.f))));
    __m512 r = _mm512_rcp14_ps(d);
    r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.f)));   /* r·(2 - d·r) */
    return v16_sel(v < -87.f, v16_set1(0.f), v * (v16f)r);
}
#else
/* (below x = -87 the clamped exp would leave x/e^88, not 0: 0 as above) */
static inline v8f v8_silu(v8f v) { return v8_sel(v8_lt(v, v8_set1(-87.f)), v8_set1(0.f), v / (1.f + v8_exp(-v))); }
static inline v16f v16_silu(v16f v) { return v16_cat(v8_silu(v16_lo(v)), v8_silu(v16_hi(v))); }
#endif

#endif
