/* ops.c — profiling (SD_PROFILE timers, executed-FLOP counters) and the
 * memory-bound ops: normalisations, activations, elementwise arithmetic,
 * resampling and layout changes.
 * Plain OpenMP loops over fp32 NHWC / [M,C] arrays; the compute-bound ops
 * (conv, gemm, attention) live in ops_conv.c, ops_gemm.c and
 * ops_attention.c.  No op allocates more than a small per-call scratch and
 * none can fail. */
#include "ops.h"
#include "ops_dnnl.h"
#include "ops_prof.h"
#include "../../base/alloc.h"
#include "ops_vec.h"
#include "ops_tile.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- profiling */

int ops_prof_on;
static double g_prof[PROF_NKIND];
static long g_prof_n[PROF_NKIND];

double ops_prof_now(void) { return omp_get_wtime(); }

/* Process-wide totals: two engines may run ops at once, so they are added
 * under a lock (only when profiling). */
static pthread_mutex_t g_prof_lock = PTHREAD_MUTEX_INITIALIZER;

/* SD_PROFILE=2's table by shape: a row per (kind, name), in first-call
 * order; past PROF_NSHAPE rows the rest go to one "(other shapes)" row of
 * their kind.  The name is the calling thread's last PROF_SHAPE (ops are
 * called from one thread; their FLOPs are counted on it or in the kind's
 * atomic totals, which is where a row's executed FLOPs come from). */
#define PROF_NSHAPE 256
typedef struct {
    int kind;
    long calls;
    double t, exec;
    char name[56];
} prof_shape;
static prof_shape g_shape[PROF_NSHAPE + PROF_NKIND];
static int g_nshape;
static _Thread_local char t_shape[56];

void ops_prof_shape(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_shape, sizeof t_shape, fmt, ap);
    va_end(ap);
}

static unsigned long long g_flops_model[PROF_NKIND], g_flops_exec[PROF_NKIND];

double ops_prof_exec_total(void)
{
    double x = 0;
    for (int i = 0; i < PROF_NKIND; i++) x += (double)__atomic_load_n(&g_flops_exec[i], __ATOMIC_RELAXED);
    return x;
}

/* the row of (kind, name), made if new; under g_prof_lock */
static prof_shape *shape_row(int kind, const char *name)
{
    for (int i = 0; i < g_nshape; i++)
        if (g_shape[i].kind == kind && !strcmp(g_shape[i].name, name)) return &g_shape[i];
    prof_shape *r = g_nshape < PROF_NSHAPE ? &g_shape[g_nshape++] : &g_shape[PROF_NSHAPE + kind];
    if (r->calls == 0) {
        r->kind = kind;
        snprintf(r->name, sizeof r->name, "%s", r < &g_shape[PROF_NSHAPE] ? name : "(other shapes)");
    }
    return r;
}

void ops_prof_add_call(int kind, double t0, double x0, const char *func)
{
    double t = omp_get_wtime() - t0, exec = ops_prof_on > 1 ? ops_prof_exec_total() - x0 : 0;
    pthread_mutex_lock(&g_prof_lock);
    g_prof[kind] += t;
    g_prof_n[kind]++;
    if (ops_prof_on > 1) {
        prof_shape *r = shape_row(kind, t_shape[0] ? t_shape : func);
        r->calls++;
        r->t += t;
        r->exec += exec;
    }
    pthread_mutex_unlock(&g_prof_lock);
    t_shape[0] = 0;
}

/* Thread accounts per kind (ops_prof.h), under the same lock. */
static double g_team_busy[PROF_NKIND], g_team_s[PROF_NKIND], g_team_wall[PROF_NKIND];

double ops_prof_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

void ops_prof_team(int kind, double busy_cpu, double wall, int threads)
{
    pthread_mutex_lock(&g_prof_lock);
    g_team_busy[kind] += busy_cpu;
    g_team_s[kind] += wall * threads;
    g_team_wall[kind] += wall;
    pthread_mutex_unlock(&g_prof_lock);
}

int ops_prof_enabled(void) { return ops_prof_on; }

void ops_prof_reset(void)
{
    memset(g_prof, 0, sizeof g_prof);
    memset(g_prof_n, 0, sizeof g_prof_n);
    memset(g_team_busy, 0, sizeof g_team_busy);
    memset(g_team_s, 0, sizeof g_team_s);
    memset(g_team_wall, 0, sizeof g_team_wall);
    memset(g_shape, 0, sizeof g_shape);
    g_nshape = 0;
    ops_flops_reset();
}

/* FLOP counters (ops.h, g_flops_* above): integers, added atomically by
 * whichever thread runs the op. */
static double g_prof_peak;

void ops_flops_add(int kind, double model, double exec)
{
    __atomic_fetch_add(&g_flops_model[kind], (unsigned long long)model, __ATOMIC_RELAXED);
    __atomic_fetch_add(&g_flops_exec[kind], (unsigned long long)exec, __ATOMIC_RELAXED);
}

void ops_flops_get(ops_flops *f)
{
    for (int i = 0; i < PROF_NKIND; i++) {
        f->model[i] = (double)__atomic_load_n(&g_flops_model[i], __ATOMIC_RELAXED);
        f->exec[i] = (double)__atomic_load_n(&g_flops_exec[i], __ATOMIC_RELAXED);
    }
}

void ops_flops_reset(void)
{
    for (int i = 0; i < PROF_NKIND; i++) {
        __atomic_store_n(&g_flops_model[i], 0ULL, __ATOMIC_RELAXED);
        __atomic_store_n(&g_flops_exec[i], 0ULL, __ATOMIC_RELAXED);
    }
}

void ops_prof_set_peak(double gflops) { g_prof_peak = gflops; }

static double g_prof_bf16_peak;
static const char *g_prof_bf16_name;
void ops_prof_set_bf16_peak(double gflops, const char *name)
{
    g_prof_bf16_peak = gflops;
    g_prof_bf16_name = name;
}

/* Winograd F(4x4, 3x3) per 6x6 tile (ops_wino.c's matrices, points 0, 1,
 * -1, 2, -1/2, ∞): multiply-adds of the input transform BᵀdB per input
 * channel (26 non-zeros of Bᵀ x 6 columns, then x 6 rows) and of the output
 * transform AᵀMA per output channel (18 non-zeros of Aᵀ x 6 columns, then
 * x 4 rows). */
#define WINO_M 4
#define WINO_ALPHA 6
#define WINO_IN_MACS (26 * 6 * 2)
#define WINO_OUT_MACS (18 * 6 + 18 * 4)

double ops_conv_exec_flops(int wino, int N, int IC, int OC, int OH, int OW, int KH, int KW)
{
    if (!wino) return 2.0 * N * OC * OH * OW * (double)IC * KH * KW;
    double tiles = (double)N * ((OH + WINO_M - 1) / WINO_M) * ((OW + WINO_M - 1) / WINO_M);
    double gemm = WINO_ALPHA * WINO_ALPHA * dk_exec_flops((long)tiles, OC, IC);   /* tile-padded */
    return gemm + tiles * (2.0 * WINO_IN_MACS * IC + 2.0 * WINO_OUT_MACS * OC);
}

/* One kind's profile line: time, share, calls, and where it did FLOPs their count and rate. */
static void prof_line(FILE *f, const char *name, int i, double tot, const ops_flops *fl)
{
    fprintf(f, "    %-12s %8.3f s %5.1f %%  %6ld calls", name, g_prof[i], tot > 0 ? 100 * g_prof[i] / tot : 0,
            g_prof_n[i]);
    double ex = fl->exec[i] * 1e-9, rate = g_prof[i] > 0 ? ex / g_prof[i] : 0;
    if (ex > 0) {
        fprintf(f, "  %8.1f GFLOP model %8.1f executed %7.1f GFLOP/s", fl->model[i] * 1e-9, ex, rate);
        if (g_prof_peak > 0) fprintf(f, " %5.1f %% of peak", 100 * rate / g_prof_peak);
        if (g_prof_bf16_peak > 0) fprintf(f, " %5.1f %% of the %s", 100 * rate / g_prof_bf16_peak, g_prof_bf16_name);
    }
    fputc('\n', f);
    if (g_team_s[i] > 0) {   /* where the kind keeps a thread account: busy share, rate in busy time */
        double busy = g_team_busy[i], wall_busy = busy / (g_team_s[i] / g_team_wall[i]);   /* busy / threads */
        fprintf(f, "    %-12s %8.3f s CPU busy of %.3f s team time (%.1f %%)", "  threads", busy, g_team_s[i],
                100 * busy / g_team_s[i]);
        if (ex > 0 && wall_busy > 0) {
            fprintf(f, "; in busy time %7.1f GFLOP/s", ex / wall_busy);
            if (g_prof_peak > 0) fprintf(f, " %5.1f %% of peak", 100 * ex / wall_busy / g_prof_peak);
        }
        fputc('\n', f);
    }
}

static int shape_cmp(const void *a, const void *b)
{
    double x = ((const prof_shape *)a)->t, y = ((const prof_shape *)b)->t;
    return x > y ? -1 : x < y;
}

/* SD_PROFILE=2: the rows by shape, most time first, each with its kind,
 * calls, time and share, executed GFLOP and rate, and (with a peak set) its
 * share of the peak and its milliseconds above it: the row's time beyond
 * what its FLOPs would take at the peak (all of it for rows without FLOPs:
 * norms, element-wise, layout).  The rows' times above the peak add up to
 * the run's: where a step's time goes that faster kernels could win back.
 * With a bf16 peak set, the rate's share of it too.  Then the rows are
 * cleared. */
static void shapes_print(FILE *f, const char *const names[PROF_NKIND], double tot)
{
    prof_shape rows[PROF_NSHAPE + PROF_NKIND];
    int n = 0;
    for (int i = 0; i < PROF_NSHAPE + PROF_NKIND; i++)
        if (g_shape[i].calls) rows[n++] = g_shape[i];
    qsort(rows, (size_t)n, sizeof rows[0], shape_cmp);
    fprintf(f, "  by shape (SD_PROFILE=2), most time first:\n");
    fprintf(f, "    %-11s %-40s %6s %10s %6s %9s %8s", "kind", "shape", "calls", "ms", "%", "GFLOP", "GFLOP/s");
    if (g_prof_peak > 0) fprintf(f, " %7s %10s", "% peak", "ms above");
    if (g_prof_bf16_peak > 0) fprintf(f, " %7s", "% bf16");   /* of the bf16 loop (AMX's or vdpbf16ps) */
    fputc('\n', f);
    double above = 0, ex = 0;
    long calls = 0;
    for (int i = 0; i < n; i++) {
        const prof_shape *r = &rows[i];
        fprintf(f, "    %-11s %-40s %6ld %10.2f %6.1f", names[r->kind], r->name, r->calls, r->t * 1e3,
                tot > 0 ? 100 * r->t / tot : 0);
        double rate = r->t > 0 ? r->exec * 1e-9 / r->t : 0, a = g_prof_peak > 0 ? r->t - r->exec * 1e-9 / g_prof_peak : 0;
        if (r->exec > 0) fprintf(f, " %9.2f %8.1f", r->exec * 1e-9, rate);
        else fprintf(f, " %9s %8s", "", "");
        if (g_prof_peak > 0) {
            if (r->exec > 0) fprintf(f, " %7.1f", 100 * rate / g_prof_peak);
            else fprintf(f, " %7s", "");
            fprintf(f, " %10.2f", a * 1e3);
        }
        if (g_prof_bf16_peak > 0 && r->exec > 0) fprintf(f, " %7.1f", 100 * rate / g_prof_bf16_peak);
        fputc('\n', f);
        above += a;
        ex += r->exec;
        calls += r->calls;
    }
    fprintf(f, "    all %d shapes: %ld calls, %.2f ms, %.2f GFLOP executed", n, calls, tot * 1e3, ex * 1e-9);
    if (g_prof_peak > 0) fprintf(f, "; %.2f ms above the peak (%.1f %% of the time)", above * 1e3, tot > 0 ? 100 * above / tot : 0);
    fputc('\n', f);
    memset(g_shape, 0, sizeof g_shape);
    g_nshape = 0;
}

void ops_prof_print(FILE *f, const char *title, ops_ctx *c)
{
    static const char *const names[PROF_NKIND] = {"conv", "linear", "attention", "norm", "elementwise", "layout"};
    double tot = 0;
    for (int i = 0; i < PROF_NKIND; i++) tot += g_prof[i];
    size_t nc = 0, wb = 0, wwb = 0;
    if (c) ops_weights_stats(c, &nc, &wb, &wwb);
    fprintf(f, "  profile %s: %.3f s in ops; weight copies %zu, %.0f MB (Winograd %.0f MB)\n", title, tot, nc,
            wb / 1048576.0, wwb / 1048576.0);
    ops_flops fl;
    ops_flops_get(&fl);
    for (int i = 0; i < PROF_NKIND; i++) {
        if (g_prof_n[i]) prof_line(f, names[i], i, tot, &fl);
        g_prof[i] = 0;
        g_prof_n[i] = 0;
        g_team_busy[i] = g_team_s[i] = g_team_wall[i] = 0;
    }
    if (ops_prof_on > 1) shapes_print(f, names, tot);
    ops_flops_reset();
}

void ops_release_pages(void *p, size_t bytes)
{
    uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)p + ps - 1) & ~(ps - 1),
              b = ((uintptr_t)p + bytes) & ~(ps - 1);
    if (p && b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Elementwise loops are split into chunks only when big enough to pay for the team. */
#define PAR_MIN 16384

/* NHWC group norm, two passes over the input per sample.  Pass 1: pixel
 * chunks accumulate, per channel and in double, the sum and sum of squares
 * of d = x - x0 (x0 the sample's first pixel: a shift close to the data, so
 * nothing cancels) — 16 channels at a time, widened to double in vectors.
 * The group mean and squared deviation then follow exactly from those:
 *     mean = Σc (HW·s_c + Σd_c) / n,  s_c = x0_c (+ pre_bias_c, a constant)
 *     Σ(v - mean)² = Σc [Σd²_c + 2(s_c - mean)·Σd_c + HW·(s_c - mean)²].
 * Pass 2 scales every pixel row per channel (and applies SiLU). */
#define GN_CHUNKS 64
/* 16 doubles (the sums of 16 float lanes, widened): two 8-double vectors
 * with AVX-512; below it four of 4 doubles, as GCC 12 moved 64-byte double
 * vectors through the stack and general registers (~100 instructions per
 * 16 floats in the group norm's statistics; bench/README.md "AVX2, round
 * 3").  Lane for lane the same additions and products either way. */
#if defined(__AVX512F__)
typedef double v8d __attribute__((vector_size(64)));
typedef struct { v8d lo, hi; } d16;
static inline d16 d16_widen(v16f v)
{
    return (d16){__builtin_convertvector(v16_lo(v), v8d), __builtin_convertvector(v16_hi(v), v8d)};
}
/* p[0..16) - sh[0..16) in floats, widened */
static inline d16 d16_load_sub(const float *p, const float *sh) { return d16_widen(v16_load(p) - v16_load(sh)); }
static inline d16 d16_load(const float *p) { return d16_widen(v16_load(p)); }
static inline d16 d16_add(d16 a, d16 b) { return (d16){a.lo + b.lo, a.hi + b.hi}; }
static inline d16 d16_sq(d16 a) { return (d16){a.lo * a.lo, a.hi * a.hi}; }
static inline d16 d16_subs(d16 a, double m) { return (d16){a.lo - m, a.hi - m}; }
static inline void d16_store(double *p, d16 a) { memcpy(p, &a.lo, sizeof a.lo); memcpy(p + 8, &a.hi, sizeof a.hi); }
static inline d16 d16_from(const double *p)
{
    d16 a;
    memcpy(&a.lo, p, sizeof a.lo);
    memcpy(&a.hi, p + 8, sizeof a.hi);
    return a;
}
/* Σ over u < 8 of (lane u + lane u + 8), in that order */
static inline double d16_fold_sum(d16 a)
{
    v8d v = a.lo + a.hi;
    double s = 0;
    for (int u = 0; u < 8; u++) s += v[u];
    return s;
}
#else
typedef double v4d __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef struct { v4d a, b, c, d; } d16;
static inline d16 d16_widen(v8f l, v8f h)
{
    return (d16){__builtin_convertvector(__builtin_shufflevector(l, l, 0, 1, 2, 3), v4d),
                 __builtin_convertvector(__builtin_shufflevector(l, l, 4, 5, 6, 7), v4d),
                 __builtin_convertvector(__builtin_shufflevector(h, h, 0, 1, 2, 3), v4d),
                 __builtin_convertvector(__builtin_shufflevector(h, h, 4, 5, 6, 7), v4d)};
}
static inline d16 d16_load_sub(const float *p, const float *sh)
{
    return d16_widen(v8_load(p) - v8_load(sh), v8_load(p + 8) - v8_load(sh + 8));
}
static inline d16 d16_load(const float *p) { return d16_widen(v8_load(p), v8_load(p + 8)); }
static inline d16 d16_add(d16 x, d16 y) { return (d16){x.a + y.a, x.b + y.b, x.c + y.c, x.d + y.d}; }
static inline d16 d16_sq(d16 x) { return (d16){x.a * x.a, x.b * x.b, x.c * x.c, x.d * x.d}; }
static inline d16 d16_subs(d16 x, double m) { return (d16){x.a - m, x.b - m, x.c - m, x.d - m}; }
static inline void d16_store(double *p, d16 x)
{
    memcpy(p, &x.a, sizeof x.a); memcpy(p + 4, &x.b, sizeof x.b);
    memcpy(p + 8, &x.c, sizeof x.c); memcpy(p + 12, &x.d, sizeof x.d);
}
static inline d16 d16_from(const double *p)
{
    d16 x;
    memcpy(&x.a, p, sizeof x.a); memcpy(&x.b, p + 4, sizeof x.b);
    memcpy(&x.c, p + 8, sizeof x.c); memcpy(&x.d, p + 12, sizeof x.d);
    return x;
}
static inline double d16_fold_sum(d16 x)
{
    v4d l = x.a + x.c, h = x.b + x.d;
    double s = 0;
    for (int u = 0; u < 4; u++) s += l[u];
    for (int u = 0; u < 4; u++) s += h[u];
    return s;
}
#endif
static const d16 d16_zero;

/* A chunk's pixels in runs of GN_RUN_BYTES of input: every 16-channel
 * block walks a run (from L1) before the next run is read, its sums kept
 * in sum/sq between runs — the same additions in the same order as one walk
 * per block over the whole chunk, which at the VAE's 512² (2 MB chunks)
 * read each chunk from memory once per block. */
#define GN_RUN_BYTES 16384
static void gn_chunk_sums(const float *xn, int C, int p0, int p1, double *sum, double *sq)
{
    const float *x0 = xn;   /* the shift: pixel 0 */
    int run = GN_RUN_BYTES / (int)sizeof(float) / C, c16 = C / 16 * 16;
    if (run < 1) run = 1;
    for (int pr = p0; pr < p1; pr += run) {
        int pe = p1 - pr < run ? p1 : pr + run;
        for (int c = 0; c < c16; c += 16) {
            d16 s = d16_zero, q = d16_zero;
            if (pr > p0) { s = d16_from(sum + c); q = d16_from(sq + c); }
            for (int p = pr; p < pe; p++) {
                d16 d = d16_load_sub(xn + (size_t)p * C + c, x0 + c);
                s = d16_add(s, d);
                q = d16_add(q, d16_sq(d));
            }
            d16_store(sum + c, s);
            d16_store(sq + c, q);
        }
    }
    int c = c16;
    for (; c < C; c++) {
        double s = 0, q = 0;
        for (int p = p0; p < p1; p++) { double d = (double)xn[(size_t)p * C + c] - x0[c]; s += d; q += d * d; }
        sum[c] = s; sq[c] = q;
    }
}

/* Sample xn's group norm as one scale and shift per channel (y = x·sc + sh):
 * pass 1 of the comment above, into sc[C], sh[C].  0, or -1 when out of
 * memory (the ops fault is set). */
int ops_gn_coefs(ops_ctx *ctx, const float *xn, int C, int HW, int G, const float *pb, const float *gamma,
                    const float *beta, float eps, float *sc, float *sh)
{
    int cg = C / G, nch = HW < GN_CHUNKS ? 1 : GN_CHUNKS;
    /* scratch: a few KB, grown once per thread (no allocation per call) */
    static _Thread_local void *scr;
    static _Thread_local size_t nscr;
    double *part = ops_grow(ctx, &scr, &nscr, sizeof(double) * (2 * (size_t)nch * C + 2 * (size_t)C));
    if (!part) return -1;
    double *tsum = part + 2 * (size_t)nch * C, *tsq = tsum + C;
    #pragma omp parallel for schedule(static) if ((size_t)HW * C >= PAR_MIN)
    for (int k = 0; k < nch; k++) {
        int p0 = (int)((long)HW * k / nch), p1 = (int)((long)HW * (k + 1) / nch);
        gn_chunk_sums(xn, C, p0, p1, part + (size_t)k * 2 * C, part + (size_t)k * 2 * C + C);
    }
    for (int c = 0; c < C; c++) {
        double s = 0, q = 0;
        for (int k = 0; k < nch; k++) { s += part[(size_t)k * 2 * C + c]; q += part[(size_t)k * 2 * C + C + c]; }
        tsum[c] = s; tsq[c] = q;
    }
    for (int g = 0; g < G; g++) {
        double t = 0;
        for (int c = g * cg; c < (g + 1) * cg; c++)
            t += (double)HW * ((double)xn[c] + (pb ? pb[c] : 0.f)) + tsum[c];
        double mean = t / ((double)cg * HW), m2 = 0;
        for (int c = g * cg; c < (g + 1) * cg; c++) {
            double e = (double)xn[c] + (pb ? pb[c] : 0.f) - mean;
            m2 += tsq[c] + 2 * e * tsum[c] + (double)HW * e * e;
        }
        double inv = 1.0 / sqrt(m2 / ((double)cg * HW) + eps);
        /* y = (x + pb - mean)·inv·gamma + beta = x·sc + sh */
        for (int c = g * cg; c < (g + 1) * cg; c++) {
            float a = (float)inv * (gamma ? gamma[c] : 1.f);
            sc[c] = a;
            sh[c] = (float)(((pb ? pb[c] : 0.f) - mean) * a) + (beta ? beta[c] : 0.f);
        }
    }
    return 0;
}

/* yr[c] = xr[c]·sc[c] + sh[c] (then SiLU) over one pixel's C channels. */
void ops_affine_row(const float *xr, int C, const float *sc, const float *sh, int silu, float *yr)
{
    int c = 0;
#if defined(__AVX512F__)
    for (; c + 16 <= C; c += 16) {
        v16f v = v16_load(xr + c) * v16_load(sc + c) + v16_load(sh + c);
        v16_store(yr + c, silu ? v16_silu(v) : v);
    }
#else   /* the same 16-channel blocks, 8 lanes at a time (see d16) */
    for (; c + 16 <= C; c += 16)
        for (int h = c; h < c + 16; h += 8) {
            v8f v = v8_load(xr + h) * v8_load(sc + h) + v8_load(sh + h);
            v8_store(yr + h, silu ? v8_silu(v) : v);
        }
#endif
    for (; c < C; c++) { float v = xr[c] * sc[c] + sh[c]; yr[c] = silu ? v / (1.f + expf(-v)) : v; }
}

/* The group norm of x into y (fp32), or, with yb, into the bf16 input of
 * a conv: rows of C (split OPS_SPLIT_NONE), [hi | lo] rows of 2C
 * (OPS_SPLIT_COLS) or all hi rows then all lo rows (OPS_SPLIT_ROWS), as
 * ops_bf16_input lays them out. */
static void group_norm(ops_ctx *ctx, const float *x, int N, int C, int HW, int G, const float *pre_bias, const float *gamma,
                       const float *beta, float eps, int silu, float *y, uint16_t *yb, int split)
{
    SD_ASSERT(x && (y || yb) && N >= 1 && C >= 1 && HW >= 1 && G >= 1 && C % G == 0);
    static _Thread_local void *scr;
    static _Thread_local size_t nscr;
    float *sh = ops_grow(ctx, &scr, &nscr, sizeof(float) * 2 * (size_t)C), *sc = sh ? sh + C : NULL;
    if (!sh) return;   /* out of memory: the ops fault is set */
    size_t rows = (size_t)N * HW;
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * HW * C;
        const float *pb = pre_bias ? pre_bias + (size_t)n * C : NULL;
        if (ops_gn_coefs(ctx, xn, C, HW, G, pb, gamma, beta, eps, sc, sh)) return;
        #pragma omp parallel if ((size_t)HW * C >= PAR_MIN)
        {
            /* bf16 output: each row normalised into an L1 row first */
            static _Thread_local void *rb;
            static _Thread_local size_t nrb;
            float *row = yb ? ops_grow(ctx, &rb, &nrb, sizeof(float) * (size_t)C) : NULL;
            #pragma omp for schedule(static)
            for (int p = 0; p < HW; p++) {
                if (yb && !row) continue;   /* this thread is out of memory: the ops fault is set */
                const float *xr = xn + (size_t)p * C;
                size_t r = (size_t)n * HW + p;
                float *yr = yb ? row : y + r * C;
                ops_affine_row(xr, C, sc, sh, silu, yr);
                if (!yb) continue;
                if (split == OPS_SPLIT_COLS) ops_bf16_row(row, C, yb + 2 * r * C, yb + 2 * r * C + C);
                else if (split == OPS_SPLIT_ROWS) ops_bf16_row(row, C, yb + r * C, yb + (rows + r) * C);
                else ops_bf16_row(row, C, yb + r * C, NULL);
            }
        }
    }
}

void op_group_norm_nhwc(const ops_m *m, const float *x, int N, int C, int HW, int G, const float *pre_bias,
                        const float *gamma, const float *beta, float eps, int silu, float *y)
{
    PROF_BEGIN;
    PROF_SHAPE("group norm %dx%dx%d%s", N, HW, C, silu ? " + silu" : "");
    group_norm(m->ctx, x, N, C, HW, G, pre_bias, gamma, beta, eps, silu, y, NULL, 0);
    PROF_END(PROF_NORM);
}

/* ---- group norm in two halves (the tiled VAE decode: statistics over a
 * whole tensor, applied to row stripes of it) ---- */
void op_group_norm_coefs_nhwc(const ops_m *m, const float *x, int C, int HW, int G, const float *gamma,
                              const float *beta, float eps, float *scale, float *shift)
{
    SD_ASSERT(x && scale && shift && C >= 1 && HW >= 1 && G >= 1 && C % G == 0);
    PROF_BEGIN;
    ops_gn_coefs(m->ctx, x, C, HW, G, NULL, gamma, beta, eps, scale, shift);
    PROF_END(PROF_NORM);
}

void op_channel_affine_nhwc(const float *x, size_t P, int C, const float *scale, const float *shift, int silu,
                            float *y)
{
    SD_ASSERT((P == 0 || (x && y)) && C >= 1 && scale && shift);
    PROF_BEGIN;
    #pragma omp parallel for schedule(static) if (P * C >= PAR_MIN)
    for (size_t p = 0; p < P; p++) ops_affine_row(x + p * C, C, scale, shift, silu, y + p * C);
    PROF_END(PROF_NORM);
}

void ops_group_norm_bf16(ops_ctx *c, const float *x, int N, int C, int HW, int G, const float *pre_bias,
                         const float *gamma, const float *beta, float eps, int silu, uint16_t *yb, int split)
{
    PROF_BEGIN;
    PROF_SHAPE("group norm %dx%dx%d%s -> bf16", N, HW, C, silu ? " + silu" : "");
    group_norm(c, x, N, C, HW, G, pre_bias, gamma, beta, eps, silu, NULL, yb, split);
    PROF_END(PROF_NORM);
}

/* One row of layer norm: mean and variance in double, 16 floats (two
 * vectors of 8 doubles) at a time (the scalar double sums ran as one long
 * chain of dependent adds: ~1/3 of the UNet step's norm time), then
 * y = (x - mean)·inv·gamma + beta in floats, 16 lanes at a time (the same
 * float operations, in the same order, as one lane at a time). */
static void ln_row(const float *xr, int C, const float *gamma, const float *beta, float eps, float *yr)
{
    d16 a = d16_zero;
    int i = 0;
    for (; i + 16 <= C; i += 16) a = d16_add(a, d16_load(xr + i));
    double sum = d16_fold_sum(a);
    for (int j = i; j < C; j++) sum += xr[j];
    double mean = sum / C;
    d16 q = d16_zero;
    for (i = 0; i + 16 <= C; i += 16) q = d16_add(q, d16_sq(d16_subs(d16_load(xr + i), mean)));
    double var = d16_fold_sum(q);
    for (int j = i; j < C; j++) { double d = xr[j] - mean; var += d * d; }
    var /= C;
    float inv = (float)(1.0 / sqrt(var + eps)), m = (float)mean;
#if defined(__AVX512F__)
    for (i = 0; i + 16 <= C; i += 16) {
        v16f v = (v16_load(xr + i) - m) * inv;
        v = gamma ? v * v16_load(gamma + i) : v * 1.f;
        v16_store(yr + i, beta ? v + v16_load(beta + i) : v + 0.f);
    }
#else   /* 8 lanes: GCC 12 spilled the 16-lane selects (see d16) */
    for (i = 0; i + 8 <= C; i += 8) {
        v8f v = (v8_load(xr + i) - m) * inv;
        v = gamma ? v * v8_load(gamma + i) : v * 1.f;
        v8_store(yr + i, beta ? v + v8_load(beta + i) : v + 0.f);
    }
#endif
    for (; i < C; i++) yr[i] = (xr[i] - m) * inv * (gamma ? gamma[i] : 1.f) + (beta ? beta[i] : 0.f);
}

void op_layer_norm(const float *x, int M, int C, const float *gamma, const float *beta,
                   float eps, float *y)
{
    SD_ASSERT(M >= 0 && C >= 1 && (M == 0 || (x && y)));
    PROF_BEGIN;
    PROF_SHAPE("layer norm %dx%d", M, C);
    #pragma omp parallel for schedule(static) if ((size_t)M * C >= PAR_MIN)
    for (int r = 0; r < M; r++) ln_row(x + (size_t)r * C, C, gamma, beta, eps, y + (size_t)r * C);
    PROF_END(PROF_NORM);
}

void op_silu(float *x, size_t n)
{
    PROF_BEGIN;
    size_t nb = n / 16;
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t b = 0; b < nb; b++) v16_store(x + 16 * b, v16_silu(v16_load(x + 16 * b)));
    for (size_t i = 16 * nb; i < n; i++) x[i] = x[i] / (1.f + expf(-x[i]));
    PROF_END(PROF_ELEM);
}

static inline float gelu1(float v) { return 0.5f * v * (1.f + erff(v * 0.70710678118654752f)); }

void op_gelu(float *x, size_t n)
{
    PROF_BEGIN;
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] = gelu1(x[i]);
    PROF_END(PROF_ELEM);
}

void op_quick_gelu(float *x, size_t n)
{
    PROF_BEGIN;
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.f + expf(-1.702f * x[i]));
    PROF_END(PROF_ELEM);
}

void op_add(float *y, const float *x, size_t n)
{
    PROF_BEGIN;
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
    PROF_END(PROF_ELEM);
}

void op_axpby(float *y, float a, const float *x, float b, size_t n)
{
    PROF_BEGIN;
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a * y[i] + b * x[i];
    PROF_END(PROF_ELEM);
}

void op_tanh_clamp(float *x, size_t n, float c)
{
    SD_ASSERT(c > 0.f);
    PROF_BEGIN;
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] = tanhf(x[i] / c) * c;
    PROF_END(PROF_ELEM);
}

/* x·a + b: TAESD's image scales */
void op_scale_shift(float *x, size_t n, float a, float b)
{
    PROF_BEGIN;
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] = x[i] * a + b;
    PROF_END(PROF_ELEM);
}

/* GEGLU with the vectorised erf (absolute error < 1.5e-7 against erff). */
void op_geglu(const float *in, int M, int F, float *out)
{
    SD_ASSERT(M >= 0 && F >= 1 && (M == 0 || (in && out)));
    PROF_BEGIN;
    PROF_SHAPE("geglu %dx%d", M, F);
    #pragma omp parallel for schedule(static) if ((size_t)M * F >= PAR_MIN)
    for (int r = 0; r < M; r++) {
        const float *v = in + (size_t)r * 2 * F, *g = v + F;
        float *o = out + (size_t)r * F;
        int i = 0;
        for (; i + 64 <= F; i += 64) {   /* four vectors side by side (v16_gelu4) */
            v16f x[4] = {v16_load(g + i), v16_load(g + i + 16), v16_load(g + i + 32), v16_load(g + i + 48)};
            v16_gelu4(x);
            for (int k = 0; k < 4; k++) v16_store(o + i + 16 * k, v16_load(v + i + 16 * k) * x[k]);
        }
        for (; i + 16 <= F; i += 16) v16_store(o + i, v16_load(v + i) * v16_gelu(v16_load(g + i)));
        for (; i < F; i++) o[i] = v[i] * gelu1(g[i]);
    }
    PROF_END(PROF_ELEM);
}

/* PyTorch's nearest_idx: exact for same size and 2x, else float scale in/out. */
static int nearest_src(int o, int in, int out)
{
    if (out == in) return o;
    if (out == 2 * in) return o >> 1;
    int i = (int)floorf((float)o * ((float)in / (float)out));
    return i < in - 1 ? i : in - 1;
}

void op_upsample_nearest_nhwc(const float *x, int N, int C, int H, int W, int OH, int OW, float *y)
{
    SD_ASSERT(x && y && N >= 1 && C >= 1 && H >= 1 && W >= 1 && OH >= 1 && OW >= 1);
    PROF_BEGIN;
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)N * C * OH * OW >= PAR_MIN)
    for (int n = 0; n < N; n++)
        for (int i = 0; i < OH; i++) {
            const float *xr = x + ((size_t)n * H + nearest_src(i, H, OH)) * W * C;
            float *yr = y + ((size_t)n * OH + i) * OW * C;
            for (int j = 0; j < OW; j++) memcpy(yr + (size_t)j * C, xr + (size_t)nearest_src(j, W, OW) * C, sizeof(float) * C);
        }
    PROF_END(PROF_LAYOUT);
}

/* Transposes go through 32x32 tiles so both sides stay cache-friendly. */
#define TT 32
static void transpose_planes(const float *x, int N, int R, int Cc, float *y)
{
    PROF_BEGIN;
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
    PROF_END(PROF_LAYOUT);
}

void op_nchw_to_nlc(const float *x, int N, int C, int HW, float *y) { transpose_planes(x, N, C, HW, y); }
void op_nlc_to_nchw(const float *x, int N, int C, int HW, float *y) { transpose_planes(x, N, HW, C, y); }

void op_concat_channels_nhwc(const float *x1, int C1, const float *x2, int C2, size_t P, float *y)
{
    SD_ASSERT(C1 >= 0 && C2 >= 0 && (P == 0 || (x1 && x2 && y)));
    PROF_BEGIN;
    size_t C = (size_t)C1 + C2;
    #pragma omp parallel for schedule(static) if (P * C >= PAR_MIN)
    for (size_t p = 0; p < P; p++) {
        memcpy(y + p * C, x1 + p * C1, sizeof(float) * C1);
        memcpy(y + p * C + C1, x2 + p * C2, sizeof(float) * C2);
    }
    PROF_END(PROF_LAYOUT);
}
