/* test_sdxl_pipe.c — SDXL end to end against diffusers'
 * StableDiffusionXLPipeline: every run of reference/goldens/tiny-sdxl-s/pipe/
 * (Euler, Euler a, DPM++ 2M Karras, a negative prompt, non-default time ids,
 * Turbo-style trailing spacing without CFG at 1 and 4 steps, img2img)
 * replayed with its recorded noise on tiny-sdxl-s from the diffusers folder
 * (F32) and from the original-naming F16 single file: final latent within
 * 1e-4·max|latent|, decoded image within 1/255, RGB8 within 1 level of
 * image.png.  Then the A1111 (k-diffusion) path on the same model, which
 * has no golden: the added vector reaches it too (another crop gives
 * another picture), with and without guidance, txt2img and img2img, and
 * with a negative longer than the prompt (two UNet calls per step).
 * Prints "metric pipeline/tiny-sdxl-s/..." lines for docs/ACCURACY.md.
 * SD_SANITIZED=1 or SD_QUICK=1 (t_subset()): each run on one of the two
 * sources in turn. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe_case.h"
#include "t.h"

static void run_case(sd_engine *e, const char *source, const char *run)
{
    char name[256];
    snprintf(name, sizeof name, "pipeline/tiny-sdxl-s/%s/%s", source, run);
    pipe_result r;
    pipe_case(e, "tiny-sdxl-s", run, &r);
    pipe_check_fp32(&r, name, 96, 64);
}

/* One k-diffusion run's final latent ([4,8,12]) into lat; 0 or -1 (err). */
static int kd_run(sd_engine *e, const char *negative, float cfg, int crop_top, const uint8_t *init, float *lat,
                  sd_err *err)
{
    sd_gen_params gp = {.prompt = "a photograph of an astronaut riding a horse", .negative = negative,
                        .width = 96, .height = 64, .steps = 4, .cfg = cfg, .n = 1, .seed = 7, .crop_top = crop_top};
    if (sd_sampler_parse("Euler a", &gp.sampler, &gp.ksampler, &gp.name_schedule)) return -1;
    if (init) {
        gp.init_rgb = init;
        gp.init_width = 96;
        gp.init_height = 64;
        gp.strength = 0.6f;
    }
    sd_image out = {0};
    sd_gen_debug dbg = {.final_latent = lat};
    int rc = sd_generate_debug(e, &gp, &out, &dbg, err);
    sd_image_free(&out);
    return rc;
}

static double lat_diff(const float *a, const float *b, int *finite)
{
    double d = 0;
    *finite = 1;
    for (int i = 0; i < 4 * 8 * 12; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) *finite = 0;
        d = fmax(d, fabs(a[i] - b[i]));
    }
    return d;
}

/* The A1111 path: the size conditioning changes the picture in each mode. */
static void kd_cases(sd_engine *e)
{
    static const char *LONG_NEG =
        "blurry, low quality, jpeg artifacts, watermark, text, signature, cropped, out of frame, worst quality, "
        "lowres, ugly, duplicate, morbid, mutilated, extra fingers, mutated hands, poorly drawn hands, poorly "
        "drawn face, mutation, deformed, dehydrated, bad anatomy, bad proportions, extra limbs, cloned face, "
        "disfigured, gross proportions, malformed limbs, missing arms, missing legs, extra arms, extra legs";
    static const struct { const char *name, *neg; float cfg; int img2img; } K[] = {
        {"txt2img cfg 5", NULL, 5.0f, 0},
        {"txt2img cfg 1 (no unconditional pass)", NULL, 1.0f, 0},
        {"txt2img, a 2-chunk negative (split calls)", NULL, 5.0f, 0},
        {"img2img cfg 5", "blurry, low quality", 5.0f, 1},
    };
    int windows = 0;
    sd_err werr;
    sd_err_clear(&werr);
    CHECKF(!sd_prompt_windows(e, LONG_NEG, &windows, NULL, &werr) && windows == 2,
           "sdxl k-diffusion: the long negative takes 2 chunks, the prompt 1", "%d chunks %s", windows, werr.msg);
    img_rgb im = {0};
    pipe_load_png("goldens/tiny-sdxl-s/pipe/init_image.png", &im);
    float a[4 * 8 * 12], b[4 * 8 * 12];
    for (size_t k = 0; k < sizeof K / sizeof K[0]; k++) {
        char name[160];
        snprintf(name, sizeof name, "sdxl k-diffusion Euler a, %s: the crop conditioning reaches the UNet", K[k].name);
        const char *neg = k == 2 ? LONG_NEG : K[k].neg;
        const uint8_t *init = K[k].img2img ? im.px : NULL;
        sd_err err;
        sd_err_clear(&err);
        if ((K[k].img2img && !im.px) || kd_run(e, neg, K[k].cfg, 0, init, a, &err) ||
            kd_run(e, neg, K[k].cfg, 32, init, b, &err)) {
            CHECKF(0, name, "%s", K[k].img2img && !im.px ? "no init image" : err.msg);
            continue;
        }
        int finite;
        double d = lat_diff(a, b, &finite);
        CHECKF(finite && d > 1e-3, name, "final latents differ by %.3g (finite %d)", d, finite);
    }
    img_rgb_free(&im);
}

int main(void)
{
    if (!t_have_ref()) { CHECKF(0, "reference data", "../shared/reference not found (set SD_REF)"); return t_done(); }
    int subset = t_subset();
    for (int src = 0; src < 2; src++) {
        char msg[600], lname[128];
        sd_engine *e = pipe_load(2, src, NULL, msg, sizeof msg);
        snprintf(lname, sizeof lname, "load tiny-sdxl-s %s", src ? "single-file" : "diffusers");
        CHECKF(e != NULL, lname, "%s", msg);
        if (!e) continue;
        sd_model_info info;
        sd_engine_info(e, &info);
        CHECKF(!strcmp(info.family, "sdxl") && !strcmp(info.prediction, "epsilon"), lname, "family %s prediction %s",
               info.family, info.prediction);
        for (int r = 0; r < PIPE_SDXL_NRUNS; r++)
            if (!subset || r % 2 == src) run_case(e, src ? "single" : "diffusers", PIPE_SDXL_RUNS[r]);
        if (!src) kd_cases(e);
        sd_engine_free(e);
    }
    return t_done();
}
