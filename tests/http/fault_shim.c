/* fault_shim.c — an LD_PRELOAD library for tests/http/test_faults.sh that
 * injects storage faults into `sdserve serve` without root, chmod or mount.
 *
 * It wraps openat/write/fsync/close.  Only the local store's temp files
 * (names starting ".tmp-", opened with O_CREAT) are affected, and only while
 * the file named by $SDFAULT_CTL exists; its first word picks the fault,
 * read at each temp-file creation so a test can switch faults on and off
 * while the server runs:
 *   erofs      the create fails with EROFS (a read-only data folder)
 *   enospc     the first write stores at most 512 bytes, the next fails
 *              with ENOSPC (the disk fills up in the middle of the file)
 *   eio-fsync  writes succeed, fsync fails with EIO
 *   slow       writes go 256 bytes at a time, 10 ms apart (widens the
 *              window in which a kill -9 lands in the middle of a write)
 * The real calls are made with syscall(2), so no dlsym is needed.
 * Built by the test: cc -shared -fPIC -o fault_shim.so fault_shim.c */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { F_NONE, F_EROFS, F_ENOSPC, F_EIO_FSYNC, F_SLOW };
#define MAXFD 4096

static unsigned char fd_mode[MAXFD];     /* fault armed on this fd */
static unsigned fd_written[MAXFD];       /* bytes written so far */

static int current_mode(void)
{
    const char *ctl = getenv("SDFAULT_CTL");
    if (!ctl) return F_NONE;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, ctl, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return F_NONE;
    char buf[32] = {0};
    long n = syscall(SYS_read, fd, buf, sizeof buf - 1);
    syscall(SYS_close, fd);
    if (n <= 0) return F_NONE;
    if (!strncmp(buf, "erofs", 5)) return F_EROFS;
    if (!strncmp(buf, "enospc", 6)) return F_ENOSPC;
    if (!strncmp(buf, "eio-fsync", 9)) return F_EIO_FSYNC;
    if (!strncmp(buf, "slow", 4)) return F_SLOW;
    return F_NONE;
}

static int is_temp(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return !strncmp(base, ".tmp-", 5);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    int m = (flags & O_CREAT) && is_temp(path) ? current_mode() : F_NONE;
    if (m == F_EROFS) {
        errno = EROFS;
        return -1;
    }
    int fd = (int)syscall(SYS_openat, dirfd, path, flags, mode);
    if (fd >= 0 && fd < MAXFD) {
        fd_mode[fd] = (unsigned char)m;
        fd_written[fd] = 0;
    }
    return fd;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    int m = fd >= 0 && fd < MAXFD ? fd_mode[fd] : F_NONE;
    if (m == F_ENOSPC) {
        if (fd_written[fd] >= 512) {
            errno = ENOSPC;
            return -1;
        }
        if (n > 512 - fd_written[fd]) n = 512 - fd_written[fd];
    } else if (m == F_SLOW) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (n > 256) n = 256;
    }
    ssize_t w = (ssize_t)syscall(SYS_write, fd, buf, n);
    if (w > 0 && m != F_NONE) fd_written[fd] += (unsigned)w;
    return w;
}

int fsync(int fd)
{
    if (fd >= 0 && fd < MAXFD && fd_mode[fd] == F_EIO_FSYNC) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fsync, fd);
}

int close(int fd)
{
    if (fd >= 0 && fd < MAXFD) fd_mode[fd] = F_NONE;
    return (int)syscall(SYS_close, fd);
}
