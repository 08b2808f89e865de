/* test_text_release.c — SDXL's text towers give their weight copies back
 * after each encode (pipeline.c text_run_open, clip_release_weights) so
 * they are not resident while the UNet and the VAE run, and re-derive them
 * exactly: on the tiny SDXL (single file, F16: the originals' pages were
 * given back at the first copy, so the copies come again from the file
 * mapping) the second encode gives the first's context and pooled rows bit
 * for bit (test_sdxl_text and kin check the first against the goldens); a
 * text-encoder weight patched
 * through the handle seam (LoRA's) stays patched across the release and is
 * restored exactly.  SD1 keeps its copies (behaviour unchanged). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "parity.h"
#include "t.h"
#include "../../src/engine/models/clip.h"
#include "../../src/engine/ops/ops.h"
#include "../../src/engine/pipeline.h"
#include "../../src/engine/sd.h"

static const sd_gen_params TEXT = {.prompt = "a red bicycle leaning on a wall", .negative = "blurry"};

/* The engine's copies held (one context for all its models). */
static size_t copies_bytes(sd_engine *e)
{
    size_t n, b, wb;
    ops_weights_stats(clip_ops_ctx(sd_engine_clip_at(e, 0)), &n, &b, &wb);
    return b;
}

typedef struct enc { float *ctx, *pooled; int T, W, P; } enc;

static int encode(sd_engine *e, enc *x)
{
    sd_err err;
    sd_err_clear(&err);
    memset(x, 0, sizeof *x);
    int rc = sd_encode_text_pooled(e, &TEXT, &x->ctx, &x->T, &x->W, &x->pooled, &x->P, &err);
    if (rc) printf("# encode: %s\n", err.msg);
    return rc;
}

static int same(const enc *a, const enc *b)
{
    size_t nc = (size_t)2 * a->T * a->W, np = (size_t)2 * a->P;
    return a->T == b->T && a->W == b->W && a->P == b->P && !memcmp(a->ctx, b->ctx, nc * sizeof(float)) &&
           (!np || !memcmp(a->pooled, b->pooled, np * sizeof(float)));
}

static void enc_free(enc *x) { free(x->ctx); free(x->pooled); }

static sd_engine *load(const char *rel)
{
    sd_load_opts o = {.model_path = t_ref(rel), .precision = "fp32"};
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    CHECKF(e != NULL, rel, "loads: %s", err.msg);
    return e;
}

static void test_sdxl(void)
{
    sd_engine *e = load("models/tiny-sdxl-s-fp16.safetensors");
    if (!e) return;
    enc a, b, c, d;
    CHECK(copies_bytes(e) == 0, "sdxl: no weight copies before the first encode");
    int rc = encode(e, &a);
    CHECKF(!rc && copies_bytes(e) == 0, "sdxl: the towers' copies are given back after the encode",
           "%zu bytes held", copies_bytes(e));
    rc |= encode(e, &b);
    CHECK(!rc && same(&a, &b), "sdxl: the encode after the release = the first, bit for bit (context, pooled)");

    /* LoRA's seam: a replaced weight's copies come from the replacement */
    sd_clip *c1 = sd_engine_clip_at(e, 0);
    ops_weight *h = clip_weight(c1, "text_encoder.text_model.encoder.layers.0.mlp.fc1.weight");
    size_t n = h ? ops_weight_numel(h) : 0;
    float *v = n ? malloc(n * sizeof *v) : NULL;
    int ok = v && !ops_weight_read(h, v);
    for (size_t i = 0; ok && i < n; i++) v[i] *= 1.5f;
    ok = ok && !ops_weight_replace(h, v);
    CHECK(ok, "sdxl: a text-encoder weight replaced through its handle");
    rc = encode(e, &c) | encode(e, &d);   /* the second after a release */
    CHECK(!rc && !same(&a, &c) && same(&c, &d), "sdxl: the patch changes the encode and survives the release");
    enc_free(&c);
    enc_free(&d);
    CHECK(ok && !ops_weight_restore(h), "sdxl: the weight restored");
    rc = encode(e, &c);
    CHECK(!rc && same(&a, &c), "sdxl: after the restore the encode is the original's, bit for bit");
    enc_free(&c);
    free(v);
    enc_free(&a);
    enc_free(&b);
    sd_engine_free(e);
}

static void test_sd1(void)
{
    sd_engine *e = load("models/tiny-sd1-fp16.safetensors");
    if (!e) return;
    enc a;
    int rc = encode(e, &a);
    CHECKF(!rc && copies_bytes(e) > 0, "sd1: the text encoder keeps its weight copies", "%zu bytes held",
           copies_bytes(e));
    enc_free(&a);
    sd_engine_free(e);
}

int main(void)
{
    if (!parity_begin()) return t_done();
    test_sdxl();
    test_sd1();
    return t_done();
}
