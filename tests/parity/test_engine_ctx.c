/* test_engine_ctx.c — the engine context (ops.h: ops_ctx, weight handles).
 *
 * Two models loaded in one process — tiny-sd1 from its diffusers folder at
 * fp32 and tiny-sd2 from its fp16 single file at bf16x2 (fp32 where the CPU
 * has no bf16 kernels) — generate on two threads at once, a few rounds, and
 * each image must be byte-identical to the same model's image made alone:
 * nothing of one engine's ops state (precision, caches, weights, fault)
 * leaks into the other's.  Then a UNet weight is replaced by altered values
 * (the output must change) and restored (the output must be bit-identical
 * to before), at fp32, bf16x2 and bf16; tiny-sd2's fp16 weights had their
 * fp32 pages given back after the first copy, so restoring (and the switch
 * to bf16) re-derives them from the file. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/ops/ops.h"
#include "../../src/engine/pipeline.h"
#include "../../src/engine/sd.h"

#define ROUNDS 3
/* a conv and a linear layer of the UNet */
static const char *const WEIGHTS[] = {"down_blocks.0.resnets.0.conv1.weight",
                                      "mid_block.attentions.0.transformer_blocks.0.ff.net.2.weight"};

typedef struct model {
    const char *name;
    sd_engine *e;
    sd_image alone;     /* its picture made alone */
    sd_image run;       /* one made beside the other model */
    int rc;
    char msg[512];
} model;

static sd_engine *load(const char *path, int single, const char *prec, char *msg, size_t n)
{
    sd_load_opts o = {0};
    o.model_path = t_ref(path);
    o.vocab_path = single ? t_ref("tokenizer/bpe_simple_vocab_16e6.txt.gz") : NULL;
    o.precision = prec;
    o.threads = 2;
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    if (!e) snprintf(msg, n, "%s", err.msg);
    return e;
}

static int generate(sd_engine *e, sd_image *out, char *msg, size_t n)
{
    sd_gen_params p = {0};
    p.prompt = "a red cube on a wooden table";
    p.negative = "blurry";
    p.width = 64;
    p.height = 48;
    p.steps = 4;
    p.cfg = 7.f;
    p.sampler = SD_SAMPLER_DPMPP_2M;
    p.seed = 1234;
    p.n = 1;
    sd_err err;
    sd_err_clear(&err);
    memset(out, 0, sizeof *out);
    if (sd_generate(e, &p, out, &err)) {
        snprintf(msg, n, "%s", err.msg);
        return -1;
    }
    return 0;
}

static int same(const sd_image *a, const sd_image *b)
{
    return a->rgb && b->rgb && a->width == b->width && a->height == b->height &&
           !memcmp(a->rgb, b->rgb, (size_t)a->width * a->height * 3);
}

static void *worker(void *arg)
{
    model *m = arg;
    m->rc = generate(m->e, &m->run, m->msg, sizeof m->msg);
    return NULL;
}

static void two_threads(model *m)
{
    for (int r = 0; r < ROUNDS; r++) {
        pthread_t th[2];
        for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, worker, &m[i]);
        for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < 2; i++) {
            char name[160];
            snprintf(name, sizeof name, "round %d: %s beside %s on another thread = %s alone, byte for byte", r + 1,
                     m[i].name, m[1 - i].name, m[i].name);
            CHECKF(m[i].rc == 0 && same(&m[i].run, &m[i].alone), name, "%s", m[i].rc ? m[i].msg : "pixels differ");
            sd_image_free(&m[i].run);
        }
    }
}

/* Replace one UNet weight, generate, restore, generate: the first picture
 * differs from `base`, the second is base exactly. */
static void replace_restore(model *m, const char *prec, const sd_image *base, const char *wname)
{
    char name[240], msg[512] = "";
    ops_weight *w = unet_weight(sd_engine_unet(m->e), wname);
    snprintf(name, sizeof name, "%s at %s: %s has a weight handle", m->name, prec, wname);
    CHECK(w != NULL, name);
    if (!w) return;
    size_t n = ops_weight_numel(w);
    float *orig = malloc(n * sizeof(float)), *alt = malloc(n * sizeof(float)), *back = malloc(n * sizeof(float));
    sd_image a = {0}, b = {0};
    if (!orig || !alt || !back || ops_weight_read(w, orig)) goto done;
    for (size_t i = 0; i < n; i++) alt[i] = orig[i] * 1.5f + 0.02f;
    int rc = ops_weight_replace(w, alt) || generate(m->e, &a, msg, sizeof msg);
    snprintf(name, sizeof name, "%s at %s: %s replaced by altered values -> another picture", m->name, prec, wname);
    CHECKF(!rc && !same(&a, base), name, "%s", rc ? msg : "the same pixels");
    rc = ops_weight_restore(w) || ops_weight_read(w, back);
    snprintf(name, sizeof name, "%s at %s: %s restored reads back its exact original values", m->name, prec, wname);
    CHECK(!rc && !memcmp(orig, back, n * sizeof(float)), name);
    rc = generate(m->e, &b, msg, sizeof msg);
    snprintf(name, sizeof name, "%s at %s: %s restored -> the picture before, byte for byte", m->name, prec, wname);
    CHECKF(!rc && same(&b, base), name, "%s", rc ? msg : "pixels differ");
done:
    sd_image_free(&a);
    sd_image_free(&b);
    free(orig); free(alt); free(back);
}

int main(void)
{
    if (!t_have_ref()) {
        CHECKF(0, "reference data present", "no reference folder (set SD_REF)");
        return t_done();
    }
    const char *p2 = ops_cpu_bf16() ? "bf16x2" : "fp32";
    if (!ops_cpu_bf16()) printf("# no bf16 kernels on this CPU: tiny-sd2 runs at fp32 too\n");
    model m[2] = {{.name = "tiny-sd1 (fp32)"}, {.name = "tiny-sd2 (fp16 file)"}};
    m[0].e = load("models/tiny-sd1", 0, "fp32", m[0].msg, sizeof m[0].msg);
    m[1].e = load("models/tiny-sd2-fp16.safetensors", 1, p2, m[1].msg, sizeof m[1].msg);
    for (int i = 0; i < 2; i++) {
        char name[128];
        snprintf(name, sizeof name, "load %s", m[i].name);
        CHECKF(m[i].e != NULL, name, "%s", m[i].msg);
    }
    if (!m[0].e || !m[1].e) goto out;
    for (int i = 0; i < 2; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s alone", m[i].name);
        CHECKF(!generate(m[i].e, &m[i].alone, m[i].msg, sizeof m[i].msg), name, "%s", m[i].msg);
    }
    if (!m[0].alone.rgb || !m[1].alone.rgb) goto out;
    CHECK(!same(&m[0].alone, &m[1].alone), "the two models draw different pictures");
    two_threads(m);

    for (size_t k = 0; k < sizeof WEIGHTS / sizeof WEIGHTS[0]; k++) {
        replace_restore(&m[0], "fp32", &m[0].alone, WEIGHTS[k]);
        replace_restore(&m[1], p2, &m[1].alone, WEIGHTS[k]);
    }
    if (ops_cpu_bf16()) {
        /* the same UNet at bf16 from now on: its copies are made again from
         * the original, whose fp32 pages were given back */
        unet_set_precision(sd_engine_unet(m[1].e), OPS_BF16);
        sd_image b16 = {0};
        char msg[512] = "";
        CHECKF(!generate(m[1].e, &b16, msg, sizeof msg) && !same(&b16, &m[1].alone),
               "tiny-sd2 UNet switched to bf16 after its originals were given back: generates, another picture",
               "%s", msg[0] ? msg : "the same pixels as bf16x2");
        for (size_t k = 0; b16.rgb && k < sizeof WEIGHTS / sizeof WEIGHTS[0]; k++)
            replace_restore(&m[1], "bf16", &b16, WEIGHTS[k]);
        sd_image_free(&b16);
        unet_set_precision(sd_engine_unet(m[1].e), ops_precision_from_name(p2));   /* back */
    }
    /* after all that, both still make their first pictures side by side */
    two_threads(m);
out:
    for (int i = 0; i < 2; i++) {
        sd_image_free(&m[i].alone);
        sd_engine_free(m[i].e);
    }
    return t_done();
}
