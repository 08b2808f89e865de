/* lora.c — one LoRA .safetensors file read into checked modules (see
 * lora.h, step 2).
 *
 * The file's tensors are split into (module, part) keys by their suffix
 * (kohya .lora_down.weight / .lora_up.weight / .alpha, PEFT .lora_A.weight /
 * .lora_B.weight), sorted, and each module's group becomes one lora_module
 * after lora_check.c has resolved its target and checked its shapes.
 * Nothing here trusts the file: the safetensors layer has bounded every
 * entry, and every other refusal is an sd_err naming "loras".  Must not:
 * touch a model's weights (it only reads their names and shapes). */
#include "lora_int.h"
#include "lora_check.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/alloc.h"
#include "../loader/safetensors.h"

struct sd_lora {
    char *name;
    lora_naming naming;
    lora_module *m;   /* sorted by target */
    size_t n;
    size_t param_bytes, delta_bytes;
};

/* A tensor of the file as (module, part). */
typedef struct lora_key {
    char *module;
    lora_part part;
    const st_entry *e;
} lora_key;

static const struct { const char *suffix; lora_part part; } part_suffixes[] = {
    {".lora_down.weight", LORA_DOWN}, {".lora_up.weight", LORA_UP}, {".alpha", LORA_ALPHA},
    {".lora_A.weight", LORA_DOWN},    {".lora_B.weight", LORA_UP},
};

/* Parts of LoRA-like files we recognise but do not apply (at_end: only
 * as the name's suffix). */
static const struct { const char *frag, *what; int at_end; } unsupported[] = {
    {".hada_", "LoHa (LyCORIS)", 0},
    {".lokr_", "LoKr (LyCORIS)", 0},
    {".lora_mid.", "LoCon with a Tucker mid tensor", 0},
    {".dora_scale", "DoRA", 0},
    {".diff", "a full weight difference", 1},
    {".diff_b", "a full bias difference", 1},
    {".lora.up.", "the old diffusers attention-processor naming", 0},
    {".lora.down.", "the old diffusers attention-processor naming", 0},
    {".lora_linear_layer.", "the old diffusers lora_linear_layer naming", 0},
};

static int oom(sd_err *err, const char *lora)
{
    return sd_errf(err, SD_ENOMEM, "loras", "LoRA '%s': out of memory reading the file", lora);
}

/* name (of length len) holds frag, or ends with it when at_end. */
static int has_part(const char *name, size_t len, const char *frag, int at_end)
{
    size_t fl = strlen(frag);
    return at_end ? len > fl && !strcmp(name + len - fl, frag) : strstr(name, frag) != NULL;
}

/* Split a tensor name into module + part; -1 + err for any other tensor. */
static int split_key(const st_entry *e, const char *lora, lora_key *k, sd_err *err)
{
    size_t len = strlen(e->name);
    for (size_t i = 0; i < sizeof part_suffixes / sizeof part_suffixes[0]; i++) {
        size_t sl = strlen(part_suffixes[i].suffix);
        if (len > sl && !strcmp(e->name + len - sl, part_suffixes[i].suffix)) {
            if (e->dtype == ST_OTHER)
                return lora_fail(err, lora, NULL, "tensor '%s' has dtype %s (F32, F16 or BF16 expected)", e->name,
                                 e->dtype_name);
            k->module = sd_strndup(e->name, len - sl);
            k->part = part_suffixes[i].part;
            k->e = e;
            return k->module ? 0 : oom(err, lora);
        }
    }
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (has_part(e->name, len, unsupported[i].frag, unsupported[i].at_end))
            return lora_fail(err, lora, NULL, "tensor '%s' is %s, which is not supported (plain LoRA and LoCon are)",
                             e->name, unsupported[i].what);
    return lora_fail(err, lora, NULL,
                     "tensor '%s' is not a LoRA tensor (expected .lora_down.weight/.lora_up.weight/.alpha or "
                     ".lora_A.weight/.lora_B.weight)",
                     e->name);
}

static int key_cmp(const void *a, const void *b)
{
    const lora_key *x = a, *y = b;
    int c = strcmp(x->module, y->module);
    return c ? c : (int)x->part - (int)y->part;
}

static int module_cmp(const void *a, const void *b)
{
    return strcmp(((const lora_module *)a)->target, ((const lora_module *)b)->target);
}

/* PEFT alpha, rank and pattern settings from __metadata__ (string values). */
static int parse_number(const char *s, double *out)
{
    char *end;
    *out = strtod(s, &end);
    return end != s && !*end && isfinite(*out) ? 0 : -1;
}

static int pattern_nonempty(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);
    int nonempty = !j || !json_is_object(j) || json_object_size(j) > 0;
    json_decref(j);
    return nonempty && strcmp(s, "") && strcmp(s, "null");
}

static int read_meta_entry(lora_meta *m, const char *key, const char *val, const char *lora, sd_err *err)
{
    double x;
    if (!strcmp(key, "lora_alpha")) {
        if (parse_number(val, &x))
            return lora_fail(err, lora, NULL, "__metadata__ lora_alpha '%.40s' is not a finite number", val);
        m->has_alpha = 1, m->alpha = x;
    } else if (!strcmp(key, "r")) {
        if (parse_number(val, &x) || x < 1 || x > LORA_MAX_RANK || x != (int)x)
            return lora_fail(err, lora, NULL, "__metadata__ r '%.40s' is not a rank in 1..%d", val, LORA_MAX_RANK);
        m->has_r = 1, m->r = (int)x;
    } else if (!strcmp(key, "rank_pattern")) {
        m->rank_pattern = pattern_nonempty(val);
    } else if (!strcmp(key, "alpha_pattern") && pattern_nonempty(val)) {
        return lora_fail(err, lora, NULL, "__metadata__ alpha_pattern (a per-module alpha) is not supported");
    }
    return 0;
}

static int read_meta(const st_file *f, const char *lora, lora_meta *m, sd_err *err)
{
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f->map[i];   /* st_open checked it fits */
    json_t *root = json_loadb((const char *)f->map + 8, (size_t)hlen, 0, NULL);
    json_t *meta = json_object_get(root, "__metadata__");
    const char *key;
    json_t *val;
    int rc = 0;
    json_object_foreach(meta, key, val) {
        if (json_is_string(val) && (rc = read_meta_entry(m, key, json_string_value(val), lora, err))) break;
    }
    json_decref(root);
    return rc;
}

static void keys_free(lora_key *k, size_t n)
{
    for (size_t i = 0; i < n; i++) free(k[i].module);
    free(k);
}

/* Every tensor of f as a key, sorted by (module, part). */
static lora_key *read_keys(const st_file *f, const char *lora, sd_err *err)
{
    lora_key *k = sd_calloc(f->n ? f->n : 1, sizeof *k);
    if (!k) {
        oom(err, lora);
        return NULL;
    }
    for (size_t i = 0; i < f->n; i++)
        if (split_key(&f->e[i], lora, &k[i], err)) {
            keys_free(k, f->n);
            return NULL;
        }
    qsort(k, f->n, sizeof *k, key_cmp);
    return k;
}

/* Group keys [i, j) of one module into l->m[l->n]. */
static int add_module(sd_lora *l, const lora_key *k, size_t i, size_t j, const lora_names *nm,
                      const lora_meta *meta, sd_err *err)
{
    const st_entry *part[LORA_NPARTS] = {0};
    for (size_t x = i; x < j; x++) {
        if (part[k[x].part])
            return lora_fail(err, l->name, k[x].module, "two tensors for its %s (mixed kohya and PEFT suffixes?)",
                             lora_part_name(k[x].part));
        part[k[x].part] = k[x].e;
    }
    lora_module *m = &l->m[l->n];
    if (lora_check_module(l->name, k[i].module, part, nm, meta, m, err)) return -1;
    l->n++;
    l->param_bytes += (size_t)m->rank * (size_t)(m->out + m->in) * sizeof(float);
    l->delta_bytes += (size_t)(m->out * m->in) * sizeof(float);
    return 0;
}

static int build_modules(sd_lora *l, const lora_key *k, size_t nk, const lora_names *nm, const lora_meta *meta,
                         sd_err *err)
{
    if (!(l->m = sd_calloc(nk ? nk : 1, sizeof *l->m))) return oom(err, l->name);
    for (size_t i = 0; i < nk; i++)   /* another family's file: said before any module's own misfit */
        if (lora_check_family(l->name, k[i].module, nm, err)) return -1;
    for (size_t i = 0, j; i < nk; i = j) {
        for (j = i + 1; j < nk && !strcmp(k[j].module, k[i].module); j++) {}
        if (add_module(l, k, i, j, nm, meta, err)) return -1;
    }
    if (!l->n) return lora_fail(err, l->name, NULL, "the file holds no LoRA modules");
    qsort(l->m, l->n, sizeof *l->m, module_cmp);
    for (size_t i = 1; i < l->n; i++)
        if (!strcmp(l->m[i - 1].target, l->m[i].target))
            return lora_fail(err, l->name, l->m[i].src, "patches %s, which module '%s' already patches",
                             l->m[i].target, l->m[i - 1].src);
    l->naming = strncmp(l->m[0].src, "lora_", 5) ? LORA_PEFT : LORA_KOHYA;
    return 0;
}

static int open_file(st_file *f, const char *path, const char *lora, sd_err *err)
{
    sd_err e;
    sd_err_clear(&e);
    if (st_open(f, path, &e) == 0) return 0;
    sd_errcode code = e.code == SD_ENOMEM || e.code == SD_EIO ? e.code : SD_EINVAL;
    return sd_errf(err, code, "loras", "LoRA '%s': cannot read the file: %s", lora, e.msg);
}

sd_lora *lora_load(const char *path, const char *name, const lora_names *nm, sd_err *err)
{
    sd_lora *l = sd_calloc(1, sizeof *l);
    if (!l || !(l->name = sd_strdup(name ? name : "?"))) {
        free(l);
        oom(err, name ? name : "?");
        return NULL;
    }
    st_file f;
    lora_meta meta = {0};
    if (open_file(&f, path, l->name, err)) {
        lora_free(l);
        return NULL;
    }
    lora_key *k = NULL;
    int rc = read_meta(&f, l->name, &meta, err);
    if (!rc) rc = (k = read_keys(&f, l->name, err)) ? 0 : -1;
    if (!rc) rc = build_modules(l, k, f.n, nm, &meta, err);
    if (k) keys_free(k, f.n);
    st_close(&f);
    if (rc) {
        lora_free(l);
        return NULL;
    }
    return l;
}

void lora_free(sd_lora *l)
{
    if (!l) return;
    for (size_t i = 0; l->m && i < l->n; i++) lora_module_clear(&l->m[i]);
    free(l->m);
    free(l->name);
    free(l);
}

const char *lora_name(const sd_lora *l)
{
    return l->name;
}

lora_naming lora_naming_of(const sd_lora *l)
{
    return l->naming;
}

size_t lora_module_count(const sd_lora *l)
{
    return l->n;
}

const lora_module *lora_module_at(const sd_lora *l, size_t i)
{
    return i < l->n ? &l->m[i] : NULL;
}

const lora_module *lora_find(const sd_lora *l, const char *target)
{
    lora_module key = {.target = (char *)target};
    return bsearch(&key, l->m, l->n, sizeof *l->m, module_cmp);
}

size_t lora_param_bytes(const sd_lora *l)
{
    return l->param_bytes;
}

size_t lora_delta_bytes(const sd_lora *l)
{
    return l->delta_bytes;
}
