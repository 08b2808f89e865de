/* lora_tags_check.h — the property fuzz_lora_tags.c fuzzes and
 * test_fuzz_regress.c replays (see fuzz_lora_tags.c): 0 when the parse of
 * input d[0..n) kept its promises, 1 when not. */
#ifndef SD_LORA_TAGS_CHECK_H
#define SD_LORA_TAGS_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/engine/lora/tags.h"

static inline int lora_tags_check(const uint8_t *d, size_t n)
{
    sd_lora_spec list[17];
    char names[17][2] = {{0}};
    int nl = n && d[0] < 17 ? d[0] : 0;
    size_t k = nl ? 1 : 0;
    for (int i = 0; i < nl; i++) {
        names[i][0] = k < n ? (char)d[k++] : 'a';
        list[i].name = names[i];
        list[i].weight = (float)(k < n ? d[k++] : 0) / 16.0f - 8.0f;
    }
    char *prompt = malloc(n - k + 1);
    if (!prompt) return 0;
    memcpy(prompt, d + k, n - k);
    prompt[n - k] = 0;
    sd_gen_params p = {.prompt = prompt, .loras = list, .n_loras = nl};
    lora_request r;
    sd_err err;
    sd_err_clear(&err);
    int bad = 0;
    if (lora_request_parse(&p, &r, &err) == 0) {
        bad = r.n > SD_MAX_LORAS || !r.prompt || strlen(r.prompt) > strlen(prompt);
        for (int i = 0; i < r.n && !bad; i++)
            bad = !lora_name_ok(r.spec[i].name, strlen(r.spec[i].name)) || !isfinite(r.spec[i].weight) ||
                  fabsf(r.spec[i].weight) > SD_MAX_LORA_WEIGHT;
    } else {
        bad = err.code != SD_EINVAL || (strcmp(err.field, "loras") && strcmp(err.field, "prompt")) || !err.msg[0] ||
              r.prompt != NULL;
    }
    lora_request_clear(&r);
    free(prompt);
    return bad;
}

#endif
