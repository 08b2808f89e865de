/* sha256.h — SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104): content-derived
 * image names, model hashes, and AWS Signature Version 4 (storage/s3.c).
 * Small and self-contained; not constant-time. */
#ifndef SD_SHA256_H
#define SD_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* Incremental hashing: init, update any number of times, final. */
typedef struct sd_sha256_ctx {
    uint32_t h[8];
    uint64_t len;          /* bytes hashed so far */
    unsigned char buf[64];
    size_t nbuf;
} sd_sha256_ctx;

void sd_sha256_init(sd_sha256_ctx *c);
void sd_sha256_update(sd_sha256_ctx *c, const void *data, size_t n);
void sd_sha256_final(sd_sha256_ctx *c, unsigned char out[32]);

/* One shot. */
void sd_sha256(const void *data, size_t n, unsigned char out[32]);
/* out: 2*nbytes hex chars + NUL of the first nbytes of the digest (nbytes <= 32). */
void sd_sha256_hex(const void *data, size_t n, int nbytes, char *out);

/* HMAC-SHA256 of msg under key (any key length). */
void sd_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32]);

/* Lowercase hex of n bytes into out (2n chars + NUL). */
void sd_hex(const unsigned char *bytes, size_t n, char *out);

#endif
