/* local.c — the local-folder storage backend (storage.h): images written
 * atomically under a data folder and served back by the HTTP server.
 *
 * A put writes a temp file ".tmp-*" in the same folder, fsyncs it, renames
 * it over "<key>.<ext>" and fsyncs the folder, so a reader (or a crash) sees
 * either nothing or the whole image.  Reads accept only strictly valid names
 * (storage_parse_name) and open with O_NOFOLLOW, so no request path can
 * reach outside the folder.
 *
 * Retention (storage_local_retain): a thread sweeps the folder, removing
 * images past an age and the oldest above a size cap, never one younger than
 * a minimum age (its mtime: a put of bytes already stored refreshes it).  A
 * removal re-checks the file's mtime under the same lock a put takes to
 * refresh or rename, so an image put again while a sweep runs survives. */
#include "storage.h"
#include "../base/alloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
    /* retention */
    pthread_mutex_t mu;      /* removal re-check vs put refresh/rename; the fields below */
    pthread_cond_t cv;       /* CLOCK_MONOTONIC: wakes the sweeper */
    pthread_t sweeper;
    int sweeping, stop, kick, reported_pinned;
    storage_retention ret;
    uint64_t est_bytes;      /* last sweep's total + bytes put since */
} local_storage;

static const storage_ops local_ops;

static local_storage *as_local(storage *s) { return s && s->ops == &local_ops ? (local_storage *)s : NULL; }

/* After a put: wake the sweeper when the store may be over its cap, or the
 * put failed (the disk may be full). */
static void note_put(local_storage *ls, size_t len, int failed)
{
    pthread_mutex_lock(&ls->mu);
    ls->est_bytes += failed ? 0 : len;
    if (ls->sweeping && (failed || (ls->ret.max_bytes && ls->est_bytes > ls->ret.max_bytes))) {
        ls->kick = 1;
        pthread_cond_signal(&ls->cv);
    }
    pthread_mutex_unlock(&ls->mu);
}

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

    /* Same name = same bytes: an existing complete file is already the answer.
     * Its mtime is refreshed (under the lock a removal re-checks it with), so
     * retention counts its age from this put. */
    struct stat st;
    pthread_mutex_lock(&ls->mu);
    int have = fstatat(ls->dirfd, final, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
               (size_t)st.st_size == len;
    if (have) utimensat(ls->dirfd, final, NULL, AT_SYMLINK_NOFOLLOW);
    pthread_mutex_unlock(&ls->mu);
    if (have) {
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
    if (fd < 0) {
        int ce = errno;
        note_put(ls, 0, 1);
        return sd_errf(err, SD_EIO, "storage", "cannot create a file in the image folder: %s", strerror(ce));
    }
    const char *step = "write";
    int e = 0;
    if (write_all(fd, data, len)) e = errno;
    if (!e && fsync(fd)) step = "fsync", e = errno;
    if (!e && fchmod(fd, 0644)) step = "chmod", e = errno;
    if (close(fd) && !e) step = "close", e = errno;
    pthread_mutex_lock(&ls->mu);
    if (!e && renameat(ls->dirfd, tmp, ls->dirfd, final)) step = "rename", e = errno;
    pthread_mutex_unlock(&ls->mu);
    note_put(ls, len, e != 0);
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
    if (ls->sweeping) {
        pthread_mutex_lock(&ls->mu);
        ls->stop = 1;
        pthread_cond_signal(&ls->cv);
        pthread_mutex_unlock(&ls->mu);
        pthread_join(ls->sweeper, NULL);
    }
    pthread_mutex_destroy(&ls->mu);
    pthread_cond_destroy(&ls->cv);
    if (ls->dirfd >= 0) close(ls->dirfd);
    free(ls->dir);
    free(ls->url_prefix);
    free(ls);
}

static const storage_ops local_ops = {"local", local_put, local_url, local_get, local_close};

/* mkdir -p */
static int make_dirs(const char *dir)
{
    char *p = sd_strdup(dir);
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
    local_storage *ls = sd_calloc(1, sizeof *ls);
    if (!ls) {
        sd_errf(err, SD_ENOMEM, "storage", "out of memory");
        return NULL;
    }
    ls->base.ops = &local_ops;
    pthread_mutex_init(&ls->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ls->cv, &ca);
    pthread_condattr_destroy(&ca);
    ls->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ls->dir = sd_strdup(dir);
    ls->url_prefix = sd_strdup(url_prefix);
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

/* ---- retention ---------------------------------------------------------------- */

typedef struct image_entry {
    char name[STORAGE_KEY_MAX + 8];
    struct timespec mtime;
    uint64_t size;
} image_entry;

static double ts_seconds(struct timespec t) { return (double)t.tv_sec + t.tv_nsec * 1e-9; }

static int entry_cmp(const void *a, const void *b)
{
    const image_entry *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The image files of the folder ("<key>.<ext>", regular), oldest first. */
static int list_images(local_storage *ls, image_entry **out, size_t *count, sd_err *err)
{
    *out = NULL;
    *count = 0;
    /* a fresh open file description: a dup would share (and keep) the read position */
    int fd = openat(ls->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int e = errno;
        if (fd >= 0) close(fd);
        return sd_errf(err, SD_EIO, "storage", "cannot list the image folder: %s", strerror(e));
    }
    image_entry *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        char key[STORAGE_KEY_MAX], ext[8];
        struct stat st;
        if (!storage_parse_name(de->d_name, key, ext) || !ext[0]) continue;
        if (fstatat(ls->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 256;
            image_entry *nv = sd_realloc(v, nc * sizeof *v);
            if (!nv) {
                rc = sd_errf(err, SD_ENOMEM, "storage", "out of memory listing the image folder");
                break;
            }
            v = nv;
            cap = nc;
        }
        memcpy(v[n].name, de->d_name, strlen(de->d_name) + 1);   /* a valid name fits: at most key + ".webp" */
        v[n].mtime = st.st_mtim;
        v[n].size = (uint64_t)st.st_size;
        n++;
    }
    closedir(d);
    if (rc) {
        free(v);
        return rc;
    }
    if (n) qsort(v, n, sizeof *v, entry_cmp);
    *out = v;
    *count = n;
    return 0;
}

/* Removes e unless it changed since it was listed (put again: a new mtime). */
static int remove_unchanged(local_storage *ls, const image_entry *e)
{
    struct stat st;
    pthread_mutex_lock(&ls->mu);
    int rm = fstatat(ls->dirfd, e->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
             st.st_mtim.tv_sec == e->mtime.tv_sec && st.st_mtim.tv_nsec == e->mtime.tv_nsec &&
             unlinkat(ls->dirfd, e->name, 0) == 0;
    pthread_mutex_unlock(&ls->mu);
    return rm;
}

int storage_local_sweep(storage *s, const storage_retention *r, double now, storage_sweep_stats *out, sd_err *err)
{
    memset(out, 0, sizeof *out);
    local_storage *ls = as_local(s);
    if (!ls) return sd_errf(err, SD_EINVAL, "storage", "image retention applies to the local store only");
    image_entry *v;
    size_t n;
    if (list_images(ls, &v, &n, err)) return -1;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) total += v[i].size;
    for (size_t i = 0; i < n; i++) {
        double age = now - ts_seconds(v[i].mtime);
        int old = r->max_age > 0 && age > r->max_age;
        int over = r->max_bytes > 0 && total > r->max_bytes;
        if ((old || over) && age >= r->min_age && remove_unchanged(ls, &v[i])) {
            out->removed++;
            out->removed_bytes += v[i].size;
            total -= v[i].size;
            continue;
        }
        if ((old || over) && age < r->min_age) out->pinned++;
        out->kept++;
        out->kept_bytes += v[i].size;
    }
    free(v);
    pthread_mutex_lock(&ls->mu);
    ls->est_bytes = total;
    pthread_mutex_unlock(&ls->mu);
    return 0;
}

static double wall_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return ts_seconds(t);
}

/* One sweep and its log line: when something was removed, or when the store
 * first stays over its cap because of pinned images. */
static void sweep_and_log(local_storage *ls)
{
    storage_sweep_stats st;
    sd_err e;
    sd_err_clear(&e);
    if (storage_local_sweep(&ls->base, &ls->ret, wall_now(), &st, &e)) {
        fprintf(stderr, "sdserve: image retention: %s\n", e.msg);
        return;
    }
    int report_pinned = st.pinned && !ls->reported_pinned;
    ls->reported_pinned = st.pinned > 0;
    if (!st.removed && !report_pinned) return;
    fprintf(stderr, "sdserve: image retention: removed %d image%s (%.2f MiB), kept %d (%.2f MiB)", st.removed,
            st.removed == 1 ? "" : "s", st.removed_bytes / 1048576.0, st.kept, st.kept_bytes / 1048576.0);
    if (st.pinned)
        fprintf(stderr, "; %d past a limit are kept because they are younger than %g s (--image-min-age)", st.pinned,
                ls->ret.min_age);
    fprintf(stderr, "\n");
}

static void *sweeper_main(void *arg)
{
    local_storage *ls = arg;
    double interval = ls->ret.min_age / 2;
    if (interval < 1) interval = 1;
    if (interval > 60) interval = 60;
    pthread_mutex_lock(&ls->mu);
    while (!ls->stop) {
        ls->kick = 0;
        pthread_mutex_unlock(&ls->mu);
        sweep_and_log(ls);
        pthread_mutex_lock(&ls->mu);
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        double t = ts_seconds(dl) + interval;
        dl.tv_sec = (time_t)t;
        dl.tv_nsec = (long)((t - (double)dl.tv_sec) * 1e9);
        while (!ls->stop && !ls->kick)
            if (pthread_cond_timedwait(&ls->cv, &ls->mu, &dl) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&ls->mu);
    return NULL;
}

int storage_local_retain(storage *s, const storage_retention *r, sd_err *err)
{
    local_storage *ls = as_local(s);
    if (!ls) return sd_errf(err, SD_EINVAL, "storage", "image retention applies to the local store only");
    if (!(r->min_age > 0)) return sd_errf(err, SD_EINVAL, "image-min-age", "the minimum age must be > 0 seconds");
    pthread_mutex_lock(&ls->mu);
    int already = ls->sweeping;
    if (!already) {
        ls->ret = *r;
        ls->sweeping = 1;
    }
    pthread_mutex_unlock(&ls->mu);
    if (already) return sd_errf(err, SD_EINVAL, "storage", "image retention is already running on this store");
    if (pthread_create(&ls->sweeper, NULL, sweeper_main, ls)) {
        pthread_mutex_lock(&ls->mu);
        ls->sweeping = 0;
        pthread_mutex_unlock(&ls->mu);
        return sd_errf(err, SD_EINTERNAL, "storage", "cannot start the image retention thread");
    }
    return 0;
}
