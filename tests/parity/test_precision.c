/* test_precision.c — how far the bf16 precisions (ops.h) take the whole
 * pipeline from diffusers' fp32 pictures: every pipeline run of
 * reference/goldens (each sampler at 4 and 10 steps, img2img) replayed on
 * tiny-sd1 (diffusers folder) and tiny-sd2 (fp16 single file) at bf16x2 —
 * the default on CPUs with AMX — and at bf16, the RGB8 output against the
 * run's image.png:
 *   bf16x2  at most 6 levels anywhere, PSNR >= 45 dB per run (measured on
 *           an AMX machine: 4 levels and 50.5 dB at worst, 0.27 levels
 *           off on average);
 *   bf16    at most 24 levels, PSNR >= 35 dB (19 levels, 40.1 dB, 0.72);
 * and bf16x2 closer than bf16 on average (it rounds only the weights).
 * Prints "metric precision/..." lines for docs/ACCURACY.md.  Off an AMX CPU
 * oneDNN runs the same bf16 products on its other bf16 kernels (attention
 * stays fp32 there).  SD_SANITIZED=1: every third run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe_case.h"
#include "t.h"
#include "../../src/engine/ops/ops.h"

static const struct { int prec, max_levels; double min_psnr; } LIMITS[] = {
    {OPS_BF16X2, 6, 45.0},
    {OPS_BF16, 24, 35.0},
};

int main(void)
{
    if (!t_have_ref()) { CHECKF(0, "reference data", "../shared/reference not found (set SD_REF)"); return t_done(); }
    const char *san = getenv("SD_SANITIZED");
    int subset = san && *san == '1';
    static const char *models[] = {"tiny-sd1", "tiny-sd2"};
    double mean[2] = {0, 0};
    int runs[2] = {0, 0};
    ops_init(0);
    for (int p = 0; p < 2; p++) {
        int prec = LIMITS[p].prec;
        const char *pn = ops_precision_name(prec);
        for (int m = 0; m < 2; m++) {
            ops_set_precision(prec);   /* before the load: weights are used at one precision */
            char msg[600], lname[128];
            sd_engine *e = pipe_load(m, m, msg, sizeof msg);
            snprintf(lname, sizeof lname, "%s: load %s", pn, models[m]);
            CHECKF(e != NULL, lname, "%s", msg);
            if (!e) continue;
            for (int r = 0; r < PIPE_NRUNS; r++) {
                if (subset && r % 3) continue;
                char name[256];
                snprintf(name, sizeof name, "precision/%s/%s/%s", pn, models[m], PIPE_RUNS[r]);
                pipe_result res;
                pipe_case(e, models[m], PIPE_RUNS[r], &res);
                if (!res.ran) {
                    CHECKF(0, name, "%s", res.msg);
                    continue;
                }
                printf("metric %s png_max_level_diff %d tol %d\n", name, res.png_max, LIMITS[p].max_levels);
                printf("metric %s png_mean_level_diff %.3f\n", name, res.png_mean);
                printf("metric %s psnr_db %.1f tol %.1f\n", name, res.psnr, LIMITS[p].min_psnr);
                CHECKF(!res.bad_draw && res.width == 48 && res.height == 64 && res.png_max <= LIMITS[p].max_levels &&
                           res.psnr >= LIMITS[p].min_psnr,
                       name, "%dx%d, up to %d levels off image.png (limit %d), PSNR %.1f dB (limit %.1f)", res.width,
                       res.height, res.png_max, LIMITS[p].max_levels, res.psnr, LIMITS[p].min_psnr);
                mean[p] += res.png_mean;
                runs[p]++;
            }
            sd_engine_free(e);
        }
    }
    for (int p = 0; p < 2; p++) mean[p] /= runs[p] ? runs[p] : 1;
    printf("metric precision/mean_level_diff bf16x2 %.3f bf16 %.3f\n", mean[0], mean[1]);
    CHECKF(runs[0] && runs[1] && mean[0] < mean[1], "bf16x2 is closer to the fp32 pictures than bf16 on average",
           "mean level difference bf16x2 %.3f, bf16 %.3f", mean[0], mean[1]);
    ops_set_precision(OPS_FP32);
    return t_done();
}
