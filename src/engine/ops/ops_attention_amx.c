/* ops_attention_amx.c — op_attention's bf16 kernel on AMX tiles, used in
 * the bf16 precisions (ops_m.prec) on CPUs with AMX for plain (not causal) attention:
 * the UNet's self- and cross-attention and the VAE's mid-block attention.
 *
 * Per (batch, head) the keys and values are converted to bf16 and packed
 * once as the B operands of TDPBF16PS (pairs of rows interleaved, 16x32
 * bf16 = 1 KB a tile, zero-padded):
 *     Kp[key group of 16][dim chunk of 32]   for S = Q·Kᵀ
 *     Vp[dim group of 16][key chunk of 32]   for O = P·V
 * then tasks of 32 query rows (two 16-row tiles) share the thread team:
 *     Q (scaled by scale·log2 e) -> bf16 A tiles
 *     S[32][Tk] = Q·Kᵀ            2x2 tiles of 16x16 f32, into an L2 buffer
 *     per row: m = max S, p = 2^(S - m) (f32), l = Σ p, P = bf16(p)
 *     O[32][D] = P·V              2x2 tiles over pairs of 16-column groups
 *     out = O / l                 (f32)
 * So S for 32 rows and all keys lives in L2 (512 KB at 4096 keys): an exact
 * softmax in one pass over the keys, with no running rescale, and the full
 * [heads, Tq, Tk] matrix never exists.  Accuracy: Q, K, V and P rounded to
 * bf16 (relative 2^-9 each), products summed in f32 — bf16 mode's error, not
 * fp32's (tests/unit/test_ops.c checks it against a double loop).
 *
 * Tiles need the kernel's permission (arch_prctl ARCH_REQ_XCOMP_PERM); each
 * thread loads the tile configuration at the start of its share of the work
 * and releases it at the end (oneDNN's AMX kernels load their own). */
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")

#include "ops.h"
#include "ops_dnnl.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RB 32            /* query rows per task: two row tiles */
#define TILE 512         /* bf16 elements in a 16x32 tile */

typedef struct tilecfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_ok;

static void amx_init(void)
{
    /* ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18): Linux >= 5.16 */
    g_ok = ops_cpu_amx() && syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

int ops_attention_amx_ready(void)
{
    pthread_once(&g_once, amx_init);
    return g_ok;
}

/* The one tile configuration of both AMX loops (ops_dnnl.h). */
void ops_amx_tiles_config(void)
{
    tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) {   /* every tile 16 rows x 64 bytes */
        c.rows[t] = 16;
        c.colsb[t] = 64;
    }
    _tile_loadconfig(&c);
}

/* n <= 32 floats (times a) -> 32 bf16, zeros past n. */
static inline __m512i row_bf16(const float *x, int n, float a)
{
    __mmask16 m0 = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1), m1 = n >= 32 ? 0xffff : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
    __m512 va = _mm512_set1_ps(a);
    __m512 lo = _mm512_mul_ps(_mm512_maskz_loadu_ps(m0, x), va), hi = _mm512_mul_ps(_mm512_maskz_loadu_ps(m1, x + 16), va);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

/* 2^x for x <= 0: x = n + f, |f| <= 1/2, degree-4 Taylor of 2^f (relative
 * error < 5e-5, far below the bf16 rounding that follows), n by vscalefps
 * (very negative x gives 0). */
static inline __m512 exp2_bf(__m512 x)
{
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_fmadd_ps(f, _mm512_set1_ps(0.00961812910762848f), _mm512_set1_ps(0.0555041086648216f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.240226506959101f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.693147180559945f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
    return _mm512_scalef_ps(p, n);
}

/* C tiles 4..7 += A tiles (rows a0, a1: lda bytes apart) x B tiles (b0, b1,
 * packed): the 2x2 step of both products. */
#define DP_2X2(a0, a1, lda, b0, b1) do {                                        \
        _tile_loadd(0, (a0), (lda));                                            \
        _tile_loadd(1, (a1), (lda));                                            \
        _tile_loadd(2, (b0), 64);                                               \
        _tile_loadd(3, (b1), 64);                                               \
        _tile_dpbf16ps(4, 0, 2);                                                \
        _tile_dpbf16ps(5, 0, 3);                                                \
        _tile_dpbf16ps(6, 1, 2);                                                \
        _tile_dpbf16ps(7, 1, 3);                                                \
    } while (0)

/* Scratch per thread, grown once. */
static _Thread_local void *t_scr;
static _Thread_local size_t t_nscr;
/* The packs, grown by the calling thread. */
static _Thread_local void *t_kp, *t_vp;
static _Thread_local size_t t_nkp, t_nvp;

/* One task: query rows i0 .. i0+m (m <= RB) of one (batch, head). */
static void task(const float *q, int ldq, float qs, int m, int Tk, int Tkp, int D, int Dc, int Dg,
                 const uint16_t *Kp, const uint16_t *Vp, float *out, int ldo, char *scr)
{
    int Kc = Tkp / 32, lS = Tkp + 16, lP = Tkp + 32;   /* row strides off powers of two (cache sets) */
    uint16_t *Qp = (uint16_t *)scr;                              /* [2][Dc][16][32] */
    float *S = (float *)(scr + (size_t)2 * Dc * TILE * 2);       /* [RB][lS] */
    uint16_t *P = (uint16_t *)(S + (size_t)RB * lS);            /* [RB][lP] */
    float *O = (float *)(P + (size_t)RB * lP);                   /* [RB][Dg*16] */
    float l[RB];
    int Op = Dg * 16;

    for (int i = 0; i < RB; i++)
        for (int c = 0; c < Dc; c++) {
            uint16_t *dst = Qp + ((size_t)((i / 16) * Dc + c) * 16 + i % 16) * 32;
            _mm512_storeu_si512(dst, i < m ? row_bf16(q + (size_t)i * ldq + 32 * c, D - 32 * c, qs) : _mm512_setzero_si512());
        }

    /* S = Q·Kᵀ, 32 keys at a time */
    long lds = (long)lS * 4;
    for (int kg = 0; kg < Kc; kg++) {
        _tile_zero(4); _tile_zero(5); _tile_zero(6); _tile_zero(7);
        const uint16_t *k0 = Kp + (size_t)(2 * kg) * Dc * TILE, *k1 = k0 + (size_t)Dc * TILE;
        for (int c = 0; c < Dc; c++)
            DP_2X2(Qp + (size_t)c * TILE, Qp + (size_t)(Dc + c) * TILE, 64, k0 + (size_t)c * TILE, k1 + (size_t)c * TILE);
        float *s = S + 32 * kg;
        _tile_stored(4, s, lds);
        _tile_stored(5, s + 16, lds);
        _tile_stored(6, s + (size_t)16 * lS, lds);
        _tile_stored(7, s + (size_t)16 * lS + 16, lds);
    }

    /* softmax rows (log2 domain: Q carried log2 e); keys >= Tk are padding */
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int i = 0; i < RB; i++) {
        const float *s = S + (size_t)i * lS;
        uint16_t *p = P + (size_t)i * lP;
        __m512 vm = _mm512_set1_ps(-INFINITY);
        int j = 0;
        for (; j + 16 <= Tk; j += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(s + j));
        if (j < Tk) vm = _mm512_mask_max_ps(vm, (__mmask16)((1u << (Tk - j)) - 1), vm, _mm512_loadu_ps(s + j));
        __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vm)), acc = _mm512_setzero_ps();
        for (j = 0; j < Tkp; j += 32) {
            __m512 e0 = exp2_bf(_mm512_sub_ps(_mm512_loadu_ps(s + j), mx));
            __m512 e1 = exp2_bf(_mm512_sub_ps(_mm512_loadu_ps(s + j + 16), mx));
            if (j + 32 > Tk) {   /* zero the padding keys */
                __m512i idx = _mm512_add_epi32(lane, _mm512_set1_epi32(j));
                e0 = _mm512_maskz_mov_ps(_mm512_cmplt_epi32_mask(idx, _mm512_set1_epi32(Tk)), e0);
                idx = _mm512_add_epi32(idx, _mm512_set1_epi32(16));
                e1 = _mm512_maskz_mov_ps(_mm512_cmplt_epi32_mask(idx, _mm512_set1_epi32(Tk)), e1);
            }
            acc = _mm512_add_ps(acc, _mm512_add_ps(e0, e1));
            _mm512_storeu_si512((void *)(p + j), (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
        }
        l[i] = _mm512_reduce_add_ps(acc);
    }

    /* O = P·V, two 16-column groups at a time */
    long ldp = (long)lP * 2, ldo_ = (long)Op * 4;
    const uint16_t *p1 = P + (size_t)16 * lP;
    for (int dg = 0; dg < Dg; dg += 2) {
        const uint16_t *v0 = Vp + (size_t)dg * Kc * TILE, *v1 = v0 + (size_t)Kc * TILE;
        _tile_zero(4); _tile_zero(6);
        if (dg + 1 < Dg) {
            _tile_zero(5); _tile_zero(7);
            for (int kc = 0; kc < Kc; kc++)
                DP_2X2(P + 32 * kc, p1 + 32 * kc, ldp, v0 + (size_t)kc * TILE, v1 + (size_t)kc * TILE);
            _tile_stored(5, O + 16 * dg + 16, ldo_);
            _tile_stored(7, O + (size_t)16 * Op + 16 * dg + 16, ldo_);
        } else {
            for (int kc = 0; kc < Kc; kc++) {
                _tile_loadd(0, P + 32 * kc, ldp);
                _tile_loadd(1, p1 + 32 * kc, ldp);
                _tile_loadd(2, v0 + (size_t)kc * TILE, 64);
                _tile_dpbf16ps(4, 0, 2);
                _tile_dpbf16ps(6, 1, 2);
            }
        }
        _tile_stored(4, O + 16 * dg, ldo_);
        _tile_stored(6, O + (size_t)16 * Op + 16 * dg, ldo_);
    }
    for (int i = 0; i < m; i++) {
        float inv = 1.f / l[i];
        const float *o = O + (size_t)i * Op;
        float *y = out + (size_t)i * ldo;
        for (int d = 0; d < D; d++) y[d] = o[d] * inv;
    }
}

void ops_attention_amx(ops_ctx *ctx, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                       int B, int Tq, int Tk, int H, int D, float scale, float *out)
{
    int BH = B * H, HD = H * D, Tkp = (Tk + 31) / 32 * 32, Dc = (D + 31) / 32, Dg = (D + 15) / 16;
    int Kg = Tkp / 16, Kc = Tkp / 32, nblk = (Tq + RB - 1) / RB;
    size_t kpn = (size_t)Kg * Dc * TILE, vpn = (size_t)Dg * Kc * TILE;
    uint16_t *Kall = ops_grow(ctx, &t_kp, &t_nkp, sizeof(uint16_t) * kpn * BH);
    uint16_t *Vall = ops_grow(ctx, &t_vp, &t_nvp, sizeof(uint16_t) * vpn * BH);
    if (!Kall || !Vall) return;   /* out of memory: the ops fault is set */
    size_t scr = (size_t)2 * Dc * TILE * 2 + (size_t)RB * (Tkp + 16) * 4 + (size_t)RB * (Tkp + 32) * 2 +
                 (size_t)RB * Dg * 16 * 4;
    float qs = scale * 1.4426950408889634f;
    #pragma omp parallel
    {
        /* pack K: Kp[g][c] tile row r holds keys 16g..16g+15 at dims 32c+2r,
         * 32c+2r+1: the 16x32 bf16 block transposed as 16x16 pairs */
        #pragma omp for schedule(static)
        for (long t = 0; t < (long)BH * Kg; t++) {
            int bh = (int)(t / Kg), g = (int)(t % Kg), b = bh / H, h = bh % H;
            uint32_t *dst = (uint32_t *)(Kall + (size_t)bh * kpn + (size_t)g * Dc * TILE);
            for (int c = 0; c < Dc; c++, dst += TILE / 2) {
                uint32_t blk[16][16];
                for (int n = 0; n < 16; n++) {
                    int j = 16 * g + n;
                    __m512i r = j < Tk ? row_bf16(k + ((size_t)b * Tk + j) * ldk + (size_t)h * D + 32 * c, D - 32 * c, 1.f)
                                       : _mm512_setzero_si512();
                    _mm512_storeu_si512(blk[n], r);
                }
                for (int r = 0; r < 16; r++)
                    for (int n = 0; n < 16; n++) dst[r * 16 + n] = blk[n][r];
            }
        }
        /* pack V: Vp[dg][kc] tile row r holds dims 16dg..16dg+15 of keys
         * 32kc+2r and 32kc+2r+1, interleaved */
        #pragma omp for schedule(static)
        for (long t = 0; t < (long)BH * Kc; t++) {
            int bh = (int)(t / Kc), kc = (int)(t % Kc), b = bh / H, h = bh % H;
            uint16_t *base = Vall + (size_t)bh * vpn + (size_t)kc * TILE;
            const __m512i ilv = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
            for (int r = 0; r < 16; r++) {
                int j0 = 32 * kc + 2 * r;
                const float *v0 = v + ((size_t)b * Tk + j0) * ldv + (size_t)h * D, *v1 = v0 + ldv;
                for (int dg = 0; dg < Dg; dg++) {
                    int n = D - 16 * dg;
                    __mmask16 mk = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
                    __m512 a = j0 < Tk ? _mm512_maskz_loadu_ps(mk, v0 + 16 * dg) : _mm512_setzero_ps();
                    __m512 c = j0 + 1 < Tk ? _mm512_maskz_loadu_ps(mk, v1 + 16 * dg) : _mm512_setzero_ps();
                    /* [a0..a15 | c0..c15] as bf16, then a0 c0 a1 c1 ... */
                    __m512i ac = (__m512i)_mm512_cvtne2ps_pbh(c, a);
                    _mm512_storeu_si512(base + (size_t)dg * Kc * TILE + r * 32, _mm512_permutexvar_epi16(ilv, ac));
                }
            }
        }
        char *s = ops_grow(ctx, &t_scr, &t_nscr, scr);
        ops_amx_tiles_config();
        #pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < (long)BH * nblk; t++) {
            if (!s) continue;   /* this thread is out of memory: the ops fault is set */
            int bh = (int)(t / nblk), b = bh / H, h = bh % H;
            int i0 = (int)(t % nblk) * RB, m = Tq - i0 < RB ? Tq - i0 : RB;
            task(q + ((size_t)b * Tq + i0) * ldq + (size_t)h * D, ldq, qs, m, Tk, Tkp, D, Dc, Dg,
                 Kall + (size_t)bh * kpn, Vall + (size_t)bh * vpn, out + ((size_t)b * Tq + i0) * HD + (size_t)h * D, HD,
                 s);
        }
        _tile_release();
    }
}
