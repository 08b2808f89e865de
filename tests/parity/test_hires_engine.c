/* test_hires_engine.c — sd_generate's hires fix (engine/hires.c) on
 * tiny-sd1 at fp32, 32x32 -> 64x64 with 2 + 3 steps: each upscaler gives
 * the hires size; progress is monotonic and its total is both passes'
 * steps (euler_a: 2 + int(3 x 0.7) = 4; A1111's Euler a: 2 + int(0.7 x 3)
 * + 1 = 5); a batch of 2's second image equals seed + 1 alone; the engine
 * refuses an init image, a zero hires size and a strength of 0 naming the
 * member; a cancel from the progress callback in the second pass stops the
 * run with SD_ECANCELLED. */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "../../src/engine/sd.h"

typedef struct prog { int calls, last, total, mono, cancel_at; } prog;

static int on_step(void *ud, int step, int total)
{
    prog *p = ud;
    if (step < p->last || (p->total && total != p->total)) p->mono = 0;
    p->calls++;
    p->last = step;
    p->total = total;
    return p->cancel_at && step >= p->cancel_at;
}

static sd_gen_params base(prog *pr)
{
    return (sd_gen_params){
        .prompt = "a red bicycle", .negative = "blurry", .width = 32, .height = 32, .steps = 2, .cfg = 5,
        .sampler = SD_SAMPLER_EULER_A, .seed = 21, .n = 1, .progress = on_step, .progress_ud = pr,
        .hr_upscaler = SD_HR_LATENT, .hr_width = 64, .hr_height = 64, .hr_steps = 3, .hr_strength = 0.7f,
    };
}

static void upscalers(sd_engine *e)
{
    static const char *const names[] = {"", "latent", "latent-nearest-exact", "lanczos"};
    for (int u = SD_HR_LATENT; u <= SD_HR_LANCZOS; u++) {
        prog pr = {.mono = 1};
        sd_gen_params p = base(&pr);
        p.hr_upscaler = (sd_hr_upscaler)u;
        sd_image out = {0};
        sd_err err;
        sd_err_clear(&err);
        int rc = sd_generate(e, &p, &out, &err);
        char name[96];
        snprintf(name, sizeof name, "hires %s: 32x32 -> 64x64", names[u]);
        CHECKF(rc == 0 && out.width == 64 && out.height == 64 && out.rgb, name, "%s", err.msg);
        snprintf(name, sizeof name, "hires %s: progress 1..4 of 4, monotonic", names[u]);
        CHECKF(pr.mono && pr.last == 4 && pr.total == 4 && pr.calls == 4, name, "last %d total %d calls %d",
               pr.last, pr.total, pr.calls);
        sd_image_free(&out);
    }
    prog pr = {.mono = 1};
    sd_gen_params p = base(&pr);
    p.ksampler = SD_KSAMPLER_EULER_A;
    sd_image out = {0};
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_generate(e, &p, &out, &err);
    CHECKF(rc == 0 && pr.total == 5 && pr.last == 5, "hires with A1111's Euler a: 2 + (int(0.7 x 3) + 1) steps",
           "rc %d total %d: %s", rc, pr.total, err.msg);
    sd_image_free(&out);
}

static void batch_equals_alone(sd_engine *e)
{
    prog pr = {.mono = 1};
    sd_gen_params p = base(&pr);
    p.n = 2;
    p.hr_upscaler = SD_HR_LANCZOS;
    sd_image two[2] = {{0}}, one = {0};
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_generate(e, &p, two, &err);
    CHECKF(rc == 0 && pr.total == 2 + 2 * 2, "hires batch of 2: progress 2 + 2 x 2", "total %d: %s", pr.total,
           err.msg);
    p.n = 1;
    p.seed = 22;
    pr = (prog){.mono = 1};
    rc |= sd_generate(e, &p, &one, &err);
    CHECK(rc == 0 && two[1].seed == 22 && !memcmp(two[1].rgb, one.rgb, 64 * 64 * 3),
          "hires batch image 1 equals seed + 1 alone");
    sd_image_free(&two[0]);
    sd_image_free(&two[1]);
    sd_image_free(&one);
}

static void refusals(sd_engine *e)
{
    static const uint8_t px[3 * 4] = {0};
    struct { const char *what, *field; int which; } cases[] = {
        {"an init image", "hr_upscaler", 0}, {"hr_width 0", "hr_width", 1}, {"hr_strength 0", "hr_strength", 2},
        {"hr_steps -1", "hr_steps", 3}, {"hr_upscaler 9", "hr_upscaler", 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        prog pr = {.mono = 1};
        sd_gen_params p = base(&pr);
        if (cases[i].which == 0) p.init_rgb = px, p.init_width = 2, p.init_height = 2, p.strength = 0.5f;
        if (cases[i].which == 1) p.hr_width = 0;
        if (cases[i].which == 2) p.hr_strength = 0;
        if (cases[i].which == 3) p.hr_steps = -1;
        if (cases[i].which == 4) p.hr_upscaler = (sd_hr_upscaler)9;
        sd_image out = {0};
        sd_err err;
        sd_err_clear(&err);
        int rc = sd_generate(e, &p, &out, &err);
        char name[96];
        snprintf(name, sizeof name, "hires with %s refused naming %s", cases[i].what, cases[i].field);
        CHECKF(rc == -1 && err.code == SD_EINVAL && !strcmp(err.field, cases[i].field) && !out.rgb && !pr.calls,
               name, "rc %d field %s: %s", rc, err.field, err.msg);
    }
    prog pr = {.mono = 1, .cancel_at = 3};
    sd_gen_params p = base(&pr);
    sd_image out = {0};
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_generate(e, &p, &out, &err);
    CHECKF(rc == -1 && err.code == SD_ECANCELLED && !out.rgb && pr.last == 3, "hires cancelled in pass 2 stops",
           "rc %d code %d last %d", rc, (int)err.code, pr.last);
}

int main(void)
{
    if (!t_have_ref()) {
        CHECK(1, "no reference folder: skipped");
        return t_done();
    }
    sd_load_opts o = {.model_path = t_ref("models/tiny-sd1"), .precision = "fp32", .threads = 2};
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    CHECKF(e != NULL, "tiny-sd1 loads", "%s", err.msg);
    if (!e) return t_done();
    upscalers(e);
    batch_equals_alone(e);
    refusals(e);
    sd_engine_free(e);
    return t_done();
}
