/* fuzz_safetensors.c — libFuzzer target for the safetensors header parser
 * (src/engine/loader/safetensors.c): the input is a whole file (8-byte
 * length, JSON header, data), handed to st_open() through a memfd; every
 * entry it accepts must lie inside the file and is read back in full.
 * fuzz-sources: src/engine/loader/safetensors.c src/base/err.c src/base/alloc.c
 * fuzz-libs: -ljansson */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_memfd.h"
#include "../../src/engine/loader/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfd(data, size, path);
    if (fd < 0) return 0;
    st_file f;
    sd_err err;
    sd_err_clear(&err);
    if (st_open(&f, path, &err) == 0) {
        for (size_t i = 0; i < f.n; i++) {
            const st_entry *e = &f.e[i];
            if (e->nbytes && (e->data < f.map || e->data + e->nbytes > f.map + f.size)) abort();
            if (e->dtype == ST_OTHER || e->numel > 1 << 16) continue;
            float *tmp = malloc((size_t)e->numel * sizeof *tmp + 1);
            if (tmp) st_to_f32(tmp, e->data, e->dtype, (size_t)e->numel);
            free(tmp);
        }
        st_close(&f);
    } else if (!err.code) {
        abort();
    }
    close(fd);
    return 0;
}
