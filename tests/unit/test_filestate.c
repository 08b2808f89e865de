/* test_filestate.c — a file's state (src/base/filestate.c), what the model
 * registry and the LoRA cache compare to notice a changed file: the same
 * file twice is the same state; rewritten with another size, replaced by
 * rename, touched back to its old mtime (ctime moves), removed (errno),
 * a folder whose file two levels down changed — each a different state;
 * one level of folding does not see the second level; the "none" state
 * equals nothing, not even itself. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "t.h"
#include "../../src/base/filestate.h"

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Past the kernel's coarse timestamp tick, so that a change moves ctime. */
static void tick(void) { nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL); }

int main(void)
{
    char dir[] = "/tmp/sd_filestate.XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "filestate: a temporary folder");
        return t_done();
    }
    char f[256], g[256], sub[256], deep[256];
    snprintf(f, sizeof f, "%s/a.safetensors", dir);
    snprintf(g, sizeof g, "%s/b.tmp", dir);
    snprintf(sub, sizeof sub, "%s/unet", dir);
    snprintf(deep, sizeof deep, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    put(f, "one");

    sd_file_state a, b;
    struct stat sb;
    memset(&sb, 0, sizeof sb);
    sd_file_state_of(f, 0, &a, &sb);
    sd_file_state_of(f, 0, &b, NULL);
    CHECK(a.err == 0 && S_ISREG(sb.st_mode) && sb.st_size == 3, "filestate: stat's result handed back");
    CHECK(sd_file_state_same(&a, &b), "filestate: the same file twice is the same state");

    tick();
    put(f, "one more");
    sd_file_state_of(f, 0, &b, NULL);
    CHECK(!sd_file_state_same(&a, &b), "filestate: rewritten in place with another size");

    sd_file_state_of(f, 0, &a, NULL);
    tick();
    put(g, "one more");
    struct stat old;
    stat(f, &old);
    CHECK(rename(g, f) == 0, "filestate: replaced by rename");
    struct timespec keep[2] = {old.st_atim, old.st_mtim};
    utimensat(AT_FDCWD, f, keep, 0);   /* the same size and mtime: only the inode tells */
    sd_file_state_of(f, 0, &b, NULL);
    CHECK(!sd_file_state_same(&a, &b), "filestate: replaced by rename with the same size and mtime");

    sd_file_state_of(f, 0, &a, NULL);
    tick();
    stat(f, &old);
    put(f, "two more");   /* same size */
    struct timespec back[2] = {old.st_atim, old.st_mtim};
    utimensat(AT_FDCWD, f, back, 0);
    sd_file_state_of(f, 0, &b, NULL);
    CHECK(!sd_file_state_same(&a, &b), "filestate: rewritten with the same size, mtime touched back (ctime moved)");

    sd_file_state_of(f, 0, &a, NULL);
    unlink(f);
    sd_file_state_of(f, 0, &b, NULL);
    CHECK(b.err == ENOENT && !sd_file_state_same(&a, &b), "filestate: a removed file is its errno");
    sd_file_state_of(f, 0, &a, NULL);
    CHECK(sd_file_state_same(&a, &b), "filestate: still missing is the same state");

    mkdir(sub, 0755);
    put(deep, "unet");
    sd_file_state d1, d2, s1, s2;
    sd_file_state_of(dir, 2, &d1, NULL);
    sd_file_state_of(dir, 1, &s1, NULL);
    tick();
    put(deep, "unet, retrained");
    sd_file_state_of(dir, 2, &d2, NULL);
    sd_file_state_of(dir, 1, &s2, NULL);
    CHECK(!sd_file_state_same(&d1, &d2), "filestate: a folder's file two levels down changed (depth 2)");
    CHECK(sd_file_state_same(&s1, &s2), "filestate: depth 1 folds the folder's entries only");

    sd_file_state none = SD_FILE_STATE_NONE;
    CHECK(!sd_file_state_same(&none, &none) && !sd_file_state_same(&none, &d2),
          "filestate: the none state equals nothing");

    t_rmtree(dir);
    return t_done();
}
