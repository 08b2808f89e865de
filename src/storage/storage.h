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
    /* key validated; ext canonical ("png", "jpg", "webp") or "" when not given */
    int (*url)(const storage *s, const char *key, const char *ext, char *out, size_t cap, sd_err *err);
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
/* Absolute URL a browser can open for object `name`: "<key>.<ext>" as put
 * (remote stores need the extension: it is part of the object's name), or
 * "<key>" alone for the local store.  SD_EINVAL for a bad name or a
 * too-small buffer. */
int storage_url(const storage *s, const char *name, char *out, size_t cap, sd_err *err);
/* Opens object `name` ("<key>" or "<key>.<ext>", from a request path) for
 * serving.  Names are validated strictly: exactly STORAGE_KEY_HEX lowercase
 * hex characters, optionally ".png" / ".jpg" / ".webp"; anything else
 * (paths, dots, percent signs, long names) is SD_ENOTFOUND without touching
 * the file system, as is a missing object.  SD_ENOTFOUND too when the
 * backend does not serve objects itself. */
int storage_get(const storage *s, const char *name, storage_object *out, sd_err *err);
/* The whole of object `name` read into a new buffer (*data, free() it;
 * *len bytes): storage_get's errors, SD_EIO when it cannot be read to its
 * end, SD_ENOMEM.  For a server that answers with the bytes themselves
 * (base64 in a JSON body) rather than a URL. */
int storage_read_all(const storage *s, const char *name, uint8_t **data, size_t *len, sd_err *err);
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

/* Retention of the local store (docs/STORAGE.md "Retention").  Only image
 * files ("<key>.<ext>") count and are ever removed; temp files and anything
 * else in the folder are left alone.  An image younger than min_age (from
 * its file's mtime: written, or put again with the same bytes) is pinned:
 * never removed by either rule, so an image a request has just stored
 * stays readable while its client fetches the URL. */
typedef struct storage_retention {
    double max_age;          /* seconds: older images are removed; 0 = no age limit */
    uint64_t max_bytes;      /* the images' sizes summed at most, oldest removed first; 0 = no cap */
    double min_age;          /* seconds: younger images are pinned (> 0) */
} storage_retention;

typedef struct storage_sweep_stats {
    int removed, kept, pinned;    /* pinned: kept only because younger than min_age */
    uint64_t removed_bytes, kept_bytes;
} storage_sweep_stats;

/* One pass at wall-clock time `now` (seconds since the epoch): the age rule,
 * then the size cap (oldest first).  SD_EINVAL for a store that is not
 * local; SD_EIO when the folder cannot be listed. */
int storage_local_sweep(storage *s, const storage_retention *r, double now, storage_sweep_stats *out, sd_err *err);
/* Starts housekeeping: a sweep at once, then every min(60, max(1, min_age / 2))
 * seconds, and sooner after a put that takes the store over its cap or a
 * put that fails (a full disk).  Each sweep that removes something, or
 * leaves the store over its cap, prints a line on stderr.  Stopped by
 * storage_close.  Call at most once per store. */
int storage_local_retain(storage *s, const storage_retention *r, sd_err *err);

/* ---- the S3 backend (s3.c) ------------------------------------------------ */

/* Any S3-compatible store (AWS S3, Tencent COS, MinIO, ...).  Objects are
 * "<prefix><key>.<ext>", uploaded with PUT signed by libcurl's AWS SigV4,
 * with their Content-Type and "Cache-Control: public, max-age=31536000,
 * immutable" (a name never changes content).  A put that fails on a
 * connection error or a 5xx answer is retried with exponential backoff
 * until `attempts` or `timeout` is used up; the final error (SD_EUPSTREAM)
 * says what happened without credentials.  URLs are public_url + "/" +
 * object when public_url is set, else a SigV4 pre-signed GET valid for
 * presign_expires seconds (computed here: libcurl cannot presign). */
typedef struct storage_s3_config {
    const char *endpoint;        /* "https://s3.us-east-1.amazonaws.com", "http://127.0.0.1:9000" */
    const char *region;          /* signing region: "us-east-1", "ap-guangzhou" */
    const char *bucket;
    int path_style;              /* 1: ENDPOINT/BUCKET/OBJECT; 0: SCHEME://BUCKET.HOST/OBJECT */
    const char *prefix;          /* NULL/"" or e.g. "sdserve/images/": [A-Za-z0-9._/-] */
    const char *access_key, *secret_key;
    const char *session_token;   /* NULL/"" unless temporary credentials */
    const char *public_url;      /* NULL/"": pre-signed URLs */
    int presign_expires;         /* seconds, 1..604800 */
    double timeout;              /* seconds for one put, all attempts included */
    int attempts;                /* tries at most per put (>= 1) */
} storage_s3_config;

storage *storage_s3_open(const storage_s3_config *c, sd_err *err);
/* The pre-signed GET URL of `object` (full object name, prefix included) as
 * of time `now`; storage_url uses time(NULL).  Exposed for tests. */
int storage_s3_presign(const storage *s, const char *object, long long now, char *out, size_t cap, sd_err *err);
/* SigV4 signing key: HMAC chain "AWS4"+secret -> date (YYYYMMDD) -> region -> service -> "aws4_request". */
void storage_s3_signing_key(const char *secret, const char *date8, const char *region, const char *service,
                            unsigned char out[32]);

#endif
