/* a1111_sched.c — prompt editing `[a:b:when]`, `[b:when]`, `[a::when]` and
 * alternation `[a|b|c]` as A1111's get_learned_conditioning_prompt_schedules
 * applies them (a1111.h), without hires steps.
 *
 * A1111 parses with a lark grammar:
 *   start: (prompt | /[][():]/+)*
 *   prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
 *   emphasized: "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"
 *   scheduled: "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
 *   alternate: "[" prompt ("|" [prompt])+ "]"
 *   plain: /([^\\\[\]():|]|\\.)+/
 * Here a recursive-descent reading of it: a bracket is read as structure
 * when it can be, else (at the top level only) as a stray character; a
 * prompt the grammar refuses (a '|' outside brackets, a lone trailing '\')
 * is one entry, unchanged.  The steps: `when` with a '.' is a fraction of
 * the steps, else a step, truncated and capped at steps; alternation
 * switches every step.  Nesting deeper than SCHED_MAX_DEPTH is read as a
 * prompt the grammar refuses (A1111 runs out of recursion there). */
#include "a1111.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/alloc.h"

#define SCHED_MAX_DEPTH 64
#define SCHED_MAX_STEPS 1000

enum { N_TEXT, N_SCHED, N_ALT };

/* A sequence is a chain of nodes through `next` (-1 ends, -1 = empty). */
typedef struct node {
    int kind;
    size_t s, e;        /* N_TEXT: the span of the prompt */
    int before, after;  /* N_SCHED: sequences (before may be -1) */
    int when;           /* N_SCHED: after collect_steps */
    size_t when_s, when_e;
    int opt0, nopt;     /* N_ALT: sequences opt[opt0 ..] */
    int next;
} node;

typedef struct sp {
    const char *s;
    size_t n;
    node *v;
    int nv, cap;
    int *opt;
    int nopt, optcap;
    int depth, bad;     /* bad: too deep or out of memory */
} sp;

static int new_node(sp *p, int kind)
{
    if (p->nv == p->cap) {
        int cap = p->cap ? p->cap * 2 : 32;
        node *v = sd_realloc(p->v, sizeof *v * (size_t)cap);
        if (!v) { p->bad = 1; return -1; }
        p->v = v;
        p->cap = cap;
    }
    memset(&p->v[p->nv], 0, sizeof p->v[0]);
    p->v[p->nv].kind = kind;
    p->v[p->nv].before = p->v[p->nv].after = p->v[p->nv].next = -1;
    return p->nv++;
}

static int text_node(sp *p, size_t s, size_t e)
{
    int k = new_node(p, N_TEXT);
    if (k >= 0) { p->v[k].s = s; p->v[k].e = e; }
    return k;
}

/* Sequences under construction: head and tail. */
typedef struct seq { int head, tail; } seq;

static void seq_add(sp *p, seq *q, int k)
{
    if (k < 0) return;
    if (q->tail >= 0) p->v[q->tail].next = k;
    else q->head = k;
    q->tail = k;
    while (p->v[q->tail].next >= 0) q->tail = p->v[q->tail].next;
}

static size_t skip_ws(const sp *p, size_t i) { return a1111_skip_space(p->s, p->n, i); }

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static size_t digits(const sp *p, size_t i)
{
    while (i < p->n && is_digit(p->s[i])) i++;
    return i;
}

/* lark's SIGNED_NUMBER at i: [+-] (INT | INT "." INT? | "." INT) [(e|E) [+-] INT]; end or 0. */
static size_t number(const sp *p, size_t i)
{
    if (i < p->n && (p->s[i] == '+' || p->s[i] == '-')) i++;
    size_t a = digits(p, i), j = a;
    if (j < p->n && p->s[j] == '.') j = digits(p, j + 1);
    if (a == i && j <= i + 1) return 0;   /* no digit before or after the point */
    if (j < p->n && (p->s[j] == 'e' || p->s[j] == 'E')) {
        size_t k = j + 1;
        if (k < p->n && (p->s[k] == '+' || p->s[k] == '-')) k++;
        if (digits(p, k) > k) j = digits(p, k);
    }
    return j;
}

static int prompt(sp *p, size_t *pos);

/* plain: /([^\\\[\]():|]|\\.)+/ at *pos; 0 when nothing matches. */
static int plain(sp *p, size_t *pos, seq *q)
{
    size_t i = *pos;
    while (i < p->n) {
        char c = p->s[i];
        if (c == '\\' && i + 1 < p->n && p->s[i + 1] != '\n') { int len; a1111_cp_at(p->s, p->n, i + 1, &len); i += 1 + (size_t)len; }
        else if (!strchr("\\[]():|", c)) i++;
        else break;
    }
    if (i == *pos) return 0;
    seq_add(p, q, text_node(p, *pos, i));
    *pos = i;
    return 1;
}

/* ":" [WS] NUMBER [WS] "]" at i; returns the index after "]" or 0. */
static size_t when_tail(sp *p, size_t i, size_t *ns, size_t *ne)
{
    if (i >= p->n || p->s[i] != ':') return 0;
    *ns = skip_ws(p, i + 1);
    *ne = number(p, *ns);
    if (!*ne) return 0;
    i = skip_ws(p, *ne);
    return i < p->n && p->s[i] == ']' ? i + 1 : 0;
}

/* After "[" prompt, at ':' or '|': the scheduled / alternate forms. */
static int sched_or_alt(sp *p, size_t *pos, int first, seq *q)
{
    size_t i = *pos, ns = 0, ne = 0, end;
    if (p->s[i] == '|') {
        int k = new_node(p, N_ALT);
        if (k < 0) return 0;
        p->v[k].opt0 = p->nopt;
        int o = first;
        for (;;) {
            if (p->nopt == p->optcap) {
                int cap = p->optcap ? p->optcap * 2 : 16, *v = sd_realloc(p->opt, sizeof *v * (size_t)cap);
                if (!v) { p->bad = 1; return 0; }
                p->opt = v;
                p->optcap = cap;
            }
            p->opt[p->nopt++] = o;
            p->v[k].nopt++;
            if (i >= p->n || p->s[i] != '|') break;
            i++;
            o = prompt(p, &i);
        }
        if (i >= p->n || p->s[i] != ']') return 0;
        *pos = i + 1;
        seq_add(p, q, k);
        return 1;
    }
    int before = -1, after = first;
    if (!(end = when_tail(p, i, &ns, &ne))) {
        i++;
        before = first;
        after = prompt(p, &i);
        if (!(end = when_tail(p, i, &ns, &ne))) return 0;
    }
    int k = new_node(p, N_SCHED);
    if (k < 0) return 0;
    p->v[k].before = before;
    p->v[k].after = after;
    p->v[k].when_s = ns;
    p->v[k].when_e = ne;
    *pos = end;
    seq_add(p, q, k);
    return 1;
}

/* emphasized / scheduled / alternate at an opener; 0 (pool unchanged) when
 * none of them reads here. */
static int bracket(sp *p, size_t *pos, seq *q)
{
    int nv = p->nv, nopt = p->nopt, ok = 0;
    size_t i = *pos + 1;
    char open = p->s[*pos], close = open == '(' ? ')' : ']';
    if (++p->depth > SCHED_MAX_DEPTH) p->bad = 1;
    seq tmp = {-1, -1};
    if (!p->bad) {
        int op = text_node(p, *pos, *pos + 1);
        int a = prompt(p, &i);
        if (i < p->n && p->s[i] == close) {          /* ( A )  or  [ A ] */
            seq_add(p, &tmp, op);
            seq_add(p, &tmp, a);
            seq_add(p, &tmp, text_node(p, i, i + 1));
            *pos = i + 1;
            ok = 1;
        } else if (open == '(' && i < p->n && p->s[i] == ':') {   /* ( A : B ) */
            size_t c = i++;
            int b = prompt(p, &i);
            if (i < p->n && p->s[i] == ')') {
                seq_add(p, &tmp, op);
                seq_add(p, &tmp, a);
                seq_add(p, &tmp, text_node(p, c, c + 1));
                seq_add(p, &tmp, b);
                seq_add(p, &tmp, text_node(p, i, i + 1));
                *pos = i + 1;
                ok = 1;
            }
        } else if (open == '[' && i < p->n && (p->s[i] == ':' || p->s[i] == '|')) {
            ok = sched_or_alt(p, &i, a, &tmp);
            if (ok) *pos = i;
        }
    }
    p->depth--;
    if (!ok || p->bad) { p->nv = nv; p->nopt = nopt; return 0; }
    seq_add(p, q, tmp.head);
    return 1;
}

/* prompt: items while they read; returns the sequence (-1 when empty). */
static int prompt(sp *p, size_t *pos)
{
    seq q = {-1, -1};
    while (*pos < p->n && !p->bad) {
        char c = p->s[*pos];
        if ((c == '(' || c == '[') ? !bracket(p, pos, &q) : !plain(p, pos, &q)) break;
    }
    return q.head;
}

/* start: prompts and stray brackets; -2 when the grammar refuses the text. */
static int start(sp *p)
{
    seq q = {-1, -1};
    size_t i = 0;
    while (i < p->n && !p->bad) {
        size_t at = i;
        seq_add(p, &q, prompt(p, &i));
        if (i < p->n && i == at) {
            if (!strchr("[]():", p->s[i])) return -2;   /* '|' or a lone '\' */
            seq_add(p, &q, text_node(p, i, i + 1));
            i++;
        }
    }
    return p->bad ? -2 : q.head;
}

/* ---- steps and texts ------------------------------------------------------ */

/* collect_steps: the `when` of every scheduled node; 1 when any alternation. */
static int collect(sp *p, int steps, char *used)
{
    int alt = 0;
    for (int k = 0; k < p->nv; k++) {
        node *d = &p->v[k];
        if (d->kind == N_ALT) alt = 1;
        if (d->kind != N_SCHED) continue;
        char buf[64];
        size_t len = d->when_e - d->when_s;
        if (len >= sizeof buf) len = sizeof buf - 1;
        memcpy(buf, p->s + d->when_s, len);
        buf[len] = 0;
        double v = strtod(buf, NULL);
        if (memchr(buf, '.', len)) v *= steps;
        d->when = v >= steps ? steps : v <= -1e9 ? -1000000000 : (int)v;
        if (d->when >= 1) used[d->when] = 1;
    }
    return alt;
}

typedef struct sbuf { char *b; size_t n, cap; int oom; } sbuf;

static void put(sbuf *o, const char *s, size_t n)
{
    if (o->oom) return;
    if (o->n + n + 1 > o->cap) {
        size_t cap = (o->n + n + 1) * 2;
        char *b = sd_realloc(o->b, cap);
        if (!b) { o->oom = 1; return; }
        o->b = b;
        o->cap = cap;
    }
    memcpy(o->b + o->n, s, n);
    o->n += n;
    o->b[o->n] = 0;
}

static void render(const sp *p, int k, int step, sbuf *o)
{
    for (; k >= 0; k = p->v[k].next) {
        const node *d = &p->v[k];
        if (d->kind == N_TEXT) put(o, p->s + d->s, d->e - d->s);
        else if (d->kind == N_SCHED) render(p, step <= d->when ? d->before : d->after, step, o);
        else render(p, p->opt[d->opt0 + (step - 1) % d->nopt], step, o);
    }
}

void a1111_schedule_free(a1111_schedule *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) free(s->v[i].text);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

const char *a1111_schedule_at(const a1111_schedule *s, int step)
{
    for (int i = 0; i < s->n; i++)
        if (step <= s->v[i].end_step) return s->v[i].text;
    return s->n ? s->v[s->n - 1].text : "";
}

int a1111_schedule_build(const char *text, int steps, const char *field, a1111_schedule *out, sd_err *err)
{
    out->v = NULL;
    out->n = 0;
    if (steps < 1 || steps > SCHED_MAX_STEPS)
        return sd_errf(err, SD_EINVAL, "steps", "steps must be in [1, %d] for a prompt schedule, got %d",
                       SCHED_MAX_STEPS, steps);
    sp p = {.s = text, .n = strlen(text)};
    char *used = sd_calloc((size_t)steps + 1, 1);
    int root = used ? start(&p) : -2, fail = !used;
    if (root == -2) p.nv = 0;   /* the grammar refused it: the text as it is, at every step */
    int alt = used && collect(&p, steps, used);
    for (int s = 1; alt && s <= steps; s++) used[s] = 1;
    if (used) used[steps] = 1;
    int n = 0;
    for (int s = 1; used && s <= steps; s++) n += used[s];
    out->v = used ? sd_calloc((size_t)n, sizeof *out->v) : NULL;
    fail |= !out->v;
    for (int s = 1; !fail && s <= steps; s++) {
        if (!used[s]) continue;
        sbuf o = {0};
        if (root == -2) put(&o, text, p.n);
        else render(&p, root, s, &o);
        put(&o, "", 0);
        fail |= o.oom;
        out->v[out->n++] = (a1111_sched_entry){s, o.b};
    }
    free(p.v);
    free(p.opt);
    free(used);
    if (fail) {
        a1111_schedule_free(out);
        return sd_errf(err, SD_ENOMEM, field, "out of memory scheduling the %s", field);
    }
    return 0;
}
