/* mm_cli.c — running `sdserve make-model` from a C test (mm_cli.h). */
#include "mm_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

const char *mm_sdserve(void)
{
    static char path[512];
    const char *b = getenv("SD_BUILD");
    if (!path[0]) snprintf(path, sizeof path, "%s/sdserve", b && *b ? b : "build");
    return path;
}

int mm_run(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' make-model %s >/dev/null 2>&1", mm_sdserve(), args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int mm_tmpdir(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/tmp/sdserve-test-%s-XXXXXX", tag);
    return mkdtemp(buf) ? 0 : -1;
}
