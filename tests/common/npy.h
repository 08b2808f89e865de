/* npy.h — read/write NumPy .npy files (format 1.0, little-endian, C order)
 * for the parity tests and tools.  float32 and int64 only; int64 data is
 * also returned converted to float in `f` for convenience. */
#ifndef SD_NPY_H
#define SD_NPY_H

#include <stddef.h>
#include <stdint.h>

typedef struct npy {
    int ndim;
    int64_t shape[8];
    size_t n;          /* element count */
    int is_int;        /* dtype <i8 */
    float *f;          /* data as float (always set) */
    int64_t *i;        /* data as int64 when is_int, else NULL */
} npy;

/* 0 on success; on failure -1 and a message on stderr. */
int npy_load(const char *path, npy *out);
void npy_free(npy *a);
int npy_save_f32(const char *path, const float *data, int ndim, const int64_t *shape);

/* max |a-b| over n; max |a| over n. */
double npy_maxdiff(const float *a, const float *b, size_t n);
double npy_maxabs(const float *a, size_t n);

#endif
