/* sha256.c — SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), see sha256.h. */
#include "sha256.h"

#include <string.h>

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
static void sha256_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void sd_sha256_init(sd_sha256_ctx *c)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, h0, sizeof h0);
    c->len = 0;
    c->nbuf = 0;
}

void sd_sha256_update(sd_sha256_ctx *c, const void *data, size_t n)
{
    const unsigned char *p = data;
    c->len += n;
    if (c->nbuf) {
        size_t take = 64 - c->nbuf < n ? 64 - c->nbuf : n;
        memcpy(c->buf + c->nbuf, p, take);
        c->nbuf += take;
        p += take;
        n -= take;
        if (c->nbuf < 64) return;
        sha256_block(c->h, c->buf);
        c->nbuf = 0;
    }
    for (; n >= 64; p += 64, n -= 64) sha256_block(c->h, p);
    if (n) memcpy(c->buf, p, n);
    c->nbuf = n;
}

void sd_sha256_final(sd_sha256_ctx *c, unsigned char out[32])
{
    uint64_t bits = c->len * 8;
    unsigned char pad[72] = {0x80};
    size_t np = (c->nbuf < 56 ? 56 : 120) - c->nbuf;
    for (int i = 0; i < 8; i++) pad[np + i] = (unsigned char)(bits >> (56 - 8 * i));
    sd_sha256_update(c, pad, np + 8);
    for (int k = 0; k < 8; k++) {
        out[4 * k] = (unsigned char)(c->h[k] >> 24);
        out[4 * k + 1] = (unsigned char)(c->h[k] >> 16);
        out[4 * k + 2] = (unsigned char)(c->h[k] >> 8);
        out[4 * k + 3] = (unsigned char)c->h[k];
    }
}

void sd_sha256(const void *data, size_t n, unsigned char out[32])
{
    sd_sha256_ctx c;
    sd_sha256_init(&c);
    sd_sha256_update(&c, data, n);
    sd_sha256_final(&c, out);
}

void sd_hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t k = 0; k < n; k++) {
        out[2 * k] = hx[bytes[k] >> 4];
        out[2 * k + 1] = hx[bytes[k] & 15];
    }
    out[2 * n] = 0;
}

void sd_sha256_hex(const void *data, size_t n, int nbytes, char *out)
{
    unsigned char d[32];
    sd_sha256(data, n, d);
    if (nbytes > 32) nbytes = 32;
    if (nbytes < 0) nbytes = 0;
    sd_hex(d, (size_t)nbytes, out);
}

void sd_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32])
{
    unsigned char k0[64] = {0}, pad[64], inner[32];
    if (klen > 64) sd_sha256(key, klen, k0);
    else if (klen) memcpy(k0, key, klen);
    sd_sha256_ctx c;
    for (int i = 0; i < 64; i++) pad[i] = k0[i] ^ 0x36;
    sd_sha256_init(&c);
    sd_sha256_update(&c, pad, 64);
    sd_sha256_update(&c, msg, mlen);
    sd_sha256_final(&c, inner);
    for (int i = 0; i < 64; i++) pad[i] = k0[i] ^ 0x5c;
    sd_sha256_init(&c);
    sd_sha256_update(&c, pad, 64);
    sd_sha256_update(&c, inner, 32);
    sd_sha256_final(&c, out);
}
