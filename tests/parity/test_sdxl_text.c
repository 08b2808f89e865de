/* test_sdxl_text.c — SDXL's text side against the diffusers v0.25.1 goldens
 * in goldens/tiny-sdxl-s/text/, for the diffusers folder (F32) and the
 * original-naming single file (F16): the loader's names for both towers
 * (conditioner.embedders.0/1, text_encoder/ + text_encoder_2/), both
 * encoders' hidden states (every layer) and final-LN'd last layer, the
 * second tower's pooled output through its text_projection, the
 * concatenated penultimate context, both tokenizers' ids, and the A1111
 * prompt path (a1111_conds_encode_multi): context and pooled rows
 * [negative, prompt] of the pipeline runs, zeros for an empty negative,
 * emphasis applied per encoder.  Prints "metric text_encoder/tiny-sdxl-s/
 * <src>/<output> maxabs X tol 1e-4" lines for docs/ACCURACY.md. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "parity.h"
#include "t.h"
#include "../../src/engine/loader/family.h"
#include "../../src/engine/loader/st_write.h"
#include "../../src/engine/models/clip.h"
#include "../../src/engine/prompt/a1111.h"
#include "../../src/engine/tokenizer/clip_bpe.h"

#define TOL 1e-4
#define MODEL "tiny-sdxl-s"

/* "metric text_encoder/tiny-sdxl-s/<src>/<key> maxabs X tol T": key = out up
 * to " (", spaces as '_' (scripts/accuracy.sh reads space-separated fields). */
static double metric(const char *src, const char *out, const float *got, const float *want, size_t n)
{
    char key[96];
    size_t k = 0;
    for (const char *c = out; *c && k + 1 < sizeof key && strncmp(c, " (", 2); c++) key[k++] = *c == ' ' ? '_' : *c;
    key[k] = 0;
    double d = npy_maxdiff(got, want, n);
    printf("metric text_encoder/" MODEL "/%s/%s maxabs %.3g tol %g\n", src, key, d, TOL);
    return d;
}

static void check_close(const char *src, const char *what, int rc, const float *got, const float *want, size_t n,
                        const sd_err *err)
{
    char name[200];
    double d = rc ? 1e9 : metric(src, what, got, want, n);
    snprintf(name, sizeof name, "%s: %s", src, what);
    CHECKF(rc == 0 && d <= TOL, name, "rc %d maxabs %g %s", rc, d, err->msg);
}

static int32_t *ids32(const npy *a)
{
    size_t n = (size_t)a->shape[0] * a->shape[1];
    int32_t *v = malloc(sizeof *v * n);
    for (size_t i = 0; i < n; i++) v[i] = (int32_t)a->i[i];
    return v;
}

/* Every hidden state and the final-LN'd last layer of one tower. */
static void check_hidden(const char *src, const char *te, sd_clip *c, const int32_t *ids, int B)
{
    char file[64], what[96];
    npy hs, last;
    snprintf(file, sizeof file, "%s_hidden_states", te);
    int bad = parity_golden(MODEL, "text", file, &hs);
    snprintf(file, sizeof file, "%s_last_hidden_state", te);
    bad |= parity_golden(MODEL, "text", file, &last);
    snprintf(what, sizeof what, "%s goldens load", te);
    CHECK(!bad, what);
    if (bad) return;
    int L = clip_layers(c);
    size_t n = (size_t)B * 77 * clip_width(c);
    float *out = malloc(sizeof *out * n);
    sd_err err;
    for (int l = 0; l <= L; l++) {
        sd_err_clear(&err);
        int rc = clip_hidden(c, ids, B, l, 0, out, &err);
        snprintf(what, sizeof what, "%s hidden_states.%d", te, l);
        check_close(src, what, rc, out, hs.f + (size_t)l * n, n, &err);
    }
    sd_err_clear(&err);
    int rc = clip_hidden(c, ids, B, L, 1, out, &err);
    snprintf(what, sizeof what, "%s last_hidden_state", te);
    check_close(src, what, rc, out, last.f, n, &err);
    free(out);
    npy_free(&hs);
    npy_free(&last);
}

/* te2's pooled output, and context = cat(te1 hs[-2], te2 hs[-2]) from one pass each. */
static void check_pooled_context(const char *src, sd_clip *c1, sd_clip *c2, const int32_t *id1, const int32_t *id2,
                                 int B)
{
    npy emb, ctx;
    int bad = parity_golden(MODEL, "text", "te2_text_embeds", &emb) | parity_golden(MODEL, "text", "context", &ctx);
    CHECK(!bad, "pooled/context goldens load");
    if (bad) return;
    int W1 = clip_width(c1), W2 = clip_width(c2), P = clip_proj_dim(c2), W = W1 + W2;
    float *h1 = malloc(sizeof(float) * B * 77 * W1), *h2 = malloc(sizeof(float) * B * 77 * W2);
    float *pooled = malloc(sizeof(float) * B * P), *cat = malloc(sizeof(float) * B * 77 * W);
    sd_err err;
    sd_err_clear(&err);
    int rc = clip_hidden_pooled(c1, id1, NULL, B, clip_layers(c1) - 1, 0, h1, NULL, &err) ||
             clip_hidden_pooled(c2, id2, NULL, B, clip_layers(c2) - 1, 0, h2, pooled, &err);
    check_close(src, "te2_text_embeds (pooled @ text_projection)", rc, pooled, emb.f, (size_t)B * P, &err);
    for (int r = 0; r < B * 77; r++) {
        memcpy(cat + (size_t)r * W, h1 + (size_t)r * W1, sizeof(float) * W1);
        memcpy(cat + (size_t)r * W + W1, h2 + (size_t)r * W2, sizeof(float) * W2);
    }
    check_close(src, "context (penultimate, no final LN, te1 first)", rc, cat, ctx.f, (size_t)B * 77 * W, &err);
    /* the tower without a projection has no pooled output */
    sd_err_clear(&err);
    rc = clip_hidden_pooled(c1, id1, NULL, 1, 1, 0, h1, pooled, &err);
    CHECKF(rc == -1 && err.code == SD_EINVAL, "te1 has no pooled output (no text_projection)", "rc %d %s", rc,
           err.msg);
    free(h1); free(h2); free(pooled); free(cat);
    npy_free(&emb);
    npy_free(&ctx);
}

/* The A1111 path: [negative, prompt] context and pooled rows of the first call. */
static int a1111_rows(sd_clip *const *clips, const sd_tokenizer *tok, const char *neg, const char *prompt,
                      int zero_neg, float *ctx, float *pooled, int *T, sd_err *err)
{
    a1111_plan plan[2];
    memset(plan, 0, sizeof plan);
    a1111_conds conds = {0};
    int rc = a1111_plan_build(tok, neg, 1, "negative", 8, &plan[0], err) ||
             a1111_plan_build(tok, prompt, 1, "prompt", 8, &plan[1], err) ||
             a1111_conds_encode_multi(clips, 2, tok, SD_FAMILY_SDXL, 0, 16, zero_neg, &plan[0], &plan[1], &conds,
                                      err);
    if (!rc) {
        int key = -1;
        *T = a1111_conds_rows(&conds, 0, 1, A1111_ROWS_NEGATIVE_FIRST, ctx, &key);
        a1111_conds_pooled(&conds, 0, 1, A1111_ROWS_NEGATIVE_FIRST, pooled);
    }
    a1111_conds_free(&conds);
    a1111_plan_free(&plan[0]);
    a1111_plan_free(&plan[1]);
    return rc ? -1 : 0;
}

static void check_a1111(const char *src, sd_clip *c1, sd_clip *c2, const sd_tokenizer *tok)
{
    sd_clip *clips[2] = {c1, c2};
    npy pe, pp, ctx6;
    int bad = parity_golden(MODEL, "text", "pipe_prompt_embeds", &pe) | parity_golden(MODEL, "text", "pipe_pooled", &pp) |
              parity_golden(MODEL, "text", "context", &ctx6);
    CHECK(!bad, "pipe goldens load");
    if (bad) return;
    int W = clip_width(c1) + clip_width(c2), P = clip_proj_dim(c2), T = 0;
    size_t row = (size_t)77 * W;
    float *ctx = calloc(2 * 8 * row, sizeof(float)), *pooled = calloc(2 * (size_t)P, sizeof(float));
    sd_err err;
    sd_err_clear(&err);
    int rc = a1111_rows(clips, tok, "blurry, low quality", "a photograph of an astronaut riding a horse", 0, ctx,
                        pooled, &T, &err);
    check_close(src, "a1111 pipe context (rows negative, prompt)", rc || T != 77, ctx, pe.f, 2 * row, &err);
    check_close(src, "a1111 pipe pooled (rows negative, prompt)", rc, pooled, pp.f, 2 * (size_t)P, &err);

    /* empty negative: zeros, context and pooled; the prompt row unchanged */
    sd_err_clear(&err);
    rc = a1111_rows(clips, tok, "", "a photograph of an astronaut riding a horse", 1, ctx, pooled, &T, &err);
    double z = rc ? 1e9 : npy_maxabs(ctx, row) + npy_maxabs(pooled, (size_t)P);
    char name[200];
    snprintf(name, sizeof name, "%s: empty negative -> zero context and pooled rows", src);
    CHECKF(rc == 0 && z == 0.0, name, "rc %d max|row 0| %g %s", rc, z, err.msg);
    check_close(src, "a1111 prompt row beside a zero negative", rc, ctx + row, pe.f + row, row, &err);
    check_close(src, "a1111 prompt pooled beside a zero negative", rc, pooled + P, pp.f + P, (size_t)P, &err);

    /* plain prompts of the six (no emphasis syntax, one chunk) as the prompt;
     * not prompt 1: diffusers' tokenizer_2 splits its "!" as the pad token
     * (id 0), A1111's OpenCLIP tokenizer gives "!</w>" (256), as we do */
    static const int plain[] = {0, 2, 4};
    json_t *j = json_load_file(t_ref("goldens/" MODEL "/text/prompts.json"), 0, NULL);
    for (size_t k = 0; k < sizeof plain / sizeof plain[0]; k++) {
        const char *text = json_string_value(json_array_get(j, (size_t)plain[k]));
        char what[64];
        snprintf(what, sizeof what, "a1111 context of prompt %d", plain[k]);
        sd_err_clear(&err);
        rc = text ? a1111_rows(clips, tok, "", text, 0, ctx, pooled, &T, &err) : -1;
        check_close(src, what, rc || T != 77, ctx + row, ctx6.f + (size_t)plain[k] * row, row, &err);
    }
    json_decref(j);
    free(ctx);
    free(pooled);
    npy_free(&pe);
    npy_free(&pp);
    npy_free(&ctx6);
}

/* Emphasis is A1111's per wrapped embedder: each encoder's rows rescaled by
 * its own mean, then concatenated (not one rescale of the 40-wide rows). */
static void check_emphasis(const char *src, sd_clip *c1, sd_clip *c2, const sd_tokenizer *tok)
{
    sd_clip *clips[2] = {c1, c2};
    const char *text = "a (photograph:1.3) of an [astronaut] riding a horse";
    int W1 = clip_width(c1), W2 = clip_width(c2), W = W1 + W2, T = 0, P = clip_proj_dim(c2);
    size_t row = (size_t)77 * W;
    float *ctx = calloc(2 * 8 * row, sizeof(float)), *pooled = calloc(2 * (size_t)P, sizeof(float));
    float *h1 = malloc(sizeof(float) * 77 * W1), *h2 = malloc(sizeof(float) * 77 * W2);
    float *want = malloc(sizeof(float) * row), *plain = calloc(2 * 8 * row, sizeof(float));
    float *plain_pooled = calloc(2 * (size_t)P, sizeof(float));
    sd_err err;
    sd_err_clear(&err);
    a1111_plan plan = {0};
    int rc = a1111_rows(clips, tok, "", text, 1, ctx, pooled, &T, &err) ||
             a1111_rows(clips, tok, "", "a photograph of an astronaut riding a horse", 1, plain, plain_pooled, &T,
                        &err) ||
             a1111_plan_build(tok, text, 1, "prompt", 8, &plan, &err);
    if (!rc) {
        const a1111_chunks *ch = &plan.chunks[0];
        int32_t id2[77];
        memcpy(id2, ch->ids, sizeof id2);
        a1111_openclip_pad(id2, 1, tok_eos(tok));
        rc = clip_hidden(c1, ch->ids, 1, clip_layers(c1) - 1, 0, h1, &err) ||
             clip_hidden(c2, id2, 1, clip_layers(c2) - 1, 0, h2, &err);
        a1111_emphasis(h1, ch->mults, W1);
        a1111_emphasis(h2, ch->mults, W2);
        for (int t = 0; t < 77; t++) {
            memcpy(want + (size_t)t * W, h1 + (size_t)t * W1, sizeof(float) * W1);
            memcpy(want + (size_t)t * W + W1, h2 + (size_t)t * W2, sizeof(float) * W2);
        }
    }
    check_close(src, "a1111 emphasis per encoder", rc, ctx + row, want, row, &err);
    double moved = rc ? 0 : npy_maxdiff(ctx + row, plain + row, row);
    char name[200];
    snprintf(name, sizeof name, "%s: emphasis changes the context", src);
    CHECKF(rc == 0 && moved > 1e-3, name, "max change %g", moved);
    /* the pooled vector is the unweighted first chunk's (A1111's zs[0].pooled before emphasis) */
    check_close(src, "a1111 pooled ignores emphasis", rc, pooled + P, plain_pooled + P, (size_t)P, &err);
    a1111_plan_free(&plan);
    free(ctx); free(pooled); free(h1); free(h2); free(want); free(plain); free(plain_pooled);
}

/* One embedding file of `n` tensors in dir. */
static void write_file(const char *dir, const char *file, const stw_tensor *t, const float *const *d, size_t n)
{
    char p[700], name[200];
    sd_err err;
    sd_err_clear(&err);
    snprintf(p, sizeof p, "%s/%s", dir, file);
    snprintf(name, sizeof name, "embedding file %s written", file);
    CHECKF(!stw_write_f32(p, t, d, n, &err), name, "%s", err.msg);
}

/* SDXL textual inversion: a clip_l + clip_g pair's vectors go to their own
 * encoder; a one-tensor embedding is listed as unusable on SDXL. */
static void check_embeddings(const char *src, sd_clip *c1, sd_clip *c2, const sd_tokenizer *tok)
{
    char dir[] = "/tmp/sdxl_emb_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "temp folder"); return; }
    int W1 = clip_width(c1), W2 = clip_width(c2), W = W1 + W2, P = clip_proj_dim(c2);
    float l[2 * 64], g[2 * 64];
    for (int i = 0; i < 2 * W2; i++) g[i] = 0.05f * (float)((i * 7) % 11) - 0.25f;
    for (int i = 0; i < 2 * W1; i++) l[i] = 0.04f * (float)((i * 5) % 13) - 0.2f;
    stw_tensor pair[2] = {{"clip_g", "F32", 2, {2, W2}}, {"clip_l", "F32", 2, {2, W1}}};
    const float *pd[2] = {g, l};
    write_file(dir, "xlpair.safetensors", pair, pd, 2);
    stw_tensor one = {"emb_params", "F32", 2, {1, W1}};
    const float *od = l;
    write_file(dir, "plain.safetensors", &one, &od, 1);

    sd_embeddings emb;
    sd_err err;
    sd_err_clear(&err);
    int rc = emb_dir_load2(dir, tok, W1, W2, &emb, &err);
    const sd_embedding *xe = NULL, *pe = NULL;
    for (int i = 0; !rc && i < emb.n; i++) {
        if (!strcmp(emb.v[i].name, "xlpair")) xe = &emb.v[i];
        if (!strcmp(emb.v[i].name, "plain")) pe = &emb.v[i];
    }
    char name[200];
    snprintf(name, sizeof name, "%s: clip_l + clip_g pair usable, one-tensor file refused on SDXL", src);
    CHECKF(xe && pe && !xe->error && xe->n == 2 && xe->width == W1 && xe->width2 == W2 && pe->error &&
           strstr(pe->error, "clip_l + clip_g"), name, "%s %s", err.msg, pe && pe->error ? pe->error : "");
    sd_embeddings emb1;
    sd_err_clear(&err);
    int rc1 = emb_dir_load(dir, tok, W1, &emb1, &err);
    int refused = 0;
    for (int i = 0; !rc1 && i < emb1.n; i++)
        if (!strcmp(emb1.v[i].name, "xlpair")) refused = emb1.v[i].error && strstr(emb1.v[i].error, "SDXL");
    CHECKF(refused, "an SDXL pair is refused by a one-encoder model", "%s", err.msg);
    if (!rc1) emb_set_free(&emb1);

    if (xe && !xe->error) {
        const char *text = "a photograph of xlpair riding a horse";
        a1111_plan plan[2];
        a1111_conds conds = {0};
        memset(plan, 0, sizeof plan);
        sd_clip *clips[2] = {c1, c2};
        sd_err_clear(&err);
        rc = a1111_plan_build_emb(tok, &emb, "", 1, "negative", 8, &plan[0], &err) ||
             a1111_plan_build_emb(tok, &emb, text, 1, "prompt", 8, &plan[1], &err) ||
             a1111_conds_encode_multi(clips, 2, tok, SD_FAMILY_SDXL, 0, 16, 1, &plan[0], &plan[1], &conds, &err);
        float *h1 = malloc(sizeof(float) * 77 * W1), *h2 = malloc(sizeof(float) * 77 * W2);
        float *want = malloc(sizeof(float) * 77 * W), *pool = malloc(sizeof(float) * P);
        int slots = 0, values = 1;
        if (!rc) {
            const a1111_chunks *ch = &plan[1].chunks[0];
            const float *v1[77], *v2[77];
            int32_t id2[77];
            memcpy(id2, ch->ids, sizeof id2);
            a1111_openclip_pad(id2, 1, tok_eos(tok));
            for (int t = 0; t < 77; t++) {
                v1[t] = ch->vec ? ch->vec[t] : NULL;
                v2[t] = v1[t] ? v1[t] + W1 : NULL;
                if (v1[t]) {   /* slot j of the pair: clip_l row j, clip_g row j */
                    values &= !memcmp(v1[t], l + slots * W1, sizeof(float) * W1) &&
                              !memcmp(v2[t], g + slots * W2, sizeof(float) * W2);
                    slots++;
                }
            }
            rc = clip_hidden_pooled(c1, ch->ids, v1, 1, clip_layers(c1) - 1, 0, h1, NULL, &err) ||
                 clip_hidden_pooled(c2, id2, v2, 1, clip_layers(c2) - 1, 0, h2, pool, &err);
            for (int t = 0; t < 77; t++) {
                memcpy(want + (size_t)t * W, h1 + (size_t)t * W1, sizeof(float) * W1);
                memcpy(want + (size_t)t * W + W1, h2 + (size_t)t * W2, sizeof(float) * W2);
            }
        }
        snprintf(name, sizeof name, "%s: the pair's 2 vectors take 2 slots, clip_l / clip_g values", src);
        CHECKF(rc == 0 && slots == 2 && values, name, "rc %d slots %d %s", rc, slots, err.msg);
        /* the same code path with the vectors given by hand: equal to the bit */
        int at = rc ? 0 : conds.first[1][0];
        double dc = rc ? 1e9 : npy_maxdiff(conds.z + (size_t)at * 77 * W, want, (size_t)77 * W);
        double dp = rc ? 1e9 : npy_maxdiff(conds.pooled + (size_t)at * P, pool, (size_t)P);
        snprintf(name, sizeof name, "%s: embedding pair: context and pooled from each encoder's vectors", src);
        CHECKF(dc == 0 && dp == 0, name, "rc %d context %g pooled %g", rc, dc, dp);
        free(h1); free(h2); free(want); free(pool);
        a1111_conds_free(&conds);
        a1111_plan_free(&plan[0]);
        a1111_plan_free(&plan[1]);
    }
    if (!rc) emb_set_free(&emb);
    t_rmtree(dir);
}

/* Both tokenizers' ids equal the goldens' (diffusers truncates to one window). */
static void check_ids(const char *folder)
{
    npy g1, g2;
    int bad = parity_golden(MODEL, "text", "ids_te1", &g1) | parity_golden(MODEL, "text", "ids_te2", &g2);
    json_t *j = json_load_file(t_ref("goldens/" MODEL "/text/prompts.json"), 0, NULL);
    CHECK(!bad && json_array_size(j) == (size_t)g1.shape[0], "ids goldens and prompts load");
    const char *sub[2] = {"tokenizer", "tokenizer_2"};
    for (int k = 0; k < 2 && !bad; k++) {
        char path[512], name[200];
        snprintf(path, sizeof path, "%s/%s", t_ref(folder), sub[k]);
        sd_err err;
        sd_err_clear(&err);
        sd_tokenizer *tok = tok_load(path, &err);
        snprintf(name, sizeof name, "%s loads", sub[k]);
        CHECKF(tok != NULL, name, "%s", err.msg);
        if (!tok) continue;
        int same = 1, quirks = 0;
        for (size_t p = 0; p < json_array_size(j); p++) {
            int32_t *w = NULL;
            int nwin = 0;
            /* te1 pads with the end id, te2 with id 0 (its pad token "!") */
            if (tok_windows(tok, json_string_value(json_array_get(j, p)), k ? 0 : tok_eos(tok), &w, &nwin, &err)) {
                same = 0;
                break;
            }
            const npy *g = k ? &g2 : &g1;
            for (int t = 0; t < 76; t++) {
                int64_t want = g->i[p * 77 + t];
                /* diffusers' tokenizer_2 splits a literal "!" as its pad token (id 0);
                 * we, like A1111's OpenCLIP tokenizer, give "!</w>" (256) */
                if (k && want == 0 && w[t] == 256 && t < 76 && g->i[p * 77 + t + 1] != 0) {
                    quirks++;
                    continue;
                }
                same &= w[t] == want;
            }
            same &= (w[76] == g->i[p * 77 + 76]) || (nwin > 1 && g->i[p * 77 + 76] == tok_eos(tok));
            free(w);
        }
        snprintf(name, sizeof name, "%s: ids of the six prompts equal the goldens' (%s)", sub[k],
                 k ? "pad 0" : "pad 49407");
        CHECKF(same && quirks == (k ? 1 : 0), name, "%s (%d '!' differences)", err.msg, quirks);
        if (k == 1) {
            /* its pad token "!" (special_tokens_map) is id 0 of the shared vocabulary */
            snprintf(path, sizeof path, "%s/tokenizer_2/vocab.json", t_ref(folder));
            json_t *v = json_load_file(path, 0, NULL);
            snprintf(path, sizeof path, "%s/tokenizer_2/special_tokens_map.json", t_ref(folder));
            json_t *pm = json_load_file(path, 0, NULL);
            const char *pad = json_string_value(json_object_get(pm, "pad_token"));
            int ok = pad && json_integer_value(json_object_get(v, pad)) == 0 && json_object_get(v, pad);
            CHECKF(ok, "tokenizer_2: its pad token is id 0", "pad %s", pad ? pad : "(none)");
            json_decref(v);
            json_decref(pm);
        }
        tok_free(tok);
    }
    json_decref(j);
    npy_free(&g1);
    npy_free(&g2);
}

static void check_layout(const char *src, const char *path, const char *folder)
{
    sd_weights *w = parity_open(MODEL, src, path);
    if (!w) return;
    char name[200];
    snprintf(name, sizeof name, "%s: text kinds CLIP-L + OpenCLIP, family sdxl", src);
    CHECKF(sdw_text_kind_of(w) == SDW_TEXT_CLIP_L && sdw_text2_kind_of(w) == SDW_TEXT_OPENCLIP &&
           sd_family_decide(w) == SD_FAMILY_SDXL, name, "kinds %d %d family %d", (int)sdw_text_kind_of(w),
           (int)sdw_text2_kind_of(w), (int)sd_family_decide(w));
    const sdw_tensor *pr = sdw_get(w, "text_encoder_2.text_projection.weight");
    snprintf(name, sizeof name, "%s: text_projection in diffusers orientation [proj, width]", src);
    CHECKF(pr && pr->ndim == 2 && pr->shape[0] == 16 && pr->shape[1] == 24, name, "%s",
           pr ? "wrong shape" : "missing");
    snprintf(name, sizeof name, "%s: logit_scale and position_ids not kept", src);
    int stray = 0;
    for (size_t i = 0; i < sdw_count(w); i++)
        stray |= strstr(sdw_at(w, i)->name, "position_ids") || strstr(sdw_at(w, i)->name, "logit_scale");
    CHECK(!stray, name);

    sd_err err;
    sd_err_clear(&err);
    clip_hints h2 = {.component = "text_encoder_2"};
    sd_clip *c1 = clip_load(w, NULL, NULL, &err), *c2 = c1 ? clip_load(w, &h2, NULL, &err) : NULL;
    snprintf(name, sizeof name, "%s: both text encoders load", src);
    CHECKF(c1 && c2, name, "%s", err.msg);
    if (c1 && c2) {
        snprintf(name, sizeof name, "%s: sizes from shapes, heads and activation from the configs", src);
        CHECKF(clip_width(c1) == 16 && clip_width(c2) == 24 && clip_layers(c1) == 3 && clip_layers(c2) == 3 &&
               clip_heads(c1) == 2 && clip_heads(c2) == 2 && clip_activation(c1) == CLIP_ACT_QUICK_GELU &&
               clip_activation(c2) == CLIP_ACT_GELU && clip_proj_dim(c1) == 0 && clip_proj_dim(c2) == 16,
               name, "W %d/%d L %d/%d heads %d/%d act %d/%d proj %d/%d", clip_width(c1), clip_width(c2),
               clip_layers(c1), clip_layers(c2), clip_heads(c1), clip_heads(c2), (int)clip_activation(c1),
               (int)clip_activation(c2), clip_proj_dim(c1), clip_proj_dim(c2));
        npy i1, i2;
        if (!parity_golden(MODEL, "text", "ids_te1", &i1) && !parity_golden(MODEL, "text", "ids_te2", &i2)) {
            int B = (int)i1.shape[0];
            int32_t *id1 = ids32(&i1), *id2 = ids32(&i2);
            check_hidden(src, "te1", c1, id1, B);
            check_hidden(src, "te2", c2, id2, B);
            check_pooled_context(src, c1, c2, id1, id2, B);
            free(id1);
            free(id2);
            npy_free(&i1);
            npy_free(&i2);
            char tp[512];
            snprintf(tp, sizeof tp, "%s/tokenizer", t_ref(folder));
            sd_tokenizer *tok = tok_load(tp, &err);
            CHECKF(tok != NULL, "tokenizer loads", "%s", err.msg);
            if (tok) {
                check_a1111(src, c1, c2, tok);
                check_emphasis(src, c1, c2, tok);
                check_embeddings(src, c1, c2, tok);
            }
            tok_free(tok);
        } else {
            CHECK(0, "ids goldens load");
        }
    }
    clip_free(c1);
    clip_free(c2);
    sdw_close(w);
}

int main(void)
{
    if (!parity_begin()) return t_done();
    check_layout("diffusers", "models/" MODEL, "models/" MODEL);
    check_layout("single-fp16", "models/" MODEL "-fp16.safetensors", "models/" MODEL);
    check_ids("models/" MODEL);
    return t_done();
}
