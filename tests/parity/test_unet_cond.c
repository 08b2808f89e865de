/* test_unet_cond.c — the UNet's conditioning slots (unet_cond in unet.h):
 * the 9-channel inpainting UNet (tiny-sd1-inpaint, folder and single file)
 * fed through the extra-channel slot matches diffusers' raw output
 * (goldens/inpaint-tiny-sd1/inpaint9_euler_10_strength1, first call) and
 * equals, bit for bit, the same input passed as one 9-channel latent; an
 * explicit context width gives the same bits as the implicit one.  And the
 * refusals: an added vector given to a UNet without an add-embedding, extra
 * channels that do not make conv_in's input channels, a context of the wrong
 * width, no context, slot pointers and counts that disagree — each an
 * SD_EINVAL naming the slot, with the output left untouched. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "parity.h"
#include "t.h"
#include "../../src/engine/models/unet.h"

#define TOL 1e-4
#define RUN "inpaint-tiny-sd1/inpaint9_euler_10_strength1/"

typedef struct golden {
    npy in, out, ctx, ts;   /* unet_in [calls,2,9,h,w], unet_out [calls,2,4,h,w], context, timesteps */
} golden;

static int golden_load(golden *g)
{
    memset(g, 0, sizeof *g);
    return npy_load(t_ref("goldens/" RUN "unet_in.npy"), &g->in) ||
           npy_load(t_ref("goldens/" RUN "unet_out.npy"), &g->out) ||
           npy_load(t_ref("goldens/" RUN "context.npy"), &g->ctx) ||
           npy_load(t_ref("goldens/" RUN "timesteps.npy"), &g->ts) ? -1 : 0;
}

static void golden_free(golden *g)
{
    npy_free(&g->in); npy_free(&g->out); npy_free(&g->ctx); npy_free(&g->ts);
}

/* Split call 0's [B,9,h,w] input into the latent [B,4,h,w] and the extra [B,5,h,w]. */
static void split_input(const golden *g, int B, int hw, float *lat, float *extra)
{
    for (int b = 0; b < B; b++) {
        memcpy(lat + (size_t)b * 4 * hw, g->in.f + (size_t)b * 9 * hw, sizeof(float) * 4 * hw);
        memcpy(extra + (size_t)b * 5 * hw, g->in.f + ((size_t)b * 9 + 4) * hw, sizeof(float) * 5 * hw);
    }
}

static void check_inpaint(const char *src, const char *path, const golden *g)
{
    char name[160];
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = parity_open("tiny-sd1-inpaint", src, path);
    if (!w) return;
    unet_hints h = unet_hints_sd1();   /* the single file has no config; the folder's says 8 heads too */
    sd_unet *u = unet_load(w, &h, NULL, &err);
    snprintf(name, sizeof name, "tiny-sd1-inpaint/%s: 9 input channels, 4 out", src);
    CHECKF(u && unet_get_info(u)->in_channels == 9 && unet_get_info(u)->out_channels == 4, name, "%s", err.msg);
    if (!u) { sdw_close(w); return; }
    const int B = 2, H = (int)g->in.shape[3], W = (int)g->in.shape[4], hw = H * W, T = (int)g->ctx.shape[1];
    size_t nout = (size_t)B * 4 * hw;
    float *lat = malloc(sizeof(float) * B * 4 * hw), *extra = malloc(sizeof(float) * B * 5 * hw);
    float *o1 = malloc(sizeof(float) * nout), *o2 = malloc(sizeof(float) * nout);
    float t[2] = {g->ts.f[0], g->ts.f[0]};
    split_input(g, B, hw, lat, extra);

    unet_cond c = unet_cond_text(g->ctx.f, T);
    c.concat = extra;
    c.concat_channels = 5;
    int rc = unet_forward(u, lat, t, &c, B, H, W, o1, &err);
    double d = rc ? 1e9 : npy_maxdiff(o1, g->out.f, nout);
    printf("metric unet_cond/tiny-sd1-inpaint/%s/call0 maxabs %.3g tol %g\n", src, d, TOL);
    snprintf(name, sizeof name, "tiny-sd1-inpaint/%s: latent + 5 extra channels match diffusers", src);
    CHECKF(rc == 0 && d <= TOL, name, "rc %d maxabs %g %s", rc, d, err.msg);

    rc = unet_forward(u, g->in.f, t, &(unet_cond){.ctx = g->ctx.f, .T = T}, B, H, W, o2, &err);
    snprintf(name, sizeof name, "tiny-sd1-inpaint/%s: extra-channel slot = one 9-channel latent, bit for bit", src);
    CHECKF(rc == 0 && !memcmp(o1, o2, sizeof(float) * nout), name, "rc %d maxabs %g", rc,
           rc ? 1e9 : npy_maxdiff(o1, o2, nout));

    c.concat_channels = 4;   /* 5 + 4 = 9, but the latent would then be 5 channels, not out's 4 */
    memset(o2, 0, sizeof(float) * nout);
    rc = unet_forward(u, lat, t, &c, B, H, W, o2, &err);
    snprintf(name, sizeof name, "tiny-sd1-inpaint/%s: 4 extra channels refused (concat)", src);
    CHECKF(rc == -1 && err.code == SD_EINVAL && !strcmp(err.field, "concat") && strstr(err.msg, "9 input channels") &&
           npy_maxabs(o2, nout) == 0, name, "rc %d code %d field %s: %s", rc, err.code, err.field, err.msg);
    free(lat); free(extra); free(o1); free(o2);
    unet_free(u);
    sdw_close(w);
}

/* One refused conditioning on tiny-sd1's UNet: -1, SD_EINVAL, the field, out untouched. */
static void expect_refused(sd_unet *u, const char *what, const unet_cond *c, const char *field, const char *frag)
{
    enum { B = 1, H = 8, W = 8 };
    static float x[B * 4 * H * W], out[B * 4 * H * W];
    float t = 500;
    for (size_t i = 0; i < sizeof out / sizeof *out; i++) out[i] = 7.f;
    sd_err err;
    sd_err_clear(&err);
    int rc = unet_forward(u, x, &t, c, B, H, W, out, &err);
    int kept = 1;
    for (size_t i = 0; i < sizeof out / sizeof *out; i++) kept &= out[i] == 7.f;
    CHECKF(rc == -1 && err.code == SD_EINVAL && !strcmp(err.field, field) && strstr(err.msg, frag) && kept, what,
           "rc %d code %d field '%s' kept %d: %s", rc, err.code, err.field, kept, err.msg);
}

static void check_refusals(void)
{
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = parity_open("tiny-sd1", "diffusers", "models/tiny-sd1");
    if (!w) return;
    sd_unet *u = unet_load(w, NULL, NULL, &err);
    CHECKF(u && unet_get_info(u)->add_dim == 0, "tiny-sd1: no add-embedding (add_dim 0)", "%s", err.msg);
    if (!u) { sdw_close(w); return; }
    enum { T = 77, CTXW = 64 };
    static float ctx[T * CTXW], vec[16], extra[5 * 8 * 8];
    unet_cond c = unet_cond_text(ctx, T);
    c.vec = vec; c.vec_dim = 16;
    expect_refused(u, "refused: added vector without an add-embedding", &c, "added_cond", "no add-embedding");
    c = unet_cond_text(ctx, T);
    c.vec_dim = 16;
    expect_refused(u, "refused: added width without a vector", &c, "added_cond", "disagree");
    c = unet_cond_text(ctx, T);
    c.concat = extra; c.concat_channels = 5;
    expect_refused(u, "refused: 5 extra channels on a 4-channel conv_in", &c, "concat", "4 input channels");
    c = unet_cond_text(ctx, T);
    c.concat = extra;
    expect_refused(u, "refused: extra channels without a count", &c, "concat", "disagree");
    c = unet_cond_text(ctx, T);
    c.ctx_dim = 65;
    expect_refused(u, "refused: a 65-wide context on a 64-wide cross-attention", &c, "context", "takes 64");
    c = unet_cond_text(NULL, T);
    expect_refused(u, "refused: no context", &c, "context", "no cross-attention context");
    expect_refused(u, "refused: no conditioning at all", NULL, "context", "no cross-attention context");

    /* the explicit width is the implicit one */
    static float x[4 * 8 * 8], o1[4 * 8 * 8], o2[4 * 8 * 8];
    for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = sinf((float)i);
    for (size_t i = 0; i < sizeof ctx / sizeof *ctx; i++) ctx[i] = cosf((float)i * 0.1f);
    float t = 500;
    c = unet_cond_text(ctx, T);
    int r1 = unet_forward(u, x, &t, &c, 1, 8, 8, o1, &err);
    c.ctx_dim = CTXW;
    int r2 = unet_forward(u, x, &t, &c, 1, 8, 8, o2, &err);
    CHECKF(r1 == 0 && r2 == 0 && !memcmp(o1, o2, sizeof o1), "ctx_dim 64 given = ctx_dim 0, bit for bit", "%d %d %s",
           r1, r2, err.msg);
    unet_free(u);
    sdw_close(w);
}

int main(void)
{
    if (!parity_begin()) return t_done();
    golden g;
    if (golden_load(&g)) CHECK(0, "inpainting goldens readable");
    else {
        check_inpaint("diffusers", "models/tiny-sd1-inpaint", &g);
        check_inpaint("single", "models/tiny-sd1-inpaint-unet-fp16.safetensors", &g);
    }
    golden_free(&g);
    check_refusals();
    return t_done();
}
