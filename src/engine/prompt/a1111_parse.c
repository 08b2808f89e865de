/* a1111_parse.c — A1111's parse_prompt_attention and its AND check
 * (a1111.h), reproduced step by step from prompt_parser.py v1.10.1.
 *
 * The prompt is cut by the regex
 *   \\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:
 * (first alternative wins); an opener pushes the list length, a closer
 * multiplies everything since its opener, a stray closer is text; text is
 * split on \s*\bBREAK\b\s*; unclosed openers close at the end; adjacent
 * pieces of equal weight are merged.  Works on bytes: every structural
 * character is ASCII; only \s and \b look at whole code points
 * (a1111_text.c). */
#include "a1111.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/alloc.h"

#define ROUND_MULT 1.1
#define SQUARE_MULT (1 / 1.1)

int a1111_check_and(const char *prompt, const char *field, sd_err *err)
{
    const char *p = prompt;
    size_t n = strlen(prompt);
    while ((p = strstr(p, "AND"))) {
        if (a1111_word_at(prompt, n, (size_t)(p - prompt), "AND"))
            return sd_errf(err, SD_EINVAL, field, "%s: AND (composable diffusion) is not supported; "
                           "write the parts as one prompt", a1111_what(field));
        p++;
    }
    return 0;
}

/* ---- the piece list ------------------------------------------------------- */

typedef struct plist { a1111_frag *v; int n, cap; int oom; } plist;

static void push(plist *l, const char *text, size_t len, double w)
{
    if (l->oom) return;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        a1111_frag *v = sd_realloc(l->v, sizeof *v * (size_t)cap);
        if (!v) { l->oom = 1; return; }
        l->v = v;
        l->cap = cap;
    }
    char *t = sd_malloc(len + 1);
    if (!t) { l->oom = 1; return; }
    memcpy(t, text, len);
    t[len] = 0;
    l->v[l->n++] = (a1111_frag){t, w};
}

static void multiply_range(plist *l, int from, double m)
{
    for (int p = from; p < l->n; p++) l->v[p].weight *= m;
}

/* One match of \s*\bBREAK\b\s* at or after `from`: [*b, *e), or 0. */
static int find_break(const char *s, size_t n, size_t from, size_t *b, size_t *e)
{
    size_t p = from;
    while (p < n) {
        size_t q = a1111_skip_space(s, n, p);
        if (a1111_word_at(s, n, q, "BREAK")) {
            *b = p;
            *e = a1111_skip_space(s, n, q + 5);
            return 1;
        }
        /* every start inside this run of blanks meets the same q */
        if (q > p) p = q;
        else { int len; a1111_cp_at(s, n, p, &len); p += (size_t)len; }
    }
    return 0;
}

/* Text of weight 1, split on BREAK (re.split(re_break, text)). */
static void push_text(plist *l, const char *s, size_t n)
{
    size_t at = 0, b, e;
    while (find_break(s, n, at, &b, &e)) {
        push(l, s + at, b - at, 1.0);
        push(l, "BREAK", 5, -1.0);
        at = e;
    }
    push(l, s + at, n - at, 1.0);
}

/* The weight alternative :\s*([+-]?[.\d]+)\s*\) at s[i] == ':'; returns the
 * index after ')' or 0, with the number's span. */
static size_t match_weight(const char *s, size_t n, size_t i, size_t *ws, size_t *we)
{
    size_t j = a1111_skip_space(s, n, i + 1);
    *ws = j;
    if (j < n && (s[j] == '+' || s[j] == '-')) j++;
    size_t d = j;
    while (j < n && (s[j] == '.' || (s[j] >= '0' && s[j] <= '9'))) j++;
    if (j == d) return 0;
    *we = j;
    j = a1111_skip_space(s, n, j);
    return j < n && s[j] == ')' ? j + 1 : 0;
}

/* Python float() of a [+-]?[.\d]+ string: at most one '.', one digit. */
static int read_weight(const char *s, size_t len, double *w)
{
    char buf[64];
    int dots = 0, digits = 0;
    for (size_t k = 0; k < len; k++) {
        dots += s[k] == '.';
        digits += s[k] >= '0' && s[k] <= '9';
    }
    if (dots > 1 || !digits) return -1;
    if (len < sizeof buf) {
        memcpy(buf, s, len);
        buf[len] = 0;
        *w = strtod(buf, NULL);
        return 0;
    }
    char *big = sd_malloc(len + 1);
    if (!big) return -2;
    memcpy(big, s, len);
    big[len] = 0;
    *w = strtod(big, NULL);
    free(big);
    return 0;
}

/* ---- the opener stacks ---------------------------------------------------- */

typedef struct stack { int *v; int n, cap; } stack;

static int stack_push(stack *s, int x)
{
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        int *v = sd_realloc(s->v, sizeof *v * (size_t)cap);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

/* ---- merging and the result ----------------------------------------------- */

/* Adjacent pieces of equal weight become one (texts concatenated). */
static int merge_equal(plist *l)
{
    int o = 0;
    for (int i = 0; i < l->n; i++) {
        if (o > 0 && l->v[o - 1].weight == l->v[i].weight) {
            size_t a = strlen(l->v[o - 1].text), b = strlen(l->v[i].text);
            char *t = sd_realloc(l->v[o - 1].text, a + b + 1);
            if (!t) return -1;
            memcpy(t + a, l->v[i].text, b + 1);
            l->v[o - 1].text = t;
            free(l->v[i].text);
            l->v[i].text = NULL;
        } else {
            l->v[o++] = l->v[i];
        }
    }
    l->n = o;
    return 0;
}

static void plist_free(plist *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i].text);
    free(l->v);
}

void a1111_parsed_free(a1111_parsed *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) free(p->v[i].text);
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

int a1111_is_break(const a1111_frag *f) { return f->weight == -1.0 && !strcmp(f->text, "BREAK"); }

/* A stray closer, an escape or a run of plain text at s[i]: pushed as
 * text; returns the index after it. */
static size_t plain_token(plist *l, const char *s, size_t n, size_t i)
{
    if (s[i] == '\\') {
        int esc = i + 1 < n && strchr("()[]\\", s[i + 1]);
        push(l, s + i + 1, esc ? 1 : 0, 1.0);
        return i + 1 + (size_t)esc;
    }
    if (s[i] == ')' || s[i] == ']' || s[i] == ':') {
        push_text(l, s + i, 1);
        return i + 1;
    }
    size_t j = i;
    while (j < n && !strchr("\\()[]:", s[j])) j++;
    push_text(l, s + i, j - i);
    return j;
}

int a1111_parse(const char *prompt, const char *field, a1111_parsed *out, sd_err *err)
{
    plist l = {0};
    stack round = {0}, square = {0};
    const char *s = prompt;
    size_t n = strlen(s), i = 0;
    int rc = 0, oom = 0;
    out->v = NULL;
    out->n = 0;
    while (i < n && !l.oom && !oom) {
        char c = s[i];
        size_t ws = 0, we = 0, end = 0;
        if (c == '(' || c == '[') {
            oom = stack_push(c == '(' ? &round : &square, l.n) != 0;
            i++;
        } else if (c == ':' && (end = match_weight(s, n, i, &ws, &we)) && round.n) {
            double w = 0;
            int r = read_weight(s + ws, we - ws, &w);
            if (r == -1) {
                rc = sd_errf(err, SD_EINVAL, field, "%s: the weight '%.*s' is not a number", a1111_what(field),
                             (int)(we - ws > 40 ? 40 : we - ws), s + ws);
                break;
            }
            oom = r != 0;
            multiply_range(&l, round.v[--round.n], w);
            i = end;
        } else if (c == ':' && end) {
            push_text(&l, s + i, end - i);   /* ":1.2)" with no "(" open */
            i = end;
        } else if (c == ')' && round.n) {
            multiply_range(&l, round.v[--round.n], ROUND_MULT);
            i++;
        } else if (c == ']' && square.n) {
            multiply_range(&l, square.v[--square.n], SQUARE_MULT);
            i++;
        } else {
            i = plain_token(&l, s, n, i);
        }
    }
    for (int k = 0; k < round.n; k++) multiply_range(&l, round.v[k], ROUND_MULT);
    for (int k = 0; k < square.n; k++) multiply_range(&l, square.v[k], SQUARE_MULT);
    free(round.v);
    free(square.v);
    if (rc == 0 && l.n == 0) push(&l, "", 0, 1.0);
    if (rc == 0 && (oom || l.oom || merge_equal(&l)))
        rc = sd_errf(err, SD_ENOMEM, field, "out of memory parsing the %s", field);
    if (rc) { plist_free(&l); return -1; }
    out->v = l.v;
    out->n = l.n;
    return 0;
}

/* ---- the refusal of weights A1111 reads as text --------------------------- */

/* At s[i] == ':' inside '(': the end of one blank-free word that is no
 * structure (the span [*ws, *we)) when ')' follows it after blanks, else 0. */
static size_t bad_weight_at(const char *s, size_t n, size_t i, size_t *ws, size_t *we)
{
    size_t j = a1111_skip_space(s, n, i + 1), k = j;
    while (k < n && !strchr("()[]:\\", s[k])) {
        int len;
        if (a1111_is_space(a1111_cp_at(s, n, k, &len))) break;
        k += (size_t)len;
    }
    size_t m = a1111_skip_space(s, n, k);
    *ws = j;
    *we = k;
    return k > j && m < n && s[m] == ')' ? m + 1 : 0;
}

int a1111_check_weights(const char *prompt, const char *field, sd_err *err)
{
    const char *s = prompt;
    size_t n = strlen(s), i = 0, ws, we;
    int depth = 0;   /* open '(' as the parser counts them */
    while (i < n) {
        if (s[i] == '\\') {
            i += i + 1 < n ? 2 : 1;   /* an escape, or a dropped '\' and a literal character */
        } else if (s[i] == '(') {
            depth++, i++;
        } else if (s[i] == ')') {
            depth -= depth > 0, i++;
        } else if (s[i] == ':' && depth && match_weight(s, n, i, &ws, &we)) {
            depth--;
            i = match_weight(s, n, i, &ws, &we);
        } else if (s[i] == ':' && depth && bad_weight_at(s, n, i, &ws, &we)) {
            return sd_errf(err, SD_EINVAL, field, "%s: the weight '%.*s' is not a number (write (text:1.2); "
                           "a literal colon in brackets is \\:)", a1111_what(field), (int)(we - ws > 40 ? 40 : we - ws),
                           s + ws);
        } else {
            i++;
        }
    }
    return 0;
}
