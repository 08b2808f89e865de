/* storage.h — where generated images are kept and how clients reach them.
 *
 * A small interface (a vtable) with one backend per file: local.c keeps
 * files in a folder that the server itself serves; an S3-compatible backend
 * can be added beside it without touching callers.  Objects are named by
 * content: the key is the first 32 hex characters of the SHA-256 of the
 * bytes ("a61b5473ac46fa684b6a5f2369e8dfc0"), so names are hexadecimal,
 * unguessable without the image, and a repeated put is harmless.
 *
 * All functions report failure through sd_err.  A storage may be used from
 * several threads at once (the worker puts, HTTP threads get). */
#ifndef SD_STORAGE_H
#define SD_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../base/err.h"

#define STORAGE_KEY_HEX 32    /* characters in a key */
#define STORAGE_KEY_MAX 48    /* buffer size for a key or "key.ext" + NUL */

typedef struct storage storage;

/* An object opened for serving: hand fd to the HTTP layer (it closes it). */
typedef struct storage_object {
    int fd;                     /* read-only, O_CLOEXEC; -1 when not open */
    uint64_t size;
    const char *content_type;   /* static string, e.g. "image/png" */
    char ext[8];                /* "png", "jpg", "webp" */
} storage_object;

typedef struct storage_ops {
    const char *name;   /* "local", "s3", ... */
    int (*put)(storage *s, const void *data, size_t len, const char *ext, char key[STORAGE_KEY_MAX], sd_err *err);
    int (*url)(const storage *s, const char *key, char *out, size_t cap, sd_err *err);
    /* NULL when objects are not served by this process (remote stores). */
    int (*get)(const storage *s, const char *name, storage_object *out, sd_err *err);
    void (*close)(storage *s);
} storage_ops;

/* Every backend's struct starts with this. */
struct storage {
    const storage_ops *ops;
};

/* Stores `len` bytes durably; `ext` ("png", "jpg"/"jpeg", "webp") gives the
 * content type.  Fills key (STORAGE_KEY_HEX hex chars).  Only after 0 is the
 * object complete and visible; on failure nothing is left behind.
 * Errors: SD_EINVAL (unknown ext, empty data), SD_EIO (local disk),
 * SD_EUPSTREAM (remote store). */
int storage_put(storage *s, const void *data, size_t len, const char *ext, char key[STORAGE_KEY_MAX], sd_err *err);
/* Absolute URL a browser can open for `key`.  SD_EINVAL for a bad key or a
 * too-small buffer. */
int storage_url(const storage *s, const char *key, char *out, size_t cap, sd_err *err);
/* Opens object `name` ("<key>" or "<key>.<ext>", from a request path) for
 * serving.  Names are validated strictly: exactly STORAGE_KEY_HEX lowercase
 * hex characters, optionally ".png" / ".jpg" / ".webp"; anything else
 * (paths, dots, percent signs, long names) is SD_ENOTFOUND without touching
 * the file system, as is a missing object.  SD_ENOTFOUND too when the
 * backend does not serve objects itself. */
int storage_get(const storage *s, const char *name, storage_object *out, sd_err *err);
void storage_close(storage *s);   /* NULL-safe */
const char *storage_backend_name(const storage *s);

/* ---- helpers shared by backends ----------------------------------------- */

/* key = first STORAGE_KEY_HEX hex chars of SHA-256(data). */
void storage_key_for(const void *data, size_t len, char key[STORAGE_KEY_MAX]);
/* 1 if `key` is exactly STORAGE_KEY_HEX lowercase hex characters. */
int storage_key_valid(const char *key);
/* Canonical extension ("png", "jpg", "webp") for "png"/"jpg"/"jpeg"/"webp"
 * in any case, or NULL. */
const char *storage_ext_canonical(const char *ext);
/* "image/png" etc. for a canonical extension, or NULL. */
const char *storage_ext_content_type(const char *ext);
/* Splits "<key>[.<ext>]" strictly (see storage_get); returns 1 if valid and
 * fills key (and ext: canonical, or "" when absent). */
int storage_parse_name(const char *name, char key[STORAGE_KEY_MAX], char ext[8]);

/* ---- the local backend (local.c) ---------------------------------------- */

/* Files under `dir` (created if missing, with parents), written atomically
 * (temp file in the same folder, fsync, rename, fsync of the folder) and
 * named "<key>.<ext>".  URLs are `url_prefix` + "/" + key, where url_prefix
 * is absolute, e.g. "http://127.0.0.1:8080/images" (trailing '/' ignored);
 * the server maps GET <prefix>/<name> to storage_get(name).  Leftover temp
 * files older than an hour (a crash mid-write) are removed on open. */
storage *storage_local_open(const char *dir, const char *url_prefix, sd_err *err);

#endif
