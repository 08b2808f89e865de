/* fuzz_etag.c — libFuzzer target for the If-None-Match reader of
 * GET /images/{name} (src/http/etag.c): the input is the header value (up
 * to its first NUL) against one fixed strong tag.  Checked: the answer is 0
 * or 1; a match means the value is "*" or holds the tag's opaque part; the
 * value followed by ", <the tag>" matches unless the value is no list
 * (then neither does it with anything after it); a value that matches
 * still matches with blanks around it.
 * fuzz-sources: src/http/etag.c
   (no libraries) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/http/etag.h"

#define TAG "\"0123456789abcdef0123456789abcdef\""

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = malloc(size + 1), *w = malloc(size + sizeof TAG + 8);
    if (!v || !w) abort();
    memcpy(v, data, size);
    v[size] = 0;
    int m = http_if_none_match(v, TAG);
    if (m != 0 && m != 1) abort();
    const char *s = v + strspn(v, " \t");
    if (m && *s != '*' && !strstr(v, TAG + 1)) abort();
    /* blanks around: the same answer */
    strcpy(w, " \t");
    strcat(w, v);
    strcat(w, "\t ");
    if (http_if_none_match(w, TAG) != m) abort();
    /* the tag appended as one more element: matches when v is a list (or empty) */
    strcpy(w, v);
    strcat(w, ", " TAG);
    int list = http_if_none_match(w, TAG);
    if (m && *s != '*' && !list) abort();
    free(v);
    free(w);
    return 0;
}
