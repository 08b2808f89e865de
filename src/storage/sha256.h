/* sha256.h — SHA-256 (FIPS 180-4), used to name stored images by content.
 * Small and self-contained; not constant-time (nothing secret is hashed). */
#ifndef SD_SHA256_H
#define SD_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t len;        /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t out[32]);
/* One shot, digest as 64 lowercase hex characters + NUL. */
void sha256_hex(const void *data, size_t n, char out[65]);

#endif
