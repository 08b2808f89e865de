/* apply.h — LoRA per request on a loaded model, through the weight seam
 * (ops.h: ops_weight_replace / ops_weight_restore): names resolved in a
 * LoRA directory, parsed files cached (bounded; an entry is used only while
 * its file's device, inode, size, mtime and ctime are those it was read
 * with, else the file is read again), the applied set remembered so the
 * same set again costs nothing (the same names and weights over a changed
 * file are another set), and weights no longer targeted restored exactly.
 * Used by pipeline.c only. */
#ifndef SD_LORA_APPLY_H
#define SD_LORA_APPLY_H

#include "../sd.h"
#include "lora.h"
#include "tags.h"
#include "../../base/filestate.h"

typedef struct lora_engine lora_engine;

/* The handle of canonical weight `name` in the loaded model, or NULL. */
typedef ops_weight *(*lora_handle_fn)(void *ud, const char *name);

/* Parsed files kept: at most this many, and at most this many bytes of
 * fp32 up/down copies (the least recently used, not applied, goes first). */
#define LORA_CACHE_FILES 8
#define LORA_CACHE_BYTES ((size_t)1 << 30)

/* dir may be NULL (every LoRA then refused naming "loras").  label is how
 * an unknown LoRA's refusal names dir (NULL: "the LoRA directory"; see
 * sd_load_opts.lora_dir_label).  w must outlive it.  NULL + err
 * (SD_ENOMEM) on failure. */
lora_engine *lora_engine_new(const sd_weights *w, const char *dir, const char *label, lora_handle_fn fn, void *ud,
                             sd_err *err);
/* Lower bounds for the cache (files at most LORA_CACHE_FILES): a checker
 * engine keeps few parsed files, as one API node has one per model. */
void lora_engine_limit_cache(lora_engine *le, int files, size_t bytes);
/* Frees the cache; the model's weights are left as they are. */
void lora_engine_free(lora_engine *le);

/* Room for a LoRA file's path (its folder, its name, ".safetensors"). */
#define LORA_PATH_MAX 4200
/* The file of LoRA `name` in dir into path (lora_engine_new's dir and
 * label; no engine needed), and what it looks like now into *id (NULL: not
 * wanted): 0 when it is a regular file, else -1 + err ("loras"). */
int lora_file_of(const char *dir, const char *label, const char *name, char *path, size_t size,
                 sd_file_state *id, sd_err *err);
/* Each LoRA of r resolves, loads (cached) and fits the model.  Any thread. */
int lora_engine_check(lora_engine *le, const lora_request *r, sd_err *err);
/* Makes the model's weights base + r's LoRAs (r->n == 0: base), lazily:
 * each patched weight is merged when the ops first need it, and only its
 * layout copies are kept (ops_weight_replace_lazy).  Not while the model
 * runs.  -1 + err: "loras" refusals (weights unchanged) or
 * SD_ENOMEM (weights back to the base model). */
int lora_engine_apply(lora_engine *le, const lora_request *r, sd_err *err);

typedef struct lora_stats {
    size_t merges;      /* tensors merged since load (when the ops first need each patched weight) */
    size_t applies;     /* applies that changed the weights */
    size_t loads;       /* files parsed */
    size_t patched;     /* weights replaced now */
    double last_ms;     /* wall time of the last apply call */
} lora_stats;
void lora_engine_stats(lora_engine *le, lora_stats *st);

/* sd_lora_hashes: "name: hash, ..." of r's LoRAs (each name once). */
void lora_engine_hashes(lora_engine *le, const lora_request *r, char *out, size_t size);
/* sd_list_loras: in A1111's order of the file names. */
int lora_engine_list(lora_engine *le, sd_lora_info *out, int max, sd_err *err);

#endif
