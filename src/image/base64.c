/* base64.c — decoding the init_image field as clients really send it (data:
 * URL prefix, URL-safe alphabet, missing padding, line breaks, '+' turned into
 * ' ' by form encoding) and a plain encoder for tests and tools. */
#include "image.h"
#include "../base/alloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* 0..63 for alphabet bytes (both alphabets), -1 otherwise. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-' || c == ' ') return 62;   /* ' ' = a '+' lost to form encoding */
    if (c == '/' || c == '_') return 63;
    return -1;
}

static int is_skipped(unsigned char c)
{
    return c == '\r' || c == '\n' || c == '\t' || c == '\f' || c == '\v';
}

static int bad_char(sd_err *err, const char *field, unsigned char c, size_t pos)
{
    if (c >= 0x21 && c < 0x7f)
        return sd_errf(err, SD_EINVAL, field, "%s is not valid base64: character '%c' at position %zu",
                       field, c, pos);
    return sd_errf(err, SD_EINVAL, field, "%s is not valid base64: byte 0x%02x at position %zu",
                   field, c, pos);
}

/* Length of a "data:<type>;base64," prefix (0 when absent, -1 when malformed). */
static long data_url_prefix(const char *t, size_t len, const char *field, sd_err *err)
{
    size_t i = 0;
    while (i < len && (t[i] == ' ' || is_skipped((unsigned char)t[i]))) i++;
    if (len - i < 5 || strncasecmp(t + i, "data:", 5) != 0) return 0;
    const char *comma = memchr(t + i, ',', len - i);
    if (!comma) {
        sd_errf(err, SD_EINVAL, field, "%s starts with \"data:\" but has no ',' before the data", field);
        return -1;
    }
    size_t head = (size_t)(comma - (t + i));
    if (head < 12 || strncasecmp(comma - 7, ";base64", 7) != 0) {
        sd_errf(err, SD_EINVAL, field, "%s is a data: URL that is not base64 (expected \";base64,\")", field);
        return -1;
    }
    if (strncasecmp(t + i + 5, "image/", 6) != 0) {
        sd_errf(err, SD_EINVAL, field, "%s is a data: URL whose type is not image/...", field);
        return -1;
    }
    return (long)(comma + 1 - t);
}

int img_base64_decode(const char *text, size_t len, size_t max_out, const char *field,
                      uint8_t **out, size_t *out_len, sd_err *err)
{
    *out = NULL;
    *out_len = 0;
    if (!field) field = "init_image";
    if (!text) return sd_errf(err, SD_EINVAL, field, "%s is missing", field);
    long start = data_url_prefix(text, len, field, err);
    if (start < 0) return -1;

    /* Decoded size is at most 3/4 of the text; allocate that (capped) once. */
    size_t cap = (len - (size_t)start) / 4 * 3 + 3;
    if (cap > max_out + 3) cap = max_out + 3;
    uint8_t *buf = sd_malloc(cap ? cap : 1);
    if (!buf) return sd_errf(err, SD_ENOMEM, field, "out of memory decoding %s", field);

    size_t n = 0, pad_at = 0;
    uint32_t acc = 0;
    int nbits = 0, quad = 0, pads = 0;
    for (size_t i = (size_t)start; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (is_skipped(c)) continue;
        if (c == '=') {
            if (pads == 0) pad_at = i;
            pads++;
            continue;
        }
        int v = b64_value(c);
        if (pads && c == ' ') continue;   /* trailing blanks after the padding */
        if (v < 0) {
            free(buf);
            return bad_char(err, field, c, i);
        }
        if (pads) {
            free(buf);
            return sd_errf(err, SD_EINVAL, field,
                           "%s is not valid base64: data after '=' padding at position %zu", field, i);
        }
        acc = acc << 6 | (uint32_t)v;
        nbits += 6;
        quad = (quad + 1) & 3;
        if (nbits >= 8) {
            nbits -= 8;
            if (n >= max_out) {
                free(buf);
                return sd_errf(err, SD_ETOOLARGE, field, "%s decodes to more than %zu bytes", field, max_out);
            }
            buf[n++] = (uint8_t)(acc >> nbits);
            acc &= (1u << nbits) - 1;
        }
    }
    if (quad == 1) {
        free(buf);
        return sd_errf(err, SD_EINVAL, field,
                       "%s is not valid base64: its length leaves a single dangling character", field);
    }
    if (pads && (pads > 2 || (quad + pads) % 4 != 0 || quad == 0)) {
        free(buf);
        return sd_errf(err, SD_EINVAL, field, "%s is not valid base64: wrong '=' padding at position %zu",
                       field, pad_at);
    }
    if (n == 0) {
        free(buf);
        return sd_errf(err, SD_EINVAL, field, "%s is empty", field);
    }
    *out = buf;
    *out_len = n;
    return 0;
}

char *img_base64_encode(const uint8_t *d, size_t len, size_t *out_len)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = (len + 2) / 3 * 4;
    char *s = sd_malloc(n + 1);
    if (!s) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < len) v |= (uint32_t)d[i + 1] << 8;
        if (i + 2 < len) v |= d[i + 2];
        s[o++] = al[v >> 18 & 63];
        s[o++] = al[v >> 12 & 63];
        s[o++] = i + 1 < len ? al[v >> 6 & 63] : '=';
        s[o++] = i + 2 < len ? al[v & 63] : '=';
    }
    s[o] = 0;
    if (out_len) *out_len = o;
    return s;
}
