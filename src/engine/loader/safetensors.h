/* safetensors.h — internal to the loader: one .safetensors file, mapped
 * read-only, with its JSON header parsed and every entry validated.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {...}}, then the data section; offsets are relative to the
 * start of the data section.  st_open() checks everything a later read relies
 * on (header inside the file, known dtype, shape of at most 4 non-negative
 * dims, numel * element size == end - begin, 0 <= begin <= end <= data size),
 * so entry data can be read without further bounds checks. */
#ifndef SD_SAFETENSORS_H
#define SD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../../base/err.h"
#include "weights.h"

typedef enum { ST_F32, ST_F16, ST_BF16, ST_OTHER } st_dtype;

typedef struct st_entry {
    char *name;                 /* as stored */
    st_dtype dtype;
    char dtype_name[12];        /* as stored, e.g. "I64" */
    int ndim;
    int64_t shape[SDW_MAXDIM];
    int64_t numel;
    const unsigned char *data;  /* inside the map */
    size_t nbytes;
} st_entry;

typedef struct st_file {
    char *path;
    unsigned char *map;
    size_t size;
    st_entry *e;
    size_t n;
} st_file;

/* Map and validate PATH.  0 on success; -1 + err (SD_ENOTFOUND, SD_EIO, or
 * SD_EFORMAT naming the file and tensor) on failure, leaving *f closed. */
int st_open(st_file *f, const char *path, sd_err *err);
void st_close(st_file *f);

/* Widen n elements of a F16 / BF16 / F32 source (any alignment) to fp32. */
void st_to_f32(float *dst, const unsigned char *src, st_dtype dt, size_t n);

#endif
