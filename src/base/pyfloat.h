/* pyfloat.h — a number as Python's float() reads text: the grammar of the
 * LoRA weights A1111 takes (its extra-network parser hands the text after
 * the name to float(): "<lora:name:0.7>"), so that sdserve refuses and
 * accepts the same spellings (tags.c) and the `loras` field's name:weight
 * text does too (jobs/request.c).  Range rules are the callers'.
 *
 * Accepted, as CPython 3.11 float(str): blanks around (space, \t \n \v \f
 * \r, and Unicode's: U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028,
 * U+2029, U+202F, U+205F, U+3000); a sign; decimal digits with an optional
 * '.' and exponent ("1e1", ".5", "5.", "1E+2"), single underscores between
 * digits ("1_000.5"); "inf", "infinity", "nan" in any case, signed; any
 * Unicode decimal digit (Nd: "١.٥", fullwidth "１") as its ASCII one.
 * Refused: hex ("0x1p1"), "nan(...)", an empty text, a NUL, text that is
 * not UTF-8, and anything else float() raises ValueError for; also text of
 * more than SD_PYFLOAT_MAX bytes (float() has no limit).  Reads exactly n
 * bytes; allocates nothing.  Fuzzed by tests/fuzz/fuzz_pyfloat.c. */
#ifndef SD_PYFLOAT_H
#define SD_PYFLOAT_H

#include <stddef.h>

#define SD_PYFLOAT_MAX 256

/* 0 with *out the value (overflow gives ±inf, as float() does), or -1
 * when float() would refuse s[0..n) (*out untouched). */
int sd_pyfloat(const char *s, size_t n, double *out);

#endif
