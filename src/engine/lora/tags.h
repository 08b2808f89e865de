/* tags.h — the LoRAs one request asks for: sd_gen_params.loras, then the
 * <lora:name:weight> tags of its prompt (A1111's extra-network syntax;
 * <lora:name> = weight 1), which are removed from the text the model
 * encodes.  No model needed: the engine (apply.h) resolves the names.
 * Fuzzed by tests/fuzz/fuzz_lora_tags.c. */
#ifndef SD_LORA_TAGS_H
#define SD_LORA_TAGS_H

#include <stddef.h>

#include "../sd.h"

/* specs[] point into names[]; prompt is the prompt without its tags
 * (malloc'd; lora_request_clear frees it). */
typedef struct lora_request {
    sd_lora_spec spec[SD_MAX_LORAS];
    char names[SD_MAX_LORAS][SD_MAX_LORA_NAME];
    int n;
    char *prompt;
} lora_request;

/* -1 + err (field "loras": too many, a bad name or weight; "prompt": a
 * malformed tag) on failure, with r cleared. */
int lora_request_parse(const sd_gen_params *p, lora_request *r, sd_err *err);
void lora_request_clear(lora_request *r);

/* 1 when s[0..n) is a LoRA name: 1..SD_MAX_LORA_NAME-1 letters, digits,
 * ' ', '_', '-', '.', '+', not starting with '.' (so never a path). */
int lora_name_ok(const char *s, size_t n);

#endif
