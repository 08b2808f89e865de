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
 *   a1111_plan_build  a request's field: schedule + every distinct text
 *                     chunked once (a1111_plan.c); a1111_conds_encode and
 *                     a1111_conds_rows turn two plans into the UNet's
 *                     context at each model call (a1111_conds.c)
 * Every function that can fail takes `field` (the engine's names "prompt",
 * "negative") and names it in the sd_err; messages say "negative prompt". */
#ifndef SD_A1111_H
#define SD_A1111_H

#include <stdint.h>

#include "../../base/err.h"
#include "../loader/family.h"
#include "../models/clip.h"
#include "../tokenizer/clip_bpe.h"
#include "embeddings.h"

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
    const float **vec;  /* [n_chunks][77]: an embedding's vector for the slot, NULL =
                           the id's own; NULL when no embedding is used (a1111_chunk_emb) */
} a1111_chunks;

/* Tokenize every parsed text on its own, then cut in chunks of 75 with the
 * comma backtracking and BREAKs.  More than max_chunks chunks (and any
 * weight that is not finite) is -1 + err naming `field`, with the count and
 * the limit; the count is made before anything is allocated for them. */
int a1111_chunk(const sd_tokenizer *tok, const a1111_parsed *p, const char *field, int max_chunks,
                a1111_chunks *out, sd_err *err);
void a1111_chunks_free(a1111_chunks *c);
/* The same with textual-inversion embeddings (emb NULL = none): their
 * names in the pieces' tokens become their vectors (a1111_chunk.c says the
 * rules); out->vec points into emb, which must outlive the chunks. */
int a1111_chunk_emb(const sd_tokenizer *tok, const sd_embeddings *emb, const a1111_parsed *p, const char *field,
                    int max_chunks, a1111_chunks *out, sd_err *err);

/* Parse + chunk + encode: SD1 family: clip_skip 1 = last layer, n > 1 =
 * final layer norm of hidden_states[-n]; SD2 family: ids after the first end
 * id of a chunk are 0 and the encoder's default (penultimate) layer is used,
 * clip_skip ignored as in A1111.  Emphasis "Original" per chunk.  *out =
 * malloc'd [*T = 77 * chunks][clip_width] floats.  At most
 * SD_MAX_PROMPT_WINDOWS chunks.  SDXL is refused here (two encoders: its
 * texts are encoded by a1111_conds_encode_multi, which joins them). */
int a1111_condition(sd_clip *clip, const sd_tokenizer *tok, sd_family family, const char *text, int clip_skip,
                    const char *field, float **out, int *T, sd_err *err);
/* The same with embeddings (emb NULL = none). */
int a1111_condition_emb(sd_clip *clip, const sd_tokenizer *tok, const sd_embeddings *emb, sd_family family,
                        const char *text, int clip_skip, const char *field, float **out, int *T, sd_err *err);

/* Emphasis "Original" on one chunk z[77][W] in place: m0 = mean(z);
 * z *= mult[token]; z *= m0 / mean(z) (float32 as torch; a chunk whose
 * multipliers are all 1 is left as it is, which is the same numbers).
 * 0, or -1 when the result is not finite (a weight so large that z * mult
 * overflows float32, `(a:3e38)`, or weights that bring the mean to 0):
 * the caller refuses the text rather than condition the UNet on inf/NaN,
 * which gives a black picture. */
int a1111_emphasis(float *z, const double *mults, int W);
/* The error of a chunk a1111_emphasis could not weight: -1 + err naming `field`. */
int a1111_emphasis_fail(const char *field, sd_err *err);
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
/* "negative prompt" for the engine's field "negative", else field: how
 * messages name the text. */
const char *a1111_what(const char *field);

/* An attempted weight A1111 would read as text: `(a:abc)`, `(a:1,5)` --
 * inside an open '(', a ':' then one blank-free word that is not a number
 * then ')'.  -1 + err naming `field` (docs/PROMPTS.md "Refusals"), else 0.
 * `(a:)`, `(12:30 pm)` and a ':' outside '(' stay text as in A1111. */
int a1111_check_weights(const char *prompt, const char *field, sd_err *err);

/* ---- one request field, planned for a run (a1111_plan.c) ----------------
 * The schedule of the text at `steps` steps, each distinct text of it
 * parsed and chunked once (chunk ids and multipliers kept for encoding).
 * Refuses AND, an unreadable weight, a text of more than max_chunks chunks
 * and, over all its distinct texts, more than A1111_MAX_PLAN_CHUNKS
 * chunks (alternation or editing on every step of a long prompt). */
#define A1111_MAX_PLAN_CHUNKS 64
typedef struct a1111_plan {
    a1111_schedule sched;
    int *text_of;           /* [sched.n]: the entry's index in chunks[] */
    a1111_chunks *chunks;   /* [n_texts]: each distinct text's chunks */
    int n_texts, total_chunks, max_chunks;
} a1111_plan;

int a1111_plan_build(const sd_tokenizer *tok, const char *text, int steps, const char *field, int max_chunks,
                     a1111_plan *out, sd_err *err);
/* The same with embeddings (emb NULL = none; it must outlive the plan). */
int a1111_plan_build_emb(const sd_tokenizer *tok, const sd_embeddings *emb, const char *text, int steps,
                         const char *field, int max_chunks, a1111_plan *out, sd_err *err);
void a1111_plan_free(a1111_plan *p);
/* The entry in effect at model call `call` (0-based; A1111's CFGDenoiser
 * step counter): the first whose end step >= call, or the first entry when
 * none is (reconstruct_cond_batch). */
int a1111_plan_entry(const a1111_plan *p, int call);

/* ---- the encoded texts of a run (a1111_conds.c) --------------------------
 * Side 0 = negative prompt, side 1 = prompt.  Every distinct text's chunks
 * encoded once (clip_encode in batches of at most `max_batch` windows,
 * negative's then prompt's, as one call for the usual short pair), emphasis
 * applied; plus the empty prompt's chunk when two texts differ in length. */
typedef struct a1111_conds {
    const a1111_plan *plan[2];
    int *first[2];          /* [n_texts]: the text's first chunk in z */
    float *z;               /* [chunks][77][W] */
    int empty;              /* the empty prompt's chunk in z, -1 = none */
    int W, max_chunks;      /* the longest context of any call, in chunks */
    float *pooled;          /* SDXL: [chunks][P], the pooled vector of each chunk, or NULL */
    int P;                  /* pooled width (SDXL's text_encoder_2 projection), 0 = none */
} a1111_conds;

/* family decides the padding (SD2: 0 after the first end id); skip is
 * clip_encode's.  The plans must outlive the conds. */
int a1111_conds_encode(sd_clip *clip, const sd_tokenizer *tok, sd_family family, int skip, int max_batch,
                       const a1111_plan *negative, const a1111_plan *prompt, a1111_conds *out, sd_err *err);
/* The same for several text encoders (clips in the order their outputs join
 * the context: SDXL's CLIP-L, then OpenCLIP-bigG).  For an SDXL family each
 * encoder gives hidden_states[-2] without the final layer norm (skip is
 * ignored, as A1111 does), its own padding (0 after the first end id for the
 * second), the emphasis applied to its output alone; W = the widths summed,
 * te1's columns first; pooled[chunk] from the last encoder with a
 * text_projection (clip_proj_dim).  zero_neg: the negative side's context
 * and pooled rows are zeros (the SDXL rule for an empty negative prompt:
 * diffusers' force_zeros_for_empty_prompt, A1111's force_zero_negative_prompt).
 * Textual-inversion vectors: an SDXL pair's clip_l values go to the first
 * encoder, its clip_g values to the second (emb_dir_load2 keeps only pairs
 * usable on a two-encoder model). */
int a1111_conds_encode_multi(sd_clip *const *clips, int n_clips, const sd_tokenizer *tok, sd_family family,
                             int skip, int max_batch, int zero_neg, const a1111_plan *negative,
                             const a1111_plan *prompt, a1111_conds *out, sd_err *err);
void a1111_conds_free(a1111_conds *c);
/* Which rows a1111_conds_rows writes: the prompt's only, [negative x
 * B][prompt x B] (diffusers' batch), or [prompt x B][negative x B]
 * (A1111's CFGDenoiser).  The UNet's rows are independent, so the order
 * changes no bits; it only matches the sampler's layout. */
enum { A1111_ROWS_PROMPT = 0, A1111_ROWS_NEGATIVE_FIRST = 1, A1111_ROWS_PROMPT_FIRST = 2 };
/* THE context choice of a run: the UNet's context rows for model call
 * `call` in `order` (A1111_ROWS_*), each side the text in effect at that call, the shorter padded with
 * the empty prompt's chunk (A1111's "Pad prompt/negative prompt").  ctx
 * holds rows x 77 x max_chunks x W floats; it is rewritten only when the
 * texts in effect differ from the last call's (*key, -1 before the first).
 * Returns the context length T (77 x chunks). */
int a1111_conds_rows(const a1111_conds *c, int call, int B, int order, float *ctx, int *key);
/* A1111's default instead (pad_cond_uncond off, CFGDenoiser.forward):
 * each side keeps its own length.  The same rows in `order`, packed:
 * [first side x B] of T[0] tokens, then [second side x B] of T[1] (0 when
 * `order` has one side), at most the ctx of a1111_conds_rows.  Returns 1
 * when both sides are there with different lengths (then they are two UNet
 * calls, one per side), else 0: ctx and T[0] are then a1111_conds_rows'
 * (equal lengths) or the prompt's own rows (A1111_ROWS_PROMPT). */
int a1111_conds_rows_own(const a1111_conds *c, int call, int B, int order, float *ctx, int *key, int T[2]);
/* The pooled rows beside a1111_conds_rows' context rows (same call, B and
 * order): each side's text in effect, the pooled vector of its FIRST chunk
 * (A1111: zs[0].pooled).  pooled holds rows x c->P floats; c->P must be > 0. */
void a1111_conds_pooled(const a1111_conds *c, int call, int B, int order, float *pooled);

uint32_t a1111_cp_at(const char *s, size_t n, size_t i, int *len);
int a1111_is_space(uint32_t cp);
int a1111_is_word(uint32_t cp);
size_t a1111_skip_space(const char *s, size_t n, size_t i);
int a1111_word_at(const char *s, size_t n, size_t i, const char *w);

#endif
