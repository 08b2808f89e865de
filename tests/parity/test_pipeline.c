/* test_pipeline.c — whole-engine parity: prompt -> tokenizer -> text encoder
 * -> sampler with the real UNet -> VAE decode, against diffusers' pipeline
 * runs in reference/goldens/<model>/pipe/, replaying the runs' recorded
 * noise.  Every sampler at 4 and 10 steps (txt2img) and the img2img runs,
 * for tiny-sd1 and tiny-sd2, loaded from the diffusers folder and from the
 * fp16 single file.  Prints "metric pipeline/..." lines for docs/ACCURACY.md.
 * SD_SANITIZED=1 or SD_QUICK=1 (the sanitizer and quick tiers of
 * tests/run.sh, t_subset()): each run once, on one
 * of the four model/source pairs in turn (15 runs instead of 60; every
 * sampler, every load path). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe_case.h"
#include "t.h"

static void run_case(sd_engine *e, const char *model, const char *source, const char *run)
{
    char name[256];
    snprintf(name, sizeof name, "pipeline/%s/%s/%s", model, source, run);
    pipe_result r;
    pipe_case(e, model, run, &r);
    pipe_check_fp32(&r, name, 48, 64);
}

int main(void)
{
    if (!t_have_ref()) { CHECKF(0, "reference data", "../shared/reference not found (set SD_REF)"); return t_done(); }
    const char *models[] = {"tiny-sd1", "tiny-sd2"};
    int subset = t_subset();
    for (int m = 0; m < 2; m++) {
        for (int src = 0; src < 2; src++) {
            char msg[600];
            sd_engine *e = pipe_load(m, src, NULL, msg, sizeof msg);
            char lname[128];
            snprintf(lname, sizeof lname, "load %s %s", models[m], src ? "single-file" : "diffusers");
            CHECKF(e != NULL, lname, "%s", msg);
            if (!e) continue;
            sd_model_info info;
            sd_engine_info(e, &info);
            CHECKF(!strcmp(info.family, m ? "sd2" : "sd1") && !strcmp(info.prediction, m ? "v_prediction" : "epsilon"),
                   lname, "family %s prediction %s", info.family, info.prediction);
            /* A1111 short hash: sha256 of 64 KiB at 1 MiB of the UNet's file (never of nothing) */
            CHECKF(strlen(info.hash) == 8 && strcmp(info.hash, "e3b0c442") != 0, lname, "model hash '%s'", info.hash);
            for (int r = 0; r < PIPE_NRUNS; r++)
                if (!subset || r % 4 == m * 2 + src)
                    run_case(e, models[m], src ? "single" : "diffusers", PIPE_RUNS[r]);
            sd_engine_free(e);
        }
    }
    return t_done();
}
