/* lora_check.h — inside src/engine/lora only: one module's tensors checked
 * against each other and against the weight they target, and turned into a
 * lora_module (lora_check.c); the error helper every refusal goes through. */
#ifndef SD_LORA_CHECK_H
#define SD_LORA_CHECK_H

#include "lora.h"
#include "../loader/safetensors.h"

typedef enum { LORA_DOWN, LORA_UP, LORA_ALPHA, LORA_NPARTS } lora_part;

/* What a PEFT file's __metadata__ says (kohya files: ignored). */
typedef struct lora_meta {
    int has_alpha, has_r, rank_pattern;
    double alpha;
    int r;
} lora_meta;

/* sd_errf(SD_EINVAL, "loras", "LoRA '<lora>': module '<module>': <fmt>")
 * (module may be NULL); returns -1. */
int lora_fail(sd_err *err, const char *lora, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

const char *lora_part_name(lora_part p);

/* -1 + err when `module` names the text encoders of another family than
 * nm's (SDXL's lora_te1_/lora_te2_/text_encoder_2. on a one-encoder model,
 * SD1/SD2's lora_te_ on SDXL): the file is for that family. */
int lora_check_family(const char *lora, const char *module, const lora_names *nm, sd_err *err);

/* Resolve `module` through nm, check part[] (down and up required, alpha
 * optional) and fill *m (fp32 copies, owned strings).  -1 + err with *m
 * left empty on failure. */
int lora_check_module(const char *lora, const char *module, const st_entry *const part[LORA_NPARTS],
                      const lora_names *nm, const lora_meta *meta, lora_module *m, sd_err *err);

/* Free what a filled module owns. */
void lora_module_clear(lora_module *m);

#endif
