/* exif.c — the smallest EXIF block that carries a UserComment (where
 * AUTOMATIC1111 keeps generation parameters in JPEG and WebP files), and
 * bounds-checked readers for it and for IFD0's Orientation (how a camera
 * held sideways says which way is up).  Written by hand: no EXIF library
 * needed.  Readers follow no IFD chains (IFD0 and one pointer from it), so
 * a looping or self-referencing block cannot make them spin. */
#include "codec.h"
#include "../base/alloc.h"

#include <stdlib.h>
#include <string.h>

#define TAG_EXIF_IFD 0x8769
#define TAG_USER_COMMENT 0x9286
#define TAG_ORIENTATION 0x0112
/* 65535 (APP1 length field) - 2 (length) - 6 ("Exif\0\0") */
#define EXIF_MAX_TIFF 65527u
#define TIFF_HEAD 44u   /* header + IFD0 (1 entry) + Exif IFD (1 entry) */

/* Next code point of UTF-8 text; invalid sequences give U+FFFD, one byte. */
static uint32_t utf8_next(const unsigned char **sp)
{
    const unsigned char *s = *sp;
    uint32_t c = s[0];
    int n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
    if (n < 0) {
        *sp = s + 1;
        return 0xFFFD;
    }
    c &= n == 0 ? 0x7F : 0x3F >> n;
    for (int i = 1; i <= n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *sp = s + 1;
            return 0xFFFD;
        }
        c = c << 6 | (s[i] & 0x3F);
    }
    *sp = s + n + 1;
    static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
    if (c < min[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0xFFFD;
    return c;
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v & 0xFFFF);
}

uint8_t *img_exif_build(const char *text, size_t *out_len)
{
    size_t n = strlen(text);
    size_t max_units = (EXIF_MAX_TIFF - TIFF_HEAD - 8) / 2;
    size_t cap = TIFF_HEAD + 8 + 2 * (n < max_units ? n : max_units);
    uint8_t *b = sd_calloc(1, cap);
    if (!b) return NULL;
    uint8_t *u = b + TIFF_HEAD + 8;
    size_t units = 0;
    const unsigned char *s = (const unsigned char *)text, *end = s + n;
    while (s < end) {
        uint32_t c = utf8_next(&s);
        size_t need = c >= 0x10000 ? 2 : 1;
        if (units + need > max_units) break;   /* cut at a character boundary */
        if (c >= 0x10000) {
            c -= 0x10000;
            put16(u + 2 * units++, 0xD800 | (c >> 10));
            put16(u + 2 * units++, 0xDC00 | (c & 0x3FF));
        } else {
            put16(u + 2 * units++, c);
        }
    }
    memcpy(b, "MM\0\x2a", 4);
    put32(b + 4, 8);
    put16(b + 8, 1);                       /* IFD0: one entry */
    put16(b + 10, TAG_EXIF_IFD);
    put16(b + 12, 4);                      /* LONG */
    put32(b + 14, 1);
    put32(b + 18, 26);                     /* -> Exif IFD */
    put32(b + 22, 0);                      /* no next IFD */
    put16(b + 26, 1);                      /* Exif IFD: one entry */
    put16(b + 28, TAG_USER_COMMENT);
    put16(b + 30, 7);                      /* UNDEFINED */
    put32(b + 32, (uint32_t)(8 + 2 * units));
    put32(b + 36, TIFF_HEAD);
    put32(b + 40, 0);
    memcpy(b + TIFF_HEAD, "UNICODE\0", 8);
    *out_len = TIFF_HEAD + 8 + 2 * units;
    return b;
}

/* ---- reading ---------------------------------------------------------- */

typedef struct tiff {
    const uint8_t *d;
    size_t n;
    int le;
} tiff;

static unsigned rd16(const tiff *t, size_t o)
{
    const uint8_t *p = t->d + o;
    return t->le ? (unsigned)(p[0] | p[1] << 8) : (unsigned)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const tiff *t, size_t o)
{
    return t->le ? img_le32(t->d + o) : img_be32(t->d + o);
}

/* Finds `tag` in the IFD at `ifd`; returns 1 with type/count/value-offset, 0 if absent, -1 if malformed. */
static int ifd_find(const tiff *t, size_t ifd, unsigned tag, unsigned *type, uint32_t *count, size_t *val)
{
    if (ifd > t->n || t->n - ifd < 2) return -1;
    unsigned k = rd16(t, ifd);
    if ((size_t)k * 12 > t->n - ifd - 2) return -1;
    for (unsigned i = 0; i < k; i++) {
        size_t e = ifd + 2 + (size_t)i * 12;
        if (rd16(t, e) != tag) continue;
        *type = rd16(t, e + 2);
        *count = rd32(t, e + 4);
        *val = e + 8;
        return 1;
    }
    return 0;
}

static char *utf16_to_utf8(const uint8_t *p, size_t units, int le)
{
    char *o = sd_malloc(units * 3 + 1), *q = o;
    if (!o) return NULL;
    for (size_t i = 0; i < units; i++) {
        uint32_t c = le ? (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) : (uint32_t)(p[2 * i] << 8 | p[2 * i + 1]);
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < units) {
            uint32_t d = le ? (uint32_t)(p[2 * i + 2] | p[2 * i + 3] << 8)
                            : (uint32_t)(p[2 * i + 2] << 8 | p[2 * i + 3]);
            if (d >= 0xDC00 && d <= 0xDFFF) {
                c = 0x10000 + ((c - 0xD800) << 10) + (d - 0xDC00);
                i++;
            }
        }
        if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFD;
        if (c == 0) break;
        if (c < 0x80) {
            *q++ = (char)c;
        } else if (c < 0x800) {
            *q++ = (char)(0xC0 | c >> 6);
            *q++ = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            *q++ = (char)(0xE0 | c >> 12);
            *q++ = (char)(0x80 | (c >> 6 & 0x3F));
            *q++ = (char)(0x80 | (c & 0x3F));
        } else {
            /* 4 bytes: fits, since a pair of units had room for 6 */
            *q++ = (char)(0xF0 | c >> 18);
            *q++ = (char)(0x80 | (c >> 12 & 0x3F));
            *q++ = (char)(0x80 | (c >> 6 & 0x3F));
            *q++ = (char)(0x80 | (c & 0x3F));
        }
    }
    *q = 0;
    return o;
}

/* The TIFF header of a block (an "Exif\0\0" prefix skipped): byte order and magic. */
static int tiff_open(tiff *t, const uint8_t *d, size_t n, sd_err *err)
{
    if (n >= 6 && !memcmp(d, "Exif\0\0", 6)) {
        d += 6;
        n -= 6;
    }
    *t = (tiff){d, n, 0};
    if (n < 8) return sd_errf(err, SD_EINVAL, "image", "EXIF block too short");
    if (!memcmp(d, "II", 2)) t->le = 1;
    else if (memcmp(d, "MM", 2)) return sd_errf(err, SD_EINVAL, "image", "EXIF block has no byte-order mark");
    if (rd16(t, 2) != 42) return sd_errf(err, SD_EINVAL, "image", "EXIF block has a bad TIFF magic");
    return 0;
}

int img_exif_orientation(const uint8_t *d, size_t n)
{
    tiff t;
    sd_err ignored;
    sd_err_clear(&ignored);
    if (!d || tiff_open(&t, d, n, &ignored)) return 1;
    unsigned type;
    uint32_t count;
    size_t val;
    if (ifd_find(&t, rd32(&t, 4), TAG_ORIENTATION, &type, &count, &val) != 1 || count != 1) return 1;
    /* SHORT as the standard says; a LONG from a careless writer is read too (both inline) */
    unsigned v = type == 3 ? rd16(&t, val) : type == 4 ? rd32(&t, val) : 1;
    return v >= 1 && v <= 8 ? (int)v : 1;
}

int img_exif_user_comment(const uint8_t *d, size_t n, char **out, sd_err *err)
{
    *out = NULL;
    tiff t;
    if (tiff_open(&t, d, n, err)) return -1;
    d = t.d;
    n = t.n;

    unsigned type;
    uint32_t count;
    size_t val;
    size_t ifd0 = rd32(&t, 4);
    int r = ifd_find(&t, ifd0, TAG_EXIF_IFD, &type, &count, &val);
    if (r < 0) return sd_errf(err, SD_EINVAL, "image", "EXIF IFD0 is malformed");
    if (r == 0) return 0;
    if (type != 4 && type != 13) return sd_errf(err, SD_EINVAL, "image", "EXIF pointer has type %u", type);
    r = ifd_find(&t, rd32(&t, val), TAG_USER_COMMENT, &type, &count, &val);
    if (r < 0) return sd_errf(err, SD_EINVAL, "image", "EXIF sub-IFD is malformed");
    if (r == 0 || count < 8) return 0;
    size_t off = rd32(&t, val);   /* count >= 8 > 4: stored out of line */
    if (off > n || count > n - off) return sd_errf(err, SD_EINVAL, "image", "EXIF UserComment overruns the block");
    const uint8_t *c = d + off, *body = c + 8;
    size_t bn = count - 8;
    if (!memcmp(c, "UNICODE\0", 8)) {
        int le = t.le;
        if (bn >= 2 && body[0] == 0xFE && body[1] == 0xFF) le = 0, body += 2, bn -= 2;
        else if (bn >= 2 && body[0] == 0xFF && body[1] == 0xFE) le = 1, body += 2, bn -= 2;
        *out = utf16_to_utf8(body, bn / 2, le);
    } else {
        /* ASCII, JIS or undefined (often UTF-8 in practice): the bytes up to a NUL */
        const uint8_t *z = memchr(body, 0, bn);
        size_t len = z ? (size_t)(z - body) : bn;
        *out = malloc(len + 1);
        if (*out) {
            memcpy(*out, body, len);
            (*out)[len] = 0;
        }
    }
    if (!*out) return sd_errf(err, SD_ENOMEM, "image", "out of memory reading EXIF");
    return 0;
}
