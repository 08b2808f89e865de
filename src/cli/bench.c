/* bench.c — `sdserve bench`: times each engine stage on this machine.
 *
 * Stages: model load, text encoder (prompt + negative, as a CFG run does),
 * one UNet CFG step (batch 2*B; --cfg <= 1: B, the prompt rows only, as a
 * run without guidance does), VAE decode and VAE encode (batch B).  Each
 * is run --repeats times (the UNet, decode and encode after a first run of
 * their own, printed apart: it makes the weight copies and kernels the
 * later runs reuse); the median is reported with the FLOPs of the stage,
 * the GFLOP/s achieved and its share of the machine's fp32 peak, which the
 * command measures itself with an FMA loop on the engine's thread count
 * (and, where the CPU has avx512_bf16, a vdpbf16ps loop: its bf16 peak;
 * with AMX, a tile matmul loop on random operands and on zeros: the
 * practical bf16 peak, which SD_PROFILE=1's lines are also measured
 * against — the dot loop's where there is no AMX).
 * Under the UNet, decode and encode lines, the FLOPs the kernels executed
 * in the last run (ops.h's counters: Winograd's transforms and GEMMs,
 * bf16x2's two products) with their rate and share of the FMA peak; under
 * the UNet's, the same share per run against the FMA loop measured just
 * before and after that run ("paired": the machines we share swing in
 * speed between runs, bench/README.md "AVX2, round 3").
 * FLOPs are counted from the loaded model's shapes at the run's size
 * (unet_flops, vae_decode_flops, clip_flops: multiply-add = 2, attention's
 * T² terms included; SD 1.5 gives shared/reference's figures).  SDXL: both
 * text towers (CLIP-L to its penultimate layer, OpenCLIP-bigG through the
 * pooled projection), the UNet step with the added vector (the pooled rows
 * and the 6 time ids of a WxH picture), and the default size is the model's
 * native one (1024; SD 1.x/2.x 512).  Every UNet and decoder output is
 * checked for NaN/Inf: a non-finite value fails the command. */
#include "cli.h"

#include <errno.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../engine/models/clip.h"
#include "../engine/models/taesd.h"
#include "../engine/preview.h"
#include "../engine/models/unet.h"
#include "../engine/models/vae.h"
#include "../engine/ops/ops.h"
#include "../engine/pipeline.h"
#include "../engine/sd.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Peak fp32 FMA throughput: 12 independent accumulators per thread (enough
 * to cover FMA latency x 2 ports), AVX-512 when present, else AVX2. */

/* Twelve named accumulators (an array would live in memory and chain
 * through store-forwarding).  Intrinsics, because -std=c11 turns off FMA
 * contraction of a*b+c. */
#define FMA_BODY(V, SET1, OV, OSET, FMA, ADD, CVT)                                  \
    OV m = OSET(0.999999f), c = OSET(1e-7f);                                        \
    V a0 = SET1(0.f), a1 = SET1(1.f), a2 = SET1(2.f), a3 = SET1(3.f), a4 = SET1(4.f), a5 = SET1(5.f); \
    V a6 = SET1(6.f), a7 = SET1(7.f), a8 = SET1(8.f), a9 = SET1(9.f), a10 = SET1(10.f), a11 = SET1(11.f); \
    for (long i = 0; i < iters; i++) {                                              \
        a0 = FMA(a0, m, c); a1 = FMA(a1, m, c); a2 = FMA(a2, m, c); a3 = FMA(a3, m, c); \
        a4 = FMA(a4, m, c); a5 = FMA(a5, m, c); a6 = FMA(a6, m, c); a7 = FMA(a7, m, c); \
        a8 = FMA(a8, m, c); a9 = FMA(a9, m, c); a10 = FMA(a10, m, c); a11 = FMA(a11, m, c); \
    }                                                                               \
    V s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));        \
    s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));                                    \
    return CVT(s);

__attribute__((target("avx512f,fma"))) static float fma_loop16(long iters)
{
    FMA_BODY(__m512, _mm512_set1_ps, __m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_cvtss_f32)
}
__attribute__((target("avx2,fma"))) static float fma_loop8(long iters)
{
    FMA_BODY(__m256, _mm256_set1_ps, __m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_cvtss_f32)
}

/* The bf16 dot loop (issue 19 item 5): the same 12 chains of vdpbf16ps,
 * acc += a·b over pairs of bf16 — 16 lanes x 2 products = 64 FLOPs an
 * instruction, twice an FMA's — so the CPU's bf16 peak is measured, not
 * assumed (half the FMA rate on some parts, twice on others). */
__attribute__((target("avx512f,avx512bf16"))) static __m512bh bf16_set1(float v)
{
    return _mm512_cvtne2ps_pbh(_mm512_set1_ps(v), _mm512_set1_ps(v));
}
#define DPBF16(a, m, c) _mm512_dpbf16_ps((a), (m), (c))
__attribute__((target("avx512f,avx512bf16"))) static float dot_loop_bf16(long iters)
{
    FMA_BODY(__m512, _mm512_set1_ps, __m512bh, bf16_set1, DPBF16, _mm512_add_ps, _mm512_cvtss_f32)
}

static volatile float g_sink;

/* GFLOP/s of loop (12 chains of `flops` FLOPs an instruction) on `threads`
 * threads (best of 3 half-second runs). */
static double measure_loop(int threads, float (*loop)(long), int flops)
{
    long iters = 20000000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        #pragma omp parallel num_threads(threads)
        {
            float r = loop(iters);
            #pragma omp atomic
            g_sink += r;
        }
        double dt = now() - t0;
        double gf = (double)threads * iters * 12 * flops / dt * 1e-9;
        if (gf > best) best = gf;
    }
    return best;
}

/* GFLOP/s of the FMA loop on `threads` threads. */
static double measure_peak(int threads, const char **isa)
{
    int w512 = __builtin_cpu_supports("avx512f");
    *isa = w512 ? "AVX-512" : "AVX2";
    return w512 ? measure_loop(threads, fma_loop16, 16 * 2) : measure_loop(threads, fma_loop8, 8 * 2);
}

/* GFLOP/s of the bf16 dot loop, 0 without avx512_bf16. */
static double measure_bf16_peak(int threads)
{
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bf16")) return 0;
    return measure_loop(threads, dot_loop_bf16, 16 * 2 * 2);
}

static double peak_rss_gb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / (1024.0 * 1024.0);   /* GiB */
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sdserve bench --model M [options]\n"
            "  --model PATH       checkpoint (.safetensors) or diffusers folder\n"
            "  --vocab PATH       tokenizer vocabulary (bpe_simple_vocab_16e6.txt.gz)\n"
            "  -W, --width N      image width (the model's native size: 512, SDXL 1024)\n"
            "  -H, --height N     image height (the same)\n"
            "  --batch B          images per run (1): UNet rows 2B, VAE B\n"
            "  --repeats R        runs per stage, median reported (3); the UNet, decode and\n"
            "                     encode run once more first, apart (weight copies made)\n"
            "  --steps N          accepted for symmetry with generate; bench times one step\n"
            "  --cfg X            guidance scale (7.5); <= 1 runs the UNet on the prompt rows only\n"
            "  --threads N        engine threads (0 = all cores)\n"
            "  --precision P      auto|fp32|bf16x2|bf16 (auto: SD_PRECISION, else bf16x2 with AMX)\n"
            "  --prompt-windows N prompt and negative of N 77-token windows each (1): the\n"
            "                     text encoder's and the UNet's cross-attention cost of long prompts\n"
            "  --skip LIST        stages to skip, comma-separated: load,text,unet,decode,encode\n"
            "  --preview-decoder F  after the UNet stage, time a TAESD decode of the latent (median of 5)\n"
            "                     and the previews' linear approximation (median of 20), and their share\n"
            "                     of the UNet step (bench/README.md \"Previews\")\n"
            "  --winograd-check   also run one UNet step and one decode with Winograd off, on\n"
            "                     everywhere, auto and wide; print time and error against off\n"
            "                     (fp32 only: the bf16 precisions have no Winograd)\n"
            "  --layer-rule R     the UNet's layers at plain bf16 over --precision (study only:\n"
            "                     unet_set_layer_rule, e.g. \"ff\"; docs/ACCURACY.md \"Precision per layer\")\n"
            "  --precision-check  also load the model at fp32, bf16x2 and bf16 in turn and run\n"
            "                     one UNet step and one decode each; print time and error\n"
            "                     against fp32 (relative, and PSNR of the decoded pixels)\n"
            "  --lora FILE[:W]    after the UNet stage, apply the LoRA FILE (weight W, 1): time of the\n"
            "                     first apply, the UNet step after it, a cached apply, the restore,\n"
            "                     and the resident and peak memory with and without it\n");
}

static double peak_rss_gb(void);

/* VmRSS of this process, GiB. */
static double rss_gb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1048576.0;
}

/* --lora FILE[:W]: lo->lora_dir and the request's one LoRA from it. */
typedef struct bench_lora {
    char dir[4096], name[SD_MAX_LORA_NAME];
    sd_lora_spec spec;
} bench_lora;

static int bench_lora_parse(const char *arg, bench_lora *b)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", arg);
    b->spec.weight = 1.0f;
    char *colon = strrchr(path, ':');
    if (colon && colon > strrchr(path, '/')) { b->spec.weight = strtof(colon + 1, NULL); *colon = 0; }
    char *slash = strrchr(path, '/');
    snprintf(b->dir, sizeof b->dir, "%s", slash ? path : ".");
    if (slash) b->dir[slash - path] = 0;
    const char *base = slash ? slash + 1 : path;
    if (strlen(base) >= sizeof b->name) return -1;
    memcpy(b->name, base, strlen(base) + 1);
    size_t n = strlen(b->name);
    if (n > 12 && !strcmp(b->name + n - 12, ".safetensors")) b->name[n - 12] = 0;
    b->spec.name = b->name;
    return b->name[0] ? 0 : -1;
}

/* --lora's file is there, before the model loads and the UNet is timed
 * (minutes with a real checkpoint): else 1 naming the flag, the file and
 * why (what it names is missing: not a usage error). */
static int bench_lora_check(const char *arg, const bench_lora *b)
{
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%.4000s/%s.safetensors", b->dir, b->name);   /* bench_lora_parse: name without it */
    if (stat(path, &st)) {
        fprintf(stderr, "bench: --lora %s: no %s.safetensors in %s (the folder of --lora): %s\n", arg, b->name,
                b->dir, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "bench: --lora %s: %s is not a file (give a LoRA .safetensors file)\n", arg, path);
        return -1;
    }
    return 0;
}

/* The LoRA's costs, against one UNet step (step_s, median without it). */
static int bench_lora_run(sd_engine *e, const bench_lora *b, double step_s, const float *x, const float *ts,
                          const unet_cond *cond, int rows, int lh, int lw, float *o, sd_err *err)
{
    struct sd_unet *un = sd_engine_unet(e);
    sd_gen_params with = {.loras = &b->spec, .n_loras = 1}, none = {0};
    double rss0 = rss_gb(), peak0 = peak_rss_gb(), t0 = now();
    if (sd_engine_apply_loras(e, &with, err)) return -1;
    double first = now() - t0;
    t0 = now();
    if (unet_forward(un, x, ts, cond, rows, lh, lw, o, err)) return -1;
    double step1 = now() - t0;
    t0 = now();
    if (unet_forward(un, x, ts, cond, rows, lh, lw, o, err)) return -1;
    double step2 = now() - t0;
    t0 = now();
    if (sd_engine_apply_loras(e, &with, err)) return -1;
    double cached = now() - t0;
    double rss1 = rss_gb(), peak1 = peak_rss_gb();
    t0 = now();
    if (sd_engine_apply_loras(e, &none, err)) return -1;
    double restore = now() - t0;
    printf("lora %s (weight %g), against one UNet step of %.3f s:\n", b->name, b->spec.weight, step_s);
    printf("  apply, first       %8.3f s  (%.2f steps)\n", first, first / step_s);
    printf("  unet step after    %8.3f s  (weight copies re-made), then %.3f s\n", step1, step2);
    printf("  apply, cached      %8.6f s\n", cached);
    printf("  restore            %8.3f s\n", restore);
    printf("  RSS without %.2f GiB, with %.2f GiB (%+.1f %%); peak %.2f -> %.2f GiB (%+.1f %%)\n", rss0, rss1,
           100 * (rss1 / rss0 - 1), peak0, peak1, 100 * (peak1 / peak0 - 1));
    return 0;
}

/* Resident set now (VmRSS), GB. */
static double rss_now_gb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0 * 1024.0);
}

/* One stage's line (flops: its work): median, work, rate, share of the FMA peak, RSS now and peak so far. */
static void report(const char *name, double *t, int n, double flops, double peak)
{
    double m = median(t, n), gflop = flops * 1e-9;
    if (gflop > 0)
        printf("%-14s %9.3f s  %9.1f GFLOP  %7.1f GFLOP/s  %5.1f %% of peak   RSS %.2f GiB (peak %.2f)\n", name,
               m, gflop, gflop / m, 100.0 * gflop / m / peak, rss_now_gb(), peak_rss_gb());
    else
        printf("%-14s %9.3f s  %48s RSS %.2f GiB (peak %.2f)\n", name, m, "", rss_now_gb(), peak_rss_gb());
    fflush(stdout);
}

/* A stage's first run makes what later runs reuse (the weight copies at
 * the run's precision, Winograd's transformed weights, oneDNN's kernels):
 * its time is printed on its own line and kept out of the median, which is
 * the steady state every later step of a picture runs at. */
static void report_first(double t)
{
    printf("%-14s %9.3f s  (weight copies and kernels made: not in the median)\n", "  first run", t);
    fflush(stdout);
}

/* The last run's executed FLOPs (ops.h's counters, reset before it) beside
 * the model's, at the stage's median time m: rate and share of the FMA peak. */
static void report_exec(double m, double peak)
{
    ops_flops fl;
    ops_flops_get(&fl);
    double model = 0, ex = 0;
    for (int i = 0; i < PROF_NKIND; i++) {
        model += fl.model[i];
        ex += fl.exec[i];
    }
    if (ex <= 0 || m <= 0) return;
    printf("%-14s %9s    %9.1f GFLOP  %7.1f GFLOP/s  %5.1f %% of peak   (ops' model count %.1f GFLOP)\n",
           "  executed", "", ex * 1e-9, ex * 1e-9 / m, 100.0 * ex * 1e-9 / m / peak, model * 1e-9);
}

/* On a machine whose speed swings between runs (a shared host) the FMA
 * loop measured once at the start can be from another phase than a run:
 * each run's executed GFLOP/s against the loop measured just before and
 * just after it (their mean), and the median of those shares; t_around[r]
 * is run r's seconds times that mean (GFLOP/s).  The run's FLOPs are the
 * last run's executed count (the same every run). */
static void report_paired(const double *t_around, int n)
{
    ops_flops fl;
    ops_flops_get(&fl);
    double ex = 0, share[100];   /* --repeats is at most 100 */
    for (int i = 0; i < PROF_NKIND; i++) ex += fl.exec[i];
    if (ex <= 0 || n < 1 || n > 100) return;
    printf("%-14s %9s    each run against the FMA loop around it:", "  paired", "");
    for (int r = 0; r < n; r++) {
        share[r] = 100.0 * ex * 1e-9 / t_around[r];
        printf(" %.1f", share[r]);
    }
    printf(" %%; median %.1f %% of peak\n", median(share, n));
}

/* --preview-decoder: the previews' two decoders on the UNet stage's latent
 * x[C, lh, lw] (image 0): a TAESD decode (median of 5) and the linear
 * approximation (median of 20), and their share of a UNet step. */
#define BENCH_TAESD_REPEATS 5
#define BENCH_APPROX_REPEATS 20
static int bench_previews(sd_engine *e, const float *x, int lh, int lw, double unet_s, int unet_n, double peak,
                          sd_err *err)
{
    struct taesd *td = sd_engine_taesd(e);
    const int S = taesd_scale(td);
    double t[BENCH_APPROX_REPEATS];
    float *img = malloc(sizeof(float) * 3 * lh * S * lw * S);
    uint8_t *rgb = malloc((size_t)3 * lh * lw);
    if (!img || !rgb) { free(img); free(rgb); return sd_errf(err, SD_ENOMEM, NULL, "out of memory"); }
    int rc = 0;
    for (int r = 0; r < BENCH_TAESD_REPEATS && rc == 0; r++) {
        if (r == BENCH_TAESD_REPEATS - 1) ops_prof_reset();   /* SD_PROFILE=1: the last run's ops */
        double t0 = now();
        rc = taesd_decode(td, x, lh, lw, img, err);
        t[r] = now() - t0;
    }
    if (rc == 0) {
        report("taesd decode", t, BENCH_TAESD_REPEATS, taesd_decode_flops(td, lh, lw), peak);
        double mt = median(t, BENCH_TAESD_REPEATS);
        if (ops_prof_enabled()) ops_prof_print(stdout, "(last run)", NULL);
        for (int r = 0; r < BENCH_APPROX_REPEATS; r++) {
            double t0 = now();
            preview_approx(preview_factors_of(sd_engine_is_sdxl(e)), x, lh, lw, rgb);
            t[r] = now() - t0;
        }
        double ma = median(t, BENCH_APPROX_REPEATS);
        printf("%-14s %9.3f ms (%dx%d RGB at latent size, median of %d)\n", "preview approx", ma * 1e3, lw, lh,
               BENCH_APPROX_REPEATS);
        if (unet_s > 0)
            printf("previews: taesd decode %dx%d = %.1f %% of a unet step (median of %d vs %d), approximation %.3f ms\n",
                   lw * S, lh * S, 100.0 * mt / unet_s, BENCH_TAESD_REPEATS, unet_n, ma * 1e3);
    }
    free(img);
    free(rgb);
    return rc;
}

static int parse_int(const char *o, const char *v, int lo, int hi, int *dst)
{
    char *e;
    long x = v ? strtol(v, &e, 10) : 0;
    if (!v || *e || e == v || x < lo || x > hi) {
        fprintf(stderr, "bench: %s must be an integer in [%d, %d]\n", o, lo, hi);
        return -1;
    }
    *dst = (int)x;
    return 0;
}

/* --cfg: a number in (0, 100], the engine's range */
static int parse_cfg(const char *o, const char *v, float *dst)
{
    char *e;
    double x = v ? strtod(v, &e) : 0;
    if (!v || *e || e == v || !(x > 0 && x <= 100)) {
        fprintf(stderr, "bench: %s must be a number in (0, 100]\n", o);
        return -1;
    }
    *dst = (float)x;
    return 0;
}

/* max|a - r| / max|r| (a NaN anywhere: infinite) */
static double rel_err(const float *a, const float *r, size_t n)
{
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - r[i]);
        if (d != d) return INFINITY;
        e = fmax(e, d);
        m = fmax(m, fabs(r[i]));
    }
    return m > 0 ? e / m : e;
}

/* PSNR (dB) of two decoded images in [-1, 1] as the pipeline's pixels
 * (clamp(x/2 + 1/2)·255, not rounded) */
static double psnr_px(const float *a, const float *r, size_t n)
{
    double sq = 0;
    for (size_t i = 0; i < n; i++) {
        double pa = fmin(fmax(a[i] / 2 + 0.5, 0), 1) * 255, pr = fmin(fmax(r[i] / 2 + 0.5, 0), 1) * 255;
        sq += (pa - pr) * (pa - pr);
    }
    return sq > 0 ? 10 * log10(255.0 * 255.0 / (sq / n)) : 999;
}

/* --precision-check: the model loaded at fp32, bf16x2 and bf16 in turn (a
 * checkpoint's weights serve one precision), one UNet CFG step on the same
 * latent and text and one decode of the same latent each (the second of two
 * runs timed), errors against fp32.  *e is replaced by the last load. */
static int precision_check(sd_engine **e, sd_load_opts *lo, const float *x, const float *ts, const unet_cond *cond,
                           int rows, int lh, int lw, float *img, size_t ni, int batch, sd_err *err)
{
    static const char *names[3] = {"fp32", "bf16x2", "bf16"};
    size_t nu = (size_t)unet_get_info(sd_engine_unet(*e))->in_channels * lh * lw * rows;
    float *o = malloc(sizeof(float) * nu), *ru = malloc(sizeof(float) * nu), *ri = malloc(sizeof(float) * ni);
    int rc = -1;
    if (!o || !ru || !ri) { sd_errf(err, SD_ENOMEM, "bench", "out of memory"); goto out; }
    printf("precision check (one UNet CFG step, one decode; error vs fp32 = max|diff| / max|fp32|):\n");
    const char *saved = lo->precision;
    for (int p = 0; p < 3; p++) {
        sd_engine_free(*e);
        lo->precision = names[p];
        if (!(*e = sd_engine_load(lo, err))) goto out;
        struct sd_unet *un = sd_engine_unet(*e);
        struct sd_vae *va = sd_engine_vae(*e);
        double tu = 0, td = 0, t0;
        for (int r = 0; r < 2; r++) {   /* run 0 builds primitives and weight copies */
            t0 = now();
            if (unet_forward(un, x, ts, cond, rows, lh, lw, o, err)) goto out;
            tu = now() - t0;
        }
        unet_release_activations(un);
        for (int r = 0; r < 2; r++) {
            t0 = now();
            if (vae_decode(va, x, batch, lh, lw, img, err)) goto out;
            td = now() - t0;
        }
        vae_release_activations(va);
        if (p == 0) { memcpy(ru, o, sizeof(float) * nu); memcpy(ri, img, sizeof(float) * ni); }
        printf("  %-6s  unet step %7.3f s  err %.2e    decode %7.3f s  err %.2e  PSNR %5.1f dB  (peak RSS so far %.2f GiB)\n",
               names[p], tu, rel_err(o, ru, nu), td, rel_err(img, ri, ni), psnr_px(img, ri, ni), peak_rss_gb());
    }
    lo->precision = saved;
    rc = 0;
out:
    free(o); free(ru); free(ri);
    return rc;
}

/* The usual one-window prompt, or words appended until it takes `windows`
 * windows with the model's tokenizer (malloc'd). */
static char *bench_prompt(const sd_engine *e, int windows, sd_err *err)
{
    static const char base[] = "a photograph of an astronaut riding a horse on the moon, detailed, 8k";
    size_t cap = sizeof base + 8 * 80 * (size_t)windows, len = sizeof base - 1;
    char *p = malloc(cap);
    if (!p) { sd_errf(err, SD_ENOMEM, "", "out of memory"); return NULL; }
    memcpy(p, base, sizeof base);
    int n = 1;
    while (windows > 1 && len + 8 < cap) {
        memcpy(p + len, ", moon", 7);
        if (sd_prompt_windows(e, p, &n, NULL, err)) { free(p); return NULL; }
        if (n > windows) break;
        len += 6;
    }
    p[len] = 0;
    if (sd_prompt_windows(e, p, &n, NULL, err)) { free(p); return NULL; }
    if (n != windows) { free(p); sd_errf(err, SD_EINVAL, "", "could not build a prompt of %d windows", windows); return NULL; }
    return p;
}

/* -W/-H not given (0): the family's native size, 1024 for SDXL, else 512. */
static void bench_native_size(const sd_model_info *info, int *W, int *H)
{
    int n = info->family && !strncmp(info->family, "sdxl", 4) ? 1024 : 512;
    if (!*W) *W = n;
    if (!*H) *H = n;
}

/* FLOPs of the text stage as sd_encode_text_pooled runs it on `windows`
 * 77-token windows a side, both sides: one tower to its default clip skip;
 * SDXL's CLIP-L to its penultimate layer and OpenCLIP-bigG through all its
 * layers and the pooled projection. */
static double text_flops(sd_engine *e, int windows)
{
    struct sd_clip *c1 = sd_engine_clip_at(e, 0), *c2 = sd_engine_clip_at(e, 1);
    int B = 2 * windows;
    if (!c2) return clip_flops(c1, B, clip_layers(c1) + 1 - clip_default_skip(c1));
    return clip_flops(c1, B, clip_layers(c1) - 1) + clip_flops(c2, B, 0) + clip_pooled_flops(c2, B);
}

/* The added vector of each UNet row (SDXL, unet_cond.vec): its side's pooled
 * text (rows < batch take row 0's, as the context), zeros when the pooled
 * width is not the UNet's, then the time ids of an uncropped W x H picture
 * (diffusers' defaults).  malloc'd, NULL when out of memory. */
static float *bench_vec(const unet_info *ui, const float *pooled, int P, int rows, int batch, int W, int H)
{
    int D = ui->add_dim, Pt = ui->add_text_dim;
    float *v = calloc((size_t)rows * D, sizeof *v);
    for (int r = 0; v && r < rows; r++) {
        float *row = v + (size_t)r * D;
        if (pooled && P == Pt) memcpy(row, pooled + (size_t)(r < batch ? 0 : 1) * P, sizeof(float) * P);
        const float ids[6] = {(float)H, (float)W, 0, 0, (float)H, (float)W};
        memcpy(row + Pt, ids, sizeof ids);
    }
    return v;
}

/* 0 when all n values are finite, else -1 + err naming what held how many. */
static int check_finite(const char *what, const float *v, size_t n, sd_err *err)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !isfinite(v[i]);
    if (bad) return sd_errf(err, SD_EINTERNAL, what, "%zu of the %zu values of the %s are NaN or infinite", bad, n, what);
    printf("%-14s all %zu values finite\n", "", n);
    return 0;
}

/* --skip LIST: the stages named, as bits 1 << (index in skip_names); -1
 * for a name that is none of them (a typo must not run the whole bench). */
static const char *const skip_names[] = {"load", "text", "unet", "decode", "encode"};

static int parse_skip(const char *list)
{
    int bits = 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        int k = -1;
        for (int j = 0; j < (int)(sizeof skip_names / sizeof skip_names[0]); j++)
            if (strlen(skip_names[j]) == n && !strncmp(p, skip_names[j], n)) k = j;
        if (n && k < 0) {
            fprintf(stderr, "bench: --skip: unknown stage '%.*s'; the stages are load, text, unet, decode, encode\n",
                    (int)n, p);
            return -1;
        }
        if (k >= 0) bits |= 1 << k;
        p += n + (p[n] == ',');
    }
    return bits;
}

int cli_bench(int argc, char **argv)
{
    const char *model = NULL, *vocab = NULL, *skip = "", *precision = NULL, *lora = NULL;
    const char *preview_decoder = NULL;   /* --preview-decoder: time the previews' decoders */
    const char *layer_rule = NULL;        /* --layer-rule: the per-layer precision study's rule */
    double unet_med = 0;
    int wcheck = 0, pcheck = 0, windows = 1;
    bench_lora bl;
    int W = 0, H = 0, batch = 1, repeats = 3, steps = 1, threads = 0;
    float cfg = 7.5f;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(o, "--model") || !strcmp(o, "-m")) { model = v; i++; bad = !v; }
        else if (!strcmp(o, "--vocab")) { vocab = v; i++; bad = !v; }
        else if (!strcmp(o, "--skip")) { skip = v; i++; bad = !v; }
        else if (!strcmp(o, "--precision")) {
            precision = v; i++; bad = !v;
            if (v && sd_precision_known(v)) { fprintf(stderr, "bench: --precision must be auto, fp32, bf16x2 or bf16\n"); return 2; }
        }
        else if (!strcmp(o, "--winograd-check")) wcheck = 1;
        else if (!strcmp(o, "--preview-decoder")) { preview_decoder = v; i++; bad = !v; }
        else if (!strcmp(o, "--lora")) {
            lora = v; i++; bad = !v;
            if (v && bench_lora_parse(v, &bl)) { fprintf(stderr, "bench: --lora FILE[:W]\n"); return 2; }
        }
        else if (!strcmp(o, "--precision-check")) pcheck = 1;
        else if (!strcmp(o, "--layer-rule")) { layer_rule = v; i++; bad = !v; }
        else if (!strcmp(o, "-W") || !strcmp(o, "--width")) { bad = parse_int(o, v, 8, 4096, &W); i++; }
        else if (!strcmp(o, "-H") || !strcmp(o, "--height")) { bad = parse_int(o, v, 8, 4096, &H); i++; }
        else if (!strcmp(o, "--batch")) { bad = parse_int(o, v, 1, 64, &batch); i++; }
        else if (!strcmp(o, "--repeats")) { bad = parse_int(o, v, 1, 100, &repeats); i++; }
        else if (!strcmp(o, "--steps")) { bad = parse_int(o, v, 1, 1000, &steps); i++; }
        else if (!strcmp(o, "--cfg")) { bad = parse_cfg(o, v, &cfg); i++; }
        else if (!strcmp(o, "--threads")) { bad = parse_int(o, v, 0, 1024, &threads); i++; }
        else if (!strcmp(o, "--prompt-windows")) { bad = parse_int(o, v, 1, SD_MAX_PROMPT_WINDOWS, &windows); i++; }
        else { fprintf(stderr, "bench: unknown option '%s'\n", o); usage(stderr); return 2; }
        if (bad) { if (!v) fprintf(stderr, "bench: %s needs a value\n", o); return 2; }
    }
    if (!model) { usage(stderr); return 2; }
    int skipped = parse_skip(skip);
    if (skipped < 0) return 2;
    int do_load = !(skipped & 1), do_text = !(skipped & 2), do_unet = !(skipped & 4), do_dec = !(skipped & 8),
        do_enc = !(skipped & 16);

    sd_load_opts lo = {0};
    lo.model_path = model;
    lo.vocab_path = vocab;
    lo.threads = threads;
    lo.precision = precision;
    lo.lora_dir = lora ? bl.dir : NULL;
    char lora_label[4200];   /* an unknown LoRA names --lora's folder, not the server's GET /loras */
    snprintf(lora_label, sizeof lora_label, "%.4000s (the folder of --lora)", bl.dir);
    lo.lora_dir_label = lora ? lora_label : NULL;
    if (lora && bench_lora_check(lora, &bl)) return 1;
    lo.preview_decoder = preview_decoder;
    sd_err err = {0};
    double *t = calloc(repeats, sizeof *t);
    if (!t) return 1;

    /* Load first (the engine sets up the thread team), then measure the peak on it. */
    double t0 = now();
    sd_engine *e = sd_engine_load(&lo, &err);
    double tload0 = now() - t0;
    if (!e) { fprintf(stderr, "bench: %s\n", err.msg); free(t); return 1; }
    if (layer_rule && unet_set_layer_rule(sd_engine_unet(e), layer_rule, &err)) {
        fprintf(stderr, "bench: --layer-rule: %s\n", err.msg);
        sd_engine_free(e);
        free(t);
        return 2;
    }
    if (layer_rule) printf("layer rule: %s at plain bf16\n", *layer_rule ? layer_rule : "none");
    int nth = omp_get_max_threads();
    const char *isa;
    double peak = measure_peak(nth, &isa), bf16_peak = measure_bf16_peak(nth), again = measure_peak(nth, &isa);
    if (again > peak) peak = again;   /* the higher of the FMA loop before and after the bf16 one: their ratio
                                       * was once 3.06 for 1.9 when the first fell in a slow phase of the host */
    sd_model_info info;
    sd_engine_info(e, &info);
    bench_native_size(&info, &W, &H);
    printf("model %s (%s, %.3f B params), %dx%d, batch %d, %d repeats, %d threads, precision %s\n", info.name,
           info.family, info.params * 1e-9, W, H, batch, repeats, nth, info.precision);
    printf("peak (%s FMA loop, %d threads): %.1f GFLOP/s\n", isa, nth, peak);
    if (bf16_peak > 0)
        printf("bf16 dot loop (vdpbf16ps, %d threads): %.1f GFLOP/s, %.2fx the FMA loop\n", nth, bf16_peak,
               bf16_peak / peak);
    ops_prof_set_peak(peak);
    /* The bf16 kernels' peak (issue 19 item 1): AMX's matmul loop on random
     * operands where there is AMX, else the vdpbf16ps loop. */
    double amx_peak = ops_amx_peak(nth, 1);
    if (amx_peak > 0) {
        printf("AMX bf16 matmul loop (tdpbf16ps from L1, %d threads): random operands %.1f GFLOP/s, zeros %.1f"
               " GFLOP/s; %.2fx the FMA loop\n", nth, amx_peak, ops_amx_peak(nth, 0), amx_peak / peak);
        ops_prof_set_bf16_peak(amx_peak, "AMX loop");
    } else if (bf16_peak > 0) {
        ops_prof_set_bf16_peak(bf16_peak, "bf16 dot loop");
    }
    printf("%-14s %9s    %9s        %7s\n", "stage", "median", "work", "rate");

    if (do_load) {
        t[0] = tload0;   /* the first load warms the page cache; it counts as one repeat */
        for (int r = 1; r < repeats; r++) {
            sd_engine_free(e);
            t0 = now();
            e = sd_engine_load(&lo, &err);
            t[r] = now() - t0;
            if (!e) { fprintf(stderr, "bench: %s\n", err.msg); free(t); return 1; }
        }
        report("load", t, repeats, 0, peak);
    }

    int lw, lh;
    sd_latent_size(e, W, H, &lw, &lh);
    float *ctx = NULL, *pooled = NULL;
    int T = 0, Wc = 0, P = 0;
    char *prompt = bench_prompt(e, windows, &err);
    if (!prompt) {
        fprintf(stderr, "bench: %s\n", err.msg);
        free(t);
        sd_engine_free(e);
        return 1;
    }
    sd_gen_params text = {.prompt = prompt, .negative = windows > 1 ? prompt : "blurry, low quality"};
    for (int r = 0; r < (do_text ? repeats : 1); r++) {
        free(ctx);
        free(pooled);
        ctx = pooled = NULL;
        t0 = now();
        if (sd_encode_text_pooled(e, &text, &ctx, &T, &Wc, &pooled, &P, &err)) {
            free(prompt);
            fprintf(stderr, "bench: %s\n", err.msg);
            free(t);
            sd_engine_free(e);
            return 1;
        }
        t[r] = now() - t0;
    }
    free(prompt);
    if (do_text) report(sd_engine_clip_at(e, 1) ? "text encoders" : "text encoder", t, repeats,
                        text_flops(e, T / 77), peak);

    struct sd_unet *un = sd_engine_unet(e);
    struct sd_vae *va = sd_engine_vae(e);
    const unet_info *ui = unet_get_info(un);
    int C = ui->in_channels, rows = cfg > 1.0f ? 2 * batch : batch, S = vae_scale(va);   /* sd_generate's rule */
    size_t per = (size_t)C * lh * lw, npix = (size_t)3 * lh * S * lw * S;
    float *x = malloc(sizeof(float) * per * rows), *o = malloc(sizeof(float) * per * rows);
    float *ts = malloc(sizeof(float) * rows), *ctxb = malloc(sizeof(float) * (size_t)rows * T * Wc);
    float *img = malloc(sizeof(float) * npix * batch), *mom = malloc(sizeof(float) * 2 * per * batch);
    float *vec = ui->add_dim ? bench_vec(ui, pooled, P, rows, batch, W, H) : NULL;
    unet_cond cond = {.ctx = ctxb, .T = T, .vec = vec, .vec_dim = vec ? ui->add_dim : 0};
    int rc = 1;
    if (!x || !o || !ts || !ctxb || !img || !mom || (ui->add_dim && !vec)) {
        fprintf(stderr, "bench: out of memory\n");
        goto done;
    }
    srand(1);
    for (size_t i = 0; i < per * rows; i++) x[i] = (float)rand() / RAND_MAX * 2.f - 1.f;
    for (int r = 0; r < rows; r++) {
        ts[r] = 500.f;
        memcpy(ctxb + (size_t)r * T * Wc, ctx + (size_t)(r < batch ? 0 : 1) * T * Wc, sizeof(float) * T * Wc);
    }
    if (do_unet) {
        /* the FMA loop before the first run and after each: run r lies between
         * loop[r] and loop[r + 1] (the one after a run is the one before the next) */
        double *around = malloc(sizeof(double) * (repeats + 1)), loop;
        const char *isa;
        if (!around) goto fail;
        t0 = now();
        if (unet_forward(un, x, ts, &cond, rows, lh, lw, o, &err)) { free(around); goto fail; }
        double first = now() - t0;
        around[0] = measure_peak(omp_get_max_threads(), &isa);
        double hi = around[0];   /* the highest reading of the loop */
        for (int r = 0; r < repeats; r++) {
            if (r == repeats - 1) ops_prof_reset();   /* SD_PROFILE=1: the last run's ops */
            t0 = now();
            if (unet_forward(un, x, ts, &cond, rows, lh, lw, o, &err)) { free(around); goto fail; }
            t[r] = now() - t0;
            loop = measure_peak(omp_get_max_threads(), &isa);
            if (loop > hi) hi = loop;
            around[r] = 0.5 * (around[r] + loop) * t[r];   /* paired before median() sorts t */
            around[r + 1] = loop;
        }
        /* The loop at the start can fall in a slow phase of a shared host
         * (once half the readings around the runs): the highest reading so
         * far is the peak the stage lines and profile shares use. */
        if (hi > 1.05 * peak) {
            printf("peak now %.1f GFLOP/s (the FMA loop around the UNet runs; %.1f at the start): the shares below"
                   " are against it\n", hi, peak);
            peak = hi;
            ops_prof_set_peak(peak);
        }
        report(rows > batch ? "unet cfg step" : "unet step", t, repeats, unet_flops(un, rows, lh, lw, T), peak);
        report_first(first);
        report_exec(median(t, repeats), peak);
        report_paired(around, repeats);
        free(around);
        unet_med = median(t, repeats);
        if (check_finite("unet output", o, per * rows, &err)) goto fail;
        if (lora && bench_lora_run(e, &bl, median(t, repeats), x, ts, &cond, rows, lh, lw, o, &err)) goto fail;
        size_t ws = 0;
        if (!unet_reserve(un, rows, lh, lw, T, &ws, &err))
            printf("%-14s %9.1f MiB (context of %d tokens)\n", "unet workspace", ws / 1048576.0, T);
        unet_release_activations(un);   /* as the pipeline does before decoding */
        if (ops_prof_enabled()) ops_prof_print(stdout, "(last run)", unet_ops_ctx(un));
    }
    if (preview_decoder && bench_previews(e, x, lh, lw, unet_med, repeats, peak, &err)) goto fail;
    if (do_dec) {
        t0 = now();
        if (vae_decode(va, x, batch, lh, lw, img, &err)) goto fail;
        double first = now() - t0;
        for (int r = 0; r < repeats; r++) {
            if (r == repeats - 1) ops_prof_reset();   /* SD_PROFILE=1: the last run's ops */
            t0 = now();
            if (vae_decode(va, x, batch, lh, lw, img, &err)) goto fail;
            t[r] = now() - t0;
        }
        report("vae decode", t, repeats, vae_decode_flops(va, lh, lw) * batch, peak);
        report_first(first);
        report_exec(median(t, repeats), peak);
        if (check_finite("decoded image", img, npix * batch, &err)) goto fail;
        vae_release_activations(va);
        if (ops_prof_enabled()) ops_prof_print(stdout, "(last run)", unet_ops_ctx(un));
    }
    if (do_enc && vae_has_encoder(va)) {
        for (size_t i = 0; i < npix * batch; i++) img[i] = (float)rand() / RAND_MAX * 2.f - 1.f;
        t0 = now();
        if (vae_encode_moments(va, img, batch, lh * S, lw * S, mom, &err)) goto fail;
        double first = now() - t0;
        for (int r = 0; r < repeats; r++) {
            if (r == repeats - 1) ops_prof_reset();   /* SD_PROFILE=1: the last run's ops */
            t0 = now();
            if (vae_encode_moments(va, img, batch, lh * S, lw * S, mom, &err)) goto fail;
            t[r] = now() - t0;
        }
        report("vae encode", t, repeats, vae_encode_flops(va, lh * S, lw * S) * batch, peak);
        report_first(first);
        report_exec(median(t, repeats), peak);
        if (ops_prof_enabled()) ops_prof_print(stdout, "(last run)", unet_ops_ctx(un));
    }
    sd_engine_info(e, &info);   /* e may have been loaded again since */
    if (wcheck && strcmp(info.precision, "fp32"))
        printf("winograd check: skipped, the precision is %s and Winograd is fp32 only (--precision fp32)\n",
               info.precision);
    else if (wcheck) {
        /* the same UNet step and decode under each Winograd rule; error = max|d| / max|ref|
         * against direct convolutions (run first, after a warm-up of each rule) */
        static const char *names[4] = {"off", "on", "auto", "wide"};
        static const int modes[4] = {OPS_WINO_OFF, OPS_WINO_ALL, OPS_WINO_AUTO, OPS_WINO_WIDE};
        size_t nu = per * rows, ni = npix * batch;
        float *ru = malloc(sizeof(float) * nu), *ri = malloc(sizeof(float) * ni);
        if (!ru || !ri) { free(ru); free(ri); fprintf(stderr, "bench: out of memory\n"); goto done; }
        ops_ctx *oc = unet_ops_ctx(un);   /* the engine's context: the VAE's too */
        int saved = ops_conv_winograd(oc);
        printf("winograd check (one UNet CFG step, one decode; error vs off = max|diff| / max|off|):\n");
        for (int m = 0; m < 4; m++) {
            int mode = modes[m];
            ops_conv_set_winograd(oc, mode);
            double tu = 0, td = 0;
            for (int r = 0; r < 2; r++) {   /* run 0 builds primitives and weight layouts */
                t0 = now();
                if (unet_forward(un, x, ts, &cond, rows, lh, lw, o, &err)) goto fail;
                tu = now() - t0;
                t0 = now();
                if (vae_decode(va, x, batch, lh, lw, img, &err)) goto fail;
                td = now() - t0;
            }
            double eu = 0, ei = 0, mu = 0, mi = 0;
            if (mode == OPS_WINO_OFF) { memcpy(ru, o, sizeof(float) * nu); memcpy(ri, img, sizeof(float) * ni); }
            for (size_t i = 0; i < nu; i++) { eu = fmax(eu, fabs(o[i] - ru[i])); mu = fmax(mu, fabs(ru[i])); }
            for (size_t i = 0; i < ni; i++) { ei = fmax(ei, fabs(img[i] - ri[i])); mi = fmax(mi, fabs(ri[i])); }
            printf("  winograd %-4s  unet step %7.3f s  err %.2e    decode %7.3f s  err %.2e  (peak RSS so far %.2f GiB)\n",
                   names[m], tu, mu > 0 ? eu / mu : eu, td, mi > 0 ? ei / mi : ei, peak_rss_gb());
        }
        ops_conv_set_winograd(oc, saved);
        free(ru); free(ri);
    }
    if (pcheck && precision_check(&e, &lo, x, ts, &cond, rows, lh, lw, img, npix * batch, batch, &err)) goto fail;
    printf("peak RSS %.2f GiB (%.2f GB)\n", peak_rss_gb(), peak_rss_gb() * 1.073741824);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "bench: %s\n", err.msg);
done:
    free(x); free(o); free(ts); free(ctxb); free(img); free(mom); free(ctx); free(t);
    free(pooled); free(vec);
    sd_engine_free(e);
    return rc;
}
