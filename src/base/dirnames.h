/* dirnames.h — the names of a folder's entries that a filter keeps, sorted:
 * how the model folder (jobs/models.c), the LoRA folder (engine/lora/apply.c)
 * and the embeddings folder (engine/prompt/embeddings.c) are read, so that
 * none of them depends on readdir's order.  Allocates through the seam
 * (alloc.h). */
#ifndef SD_DIRNAMES_H
#define SD_DIRNAMES_H

/* 1 to keep entry `name` of folder `dir`. */
typedef int (*sd_dir_keep_fn)(const char *dir, const char *name, void *ud);

/* 0 with *names (*n strings, sd_dir_names_free them) sorted by cmp (a
 * qsort comparator of char * elements; NULL = strcmp, byte order), holding
 * the entries keep says 1 for (NULL: all but "." and ".."); -1 with errno
 * (opendir's, or ENOMEM) and nothing allocated. */
int sd_dir_names(const char *dir, sd_dir_keep_fn keep, void *ud, int (*cmp)(const void *, const void *), char ***names,
                 int *n);
void sd_dir_names_free(char **names, int n);

#endif
