/* test_layer_rule.c — the UNet's per-layer precision rule (unet.h,
 * unet_set_layer_rule; docs/ACCURACY.md "Precision per layer") on tiny-sd1's
 * UNet and tiny-sdxl-s's:
 *   - malformed rules are refused (SD_EINVAL naming "layer_rule") and leave
 *     the rule as it was; "" and "none" mean no layer;
 *   - the FLOP grid: no layer 0, each kind and each level adding up to "all",
 *     "ff@1-" and "ff@0" to "ff", and "all" short of unet_flops by
 *     attention's own products only (they keep the model's precision);
 *   - a forward: over fp32, "ff" moves the output a little (plain bf16 ran)
 *     and setting "none" again gives fp32's bits back; a rule naming only
 *     levels the model lacks, or applied over bf16 (every layer plain bf16
 *     already), gives exactly the rule-less bits;
 *   - sd_engine_load's precisions: an explicit one runs every layer at it
 *     (no rule), `auto` on a CPU with AMX takes UNET_BF16_LAYERS.
 * On a CPU without bf16 kernels (below AVX-512): a rule naming layers and
 * the bf16 precisions are refused, naming AVX-512; the forwards are skipped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe_case.h"
#include "t.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/ops/ops.h"
#include "../../src/engine/pipeline.h"

static void refusals(sd_unet *u)
{
    static const char *bad[] = {"xx", "ff@", "ff@9", "ff@-", "ff@1x", "ff,,attn", "attn@1-2", "ff@", "@1",
                                "ff@1-ff@1-ff@1-ff@1-ff@1-ff@1-ff@1-ff@1-ff@1-ff@1-ff@1-ff@1-ff@1-"};
    sd_err err;
    sd_err_clear(&err);
    /* without bf16 kernels (below AVX-512) a rule naming layers is refused */
    const char *want = ops_cpu_bf16() ? "ff,attn@12" : "";
    if (ops_cpu_bf16())
        CHECK(!unet_set_layer_rule(u, "ff,attn@12", &err) && !strcmp(unet_layer_rule(u), "ff,attn@12"),
              "layer rule ff,attn@12 is taken");
    else
        CHECKF(unet_set_layer_rule(u, "ff,attn@12", &err) == -1 && err.code == SD_EINVAL &&
                   !strcmp(err.field, "layer_rule") && strstr(err.msg, "AVX-512") && !*unet_layer_rule(u),
               "no bf16 kernels on this CPU: layer rule ff,attn@12 refused naming layer_rule and AVX-512",
               "%s", err.msg);
    int refused = 0, kept = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sd_err_clear(&err);
        refused += unet_set_layer_rule(u, bad[i], &err) == -1 && err.code == SD_EINVAL && !strcmp(err.field, "layer_rule");
        kept &= !strcmp(unet_layer_rule(u), want);
    }
    CHECKF(refused == (int)(sizeof bad / sizeof bad[0]) && kept,
           "malformed layer rules refused (SD_EINVAL, field layer_rule), the rule kept", "%d refused", refused);
    CHECK(!unet_set_layer_rule(u, "none", &err) && !*unet_layer_rule(u) && !unet_set_layer_rule(u, "", &err) &&
              !*unet_layer_rule(u), "layer rules none and \"\": no layer");
}

static int near(double a, double b) { return fabs(a - b) <= 1e-9 * (fabs(a) + fabs(b)) + 1e-3; }

static void flop_grid(sd_unet *u, const char *model)
{
    static const char *kinds[] = {"res", "attn", "ff", "proj", "emb", "sample", "io"};
    int B = 2, H = 16, W = 12, T = 77, nl = unet_get_info(u)->levels;
    double all = unet_flops_rule(u, B, H, W, T, "all"), total = unet_flops(u, B, H, W, T), sk = 0, sl = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) sk += unet_flops_rule(u, B, H, W, T, kinds[k]);
    for (int l = 0; l < nl; l++) {
        char r[16];
        snprintf(r, sizeof r, "all@%d", l);
        sl += unet_flops_rule(u, B, H, W, T, r);
    }
    double ff = unet_flops_rule(u, B, H, W, T, "ff"), ff0 = unet_flops_rule(u, B, H, W, T, "ff@0"),
           ff1 = unet_flops_rule(u, B, H, W, T, "ff@1-");
    char name[160];
    snprintf(name, sizeof name, "%s: rule FLOPs: kinds and levels add up to all, all < total, ff = ff@0 + ff@1-", model);
    CHECKF(unet_flops_rule(u, B, H, W, T, "none") == 0 && all > 0 && near(sk, all) && near(sl, all) && all < total &&
               ff > 0 && near(ff0 + ff1, ff) && unet_flops_rule(u, B, H, W, T, "bad") < 0,
           name, "all %.0f kinds %.0f levels %.0f total %.0f ff %.0f = %.0f + %.0f", all, sk, sl, total, ff, ff0, ff1);
}

/* One forward of u on fixed inputs into out; 0 or -1. */
static int forward(sd_unet *u, float *out)
{
    const unet_info *in = unet_get_info(u);
    int B = 2, H = 8, W = 8, T = 77, C = in->out_channels;
    size_t nx = (size_t)B * C * H * W, nc = (size_t)B * T * in->context_dim, nv = (size_t)B * in->add_dim;
    float *x = malloc(sizeof(float) * nx), *ctx = malloc(sizeof(float) * nc), *vec = nv ? malloc(sizeof(float) * nv) : NULL;
    for (size_t i = 0; i < nx; i++) x[i] = sinf(0.37f * (float)i);
    for (size_t i = 0; i < nc; i++) ctx[i] = cosf(0.11f * (float)i);
    for (size_t i = 0; i < nv; i++) vec[i] = i % in->add_dim >= (size_t)in->add_text_dim ? 64.f : sinf((float)i);
    float t[2] = {500.f, 80.f};
    unet_cond c = unet_cond_text(ctx, T);
    c.vec = vec;
    c.vec_dim = nv ? in->add_dim : 0;
    sd_err err;
    sd_err_clear(&err);
    int rc = unet_forward(u, x, t, &c, B, H, W, out, &err);
    if (rc) printf("# unet_forward: %s\n", err.msg);
    free(x); free(ctx); free(vec);
    return rc;
}

static double max_rel(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m ? d / m : d;
}

static void forwards(sd_unet *u, const char *model)
{
    const unet_info *in = unet_get_info(u);
    size_t n = (size_t)2 * in->out_channels * 8 * 8;
    float *ref = malloc(sizeof(float) * n), *o = malloc(sizeof(float) * n);
    sd_err err;
    char name[200];
    sd_err_clear(&err);
    if (!ops_cpu_bf16()) {   /* no plain bf16 layers here: refusals() checked the refusal */
        printf("# %s: no bf16 kernels on this CPU (below AVX-512): the rule's forwards skipped\n", model);
        free(ref); free(o);
        return;
    }
    unet_set_precision(u, OPS_FP32);
    int ok = !unet_set_layer_rule(u, "none", &err) && !forward(u, ref);
    ok = ok && !unet_set_layer_rule(u, "ff", &err) && !forward(u, o);
    double d = ok ? max_rel(o, ref, n) : -1;
    snprintf(name, sizeof name, "%s: fp32 + ff moves the output by a bf16 rounding (0 < rel <= 1e-2)", model);
    CHECKF(ok && d > 0 && d <= 1e-2, name, "rel %.3g", d);
    ok = ok && !unet_set_layer_rule(u, "none", &err) && !forward(u, o);
    snprintf(name, sizeof name, "%s: fp32 after the rule is lifted: fp32's bits", model);
    CHECK(ok && !memcmp(o, ref, sizeof(float) * n), name);
    ok = ok && !unet_set_layer_rule(u, "all@7", &err) && !forward(u, o);
    snprintf(name, sizeof name, "%s: a rule naming only a level the model lacks changes no bit", model);
    CHECK(ok && !memcmp(o, ref, sizeof(float) * n), name);
    unet_set_precision(u, OPS_BF16);
    ok = ok && !unet_set_layer_rule(u, "none", &err) && !forward(u, ref);
    ok = ok && !unet_set_layer_rule(u, "all", &err) && !forward(u, o);
    snprintf(name, sizeof name, "%s: over bf16 the rule changes no bit (every layer is plain bf16 already)", model);
    CHECK(ok && !memcmp(o, ref, sizeof(float) * n), name);
    free(ref); free(o);
}

/* sd_engine_load: explicit precisions run every layer; auto takes the rule on AMX */
static void engine_rules(void)
{
    static const char *prec[] = {"fp32", "bf16x2", "bf16", "auto"};
    unsetenv("SD_PRECISION");   /* auto must be the machine's choice */
    for (int p = 0; p < 4; p++) {
        char msg[600], name[160];
        sd_engine *e = pipe_load(0, 0, prec[p], msg, sizeof msg);
        if ((p == 1 || p == 2) && !ops_cpu_bf16()) {
            snprintf(name, sizeof name, "no bf16 kernels on this CPU: precision %s refused at load, naming AVX-512",
                     prec[p]);
            CHECKF(!e && strstr(msg, "AVX-512"), name, "%s", e ? "loaded" : msg);
            if (e) sd_engine_free(e);
            continue;
        }
        if (!e) { CHECKF(0, "load tiny-sd1", "%s: %s", prec[p], msg); continue; }
        sd_model_info info;
        sd_engine_info(e, &info);
        const char *rule = unet_layer_rule(sd_engine_unet(e));
        int want = p == 3 && strstr(sd_precision_resolved("auto"), "bf16 " UNET_BF16_LAYERS_NAME);
        snprintf(name, sizeof name, "precision %s (%s): the per-layer rule is %s", prec[p], info.precision,
                 want ? UNET_BF16_LAYERS : "none");
        CHECKF(!strcmp(rule, want ? UNET_BF16_LAYERS : "") && !strcmp(info.precision, sd_precision_resolved(prec[p])),
               name, "rule '%s', resolved '%s'", rule, sd_precision_resolved(prec[p]));
        if (p == 3 && ops_cpu_amx())
            CHECK(want && !strcmp(info.precision, "bf16x2, bf16 " UNET_BF16_LAYERS_NAME ", VAE bf16"),
                  "auto on AMX: bf16x2 with the rule, VAE bf16");
        sd_engine_free(e);
    }
}

int main(void)
{
    if (!t_have_ref()) { CHECKF(0, "reference data", "../shared/reference not found (set SD_REF)"); return t_done(); }
    static const char *models[] = {"tiny-sd1", "tiny-sd2", "tiny-sdxl-s"};
    for (int m = 0; m < 3; m += 2) {
        char msg[600];
        sd_engine *e = pipe_load(m, 0, "fp32", msg, sizeof msg);
        if (!e) { CHECKF(0, "load a tiny model", "%s: %s", models[m], msg); continue; }
        sd_unet *u = sd_engine_unet(e);
        if (!m) refusals(u);
        flop_grid(u, models[m]);
        forwards(u, models[m]);
        sd_engine_free(e);
    }
    engine_rules();
    return t_done();
}
