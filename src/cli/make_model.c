/* make_model.c — `sdserve make-model`: write a random-weight checkpoint in
 * the original single-file (CompVis/LDM) naming from an architecture
 * description, so the engine never needs sizes hard-coded and tests can build
 * models of any size.
 *
 *   --preset sd15   SD 1.5 shapes (1131 tensors, 1.07 B parameters), one file.
 *   --preset demo   a model small enough to run in seconds on a CPU, written as
 *                   a folder: model.safetensors, model.ldm_config.json and a
 *                   byte-level tokenizer/ (vocab.json with 514 ids, no merges).
 *   --preset sdxl   SDXL 1.0 base shapes (2515 tensors, 3.47 B parameters) in
 *                   the released file's naming (conditioner.embedders.0/1),
 *                   one file plus an sgm-style <stem>.ldm_config.json.
 *   --preset taesd  madebyollin's TAESD shapes (64 channels, encoder blocks
 *                   1,3,3,3, decoder 3,3,3,1) in diffusers AutoencoderTiny
 *                   naming, one file: a --preview-decoder for benches.
 * Size flags change any preset (see usage()); --list prints the tensor list
 * the writer would write (name, dtype, shape) without writing anything.  Weights are
 * normal(0, 1/sqrt(fan_in)) for matrices and convolutions, norms have gamma 1
 * and beta 0, biases 0, embeddings normal(0, 0.02); generation is chunked with
 * one seeded stream per 64K-element chunk, so the output depends only on the
 * seed, not on the thread count. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "../engine/loader/st_write.h"

#ifdef __F16C__
#include <immintrin.h>
#endif

#define MM_MAXLEV 8

typedef struct arch {
    /* UNet */
    int unet_ch[MM_MAXLEV], unet_levels, unet_res, unet_attn[MM_MAXLEV];
    int unet_depth[MM_MAXLEV];    /* transformer blocks per level; 0 = no attention there */
    int unet_depth_mid;           /* 0 = the last level's depth (at least 1) */
    int unet_heads, unet_head_ch; /* one of them > 0 */
    int context;                  /* 0 = text width */
    int linear_proj;              /* SD2: Linear proj_in/out instead of 1x1 conv */
    int latent_ch;
    /* VAE */
    int vae_ch[MM_MAXLEV], vae_levels, vae_res;
    /* text encoder */
    int text_width, text_layers, text_heads, text_mlp, text_vocab, text_ctx;
    int openclip; /* SD2 OpenCLIP naming (cond_stage_model.model.*) */
    int pad_id;
    const char *prediction; /* "eps" or "v" */
    /* SDXL: second text tower (OpenCLIP naming), added conditioning, VAE scale */
    int sdxl;
    int text2_width, text2_layers, text2_heads, text2_mlp, text2_proj;
    int add_time_dim; /* width of each of the 6 size/crop embeddings */
    double scale_factor;
} arch;

/* ---- tensor list ---- */

/* INIT_W_T: a matrix used as x @ W (fan-in = rows); INIT_LOGIT: ln(100),
 * OpenCLIP's trained logit_scale. */
enum { INIT_W, INIT_ONE, INIT_ZERO, INIT_EMB, INIT_POS_IDS, INIT_W_T, INIT_LOGIT };

typedef struct mm_tensor {
    char name[160];
    int ndim;
    int64_t shape[4];
    int init;
    int64_t numel;
} mm_tensor;

typedef struct tlist {
    mm_tensor *t;
    size_t n, cap;
    int oom;
} tlist;

static void add(tlist *l, int init, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
static void add(tlist *l, int init, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        mm_tensor *t = realloc(l->t, cap * sizeof *t);
        if (!t) {
            l->oom = 1;
            return;
        }
        l->t = t;
        l->cap = cap;
    }
    mm_tensor *t = &l->t[l->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    int64_t d[4] = {d0, d1, d2, d3};
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < 4; i++) {
        t->shape[i] = i < ndim ? d[i] : 0;
        if (i < ndim) t->numel *= d[i];
    }
    t->init = init;
}

/* weight + bias pairs */
static void conv(tlist *l, const char *p, int cout, int cin, int k)
{
    add(l, INIT_W, 4, cout, cin, k, k, "%s.weight", p);
    add(l, INIT_ZERO, 1, cout, 0, 0, 0, "%s.bias", p);
}
static void linear(tlist *l, const char *p, int out, int in, int bias)
{
    add(l, INIT_W, 2, out, in, 0, 0, "%s.weight", p);
    if (bias) add(l, INIT_ZERO, 1, out, 0, 0, 0, "%s.bias", p);
}
static void norm(tlist *l, const char *p, int c)
{
    add(l, INIT_ONE, 1, c, 0, 0, 0, "%s.weight", p);
    add(l, INIT_ZERO, 1, c, 0, 0, 0, "%s.bias", p);
}

#define P(...) (snprintf(pb, sizeof pb, __VA_ARGS__), pb)

static void unet_resblock(tlist *l, const char *p, int cin, int cout, int temb)
{
    char pb[160];
    norm(l, P("%s.in_layers.0", p), cin);
    conv(l, P("%s.in_layers.2", p), cout, cin, 3);
    linear(l, P("%s.emb_layers.1", p), cout, temb, 1);
    norm(l, P("%s.out_layers.0", p), cout);
    conv(l, P("%s.out_layers.3", p), cout, cout, 3);
    if (cin != cout) conv(l, P("%s.skip_connection", p), cout, cin, 1);
}

static int context_dim(const arch *a)
{
    if (a->context) return a->context;
    return a->sdxl ? a->text_width + a->text2_width : a->text_width;
}

static int mid_depth(const arch *a)
{
    int d = a->unet_depth[a->unet_levels - 1];
    return a->unet_depth_mid ? a->unet_depth_mid : d > 0 ? d : 1;
}

static int has_attn(const arch *a, int L) { return a->unet_attn[L] && a->unet_depth[L] > 0; }

static void unet_transformer(tlist *l, const arch *a, const char *p, int c, int depth)
{
    char pb[160];
    int ctx = context_dim(a);
    norm(l, P("%s.norm", p), c);
    if (a->linear_proj)
        linear(l, P("%s.proj_in", p), c, c, 1);
    else
        conv(l, P("%s.proj_in", p), c, c, 1);
    for (int d = 0; d < depth; d++) {
        for (int k = 1; k <= 2; k++) {
            linear(l, P("%s.transformer_blocks.%d.attn%d.to_q", p, d, k), c, c, 0);
            linear(l, P("%s.transformer_blocks.%d.attn%d.to_k", p, d, k), c, k == 1 ? c : ctx, 0);
            linear(l, P("%s.transformer_blocks.%d.attn%d.to_v", p, d, k), c, k == 1 ? c : ctx, 0);
            linear(l, P("%s.transformer_blocks.%d.attn%d.to_out.0", p, d, k), c, c, 1);
        }
        linear(l, P("%s.transformer_blocks.%d.ff.net.0.proj", p, d), 8 * c, c, 1);
        linear(l, P("%s.transformer_blocks.%d.ff.net.2", p, d), c, 4 * c, 1);
        for (int k = 1; k <= 3; k++) norm(l, P("%s.transformer_blocks.%d.norm%d", p, d, k), c);
    }
    if (a->linear_proj)
        linear(l, P("%s.proj_out", p), c, c, 1);
    else
        conv(l, P("%s.proj_out", p), c, c, 1);
}

static void build_unet(tlist *l, const arch *a)
{
    char pb[160], q[160];
    const char *u = "model.diffusion_model";
    int c0 = a->unet_ch[0], temb = 4 * c0, n = a->unet_levels;
    int skips[4 * MM_MAXLEV * 8], ns = 0;
    linear(l, P("%s.time_embed.0", u), temb, c0, 1);
    linear(l, P("%s.time_embed.2", u), temb, temb, 1);
    if (a->sdxl) { /* added conditioning: pooled text + 6 size/crop embeddings */
        linear(l, P("%s.label_emb.0.0", u), temb, a->text2_proj + 6 * a->add_time_dim, 1);
        linear(l, P("%s.label_emb.0.2", u), temb, temb, 1);
    }
    conv(l, P("%s.input_blocks.0.0", u), c0, a->latent_ch, 3);
    skips[ns++] = c0;
    int ch = c0, idx = 1;
    for (int L = 0; L < n; L++) {
        for (int j = 0; j < a->unet_res; j++, idx++) {
            snprintf(q, sizeof q, "%s.input_blocks.%d.0", u, idx);
            unet_resblock(l, q, ch, a->unet_ch[L], temb);
            ch = a->unet_ch[L];
            if (has_attn(a, L)) unet_transformer(l, a, P("%s.input_blocks.%d.1", u, idx), ch, a->unet_depth[L]);
            skips[ns++] = ch;
        }
        if (L != n - 1) {
            conv(l, P("%s.input_blocks.%d.0.op", u, idx++), ch, ch, 3);
            skips[ns++] = ch;
        }
    }
    unet_resblock(l, "model.diffusion_model.middle_block.0", ch, ch, temb);
    unet_transformer(l, a, "model.diffusion_model.middle_block.1", ch, mid_depth(a));
    unet_resblock(l, "model.diffusion_model.middle_block.2", ch, ch, temb);
    idx = 0;
    for (int L = n - 1; L >= 0; L--) {
        for (int j = 0; j <= a->unet_res; j++, idx++) {
            int skip = skips[--ns], sub = 1;
            snprintf(q, sizeof q, "%s.output_blocks.%d.0", u, idx);
            unet_resblock(l, q, ch + skip, a->unet_ch[L], temb);
            ch = a->unet_ch[L];
            if (has_attn(a, L)) unet_transformer(l, a, P("%s.output_blocks.%d.%d", u, idx, sub++), ch, a->unet_depth[L]);
            if (L != 0 && j == a->unet_res) conv(l, P("%s.output_blocks.%d.%d.conv", u, idx, sub), ch, ch, 3);
        }
    }
    norm(l, P("%s.out.0", u), c0);
    conv(l, P("%s.out.2", u), a->latent_ch, c0, 3);
}

static void vae_resblock(tlist *l, const char *p, int cin, int cout)
{
    char pb[160];
    norm(l, P("%s.norm1", p), cin);
    conv(l, P("%s.conv1", p), cout, cin, 3);
    norm(l, P("%s.norm2", p), cout);
    conv(l, P("%s.conv2", p), cout, cout, 3);
    if (cin != cout) conv(l, P("%s.nin_shortcut", p), cout, cin, 1);
}

static void vae_mid(tlist *l, const char *p, int c)
{
    char pb[160];
    vae_resblock(l, P("%s.mid.block_1", p), c, c);
    norm(l, P("%s.mid.attn_1.norm", p), c);
    const char *qkv[] = {"q", "k", "v", "proj_out"};
    for (int i = 0; i < 4; i++) conv(l, P("%s.mid.attn_1.%s", p, qkv[i]), c, c, 1);
    vae_resblock(l, P("%s.mid.block_2", p), c, c);
}

static void build_vae(tlist *l, const arch *a)
{
    char pb[160], q[160];
    const char *e = "first_stage_model.encoder", *d = "first_stage_model.decoder";
    int n = a->vae_levels, z = a->latent_ch, ch = a->vae_ch[0];
    conv(l, P("%s.conv_in", e), ch, 3, 3);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < a->vae_res; j++) {
            snprintf(q, sizeof q, "%s.down.%d.block.%d", e, i, j);
            vae_resblock(l, q, ch, a->vae_ch[i]);
            ch = a->vae_ch[i];
        }
        if (i != n - 1) conv(l, P("%s.down.%d.downsample.conv", e, i), ch, ch, 3);
    }
    vae_mid(l, e, ch);
    norm(l, P("%s.norm_out", e), ch);
    conv(l, P("%s.conv_out", e), 2 * z, ch, 3);
    conv(l, "first_stage_model.quant_conv", 2 * z, 2 * z, 1);
    conv(l, "first_stage_model.post_quant_conv", z, z, 1);
    ch = a->vae_ch[n - 1];
    conv(l, P("%s.conv_in", d), ch, z, 3);
    vae_mid(l, d, ch);
    for (int i = n - 1; i >= 0; i--) {
        for (int j = 0; j <= a->vae_res; j++) {
            snprintf(q, sizeof q, "%s.up.%d.block.%d", d, i, j);
            vae_resblock(l, q, ch, a->vae_ch[i]);
            ch = a->vae_ch[i];
        }
        if (i != 0) conv(l, P("%s.up.%d.upsample.conv", d, i), ch, ch, 3);
    }
    norm(l, P("%s.norm_out", d), ch);
    conv(l, P("%s.conv_out", d), 3, ch, 3);
}

/* One text tower's sizes and where its tensors go. */
typedef struct tower {
    const char *prefix;
    int width, layers, mlp, vocab, ctx;
    int proj;       /* OpenCLIP text_projection columns */
    int proj_init;  /* INIT_W (SD2: [W,W]) or INIT_W_T (SDXL: used as x @ W) */
    int logit_init; /* INIT_ONE (SD2) or INIT_LOGIT (SDXL: ln 100) */
} tower;

/* OpenCLIP text tower: q;k;v stacked in in_proj_weight, positional_embedding
 * and text_projection without ".weight", logit_scale a 0-d scalar. */
static void build_openclip(tlist *l, const tower *t)
{
    char pb[160];
    const char *p = t->prefix;
    int w = t->width, m = t->mlp;
    add(l, INIT_EMB, 2, t->vocab, w, 0, 0, "%s.token_embedding.weight", p);
    add(l, INIT_EMB, 2, t->ctx, w, 0, 0, "%s.positional_embedding", p);
    for (int i = 0; i < t->layers; i++) {
        norm(l, P("%s.transformer.resblocks.%d.ln_1", p, i), w);
        add(l, INIT_W, 2, 3 * w, w, 0, 0, "%s.transformer.resblocks.%d.attn.in_proj_weight", p, i);
        add(l, INIT_ZERO, 1, 3 * w, 0, 0, 0, "%s.transformer.resblocks.%d.attn.in_proj_bias", p, i);
        linear(l, P("%s.transformer.resblocks.%d.attn.out_proj", p, i), w, w, 1);
        norm(l, P("%s.transformer.resblocks.%d.ln_2", p, i), w);
        linear(l, P("%s.transformer.resblocks.%d.mlp.c_fc", p, i), m, w, 1);
        linear(l, P("%s.transformer.resblocks.%d.mlp.c_proj", p, i), w, m, 1);
    }
    norm(l, P("%s.ln_final", p), w);
    add(l, t->proj_init, 2, w, t->proj, 0, 0, "%s.text_projection", p);
    add(l, t->logit_init, 0, 0, 0, 0, 0, "%s.logit_scale", p);
}

/* CLIP text model in Hugging Face names under prefix (…text_model). */
static void build_clip(tlist *l, const tower *t)
{
    char pb[160];
    const char *p = t->prefix;
    int w = t->width, m = t->mlp;
    add(l, INIT_EMB, 2, t->ctx, w, 0, 0, "%s.embeddings.position_embedding.weight", p);
    add(l, INIT_POS_IDS, 2, 1, t->ctx, 0, 0, "%s.embeddings.position_ids", p);
    add(l, INIT_EMB, 2, t->vocab, w, 0, 0, "%s.embeddings.token_embedding.weight", p);
    for (int i = 0; i < t->layers; i++) {
        norm(l, P("%s.encoder.layers.%d.layer_norm1", p, i), w);
        norm(l, P("%s.encoder.layers.%d.layer_norm2", p, i), w);
        linear(l, P("%s.encoder.layers.%d.mlp.fc1", p, i), m, w, 1);
        linear(l, P("%s.encoder.layers.%d.mlp.fc2", p, i), w, m, 1);
        const char *pr[] = {"k_proj", "out_proj", "q_proj", "v_proj"};
        for (int k = 0; k < 4; k++) linear(l, P("%s.encoder.layers.%d.self_attn.%s", p, i, pr[k]), w, w, 1);
    }
    norm(l, P("%s.final_layer_norm", p), w);
}

static void build_text(tlist *l, const arch *a)
{
    tower t1 = {.width = a->text_width, .layers = a->text_layers, .mlp = a->text_mlp, .vocab = a->text_vocab,
                .ctx = a->text_ctx, .proj = a->text_width, .proj_init = INIT_W, .logit_init = INIT_ONE};
    if (a->sdxl) {
        t1.prefix = "conditioner.embedders.0.transformer.text_model";
        build_clip(l, &t1);
        tower t2 = {"conditioner.embedders.1.model", a->text2_width, a->text2_layers, a->text2_mlp, a->text_vocab,
                    a->text_ctx, a->text2_proj, INIT_W_T, INIT_LOGIT};
        build_openclip(l, &t2);
        return;
    }
    t1.prefix = a->openclip ? "cond_stage_model.model" : "cond_stage_model.transformer.text_model";
    if (a->openclip)
        build_openclip(l, &t1);
    else
        build_clip(l, &t1);
}

/* ---- random numbers: splitmix64 streams + Box-Muller ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#define MM_CHUNK 65536

/* Fill out[0..n) with element values [off, off+n) of tensor ti (off, n multiples of MM_CHUNK except the tail). */
static void fill(float *out, int64_t off, int64_t n, const mm_tensor *t, size_t ti, uint64_t seed)
{
    if (t->init == INIT_LOGIT) {
        for (int64_t i = 0; i < n; i++) out[i] = 4.6051702f; /* ln 100 */
        return;
    }
    if (t->init == INIT_ONE || t->init == INIT_ZERO || t->init == INIT_POS_IDS) {
        for (int64_t i = 0; i < n; i++) out[i] = t->init == INIT_ONE ? 1.0f : t->init == INIT_ZERO ? 0.0f : (float)(off + i);
        return;
    }
    double std = 0.02;
    if (t->init == INIT_W || t->init == INIT_W_T) {
        int64_t fan_in = t->init == INIT_W_T ? t->shape[0] : t->ndim >= 2 ? t->numel / t->shape[0] : 1;
        std = 1.0 / sqrt((double)(fan_in > 0 ? fan_in : 1));
    }
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < (n + MM_CHUNK - 1) / MM_CHUNK; c++) {
        uint64_t s = seed * 0x2545f4914f6cdd1dull ^ ((uint64_t)ti << 40) ^ (uint64_t)((off / MM_CHUNK) + c);
        splitmix(&s);
        int64_t b = c * MM_CHUNK, e = b + MM_CHUNK < n ? b + MM_CHUNK : n;
        for (int64_t i = b; i < e; i += 2) {
            double u1 = ((splitmix(&s) >> 11) + 0.5) * 0x1p-53, u2 = (splitmix(&s) >> 11) * 0x1p-53;
            double r = sqrt(-2.0 * log(u1)) * std, th = 6.283185307179586 * u2;
            out[i] = (float)(r * cos(th));
            if (i + 1 < e) out[i + 1] = (float)(r * sin(th));
        }
    }
}

static uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, e = (x >> 23) & 0xff, m = x & 0x7fffff;
    if (e == 0xff) return (uint16_t)(sign | 0x7c00 | (m ? 0x200 : 0));
    int32_t he = (int32_t)e - 127 + 15;
    if (he >= 31) return (uint16_t)(sign | 0x7c00);
    if (he <= 0) {
        if (he < -10) return (uint16_t)sign;
        m |= 0x800000;
        int sh = 14 - he;
        uint32_t hm = m >> sh, rem = m & ((1u << sh) - 1), half = 1u << (sh - 1);
        if (rem > half || (rem == half && (hm & 1))) hm++;
        return (uint16_t)(sign | hm);
    }
    uint32_t hm = m >> 13, rem = m & 0x1fff;
    uint32_t h = sign | ((uint32_t)he << 10) | hm;
    if (rem > 0x1000 || (rem == 0x1000 && (hm & 1))) h++;
    return (uint16_t)h;
}

static void to_half(uint16_t *dst, const float *src, int64_t n)
{
    int64_t i = 0;
#ifdef __F16C__
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++) dst[i] = float_to_half(src[i]);
}

/* Round to nearest even bfloat16 (NaN stays NaN). */
static void to_bf16(uint16_t *dst, const float *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t x;
        memcpy(&x, &src[i], 4);
        if ((x & 0x7fffffff) > 0x7f800000)
            dst[i] = (uint16_t)((x >> 16) | 0x40);
        else
            dst[i] = (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
    }
}

/* ---- writing ---- */

/* The float tensors' dtype: "F16", "BF16" or "F32". */
static const char *dtype_of(const mm_tensor *t, const char *fdt) { return t->init == INIT_POS_IDS ? "I64" : fdt; }

/* Print the list the writer writes: one "name dtype [shape]" line per
 * tensor, then "# N tensors, P parameters, D data bytes". */
static void print_list(FILE *o, const tlist *l, const char *fdt)
{
    int64_t params = 0, bytes = 0;
    for (size_t i = 0; i < l->n; i++) {
        const mm_tensor *t = &l->t[i];
        fprintf(o, "%s %s [", t->name, dtype_of(t, fdt));
        for (int d = 0; d < t->ndim; d++) fprintf(o, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        fprintf(o, "]\n");
        if (t->init != INIT_POS_IDS) params += t->numel;
        bytes += t->numel * (int64_t)stw_elem_size(dtype_of(t, fdt));
    }
    fprintf(o, "# %zu tensors, %lld parameters, %lld data bytes\n", l->n, (long long)params, (long long)bytes);
}

/* The file's header through the shared writer; *params counts the float
 * tensors' elements. */
static FILE *begin_file(const char *path, const tlist *l, const char *fdt, int64_t *params, sd_err *err)
{
    stw_tensor *d = malloc((l->n ? l->n : 1) * sizeof *d);
    if (!d) {
        sd_errf(err, SD_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    *params = 0;
    for (size_t i = 0; i < l->n; i++) {
        const mm_tensor *t = &l->t[i];
        d[i] = (stw_tensor){.name = t->name, .dtype = dtype_of(t, fdt), .ndim = t->ndim};
        memcpy(d[i].shape, t->shape, sizeof d[i].shape);
        if (t->init != INIT_POS_IDS) *params += t->numel;
    }
    FILE *f = stw_begin(path, d, l->n, err);
    free(d);
    return f;
}

static int write_safetensors(const char *path, const tlist *l, const char *fdt, uint64_t seed, int64_t *params)
{
    sd_err err;
    sd_err_clear(&err);
    FILE *f = begin_file(path, l, fdt, params, &err);
    const int64_t BUF = 64 * MM_CHUNK;
    float *buf = malloc(BUF * sizeof(float));
    void *obuf = malloc(BUF * 8);
    int ok = f && buf && obuf;
    for (size_t i = 0; ok && i < l->n; i++) {
        const mm_tensor *t = &l->t[i];
        for (int64_t o = 0; ok && o < t->numel; o += BUF) {
            int64_t n = t->numel - o < BUF ? t->numel - o : BUF;
            fill(buf, o, n, t, i, seed);
            size_t es = stw_elem_size(dtype_of(t, fdt));
            if (t->init == INIT_POS_IDS)
                for (int64_t k = 0; k < n; k++) ((int64_t *)obuf)[k] = (int64_t)buf[k];
            else if (!strcmp(fdt, "F16"))
                to_half(obuf, buf, n);
            else if (!strcmp(fdt, "BF16"))
                to_bf16(obuf, buf, n);
            else
                memcpy(obuf, buf, (size_t)n * 4);
            ok = fwrite(obuf, es, (size_t)n, f) == (size_t)n;
        }
    }
    free(buf);
    free(obuf);
    if (f && stw_end(f, path, &err) != 0) ok = 0;
    if (!ok && err.code == SD_OK) sd_errf(&err, SD_ENOMEM, NULL, "%s: out of memory", path);
    if (!ok) fprintf(stderr, "make-model: %s\n", err.msg);
    return ok ? 0 : -1;
}

/* GPT-2 byte-to-unicode order: printable Latin-1 bytes keep their code
 * point, the other 68 bytes map to 256, 257, ... in byte order. */
static void bytes_to_unicode(int byte_of[256], int cp_of[256])
{
    int n = 0, k = 0, taken[256] = {0};
    for (int b = 0; b < 256; b++)
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
            byte_of[k] = b;
            cp_of[k++] = b;
            taken[b] = 1;
        }
    for (int b = 0; b < 256; b++)
        if (!taken[b]) {
            byte_of[k] = b;
            cp_of[k++] = 256 + n++;
        }
}

static int utf8(char *o, int cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    o[0] = (char)(0xc0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

static int write_tokenizer(const char *dir)
{
    int byte_of[256], cp[256];
    bytes_to_unicode(byte_of, cp);
    json_t *v = json_object();
    char s[16];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 256; i++) {
            int n = utf8(s, cp[i]);
            strcpy(s + n, pass ? "</w>" : "");
            json_object_set_new(v, s, json_integer(pass * 256 + i));
        }
    json_object_set_new(v, "<|startoftext|>", json_integer(512));
    json_object_set_new(v, "<|endoftext|>", json_integer(513));
    char p[4096];
    snprintf(p, sizeof p, "%s/tokenizer", dir);
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
        json_decref(v);
        return -1;
    }
    snprintf(p, sizeof p, "%s/tokenizer/vocab.json", dir);
    int rc = json_dump_file(v, p, JSON_PRESERVE_ORDER);
    json_decref(v);
    snprintf(p, sizeof p, "%s/tokenizer/merges.txt", dir);
    FILE *f = fopen(p, "w");
    if (!f || fputs("#version: 0.2\n", f) < 0) rc = -1;
    if (f && fclose(f) != 0) rc = -1;
    return rc;
}

static json_t *int_list(const int *v, int n, int div)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i] / div));
    return a;
}

/* transformer_depth: one integer when every attention level has the same
 * depth (SD1/SD2 configs), else the per-level list with 0 where a level has
 * no attention (sgm's SDXL configs). */
static json_t *depth_json(const arch *a, int as_list)
{
    int d[MM_MAXLEV], same = 1, first = 0;
    for (int L = 0; L < a->unet_levels; L++) {
        d[L] = has_attn(a, L) ? a->unet_depth[L] : 0;
        if (d[L] && !first) first = d[L];
        if (d[L] && d[L] != first) same = 0;
    }
    return as_list || !same ? int_list(d, a->unet_levels, 1) : json_integer(first ? first : 1);
}

/* channel_mult: block channels / model channels (NULL when they do not divide). */
static json_t *channel_mult(const arch *a)
{
    for (int L = 0; L < a->unet_levels; L++)
        if (a->unet_ch[L] % a->unet_ch[0]) return NULL;
    return int_list(a->unet_ch, a->unet_levels, a->unet_ch[0]);
}

static json_t *attn_resolutions(const arch *a)
{
    int r[MM_MAXLEV], n = 0;
    for (int L = 0; L < a->unet_levels; L++)
        if (has_attn(a, L)) r[n++] = 1 << L;
    return int_list(r, n, 1);
}

static void set_heads(json_t *unet, const arch *a)
{
    json_object_set_new(unet, a->unet_heads > 0 ? "num_heads" : "num_head_channels",
                        json_integer(a->unet_heads > 0 ? a->unet_heads : a->unet_head_ch));
}

static json_t *vae_json(const arch *a)
{
    return json_pack("{s:i, s:b, s:i, s:i, s:i, s:i, s:o, s:i, s:[]}", "embed_dim", a->latent_ch, "double_z", 1,
                     "z_channels", a->latent_ch, "in_channels", 3, "out_ch", 3, "ch", a->vae_ch[0], "ch_mult",
                     int_list(a->vae_ch, a->vae_levels, a->vae_ch[0]), "num_res_blocks", a->vae_res, "attn_resolutions");
}

static int dump_config(const char *path, json_t *root)
{
    int rc = root ? json_dump_file(root, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : -1;
    json_decref(root);
    return rc;
}

/* SDXL: the format of reference/models/tiny-sdxl-s.ldm_config.json (sgm's
 * network_config, the conditioner list, first_stage_config, scale_factor):
 * heads, the towers' heads and the added-time width are what the tensors
 * cannot show. */
static int write_config_sdxl(const char *path, const arch *a)
{
    json_t *mult = channel_mult(a);
    json_t *net = json_pack("{s:i, s:s, s:b, s:i, s:i, s:i, s:o, s:i}", "adm_in_channels",
                            a->text2_proj + 6 * a->add_time_dim, "num_classes", "sequential", "use_checkpoint", 0,
                            "in_channels", a->latent_ch, "out_channels", a->latent_ch, "model_channels", a->unet_ch[0],
                            "attention_resolutions", attn_resolutions(a), "num_res_blocks", a->unet_res);
    if (mult) json_object_set_new(net, "channel_mult", mult);
    json_object_set_new(net, "block_out_channels", int_list(a->unet_ch, a->unet_levels, 1));
    set_heads(net, a);
    json_object_set_new(net, "use_linear_in_transformer", json_boolean(a->linear_proj));
    json_object_set_new(net, "transformer_depth", depth_json(a, 1));
    json_object_set_new(net, "transformer_depth_middle", json_integer(mid_depth(a)));
    json_object_set_new(net, "context_dim", json_integer(context_dim(a)));
    json_object_set_new(net, "spatial_transformer_attn_type", json_string("softmax"));
    json_t *cond = json_pack(
        "[{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:i}, {s:s, s:s, s:b, s:b, s:i, s:i, s:i, s:i, s:s, s:i, s:i}]",
        "target", "FrozenCLIPEmbedder (HF CLIPTextModel)", "layer", "hidden", "layer_idx", a->text_layers - 1,
        "width", a->text_width, "layers", a->text_layers, "heads", a->text_heads, "mlp", a->text_mlp, "act",
        "quick_gelu", "pad_id", a->pad_id, "target", "FrozenOpenCLIPEmbedder2 (open_clip text tower)", "layer",
        "penultimate", "always_return_pooled", 1, "legacy", 0, "width", a->text2_width, "layers", a->text2_layers,
        "heads", a->text2_heads, "mlp", a->text2_mlp, "act", "gelu (erf)", "proj_dim", a->text2_proj, "pad_id", 0);
    const char *keys[] = {"original_size_as_tuple", "crop_coords_top_left", "target_size_as_tuple"};
    for (int i = 0; cond && i < 3; i++)
        json_array_append_new(cond, json_pack("{s:s, s:i, s:s}", "target", "ConcatTimestepEmbedderND", "outdim",
                                              a->add_time_dim, "input_key", keys[i]));
    return dump_config(path, json_pack("{s:o, s:o, s:o, s:f, s:s}", "network_config", net, "conditioner", cond,
                                       "first_stage_config", vae_json(a), "scale_factor", a->scale_factor,
                                       "parameterization", a->prediction));
}

static int write_config(const char *path, const arch *a)
{
    if (a->sdxl) return write_config_sdxl(path, a);
    json_t *unet = json_pack("{s:i, s:i, s:i, s:o, s:i, s:o, s:o, s:b, s:o, s:i, s:b, s:b}", "in_channels", a->latent_ch,
                             "out_channels", a->latent_ch, "model_channels", a->unet_ch[0], "attention_resolutions",
                             attn_resolutions(a), "num_res_blocks", a->unet_res, "channel_mult",
                             int_list(a->unet_ch, a->unet_levels, a->unet_ch[0]), "block_out_channels",
                             int_list(a->unet_ch, a->unet_levels, 1), "use_spatial_transformer", 1,
                             "transformer_depth", depth_json(a, 0), "context_dim", context_dim(a),
                             "use_linear_in_transformer", a->linear_proj, "legacy", 0);
    set_heads(unet, a);
    json_t *vae = vae_json(a);
    json_object_set_new(vae, "scale_factor", json_real(0.18215));
    json_t *text = json_pack(
        "{s:s, s:i, s:i, s:i, s:s, s:i, s:s, s:i, s:i}", "kind",
        a->openclip ? "FrozenOpenCLIPEmbedder-like (open_clip text tower), layer='penultimate'"
                    : "FrozenCLIPEmbedder-like (HF CLIPTextModel)",
        "width", a->text_width, "layers", a->text_layers, "heads", a->text_heads, "act",
        a->openclip ? "gelu (erf)" : "quick_gelu", "mlp", a->text_mlp, "output",
        a->openclip ? "output of the penultimate resblock then ln_final" : "last_hidden_state (after final_layer_norm)",
        "pad_id", a->pad_id, "vocab_size", a->text_vocab);
    return dump_config(path, json_pack("{s:o, s:o, s:o, s:s}", "unet", unet, "vae", vae, "text", text,
                                       "parameterization", a->prediction));
}

/* ---- TAESD (--preset taesd) ---- */

/* diffusers AutoencoderTiny single-file names (encoder.layers.N /
 * decoder.layers.N), taesd's shapes: 64 channels, encoder blocks 1,3,3,3
 * with stride-2 convs without bias between, decoder conv + ReLU, blocks
 * 3,3,3,1 with upsampling + conv without bias between, conv to RGB. */
static void taesd_block(tlist *l, const char *half, int n, int c)
{
    for (int k = 0; k <= 4; k += 2) {
        add(l, INIT_W, 4, c, c, 3, 3, "%s.layers.%d.conv.%d.weight", half, n, k);
        add(l, INIT_ZERO, 1, c, 0, 0, 0, "%s.layers.%d.conv.%d.bias", half, n, k);
    }
}

static void build_taesd(tlist *l, const arch *a)
{
    char pb[160];
    const int c = 64, enc[4] = {1, 3, 3, 3}, dec[4] = {3, 3, 3, 1};
    int n = 0;
    conv(l, P("encoder.layers.%d", n++), c, 3, 3);
    for (int i = 0; i < 4; i++) {
        if (i) add(l, INIT_W, 4, c, c, 3, 3, "encoder.layers.%d.weight", n++);
        for (int j = 0; j < enc[i]; j++) taesd_block(l, "encoder", n++, c);
    }
    conv(l, P("encoder.layers.%d", n++), a->latent_ch, c, 3);
    n = 0;
    conv(l, P("decoder.layers.%d", n++), c, a->latent_ch, 3);
    n++;   /* ReLU */
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < dec[i]; j++) taesd_block(l, "decoder", n++, c);
        if (i < 3) add(l, INIT_W, 4, c, c, 3, 3, "decoder.layers.%d.weight", ++n), n++;   /* after the upsampling */
    }
    conv(l, P("decoder.layers.%d", n), 3, c, 3);
}

static int make_taesd(const char *out, int list, const char *fdt, uint64_t seed, const arch *a, int quiet)
{
    tlist l = {0};
    build_taesd(&l, a);
    int64_t params = 0;
    int rc = l.oom ? -1 : 0;
    if (l.oom) fprintf(stderr, "make-model: out of memory\n");
    else if (list) print_list(stdout, &l, fdt);
    else rc = write_safetensors(out, &l, fdt, seed, &params);
    if (!rc && !list && !quiet)
        printf("wrote %s: a random TAESD (%zu tensors, %.2f M parameters, %s, seed %llu)\n", out, l.n, params / 1e6,
               fdt, (unsigned long long)seed);
    free(l.t);
    return rc ? 1 : 0;
}

/* -o's place, before any tensor is made (minutes with sdxl): a path, not
 * empty; a folder where the preset writes one (demo, --folder), a file
 * where it writes a file; in a folder that exists.  An existing output is
 * replaced (the folder's model files; others in it are left), as
 * generate -o replaces its file.  -1 after a message naming the flag as
 * typed (exit 2, as generate's -o checks). */
static int check_output(const char *flag, const char *out, int folder, const char *preset)
{
    struct stat st;
    size_t n = strlen(out);
    if (!n) {
        fprintf(stderr, "make-model: %s needs a path; got an empty one\n", flag);
        return -1;
    }
    int is_dir = !stat(out, &st) ? S_ISDIR(st.st_mode) : out[n - 1] == '/' ? 1 : -1;   /* -1: not there */
    if (folder && is_dir == 0) {
        fprintf(stderr, "make-model: %s %s is a file, but --preset %s writes a folder; give a new path (or --file for "
                "a bare file)\n", flag, out, preset);
        return -1;
    }
    if (!folder && is_dir == 1) {
        fprintf(stderr, "make-model: %s %s is a folder, but --preset %s writes a file; give a file name, e.g. "
                "%s%smodel.safetensors\n", flag, out, preset, out, out[n - 1] == '/' ? "" : "/");
        return -1;
    }
    if (is_dir >= 0) return 0;
    char dir[4096];
    const char *slash = strrchr(out, '/');
    if (!slash) return 0;   /* in the current folder */
    snprintf(dir, sizeof dir, "%.*s", slash == out ? 1 : (int)(slash - out), out);
    if (stat(dir, &st)) {
        fprintf(stderr, "make-model: %s %s: the folder %s %s; create it first or write elsewhere\n", flag, out, dir,
                errno == ENOENT ? "does not exist" : strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "make-model: %s %s: %s is not a folder\n", flag, out, dir);
        return -1;
    }
    return 0;
}

/* ---- presets and flags ---- */

static void preset_demo(arch *a)
{
    memset(a, 0, sizeof *a);
    a->unet_levels = 2;
    a->unet_ch[0] = 32, a->unet_ch[1] = 64;
    a->unet_res = 2;
    a->unet_attn[0] = 1;
    for (int L = 0; L < MM_MAXLEV; L++) a->unet_depth[L] = 1;
    a->unet_heads = 4;
    a->latent_ch = 4;
    a->vae_levels = 4;
    a->vae_ch[0] = 32, a->vae_ch[1] = 64, a->vae_ch[2] = 64, a->vae_ch[3] = 64;
    a->vae_res = 2;
    a->text_width = 64, a->text_layers = 2, a->text_heads = 4, a->text_mlp = 256;
    a->text_vocab = 514, a->text_ctx = 77, a->pad_id = 513;
    a->prediction = "eps";
}

static void preset_sd15(arch *a)
{
    memset(a, 0, sizeof *a);
    a->unet_levels = 4;
    int u[] = {320, 640, 1280, 1280}, v[] = {128, 256, 512, 512};
    memcpy(a->unet_ch, u, sizeof u);
    memcpy(a->vae_ch, v, sizeof v);
    a->unet_res = 2;
    a->unet_attn[0] = a->unet_attn[1] = a->unet_attn[2] = 1;
    for (int L = 0; L < MM_MAXLEV; L++) a->unet_depth[L] = 1;
    a->unet_heads = 8;
    a->latent_ch = 4;
    a->vae_levels = 4;
    a->vae_res = 2;
    a->text_width = 768, a->text_layers = 12, a->text_heads = 12, a->text_mlp = 3072;
    a->text_vocab = 49408, a->text_ctx = 77, a->pad_id = 49407;
    a->prediction = "eps";
}

/* SDXL 1.0 base: UNet 320/640/1280, no attention at level 0, depth 2 and 10,
 * 64-channel heads, Linear proj, added conditioning 1280 + 6 x 256; CLIP-L
 * and OpenCLIP-bigG (1280 wide, 32 layers, projection 1280); SD1's VAE. */
static void preset_sdxl(arch *a)
{
    preset_sd15(a);
    a->unet_levels = 3;
    int u[] = {320, 640, 1280}, d[] = {0, 2, 10};
    memcpy(a->unet_ch, u, sizeof u);
    memcpy(a->unet_depth, d, sizeof d);
    a->unet_attn[0] = a->unet_attn[1] = a->unet_attn[2] = 1;
    a->unet_heads = 0, a->unet_head_ch = 64;
    a->linear_proj = 1;
    a->sdxl = 1;
    a->text2_width = 1280, a->text2_layers = 32, a->text2_heads = 20, a->text2_mlp = 5120, a->text2_proj = 1280;
    a->add_time_dim = 256;
    a->scale_factor = 0.13025;
}

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 100000 || n == max) return -1;
        out[n++] = (int)v;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return n;
}

/* Integer size flags: where they go in `arch` and their range. */
static const struct int_flag_t {
    const char *flag;
    size_t off;
    int lo, hi;
} int_flags[] = {
    {"--unet-res-blocks", offsetof(arch, unet_res), 1, 8},
    {"--unet-heads", offsetof(arch, unet_heads), 1, 1024},
    {"--unet-head-channels", offsetof(arch, unet_head_ch), 1, 4096},
    {"--unet-depth-mid", offsetof(arch, unet_depth_mid), 1, 64},
    {"--context-dim", offsetof(arch, context), 1, 16384},
    {"--vae-res-blocks", offsetof(arch, vae_res), 1, 8},
    {"--text-width", offsetof(arch, text_width), 1, 16384},
    {"--text-layers", offsetof(arch, text_layers), 1, 128},
    {"--text-heads", offsetof(arch, text_heads), 1, 1024},
    {"--text-mlp", offsetof(arch, text_mlp), 1, 65536},
    {"--text-vocab", offsetof(arch, text_vocab), 1, 1000000},
    {"--text2-width", offsetof(arch, text2_width), 1, 16384},
    {"--text2-layers", offsetof(arch, text2_layers), 1, 128},
    {"--text2-heads", offsetof(arch, text2_heads), 1, 1024},
    {"--text2-mlp", offsetof(arch, text2_mlp), 1, 65536},
    {"--text2-proj", offsetof(arch, text2_proj), 1, 16384},
    {"--add-time-dim", offsetof(arch, add_time_dim), 2, 4096},
    {"--latent-channels", offsetof(arch, latent_ch), 1, 64},
};

static const struct int_flag_t *int_flag(const char *o)
{
    for (size_t i = 0; i < sizeof int_flags / sizeof int_flags[0]; i++)
        if (!strcmp(o, int_flags[i].flag)) return &int_flags[i];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sdserve make-model --preset demo|sd15|sdxl|taesd -o PATH [options]\n"
            "Writes a random-weight checkpoint in the original single-file (LDM) naming.\n"
            "  --preset demo          small model (seconds on a CPU), PATH is a folder: model.safetensors,\n"
            "                         model.ldm_config.json, tokenizer/ (byte-level, 514 ids)\n"
            "  --preset sd15          Stable Diffusion 1.5 shapes (1131 tensors, ~2 GB as f16), PATH is a file\n"
            "  --preset sdxl          SDXL 1.0 base shapes and naming (2515 tensors, 6.9 GB as f16), PATH is a file\n"
            "  --preset taesd         a TAESD (taesd's shapes, diffusers AutoencoderTiny names), PATH is a file:\n"
            "                         a --preview-decoder for benches\n"
            "  -o, --output PATH      where to write; an existing file is replaced (a folder: its model\n"
            "                         files), as generate -o does\n"
            "  --list                 print the tensor list (name dtype [shape]) instead of writing\n"
            "  --dtype f16|bf16|f32   tensor dtype (default f16)\n"
            "  --seed N               random seed (default 1)\n"
            "  --unet-channels LIST   e.g. 32,64,64 (one per level; multiples of 32)\n"
            "  --unet-res-blocks N    ResBlocks per level on the way down (up: N+1)\n"
            "  --unet-attn LIST       levels with attention, e.g. 0,1 (\"\" = none; mid block always has one)\n"
            "  --unet-heads N | --unet-head-channels N   attention heads (written to the config only)\n"
            "  --unet-depth N|LIST    transformer blocks per attention, or one per level (0 = no attention)\n"
            "  --unet-depth-mid N     the middle block's (default: the last level's)\n"
            "  --context-dim N        cross-attention width (default: text width)\n"
            "  --linear-proj          SD2-style Linear proj_in/proj_out\n"
            "  --vae-channels LIST    e.g. 32,64,64,64 (levels - 1 = log2 of the VAE down-scaling)\n"
            "  --vae-res-blocks N\n"
            "  --text-width N  --text-layers N  --text-heads N  --text-mlp N  --text-vocab N\n"
            "  --openclip             SD2 text tower naming (cond_stage_model.model.*, gelu, pad 0)\n"
            "  --text2-width N  --text2-layers N  --text2-heads N  --text2-mlp N  --text2-proj N\n"
            "                         sdxl: the second (OpenCLIP) tower; context = text width + text2 width\n"
            "  --add-time-dim N       sdxl: width of each size/crop embedding (label_emb input: proj + 6 N)\n"
            "  --prediction eps|v     parameterization written to the config\n"
            "  --latent-channels N    latent channels (default 4)\n"
            "  --file | --folder      force a bare file / a folder (default: folder for demo)\n"
            "  -q, --quiet\n");
}

int cli_make_model(int argc, char **argv)
{
    arch a;
    preset_demo(&a);
    const char *out = NULL, *out_flag = "-o", *preset = NULL;
    const char *fdt = "F16";
    int quiet = 0, folder = -1, text_vocab_set = 0, list = 0, ndepth = 0, attn_max = -1;
    uint64_t seed = 1;
    /* The preset first, so that size flags override it wherever they appear. */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--preset")) preset = argv[i + 1];
    if (preset && !strcmp(preset, "sd15")) {
        preset_sd15(&a);
    } else if (preset && !strcmp(preset, "sdxl")) {
        preset_sdxl(&a);
    } else if (preset && strcmp(preset, "demo") && strcmp(preset, "taesd")) {
        fprintf(stderr, "make-model: unknown preset '%s' (demo, sd15, sdxl, taesd)\n", preset);
        return 2;
    }
    if (!preset) preset = "demo";
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const struct int_flag_t *fl;
        int n;
#define NEEDV                                                                 \
    do {                                                                      \
        if (!v) {                                                             \
            fprintf(stderr, "make-model: %s needs a value\n", o);             \
            return 2;                                                         \
        }                                                                     \
        i++;                                                                  \
    } while (0)
#define INTV(dst, lo, hi)                                                                   \
    do {                                                                                    \
        NEEDV;                                                                              \
        char *e_;                                                                           \
        long x_ = strtol(v, &e_, 10);                                                       \
        if (*e_ || e_ == v || x_ < (lo) || x_ > (hi)) {                                     \
            fprintf(stderr, "make-model: %s must be an integer in [%d, %d]\n", o, lo, hi); \
            return 2;                                                                       \
        }                                                                                   \
        dst = (int)x_;                                                                      \
    } while (0)
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(o, "--preset")) {
            NEEDV;
        } else if (!strcmp(o, "-o") || !strcmp(o, "--output")) {
            NEEDV;
            out = v;
            out_flag = o;
        } else if (!strcmp(o, "--dtype")) {
            NEEDV;
            if (strcmp(v, "f16") && strcmp(v, "bf16") && strcmp(v, "f32")) {
                fprintf(stderr, "make-model: --dtype must be f16, bf16 or f32\n");
                return 2;
            }
            fdt = !strcmp(v, "f16") ? "F16" : !strcmp(v, "bf16") ? "BF16" : "F32";
        } else if (!strcmp(o, "--list")) {
            list = 1;
        } else if (!strcmp(o, "--unet-depth")) {
            NEEDV;
            if ((ndepth = parse_list(v, a.unet_depth, MM_MAXLEV)) < 1 || (ndepth == 1 && a.unet_depth[0] < 1)) {
                fprintf(stderr, "make-model: --unet-depth wants N >= 1 or one depth per level, e.g. 0,2,10\n");
                return 2;
            }
            for (int L = ndepth; ndepth == 1 && L < MM_MAXLEV; L++) a.unet_depth[L] = a.unet_depth[0];
        } else if (!strcmp(o, "--seed")) {
            NEEDV;
            char *end;
            errno = 0;
            seed = strtoull(v, &end, 10);
            if (end == v || *end || *v == '-' || errno == ERANGE) {
                fprintf(stderr, "make-model: --seed must be a whole number from 0 to %llu, got '%s'\n",
                        (unsigned long long)UINT64_MAX, v);
                return 2;
            }
        } else if (!strcmp(o, "--unet-channels") || !strcmp(o, "--vae-channels")) {
            NEEDV;
            int *dst = o[2] == 'u' ? a.unet_ch : a.vae_ch;
            if ((n = parse_list(v, dst, MM_MAXLEV)) < 1) {
                fprintf(stderr, "make-model: %s wants 1..%d comma-separated channel counts\n", o, MM_MAXLEV);
                return 2;
            }
            for (int L = 0; L < n; L++)   /* 0 would divide by zero in the checks below */
                if (dst[L] < 32) {
                    fprintf(stderr, "make-model: %s: each level needs at least 32 channels, got %d\n", o, dst[L]);
                    return 2;
                }
            if (o[2] == 'u') {
                a.unet_levels = n;
            } else {
                a.vae_levels = n;
            }
        } else if (!strcmp(o, "--unet-attn")) {
            NEEDV;
            int lv[MM_MAXLEV];
            if ((n = parse_list(v, lv, MM_MAXLEV)) < 0) {
                fprintf(stderr, "make-model: --unet-attn wants a list of levels, e.g. 0,1\n");
                return 2;
            }
            memset(a.unet_attn, 0, sizeof a.unet_attn);
            attn_max = -1;
            for (int k = 0; k < n; k++) {
                if (lv[k] >= MM_MAXLEV) {
                    fprintf(stderr, "make-model: --unet-attn: level %d is past the last level a UNet has here (%d)\n",
                            lv[k], MM_MAXLEV - 1);
                    return 2;
                }
                a.unet_attn[lv[k]] = 1;
                if (lv[k] > attn_max) attn_max = lv[k];
            }
        } else if ((fl = int_flag(o))) {
            INTV(*(int *)((char *)&a + fl->off), fl->lo, fl->hi);
            if (!strcmp(o, "--unet-heads")) a.unet_head_ch = 0;
            if (!strcmp(o, "--unet-head-channels")) a.unet_heads = 0;
            if (!strcmp(o, "--text-vocab")) text_vocab_set = 1;
        } else if (!strcmp(o, "--linear-proj")) {
            a.linear_proj = 1;
        } else if (!strcmp(o, "--openclip")) {
            a.openclip = 1;
        } else if (!strcmp(o, "--prediction")) {
            NEEDV;
            if (strcmp(v, "eps") && strcmp(v, "v")) {
                fprintf(stderr, "make-model: --prediction must be eps or v\n");
                return 2;
            }
            a.prediction = !strcmp(v, "v") ? "v" : "eps";
        } else if (!strcmp(o, "--file")) {
            folder = 0;
        } else if (!strcmp(o, "--folder")) {
            folder = 1;
        } else if (!strcmp(o, "-q") || !strcmp(o, "--quiet")) {
            quiet = 1;
        } else {
            fprintf(stderr, "make-model: unknown option '%s'\n", o);
            usage(stderr);
            return 2;
        }
    }
    if (!out && !list) {
        fprintf(stderr, "make-model: -o PATH is required\n");
        usage(stderr);
        return 2;
    }
    if (folder < 0) folder = !strcmp(preset, "demo");
    if (!strcmp(preset, "taesd")) folder = 0;   /* always a file */
    if (!list && check_output(out_flag, out, folder, preset)) return 2;
    if (!strcmp(preset, "taesd")) return make_taesd(out, list, fdt, seed, &a, quiet);
    if (a.openclip && !strcmp(preset, "demo")) a.pad_id = 0;
    /* sdxl's config carries block_out_channels, so its levels need not be multiples of the first */
    for (int L = 0; L < a.unet_levels; L++)
        if (a.unet_ch[L] % 32 || (!a.sdxl && a.unet_ch[L] % a.unet_ch[0])) {
            fprintf(stderr, "make-model: UNet channels must be multiples of 32 and of the first level's (%d)\n", a.unet_ch[L]);
            return 2;
        }
    for (int L = 0; L < a.vae_levels; L++)
        if (a.vae_ch[L] % 32 || a.vae_ch[L] % a.vae_ch[0]) {
            fprintf(stderr, "make-model: VAE channels must be multiples of 32 and of the first level's (%d)\n", a.vae_ch[L]);
            return 2;
        }
    int heads = a.unet_heads;
    for (int L = 0; L < a.unet_levels; L++)
        if (heads > 0 && a.unet_ch[L] % heads) {
            fprintf(stderr, "make-model: UNet channels (%d) must be divisible by --unet-heads %d\n", a.unet_ch[L], heads);
            return 2;
        } else if (a.unet_head_ch > 0 && a.unet_ch[L] % a.unet_head_ch) {
            fprintf(stderr, "make-model: UNet channels (%d) must be divisible by --unet-head-channels %d\n", a.unet_ch[L],
                    a.unet_head_ch);
            return 2;
        }
    if (a.text_width % a.text_heads) {
        fprintf(stderr, "make-model: --text-width %d must be divisible by --text-heads %d\n", a.text_width, a.text_heads);
        return 2;
    }
    if (attn_max >= a.unet_levels) {
        fprintf(stderr, "make-model: --unet-attn names level %d but the UNet has %d level%s (0..%d)\n", attn_max,
                a.unet_levels, a.unet_levels == 1 ? "" : "s", a.unet_levels - 1);
        return 2;
    }
    if (ndepth > 1 && ndepth != a.unet_levels) {
        fprintf(stderr, "make-model: --unet-depth lists %d depths for %d UNet levels\n", ndepth, a.unet_levels);
        return 2;
    }
    if (a.sdxl && a.text2_width % a.text2_heads) {
        fprintf(stderr, "make-model: --text2-width %d must be divisible by --text2-heads %d\n", a.text2_width,
                a.text2_heads);
        return 2;
    }
    if (a.sdxl && a.add_time_dim % 2) {
        fprintf(stderr, "make-model: --add-time-dim %d must be even (cos and sin halves)\n", a.add_time_dim);
        return 2;
    }
    if (folder && a.text_vocab != 514 && !text_vocab_set) a.text_vocab = 514;
    if (folder && a.text_vocab != 514)
        fprintf(stderr, "make-model: note: the folder's byte-level tokenizer has 514 ids but the text vocabulary has %d rows\n",
                a.text_vocab);

    tlist l = {0};
    build_unet(&l, &a);
    build_vae(&l, &a);
    build_text(&l, &a);
    if (l.oom) {
        fprintf(stderr, "make-model: out of memory\n");
        free(l.t);
        return 1;
    }
    if (list) {
        print_list(stdout, &l, fdt);
        free(l.t);
        return 0;
    }

    char file[4096], cfg[4096];
    if (folder) {
        if (mkdir(out, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "make-model: cannot create folder %s: %s\n", out, strerror(errno));
            free(l.t);
            return 1;
        }
        snprintf(file, sizeof file, "%s/model.safetensors", out);
        snprintf(cfg, sizeof cfg, "%s/model.ldm_config.json", out);
    } else {
        snprintf(file, sizeof file, "%s", out);
        size_t n = strlen(out);
        if (n > 12 && !strcmp(out + n - 12, ".safetensors")) n -= 12;
        snprintf(cfg, sizeof cfg, "%.*s.ldm_config.json", (int)n, out);
    }
    int64_t params = 0;
    int rc = write_safetensors(file, &l, fdt, seed, &params);
    if (!rc && write_config(cfg, &a)) {
        fprintf(stderr, "make-model: cannot write %s\n", cfg);
        rc = -1;
    }
    if (!rc && folder && write_tokenizer(out)) {
        fprintf(stderr, "make-model: cannot write %s/tokenizer/\n", out);
        rc = -1;
    }
    if (!rc && !quiet) {
        printf("wrote %s: %zu tensors, %.1f M parameters (%s, seed %llu)\n", file, l.n, params / 1e6, fdt,
               (unsigned long long)seed);
        printf("wrote %s (heads, parameterization: what the tensors cannot tell)\n", cfg);
        if (folder) printf("wrote %s/tokenizer/vocab.json and merges.txt (byte-level, 514 ids, no merges)\n", out);
        printf("random weights: the images are noise, but every stage runs.\n");
        printf("serve it:     sdserve serve --model %s\n", out);
        printf("or generate:  sdserve generate --model %s --prompt \"a red bicycle\" -o out.png\n", out);
    }
    free(l.t);
    return rc ? 1 : 0;
}
