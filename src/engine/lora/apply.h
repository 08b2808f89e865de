/* apply.h — LoRA per request on a loaded model, through the weight seam
 * (ops.h: ops_weight_replace / ops_weight_restore): names resolved in a
 * LoRA directory, parsed files cached (bounded), the applied set
 * remembered so the same set again costs nothing, and weights no longer
 * targeted restored exactly.  The prompt's <lora:name:w> tags are read
 * here too (lora_tags_*).  Used by pipeline.c only. */
#ifndef SD_LORA_APPLY_H
#define SD_LORA_APPLY_H

#include "../sd.h"
#include "lora.h"

typedef struct lora_engine lora_engine;

/* The handle of canonical weight `name` in the loaded model, or NULL. */
typedef ops_weight *(*lora_handle_fn)(void *ud, const char *name);

/* Parsed files kept: at most this many, and at most this many bytes of
 * fp32 up/down copies (the least recently used, not applied, goes first). */
#define LORA_CACHE_FILES 8
#define LORA_CACHE_BYTES ((size_t)1 << 30)

/* dir may be NULL (every LoRA then refused naming "loras").  w must
 * outlive it.  NULL + err (SD_ENOMEM) on failure. */
lora_engine *lora_engine_new(const sd_weights *w, const char *dir, lora_handle_fn fn, void *ud, sd_err *err);
/* Frees the cache; the model's weights are left as they are. */
void lora_engine_free(lora_engine *le);

/* The request's LoRAs: p->loras then the tags of p->prompt.  *prompt_out
 * is the prompt without its tags (malloc'd; free it), specs[] point into
 * p and into names[] (SD_MAX_LORA_NAME bytes each).  -1 + err (field
 * "loras" or "prompt") when malformed or too many. */
typedef struct lora_request {
    sd_lora_spec spec[SD_MAX_LORAS];
    char names[SD_MAX_LORAS][SD_MAX_LORA_NAME];
    int n;
    char *prompt;
} lora_request;
int lora_request_parse(const sd_gen_params *p, lora_request *r, sd_err *err);
void lora_request_clear(lora_request *r);

/* Each LoRA of r resolves, loads (cached) and fits the model.  Any thread. */
int lora_engine_check(lora_engine *le, const lora_request *r, sd_err *err);
/* Makes the model's weights base + r's LoRAs (r->n == 0: base).  Not while
 * the model runs.  -1 + err: "loras" refusals (weights unchanged) or
 * SD_ENOMEM (weights back to the base model). */
int lora_engine_apply(lora_engine *le, const lora_request *r, sd_err *err);

typedef struct lora_stats {
    size_t merges;      /* tensors merged since load */
    size_t applies;     /* applies that changed the weights */
    size_t loads;       /* files parsed */
    size_t patched;     /* weights replaced now */
    double last_ms;     /* wall time of the last apply call */
} lora_stats;
void lora_engine_stats(lora_engine *le, lora_stats *st);

/* The A1111 short hash of name's file ("" if not cached). */
void lora_engine_hash(lora_engine *le, const char *name, char out[16]);
/* sd_list_loras. */
int lora_engine_list(lora_engine *le, sd_lora_info *out, int max, sd_err *err);

#endif
