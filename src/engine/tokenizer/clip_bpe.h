/* clip_bpe.h — CLIP's byte-level BPE tokenizer (engine-internal).
 *
 * Turns a prompt into the 77-token id windows the CLIP text encoder reads,
 * exactly as OpenAI's SimpleTokenizer / diffusers' CLIPTokenizer do (text
 * cleanup: see clip_text.h and docs/ACCURACY.md "## Tokenizer").
 *
 * Vocabulary sources:
 *   - bpe_simple_vocab_16e6.txt.gz (OpenAI CLIP; also accepted uncompressed;
 *     a copy is built into the binary, third_party/clip/):
 *     header line, then merges.  Ids are built in CLIP's order: the 256 byte
 *     characters (GPT-2 bytes_to_unicode order), the same with "</w>", one per
 *     merge (the first 49152-256-2), then <|startoftext|>, <|endoftext|>.
 *   - a merges.txt with vocab.json beside it, a vocab.json with merges.txt
 *     beside it, or a folder holding both (diffusers tokenizer/): ids as given
 *     in vocab.json; the start/end ids are looked up by their strings.
 * A loaded tokenizer is read-only: any number of threads may encode with it. */
#ifndef SD_CLIP_BPE_H
#define SD_CLIP_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "../../base/err.h"

#define TOK_WINDOW 77          /* ids per conditioning window */
#define TOK_CHUNK (TOK_WINDOW - 2)

typedef struct sd_tokenizer sd_tokenizer;

/* path: a .txt.gz / merges.txt / vocab.json file or a folder holding them. */
sd_tokenizer *tok_load(const char *path, sd_err *err);

/* The CLIP vocabulary built into the binary (vocab_blob.h). */
sd_tokenizer *tok_load_builtin(sd_err *err);

/* Finds and loads the vocabulary.  Search order: vocab_flag (--vocab; if
 * set, its failure is final); <model folder>/tokenizer/; tokenizer/ beside a
 * single model file; data_dir/tokenizer/, data_dir/bpe_simple_vocab_16e6.txt.gz;
 * else the built-in CLIP vocabulary.  A vocabulary found but broken is an
 * error (not skipped).  Any argument may be NULL. */
sd_tokenizer *tok_find(const char *model_path, const char *vocab_flag, const char *data_dir, sd_err *err);

void tok_free(sd_tokenizer *t);

int tok_bos(const sd_tokenizer *t);
int tok_eos(const sd_tokenizer *t);
/* Largest id + 1 (the text encoder's embedding table must have this many rows). */
int tok_vocab_size(const sd_tokenizer *t);

/* Raw BPE ids after CLIP's text cleanup, without start/end (*ids malloc'd,
 * may be NULL when *n == 0).  Invalid UTF-8 is not an error: bad bytes
 * become U+FFFD.  A literal "<|startoftext|>"/"<|endoftext|>" in the text
 * gives the special id, as in CLIP. */
int tok_encode(const sd_tokenizer *t, const char *text, int32_t **ids, size_t *n, sd_err *err);

/* Windows for ntokens raw ids (tok_encode's count): chunks of 75, at least one. */
size_t tok_window_count(size_t ntokens);

/* Conditioning windows: the ids in chunks of 75, each chunk becoming
 * [BOS, chunk..., EOS, pad...] of 77; an empty prompt gives one window.
 * pad_id: SD1 pads with EOS (49407), SD2 with 0.  Returns *nwin windows of
 * 77 ids in one malloc'd array. */
int tok_windows(const sd_tokenizer *t, const char *text, int pad_id, int32_t **ids, int *nwin, sd_err *err);

#endif
