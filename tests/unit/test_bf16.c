/* test_bf16.c — SD_PRECISION=bf16: convs and matmuls multiply in bf16
 * (oneDNN's fpmath mode; what the engine picks by default on AMX CPUs).
 * Checks a linear layer and a direct and a Winograd conv against double-
 * precision loops: within bf16's error (relative 2e-2 of the largest
 * output), and — on a CPU with AMX, where oneDNN 2.6 honours the mode —
 * clearly not fp32's (above 1e-5), which shows the mode is on.  Without AMX
 * (this project's machines) oneDNN keeps its fp32 kernels: only the bound
 * and the setting are checked. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <oneapi/dnnl/dnnl.h>

#include "../../src/engine/ops/ops.h"
#include "t.h"

static float *rnd(size_t n, unsigned seed)
{
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / 16777216.f - 0.5f;
    }
    return p;
}

static double relerr(const float *a, const double *r, size_t n)
{
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs(a[i] - r[i]));
        m = fmax(m, fabs(r[i]));
    }
    return m > 0 ? e / m : e;
}

static void check(const char *what, double e, int amx)
{
    char name[128];
    snprintf(name, sizeof name, "%s: bf16 error (rel %.2e) within 2e-2", what, e);
    CHECKF(e <= 2e-2, name, "rel err %.3g", e);
    if (amx) {
        snprintf(name, sizeof name, "%s: error above fp32's (bf16 in use)", what);
        CHECKF(e > 1e-5, name, "rel err %.3g", e);
    }
}

/* ops_bf16() in a child process with SD_PRECISION set to v (NULL: unset). */
static int child_bf16(const char *v)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (v) setenv("SD_PRECISION", v, 1);
        else unsetenv("SD_PRECISION");
        _exit(ops_bf16());
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

int main(void)
{
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    int amx = (isa & (unsigned)dnnl_cpu_isa_avx512_core_amx) == (unsigned)dnnl_cpu_isa_avx512_core_amx;
    /* the default (tests/run.sh sets fp32 for the parity tests) */
    CHECKF(child_bf16(NULL) == amx, "precision by default: bf16 exactly when the CPU has AMX", "AMX %d", amx);
    CHECK(child_bf16("auto") == amx, "SD_PRECISION=auto: the same");
    CHECK(child_bf16("fp32") == 0, "SD_PRECISION=fp32: fp32");
    CHECK(child_bf16("fast") == amx, "SD_PRECISION=fast (unknown): warns, auto");
    setenv("SD_PRECISION", "bf16", 1);
    ops_init(0);
    CHECK(ops_bf16() == 1, "SD_PRECISION=bf16 selects bf16");
    if (!amx) printf("# no AMX here: oneDNN keeps fp32 kernels under the bf16 mode, only the bound is checked\n");

    int M = 96, IN = 320, OUT = 80;
    float *x = rnd((size_t)M * IN, 1), *w = rnd((size_t)OUT * IN, 2), *b = rnd(OUT, 3), *y = malloc(sizeof(float) * M * OUT);
    double *r = malloc(sizeof(double) * M * OUT);
    for (int i = 0; i < M; i++)
        for (int o = 0; o < OUT; o++) {
            double a = b[o];
            for (int k = 0; k < IN; k++) a += (double)x[i * IN + k] * w[o * IN + k];
            r[i * OUT + o] = a;
        }
    op_linear(x, M, IN, w, b, OUT, y);
    check("linear 96x320 -> 80", relerr(y, r, (size_t)M * OUT), amx);
    free(x); free(w); free(b); free(y); free(r);

    int N = 1, IC = 64, H = 40, W = 40, OC = 32;   /* 40x40: Winograd under the default rule */
    x = rnd((size_t)N * H * W * IC, 4); w = rnd((size_t)OC * IC * 9, 5); b = rnd(OC, 6);
    y = malloc(sizeof(float) * N * H * W * OC);
    r = malloc(sizeof(double) * N * H * W * OC);
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++)
            for (int o = 0; o < OC; o++) {
                double a = b[o];
                for (int di = 0; di < 3; di++)
                    for (int dj = 0; dj < 3; dj++) {
                        int yi = i + di - 1, xj = j + dj - 1;
                        if (yi < 0 || yi >= H || xj < 0 || xj >= W) continue;
                        for (int c = 0; c < IC; c++)
                            a += (double)x[((size_t)yi * W + xj) * IC + c] * w[((size_t)o * IC + c) * 9 + di * 3 + dj];
                    }
                r[((size_t)i * W + j) * OC + o] = a;
            }
    ops_conv_set_winograd(OPS_WINO_OFF);
    op_conv2d_nhwc(x, N, IC, H, W, w, b, OC, 3, 3, 1, 1, y, 0);
    check("conv 3x3 64 -> 32, 40x40, direct", relerr(y, r, (size_t)N * H * W * OC), amx);
    ops_conv_set_winograd(OPS_WINO_ALL);
    op_conv2d_nhwc(x, N, IC, H, W, w, b, OC, 3, 3, 1, 1, y, 0);
    /* oneDNN has no bf16 Winograd: the conv falls back to a direct one (the
     * rule asks, the library decides); either way it must be right */
    double e = relerr(y, r, (size_t)N * H * W * OC);
    CHECKF(e <= 2e-2, "conv 3x3, Winograd asked for under bf16: result within bf16's error", "rel err %.3g", e);
    free(x); free(w); free(b); free(y); free(r);
    return t_done();
}
