/* lora_int.h — shared inside src/engine/lora only: the name lookup that
 * lora.c resolves a file's modules with (lora_names.c), and the UNet's LDM
 * module names it lists besides the diffusers ones (lora_ldm.c). */
#ifndef SD_LORA_INT_H
#define SD_LORA_INT_H

#include "lora.h"

/* The target a LoRA module name (kohya "lora_unet_..." or PEFT
 * "unet.<module>") stands for, or NULL.  *ambiguous = 1 when two weights of
 * the model share that kohya name. */
const lora_target *lora_names_find(const lora_names *nm, const char *module, int *ambiguous);

/* The model has a second text encoder (text_encoder_2.*: SDXL), so its
 * LoRAs name te1/te2 (lora_te1_/lora_te2_), not SD1/SD2's lora_te_. */
int lora_names_two_te(const lora_names *nm);

/* ---- the UNet's LDM names (kohya SDXL: lora_unet_input_blocks_4_1_...) ---- */

#define LORA_LDM_LEVELS 16

typedef struct lora_ldm_level {
    short resnets;      /* resnets.J seen: max J + 1 */
    char attn, sampler; /* attentions.* / down- or upsamplers.* seen */
} lora_ldm_level;

/* The UNet's block layout, learnt from its diffusers names. */
typedef struct lora_ldm {
    lora_ldm_level down[LORA_LDM_LEVELS], up[LORA_LDM_LEVELS];
    int n_down, n_up;
} lora_ldm;

/* Record one canonical UNet name past "unet." (start from a zeroed lora_ldm). */
void lora_ldm_scan(lora_ldm *m, const char *unet_name);
/* The LDM spelling of diffusers module `module` (past "unet.", without
 * ".weight") into out: 1, or 0 when it has none (or out is too small). */
int lora_ldm_name(const lora_ldm *m, const char *module, char *out, size_t size);

#endif
