/* t.c — see t.h. */
#include "t.h"

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int t_pass, t_fail;

void t_check(int ok, const char *file, int line, const char *name, const char *fmt, ...)
{
    if (ok) {
        t_pass++;
        printf("ok - %s\n", name);
    } else {
        t_fail++;
        printf("FAIL - %s (%s:%d): ", name, file, line);
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    }
    fflush(stdout);
}

int t_done(void)
{
    fprintf(stderr, "# %d passed, %d failed\n", t_pass, t_fail);
    return t_fail ? 1 : 0;
}

static const char *ref_root(void)
{
    const char *e = getenv("SD_REF");
    return e && *e ? e : "../shared/reference";
}

const char *t_ref(const char *rel)
{
    static char bufs[8][1024];
    static int k;
    char *b = bufs[k++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", ref_root(), rel);
    return b;
}

int t_have_ref(void)
{
    struct stat st;
    return stat(ref_root(), &st) == 0 && S_ISDIR(st.st_mode);
}

static int env_on(const char *name)
{
    const char *v = getenv(name);
    return v && !strcmp(v, "1");
}

int t_subset(void) { return env_on("SD_SANITIZED") || env_on("SD_QUICK"); }

int t_quick(void) { return env_on("SD_QUICK"); }

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

void t_rmtree(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) != 0) return;   /* nothing there */
    if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) fprintf(stderr, "# could not remove %s\n", dir);
}

char *t_repeat(const char *s, int k)
{
    size_t n = strlen(s);
    char *o = malloc(n * (size_t)k + 1);
    if (!o) abort();
    for (int i = 0; i < k; i++) memcpy(o + n * (size_t)i, s, n);
    o[n * (size_t)k] = 0;
    return o;
}

unsigned char *t_slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    *n = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = b && sz > 0 ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    return b;
}
