/* lora_weights.c — the LoRA module's side of loader/weights.h: the target
 * list of an opened checkpoint, and lora_merge() on one of its tensors (see
 * lora.h, steps 1 and 3).  Kept apart so the reader and the arithmetic
 * build without the loader (tests/fuzz/fuzz_lora.c).  Must not: write to a
 * checkpoint's tensors. */
#include "lora.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/alloc.h"

lora_names *lora_names_from_weights(const sd_weights *w, sd_err *err)
{
    size_t n = sdw_count(w);
    lora_target *t = sd_calloc(n ? n : 1, sizeof *t);
    if (!t) {
        sd_errf(err, SD_ENOMEM, "loras", "out of memory listing the model's weights for LoRA");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const sdw_tensor *s = sdw_at(w, i);
        t[i].name = s->name;
        t[i].ndim = s->ndim;
        memcpy(t[i].shape, s->shape, sizeof t[i].shape);
    }
    lora_names *nm = lora_names_new(t, n, err);
    free(t);
    return nm;
}

static int same_shape(const lora_module *mod, const sdw_tensor *base)
{
    if (mod->target_ndim != base->ndim) return 0;
    for (int i = 0; i < base->ndim; i++)
        if (mod->target_shape[i] != base->shape[i]) return 0;
    return 1;
}

/* The module of stack[i] for base, or NULL; -1 + err when it cannot apply. */
static int usable(const lora_use *u, const sdw_tensor *base, const lora_module **mod, sd_err *err)
{
    *mod = lora_find(u->lora, base->name);
    if (!*mod) return 0;
    if (!isfinite(u->weight))
        return sd_errf(err, SD_EINVAL, "loras", "LoRA '%s': weight is not a finite number", lora_name(u->lora));
    if (!same_shape(*mod, base))
        return sd_errf(err, SD_EINVAL, "loras", "LoRA '%s': module '%s' was read for another shape of %s",
                       lora_name(u->lora), (*mod)->src, base->name);
    return 0;
}

int lora_merge(const sdw_tensor *base, const lora_use *stack, size_t n, float *out, sd_err *err)
{
    const lora_module *mod;
    for (size_t i = 0; i < n; i++)
        if (usable(&stack[i], base, &mod, err)) return -1;
    const float *src = base->data;
    int applied = 0;
    for (size_t i = 0; i < n; i++) {
        usable(&stack[i], base, &mod, err);
        if (!mod) continue;
        lora_merge_module(mod, stack[i].weight, src, out);
        src = out;
        applied++;
    }
    if (!applied && out != base->data) memcpy(out, base->data, (size_t)sdw_numel(base) * sizeof *out);
    return applied;
}
