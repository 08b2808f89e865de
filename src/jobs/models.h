/* models.h — the server's model registry: several checkpoints by name
 * (--model-dir, --model), at most max_loaded of them resident.
 *
 * Each entry is {name, path, what its header says (sd_probe_model: family,
 * short hash, size), its engine or NULL, its last use}.  The job runner
 * acquires the request's model on the worker thread (models_acquire): a
 * model not resident is loaded there, after the least recently used idle
 * ones are unloaded to stay within max_loaded; a model a job is running on
 * is never unloaded.  HTTP threads never load weights: they resolve a
 * request's name (models_resolve: unknown or unusable names are refused
 * with the list of names) and check it on the resident engine, borrowed
 * (models_pin / models_unpin, which delays an unload of that engine until
 * they give it back), or on the entry's checker, which reads no weights
 * (models_check_engine).  Entries are added before serving starts and never
 * removed, so their strings stay valid for the registry's lifetime.  The
 * load and unload functions are parameters, so tests run the registry on
 * fakes (tests/unit/test_models.c). */
#ifndef SD_JOBS_MODELS_H
#define SD_JOBS_MODELS_H

#include <stdint.h>

#include "../base/err.h"
#include "../engine/sd.h"

typedef struct models models;

/* Loads the checkpoint at path (the worker thread; slow); NULL + err. */
typedef sd_engine *(*models_load_fn)(void *ud, const char *path, sd_err *err);
typedef void (*models_unload_fn)(void *ud, sd_engine *e);

typedef struct models_config {
    int max_loaded;              /* engines resident at most (>= 1) */
    models_load_fn load;         /* NULL = sd_engine_load with load_opts (model_path replaced) */
    models_unload_fn unload;     /* NULL = sd_engine_free */
    void *ud;
    const sd_load_opts *load_opts;   /* for the default loader: kept, not copied */
    /* the checkers (models_check_engine): NULL = sd_engine_open_checker with
     * load_opts (no checkers when load_opts is NULL too); freed with
     * close_check (NULL = sd_engine_free) */
    models_load_fn open_check;
    models_unload_fn close_check;
} models_config;

models *models_new(const models_config *cfg, sd_err *err);
/* Unloads every engine (none may be acquired or pinned) and frees. */
void models_free(models *m);

/* One entry, as listings show it (a copy). */
typedef struct models_entry {
    char name[128];
    char path[1024];
    char family[32];             /* "" until probed */
    char hash[16];               /* "" until probed */
    int64_t size;                /* bytes; 0 until probed */
    int native_size;
    int loaded;                  /* an engine is resident */
    int is_default;
    char error[256];             /* why it cannot be used ("" = usable): unreadable header, not a whole
                                    checkpoint, a family this build does not run, its checker failing to
                                    open it, or its last load failing */
    int refused;                 /* 1: error is one of the first four: models_resolve refuses every
                                    request naming it while its file stays as it is; 0: usable, or only
                                    its last load failed */
} models_entry;

/* Adds path under name (unique: SD_EINVAL naming "model" otherwise); probe
 * = 1 reads its header now (sd_probe_model; a failure is kept in the
 * entry's error, not returned).  Returns the entry's index or -1. */
int models_add(models *m, const char *name, const char *path, int probe, sd_err *err);
/* Adds the checkpoint at path under the name its header probe gives
 * (sd_model_probe.name: the base name without .safetensors). */
int models_add_path(models *m, const char *path, sd_err *err);
/* (Re)reads entry i's header: what models_add(.., probe = 1) does. */
void models_probe(models *m, int i);
/* Entry i's file looked at again (stat; a folder's files two levels
 * down), unless the entry is resident (served from memory) or loading:
 * when it is no longer as its header was read (replaced, removed,
 * unreadable, mended), the header is read again (if it was read before);
 * a checker failure is forgotten once the file is no longer as it was
 * then.  models_resolve does this; listings call it before models_get. */
void models_refresh(models *m, int i);
/* Every checkpoint in dir: *.safetensors files (name = the stem; also a
 * symbolic link to one not there yet, refused until it is) and
 * subfolders the loader takes (a diffusers folder with model_index.json,
 * or one holding model.safetensors; name = the folder's), sorted by name.
 * Names already present are skipped (with a line on stderr).  The count
 * added, or -1 + err when dir cannot be read. */
int models_scan_dir(models *m, const char *dir, sd_err *err);
/* The entry whose name is name, or whose path is path; -1 if none. */
int models_find(const models *m, const char *name);
int models_find_path(const models *m, const char *path);
void models_set_default(models *m, int i);
int models_default(const models *m);
int models_count(const models *m);
int models_max_loaded(const models *m);
/* Copy of entry i; -1 past the end. */
int models_get(models *m, int i, models_entry *out);

/* The entry a request's model field names (NULL or "" = the default), for
 * the pre-queue check on HTTP threads, after models_refresh: its index,
 * with *native_size its family's native side; -1 + SD_EINVAL naming
 * "model" when no entry has that name (the message lists the names) or
 * the entry cannot be used: its header, or its checker, failed on the
 * file as it is (the message says why).  Loads nothing. */
int models_resolve(models *m, const char *name, int *native_size, sd_err *err);

/* Borrows entry i's engine if it is resident (any thread): NULL when it is
 * not.  The engine stays loaded until models_unpin. */
sd_engine *models_pin(models *m, int i);
void models_unpin(models *m, int i);

/* The engine the pre-queue check of entry i runs on (any thread): the
 * resident one, pinned (*pinned = 1: give it back with models_unpin), else
 * the entry's checker (*pinned = 0), an engine opened for validation only
 * (sd_engine_open_checker: headers, tokenizer, embeddings, LoRA names, no
 * weights; 0.06-0.3 s and under 10 MiB for an SD 1.5 file), opened on the
 * entry's first check under the registry's lock and kept until models_free.
 * NULL + err (naming "model", the opener's code and message) when the
 * checker cannot be opened; that failure is kept with the file's state
 * (stat) and said again without opening anything until the file changes,
 * and the entry is refused meanwhile (models_resolve, models_entry.refused);
 * out of memory is not kept.  NULL with err untouched when the registry has
 * no way to open one (a fake loader without load_opts). */
sd_engine *models_check_engine(models *m, int i, int *pinned, sd_err *err);

/* The worker thread: entry `name` (NULL/"" = the default) resident and
 * marked running, loading it (and unloading the least recently used idle
 * ones first) when needed; *index = its entry.  NULL + err naming "model"
 * when the name is unknown or the load fails (the entry keeps the error;
 * the next request for it tries again).  models_release ends the use. */
sd_engine *models_acquire(models *m, const char *name, int *index, sd_err *err);
void models_release(models *m, int i);

#endif
