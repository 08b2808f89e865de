/* a1111_text.c — the character rules of A1111's regexes (Python's re on
 * str) over UTF-8 bytes, for the module's parsers (a1111.h): a code point
 * at a byte index (invalid bytes read as U+FFFD, one byte each, as CLIP's
 * cleanup reads them), \s (str.isspace), \w (letters, numbers, '_'), a
 * run of \s, and a whole word (\bword\b). */
#include "a1111.h"

#include <string.h>

#include "../tokenizer/clip_text.h"

uint32_t a1111_cp_at(const char *s, size_t n, size_t i, int *len)
{
    const unsigned char *b = (const unsigned char *)s + i;
    size_t left = n - i;
    *len = 1;
    if (b[0] < 0x80) return b[0];
    int need = b[0] >= 0xF0 && b[0] <= 0xF4 ? 3 : b[0] >= 0xE0 ? 2 : b[0] >= 0xC2 && b[0] < 0xE0 ? 1 : -1;
    if (need < 0 || left < (size_t)need + 1) return CLIP_REPLACEMENT;
    uint32_t cp = b[0] & (0x3F >> need);
    for (int k = 1; k <= need; k++) {
        if ((b[k] & 0xC0) != 0x80) return CLIP_REPLACEMENT;
        cp = cp << 6 | (b[k] & 0x3F);
    }
    static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return CLIP_REPLACEMENT;
    *len = need + 1;
    return cp;
}

int a1111_is_space(uint32_t cp) { return uc_is_space(cp); }

int a1111_is_word(uint32_t cp) { return cp == '_' || uc_is_letter(cp) || uc_is_number(cp); }

/* The code point that ends just before s[i] (i > 0). */
static uint32_t cp_before(const char *s, size_t i)
{
    size_t j = i - 1;
    for (int back = 0; back < 3 && j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80; back++) j--;
    int len;
    uint32_t cp = a1111_cp_at(s, i, j, &len);
    return j + (size_t)len == i ? cp : CLIP_REPLACEMENT;
}

static int word_before(const char *s, size_t i) { return i > 0 && a1111_is_word(cp_before(s, i)); }

static int word_at(const char *s, size_t n, size_t i)
{
    int len;
    return i < n && a1111_is_word(a1111_cp_at(s, n, i, &len));
}

size_t a1111_skip_space(const char *s, size_t n, size_t i)
{
    while (i < n) {
        int len;
        if (!a1111_is_space(a1111_cp_at(s, n, i, &len))) break;
        i += (size_t)len;
    }
    return i;
}

int a1111_word_at(const char *s, size_t n, size_t i, const char *w)
{
    size_t k = strlen(w);
    return i + k <= n && !memcmp(s + i, w, k) && !word_before(s, i) && !word_at(s, n, i + k);
}


const char *a1111_what(const char *field)
{
    return !strcmp(field, "negative") || !strcmp(field, "negative_prompt") ? "negative prompt" : field;
}
