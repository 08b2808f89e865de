/* fuzz_memfd.h — a fuzz input as a file: the readers that take a path
 * (safetensors, LoRA) get /proc/self/fd/N of a memfd holding the bytes.
 * Used by the fuzz targets and by test_fuzz_regress.c's replays. */
#ifndef SD_FUZZ_MEMFD_H
#define SD_FUZZ_MEMFD_H

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* The memfd (close it when done) with path[64] naming it, or -1. */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char path[64])
{
    int fd = memfd_create("fuzz.input", 0);
    if (fd < 0) return -1;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return -1;
    }
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
