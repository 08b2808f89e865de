/* safetensors.c — map a .safetensors file and validate its header (see
 * safetensors.h).  Nothing here trusts the file: the header length is checked
 * against the file size before the JSON is parsed, and every entry's dtype,
 * shape and offsets are checked before anyone reads its data. */
#include "safetensors.h"
#include "../../base/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef __F16C__
#include <immintrin.h>
#endif

/* Largest header we accept (the format's own limit is 100 MB). */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

static const struct { const char *name; st_dtype dt; int size; } st_dtypes[] = {
    {"F32", ST_F32, 4},   {"F16", ST_F16, 2},      {"BF16", ST_BF16, 2},   {"F64", ST_OTHER, 8},
    {"I64", ST_OTHER, 8}, {"I32", ST_OTHER, 4},    {"I16", ST_OTHER, 2},   {"I8", ST_OTHER, 1},
    {"U64", ST_OTHER, 8}, {"U32", ST_OTHER, 4},    {"U16", ST_OTHER, 2},   {"U8", ST_OTHER, 1},
    {"BOOL", ST_OTHER, 1}, {"F8_E4M3", ST_OTHER, 1}, {"F8_E5M2", ST_OTHER, 1},
};

void st_close(st_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free(f->e[i].name);
    free(f->e);
    if (f->map) munmap(f->map, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

static int bad(sd_err *err, const st_file *f, const char *tensor, const char *fmt, const char *detail)
{
    if (tensor)
        return sd_errf(err, SD_EFORMAT, tensor, "%s: tensor '%s': %s%s", f->path, tensor, fmt, detail ? detail : "");
    return sd_errf(err, SD_EFORMAT, NULL, "%s: %s%s", f->path, fmt, detail ? detail : "");
}

/* A non-negative JSON integer, or -1. */
static int64_t json_nonneg(const json_t *v)
{
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    return x < 0 ? -1 : (int64_t)x;
}

static int parse_entry(st_file *f, const char *key, json_t *val, size_t datasize,
                       const unsigned char *data, st_entry *out, sd_err *err)
{
    char buf[160];
    if (!json_is_object(val)) return bad(err, f, key, "header entry is not a JSON object", NULL);
    json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"),
           *jo = json_object_get(val, "data_offsets");
    if (!json_is_string(jd)) return bad(err, f, key, "missing or non-string \"dtype\"", NULL);
    if (!json_is_array(js)) return bad(err, f, key, "missing or non-array \"shape\"", NULL);
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return bad(err, f, key, "\"data_offsets\" must be an array [begin, end]", NULL);

    const char *dts = json_string_value(jd);
    int esize = 0;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (!strcmp(dts, st_dtypes[i].name)) {
            out->dtype = st_dtypes[i].dt;
            esize = st_dtypes[i].size;
            snprintf(out->dtype_name, sizeof out->dtype_name, "%s", st_dtypes[i].name);
        }
    if (!esize) {
        snprintf(buf, sizeof buf, "'%.40s'", dts);
        return bad(err, f, key, "unknown dtype ", buf);
    }

    size_t nd = json_array_size(js);
    if (nd > SDW_MAXDIM) {
        snprintf(buf, sizeof buf, "%zu dims (at most %d supported)", nd, SDW_MAXDIM);
        return bad(err, f, key, "shape has ", buf);
    }
    out->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        int64_t d = json_nonneg(json_array_get(js, i));
        if (d < 0) return bad(err, f, key, "shape entries must be non-negative integers", NULL);
        out->shape[i] = d;
        if (d && numel > (UINT64_MAX / 8) / (uint64_t)d)
            return bad(err, f, key, "shape is impossibly large", NULL);
        numel *= (uint64_t)d;
    }
    out->numel = (int64_t)numel;

    int64_t b = json_nonneg(json_array_get(jo, 0)), e = json_nonneg(json_array_get(jo, 1));
    if (b < 0 || e < 0) return bad(err, f, key, "data_offsets must be non-negative integers", NULL);
    if (e < b) {
        snprintf(buf, sizeof buf, "[%lld, %lld]", (long long)b, (long long)e);
        return bad(err, f, key, "data_offsets end before they begin: ", buf);
    }
    if ((uint64_t)e > datasize) {
        snprintf(buf, sizeof buf, "[%lld, %lld] but the data section has %zu bytes (truncated file?)",
                 (long long)b, (long long)e, datasize);
        return bad(err, f, key, "data_offsets ", buf);
    }
    if (numel * (uint64_t)esize != (uint64_t)(e - b)) {
        snprintf(buf, sizeof buf, "%llu elements of %s need %llu bytes, data_offsets give %lld",
                 (unsigned long long)numel, out->dtype_name, (unsigned long long)(numel * esize),
                 (long long)(e - b));
        return bad(err, f, key, "size mismatch: ", buf);
    }
    out->data = data + b;
    out->nbytes = (size_t)(e - b);
    return 0;
}

int st_open(st_file *f, const char *path, sd_err *err)
{
    memset(f, 0, sizeof *f);
    f->path = sd_strdup(path);
    if (!f->path) return sd_errf(err, SD_ENOMEM, NULL, "out of memory");

    /* O_NONBLOCK: a FIFO under the name would block the open until a writer
     * came (holding the LoRA cache's lock, a whole server); it opens at once
     * and is refused below as not a regular file */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int en = errno;
        sd_errf(err, en == ENOENT ? SD_ENOTFOUND : SD_EIO, NULL, "%s: cannot open: %s", path, strerror(en));
        st_close(f);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        sd_errf(err, SD_EIO, NULL, "%s: not a regular file", path);
        st_close(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        close(fd);
        sd_errf(err, SD_EFORMAT, NULL, "%s: %zu bytes is too short for a safetensors file (needs an 8-byte header length)",
                path, size);
        st_close(f);
        return -1;
    }
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int en = errno;
    close(fd);
    if (m == MAP_FAILED) {
        sd_errf(err, SD_EIO, NULL, "%s: mmap failed: %s", path, strerror(en));
        st_close(f);
        return -1;
    }
    f->map = m;
    f->size = size;

    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->map[i];
    if (hlen == 0 || hlen > size - 8 || hlen > ST_MAX_HEADER) {
        sd_errf(err, SD_EFORMAT, NULL,
                "%s: header length %llu does not fit the file (%zu bytes; not a safetensors file or truncated)",
                path, (unsigned long long)hlen, size);
        st_close(f);
        return -1;
    }
    json_error_t je;
    json_t *root = json_loadb((const char *)f->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        sd_errf(err, SD_EFORMAT, NULL, "%s: header is not valid JSON (%s at byte %d)", path, je.text, je.position);
        st_close(f);
        return -1;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        sd_errf(err, SD_EFORMAT, NULL, "%s: header is not a JSON object", path);
        st_close(f);
        return -1;
    }
    const unsigned char *data = f->map + 8 + hlen;
    size_t datasize = size - 8 - (size_t)hlen;
    size_t cap = json_object_size(root);
    f->e = sd_calloc(cap ? cap : 1, sizeof *f->e);
    if (!f->e) {
        json_decref(root);
        sd_errf(err, SD_ENOMEM, NULL, "out of memory");
        st_close(f);
        return -1;
    }
    const char *key;
    json_t *val;
    int rc = 0;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) rc = bad(err, f, NULL, "\"__metadata__\" is not an object", NULL);
            if (rc) break;
            continue;
        }
        st_entry *e = &f->e[f->n];
        if (parse_entry(f, key, val, datasize, data, e, err)) { rc = -1; break; }
        e->name = sd_strdup(key);
        if (!e->name) { rc = sd_errf(err, SD_ENOMEM, NULL, "out of memory"); break; }
        f->n++;
    }
    json_decref(root);
    if (rc) st_close(f);
    return rc;
}

static float half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0) {
        if (m == 0) {
            u = s;
        } else { /* subnormal: renormalise */
            int sh = 0;
            while (!(m & 0x400)) { m <<= 1; sh++; }
            m &= 0x3ff;
            u = s | ((uint32_t)(113 - sh) << 23) | (m << 13);
        }
    } else if (e == 31) {
        u = s | 0x7f800000u | (m << 13);
    } else {
        u = s | ((e + 112) << 23) | (m << 13);
    }
    float x;
    memcpy(&x, &u, 4);
    return x;
}

void st_to_f32(float *dst, const unsigned char *src, st_dtype dt, size_t n)
{
    if (dt == ST_F32) {
        memcpy(dst, src, n * 4);
    } else if (dt == ST_BF16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t b;
            memcpy(&b, src + 2 * i, 2);
            uint32_t u = (uint32_t)b << 16;
            memcpy(dst + i, &u, 4);
        }
    } else if (dt == ST_F16) {
        size_t i = 0;
#ifdef __F16C__
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * i))));
#endif
        for (; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = half_to_float(h);
        }
    }
}
