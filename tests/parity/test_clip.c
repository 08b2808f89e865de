/* test_clip.c — parity of the CLIP text encoder (src/engine/models/clip.c)
 * with the transformers v4.30 goldens in goldens/<model>/text_encoder/, for
 * tiny-sd1 (CLIP-L style, quick-GELU) and tiny-sd2 (OpenCLIP style, GELU,
 * penultimate layer), loaded from the diffusers folders and the fp16 single
 * files.  Prints "metric text_encoder/<model>/<source>/<output> maxabs X tol
 * 1e-4" lines for docs/ACCURACY.md. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "parity.h"
#include "t.h"
#include "../../src/engine/models/clip.h"
#include "../../src/engine/ops/ops.h"

#define TOL 1e-4

static double metric(const char *model, const char *src, const char *out, const float *got,
                     const float *want, size_t n)
{
    double d = npy_maxdiff(got, want, n);
    printf("metric text_encoder/%s/%s/%s maxabs %.3g tol %g\n", model, src, out, d, TOL);
    return d;
}

/* text.heads of the LDM config beside the single file (what its tensors cannot tell). */
static int ldm_text_heads(const char *model)
{
    char rel[200];
    snprintf(rel, sizeof rel, "models/%s.ldm_config.json", model);
    json_t *j = json_load_file(t_ref(rel), 0, NULL);
    int h = (int)json_integer_value(json_object_get(json_object_get(j, "text"), "heads"));
    json_decref(j);
    return h;
}

static void check_model(const char *model, const char *src, const char *path, int single_file,
                        int want_layers, int want_skip)
{
    char name[256];
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = parity_open(model, src, path);
    if (!w) return;
    /* Heads come from config.json, or the LDM config found beside a single file. */
    sd_clip *c = clip_load(w, NULL, NULL, &err);
    snprintf(name, sizeof name, "%s/%s: clip_load", model, src);
    CHECKF(c != NULL, name, "%s", err.msg);
    if (!c) { sdw_close(w); return; }
    clip_act want_act = want_skip == 2 ? CLIP_ACT_GELU : CLIP_ACT_QUICK_GELU;
    snprintf(name, sizeof name, "%s/%s: config from shapes and config files", model, src);
    CHECKF(clip_layers(c) == want_layers && clip_tokens(c) == 77 && clip_heads(c) == 4 &&
           clip_heads(c) == ldm_text_heads(model) && clip_activation(c) == want_act &&
           clip_default_skip(c) == want_skip, name, "layers %d tokens %d heads %d act %d default skip %d",
           clip_layers(c), clip_tokens(c), clip_heads(c), (int)clip_activation(c), clip_default_skip(c));
    if (single_file) {
        /* Explicit hints win over the config files. */
        clip_hints h = {.heads = 2, .act = CLIP_ACT_QUICK_GELU + CLIP_ACT_GELU - want_act};
        sd_clip *c2 = clip_load(w, &h, NULL, &err);
        snprintf(name, sizeof name, "%s/%s: hints override", model, src);
        CHECKF(c2 && clip_heads(c2) == 2 && clip_activation(c2) != want_act, name, "%s", err.msg);
        clip_free(c2);
    }

    npy ids, hs, last, pln, praw;
    int bad = parity_golden(model, "text_encoder", "input_ids", &ids) |
              parity_golden(model, "text_encoder", "hidden_states", &hs) |
              parity_golden(model, "text_encoder", "last_hidden_state", &last) |
              parity_golden(model, "text_encoder", "penultimate_ln", &pln) |
              parity_golden(model, "text_encoder", "penultimate_raw", &praw);
    snprintf(name, sizeof name, "%s/%s: goldens load", model, src);
    CHECK(!bad, name);
    if (bad) { clip_free(c); sdw_close(w); return; }

    int B = (int)ids.shape[0], T = 77, W = clip_width(c), L = clip_layers(c);
    size_t n = (size_t)B * T * W;
    int32_t *id32 = malloc(sizeof(int32_t) * B * T);
    float *out = malloc(sizeof(float) * n);
    for (int i = 0; i < B * T; i++) id32[i] = (int32_t)ids.i[i];

    /* Every hidden state, raw (0 = embeddings). */
    for (int l = 0; l <= L; l++) {
        sd_err_clear(&err);
        int rc = clip_hidden(c, id32, B, l, 0, out, &err);
        char o[64];
        snprintf(o, sizeof o, "hidden_states.%d", l);
        double d = rc ? 1e9 : metric(model, src, o, out, hs.f + (size_t)l * n, n);
        snprintf(name, sizeof name, "%s/%s: %s", model, src, o);
        CHECKF(rc == 0 && d <= TOL, name, "rc %d maxabs %g %s", rc, d, err.msg);
    }
    struct { const char *out; int skip; npy *g; } cases[] = {
        {"last_hidden_state", 1, &last}, {"penultimate_ln", 2, &pln}, {"default_skip", 0, want_skip == 1 ? &last : &pln},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sd_err_clear(&err);
        int rc = clip_encode(c, id32, B, cases[k].skip, out, &err);
        double d = rc ? 1e9 : metric(model, src, cases[k].out, out, cases[k].g->f, n);
        snprintf(name, sizeof name, "%s/%s: %s (clip_encode skip %d)", model, src, cases[k].out, cases[k].skip);
        CHECKF(rc == 0 && d <= TOL, name, "rc %d maxabs %g %s", rc, d, err.msg);
    }
    sd_err_clear(&err);
    int rc = clip_hidden(c, id32, B, L - 1, 0, out, &err);
    double d = rc ? 1e9 : metric(model, src, "penultimate_raw", out, praw.f, n);
    snprintf(name, sizeof name, "%s/%s: penultimate_raw", model, src);
    CHECKF(rc == 0 && d <= TOL, name, "rc %d maxabs %g", rc, d);

    /* One window alone gives the same row as inside the batch of 8. */
    sd_err_clear(&err);
    rc = clip_encode(c, id32 + 3 * T, 1, 1, out, &err);
    d = rc ? 1e9 : npy_maxdiff(out, last.f + (size_t)3 * T * W, (size_t)T * W);
    snprintf(name, sizeof name, "%s/%s: single window = batch row", model, src);
    CHECKF(rc == 0 && d <= TOL, name, "rc %d maxabs %g", rc, d);

    /* Bad input is an error, not a crash. */
    id32[5] = 49408;
    sd_err_clear(&err);
    rc = clip_encode(c, id32, 1, 1, out, &err);
    snprintf(name, sizeof name, "%s/%s: id outside the vocabulary rejected", model, src);
    CHECKF(rc == -1 && err.code == SD_EINVAL && strstr(err.msg, "49408"), name, "rc %d msg %s", rc, err.msg);
    id32[5] = 0;
    sd_err_clear(&err);
    rc = clip_encode(c, id32, 1, L + 1, out, &err);
    snprintf(name, sizeof name, "%s/%s: clip_skip beyond the layers rejected", model, src);
    CHECKF(rc == -1 && err.code == SD_EINVAL && !strcmp(err.field, "clip_skip"), name, "rc %d msg %s", rc, err.msg);

    free(id32); free(out);
    npy_free(&ids); npy_free(&hs); npy_free(&last); npy_free(&pln); npy_free(&praw);
    clip_free(c);
    sdw_close(w);
}

int main(void)
{
    if (!parity_begin()) return t_done();
    check_model("tiny-sd1", "diffusers", "models/tiny-sd1", 0, 2, 1);
    check_model("tiny-sd2", "diffusers", "models/tiny-sd2", 0, 3, 2);
    check_model("tiny-sd1", "single-fp16", "models/tiny-sd1-fp16.safetensors", 1, 2, 1);
    check_model("tiny-sd2", "single-fp16", "models/tiny-sd2-fp16.safetensors", 1, 3, 2);

    return t_done();
}
