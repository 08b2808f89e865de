/* test_pyfloat.c — Python's float() grammar (src/base/pyfloat.c), the LoRA
 * weight of a <lora:name:w> tag and of the loras field's name:w: a table of
 * texts with what CPython 3.11's float() says of each (the value, or
 * ValueError), the rows printed by float() itself: blanks (ASCII, Unicode;
 * not FS..US), signs, exponents, underscores between digits, inf /
 * infinity / nan in any case, Unicode decimal digits; refused: hex,
 * nan(...), misplaced underscores, NUL, U+200B, superscripts, fractions,
 * text that is not UTF-8 (overlong, surrogate), longer than
 * SD_PYFLOAT_MAX. */
#include <math.h>
#include <string.h>

#include "t.h"
#include "../../src/base/pyfloat.h"

typedef struct pf_case {
    const char *text;
    size_t len;
    int ok;         /* float() accepts it */
    double value;
} pf_case;

static const pf_case cases[] = {
    {"0.7", 3, 1, 0.7},
    {"1e1", 3, 1, 10.0},
    {" 1 ", 3, 1, 1.0},
    {"inf", 3, 1, INFINITY},
    {"-inf", 4, 1, -INFINITY},
    {"nan", 3, 1, NAN},
    {"-nan", 4, 1, NAN},
    {"+inf", 4, 1, INFINITY},
    {"Infinity", 8, 1, INFINITY},
    {"iNfInItY", 8, 1, INFINITY},
    {"1E+2", 4, 1, 100.0},
    {".5", 2, 1, 0.5},
    {"5.", 2, 1, 5.0},
    {"+.5", 3, 1, 0.5},
    {"-0", 2, 1, -0.0},
    {"\x09" "0.25\x0a", 6, 1, 0.25},
    {"\x0b" "1\x0c", 3, 1, 1.0},
    {"\x0d" "1", 2, 1, 1.0},
    {"1_0", 3, 1, 10.0},
    {"1.5_0", 5, 1, 1.5},
    {"1e1_0", 5, 1, 10000000000.0},
    {"\xc2\xa0" "1", 3, 1, 1.0},
    {"\xe3\x80\x80" "1\xe3\x80\x80", 7, 1, 1.0},
    {"\xef\xbc\x91", 3, 1, 1.0},
    {"\xd9\xa1.\xd9\xa5", 5, 1, 1.5},
    {"\xf0\x9d\x9f\x8f", 4, 1, 1.0},
    {"\xc2\x85-2", 4, 1, -2.0},
    {"1\xe2\x80\xa8", 4, 1, 1.0},
    {"0x1p1", 5, 0, 0},
    {"0x10", 4, 0, 0},
    {"nan(1)", 6, 0, 0},
    {"infin", 5, 0, 0},
    {"inf_", 4, 0, 0},
    {"1__0", 4, 0, 0},
    {"_1", 2, 0, 0},
    {"1_", 2, 0, 0},
    {"1_.5", 4, 0, 0},
    {"1._5", 4, 0, 0},
    {"1e_1", 4, 0, 0},
    {"1_e1", 4, 0, 0},
    {"\x1c" "1", 2, 0, 0},
    {"1\x1f", 2, 0, 0},
    {"", 0, 0, 0},
    {"  ", 2, 0, 0},
    {".", 1, 0, 0},
    {"e1", 2, 0, 0},
    {"1e", 2, 0, 0},
    {"1e+", 3, 0, 0},
    {"+-1", 3, 0, 0},
    {"--1", 3, 0, 0},
    {"1.2.3", 5, 0, 0},
    {"1\x00", 2, 0, 0},
    {"\xe2\x80\x8b" "1", 4, 0, 0},
    {"1 2", 3, 0, 0},
    {"\xc2\xb2", 2, 0, 0},
    {"\xe2\x85\x95", 3, 0, 0},
    {"0.5x", 4, 0, 0},
    {"in f", 4, 0, 0},
    {"1,5", 3, 0, 0},
    {"\xff", 1, 0, 0},
    {"1e400", 5, 1, INFINITY},
    {"-1e400", 6, 1, -INFINITY},
    {"\xc0\xb1", 2, 0, 0},          /* overlong '1' */
    {"\xed\xa0\x80" "1", 4, 0, 0},  /* a surrogate */
    {"\xef\xbc\x91\xef\xbc\x8e\xef\xbc\x95", 9, 0, 0},   /* fullwidth 1.5: U+FF0E is no '.' */
};

int main(void)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const pf_case *c = &cases[i];
        double v = 12345;
        int rc = sd_pyfloat(c->text, c->len, &v);
        int ok = c->ok ? rc == 0 && (isnan(c->value) ? isnan(v) : v == c->value && signbit(v) == signbit(c->value))
                       : rc == -1 && v == 12345;
        if (!ok) {
            bad++;
            CHECKF(0, "pyfloat: as float()", "case %zu (%zu bytes): rc %d value %.17g, want %s %.17g", i, c->len, rc, v,
                   c->ok ? "accepted" : "refused", c->value);
        }
    }
    CHECKF(bad == 0, "pyfloat: every row as CPython 3.11's float() says", "%d rows differ", bad);
    char longer[SD_PYFLOAT_MAX + 2];
    memset(longer, '0', sizeof longer);
    double v;
    CHECK(!sd_pyfloat(longer, SD_PYFLOAT_MAX, &v) && v == 0, "pyfloat: SD_PYFLOAT_MAX digits read");
    CHECK(sd_pyfloat(longer, SD_PYFLOAT_MAX + 1, &v) == -1, "pyfloat: a longer text refused");
    CHECK(!sd_pyfloat("0.5junk", 3, &v) && v == 0.5, "pyfloat: reads n bytes only");
    return t_done();
}
