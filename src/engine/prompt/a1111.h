/* a1111.h — AUTOMATIC1111's prompt conventions (stable-diffusion-webui
 * v1.10.1) as an engine module: the attention syntax, its 75-token chunks
 * with per-token multipliers, the prompt-editing / alternation schedule, and
 * the conditioning A1111 builds from them (clip skip, emphasis "Original").
 *
 * Pipeline for one prompt (docs/PROMPTS.md; the reference is
 * modules/prompt_parser.py, sd_hijack_clip.py, sd_emphasis.py):
 *   a1111_check_and   refuse `AND` (composable diffusion)
 *   a1111_schedule    [a:b:when] / [a|b] -> the text in effect at each step
 *   a1111_parse       `( ) [ ] (text:w) \( BREAK` -> (text, weight) list
 *   a1111_chunk       each text tokenized alone -> 77-id chunks + multipliers
 *   a1111_condition   all of the above, each chunk encoded, emphasis applied
 * Every function that can fail takes `field` ("prompt", "negative_prompt")
 * and names it in the sd_err.  Nothing here is wired into requests yet. */
#ifndef SD_A1111_H
#define SD_A1111_H

#include <stdint.h>

#include "../../base/err.h"
#include "../loader/family.h"
#include "../models/clip.h"
#include "../tokenizer/clip_bpe.h"

#define A1111_COMMA_ID 267          /* ",</w>" in CLIP's vocabulary */
#define A1111_COMMA_BACKTRACK 20    /* opts.comma_padding_backtrack */

/* One parsed piece: text and weight (a product in double precision, as
 * Python computes it).  A BREAK is the piece ("BREAK", -1.0). */
typedef struct a1111_frag {
    char *text;
    double weight;
} a1111_frag;

typedef struct a1111_parsed {
    a1111_frag *v;
    int n;
} a1111_parsed;

/* parse_prompt_attention: never fails on syntax A1111 accepts (unbalanced
 * or stray brackets are text or close at the end, as there).  The one
 * syntax error is a weight float() cannot read, e.g. "(a:1.2.3)", where
 * A1111 raises: -1 + err naming `field`.  Free with a1111_parsed_free. */
int a1111_parse(const char *prompt, const char *field, a1111_parsed *out, sd_err *err);
void a1111_parsed_free(a1111_parsed *p);
/* 1 when f is a BREAK that closes a chunk (text "BREAK", weight exactly -1). */
int a1111_is_break(const a1111_frag *f);

/* -1 + err naming `field` when the prompt holds the word AND (regex
 * \bAND\b, A1111's composable-diffusion separator), else 0. */
int a1111_check_and(const char *prompt, const char *field, sd_err *err);

/* Chunks as A1111 builds them (SD1 ids: padded with 49407; SD2's 0 after
 * the first end id is a1111_condition's business). */
typedef struct a1111_chunks {
    int32_t *ids;       /* [n_chunks][77]: 49406, 75 ids, 49407 */
    double *mults;      /* [n_chunks][77]: the weights (1.0 at start/end/pad) */
    int n_chunks;
    int token_count;    /* A1111's count (75 per closed chunk + the last one's) */
} a1111_chunks;

/* Tokenize every parsed text on its own, then cut in chunks of 75 with the
 * comma backtracking and BREAKs.  More than max_chunks chunks (and any
 * weight that is not finite) is -1 + err naming `field`, with the count and
 * the limit; the count is made before anything is allocated for them. */
int a1111_chunk(const sd_tokenizer *tok, const a1111_parsed *p, const char *field, int max_chunks,
                a1111_chunks *out, sd_err *err);
void a1111_chunks_free(a1111_chunks *c);

/* Parse + chunk + encode: SD1 family: clip_skip 1 = last layer, n > 1 =
 * final layer norm of hidden_states[-n]; SD2 family: ids after the first end
 * id of a chunk are 0 and the encoder's default (penultimate) layer is used,
 * clip_skip ignored as in A1111.  Emphasis "Original" per chunk.  *out =
 * malloc'd [*T = 77 * chunks][clip_width] floats.  At most
 * SD_MAX_PROMPT_WINDOWS chunks.  SDXL is refused (two encoders). */
int a1111_condition(sd_clip *clip, const sd_tokenizer *tok, sd_family family, const char *text, int clip_skip,
                    const char *field, float **out, int *T, sd_err *err);

/* Emphasis "Original" on one chunk z[77][W] in place: m0 = mean(z);
 * z *= mult[token]; z *= m0 / mean(z) (float32 as torch; a chunk whose
 * multipliers are all 1 is left as it is, which is the same numbers). */
void a1111_emphasis(float *z, const double *mults, int W);
/* SD2 (OpenCLIP): in each 77-id chunk, every id after the first `eos` becomes 0. */
void a1111_openclip_pad(int32_t *ids, int n_chunks, int eos);

/* Prompt editing and alternation (get_learned_conditioning_prompt_schedules
 * without hires): the (end_step, text) pairs for `steps` steps, end steps
 * ascending, the last one == steps.  A prompt its grammar cannot read is one
 * pair (steps, prompt), as in A1111.  steps in [1, 1000], else -1 + err
 * naming "steps".  Free with a1111_schedule_free. */
typedef struct a1111_sched_entry {
    int end_step;
    char *text;
} a1111_sched_entry;

typedef struct a1111_schedule {
    a1111_sched_entry *v;
    int n;
} a1111_schedule;

int a1111_schedule_build(const char *prompt, int steps, const char *field, a1111_schedule *out, sd_err *err);
void a1111_schedule_free(a1111_schedule *s);
/* The text in effect at step s (1-based, 1..steps) of a built schedule. */
const char *a1111_schedule_at(const a1111_schedule *s, int step);

/* The regexes' character rules shared by the module's parsers
 * (a1111_text.c): the code point at s[i] (invalid bytes read as U+FFFD,
 * length 1); Python's \s and \w; the first index >= i that is not \s;
 * 1 when the whole word w (regex \bw\b) is at s[i]. */
uint32_t a1111_cp_at(const char *s, size_t n, size_t i, int *len);
int a1111_is_space(uint32_t cp);
int a1111_is_word(uint32_t cp);
size_t a1111_skip_space(const char *s, size_t n, size_t i);
int a1111_word_at(const char *s, size_t n, size_t i, const char *w);

#endif
