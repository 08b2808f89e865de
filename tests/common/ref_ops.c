/* ref_ops.c — double-precision reference loops for the op tests (ref_ops.h). */
#include "ref_ops.h"

#include <math.h>
#include <stdlib.h>

void ref_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                   int B, int Tq, int Tk, int H, int D, float scale, int causal, float *out)
{
    double *s = malloc(sizeof(double) * Tk);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Tq; i++) {
                int lim = causal ? i + 1 : Tk;
                double mx = -1e300, sum = 0;
                for (int j = 0; j < lim; j++) {
                    double a = 0;
                    for (int d = 0; d < D; d++)
                        a += (double)q[((size_t)b * Tq + i) * ldq + h * D + d] * k[((size_t)b * Tk + j) * ldk + h * D + d];
                    s[j] = a * scale;
                    if (s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < lim; j++) { s[j] = exp(s[j] - mx); sum += s[j]; }
                for (int d = 0; d < D; d++) {
                    double o = 0;
                    for (int j = 0; j < lim; j++) o += s[j] / sum * v[((size_t)b * Tk + j) * ldv + h * D + d];
                    out[((size_t)b * Tq + i) * H * D + h * D + d] = (float)o;
                }
            }
    free(s);
}

float *ref_rand(size_t n, unsigned seed)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / 16777216.f - 0.5f;
    }
    return p;
}
