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

void pipe_case(sd_engine *e, const char *model, const char *run, pipe_result *res)
{
    char path[256];
    memset(res, 0, sizeof *res);
    int img2img = !strncmp(run, "img2img", 7);
    npy init = {0}, draws = {0}, fin = {0}, gimg = {0}, initimg = {0};
    snprintf(path, sizeof path, "goldens/%s/pipe/%s/final_latent.npy", model, run);
    if (npy_load(t_ref(path), &fin)) { snprintf(res->msg, sizeof res->msg, "missing golden %s", path); return; }
    snprintf(path, sizeof path, "goldens/%s/pipe/%s/image.npy", model, run);
    npy_load(t_ref(path), &gimg);
    snprintf(path, sizeof path, "goldens/%s/pipe/%s/noise_draws.npy", model, run);
    int have_draws = npy_load(t_ref(path), &draws) == 0;
    snprintf(path, sizeof path, "goldens/%s/pipe/init_noise_8x6.npy", model);
    npy_load(t_ref(path), &init);

    char sampler[64];
    const char *p = strchr(run, '_') + 1;
    const char *us = strrchr(run, '_');
    snprintf(sampler, sizeof sampler, "%.*s", (int)(us - p), p);

    sd_gen_params gp = {0};
    gp.prompt = PROMPT;
    gp.negative = NEGATIVE;
    gp.width = 48;
    gp.height = 64;
    gp.steps = atoi(us + 1);
    gp.cfg = 7.5f;
    gp.n = 1;
    gp.seed = 1234;
    uint8_t *init_rgb = NULL;
    float *lat = NULL, *img = NULL;
    sd_image out = {0};
    if (sd_sampler_from_name(sampler, &gp.sampler)) {
        snprintf(res->msg, sizeof res->msg, "unknown sampler %s", sampler);
        goto done;
    }
    replay rp = {img2img ? NULL : &init, have_draws ? &draws : NULL, 0};
    gp.noise = replay_noise;
    gp.noise_ud = &rp;
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
    lat = calloc(fin.n, sizeof(float));
    img = calloc(gimg.n ? gimg.n : 1, sizeof(float));
    sd_gen_debug dbg = {lat, img, 0, 0, 0};
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
    uint8_t *want = malloc(64 * 48 * 3);
    load_png_u8(&gimg, want);
    double sum = 0, sq = 0;
    int n = 64 * 48 * 3;
    for (int i = 0; i < n; i++) {
        int d = abs((int)want[i] - (int)out.rgb[i]);
        if (d > res->png_max) res->png_max = d;
        sum += d;
        sq += (double)d * d;
    }
    res->png_mean = sum / n;
    res->psnr = sq > 0 ? 10 * log10(255.0 * 255.0 / (sq / n)) : 999;
    free(want);
done:
    sd_image_free(&out);
    free(lat); free(img); free(init_rgb);
    npy_free(&init); npy_free(&draws); npy_free(&fin); npy_free(&gimg); npy_free(&initimg);
}

sd_engine *pipe_load(int m, int single, const char *precision, char *msg, size_t msgsz)
{
    static const char *models[] = {"tiny-sd1", "tiny-sd2"};
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
