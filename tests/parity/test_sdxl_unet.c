/* test_sdxl_unet.c — parity of the SDXL UNet with its added conditioning
 * (unet.c, unet_cond.vec = [pooled text | 6 time ids]) with the diffusers
 * v0.25.1 goldens in goldens/tiny-sdxl-s/unet/, loaded from the diffusers
 * folder (F32, config.json) and from the original-naming single file (F16,
 * label_emb.* and the sgm config beside it): outputs at t = 999/500/1 for
 * x_8x12 and x_16x8, the per-row t [999, 1] run with non-default time ids,
 * and the act_t500_timeids_b intermediates (time_proj, time_embedding,
 * add_time_proj, add_embedding, every block) through unet_set_tap.  And the
 * refusals: no added vector, a vector of the wrong width.  Prints "metric
 * unet/tiny-sdxl-s/<source>/<case> maxabs X tol 1e-4" for docs/ACCURACY.md. */
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "parity.h"
#include "t.h"
#include "../../src/engine/models/unet.h"

#define TOL 1e-4
#define MODEL "tiny-sdxl-s"
#define NTAPS 16

typedef struct taps {
    char names[NTAPS][32];
    double diff[NTAPS];
    int n, bad_shape;
} taps;

static int load(const char *file, npy *a) { return parity_golden(MODEL, "unet", file, a); }

/* Compare each tapped activation with act_t500_timeids_b/<name>.npy. */
static void on_tap(void *ud, const char *name, const float *d, int n, int c, int h, int w)
{
    taps *tp = ud;
    if (tp->n >= NTAPS) return;
    char file[64];
    snprintf(file, sizeof file, "act_t500_timeids_b/%s", name);
    snprintf(tp->names[tp->n], sizeof tp->names[0], "%s", name);
    npy a;
    if (load(file, &a)) { tp->diff[tp->n++] = 1e9; return; }
    if (a.n != (size_t)n * c * h * w) { tp->bad_shape = 1; tp->diff[tp->n++] = 1e9; npy_free(&a); return; }
    tp->diff[tp->n++] = npy_maxdiff(d, a.f, a.n);
    npy_free(&a);
}

/* The conditioning goldens and the vec rows built from them. */
typedef struct cond {
    npy ctx, text, ids, ids_b;
    float *vec, *vec_b;   /* [2, P + 6]: text_embeds then time_ids (or time_ids_b) */
    int P;
} cond;

static float *make_vec(const npy *text, const npy *ids, int P)
{
    float *v = malloc(sizeof(float) * 2 * (P + 6));
    for (int b = 0; b < 2; b++) {
        memcpy(v + b * (P + 6), text->f + b * P, sizeof(float) * P);
        memcpy(v + b * (P + 6) + P, ids->f + b * 6, sizeof(float) * 6);
    }
    return v;
}

static int cond_load(cond *c)
{
    memset(c, 0, sizeof *c);
    if (load("context", &c->ctx) || load("text_embeds", &c->text) || load("time_ids", &c->ids) ||
        load("time_ids_b", &c->ids_b))
        return -1;
    c->P = (int)c->text.shape[1];
    c->vec = make_vec(&c->text, &c->ids, c->P);
    c->vec_b = make_vec(&c->text, &c->ids_b, c->P);
    return 0;
}

static void cond_free(cond *c)
{
    npy_free(&c->ctx); npy_free(&c->text); npy_free(&c->ids); npy_free(&c->ids_b);
    free(c->vec); free(c->vec_b);
}

static unet_cond as_unet_cond(const cond *c, const float *vec)
{
    unet_cond u = unet_cond_text(c->ctx.f, (int)c->ctx.shape[1]);
    u.vec = vec;
    u.vec_dim = c->P + 6;
    return u;
}

static void run_case(sd_unet *u, const char *src, const char *xname, const char *oname, float t0, float t1,
                     const cond *c, const float *vec)
{
    npy x, want;
    char name[256];
    snprintf(name, sizeof name, MODEL "/%s: %s", src, oname);
    if (load(xname, &x)) { CHECKF(0, name, "cannot read %s", xname); return; }
    if (load(oname, &want)) { CHECKF(0, name, "cannot read %s", oname); npy_free(&x); return; }
    int B = (int)x.shape[0], H = (int)x.shape[2], W = (int)x.shape[3];
    float t[2] = {t0, t1}, *out = malloc(sizeof(float) * want.n);
    sd_err err;
    sd_err_clear(&err);
    unet_cond uc = as_unet_cond(c, vec);
    int rc = unet_forward(u, x.f, t, &uc, B, H, W, out, &err);
    double d = rc ? 1e9 : npy_maxdiff(out, want.f, want.n);
    printf("metric unet/" MODEL "/%s/%s maxabs %.3g tol %g\n", src, oname + 4, d, TOL);
    CHECKF(rc == 0 && d <= TOL && B == 2, name, "rc %d maxabs %g %s", rc, d, err.msg);
    free(out);
    npy_free(&x);
    npy_free(&want);
}

static void check_taps(sd_unet *u, const char *src, const cond *c)
{
    char name[256];
    npy x;
    if (load("x_8x12", &x)) { CHECK(0, "x_8x12 golden"); return; }
    taps tp = {0};
    unet_set_tap(u, on_tap, &tp);
    float t[2] = {500, 500}, *out = malloc(sizeof(float) * x.n);
    sd_err err;
    sd_err_clear(&err);
    unet_cond uc = as_unet_cond(c, c->vec_b);
    int rc = unet_forward(u, x.f, t, &uc, 2, 8, 12, out, &err);
    unet_set_tap(u, NULL, NULL);
    int seen_add = 0;
    for (int i = 0; i < tp.n; i++)
        seen_add += !strcmp(tp.names[i], "add_time_proj") || !strcmp(tp.names[i], "add_embedding");
    snprintf(name, sizeof name, MODEL "/%s: act_t500_timeids_b forward, 13 taps incl. the added path", src);
    CHECKF(rc == 0 && tp.n == 13 && seen_add == 2, name, "rc %d taps %d added %d %s", rc, tp.n, seen_add, err.msg);
    for (int i = 0; i < tp.n; i++) {
        printf("metric unet/" MODEL "/%s/act_t500_timeids_b/%s maxabs %.3g tol %g\n", src, tp.names[i], tp.diff[i], TOL);
        snprintf(name, sizeof name, MODEL "/%s: act_t500_timeids_b/%s", src, tp.names[i]);
        CHECKF(tp.diff[i] <= TOL, name, "maxabs %g%s", tp.diff[i], tp.bad_shape ? " (shape mismatch)" : "");
    }
    free(out);
    npy_free(&x);
}

/* A refused added vector: -1, SD_EINVAL on "added_cond", the output untouched. */
static void expect_refused(sd_unet *u, const char *what, const unet_cond *c, const char *frag)
{
    enum { B = 2, H = 8, W = 8 };
    static float x[B * 4 * H * W], out[B * 4 * H * W];
    float t[B] = {500, 500};
    for (size_t i = 0; i < sizeof out / sizeof *out; i++) out[i] = 7.f;
    sd_err err;
    sd_err_clear(&err);
    int rc = unet_forward(u, x, t, c, B, H, W, out, &err);
    int kept = 1;
    for (size_t i = 0; i < sizeof out / sizeof *out; i++) kept &= out[i] == 7.f;
    CHECKF(rc == -1 && err.code == SD_EINVAL && !strcmp(err.field, "added_cond") && strstr(err.msg, frag) && kept,
           what, "rc %d code %d field '%s' kept %d: %s", rc, err.code, err.field, kept, err.msg);
}

static void check_refusals(sd_unet *u, const char *src, const cond *c)
{
    char name[256];
    unet_cond uc = unet_cond_text(c->ctx.f, (int)c->ctx.shape[1]);
    snprintf(name, sizeof name, MODEL "/%s: refused: no added vector", src);
    expect_refused(u, name, &uc, "needs the added vector");
    uc = as_unet_cond(c, c->vec);
    uc.vec_dim = c->P;   /* the pooled text without the time ids */
    snprintf(name, sizeof name, MODEL "/%s: refused: a vector without the 6 time ids", src);
    expect_refused(u, name, &uc, "takes 22");
}

static void check_model(const char *src, const char *path, const cond *c)
{
    char name[256];
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = parity_open(MODEL, src, path);
    if (!w) return;
    sd_unet *u = unet_load(w, NULL, NULL, &err);   /* hints from config.json / the sgm config */
    snprintf(name, sizeof name, MODEL "/%s: unet_load", src);
    CHECKF(u != NULL, name, "%s", err.msg);
    if (!u) { sdw_close(w); return; }
    const unet_info *in = unet_get_info(u);
    snprintf(name, sizeof name, MODEL "/%s: SDXL architecture from shapes and hints", src);
    CHECKF(in->levels == 3 && in->channels[0] == 32 && in->channels[1] == 32 && in->channels[2] == 64 &&
           !in->attention[0] && in->attention[1] && in->attention[2] && in->heads[1] == 2 && in->heads[2] == 4 &&
           in->linear_proj == 1 && in->context_dim == 40 && in->time_dim == 128 && in->add_text_dim == 16 &&
           in->add_time_dim == 16 && in->add_dim == 22 && in->down_factor == 4, name,
           "levels %d ch %d/%d/%d attn %d%d%d heads %d/%d ctx %d te %d add %d = %d + 6 (A %d)", in->levels,
           in->channels[0], in->channels[1], in->channels[2], in->attention[0], in->attention[1], in->attention[2],
           in->heads[1], in->heads[2], in->context_dim, in->time_dim, in->add_dim, in->add_text_dim,
           in->add_time_dim);

    check_taps(u, src, c);
    static const float ts[3] = {999, 500, 1};
    for (int i = 0; i < 3; i++) {
        char o[64];
        snprintf(o, sizeof o, "out_8x12_t%d", (int)ts[i]);
        run_case(u, src, "x_8x12", o, ts[i], ts[i], c, c->vec);
        snprintf(o, sizeof o, "out_16x8_t%d", (int)ts[i]);
        run_case(u, src, "x_16x8", o, ts[i], ts[i], c, c->vec);
    }
    run_case(u, src, "x_8x12", "out_8x12_t999_1_timeids_b", 999, 1, c, c->vec_b);
    check_refusals(u, src, c);
    unet_free(u);
    sdw_close(w);
}

static void check_hints(void)
{
    sd_err err;
    sd_err_clear(&err);
    unet_hints h;
    const char *d = "{\"attention_head_dim\": [2, 2, 4], \"addition_time_embed_dim\": 16}";
    CHECK(unet_hints_from_diffusers_config(d, strlen(d), &h, &err) == 0 && h.n_level_heads == 3 &&
          h.level_heads[2] == 4 && h.add_time_dim == 16, "hints: diffusers addition_time_embed_dim");
    const char *bad = "{\"attention_head_dim\": 8, \"addition_time_embed_dim\": \"x\"}";
    CHECK(unet_hints_from_diffusers_config(bad, strlen(bad), &h, &err) == -1 &&
          !strcmp(err.field, "addition_time_embed_dim"), "hints: a bad addition_time_embed_dim names the field");
    sd_err_clear(&err);
    /* the sgm layout of a real SDXL yaml, as JSON */
    const char *sgm = "{\"model\":{\"params\":{\"network_config\":{\"params\":{\"num_head_channels\":64}},"
                      "\"conditioner_config\":{\"params\":{\"emb_models\":["
                      "{\"target\":\"sgm.modules.encoders.modules.FrozenCLIPEmbedder\",\"params\":{}},"
                      "{\"target\":\"sgm.modules.encoders.modules.ConcatTimestepEmbedderND\","
                      "\"params\":{\"outdim\":256}}]}}}}}";
    CHECKF(unet_hints_from_ldm_config(sgm, strlen(sgm), &h, &err) == 0 && h.head_dim == 64 && h.add_time_dim == 256,
           "hints: sgm yaml layout (network_config, emb_models outdim)", "head_dim %d add %d %s", h.head_dim,
           h.add_time_dim, err.msg);
    h = unet_hints_for_family(SD_FAMILY_SDXL);
    CHECK(h.head_dim == 64 && h.add_time_dim == 256, "hints: SDXL family default head_dim 64, time ids 256 wide");
    h = unet_hints_for_family(SD_FAMILY_SD1);
    CHECK(h.num_heads == 8 && h.add_time_dim == 0, "hints: SD1 family has no added time ids");
}

int main(void)
{
    if (!parity_begin()) return t_done();
    check_hints();
    cond c;
    if (cond_load(&c)) CHECK(0, MODEL " conditioning goldens readable");
    else {
        check_model("diffusers", "models/tiny-sdxl-s", &c);
        check_model("single", "models/tiny-sdxl-s-fp16.safetensors", &c);
    }
    cond_free(&c);
    return t_done();
}
