/* test_fuzz_regress.c — every crash the fuzzers found, replayed through the
 * normal (gcc) build: each tests/fuzz/corpus/<target>/regress-* input must
 * now be answered with a clean error (or a clean result), never a crash or
 * an oversized allocation.  Run from the repo root (tests/run.sh does). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"

#include "../../src/image/image.h"

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = b && sz > 0 ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    return b;
}

/* image: decoding must fail cleanly (these are all malformed) and the
 * parameters reader must not crash either. */
static void image_case(const char *name, const unsigned char *d, size_t n)
{
    sd_err err;
    sd_err_clear(&err);
    img_rgb im;
    int rc = img_decode(d, n, NULL, &im, &err);
    char label[300];
    snprintf(label, sizeof label, "image regression %s: refused with a message", name);
    CHECKF(rc == -1 && err.code == SD_EINVAL && err.msg[0] && !im.px, label, "rc %d code %d msg '%s'", rc, err.code,
           err.msg);
    if (rc == 0) img_rgb_free(&im);
    char *text = NULL;
    sd_err_clear(&err);
    if (img_read_parameters(d, n, &text, &err) == 0) free(text);
}

int main(void)
{
    static const struct { const char *target; void (*fn)(const char *, const unsigned char *, size_t); } T[] = {
        {"image", image_case},
    };
    int seen = 0;
    for (size_t t = 0; t < sizeof T / sizeof T[0]; t++) {
        char dir[256];
        snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", T[t].target);
        DIR *dp = opendir(dir);
        CHECKF(dp != NULL, "regression corpus folder exists", "%s", dir);
        if (!dp) continue;
        struct dirent *de;
        while ((de = readdir(dp))) {
            if (strncmp(de->d_name, "regress-", 8)) continue;
            char path[600];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            size_t n = 0;
            unsigned char *d = slurp(path, &n);
            if (!d) continue;
            T[t].fn(de->d_name, d, n);
            free(d);
            seen++;
        }
        closedir(dp);
    }
    CHECKF(seen >= 1, "regression inputs found", "%d", seen);
    return t_done();
}
