/* test_unet_make_model.c — the UNet on single-file (LDM-named) checkpoints of
 * other sizes written by `sdserve make-model`: 3 levels of 32/64/96
 * channels, 1 ResBlock per level, attention at levels 0 and 2, transformer
 * depth 2, Linear proj, head size 16 from model.ldm_config.json; and a
 * 4-level SD1-style one.  Checks the architecture read from the shapes, then
 * forwards on odd latents produce finite output of the right size. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/ops/ops.h"

static unsigned long long rng = 77;
static float frand(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.f - 1.f;
}

static int forward_ok(sd_unet *u, int B, int H, int W, int T, const char *what)
{
    const unet_info *in = unet_get_info(u);
    size_t nx = (size_t)B * in->in_channels * H * W, no = (size_t)B * in->out_channels * H * W;
    size_t nc = (size_t)B * T * in->context_dim;
    float *x = malloc(sizeof(float) * nx), *c = malloc(sizeof(float) * nc), *o = malloc(sizeof(float) * (no + 1));
    float t[8];
    for (size_t i = 0; i < nx; i++) x[i] = frand();
    for (size_t i = 0; i < nc; i++) c[i] = frand();
    for (int b = 0; b < B; b++) t[b] = 999.f - 300.f * b;
    o[no] = -7.f;
    sd_err err;
    sd_err_clear(&err);
    int rc = unet_forward(u, x, t, &(unet_cond){.ctx = c, .T = T}, B, H, W, o, &err);
    int finite = 1;
    double mx = 0;
    for (size_t i = 0; i < no; i++) { if (!isfinite(o[i])) finite = 0; mx = fmax(mx, fabs(o[i])); }
    char name[160];
    snprintf(name, sizeof name, "%s: forward %dx%dx%dx%d, %d tokens: finite, sized", what, B, in->in_channels, H, W, T);
    CHECKF(rc == 0 && finite && mx > 0 && o[no] == -7.f, name, "rc %d finite %d max %g %s", rc, finite, mx, err.msg);
    free(x); free(c); free(o);
    return rc;
}

int main(void)
{
    const char *bd = getenv("SD_BUILD");
    char dir[] = "/tmp/sdserve_unetmm_XXXXXX", cmd[1024], path[600];
    if (!mkdtemp(dir)) { CHECK(0, "temp dir"); return t_done(); }

    /* SD2-like: Linear proj, head size from the LDM config */
    snprintf(path, sizeof path, "%s/a", dir);
    snprintf(cmd, sizeof cmd, "%s/sdserve make-model --preset demo -q -o %s --unet-channels 32,64,96 "
             "--unet-res-blocks 1 --unet-attn 0,2 --unet-head-channels 16 --unet-depth 2 --linear-proj "
             "--context-dim 48 --openclip --text-width 48 --text-heads 3", bd ? bd : "build", path);
    int rc = system(cmd);
    CHECKF(rc == 0, "make-model 3-level SD2-like", "%s -> %d", cmd, rc);
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = rc ? NULL : sdw_open(path, &err);
    sd_unet *u = w ? unet_load(w, NULL, NULL, &err) : NULL;
    CHECKF(u != NULL, "load 3-level single file (hints from model.ldm_config.json)", "%s", err.msg);
    if (u) {
        const unet_info *in = unet_get_info(u);
        CHECKF(in->levels == 3 && in->channels[0] == 32 && in->channels[1] == 64 && in->channels[2] == 96 &&
               in->down_resnets[0] == 1 && in->up_resnets[0] == 2 && in->attention[0] && !in->attention[1] &&
               in->attention[2] && in->linear_proj && in->context_dim == 48 && in->heads[0] == 2 &&
               in->heads[2] == 6, "3-level architecture from LDM names and shapes",
               "levels %d ch %d/%d/%d res %d/%d attn %d%d%d lin %d ctx %d heads %d/%d", in->levels,
               in->channels[0], in->channels[1], in->channels[2], in->down_resnets[0], in->up_resnets[0],
               in->attention[0], in->attention[1], in->attention[2], in->linear_proj, in->context_dim,
               in->heads[0], in->heads[2]);
        forward_ok(u, 2, 8, 6, 77, "3-level");
        forward_ok(u, 1, 7, 5, 154, "3-level");
        unet_free(u);
    }
    sdw_close(w);
    t_rmtree(path);

    /* SD1-like, 4 levels, 1x1-conv proj, heads from the config */
    snprintf(path, sizeof path, "%s/b", dir);
    snprintf(cmd, sizeof cmd, "%s/sdserve make-model --preset demo -q -o %s --unet-channels 32,32,64,64 "
             "--unet-res-blocks 2 --unet-attn 0,1,2 --unet-heads 4", bd ? bd : "build", path);
    rc = system(cmd);
    CHECKF(rc == 0, "make-model 4-level SD1-like", "%s -> %d", cmd, rc);
    sd_err_clear(&err);
    w = rc ? NULL : sdw_open(path, &err);
    u = w ? unet_load(w, NULL, NULL, &err) : NULL;
    CHECKF(u != NULL, "load 4-level single file", "%s", err.msg);
    if (u) {
        const unet_info *in = unet_get_info(u);
        CHECKF(in->levels == 4 && in->channels[3] == 64 && in->down_resnets[3] == 2 && in->up_resnets[0] == 3 &&
               in->attention[2] && !in->attention[3] && !in->linear_proj && in->heads[0] == 4 && in->down_factor == 8,
               "4-level architecture from LDM names and shapes", "levels %d heads %d lin %d", in->levels, in->heads[0],
               in->linear_proj);
        forward_ok(u, 2, 9, 6, 77, "4-level");   /* 9 -> 5 -> 3 -> 2 and back */
        unet_free(u);
    }
    sdw_close(w);
    t_rmtree(dir);
    return t_done();
}
