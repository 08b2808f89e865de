/* fuzz_a1111_prompt.c — libFuzzer target for the A1111 prompt module
 * (src/engine/prompt/): any prompt bytes go through the AND check, the
 * attention parser, the chunker (with the engine's 8-chunk limit) and the
 * schedule at 20 steps; each either fails with a message naming its field
 * or gives a well-formed result: at least one piece, 1..8 chunks framed by
 * start/end ids inside the vocabulary with finite multipliers, schedule
 * entries ascending to 20; the weight refusal and the request plan at 20
 * steps (entries mapped to distinct texts, at most A1111_MAX_PLAN_CHUNKS
 * chunks in all, an entry for every model call).  The vocabulary is loaded once from
 * $SD_FUZZ_VOCAB (default: the reference data's tokenizer via $SD_REF).
 * fuzz-sources: src/engine/prompt/a1111_text.c src/engine/prompt/a1111_parse.c src/engine/prompt/a1111_chunk.c src/engine/prompt/a1111_sched.c src/engine/prompt/a1111_plan.c src/engine/prompt/embeddings.c src/engine/loader/safetensors.c src/engine/tokenizer/clip_bpe.c src/engine/tokenizer/clip_text.c src/engine/tokenizer/unicode_tables.c src/engine/tokenizer/vocab_blob.c src/base/err.c src/base/dirnames.c src/base/alloc.c
 * fuzz-libs: -ljansson -lz -lm */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_vocab.h"
#include "../../src/engine/prompt/a1111.h"

#define MAX_CHUNKS 8   /* SD_MAX_PROMPT_WINDOWS */

static sd_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    tok = fuzz_vocab("fuzz_a1111_prompt");
    return 0;
}

/* A failure must name the field it was given. */
static void named(int rc, const sd_err *err, const char *field)
{
    if (rc && (!err->msg[0] || (err->code == SD_EINVAL && strcmp(err->field, field) && strcmp(err->field, "steps"))))
        abort();
}

static void check_chunks(const a1111_chunks *c)
{
    if (c->n_chunks < 1 || c->n_chunks > MAX_CHUNKS || c->token_count < 0) abort();
    for (int k = 0; k < c->n_chunks; k++) {
        const int32_t *id = c->ids + (size_t)k * TOK_WINDOW;
        if (id[0] != tok_bos(tok) || id[TOK_WINDOW - 1] != tok_eos(tok)) abort();
        for (int t = 0; t < TOK_WINDOW; t++)
            if (id[t] < 0 || id[t] >= tok_vocab_size(tok) || !isfinite(c->mults[(size_t)k * TOK_WINDOW + t])) abort();
    }
}

/* The request path: the weight check and a plan of 20 steps. */
static void check_plan(const char *text)
{
    sd_err err;
    sd_err_clear(&err);
    named(a1111_check_weights(text, "negative", &err), &err, "negative");
    a1111_plan pl;
    sd_err_clear(&err);
    int rc = a1111_plan_build(tok, text, 20, "prompt", MAX_CHUNKS, &pl, &err);
    named(rc, &err, "prompt");
    if (rc) return;
    if (pl.n_texts < 1 || pl.n_texts > pl.sched.n || pl.total_chunks > A1111_MAX_PLAN_CHUNKS) abort();
    for (int i = 0; i < pl.n_texts; i++) check_chunks(&pl.chunks[i]);
    for (int call = 0; call <= 40; call++) {
        int e = a1111_plan_entry(&pl, call);
        if (e < 0 || e >= pl.sched.n || pl.text_of[e] < 0 || pl.text_of[e] >= pl.n_texts) abort();
    }
    a1111_plan_free(&pl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384) return 0;   /* the server's prompt limit is 8192 bytes */
    char *text = fuzz_text(data, size);
    if (!text) return 0;
    sd_err err;
    sd_err_clear(&err);
    named(a1111_check_and(text, "prompt", &err), &err, "prompt");
    a1111_parsed p;
    sd_err_clear(&err);
    int rc = a1111_parse(text, "negative_prompt", &p, &err);
    named(rc, &err, "negative_prompt");
    if (rc == 0) {
        if (p.n < 1) abort();
        a1111_chunks c;
        sd_err_clear(&err);
        int rc2 = a1111_chunk(tok, &p, "negative_prompt", MAX_CHUNKS, &c, &err);
        named(rc2, &err, "negative_prompt");
        if (rc2 == 0) check_chunks(&c);
        a1111_chunks_free(&c);
        a1111_parsed_free(&p);
    }
    a1111_schedule s;
    sd_err_clear(&err);
    rc = a1111_schedule_build(text, 20, "prompt", &s, &err);
    named(rc, &err, "prompt");
    if (rc == 0) {
        if (s.n < 1 || s.v[s.n - 1].end_step != 20) abort();
        for (int i = 1; i < s.n; i++)
            if (s.v[i].end_step <= s.v[i - 1].end_step) abort();
        a1111_schedule_free(&s);
    }
    check_plan(text);
    free(text);
    return 0;
}
