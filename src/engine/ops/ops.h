/* ops.h — the engine's small tensor-op layer.  Models call these, never
 * oneDNN directly.
 *
 * All arrays are fp32, C order: activations NHWC ([N, H, W, C]; the models
 * take and give images and latents as NCHW and convert with op_nchw_to_nlc /
 * op_nlc_to_nchw), sequences [N, T, C], and the weights in PyTorch layouts:
 * linear [OUT, IN] (nn.Linear), conv [OC, IC, KH, KW].  Output buffers are
 * supplied by the caller and never alias inputs unless stated.  Ops run on
 * the calling thread's team (OpenMP, shared with oneDNN; ops_ctx_attach).
 * Each op has a unit test against a naive loop (tests/unit/test_ops.c).
 *
 * Errors: ops cannot fail on valid shapes; out of memory sets the context's
 * fault (ops_take_fault); any other oneDNN failure is a bug (sd_panic). */
#ifndef SD_OPS_H
#define SD_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---------------------------------------------------------------- context
 *
 * An ops_ctx is one engine's ops state: its thread-team size, Winograd
 * rule, primitive caches (conv and matmul), the registry of its weights
 * (ops_weight, below) and the sticky out-of-memory fault.  The engine makes
 * one at load (tests make their own) and every op that needs any of it
 * takes it explicitly, through an ops_m: the context plus the precision of
 * the model making the call.  Nothing depends on which model ran last, and
 * two contexts run at once on two threads without sharing a cache
 * (tests/parity/test_engine_ctx.c).  Even one context's tables are safe
 * from two threads: they are locked, and a cached primitive is pinned
 * while an op runs on it, so another thread cannot evict it.
 *
 * Process-wide, because they are facts of the process, not of an engine:
 * the oneDNN engine handle (oneDNN's CPU engine is stateless and
 * thread-safe), the CPU probes (ops_cpu_amx, ops_cpu_bf16, avx512bf16),
 * SD_PRECISION's default (ops_default_precision), each calling thread's
 * oneDNN stream and grow-only buffers (_Thread_local: nothing shared), and
 * the SD_PROFILE totals (a measuring tool: added under a lock when on). */
typedef struct ops_ctx ops_ctx;
/* What a model hands every op: its engine's context and its precision
 * (OPS_FP32, OPS_BF16X2, OPS_BF16 below). */
typedef struct ops_m {
    ops_ctx *ctx;
    int prec;
} ops_m;

/* A context whose ops run on teams of `threads` (0 or less = all cores);
 * SD_CONV_WINOGRAD and SD_PROFILE are read here.  NULL when out of memory.
 * Free after every model and weight using it: ops_ctx_free frees its
 * weights' handles and derived copies too. */
ops_ctx *ops_ctx_new(int threads);
void ops_ctx_free(ops_ctx *c);
/* Use the context's team size in the calling thread (OpenMP's count is per
 * thread): the engine's entry points call it, since the thread that loads
 * a model is often not the one that runs it.  ops_ctx_new attaches the
 * thread that calls it. */
void ops_ctx_attach(const ops_ctx *c);
int ops_ctx_threads(const ops_ctx *c);

/* 1 if an op of this context ran out of memory (an allocation through
 * src/base/alloc.h or oneDNN's dnnl_out_of_memory) since the last call,
 * and clears it.  After such a fault the context's ops skip their work, so
 * a forward's outputs are meaningless: the caller answers SD_ENOMEM (503).
 * Never an abort. */
int ops_take_fault(ops_ctx *c);

/* ---------------------------------------------------------------- weights
 *
 * A conv or linear weight is a handle registered once by whoever owns its
 * memory (the loader, or a test).  Layout and precision copies the
 * primitives want (blocked, Winograd, bf16, stacked for bf16x2) hang off
 * the handle, made on first use: no lookup by pointer.
 *
 * The owner decides about its memory.  With a source (ops_weight_src), the
 * handle calls src->copied once its first blocked copy exists — the owner
 * may then give the original's pages back (the loader does) — and from
 * then on re-derives the original through src->reload when it needs it
 * again (another layout or precision, a restore).  Without a source the
 * original must stay valid and unchanged while the handle lives. */
typedef struct ops_weight ops_weight;
typedef struct ops_weight_src {
    /* ops made a copy of the original at `data`: the owner may give its
     * pages back (it is read again only through reload) */
    void (*copied)(void *ud, const float *data, size_t n);
    /* write the original's n floats into dst; 0, or -1 (out of memory) */
    int (*reload)(void *ud, float *dst, size_t n);
} ops_weight_src;

/* A handle for the n fp32 values at data, owned by ctx (freed with it or
 * by ops_weight_free).  src and ud may be NULL (see above).  NULL when out
 * of memory. */
ops_weight *ops_weight_register(ops_ctx *c, const float *data, size_t n, const ops_weight_src *src, void *ud);
void ops_weight_free(ops_weight *w);
/* The owner has already given the original's pages back (another handle's
 * copy let it): the handle re-derives the original through its source. */
void ops_weight_given_back(ops_weight *w);
size_t ops_weight_numel(const ops_weight *w);
/* Replace the weight's values by a copy of data (n floats): every derived
 * copy is dropped and made again, at any precision, from the new values
 * (LoRA's patch).  ops_weight_restore gives back exactly the original
 * (re-derived through the source if its pages were given back).  Not while
 * an op of the context uses the weight.  0, or -1 when out of memory (the
 * weight unchanged). */
int ops_weight_replace(ops_weight *w, const float *data);
int ops_weight_restore(ops_weight *w);
/* The same replacement made lazily and not kept: the weight's values become
 * patch(ud, x, n) applied to a copy x of the original, computed whenever a
 * derived copy is made from them (normally once: the first layout copy;
 * others come from it) and then freed, so a patched weight costs no more
 * memory than an unpatched one.  patch runs on the op's thread, under the
 * context's lock; 0, or -1 (the op then faults: SD_ENOMEM).  ud must stay
 * valid until the weight is replaced or restored. */
typedef int (*ops_patch_fn)(void *ud, float *x, size_t n);
int ops_weight_replace_lazy(ops_weight *w, ops_patch_fn patch, void *ud);
/* The weight's current fp32 values (its original, or its replacement)
 * into dst (n floats).  0, or -1 when out of memory. */
int ops_weight_read(const ops_weight *w, float *dst);
/* Drop every derived copy of every weight of the context (they are made
 * again on next use).  Not while an op of the context runs. */
void ops_release_weights(ops_ctx *c);
/* The same for one weight: its copies' memory goes back now, and the next
 * op that uses it makes them again (from the original, re-derived through
 * the source when its pages were given back).  Not while an op uses it. */
void ops_weight_release(ops_weight *w);
/* The derived copies held: how many, their bytes, of which Winograd layouts. */
void ops_weights_stats(ops_ctx *c, size_t *copies, size_t *bytes, size_t *wino_bytes);

/* y[N,OH,OW,OC] = conv2d(x[N,H,W,IC], w[OC,IC,KH,KW]) + b[OC] (b may be NULL).
 * OH = (H + 2*pad - KH)/stride + 1.  Zero padding, dilation 1, groups 1.
 * `accum` holds flags (1 = OPS_CONV_ACCUM, as before): OPS_CONV_ACCUM
 * y += conv(x) + b (a residual add fused into the conv); OPS_CONV_RELU then
 * y = max(y, 0) (an eltwise post-op: TAESD's activations). */
enum { OPS_CONV_ACCUM = 1, OPS_CONV_RELU = 2 };
void op_conv2d_nhwc(const ops_m *m, const float *x, int N, int IC, int H, int W,
                    ops_weight *w, const float *b, int OC, int KH, int KW,
                    int stride, int pad, float *y, int accum);
/* y[N,2H,2W,OC] = 3x3 conv (stride 1, pad 1) of x[N,H,W,IC] upsampled 2x
 * (nearest), without making the upsampled image (it runs in row bands). */
void op_conv2d_nhwc_up2(const ops_m *m, const float *x, int N, int IC, int H, int W, ops_weight *w, const float *b,
                        int OC, float *y);

/* Winograd rule for stride-1 3x3 convs: OPS_WINO_OFF never, OPS_WINO_ALL
 * always, OPS_WINO_AUTO (the default, SD_CONV_WINOGRAD=auto) where outputs
 * are >= 32x32, inputs not huge and the weight copy small next to the input,
 * OPS_WINO_WIDE (SD_CONV_WINOGRAD=wide) the same without the weight-copy
 * limit (see ops_conv.c).  SD_CONV_WINOGRAD=0/1/auto/wide sets it at start. */
enum { OPS_WINO_OFF = 0, OPS_WINO_ALL = 1, OPS_WINO_AUTO = 2, OPS_WINO_WIDE = 3 };

/* Precision of convs, matmuls and attention (norms, activations and sums
 * are fp32 always):
 *   OPS_FP32    fp32 throughout: the reference's results (parity 1e-4).
 *   OPS_BF16X2  each conv/matmul input split into two bf16 terms (hi + lo,
 *               ~16 bits of mantissa) against bf16 weights, f32 sums: only
 *               the weights are rounded; attention in bf16 on AMX.
 *   OPS_BF16    inputs and weights bf16, f32 sums: fastest, least exact.
 * By default OPS_BF16X2 on CPUs with AMX (checked at run time; its doubled
 * work is still ~4x faster than fp32 there), else OPS_FP32;
 * SD_PRECISION=fp32|bf16x2|bf16|auto overrides, read once at first use
 * (ops_default_precision).  Precision is each model's (ops_m.prec), passed
 * on every call: no mode register.  ops_cpu_amx: the CPU
 * has AMX (and the OS lets oneDNN use it); ops_cpu_bf16: oneDNN may use
 * AVX-512 here, which its bf16 kernels need (below it, a bf16 primitive
 * cannot be created: models refuse those precisions at load). */
enum { OPS_FP32 = 0, OPS_BF16 = 1, OPS_BF16X2 = 2 };
int ops_default_precision(void);
const char *ops_precision_name(int prec);
/* OPS_* named by "fp32", "bf16" or "bf16x2"; -1 for anything else (NULL too). */
int ops_precision_from_name(const char *name);
int ops_cpu_amx(void);
int ops_cpu_bf16(void);
/* y[i] = x[i] rounded to bf16 (nearest even), i < n. */
void ops_to_bf16(const float *x, size_t n, uint16_t *y);
/* The context's Winograd rule (cached primitives are rebuilt under it). */
void ops_conv_set_winograd(ops_ctx *c, int mode);
int ops_conv_winograd(const ops_ctx *c);

/* y[M,OUT] = x[M,IN] · w[OUT,IN]^T + b[OUT] (b may be NULL). */
void op_linear(const ops_m *m, const float *x, int M, int IN, ops_weight *w, const float *b, int OUT, float *y);

/* y[M,OUT] += x[M,IN] · w[OUT,IN]^T + b[OUT] (b may be NULL): a linear
 * layer whose output is added to a residual in place. */
void op_linear_acc(const ops_m *m, const float *x, int M, int IN, ops_weight *w, const float *b, int OUT, float *y);

/* C[M,N] = alpha * A[M,K] · B + beta*C, with B given as [K,N] (transB=0) or [N,K] (transB=1).
 * Row-major, leading dimensions lda, ldb, ldc. */
void op_gemm(int transB, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* GroupNorm on NHWC: x[N,HW,C], G groups of C/G consecutive channels.
 * pre_bias (may be NULL) is a per-sample per-channel [N,C] term added to x
 * before normalising (the UNet's time embedding); if silu, y = silu(norm).
 * y may alias x. */
void op_group_norm_nhwc(const ops_m *m, const float *x, int N, int C, int HW, int G, const float *pre_bias,
                        const float *gamma, const float *beta, float eps, int silu, float *y);

/* The same group norm in two halves, for a tensor normalised in row stripes
 * (the tiled VAE decode): op_group_norm_coefs_nhwc reads one sample x[HW,C]
 * whole and gives per channel y = x·scale + shift (scale[C], shift[C]: the
 * numbers op_group_norm_nhwc applies); op_channel_affine_nhwc applies them
 * (then SiLU if silu) to P pixels of C channels; y may alias x.  Out of
 * memory sets the context's fault. */
void op_group_norm_coefs_nhwc(const ops_m *m, const float *x, int C, int HW, int G, const float *gamma,
                              const float *beta, float eps, float *scale, float *shift);
void op_channel_affine_nhwc(const float *x, size_t P, int C, const float *scale, const float *shift, int silu,
                            float *y);

/* y = conv2d(gn(x)) (+ y with accum): op_group_norm_nhwc of x (pre_bias,
 * gamma, beta, eps, silu as there) feeding op_conv2d_nhwc (w, b, OC, KH,
 * KW, stride, pad, y, accum as there).  At the bf16 precisions the norm's
 * last pass writes the conv's bf16 input directly, so the normalised image
 * is never written in fp32 (one pass over memory less); at fp32 it goes
 * through norm_out ([N,H,W,C], may alias x), except where the conv runs on
 * the ops layer's own kernel (direct below AVX-512, Winograd everywhere),
 * which normalises its input as it pads it; norm_out's contents are left
 * unspecified. */
void op_gn_conv2d_nhwc(const ops_m *m, const float *x, int N, int C, int H, int W, int G, const float *pre_bias,
                       const float *gamma, const float *beta, float eps, int silu, float *norm_out, ops_weight *w, const float *b, int OC,
                       int KH, int KW, int stride, int pad, float *y, int accum);

/* LayerNorm over the last dim: x[M,C] -> y[M,C]; y may alias x. */
void op_layer_norm(const float *x, int M, int C, const float *gamma, const float *beta,
                   float eps, float *y);

/* Multi-head scaled-dot-product attention, softmax(q·kᵀ·scale)·v.
 * q[B,Tq,H*D], k[B,Tk,H*D], v[B,Tk,H*D] with row strides ldq/ldk/ldv
 * (elements between consecutive tokens; = H*D when packed), out[B,Tq,H*D]
 * packed.  Never materialises the full [H,Tq,Tk] matrix at once. */
void op_attention(const ops_m *m, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                  int B, int Tq, int Tk, int H, int D, float scale, float *out);

/* Same, with a causal mask (token i attends to j <= i) — for the text encoder. */
void op_attention_causal(const ops_m *m, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                         int B, int T, int H, int D, float scale, float *out);

/* Elementwise, in place on n elements. */
void op_silu(float *x, size_t n);
void op_gelu(float *x, size_t n);        /* exact erf GELU */
void op_quick_gelu(float *x, size_t n);  /* x * sigmoid(1.702 x) */
/* y[i] += x[i] */
void op_add(float *y, const float *x, size_t n);
/* y[i] = a*y[i] + b*x[i] */
void op_axpby(float *y, float a, const float *x, float b, size_t n);
/* x[i] = tanh(x[i]/c)·c, c > 0: a soft clamp into (-c, c) (TAESD's
 * decoder input, c = 3: madebyollin's Clamp layer).  In place. */
void op_tanh_clamp(float *x, size_t n, float c);
/* x[i] = x[i]·a + b, in place: a value range mapped to another (TAESD's
 * [-1, 1] <-> [0, 1] image scales). */
void op_scale_shift(float *x, size_t n, float a, float b);

/* GEGLU: in[M, 2F] = [value | gate] -> out[M,F] = value * gelu(gate). */
void op_geglu(const float *in, int M, int F, float *out);

/* NCHW <-> NHWC-style transposes: x[N,C,HW] -> y[N,HW,C] and back. */
void op_nchw_to_nlc(const float *x, int N, int C, int HW, float *y);
void op_nlc_to_nchw(const float *x, int N, int C, int HW, float *y);

/* Nearest-neighbour resize of x[N,H,W,C] to y[N,OH,OW,C] with PyTorch's rule
 * (F.interpolate(size=...), mode "nearest"): src = min(floor(dst * (in/out)),
 * in-1); exactly 2x when OH=2H.  Channel concat of x1[P,C1], x2[P,C2] ->
 * y[P,C1+C2] for P pixels. */
void op_upsample_nearest_nhwc(const float *x, int N, int C, int H, int W, int OH, int OW, float *y);
void op_concat_channels_nhwc(const float *x1, int C1, const float *x2, int C2, size_t P, float *y);

/* Give the whole pages of [p, p+bytes) back to the OS; they read as zero
 * afterwards and are faulted in again on the next write.  For workspaces
 * between phases (the UNet's while the VAE runs and back). */
void ops_release_pages(void *p, size_t bytes);

/* Profiling: with SD_PROFILE=1 in the environment (read by ops_ctx_new)
 * every op adds its wall time to a process-wide total per kind;
 * ops_prof_print writes the totals (and c's weight copies, c may be NULL)
 * and resets them.  SD_PROFILE=2 also keeps them per shape (ops_prof.h
 * PROF_SHAPE) and prints that table after the kinds. */
enum { PROF_CONV, PROF_LINEAR, PROF_ATTN, PROF_NORM, PROF_ELEM, PROF_LAYOUT, PROF_NKIND };
int ops_prof_enabled(void);
void ops_prof_reset(void);
void ops_prof_print(FILE *f, const char *title, ops_ctx *c);

/* FLOP counters (issue 19 item 5), process-wide and always on (a few atomic
 * adds per op call): per op kind, the model's FLOPs (the nominal shapes,
 * multiply-add = 2, as unet_flops counts them) and the FLOPs the kernels
 * execute — Winograd convs' transforms and element-wise GEMMs instead of the
 * direct count, bf16x2's second (lo) product, a band's halo rows recomputed,
 * the zero rows of a padded chunk.  ops_prof_reset clears them too;
 * ops_prof_print adds GFLOP, GFLOP/s and the share of the peak set by
 * ops_prof_set_peak (the FMA loop's GFLOP/s; 0: no share printed). */
typedef struct ops_flops { double model[PROF_NKIND], exec[PROF_NKIND]; } ops_flops;
void ops_flops_get(ops_flops *f);
void ops_flops_reset(void);
void ops_prof_set_peak(double gflops);
/* The bf16 peak the profile also measures against (SD_PROFILE=1 adds each
 * kind's share of it; 0: none): `name` says which loop it is (static). */
void ops_prof_set_bf16_peak(double gflops, const char *name);
/* GFLOP/s of AMX's bf16 matmul inner loop (ops_amx_peak.c) on `threads`
 * threads, best of 3: on random bf16 operands (random != 0: the practical
 * peak) or zeros; 0 on CPUs without AMX or without the kernel's permission. */
double ops_amx_peak(int threads, int random);
/* The FLOPs one conv executes: direct (wino 0) 2·N·OC·OH·OW·IC·KH·KW;
 * Winograd (wino != 0, ops_wino.c's F(4x4, 3x3): 6x6 tiles, tiles =
 * N·ceil(OH/4)·ceil(OW/4)) 2·36·IC·OC per tile in the element-wise GEMMs
 * (their rows, all N images' tiles, padded to 6 and outputs to 16, as our
 * register tile computes them), 2·312 per tile and input channel for the
 * input transform BᵀdB (26 non-zeros of Bᵀ, applied to 6 columns and 6
 * rows) and 2·180 per tile and output channel for the output transform
 * AᵀMA (18 non-zeros of Aᵀ: 6·18 + 4·18); the weight transform is done once
 * per copy, not per call. */
double ops_conv_exec_flops(int wino, int N, int IC, int OC, int OH, int OW, int KH, int KW);

#endif
