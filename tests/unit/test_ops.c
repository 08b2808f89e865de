/* test_ops.c — every op in src/engine/ops/ops.h against a naive loop written
 * here (double sums where it matters) on small random shapes: odd sizes,
 * stride 2, padding, NULL bias, in place, strided attention inputs; the NHWC
 * ops on NHWC data directly.  Tolerance: 1e-4 relative to the reference's
 * magnitude; the layout ops (resize, concat) must copy exactly. */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ref_ops.h"
#include "t.h"
#include "../../src/engine/ops/ops.h"
#include "../../src/engine/ops/ops_vec.h"
#include "tops.h"

static unsigned long long rng = 88172645463325252ULL;
static float frand(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.f - 1.f;
}
static float *rnd(size_t n)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}
static float *nanbuf(size_t n)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}
/* max |a-b| / max(1, max|b|); NaN counts as failure. */
static double relerr(const float *a, const float *b, size_t n)
{
    double md = 0, mb = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d != d) return INFINITY;
        if (d > md) md = d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / mb;
}
#define TOL 1e-4
#define CMP(a, b, n, name) do { double e_ = relerr((a), (b), (n)); \
    CHECKF(e_ <= TOL, name, "rel err %.3g", e_); } while (0)
/* Layout ops copy values: equal to the bit. */
#define EXACT(a, b, n, name) do { size_t n_ = (n); size_t i_ = 0; \
    while (i_ < n_ && memcmp(&(a)[i_], &(b)[i_], sizeof(float)) == 0) i_++; \
    CHECKF(i_ == n_, name, "first difference at %zu: %g vs %g", i_, i_ < n_ ? (a)[i_] : 0.0, i_ < n_ ? (b)[i_] : 0.0); } while (0)

/* x[N,H,W,IC], w[OC,IC,KH,KW] (PyTorch layout), b[OC] or NULL -> y[N,OH,OW,OC]; double sums. */
static void naive_conv_nhwc(const float *x, int N, int IC, int H, int W, const float *w, const float *b,
                            int OC, int KH, int KW, int s, int p, float *y)
{
    int OH = (H + 2 * p - KH) / s + 1, OW = (W + 2 * p - KW) / s + 1;
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int oc = 0; oc < OC; oc++) {
                    double acc = b ? b[oc] : 0;
                    for (int kh = 0; kh < KH; kh++)
                        for (int kw = 0; kw < KW; kw++) {
                            int ih = oh * s - p + kh, iw = ow * s - p + kw;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                            const float *xp = x + (((size_t)n * H + ih) * W + iw) * IC;
                            for (int ic = 0; ic < IC; ic++)
                                acc += (double)xp[ic] * w[(((size_t)oc * IC + ic) * KH + kh) * KW + kw];
                        }
                    y[(((size_t)n * OH + oh) * OW + ow) * OC + oc] = (float)acc;
                }
}

/* Odd sizes, stride 2, 1x1, no padding, NULL bias, channel counts below and
 * above a 16-lane block; each shape twice (the second run goes through the
 * cached primitive), then accumulating into a random y (y += conv + b). */
static void test_conv(void)
{
    struct { int N, IC, H, W, OC, K, s, p, bias; } cs[] = {
        {1, 3, 7, 5, 4, 3, 1, 1, 1}, {2, 5, 9, 6, 7, 3, 2, 1, 0}, {2, 6, 5, 7, 3, 1, 1, 0, 1},
        {1, 4, 8, 8, 5, 1, 1, 0, 0}, {1, 3, 6, 5, 2, 3, 1, 0, 1}, {3, 2, 11, 4, 3, 3, 2, 1, 1},
        {1, 8, 4, 4, 16, 3, 1, 1, 1},
        {2, 32, 9, 7, 48, 3, 1, 1, 1}, {1, 16, 8, 8, 16, 3, 2, 1, 1}, {2, 24, 5, 6, 40, 1, 1, 0, 0},
        {1, 3, 6, 5, 5, 3, 1, 1, 0},
    };
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        int N = cs[c].N, IC = cs[c].IC, H = cs[c].H, W = cs[c].W, OC = cs[c].OC, K = cs[c].K;
        int s = cs[c].s, p = cs[c].p;
        int OH = (H + 2 * p - K) / s + 1, OW = (W + 2 * p - K) / s + 1;
        size_t ny = (size_t)N * OC * OH * OW;
        float *x = rnd((size_t)N * H * W * IC), *w = rnd((size_t)OC * IC * K * K), *b = cs[c].bias ? rnd(OC) : NULL;
        float *y = nanbuf(ny), *r = nanbuf(ny);
        char name[128];
        naive_conv_nhwc(x, N, IC, H, W, w, b, OC, K, K, s, p, r);
        for (int rep = 0; rep < 2; rep++) {
            op_conv2d_nhwc(t_ops(), x, N, IC, H, W, t_w(w, (size_t)OC * IC * K * K), b, OC, K, K, s, p, y, 0);
            snprintf(name, sizeof name, "conv2d_nhwc N%d IC%d %dx%d OC%d k%d s%d p%d bias%d run%d",
                     N, IC, H, W, OC, K, s, p, cs[c].bias, rep);
            CMP(y, r, ny, name);
        }
        float *y0 = rnd(ny);
        memcpy(y, y0, sizeof(float) * ny);
        for (size_t i = 0; i < ny; i++) r[i] += y0[i];
        op_conv2d_nhwc(t_ops(), x, N, IC, H, W, t_w(w, (size_t)OC * IC * K * K), b, OC, K, K, s, p, y, 1);
        snprintf(name, sizeof name, "conv2d_nhwc N%d IC%d %dx%d OC%d k%d s%d p%d bias%d accumulating",
                 N, IC, H, W, OC, K, s, p, cs[c].bias);
        CMP(y, r, ny, name);
        /* OPS_CONV_RELU, the post-op after the sum: max(y0 + conv + b, 0) */
        memcpy(y, y0, sizeof(float) * ny);
        for (size_t i = 0; i < ny; i++) r[i] = r[i] > 0 ? r[i] : 0;
        op_conv2d_nhwc(t_ops(), x, N, IC, H, W, t_w(w, (size_t)OC * IC * K * K), b, OC, K, K, s, p, y,
                       OPS_CONV_ACCUM | OPS_CONV_RELU);
        snprintf(name, sizeof name, "conv2d_nhwc N%d IC%d %dx%d OC%d k%d s%d p%d bias%d accumulating, relu",
                 N, IC, H, W, OC, K, s, p, cs[c].bias);
        CMP(y, r, ny, name);
        free(x); free(w); free(b); free(y); free(r); free(y0);
    }
}

static void test_gemm_linear(void)
{
    int M = 13, N = 9, K = 7;
    for (int tb = 0; tb < 2; tb++)
        for (int bz = 0; bz < 2; bz++) {
            int lda = K + 3, ldb = (tb ? K : N) + 2, ldc = N + 1;
            float *A = rnd((size_t)M * lda), *B = rnd((size_t)(tb ? N : K) * ldb);
            float *C = bz ? nanbuf((size_t)M * ldc) : rnd((size_t)M * ldc), *R = malloc(sizeof(float) * M * ldc);
            float beta = bz ? 0.f : 0.5f, alpha = 1.25f;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < ldc; j++) {
                    if (j >= N) { R[i * ldc + j] = C[i * ldc + j]; continue; }
                    double acc = 0;
                    for (int k = 0; k < K; k++)
                        acc += (double)A[i * lda + k] * (tb ? B[j * ldb + k] : B[k * ldb + j]);
                    R[i * ldc + j] = (float)(alpha * acc + (bz ? 0 : beta * C[i * ldc + j]));
                }
            op_gemm(tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            double e = 0;
            for (int i = 0; i < M; i++) { double ee = relerr(C + i * ldc, R + i * ldc, N); if (ee > e) e = ee; }
            char name[64];
            snprintf(name, sizeof name, "gemm transB%d beta%s strided", tb, bz ? "0 (C=NaN)" : "0.5");
            CHECKF(e <= TOL, name, "rel err %.3g", e);
            free(A); free(B); free(C); free(R);
        }
    for (int bias = 0; bias < 2; bias++) {
        int IN = 19, OUT = 11; M = 5;
        float *x = rnd((size_t)M * IN), *w = rnd((size_t)OUT * IN), *b = bias ? rnd(OUT) : NULL;
        float *y = nanbuf((size_t)M * OUT), *r = malloc(sizeof(float) * M * OUT);
        for (int i = 0; i < M; i++)
            for (int o = 0; o < OUT; o++) {
                double acc = b ? b[o] : 0;
                for (int k = 0; k < IN; k++) acc += (double)x[i * IN + k] * w[o * IN + k];
                r[i * OUT + o] = (float)acc;
            }
        op_linear(t_ops(), x, M, IN, t_w(w, (size_t)IN * OUT), b, OUT, y);
        CMP(y, r, (size_t)M * OUT, bias ? "linear with bias" : "linear bias NULL");
        free(x); free(w); free(b); free(y); free(r);
    }
}

/* GroupNorm of x[N,HW,C] (+ pre_bias[N,C] or NULL) with G groups of C/G
 * consecutive channels, in double; then SiLU if asked. */
static void naive_group_norm_nhwc(const float *x, int N, int C, int HW, int G, const float *pre_bias,
                                  const float *gamma, const float *beta, double eps, int silu, float *y)
{
    int cg = C / G;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            double m = 0, v = 0;
            for (int p = 0; p < HW; p++)
                for (int c = g * cg; c < (g + 1) * cg; c++)
                    m += (double)x[((size_t)n * HW + p) * C + c] + (pre_bias ? pre_bias[(size_t)n * C + c] : 0);
            m /= (double)cg * HW;
            for (int p = 0; p < HW; p++)
                for (int c = g * cg; c < (g + 1) * cg; c++) {
                    double d = (double)x[((size_t)n * HW + p) * C + c] + (pre_bias ? pre_bias[(size_t)n * C + c] : 0) - m;
                    v += d * d;
                }
            v /= (double)cg * HW;
            for (int p = 0; p < HW; p++)
                for (int c = g * cg; c < (g + 1) * cg; c++) {
                    size_t i = ((size_t)n * HW + p) * C + c;
                    double t = ((double)x[i] + (pre_bias ? pre_bias[(size_t)n * C + c] : 0) - m) / sqrt(v + eps) *
                               gamma[c] + beta[c];
                    if (silu) t = t / (1 + exp(-t));
                    y[i] = (float)t;
                }
        }
}

static void test_norms(void)
{
    char name[128];
    /* group norm, 12 channels (the scalar tail only), non-zero mean: out of place and in place */
    int N = 2, C = 12, HW = 15, G = 4;
    size_t n = (size_t)N * C * HW;
    float *x = rnd(n), *g = rnd(C), *b = rnd(C);
    for (size_t i = 0; i < n; i++) x[i] = x[i] * 3 + 2;
    for (int silu = 0; silu < 2; silu++) {
        float *y = nanbuf(n), *r = malloc(sizeof(float) * n), *ya = malloc(sizeof(float) * n);
        naive_group_norm_nhwc(x, N, C, HW, G, NULL, g, b, 1e-5, silu, r);
        op_group_norm_nhwc(t_ops(), x, N, C, HW, G, NULL, g, b, 1e-5f, silu, y);
        CMP(y, r, n, silu ? "group_norm_nhwc+silu" : "group_norm_nhwc");
        memcpy(ya, x, sizeof(float) * n);
        op_group_norm_nhwc(t_ops(), ya, N, C, HW, G, NULL, g, b, 1e-5f, silu, ya);
        CMP(ya, r, n, silu ? "group_norm_nhwc+silu in place" : "group_norm_nhwc in place");
        free(y); free(r); free(ya);
    }
    free(x); free(g); free(b);

    /* 48 channels (16-lane body): with and without the per-sample channel bias and SiLU */
    N = 2; C = 48; HW = 37; G = 8;
    n = (size_t)N * C * HW;
    float *pb = rnd((size_t)N * C), *y = malloc(sizeof(float) * n), *r = malloc(sizeof(float) * n);
    x = rnd(n); g = rnd(C); b = rnd(C);
    for (size_t i = 0; i < n; i++) x[i] = x[i] * 3 + 0.5f;   /* an offset the mean must remove */
    for (int withb = 0; withb < 2; withb++)
        for (int silu = 0; silu < 2; silu++) {
            naive_group_norm_nhwc(x, N, C, HW, G, withb ? pb : NULL, g, b, 1e-5, silu, r);
            op_group_norm_nhwc(t_ops(), x, N, C, HW, G, withb ? pb : NULL, g, b, 1e-5f, silu, y);
            snprintf(name, sizeof name, "group_norm_nhwc pre_bias%d silu%d", withb, silu);
            CMP(y, r, n, name);
        }
    /* in place, more pixels than the chunking splits */
    int HW2 = 4099;
    size_t n2 = (size_t)C * HW2;
    float *x2 = rnd(n2), *r2 = malloc(sizeof(float) * n2);
    naive_group_norm_nhwc(x2, 1, C, HW2, G, NULL, g, b, 1e-6, 1, r2);
    op_group_norm_nhwc(t_ops(), x2, 1, C, HW2, G, NULL, g, b, 1e-6f, 1, x2);
    CMP(x2, r2, n2, "group_norm_nhwc in place, 4099 pixels");
    /* a mean 1000x the spread (E[x²] - mean² would lose it in float; the
     * shifted sums must not), first pixel far from the rest */
    float *x3 = rnd(n2), *y3 = malloc(sizeof(float) * n2);
    for (size_t i = 0; i < n2; i++) x3[i] = 300.f + 0.3f * x3[i];
    for (int c = 0; c < C; c++) x3[c] = 310.f;
    naive_group_norm_nhwc(x3, 1, C, HW2, G, NULL, g, b, 1e-6, 0, r2);
    op_group_norm_nhwc(t_ops(), x3, 1, C, HW2, G, NULL, g, b, 1e-6f, 0, y3);
    CMP(y3, r2, n2, "group_norm_nhwc, mean 1000x the spread");
    /* the two halves (the tiled VAE decode): coefficients over the whole
     * sample, applied to two row blocks, give group_norm_nhwc's bits */
    float *sc = malloc(sizeof(float) * 2 * C), *yh = nanbuf(n2);
    op_group_norm_coefs_nhwc(t_ops(), x3, C, HW2, G, g, b, 1e-6f, sc, sc + C);
    op_channel_affine_nhwc(x3, 1000, C, sc, sc + C, 0, yh);
    op_channel_affine_nhwc(x3 + (size_t)1000 * C, HW2 - 1000, C, sc, sc + C, 0, yh + (size_t)1000 * C);
    CHECK(!memcmp(yh, y3, sizeof(float) * n2), "group_norm_coefs + channel_affine = group_norm_nhwc, bit for bit");
    op_group_norm_nhwc(t_ops(), x3, 1, C, HW2, G, NULL, g, b, 1e-6f, 1, y3);
    op_channel_affine_nhwc(x3, HW2, C, sc, sc + C, 1, yh);
    CHECK(!memcmp(yh, y3, sizeof(float) * n2), "channel_affine with SiLU = group_norm_nhwc+silu, bit for bit");
    free(sc); free(yh);
    free(x3); free(y3);
    free(x); free(g); free(b); free(pb); free(y); free(r); free(x2); free(r2);

    int M = 7, CC = 21;
    float *lx = rnd((size_t)M * CC), *lg = rnd(CC), *lb = rnd(CC), *ly = nanbuf((size_t)M * CC), *lr = malloc(sizeof(float) * M * CC);
    for (int i = 0; i < M; i++) {
        double m = 0, v = 0;
        for (int c = 0; c < CC; c++) m += lx[i * CC + c];
        m /= CC;
        for (int c = 0; c < CC; c++) v += (lx[i * CC + c] - m) * (lx[i * CC + c] - m);
        v /= CC;
        for (int c = 0; c < CC; c++) lr[i * CC + c] = (float)((lx[i * CC + c] - m) / sqrt(v + 1e-5) * lg[c] + lb[c]);
    }
    op_layer_norm(lx, M, CC, lg, lb, 1e-5f, ly);
    CMP(ly, lr, (size_t)M * CC, "layer_norm");
    op_layer_norm(lx, M, CC, lg, lb, 1e-5f, lx);
    CMP(lx, lr, (size_t)M * CC, "layer_norm in place");
    free(lx); free(lg); free(lb); free(ly); free(lr);
    /* SD 1.5's 320 channels (vectors of 16 only), rows whose mean is 100x
     * their spread, no gamma/beta */
    M = 5; CC = 320;
    lx = rnd((size_t)M * CC); ly = nanbuf((size_t)M * CC); lr = malloc(sizeof(float) * M * CC);
    for (int i = 0; i < M; i++) {
        double m = 0, v = 0;
        for (int c = 0; c < CC; c++) m += (lx[i * CC + c] += 100.f * (i + 1));
        m /= CC;
        for (int c = 0; c < CC; c++) v += (lx[i * CC + c] - m) * (lx[i * CC + c] - m);
        v /= CC;
        for (int c = 0; c < CC; c++) lr[i * CC + c] = (float)((lx[i * CC + c] - m) / sqrt(v + 1e-5));
    }
    op_layer_norm(lx, M, CC, NULL, NULL, 1e-5f, ly);
    CMP(ly, lr, (size_t)M * CC, "layer_norm, 320 channels, mean 100x the spread, no gamma/beta");
    free(lx); free(ly); free(lr);
}

/* One weight buffer read as two shapes ([48,64] then [64,48], same bytes):
 * the cached copy of the first shape must not be taken as the source of the
 * second (it aborted in the reorder before). */
static void test_linear_reshaped_weights(void)
{
    int M = 64, A = 48, B = 64;
    float *x = rnd((size_t)M * B), *w = rnd((size_t)A * B), *y = nanbuf((size_t)M * B), *r = malloc(sizeof(float) * M * B);
    for (int pass = 0; pass < 2; pass++) {
        int IN = pass ? A : B, OUT = pass ? B : A;
        for (int i = 0; i < M; i++)
            for (int o = 0; o < OUT; o++) {
                double acc = 0;
                for (int k = 0; k < IN; k++) acc += (double)x[i * IN + k] * w[o * IN + k];
                r[i * OUT + o] = (float)acc;
            }
        op_linear(t_ops(), x, M, IN, t_w(w, (size_t)IN * OUT), NULL, OUT, y);
        CMP(y, r, (size_t)M * OUT, pass ? "linear, same weights read as [64,48]" : "linear, weights [48,64]");
    }
    free(x); free(w); free(y); free(r);
}

/* v16_exp2_neg, the softmax's 2^t (t = score - row max <= 0), against
 * exp2 in double: relative error < 3e-7 over [-126, 0] (every float of
 * [-1, 0] at a stride of 7 ulps-ish, 2^20 points over the rest, the
 * integers and half-integers where the reduction switches), absolute
 * error < 4e-45 below -126 down to -200, exactly 1 at 0 and 0 far below. */
static void test_exp2_neg(void)
{
    double worst = 0, worst_t = 0, abs_worst = 0;
    float buf[16];
    for (int part = 0; part < 3; part++) {
        int n = part == 2 ? 253 * 16 : 1 << 20;
        for (int i = 0; i < n; i += 16) {
            for (int u = 0; u < 16; u++) {
                int k = i + u;
                buf[u] = part == 0 ? -(float)k / (1 << 20)                 /* [-1, 0] */
                       : part == 1 ? -1.f - 125.f * (float)k / (1 << 20)   /* [-126, -1] */
                       : -(float)(k % 253) / 2.f - (k / 253) * 1e-6f;       /* n/2 and just below */
                if (buf[u] < -126.f) buf[u] = -126.f;
            }
            v16f e = v16_exp2_neg(v16_load(buf));
            for (int u = 0; u < 16; u++) {
                double ref = exp2((double)buf[u]), rel = fabs(e[u] - ref) / ref;
                if (rel > worst) { worst = rel; worst_t = buf[u]; }
            }
        }
    }
    for (int k = 0; k < 16 * 40; k += 16) {   /* (-200, -126): denormals and 0 */
        for (int u = 0; u < 16; u++) buf[u] = -126.f - 74.f * (float)(k + u) / 640.f;
        v16f e = v16_exp2_neg(v16_load(buf));
        for (int u = 0; u < 16; u++) {
            double d = fabs(e[u] - exp2((double)buf[u]));
            abs_worst = d > abs_worst ? d : abs_worst;
        }
    }
    CHECKF(worst < 3e-7, "v16_exp2_neg: relative error < 3e-7 on [-126, 0]", "max %.3g at t = %.9g",
           worst, worst_t);
    /* the denormals rounded as vscalefps does (the AVX2 fallback too): half a
     * step of 1.4e-45 plus 3e-7 of values under 2^-126 (2^-126 itself, the
     * old fallback's answer for all of them, is 1.18e-38 off) */
    CHECKF(abs_worst < 4e-45, "v16_exp2_neg: absolute error < 4e-45 below -126", "max %.3g", abs_worst);
    for (int u = 0; u < 16; u++) buf[u] = u < 8 ? 0.f : -1e4f;
    v16f e = v16_exp2_neg(v16_load(buf));
    CHECKF(e[0] == 1.f && e[7] == 1.f && e[8] == 0.f && e[15] == 0.f, "v16_exp2_neg: 2^0 = 1 exactly, 2^-1e4 = 0",
           "%.9g %.9g", e[0], e[15]);
    printf("# v16_exp2_neg: max relative error %.3g (t = %.9g), max absolute below -126 %.3g\n", worst, worst_t,
           abs_worst);
}

static void test_attention(void)
{
    struct { int B, Tq, Tk, H, D, pad; } cs[] = {
        {1, 5, 7, 1, 3, 0}, {2, 67, 77, 3, 5, 2}, {2, 130, 131, 2, 8, 0}, {1, 200, 9, 4, 4, 1},
        /* the kernel's register tiles: D = 40/64/80/512 (48-wide column tiles and
         * 16/32 tails), several key blocks, query tiles with tails */
        {1, 150, 600, 2, 40, 1}, {2, 77, 77, 3, 64, 0}, {1, 70, 300, 1, 80, 0}, {1, 65, 33, 1, 512, 0},
        /* 48+48+32+32, 48+8, 16+8 column tiles; three key blocks of 512 with a
         * partial strip */
        {1, 40, 70, 2, 160, 0}, {1, 33, 1100, 1, 56, 2}, {2, 17, 45, 1, 24, 0},
        /* key counts around the strips (a last strip of 16 when 1..16 keys
         * are left: 1, 7, 77, 78, 257, 529 over a block of 512; of 32 when
         * 17..31: 81, 95) at D = 8/40/64/80/160 */
        {2, 9, 1, 2, 40, 1}, {1, 21, 7, 2, 8, 0}, {2, 70, 77, 2, 40, 1}, {1, 19, 78, 1, 64, 0},
        {1, 24, 257, 2, 80, 2}, {1, 13, 77, 1, 160, 0}, {1, 520, 529, 1, 40, 0}, {1, 30, 81, 2, 40, 0},
        {1, 11, 95, 1, 160, 1},
    };
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        int B = cs[c].B, Tq = cs[c].Tq, Tk = cs[c].Tk, H = cs[c].H, D = cs[c].D, HD = H * D;
        int ldq = HD + cs[c].pad, ldk = HD + 2 * cs[c].pad, ldv = HD + 3 * cs[c].pad;
        float *q = rnd((size_t)B * Tq * ldq), *k = rnd((size_t)B * Tk * ldk), *v = rnd((size_t)B * Tk * ldv);
        for (size_t i = 0; i < (size_t)B * Tq * ldq; i++) q[i] *= 4;   /* peaky softmax */
        float *o = nanbuf((size_t)B * Tq * HD), *r = malloc(sizeof(float) * B * Tq * HD);
        float scale = 1.f / sqrtf((float)D);
        char name[96];
        op_attention(t_ops(), q, ldq, k, ldk, v, ldv, B, Tq, Tk, H, D, scale, o);
        ref_attention(q, ldq, k, ldk, v, ldv, B, Tq, Tk, H, D, scale, 0, r);
        snprintf(name, sizeof name, "attention B%d Tq%d Tk%d H%d D%d ld+%d", B, Tq, Tk, H, D, cs[c].pad);
        CMP(o, r, (size_t)B * Tq * HD, name);
        /* causal: self-attention, Tk = Tq */
        float *k2 = rnd((size_t)B * Tq * ldk), *v2 = rnd((size_t)B * Tq * ldv);
        op_attention_causal(t_ops(), q, ldq, k2, ldk, v2, ldv, B, Tq, H, D, scale, o);
        ref_attention(q, ldq, k2, ldk, v2, ldv, B, Tq, Tq, H, D, scale, 1, r);
        snprintf(name, sizeof name, "attention causal B%d T%d H%d D%d ld+%d", B, Tq, H, D, cs[c].pad);
        CMP(o, r, (size_t)B * Tq * HD, name);
        free(q); free(k); free(v); free(o); free(r); free(k2); free(v2);
    }
}

static void test_elementwise(void)
{
    size_t n = 40001;   /* above the parallel threshold, odd */
    float *x = rnd(n), *y = malloc(sizeof(float) * n), *r = malloc(sizeof(float) * n), *z = rnd(n);
    for (size_t i = 0; i < n; i++) x[i] *= 6;
    memcpy(y, x, sizeof(float) * n); op_silu(y, n);
    for (size_t i = 0; i < n; i++) r[i] = (float)(x[i] / (1 + exp(-(double)x[i])));
    CMP(y, r, n, "silu");
    {   /* the far ends (the exp clamped, the reciprocal of a huge or tiny sum) */
        static const float ends[32] = {-1e30f, -1000, -200, -100, -90, -88, -87, -60, -30, -20, -10, -1, -1e-3f,
                                       -1e-30f, 0, 1e-30f, 1e-3f, 1, 10, 20, 30, 60, 87, 88, 89, 90, 100, 200,
                                       1000, 1e30f, 3.5f, -3.5f};
        float e[32], re[32];
        memcpy(e, ends, sizeof e);
        op_silu(e, 32);
        for (int i = 0; i < 32; i++) re[i] = (float)(ends[i] / (1 + exp(-(double)ends[i])));
        int bad = 0;
        for (int i = 0; i < 32; i++)
            if (!(fabs(e[i] - re[i]) <= 1e-5 * fabs(re[i]) + 1e-30)) bad++;
        CHECKF(bad == 0, "silu at the far ends (-1e30 .. 1e30)", "%d of 32 off", bad);
    }
    memcpy(y, x, sizeof(float) * n); op_gelu(y, n);
    for (size_t i = 0; i < n; i++) r[i] = (float)(0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0))));
    CMP(y, r, n, "gelu (erf)");
    memcpy(y, x, sizeof(float) * n); op_quick_gelu(y, n);
    for (size_t i = 0; i < n; i++) r[i] = (float)(x[i] / (1 + exp(-1.702 * x[i])));
    CMP(y, r, n, "quick_gelu");
    memcpy(y, x, sizeof(float) * n); op_add(y, z, n);
    for (size_t i = 0; i < n; i++) r[i] = x[i] + z[i];
    CMP(y, r, n, "add");
    memcpy(y, x, sizeof(float) * n); op_axpby(y, 0.3f, z, -1.7f, n);
    for (size_t i = 0; i < n; i++) r[i] = 0.3f * x[i] - 1.7f * z[i];
    CMP(y, r, n, "axpby");

    /* v16_gelu4 (GEGLU's body): v16_gelu's bits, four vectors at once */
    {
        int same = 1;
        for (int blk = 0; blk + 64 <= (int)n; blk += 64) {
            float buf[64];
            for (int k = 0; k < 64; k++) buf[k] = x[blk + k] * (float)(1 + blk % 7) - (blk % 3 ? 0.f : 9.f);
            v16f q[4] = {v16_load(buf), v16_load(buf + 16), v16_load(buf + 32), v16_load(buf + 48)};
            v16_gelu4(q);
            for (int k = 0; k < 4; k++) {
                v16f one = v16_gelu(v16_load(buf + 16 * k));
                same &= !memcmp(&one, &q[k], sizeof one);
            }
        }
        CHECK(same, "v16_gelu4 = v16_gelu bit for bit");
    }
    for (int F = 13; F <= 200; F += 27) {   /* scalar tail only; 16-lane body + tail; 64-lane blocks too */
        int M = 9;
        op_geglu(x, M, F, y);
        for (int i = 0; i < M; i++)
            for (int f = 0; f < F; f++) {
                double v = x[i * 2 * F + f], g = x[i * 2 * F + F + f];
                r[i * F + f] = (float)(v * 0.5 * g * (1 + erf(g / sqrt(2.0))));
            }
        char gname[32];
        snprintf(gname, sizeof gname, "geglu F=%d", F);
        CMP(y, r, (size_t)M * F, gname);
    }

    /* nearest resize of x[N,H,W,C] with PyTorch's rule, src = min(floor(dst * (in/out)), in-1):
     * same size, 2x, and odd target sizes (diffusers' forward_upsample_size); an exact copy */
    struct { int C, OH, OW; } us[] = {{3, 5, 3}, {3, 10, 6}, {3, 9, 5}, {7, 10, 6}, {7, 7, 5}};
    int N = 2, H = 5, W = 3;
    for (size_t u = 0; u < sizeof us / sizeof us[0]; u++) {
        int C = us[u].C, OH = us[u].OH, OW = us[u].OW;
        for (size_t i = 0; i < n; i++) y[i] = NAN;
        op_upsample_nearest_nhwc(x, N, C, H, W, OH, OW, y);
        for (int nn = 0; nn < N; nn++)
            for (int i = 0; i < OH; i++)
                for (int j = 0; j < OW; j++) {
                    int si = (int)floorf(i * ((float)H / OH)), sj = (int)floorf(j * ((float)W / OW));
                    si = si < H ? si : H - 1;
                    sj = sj < W ? sj : W - 1;
                    for (int c = 0; c < C; c++)
                        r[(((size_t)nn * OH + i) * OW + j) * C + c] = x[(((size_t)nn * H + si) * W + sj) * C + c];
                }
        char name[96];
        snprintf(name, sizeof name, "upsample_nearest_nhwc C%d %dx%d -> %dx%d", C, H, W, OH, OW);
        EXACT(y, r, (size_t)N * C * OH * OW, name);
    }

    int C = 35, HW = 67;
    op_nchw_to_nlc(x, N, C, HW, y);
    for (int nn = 0; nn < N; nn++) for (int c = 0; c < C; c++) for (int i = 0; i < HW; i++)
        r[((size_t)nn * HW + i) * C + c] = x[((size_t)nn * C + c) * HW + i];
    CMP(y, r, (size_t)N * C * HW, "nchw_to_nlc");
    op_nlc_to_nchw(y, N, C, HW, z);
    CMP(z, x, (size_t)N * C * HW, "nlc_to_nchw round trip");

    /* channel concat of x1[P,C1], x2[P,C2] -> y[P,C1+C2]; an exact copy */
    struct { int C1, C2, P; } cc[] = {{3, 5, 2 * 7}, {7, 5, 2 * 37}};
    const float *x2 = x + 20000;   /* a second input inside x */
    for (size_t k = 0; k < sizeof cc / sizeof cc[0]; k++) {
        int C1 = cc[k].C1, C2 = cc[k].C2, P = cc[k].P;
        for (size_t i = 0; i < n; i++) y[i] = NAN;
        op_concat_channels_nhwc(x, C1, x2, C2, (size_t)P, y);
        for (int q = 0; q < P; q++)
            for (int c = 0; c < C1 + C2; c++)
                r[(size_t)q * (C1 + C2) + c] = c < C1 ? x[(size_t)q * C1 + c] : x2[(size_t)q * C2 + c - C1];
        char name[96];
        snprintf(name, sizeof name, "concat_channels_nhwc C%d+C%d, %d pixels", C1, C2, P);
        EXACT(y, r, (size_t)P * (C1 + C2), name);
    }
    free(x); free(y); free(r); free(z);
}

/* linear_acc: y += x·wᵀ + b, against a double sum. */
static void test_linear_acc(void)
{
    int M = 11, IN = 19, OUT = 23;
    float *lx = rnd((size_t)M * IN), *lw = rnd((size_t)OUT * IN), *lb = rnd(OUT), *ly = rnd((size_t)M * OUT);
    float *lr = malloc(sizeof(float) * M * OUT);
    for (int i = 0; i < M; i++)
        for (int o = 0; o < OUT; o++) {
            double acc = (double)ly[i * OUT + o] + lb[o];
            for (int k = 0; k < IN; k++) acc += (double)lx[i * IN + k] * lw[o * IN + k];
            lr[i * OUT + o] = (float)acc;
        }
    op_linear_acc(t_ops(), lx, M, IN, t_w(lw, (size_t)IN * OUT), lb, OUT, ly);
    CMP(ly, lr, (size_t)M * OUT, "linear_acc");
    free(lx); free(lw); free(lb); free(ly); free(lr);
}

/* op_gn_conv2d_nhwc at fp32: the bits of op_group_norm_nhwc then
 * op_conv2d_nhwc (where the conv runs on our own kernels — below AVX-512,
 * and Winograd everywhere — it normalises its input as it pads it): with and without SiLU, a pre-norm bias per sample, accumulating, a
 * 1x1 and a 3x3 conv, channel counts off the 16-lane blocks, and norm_out
 * the input itself (as the VAE passes it). */
static void test_gn_conv(void)
{
    static const struct { int N, C, H, W, G, OC, K, silu, pb, acc, alias; } s[] = {
        {2, 64, 9, 7, 8, 48, 3, 1, 1, 0, 0}, {2, 64, 9, 7, 8, 48, 3, 1, 1, 1, 0}, {1, 40, 6, 11, 4, 20, 3, 0, 0, 0, 1},
        {3, 32, 5, 5, 32, 37, 1, 1, 0, 1, 0}, {1, 96, 16, 16, 32, 96, 3, 1, 0, 0, 1},
        /* inputs over 2^23 floats an image: the conv runs in bands of rows */
        {2, 32, 520, 520, 8, 16, 3, 1, 1, 0, 0}, {1, 32, 520, 520, 8, 16, 3, 1, 0, 1, 1}};
    int prec = t_ops()->prec;
    t_set_prec(OPS_FP32);
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        int N = s[i].N, C = s[i].C, H = s[i].H, W = s[i].W, G = s[i].G, OC = s[i].OC, K = s[i].K;
        size_t n = (size_t)N * H * W * C, no = (size_t)N * H * W * OC;
        float *x = rnd(n), *x2 = malloc(sizeof(float) * n), *pb = s[i].pb ? rnd((size_t)N * C) : NULL;
        float *g = rnd(C), *be = rnd(C), *w = rnd((size_t)OC * C * K * K), *b = rnd(OC), *t = malloc(sizeof(float) * n);
        float *y1 = rnd(no), *y2 = malloc(sizeof(float) * no);
        memcpy(y2, y1, sizeof(float) * no);
        memcpy(x2, x, sizeof(float) * n);
        ops_weight *wh = t_w(w, (size_t)OC * C * K * K);
        op_group_norm_nhwc(t_ops(), x, N, C, H * W, G, pb, g, be, 1e-5f, s[i].silu, t);
        op_conv2d_nhwc(t_ops(), t, N, C, H, W, wh, b, OC, K, K, 1, K / 2, y1, s[i].acc);
        op_gn_conv2d_nhwc(t_ops(), x2, N, C, H, W, G, pb, g, be, 1e-5f, s[i].silu, s[i].alias ? x2 : t, wh, b, OC, K, K,
                          1, K / 2, y2, s[i].acc);
        char name[128];
        snprintf(name, sizeof name, "gn_conv %dx%dx%dx%d G%d -> %d, %dx%d%s%s%s%s: the bits of norm then conv", N, C, H,
                 W, G, OC, K, K, s[i].silu ? ", silu" : "", s[i].pb ? ", pre-bias" : "", s[i].acc ? ", accumulating" : "",
                 s[i].alias ? ", norm_out = x" : "");
        EXACT(y2, y1, no, name);
        free(x); free(x2); free(pb); free(g); free(be); free(w); free(b); free(t); free(y1); free(y2);
    }
    t_set_prec(prec);
}

/* A huge NHWC 3x3 conv (input > 16M floats) runs in row bands under the
 * default Winograd rule; the bands must add up to the whole conv: compare
 * with direct (Winograd off), plain and accumulating. */
static void test_conv_bands(void)
{
    int H = 301, W = 300, IC = 192, OC = 16;   /* 17.3M input floats: 3 bands */
    size_t nx = (size_t)H * W * IC, ny = (size_t)H * W * OC;
    float *x = rnd(nx), *w = rnd((size_t)OC * IC * 9), *b = rnd(OC);
    float *y = rnd(ny), *r = malloc(sizeof(float) * ny), *y0 = malloc(sizeof(float) * ny);
    memcpy(y0, y, sizeof(float) * ny);
    int saved = ops_conv_winograd(t_ops()->ctx);
    for (int accum = 0; accum < 2; accum++) {
        memcpy(r, y0, sizeof(float) * ny);
        ops_conv_set_winograd(t_ops()->ctx, OPS_WINO_OFF);
        op_conv2d_nhwc(t_ops(), x, 1, IC, H, W, t_w(w, (size_t)OC * IC * 3 * 3), b, OC, 3, 3, 1, 1, r, accum);
        memcpy(y, y0, sizeof(float) * ny);
        ops_conv_set_winograd(t_ops()->ctx, OPS_WINO_AUTO);
        op_conv2d_nhwc(t_ops(), x, 1, IC, H, W, t_w(w, (size_t)OC * IC * 3 * 3), b, OC, 3, 3, 1, 1, y, accum);
        CMP(y, r, ny, accum ? "conv2d_nhwc banded (Winograd) = direct, accumulating"
                            : "conv2d_nhwc banded (Winograd) = direct");
    }
    ops_conv_set_winograd(t_ops()->ctx, saved);
    free(x); free(w); free(b); free(y); free(r); free(y0);
}

/* op_conv2d_nhwc_up2 = nearest 2x upsampling then a 3x3 conv: one band
 * (small) and two bands of 216 output rows per image (N = 2, 300x300 out),
 * under the default rule (Winograd here) and with Winograd off. */
static void test_conv_up2(void)
{
    struct { int N, IC, H, W, OC; } cs[] = {{1, 8, 5, 7, 12}, {2, 64, 150, 150, 32}};
    int saved = ops_conv_winograd(t_ops()->ctx);
    for (int c = 0; c < 2; c++)
        for (int mode = 0; mode < 2; mode++) {
            int N = cs[c].N, IC = cs[c].IC, H = cs[c].H, W = cs[c].W, OC = cs[c].OC, OH = 2 * H, OW = 2 * W;
            size_t nu = (size_t)N * OH * OW * IC, ny = (size_t)N * OH * OW * OC;
            float *x = rnd((size_t)N * H * W * IC), *w = rnd((size_t)OC * IC * 9), *b = rnd(OC);
            float *u = malloc(sizeof(float) * nu), *r = malloc(sizeof(float) * ny), *y = nanbuf(ny);
            ops_conv_set_winograd(t_ops()->ctx, mode ? OPS_WINO_OFF : OPS_WINO_AUTO);
            op_upsample_nearest_nhwc(x, N, IC, H, W, OH, OW, u);
            op_conv2d_nhwc(t_ops(), u, N, IC, OH, OW, t_w(w, (size_t)OC * IC * 3 * 3), b, OC, 3, 3, 1, 1, r, 0);
            op_conv2d_nhwc_up2(t_ops(), x, N, IC, H, W, t_w(w, (size_t)OC * IC * 9), b, OC, y);
            char name[96];
            snprintf(name, sizeof name, "conv2d_nhwc_up2 N%d IC%d %dx%d -> %dx%d OC%d (Winograd %s) = upsample + conv",
                     N, IC, H, W, OH, OW, OC, mode ? "off" : "auto");
            CMP(y, r, ny, name);
            free(x); free(w); free(b); free(u); free(r); free(y);
        }
    ops_conv_set_winograd(t_ops()->ctx, saved);
}

/* The Winograd rules: a 32x32 conv whose Winograd weight copy would be large
 * next to the input of a CFG pair (12·OC > 2·H·W) stays direct under auto and goes
 * Winograd under wide and all (seen in the cache's Winograd bytes), with the
 * same result as direct. */
static void test_conv_wino_modes(void)
{
    int H = 32, W = 32, IC = 48, OC = 192;
    size_t nx = (size_t)H * W * IC, ny = (size_t)H * W * OC;
    float *x = rnd(nx), *b = rnd(OC), *y = malloc(sizeof(float) * ny), *r = malloc(sizeof(float) * ny);
    int saved = ops_conv_winograd(t_ops()->ctx);
    static const int modes[4] = {OPS_WINO_OFF, OPS_WINO_AUTO, OPS_WINO_WIDE, OPS_WINO_ALL};
    static const char *names[4] = {"off", "auto", "wide", "all"};
    float *ws[4];
    for (int m = 0; m < 4; m++) {
        float *w = ws[m] = rnd((size_t)OC * IC * 9);   /* fresh weights (kept: a new address), a new cache entry */
        size_t c0, b0, w0, c1, b1, w1;
        ops_conv_set_winograd(t_ops()->ctx, modes[m]);
        ops_weights_stats(t_ops()->ctx, &c0, &b0, &w0);
        op_conv2d_nhwc(t_ops(), x, 1, IC, H, W, t_w(w, (size_t)OC * IC * 3 * 3), b, OC, 3, 3, 1, 1, m ? y : r, 0);
        ops_weights_stats(t_ops()->ctx, &c1, &b1, &w1);
        char name[96];
        int want = modes[m] == OPS_WINO_WIDE || modes[m] == OPS_WINO_ALL;
        snprintf(name, sizeof name, "conv 32x32 OC %d, Winograd %s: %s", OC, names[m],
                 want ? "Winograd weights" : "direct weights");
        int wino = w1 > w0;
        CHECKF(wino == want, name, "Winograd bytes %zu -> %zu", w0, w1);
        if (m) {
            snprintf(name, sizeof name, "conv 32x32, Winograd %s = direct", names[m]);
            /* direct reference with these weights */
            ops_conv_set_winograd(t_ops()->ctx, OPS_WINO_OFF);
            op_conv2d_nhwc(t_ops(), x, 1, IC, H, W, t_w(w, (size_t)OC * IC * 3 * 3), b, OC, 3, 3, 1, 1, r, 0);
            CMP(y, r, ny, name);
        }
    }
    /* the rule counts a fixed CFG pair, never the batch (an image's bits
     * must not depend on its batch): N = 4 x 32x32 with 12·OC <= 4·H·W but
     * > 2·H·W stays direct under auto, as one image does, = direct */
    {
        int N4 = 4, OC4 = 256;
        size_t n4 = (size_t)N4 * H * W * OC4;
        float *x4 = rnd((size_t)N4 * H * W * IC), *w4 = rnd((size_t)OC4 * IC * 9);
        float *y4 = malloc(sizeof(float) * n4), *r4 = malloc(sizeof(float) * n4);
        size_t c0, b0, w0, c1, b1, w1;
        ops_conv_set_winograd(t_ops()->ctx, OPS_WINO_OFF);
        op_conv2d_nhwc(t_ops(), x4, N4, IC, H, W, t_w(w4, (size_t)OC4 * IC * 3 * 3), NULL, OC4, 3, 3, 1, 1, r4, 0);
        ops_conv_set_winograd(t_ops()->ctx, OPS_WINO_AUTO);
        ops_weights_stats(t_ops()->ctx, &c0, &b0, &w0);
        op_conv2d_nhwc(t_ops(), x4, N4, IC, H, W, t_w(w4, (size_t)OC4 * IC * 3 * 3), NULL, OC4, 3, 3, 1, 1, y4, 0);
        ops_weights_stats(t_ops()->ctx, &c1, &b1, &w1);
        CHECKF(w1 == w0, "conv N=4 32x32 OC 256, Winograd auto: direct, as for one image (no Winograd weights)",
               "Winograd bytes %zu -> %zu", w0, w1);
        CMP(y4, r4, n4, "conv N=4 32x32 OC 256, Winograd auto = direct");
        free(x4); free(w4); free(y4); free(r4);
    }
    ops_conv_set_winograd(t_ops()->ctx, saved);
    for (int m = 0; m < 4; m++) free(ws[m]);
    free(x); free(b); free(y); free(r);
}

/* Our Winograd on channel counts that end on half a 16-wide vector (IC
 * 264, OC 136: AVX-512's masked last loads and stores, no streamed stores
 * on V's unaligned rows; two K blocks of the products; two blocks of four
 * full panels on the 512-bit tile, with M's streamed stores, and a last
 * partial panel), partial 4x4 tiles at the edges (13x11), a batch of two,
 * with bias, then accumulating, then accumulating with relu: = direct. */
static void test_conv_wino_tails(void)
{
    int N = 2, H = 13, W = 11, IC = 264, OC = 136;
    size_t nx = (size_t)N * H * W * IC, ny = (size_t)N * H * W * OC;
    float *x = rnd(nx), *w = rnd((size_t)OC * IC * 9), *b = rnd(OC), *y0 = rnd(ny);
    float *y = malloc(sizeof(float) * ny), *r = malloc(sizeof(float) * ny);
    int saved = ops_conv_winograd(t_ops()->ctx);
    static const int flags[3] = {0, OPS_CONV_ACCUM, OPS_CONV_ACCUM | OPS_CONV_RELU};
    static const char *names[3] = {"plain", "accumulating", "accumulating, relu"};
    for (int f = 0; f < 3; f++) {
        size_t c0, b0, w0, c1, b1, w1;
        memcpy(r, y0, sizeof(float) * ny);
        memcpy(y, y0, sizeof(float) * ny);
        ops_conv_set_winograd(t_ops()->ctx, OPS_WINO_OFF);
        op_conv2d_nhwc(t_ops(), x, N, IC, H, W, t_w(w, (size_t)OC * IC * 9), b, OC, 3, 3, 1, 1, r, flags[f]);
        ops_conv_set_winograd(t_ops()->ctx, OPS_WINO_ALL);
        ops_weights_stats(t_ops()->ctx, &c0, &b0, &w0);
        op_conv2d_nhwc(t_ops(), x, N, IC, H, W, t_w(w, (size_t)OC * IC * 9), b, OC, 3, 3, 1, 1, y, flags[f]);
        ops_weights_stats(t_ops()->ctx, &c1, &b1, &w1);
        char name[96];
        snprintf(name, sizeof name, "Winograd IC 264 -> OC 136, 13x11, N=2, %s: Winograd weights made", names[f]);
        CHECKF(w1 > w0, name, "Winograd bytes %zu -> %zu", w0, w1);
        snprintf(name, sizeof name, "Winograd IC 264 -> OC 136, 13x11, N=2, %s = direct", names[f]);
        CMP(y, r, ny, name);
    }
    ops_conv_set_winograd(t_ops()->ctx, saved);
    free(x); free(w); free(b); free(y0); free(y); free(r);
}

/* A weight handle with a source, as the loader registers them: its owner is
 * told once after the first blocked copy (and here wipes the original, as
 * giving its pages back would), later layouts and a restore re-derive the
 * original through reload; replace drops the copies and restore gives back
 * the original's results exactly, at fp32 and bf16. */
typedef struct src_probe { const float *keep; float *orig; size_t n; int copied, reloads; } src_probe;

static void probe_copied(void *ud, const float *data, size_t n)
{
    src_probe *p = ud;
    p->copied++;
    memset(p->orig, 0, n * sizeof(float));   /* the owner's memory, gone */
}

static int probe_reload(void *ud, float *dst, size_t n)
{
    src_probe *p = ud;
    p->reloads++;
    memcpy(dst, p->keep, n * sizeof(float));
    return 0;
}

static void test_weight_handles(void)
{
    static const ops_weight_src SRC = {probe_copied, probe_reload};
    int N = 2, IC = 24, H = 12, W = 12, OC = 40;
    size_t nw = (size_t)OC * IC * 9, ny = (size_t)N * H * W * OC;
    float *x = rnd((size_t)N * H * W * IC), *b = rnd(OC), *keep = rnd(nw), *orig = malloc(nw * sizeof(float));
    float *alt = rnd(nw), *r = malloc(ny * sizeof(float)), *ra = malloc(ny * sizeof(float));
    float *y = malloc(ny * sizeof(float)), *y0 = malloc(ny * sizeof(float));
    memcpy(orig, keep, nw * sizeof(float));
    naive_conv_nhwc(x, N, IC, H, W, keep, b, OC, 3, 3, 1, 1, r);
    naive_conv_nhwc(x, N, IC, H, W, alt, b, OC, 3, 3, 1, 1, ra);
    ops_ctx *c = ops_ctx_new(2);
    ops_m m = {c, OPS_FP32};
    src_probe p = {keep, orig, nw, 0, 0};
    ops_weight *w = ops_weight_register(c, orig, nw, &SRC, &p);
    ops_conv_set_winograd(c, OPS_WINO_OFF);
    op_conv2d_nhwc(&m, x, N, IC, H, W, w, b, OC, 3, 3, 1, 1, y0, 0);
    CMP(y0, r, ny, "handle: conv = naive");
    CHECKF(p.copied == 1 && p.reloads == 0, "handle: the owner is told once its first blocked copy exists",
           "copied %d, reloads %d", p.copied, p.reloads);
    op_conv2d_nhwc(&m, x, N, IC, H, W, w, b, OC, 3, 3, 1, 1, y, 0);
    CHECK(!memcmp(y, y0, ny * sizeof(float)) && p.copied == 1 && p.reloads == 0,
          "handle: a second call uses the copy (same bits, no new copy, no reload)");
    ops_conv_set_winograd(c, OPS_WINO_ALL);   /* another layout: made from the blocked copy, not the original */
    op_conv2d_nhwc(&m, x, N, IC, H, W, w, b, OC, 3, 3, 1, 1, y, 0);
    CMP(y, r, ny, "handle: Winograd layout made after the original was given back = naive");
    ops_conv_set_winograd(c, OPS_WINO_OFF);
    CHECK(ops_weight_replace(w, alt) == 0, "handle: replace");
    op_conv2d_nhwc(&m, x, N, IC, H, W, w, b, OC, 3, 3, 1, 1, y, 0);
    CMP(y, ra, ny, "handle: replaced weights = naive conv with the new values");
    CHECK(ops_weight_restore(w) == 0, "handle: restore");
    op_conv2d_nhwc(&m, x, N, IC, H, W, w, b, OC, 3, 3, 1, 1, y, 0);
    CHECKF(!memcmp(y, y0, ny * sizeof(float)) && p.reloads == 1,
           "handle: restored = the original's output bit for bit, the original re-derived once through reload",
           "reloads %d", p.reloads);
    if (ops_cpu_bf16()) {
        m.prec = OPS_BF16;   /* a bf16 copy: from the blocked fp32 copy */
        float *yb = malloc(ny * sizeof(float)), *yb2 = malloc(ny * sizeof(float));
        op_conv2d_nhwc(&m, x, N, IC, H, W, w, b, OC, 3, 3, 1, 1, yb, 0);
        ops_weight_replace(w, alt);
        op_conv2d_nhwc(&m, x, N, IC, H, W, w, b, OC, 3, 3, 1, 1, yb2, 0);
        CHECK(memcmp(yb, yb2, ny * sizeof(float)), "handle at bf16: replaced -> another output");
        ops_weight_restore(w);
        op_conv2d_nhwc(&m, x, N, IC, H, W, w, b, OC, 3, 3, 1, 1, yb2, 0);
        CHECK(!memcmp(yb, yb2, ny * sizeof(float)), "handle at bf16: restored -> the same output bit for bit");
        free(yb); free(yb2);
    }
    size_t nc, nb, nwb;
    ops_weights_stats(c, &nc, &nb, &nwb);
    CHECKF(nc >= 1 && nb > 0, "handle: the context counts the handle's copies", "copies %zu, %zu bytes", nc, nb);
    ops_release_weights(c);
    ops_weights_stats(c, &nc, &nb, &nwb);
    CHECKF(nc == 0 && nb == 0, "ops_release_weights: every copy dropped", "copies %zu", nc);
    CHECK(!ops_take_fault(c), "handle: no fault in all that");
    ops_ctx_free(c);   /* frees the handle too */
    free(x); free(b); free(keep); free(orig); free(alt); free(r); free(ra); free(y); free(y0);
}

/* A context's team size applies in another thread only after
 * ops_ctx_attach (the server loads in main, runs in a worker). */
static void *attach_probe(void *arg)
{
    int *got = arg;
    ops_ctx_attach(t_ops()->ctx);
    got[0] = omp_get_max_threads();
    #pragma omp parallel
    {
        #pragma omp single
        got[1] = omp_get_num_threads();
    }
    return NULL;
}

static void test_threads(void)
{
    t_ops_init(1);
    int got[2] = {0, 0};
    pthread_t th;
    pthread_create(&th, NULL, attach_probe, got);
    pthread_join(th, NULL);
    CHECKF(got[0] == 1 && got[1] == 1, "ops_ctx_attach: another thread uses the context's team size",
           "max_threads %d, team %d", got[0], got[1]);
    t_ops_init(0);
    CHECK(ops_ctx_threads(t_ops()->ctx) == omp_get_num_procs() && omp_get_max_threads() == omp_get_num_procs(),
          "ops_ctx_new(0): all cores again");
}

/* ---- r3more: op_tanh_clamp (TAESD's Clamp) against a naive double loop ---- */
static void test_tanh_clamp(void)
{
    static const float ends[] = {-1e30f, -1000, -20, -3, -1e-30f, 0, 1e-30f, 3, 20, 1000, 1e30f, -0.f};
    const size_t ne = sizeof ends / sizeof ends[0];
    const size_t sizes[] = {ne + 5, 40000};   /* one thread; the team's (past ops.c's PAR_MIN) */
    const float cs[] = {3.0f, 1.0f, 0.25f};
    for (size_t s = 0; s < 2; s++) {
        const size_t n = sizes[s];
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        for (size_t i = 0; i < n; i++) x[i] = (float)((long)(i * 7919 % 2001) - 1000) / 97.0f;   /* -10.3 .. 10.3 */
        memcpy(x, ends, sizeof ends);
        for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
            memcpy(y, x, n * sizeof *x);
            op_tanh_clamp(y, n, cs[k]);
            int bad = 0, out = 0;
            for (size_t i = 0; i < n; i++) {
                double r = tanh((double)x[i] / cs[k]) * cs[k];
                if (!(fabs(y[i] - r) <= 2e-7 * cs[k] + 1e-6 * fabs(r))) bad++;
                if (!(fabsf(y[i]) <= cs[k])) out++;
            }
            char name[128];
            snprintf(name, sizeof name, "tanh_clamp c=%g, n=%zu: tanh(x/c)*c of a double loop, within [-c, c]",
                     (double)cs[k], n);
            CHECKF(bad == 0 && out == 0, name, "%d off, %d outside", bad, out);
        }
        free(x);
        free(y);
    }
}

/* ---- op_scale_shift (TAESD's image scales) against a naive loop ----
 * TAESD's two (a power of two, b = ±1 or 0.5) round once either way, so
 * they must equal the old loops' x*2-1 and (x+1)/2 bit for bit; another a,
 * b within an ulp (of |x*a| + |b|: one or two roundings) of the double x*a+b. */
static void test_scale_shift(void)
{
    static const struct { float a, b; int exact; } ab[] = {{2.0f, -1.0f, 1}, {0.5f, 0.5f, 1}, {-1.7f, 0.3f, 0}};
    const size_t sizes[] = {0, 37, 40000};   /* none; one thread; the team's (past ops.c's PAR_MIN) */
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const size_t n = sizes[s];
        float *x = malloc((n + 1) * sizeof *x), *y = malloc((n + 1) * sizeof *y);
        for (size_t i = 0; i < n; i++) x[i] = (float)((long)(i * 7919 % 2001) - 1000) / 977.0f;   /* -1.02 .. 1.02 */
        for (size_t k = 0; k < sizeof ab / sizeof ab[0]; k++) {
            memcpy(y, x, n * sizeof *x);
            y[n] = 42.0f;   /* past the end: untouched */
            op_scale_shift(y, n, ab[k].a, ab[k].b);
            int bad = 0;
            for (size_t i = 0; i < n; i++) {
                volatile float old = ab[k].a == 2.0f ? x[i] * 2.0f - 1.0f : (x[i] + 1.0f) / 2.0f;
                double r = (double)x[i] * ab[k].a + ab[k].b;
                if (ab[k].exact ? y[i] != old : !(fabs(y[i] - r) <= 1.2e-7 * (fabs((double)x[i] * ab[k].a) + fabs(ab[k].b)))) bad++;
            }
            char name[128];
            snprintf(name, sizeof name, "scale_shift a=%g b=%g, n=%zu: %s", (double)ab[k].a, (double)ab[k].b, n,
                     ab[k].exact ? "TAESD's old loop bit for bit" : "x*a+b of a double loop");
            CHECKF(bad == 0 && y[n] == 42.0f, name, "%d off, past the end %g", bad, (double)y[n]);
        }
        free(x);
        free(y);
    }
}

int main(void)
{
    t_ops_init(2);
    CHECKF(ops_ctx_threads(t_ops()->ctx) == 2 && omp_get_max_threads() == 2,
           "ops_ctx_new(2): team of 2 on the calling thread", "ctx threads %d, omp_get_max_threads %d",
           ops_ctx_threads(t_ops()->ctx), omp_get_max_threads());
    t_ops_init(-1);
    CHECKF(ops_ctx_threads(t_ops()->ctx) == omp_get_num_procs(), "ops_ctx_new(-1): all cores, like 0",
           "ctx threads %d of %d", ops_ctx_threads(t_ops()->ctx), omp_get_num_procs());
    test_conv();
    test_gemm_linear();
    test_linear_reshaped_weights();
    test_norms();
    test_exp2_neg();
    test_attention();
    test_elementwise();
    test_linear_acc();
    test_gn_conv();
    test_conv_bands();
    test_conv_wino_modes();
    test_conv_wino_tails();
    test_conv_up2();
    test_weight_handles();
    test_threads();
    test_tanh_clamp();   /* r3more */
    test_scale_shift();
    return t_done();
}
