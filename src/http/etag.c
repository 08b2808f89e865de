/* etag.c — If-None-Match against one entity tag (etag.h).
 *
 *   If-None-Match = "*" / #entity-tag
 *   entity-tag    = [ "W/" ] DQUOTE *etagc DQUOTE
 *   etagc         = %x21 / %x23-7E / %x80-FF
 *
 * A list's elements are separated by commas with optional blanks (space,
 * tab) around them; empty elements are allowed (RFC 9110 5.6.1.2). */
#include "etag.h"

#include <string.h>

static const char *skip_blanks(const char *p)
{
    while (*p == ' ' || *p == '\t') p++;
    return p;
}

static int etagc(unsigned char c) { return c == 0x21 || (c >= 0x23 && c != 0x7f); }

int http_if_none_match(const char *field, const char *etag)
{
    size_t elen = strlen(etag);
    const char *p = skip_blanks(field);
    if (*p == '*') return *skip_blanks(p + 1) == 0;
    int match = 0;
    for (;;) {
        p = skip_blanks(p);
        if (*p == ',') { p++; continue; }
        if (!*p) return match;
        if (p[0] == 'W' && p[1] == '/') p += 2;   /* weak comparison: the W/ does not count */
        if (*p != '"') return 0;
        const char *q = p + 1;
        while (etagc((unsigned char)*q)) q++;
        if (*q != '"') return 0;
        q++;
        if ((size_t)(q - p) == elen && !memcmp(p, etag, elen)) match = 1;
        p = skip_blanks(q);
        if (*p && *p != ',') return 0;
    }
}
