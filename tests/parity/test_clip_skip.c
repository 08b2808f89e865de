/* test_clip_skip.c — the request's clip_skip through the engine's text
 * encoding path (sd_encode_text with sd_gen_params.clip_skip, as a request
 * reaches it): on tiny-sd1 clip skip 2 gives the transformers golden
 * text_encoder/penultimate_ln (= A1111 "Clip skip 2") and 1 (and 0, the
 * default) last_hidden_state, within 1e-4, for the prompt "a photograph of
 * an astronaut riding a horse" (golden row 0) and the empty negative (row
 * 5); on tiny-sd2 both 1 and 2 give its penultimate_ln (SD2 ignores clip
 * skip, as A1111); a clip skip above the text encoder's layers is refused
 * naming clip_skip, by sd_check_request and by sd_encode_text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "parity.h"
#include "t.h"
#include "../../src/engine/pipeline.h"
#include "../../src/engine/sd.h"

#define TOL 1e-4
#define PROMPT "a photograph of an astronaut riding a horse"
enum { ROW_PROMPT = 0, ROW_EMPTY = 5, T = 77 };

/* Encodes PROMPT / "" at clip_skip and compares both rows with golden g. */
static void check_skip(sd_engine *e, const char *model, int skip, const npy *g, const char *gname)
{
    char name[160];
    sd_err err;
    sd_err_clear(&err);
    sd_gen_params p = {.prompt = PROMPT, .negative = "", .clip_skip = skip};
    float *ctx = NULL;
    int Tn = 0, W = 0;
    int rc = sd_encode_text(e, &p, &ctx, &Tn, &W, &err);
    double d = 1e9;
    if (!rc && Tn == T && (size_t)W == g->shape[2]) {
        size_t n = (size_t)T * W;
        double dn = npy_maxdiff(ctx, g->f + (size_t)ROW_EMPTY * n, n);
        double dp = npy_maxdiff(ctx + n, g->f + (size_t)ROW_PROMPT * n, n);
        d = dn > dp ? dn : dp;
    }
    printf("metric text_encoder/%s/clip_skip_%d/%s maxabs %.3g tol %g\n", model, skip, gname, d, TOL);
    snprintf(name, sizeof name, "%s: clip_skip %d through sd_encode_text = %s", model, skip, gname);
    CHECKF(rc == 0 && d <= TOL, name, "rc %d T %d W %d maxabs %g %s", rc, Tn, W, d, err.msg);
    free(ctx);
}

static sd_engine *load(const char *model)
{
    char rel[64], name[96];
    snprintf(rel, sizeof rel, "models/%s", model);
    sd_load_opts o = {.model_path = t_ref(rel), .precision = "fp32"};
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    snprintf(name, sizeof name, "%s loads", model);
    CHECKF(e != NULL, name, "%s", err.msg);
    return e;
}

int main(void)
{
    if (!parity_begin()) return t_done();
    npy last1 = {0}, pln1 = {0}, pln2 = {0};
    int bad = parity_golden("tiny-sd1", "text_encoder", "last_hidden_state", &last1) |
              parity_golden("tiny-sd1", "text_encoder", "penultimate_ln", &pln1) |
              parity_golden("tiny-sd2", "text_encoder", "penultimate_ln", &pln2);
    CHECK(!bad, "goldens load");
    sd_engine *e = bad ? NULL : load("tiny-sd1");
    if (e) {
        check_skip(e, "tiny-sd1", 2, &pln1, "penultimate_ln");
        check_skip(e, "tiny-sd1", 1, &last1, "last_hidden_state");
        check_skip(e, "tiny-sd1", 0, &last1, "last_hidden_state");
        sd_err err;
        sd_err_clear(&err);
        sd_gen_params p = {.prompt = PROMPT, .negative = "", .clip_skip = 3};
        CHECKF(sd_check_request(e, &p, &err) == -1 && err.code == SD_EINVAL && !strcmp(err.field, "clip_skip"),
               "tiny-sd1: clip_skip 3 (2 layers) refused by sd_check_request", "%s", err.msg);
        sd_err_clear(&err);
        p.clip_skip = 2;
        CHECKF(sd_check_request(e, &p, &err) == 0, "tiny-sd1: clip_skip 2 passes sd_check_request", "%s", err.msg);
        sd_err_clear(&err);
        float *ctx = NULL;
        int Tn, W;
        p.clip_skip = 3;
        CHECKF(sd_encode_text(e, &p, &ctx, &Tn, &W, &err) == -1 && !strcmp(err.field, "clip_skip"),
               "tiny-sd1: clip_skip 3 refused by the encode path", "%s", err.msg);
        free(ctx);
        sd_engine_free(e);
    }
    e = bad ? NULL : load("tiny-sd2");
    if (e) {
        check_skip(e, "tiny-sd2", 1, &pln2, "penultimate_ln");
        check_skip(e, "tiny-sd2", 2, &pln2, "penultimate_ln");
        sd_err err;
        sd_err_clear(&err);
        sd_gen_params p = {.prompt = PROMPT, .negative = "", .clip_skip = 12};
        CHECKF(sd_check_request(e, &p, &err) == 0, "tiny-sd2: clip_skip accepted and ignored", "%s", err.msg);
        sd_engine_free(e);
    }
    npy_free(&last1);
    npy_free(&pln1);
    npy_free(&pln2);
    return t_done();
}
