/* fuzz_vocab.h — the CLIP vocabulary for the fuzz targets that tokenize
 * (fuzz_tokenizer, fuzz_a1111_prompt): loaded once from $SD_FUZZ_VOCAB,
 * default the reference data's tokenizer/bpe_simple_vocab_16e6.txt.gz via
 * $SD_REF; a target that cannot load it exits with status 2.  And the
 * fuzz input as a NUL-terminated prompt. */
#ifndef SD_FUZZ_VOCAB_H
#define SD_FUZZ_VOCAB_H

#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/engine/tokenizer/clip_bpe.h"

static sd_tokenizer *fuzz_vocab(const char *target)
{
    char path[4096];
    const char *v = getenv("SD_FUZZ_VOCAB");
    const char *ref = getenv("SD_REF");
    if (v) snprintf(path, sizeof path, "%s", v);
    else snprintf(path, sizeof path, "%s/tokenizer/bpe_simple_vocab_16e6.txt.gz", ref ? ref : "../shared/reference");
    sd_err err;
    sd_err_clear(&err);
    sd_tokenizer *tok = tok_load(path, &err);
    if (!tok) {
        fprintf(stderr, "%s: %s\n", target, err.msg);
        exit(2);
    }
    return tok;
}

/* data as a malloc'd NUL-terminated string (NULL when out of memory). */
static char *fuzz_text(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return NULL;
    memcpy(text, data, size);
    text[size] = 0;
    return text;
}

#endif
