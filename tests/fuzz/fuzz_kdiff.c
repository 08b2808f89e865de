/* fuzz_kdiff.c — libFuzzer target for the k-diffusion module's inputs
 * (src/engine/samplers/kdiff_sched.c): the sampler/scheduler name parser
 * and a checkpoint's alphas_cumprod table.
 *   first byte even: the rest is "sampler\0scheduler" (no NUL: no
 *   scheduler); a name either parses — and its display name parses back to
 *   the same choice — or is refused with SD_EINVAL naming sampler/scheduler.
 *   first byte odd: the rest is a float32 table (second byte = steps); a
 *   table is refused with SD_EINVAL naming alphas_cumprod, or every
 *   schedule made from it is finite, positive, strictly decreasing, then 0.
 * fuzz-sources: src/engine/samplers/kdiff_sched.c src/engine/samplers/schedule.c src/engine/samplers/philox.c src/base/err.c
   (no libraries) */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/engine/samplers/kdiff_sched.h"

static void names(const uint8_t *d, size_t n)
{
    char *buf = malloc(n + 2);
    if (!buf) return;
    memcpy(buf, d, n);
    buf[n] = buf[n + 1] = 0;
    size_t l = strlen(buf);
    const char *sched = l < n ? buf + l + 1 : NULL;
    kd_choice c;
    sd_err err;
    sd_err_clear(&err);
    if (kd_parse(buf, sched, &c, &err) == 0) {
        char shown[64];
        kd_choice back;
        kd_display_name(c, shown, sizeof shown);
        if (kd_parse(shown, NULL, &back, &err) || back.sampler != c.sampler || back.schedule != c.schedule) abort();
        if (!kd_is_name(buf)) abort();
    } else if (err.code != SD_EINVAL || (strcmp(err.field, "sampler") && strcmp(err.field, "scheduler"))) {
        abort();
    }
    free(buf);
}

static void table(const uint8_t *d, size_t n)
{
    if (n < 1) return;
    const int steps = 1 + d[0] % 64;
    d++; n--;
    int cnt = (int)(n / sizeof(float));
    float *acp = malloc((cnt ? cnt : 1) * sizeof *acp);
    static kd_model m;
    if (!acp) return;
    memcpy(acp, d, (size_t)cnt * sizeof *acp);
    sd_err err;
    sd_err_clear(&err);
    if (kd_model_init_table(&m, acp, cnt, &err)) {
        if (err.code != SD_EINVAL || strcmp(err.field, "alphas_cumprod")) abort();
    } else {
        for (int k = 0; k < KD_SCHED_COUNT; k++) {
            float sig[65];
            if (kd_sigmas(&m, KD_EULER, (kd_schedule)k, steps, sig, &err)) abort();
            if (sig[steps] != 0) abort();
            for (int i = 0; i < steps; i++) {
                if (!isfinite(sig[i]) || !(sig[i] > 0)) abort();
                float t = kd_sigma_to_t(&m, sig[i]);
                if (!(t >= 0 && t <= (float)(cnt - 1))) abort();
            }
        }
    }
    free(acp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (data[0] & 1) table(data + 1, size - 1);
    else names(data + 1, size - 1);
    return 0;
}
