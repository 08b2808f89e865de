/* local.c — the local-folder storage backend (storage.h): images written
 * atomically under a data folder and served back by the HTTP server.
 *
 * A put writes a temp file ".tmp-*" in the same folder, fsyncs it, renames
 * it over "<key>.<ext>" and fsyncs the folder, so a reader (or a crash) sees
 * either nothing or the whole image.  Reads accept only strictly valid names
 * (storage_parse_name) and open with O_NOFOLLOW, so no request path can
 * reach outside the folder. */
#include "storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TMP_PREFIX ".tmp-"
#define STALE_TMP_SECONDS 3600

typedef struct local_storage {
    storage base;
    char *dir;
    char *url_prefix;
    int dirfd;
} local_storage;

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int local_put(storage *s, const void *data, size_t len, const char *ext_in, char key[STORAGE_KEY_MAX],
                     sd_err *err)
{
    local_storage *ls = (local_storage *)s;
    const char *ext = storage_ext_canonical(ext_in);
    char k[STORAGE_KEY_MAX], final[STORAGE_KEY_MAX + 8], tmp[64];
    storage_key_for(data, len, k);
    snprintf(final, sizeof final, "%s.%s", k, ext);

    /* Same name = same bytes: an existing complete file is already the answer. */
    struct stat st;
    if (fstatat(ls->dirfd, final, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == len) {
        strcpy(key, k);
        return 0;
    }

    /* A temp name unique across threads and processes sharing the folder. */
    static unsigned long counter;
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 8; tries++) {
        unsigned long c = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
        snprintf(tmp, sizeof tmp, TMP_PREFIX "%.8s-%ld-%lu", k, (long)getpid(), c);
        fd = openat(ls->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && errno != EEXIST) break;
    }
    /* messages reach the client: they name the failure, not the server's paths */
    if (fd < 0)
        return sd_errf(err, SD_EIO, "storage", "cannot create a file in the image folder: %s", strerror(errno));
    const char *step = "write";
    int e = 0;
    if (write_all(fd, data, len)) e = errno;
    if (!e && fsync(fd)) step = "fsync", e = errno;
    if (!e && fchmod(fd, 0644)) step = "chmod", e = errno;
    if (close(fd) && !e) step = "close", e = errno;
    if (!e && renameat(ls->dirfd, tmp, ls->dirfd, final)) step = "rename", e = errno;
    if (e) {
        unlinkat(ls->dirfd, tmp, 0);
        return sd_errf(err, SD_EIO, "storage", "storing image %s in the image folder failed (%s: %s)", final, step,
                       strerror(e));
    }
    if (fsync(ls->dirfd) && errno != EINVAL) {
        /* the image is complete and visible; only its durability across a power cut is in doubt */
        e = errno;
        return sd_errf(err, SD_EIO, "storage", "fsync of the image folder failed: %s", strerror(e));
    }
    strcpy(key, k);
    return 0;
}

static int local_url(const storage *s, const char *key, const char *ext, char *out, size_t cap, sd_err *err)
{
    const local_storage *ls = (const local_storage *)s;
    int n = snprintf(out, cap, "%s/%s", ls->url_prefix, key);
    if (n < 0 || (size_t)n >= cap) {
        if (cap) out[0] = 0;
        return sd_errf(err, SD_EINVAL, "storage", "URL buffer too small (%d bytes needed)", n + 1);
    }
    return 0;
}

static int open_object(const local_storage *ls, const char *file, storage_object *out)
{
    int fd = openat(ls->dirfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return -1;
    }
    out->fd = fd;
    out->size = (uint64_t)st.st_size;
    return 0;
}

static int local_get(const storage *s, const char *name, storage_object *out, sd_err *err)
{
    const local_storage *ls = (const local_storage *)s;
    char key[STORAGE_KEY_MAX], ext[8], file[STORAGE_KEY_MAX + 8];
    if (!storage_parse_name(name, key, ext)) return sd_errf(err, SD_ENOTFOUND, "image", "no such image");
    static const char *const exts[] = {"png", "jpg", "webp"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        if (ext[0] && strcmp(ext, exts[i])) continue;
        snprintf(file, sizeof file, "%s.%s", key, exts[i]);
        if (open_object(ls, file, out) == 0) {
            out->content_type = storage_ext_content_type(exts[i]);
            snprintf(out->ext, sizeof out->ext, "%s", exts[i]);
            return 0;
        }
    }
    return sd_errf(err, SD_ENOTFOUND, "image", "no such image: %s", key);
}

static void local_close(storage *s)
{
    local_storage *ls = (local_storage *)s;
    if (ls->dirfd >= 0) close(ls->dirfd);
    free(ls->dir);
    free(ls->url_prefix);
    free(ls);
}

static const storage_ops local_ops = {"local", local_put, local_url, local_get, local_close};

/* mkdir -p */
static int make_dirs(const char *dir)
{
    char *p = strdup(dir);
    if (!p) return -1;
    for (char *q = p + 1; *q; q++) {
        if (*q != '/') continue;
        *q = 0;
        if (mkdir(p, 0755) && errno != EEXIST) {
            free(p);
            return -1;
        }
        *q = '/';
    }
    int rc = mkdir(p, 0755) && errno != EEXIST ? -1 : 0;
    free(p);
    return rc;
}

static void remove_stale_temps(int dirfd)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return;
    }
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX))) continue;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            now - st.st_mtime > STALE_TMP_SECONDS)
            unlinkat(dirfd, de->d_name, 0);
    }
    closedir(d);
}

storage *storage_local_open(const char *dir, const char *url_prefix, sd_err *err)
{
    if (!dir || !*dir) {
        sd_errf(err, SD_EINVAL, "images_dir", "the local image folder is not set");
        return NULL;
    }
    if (!url_prefix || (strncmp(url_prefix, "http://", 7) && strncmp(url_prefix, "https://", 8))) {
        sd_errf(err, SD_EINVAL, "public_url", "the public URL must start with http:// or https://, got '%s'",
                url_prefix ? url_prefix : "");
        return NULL;
    }
    if (make_dirs(dir)) {
        sd_errf(err, SD_EIO, "images_dir", "cannot create the image folder %s: %s", dir, strerror(errno));
        return NULL;
    }
    local_storage *ls = calloc(1, sizeof *ls);
    if (!ls) {
        sd_errf(err, SD_ENOMEM, "storage", "out of memory");
        return NULL;
    }
    ls->base.ops = &local_ops;
    ls->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ls->dir = strdup(dir);
    ls->url_prefix = strdup(url_prefix);
    if (ls->dirfd < 0 || !ls->dir || !ls->url_prefix) {
        sd_errf(err, ls->dirfd < 0 ? SD_EIO : SD_ENOMEM, "images_dir", "cannot open the image folder %s: %s", dir,
                strerror(errno));
        local_close(&ls->base);
        return NULL;
    }
    size_t n = strlen(ls->url_prefix);
    while (n > 0 && ls->url_prefix[n - 1] == '/') ls->url_prefix[--n] = 0;
    if (access(dir, W_OK)) {
        sd_errf(err, SD_EIO, "images_dir", "the image folder %s is not writable: %s", dir, strerror(errno));
        local_close(&ls->base);
        return NULL;
    }
    remove_stale_temps(ls->dirfd);
    return &ls->base;
}
