/* fuzz_pyfloat.c — libFuzzer target for Python's float() grammar
 * (src/base/pyfloat.c: LoRA weights in prompt tags and the loras field):
 * any bytes are accepted with a value or refused, reading no further than
 * the input.  Checked on an accepted text: blanks around it change nothing
 * (ASCII and U+3000), a letter x after it is refused, and a finite value
 * printed with %.17g reads back to the same bits.
 * fuzz-sources: src/base/pyfloat.c
   (no libraries) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/base/pyfloat.h"

static int same(double a, double b) { return (isnan(a) && isnan(b)) || !memcmp(&a, &b, sizeof a); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    double v = 12345, w;
    char *in = malloc(size ? size : 1);   /* exactly size bytes: ASan sees a read past them */
    if (!in) abort();
    memcpy(in, data, size);
    int rc = sd_pyfloat(in, size, &v);
    if (rc != 0 && rc != -1) abort();
    if (rc) {
        if (v != 12345) abort();   /* untouched */
        free(in);
        return 0;
    }
    char buf[SD_PYFLOAT_MAX + 16];
    if (size + 7 <= SD_PYFLOAT_MAX) {
        memcpy(buf, " \t", 2);
        memcpy(buf + 2, in, size);
        memcpy(buf + 2 + size, "\xe3\x80\x80\n", 4);   /* U+3000 then a newline */
        if (sd_pyfloat(buf, size + 6, &w) || !same(v, w)) abort();
    }
    if (size + 1 <= SD_PYFLOAT_MAX) {
        memcpy(buf, in, size);
        buf[size] = 'x';
        if (!sd_pyfloat(buf, size + 1, &w)) abort();
    }
    if (isfinite(v)) {
        int n = snprintf(buf, sizeof buf, "%.17g", v);
        if (sd_pyfloat(buf, (size_t)n, &w) || !same(v, w)) abort();
    }
    free(in);
    return 0;
}
