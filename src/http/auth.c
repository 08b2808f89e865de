/* auth.c — API keys: loading, and the constant-time Bearer check (auth.h). */
#include "auth.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "../base/sha256.h"
#include "../image/image.h"

struct auth_keys {
    unsigned char (*dig)[32];
    int n, cap;
};

static int is_sep(int c) { return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Adds one key s[0..len) after checking it; `where` names its origin in errors. */
static int add_key(auth_keys *k, const char *s, size_t len, const char *field, const char *where, sd_err *err)
{
    if (len < AUTH_MIN_KEY || len > AUTH_MAX_KEY)
        return sd_errf(err, SD_EINVAL, field, "%s: an API key has %zu characters; keys need %d to %d", where, len,
                       AUTH_MIN_KEY, AUTH_MAX_KEY);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return sd_errf(err, SD_EINVAL, field, "%s: an API key holds a byte 0x%02x at offset %zu; use printable ASCII",
                           where, (unsigned char)s[i], i);
    if (k->n >= AUTH_MAX_KEYS) return sd_errf(err, SD_EINVAL, field, "%s: more than %d API keys", where, AUTH_MAX_KEYS);
    if (k->n == k->cap) {
        int nc = k->cap ? k->cap * 2 : 8;
        void *nd = realloc(k->dig, (size_t)nc * sizeof *k->dig);
        if (!nd) return sd_errf(err, SD_ENOMEM, field, "out of memory");
        k->dig = nd;
        k->cap = nc;
    }
    sd_sha256(s, len, k->dig[k->n++]);
    return 0;
}

static int add_list(auth_keys *k, const char *s, const char *field, const char *where, sd_err *err)
{
    while (*s) {
        while (*s && is_sep((unsigned char)*s)) s++;
        const char *b = s;
        while (*s && !is_sep((unsigned char)*s)) s++;
        if (s > b && add_key(k, b, (size_t)(s - b), field, where, err)) return -1;
    }
    return 0;
}

static int add_file(auth_keys *k, const char *path, sd_err *err)
{
    struct stat st;
    /* a folder opens for reading on Linux and fails at the first read
     * (EISDIR): said here, with what to give instead */
    if (!stat(path, &st) && S_ISDIR(st.st_mode))
        return sd_errf(err, SD_EINVAL, "api-keys-file", "--api-keys-file %s is a folder; give the file of API keys "
                       "(one key a line)", path);
    FILE *f = fopen(path, "r");
    if (!f)
        return sd_errf(err, errno == ENOENT ? SD_ENOTFOUND : SD_EIO, "api-keys-file",
                       "cannot read the API key file %s (--api-keys-file): %s", path, strerror(errno));
    char line[1024];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            rc = sd_errf(err, SD_EINVAL, "api-keys-file", "%s line %d is too long for an API key", path, lineno);
            break;
        }
        while (n && is_sep((unsigned char)line[n - 1])) line[--n] = 0;
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (!*s || *s == '#') continue;
        char where[600];
        snprintf(where, sizeof where, "--api-keys-file %.480s line %d", path, lineno);
        rc = add_key(k, s, strlen(s), "api-keys-file", where, err);
    }
    if (!rc && ferror(f))
        rc = sd_errf(err, SD_EIO, "api-keys-file", "cannot read the API key file %s (--api-keys-file): %s", path,
                     strerror(errno));
    fclose(f);
    return rc;
}

auth_keys *auth_keys_load(const char *list, const char *path, sd_err *err)
{
    auth_keys *k = calloc(1, sizeof *k);
    if (!k) return sd_errf(err, SD_ENOMEM, "api-keys", "out of memory"), NULL;
    if ((list && add_list(k, list, "api-keys", "--api-keys", err)) || (path && *path && add_file(k, path, err))) {
        auth_keys_free(k);
        return NULL;
    }
    /* A list or a file that was given but holds no key (an empty or
     * comments-only file, ",,,") would leave the server open while its
     * operator thinks it is closed: refused, not read as "auth off". */
    int file = path && *path;
    if (!k->n && ((list && *list) || file)) {
        auth_keys_free(k);
        if (file)
            return sd_errf(err, SD_EINVAL, "api-keys-file", "--api-keys-file %s holds no API key (only blank lines "
                           "and '#' comments): put one key a line, or unset --api-keys-file to run without keys",
                           path), NULL;
        return sd_errf(err, SD_EINVAL, "api-keys", "--api-keys holds no API key (only separators): give keys "
                       "separated by ',', or unset it to run without keys"), NULL;
    }
    return k;
}

void auth_keys_free(auth_keys *k)
{
    if (!k) return;
    if (k->dig) memset(k->dig, 0, (size_t)k->cap * sizeof *k->dig);
    free(k->dig);
    free(k);
}

int auth_keys_count(const auth_keys *k) { return k ? k->n : 0; }

/* The scheme's credentials: header after "Bearer " / "Basic " (case-insensitive
 * scheme, blanks trimmed), with its length; NULL when it is neither or empty. */
static const char *credentials(const char *header, const char *scheme, size_t *len)
{
    size_t n = strlen(scheme);
    if (strncasecmp(header, scheme, n) || (header[n] != ' ' && header[n] != '\t')) return NULL;
    const char *t = header + n;
    while (*t == ' ' || *t == '\t') t++;
    *len = strlen(t);
    while (*len && (t[*len - 1] == ' ' || t[*len - 1] == '\t')) (*len)--;
    return *len ? t : NULL;
}

/* HTTP Basic (AUTOMATIC1111 clients send their --api-auth "user:password"
 * so): base64 of "user:password", the password being the key, the user
 * ignored.  The key's digest into d; -1 when it is not such a value. */
static int basic_key_digest(const char *t, size_t len, unsigned char d[32])
{
    if (len > 4 * AUTH_MAX_KEY) return -1;
    uint8_t *raw = NULL;
    size_t n = 0;
    sd_err e;
    sd_err_clear(&e);
    if (img_base64_decode(t, len, 2 * AUTH_MAX_KEY, "Authorization", &raw, &n, &e)) return -1;
    uint8_t *colon = memchr(raw, ':', n);
    int rc = -1;
    if (colon && colon + 1 < raw + n) {
        sd_sha256(colon + 1, (size_t)(raw + n - colon - 1), d);
        rc = 0;
    }
    memset(raw, 0, n);
    free(raw);
    return rc;
}

int auth_check(const auth_keys *k, const char *header, int *key_index)
{
    *key_index = -1;
    if (!header) return AUTH_MISSING;
    while (*header == ' ' || *header == '\t') header++;
    size_t len;
    const char *t;
    unsigned char d[32];
    if ((t = credentials(header, "Bearer", &len))) {
        sd_sha256(t, len, d);
    } else if ((t = credentials(header, "Basic", &len))) {
        if (basic_key_digest(t, len, d)) return AUTH_MALFORMED;
    } else {
        return AUTH_MALFORMED;
    }
    /* Every key is compared in full; the match is selected without branching on secret data. */
    int found = -1;
    for (int i = 0; i < k->n; i++) {
        unsigned diff = 0;
        for (int j = 0; j < 32; j++) diff |= (unsigned)(d[j] ^ k->dig[i][j]);
        unsigned eq = ((diff | (0u - diff)) >> 31) ^ 1u;   /* 1 when diff == 0 */
        unsigned mask = 0u - eq;
        found = (int)(((unsigned)i & mask) | ((unsigned)found & ~mask));
    }
    memset(d, 0, sizeof d);
    if (found < 0) return AUTH_WRONG;
    *key_index = found;
    return AUTH_OK;
}
