/* lora.h — LoRA files read, named and merged: the engine's LoRA module up to
 * the weight seam (applying a merged tensor to a loaded model is the
 * caller's business; this module never touches a model).
 *
 * Three steps:
 *  1. lora_names: the list of weights a LoRA may patch, built once per model
 *     from its canonical names (loader/weights.h: "unet.<diffusers name>",
 *     "text_encoder.<HF CLIP name>"), each also under its kohya-flattened
 *     form ("lora_unet_down_blocks_0_..._to_q", '.' -> '_'), so a kohya
 *     module is resolved against what the model really has, never guessed.
 *  2. lora_load: one .safetensors LoRA (F16 / BF16 / F32) in kohya/sd-scripts
 *     naming (lora_unet_* / lora_te_*, .lora_down.weight, .lora_up.weight,
 *     .alpha; LoCon convs down [r,in,kh,kw] / up [out,r,1,1]) or
 *     diffusers/PEFT naming (unet.<module>.lora_A.weight = down,
 *     .lora_B.weight = up, lora_alpha and r in __metadata__), every module
 *     mapped to its target weight and checked (halves present, ranks and
 *     shapes agreeing with each other and with the target, alpha finite,
 *     values finite, sizes bounded).  Every refusal is an sd_err naming the
 *     field "loras", with the LoRA's name and the module in the message.
 *  3. lora_merge: W' = W + m·((up·(alpha/rank)) @ down) in fp32, convs
 *     flattened to [out, in·kh·kw], stacked LoRAs applied in order, computed
 *     from the original W into a caller buffer (the original is only read,
 *     so a replaced weight can be restored exactly).
 *
 * A LoRA holds its own fp32 copies of up/down and owns every string; it
 * stays valid after the names list and the model are gone. */
#ifndef SD_LORA_H
#define SD_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "../../base/err.h"
#include "../loader/weights.h"

/* Largest rank accepted (real LoRAs use 4..256). */
#define LORA_MAX_RANK 1024

/* --- 1. what a LoRA may patch --- */

/* One weight a LoRA may target: canonical name and shape (2-D linear
 * [out,in] or 4-D conv [out,in,kh,kw]). */
typedef struct lora_target {
    const char *name;
    int ndim;
    int64_t shape[SDW_MAXDIM];
} lora_target;

typedef struct lora_names lora_names;

/* From a plain list (names are copied).  Entries that are not 2-D/4-D
 * ".weight" tensors of the unet or text_encoder are skipped.  NULL + err
 * (SD_ENOMEM) on failure. */
lora_names *lora_names_new(const lora_target *t, size_t n, sd_err *err);
/* From every tensor of an opened checkpoint. */
lora_names *lora_names_from_weights(const sd_weights *w, sd_err *err);
void lora_names_free(lora_names *nm);
/* How many weights can be targeted. */
size_t lora_names_count(const lora_names *nm);

/* --- 2. one LoRA file --- */

typedef enum { LORA_KOHYA, LORA_PEFT } lora_naming;

typedef struct lora_module {
    char *src;          /* module as stored: "lora_unet_..." or "unet.<module>" */
    char *target;       /* canonical weight name it patches */
    int target_ndim;
    int64_t target_shape[SDW_MAXDIM];
    int rank;
    float alpha;        /* from .alpha / lora_alpha; = rank when the file has none */
    float scale;        /* alpha / rank */
    int64_t out;        /* target_shape[0] */
    int64_t in;         /* product of target_shape[1..]: in·kh·kw for a conv */
    float *up;          /* [out, rank] fp32 */
    float *down;        /* [rank, in] fp32 */
} lora_module;

typedef struct sd_lora sd_lora;

/* Read `path` as the LoRA called `name` (the name used in messages) for the
 * model described by `nm`.  NULL + err (field "loras": SD_EINVAL for a file
 * that cannot be used with this model, SD_ENOMEM, SD_EIO) on failure. */
sd_lora *lora_load(const char *path, const char *name, const lora_names *nm, sd_err *err);
void lora_free(sd_lora *l);

const char *lora_name(const sd_lora *l);
lora_naming lora_naming_of(const sd_lora *l);
size_t lora_module_count(const sd_lora *l);
/* Modules in target-name order; NULL past the end. */
const lora_module *lora_module_at(const sd_lora *l, size_t i);
/* The module patching canonical weight `target`, or NULL. */
const lora_module *lora_find(const sd_lora *l, const char *target);
/* Sizes for the caller's caps: bytes of the fp32 up/down copies held, and
 * bytes of fp32 tensors a merge of every module writes (the patched copies). */
size_t lora_param_bytes(const sd_lora *l);
size_t lora_delta_bytes(const sd_lora *l);

/* --- 3. merging --- */

/* One LoRA of a stack, with its multiplier m (<lora:name:m>). */
typedef struct lora_use {
    const sd_lora *lora;
    float weight;
} lora_use;

/* out = base->data with every LoRA of stack[0..n) that has a module for
 * base->name merged in, in stack order (each step rounded to fp32 as a
 * separate W + m·Δ).  out holds sdw_numel(base) floats; it may be
 * base->data's own storage only if that is writable.  Returns how many
 * LoRAs patched the tensor (0: out is an exact copy), or -1 + err (field
 * "loras") when a module's target shape differs from base's or a weight is
 * not finite. */
int lora_merge(const sdw_tensor *base, const lora_use *stack, size_t n, float *out, sd_err *err);

/* The single step: out[out,in] = w + m·((up·scale) @ down) for one module
 * (w may equal out).  Rows in parallel; each element's arithmetic is the
 * same whatever the thread count. */
void lora_merge_module(const lora_module *mod, float m, const float *w, float *out);

#endif
