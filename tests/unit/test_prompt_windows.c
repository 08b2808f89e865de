/* test_prompt_windows.c — the prompt length limit (issue 12 item 2):
 * sd_prompt_windows counts the 77-token windows the engine will encode with
 * the loaded tokenizer (tiny-sd1 with CLIP's vocabulary: "x " is one token),
 * sd_check_prompts refuses more than SD_MAX_PROMPT_WINDOWS naming prompt or
 * negative_prompt with the count and the limit, sd_generate refuses the same
 * before computing, and the UNet's workspace is sized once for the longest
 * allowed context: a run with 8 windows does not grow it after a run with 1. */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "../../src/engine/sd.h"
#include "../../src/engine/pipeline.h"
#include "../../src/engine/models/unet.h"

/* n one-letter words (malloc'd). */
static char *words(int n, char c)
{
    char *s = malloc((size_t)2 * n + 1);
    if (!s) abort();
    for (int i = 0; i < n; i++) { s[2 * i] = c; s[2 * i + 1] = ' '; }
    s[2 * n] = 0;
    return s;
}

static int windows_of(sd_engine *e, int nwords, size_t *tokens)
{
    char *s = words(nwords, 'x');
    int n = -1;
    sd_err err;
    sd_err_clear(&err);
    if (sd_prompt_windows(e, s, &n, tokens, &err)) n = -1;
    free(s);
    return n;
}

/* Generates one 64x64 image in one step; returns the UNet workspace's size after. */
static size_t run(sd_engine *e, const char *prompt, const char *negative, int *rc, sd_err *err)
{
    sd_gen_params p = {.prompt = prompt, .negative = negative, .width = 64, .height = 64, .steps = 1, .cfg = 7.0f,
                       .sampler = SD_SAMPLER_EULER, .seed = 1, .n = 1};
    sd_image img = {0};
    sd_err_clear(err);
    *rc = sd_generate(e, &p, &img, err);
    sd_image_free(&img);
    size_t bytes = 0;
    sd_err e2;
    sd_err_clear(&e2);
    unet_reserve(sd_engine_unet(e), 1, 1, 1, 1, &bytes, &e2);   /* never grows: reports the size */
    return bytes;
}

int main(void)
{
    sd_load_opts o = {0};
    o.model_path = t_ref("models/tiny-sd1");
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    CHECKF(e != NULL, "tiny-sd1 loads", "%s", err.msg);
    if (!e) return t_done();

    size_t nt = 0;
    int n = -1;
    CHECKF(!sd_prompt_windows(e, "", &n, &nt, &err) && n == 1 && nt == 0, "empty prompt: 1 window, 0 tokens",
           "%d windows, %zu tokens", n, nt);
    CHECKF(windows_of(e, 75, &nt) == 1 && nt == 75, "75 tokens: 1 window", "%zu tokens", nt);
    CHECK(windows_of(e, 76, NULL) == 2, "76 tokens: 2 windows");
    CHECK(windows_of(e, 600, NULL) == 8 && windows_of(e, 601, NULL) == 9, "600 tokens: 8 windows, 601: 9");

    char *w600 = words(600, 'x'), *w601 = words(601, 'x'), *y601 = words(601, 'y');
    sd_err_clear(&err);
    CHECKF(!sd_check_prompts(e, w600, w600, 20, &err), "prompt and negative of 8 windows accepted", "%s", err.msg);
    sd_err_clear(&err);
    CHECKF(sd_check_prompts(e, w601, NULL, 20, &err) == -1 && err.code == SD_EINVAL && !strcmp(err.field, "prompt") &&
               strstr(err.msg, "601 tokens make 9 windows") && strstr(err.msg, "the limit is 8 windows (600 tokens)"),
           "prompt of 601 tokens refused naming prompt, count and limit", "field '%s' msg '%s'", err.field, err.msg);
    sd_err_clear(&err);
    CHECKF(sd_check_prompts(e, "x", y601, 20, &err) == -1 && !strcmp(err.field, "negative") &&
               strstr(err.msg, "negative prompt is too long") && strstr(err.msg, "9 windows"),
           "negative of 601 tokens refused naming negative (the engine's name; the API maps it to negative_prompt)",
           "field '%s' msg '%s'", err.field, err.msg);

    int rc;
    size_t one = run(e, "a cat", "", &rc, &err);
    CHECKF(rc == 0, "64x64 run with 1 window", "%s", err.msg);
    size_t eight = run(e, w600, w600, &rc, &err);
    CHECKF(rc == 0, "64x64 run with prompt and negative of 8 windows", "%s", err.msg);
    CHECKF(one > 0 && eight == one, "UNet workspace sized once for 8 windows: not grown by the long prompt",
           "1 window %zu bytes, 8 windows %zu bytes", one, eight);
    run(e, w601, "", &rc, &err);
    CHECKF(rc == -1 && !strcmp(err.field, "prompt") && strstr(err.msg, "the limit is 8 windows"),
           "sd_generate refuses 601 tokens before computing", "rc %d field '%s' msg '%s'", rc, err.field, err.msg);
    free(w600);
    free(w601);
    free(y601);
    sd_engine_free(e);
    return t_done();
}
