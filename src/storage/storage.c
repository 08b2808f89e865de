/* storage.c — the backend-independent half of storage.h: dispatch through the
 * vtable, content-derived keys, and strict object-name validation. */
#include "storage.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../base/sha256.h"

int storage_put(storage *s, const void *data, size_t len, const char *ext, char key[STORAGE_KEY_MAX], sd_err *err)
{
    key[0] = 0;
    if (!data || len == 0) return sd_errf(err, SD_EINVAL, "storage", "refusing to store an empty object");
    if (!storage_ext_canonical(ext))
        return sd_errf(err, SD_EINVAL, "storage", "unknown file extension '%s' (png, jpg or webp)", ext ? ext : "");
    return s->ops->put(s, data, len, ext, key, err);
}

int storage_url(const storage *s, const char *name, char *out, size_t cap, sd_err *err)
{
    if (cap) out[0] = 0;
    char k[STORAGE_KEY_MAX], ext[8];
    if (!name || !storage_parse_name(name, k, ext))
        return sd_errf(err, SD_EINVAL, "storage", "not a storage key: '%.40s'", name ? name : "");
    return s->ops->url(s, k, ext, out, cap, err);
}

int storage_get(const storage *s, const char *name, storage_object *out, sd_err *err)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (!s->ops->get) return sd_errf(err, SD_ENOTFOUND, "image", "images are not served by this server");
    return s->ops->get(s, name, out, err);
}

int storage_read_all(const storage *s, const char *name, uint8_t **data, size_t *len, sd_err *err)
{
    *data = NULL;
    *len = 0;
    storage_object o;
    if (storage_get(s, name, &o, err)) return -1;
    uint8_t *raw = malloc(o.size ? (size_t)o.size : 1);
    size_t got = 0;
    while (raw && got < o.size) {
        ssize_t n = pread(o.fd, raw + got, (size_t)o.size - got, (off_t)got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(o.fd);
    if (!raw) return sd_errf(err, SD_ENOMEM, "image", "out of memory reading %.60s", name);
    if (got != o.size) {
        free(raw);
        return sd_errf(err, SD_EIO, "image", "%.60s could not be read to its end (%zu of %llu bytes)", name, got,
                       (unsigned long long)o.size);
    }
    *data = raw;
    *len = got;
    return 0;
}

void storage_close(storage *s)
{
    if (s) s->ops->close(s);
}

const char *storage_backend_name(const storage *s) { return s->ops->name; }

void storage_key_for(const void *data, size_t len, char key[STORAGE_KEY_MAX])
{
    sd_sha256_hex(data, len, STORAGE_KEY_HEX / 2, key);
}

int storage_key_valid(const char *key)
{
    for (int i = 0; i < STORAGE_KEY_HEX; i++) {
        char c = key[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
    }
    return key[STORAGE_KEY_HEX] == 0;
}

static const struct { const char *ext, *alias, *type; } types[] = {
    {"png", "png", "image/png"},
    {"jpg", "jpeg", "image/jpeg"},
    {"webp", "webp", "image/webp"},
};

const char *storage_ext_canonical(const char *ext)
{
    if (!ext) return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(ext, types[i].ext) || !strcasecmp(ext, types[i].alias)) return types[i].ext;
    return NULL;
}

const char *storage_ext_content_type(const char *ext)
{
    if (!ext) return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(ext, types[i].ext)) return types[i].type;
    return NULL;
}

int storage_parse_name(const char *name, char key[STORAGE_KEY_MAX], char ext[8])
{
    if (!name) return 0;
    size_t n = strnlen(name, STORAGE_KEY_MAX + 1);
    if (n < STORAGE_KEY_HEX || n > STORAGE_KEY_HEX + 5) return 0;
    memcpy(key, name, STORAGE_KEY_HEX);
    key[STORAGE_KEY_HEX] = 0;
    if (!storage_key_valid(key)) return 0;
    ext[0] = 0;
    if (n == STORAGE_KEY_HEX) return 1;
    if (name[STORAGE_KEY_HEX] != '.') return 0;
    const char *e = name + STORAGE_KEY_HEX + 1;
    /* exact canonical spellings only: one name per object */
    if (!storage_ext_content_type(e)) return 0;
    strcpy(ext, e);
    return 1;
}
