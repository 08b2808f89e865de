/* clip_text.c — CLIP's text cleanup and regex pre-tokenization, in code points.
 *
 * The reference pipeline (OpenAI CLIP SimpleTokenizer, diffusers/HF slow
 * CLIPTokenizer with ftfy) is:
 *   ftfy.fix_text -> html.unescape twice -> strip -> collapse \s+ to " " ->
 *   strip -> lower() -> regex pieces -> byte-level BPE per piece.
 * We have no ftfy; ftfy_lite() does the cheap, sound part of it (what each
 * step does and where it differs is in docs/ACCURACY.md "## Tokenizer"). */
#include "clip_text.h"
#include "../../base/alloc.h"

#include <stdlib.h>
#include <string.h>

/* ---- growable code point buffer ---------------------------------------- */

typedef struct { uint32_t *v; size_t n, cap; int oom; } cpbuf;

static void cb_push(cpbuf *b, uint32_t c)
{
    if (b->oom) return;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        uint32_t *v = sd_realloc(b->v, cap * sizeof *v);
        if (!v) { b->oom = 1; return; }
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = c;
}

static void cb_swap(cpbuf *a, cpbuf *b) { cpbuf t = *a; *a = *b; *b = t; }

/* ---- character classes --------------------------------------------------- */

static int in_ranges(const uint32_t (*r)[2], int n, uint32_t cp)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid - 1;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

int uc_is_letter(uint32_t cp)
{
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return in_ranges(uc_letter, uc_letter_n, cp);
}

int uc_is_number(uint32_t cp)
{
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return in_ranges(uc_number, uc_number_n, cp);
}

int uc_is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

uint32_t uc_lower1(uint32_t cp)
{
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    int lo = 0, hi = uc_lower_n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < uc_lower[mid][0]) hi = mid - 1;
        else if (cp > uc_lower[mid][1]) lo = mid + 1;
        else return (cp - uc_lower[mid][0]) % uc_lower[mid][3] == 0 ? cp + uc_lower[mid][2] : cp;
    }
    return cp;
}

static uint32_t pair_lookup(const uint32_t (*t)[2], int n, uint32_t cp)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < t[mid][0]) hi = mid - 1;
        else if (cp > t[mid][0]) lo = mid + 1;
        else return t[mid][1];
    }
    return 0;
}

static uint32_t compose(uint32_t a, uint32_t b)
{
    /* Hangul syllables compose algorithmically. */
    if (a >= 0x1100 && a < 0x1113 && b >= 0x1161 && b < 0x1176)
        return 0xAC00 + ((a - 0x1100) * 21 + (b - 0x1161)) * 28;
    if (a >= 0xAC00 && a < 0xD7A4 && (a - 0xAC00) % 28 == 0 && b > 0x11A7 && b < 0x11C3)
        return a + (b - 0x11A7);
    int lo = 0, hi = uc_compose_n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const uint32_t *e = uc_compose[mid];
        if (a < e[0] || (a == e[0] && b < e[1])) hi = mid - 1;
        else if (a > e[0] || b > e[1]) lo = mid + 1;
        else return e[2];
    }
    return 0;
}

/* ---- UTF-8 --------------------------------------------------------------- */

int clip_utf8_put(uint32_t cp, unsigned char *o)
{
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = 0xC0 | (cp >> 6); o[1] = 0x80 | (cp & 0x3F); return 2; }
    if (cp < 0x10000) {
        o[0] = 0xE0 | (cp >> 12); o[1] = 0x80 | ((cp >> 6) & 0x3F); o[2] = 0x80 | (cp & 0x3F);
        return 3;
    }
    o[0] = 0xF0 | (cp >> 18); o[1] = 0x80 | ((cp >> 12) & 0x3F);
    o[2] = 0x80 | ((cp >> 6) & 0x3F); o[3] = 0x80 | (cp & 0x3F);
    return 4;
}

/* Decodes one strict UTF-8 sequence from bytes b[0..n); returns its length and
 * sets *cp, or 0 when b does not start a valid sequence (overlong, surrogate,
 * out of range, truncated). */
static int utf8_get(const unsigned char *b, size_t n, uint32_t *cp)
{
    unsigned c = b[0];
    int len;
    uint32_t v, min;
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((b[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (b[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

static void decode_utf8(const char *s, cpbuf *out)
{
    const unsigned char *b = (const unsigned char *)s;
    size_t n = strlen(s), i = 0;
    while (i < n) {
        uint32_t cp;
        int len = utf8_get(b + i, n - i, &cp);
        if (len == 0) { cb_push(out, CLIP_REPLACEMENT); i++; }
        else { cb_push(out, cp); i += (size_t)len; }
    }
}

/* ---- Windows-1252 ("sloppy": undefined bytes map to the C1 code point) ---- */

static const uint16_t cp1252_hi[32] = {
    0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
    0x0152, 0x8D, 0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
};

/* The byte a code point came from if the text was UTF-8 mis-decoded as
 * Windows-1252 (or Latin-1 for the C1 controls); -1 when it cannot be. */
static int sloppy_byte(uint32_t cp)
{
    if (cp < 0x100) return (int)cp;
    for (int i = 0; i < 32; i++)
        if (cp1252_hi[i] == cp) return 0x80 + i;
    return -1;
}

/* ---- ftfy-like fixes ------------------------------------------------------ */

/* Mojibake: UTF-8 bytes that were shown as Windows-1252 ("cafÃ©", "â€œ").
 * Tries to decode a sequence at in[i]; returns the number of input code points
 * consumed (0 = no fix) and the decoded code point.  Only leads that are
 * implausible in real Latin-1 text are accepted: Â/Ã (Latin-1), Ä/Å
 * (Latin Extended-A), Î/Ï (Greek), Ð/Ñ (Cyrillic) before a continuation
 * symbol; â + 2 (punctuation, symbols); ð + Ÿ + 2 (emoji); other 3-byte
 * leads (CJK) only as two sequences in a row. */
static int mojibake_at(const uint32_t *in, size_t n, size_t i, int prev_was_cjk, uint32_t *out)
{
    unsigned char b[8];
    int lead = sloppy_byte(in[i]);
    if (lead < 0xC2 || lead > 0xF0) return 0;
    int len = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (i + (size_t)len > n) return 0;
    for (int k = 0; k < len; k++) {
        int x = sloppy_byte(in[i + k]);
        if (x < 0) return 0;
        b[k] = (unsigned char)x;
    }
    uint32_t cp;
    if (utf8_get(b, (size_t)len, &cp) != len) return 0;
    if (len == 2) {
        if (lead == 0xC2 && cp < 0xA0) return 0;  /* would give a C1 control */
        if (!(lead == 0xC2 || lead == 0xC3 || lead == 0xC4 || lead == 0xC5 || lead == 0xCE ||
              lead == 0xCF || lead == 0xD0 || lead == 0xD1))
            return 0;
    } else if (len == 3 && lead != 0xE2 && !prev_was_cjk) {
        /* CJK mojibake: require the next three symbols to decode too. */
        uint32_t next;
        if (i + 6 > n) return 0;
        for (int k = 0; k < 3; k++) {
            int x = sloppy_byte(in[i + 3 + k]);
            if (x < 0) return 0;
            b[k] = (unsigned char)x;
        }
        if (b[0] < 0xE3 || utf8_get(b, 3, &next) != 3) return 0;
    } else if (len == 4 && (cp < 0x1F000 || cp > 0x1FFFF)) {
        return 0;
    }
    *out = cp;
    return len;
}

static void fix_mojibake(const cpbuf *in, cpbuf *out)
{
    int prev_cjk = 0;
    for (size_t i = 0; i < in->n;) {
        uint32_t cp;
        int used = in->v[i] >= 0x80 ? mojibake_at(in->v, in->n, i, prev_cjk, &cp) : 0;
        if (used) {
            cb_push(out, cp);
            prev_cjk = used == 3 && cp >= 0x3000;
            i += (size_t)used;
        } else {
            uint32_t c = in->v[i++];
            /* Remaining C1 controls were Windows-1252 bytes (ftfy fix_c1_controls). */
            if (c >= 0x80 && c < 0xA0) c = cp1252_hi[c - 0x80];
            cb_push(out, c);
            prev_cjk = 0;
        }
    }
}

/* Latin ligatures and digraph code points -> their letters (ftfy fix_latin_ligatures). */
static const char *ligature(uint32_t cp)
{
    switch (cp) {
    case 0x0132: return "IJ";  case 0x0133: return "ij";
    case 0x0149: return "\xCA\xBCn";
    case 0x01C4: return "D\xC5\xBD"; case 0x01C5: return "D\xC5\xBE"; case 0x01C6: return "d\xC5\xBE";
    case 0x01C7: return "LJ";  case 0x01C8: return "Lj";  case 0x01C9: return "lj";
    case 0x01CA: return "NJ";  case 0x01CB: return "Nj";  case 0x01CC: return "nj";
    case 0x01F1: return "DZ";  case 0x01F2: return "Dz";  case 0x01F3: return "dz";
    case 0xFB00: return "ff";  case 0xFB01: return "fi";  case 0xFB02: return "fl";
    case 0xFB03: return "ffi"; case 0xFB04: return "ffl";
    case 0xFB05: return "\xC5\xBFt"; case 0xFB06: return "st";
    default: return NULL;
    }
}

static int is_control_to_remove(uint32_t c)
{
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
           (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC) ||
           (c >= 0x1D173 && c <= 0x1D17A) || (c >= 0xE0000 && c <= 0xE007F);
}

/* Ligatures, character width, curly quotes, control characters, ANSI
 * terminal escapes, NFC composition of base + mark pairs. */
static void fix_chars(const cpbuf *in, cpbuf *out)
{
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->v[i];
        if (c == 0x1B && i + 1 < in->n && in->v[i + 1] == '[') {   /* ESC [ digits;... letter */
            size_t j = i + 2;
            while (j < in->n && ((in->v[j] >= '0' && in->v[j] <= '9') || in->v[j] == ';')) j++;
            if (j < in->n && uc_is_letter(in->v[j]) && in->v[j] < 0x80) { i = j; continue; }
        }
        const char *lig = ligature(c);
        if (lig) {
            decode_utf8(lig, out);
            continue;
        }
        if (c == 0x3000 || (c >= 0xFF01 && c <= 0xFFEF)) {
            uint32_t w = pair_lookup(uc_width, uc_width_n, c);
            if (w) c = w;
        }
        if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
        else if (c >= 0x201C && c <= 0x201F) c = '"';
        if (is_control_to_remove(c)) continue;
        if (out->n && c >= 0x300) {
            uint32_t k = compose(out->v[out->n - 1], c);
            if (k) { out->v[out->n - 1] = k; continue; }
        }
        cb_push(out, c);
    }
}

/* ---- HTML character references (Python html.unescape) -------------------- */

static int entity_find(const char *name, size_t len)
{
    int lo = 0, hi = uc_entities_n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const char *e = uc_entities[mid].name;
        int c = strncmp(name, e, len);
        if (c == 0 && e[len] != '\0') c = -1;
        if (c < 0) hi = mid - 1;
        else if (c > 0) lo = mid + 1;
        else return mid;
    }
    return -1;
}

/* Numeric reference value -> replacement (0 = drop it), per html.unescape. */
static int charref_value(uint64_t num, uint32_t *cp)
{
    if (num == 0) { *cp = CLIP_REPLACEMENT; return 1; }
    if (num == 0x0D) { *cp = 0x0D; return 1; }
    if (num >= 0x80 && num <= 0x9F) { *cp = cp1252_hi[num - 0x80]; return 1; }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) { *cp = CLIP_REPLACEMENT; return 1; }
    if ((num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) || num == 0x7F ||
        (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
        return 0;
    *cp = (uint32_t)num;
    return 1;
}

/* One pass of html.unescape over in -> out.  With semicolon_only, only
 * references ending in ';' are replaced (what ftfy's own pass does). */
static void unescape_html(const cpbuf *in, cpbuf *out, int semicolon_only)
{
    const uint32_t *s = in->v;
    size_t n = in->n;
    for (size_t i = 0; i < n;) {
        if (s[i] != '&' || i + 1 >= n) { cb_push(out, s[i++]); continue; }
        size_t j = i + 1;
        if (s[j] == '#') {
            int hex = j + 1 < n && (s[j + 1] == 'x' || s[j + 1] == 'X');
            size_t k = j + 1 + (size_t)hex, d0 = k;
            uint64_t num = 0;
            for (; k < n; k++) {
                uint32_t c = s[k];
                int v = c >= '0' && c <= '9' ? (int)(c - '0')
                      : hex && (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (int)((c | 0x20) - 'a' + 10) : -1;
                if (v < 0) break;
                num = num * (hex ? 16 : 10) + (uint64_t)v;
                if (num > 0x10FFFFFF) num = 0x10FFFFFF;   /* stays out of range */
            }
            int semi = k < n && s[k] == ';';
            if (k == d0 || (semicolon_only && !semi)) { cb_push(out, s[i++]); continue; }
            uint32_t cp;
            if (charref_value(num, &cp)) cb_push(out, cp);
            i = k + (size_t)semi;
            continue;
        }
        /* Named: up to 32 of [^\t\n\f <&#;], then an optional ';'. */
        char name[40];
        size_t len = 0;
        while (j + len < n && len < 32) {
            uint32_t c = s[j + len];
            if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';')
                break;
            name[len++] = c < 0x80 ? (char)c : '\x01';   /* no entity name has non-ASCII */
            
        }
        if (len == 0) { cb_push(out, s[i++]); continue; }
        int semi = j + len < n && s[j + len] == ';';
        if (semi) name[len] = ';';
        size_t full = len + (size_t)semi;
        int e = entity_find(name, full);
        if (e >= 0) {
            cb_push(out, uc_entities[e].cp);
            i = j + full;
            continue;
        }
        if (!semicolon_only) {   /* longest legacy prefix: "&notit;" -> "¬it;" */
            size_t x;
            for (x = full - 1; x >= 2; x--)
                if ((e = entity_find(name, x)) >= 0) break;
            if (x >= 2 && e >= 0) {
                cb_push(out, uc_entities[e].cp);
                i = j + x;
                continue;
            }
        }
        cb_push(out, s[i++]);
    }
}

/* ftfy runs its HTML step only when the line has no '<'. */
static void ftfy_unescape(const cpbuf *in, cpbuf *out)
{
    size_t line = 0;
    while (line < in->n) {
        size_t end = line, lt = 0;
        while (end < in->n && in->v[end] != '\n') lt |= in->v[end++] == '<';
        if (end < in->n) end++;
        cpbuf seg = { in->v + line, end - line, 0, 0 };
        if (lt) for (size_t k = line; k < end; k++) cb_push(out, in->v[k]);
        else unescape_html(&seg, out, 1);
        line = end;
    }
}

static int same(const cpbuf *a, const cpbuf *b)
{
    return a->n == b->n && (a->n == 0 || !memcmp(a->v, b->v, a->n * sizeof *a->v));
}

/* ftfy.fix_text, the cheap part: repeat until nothing changes. */
static void ftfy_lite(cpbuf *text, cpbuf *tmp)
{
    for (int round = 0; round < 8 && !text->oom && !tmp->oom; round++) {
        cpbuf before = { 0 };
        for (size_t i = 0; i < text->n; i++) cb_push(&before, text->v[i]);
        tmp->n = 0; ftfy_unescape(text, tmp); cb_swap(text, tmp);
        tmp->n = 0; fix_mojibake(text, tmp); cb_swap(text, tmp);
        tmp->n = 0; fix_chars(text, tmp); cb_swap(text, tmp);
        int done = same(&before, text) || before.oom;
        text->oom |= before.oom;
        free(before.v);
        if (done) break;
    }
}

/* ---- whitespace, lowercase ------------------------------------------------ */

/* Python's Final_Sigma context: cased, case-ignorable*, SIGMA, and not
 * case-ignorable* cased after it. */
static int final_sigma(const uint32_t *s, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && in_ranges(uc_case_ignorable, uc_case_ignorable_n, s[j - 1])) j--;
    if (j == 0 || !in_ranges(uc_cased, uc_cased_n, s[j - 1])) return 0;
    j = i + 1;
    while (j < n && in_ranges(uc_case_ignorable, uc_case_ignorable_n, s[j])) j++;
    return j == n || !in_ranges(uc_cased, uc_cased_n, s[j]);
}

static void collapse_space_lower(const cpbuf *in, cpbuf *out)
{
    size_t a = 0, b = in->n;
    while (a < b && uc_is_space(in->v[a])) a++;
    while (b > a && uc_is_space(in->v[b - 1])) b--;
    for (size_t i = a; i < b; i++) {
        uint32_t c = in->v[i];
        if (uc_is_space(c)) {
            if (!out->n || out->v[out->n - 1] != ' ') cb_push(out, ' ');
            continue;
        }
        if (c == 0x0130) {                 /* İ -> i + combining dot above */
            cb_push(out, 'i');
            cb_push(out, 0x0307);
            continue;
        }
        if (c == 0x03A3) {
            cb_push(out, final_sigma(in->v + a, b - a, i - a) ? 0x03C2 : 0x03C3);
            continue;
        }
        cb_push(out, uc_lower1(c));
    }
}

int clip_clean(const char *utf8, uint32_t **cps, size_t *n, sd_err *err)
{
    cpbuf a = { 0 }, b = { 0 };
    *cps = NULL;
    *n = 0;
    decode_utf8(utf8 ? utf8 : "", &a);
    ftfy_lite(&a, &b);
    for (int k = 0; k < 2; k++) {
        b.n = 0;
        unescape_html(&a, &b, 0);
        cb_swap(&a, &b);
    }
    b.n = 0;
    collapse_space_lower(&a, &b);
    if (a.oom || b.oom) {
        free(a.v);
        free(b.v);
        return sd_errf(err, SD_ENOMEM, "prompt", "out of memory cleaning a prompt");
    }
    free(a.v);
    *cps = b.v;
    *n = b.n;
    return 0;
}

/* ---- CLIP regex pieces ---------------------------------------------------- */

static int match_ascii(const uint32_t *cp, size_t n, size_t pos, const char *lit)
{
    size_t k = 0;
    for (; lit[k]; k++)
        if (pos + k >= n || cp[pos + k] != (unsigned char)lit[k]) return 0;
    return (int)k;
}

int clip_next_piece(const uint32_t *cp, size_t n, size_t *pos, size_t *start, size_t *len, int *special)
{
    static const char *const contractions[] = { "'s", "'t", "'re", "'ve", "'m", "'ll", "'d" };
    size_t p = *pos;
    while (p < n && uc_is_space(cp[p])) p++;
    if (p >= n) { *pos = n; return 0; }
    size_t m = 0;
    *special = 0;
    if (cp[p] == '<') {
        if ((m = (size_t)match_ascii(cp, n, p, "<|startoftext|>"))) *special = 1;
        else if ((m = (size_t)match_ascii(cp, n, p, "<|endoftext|>"))) *special = 2;
    }
    if (!m && cp[p] == '\'') {
        for (int k = 0; k < 7 && !m; k++) m = (size_t)match_ascii(cp, n, p, contractions[k]);
    }
    if (!m && uc_is_letter(cp[p])) {
        while (p + m < n && uc_is_letter(cp[p + m])) m++;
    }
    if (!m && uc_is_number(cp[p])) m = 1;
    if (!m) {
        while (p + m < n && !uc_is_space(cp[p + m]) && !uc_is_letter(cp[p + m]) && !uc_is_number(cp[p + m]))
            m++;
    }
    *start = p;
    *len = m;
    *pos = p + m;
    return 1;
}
