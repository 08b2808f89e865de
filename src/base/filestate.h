/* filestate.h — what a file or folder looks like now, as one comparable
 * value: how the model registry (jobs/models.c) and the LoRA cache
 * (engine/lora/apply.c) notice that a file they read was replaced,
 * rewritten in place, truncated, or touched back to its old mtime (ctime
 * moves), or that a diffusers folder's files changed, without reading it. */
#ifndef SD_FILESTATE_H
#define SD_FILESTATE_H

#include <stdint.h>
#include <sys/stat.h>

/* err: stat()'s errno (then sum is 0), or 0 with sum folding the path's
 * device, inode, size, mode, mtime and ctime and, for a folder, those of
 * its entries `depth` levels down (by name, in any readdir order). */
typedef struct sd_file_state {
    int err;
    uint64_t sum;
} sd_file_state;

/* A state equal to no state sd_file_state_of gives ("read while it
 * changed": compare again next time and read it again). */
#define SD_FILE_STATE_NONE ((sd_file_state){-1, 0})

/* fs from stat(path); for a folder, depth > 0 also folds its entries down
 * to depth levels (1: its entries; 2: theirs too, as a diffusers folder's
 * unet/diffusion_pytorch_model.safetensors).  sb (or NULL) gets stat()'s
 * result when err is 0. */
void sd_file_state_of(const char *path, int depth, sd_file_state *fs, struct stat *sb);

/* 1 when a and b are the same state (no change noticed between them). */
int sd_file_state_same(const sd_file_state *a, const sd_file_state *b);

#endif
