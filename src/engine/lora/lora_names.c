/* lora_names.c — the weights a LoRA may patch, found by the name a LoRA file
 * uses for them (see lora.h, step 1).
 *
 * Every 2-D / 4-D "unet.*.weight", "text_encoder.*.weight" and
 * "text_encoder_2.*.weight" tensor of the model is listed under its PEFT
 * module name (canonical name without ".weight") and under its kohya names
 * (the module with '.' -> '_' after "lora_unet_", "lora_te_" or "lora_te1_"
 * for the first text encoder, "lora_te2_" for SDXL's second); a UNet weight
 * also under its LDM spelling ("lora_unet_input_blocks_4_1_...", as kohya's
 * SDXL files and some SD1 ones name it; lora_ldm.c), sorted for bsearch.
 * Two weights whose kohya names collide are marked ambiguous, and a LoRA
 * module naming one of them is refused rather than guessed.  Must not: know
 * any model's layout (the LDM block numbers come from the names). */
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
    int two_te;
};

/* Entries one target may have: PEFT, two kohya spellings, the LDM one. */
#define NAMES_PER_TARGET 4

typedef struct component {
    const char *component, *kohya, *kohya_alias;
    int ldm;
} component;

static const component components[] = {
    {"unet.", "lora_unet_", NULL, 1},
    {"text_encoder.", "lora_te_", "lora_te1_", 0},
    {"text_encoder_2.", "lora_te2_", NULL, 0},
};

/* The component of a canonical name, or NULL when no LoRA may target it. */
static const component *component_of(const lora_target *t, size_t *comp_len)
{
    size_t len = strlen(t->name);
    if ((t->ndim != 2 && t->ndim != 4) || len < 8 || strcmp(t->name + len - 7, ".weight")) return NULL;
    for (size_t i = 0; i < sizeof components / sizeof components[0]; i++) {
        size_t cl = strlen(components[i].component);
        if (!strncmp(t->name, components[i].component, cl) && len > cl + 7) {
            *comp_len = cl;
            return &components[i];
        }
    }
    return NULL;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const name_entry *)a)->key, ((const name_entry *)b)->key);
}

/* kohya + module with '.' -> '_' (module of length len); NULL on ENOMEM. */
static char *kohya_key(const char *kohya, const char *module, size_t len)
{
    size_t kl = strlen(kohya);
    char *k = sd_malloc(kl + len + 1);
    if (!k) return NULL;
    memcpy(k, kohya, kl);
    for (size_t i = 0; i < len; i++) k[kl + i] = module[i] == '.' ? '_' : module[i];
    k[kl + len] = 0;
    return k;
}

/* The kohya keys of module (length len) of component c: keys[0..n). */
static int kohya_keys(const component *c, const char *module, size_t len, const lora_ldm *ldm, char *keys[3])
{
    char mod[256], ldm_name[256];
    int n = 0, want = 1;
    keys[n++] = kohya_key(c->kohya, module, len);
    if (c->kohya_alias) want++, keys[n++] = kohya_key(c->kohya_alias, module, len);
    if (c->ldm && len < sizeof mod) {
        memcpy(mod, module, len);
        mod[len] = 0;
        if (lora_ldm_name(ldm, mod, ldm_name, sizeof ldm_name))
            want++, keys[n++] = kohya_key(c->kohya, ldm_name, strlen(ldm_name));
    }
    for (int i = 0; i < n; i++)
        if (!keys[i]) want = -1;
    return want;
}

/* Fill e[0] (PEFT key, owning the name) and e[1..] (kohya keys) for target
 * t of component c; the number of entries, or -1 on ENOMEM. */
static int add_target(name_entry *e, const lora_target *t, const component *c, size_t comp_len,
                      const lora_ldm *ldm)
{
    size_t len = strlen(t->name), mod_len = len - 7 - comp_len;
    char *keys[3] = {NULL, NULL, NULL};
    char *name = sd_strdup(t->name), *peft = sd_strndup(t->name, len - 7);
    int n = kohya_keys(c, t->name + comp_len, mod_len, ldm, keys);
    if (!name || !peft || n < 0) {
        free(name), free(peft);
        for (int i = 0; i < 3; i++) free(keys[i]);
        return -1;
    }
    e[0] = (name_entry){.key = peft, .t = *t, .owns_name = 1};
    e[0].t.name = name;
    for (int i = 0; i < n; i++) e[1 + i] = (name_entry){.key = keys[i], .t = e[0].t};
    return 1 + n;
}

static lora_names *names_oom(lora_names *nm, sd_err *err)
{
    lora_names_free(nm);
    sd_errf(err, SD_ENOMEM, "loras", "out of memory listing the model's weights for LoRA");
    return NULL;
}

lora_names *lora_names_new(const lora_target *t, size_t n, sd_err *err)
{
    lora_names *nm = sd_calloc(1, sizeof *nm);
    if (!nm || !(nm->e = sd_calloc(n ? NAMES_PER_TARGET * n : 1, sizeof *nm->e))) return names_oom(nm, err);
    lora_ldm ldm = {0};
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(t[i].name, "unet.", 5)) lora_ldm_scan(&ldm, t[i].name + 5);
        if (!strncmp(t[i].name, "text_encoder_2.", 15)) nm->two_te = 1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t comp_len = 0;
        const component *c = component_of(&t[i], &comp_len);
        if (!c) continue;
        int k = add_target(&nm->e[nm->n], &t[i], c, comp_len, &ldm);
        if (k < 0) return names_oom(nm, err);
        nm->n += (size_t)k;
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

int lora_names_two_te(const lora_names *nm)
{
    return nm && nm->two_te;
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
