/* mm_cli.h — running `sdserve make-model` from a C test: the binary
 * ($SD_BUILD/sdserve, default build/sdserve), a quiet run and the test's
 * temp folder (test_make_model, test_make_model_sdxl). */
#ifndef SD_MM_CLI_H
#define SD_MM_CLI_H

#include <stddef.h>

/* The sdserve binary the tests run. */
const char *mm_sdserve(void);

/* Run `sdserve make-model ARGS` with its output discarded; its exit status,
 * -1 if it did not exit. */
int mm_run(const char *args);

/* Create /tmp/sdserve-test-TAG-XXXXXX into buf; 0 on success. */
int mm_tmpdir(char *buf, size_t n, const char *tag);

#endif
