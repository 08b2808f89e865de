/* test_sdxl_sizes.c — an SDXL of sizes other than the reference's (issue
 * 15 "Must show": other widths/heads/depths) written by `sdserve make-model
 * --preset sdxl` (F16, its ldm_config.json beside it) loads as sdxl with
 * every size read from its tensors and config, and runs at that size: both
 * text towers (context = the two widths side by side, pooled through the
 * second's projection), one UNet forward with the added vector (pooled +
 * 6 time ids) and one VAE decode, all finite and of the right shapes;
 * then whole txt2img runs (2 steps; Euler and k-diffusion DPM++ 2M; CFG 5
 * and 1, the latter without the unconditional pass): final latent finite,
 * the same seed twice the same bytes, seed + 1 another picture. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm_cli.h"
#include "t.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/models/vae.h"
#include "../../src/engine/pipeline.h"

/* UNet 3 levels (no attention at level 0, depths 0,2,1, mid 2), head size
 * 16; towers 32 and 48 wide (context 80), projection 24; time ids 8 wide;
 * VAE 3 levels (latent cell = 4 pixels). */
static const char *ARGS = "--preset sdxl --unet-channels 32,64,96 --unet-depth 0,2,1 --unet-depth-mid 2 "
                          "--unet-head-channels 16 --text-width 32 --text-heads 2 --text-mlp 64 --text-layers 2 "
                          "--text2-width 48 --text2-heads 3 --text2-layers 3 --text2-mlp 96 --text2-proj 24 "
                          "--add-time-dim 8 --vae-channels 32,32,64 --dtype f16";

/* 1 when all n values are finite and not all zero. */
static int alive(const float *x, size_t n)
{
    int nz = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) return 0;
        nz |= x[i] != 0.0f;
    }
    return nz;
}

static void run(sd_engine *e)
{
    sd_unet *u = sd_engine_unet(e);
    const unet_info *ui = unet_get_info(u);
    sd_model_info mi;
    sd_engine_info(e, &mi);
    CHECKF(!strcmp(mi.family, "sdxl") && ui->context_dim == 80 && ui->add_text_dim == 24 && ui->add_dim == 30 &&
           ui->in_channels == 4 && mi.vae_scale == 4,
           "other sizes: sdxl, context 32+48, pooled 24 + 6 ids, latent cell 4 px",
           "family %s context %d pooled %d add %d in %d scale %d", mi.family, ui->context_dim, ui->add_text_dim,
           ui->add_dim, ui->in_channels, mi.vae_scale);

    sd_gen_params p = {.prompt = "a red fox in the snow", .negative = "blurry", .steps = 1, .cfg = 5.0f, .n = 1};
    float *ctx = NULL, *pooled = NULL;
    int T = 0, W = 0, P = 0;
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_encode_text_pooled(e, &p, &ctx, &T, &W, &pooled, &P, &err);
    CHECKF(rc == 0 && T == 77 && W == 80 && P == 24 && alive(ctx, (size_t)2 * T * W) && alive(pooled, 2 * 24),
           "other sizes: both towers encode, context [2,77,80], pooled [2,24], finite", "rc %d T %d W %d P %d: %s",
           rc, T, W, P, err.msg);
    if (rc) { free(ctx); free(pooled); return; }

    const int B = 2, h = 8, w = 12, C = 4;
    const size_t n = (size_t)B * C * h * w;
    float *x = malloc(n * sizeof *x), *out = malloc(n * sizeof *out), vec[2 * 30];
    float *img = malloc((size_t)3 * (h * 4) * (w * 4) * sizeof *img);
    const float ids[6] = {32, 48, 0, 0, 32, 48};
    for (int b = 0; b < B; b++) {
        memcpy(vec + b * 30, pooled + b * 24, 24 * sizeof(float));
        memcpy(vec + b * 30 + 24, ids, sizeof ids);
    }
    for (size_t i = 0; x && i < n; i++) x[i] = sinf(0.61f * (float)i);
    const float t[2] = {999.0f, 500.0f};
    unet_cond c = {ctx, T, W, vec, 30, NULL, 0};
    rc = !x || !out || !img ? -1 : unet_forward(u, x, t, &c, B, h, w, out, &err);
    CHECKF(rc == 0 && alive(out, n), "other sizes: one UNet forward with the added vector, finite", "rc %d: %s", rc,
           err.msg);
    c.vec = NULL;
    c.vec_dim = 0;
    int rc2 = !x || !out ? -1 : unet_forward(u, x, t, &c, B, h, w, out + n / 2, &err);
    CHECK(rc2 != 0 && !strcmp(err.field, "added_cond"), "other sizes: the UNet refuses a call without the vector");
    sd_err_clear(&err);
    rc = rc ? -1 : vae_decode(sd_engine_vae(e), out, 1, h, w, img, &err);
    CHECKF(rc == 0 && alive(img, (size_t)3 * (h * 4) * (w * 4)), "other sizes: VAE decode to 32x48 px, finite",
           "rc %d: %s", rc, err.msg);
    free(x); free(out); free(img); free(ctx); free(pooled);
}

/* One 2-step txt2img of 48x32 px; its final latent into lat (n floats). */
static int gen(sd_engine *e, const char *sampler, float cfg, uint64_t seed, sd_image *img, float *lat)
{
    sd_gen_params p = {.prompt = "a red fox in the snow", .negative = "blurry", .width = 48, .height = 32,
                       .steps = 2, .cfg = cfg, .seed = seed, .n = 1};
    sd_err err;
    sd_err_clear(&err);
    if (sd_sampler_parse(sampler, &p.sampler, &p.ksampler, &p.name_schedule)) return -1;
    sd_gen_debug dbg = {.final_latent = lat};
    int rc = sd_generate_debug(e, &p, img, &dbg, &err);
    if (rc) printf("# %s: %s\n", sampler, err.msg);
    return rc;
}

/* txt2img with `sampler` at cfg: finite, deterministic, seed-dependent. */
static void txt2img(sd_engine *e, const char *sampler, float cfg)
{
    int lw, lh;
    sd_latent_size(e, 48, 32, &lw, &lh);
    const size_t n = (size_t)4 * lw * lh, px = (size_t)48 * 32 * 3;
    float *lat = calloc(n, sizeof *lat);
    sd_image a = {0}, b = {0}, c = {0};
    char what[3][160];
    snprintf(what[0], sizeof what[0], "other sizes: txt2img 48x32, 2 steps, %s, CFG %g: finite", sampler, cfg);
    snprintf(what[1], sizeof what[1], "other sizes: %s, CFG %g: the same seed twice = the same bytes", sampler, cfg);
    snprintf(what[2], sizeof what[2], "other sizes: %s, CFG %g: seed + 1 another picture", sampler, cfg);
    int rc = !lat || gen(e, sampler, cfg, 42, &a, lat);
    CHECKF(!rc && a.width == 48 && a.height == 32 && alive(lat, n), what[0], "rc %d, %dx%d", rc, a.width, a.height);
    rc = rc || gen(e, sampler, cfg, 42, &b, lat) || gen(e, sampler, cfg, 43, &c, lat);
    CHECK(!rc && !memcmp(a.rgb, b.rgb, px), what[1]);
    CHECK(!rc && memcmp(a.rgb, c.rgb, px), what[2]);
    sd_image_free(&a); sd_image_free(&b); sd_image_free(&c);
    free(lat);
}

int main(void)
{
    if (!t_have_ref()) { CHECK(0, "reference data present (set SD_REF)"); return t_done(); }
    char dir[256], path[512], args[1024];
    if (mm_tmpdir(dir, sizeof dir, "xlsizes")) { CHECK(0, "temporary folder"); return t_done(); }
    snprintf(path, sizeof path, "%s/small.safetensors", dir);
    snprintf(args, sizeof args, "%s -q -o '%s'", ARGS, path);
    CHECK(mm_run(args) == 0, "other sizes: make-model --preset sdxl writes the file");
    sd_load_opts o = {.model_path = path, .precision = "fp32", .threads = 2,
                      .vocab_path = t_ref("tokenizer/bpe_simple_vocab_16e6.txt.gz")};
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    CHECKF(e != NULL, "other sizes: loads (config found beside the file)", "%s", err.msg);
    if (e) run(e);
    if (e) txt2img(e, "euler", 5.0f);
    if (e) txt2img(e, "DPM++ 2M Karras", 1.0f);
    if (e) txt2img(e, "euler_a", 1.0f);
    if (e) txt2img(e, "Euler a", 5.0f);
    sd_engine_free(e);
    t_rmtree(dir);
    return t_done();
}
