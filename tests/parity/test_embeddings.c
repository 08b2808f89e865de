/* test_embeddings.c — textual-inversion embeddings (issue 14 item 4):
 *  - an embedding made of existing tokens' vectors (rows of the text
 *    encoder's token-embedding table for "red apple", written in the A1111
 *    form emb_params [2, W] and, one vector, in the diffusers form) gives the
 *    conditioning of the typed tokens, within 1e-6, at clip skip 1 and 2 on
 *    tiny-sd1 and on tiny-sd2, weighted too, and in the negative prompt;
 *  - the same image from sd_generate;
 *  - A1111's chunk rule: an embedding is kept whole in one chunk (74 words
 *    + a 2-vector embedding open a new chunk, 73 do not);
 *  - refusals: another width (listed, not matched: its name stays words),
 *    a .pt pickle, more than 75 vectors, an SDXL file; a prompt too long
 *    with the embedding is refused naming the field. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "t.h"
#include "../../src/engine/loader/st_write.h"
#include "../../src/engine/loader/weights.h"
#include "../../src/engine/models/clip.h"
#include "../../src/engine/pipeline.h"
#include "../../src/engine/prompt/a1111.h"
#include "../../src/engine/sd.h"

#define TOL 1e-6

static char dir[] = "/tmp/sd_embeddings_XXXXXX", dir_sd1[800];

/* The token-embedding rows of `text`'s ids (at most 8), W; 0 ids = failure. */
static int token_rows(const char *model, const char *text, float *rows, int *W)
{
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = sdw_open(model, &err);
    sd_tokenizer *tok = tok_load_builtin(&err);
    const sdw_tensor *t = w ? sdw_get(w, "text_encoder.text_model.embeddings.token_embedding.weight") : NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    if (t && tok && !tok_encode(tok, text, &ids, &n, &err) && n <= 8) {
        *W = (int)t->shape[1];
        for (size_t i = 0; i < n; i++) memcpy(rows + i * *W, t->data + (size_t)ids[i] * *W, sizeof(float) * *W);
    } else {
        n = 0;
    }
    free(ids);
    tok_free(tok);
    sdw_close(w);
    return (int)n;
}

static void write_emb(const char *sub, const char *file, const char *tensor, int ndim, int n, int W, const float *v)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, file);
    stw_tensor t = {tensor, "F32", ndim, {ndim == 2 ? n : W, W}};
    sd_err err;
    sd_err_clear(&err);
    CHECKF(!stw_write_f32(path, &t, &v, 1, &err), "embedding file written", "%s: %s", file, err.msg);
}

/* dir/sub: redapple (A1111, "red apple"), appletok (diffusers, "apple"),
 * wide (width W + 1), pickled.pt, many (76 vectors), xl (clip_l + clip_g). */
static const char *make_dir(const char *model, const char *sub)
{
    static char path[700];
    float rows[8 * 1024 + 8];
    int W = 0, n = token_rows(model, "red apple", rows, &W);
    CHECKF(n == 2, "\"red apple\" is two tokens of the table", "%d ids", n);
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    mkdir(path, 0700);
    if (n != 2) return path;
    write_emb(sub, "redapple.safetensors", "emb_params", 2, 2, W, rows);
    write_emb(sub, "appletok.safetensors", "<appletok>", 1, 1, W, rows + W);
    float *wide = calloc((size_t)76 * (W + 1), sizeof *wide);
    write_emb(sub, "wide.safetensors", "emb_params", 2, 1, W + 1, wide);
    write_emb(sub, "many.safetensors", "emb_params", 2, 76, W, wide);
    stw_tensor xl[2] = {{"clip_g", "F32", 2, {1, W}}, {"clip_l", "F32", 2, {1, W}}};
    const float *xd[2] = {wide, wide};
    char p[800];
    snprintf(p, sizeof p, "%s/xl.safetensors", path);
    sd_err err;
    sd_err_clear(&err);
    stw_write_f32(p, xl, xd, 2, &err);
    free(wide);
    snprintf(p, sizeof p, "%s/pickled.pt", path);
    FILE *f = fopen(p, "wb");
    if (f) fputs("\x80\x02}q\x00.", f), fclose(f);
    return path;
}

static sd_engine *load(const char *model, const char *emb_dir)
{
    sd_load_opts o = {.model_path = model, .precision = "fp32", .embeddings_dir = emb_dir};
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    CHECKF(e != NULL, "engine loads with an embeddings folder", "%s", err.msg);
    return e;
}

/* max |a - b| of the rows of two encodings, or INFINITY when they differ in size. */
static double encode_diff(sd_engine *e, const char *p1, const char *n1, const char *p2, const char *n2, int skip)
{
    sd_gen_params a = {.prompt = p1, .negative = n1, .steps = 1, .clip_skip = skip}, b = a;
    b.prompt = p2;
    b.negative = n2;
    float *x = NULL, *y = NULL;
    int T1, T2, W1, W2;
    sd_err err;
    sd_err_clear(&err);
    double d = INFINITY;
    if (!sd_encode_text(e, &a, &x, &T1, &W1, &err) && !sd_encode_text(e, &b, &y, &T2, &W2, &err) && T1 == T2) {
        d = 0;
        for (size_t i = 0; i < (size_t)2 * T1 * W1; i++) d = fmax(d, fabs(x[i] - y[i]));
    }
    free(x);
    free(y);
    return d;
}

static void same_as_typed(sd_engine *e, const char *label, int skip)
{
    static const char *const pairs[][4] = {
        {"a photo of redapple on a table", "", "a photo of red apple on a table", ""},
        {"a (redapple:1.3), appletok", "", "a (red apple:1.3), apple", ""},
        {"a cat", "redapple, blurry", "a cat", "red apple, blurry"},
        {"[redapple]", "(appletok:0.7) redapple", "[red apple]", "(apple:0.7) red apple"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        double d = encode_diff(e, pairs[i][0], pairs[i][1], pairs[i][2], pairs[i][3], skip);
        CHECKF(d <= TOL, "embedding gives the typed tokens' conditioning", "%s skip %d '%s' / '%s': max diff %g",
               label, skip, pairs[i][0], pairs[i][1], d);
    }
    /* and it is used: the name as words (no embeddings) is another conditioning */
    double d = encode_diff(e, "redapple", "", "redapple x", "", skip);
    CHECK(d > 0, "a different prompt gives a different conditioning (the check can fail)");
}

static void listing(sd_engine *e, int W)
{
    sd_embedding_info in;
    int n = 0, seen = 0;
    for (; !sd_engine_embedding(e, n, &in); n++) {
        if (!strcmp(in.name, "redapple"))
            seen |= 1, CHECKF(in.fits && in.vectors == 2 && in.width == W, "redapple listed", "%d %d", in.vectors, in.width);
        if (!strcmp(in.name, "appletok")) seen |= 2, CHECK(in.fits && in.vectors == 1, "appletok listed");
        if (!strcmp(in.name, "wide"))
            seen |= 4, CHECKF(!in.fits && in.error && strstr(in.error, "width") && strstr(in.error, "wide"),
                              "another width is refused naming the embedding", "%s", in.error ? in.error : "");
        if (!strcmp(in.name, "pickled"))
            seen |= 8, CHECKF(!in.fits && in.error && strstr(in.error, "pickle"), ".pt is refused as a pickle", "%s",
                              in.error ? in.error : "");
        if (!strcmp(in.name, "many"))
            seen |= 16, CHECKF(!in.fits && in.error && strstr(in.error, "75"), "76 vectors refused", "%s",
                               in.error ? in.error : "");
        if (!strcmp(in.name, "xl"))
            seen |= 32, CHECKF(!in.fits && in.error && strstr(in.error, "SDXL"), "an SDXL embedding refused", "%s",
                               in.error ? in.error : "");
    }
    CHECKF(n == 6 && seen == 63, "six files listed by name", "%d entries, seen %#x", n, seen);
    CHECK(encode_diff(e, "a wide cat", "", "a wide cat", "", 1) == 0, "a refused embedding's name stays words");
}

/* 74 (or 73) one-token words then the 2-vector embedding. */
static void chunk_boundary(sd_engine *e)
{
    sd_tokenizer *tok = sd_engine_tokenizer(e);
    for (int words = 73; words <= 74; words++) {
        char *text = t_repeat("cat ", words), buf[400];
        snprintf(buf, sizeof buf, "%sredapple", text);
        int win = 0;
        size_t count = 0;
        sd_err err;
        sd_err_clear(&err);
        int rc = sd_prompt_windows(e, buf, &win, &count, &err);
        int want = words == 74 ? 2 : 1;
        CHECKF(!rc && win == want && count == (words == 74 ? 77u : 75u), "an embedding stays whole in one chunk",
               "%d words: %d windows, %zu tokens", words, win, count);
        /* the vectors sit at the new chunk's slots 1 and 2 (or the first chunk's 74 and 75) */
        sd_embeddings set = {0};
        a1111_parsed p = {0};
        a1111_chunks c = {0};
        int W = clip_width(sd_engine_clip(e));
        int ok = !emb_dir_load(dir_sd1, tok, W, &set, &err) && !a1111_parse(buf, "prompt", &p, &err) &&
                 !a1111_chunk_emb(tok, &set, &p, "prompt", 8, &c, &err) && c.vec && c.n_chunks == want;
        int at = words == 74 ? TOK_WINDOW + 1 : 74, nset = 0;
        for (int k = 0; ok && k < c.n_chunks * TOK_WINDOW; k++) nset += c.vec[k] != NULL;
        CHECKF(ok && nset == 2 && c.vec[at] && c.vec[at + 1] && c.ids[at] == 0 && c.mults[at] == 1.0 &&
               (words == 73 || c.ids[75] == tok_eos(tok)), "the embedding's slots", "%d words: %s", words, err.msg);
        a1111_parsed_free(&p);
        a1111_chunks_free(&c);
        emb_set_free(&set);
        free(text);
    }
    /* the embedding that does not fit closes the chunk: the same as a BREAK before the typed words
       (typed, "red" would stay in the first chunk and only "apple" move on) */
    char *text = t_repeat("cat ", 74), a[400], b[400];
    snprintf(a, sizeof a, "%sredapple", text);
    snprintf(b, sizeof b, "%sBREAK red apple", text);
    CHECKF(encode_diff(e, a, "", b, "", 1) <= TOL, "the closed chunk equals a BREAK before the typed tokens",
           "%g", encode_diff(e, a, "", b, "", 1));
    free(text);
    char *lng = t_repeat("redapple ", 8 * 38);
    sd_err err;
    sd_err_clear(&err);
    sd_gen_params g = {.prompt = "a cat", .negative = lng, .steps = 1};
    float *z = NULL;
    int T, W;
    int rc = sd_encode_text(e, &g, &z, &T, &W, &err);
    CHECKF(rc && !strcmp(err.field, "negative"), "too many embedding vectors refused naming the field", "%d %s %s", rc,
           err.field, err.msg);
    free(z);
    free(lng);
}

static void same_image(sd_engine *e)
{
    sd_gen_params p = {.prompt = "redapple", .negative = "appletok", .width = 64, .height = 64, .steps = 2,
                       .cfg = 7.0f, .seed = 7, .n = 1};
    sd_gen_params q = p;
    q.prompt = "red apple";
    q.negative = "apple";
    sd_image a = {0}, b = {0};
    sd_err err;
    sd_err_clear(&err);
    int ok = !sd_generate(e, &p, &a, &err) && !sd_generate(e, &q, &b, &err);
    CHECKF(ok && !memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3), "the same image as the typed tokens", "%s",
           err.msg);
    sd_image_free(&a);
    sd_image_free(&b);
}

int main(void)
{
    if (!t_have_ref() || !mkdtemp(dir)) return t_done();
    const char *m1 = t_ref("models/tiny-sd1"), *m2 = t_ref("models/tiny-sd2");
    char d1[800], d2[800];
    snprintf(d1, sizeof d1, "%s", make_dir(m1, "sd1"));
    snprintf(dir_sd1, sizeof dir_sd1, "%s", d1);
    snprintf(d2, sizeof d2, "%s", make_dir(m2, "sd2"));
    sd_engine *e = load(m1, d1);
    if (e) {
        same_as_typed(e, "tiny-sd1", 1);
        same_as_typed(e, "tiny-sd1", 2);
        listing(e, clip_width(sd_engine_clip(e)));
        chunk_boundary(e);
        same_image(e);
    }
    sd_engine_free(e);
    e = load(m2, d2);
    if (e) same_as_typed(e, "tiny-sd2", 0);
    sd_engine_free(e);
    t_rmtree(dir);
    return t_done();
}
