/* a1111_chunk.c — A1111's tokenize_line (sd_hijack_clip.py v1.10.1) for
 * a parsed prompt (a1111.h): each piece's text tokenized on its own, tokens
 * laid into chunks of 75 with their piece's weight; a full chunk moves the
 * tokens after a comma no more than 20 back into the next chunk; a BREAK
 * closes the chunk.  A closed chunk is padded with the end id to 75 and
 * framed by start and end (multiplier 1.0 there).
 *
 * Two passes over the same tokens: the first only counts chunks (so a
 * prompt over the limit costs no allocation for its chunks), the second
 * writes them.
 *
 * Embeddings (embeddings.h), as A1111's tokenize_line: where a piece's
 * tokens hold an embedding's name, its n vectors take n slots (id 0, the
 * piece's weight), kept whole: a chunk without room for them is closed
 * first.  The chunk records a fix (slot, embedding); a comma backtrack
 * moves tokens and weights but not the fixes, which stay with the closed
 * chunk at their slots (A1111 does the same), and a fix's vectors stop at
 * the chunk's 77th slot. */
#include "a1111.h"

#include <float.h>
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
    const sd_embeddings *emb;               /* NULL: no embeddings */
    const sd_embedding *fix_e[TOK_CHUNK];   /* the current chunk's fixes */
    int fix_off[TOK_CHUNK], n_fix, any_fix;
    const float **vec;                      /* NULL unless writing and any_fix */
} chunker;

/* The closed chunk's slot vectors: NULL, or its fixes' vectors. */
static void write_fixes(chunker *c)
{
    const float **v = c->vec + (size_t)c->n_chunks * TOK_WINDOW;
    for (int t = 0; t < TOK_WINDOW; t++) v[t] = NULL;
    for (int f = 0; f < c->n_fix; f++) {
        const sd_embedding *e = c->fix_e[f];
        for (int j = 0; j < e->n && c->fix_off[f] + 1 + j < TOK_WINDOW; j++)
            v[c->fix_off[f] + 1 + j] = e->vec + (size_t)j * emb_stride(e);
    }
}

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
        if (c->vec) write_fixes(c);
    }
    c->n_fix = 0;
    c->n_chunks++;
    c->len = 0;
    c->last_comma = -1;
}

/* Before token t goes in: the comma mark, the backtrack, a full chunk closed. */
static void make_room(chunker *c, int32_t t)
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
}

static void append(chunker *c, int32_t t, double w)
{
    c->tok[c->len] = t;
    c->mult[c->len] = w;
    c->len++;
}

/* One piece's tokens; an embedding's name becomes its vectors' slots.
 * Returns how many ids were used from ids[k]. */
static size_t add_at(chunker *c, const int32_t *ids, size_t n, size_t k, double w)
{
    make_room(c, ids[k]);
    const sd_embedding *e = c->emb ? emb_match(c->emb, ids, n, k) : NULL;
    if (!e) {
        append(c, ids[k], w);
        return 1;
    }
    if (c->len + e->n > TOK_CHUNK) close_chunk(c, 0);
    c->fix_e[c->n_fix] = e;
    c->fix_off[c->n_fix++] = c->len;
    c->any_fix = 1;
    for (int j = 0; j < e->n; j++) append(c, 0, w);
    return e->n_ids;
}

/* One pass over the pieces (frag_ids[i], nids[i] = piece i's tokens). */
static void run(chunker *c, const a1111_parsed *p, int32_t *const *frag_ids, const size_t *nids)
{
    c->len = 0;
    c->last_comma = -1;
    c->n_chunks = c->token_count = c->n_fix = 0;
    for (int i = 0; i < p->n; i++) {
        if (a1111_is_break(&p->v[i])) {
            close_chunk(c, 0);
            continue;
        }
        for (size_t k = 0; k < nids[i];) k += add_at(c, frag_ids[i], nids[i], k, p->v[i].weight);
    }
    if (c->len || !c->n_chunks) close_chunk(c, 1);
}

void a1111_chunks_free(a1111_chunks *c)
{
    if (!c) return;
    free(c->ids);
    free(c->mults);
    free(c->vec);
    memset(c, 0, sizeof *c);
}

/* Tokens of every piece (none for a BREAK); a weight that is not finite as
 * the float32 the emphasis multiplies by (above FLT_MAX: `(a:1e39)`, or 1000
 * nested `(`, 1.1^1000) is refused here: A1111 would compute NaN
 * conditioning from it, and the picture would be black. */
static int tokenize_pieces(const sd_tokenizer *tok, const a1111_parsed *p, const char *field, int32_t **ids,
                           size_t *n, sd_err *err)
{
    for (int i = 0; i < p->n; i++) {
        if (a1111_is_break(&p->v[i])) continue;
        if (tok_encode(tok, p->v[i].text, &ids[i], &n[i], err)) {
            sd_err_prefix(err, "%s: ", a1111_what(field));
            return -1;
        }
        if (n[i] && !(fabs(p->v[i].weight) <= FLT_MAX))
            return sd_errf(err, SD_EINVAL, field, "%s: the weight of '%.40s' is not a finite number (as a 32-bit "
                           "float: at most %g)", a1111_what(field), p->v[i].text, (double)FLT_MAX);
    }
    return 0;
}

int a1111_chunk(const sd_tokenizer *tok, const a1111_parsed *p, const char *field, int max_chunks,
                a1111_chunks *out, sd_err *err)
{
    return a1111_chunk_emb(tok, NULL, p, field, max_chunks, out, err);
}

int a1111_chunk_emb(const sd_tokenizer *tok, const sd_embeddings *emb, const a1111_parsed *p, const char *field,
                    int max_chunks, a1111_chunks *out, sd_err *err)
{
    memset(out, 0, sizeof *out);
    int32_t **ids = sd_calloc((size_t)p->n + 1, sizeof *ids);
    size_t *n = sd_calloc((size_t)p->n + 1, sizeof *n);
    int rc = -1;
    chunker c = {.bos = tok_bos(tok), .eos = tok_eos(tok), .emb = emb};
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
    c.vec = c.any_fix ? sd_malloc(sizeof(float *) * (size_t)c.n_chunks * TOK_WINDOW) : NULL;
    if (!c.ids || !c.mults || (c.any_fix && !c.vec)) {
        free(c.ids);
        free(c.mults);
        free(c.vec);
        sd_errf(err, SD_ENOMEM, field, "out of memory chunking the %s", field);
        goto done;
    }
    run(&c, p, ids, n);
    *out = (a1111_chunks){c.ids, c.mults, c.n_chunks, c.token_count, c.vec};
    rc = 0;
done:
    for (int i = 0; ids && i < p->n; i++) free(ids[i]);
    free(ids);
    free(n);
    return rc;
}
