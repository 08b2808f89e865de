/* test_a1111_prompt.c — the A1111 prompt module (src/engine/prompt/) on
 * what the goldens do not hold: the refusals (AND, a weight float() cannot
 * read, more chunks than SD_MAX_PROMPT_WINDOWS — 'x,'x3000 and BREAKx1000
 * inside the 8192-byte prompt limit —, weights that are not finite, SDXL),
 * each naming its field; odd syntax A1111 accepts, with the result its
 * algorithm gives; schedules beyond schedules.json.  Needs no model: the
 * built-in CLIP vocabulary. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "../../src/engine/prompt/a1111.h"
#include "../../src/engine/sd.h"

static sd_tokenizer *tok;

/* parse + chunk with the engine's window limit: 0 or -1 + err. */
static int chunk(const char *text, const char *field, a1111_chunks *c, sd_err *err)
{
    a1111_parsed p;
    sd_err_clear(err);
    memset(c, 0, sizeof *c);
    if (a1111_parse(text, field, &p, err)) return -1;
    int rc = a1111_chunk(tok, &p, field, SD_MAX_PROMPT_WINDOWS, c, err);
    a1111_parsed_free(&p);
    return rc;
}

static void refused(const char *label, const char *text, const char *field, const char *want)
{
    a1111_chunks c;
    sd_err err;
    int rc = chunk(text, field, &c, &err);
    CHECKF(rc == -1 && err.code == SD_EINVAL && !strcmp(err.field, field) && strstr(err.msg, want), label,
           "rc %d field '%s' msg '%s'", rc, err.field, err.msg);
    a1111_chunks_free(&c);
}

static void refusals(void)
{
    sd_err err;
    static const char *and_yes[] = {"a cat AND a dog", "(a)AND(b)", "AND", "x AND", "a\xe3\x80\x80" "AND b"};
    static const char *and_no[] = {"ANDROID", "a cat and a dog", "BRAND new", "AND_x", "\xc3\xa9" "AND"};
    for (size_t i = 0; i < sizeof and_yes / sizeof *and_yes; i++) {
        sd_err_clear(&err);
        int rc = a1111_check_and(and_yes[i], "negative_prompt", &err);
        CHECKF(rc == -1 && !strcmp(err.field, "negative_prompt") && strstr(err.msg, "composable diffusion"),
               "AND as a word refused naming the field", "'%s': %s", and_yes[i], err.msg);
    }
    for (size_t i = 0; i < sizeof and_no / sizeof *and_no; i++) {
        sd_err_clear(&err);
        CHECKF(a1111_check_and(and_no[i], "prompt", &err) == 0, "AND inside a word (or lowercase) is text", "'%s'",
               and_no[i]);
    }
    refused("a weight float() cannot read: 400 naming the field", "(a:1.2.3)", "negative_prompt", "1.2.3");
    refused("a weight of dots alone refused", "(a:.)", "prompt", "not a number");

    char *x = t_repeat("x,", 3000), *brk = t_repeat("BREAK ", 1000), *big = t_repeat("9", 400);
    CHECK(strlen(x) <= 8192 && strlen(brk) <= 8192, "the long prompts fit the 8192-byte limit");
    refused("'x,' x3000: too many chunks, with the count and the limit", x, "prompt", "the limit is 8 windows");
    refused("BREAK x1000: 1000 chunks refused", brk, "negative_prompt", "1000 windows");
    char inf[500];
    snprintf(inf, sizeof inf, "(a:%s)", big);
    refused("a weight that overflows to inf refused", inf, "prompt", "not a finite number");
    char prod[500];
    snprintf(prod, sizeof prod, "((a:%.200s):%.200s)", big, big);
    refused("weights whose product overflows (1e200 * 1e200) refused", prod, "prompt", "not a finite number");
    /* finite in double, not as the float32 the emphasis multiplies by */
    refused("a weight above FLT_MAX (1e39) refused", "(a:1000000000000000000000000000000000000000)", "prompt",
            "as a 32-bit float");
    char *open1000 = t_repeat("(", 1000), text[1100];
    snprintf(text, sizeof text, "%sa", open1000);
    refused("1000 open brackets (1.1^1000 = 2.5e41) refused", text, "negative_prompt", "not a finite number");
    free(open1000);

    /* a weight float32 holds whose product with the encoder's output does
     * not: the emphasis says so instead of leaving inf/NaN in the context */
    enum { EW = 4 };
    static float zz[77 * EW];
    double mults[77];
    for (int i = 0; i < 77 * EW; i++) zz[i] = 10.0f;
    for (int t = 0; t < 77; t++) mults[t] = t == 1 ? 3e38 : 1.0;
    CHECK(a1111_emphasis(zz, mults, EW) == -1, "emphasis overflowing float32 (10 * 3e38) answers -1");
    for (int i = 0; i < 77 * EW; i++) zz[i] = 10.0f;
    mults[1] = 1.5;
    int finite = a1111_emphasis(zz, mults, EW) == 0;
    for (int i = 0; i < 77 * EW; i++) finite &= isfinite(zz[i]) != 0;
    CHECK(finite, "emphasis with weight 1.5 answers 0 and finite numbers");
    free(x); free(brk); free(big);

    /* exactly the limit is fine; one more chunk is not */
    a1111_chunks c;
    char *seven = t_repeat("a BREAK ", 7);
    int rc = chunk(seven, "prompt", &c, &err);
    CHECKF(rc == 0 && c.n_chunks == 7 && c.token_count == 7 * 75, "7 BREAKs after text: 7 chunks (the last empty one is not kept)",
           "rc %d chunks %d count %d %s", rc, c.n_chunks, c.token_count, err.msg);
    a1111_chunks_free(&c);
    char eight[200];
    snprintf(eight, sizeof eight, "%sb", seven);
    rc = chunk(eight, "prompt", &c, &err);
    CHECKF(rc == 0 && c.n_chunks == 8, "8 chunks: the limit, accepted", "rc %d chunks %d %s", rc, c.n_chunks, err.msg);
    a1111_chunks_free(&c);
    snprintf(eight, sizeof eight, "%sb BREAK c", seven);
    refused("9 chunks refused", eight, "prompt", "9 windows");
    free(seven);

    float *z = (float *)1;
    int T = 5;
    sd_err_clear(&err);
    rc = a1111_condition(NULL, tok, SD_FAMILY_SDXL, "a cat", 1, "prompt", &z, &T, &err);
    CHECKF(rc == -1 && !z && T == 0 && !strcmp(err.field, "prompt") && strstr(err.msg, "sdxl"),
           "SDXL (two encoders) refused naming the field", "rc %d msg %s", rc, err.msg);
}

/* ---- odd syntax: what A1111's algorithm gives ------------------------------- */

typedef struct want_frag { const char *text; double w; } want_frag;

static void parses_to(const char *label, const char *text, int n, const want_frag *want)
{
    a1111_parsed p;
    sd_err err;
    sd_err_clear(&err);
    int ok = a1111_parse(text, "prompt", &p, &err) == 0 && p.n == n;
    for (int i = 0; ok && i < n; i++) ok = !strcmp(p.v[i].text, want[i].text) && p.v[i].weight == want[i].w;
    CHECKF(ok, label, "'%s' -> %d pieces, first '%s' %g %s", text, ok ? n : p.n, p.n ? p.v[0].text : "",
           p.n ? p.v[0].weight : 0.0, err.msg);
    if (!err.code) a1111_parsed_free(&p);
}

static void odd_syntax(void)
{
    parses_to("(a:abc) is text in brackets, as A1111", "(a:abc)", 1, (want_frag[]){{"a:abc", 1.1}});
    parses_to("a weight with no '(' open is text", "a :1.5) b", 1, (want_frag[]){{"a :1.5) b", 1.0}});
    parses_to("stray closers and colons are text", ")))]]:::", 1, (want_frag[]){{")))]]:::", 1.0}});
    parses_to("only openers: one empty piece", "(((([[[", 1, (want_frag[]){{"", 1.0}});
    parses_to("a lone backslash is dropped", "\\a\\", 1, (want_frag[]){{"a", 1.0}});
    parses_to("BREAK weighted 0 merges with its neighbours (-0.0 == 0)", "(a BREAK b:0)", 1,
              (want_frag[]){{"aBREAKb", 0.0}});
    parses_to("\\BREAK is still a BREAK", "\\BREAK", 3, (want_frag[]){{"", 1.0}, {"BREAK", -1.0}, {"", 1.0}});
    parses_to("U+3000 is \\s around BREAK", "a\xe3\x80\x80" "BREAK\xe3\x80\x80" "b", 3,
              (want_frag[]){{"a", 1.0}, {"BREAK", -1.0}, {"b", 1.0}});
    parses_to("BREAK after a letter is no BREAK (\\b)", "\xc3\xa9" "BREAK", 1, (want_frag[]){{"\xc3\xa9" "BREAK", 1.0}});
    parses_to("invalid UTF-8 passes through", "\xff(\xfe)", 2, (want_frag[]){{"\xff", 1.0}, {"\xfe", 1.1}});
    parses_to("weights multiply in closing order", "((a:2):0.5)", 1, (want_frag[]){{"a", 1.0}});

    a1111_chunks c;
    sd_err err;
    int rc = chunk("\\BREAK", "prompt", &c, &err);
    CHECKF(rc == 0 && c.n_chunks == 1 && c.token_count == 75, "a BREAK with nothing after: one chunk of 75",
           "rc %d chunks %d count %d", rc, c.n_chunks, c.token_count);
    a1111_chunks_free(&c);
    rc = chunk("(BREAK:1.2)", "prompt", &c, &err);
    CHECKF(rc == 0 && c.n_chunks == 1 && c.ids[1] == 2568 && c.mults[1] == -1.2 && c.ids[2] == 49407,
           "a weighted BREAK is the word 'break' (weight -1.2)", "rc %d chunks %d id %d", rc, c.n_chunks,
           c.n_chunks ? c.ids[1] : -1);
    a1111_chunks_free(&c);
}

/* ---- schedules beyond schedules.json ---------------------------------------- */

static void schedule_is(const char *label, const char *text, int steps, int n, const a1111_sched_entry *want)
{
    a1111_schedule s;
    sd_err err;
    sd_err_clear(&err);
    int ok = a1111_schedule_build(text, steps, "prompt", &s, &err) == 0 && s.n == n;
    for (int i = 0; ok && i < n; i++) ok = s.v[i].end_step == want[i].end_step && !strcmp(s.v[i].text, want[i].text);
    CHECKF(ok, label, "'%s': %d entries, first %d '%s' %s", text, s.n, s.n ? s.v[0].end_step : 0,
           s.n ? s.v[0].text : "", err.msg);
    if (!err.code) a1111_schedule_free(&s);
}

static void schedules(void)
{
    schedule_is("a negative when: the second text throughout", "[a:b:-1]", 20, 1, (a1111_sched_entry[]){{20, "b"}});
    schedule_is("a fraction over 1 caps at steps", "[a:b:2.5]", 20, 1, (a1111_sched_entry[]){{20, "a"}});
    schedule_is("an exponent without '.' is a step", "[a:b:1e1]", 20, 2,
                (a1111_sched_entry[]){{10, "a"}, {20, "b"}});
    schedule_is("'|' outside brackets: the grammar refuses, text kept", "a | b [c:d:5]", 20, 1,
                (a1111_sched_entry[]){{20, "a | b [c:d:5]"}});
    schedule_is("nested edit inside an edit", "[[a:b:3]:c:10]", 20, 3,
                (a1111_sched_entry[]){{3, "a"}, {10, "b"}, {20, "c"}});
    schedule_is("emphasis kept around an edit", "(x [a:b:2]:1.2)", 4, 2,
                (a1111_sched_entry[]){{2, "(x a:1.2)"}, {4, "(x b:1.2)"}});
    schedule_is("an empty alternative is empty text", "[a|]", 3, 3,
                (a1111_sched_entry[]){{1, "a"}, {2, ""}, {3, "a"}});
    char *deep = t_repeat("[", 200);
    char text[600];
    snprintf(text, sizeof text, "%sa:b:5]", deep);
    schedule_is("nesting deeper than 64: the text kept as it is", text, 20, 1, (a1111_sched_entry[]){{20, text}});
    free(deep);
    a1111_schedule s;
    sd_err err;
    sd_err_clear(&err);
    int rc = a1111_schedule_build("a", 0, "prompt", &s, &err);
    CHECKF(rc == -1 && !strcmp(err.field, "steps"), "0 steps refused naming steps", "rc %d %s", rc, err.msg);
    sd_err_clear(&err);
    rc = a1111_schedule_build("[a|b] [c:d:0.5]", 10, "prompt", &s, &err);
    CHECKF(rc == 0 && !strcmp(a1111_schedule_at(&s, 1), "a c") && !strcmp(a1111_schedule_at(&s, 6), "b d") &&
           !strcmp(a1111_schedule_at(&s, 10), "b d"), "a1111_schedule_at gives the text of each step", "%s",
           err.msg);
    if (rc == 0) a1111_schedule_free(&s);
}

int main(void)
{
    sd_err err;
    sd_err_clear(&err);
    tok = tok_load_builtin(&err);
    CHECKF(tok != NULL, "built-in CLIP vocabulary loads", "%s", err.msg);
    if (!tok) return t_done();
    refusals();
    odd_syntax();
    schedules();
    tok_free(tok);
    return t_done();
}
