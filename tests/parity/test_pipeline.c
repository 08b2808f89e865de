/* test_pipeline.c — whole-engine parity: prompt -> tokenizer -> text encoder
 * -> sampler with the real UNet -> VAE decode, against diffusers' pipeline
 * runs in reference/goldens/<model>/pipe/, replaying the runs' recorded
 * noise.  Every sampler at 4 and 10 steps (txt2img) and the img2img runs,
 * for tiny-sd1 and tiny-sd2, loaded from the diffusers folder and from the
 * fp16 single file.  Prints "metric pipeline/..." lines for docs/ACCURACY.md.
 * SD_SANITIZED=1 (the sanitizer tier of tests/run.sh): each run once, on one
 * of the four model/source pairs in turn (15 runs instead of 60; every
 * sampler, every load path). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "t.h"
#include "../../src/engine/pipeline.h"

static const char *PROMPT = "a photograph of an astronaut riding a horse";
static const char *NEGATIVE = "blurry, low quality";

/* Replays the golden's draws: txt2img draw 0 = init noise, draw k = noise_draws[k-1];
 * img2img draw k = noise_draws[k]. */
typedef struct replay {
    const npy *init;   /* NULL for img2img */
    const npy *draws;
    int bad;           /* set when the engine asks for a draw the golden does not have */
} replay;

static void replay_noise(void *ud, uint64_t seed, uint64_t draw, float *out, size_t n)
{
    replay *r = ud;
    const float *src = NULL;
    size_t have = 0;
    if (r->init) {
        if (draw == 0) { src = r->init->f; have = r->init->n; }
        else if (r->draws && draw - 1 < (uint64_t)r->draws->shape[0]) {
            have = r->draws->n / r->draws->shape[0];
            src = r->draws->f + (draw - 1) * have;
        }
    } else if (r->draws && draw < (uint64_t)r->draws->shape[0]) {
        have = r->draws->n / r->draws->shape[0];
        src = r->draws->f + draw * have;
    }
    if (!src || have != n) { r->bad = 1; memset(out, 0, n * sizeof *out); return; }
    memcpy(out, src, n * sizeof *out);
}

static int load_png_u8(const npy *img, uint8_t *out)
{
    /* the golden image.png is round(clamp(image/2+0.5)*255) of image.npy */
    int H = (int)img->shape[2], W = (int)img->shape[3];
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float v = img->f[((size_t)c * H + y) * W + x] / 2.0f + 0.5f;
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                out[((size_t)y * W + x) * 3 + c] = (uint8_t)lrintf(v * 255.0f);
            }
    return 0;
}

static void run_case(sd_engine *e, const char *model, const char *source, const char *run)
{
    char path[512], name[256];
    snprintf(name, sizeof name, "pipeline/%s/%s/%s", model, source, run);
    int img2img = !strncmp(run, "img2img", 7);
    npy init = {0}, draws = {0}, fin = {0}, gimg = {0}, ts = {0}, initimg = {0};
    snprintf(path, sizeof path, "goldens/%s/pipe/%s/final_latent.npy", model, run);
    if (npy_load(t_ref(path), &fin)) { CHECKF(0, name, "missing golden %s", path); return; }
    snprintf(path, sizeof path, "goldens/%s/pipe/%s/image.npy", model, run);
    npy_load(t_ref(path), &gimg);
    snprintf(path, sizeof path, "goldens/%s/pipe/%s/noise_draws.npy", model, run);
    int have_draws = npy_load(t_ref(path), &draws) == 0;
    snprintf(path, sizeof path, "goldens/%s/pipe/%s/timesteps.npy", model, run);
    npy_load(t_ref(path), &ts);
    snprintf(path, sizeof path, "goldens/%s/pipe/init_noise_8x6.npy", model);
    npy_load(t_ref(path), &init);

    char sampler[64];
    int steps = 0;
    const char *p = strchr(run, '_') + 1;
    const char *us = strrchr(run, '_');
    snprintf(sampler, sizeof sampler, "%.*s", (int)(us - p), p);
    steps = atoi(us + 1);

    sd_gen_params gp = {0};
    gp.prompt = PROMPT;
    gp.negative = NEGATIVE;
    gp.width = 48;
    gp.height = 64;
    gp.steps = steps;
    gp.cfg = 7.5f;
    gp.n = 1;
    gp.seed = 1234;
    CHECKF(sd_sampler_from_name(sampler, &gp.sampler) == 0, name, "unknown sampler %s", sampler);
    replay rp = {img2img ? NULL : &init, have_draws ? &draws : NULL, 0};
    gp.noise = replay_noise;
    gp.noise_ud = &rp;
    uint8_t *init_rgb = NULL;
    if (img2img) {
        snprintf(path, sizeof path, "goldens/%s/pipe/init_image.npy", model);
        npy_load(t_ref(path), &initimg);
        init_rgb = malloc(64 * 48 * 3);
        /* init_image.npy = 2*(u8/255)-1: recover the bytes exactly */
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 64 * 48; i++)
                init_rgb[i * 3 + c] = (uint8_t)lrintf((initimg.f[c * 64 * 48 + i] + 1.0f) * 127.5f);
        gp.init_rgb = init_rgb;
        gp.init_width = 48;
        gp.init_height = 64;
        gp.strength = 0.7f;
    }
    float *lat = calloc(fin.n, sizeof(float)), *img = calloc(gimg.n ? gimg.n : 1, sizeof(float));
    sd_gen_debug dbg = {lat, img, 0, 0, 0};
    sd_image out = {0};
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_generate_debug(e, &gp, &out, &dbg, &err);
    if (rc) {
        CHECKF(0, name, "generate failed: %s", err.msg);
    } else {
        double lerr = npy_maxdiff(lat, fin.f, fin.n), lmax = npy_maxabs(fin.f, fin.n);
        double ierr = npy_maxdiff(img, gimg.f, gimg.n) / 2.0; /* in [0,1] units */
        printf("metric %s final_latent_maxabs %.3g tol %.3g\n", name, lerr, 1e-4 * lmax);
        printf("metric %s image_maxabs_01 %.3g tol %.3g\n", name, ierr, 1.0 / 255);
        CHECKF(!rp.bad, name, "the engine asked for a noise draw the reference run did not make");
        CHECKF(lerr <= 1e-4 * lmax, name, "final latent max error %.3g > %.3g", lerr, 1e-4 * lmax);
        CHECKF(ierr <= 1.0 / 255, name, "decoded image max error %.3g > 1/255", ierr);
        uint8_t *want = malloc(64 * 48 * 3);
        load_png_u8(&gimg, want);
        int worst = 0;
        for (int i = 0; i < 64 * 48 * 3; i++) {
            int d = abs((int)want[i] - (int)out.rgb[i]);
            if (d > worst) worst = d;
        }
        printf("metric %s png_max_level_diff %d tol 1\n", name, worst);
        CHECKF(out.width == 48 && out.height == 64 && worst <= 1, name,
               "RGB8 output %dx%d differs from image.png by up to %d levels", out.width, out.height, worst);
        free(want);
    }
    sd_image_free(&out);
    free(lat); free(img); free(init_rgb);
    npy_free(&init); npy_free(&draws); npy_free(&fin); npy_free(&gimg); npy_free(&ts); npy_free(&initimg);
}

static const char *RUNS[] = {
    "txt2img_euler_4", "txt2img_euler_10", "txt2img_euler_a_4", "txt2img_euler_a_10",
    "txt2img_ddim_4", "txt2img_ddim_10", "txt2img_dpmpp_2m_4", "txt2img_dpmpp_2m_10",
    "txt2img_dpmpp_2m_karras_4", "txt2img_dpmpp_2m_karras_10", "txt2img_lcm_4", "txt2img_lcm_10",
    "img2img_euler_10", "img2img_ddim_10", "img2img_euler_a_10",
};

int main(void)
{
    if (!t_have_ref()) { CHECKF(0, "reference data", "../shared/reference not found (set SD_REF)"); return t_done(); }
    const char *models[] = {"tiny-sd1", "tiny-sd2"};
    const char *san = getenv("SD_SANITIZED");
    int subset = san && *san == '1';
    for (int m = 0; m < 2; m++) {
        for (int src = 0; src < 2; src++) {
            char path[256];
            if (src == 0) snprintf(path, sizeof path, "models/%s", models[m]);
            else snprintf(path, sizeof path, "models/%s-fp16.safetensors", models[m]);
            sd_load_opts o = {0};
            o.model_path = t_ref(path);
            /* single files carry no vocabulary: point at CLIP's */
            o.vocab_path = src ? t_ref("tokenizer/bpe_simple_vocab_16e6.txt.gz") : NULL;
            sd_err err;
            sd_err_clear(&err);
            sd_engine *e = sd_engine_load(&o, &err);
            char lname[128];
            snprintf(lname, sizeof lname, "load %s %s", models[m], src ? "single-file" : "diffusers");
            CHECKF(e != NULL, lname, "%s", err.msg);
            if (!e) continue;
            sd_model_info info;
            sd_engine_info(e, &info);
            CHECKF(!strcmp(info.family, m ? "sd2" : "sd1") && !strcmp(info.prediction, m ? "v_prediction" : "epsilon"),
                   lname, "family %s prediction %s", info.family, info.prediction);
            /* A1111 short hash: sha256 of 64 KiB at 1 MiB of the UNet's file (never of nothing) */
            CHECKF(strlen(info.hash) == 8 && strcmp(info.hash, "e3b0c442") != 0, lname, "model hash '%s'", info.hash);
            for (size_t r = 0; r < sizeof RUNS / sizeof RUNS[0]; r++)
                if (!subset || (int)(r % 4) == m * 2 + src)
                    run_case(e, models[m], src ? "single" : "diffusers", RUNS[r]);
            sd_engine_free(e);
        }
    }
    return t_done();
}
