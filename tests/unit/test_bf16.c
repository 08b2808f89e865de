/* test_bf16.c — the bf16 precisions (ops.h): bf16 (inputs and weights
 * bf16, f32 sums) and bf16x2 (what the engine picks by default on CPUs with
 * AMX: each input split into hi + lo bf16 terms against bf16 weights).
 *
 * Checks the default choice per CPU and the overrides; the fp32 -> bf16
 * rounding (nearest even, NaN and infinities kept, vector body and tail
 * agree with the scalar rule); then a linear layer (plain and
 * accumulating) and a direct conv against double-precision loops: in bf16
 * within bf16's error (relative 2e-2 of the largest output) and clearly not
 * fp32's (above 1e-5), which shows the bf16 path ran; in bf16x2 equal to
 * the product with bf16-rounded weights and exact inputs to 3e-5 (only the
 * weights are rounded) while not equal to the exact one, both ways of
 * meeting hi and lo with the weights (stacked weights, split rows; plain
 * and accumulating) and the rule that picks one.  Attention (on
 * AMX tiles where the CPU has them, else the fp32 kernel) within bf16's
 * error, and above fp32's where AMX runs it.  oneDNN has bf16 kernels on
 * every AVX-512 CPU, so only the attention's "not fp32" check needs AMX.
 * The rule is fixed by CPU features: avx512_bf16 without AMX (Zen 4) is
 * fp32 with the per-layer rule's layers at bf16 (every layer at bf16x2 or
 * bf16 measured slower or out of bounds there; bench/README.md "Precision
 * per layer") — and sd_precision_resolved names what the engine will pick. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/engine/ops/ops.h"
#include "../../src/engine/ops/ops_dnnl.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/sd.h"
#include "ref_ops.h"
#include "t.h"
#include "tops.h"

static float *rnd(size_t n, unsigned seed) { return ref_rand(n, seed); }

/* max |d| over the pairs, a NaN counting as infinite (fmax would skip it) */
static double maxdiff_step(double e, double d) { return isnan(d) ? INFINITY : d > e ? d : e; }

static double relerr(const float *a, const double *r, size_t n)
{
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        e = maxdiff_step(e, fabs(a[i] - r[i]));
        m = fmax(m, fabs(r[i]));
    }
    return m > 0 ? e / m : e;
}

/* bf16x2: y against the exact product r and the one with bf16-rounded
 * weights rw */
static void check_x2(const char *what, const float *y, const double *r, const double *rw, size_t n)
{
    char name[160];
    double ew = relerr(y, rw, n), e = relerr(y, r, n);
    snprintf(name, sizeof name, "%s, bf16x2: equals the product with bf16 weights (rel %.2e) within 3e-5", what, ew);
    CHECKF(ew <= 3e-5, name, "rel err %.3g", ew);
    snprintf(name, sizeof name, "%s, bf16x2: differs from the exact one by the weights' rounding (rel %.2e)", what, e);
    CHECKF(e > 1e-5 && e <= 2e-2, name, "rel err %.3g", e);
}

static float bf16_round(float x)
{
    uint16_t h;
    ops_to_bf16(&x, 1, &h);
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void check(const char *what, double e, int bf16_kernels)
{
    char name[160];
    snprintf(name, sizeof name, "%s: bf16 error (rel %.2e) within 2e-2", what, e);
    CHECKF(e <= 2e-2, name, "rel err %.3g", e);
    if (bf16_kernels) {
        snprintf(name, sizeof name, "%s: error above fp32's (bf16 in use)", what);
        CHECKF(e > 1e-5, name, "rel err %.3g", e);
    }
}

/* ops_default_precision() in a child process with SD_PRECISION set to v (NULL:
 * unset; "amx": ops_cpu_amx() instead) — the setting is read once, at
 * first use. */
static int child_bf16(const char *v)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (v && !strcmp(v, "amx")) _exit(ops_cpu_amx());
        if (v) setenv("SD_PRECISION", v, 1);
        else unsetenv("SD_PRECISION");
        _exit(ops_default_precision());
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

/* sd_precision_resolved("auto") in a child with SD_PRECISION unset: 1 if it
 * names `want`, 0 if not, -1 if the child failed. */
static int child_resolved(const char *want)
{
    pid_t pid = fork();
    if (pid == 0) {
        unsetenv("SD_PRECISION");
        const char *r = sd_precision_resolved("auto");
        _exit(r && !strcmp(r, want));
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

static float from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static void test_rounding(void)
{
    static const struct { uint32_t in; uint16_t want; const char *what; } c[] = {
        {0x3f800000u, 0x3f80, "1.0 exact"},
        {0x3f808000u, 0x3f80, "1 + 2^-8, a tie: to even (down)"},
        {0x3f818000u, 0x3f82, "1 + 3·2^-8, a tie: to even (up)"},
        {0x3f808001u, 0x3f81, "just above a tie: up"},
        {0xbf80ffffu, 0xbf81, "negative, rounds away from zero"},
        {0x7f7fffffu, 0x7f80, "largest float overflows to infinity"},
        {0x7f800000u, 0x7f80, "infinity stays"},
        {0xff800000u, 0xff80, "-infinity stays"},
        {0x00000001u, 0x0000, "smallest denormal to zero"},
    };
    uint16_t y;
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        float x = from_bits(c[i].in);
        ops_to_bf16(&x, 1, &y);
        CHECKF(y == c[i].want, c[i].what, "0x%08x -> 0x%04x, want 0x%04x", c[i].in, y, c[i].want);
    }
    float nan = from_bits(0x7fc00001u);
    ops_to_bf16(&nan, 1, &y);
    CHECKF((y & 0x7f80) == 0x7f80 && (y & 0x7f), "NaN stays NaN", "0x%04x", y);
    /* a long array (the vector body, the threads, a tail of 3) against the
     * rule applied one by one */
    size_t n = 100003;
    float *x = rnd(n, 9);
    uint16_t *a = malloc(n * 2), *b = malloc(n * 2);
    for (size_t i = 0; i < n; i++) x[i] = ldexpf(x[i], (int)(i % 40) - 20);
    ops_to_bf16(x, n, a);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        ops_to_bf16(&x[i], 1, &b[i]);
        uint32_t u;
        memcpy(&u, &x[i], 4);
        uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        bad += a[i] != b[i] || a[i] != (uint16_t)r;
    }
    CHECKF(bad == 0, "100003 values: vector body and tail round like the scalar rule", "%zu differ", bad);
    free(x); free(a); free(b);
}

/* The n weights, each through bf16_round when round_w (a copy), else w
 * itself: rounded once per weight, not once per product (ops_to_bf16 on one
 * value per product took 15 s of this test). */
static const float *ref_weights(const float *w, size_t n, int round_w)
{
    if (!round_w) return w;
    float *r = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) r[i] = bf16_round(w[i]);
    return r;
}

/* Double-precision references: y[M][OUT] = x·wᵀ + b (linear) and the 3x3
 * stride-1 pad-1 conv of x[H][W][IC] (NHWC, one image) with w[OC][IC][3][3];
 * with round_w, every weight rounded to bf16 first (what bf16x2 computes). */
static void ref_linear(const float *x, int M, int IN, const float *w_in, const float *b, int OUT, int round_w,
                       double *y)
{
    const float *w = ref_weights(w_in, (size_t)OUT * IN, round_w);
    for (int i = 0; i < M; i++)
        for (int o = 0; o < OUT; o++) {
            double a = b[o];
            for (int k = 0; k < IN; k++) a += (double)x[i * IN + k] * w[o * IN + k];
            y[i * OUT + o] = a;
        }
    if (w != w_in) free((void *)w);
}

static void ref_conv3x3(const float *x, int H, int W, int IC, const float *w_in, const float *b, int OC, int round_w,
                        double *y)
{
    const float *w = ref_weights(w_in, (size_t)OC * IC * 9, round_w);
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
                y[((size_t)i * W + j) * OC + o] = a;
            }
    if (w != w_in) free((void *)w);
}

static void test_linear(void)
{
    int M = 96, IN = 320, OUT = 80;
    size_t n = (size_t)M * OUT;
    float *x = rnd((size_t)M * IN, 1), *w = rnd((size_t)OUT * IN, 2), *b = rnd(OUT, 3), *y = malloc(sizeof(float) * n);
    double *r = malloc(sizeof(double) * n), *rw = malloc(sizeof(double) * n);
    ref_linear(x, M, IN, w, b, OUT, 0, r);
    op_linear(t_ops(), x, M, IN, t_w(w, (size_t)IN * OUT), b, OUT, y);
    check("linear 96x320 -> 80", relerr(y, r, n), 1);
    /* the same product accumulated onto y: y = 2·(x·wᵀ + b) */
    op_linear_acc(t_ops(), x, M, IN, t_w(w, (size_t)IN * OUT), b, OUT, y);
    for (size_t i = 0; i < n; i++) r[i] *= 2;
    check("linear 96x320 -> 80, accumulating", relerr(y, r, n), 1);
    /* bf16x2 (other weights: the first ones have a bf16 copy now) */
    t_set_prec(OPS_BF16X2);
    float *w2 = rnd((size_t)OUT * IN, 7);
    ref_linear(x, M, IN, w2, b, OUT, 0, r);
    ref_linear(x, M, IN, w2, b, OUT, 1, rw);
    for (int sp = 0; sp < 2; sp++) {   /* both ways of meeting hi and lo with the weights */
        setenv("SD_SPLIT", sp ? "m" : "k", 1);
        char what[96];
        snprintf(what, sizeof what, "linear 96x320 -> 80, %s", sp ? "split rows" : "stacked weights");
        op_linear(t_ops(), x, M, IN, t_w(w2, (size_t)IN * OUT), b, OUT, y);
        check_x2(what, y, r, rw, n);
        op_linear_acc(t_ops(), x, M, IN, t_w(w2, (size_t)IN * OUT), b, OUT, y);
        for (size_t i = 0; i < n; i++) y[i] *= 0.5f;
        snprintf(what, sizeof what, "linear 96x320 -> 80, %s, accumulating (halved)", sp ? "split rows" : "stacked weights");
        check_x2(what, y, r, rw, n);
    }
    unsetenv("SD_SPLIT");
    t_set_prec(OPS_BF16);
    free(x); free(w); free(w2); free(b); free(y); free(r); free(rw);
}

static void test_conv(void)
{
    int N = 1, IC = 64, H = 40, W = 40, OC = 32;
    size_t n = (size_t)N * H * W * OC;
    float *x = rnd((size_t)N * H * W * IC, 4), *w = rnd((size_t)OC * IC * 9, 5), *b = rnd(OC, 6);
    float *y = malloc(sizeof(float) * n);
    double *r = malloc(sizeof(double) * n), *rw = malloc(sizeof(double) * n);
    ref_conv3x3(x, H, W, IC, w, b, OC, 0, r);
    ops_conv_set_winograd(t_ops()->ctx, OPS_WINO_OFF);
    op_conv2d_nhwc(t_ops(), x, N, IC, H, W, t_w(w, (size_t)OC * IC * 3 * 3), b, OC, 3, 3, 1, 1, y, 0);
    check("conv 3x3 64 -> 32, 40x40, direct", relerr(y, r, n), 1);
    ops_conv_set_winograd(t_ops()->ctx, OPS_WINO_ALL);
    op_conv2d_nhwc(t_ops(), x, N, IC, H, W, t_w(w, (size_t)OC * IC * 3 * 3), b, OC, 3, 3, 1, 1, y, 0);
    /* oneDNN has no bf16 Winograd: bf16 mode never asks for it */
    check("conv 3x3, Winograd mode under bf16 (direct)", relerr(y, r, n), 1);
    /* bf16x2, other weights */
    t_set_prec(OPS_BF16X2);
    float *w2 = rnd((size_t)OC * IC * 9, 8);
    ref_conv3x3(x, H, W, IC, w2, b, OC, 0, r);
    ref_conv3x3(x, H, W, IC, w2, b, OC, 1, rw);
    for (int sp = 0; sp < 2; sp++) {
        setenv("SD_SPLIT", sp ? "m" : "k", 1);
        char what[96];
        snprintf(what, sizeof what, "conv 3x3 64 -> 32, 40x40, %s", sp ? "split rows" : "stacked weights");
        op_conv2d_nhwc(t_ops(), x, N, IC, H, W, t_w(w2, (size_t)OC * IC * 3 * 3), b, OC, 3, 3, 1, 1, y, 0);
        check_x2(what, y, r, rw, n);
        op_conv2d_nhwc(t_ops(), x, N, IC, H, W, t_w(w2, (size_t)OC * IC * 3 * 3), b, OC, 3, 3, 1, 1, y, 1);
        for (size_t i = 0; i < n; i++) y[i] *= 0.5f;
        snprintf(what, sizeof what, "conv 3x3 64 -> 32, 40x40, %s, accumulating (halved)", sp ? "split rows" : "stacked weights");
        check_x2(what, y, r, rw, n);
    }
    unsetenv("SD_SPLIT");
    /* the rule: convs with large weights and linears with a small output
     * split rows, the others stack weights */
    CHECK(ops_split_mode(0, 320 * 2560, 320, 2560) == OPS_SPLIT_COLS, "bf16x2 rule: linear 320 -> 2560 stacks weights");
    CHECK(ops_split_mode(0, 5120 * 1280, 5120, 1280) == OPS_SPLIT_ROWS, "bf16x2 rule: linear 5120 -> 1280 splits rows");
    CHECK(ops_split_mode(1, 320 * 320 * 9, 320 * 9, 320) == OPS_SPLIT_COLS, "bf16x2 rule: conv 320 -> 320 stacks weights");
    CHECK(ops_split_mode(1, 1280 * 1280 * 9, 1280 * 9, 1280) == OPS_SPLIT_ROWS, "bf16x2 rule: conv 1280 -> 1280 splits rows");
    t_set_prec(OPS_BF16);
    free(x); free(w); free(w2); free(b); free(y); free(r); free(rw);
}

/* op_gn_conv2d_nhwc at every precision (and both bf16x2 splits) against the
 * norm then the conv: the same numbers, since the fused op rounds the same
 * normalised values; at fp32 the same bits (those two ops, or below AVX-512
 * the conv normalising its input as it pads it). */
static void test_gn_conv(void)
{
    int N = 2, C = 64, H = 12, W = 10, G = 8, OC = 48;
    size_t n = (size_t)N * H * W * C, no = (size_t)N * H * W * OC;
    float *x = rnd(n, 31), *pb = rnd((size_t)N * C, 32), *g = rnd(C, 33), *be = rnd(C, 34);
    float *w = rnd((size_t)OC * C * 9, 35), *b = rnd(OC, 36), *t = malloc(sizeof(float) * n);
    float *y1 = malloc(sizeof(float) * no), *y2 = malloc(sizeof(float) * no), *r0 = rnd(no, 37);
    static const struct { int prec; const char *split, *name; } P[] = {
        {OPS_FP32, NULL, "fp32"}, {OPS_BF16, NULL, "bf16"},
        {OPS_BF16X2, "k", "bf16x2 stacked"}, {OPS_BF16X2, "m", "bf16x2 split rows"}};
    for (size_t p = 0; p < sizeof P / sizeof P[0]; p++) {
        t_set_prec(P[p].prec);
        if (P[p].split) setenv("SD_SPLIT", P[p].split, 1);
        for (int acc = 0; acc < 2; acc++) {
            memcpy(y1, r0, sizeof(float) * no);
            memcpy(y2, r0, sizeof(float) * no);
            op_group_norm_nhwc(t_ops(), x, N, C, H * W, G, pb, g, be, 1e-5f, 1, t);
            op_conv2d_nhwc(t_ops(), t, N, C, H, W, t_w(w, (size_t)OC * C * 3 * 3), b, OC, 3, 3, 1, 1, y1, acc);
            /* the conversion buffer the fused op writes: poisoned, so that
             * what the plain conv left there cannot stand in for it */
            memset(ops_bf16_buffer(t_ops()->ctx, 4 * n), 0xff, 4 * n);
            op_gn_conv2d_nhwc(t_ops(), x, N, C, H, W, G, pb, g, be, 1e-5f, 1, t, t_w(w, (size_t)OC * C * 3 * 3), b, OC, 3, 3, 1, 1, y2, acc);
            double e = 0;
            for (size_t i = 0; i < no; i++) e = maxdiff_step(e, fabs(y1[i] - y2[i]));
            char name[128];
            snprintf(name, sizeof name, "group norm + conv in one op = norm then conv, %s%s", P[p].name,
                     acc ? ", accumulating" : "");
            CHECKF(P[p].prec == OPS_FP32 ? e == 0 : e <= 1e-6, name, "max |difference| %.3g", e);
        }
        unsetenv("SD_SPLIT");
    }
    t_set_prec(OPS_BF16);
    free(x); free(pb); free(g); free(be); free(w); free(b); free(t); free(y1); free(y2); free(r0);
}

static void test_attention(int amx)
{
    struct { int B, Tq, Tk, H, D; } cs[] = {
        {2, 130, 150, 8, 40},   /* SD 1.5's first level: D 40 (two 32-dim chunks, three 16-column groups) */
        {1, 70, 77, 2, 80},     /* cross-attention over 77 tokens: a partial key chunk */
        {1, 40, 64, 2, 160},    /* even number of column groups */
        {1, 33, 45, 1, 512},    /* the VAE's one head */
        {2, 17, 1, 3, 7},       /* one key, odd D, a partial query block */
        {1, 100, 300, 1, 64},   /* SD 2.x's head size */
    };
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        int B = cs[c].B, Tq = cs[c].Tq, Tk = cs[c].Tk, H = cs[c].H, D = cs[c].D, HD = H * D, ld = HD + 3;
        float *q = rnd((size_t)B * Tq * ld, 11 + c), *k = rnd((size_t)B * Tk * ld, 12 + c),
              *v = rnd((size_t)B * Tk * ld, 13 + c), *o = malloc(sizeof(float) * B * Tq * HD),
              *r = malloc(sizeof(float) * B * Tq * HD);
        for (size_t i = 0; i < (size_t)B * Tq * ld; i++) q[i] *= 4;   /* peaky softmax */
        double *rd = malloc(sizeof(double) * B * Tq * HD);
        float scale = 1.f / sqrtf((float)D);
        op_attention(t_ops(), q, ld, k, ld, v, ld, B, Tq, Tk, H, D, scale, o);
        ref_attention(q, ld, k, ld, v, ld, B, Tq, Tk, H, D, scale, 0, r);
        for (size_t i = 0; i < (size_t)B * Tq * HD; i++) rd[i] = r[i];
        char what[96];
        snprintf(what, sizeof what, "attention B%d Tq%d Tk%d H%d D%d", B, Tq, Tk, H, D);
        check(what, relerr(o, rd, (size_t)B * Tq * HD), amx);
        free(q); free(k); free(v); free(o); free(r); free(rd);
    }
}

int main(void)
{
    int amx = child_bf16("amx");
    int dflt = amx ? OPS_BF16X2 : OPS_FP32;
    /* the default (tests/run.sh sets fp32 for the parity tests) */
    CHECKF(child_bf16(NULL) == dflt, "precision by default: bf16x2 exactly when the CPU has AMX, else fp32",
           "AMX %d, precision %d", amx, child_bf16(NULL));
    CHECK(child_bf16("auto") == dflt, "SD_PRECISION=auto: the same");
    int rule_noamx = !amx && __builtin_cpu_supports("avx512bf16");   /* avx512_bf16 implies oneDNN's avx512_core */
    CHECK(child_resolved(amx ? "bf16x2, bf16 " UNET_BF16_LAYERS_NAME ", VAE bf16"
                         : rule_noamx ? "fp32, bf16 " UNET_BF16_LAYERS_NAME : "fp32") == 1,
          "sd_precision_resolved(auto) names the engine's choice, the per-layer rule on AMX and on avx512_bf16 (the cluster pins it)");
    if (rule_noamx)
        CHECK(child_bf16(NULL) == OPS_FP32 && child_resolved("fp32, bf16 " UNET_BF16_LAYERS_NAME) == 1,
              "avx512_bf16 without AMX: auto is fp32 with the per-layer rule's layers at bf16 (the fixed rule; measured faster)");
    CHECK(child_bf16("fp32") == OPS_FP32, "SD_PRECISION=fp32: fp32");
    CHECK(child_bf16("bf16x2") == OPS_BF16X2, "SD_PRECISION=bf16x2: bf16x2");
    CHECK(child_bf16("fast") == dflt, "SD_PRECISION=fast (unknown): warns, auto");
    setenv("SD_PRECISION", "bf16", 1);
    t_ops_init(0);
    CHECK(ops_default_precision() == OPS_BF16 && t_ops()->prec == OPS_BF16, "SD_PRECISION=bf16 selects bf16");
    if (!amx) printf("# no AMX here: attention in bf16 mode runs the fp32 kernel, only its bound is checked\n");

    test_rounding();
    if (!ops_cpu_bf16()) {   /* the engine refuses bf16 precisions here (test_generate, test_layer_rule) */
        printf("# no bf16 kernels on this CPU (below AVX-512): the bf16 linear, conv, attention and norm checks skipped\n");
        return t_done();
    }

    test_linear();
    test_conv();
    test_attention(amx);
    test_gn_conv();
    return t_done();
}
