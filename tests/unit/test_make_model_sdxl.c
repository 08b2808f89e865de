/* test_make_model_sdxl.c — `sdserve make-model --preset sdxl`: its tensor
 * list (--list, the list the writer writes) is exactly
 * reference/sdxl/tensors.json (names, shapes, dtypes with the I64 and 0-d
 * exceptions, data bytes); a small SDXL written with other sizes (per-level
 * depths, a second tower of its own width, another added-time width) reads
 * back with the safetensors reader with every tensor of every block present
 * and the shapes chaining block to block, and its <stem>.ldm_config.json
 * carries what the tensors cannot show.  Fast (CI tier): the full file is
 * only listed; bench/make_sdxl.sh writes it. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm_cli.h"
#include "t.h"
#include "../../src/engine/loader/safetensors.h"

static char tmp[256];

#define make_model mm_run

/* One --list line. */
typedef struct lrow {
    char name[160], dtype[8];
    int ndim;
    int64_t shape[4];
} lrow;

/* Run --list with args; rows into *out (caller frees); the summary's data bytes into *bytes. */
static size_t read_list(const char *args, lrow **out, long long *bytes)
{
    char cmd[2048], line[512];
    snprintf(cmd, sizeof cmd, "'%s' make-model %s --list 2>/dev/null", mm_sdserve(), args);
    FILE *p = popen(cmd, "r");
    size_t n = 0, cap = 0;
    *out = NULL;
    *bytes = -1;
    while (p && fgets(line, sizeof line, p)) {
        if (line[0] == '#') {
            char *d = strstr(line, "parameters, ");
            if (d) *bytes = atoll(d + 12);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            *out = realloc(*out, cap * sizeof **out);
        }
        lrow *r = &(*out)[n];
        char sh[128];
        if (sscanf(line, "%159s %7s %127s", r->name, r->dtype, sh) != 3) continue;
        r->ndim = 0;
        for (char *s = sh + 1; *s && *s != ']' && r->ndim < 4; s++) {
            r->shape[r->ndim++] = strtoll(s, &s, 10);
            if (*s == ']') break;
        }
        n++;
    }
    if (p) pclose(p);
    return n;
}

static void test_full_list(void)
{
    lrow *r;
    long long bytes;
    size_t n = read_list("--preset sdxl", &r, &bytes);
    json_error_t je;
    json_t *ref = json_load_file(t_ref("sdxl/tensors.json"), 0, &je);
    json_t *ts = json_object_get(ref, "tensors"), *exc = json_object_get(ref, "dtype_exceptions");
    CHECKF(json_object_size(ts) == 2515, "sdxl list: reference has 2515 tensors", "%s", je.text);
    CHECKF(n == 2515, "sdxl list: 2515 tensors listed", "%zu", n);
    int missing = 0, shape = 0, dtype = 0, zero_d = 0;
    long long sum = 0;
    char first[512] = "";
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_object_get(ts, r[i].name);
        const char *want = json_string_value(json_object_get(exc, r[i].name));
        if (!want) want = json_string_value(json_object_get(ref, "dtype"));
        int64_t numel = 1;
        for (int d = 0; d < r[i].ndim; d++) numel *= r[i].shape[d];
        sum += numel * (!strcmp(r[i].dtype, "I64") ? 8 : 2);
        if (r[i].ndim == 0) zero_d++;
        if (!s) {
            if (!missing++) snprintf(first, sizeof first, "extra %s", r[i].name);
            continue;
        }
        int ok = (int)json_array_size(s) == r[i].ndim;
        for (int d = 0; ok && d < r[i].ndim; d++) ok = json_integer_value(json_array_get(s, d)) == r[i].shape[d];
        if (!ok && !shape++) snprintf(first + strlen(first), 200, " shape of %s", r[i].name);
        if (!want || strcmp(want, r[i].dtype)) dtype++;
    }
    CHECKF(missing == 0 && shape == 0, "sdxl list: names and shapes equal reference/sdxl/tensors.json",
           "%d extra, %d shape differences: %s", missing, shape, first);
    CHECKF(dtype == 0, "sdxl list: F16, position_ids I64 (dtype_exceptions)", "%d wrong", dtype);
    CHECKF(zero_d == 1, "sdxl list: one 0-d tensor (logit_scale)", "%d", zero_d);
    long long want_bytes = json_integer_value(json_object_get(ref, "data_bytes"));
    CHECKF(sum == want_bytes && bytes == want_bytes, "sdxl list: data bytes = data_bytes (6 937 676 352)",
           "sum %lld, summary %lld, want %lld", sum, bytes, want_bytes);
    free(r);
    n = read_list("--preset sdxl --dtype bf16", &r, &bytes);
    int other = 0;
    for (size_t i = 0; i < n; i++)
        other += strcmp(r[i].dtype, strstr(r[i].name, "position_ids") ? "I64" : "BF16") != 0;
    CHECKF(n == 2515 && other == 0, "sdxl list: --dtype bf16 (position_ids stay I64)", "%zu, %d other", n, other);
    free(r);
    json_decref(ref);
}

/* ---- the small SDXL read back: walk every block, marking what it sees ---- */

static st_file F;
static char *seen;
static int bad;
static char why[512];

static const st_entry *find(int mark, const char *fmt, va_list ap)
{
    char name[256];
    vsnprintf(name, sizeof name, fmt, ap);
    for (size_t i = 0; i < F.n; i++)
        if (!strcmp(F.e[i].name, name)) {
            if (mark) seen[i] = 1;
            return &F.e[i];
        }
    return NULL;
}

static int has(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int has(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const st_entry *e = find(0, fmt, ap);
    va_end(ap);
    return e != NULL;
}

/* Tensor fmt must exist with shape d[0..ndim); returns it (marked) or NULL. */
static const st_entry *need(int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static const st_entry *need(int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char name[256];
    va_list ap2;
    va_copy(ap2, ap);
    vsnprintf(name, sizeof name, fmt, ap2);
    va_end(ap2);
    const st_entry *e = find(1, fmt, ap);
    va_end(ap);
    int64_t d[4] = {d0, d1, d2, d3};
    int ok = e && e->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = d[i] < 0 || e->shape[i] == d[i];
    if (!ok && !bad++) snprintf(why, sizeof why, "%s %s", name, e ? "has another shape" : "missing");
    return ok ? e : NULL;
}

/* weight [out, in(, k, k)] + bias [out]; returns out (or -1). */
static int wb(int64_t out, int64_t in, int k, const char *p)
{
    const st_entry *w = k ? need(4, out, in, k, k, "%s.weight", p) : need(2, out, in, 0, 0, "%s.weight", p);
    if (!w) return -1;
    need(1, w->shape[0], 0, 0, 0, "%s.bias", p);
    return (int)w->shape[0];
}

#define NM(...) (snprintf(nb, sizeof nb, __VA_ARGS__), nb)

/* A norm is weight [c] + bias [c]. */
static void norm_c(int64_t c, const char *p)
{
    need(1, c, 0, 0, 0, "%s.weight", p);
    need(1, c, 0, 0, 0, "%s.bias", p);
}

static int unet_res(const char *p, int cin, int temb)
{
    char nb[256];
    norm_c(cin, NM("%s.in_layers.0", p));
    int cout = wb(-1, cin, 3, NM("%s.in_layers.2", p));
    wb(cout, temb, 0, NM("%s.emb_layers.1", p));
    norm_c(cout, NM("%s.out_layers.0", p));
    wb(cout, cout, 3, NM("%s.out_layers.3", p));
    if (cin != cout) wb(cout, cin, 1, NM("%s.skip_connection", p));
    else if (has("%s.skip_connection.weight", p) && !bad++) snprintf(why, sizeof why, "%s: stray skip_connection", p);
    return cout;
}

/* A SpatialTransformer with Linear proj; returns its depth. */
static int unet_xf(const char *p, int c, int ctx)
{
    char nb[256];
    norm_c(c, NM("%s.norm", p));
    wb(c, c, 0, NM("%s.proj_in", p));
    int d = 0;
    for (; has("%s.transformer_blocks.%d.attn1.to_q.weight", p, d); d++) {
        for (int k = 1; k <= 2; k++) {
            need(2, c, c, 0, 0, "%s.transformer_blocks.%d.attn%d.to_q.weight", p, d, k);
            need(2, c, k == 1 ? c : ctx, 0, 0, "%s.transformer_blocks.%d.attn%d.to_k.weight", p, d, k);
            need(2, c, k == 1 ? c : ctx, 0, 0, "%s.transformer_blocks.%d.attn%d.to_v.weight", p, d, k);
            wb(c, c, 0, NM("%s.transformer_blocks.%d.attn%d.to_out.0", p, d, k));
        }
        wb(8 * c, c, 0, NM("%s.transformer_blocks.%d.ff.net.0.proj", p, d));
        wb(c, 4 * c, 0, NM("%s.transformer_blocks.%d.ff.net.2", p, d));
        for (int k = 1; k <= 3; k++) norm_c(c, NM("%s.transformer_blocks.%d.norm%d", p, d, k));
    }
    wb(c, c, 0, NM("%s.proj_out", p));
    return d;
}

/* Walk the UNet; depth[] and mid get the transformer depths found. */
static void walk_unet(int ctx, int adm, int *levels, int depth[8], int *mid)
{
    char nb[256], q[256];
    const char *u = "model.diffusion_model";
    int c0 = wb(-1, 4, 3, NM("%s.input_blocks.0.0", u));
    int temb = wb(-1, c0, 0, NM("%s.time_embed.0", u));
    wb(temb, temb, 0, NM("%s.time_embed.2", u));
    wb(temb, adm, 0, NM("%s.label_emb.0.0", u));
    wb(temb, temb, 0, NM("%s.label_emb.0.2", u));
    int skips[64], ns = 0, ch = c0, L = 0;
    skips[ns++] = c0;
    for (int i = 1; ns < 64 && has("%s.input_blocks.%d.0.%s", u, i, "in_layers.2.weight") + has("%s.input_blocks.%d.0.op.weight", u, i); i++) {
        if (has("%s.input_blocks.%d.0.op.weight", u, i)) {
            wb(ch, ch, 3, NM("%s.input_blocks.%d.0.op", u, i));
            L++;
        } else {
            snprintf(q, sizeof q, "%s.input_blocks.%d.0", u, i);
            ch = unet_res(q, ch, temb);
            depth[L] = has("%s.input_blocks.%d.1.norm.weight", u, i) ? unet_xf(NM("%s.input_blocks.%d.1", u, i), ch, ctx) : 0;
        }
        skips[ns++] = ch;
    }
    *levels = L + 1;
    ch = unet_res("model.diffusion_model.middle_block.0", ch, temb);
    *mid = unet_xf("model.diffusion_model.middle_block.1", ch, ctx);
    unet_res("model.diffusion_model.middle_block.2", ch, temb);
    for (int j = 0; ns > 0 && has("%s.output_blocks.%d.0.in_layers.2.weight", u, j); j++) {
        snprintf(q, sizeof q, "%s.output_blocks.%d.0", u, j);
        ch = unet_res(q, ch + skips[--ns], temb);
        int sub = 1;
        if (has("%s.output_blocks.%d.1.norm.weight", u, j)) {
            int d = unet_xf(NM("%s.output_blocks.%d.1", u, j), ch, ctx);
            if (d != depth[L] && !bad++) snprintf(why, sizeof why, "output_blocks.%d: depth %d, down %d", j, d, depth[L]);
            sub = 2;
        }
        if (has("%s.output_blocks.%d.%d.conv.weight", u, j, sub)) {
            wb(ch, ch, 3, NM("%s.output_blocks.%d.%d.conv", u, j, sub));
            L--;
        }
    }
    if ((ns != 0 || L != 0) && !bad++) snprintf(why, sizeof why, "UNet up path: %d skips left, level %d", ns, L);
    norm_c(ch, NM("%s.out.0", u));
    wb(4, ch, 3, NM("%s.out.2", u));
}

static int vae_res(const char *p, int cin)
{
    char nb[256];
    norm_c(cin, NM("%s.norm1", p));
    int cout = wb(-1, cin, 3, NM("%s.conv1", p));
    norm_c(cout, NM("%s.norm2", p));
    wb(cout, cout, 3, NM("%s.conv2", p));
    if (cin != cout) wb(cout, cin, 1, NM("%s.nin_shortcut", p));
    return cout;
}

static void vae_mid(const char *p, int c)
{
    char nb[256];
    vae_res(NM("%s.mid.block_1", p), c);
    norm_c(c, NM("%s.mid.attn_1.norm", p));
    const char *k[] = {"q", "k", "v", "proj_out"};
    for (int i = 0; i < 4; i++) wb(c, c, 1, NM("%s.mid.attn_1.%s", p, k[i]));
    vae_res(NM("%s.mid.block_2", p), c);
}

/* Walk the VAE; returns its number of levels. */
static int walk_vae(void)
{
    char nb[256];
    const char *e = "first_stage_model.encoder", *d = "first_stage_model.decoder";
    int ch = wb(-1, 3, 3, NM("%s.conv_in", e)), n = 0;
    for (; has("%s.down.%d.block.0.conv1.weight", e, n); n++) {
        for (int j = 0; has("%s.down.%d.block.%d.conv1.weight", e, n, j); j++) ch = vae_res(NM("%s.down.%d.block.%d", e, n, j), ch);
        if (has("%s.down.%d.downsample.conv.weight", e, n)) wb(ch, ch, 3, NM("%s.down.%d.downsample.conv", e, n));
    }
    vae_mid(e, ch);
    norm_c(ch, NM("%s.norm_out", e));
    wb(8, ch, 3, NM("%s.conv_out", e));
    wb(8, 8, 1, "first_stage_model.quant_conv");
    wb(4, 4, 1, "first_stage_model.post_quant_conv");
    ch = wb(-1, 4, 3, NM("%s.conv_in", d));
    vae_mid(d, ch);
    for (int i = n - 1; i >= 0; i--) {
        for (int j = 0; has("%s.up.%d.block.%d.conv1.weight", d, i, j); j++) ch = vae_res(NM("%s.up.%d.block.%d", d, i, j), ch);
        if (i) wb(ch, ch, 3, NM("%s.up.%d.upsample.conv", d, i));
    }
    norm_c(ch, NM("%s.norm_out", d));
    wb(3, ch, 3, NM("%s.conv_out", d));
    return n;
}

/* CLIP-L style tower; returns its width, *layers its layer count. */
static int walk_te1(int *layers)
{
    char nb[256];
    const char *t = "conditioner.embedders.0.transformer.text_model";
    const st_entry *tok = need(2, -1, -1, 0, 0, "%s.embeddings.token_embedding.weight", t);
    int w = tok ? (int)tok->shape[1] : -1, i = 0;
    need(2, 77, w, 0, 0, "%s.embeddings.position_embedding.weight", t);
    need(2, 1, 77, 0, 0, "%s.embeddings.position_ids", t);
    for (; has("%s.encoder.layers.%d.mlp.fc1.weight", t, i); i++) {
        norm_c(w, NM("%s.encoder.layers.%d.layer_norm1", t, i));
        norm_c(w, NM("%s.encoder.layers.%d.layer_norm2", t, i));
        int m = wb(-1, w, 0, NM("%s.encoder.layers.%d.mlp.fc1", t, i));
        wb(w, m, 0, NM("%s.encoder.layers.%d.mlp.fc2", t, i));
        const char *pr[] = {"k_proj", "out_proj", "q_proj", "v_proj"};
        for (int k = 0; k < 4; k++) wb(w, w, 0, NM("%s.encoder.layers.%d.self_attn.%s", t, i, pr[k]));
    }
    norm_c(w, NM("%s.final_layer_norm", t));
    *layers = i;
    return w;
}

/* OpenCLIP tower; returns its width, *proj the projection's columns. */
static int walk_te2(int *layers, int *proj)
{
    char nb[256];
    const char *t = "conditioner.embedders.1.model";
    const st_entry *tok = need(2, -1, -1, 0, 0, "%s.token_embedding.weight", t);
    int w = tok ? (int)tok->shape[1] : -1, i = 0;
    need(2, 77, w, 0, 0, "%s.positional_embedding", t);
    for (; has("%s.transformer.resblocks.%d.ln_1.weight", t, i); i++) {
        norm_c(w, NM("%s.transformer.resblocks.%d.ln_1", t, i));
        need(2, 3 * w, w, 0, 0, "%s.transformer.resblocks.%d.attn.in_proj_weight", t, i);
        need(1, 3 * w, 0, 0, 0, "%s.transformer.resblocks.%d.attn.in_proj_bias", t, i);
        wb(w, w, 0, NM("%s.transformer.resblocks.%d.attn.out_proj", t, i));
        norm_c(w, NM("%s.transformer.resblocks.%d.ln_2", t, i));
        int m = wb(-1, w, 0, NM("%s.transformer.resblocks.%d.mlp.c_fc", t, i));
        wb(w, m, 0, NM("%s.transformer.resblocks.%d.mlp.c_proj", t, i));
    }
    norm_c(w, NM("%s.ln_final", t));
    const st_entry *p = need(2, w, -1, 0, 0, "%s.text_projection", t);
    need(0, 0, 0, 0, 0, "%s.logit_scale", t);
    *layers = i;
    *proj = p ? (int)p->shape[1] : -1;
    return w;
}

static const char *SMALL = "--preset sdxl --unet-channels 64,96,128 --unet-depth 1,3,2 --unet-head-channels 32 "
                           "--text-width 32 --text-heads 2 --text-mlp 64 --text-layers 2 --text-vocab 300 "
                           "--text2-width 48 --text2-heads 3 --text2-layers 3 --text2-mlp 96 --text2-proj 40 "
                           "--add-time-dim 8 --vae-channels 32,64 --dtype f32";

static double std_of(const st_entry *e)
{
    const float *x = (const float *)e->data;
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < e->numel; i++) s += x[i], s2 += (double)x[i] * x[i];
    return sqrt(s2 / e->numel - (s / e->numel) * (s / e->numel));
}

static void check_config(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je), *net = json_object_get(j, "network_config");
    json_t *cond = json_object_get(j, "conditioner");
    int outdims = 0;
    for (size_t i = 0; i < json_array_size(cond); i++) {
        json_t *c = json_array_get(cond, i);
        if (!strcmp(json_string_value(json_object_get(c, "target")) ?: "", "ConcatTimestepEmbedderND"))
            outdims += json_integer_value(json_object_get(c, "outdim")) == 8;
    }
    json_t *dep = json_object_get(net, "transformer_depth");
    CHECKF(json_integer_value(json_object_get(net, "num_head_channels")) == 32 &&
               json_integer_value(json_object_get(net, "adm_in_channels")) == 40 + 6 * 8 &&
               json_integer_value(json_object_get(net, "context_dim")) == 80 &&
               json_integer_value(json_object_get(net, "transformer_depth_middle")) == 2 && json_array_size(dep) == 3 &&
               json_integer_value(json_array_get(dep, 1)) == 3,
           "small sdxl: config network_config (head channels 32, adm_in 88, context 80, depths)", "%s", je.text);
    CHECKF(outdims == 3 && fabs(json_real_value(json_object_get(j, "scale_factor")) - 0.13025) < 1e-9,
           "small sdxl: config ConcatTimestepEmbedderND outdim 8 (x3), scale_factor 0.13025", "%d", outdims);
    json_t *te2 = json_array_get(cond, 1);
    CHECK(json_integer_value(json_object_get(json_array_get(cond, 0), "heads")) == 2 &&
              json_integer_value(json_object_get(te2, "heads")) == 3 &&
              json_integer_value(json_object_get(te2, "proj_dim")) == 40,
          "small sdxl: config tower heads and projection");
    json_decref(j);
}

static void test_small(void)
{
    char path[512], args[2048];
    snprintf(path, sizeof path, "%s/small.safetensors", tmp);
    snprintf(args, sizeof args, "%s -q -o '%s'", SMALL, path);
    CHECK(make_model(args) == 0, "small sdxl: make-model exits 0");
    sd_err e;
    sd_err_clear(&e);
    if (st_open(&F, path, &e) != 0) {
        CHECKF(0, "small sdxl: reads back with st_open", "%s", e.msg);
        return;
    }
    lrow *r;
    long long bytes;
    size_t n = read_list(SMALL, &r, &bytes), same = n == F.n;
    long long data = 0;
    for (size_t i = 0; same && i < n; i++) {
        same = !strcmp(r[i].name, F.e[i].name) && !strcmp(r[i].dtype, F.e[i].dtype_name) && r[i].ndim == F.e[i].ndim;
        for (int d = 0; same && d < r[i].ndim; d++) same = r[i].shape[d] == F.e[i].shape[d];
        data += F.e[i].nbytes;
    }
    CHECKF(same && data == bytes, "small sdxl: the file holds its --list (names, dtypes, shapes, bytes)",
           "%zu listed, %zu in file, %lld vs %lld bytes", n, F.n, bytes, data);
    free(r);

    seen = calloc(F.n, 1);
    bad = 0;
    int l1, l2, proj, levels = 0, depth[8] = {0}, mid = 0;
    int w1 = walk_te1(&l1), w2 = walk_te2(&l2, &proj);
    walk_unet(w1 + w2, proj + 6 * 8, &levels, depth, &mid);
    int vae_levels = walk_vae();
    CHECKF(!bad, "small sdxl: every block complete, shapes chain (UNet, VAE, both towers)", "%d problems, first: %s", bad,
           why);
    size_t unseen = 0;
    const char *stray = "";
    for (size_t i = 0; i < F.n; i++)
        if (!seen[i] && !unseen++) stray = F.e[i].name;
    CHECKF(unseen == 0, "small sdxl: no tensor outside the blocks", "%zu, first %s", unseen, stray);
    CHECKF(levels == 3 && depth[0] == 1 && depth[1] == 3 && depth[2] == 2 && mid == 2 && vae_levels == 2,
           "small sdxl: UNet 3 levels, depths 1,3,2, mid 2; VAE 2 levels", "levels %d depths %d,%d,%d mid %d vae %d",
           levels, depth[0], depth[1], depth[2], mid, vae_levels);
    CHECKF(w1 == 32 && l1 == 2 && w2 == 48 && l2 == 3 && proj == 40, "small sdxl: towers 32x2 and 48x3, projection 40",
           "%d x %d, %d x %d, proj %d", w1, l1, w2, l2, proj);

    /* Values: position_ids 0..76, logit_scale ln 100, scaled weights. */
    const st_entry *pos = NULL, *ls = NULL, *tp = NULL, *cv = NULL;
    for (size_t i = 0; i < F.n; i++) {
        const char *nm = F.e[i].name;
        if (strstr(nm, "position_ids")) pos = &F.e[i];
        if (strstr(nm, "logit_scale")) ls = &F.e[i];
        if (strstr(nm, "1.model.text_projection")) tp = &F.e[i];
        if (!strcmp(nm, "model.diffusion_model.output_blocks.0.0.in_layers.2.weight")) cv = &F.e[i];
    }
    int ids_ok = pos && !strcmp(pos->dtype_name, "I64") && pos->numel == 77;
    for (int i = 0; ids_ok && i < 77; i++) {
        int64_t v;
        memcpy(&v, pos->data + 8 * i, 8);
        ids_ok = v == i;
    }
    CHECK(ids_ok, "small sdxl: position_ids I64 0..76");
    float lv = 0;
    if (ls && ls->nbytes == 4) memcpy(&lv, ls->data, 4);
    CHECKF(ls && ls->ndim == 0 && fabsf(lv - 4.6051702f) < 1e-6f, "small sdxl: logit_scale 0-d, ln 100", "%g", lv);
    double s1 = tp ? std_of(tp) : 0, s2 = cv ? std_of(cv) : 0, w_tp = 1 / sqrt(48.0), w_cv = 1 / sqrt(256 * 9.0);
    CHECKF(fabs(s1 - w_tp) < 0.1 * w_tp && fabs(s2 - w_cv) < 0.05 * w_cv,
           "small sdxl: weights normal(0, 1/sqrt(fan_in)) (text_projection used as x @ W)", "std %g want %g, %g want %g",
           s1, w_tp, s2, w_cv);
    free(seen);
    st_close(&F);
    snprintf(path, sizeof path, "%s/small.ldm_config.json", tmp);
    check_config(path);
}

static void test_bad_flags(void)
{
    char args[1024];
    snprintf(args, sizeof args, "--preset sdxl --unet-depth 1,2 -o '%s/x'", tmp);
    CHECK(make_model(args) == 2, "bad flags: two depths for three levels");
    snprintf(args, sizeof args, "--preset sdxl --text2-width 50 --text2-heads 3 -o '%s/x'", tmp);
    CHECK(make_model(args) == 2, "bad flags: text2 width not divisible by its heads");
    snprintf(args, sizeof args, "--preset sdxl --add-time-dim 7 -o '%s/x'", tmp);
    CHECK(make_model(args) == 2, "bad flags: odd added-time width");
    CHECK(make_model("--preset sdxl --dtype f8 --list") == 2, "bad flags: unknown dtype");
}

int main(void)
{
    if (!t_have_ref()) {
        CHECK(0, "reference data present (set SD_REF)");
        return t_done();
    }
    if (mm_tmpdir(tmp, sizeof tmp, "make-sdxl")) {
        CHECK(0, "mkdtemp");
        return t_done();
    }
    test_full_list();
    test_small();
    test_bad_flags();
    t_rmtree(tmp);
    return t_done();
}
