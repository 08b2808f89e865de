/* st_write.h — the one safetensors writer: `sdserve make-model` and the
 * tests that build synthetic checkpoints write their files through it.
 *
 * A file is written in two steps: stw_begin() writes the 8-byte
 * little-endian header length and the JSON header for a list of tensors
 * (data offsets laid out in list order, the data section 8-aligned,
 * "__metadata__": {"format": "pt"}); the caller then writes each tensor's
 * bytes in that order to the returned FILE and closes it with stw_end().
 * stw_begin_raw() writes any header text under any length field, for the
 * loader's corrupt-file tests.  The reader is safetensors.h. */
#ifndef SD_ST_WRITE_H
#define SD_ST_WRITE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../../base/err.h"

typedef struct stw_tensor {
    const char *name;
    const char *dtype;   /* "F32", "F16", "BF16" or "I64" */
    int ndim;            /* 0..4 */
    int64_t shape[4];
} stw_tensor;

/* Bytes per element of a dtype above; 0 for any other. */
size_t stw_elem_size(const char *dtype);

/* Create `path` and write the header for t[0..n); NULL with err set (naming
 * the path) on failure. */
FILE *stw_begin(const char *path, const stw_tensor *t, size_t n, sd_err *err);

/* Create `path` and write `hlen` as the length field (UINT64_MAX: the
 * header's own length) followed by `header` verbatim, unpadded. */
FILE *stw_begin_raw(const char *path, const char *header, uint64_t hlen, sd_err *err);

/* Close f; -1 with err set if this or an earlier write to f failed. */
int stw_end(FILE *f, const char *path, sd_err *err);

/* A whole file of F32 tensors held in memory: data[i] has t[i]'s numel. */
int stw_write_f32(const char *path, const stw_tensor *t, const float *const *data, size_t n, sd_err *err);

#endif
