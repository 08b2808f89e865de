/* fuzz_lora_tags.c — libFuzzer target for the LoRA tags of a prompt and
 * the request's loras list (src/engine/lora/tags.c): the input is the
 * prompt; the first byte, when it is below 17, also gives that many list
 * entries named by the following bytes (one name each, weights from the
 * byte's value).  Accepted: at most SD_MAX_LORAS LoRAs, each a valid name
 * with a finite weight in range, and a prompt no longer than the input.
 * Refused: an error naming "loras" or "prompt".
 * fuzz-sources: src/engine/lora/tags.c src/base/err.c src/base/pyfloat.c src/base/alloc.c
 * fuzz-libs: -lm */
#include <stdlib.h>

#include "lora_tags_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (lora_tags_check(data, size)) abort();
    return 0;
}
