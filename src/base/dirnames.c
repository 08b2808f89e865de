/* dirnames.c — a folder's entries, filtered and sorted (dirnames.h). */
#include "dirnames.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static int by_bytes(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void sd_dir_names_free(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

int sd_dir_names(const char *dir, sd_dir_keep_fn keep, void *ud, int (*cmp)(const void *, const void *), char ***names,
                 int *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **v = NULL;
    int k = 0, cap = 0, rc = 0;
    for (struct dirent *de; !rc && (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (keep && !keep(dir, de->d_name, ud)) continue;
        if (k == cap) {
            char **g = sd_realloc(v, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *g);
            if (!g) { rc = -1; break; }
            v = g;
        }
        if (!(v[k] = sd_strdup(de->d_name))) rc = -1;
        else k++;
    }
    closedir(d);
    if (rc) {
        sd_dir_names_free(v, k);
        errno = ENOMEM;
        return -1;
    }
    if (k) qsort(v, (size_t)k, sizeof *v, cmp ? cmp : by_bytes);
    *names = v;
    *n = k;
    return 0;
}
