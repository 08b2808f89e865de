/* embeddings.h — textual-inversion embeddings (A1111's
 * modules/textual_inversion, read for its facts): files of token vectors
 * that a word of the prompt stands for.
 *
 * Forms read (safetensors only; a .pt / .bin is a pickle, refused), each
 * a file of exactly one tensor, whatever its name (A1111's rule):
 *   A1111       "emb_params" [n, W] (or [W]); "string_to_param.*" / "*"
 *   diffusers   one tensor named by its token, e.g. "<cat-toy>", [W] or [1, W]
 *   SDXL        "clip_l" [n, W1] + "clip_g" [n, W2]: one vector per encoder
 * Other files of two or more tensors are refused (A1111: "multiple terms");
 * an SDXL pair is refused by SD1/SD2 models and a one-tensor file by SDXL
 * models (emb_dir_load2), each with its own message.
 * The name is the file's base name (A1111's rule).  A directory is scanned
 * once, without its sub-folders (emb_dir_load, sorted by name as A1111,
 * case-insensitively); an embedding whose width is not the
 * text encoder's, or a file that cannot be read, is kept in the list with
 * its reason and never matched.  Matching (a1111_chunk.c) is on tokens: the
 * name tokenized alone, found in a prompt piece's tokens, longest first. */
#ifndef SD_EMBEDDINGS_H
#define SD_EMBEDDINGS_H

#include <stdint.h>

#include "../../base/err.h"
#include "../tokenizer/clip_bpe.h"

#define EMB_MAX_VECTORS TOK_CHUNK   /* more could not sit in one 75-token chunk */

typedef struct sd_embedding {
    char *name;
    int n, width;        /* vectors and their width (0 when unreadable) */
    int width2;          /* SDXL pair: clip_g's width (0: a one-encoder embedding) */
    float *vec;          /* [n][width + width2] (clip_l's then clip_g's values per
                            vector), NULL when refused; emb_stride() apart */
    int32_t *ids;        /* the name tokenized, NULL when not matchable */
    size_t n_ids;
    char *error;         /* why it is not used, or NULL */
} sd_embedding;

typedef struct sd_embeddings {
    sd_embedding *v;
    int n;
} sd_embeddings;

/* Read one file as embedding `name`: 0, or -1 + err naming "embeddings"
 * (a pickle, not exactly one tensor, a dtype or shape that is not one,
 * more than EMB_MAX_VECTORS vectors, a value that is not finite). */
int emb_read(const char *path, const char *name, sd_embedding *out, sd_err *err);
void emb_free(sd_embedding *e);

/* Every *.safetensors / *.pt / *.bin of dir, read and checked against the
 * text encoder's `width`; the usable ones tokenized with tok.  A dir that
 * cannot be opened is -1 + err naming "embeddings_dir"; a bad file is not
 * an error (its entry says why). */
int emb_dir_load(const char *dir, const sd_tokenizer *tok, int width, sd_embeddings *out, sd_err *err);
/* The same for a model with a second text encoder of width2 (SDXL: the
 * clip_l + clip_g pairs are the usable ones); width2 0 = emb_dir_load. */
int emb_dir_load2(const char *dir, const sd_tokenizer *tok, int width, int width2, sd_embeddings *out, sd_err *err);
/* Floats from one of e's vectors to the next (width + width2); a vector's
 * second-encoder values start `width` floats into it. */
int emb_stride(const sd_embedding *e);
void emb_set_free(sd_embeddings *s);

/* The usable embedding whose name's ids start at ids[at] (of n), the
 * longest such, or NULL. */
const sd_embedding *emb_match(const sd_embeddings *s, const int32_t *ids, size_t n, size_t at);

#endif
