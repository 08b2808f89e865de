/* apply.c — LoRA per request on a loaded model (apply.h): resolve names in
 * the LoRA directory, keep parsed files in a small LRU cache (each entry
 * checked against its file at every use: a file replaced, rewritten or
 * truncated since it was read is read again), and make the
 * model's weights base + the requested stack through the weight seam
 * (ops_weight_replace_lazy: merged when the ops first need each weight, only
 * its layout copies kept; ops_weight_restore), remembering the applied set
 * so the same set again costs nothing. */
#include "apply.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../base/alloc.h"
#include "../../base/dirnames.h"
#include "../../base/filestate.h"
#include "../../base/sha256.h"

typedef struct cache_entry {
    char name[SD_MAX_LORA_NAME];
    sd_lora *l;
    char hash[16];
    sd_file_state id;   /* the file as read (SD_FILE_STATE_NONE: changed while read, re-read at the next use) */
    uint64_t used;   /* clock of the last use (LRU) */
    int pinned;      /* in the applied set, or in use by the apply running */
    int stale;       /* its file changed: found by no lookup, kept only while the applied set uses it */
} cache_entry;

/* The cache's bound, and room for the applied stack (pinned, perhaps all
 * stale) beside the next stack while it loads. */
#define CACHE_SLOTS (LORA_CACHE_FILES + 2 * SD_MAX_LORAS)

struct lora_engine {
    pthread_mutex_t lock;
    const sd_weights *w;
    lora_names *nm;
    char *dir;
    char *label;   /* how refusals name dir (NULL: "the LoRA directory") */
    lora_handle_fn fn;
    void *ud;
    cache_entry cache[CACHE_SLOTS];
    int ncache;
    uint64_t clock;
    int max_files;          /* the cache's bounds: LORA_CACHE_FILES / _BYTES, or lora_engine_limit_cache's */
    size_t max_bytes;
    char set_name[SD_MAX_LORAS][SD_MAX_LORA_NAME];   /* the applied set, in order */
    float set_w[SD_MAX_LORAS];
    int nset;
    ops_weight **patched;   /* weights replaced now (lazily: ops_weight_replace_lazy) */
    size_t npatched;
    struct target_patch *tp;   /* what each patched weight's patch reads, npatched of them */
    lora_use use[SD_MAX_LORAS];   /* the applied stack (its LoRAs pinned in the cache) */
    int nuse;
    atomic_size_t merges;   /* tensors merged (in the ops' patch calls) */
    lora_stats st;
};

/* One patched weight: W' = base + the applied stack, made when the ops
 * need it (patch_one). */
typedef struct target_patch {
    lora_engine *le;
    sdw_tensor base;   /* name and shape; data = the original the ops pass */
} target_patch;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

lora_engine *lora_engine_new(const sd_weights *w, const char *dir, const char *label, lora_handle_fn fn, void *ud,
                             sd_err *err)
{
    lora_engine *le = sd_calloc(1, sizeof *le);
    if (!le || !(le->nm = lora_names_from_weights(w, err)) || (dir && !(le->dir = sd_strdup(dir))) ||
        (label && !(le->label = sd_strdup(label)))) {
        if (le) lora_names_free(le->nm);
        if (le) free(le->dir);
        free(le);
        sd_errf(err, SD_ENOMEM, "loras", "out of memory");   /* kept if lora_names set one */
        return NULL;
    }
    pthread_mutex_init(&le->lock, NULL);
    le->w = w;
    le->fn = fn;
    le->ud = ud;
    le->max_files = LORA_CACHE_FILES;
    le->max_bytes = LORA_CACHE_BYTES;
    return le;
}

void lora_engine_limit_cache(lora_engine *le, int files, size_t bytes)
{
    pthread_mutex_lock(&le->lock);
    le->max_files = files < 1 ? 1 : files > LORA_CACHE_FILES ? LORA_CACHE_FILES : files;
    le->max_bytes = bytes;
    pthread_mutex_unlock(&le->lock);
}

void lora_engine_free(lora_engine *le)
{
    if (!le) return;
    for (int i = 0; i < le->ncache; i++) lora_free(le->cache[i].l);
    lora_names_free(le->nm);
    pthread_mutex_destroy(&le->lock);
    free(le->patched);
    free(le->tp);
    free(le->dir);
    free(le->label);
    free(le);
}

/* ---- the cache (le->lock held) ------------------------------------------ */

static void file_hash(const char *path, char out[16])
{
    out[0] = 0;
    /* a regular file only (O_NONBLOCK: a FIFO would block the open, under le->lock) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0) return;
    FILE *f = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? fdopen(fd, "rb") : NULL;
    if (!f) {
        close(fd);
        return;
    }
    unsigned char *buf = sd_malloc(1 << 20), d[32];
    if (!buf) { fclose(f); return; }
    sd_sha256_ctx c;
    sd_sha256_init(&c);
    size_t k;
    while ((k = fread(buf, 1, 1 << 20, f)) > 0) sd_sha256_update(&c, buf, k);
    sd_sha256_final(&c, d);
    for (int i = 0; i < 6; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
    free(buf);
    fclose(f);
}

static size_t cache_bytes(const lora_engine *le)
{
    size_t b = 0;
    for (int i = 0; i < le->ncache; i++) b += lora_param_bytes(le->cache[i].l);
    return b;
}

/* Drop least recently used, unpinned entries until one more of `bytes` fits. */
static void cache_make_room(lora_engine *le, size_t bytes)
{
    while (le->ncache > 0 && (le->ncache >= le->max_files || cache_bytes(le) + bytes > le->max_bytes)) {
        int v = -1;
        for (int i = 0; i < le->ncache; i++)
            if (!le->cache[i].pinned && (v < 0 || le->cache[i].used < le->cache[v].used)) v = i;
        if (v < 0) return;
        lora_free(le->cache[v].l);
        le->cache[v] = le->cache[--le->ncache];
    }
}

int lora_file_of(const char *dir, const char *label, const char *name, char *path, size_t size,
                 sd_file_state *id, sd_err *err)
{
    if (!dir)
        return sd_errf(err, SD_EINVAL, "loras", "LoRA '%s' asked for, but no LoRA directory is set (--lora-dir)", name);
    size_t n = strlen(name);
    const char *ext = n > 12 && !strcmp(name + n - 12, ".safetensors") ? "" : ".safetensors";
    snprintf(path, size, "%s/%s%s", dir, name, ext);
    sd_file_state st;
    struct stat sb;
    if (!id) id = &st;
    sd_file_state_of(path, 0, id, &sb);
    if (id->err || !S_ISREG(sb.st_mode))
        return sd_errf(err, SD_EINVAL, "loras", "unknown LoRA '%s': no %s%s in %s", name, name, ext,
                       label ? label : "the LoRA directory");
    return 0;
}

/* Entry i is no longer what its file holds: freed, or, while the applied
 * set still uses it, kept aside (stale) until the next apply drops it. */
static void cache_retire(lora_engine *le, int i)
{
    if (le->cache[i].pinned) {
        le->cache[i].stale = 1;
        return;
    }
    lora_free(le->cache[i].l);
    le->cache[i] = le->cache[--le->ncache];
}

/* The entry of LoRA `name` as its file is now: a cached one if the file
 * has not changed since it was read (same device, inode, size, mtime and
 * ctime), else the file read again (a broken file is then refused, a
 * vanished one unknown). */
static cache_entry *cache_get(lora_engine *le, const char *name, sd_err *err)
{
    char path[LORA_PATH_MAX];
    sd_file_state now;
    int found = lora_file_of(le->dir, le->label, name, path, sizeof path, &now, err) ? -2 : -1;
    for (int i = 0; i < le->ncache; i++)
        if (!le->cache[i].stale && !strcmp(le->cache[i].name, name)) {
            if (found == -1 && sd_file_state_same(&le->cache[i].id, &now)) {
                le->cache[i].used = ++le->clock;
                return &le->cache[i];
            }
            cache_retire(le, i);
            break;
        }
    if (found == -2) return NULL;
    sd_lora *l = lora_load(path, name, le->nm, err);
    if (!l) return NULL;
    cache_make_room(le, lora_param_bytes(l));
    if (le->ncache >= CACHE_SLOTS) {
        lora_free(l);
        sd_errf(err, SD_ENOMEM, "loras", "LoRA cache full");
        return NULL;
    }
    cache_entry *c = &le->cache[le->ncache++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->l = l;
    c->used = ++le->clock;
    file_hash(path, c->hash);
    /* changed while it was read or hashed: kept for this use, read again at the next */
    sd_file_state after;
    sd_file_state_of(path, 0, &after, NULL);
    c->id = sd_file_state_same(&now, &after) ? now : SD_FILE_STATE_NONE;
    le->st.loads++;
    return c;
}

/* Every module's target has a handle in the model. */
static int check_handles(lora_engine *le, const sd_lora *l, sd_err *err)
{
    for (size_t i = 0; i < lora_module_count(l); i++) {
        const lora_module *m = lora_module_at(l, i);
        if (!le->fn(le->ud, m->target))
            return sd_errf(err, SD_EINVAL, "loras", "LoRA '%s': module '%s' patches %s, which this model does not "
                           "hold as a separate weight (e.g. a packed q/k/v)", lora_name(l), m->src, m->target);
    }
    return 0;
}

int lora_engine_check(lora_engine *le, const lora_request *r, sd_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&le->lock);
    for (int i = 0; i < r->n && !rc; i++) {
        cache_entry *c = cache_get(le, r->spec[i].name, err);
        rc = !c || check_handles(le, c->l, err) ? -1 : 0;
    }
    pthread_mutex_unlock(&le->lock);
    return rc;
}

/* ---- applying (le->lock held) ------------------------------------------- */

/* r with the files `use` holds now is the applied set: same names, weights and parsed files. */
static int same_set(const lora_engine *le, const lora_request *r, const lora_use *use)
{
    if (r->n != le->nset) return 0;
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->spec[i].name, le->set_name[i]) || memcmp(&r->spec[i].weight, &le->set_w[i], sizeof(float)) ||
            use[i].lora != le->use[i].lora)
            return 0;
    return 1;
}

/* The entry lookups find for name (not a stale one), or NULL. */
static cache_entry *fresh_entry(lora_engine *le, const char *name)
{
    for (int c = 0; c < le->ncache; c++)
        if (!le->cache[c].stale && !strcmp(le->cache[c].name, name)) return &le->cache[c];
    return NULL;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (ops_weight *const *)a, y = (uintptr_t) * (ops_weight *const *)b;
    return x < y ? -1 : x > y;
}

static void restore_all(lora_engine *le)
{
    for (size_t i = 0; i < le->npatched; i++) ops_weight_restore(le->patched[i]);
    le->npatched = 0;
    le->nset = 0;
}

/* The distinct targets of the stack and their handles, sorted by handle. */
typedef struct target {
    ops_weight *h;
    const char *name;
} target;

static int cmp_target(const void *a, const void *b) { return cmp_ptr(&((const target *)a)->h, &((const target *)b)->h); }

static target *collect_targets(lora_engine *le, const lora_use *use, int n, size_t *nt, sd_err *err)
{
    size_t cap = 0;
    for (int i = 0; i < n; i++) cap += lora_module_count(use[i].lora);
    target *t = sd_malloc((cap ? cap : 1) * sizeof *t);
    if (!t) { sd_errf(err, SD_ENOMEM, "loras", "out of memory"); return NULL; }
    size_t k = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < lora_module_count(use[i].lora); j++) {
            const lora_module *m = lora_module_at(use[i].lora, j);
            t[k].name = m->target;
            t[k].h = le->fn(le->ud, m->target);
            if (!t[k].h) { free(t); check_handles(le, use[i].lora, err); return NULL; }
            k++;
        }
    qsort(t, k, sizeof *t, cmp_target);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (!u || t[u - 1].h != t[i].h) t[u++] = t[i];
    *nt = u;
    return t;
}

/* ops_patch_fn: x (the original) becomes base + the applied stack. */
static int patch_one(void *ud, float *x, size_t n)
{
    target_patch *tp = ud;
    sdw_tensor base = tp->base;
    base.data = x;
    if ((size_t)sdw_numel(&base) != n || lora_merge(&base, tp->le->use, (size_t)tp->le->nuse, x, NULL) < 0) return -1;
    atomic_fetch_add(&tp->le->merges, 1);
    return 0;
}

/* Every target becomes base + stack, lazily: the merge runs when the ops
 * first need the weight, and only its layout copies are kept.  On failure
 * every weight is back to base. */
static int patch_targets(lora_engine *le, const target *t, size_t nt, const lora_use *use, int n, sd_err *err)
{
    restore_all(le);   /* nothing reads le->tp or le->use now */
    free(le->tp);
    le->tp = NULL;
    ops_weight **np = sd_realloc(le->patched, (nt ? nt : 1) * sizeof *np);
    if (np) le->patched = np;
    if (!np || !(le->tp = sd_calloc(nt ? nt : 1, sizeof *le->tp)))
        return sd_errf(err, SD_ENOMEM, "loras", "out of memory applying LoRAs");
    memcpy(le->use, use, (size_t)n * sizeof *use);
    le->nuse = n;
    for (size_t k = 0; k < nt; k++) {
        le->tp[k] = (target_patch){le, *sdw_get(le->w, t[k].name)};
        ops_weight_replace_lazy(t[k].h, patch_one, &le->tp[k]);
        le->patched[le->npatched++] = t[k].h;
    }
    return 0;
}

/* Pinned: the entries the applied stack uses (so they stay cached); a
 * stale one it no longer uses is dropped. */
static void set_pins(lora_engine *le)
{
    for (int c = 0; c < le->ncache; c++) {
        le->cache[c].pinned = 0;
        for (int i = 0; i < le->nset; i++)
            if (le->cache[c].l == le->use[i].lora) le->cache[c].pinned = 1;
    }
    for (int c = le->ncache - 1; c >= 0; c--)
        if (le->cache[c].stale && !le->cache[c].pinned) {
            lora_free(le->cache[c].l);
            le->cache[c] = le->cache[--le->ncache];
        }
}

static int apply_locked(lora_engine *le, const lora_request *r, sd_err *err)
{
    /* every file as it is now (a changed one read again), so the same
     * names and weights over a changed file are another set */
    lora_use use[SD_MAX_LORAS];
    for (int i = 0; i < r->n; i++) {
        cache_entry *c = cache_get(le, r->spec[i].name, err);
        if (!c) return -1;
        c->pinned = 1;   /* kept while the rest of the stack loads */
        use[i].weight = r->spec[i].weight;
    }
    for (int i = 0; i < r->n; i++) use[i].lora = fresh_entry(le, r->spec[i].name)->l;
    if (same_set(le, r, use)) return 0;
    size_t nt = 0;
    target *t = collect_targets(le, use, r->n, &nt, err);
    if (!t) return -1;
    int rc = patch_targets(le, t, nt, use, r->n, err);
    free(t);
    if (rc) return -1;
    for (int i = 0; i < r->n; i++) {
        memcpy(le->set_name[i], r->spec[i].name, SD_MAX_LORA_NAME);
        le->set_w[i] = r->spec[i].weight;
    }
    le->nset = r->n;
    le->st.applies++;
    return 0;
}

int lora_engine_apply(lora_engine *le, const lora_request *r, sd_err *err)
{
    double t0 = now_ms();
    pthread_mutex_lock(&le->lock);
    int rc = apply_locked(le, r, err);
    set_pins(le);   /* the applied set stays cached */
    le->st.patched = le->npatched;
    le->st.last_ms = now_ms() - t0;
    pthread_mutex_unlock(&le->lock);
    return rc;
}

void lora_engine_stats(lora_engine *le, lora_stats *st)
{
    pthread_mutex_lock(&le->lock);
    *st = le->st;
    st->merges = atomic_load(&le->merges);
    pthread_mutex_unlock(&le->lock);
}

/* The entry whose hash an image made with LoRA `name` names: the one the
 * applied set uses (its file may have changed since), else the cached one. */
static const cache_entry *hashed_entry(lora_engine *le, const char *name)
{
    for (int i = 0; i < le->nset; i++)
        if (!strcmp(le->set_name[i], name))
            for (int c = 0; c < le->ncache; c++)
                if (le->cache[c].l == le->use[i].lora) return &le->cache[c];
    return fresh_entry(le, name);
}

void lora_engine_hashes(lora_engine *le, const lora_request *r, char *out, size_t size)
{
    size_t k = 0;
    out[0] = 0;
    pthread_mutex_lock(&le->lock);
    for (int i = 0; i < r->n; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= !strcmp(r->spec[j].name, r->spec[i].name);
        const cache_entry *c = seen ? NULL : hashed_entry(le, r->spec[i].name);
        if (c && k < size) k += (size_t)snprintf(out + k, size - k, "%s%s: %s", k ? ", " : "", r->spec[i].name, c->hash);
    }
    pthread_mutex_unlock(&le->lock);
    if (k >= size) out[0] = 0;   /* cut short: rather none than a wrong list */
}

/* ---- listing ------------------------------------------------------------- */

static void list_one(lora_engine *le, const char *file, sd_lora_info *o)
{
    memset(o, 0, sizeof *o);
    size_t n = strlen(file) - 12;
    snprintf(o->name, sizeof o->name, "%.*s", (int)n, file);
    char path[LORA_PATH_MAX];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", le->dir, file);
    if (!stat(path, &sb)) o->size = sb.st_size;
    sd_err e;
    sd_err_clear(&e);
    pthread_mutex_lock(&le->lock);
    cache_entry *c = cache_get(le, o->name, &e);
    if (c && !check_handles(le, c->l, &e)) {
        o->modules = (int)lora_module_count(c->l);
        for (size_t i = 0; i < lora_module_count(c->l); i++)
            if (lora_module_at(c->l, i)->rank > o->rank) o->rank = lora_module_at(c->l, i)->rank;
        memcpy(o->hash, c->hash, sizeof o->hash);
    } else {
        snprintf(o->fits, sizeof o->fits, "%.159s", e.msg[0] ? e.msg : "does not load");
        file_hash(path, o->hash);
    }
    pthread_mutex_unlock(&le->lock);
}

/* A1111's order of a LoRA folder (modules/util.py natural_sort_key, v1.10.1:
 * file names compared as runs of digits, by value, and runs of other
 * characters, lower-cased), then byte order to break its ties. */
static int cmp_a1111(const void *pa, const void *pb)
{
    const char *a = *(char *const *)pa, *b = *(char *const *)pb;
    for (;;) {
        /* a run of non-digits (maybe empty) */
        for (; *a && !isdigit((unsigned char)*a) && *b && !isdigit((unsigned char)*b); a++, b++) {
            int ca = tolower((unsigned char)*a), cb = tolower((unsigned char)*b);
            if (ca != cb) return ca < cb ? -1 : 1;
        }
        int ea = !*a || isdigit((unsigned char)*a), eb = !*b || isdigit((unsigned char)*b);
        if (!ea || !eb) return ea ? -1 : 1;   /* one run is a prefix of the other: the shorter first */
        if (!*a || !*b) break;                /* both ended (or one has a number more: after) */
        /* a run of digits, by value: leading zeros off, then length, then digits */
        while (*a == '0' && isdigit((unsigned char)a[1])) a++;
        while (*b == '0' && isdigit((unsigned char)b[1])) b++;
        size_t la = 0, lb = 0;
        while (isdigit((unsigned char)a[la])) la++;
        while (isdigit((unsigned char)b[lb])) lb++;
        if (la != lb) return la < lb ? -1 : 1;
        int c = strncmp(a, b, la);
        if (c) return c;
        a += la;
        b += lb;
    }
    if (*a || *b) return *a ? 1 : -1;
    return strcmp(*(char *const *)pa, *(char *const *)pb);
}

static int keep_lora(const char *dir, const char *f, void *ud)
{
    size_t len = strlen(f);
    return len > 12 && !strcmp(f + len - 12, ".safetensors") && lora_name_ok(f, len - 12);
}

/* The folder's LoRA files in A1111's order (cmp_a1111), so every listing
 * has the same order whatever readdir's, and A1111's clients see theirs. */
int lora_engine_list(lora_engine *le, sd_lora_info *out, int max, sd_err *err)
{
    if (!le->dir) return 0;
    char **files;
    int n;
    if (sd_dir_names(le->dir, keep_lora, NULL, cmp_a1111, &files, &n))
        return errno == ENOMEM ? sd_errf(err, SD_ENOMEM, "loras", "out of memory listing the LoRA directory")
                               : sd_errf(err, SD_EIO, "loras", "cannot read the LoRA directory: %s", strerror(errno));
    for (int i = 0; i < n && i < max; i++) list_one(le, files[i], &out[i]);
    sd_dir_names_free(files, n);
    return n;
}
