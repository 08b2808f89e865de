/* pipe_case.h — one of diffusers' pipeline runs in reference/goldens/<model>/
 * pipe/<run>/ replayed through the engine (its recorded noise, prompt,
 * sampler, steps, size; img2img from its init image), and how far the
 * engine's result is from the run's: tests/parity/test_pipeline.c (fp32
 * parity) and test_precision.c (the bf16 precisions) judge the numbers. */
#ifndef SD_TEST_PIPE_CASE_H
#define SD_TEST_PIPE_CASE_H

#include "../../src/engine/pipeline.h"
#include "../../src/image/image.h"

typedef struct pipe_result {
    int ran;              /* the goldens were there and sd_generate_debug succeeded */
    char msg[600];        /* why not */
    int bad_draw;         /* the engine asked for a noise draw the run did not make */
    double latent_err;    /* max |final latent - golden| */
    double latent_max;    /* max |golden final latent| */
    double image_err01;   /* max |decoded image - golden| / 2: in [0,1] units */
    int width, height;    /* of the RGB8 output */
    int png_max;          /* largest |RGB8 - image.png| in levels */
    double png_mean;      /* mean of |RGB8 - image.png| in levels */
    double psnr;          /* of RGB8 against image.png, dB (999 when equal) */
} pipe_result;

/* The pipeline runs each model has: txt2img with every sampler at 4 and
 * 10 steps, then img2img. */
extern const char *const PIPE_RUNS[];
extern const int PIPE_NRUNS;

/* The SDXL pipeline runs (tiny-sdxl-s: reference README, "SDXL"): Euler,
 * Euler a, DPM++ 2M Karras, a negative prompt, non-default time ids, Turbo
 * (trailing spacing, no CFG) at 1 and 4 steps, img2img. */
extern const char *const PIPE_SDXL_RUNS[];
extern const int PIPE_SDXL_NRUNS;

/* Runs `run` of `model` ("tiny-sd1", "tiny-sd2", "tiny-sdxl-s") on e. */
void pipe_case(sd_engine *e, const char *model, const char *run, pipe_result *r);

/* The fp32 parity judgement of one run named `name` (test_pipeline,
 * test_sdxl_pipe): its "metric" lines, then final latent within
 * 1e-4·max|latent|, decoded image within 1/255, a W x H RGB8 output within
 * 1 level of image.png, and no noise draw the run did not make. */
void pipe_check_fp32(const pipe_result *r, const char *name, int width, int height);

/* Loads reference model m (0 tiny-sd1, 1 tiny-sd2, 2 tiny-sdxl-s) from its diffusers
 * folder (single = 0) or its fp16 single file (single = 1) at `precision`
 * (sd_load_opts; NULL = auto); NULL with the loader's message in msg. */
sd_engine *pipe_load(int m, int single, const char *precision, char *msg, size_t msgsz);

/* A reference PNG (path under the reference folder, < 64 KiB) as RGB8.
 * 0 or -1. */
int pipe_load_png(const char *rel, img_rgb *im);

#endif
