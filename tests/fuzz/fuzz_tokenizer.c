/* fuzz_tokenizer.c — libFuzzer target for the CLIP tokenizer
 * (src/engine/tokenizer): any prompt bytes (invalid UTF-8 included) encode
 * to ids inside the vocabulary and to whole 77-id windows starting with BOS.
 * The vocabulary is loaded once from $SD_FUZZ_VOCAB (default: the reference
 * data's tokenizer/bpe_simple_vocab_16e6.txt.gz via $SD_REF).
 * fuzz-sources: src/engine/tokenizer/clip_bpe.c src/engine/tokenizer/clip_text.c src/engine/tokenizer/unicode_tables.c src/engine/tokenizer/vocab_blob.c src/base/err.c src/base/alloc.c
 * fuzz-libs: -ljansson -lz */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_vocab.h"

static sd_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    tok = fuzz_vocab("fuzz_tokenizer");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    if (!text) return 0;
    sd_err err;
    sd_err_clear(&err);
    int32_t *ids = NULL;
    size_t n = 0;
    int vs = tok_vocab_size(tok);
    if (tok_encode(tok, text, &ids, &n, &err) == 0)
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= vs) abort();
    free(ids);
    int32_t *win = NULL;
    int nwin = 0;
    sd_err_clear(&err);
    if (tok_windows(tok, text, tok_eos(tok), &win, &nwin, &err) == 0) {
        if (nwin < 1) abort();
        for (int w = 0; w < nwin; w++)
            if (win[w * TOK_WINDOW] != tok_bos(tok)) abort();
    }
    free(win);
    free(text);
    return 0;
}
