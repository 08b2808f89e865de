/* test_unet.c — parity of the UNet (src/engine/models/unet.c) with the
 * diffusers v0.25.1 goldens in goldens/<model>/unet/: tiny-sd1 and tiny-sd2,
 * each loaded from the diffusers folder and from the fp16 single file, every
 * golden input (x_8x8, x_16x12; t = 999, 500, 1 and per-row [999, 1]) and
 * the act_8x8_t500 intermediates.  Also: the head hints parsers, and clear
 * load errors for a wrong head split.  Prints "metric unet/<model>/<source>/
 * <case> maxabs X tol 1e-4" lines for docs/ACCURACY.md. */
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "parity.h"
#include "t.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/ops/ops.h"

#define TOL 1e-4

typedef struct taps {
    const char *model;
    char names[16][32];
    double diff[16];
    int n, bad_shape;
} taps;

/* Compare each tapped activation with act_8x8_t500/<name>.npy. */
static void on_tap(void *ud, const char *name, const float *d, int n, int c, int h, int w)
{
    taps *tp = ud;
    if (tp->n >= 16) return;
    char file[64];
    snprintf(file, sizeof file, "act_8x8_t500/%s", name);
    npy a;
    snprintf(tp->names[tp->n], sizeof tp->names[0], "%s", name);
    if (parity_golden(tp->model, "unet", file, &a)) { tp->diff[tp->n++] = 1e9; return; }
    if (a.n != (size_t)n * c * h * w) { tp->bad_shape = 1; tp->diff[tp->n++] = 1e9; npy_free(&a); return; }
    tp->diff[tp->n++] = npy_maxdiff(d, a.f, a.n);
    npy_free(&a);
}

static int load(const char *model, const char *file, npy *a)
{
    return parity_golden(model, "unet", file, a);
}

static void run_case(sd_unet *u, const char *model, const char *src, const char *xname, const char *oname,
                     float t0, float t1, const npy *ctx)
{
    npy x, want;
    char name[256];
    snprintf(name, sizeof name, "%s/%s: %s", model, src, oname);
    if (load(model, xname, &x)) { CHECKF(0, name, "cannot read %s", xname); return; }
    if (load(model, oname, &want)) { CHECKF(0, name, "cannot read %s", oname); npy_free(&x); return; }
    int B = (int)x.shape[0], H = (int)x.shape[2], W = (int)x.shape[3], T = (int)ctx->shape[1];
    float t[2] = {t0, t1};
    float *out = malloc(sizeof(float) * want.n);
    sd_err err;
    sd_err_clear(&err);
    int rc = unet_forward(u, x.f, t, &(unet_cond){.ctx = ctx->f, .T = T}, B, H, W, out, &err);
    double d = rc ? 1e9 : npy_maxdiff(out, want.f, want.n);
    printf("metric unet/%s/%s/%s maxabs %.3g tol %g\n", model, src, oname + 4, d, TOL);
    CHECKF(rc == 0 && d <= TOL && B == 2, name, "rc %d maxabs %g %s", rc, d, err.msg);
    free(out);
    npy_free(&x);
    npy_free(&want);
}

static void check_model(const char *model, const char *src, const char *path, int sd2)
{
    char name[256];
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = parity_open(model, src, path);
    if (!w) return;
    sd_unet *u = unet_load(w, NULL, NULL, &err);   /* hints from config.json / LDM config */
    snprintf(name, sizeof name, "%s/%s: unet_load", model, src);
    CHECKF(u != NULL, name, "%s", err.msg);
    if (!u) { sdw_close(w); return; }
    const unet_info *in = unet_get_info(u);
    snprintf(name, sizeof name, "%s/%s: architecture from shapes", model, src);
    int heads0 = sd2 ? 2 : 8, heads1 = sd2 ? 4 : 8;
    CHECKF(in->levels == 2 && in->channels[0] == 32 && in->channels[1] == 64 && in->down_resnets[0] == 2 &&
           in->down_resnets[1] == 2 && in->up_resnets[0] == 3 && in->up_resnets[1] == 3 &&
           in->attention[0] == 1 && in->attention[1] == 0 && in->context_dim == (sd2 ? 96 : 64) &&
           in->linear_proj == sd2 && in->in_channels == 4 && in->out_channels == 4 && in->time_dim == 128 &&
           in->heads[0] == heads0 && in->heads[1] == heads1 && in->down_factor == 2, name,
           "levels %d ch %d,%d res %d,%d/%d,%d attn %d,%d ctx %d linear %d heads %d,%d",
           in->levels, in->channels[0], in->channels[1], in->down_resnets[0], in->down_resnets[1],
           in->up_resnets[0], in->up_resnets[1], in->attention[0], in->attention[1], in->context_dim,
           in->linear_proj, in->heads[0], in->heads[1]);

    npy ctx;
    if (load(model, "context", &ctx)) { CHECK(0, "context golden"); unet_free(u); sdw_close(w); return; }

    /* intermediates at t=500 on x_8x8 */
    taps tp = {.model = model};
    unet_set_tap(u, on_tap, &tp);
    npy x;
    if (!load(model, "x_8x8", &x)) {
        float t[2] = {500, 500}, *out = malloc(sizeof(float) * x.n);
        int rc = unet_forward(u, x.f, t, &(unet_cond){.ctx = ctx.f, .T = (int)ctx.shape[1]}, 2, 8, 8, out, &err);
        snprintf(name, sizeof name, "%s/%s: act_8x8_t500 forward", model, src);
        CHECKF(rc == 0 && tp.n == 9, name, "rc %d taps %d %s", rc, tp.n, err.msg);
        for (int i = 0; i < tp.n; i++) {
            printf("metric unet/%s/%s/act_8x8_t500/%s maxabs %.3g tol %g\n", model, src, tp.names[i], tp.diff[i], TOL);
            snprintf(name, sizeof name, "%s/%s: act_8x8_t500/%s", model, src, tp.names[i]);
            CHECKF(tp.diff[i] <= TOL, name, "maxabs %g%s", tp.diff[i], tp.bad_shape ? " (shape mismatch)" : "");
        }
        free(out);
        npy_free(&x);
    }
    unet_set_tap(u, NULL, NULL);

    static const float ts[3] = {999, 500, 1};
    for (int i = 0; i < 3; i++) {
        char o[64];
        snprintf(o, sizeof o, "out_8x8_t%d", (int)ts[i]);
        run_case(u, model, src, "x_8x8", o, ts[i], ts[i], &ctx);
        snprintf(o, sizeof o, "out_16x12_t%d", (int)ts[i]);
        run_case(u, model, src, "x_16x12", o, ts[i], ts[i], &ctx);
    }
    run_case(u, model, src, "x_8x8", "out_8x8_t999_1", 999, 1, &ctx);
    npy_free(&ctx);
    unet_free(u);
    sdw_close(w);
}

static void check_hints(void)
{
    sd_err err;
    unet_hints h;
    sd_err_clear(&err);
    const char *d1 = "{\"attention_head_dim\": 8, \"num_attention_heads\": null}";
    CHECK(unet_hints_from_diffusers_config(d1, strlen(d1), &h, &err) == 0 && h.num_heads == 8 &&
          h.n_level_heads == 0 && h.head_dim == 0, "hints: diffusers int attention_head_dim = heads");
    const char *d2 = "{\"attention_head_dim\": [5, 10, 20, 20]}";
    CHECK(unet_hints_from_diffusers_config(d2, strlen(d2), &h, &err) == 0 && h.n_level_heads == 4 &&
          h.level_heads[0] == 5 && h.level_heads[3] == 20, "hints: diffusers list = heads per level");
    const char *d3 = "{\"attention_head_dim\": \"x\"}";
    CHECK(unet_hints_from_diffusers_config(d3, strlen(d3), &h, &err) == -1 && err.code == SD_EFORMAT &&
          strstr(err.msg, "attention_head_dim"), "hints: bad attention_head_dim names the field");
    sd_err_clear(&err);
    const char *l1 = "{\"unet\": {\"num_heads\": 8}}";
    CHECK(unet_hints_from_ldm_config(l1, strlen(l1), &h, &err) == 0 && h.num_heads == 8, "hints: LDM num_heads");
    const char *l2 = "{\"model\":{\"params\":{\"unet_config\":{\"params\":{\"num_heads\":-1,\"num_head_channels\":64}}}}}";
    CHECK(unet_hints_from_ldm_config(l2, strlen(l2), &h, &err) == 0 && h.head_dim == 64 && h.num_heads == 0,
          "hints: LDM num_head_channels (nested) wins");
    const char *l3 = "{\"unet\": {}}";
    CHECK(unet_hints_from_ldm_config(l3, strlen(l3), &h, &err) == -1, "hints: LDM without heads is an error");
    CHECK(unet_hints_sd1().num_heads == 8 && unet_hints_sd2().head_dim == 64, "hints: family defaults");

    /* a head split that does not divide the channels is a load error, not a crash */
    sd_err_clear(&err);
    sd_weights *w = sdw_open(t_ref("models/tiny-sd1"), &err);
    if (w) {
        unet_hints bad = {0};
        bad.head_dim = 24;
        sd_unet *u = unet_load(w, &bad, NULL, &err);
        CHECKF(u == NULL && err.code != SD_OK && strstr(err.msg, "heads"), "hints: impossible head size rejected",
               "%s", err.msg);
        unet_free(u);
        sd_err_clear(&err);
        bad.head_dim = 0;
        bad.n_level_heads = 3;
        bad.level_heads[0] = bad.level_heads[1] = bad.level_heads[2] = 2;
        u = unet_load(w, &bad, NULL, &err);
        CHECKF(u == NULL && strstr(err.msg, "levels"), "hints: per-level list of the wrong length rejected", "%s", err.msg);
        unet_free(u);
        sdw_close(w);
    }
}

int main(void)
{
    if (!parity_begin()) return t_done();
    check_hints();
    check_model("tiny-sd1", "diffusers", "models/tiny-sd1", 0);
    check_model("tiny-sd1", "single", "models/tiny-sd1-fp16.safetensors", 0);
    check_model("tiny-sd2", "diffusers", "models/tiny-sd2", 1);
    check_model("tiny-sd2", "single", "models/tiny-sd2-fp16.safetensors", 1);
    return t_done();
}
