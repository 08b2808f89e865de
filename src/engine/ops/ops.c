/* ops.c — thread team set-up and the memory-bound ops: normalisations,
 * activations, elementwise arithmetic, resampling and layout changes.
 * Plain OpenMP loops over fp32 NCHW / [M,C] arrays; the compute-bound ops
 * (conv, gemm, attention) live in ops_gemm.c and ops_attention.c.  No op
 * allocates more than a small per-call scratch and none can fail. */
#include "ops.h"

#include <math.h>
#include <omp.h>
#include <string.h>

static int g_threads;

void ops_init(int threads)
{
    int n = threads > 0 ? threads : omp_get_num_procs();
    if (n < 1) n = 1;
    if (g_threads == n) return;
    g_threads = n;
    omp_set_num_threads(n);
}

int ops_threads(void)
{
    return g_threads > 0 ? g_threads : omp_get_max_threads();
}

/* Elementwise loops are split into chunks only when big enough to pay for the team. */
#define PAR_MIN 16384

void op_group_norm(const float *x, int N, int C, int HW, int G,
                   const float *gamma, const float *beta, float eps, int silu, float *y)
{
    int cg = C / G;
    #pragma omp parallel for schedule(static) if ((size_t)N * C * HW >= PAR_MIN)
    for (int ng = 0; ng < N * G; ng++) {
        int n = ng / G, g = ng % G;
        size_t off = ((size_t)n * C + (size_t)g * cg) * HW, cnt = (size_t)cg * HW;
        const float *xs = x + off;
        double sum = 0;
        for (size_t i = 0; i < cnt; i++) sum += xs[i];
        double mean = sum / cnt, var = 0;
        for (size_t i = 0; i < cnt; i++) { double d = xs[i] - mean; var += d * d; }
        var /= cnt;
        float inv = (float)(1.0 / sqrt(var + eps)), m = (float)mean;
        for (int c = 0; c < cg; c++) {
            int ch = g * cg + c;
            float a = inv * (gamma ? gamma[ch] : 1.f), b = beta ? beta[ch] : 0.f;
            const float *xp = xs + (size_t)c * HW;
            float *yp = y + off + (size_t)c * HW;
            if (silu)
                for (int i = 0; i < HW; i++) { float v = (xp[i] - m) * a + b; yp[i] = v / (1.f + expf(-v)); }
            else
                for (int i = 0; i < HW; i++) yp[i] = (xp[i] - m) * a + b;
        }
    }
}

void op_layer_norm(const float *x, int M, int C, const float *gamma, const float *beta,
                   float eps, float *y)
{
    #pragma omp parallel for schedule(static) if ((size_t)M * C >= PAR_MIN)
    for (int r = 0; r < M; r++) {
        const float *xr = x + (size_t)r * C;
        float *yr = y + (size_t)r * C;
        double sum = 0, var = 0;
        for (int i = 0; i < C; i++) sum += xr[i];
        double mean = sum / C;
        for (int i = 0; i < C; i++) { double d = xr[i] - mean; var += d * d; }
        var /= C;
        float inv = (float)(1.0 / sqrt(var + eps)), m = (float)mean;
        for (int i = 0; i < C; i++)
            yr[i] = (xr[i] - m) * inv * (gamma ? gamma[i] : 1.f) + (beta ? beta[i] : 0.f);
    }
}

void op_silu(float *x, size_t n)
{
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.f + expf(-x[i]));
}

static inline float gelu1(float v) { return 0.5f * v * (1.f + erff(v * 0.70710678118654752f)); }

void op_gelu(float *x, size_t n)
{
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] = gelu1(x[i]);
}

void op_quick_gelu(float *x, size_t n)
{
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.f + expf(-1.702f * x[i]));
}

void op_add(float *y, const float *x, size_t n)
{
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void op_axpby(float *y, float a, const float *x, float b, size_t n)
{
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a * y[i] + b * x[i];
}

void op_add_channel_bias(float *x, int N, int C, int HW, const float *bias)
{
    #pragma omp parallel for schedule(static) if ((size_t)N * C * HW >= PAR_MIN)
    for (int p = 0; p < N * C; p++) {
        float b = bias[p], *xp = x + (size_t)p * HW;
        for (int i = 0; i < HW; i++) xp[i] += b;
    }
}

void op_geglu(const float *in, int M, int F, float *out)
{
    #pragma omp parallel for schedule(static) if ((size_t)M * F >= PAR_MIN)
    for (int r = 0; r < M; r++) {
        const float *v = in + (size_t)r * 2 * F, *g = v + F;
        float *o = out + (size_t)r * F;
        for (int i = 0; i < F; i++) o[i] = v[i] * gelu1(g[i]);
    }
}

void op_upsample_nearest2x(const float *x, int N, int C, int H, int W, float *y)
{
    int OW = 2 * W;
    #pragma omp parallel for schedule(static) if ((size_t)N * C * H * W >= PAR_MIN / 4)
    for (int p = 0; p < N * C; p++) {
        const float *xp = x + (size_t)p * H * W;
        float *yp = y + (size_t)p * 4 * H * W;
        for (int i = 0; i < H; i++) {
            float *r0 = yp + (size_t)(2 * i) * OW;
            for (int j = 0; j < W; j++) r0[2 * j] = r0[2 * j + 1] = xp[(size_t)i * W + j];
            memcpy(r0 + OW, r0, sizeof(float) * OW);
        }
    }
}

/* PyTorch's nearest_idx: exact for same size and 2x, else float scale in/out. */
static int nearest_src(int o, int in, int out)
{
    if (out == in) return o;
    if (out == 2 * in) return o >> 1;
    int i = (int)floorf((float)o * ((float)in / (float)out));
    return i < in - 1 ? i : in - 1;
}

void op_upsample_nearest(const float *x, int N, int C, int H, int W, int OH, int OW, float *y)
{
    if (OH == 2 * H && OW == 2 * W) { op_upsample_nearest2x(x, N, C, H, W, y); return; }
    #pragma omp parallel for schedule(static) if ((size_t)N * C * OH * OW >= PAR_MIN)
    for (int p = 0; p < N * C; p++) {
        const float *xp = x + (size_t)p * H * W;
        float *yp = y + (size_t)p * OH * OW;
        for (int i = 0; i < OH; i++) {
            const float *xr = xp + (size_t)nearest_src(i, H, OH) * W;
            for (int j = 0; j < OW; j++) yp[(size_t)i * OW + j] = xr[nearest_src(j, W, OW)];
        }
    }
}

/* Transposes go through 32x32 tiles so both sides stay cache-friendly. */
#define TT 32
static void transpose_planes(const float *x, int N, int R, int Cc, float *y)
{
    /* x[N,R,Cc] -> y[N,Cc,R] */
    int tr = (R + TT - 1) / TT, tc = (Cc + TT - 1) / TT;
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)N * R * Cc >= PAR_MIN)
    for (int n = 0; n < N; n++)
        for (int t = 0; t < tr * tc; t++) {
            int r0 = (t / tc) * TT, c0 = (t % tc) * TT;
            int r1 = r0 + TT < R ? r0 + TT : R, c1 = c0 + TT < Cc ? c0 + TT : Cc;
            const float *xs = x + (size_t)n * R * Cc;
            float *ys = y + (size_t)n * R * Cc;
            for (int r = r0; r < r1; r++)
                for (int c = c0; c < c1; c++) ys[(size_t)c * R + r] = xs[(size_t)r * Cc + c];
        }
}

void op_nchw_to_nlc(const float *x, int N, int C, int HW, float *y) { transpose_planes(x, N, C, HW, y); }
void op_nlc_to_nchw(const float *x, int N, int C, int HW, float *y) { transpose_planes(x, N, HW, C, y); }

void op_concat_channels(const float *x1, int C1, const float *x2, int C2, int N, int HW, float *y)
{
    size_t s1 = (size_t)C1 * HW, s2 = (size_t)C2 * HW;
    for (int n = 0; n < N; n++) {
        memcpy(y + n * (s1 + s2), x1 + n * s1, s1 * sizeof(float));
        memcpy(y + n * (s1 + s2) + s1, x2 + n * s2, s2 * sizeof(float));
    }
}
