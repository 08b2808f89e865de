/* clip_text.h — text cleanup and pre-tokenization for the CLIP tokenizer
 * (engine-internal; used by clip_bpe.c).
 *
 * clip_clean() turns a UTF-8 prompt into the code points CLIP's BPE sees:
 * a cheap subset of ftfy.fix_text (see docs/ACCURACY.md "## Tokenizer"),
 * HTML unescaping twice, whitespace collapsed and stripped, lowercase as
 * Python's str.lower().  clip_next_piece() then walks CLIP's regex
 *   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * over the result.  The character tables live in unicode_tables.c (generated
 * by gen_unicode_tables.py). */
#ifndef SD_CLIP_TEXT_H
#define SD_CLIP_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "../../base/err.h"

/* Invalid UTF-8 in a prompt is not an error: each bad byte becomes U+FFFD
 * (like Python's errors="replace"), which CLIP then tokenizes as a symbol. */
#define CLIP_REPLACEMENT 0xFFFDu

/* Cleaned prompt as code points (malloc'd, *cps may be NULL when *n == 0). */
int clip_clean(const char *utf8, uint32_t **cps, size_t *n, sd_err *err);

/* Pieces of CLIP's regex.  From *pos, finds the next match: returns 1 and sets
 * *start, *len (in code points) and *special (0 plain, 1 <|startoftext|>,
 * 2 <|endoftext|>), or returns 0 at the end. */
int clip_next_piece(const uint32_t *cp, size_t n, size_t *pos, size_t *start, size_t *len, int *special);

/* Append the UTF-8 encoding of cp to out (needs 4 bytes of room); returns bytes written. */
int clip_utf8_put(uint32_t cp, unsigned char *out);

/* Character classes (Unicode general categories L*, N*; Python str.isspace()). */
int uc_is_letter(uint32_t cp);
int uc_is_number(uint32_t cp);
int uc_is_space(uint32_t cp);
/* Python str.lower() of one code point when it is one code point (U+0130 and
 * final sigma are handled by the caller). */
uint32_t uc_lower1(uint32_t cp);

/* Generated tables (unicode_tables.c). */
typedef struct { const char *name; uint32_t cp; } uc_entity;
extern const uint32_t uc_letter[][2];
extern const int uc_letter_n;
extern const uint32_t uc_number[][2];
extern const int uc_number_n;
extern const uint32_t uc_cased[][2];
extern const int uc_cased_n;
extern const uint32_t uc_case_ignorable[][2];
extern const int uc_case_ignorable_n;
extern const uint32_t uc_lower[][4];
extern const int uc_lower_n;
extern const uint32_t uc_width[][2];
extern const int uc_width_n;
extern const uint32_t uc_compose[][3];
extern const int uc_compose_n;
extern const uc_entity uc_entities[];
extern const int uc_entities_n;

#endif
