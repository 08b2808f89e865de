/* lora_names.c — the weights a LoRA may patch, found by the name a LoRA file
 * uses for them (see lora.h, step 1).
 *
 * Every 2-D / 4-D "unet.*.weight" and "text_encoder.*.weight" tensor of the
 * model is listed twice, sorted for bsearch: under its PEFT module name
 * (canonical name without ".weight") and under its kohya name ("lora_unet_"
 * or "lora_te_" + the module with '.' -> '_').  Two weights whose kohya
 * names collide are marked ambiguous, and a LoRA module naming one of them
 * is refused rather than guessed.  Must not: know any model's layout. */
#include "lora_int.h"

#include <stdlib.h>
#include <string.h>

#include "../../base/alloc.h"

typedef struct name_entry {
    char *key;          /* kohya or PEFT module name */
    lora_target t;      /* t.name owned (shared by the entry pair: freed once) */
    int owns_name;
    int ambiguous;
} name_entry;

struct lora_names {
    name_entry *e;
    size_t n;
    size_t targets;
};

static const struct { const char *component, *kohya; } components[] = {
    {"unet.", "lora_unet_"},
    {"text_encoder.", "lora_te_"},
};

/* The kohya prefix for a canonical name, or NULL when no LoRA may target it. */
static const char *kohya_prefix(const lora_target *t, size_t *comp_len)
{
    size_t len = strlen(t->name);
    if ((t->ndim != 2 && t->ndim != 4) || len < 8 || strcmp(t->name + len - 7, ".weight")) return NULL;
    for (size_t i = 0; i < sizeof components / sizeof components[0]; i++) {
        size_t cl = strlen(components[i].component);
        if (!strncmp(t->name, components[i].component, cl) && len > cl + 7) {
            *comp_len = cl;
            return components[i].kohya;
        }
    }
    return NULL;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const name_entry *)a)->key, ((const name_entry *)b)->key);
}

/* Fill e[0] (PEFT key) and e[1] (kohya key) for target t; -1 on ENOMEM. */
static int add_pair(name_entry *e, const lora_target *t, const char *kohya, size_t comp_len)
{
    size_t len = strlen(t->name), mod_len = len - 7 - comp_len, kl = strlen(kohya);
    char *name = sd_strdup(t->name);
    char *peft = sd_strndup(t->name, len - 7);
    char *k = sd_malloc(kl + mod_len + 1);
    if (!name || !peft || !k) {
        free(name), free(peft), free(k);
        return -1;
    }
    memcpy(k, kohya, kl);
    for (size_t i = 0; i < mod_len; i++) k[kl + i] = t->name[comp_len + i] == '.' ? '_' : t->name[comp_len + i];
    k[kl + mod_len] = 0;
    e[0] = (name_entry){.key = peft, .t = *t, .owns_name = 1};
    e[0].t.name = name;
    e[1] = (name_entry){.key = k, .t = e[0].t};
    return 0;
}

lora_names *lora_names_new(const lora_target *t, size_t n, sd_err *err)
{
    lora_names *nm = sd_calloc(1, sizeof *nm);
    if (!nm || !(nm->e = sd_calloc(n ? 2 * n : 1, sizeof *nm->e))) {
        free(nm);
        sd_errf(err, SD_ENOMEM, "loras", "out of memory listing the model's weights for LoRA");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t comp_len = 0;
        const char *kohya = kohya_prefix(&t[i], &comp_len);
        if (!kohya) continue;
        if (add_pair(&nm->e[nm->n], &t[i], kohya, comp_len)) {
            lora_names_free(nm);
            sd_errf(err, SD_ENOMEM, "loras", "out of memory listing the model's weights for LoRA");
            return NULL;
        }
        nm->n += 2;
        nm->targets++;
    }
    qsort(nm->e, nm->n, sizeof *nm->e, entry_cmp);
    for (size_t i = 1; i < nm->n; i++)
        if (!strcmp(nm->e[i - 1].key, nm->e[i].key)) nm->e[i - 1].ambiguous = nm->e[i].ambiguous = 1;
    return nm;
}

void lora_names_free(lora_names *nm)
{
    if (!nm) return;
    for (size_t i = 0; i < nm->n; i++) {
        free(nm->e[i].key);
        if (nm->e[i].owns_name) free((char *)nm->e[i].t.name);
    }
    free(nm->e);
    free(nm);
}

size_t lora_names_count(const lora_names *nm)
{
    return nm ? nm->targets : 0;
}

const lora_target *lora_names_find(const lora_names *nm, const char *module, int *ambiguous)
{
    name_entry key = {.key = (char *)module};
    const name_entry *e = bsearch(&key, nm->e, nm->n, sizeof *nm->e, entry_cmp);
    *ambiguous = e && e->ambiguous;
    return e ? &e->t : NULL;
}
