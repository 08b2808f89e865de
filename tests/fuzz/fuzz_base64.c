/* fuzz_base64.c — libFuzzer target for the init_image base64 decoder
 * (src/image/base64.c): any text either decodes within the output limit or
 * is refused with an error; valid output re-encodes and decodes to itself.
 * fuzz-sources: src/image/base64.c src/base/err.c src/base/alloc.c
   (no libraries) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *out = NULL;
    size_t n = 0;
    sd_err err;
    sd_err_clear(&err);
    size_t limit = size > 0 ? (size_t)data[0] * 4 : 0;   /* small limits too */
    if (img_base64_decode((const char *)data, size, limit, NULL, &out, &n, &err) == 0) {
        if (n > limit) abort();
        size_t elen = 0;
        char *enc = img_base64_encode(out, n, &elen);
        if (enc) {
            uint8_t *back = NULL;
            size_t bn = 0;
            sd_err e2;
            sd_err_clear(&e2);
            if (img_base64_decode(enc, elen, n, NULL, &back, &bn, &e2) != 0 || bn != n || (n && memcmp(back, out, n)))
                abort();
            free(back);
            free(enc);
        }
        free(out);
    } else if (out || !err.code) {
        abort();
    }
    return 0;
}
