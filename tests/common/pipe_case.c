/* pipe_case.c — replays diffusers' pipeline runs through the engine and
 * measures the difference (pipe_case.h). */
#include "pipe_case.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "t.h"

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

const char *const PIPE_RUNS[] = {
    "txt2img_euler_4", "txt2img_euler_10", "txt2img_euler_a_4", "txt2img_euler_a_10",
    "txt2img_ddim_4", "txt2img_ddim_10", "txt2img_dpmpp_2m_4", "txt2img_dpmpp_2m_10",
    "txt2img_dpmpp_2m_karras_4", "txt2img_dpmpp_2m_karras_10", "txt2img_lcm_4", "txt2img_lcm_10",
    "img2img_euler_10", "img2img_ddim_10", "img2img_euler_a_10",
};
const int PIPE_NRUNS = (int)(sizeof PIPE_RUNS / sizeof PIPE_RUNS[0]);

/* One run's settings: what diffusers' pipeline call was given. */
typedef struct pipe_spec {
    const char *sampler;      /* sd_sampler_from_name */
    int steps, width, height;
    float cfg, strength;      /* strength: img2img only */
    const char *negative;     /* NULL = none (SDXL: zeros) */
    const char *init_noise;   /* txt2img's draw 0, under goldens/<model>/pipe/ */
    int img2img, init_png;    /* init image from init_image.png (else init_image.npy) */
    sd_timestep_spacing spacing;
    int orig_w, orig_h, crop_top, crop_left;   /* SDXL size conditioning, 0 = default */
} pipe_spec;

/* SD1/SD2 runs: "<txt2img|img2img>_<sampler>_<steps>", 48x64, CFG 7.5. */
static int sd_spec(const char *run, pipe_spec *sp, char *sampler, size_t n)
{
    const char *p = strchr(run, '_') + 1;
    const char *us = strrchr(run, '_');
    snprintf(sampler, n, "%.*s", (int)(us - p), p);
    *sp = (pipe_spec){.sampler = sampler, .steps = atoi(us + 1), .width = 48, .height = 64, .cfg = 7.5f,
                      .strength = 0.7f, .negative = NEGATIVE, .init_noise = "init_noise_8x6.npy",
                      .img2img = !strncmp(run, "img2img", 7)};
    return 0;
}

/* ---- SDXL runs (tiny-sdxl-s): 96x64, guidance 5, no negative unless
 * named; turbo = trailing spacing with guidance 0 (run at 1: no CFG) ---- */
const char *const PIPE_SDXL_RUNS[] = {
    "txt2img_euler_4", "txt2img_euler_a_4", "txt2img_dpmpp_2m_karras_10", "txt2img_euler_4_neg",
    "txt2img_euler_4_timeids", "turbo_euler_a_trailing_1", "turbo_euler_a_trailing_4", "img2img_euler_10",
};
const int PIPE_SDXL_NRUNS = (int)(sizeof PIPE_SDXL_RUNS / sizeof PIPE_SDXL_RUNS[0]);

static int sdxl_spec(const char *run, pipe_spec *sp)
{
    static const struct { const char *run, *sampler; int steps, neg, timeids, turbo, img2img; } T[] = {
        {"txt2img_euler_4", "euler", 4, 0, 0, 0, 0},
        {"txt2img_euler_a_4", "euler_a", 4, 0, 0, 0, 0},
        {"txt2img_dpmpp_2m_karras_10", "dpmpp_2m_karras", 10, 0, 0, 0, 0},
        {"txt2img_euler_4_neg", "euler", 4, 1, 0, 0, 0},
        {"txt2img_euler_4_timeids", "euler", 4, 0, 1, 0, 0},
        {"turbo_euler_a_trailing_1", "euler_a", 1, 0, 0, 1, 0},
        {"turbo_euler_a_trailing_4", "euler_a", 4, 0, 0, 1, 0},
        {"img2img_euler_10", "euler", 10, 1, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        if (strcmp(T[i].run, run)) continue;
        *sp = (pipe_spec){.sampler = T[i].sampler, .steps = T[i].steps, .width = 96, .height = 64,
                          .cfg = T[i].turbo ? 1.0f : 5.0f, .strength = 0.6f,
                          .negative = T[i].neg ? NEGATIVE : NULL, .init_noise = "init_noise_8x12.npy",
                          .img2img = T[i].img2img, .init_png = 1,
                          .spacing = T[i].turbo ? SD_TSPACING_TRAILING : SD_TSPACING_MODEL};
        if (T[i].timeids) {   /* original_size (128,192), crops_coords_top_left (16,8) */
            sp->orig_h = 128; sp->orig_w = 192; sp->crop_top = 16; sp->crop_left = 8;
        }
        return 0;
    }
    return -1;
}

/* The init image's bytes (W x H RGB8, malloc'd), or NULL. */
static uint8_t *init_rgb_of(const char *model, const pipe_spec *sp)
{
    char path[256];
    const size_t n = (size_t)sp->width * sp->height;
    uint8_t *rgb = NULL;
    if (sp->init_png) {
        img_rgb im = {0};
        snprintf(path, sizeof path, "goldens/%s/pipe/init_image.png", model);
        if (!pipe_load_png(path, &im) && im.width == sp->width && im.height == sp->height && (rgb = malloc(n * 3)))
            memcpy(rgb, im.px, n * 3);
        img_rgb_free(&im);
        return rgb;
    }
    npy initimg = {0};
    snprintf(path, sizeof path, "goldens/%s/pipe/init_image.npy", model);
    if (!npy_load(t_ref(path), &initimg) && initimg.n == n * 3 && (rgb = malloc(n * 3)))
        /* init_image.npy = 2*(u8/255)-1: recover the bytes exactly */
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < n; i++)
                rgb[i * 3 + c] = (uint8_t)lrintf((initimg.f[c * n + i] + 1.0f) * 127.5f);
    npy_free(&initimg);
    return rgb;
}

static void pipe_replay(sd_engine *e, const char *model, const char *run, const pipe_spec *sp, pipe_result *res)
{
    char path[256];
    npy init = {0}, draws = {0}, fin = {0}, gimg = {0};
    snprintf(path, sizeof path, "goldens/%s/pipe/%s/final_latent.npy", model, run);
    if (npy_load(t_ref(path), &fin)) { snprintf(res->msg, sizeof res->msg, "missing golden %s", path); return; }
    snprintf(path, sizeof path, "goldens/%s/pipe/%s/image.npy", model, run);
    npy_load(t_ref(path), &gimg);
    snprintf(path, sizeof path, "goldens/%s/pipe/%s/noise_draws.npy", model, run);
    int have_draws = npy_load(t_ref(path), &draws) == 0;
    snprintf(path, sizeof path, "goldens/%s/pipe/%s", model, sp->init_noise);
    npy_load(t_ref(path), &init);

    sd_gen_params gp = {0};
    gp.prompt = PROMPT;
    gp.negative = sp->negative;
    gp.width = sp->width;
    gp.height = sp->height;
    gp.steps = sp->steps;
    gp.cfg = sp->cfg;
    gp.n = 1;
    gp.seed = 1234;
    gp.spacing = sp->spacing;
    gp.orig_width = sp->orig_w;
    gp.orig_height = sp->orig_h;
    gp.crop_top = sp->crop_top;
    gp.crop_left = sp->crop_left;
    uint8_t *init_rgb = NULL;
    float *lat = NULL, *img = NULL;
    sd_image out = {0};
    const int npx = sp->width * sp->height * 3;
    if (sd_sampler_from_name(sp->sampler, &gp.sampler)) {
        snprintf(res->msg, sizeof res->msg, "unknown sampler %s", sp->sampler);
        goto done;
    }
    replay rp = {sp->img2img ? NULL : &init, have_draws ? &draws : NULL, 0};
    gp.noise = replay_noise;
    gp.noise_ud = &rp;
    if (sp->img2img) {
        if (!(init_rgb = init_rgb_of(model, sp))) {
            snprintf(res->msg, sizeof res->msg, "no init image for %s", model);
            goto done;
        }
        gp.init_rgb = init_rgb;
        gp.init_width = sp->width;
        gp.init_height = sp->height;
        gp.strength = sp->strength;
    }
    if (gimg.n != (size_t)npx) {
        snprintf(res->msg, sizeof res->msg, "golden image.npy of %s is missing or not %dx%d", run, sp->width,
                 sp->height);
        goto done;
    }
    lat = calloc(fin.n, sizeof(float));
    img = calloc(gimg.n, sizeof(float));
    sd_gen_debug dbg = {.final_latent = lat, .image = img};
    sd_err err;
    sd_err_clear(&err);
    if (sd_generate_debug(e, &gp, &out, &dbg, &err)) {
        snprintf(res->msg, sizeof res->msg, "generate failed: %s", err.msg);
        goto done;
    }
    res->ran = 1;
    res->bad_draw = rp.bad;
    res->latent_err = npy_maxdiff(lat, fin.f, fin.n);
    res->latent_max = npy_maxabs(fin.f, fin.n);
    res->image_err01 = npy_maxdiff(img, gimg.f, gimg.n) / 2.0;
    res->width = out.width;
    res->height = out.height;
    uint8_t *want = malloc(npx);
    load_png_u8(&gimg, want);
    double sum = 0, sq = 0;
    for (int i = 0; i < npx; i++) {
        int d = abs((int)want[i] - (int)out.rgb[i]);
        if (d > res->png_max) res->png_max = d;
        sum += d;
        sq += (double)d * d;
    }
    res->png_mean = sum / npx;
    res->psnr = sq > 0 ? 10 * log10(255.0 * 255.0 / (sq / npx)) : 999;
    free(want);
done:
    sd_image_free(&out);
    free(lat); free(img); free(init_rgb);
    npy_free(&init); npy_free(&draws); npy_free(&fin); npy_free(&gimg);
}

void pipe_case(sd_engine *e, const char *model, const char *run, pipe_result *res)
{
    memset(res, 0, sizeof *res);
    pipe_spec sp;
    char sampler[64];
    if (!strncmp(model, "tiny-sdxl", 9) ? sdxl_spec(run, &sp) : sd_spec(run, &sp, sampler, sizeof sampler)) {
        snprintf(res->msg, sizeof res->msg, "unknown run %s of %s", run, model);
        return;
    }
    pipe_replay(e, model, run, &sp, res);
}

void pipe_check_fp32(const pipe_result *r, const char *name, int width, int height)
{
    if (!r->ran) {
        CHECKF(0, name, "%s", r->msg);
        return;
    }
    double ltol = 1e-4 * r->latent_max;
    printf("metric %s final_latent_maxabs %.3g tol %.3g\n", name, r->latent_err, ltol);
    printf("metric %s image_maxabs_01 %.3g tol %.3g\n", name, r->image_err01, 1.0 / 255);
    CHECKF(!r->bad_draw, name, "the engine asked for a noise draw the reference run did not make");
    CHECKF(r->latent_err <= ltol, name, "final latent max error %.3g > %.3g", r->latent_err, ltol);
    CHECKF(r->image_err01 <= 1.0 / 255, name, "decoded image max error %.3g > 1/255", r->image_err01);
    printf("metric %s png_max_level_diff %d tol 1\n", name, r->png_max);
    CHECKF(r->width == width && r->height == height && r->png_max <= 1, name,
           "RGB8 output %dx%d differs from image.png by up to %d levels", r->width, r->height, r->png_max);
}

sd_engine *pipe_load(int m, int single, const char *precision, char *msg, size_t msgsz)
{
    static const char *models[] = {"tiny-sd1", "tiny-sd2", "tiny-sdxl-s"};
    char path[256];
    if (!single) snprintf(path, sizeof path, "models/%s", models[m]);
    else snprintf(path, sizeof path, "models/%s-fp16.safetensors", models[m]);
    sd_load_opts o = {0};
    o.model_path = t_ref(path);
    /* single files carry no vocabulary: point at CLIP's */
    o.vocab_path = single ? t_ref("tokenizer/bpe_simple_vocab_16e6.txt.gz") : NULL;
    o.precision = precision;
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    if (!e) snprintf(msg, msgsz, "%s", err.msg);
    return e;
}

int pipe_load_png(const char *rel, img_rgb *im)
{
    FILE *f = fopen(t_ref(rel), "rb");
    if (!f) return -1;
    static uint8_t buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    sd_err err;
    return len < sizeof buf ? img_decode(buf, len, NULL, im, &err) : -1;
}
