/* fuzz_embeddings.c — libFuzzer target for the textual-inversion embedding
 * reader (src/engine/prompt/embeddings.c): the input is a whole
 * .safetensors file, handed to emb_read() through a memfd.  A refusal must
 * carry an error naming "embeddings"; an accepted embedding has 1..75
 * vectors of a width in 1..65536, all finite, and is then found by
 * emb_match at its tokens.
 * fuzz-sources: src/engine/prompt/embeddings.c src/engine/loader/safetensors.c src/engine/tokenizer/clip_bpe.c src/engine/tokenizer/clip_text.c src/engine/tokenizer/unicode_tables.c src/engine/tokenizer/vocab_blob.c src/base/err.c src/base/dirnames.c src/base/alloc.c
 * fuzz-libs: -ljansson -lz -lm */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_memfd.h"
#include "../../src/engine/prompt/embeddings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfd(data, size, path);
    if (fd < 0) return 0;
    sd_err err;
    sd_err_clear(&err);
    sd_embedding e;
    if (emb_read(path, "fuzz", &e, &err)) {
        if (!err.code || strcmp(err.field, "embeddings") || !err.msg[0]) abort();
    } else {
        if (e.n < 1 || e.n > EMB_MAX_VECTORS || e.width < 1 || e.width > 65536 || !e.vec) abort();
        for (size_t i = 0; i < (size_t)e.n * e.width; i++)
            if (!isfinite(e.vec[i])) abort();
        int32_t ids[3] = {7, 320, 7};
        e.ids = malloc(sizeof(int32_t));
        e.ids[0] = 320;
        e.n_ids = 1;
        sd_embeddings set = {&e, 1};
        if (emb_match(&set, ids, 3, 1) != &e || emb_match(&set, ids, 3, 2)) abort();
        emb_free(&e);
    }
    close(fd);
    return 0;
}
