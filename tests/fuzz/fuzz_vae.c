/* fuzz_vae.c — libFuzzer target for the VAE override's reader
 * (sdw_open_vae, src/engine/loader/weights.c + ldm_names.c): the input is a
 * whole VAE .safetensors file, handed over through a memfd.  A refusal
 * must carry an error naming field "vae"; an accepted file holds only
 * vae.* tensors, the decoder's conv_in among them, each inside the file.
 * The weight-handle functions weights.c links against are never called
 * here and are stubbed (no compute library in the fuzz build).
 * fuzz-sources: src/engine/loader/weights.c src/engine/loader/ldm_names.c src/engine/loader/safetensors.c src/base/err.c src/base/alloc.c
 * fuzz-libs: -ljansson */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_memfd.h"
#include "../../src/engine/loader/weights.h"

ops_weight *ops_weight_register(ops_ctx *c, const float *data, size_t n, const ops_weight_src *src, void *ud)
{
    abort();
}
void ops_weight_given_back(ops_weight *w) { abort(); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfd(data, size, path);
    if (fd < 0) return 0;
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = sdw_open_vae(path, &err);
    if (!w && (!err.code || strcmp(err.field, "vae"))) abort();
    if (w && !sdw_get(w, "vae.decoder.conv_in.weight")) abort();
    for (size_t i = 0; w && i < sdw_count(w); i++) {
        const sdw_tensor *t = sdw_at(w, i);
        if (strncmp(t->name, "vae.", 4)) abort();
        volatile float s = 0;
        for (int64_t k = 0; k < sdw_numel(t) && k < 4096; k++) s += t->data[k];
    }
    sdw_close(w);
    close(fd);
    return 0;
}
