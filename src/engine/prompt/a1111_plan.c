/* a1111_plan.c — one request field (prompt or negative prompt) planned for
 * a run (a1111.h): the refusals that need only the text (AND, a weight
 * A1111 would read as text), the prompt-editing / alternation schedule at
 * the run's steps, and every distinct text of the schedule parsed and
 * chunked once.  The server's pre-queue check and the engine's encoding
 * both start here, so each text is tokenized once by each. */
#include "a1111.h"

#include <stdlib.h>
#include <string.h>

#include "../../base/alloc.h"

void a1111_plan_free(a1111_plan *p)
{
    if (!p) return;
    for (int i = 0; i < p->n_texts; i++) a1111_chunks_free(&p->chunks[i]);
    free(p->chunks);
    free(p->text_of);
    a1111_schedule_free(&p->sched);
    memset(p, 0, sizeof *p);
}

/* The entry of an earlier distinct text equal to entry e's, or -1. */
static int earlier_text(const a1111_plan *p, int e)
{
    for (int k = 0; k < e; k++)
        if (p->text_of[k] == k && !strcmp(p->sched.v[k].text, p->sched.v[e].text)) return k;
    return -1;
}

/* Parse and chunk the text of schedule entry e into chunks[n_texts]. */
static int chunk_text(const sd_tokenizer *tok, const sd_embeddings *emb, a1111_plan *p, int e, const char *field,
                      int max_chunks, sd_err *err)
{
    a1111_parsed parsed = {0};
    a1111_chunks *c = &p->chunks[p->n_texts];
    int rc = a1111_parse(p->sched.v[e].text, field, &parsed, err) ||
             a1111_chunk_emb(tok, emb, &parsed, field, max_chunks, c, err);
    a1111_parsed_free(&parsed);
    if (rc) return -1;
    p->n_texts++;
    p->total_chunks += c->n_chunks;
    if (c->n_chunks > p->max_chunks) p->max_chunks = c->n_chunks;
    if (p->total_chunks > A1111_MAX_PLAN_CHUNKS)
        return sd_errf(err, SD_EINVAL, field, "%s: its prompt editing and alternation make %d different texts of %d "
                       "chunks in all at these steps; the limit is %d chunks", a1111_what(field), p->n_texts,
                       p->total_chunks, A1111_MAX_PLAN_CHUNKS);
    return 0;
}

int a1111_plan_build(const sd_tokenizer *tok, const char *text, int steps, const char *field, int max_chunks,
                     a1111_plan *out, sd_err *err)
{
    return a1111_plan_build_emb(tok, NULL, text, steps, field, max_chunks, out, err);
}

int a1111_plan_build_emb(const sd_tokenizer *tok, const sd_embeddings *emb, const char *text, int steps,
                         const char *field, int max_chunks, a1111_plan *out, sd_err *err)
{
    memset(out, 0, sizeof *out);
    if (!text) text = "";
    if (a1111_check_and(text, field, err) || a1111_check_weights(text, field, err)) return -1;
    if (a1111_schedule_build(text, steps, field, &out->sched, err)) return -1;
    int n = out->sched.n;
    out->text_of = sd_malloc(sizeof(int) * (size_t)n);
    out->chunks = sd_calloc((size_t)n, sizeof *out->chunks);
    if (!out->text_of || !out->chunks) {
        a1111_plan_free(out);
        return sd_errf(err, SD_ENOMEM, field, "out of memory planning the %s", a1111_what(field));
    }
    for (int e = 0; e < n; e++) {
        int k = earlier_text(out, e);
        if (k >= 0) {
            out->text_of[e] = out->text_of[k];
            continue;
        }
        out->text_of[e] = e;   /* marks a first occurrence for earlier_text until renumbered */
        if (chunk_text(tok, emb, out, e, field, max_chunks, err)) {
            a1111_plan_free(out);
            return -1;
        }
    }
    /* renumber: first occurrences in order are texts 0, 1, ... */
    for (int e = 0, t = 0; e < n; e++) out->text_of[e] = out->text_of[e] == e ? t++ : out->text_of[out->text_of[e]];
    return 0;
}

int a1111_plan_entry(const a1111_plan *p, int call)
{
    for (int i = 0; i < p->sched.n; i++)
        if (call <= p->sched.v[i].end_step) return i;
    return 0;
}
