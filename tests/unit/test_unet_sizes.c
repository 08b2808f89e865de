/* test_unet_sizes.c — the UNet reads its architecture from tensor shapes:
 * a random-weight UNet unlike the tiny references (3 levels of 32/64/96
 * channels, 1 ResBlock down and 2 up per level, attention at levels 0-1 and
 * mid only, transformer depth 2 at level 1, Linear proj, context 48, per-level
 * heads from config.json) is written as a diffusers folder, loaded, and run
 * on an odd latent (9x7: down-sampled sizes 5x4 and 3x2, so the up path must
 * resize to the skip's size) with a 154-token context.  Checks: the derived
 * architecture, output shape and finiteness, intermediate shapes, and that
 * each batch row equals the same row run alone.  Also: a missing tensor and a
 * wrong shape give errors naming the tensor.  And an SDXL-style UNet
 * (add_embedding: pooled 8 + 6 time ids of 16) runs, needs its added vector,
 * and a missing linear_2 or a reshaped or too narrow linear_1 is named. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"
#include "../../src/engine/loader/st_write.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/ops/ops.h"

/* ---- a tiny safetensors writer for generated weights ---- */

#define MAXT 1024
typedef struct gen {
    char name[MAXT][160];
    int ndim[MAXT];
    int64_t shape[MAXT][4];
    int n;
    const char *skip;      /* tensor name to leave out (missing-tensor test) */
    const char *bad;       /* tensor name to write with a wrong first dim */
    int sdxl;              /* add an SDXL-style add_embedding (pooled 8 + 6 time ids of 16) */
    int cfg_add_a;         /* addition_time_embed_dim written to config.json (0: the true 16) */
} gen;

static void add(gen *g, int ndim, int64_t a, int64_t b, int64_t c, int64_t d, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static void add(gen *g, int ndim, int64_t a, int64_t b, int64_t c, int64_t d, const char *fmt, ...)
{
    char nm[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nm, sizeof nm, fmt, ap);
    va_end(ap);
    if (g->skip && !strcmp(nm, g->skip)) return;
    snprintf(g->name[g->n], sizeof g->name[0], "%s", nm);
    g->ndim[g->n] = ndim;
    int64_t s[4] = {a, b, c, d};
    memcpy(g->shape[g->n], s, sizeof s);
    if (g->bad && !strcmp(nm, g->bad)) g->shape[g->n][0] += 1;
    g->n++;
}
#define V(g, c, ...) add(g, 1, c, 0, 0, 0, __VA_ARGS__)
#define M(g, o, i, ...) add(g, 2, o, i, 0, 0, __VA_ARGS__)
#define K(g, o, i, k, ...) add(g, 4, o, i, k, k, __VA_ARGS__)

static void g_norm(gen *g, int c, const char *p) { V(g, c, "%s.weight", p); V(g, c, "%s.bias", p); }

static void g_res(gen *g, int cin, int cout, int te, const char *p)
{
    char q[200];
    snprintf(q, sizeof q, "%s.norm1", p); g_norm(g, cin, q);
    K(g, cout, cin, 3, "%s.conv1.weight", p); V(g, cout, "%s.conv1.bias", p);
    M(g, cout, te, "%s.time_emb_proj.weight", p); V(g, cout, "%s.time_emb_proj.bias", p);
    snprintf(q, sizeof q, "%s.norm2", p); g_norm(g, cout, q);
    K(g, cout, cout, 3, "%s.conv2.weight", p); V(g, cout, "%s.conv2.bias", p);
    if (cin != cout) { K(g, cout, cin, 1, "%s.conv_shortcut.weight", p); V(g, cout, "%s.conv_shortcut.bias", p); }
}

static void g_attn(gen *g, int c, int kv, const char *p)
{
    M(g, c, c, "%s.to_q.weight", p); M(g, c, kv, "%s.to_k.weight", p); M(g, c, kv, "%s.to_v.weight", p);
    M(g, c, c, "%s.to_out.0.weight", p); V(g, c, "%s.to_out.0.bias", p);
}

static void g_transformer(gen *g, int c, int ctx, int depth, const char *p)
{
    char q[200], r[240];
    snprintf(q, sizeof q, "%s.norm", p); g_norm(g, c, q);
    M(g, c, c, "%s.proj_in.weight", p); V(g, c, "%s.proj_in.bias", p);
    M(g, c, c, "%s.proj_out.weight", p); V(g, c, "%s.proj_out.bias", p);
    for (int i = 0; i < depth; i++) {
        snprintf(q, sizeof q, "%s.transformer_blocks.%d", p, i);
        for (int k = 1; k <= 3; k++) { snprintf(r, sizeof r, "%s.norm%d", q, k); g_norm(g, c, r); }
        snprintf(r, sizeof r, "%s.attn1", q); g_attn(g, c, c, r);
        snprintf(r, sizeof r, "%s.attn2", q); g_attn(g, c, ctx, r);
        M(g, 8 * c, c, "%s.ff.net.0.proj.weight", q); V(g, 8 * c, "%s.ff.net.0.proj.bias", q);
        M(g, c, 4 * c, "%s.ff.net.2.weight", q); V(g, c, "%s.ff.net.2.bias", q);
    }
}

/* The UNet described at the top of the file. */
static const int CH[3] = {32, 64, 96}, ATTN[3] = {1, 1, 0}, DEPTH[3] = {1, 2, 1};
enum { CTX = 48, TE = 128, TP = 32, ADD_P = 8, ADD_A = 16 };

static void g_unet(gen *g)
{
    char p[200];
    K(g, CH[0], 4, 3, "conv_in.weight"); V(g, CH[0], "conv_in.bias");
    M(g, TE, TP, "time_embedding.linear_1.weight"); V(g, TE, "time_embedding.linear_1.bias");
    M(g, TE, TE, "time_embedding.linear_2.weight"); V(g, TE, "time_embedding.linear_2.bias");
    int skips[16], ns = 0, prev = CH[0];
    skips[ns++] = CH[0];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "down_blocks.%d.resnets.0", i); g_res(g, prev, CH[i], TE, p);
        prev = CH[i];
        if (ATTN[i]) { snprintf(p, sizeof p, "down_blocks.%d.attentions.0", i); g_transformer(g, CH[i], CTX, DEPTH[i], p); }
        skips[ns++] = CH[i];
        if (i < 2) {
            K(g, CH[i], CH[i], 3, "down_blocks.%d.downsamplers.0.conv.weight", i);
            V(g, CH[i], "down_blocks.%d.downsamplers.0.conv.bias", i);
            skips[ns++] = CH[i];
        }
    }
    g_res(g, 96, 96, TE, "mid_block.resnets.0");
    g_transformer(g, 96, CTX, 1, "mid_block.attentions.0");
    g_res(g, 96, 96, TE, "mid_block.resnets.1");
    for (int k = 0; k < 3; k++) {
        int i = 2 - k;
        for (int j = 0; j < 2; j++) {
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", k, j); g_res(g, prev + skips[--ns], CH[i], TE, p);
            prev = CH[i];
            if (ATTN[i]) { snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", k, j); g_transformer(g, CH[i], CTX, DEPTH[i], p); }
        }
        if (i > 0) {
            K(g, CH[i], CH[i], 3, "up_blocks.%d.upsamplers.0.conv.weight", k);
            V(g, CH[i], "up_blocks.%d.upsamplers.0.conv.bias", k);
        }
    }
    g_norm(g, CH[0], "conv_norm_out");
    K(g, 4, CH[0], 3, "conv_out.weight"); V(g, 4, "conv_out.bias");
    if (g->sdxl) {
        M(g, TE, ADD_P + 6 * ADD_A, "add_embedding.linear_1.weight"); V(g, TE, "add_embedding.linear_1.bias");
        M(g, TE, TE, "add_embedding.linear_2.weight"); V(g, TE, "add_embedding.linear_2.bias");
    }
}

static unsigned long long rng = 0x9E3779B97F4A7C15ULL;
static float frand(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.f - 1.f;
}

/* Write g as <dir>/unet/diffusion_pytorch_model.safetensors (+ config.json). */
static int g_write(const gen *g, const char *dir)
{
    char path[512];
    static stw_tensor desc[MAXT];
    for (int i = 0; i < g->n; i++) {
        desc[i] = (stw_tensor){.name = g->name[i], .dtype = "F32", .ndim = g->ndim[i]};
        memcpy(desc[i].shape, g->shape[i], sizeof desc[i].shape);
    }
    snprintf(path, sizeof path, "%s/unet", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    if (g->sdxl) fprintf(f, "{\"attention_head_dim\": [2, 4, 6], \"addition_time_embed_dim\": %d}\n",
                         g->cfg_add_a ? g->cfg_add_a : ADD_A);
    else fprintf(f, "{\"attention_head_dim\": [2, 4, 6]}\n");
    fclose(f);
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    sd_err e;
    sd_err_clear(&e);
    if (!(f = stw_begin(path, desc, (size_t)g->n, &e))) return -1;
    for (int i = 0; i < g->n; i++) {
        size_t n = 1;
        for (int d = 0; d < g->ndim[i]; d++) n *= g->shape[i][d];
        float scale = g->ndim[i] == 1 ? 0.1f : 1.f / sqrtf((float)(n / g->shape[i][0]));
        int is_gamma = strstr(g->name[i], "norm") && strstr(g->name[i], ".weight");
        for (size_t k = 0; k < n; k++) {
            float v = (is_gamma ? 1.f : 0.f) + scale * frand();
            fwrite(&v, 4, 1, f);
        }
    }
    return stw_end(f, path, &e);
}

/* ---- the checks ---- */

typedef struct shapes { int n; char name[16][32]; int c[16], h[16], w[16]; } shapes;
static void on_tap(void *ud, const char *name, const float *d, int n, int c, int h, int w)
{
    shapes *s = ud;
    if (s->n >= 16) return;
    snprintf(s->name[s->n], sizeof s->name[0], "%s", name);
    s->c[s->n] = c; s->h[s->n] = h; s->w[s->n] = w;
    s->n++;
}
static int tap_is(const shapes *s, const char *name, int c, int h, int w)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->name[i], name)) return s->c[i] == c && s->h[i] == h && s->w[i] == w;
    return 0;
}

static sd_unet *load_dir(const char *dir, sd_weights **wout, sd_err *err)
{
    sd_err_clear(err);
    *wout = sdw_open(dir, err);
    return *wout ? unet_load(*wout, NULL, NULL, err) : NULL;
}

static void rm_model(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/unet/config.json", dir); unlink(p);
    snprintf(p, sizeof p, "%s/unet/diffusion_pytorch_model.safetensors", dir); unlink(p);
    snprintf(p, sizeof p, "%s/unet", dir); rmdir(p);
}

/* One SDXL-style variant written, loaded and expected to fail naming `frag`. */
static void expect_sdxl_refused(const char *dir, const char *skip, const char *bad, int cfg_add_a,
                                const char *frag, const char *what)
{
    static gen g;
    memset(&g, 0, sizeof g);
    g.sdxl = 1;
    g.skip = skip;
    g.bad = bad;
    g.cfg_add_a = cfg_add_a;
    g_unet(&g);
    g_write(&g, dir);
    sd_err err;
    sd_weights *w;
    sd_unet *u = load_dir(dir, &w, &err);
    CHECKF(!u && err.code == SD_EFORMAT && strstr(err.msg, frag), what, "%s", err.msg);
    unet_free(u);
    sdw_close(w);
    rm_model(dir);
}

/* SDXL-style added conditioning at sizes unlike the reference's: pooled 8 +
 * 6 time ids of 16 -> 128; the vector is required and shapes its output;
 * each row equals the row alone; bad add-embeddings name the tensor. */
static void check_sdxl(const char *dir)
{
    static gen g;
    memset(&g, 0, sizeof g);
    g.sdxl = 1;
    g_unet(&g);
    CHECK(g_write(&g, dir) == 0, "write an SDXL-style random UNet");
    sd_err err;
    sd_weights *w;
    sd_unet *u = load_dir(dir, &w, &err);
    const unet_info *in = u ? unet_get_info(u) : NULL;
    CHECKF(in && in->add_dim == ADD_P + 6 && in->add_text_dim == ADD_P && in->add_time_dim == ADD_A,
           "SDXL-style: add-embedding read (8 pooled + 6 ids of 16)", "%s", err.msg);
    if (u) {
        enum { B = 2, H = 6, W = 5, T = 77 };
        size_t nx = (size_t)B * 4 * H * W, per = nx / B;
        static float x[B * 4 * H * W], ctx[B * T * CTX], vec[B * (ADD_P + 6)], o1[B * 4 * H * W], o2[B * 4 * H * W];
        static float one[4 * H * W];
        for (size_t i = 0; i < nx; i++) x[i] = frand();
        for (size_t i = 0; i < sizeof ctx / sizeof *ctx; i++) ctx[i] = frand();
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < ADD_P; i++) vec[b * (ADD_P + 6) + i] = frand();
            float ids[6] = {48, 40, 0, 0, 48, 40};
            memcpy(vec + b * (ADD_P + 6) + ADD_P, ids, sizeof ids);
        }
        float t[B] = {700, 20};
        unet_cond c = unet_cond_text(ctx, T);
        c.vec = vec; c.vec_dim = ADD_P + 6;
        int rc = unet_forward(u, x, t, &c, B, H, W, o1, &err);
        CHECKF(rc == 0, "SDXL-style: forward with the added vector", "%s", err.msg);
        double worst = 0;
        for (int b = 0; b < B && !rc; b++) {
            unet_cond cb = unet_cond_text(ctx + (size_t)b * T * CTX, T);
            cb.vec = vec + b * (ADD_P + 6); cb.vec_dim = ADD_P + 6;
            if (unet_forward(u, x + b * per, t + b, &cb, 1, H, W, one, &err)) { worst = 1e9; break; }
            for (size_t i = 0; i < per; i++) worst = fmax(worst, fabs(one[i] - o1[b * per + i]));
        }
        CHECKF(worst <= 1e-4, "SDXL-style: each row equals the row run alone", "maxabs %g", worst);
        vec[ADD_P + 2] = 16;   /* row 0's crop_top */
        rc = unet_forward(u, x, t, &c, B, H, W, o2, &err);
        double d0 = 0, d1 = 0;
        for (size_t i = 0; i < per; i++) { d0 = fmax(d0, fabs(o1[i] - o2[i])); d1 = fmax(d1, fabs(o1[per + i] - o2[per + i])); }
        CHECKF(rc == 0 && d0 > 1e-6 && d1 == 0, "SDXL-style: a time id changes its own row only", "rc %d d0 %g d1 %g",
               rc, d0, d1);
        c.vec = NULL; c.vec_dim = 0;
        rc = unet_forward(u, x, t, &c, B, H, W, o2, &err);
        CHECKF(rc == -1 && !strcmp(err.field, "added_cond"), "SDXL-style: no added vector refused", "rc %d %s", rc, err.msg);
        unet_free(u);
    }
    sdw_close(w);
    rm_model(dir);
    expect_sdxl_refused(dir, "add_embedding.linear_2.weight", NULL, 0, "unet.add_embedding.linear_2.weight",
                        "SDXL-style: missing add_embedding.linear_2.weight named");
    expect_sdxl_refused(dir, NULL, "add_embedding.linear_1.weight", 0, "unet.add_embedding.linear_1.weight",
                        "SDXL-style: reshaped add_embedding.linear_1.weight named");
    expect_sdxl_refused(dir, "add_embedding.linear_1.weight", NULL, 0, "unet.add_embedding.linear_1.weight",
                        "SDXL-style: linear_2 without linear_1 names linear_1");
    expect_sdxl_refused(dir, NULL, NULL, 64, "unet.add_embedding.linear_1.weight takes 104 inputs",
                        "SDXL-style: time ids wider than linear_1's input (config 64) named");
}

int main(void)
{
    char dir[] = "/tmp/sdserve_unet_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "temp dir"); return t_done(); }
    static gen g;
    memset(&g, 0, sizeof g);
    g_unet(&g);
    CHECK(g_write(&g, dir) == 0, "write a 3-level random UNet");

    sd_err err;
    sd_weights *w;
    sd_unet *u = load_dir(dir, &w, &err);
    CHECKF(u != NULL, "load 3-level UNet", "%s", err.msg);
    if (u) {
        const unet_info *in = unet_get_info(u);
        CHECKF(in->levels == 3 && in->channels[0] == 32 && in->channels[1] == 64 && in->channels[2] == 96 &&
               in->down_resnets[0] == 1 && in->up_resnets[0] == 2 && in->up_resnets[2] == 2 &&
               in->attention[0] && in->attention[1] && !in->attention[2] && in->context_dim == CTX &&
               in->linear_proj == 1 && in->time_dim == TE && in->down_factor == 4 &&
               in->heads[0] == 2 && in->heads[1] == 4 && in->heads[2] == 6, "architecture read from shapes + config heads",
               "levels %d ch %d/%d/%d up %d/%d ctx %d heads %d/%d/%d", in->levels, in->channels[0], in->channels[1],
               in->channels[2], in->up_resnets[0], in->up_resnets[1], in->context_dim, in->heads[0], in->heads[1], in->heads[2]);

        enum { B = 3, H = 9, W = 7, T = 154 };
        size_t ws = 0, ws2 = 0;
        CHECKF(unet_reserve(u, B, H, W, T, &ws, &err) == 0 && ws > 0, "reserve the workspace up front", "%s", err.msg);
        CHECK(unet_reserve(u, 1, 2, 2, 77, &ws2, &err) == 0 && ws2 == ws, "a smaller reserve keeps the workspace");
        CHECK(unet_reserve(u, 1, 0, 2, 77, NULL, &err) == -1 && err.code == SD_EINVAL, "reserve rejects a zero size");
        sd_err_clear(&err);
        size_t nx = (size_t)B * 4 * H * W, per = nx / B;
        float *x = malloc(sizeof(float) * nx), *ctx = malloc(sizeof(float) * B * T * CTX);
        float *out = malloc(sizeof(float) * (nx + 1)), *one = malloc(sizeof(float) * per);
        for (size_t i = 0; i < nx; i++) x[i] = frand() * 1.7f;
        for (size_t i = 0; i < (size_t)B * T * CTX; i++) ctx[i] = frand();
        float t[B] = {999, 420.5f, 3};
        out[nx] = 12345.f;   /* sentinel: the forward writes exactly B*4*H*W */
        shapes sh = {0};
        unet_set_tap(u, on_tap, &sh);
        int rc = unet_forward(u, x, t, &(unet_cond){.ctx = ctx, .T = T}, B, H, W, out, &err);
        unet_set_tap(u, NULL, NULL);
        CHECKF(rc == 0, "forward 3x4x9x7 with 154 context tokens", "%s", err.msg);
        int finite = 1;
        double mx = 0;
        for (size_t i = 0; i < nx; i++) { if (!isfinite(out[i])) finite = 0; if (fabs(out[i]) > mx) mx = fabs(out[i]); }
        CHECKF(finite && mx > 1e-3 && out[nx] == 12345.f, "output finite, non-trivial, right size", "finite %d max %g", finite, mx);
        CHECKF(tap_is(&sh, "down_blocks.0", 32, 5, 4) && tap_is(&sh, "down_blocks.1", 64, 3, 2) &&
               tap_is(&sh, "down_blocks.2", 96, 3, 2) && tap_is(&sh, "mid_block", 96, 3, 2) &&
               tap_is(&sh, "up_blocks.0", 96, 5, 4) && tap_is(&sh, "up_blocks.1", 64, 9, 7) &&
               tap_is(&sh, "up_blocks.2", 32, 9, 7) && tap_is(&sh, "conv_norm_out", 32, 9, 7),
               "odd sizes: up path resizes to each skip's size", "%d taps", sh.n);
        double worst = 0;
        for (int b = 0; b < B && !rc; b++) {
            if (unet_forward(u, x + b * per, t + b, &(unet_cond){.ctx = ctx + (size_t)b * T * CTX, .T = T}, 1, H, W, one, &err)) { worst = 1e9; break; }
            for (size_t i = 0; i < per; i++) worst = fmax(worst, fabs(one[i] - out[b * per + i]));
        }
        CHECKF(worst <= 1e-4 * fmax(1, mx), "each batch row equals the row run alone", "maxabs %g", worst);
        CHECK(unet_reserve(u, 1, 1, 1, 1, &ws2, &err) == 0 && ws2 == ws, "forwards within the reserve did not grow it");
        float sentinel = 0;
        CHECK(unet_forward(u, x, t, &(unet_cond){.ctx = ctx, .T = T}, 1, 0, W, &sentinel, &err) == -1 && err.code == SD_EINVAL,
              "zero height is an input error");
        free(x); free(ctx); free(out); free(one);
        unet_free(u);
    }
    sdw_close(w);

    /* a missing tensor and a wrong shape name the tensor */
    rm_model(dir);
    memset(&g, 0, sizeof g);
    g.skip = "up_blocks.1.resnets.1.conv_shortcut.weight";
    g_unet(&g);
    g_write(&g, dir);
    u = load_dir(dir, &w, &err);
    CHECKF(!u && strstr(err.msg, "unet.up_blocks.1.resnets.1.conv_shortcut.weight"), "missing tensor named", "%s", err.msg);
    fprintf(stderr, "missing: %s\n", err.msg);
    unet_free(u);
    sdw_close(w);
    rm_model(dir);
    memset(&g, 0, sizeof g);
    g.bad = "mid_block.attentions.0.transformer_blocks.0.attn2.to_v.weight";
    g_unet(&g);
    g_write(&g, dir);
    u = load_dir(dir, &w, &err);
    CHECKF(!u && strstr(err.msg, "attn2.to_v.weight"), "wrong shape named", "%s", err.msg);
    fprintf(stderr, "wrong shape: %s\n", err.msg);
    unet_free(u);
    sdw_close(w);
    rm_model(dir);
    check_sdxl(dir);
    rmdir(dir);
    return t_done();
}
