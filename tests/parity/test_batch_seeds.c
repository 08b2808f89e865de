/* test_batch_seeds.c — API.md's seed contract on the tiny reference models:
 * "seed is the seed that reproduces exactly that image with num_outputs=1".
 * Image i of a num_outputs=4 batch must be byte for byte the image seed+i
 * gives alone (the server names an image by its PNG's content, and the
 * PNG encoding of equal pixels is equal, so equal RGB bytes = same name).
 *
 * tiny-sd1 and tiny-sd2, each from its diffusers folder and its fp16 single
 * file; txt2img at 64x64 (the reproduction) and, tiny-sd1's folder,
 * 256x256 (latents 32x32: where the Winograd rule starts to matter), img2img from
 * a 64x64 init image (the sanitizer tier, SD_SANITIZED=1: tiny-sd1 at
 * 64x64 only); at the machine's default precision (auto:
 * SD_PRECISION unset, whatever tests/run.sh exports — bf16x2 with a bf16
 * VAE on a CPU with AMX, fp32 elsewhere), at fp32, and at bf16x2 and bf16
 * forced (oneDNN runs bf16 on any AVX-512 CPU), and at AMX's `auto` forced
 * on any CPU: bf16x2 with the UNet's per-layer rule (unet.h
 * UNET_BF16_LAYERS at plain bf16) and the VAE at bf16.  tiny-sdxl-s (folder and
 * fp16 single file) at fp32, batches of 2: the 64x64 cases.  tests/unit/test_batch_rows.c
 * checks the same per op, and scripts/seeds_midsize.sh on a larger
 * make-model checkpoint under every SD_CONV_WINOGRAD / SD_SPLIT rule and
 * oneDNN ISA cap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipe_case.h"
#include "t.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/models/vae.h"
#include "../../src/engine/ops/ops.h"

#define NB 4   /* num_outputs */

/* big: run on tiny-sd1's folder only (the other models and sources run
 * the same ops at that size) and not in the sanitizer tier */
typedef struct gen_case { const char *name; int w, h, steps, img2img, big; } gen_case;

static const gen_case CASES[] = {
    {"txt2img 64x64, 2 steps", 64, 64, 2, 0, 0},
    {"txt2img 256x256, 1 step", 256, 256, 1, 0, 1},
    {"img2img 64x64, strength 0.7, 3 steps", 64, 64, 3, 1, 0},
};

/* a smooth 64x64 init image with some structure */
static uint8_t *init_image(int w, int h)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = p + ((size_t)y * w + x) * 3;
            q[0] = (uint8_t)(x * 4);
            q[1] = (uint8_t)(y * 4);
            q[2] = (uint8_t)(((x / 8 + y / 8) & 1) ? 200 : 40);
        }
    return p;
}

static int gen(sd_engine *e, const gen_case *c, const uint8_t *init, uint64_t seed, int n, sd_image *out)
{
    sd_gen_params p;
    memset(&p, 0, sizeof p);
    p.prompt = "Anime girl putting her hair up";
    p.negative = "blurry";
    p.width = c->w;
    p.height = c->h;
    p.steps = c->steps;
    p.cfg = 7.5f;
    p.sampler = SD_SAMPLER_EULER_A;
    p.seed = seed;
    p.n = n;
    if (c->img2img) {
        p.init_rgb = init;
        p.init_width = c->w;
        p.init_height = c->h;
        p.strength = 0.7f;
    }
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_generate(e, &p, out, &err);
    if (rc) printf("# sd_generate: %s\n", err.msg);
    return rc;
}

/* one case: the batch of NB against each seed alone */
static void batch_vs_single(sd_engine *e, const char *cfg, const gen_case *c, const uint8_t *init, int nb)
{
    sd_image batch[NB], one;
    memset(batch, 0, sizeof batch);
    time_t t0 = time(NULL);
    char name[300];
    snprintf(name, sizeof name, "%s %s: num_outputs=%d, each image = its seed alone, byte for byte", cfg, c->name, nb);
    if (gen(e, c, init, 10086, nb, batch)) {
        CHECKF(0, name, "the batch failed");
        return;
    }
    int bad = 0, maxd = 0, ok_seeds = 1;
    for (int i = 0; i < nb; i++) {
        memset(&one, 0, sizeof one);
        ok_seeds &= batch[i].seed == 10086u + (uint64_t)i;
        if (gen(e, c, init, 10086 + (uint64_t)i, 1, &one)) { bad++; continue; }
        size_t n = (size_t)one.width * one.height * 3;
        if (one.width != batch[i].width || one.height != batch[i].height || memcmp(one.rgb, batch[i].rgb, n)) bad++;
        for (size_t j = 0; one.width == batch[i].width && one.height == batch[i].height && j < n; j++) {
            int d = abs((int)one.rgb[j] - (int)batch[i].rgb[j]);
            maxd = d > maxd ? d : maxd;
        }
        sd_image_free(&one);
    }
    CHECKF(!bad && ok_seeds, name, "%d of %d images differ (max %d levels)%s", bad, nb, maxd,
           ok_seeds ? "" : "; seeds are not seed+i");
    for (int i = 0; i < nb; i++) sd_image_free(&batch[i]);
    printf("# %s %s: %ld s\n", cfg, c->name, (long)(time(NULL) - t0));
}

int main(void)
{
    if (!t_have_ref()) {
        printf("# reference data not found (SD_REF): skipped\n");
        return t_done();
    }
    /* auto must mean the machine's default, not tests/run.sh's fp32; read
     * before the first op, so unset it first of all */
    unsetenv("SD_PRECISION");
    /* the last: AMX's auto on any CPU (loaded at bf16x2, then the rule and the VAE's bf16) */
    static const char *precisions[] = {"auto", "fp32", "bf16x2", "bf16", "bf16x2"};
    const int npr = sizeof precisions / sizeof precisions[0], amx_auto = npr - 1;
    static const char *models[] = {"tiny-sd1", "tiny-sd2"};
    uint8_t *init = init_image(64, 64);
    const char *san = getenv("SD_SANITIZED");
    int sanitized = san && *san == '1';
    for (int pr = 0; pr < npr; pr++)
        for (int m = 0; m < (sanitized ? 1 : 2); m++)
            for (int single = 0; single < 2; single++) {
                char msg[512], cfg[160];
                if (pr >= 2 && !ops_cpu_bf16()) {   /* the bf16 precisions: refused below AVX-512 */
                    if (!m && !single)
                        printf("# no bf16 kernels on this CPU (below AVX-512): %s skipped\n",
                               pr == amx_auto ? "AMX's auto" : precisions[pr]);
                    continue;
                }
                sd_engine *e = pipe_load(m, single, precisions[pr], msg, sizeof msg);
                if (!e) {
                    CHECKF(0, "load a tiny model", "%s %s: %s", models[m], precisions[pr], msg);
                    continue;
                }
                sd_model_info info;
                sd_engine_info(e, &info);
                snprintf(cfg, sizeof cfg, "[%s %s, precision %s = %s]", models[m], single ? "single file" : "folder",
                         precisions[pr], info.precision);
                if (pr == amx_auto) {
                    sd_err err;
                    sd_err_clear(&err);
                    CHECK(!unet_set_layer_rule(sd_engine_unet(e), UNET_BF16_LAYERS, &err), "the per-layer rule is taken");
                    vae_set_precision(sd_engine_vae(e), OPS_BF16);
                    snprintf(cfg, sizeof cfg, "[%s %s, bf16x2 + bf16 %s, VAE bf16 (AMX's auto)]", models[m],
                             single ? "single file" : "folder", UNET_BF16_LAYERS_NAME);
                }
                for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++)
                    if (!CASES[c].big || (!single && !m && !sanitized)) batch_vs_single(e, cfg, &CASES[c], init, NB);
                sd_engine_free(e);
            }
    /* SDXL: the same contract through its pipeline (added vector per row) */
    for (int single = 0; single < 2; single++) {
        char msg[512], cfg[160];
        sd_engine *e = pipe_load(2, single, "fp32", msg, sizeof msg);
        if (!e) {
            CHECKF(0, "load a tiny model", "tiny-sdxl-s fp32: %s", msg);
            continue;
        }
        snprintf(cfg, sizeof cfg, "[tiny-sdxl-s %s, precision fp32]", single ? "single file" : "folder");
        for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++)
            if (!CASES[c].big) batch_vs_single(e, cfg, &CASES[c], init, 2);
        sd_engine_free(e);
    }
    free(init);
    return t_done();
}
