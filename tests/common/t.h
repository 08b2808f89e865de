/* t.h — the project's tiny test framework.
 *
 * A test binary is a main() that calls CHECK()/CHECKF() and ends with
 * `return t_done();`.  Every check prints one line, "ok - name" or
 * "FAIL - name: detail", and tests/run.sh counts those lines into the final
 * "N passed, N failed".  t_ref() finds ../shared/reference (or $SD_REF). */
#ifndef SD_T_H
#define SD_T_H

#include <stdio.h>

void t_check(int ok, const char *file, int line, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int t_done(void);
/* Path under the reference folder: t_ref("goldens/tiny-sd1/unet/x_8x8.npy"). Static buffer ring. */
const char *t_ref(const char *rel);
/* 1 if the reference folder exists. */
int t_have_ref(void);
/* 1 in the tiers of tests/run.sh that run a representative subset of the
 * long parity runs: the sanitizer tier (SD_SANITIZED=1) and the quick tier
 * (SD_QUICK=1). */
int t_subset(void);
/* 1 in the quick tier only (SD_QUICK=1): tests skip their full-size runs. */
int t_quick(void);
/* Remove a test's temporary folder and everything in it (rm -rf, links not
 * followed); a note on stderr if that fails. */
void t_rmtree(const char *dir);
/* s repeated k times (malloc'd; aborts when out of memory). */
char *t_repeat(const char *s, int k);
/* A whole file (malloc'd, *n its size; an empty one is a 1-byte buffer
 * with *n 0), or NULL when it cannot be opened. */
unsigned char *t_slurp(const char *path, size_t *n);

/* CHECK(cond, "name") — detail optional via CHECKF(cond, name, fmt, ...). */
#define CHECK(cond, name) t_check(!!(cond), __FILE__, __LINE__, (name), "%s", #cond)
#define CHECKF(cond, name, ...) t_check(!!(cond), __FILE__, __LINE__, (name), __VA_ARGS__)

#endif
