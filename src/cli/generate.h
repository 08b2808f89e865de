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

#define GEN_MAX_SEED 9007199254740991ULL   /* 2^53 - 1, as the HTTP API */

typedef struct gen_args {
    const char *model, *config, *vocab;
    const char *prompt, *negative;
    const char *init_image;     /* file path, or NULL for txt2img */
    float strength;             /* (0, 1), default 0.7 */
    int strength_set;
    int steps;                  /* [1, 150], default 30 */
    float cfg;                  /* (0, 20], default 7 */
    sd_sampler sampler;         /* default euler_a */
    uint64_t seed;              /* [0, 2^53-1]; see seed_random */
    int seed_random;            /* no --seed or --seed -1 */
    int width, height;          /* [1, 1024], default 512; ignored with --init-image */
    int size_set;
    int n;                      /* [1, 4], default 1 */
    const char *output;         /* default "out.png" */
    const char *output_flag;    /* "-o" or "--output", as given (named in errors) */
    img_format format;          /* -o's extension (.png .jpg .jpeg .webp), else --format,
                                   else PNG; an unknown extension without --format, or
                                   one disagreeing with --format, is refused */
    int quality;                /* [1, 100], default 90 (JPEG / WebP) */
    int threads;                /* [0, 1024], 0 = all cores */
    const char *precision;      /* NULL = auto (sd_load_opts) */
    int help;                   /* --help / -h given */
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
