/* a1111_conds.c — the encoded texts of one run and the choice of context
 * per model call (a1111.h): every distinct text of the negative prompt's
 * and the prompt's plans encoded once (A1111's
 * get_learned_conditioning), and a1111_conds_rows, the one place that
 * picks the texts in effect at a call (reconstruct_cond_batch) and either
 * pads the shorter with the empty prompt's chunk (A1111's pad_cond with its
 * "Pad prompt/negative prompt" option on: a1111_conds_rows) or keeps each
 * side at its own length (the option's default, off: a1111_conds_rows_own;
 * see docs/PROMPTS.md). */
#include "a1111.h"

#include <stdlib.h>
#include <string.h>

#include "../../base/alloc.h"

void a1111_conds_free(a1111_conds *c)
{
    if (!c) return;
    free(c->first[0]);
    free(c->first[1]);
    free(c->z);
    memset(c, 0, sizeof *c);
}

/* 1 when two texts a call may pair differ in length (padding needed). */
static int lengths_differ(const a1111_plan *neg, const a1111_plan *pos)
{
    int n = neg->chunks[0].n_chunks;
    for (int s = 0; s < 2; s++) {
        const a1111_plan *p = s ? pos : neg;
        for (int i = 0; i < p->n_texts; i++)
            if (p->chunks[i].n_chunks != n) return 1;
    }
    return 0;
}

/* 1 when a chunk of either plan uses an embedding's vectors. */
static int any_vec(const a1111_plan *neg, const a1111_plan *pos)
{
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < (s ? pos : neg)->n_texts; i++)
            if ((s ? pos : neg)->chunks[i].vec) return 1;
    return 0;
}

/* All chunk ids in z's order (negative's texts, prompt's texts, the empty
 * prompt's chunk), their multipliers and (vec non-NULL) slot vectors;
 * first[] filled. */
static void gather(a1111_conds *c, const sd_tokenizer *tok, int32_t *ids, double *mults, const float **vec)
{
    int at = 0;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < c->plan[s]->n_texts; i++) {
            const a1111_chunks *ch = &c->plan[s]->chunks[i];
            size_t n = (size_t)ch->n_chunks * TOK_WINDOW;
            c->first[s][i] = at;
            memcpy(ids + (size_t)at * TOK_WINDOW, ch->ids, sizeof(int32_t) * n);
            memcpy(mults + (size_t)at * TOK_WINDOW, ch->mults, sizeof(double) * n);
            for (size_t k = 0; vec && k < n; k++) vec[(size_t)at * TOK_WINDOW + k] = ch->vec ? ch->vec[k] : NULL;
            at += ch->n_chunks;
        }
    if (c->empty >= 0) {
        int32_t *e = ids + (size_t)at * TOK_WINDOW;
        e[0] = tok_bos(tok);
        for (int t = 1; t < TOK_WINDOW; t++) e[t] = tok_eos(tok);
        for (int t = 0; t < TOK_WINDOW; t++) mults[(size_t)at * TOK_WINDOW + t] = 1.0;
        for (int t = 0; vec && t < TOK_WINDOW; t++) vec[(size_t)at * TOK_WINDOW + t] = NULL;
    }
}

int a1111_conds_encode(sd_clip *clip, const sd_tokenizer *tok, sd_family family, int skip, int max_batch,
                       const a1111_plan *negative, const a1111_plan *prompt, a1111_conds *out, sd_err *err)
{
    memset(out, 0, sizeof *out);
    out->plan[0] = negative;
    out->plan[1] = prompt;
    out->W = clip_width(clip);
    out->max_chunks = negative->max_chunks > prompt->max_chunks ? negative->max_chunks : prompt->max_chunks;
    int n = negative->total_chunks + prompt->total_chunks, W = out->W;
    out->empty = lengths_differ(negative, prompt) ? n++ : -1;
    int32_t *ids = sd_malloc(sizeof(int32_t) * (size_t)n * TOK_WINDOW);
    double *mults = sd_malloc(sizeof(double) * (size_t)n * TOK_WINDOW);
    int with_vec = any_vec(negative, prompt);
    const float **vec = with_vec ? sd_malloc(sizeof(float *) * (size_t)n * TOK_WINDOW) : NULL;
    out->z = sd_malloc(sizeof(float) * (size_t)n * TOK_WINDOW * W);
    out->first[0] = sd_malloc(sizeof(int) * (size_t)negative->n_texts);
    out->first[1] = sd_malloc(sizeof(int) * (size_t)prompt->n_texts);
    int rc = -1;
    if (!ids || !mults || (with_vec && !vec) || !out->z || !out->first[0] || !out->first[1]) {
        sd_errf(err, SD_ENOMEM, "prompt", "out of memory encoding the prompt");
        goto done;
    }
    gather(out, tok, ids, mults, vec);
    if (sd_family_info(family)->base == SD_FAMILY_SD2) a1111_openclip_pad(ids, n, tok_eos(tok));
    for (int at = 0; at < n; at += max_batch) {
        int b = n - at < max_batch ? n - at : max_batch;
        if (clip_encode_vec(clip, ids + (size_t)at * TOK_WINDOW, vec ? vec + (size_t)at * TOK_WINDOW : NULL, b, skip,
                            out->z + (size_t)at * TOK_WINDOW * W, err))
            goto done;
    }
    for (int k = 0; k < n; k++)
        a1111_emphasis(out->z + (size_t)k * TOK_WINDOW * W, mults + (size_t)k * TOK_WINDOW, W);
    rc = 0;
done:
    free(ids);
    free(mults);
    free(vec);
    if (rc) a1111_conds_free(out);
    return rc;
}

/* One side's text at a call: its first chunk in z and its chunk count. */
static void side_at(const a1111_conds *c, int s, int call, int *first, int *n)
{
    const a1111_plan *p = c->plan[s];
    int t = p->text_of[a1111_plan_entry(p, call)];
    *first = c->first[s][t];
    *n = p->chunks[t].n_chunks;
}

/* The rows of a1111_conds_rows (pad = 1) or a1111_conds_rows_own (pad =
 * 0): each side's rows in `order`, padded to the longer side's chunks or
 * kept at their own, packed one after the other; T[q] = the q-th side's
 * context length in row order (0 = no such side). */
static void write_rows(const a1111_conds *c, int call, int B, int order, int pad, float *ctx, int *key, int T[2])
{
    int f[2], n[2];
    side_at(c, 0, call, &f[0], &n[0]);
    side_at(c, 1, call, &f[1], &n[1]);
    int chunks = n[0] > n[1] ? n[0] : n[1];
    /* sides in row order: 0 = negative, 1 = prompt */
    static const int sides[3][2] = {{1, -1}, {0, 1}, {1, 0}};
    const int *sd = sides[order == A1111_ROWS_NEGATIVE_FIRST ? 1 : order == A1111_ROWS_PROMPT_FIRST ? 2 : 0];
    for (int q = 0; q < 2; q++) T[q] = sd[q] < 0 ? 0 : (pad ? chunks : n[sd[q]]) * TOK_WINDOW;
    int k = f[0] * 4096 + f[1];   /* chunk indices < 2 * A1111_MAX_PLAN_CHUNKS + 1 */
    if (*key == k) return;
    *key = k;
    size_t cw = (size_t)TOK_WINDOW * c->W;
    float *row = ctx;
    for (int q = 0; q < 2 && sd[q] >= 0; q++)
        for (int b = 0, s = sd[q]; b < B; b++) {
            memcpy(row, c->z + (size_t)f[s] * cw, sizeof(float) * cw * (size_t)n[s]);
            for (int i = n[s]; i < T[q] / TOK_WINDOW; i++)
                memcpy(row + (size_t)i * cw, c->z + (size_t)c->empty * cw, sizeof(float) * cw);
            row += (size_t)T[q] * c->W;
        }
}

int a1111_conds_rows(const a1111_conds *c, int call, int B, int order, float *ctx, int *key)
{
    int T[2];
    write_rows(c, call, B, order, 1, ctx, key, T);
    return T[0];
}

/* ---- A1111's default: pad_cond_uncond off --------------------------------- */

int a1111_conds_rows_own(const a1111_conds *c, int call, int B, int order, float *ctx, int *key, int T[2])
{
    write_rows(c, call, B, order, 0, ctx, key, T);
    return T[1] > 0 && T[1] != T[0];
}
