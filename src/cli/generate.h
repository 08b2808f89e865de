/* generate.h — `sdserve generate`: the command line parsed into a struct
 * (separate from running it, so every bad argument can be unit-tested), and
 * the output file naming for -n. */
#ifndef SD_CLI_GENERATE_H
#define SD_CLI_GENERATE_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "../base/err.h"
#include "../engine/sd.h"
#include "../image/image.h"
#include "../jobs/request.h"

typedef struct gen_args {
    const char *model, *config, *vocab;
    const char *embeddings_dir;   /* --embeddings-dir: textual-inversion embeddings */
    /* the request, flags and defaults from the field table (jobs/request.h):
     * --prompt, --negative (argv's strings, not owned), --steps, --cfg,
     * --sampler, --seed (-1 = random: req.seed_was_random), -W/-H, -n,
     * --strength, --format, --quality; ranges as the HTTP API's.
     * req.out_format: -o's extension (.png .jpg .jpeg .webp), else --format,
     * else PNG; an unknown extension without --format, or one disagreeing
     * with --format, is refused */
    sd_request req;
    uint64_t given;             /* bit i: req_fields[i]'s flag was given (64 rows at most) */
    const char *init_image;     /* --init-image: file path, or NULL for txt2img */
    const char *output;         /* default "out.png" */
    const char *output_flag;    /* "-o" or "--output", as given (named in errors) */
    int threads;                /* [0, 1024], 0 = all cores */
    const char *precision;      /* NULL = auto (sd_load_opts) */
    sd_prediction prediction;   /* --prediction (sd_load_opts; AUTO by default) */
    int zero_snr;               /* --zero-terminal-snr: 0 auto, 1 on, -1 off */
    const char *vae;            /* --vae: VAE override file or folder, NULL = the model's */
    const char *lora_dir;       /* --lora-dir: where --lora / <lora:...> names resolve */
    const char *vae_tiling;     /* --vae-tiling auto|on|off, NULL = auto */
    const char *preview_decoder; /* --preview-decoder: TAESD file or folder, NULL = none */
    const char *vae_decoder;    /* --vae-decoder vae|taesd, NULL = vae */
    int help;                   /* --help / -h given */
    const char *mask_image;     /* --mask FILE (with --init-image), white = repaint; NULL = none */
} gen_args;

/* argv[0] is the command name ("generate").  Returns 0, or -1 with err set
 * (SD_EINVAL, field = the flag) for an unknown flag, a missing or
 * non-numeric value, a value out of range, or a missing --model/--prompt
 * (not checked when --help is given). */
int gen_args_parse(int argc, char **argv, gen_args *a, sd_err *err);

/* File for image i of n: i == 0 -> `output`; i >= 1 -> "-i" inserted before
 * the extension ("out.png" -> "out-1.png", "dir.v2/out" -> "dir.v2/out-1").
 * Returns 0, or -1 when cap is too small. */
int gen_output_name(const char *output, int i, char *buf, size_t cap);

void gen_usage(FILE *f);

#endif
