/* pyfloat.c — Python's float() grammar for text (pyfloat.h).
 *
 * In CPython's order: the text is made ASCII (a Unicode blank becomes a
 * space, a Unicode decimal digit its ASCII digit, any other non-ASCII
 * character is refused); underscores are checked and dropped (each one
 * between two digits); ASCII blanks are stripped from both ends; what is
 * left must be all of [sign] (inf | infinity | nan) or [sign] digits ['.'
 * [digits]] | '.' digits, then [(e|E) [sign] digits].  strtod() then gives
 * the value of that plain decimal text. */
#include "pyfloat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The first code point of every run of ten Unicode decimal digits (general
 * category Nd, 0..9 in order), above ASCII: Unicode 14, as Python 3.11's
 * unicodedata.decimal() has them. */
static const uint32_t nd_zero[] = {
    0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66, 0xde6, 0xe50, 0xed0,
    0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90, 0x1b50, 0x1bb0, 0x1c40, 0x1c50,
    0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10, 0x104a0, 0x10d30, 0x11066, 0x110f0,
    0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650, 0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50,
    0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50, 0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140,
    0x1e2f0, 0x1e950, 0x1fbf0,
};

/* The decimal digit code point cp stands for, or -1. */
static int nd_digit(uint32_t cp)
{
    size_t lo = 0, hi = sizeof nd_zero / sizeof nd_zero[0];
    while (lo < hi) {   /* the last run starting at or below cp */
        size_t mid = (lo + hi) / 2;
        if (nd_zero[mid] <= cp) lo = mid + 1;
        else hi = mid;
    }
    return lo && cp - nd_zero[lo - 1] < 10 ? (int)(cp - nd_zero[lo - 1]) : -1;
}

/* The non-ASCII code points Python's str.isspace() calls blank. */
static int wide_blank(uint32_t cp)
{
    return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* One UTF-8 sequence at s[0..n) (n >= 1, s[0] >= 0x80): its code point and
 * length, or 0 when it is not valid UTF-8 (overlong, surrogate, cut). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
    if (!len || len > n) return 0;
    uint32_t c = s[0] & (0x7f >> len);
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80) return 0;
        c = (c << 6) | (s[k] & 0x3f);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < least[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    *cp = c;
    return len;
}

static int ascii_blank(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static int digit(char c) { return c >= '0' && c <= '9'; }

/* [sign] digits ['.' [digits]] | [sign] '.' digits, then an optional
 * exponent, and nothing after: 1 when t[0..n) is that. */
static int plain_decimal(const char *t, size_t n)
{
    size_t i = 0, before = 0, after = 0;
    if (i < n && (t[i] == '+' || t[i] == '-')) i++;
    while (i < n && digit(t[i])) i++, before++;
    if (i < n && t[i] == '.') {
        i++;
        while (i < n && digit(t[i])) i++, after++;
    }
    if (!before && !after) return 0;
    if (i < n && (t[i] == 'e' || t[i] == 'E')) {
        size_t exp = 0;
        i++;
        if (i < n && (t[i] == '+' || t[i] == '-')) i++;
        while (i < n && digit(t[i])) i++, exp++;
        if (!exp) return 0;
    }
    return i == n;
}

/* [sign] inf | infinity | nan, in any case: 1 when t[0..n) is that. */
static int special(const char *t, size_t n)
{
    if (n && (t[0] == '+' || t[0] == '-')) t++, n--;
    return (n == 3 && (!strncasecmp(t, "inf", 3) || !strncasecmp(t, "nan", 3))) ||
           (n == 8 && !strncasecmp(t, "infinity", 8));
}

int sd_pyfloat(const char *s, size_t n, double *out)
{
    if (n > SD_PYFLOAT_MAX) return -1;
    /* 1. ASCII: Unicode blanks -> ' ', Unicode digits -> '0'..'9' */
    char a[SD_PYFLOAT_MAX + 1];
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            if (!c) return -1;
            a[m++] = (char)c;
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = utf8_next((const unsigned char *)s + i, n - i, &cp);
        int d = len ? nd_digit(cp) : -1;
        if (!len || (d < 0 && !wide_blank(cp))) return -1;
        a[m++] = d >= 0 ? (char)('0' + d) : ' ';
        i += len;
    }
    /* 2. underscores: each between two digits, then dropped */
    size_t k = 0;
    char prev = 0;
    for (size_t i = 0; i < m; i++) {
        char c = a[i];
        if (c == '_' ? !digit(prev) : prev == '_' && !digit(c)) return -1;
        if (c != '_') a[k++] = c;
        prev = c;
    }
    if (prev == '_') return -1;
    /* 3. ASCII blanks off both ends */
    size_t b = 0, e = k;
    while (b < e && ascii_blank(a[b])) b++;
    while (e > b && ascii_blank(a[e - 1])) e--;
    /* 4. the grammar, then the value */
    if (!plain_decimal(a + b, e - b) && !special(a + b, e - b)) return -1;
    a[e] = 0;
    *out = strtod(a + b, NULL);
    return 0;
}
