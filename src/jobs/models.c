/* models.c — the model registry (models.h): entries by name, engines
 * loaded on the worker thread, least recently used ones unloaded over
 * max_loaded; each entry's failures (its header, its checker) kept for its
 * file as it was, and read again once the file changes.
 *
 * One mutex guards every entry's state; loading and unloading (slow) run
 * outside it.  An entry being loaded is marked `loading` (another acquirer
 * waits); an engine being unloaded is first detached (engine = NULL, so no
 * new pin or acquire finds it), then freed once its pins are given back. */
#include "models.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/alloc.h"
#include "../base/dirnames.h"
#include "../base/filestate.h"


typedef struct model_slot {
    char name[128];
    char path[1024];
    sd_model_probe probe;
    int probed;                  /* probe filled */
    int probe_tried;             /* the header was read (models_add with probe, models_probe): read again
                                    when the file changes */
    sd_file_state probed_at;     /* the file as the probe read it */
    char probe_err[256];         /* the header could not be read / the family is not run: refused */
    char check_err[256];         /* the checker could not open it as it was at check_at: refused, and not
                                    tried again until the file changes */
    sd_errcode check_code;
    sd_file_state check_at;
    char load_err[256];          /* the last load failed (tried again at the next request) */
    sd_engine *engine;
    sd_engine *checker;          /* opened for validation only (models_check_engine), or NULL */
    int loading;                 /* a thread is loading it */
    int running;                 /* acquired by a job */
    int pins;                    /* borrowed by HTTP threads (models_pin) */
    uint64_t last_use;           /* the registry's clock at its last acquire */
} model_slot;

struct models {
    models_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* pins given back, a load finished */
    model_slot **v;              /* entries; never moved or removed */
    int n, cap;
    int def;                     /* the default entry, -1 = none yet */
    uint64_t clock;
};

static sd_engine *default_load(void *ud, const char *path, sd_err *err)
{
    sd_load_opts o = *(const sd_load_opts *)ud;
    o.model_path = path;
    return sd_engine_load(&o, err);
}

/* The engine's memory back to the OS at once: its many mid-sized
 * buffers (weight copies) live in malloc arenas, partly another thread's
 * (the default model loads on the start-up thread), which the next
 * model's allocations on the worker would not reuse; without the trim an
 * unloaded model's pages stay resident beside the next one's
 * (bench/README.md "Model switching"). */
static void default_unload(void *ud, sd_engine *e)
{
    sd_engine_free(e);
    malloc_trim(0);
}

/* The checker of the checkpoint at path: sd_engine_open_checker with the
 * registry's load options (ud). */
static sd_engine *default_open_check(void *ud, const char *path, sd_err *err)
{
    sd_load_opts o = *(const sd_load_opts *)ud;
    o.model_path = path;
    return sd_engine_open_checker(&o, err);
}

static void default_close_check(void *ud, sd_engine *e) { sd_engine_free(e); }

/* The ud the checker functions take: the load options for the default
 * ones, else the registry's ud. */
static void *check_ud(const models *m)
{
    return m->cfg.open_check == default_open_check ? (void *)m->cfg.load_opts : m->cfg.ud;
}

models *models_new(const models_config *cfg, sd_err *err)
{
    models *m = sd_calloc(1, sizeof *m);
    if (!m) return sd_errf(err, SD_ENOMEM, "model", "out of memory"), NULL;
    m->cfg = *cfg;
    if (m->cfg.max_loaded < 1) m->cfg.max_loaded = 1;
    if (!m->cfg.load) {
        m->cfg.load = default_load;
        m->cfg.ud = (void *)cfg->load_opts;
    }
    if (!m->cfg.unload) m->cfg.unload = default_unload;
    if (!m->cfg.open_check && cfg->load_opts) m->cfg.open_check = default_open_check;
    if (!m->cfg.close_check) m->cfg.close_check = default_close_check;
    m->def = -1;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    return m;
}

void models_free(models *m)
{
    if (!m) return;
    for (int i = 0; i < m->n; i++) {
        if (m->v[i]->engine) m->cfg.unload(m->cfg.ud, m->v[i]->engine);
        if (m->v[i]->checker) m->cfg.close_check(check_ud(m), m->v[i]->checker);
        free(m->v[i]);
    }
    free(m->v);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
}

static int find_locked(const models *m, const char *name)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->v[i]->name, name)) return i;
    return -1;
}

int models_find(const models *m, const char *name)
{
    models *mm = (models *)m;
    pthread_mutex_lock(&mm->mu);
    int i = name ? find_locked(m, name) : -1;
    pthread_mutex_unlock(&mm->mu);
    return i;
}

int models_find_path(const models *m, const char *path)
{
    models *mm = (models *)m;
    char want[4096], have[4096];
    if (!realpath(path, want)) snprintf(want, sizeof want, "%s", path);
    pthread_mutex_lock(&mm->mu);
    int found = -1;
    for (int i = 0; i < m->n && found < 0; i++) {
        if (!realpath(m->v[i]->path, have)) snprintf(have, sizeof have, "%s", m->v[i]->path);
        if (!strcmp(want, have)) found = i;
    }
    pthread_mutex_unlock(&mm->mu);
    return found;
}

/* An entry's file, or a diffusers folder and what it holds two levels down. */
static void file_state_of(const char *path, sd_file_state *fs) { sd_file_state_of(path, 2, fs, NULL); }


/* ---- probes ------------------------------------------------------------------ */

/* Entry i's probe result (rc 0, or the error in e) for its file as it was
 * (at) before the probe read it. */
static void set_probe(models *m, int i, int rc, const sd_model_probe *p, const sd_err *e, const sd_file_state *at)
{
    pthread_mutex_lock(&m->mu);
    model_slot *s = m->v[i];
    if (s->probe_tried && (s->engine || s->loading)) {
        /* a re-read (models_refresh) that a load overtook: the resident
         * engine's file is what the entry describes, whatever the file is now */
        pthread_mutex_unlock(&m->mu);
        return;
    }
    s->probe = *p;
    s->probed = !rc;
    s->probe_tried = 1;
    s->probed_at = *at;
    s->probe_err[0] = 0;
    if (rc) snprintf(s->probe_err, sizeof s->probe_err, "%.255s", e->msg);
    else if (!p->supported)
        snprintf(s->probe_err, sizeof s->probe_err, "a %s checkpoint, which this version does not run", p->family);
    pthread_mutex_unlock(&m->mu);
}

void models_probe(models *m, int i)
{
    pthread_mutex_lock(&m->mu);
    char path[sizeof m->v[0]->path];
    int ok = i >= 0 && i < m->n;
    if (ok) snprintf(path, sizeof path, "%s", m->v[i]->path);
    pthread_mutex_unlock(&m->mu);
    if (!ok) return;
    sd_model_probe p;
    sd_err e;
    sd_err_clear(&e);
    sd_file_state at;
    file_state_of(path, &at);
    int rc = sd_probe_model(path, &p, &e);
    set_probe(m, i, rc, &p, &e, &at);
}

int models_add(models *m, const char *name, const char *path, int probe, sd_err *err)
{
    model_slot *s = sd_calloc(1, sizeof *s);
    if (!s) return sd_errf(err, SD_ENOMEM, "model", "out of memory");
    if (strlen(name) >= sizeof s->name || strlen(path) >= sizeof s->path || !*name) {
        free(s);
        return sd_errf(err, SD_EINVAL, "model", "model name '%.60s' or path too long (or empty)", name);
    }
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->path, sizeof s->path, "%s", path);
    pthread_mutex_lock(&m->mu);
    int rc = find_locked(m, name) >= 0 ? -2 : 0;
    if (!rc && m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 8;
        model_slot **v = sd_realloc(m->v, (size_t)cap * sizeof *v);
        if (v) m->v = v, m->cap = cap;
        else rc = -1;
    }
    int i = m->n;
    if (!rc) m->v[m->n++] = s;
    pthread_mutex_unlock(&m->mu);
    if (rc) {
        free(s);
        return rc == -2 ? sd_errf(err, SD_EINVAL, "model", "two models are named '%s' (%s)", name, path)
                        : sd_errf(err, SD_ENOMEM, "model", "out of memory");
    }
    if (probe) models_probe(m, i);
    return i;
}

int models_add_path(models *m, const char *path, sd_err *err)
{
    sd_model_probe p;
    sd_err e;
    sd_err_clear(&e);
    sd_file_state at;
    file_state_of(path, &at);
    int rc = sd_probe_model(path, &p, &e);   /* names it even when the header cannot be read */
    int i = models_add(m, p.name, path, 0, err);
    if (i >= 0) set_probe(m, i, rc, &p, &e, &at);
    return i;
}

/* 1 when dir/name is a checkpoint the loader takes (see models_scan_dir),
 * with *stem_len the length of its name. */
static int is_checkpoint(const char *dir, const char *name, size_t *stem_len)
{
    char p[4096];
    struct stat sb;
    size_t l = strlen(name);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (name[0] == '.') return 0;
    if (stat(p, &sb)) {
        /* a .safetensors link to a file not there (yet: a mount not up): listed, refused with the reason
         * until it is there (models_refresh) */
        *stem_len = l - 12;
        return l > 12 && !strcmp(name + l - 12, ".safetensors") && !lstat(p, &sb) && S_ISLNK(sb.st_mode);
    }
    *stem_len = l;
    if (S_ISREG(sb.st_mode)) {
        *stem_len = l - 12;
        return l > 12 && !strcmp(name + l - 12, ".safetensors");
    }
    if (!S_ISDIR(sb.st_mode)) return 0;
    snprintf(p, sizeof p, "%s/%s/model_index.json", dir, name);
    if (!stat(p, &sb) && S_ISREG(sb.st_mode)) return 1;
    snprintf(p, sizeof p, "%s/%s/model.safetensors", dir, name);
    return !stat(p, &sb) && S_ISREG(sb.st_mode);
}

static int keep_checkpoint(const char *dir, const char *name, void *ud)
{
    size_t stem;
    return is_checkpoint(dir, name, &stem);
}

int models_scan_dir(models *m, const char *dir, sd_err *err)
{
    char **names;
    int n, added = 0, rc = 0;
    if (sd_dir_names(dir, keep_checkpoint, NULL, NULL, &names, &n))
        return errno == ENOMEM ? sd_errf(err, SD_ENOMEM, "model-dir", "out of memory")
                               : sd_errf(err, SD_ENOTFOUND, "model-dir", "cannot read the model folder %s (--model-dir): %s",
                                             dir, strerror(errno));
    for (int i = 0; i < n && !rc; i++) {
        char path[4096], name[256];
        size_t stem;
        is_checkpoint(dir, names[i], &stem);
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(name, sizeof name, "%.*s", (int)stem, names[i]);
        if (models_find(m, name) >= 0) {
            fprintf(stderr, "sdserve: model %s: the name '%s' is taken; skipped\n", path, name);
            continue;
        }
        if (models_add(m, name, path, 1, err) < 0) rc = -1;
        else added++;
    }
    sd_dir_names_free(names, n);
    if (rc && !err->code) sd_errf(err, SD_ENOMEM, "model-dir", "out of memory");
    return rc ? -1 : added;
}

void models_set_default(models *m, int i)
{
    pthread_mutex_lock(&m->mu);
    if (i >= 0 && i < m->n) m->def = i;
    pthread_mutex_unlock(&m->mu);
}

int models_default(const models *m)
{
    models *mm = (models *)m;
    pthread_mutex_lock(&mm->mu);
    int d = m->def;
    pthread_mutex_unlock(&mm->mu);
    return d;
}

int models_count(const models *m)
{
    models *mm = (models *)m;
    pthread_mutex_lock(&mm->mu);
    int n = m->n;
    pthread_mutex_unlock(&mm->mu);
    return n;
}

int models_max_loaded(const models *m) { return m->cfg.max_loaded; }

int models_get(models *m, int i, models_entry *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&m->mu);
    int ok = i >= 0 && i < m->n;
    if (ok) {
        const model_slot *s = m->v[i];
        snprintf(out->name, sizeof out->name, "%s", s->name);
        snprintf(out->path, sizeof out->path, "%s", s->path);
        if (s->probed) {
            snprintf(out->family, sizeof out->family, "%s", s->probe.family);
            snprintf(out->hash, sizeof out->hash, "%s", s->probe.hash);
            out->size = s->probe.size;
            out->native_size = s->probe.native_size;
        }
        out->loaded = s->engine != NULL;
        out->is_default = i == m->def;
        snprintf(out->error, sizeof out->error, "%s",
                 s->probe_err[0] ? s->probe_err : s->check_err[0] ? s->check_err : s->load_err);
        out->refused = s->probe_err[0] || s->check_err[0];
    }
    pthread_mutex_unlock(&m->mu);
    return ok ? 0 : -1;
}

/* The entry `name` names (NULL/"" = the default), or -1 + err listing the names. */
static int lookup_locked(models *m, const char *name, sd_err *err)
{
    int i = name && *name ? find_locked(m, name) : m->def;
    if (i >= 0) return i;
    if (!(name && *name)) return sd_errf(err, SD_EINVAL, "model", "no default model"), -1;
    char list[400] = "";
    size_t o = 0;
    for (int k = 0; k < m->n && o < sizeof list - 1; k++) {
        int w = snprintf(list + o, sizeof list - o, "%s%s", k ? ", " : "", m->v[k]->name);
        o = w < 0 ? sizeof list : o + (size_t)w;
    }
    if (o >= sizeof list - 1) snprintf(list + sizeof list - 5, 5, "...");
    sd_errf(err, SD_EINVAL, "model", "unknown model '%.100s'; the server has: %s (GET /models)", name, list);
    return -1;
}

void models_refresh(models *m, int i)
{
    pthread_mutex_lock(&m->mu);
    model_slot *s = i >= 0 && i < m->n ? m->v[i] : NULL;
    if (!s || s->engine || s->loading) {   /* resident: served from memory, whatever its file does */
        pthread_mutex_unlock(&m->mu);
        return;
    }
    char path[sizeof s->path];
    snprintf(path, sizeof path, "%s", s->path);
    pthread_mutex_unlock(&m->mu);
    sd_file_state now;
    file_state_of(path, &now);
    pthread_mutex_lock(&m->mu);
    if (s->check_err[0] && !sd_file_state_same(&now, &s->check_at)) s->check_err[0] = 0;   /* the next check tries */
    int again = s->probe_tried && !sd_file_state_same(&now, &s->probed_at);
    pthread_mutex_unlock(&m->mu);
    if (again) {
        sd_model_probe p;
        sd_err e;
        sd_err_clear(&e);
        int rc = sd_probe_model(path, &p, &e);
        set_probe(m, i, rc, &p, &e, &now);
    }
}

int models_resolve(models *m, const char *name, int *native_size, sd_err *err)
{
    pthread_mutex_lock(&m->mu);
    int i = lookup_locked(m, name, err);
    pthread_mutex_unlock(&m->mu);
    if (i >= 0) models_refresh(m, i);   /* a file changed, vanished or mended since it was read */
    pthread_mutex_lock(&m->mu);
    const char *why = i < 0 ? NULL : m->v[i]->probe_err[0] ? m->v[i]->probe_err : m->v[i]->check_err;
    if (why && why[0]) {
        sd_errf(err, SD_EINVAL, "model", "model '%s' cannot be used: %s", m->v[i]->name, why);
        i = -1;
    }
    if (i >= 0 && native_size) *native_size = m->v[i]->probed ? m->v[i]->probe.native_size : 0;
    pthread_mutex_unlock(&m->mu);
    return i;
}

sd_engine *models_pin(models *m, int i)
{
    pthread_mutex_lock(&m->mu);
    sd_engine *e = i >= 0 && i < m->n ? m->v[i]->engine : NULL;
    if (e) m->v[i]->pins++;
    pthread_mutex_unlock(&m->mu);
    return e;
}

void models_unpin(models *m, int i)
{
    pthread_mutex_lock(&m->mu);
    if (i >= 0 && i < m->n && m->v[i]->pins > 0 && !--m->v[i]->pins) pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

sd_engine *models_check_engine(models *m, int i, int *pinned, sd_err *err)
{
    *pinned = 0;
    pthread_mutex_lock(&m->mu);
    model_slot *s = i >= 0 && i < m->n ? m->v[i] : NULL;
    sd_engine *e = s ? s->engine : NULL;
    if (e) {
        s->pins++;
        *pinned = 1;
    } else if (s && !s->checker && m->cfg.open_check) {
        sd_file_state now;
        file_state_of(s->path, &now);
        if (s->check_err[0] && sd_file_state_same(&now, &s->check_at)) {
            /* failed on the file as it still is: said again, not tried again */
            sd_errf(err, s->check_code, "model", "%s", s->check_err);
        } else {
            /* headers only: bounded (no tensor data), so under the lock */
            s->check_err[0] = 0;
            s->checker = m->cfg.open_check(check_ud(m), s->path, err);
            if (!s->checker) snprintf(err->field, sizeof err->field, "model");
            /* kept against the model file's state: what its own content
             * or absence says (SD_EFORMAT; SD_ENOTFOUND with the file gone),
             * which only a change of the file can mend; not a failure the
             * file's state does not cover (EMFILE, mmap's ENOMEM: SD_EIO; a
             * --vocab, tokenizer, --vae or embeddings folder not there),
             * which the next request tries again */
            if (!s->checker && (err->code == SD_EFORMAT || (err->code == SD_ENOTFOUND && now.err))) {
                snprintf(s->check_err, sizeof s->check_err, "%.255s", err->msg[0] ? err->msg : "cannot be opened");
                s->check_code = err->code ? err->code : SD_EFORMAT;
                s->check_at = now;
            }
        }
    }
    if (!e && s) e = s->checker;
    pthread_mutex_unlock(&m->mu);
    return e;
}

/* The least recently used resident entry no job runs on, other than keep; -1 if none. */
static int lru_victim_locked(const models *m, int keep)
{
    int best = -1;
    for (int i = 0; i < m->n; i++) {
        const model_slot *s = m->v[i];
        if (i == keep || !s->engine || s->running) continue;
        if (best < 0 || s->last_use < m->v[best]->last_use) best = i;
    }
    return best;
}

static int resident_locked(const models *m)
{
    int k = 0;
    for (int i = 0; i < m->n; i++) k += m->v[i]->engine != NULL || m->v[i]->loading;
    return k;
}

/* Unloads LRU idle entries until one more fits under max_loaded (mu held;
 * dropped while freeing). */
static void make_room_locked(models *m, int keep)
{
    while (resident_locked(m) >= m->cfg.max_loaded) {
        int v = lru_victim_locked(m, keep);
        if (v < 0) return;   /* every resident one is running: go over the limit rather than wait */
        model_slot *s = m->v[v];
        sd_engine *e = s->engine;
        s->engine = NULL;    /* no new pin finds it */
        while (s->pins) pthread_cond_wait(&m->cv, &m->mu);
        pthread_mutex_unlock(&m->mu);
        fprintf(stderr, "sdserve: unloading model %s (least recently used; --max-loaded %d)\n", s->name,
                m->cfg.max_loaded);
        m->cfg.unload(m->cfg.ud, e);
        pthread_mutex_lock(&m->mu);
    }
}

sd_engine *models_acquire(models *m, const char *name, int *index, sd_err *err)
{
    pthread_mutex_lock(&m->mu);
    int i = lookup_locked(m, name, err);
    model_slot *s = i >= 0 ? m->v[i] : NULL;
    while (s && s->loading) pthread_cond_wait(&m->cv, &m->mu);
    if (s && !s->engine) {
        make_room_locked(m, i);
        s->loading = 1;
        char path[sizeof s->path];
        snprintf(path, sizeof path, "%s", s->path);
        pthread_mutex_unlock(&m->mu);
        fprintf(stderr, "sdserve: loading model %s (%s)\n", s->name, path);
        sd_engine *e = m->cfg.load(m->cfg.ud, path, err);
        pthread_mutex_lock(&m->mu);
        s->loading = 0;
        s->engine = e;
        s->load_err[0] = 0;
        if (!e) snprintf(s->load_err, sizeof s->load_err, "%.255s", err->msg);
        pthread_cond_broadcast(&m->cv);
        if (!e) {
            snprintf(err->field, sizeof err->field, "model");   /* the message names the file: "loading model ..." */
            s = NULL;
        }
    }
    sd_engine *e = s ? s->engine : NULL;
    if (s) {
        s->running++;
        s->last_use = ++m->clock;
        if (index) *index = i;
    }
    pthread_mutex_unlock(&m->mu);
    return e;
}

void models_release(models *m, int i)
{
    pthread_mutex_lock(&m->mu);
    if (i >= 0 && i < m->n && m->v[i]->running > 0) m->v[i]->running--;
    pthread_mutex_unlock(&m->mu);
}
