/* test_prompt_requests.c — A1111 prompt syntax through the engine's request
 * path (sd_encode_text, sd_check_request, sd_generate), issue 14 item 1:
 *  - golden prompts (weighted, nested, BREAK, long with comma backtracking,
 *    weights across chunks) as prompt and as negative prompt: the rows of
 *    sd_encode_text equal A1111's conditioning within 1e-4 on tiny-sd1 at
 *    clip skip 1 and 2 and on tiny-sd2, the engine loaded from a copy of
 *    the model whose text encoder carries the goldens' te_patch;
 *  - the shorter side padded with the empty prompt's chunk;
 *  - a plain prompt bit for bit what the engine computed before (its
 *    windows through clip_encode in one batch, negative then prompt);
 *  - prompt editing and alternation: the context of each model call
 *    (a1111_conds_rows, what the guided callback uses) is the text's own
 *    conditioning at the call A1111 switches, and images follow it;
 *  - refusals naming prompt / negative: AND, (a:abc), 'x,' x 3000,
 *    BREAK x 1000, non-finite weights, too many schedule chunks; literal
 *    colons A1111 reads as text accepted. */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "npy.h"
#include "parity.h"
#include "t.h"
#include "../../src/engine/models/clip.h"
#include "../../src/engine/pipeline.h"
#include "../../src/engine/prompt/a1111.h"
#include "../../src/engine/sd.h"

#define TOL 1e-4

static sd_tokenizer *tok;
static json_t *prompts;

/* ---- a model copy with te_patch's final layer norm ------------------------ */

/* Overwrites tensor `name` (F32, npy's size) inside safetensors bytes. */
static int patch_tensor(unsigned char *st, size_t n, const char *name, const npy *v)
{
    uint64_t hl = 0;
    memcpy(&hl, st, 8);
    json_error_t je;
    json_t *h = n > 8 + hl ? json_loadb((const char *)st + 8, hl, 0, &je) : NULL;
    json_t *t = json_object_get(h, name), *off = json_object_get(t, "data_offsets");
    size_t a = (size_t)json_integer_value(json_array_get(off, 0)), b = (size_t)json_integer_value(json_array_get(off, 1));
    int ok = t && !strcmp(json_string_value(json_object_get(t, "dtype")), "F32") && b - a == v->n * 4 &&
             8 + hl + b <= n;
    if (ok) memcpy(st + 8 + hl + a, v->f, v->n * 4);
    json_decref(h);
    return ok ? 0 : -1;
}

/* dir/ = model's folder with text_encoder/model.safetensors patched. */
static int patched_model(const char *model, const char *dir)
{
    static const char *link[] = {"model_index.json", "scheduler", "tokenizer", "unet", "vae"};
    char src[PATH_MAX + 128], dst[PATH_MAX + 128], models[PATH_MAX];
    if (!realpath(t_ref("models"), models)) return -1;   /* symlinks need an absolute target */
    mkdir(dir, 0700);
    for (size_t i = 0; i < sizeof link / sizeof *link; i++) {
        snprintf(src, sizeof src, "%s/%s", models, model);
        snprintf(src + strlen(src), sizeof src - strlen(src), "/%s", link[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, link[i]);
        if (access(src, F_OK) == 0 && symlink(src, dst) && access(dst, F_OK)) return -1;
    }
    snprintf(dst, sizeof dst, "%s/text_encoder", dir);
    mkdir(dst, 0700);
    snprintf(src, sizeof src, "%s/%s/text_encoder/config.json", models, model);
    snprintf(dst, sizeof dst, "%s/text_encoder/config.json", dir);
    if (symlink(src, dst) && access(dst, F_OK)) return -1;
    snprintf(src, sizeof src, "%s/%s/text_encoder/model.safetensors", models, model);
    size_t n = 0;
    unsigned char *st = t_slurp(src, &n);
    int rc = st ? 0 : -1;
    const char *part[2] = {"weight", "bias"};
    for (int k = 0; k < 2 && rc == 0; k++) {
        char rel[200], name[120];
        npy v = {0};
        snprintf(rel, sizeof rel, "goldens/a1111-prompts/te_patch/%s_final_layer_norm.%s.npy", model, part[k]);
        snprintf(name, sizeof name, "text_model.final_layer_norm.%s", part[k]);
        rc = npy_load(t_ref(rel), &v) || patch_tensor(st, n, name, &v) ? -1 : 0;
        npy_free(&v);
    }
    snprintf(dst, sizeof dst, "%s/text_encoder/model.safetensors", dir);
    FILE *f = rc == 0 ? fopen(dst, "wb") : NULL;
    rc = f && fwrite(st, 1, n, f) == n ? 0 : -1;
    if (f) fclose(f);
    free(st);
    return rc;
}

static sd_engine *load(const char *path)
{
    sd_load_opts o = {0};
    o.model_path = path;
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    CHECKF(e != NULL, "engine loads", "%s: %s", path, err.msg);
    return e;
}

/* ---- goldens through sd_encode_text --------------------------------------- */

static int index_of(const char *name)
{
    for (size_t i = 0; i < json_array_size(prompts); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(prompts, i), "name")), name)) return (int)i;
    return -1;
}

static const char *golden_cases[] = {"plain", "weight", "nested", "break", "comma_back_5", "tokens_150_commas",
                                     "weight_across_chunks", "break_long", "long79"};

typedef struct stats { int tried, matched; double worst; } stats;

/* The golden prompt i as prompt (side 1) or negative (side 0) with "" on
 * the other side: its rows = the golden; the other side's rows past its
 * one chunk = that chunk (the empty prompt, the padding). */
static void golden_case(sd_engine *e, int i, int side, int skip, const char *rel, stats *st)
{
    npy g = {0};
    if (access(t_ref(rel), R_OK)) return;
    if (npy_load(t_ref(rel), &g)) { CHECKF(0, "golden loads", "%s", rel); return; }
    const char *text = json_string_value(json_object_get(json_array_get(prompts, (size_t)i), "prompt"));
    sd_gen_params p = {.prompt = side ? text : "", .negative = side ? "" : text, .steps = 20, .clip_skip = skip};
    float *ctx = NULL;
    int T = 0, W = 0;
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_encode_text(e, &p, &ctx, &T, &W, &err);
    size_t cw = (size_t)77 * W, want = g.n;
    double d = rc || want > (size_t)T * W || want % cw ? INFINITY : npy_maxdiff(ctx + (size_t)side * T * W, g.f, want);
    int pad_ok = rc == 0;
    const float *other = rc ? NULL : ctx + (size_t)(1 - side) * T * W;
    for (size_t c = 1; pad_ok && c < (size_t)T / 77; c++) pad_ok = !memcmp(other + c * cw, other, sizeof(float) * cw);
    st->tried++;
    st->matched += d <= TOL;
    if (d > st->worst) st->worst = d;
    char label[200];
    snprintf(label, sizeof label, "%s as %s at clip skip %d through sd_encode_text = A1111", rel,
             side ? "prompt" : "negative", skip);
    if (!(d <= TOL)) CHECKF(0, label, "rc %d T %d maxabs %g %s", rc, T, d, err.msg);
    snprintf(label, sizeof label, "%s as %s: the other side padded with the empty prompt's chunk (T %d)", rel,
             side ? "prompt" : "negative", T);
    CHECKF(pad_ok && T == (int)(want / W), label, "rc %d T %d want %zu", rc, T, want / W);
    free(ctx);
    npy_free(&g);
}

static void goldens(const char *model, const char *dir)
{
    sd_engine *e = patched_model(model, dir) == 0 ? load(dir) : NULL;
    CHECKF(e != NULL, "te_patch model copy made and loaded", "%s", model);
    if (!e) return;
    int sd2 = !strcmp(model, "tiny-sd2");
    stats st[2] = {{0}};
    for (size_t k = 0; k < sizeof golden_cases / sizeof *golden_cases; k++) {
        int i = index_of(golden_cases[k]);
        CHECKF(i >= 0, "golden prompt present", "%s", golden_cases[k]);
        for (int skip = 1; i >= 0 && skip <= 2; skip++)
            for (int side = 0; side < 2; side++) {
                char rel[120];
                if (sd2) snprintf(rel, sizeof rel, "goldens/a1111-prompts/sd2/p%02d_cond.npy", i);
                else snprintf(rel, sizeof rel, "goldens/a1111-prompts/sd1/p%02d_cond_skip%d.npy", i, skip);
                golden_case(e, i, side, skip, rel, &st[skip - 1]);
            }
    }
    for (int s = 0; s < 2; s++) {
        char name[160];
        printf("metric prompt_requests/%s/clip_skip_%d matched %d of %d maxabs %.3g tol %g\n", model, s + 1,
               st[s].matched, st[s].tried, st[s].worst, TOL);
        snprintf(name, sizeof name, "%s clip skip %d: every golden case within %g", model, s + 1, TOL);
        CHECKF(st[s].tried >= (sd2 ? 10 : 4) && st[s].matched == st[s].tried, name, "%d of %d maxabs %g",
               st[s].matched, st[s].tried, st[s].worst);
    }
    sd_engine_free(e);
}

/* ---- a plain prompt: the engine's former path, bit for bit --------------- */

static void plain_is_before(sd_engine *e, int pad)
{
    const char *prompt = "a photograph of an astronaut riding a horse", *negative = "blurry, low quality";
    sd_gen_params p = {.prompt = prompt, .negative = negative, .steps = 20};
    float *ctx = NULL, *before = NULL;
    int32_t *ids[2] = {NULL, NULL}, all[2 * 77];
    int T = 0, W = 0, nw[2] = {0, 0}, same = 0;
    sd_err err;
    sd_err_clear(&err);
    if (!sd_encode_text(e, &p, &ctx, &T, &W, &err) && T == 77 && !tok_windows(tok, negative, pad, &ids[0], &nw[0], &err) &&
        !tok_windows(tok, prompt, pad, &ids[1], &nw[1], &err) && nw[0] == 1 && nw[1] == 1) {
        memcpy(all, ids[0], sizeof(int32_t) * 77);
        memcpy(all + 77, ids[1], sizeof(int32_t) * 77);
        before = malloc(sizeof(float) * 2 * 77 * W);
        same = !clip_encode(sd_engine_clip(e), all, 2, 0, before, &err) &&
               !memcmp(before, ctx, sizeof(float) * 2 * 77 * W);
    }
    CHECKF(same, "a plain prompt and negative: sd_encode_text bit for bit the former windows + clip_encode",
           "T %d %s", T, err.msg);
    free(ctx); free(before); free(ids[0]); free(ids[1]);
}

/* ---- prompt editing and alternation --------------------------------------- */

/* Row `side` of sd_encode_text(text) (prompt side, negative ""). */
static float *encoded(sd_engine *e, const char *text, int *T, int *W)
{
    sd_gen_params p = {.prompt = text, .negative = "", .steps = 20};
    sd_err err;
    sd_err_clear(&err);
    float *ctx = NULL;
    return sd_encode_text(e, &p, &ctx, T, W, &err) ? NULL : ctx;
}

/* The context a1111_conds_rows gives at each call of a `steps` run of
 * `text` equals want[k] (the encoding of the text in effect, k per call). */
static void schedule_case(sd_engine *e, const char *text, int steps, const char *const *want, const char *label)
{
    a1111_plan plan[2];
    a1111_conds c;
    sd_err err;
    sd_err_clear(&err);
    int ok = !a1111_plan_build(sd_engine_tokenizer(e), "", steps, "negative", 8, &plan[0], &err) &&
             !a1111_plan_build(sd_engine_tokenizer(e), text, steps, "prompt", 8, &plan[1], &err) &&
             !a1111_conds_encode(sd_engine_clip(e), sd_engine_tokenizer(e), SD_FAMILY_SD1, 1, 16, &plan[0], &plan[1],
                                 &c, &err);
    CHECKF(ok, "schedule encodes", "%s: %s", text, err.msg);
    if (!ok) return;
    float *ctx = malloc(sizeof(float) * 2 * 77 * c.max_chunks * c.W);
    int key = -1, bad = -1;
    for (int call = 0; call < steps && bad < 0; call++) {
        int T = a1111_conds_rows(&c, call, 1, A1111_ROWS_NEGATIVE_FIRST, ctx, &key), Tw = 0, Ww = 0;
        float *w = encoded(e, want[call], &Tw, &Ww);
        if (!w || T != Tw || memcmp(ctx, w, sizeof(float) * 2 * (size_t)T * Ww)) bad = call;
        free(w);
    }
    CHECKF(bad < 0, label, "first wrong call %d", bad);
    free(ctx);
    a1111_conds_free(&c);
    a1111_plan_free(&plan[0]);
    a1111_plan_free(&plan[1]);
}

static void editing(sd_engine *e)
{
    /* [cat:dog:2] of 4 steps: A1111's schedule (2 cat)(4 dog); its denoiser
     * call n takes the first entry ending at >= n: calls 0, 1, 2 cat, 3 dog */
    const char *edit[] = {"a cat", "a cat", "a cat", "a dog"};
    schedule_case(e, "a [cat:dog:2]", 4, edit, "[cat:dog:2], 4 steps: calls 0-2 = 'a cat', call 3 = 'a dog'");
    const char *frac[] = {"a cat", "a cat", "a cat", "a dog", "a dog", "a dog"};
    schedule_case(e, "a [cat:dog:0.4]", 6, frac, "[cat:dog:0.4], 6 steps (step 2): calls 0-2 cat, 3-5 dog");
    /* alternation: entries (1 cat)(2 dog)(3 cat)(4 dog), so call 0 and 1 both take step 1's */
    const char *alt[] = {"a cat", "a cat", "a dog", "a cat"};
    schedule_case(e, "a [cat|dog]", 4, alt, "[cat|dog], 4 steps: calls cat, cat, dog, cat (A1111's counting)");
    const char *grow[] = {"a cat", "a cat", "a cat, (red:1.3) hat BREAK blue sky"};
    schedule_case(e, "a cat[:, (red:1.3) hat BREAK blue sky:1]", 3, grow,
                  "[:text BREAK ...:1]: the context grows from 1 to 2 chunks at call 2 (negative padded)");

    /* whole runs: the switch shows in the image */
    sd_gen_params p = {.negative = "", .width = 64, .height = 64, .steps = 4, .cfg = 7.0f, .sampler = SD_SAMPLER_EULER,
                       .seed = 3, .n = 1};
    const char *text[4] = {"a cat", "a dog", "a [cat:dog:2]", "a [cat:dog:3]"};
    sd_image img[4] = {{0}};
    int rc = 0;
    for (int k = 0; k < 4; k++) {
        sd_err err;
        sd_err_clear(&err);
        p.prompt = text[k];
        rc |= sd_generate(e, &p, &img[k], &err);
    }
    size_t n = (size_t)64 * 64 * 3;
    int maxd = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        int d = abs(img[3].rgb[i] - img[0].rgb[i]);
        if (d > maxd) maxd = d;
    }
    CHECKF(!rc && memcmp(img[2].rgb, img[0].rgb, n) && memcmp(img[2].rgb, img[1].rgb, n),
           "sd_generate '[cat:dog:2]' differs from 'cat' and from 'dog'", "rc %d", rc);
    CHECKF(!rc && maxd <= 1, "sd_generate '[cat:dog:3]' of 4 steps (never switches) = 'cat'", "max diff %d", maxd);
    for (int k = 0; k < 4; k++) sd_image_free(&img[k]);
}

/* ---- refusals --------------------------------------------------------------- */

static void refusal(sd_engine *e, const char *prompt, const char *negative, const char *field, const char *frag,
                    const char *label)
{
    sd_gen_params p = {.prompt = prompt, .negative = negative, .steps = 20, .width = 64, .height = 64, .cfg = 7,
                       .n = 1, .sampler = SD_SAMPLER_EULER};
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_check_request(e, &p, &err);
    CHECKF(rc == -1 && err.code == SD_EINVAL && !strcmp(err.field, field) && strstr(err.msg, frag), label,
           "rc %d field '%s' msg '%s'", rc, err.field, err.msg);
    float *ctx = NULL;
    int T, W;
    sd_err_clear(&err);
    rc = sd_encode_text(e, &p, &ctx, &T, &W, &err);
    CHECKF(rc == -1 && !ctx && !strcmp(err.field, field), "  ... and sd_encode_text refuses it too", "rc %d %s", rc,
           err.msg);
}

static void refusals(sd_engine *e)
{
    char *commas = t_repeat("x,", 3000), *breaks = t_repeat("BREAK ", 1000), *alts = t_repeat("a long scene, ", 80);
    char *alt = malloc(strlen(alts) + 2000), *big = t_repeat("0", 400), *nines = t_repeat("9", 200), inf[512], prod[512];
    strcpy(alt, alts);
    strcat(alt, "[");
    for (int i = 0; i < 150; i++) sprintf(alt + strlen(alt), "%sw%d", i ? "|" : "", i);
    strcat(alt, "]");
    snprintf(inf, sizeof inf, "(a:1%s)", big);
    snprintf(prod, sizeof prod, "((a:%s):%s)", nines, nines);
    refusal(e, "a cat AND a dog", "", "prompt", "AND (composable diffusion) is not supported", "AND refused");
    refusal(e, "x", "ugly AND blurry", "negative", "negative prompt: AND", "AND in the negative refused");
    refusal(e, "a (cat:abc)", "", "prompt", "the weight 'abc' is not a number", "(cat:abc) refused");
    refusal(e, "x", "(blur:1,5)", "negative", "the weight '1,5' is not a number", "(blur:1,5) refused");
    refusal(e, "(a:1.2.3)", "", "prompt", "is not a number", "(a:1.2.3) refused");
    refusal(e, commas, "", "prompt", "the limit is 8 windows", "'x,' x 3000 refused with the limit");
    refusal(e, "x", breaks, "negative", "the limit is 8 windows", "BREAK x 1000 in the negative refused");
    refusal(e, inf, "", "prompt", "not a finite number", "a weight of 1e400 refused");
    refusal(e, prod, "", "prompt", "not a finite number", "a weight product overflowing refused");
    refusal(e, alt, "", "prompt", "the limit is 64 chunks", "alternation of a 5-chunk text over 20 steps refused");
    refusal(e, "(a:1e5)", "", "prompt", "the weight '1e5' is not a number", "(a:1e5): no exponents, as A1111");
    /* A1111 reads these as text: accepted */
    sd_gen_params ok = {.prompt = "(a:) time 12:30 (12:30 pm) (emoticon \\:D) [a:b:0.5]", .negative = "", .steps = 20};
    sd_err err;
    sd_err_clear(&err);
    CHECKF(!sd_check_request(e, &ok, &err), "literal colons A1111 reads as text accepted", "%s", err.msg);
    free(commas); free(breaks); free(alts); free(alt); free(big); free(nines);
}

int main(void)
{
    if (!parity_begin()) return t_done();
    sd_err err;
    sd_err_clear(&err);
    tok = tok_load_builtin(&err);
    json_error_t je;
    prompts = json_load_file(t_ref("goldens/a1111-prompts/prompts.json"), 0, &je);
    CHECKF(tok && json_is_array(prompts), "vocabulary and prompts.json load", "%s %s", err.msg, je.text);
    char dir[] = "/tmp/sd_prompt_requests_XXXXXX";
    if (!tok || !json_is_array(prompts) || !mkdtemp(dir)) return t_done();
    char d1[600], d2[600];
    snprintf(d1, sizeof d1, "%s/tiny-sd1", dir);
    snprintf(d2, sizeof d2, "%s/tiny-sd2", dir);
    goldens("tiny-sd1", d1);
    goldens("tiny-sd2", d2);
    sd_engine *e = load(t_ref("models/tiny-sd1"));
    if (e) {
        plain_is_before(e, 49407);
        editing(e);
        refusals(e);
        sd_engine_free(e);
    }
    sd_engine *e2 = load(t_ref("models/tiny-sd2"));
    if (e2) plain_is_before(e2, 0);
    sd_engine_free(e2);
    t_rmtree(dir);
    json_decref(prompts);
    tok_free(tok);
    return t_done();
}
