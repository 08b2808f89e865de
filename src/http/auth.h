/* auth.h — optional API keys: "Authorization: Bearer KEY" (or HTTP Basic with
 * the key as the password) checked against a
 * set of keys read from a list (SDSERVE_API_KEYS / --api-keys) and/or a file
 * (--api-keys-file: one key per line, blank lines and '#' comments ignored).
 *
 * Keys are kept only as SHA-256 digests and a presented token is compared
 * with every one of them in constant time (no early exit, no length leak), so
 * the time of a check does not tell how much of a guess was right.  A key is
 * 16 to 256 printable ASCII characters without blanks. */
#ifndef SD_HTTP_AUTH_H
#define SD_HTTP_AUTH_H

#include "../base/err.h"

typedef struct auth_keys auth_keys;

enum { AUTH_MIN_KEY = 16, AUTH_MAX_KEY = 256, AUTH_MAX_KEYS = 4096 };

/* list: keys separated by ',' or blanks (may be NULL); path: key file (may be
 * NULL).  Returns a set (empty, auth off, only when neither is given), or
 * NULL + err naming the setting, the line, and what is wrong (never the key
 * itself); a list or file given without any key is an error. */
auth_keys *auth_keys_load(const char *list, const char *path, sd_err *err);
void auth_keys_free(auth_keys *k);
/* Number of keys; 0 (or k == NULL) means authentication is off. */
int auth_keys_count(const auth_keys *k);

enum { AUTH_OK = 0, AUTH_MISSING = -1, AUTH_MALFORMED = -2, AUTH_WRONG = -3 };
/* Checks an Authorization header value (NULL when absent): "Bearer KEY", or
 * "Basic base64(user:KEY)" (HTTP Basic, as AUTOMATIC1111 clients send it;
 * the user name is ignored).  Returns AUTH_OK
 * with *key_index set (which key matched, for per-key rate limits), or a
 * negative AUTH_* reason. */
int auth_check(const auth_keys *k, const char *header, int *key_index);

#endif
