/* a1111_chunk.c — A1111's tokenize_line (sd_hijack_clip.py v1.10.1) for
 * a parsed prompt (a1111.h): each piece's text tokenized on its own, tokens
 * laid into chunks of 75 with their piece's weight; a full chunk moves the
 * tokens after a comma no more than 20 back into the next chunk; a BREAK
 * closes the chunk.  A closed chunk is padded with the end id to 75 and
 * framed by start and end (multiplier 1.0 there).
 *
 * Two passes over the same tokens: the first only counts chunks (so a
 * prompt over the limit costs no allocation for its chunks), the second
 * writes them. */
#include "a1111.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/alloc.h"

typedef struct chunker {
    int32_t tok[TOK_CHUNK];
    double mult[TOK_CHUNK];
    int len, last_comma;
    int n_chunks, token_count;
    int bos, eos;
    int32_t *ids;     /* NULL in the counting pass */
    double *mults;
} chunker;

/* next_chunk(): pad, frame, store (when writing), start an empty one. */
static void close_chunk(chunker *c, int is_last)
{
    c->token_count += is_last ? c->len : TOK_CHUNK;
    if (c->ids) {
        int32_t *id = c->ids + (size_t)c->n_chunks * TOK_WINDOW;
        double *m = c->mults + (size_t)c->n_chunks * TOK_WINDOW;
        id[0] = c->bos;
        m[0] = 1.0;
        for (int k = 0; k < TOK_CHUNK; k++) {
            id[1 + k] = k < c->len ? c->tok[k] : c->eos;
            m[1 + k] = k < c->len ? c->mult[k] : 1.0;
        }
        id[TOK_WINDOW - 1] = c->eos;
        m[TOK_WINDOW - 1] = 1.0;
    }
    c->n_chunks++;
    c->len = 0;
    c->last_comma = -1;
}

static void add_token(chunker *c, int32_t t, double w)
{
    if (t == A1111_COMMA_ID) {
        c->last_comma = c->len;
    } else if (c->len == TOK_CHUNK && c->last_comma != -1 && TOK_CHUNK - c->last_comma <= A1111_COMMA_BACKTRACK) {
        int from = c->last_comma + 1, nre = TOK_CHUNK - from;
        int32_t rt[TOK_CHUNK];
        double rm[TOK_CHUNK];
        memcpy(rt, c->tok + from, sizeof(int32_t) * (size_t)nre);
        memcpy(rm, c->mult + from, sizeof(double) * (size_t)nre);
        c->len = from;
        close_chunk(c, 0);
        memcpy(c->tok, rt, sizeof(int32_t) * (size_t)nre);
        memcpy(c->mult, rm, sizeof(double) * (size_t)nre);
        c->len = nre;
    }
    if (c->len == TOK_CHUNK) close_chunk(c, 0);
    c->tok[c->len] = t;
    c->mult[c->len] = w;
    c->len++;
}

/* One pass over the pieces (frag_ids[i], nids[i] = piece i's tokens). */
static void run(chunker *c, const a1111_parsed *p, int32_t *const *frag_ids, const size_t *nids)
{
    c->len = 0;
    c->last_comma = -1;
    c->n_chunks = c->token_count = 0;
    for (int i = 0; i < p->n; i++) {
        if (a1111_is_break(&p->v[i])) {
            close_chunk(c, 0);
            continue;
        }
        for (size_t k = 0; k < nids[i]; k++) add_token(c, frag_ids[i][k], p->v[i].weight);
    }
    if (c->len || !c->n_chunks) close_chunk(c, 1);
}

void a1111_chunks_free(a1111_chunks *c)
{
    if (!c) return;
    free(c->ids);
    free(c->mults);
    memset(c, 0, sizeof *c);
}

/* Tokens of every piece (none for a BREAK); a weight that is not finite is
 * refused here (A1111 would compute NaN conditioning from it). */
static int tokenize_pieces(const sd_tokenizer *tok, const a1111_parsed *p, const char *field, int32_t **ids,
                           size_t *n, sd_err *err)
{
    for (int i = 0; i < p->n; i++) {
        if (a1111_is_break(&p->v[i])) continue;
        if (tok_encode(tok, p->v[i].text, &ids[i], &n[i], err)) {
            sd_err_prefix(err, "%s: ", a1111_what(field));
            return -1;
        }
        if (n[i] && !isfinite(p->v[i].weight))
            return sd_errf(err, SD_EINVAL, field, "%s: the weight of '%.40s' is not a finite number", a1111_what(field),
                           p->v[i].text);
    }
    return 0;
}

int a1111_chunk(const sd_tokenizer *tok, const a1111_parsed *p, const char *field, int max_chunks,
                a1111_chunks *out, sd_err *err)
{
    memset(out, 0, sizeof *out);
    int32_t **ids = sd_calloc((size_t)p->n + 1, sizeof *ids);
    size_t *n = sd_calloc((size_t)p->n + 1, sizeof *n);
    int rc = -1;
    chunker c = {.bos = tok_bos(tok), .eos = tok_eos(tok)};
    if (!ids || !n) { sd_errf(err, SD_ENOMEM, field, "out of memory tokenizing the %s", field); goto done; }
    if (tokenize_pieces(tok, p, field, ids, n, err)) goto done;
    run(&c, p, ids, n);
    if (c.n_chunks > max_chunks) {
        sd_errf(err, SD_EINVAL, field, "%s is too long: %d tokens make %d windows of %d; the limit is %d "
                "windows (%d tokens); a BREAK closes a window", a1111_what(field),
                c.token_count, c.n_chunks, TOK_CHUNK, max_chunks, max_chunks * TOK_CHUNK);
        goto done;
    }
    c.ids = sd_malloc(sizeof(int32_t) * (size_t)c.n_chunks * TOK_WINDOW);
    c.mults = sd_malloc(sizeof(double) * (size_t)c.n_chunks * TOK_WINDOW);
    if (!c.ids || !c.mults) {
        free(c.ids);
        free(c.mults);
        sd_errf(err, SD_ENOMEM, field, "out of memory chunking the %s", field);
        goto done;
    }
    run(&c, p, ids, n);
    *out = (a1111_chunks){c.ids, c.mults, c.n_chunks, c.token_count};
    rc = 0;
done:
    for (int i = 0; ids && i < p->n; i++) free(ids[i]);
    free(ids);
    free(n);
    return rc;
}
