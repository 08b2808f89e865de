/* fuzz_lora.c — libFuzzer target for the LoRA reader (src/engine/lora/):
 * the input is a whole LoRA .safetensors file, handed to lora_load()
 * through a memfd against each target list of tests/common/lora_targets.h
 * (tiny-sd1's, and an SDXL-shaped one: lora_te1_/lora_te2_, LDM UNet names).
 * A refusal must carry an error naming "loras"; every module it accepts
 * must fit its target and is merged once into a zero weight.
 * fuzz-sources: src/engine/lora/lora.c src/engine/lora/lora_check.c src/engine/lora/lora_names.c src/engine/lora/lora_ldm.c src/engine/lora/lora_merge.c src/engine/loader/safetensors.c src/base/err.c src/base/alloc.c
 * fuzz-libs: -ljansson -lm */
#include <stdlib.h>
#include <string.h>

#include "fuzz_memfd.h"
#include "../common/lora_targets.h"

/* One load against nm: a refusal names "loras"; accepted modules fit. */
static void load_one(const char *path, const lora_names *nm)
{
    sd_err err;
    sd_err_clear(&err);
    sd_lora *l = lora_load(path, "fuzz", nm, &err);
    if (!l && (!err.code || strcmp(err.field, "loras"))) abort();
    for (size_t i = 0; l && i < lora_module_count(l); i++) {
        const lora_module *m = lora_module_at(l, i);
        if (m->rank < 1 || m->rank > LORA_MAX_RANK || m->out * m->in > 1 << 20) abort();
        float *w = calloc((size_t)(m->out * m->in), sizeof *w);
        if (w) lora_merge_module(m, 0.5f, w, w);
        free(w);
    }
    lora_free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lora_names *nm, *xl;
    if (!nm && !(nm = lora_names_new(lora_test_targets, LORA_TEST_NTARGETS, NULL))) abort();
    if (!xl && !(xl = lora_names_new(lora_test_targets_xl, LORA_TEST_NTARGETS_XL, NULL))) abort();
    char path[64];
    int fd = fuzz_memfd(data, size, path);
    if (fd < 0) return 0;
    load_one(path, nm);
    load_one(path, xl);
    close(fd);
    return 0;
}
