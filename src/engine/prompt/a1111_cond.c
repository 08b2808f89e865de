/* a1111_cond.c — the conditioning A1111 builds from a prompt (a1111.h):
 * parse, chunk, encode every chunk (SD1: clip skip n = final layer norm of
 * hidden_states[-n]; SD2 as FrozenOpenCLIPEmbedderWithCustomWords: ids after
 * the first end id are 0, the penultimate layer, clip skip ignored), then
 * emphasis "Original" per chunk (sd_emphasis.py), chunks concatenated. */
#include "a1111.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/alloc.h"
#include "../sd.h"

static float mean_of(const float *z, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += z[i];
    return (float)(s / (double)n);
}

int a1111_emphasis(float *z, const double *mults, int W)
{
    size_t n = (size_t)TOK_WINDOW * W;
    int plain = 1;
    for (int t = 0; t < TOK_WINDOW; t++) plain &= mults[t] == 1.0;
    if (plain) return 0;   /* z * 1 * (m0 / m0): z itself, without 0/0 when m0 == 0 */
    float m0 = mean_of(z, n);
    for (int t = 0; t < TOK_WINDOW; t++) {
        float m = (float)mults[t];   /* torch.asarray: float32 */
        for (int k = 0; k < W; k++) z[(size_t)t * W + k] *= m;
    }
    float ratio = m0 / mean_of(z, n);
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        z[i] *= ratio;
        finite &= isfinite(z[i]) != 0;
    }
    return finite ? 0 : -1;
}

int a1111_emphasis_fail(const char *field, sd_err *err)
{
    return sd_errf(err, SD_EINVAL, field, "%s: its weights make the text encoder's output overflow (not a finite "
                   "number as a 32-bit float); use smaller weights, e.g. (text:1.5)", a1111_what(field));
}

void a1111_openclip_pad(int32_t *ids, int n_chunks, int eos)
{
    for (int c = 0; c < n_chunks; c++) {
        int32_t *id = ids + (size_t)c * TOK_WINDOW;
        int t = 0;
        while (t < TOK_WINDOW && id[t] != eos) t++;
        for (t++; t < TOK_WINDOW; t++) id[t] = 0;
    }
}

/* The encoder's layer choice for the family, or -1 + err. */
static int skip_for(sd_family family, int clip_skip, const char *field, sd_err *err)
{
    sd_family base = sd_family_info(family)->base;
    if (base == SD_FAMILY_SD1) return clip_skip < 1 ? 1 : clip_skip;
    if (base == SD_FAMILY_SD2) return 0;   /* the encoder's default: penultimate */
    return sd_errf(err, SD_EINVAL, field, "%s: one text encoder cannot condition the %s family (its "
                   "encoders together: a1111_conds_encode_multi)", field, sd_family_info(family)->name);
}

int a1111_condition(sd_clip *clip, const sd_tokenizer *tok, sd_family family, const char *text, int clip_skip,
                    const char *field, float **out, int *T, sd_err *err)
{
    return a1111_condition_emb(clip, tok, NULL, family, text, clip_skip, field, out, T, err);
}

int a1111_condition_emb(sd_clip *clip, const sd_tokenizer *tok, const sd_embeddings *emb, sd_family family,
                        const char *text, int clip_skip, const char *field, float **out, int *T, sd_err *err)
{
    a1111_parsed p = {0};
    a1111_chunks ch = {0};
    float *z = NULL;
    *out = NULL;
    *T = 0;
    int skip = skip_for(family, clip_skip, field, err);
    if (skip < 0 || a1111_check_and(text, field, err) || a1111_parse(text, field, &p, err)) goto fail;
    if (a1111_chunk_emb(tok, emb, &p, field, SD_MAX_PROMPT_WINDOWS, &ch, err)) goto fail;
    if (sd_family_info(family)->base == SD_FAMILY_SD2) a1111_openclip_pad(ch.ids, ch.n_chunks, tok_eos(tok));
    int W = clip_width(clip);
    z = sd_malloc(sizeof(float) * (size_t)ch.n_chunks * TOK_WINDOW * W);
    if (!z) { sd_errf(err, SD_ENOMEM, field, "out of memory encoding the %s", field); goto fail; }
    if (clip_encode_vec(clip, ch.ids, ch.vec, ch.n_chunks, skip, z, err)) goto fail;
    for (int c = 0; c < ch.n_chunks; c++)
        if (a1111_emphasis(z + (size_t)c * TOK_WINDOW * W, ch.mults + (size_t)c * TOK_WINDOW, W)) {
            a1111_emphasis_fail(field, err);
            goto fail;
        }
    *out = z;
    *T = ch.n_chunks * TOK_WINDOW;
    a1111_parsed_free(&p);
    a1111_chunks_free(&ch);
    return 0;
fail:
    free(z);
    a1111_parsed_free(&p);
    a1111_chunks_free(&ch);
    return -1;
}
