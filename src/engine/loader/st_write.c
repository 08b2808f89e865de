/* st_write.c — writes safetensors files (see st_write.h): the header built
 * with jansson in list order, padded with spaces so the data section starts
 * 8-aligned, as the reader and PyTorch's safetensors expect. */
#include "st_write.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

size_t stw_elem_size(const char *dtype)
{
    static const struct { const char *name; size_t size; } sizes[] = {
        {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (dtype && !strcmp(dtype, sizes[i].name)) return sizes[i].size;
    return 0;
}

static int64_t numel(const stw_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

/* The JSON header text for t[0..n), or NULL (err set). */
static char *header_text(const stw_tensor *t, size_t n, sd_err *err)
{
    json_t *h = json_object();
    uint64_t off = 0;
    for (size_t i = 0; h && i < n; i++) {
        size_t es = stw_elem_size(t[i].dtype);
        if (!es || t[i].ndim < 0 || t[i].ndim > 4) {
            json_decref(h);
            sd_errf(err, SD_EINVAL, t[i].name, "tensor '%s': dtype %s, %d dims", t[i].name,
                    t[i].dtype ? t[i].dtype : "(none)", t[i].ndim);
            return NULL;
        }
        json_t *shape = json_array();
        for (int d = 0; d < t[i].ndim; d++) json_array_append_new(shape, json_integer(t[i].shape[d]));
        uint64_t nb = (uint64_t)numel(&t[i]) * es;
        json_object_set_new(h, t[i].name,
                            json_pack("{s:s, s:o, s:[I,I]}", "dtype", t[i].dtype, "shape", shape, "data_offsets",
                                      (json_int_t)off, (json_int_t)(off + nb)));
        off += nb;
    }
    if (h) json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
    char *s = h ? json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(h);
    if (!s) sd_errf(err, SD_ENOMEM, NULL, "out of memory");
    return s;
}

static FILE *create(const char *path, sd_err *err)
{
    FILE *f = fopen(path, "wb");
    if (!f) sd_errf(err, SD_EIO, NULL, "%s: cannot write: %s", path, strerror(errno));
    return f;
}

static int put_len(FILE *f, uint64_t n)
{
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(n >> (8 * i));
    return fwrite(len, 1, 8, f) == 8 ? 0 : -1;
}

FILE *stw_begin(const char *path, const stw_tensor *t, size_t n, sd_err *err)
{
    char *hs = header_text(t, n, err);
    if (!hs) return NULL;
    FILE *f = create(path, err);
    size_t hl = strlen(hs), padded = (hl + 7) / 8 * 8; /* 8 + padded: data 8-aligned */
    int ok = f && put_len(f, padded) == 0 && fwrite(hs, 1, hl, f) == hl;
    for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    free(hs);
    if (f && !ok) {
        stw_end(f, path, err);
        return NULL;
    }
    return f;
}

FILE *stw_begin_raw(const char *path, const char *header, uint64_t hlen, sd_err *err)
{
    FILE *f = create(path, err);
    size_t hl = strlen(header);
    if (f && (put_len(f, hlen == UINT64_MAX ? hl : hlen) != 0 || fwrite(header, 1, hl, f) != hl)) {
        stw_end(f, path, err);
        return NULL;
    }
    return f;
}

int stw_end(FILE *f, const char *path, sd_err *err)
{
    int bad = ferror(f);
    int en = errno;
    if (fclose(f) != 0) {
        bad = 1;
        en = errno;
    }
    if (bad) return sd_errf(err, SD_EIO, NULL, "%s: writing failed: %s", path, strerror(en));
    return 0;
}

int stw_write_f32(const char *path, const stw_tensor *t, const float *const *data, size_t n, sd_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (!t[i].dtype || strcmp(t[i].dtype, "F32"))
            return sd_errf(err, SD_EINVAL, t[i].name, "tensor '%s': dtype %s, want F32", t[i].name,
                           t[i].dtype ? t[i].dtype : "(none)");
    FILE *f = stw_begin(path, t, n, err);
    if (!f) return -1;
    for (size_t i = 0; i < n; i++) fwrite(data[i], 4, (size_t)numel(&t[i]), f);
    return stw_end(f, path, err);
}
