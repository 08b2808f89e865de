/* filestate.c — a file's or folder's state as one value (filestate.h). */
#include "filestate.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2))) * 0x100000001b3ull; }

static uint64_t stat_sum(const struct stat *sb)
{
    uint64_t h = mix(mix(mix(0, (uint64_t)sb->st_dev), (uint64_t)sb->st_ino), (uint64_t)sb->st_size);
    h = mix(mix(h, (uint64_t)sb->st_mode), (uint64_t)sb->st_mtim.tv_sec);
    h = mix(mix(h, (uint64_t)sb->st_mtim.tv_nsec), (uint64_t)sb->st_ctim.tv_sec);
    return mix(h, (uint64_t)sb->st_ctim.tv_nsec);
}

/* The folder's entries (depth - 1 levels of subfolders further), in any order. */
static uint64_t folder_sum(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d) return mix(1, (uint64_t)errno);
    uint64_t total = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[4096];
        struct stat sb;
        uint64_t h = 0xcbf29ce484222325ull;
        for (const char *c = de->d_name; *c; c++) h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (stat(p, &sb)) h = mix(h, (uint64_t)errno);
        else {
            h = mix(h, stat_sum(&sb));
            if (depth > 1 && S_ISDIR(sb.st_mode)) h = mix(h, folder_sum(p, depth - 1));
        }
        total += h;   /* a sum: readdir's order does not count */
    }
    closedir(d);
    return total;
}

void sd_file_state_of(const char *path, int depth, sd_file_state *fs, struct stat *sb)
{
    struct stat st;
    memset(fs, 0, sizeof *fs);
    if (stat(path, &st)) {
        fs->err = errno ? errno : EIO;
        return;
    }
    if (sb) *sb = st;
    fs->sum = stat_sum(&st);
    if (depth > 0 && S_ISDIR(st.st_mode)) fs->sum = mix(fs->sum, folder_sum(path, depth));
}

int sd_file_state_same(const sd_file_state *a, const sd_file_state *b)
{
    return a->err >= 0 && a->err == b->err && a->sum == b->sum;
}
