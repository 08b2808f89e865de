/* lora_int.h — shared inside src/engine/lora only: the name lookup that
 * lora.c resolves a file's modules with (lora_names.c). */
#ifndef SD_LORA_INT_H
#define SD_LORA_INT_H

#include "lora.h"

/* The target a LoRA module name (kohya "lora_unet_..." or PEFT
 * "unet.<module>") stands for, or NULL.  *ambiguous = 1 when two weights of
 * the model share that kohya name. */
const lora_target *lora_names_find(const lora_names *nm, const char *module, int *ambiguous);

#endif
