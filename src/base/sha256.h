/* sha256.h — SHA-256 of a buffer, and its hex form. */
#ifndef SD_SHA256_H
#define SD_SHA256_H

#include <stddef.h>

void sd_sha256(const void *data, size_t n, unsigned char out[32]);
/* out: 2*nbytes hex chars + NUL of the first nbytes of the digest (nbytes <= 32). */
void sd_sha256_hex(const void *data, size_t n, int nbytes, char *out);

#endif
