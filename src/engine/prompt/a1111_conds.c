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
    free(c->pooled);
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

/* Encode n chunks with one encoder into z[n][77][Wsum] at column `col`:
 * SDXL takes hidden_states[-2] without the final layer norm (clip_skip
 * does not apply, as in A1111), other families clip_encode's `skip`; the
 * emphasis is applied to this encoder's output alone (A1111 wraps each of
 * SDXL's embedders); the first n_neg chunks are the negative prompt's (the
 * field an overflowing emphasis names).  pooled non-NULL: the tower's
 * pooled output per chunk. */
static int encode_one(sd_clip *clip, int xl, int skip, int max_batch, const int32_t *ids, const float **vec,
                      const double *mults, int n, int n_neg, int Wsum, int col, float *z, float *pooled, sd_err *err)
{
    int W = clip_width(clip), P = clip_proj_dim(clip);
    size_t cw = (size_t)TOK_WINDOW * W;
    float *t = Wsum == W ? z : sd_malloc(sizeof(float) * (size_t)n * cw);
    if (!t) return sd_errf(err, SD_ENOMEM, "prompt", "out of memory encoding the prompt");
    int rc = 0;
    for (int at = 0; at < n && !rc; at += max_batch) {
        int b = n - at < max_batch ? n - at : max_batch;
        const int32_t *id = ids + (size_t)at * TOK_WINDOW;
        const float *const *v = vec ? vec + (size_t)at * TOK_WINDOW : NULL;
        if (xl)
            rc = clip_hidden_pooled(clip, id, v, b, clip_layers(clip) - 1, 0, t + (size_t)at * cw,
                                    pooled ? pooled + (size_t)at * P : NULL, err);
        else
            rc = clip_encode_vec(clip, id, v, b, skip, t + (size_t)at * cw, err);
    }
    for (int k = 0; k < n && !rc; k++)
        if (a1111_emphasis(t + (size_t)k * cw, mults + (size_t)k * TOK_WINDOW, W))
            rc = a1111_emphasis_fail(k < n_neg ? "negative_prompt" : "prompt", err);
    if (t != z) {
        for (size_t r = 0; r < (size_t)n * TOK_WINDOW && !rc; r++)
            memcpy(z + r * Wsum + col, t + r * W, sizeof(float) * W);
        free(t);
    }
    return rc;
}

/* force_zeros_for_empty_prompt: the negative side's chunks and pooled rows zeroed. */
static void zero_negative(a1111_conds *c)
{
    const a1111_plan *neg = c->plan[0];
    size_t cw = (size_t)TOK_WINDOW * c->W;
    for (int i = 0; i < neg->n_texts; i++)
        for (int k = 0; k < neg->chunks[i].n_chunks; k++) {
            int at = c->first[0][i] + k;
            memset(c->z + (size_t)at * cw, 0, sizeof(float) * cw);
            if (c->pooled) memset(c->pooled + (size_t)at * c->P, 0, sizeof(float) * (size_t)c->P);
        }
}

int a1111_conds_encode(sd_clip *clip, const sd_tokenizer *tok, sd_family family, int skip, int max_batch,
                       const a1111_plan *negative, const a1111_plan *prompt, a1111_conds *out, sd_err *err)
{
    return a1111_conds_encode_multi(&clip, 1, tok, family, skip, max_batch, 0, negative, prompt, out, err);
}

int a1111_conds_encode_multi(sd_clip *const *clips, int n_clips, const sd_tokenizer *tok, sd_family family,
                             int skip, int max_batch, int zero_neg, const a1111_plan *negative,
                             const a1111_plan *prompt, a1111_conds *out, sd_err *err)
{
    memset(out, 0, sizeof *out);
    out->plan[0] = negative;
    out->plan[1] = prompt;
    int xl = sd_family_info(family)->base == SD_FAMILY_SDXL, pooled_by = -1;
    for (int i = 0; i < n_clips; i++) {
        out->W += clip_width(clips[i]);
        if (xl && clip_proj_dim(clips[i]) > 0) pooled_by = i;   /* SDXL: the last tower with a projection */
    }
    out->P = pooled_by >= 0 ? clip_proj_dim(clips[pooled_by]) : 0;
    out->max_chunks = negative->max_chunks > prompt->max_chunks ? negative->max_chunks : prompt->max_chunks;
    int n = negative->total_chunks + prompt->total_chunks, W = out->W;
    out->empty = lengths_differ(negative, prompt) ? n++ : -1;
    int with_vec = any_vec(negative, prompt);
    int32_t *ids = sd_malloc(sizeof(int32_t) * (size_t)n * TOK_WINDOW);
    int32_t *ids0 = sd_malloc(sizeof(int32_t) * (size_t)n * TOK_WINDOW);
    double *mults = sd_malloc(sizeof(double) * (size_t)n * TOK_WINDOW);
    const float **vec = with_vec ? sd_malloc(sizeof(float *) * (size_t)n * TOK_WINDOW) : NULL;
    const float **vec_i = with_vec && n_clips > 1 ? sd_malloc(sizeof(float *) * (size_t)n * TOK_WINDOW) : NULL;
    out->z = sd_malloc(sizeof(float) * (size_t)n * TOK_WINDOW * W);
    out->pooled = out->P ? sd_malloc(sizeof(float) * (size_t)n * out->P) : NULL;
    out->first[0] = sd_malloc(sizeof(int) * (size_t)negative->n_texts);
    out->first[1] = sd_malloc(sizeof(int) * (size_t)prompt->n_texts);
    int rc = -1;
    if (!ids || !ids0 || !mults || (with_vec && !vec) || (with_vec && n_clips > 1 && !vec_i) || !out->z || (out->P && !out->pooled) || !out->first[0] ||
        !out->first[1]) {
        sd_errf(err, SD_ENOMEM, "prompt", "out of memory encoding the prompt");
        goto done;
    }
    gather(out, tok, ids, mults, vec);
    /* OpenCLIP towers (SD2's, SDXL's second) read 0 after the first end id */
    memcpy(ids0, ids, sizeof(int32_t) * (size_t)n * TOK_WINDOW);
    a1111_openclip_pad(ids0, n, tok_eos(tok));
    int sd2 = sd_family_info(family)->base == SD_FAMILY_SD2;
    for (int i = 0, col = 0; i < n_clips; col += clip_width(clips[i]), i++) {
        /* an SDXL pair's vector holds each encoder's values in turn (emb_stride) */
        for (size_t k = 0; vec_i && k < (size_t)n * TOK_WINDOW; k++) vec_i[k] = vec[k] ? vec[k] + col : NULL;
        if (encode_one(clips[i], xl, skip, max_batch, sd2 || (xl && i > 0) ? ids0 : ids, vec_i ? vec_i : vec, mults,
                       n, negative->total_chunks, W, col, out->z, i == pooled_by ? out->pooled : NULL, err))
            goto done;
    }
    if (zero_neg) zero_negative(out);
    rc = 0;
done:
    free(ids);
    free(ids0);
    free(mults);
    free(vec);
    free(vec_i);
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

void a1111_conds_pooled(const a1111_conds *c, int call, int B, int order, float *pooled)
{
    int f[2], n[2];
    side_at(c, 0, call, &f[0], &n[0]);
    side_at(c, 1, call, &f[1], &n[1]);
    static const int sides[3][2] = {{1, -1}, {0, 1}, {1, 0}};
    const int *sd = sides[order == A1111_ROWS_NEGATIVE_FIRST ? 1 : order == A1111_ROWS_PROMPT_FIRST ? 2 : 0];
    for (int q = 0, r = 0; q < 2 && sd[q] >= 0; q++)
        for (int b = 0; b < B; b++, r++)
            memcpy(pooled + (size_t)r * c->P, c->pooled + (size_t)f[sd[q]] * c->P, sizeof(float) * (size_t)c->P);
}
