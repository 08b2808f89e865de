/* test_storage.c — the local storage (SHA-256 vectors are in test_sha256.c)
 * backend: round trip, content-derived names, atomic writes (a failing write
 * leaves nothing behind, no temp files survive), strict name validation on
 * read (no path tricks), URLs, concurrent puts; retention: the age rule, the
 * size cap (oldest first), the minimum-age pin, a re-put refreshing an image,
 * the housekeeping thread (a sweep at start, another after a put over the cap
 * or a failed put). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "t.h"
#include "../../src/base/sha256.h"
#include "../../src/storage/storage.h"

static char root[256];

/* Number of entries in `dir` (excluding . and ..), and of them temp files. */
static int count_files(const char *dir, int *temps)
{
    DIR *d = opendir(dir);
    int n = 0;
    *temps = 0;
    if (!d) return -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        n++;
        if (!strncmp(de->d_name, ".tmp-", 5)) (*temps)++;
    }
    closedir(d);
    return n;
}

static size_t read_fd(int fd, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n < cap && (r = read(fd, buf + n, cap - n)) > 0) n += (size_t)r;
    return n;
}

static void test_round_trip(void)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/a/b/images", root);   /* parents created */
    sd_err e;
    sd_err_clear(&e);
    storage *s = storage_local_open(dir, "http://example.test:8080/images/", &e);
    CHECKF(s && !strcmp(storage_backend_name(s), "local"), "local open creates folders", "%s", e.msg);
    if (!s) return;
    const char data[] = "\x89PNG\r\n\x1a\nnot really a png but bytes are bytes";
    char key[STORAGE_KEY_MAX], hex[65];
    int rc = storage_put(s, data, sizeof data, "png", key, &e);
    sd_sha256_hex(data, sizeof data, 32, hex);
    CHECKF(rc == 0 && strlen(key) == 32 && !strncmp(key, hex, 32) && storage_key_valid(key), "put gives sha256 key",
           "%s", e.msg);
    char path[400];
    snprintf(path, sizeof path, "%s/%s.png", dir, key);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == (off_t)sizeof data && (st.st_mode & 0777) == 0644,
          "file is <key>.png, 0644");
    char url[256];
    CHECKF(storage_url(s, key, url, sizeof url, &e) == 0 && !strncmp(url, "http://example.test:8080/images/", 32) &&
               !strcmp(url + 32, key), "url = prefix/key", "%s", url);
    storage_object o;
    uint8_t buf[256];
    rc = storage_get(s, key, &o, &e);
    CHECKF(rc == 0 && o.fd >= 0 && o.size == sizeof data && !strcmp(o.content_type, "image/png") &&
               !strcmp(o.ext, "png") && read_fd(o.fd, buf, sizeof buf) == sizeof data && !memcmp(buf, data, sizeof data),
           "get by key", "%s", e.msg);
    if (rc == 0) close(o.fd);
    rc = storage_get(s, (snprintf(path, sizeof path, "%s.png", key), path), &o, &e);
    CHECK(rc == 0 && o.size == sizeof data, "get by key.png");
    if (rc == 0) close(o.fd);
    sd_err_clear(&e);
    rc = storage_get(s, (snprintf(path, sizeof path, "%s.jpg", key), path), &o, &e);
    CHECK(rc == -1 && e.code == SD_ENOTFOUND && o.fd == -1, "get with the wrong extension is 404");
    /* storage_read_all: the whole object, by key or key.ext; a missing one is 404 with nothing wholeocated */
    uint8_t *whole = NULL;
    size_t alen = 0;
    CHECKF(storage_read_all(s, key, &whole, &alen, &e) == 0 && whole && alen == sizeof data && !memcmp(whole, data, alen),
           "read_all by key gives the bytes put", "%s", e.msg);
    free(whole);
    whole = NULL;
    CHECK(storage_read_all(s, (snprintf(path, sizeof path, "%s.png", key), path), &whole, &alen, &e) == 0 &&
              alen == sizeof data, "read_all by key.png");
    free(whole);
    whole = (uint8_t *)1;
    sd_err_clear(&e);
    CHECK(storage_read_all(s, "00000000000000000000000000000000", &whole, &alen, &e) == -1 && e.code == SD_ENOTFOUND &&
              !whole && alen == 0, "read_all of a missing object: 404, no buffer");
    /* same bytes again: same key, still one file */
    char key2[STORAGE_KEY_MAX];
    int temps;
    CHECK(storage_put(s, data, sizeof data, "PNG", key2, &e) == 0 && !strcmp(key, key2) &&
              count_files(dir, &temps) == 1 && temps == 0, "put is idempotent, no temp files");
    /* jpeg/webp content types */
    CHECK(storage_put(s, "jpegbytes", 9, "jpeg", key2, &e) == 0 && storage_get(s, key2, &o, &e) == 0 &&
              !strcmp(o.content_type, "image/jpeg") && !strcmp(o.ext, "jpg"), "jpeg stored as .jpg, image/jpeg");
    close(o.fd);
    CHECK(storage_put(s, "webpbytes", 9, "webp", key2, &e) == 0 && storage_get(s, key2, &o, &e) == 0 &&
              !strcmp(o.content_type, "image/webp"), "webp content type");
    close(o.fd);
    sd_err_clear(&e);
    CHECK(storage_put(s, data, sizeof data, "exe", key2, &e) == -1 && e.code == SD_EINVAL && !key2[0],
          "unknown extension refused");
    sd_err_clear(&e);
    CHECK(storage_put(s, data, 0, "png", key2, &e) == -1 && e.code == SD_EINVAL, "empty object refused");
    sd_err_clear(&e);
    CHECK(storage_url(s, "../x", url, sizeof url, &e) == -1 && e.code == SD_EINVAL && !url[0], "url of a bad key");
    sd_err_clear(&e);
    CHECK(storage_url(s, key, url, 20, &e) == -1 && e.code == SD_EINVAL, "url buffer too small");

    /* names that must never reach the file system */
    char k33[40], up[40], ext_dot[64], dbl[64], longname[5000];
    snprintf(k33, sizeof k33, "%sa", key);
    snprintf(up, sizeof up, "%s", key);
    for (char *p = up; *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 32);
    snprintf(ext_dot, sizeof ext_dot, "%s.", key);
    snprintf(dbl, sizeof dbl, "%s.png.png", key);
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    char slash[64], dotdot[80], pct[80], upext[64];
    snprintf(slash, sizeof slash, "/%s", key);
    snprintf(dotdot, sizeof dotdot, "../images/%s", key);
    snprintf(pct, sizeof pct, "%%2e%%2e%%2f%s", key);
    snprintf(upext, sizeof upext, "%s.PNG", key);
    const char *bad[] = {"",      "..",    "../etc/passwd", "/etc/passwd", "%2e%2e/%2e%2e/etc/passwd", k33,
                         key + 1, up,      ext_dot,         dbl,           longname,                    slash,
                         dotdot,  pct,     upext,           ".tmp-x",      "a61b5473ac46fa684b6a5f2369e8dfc0/..",
                         NULL};
    int all = 1;
    const char *which = "";
    for (int i = 0; bad[i]; i++) {
        sd_err_clear(&e);
        if (storage_get(s, bad[i], &o, &e) != -1 || e.code != SD_ENOTFOUND || o.fd != -1) {
            all = 0;
            which = bad[i];
            if (o.fd >= 0) close(o.fd);
        }
    }
    CHECKF(all, "bad names refused (.., /, %2e, uppercase, long, wrong length, .PNG)", "accepted '%.60s'", which);
    sd_err_clear(&e);
    CHECK(storage_get(s, NULL, &o, &e) == -1 && e.code == SD_ENOTFOUND, "NULL name refused");
    /* a valid-looking name that is a symlink out of the folder */
    const char *evil = "0123456789abcdef0123456789abcdef";
    snprintf(path, sizeof path, "%s/%s.png", dir, evil);
    CHECK(symlink("/etc/passwd", path) == 0, "made a symlink");
    sd_err_clear(&e);
    CHECK(storage_get(s, evil, &o, &e) == -1 && e.code == SD_ENOTFOUND, "symlinked object refused");
    unlink(path);
    snprintf(path, sizeof path, "%s/%s.png", dir, evil);
    mkdir(path, 0755);
    sd_err_clear(&e);
    CHECK(storage_get(s, evil, &o, &e) == -1 && e.code == SD_ENOTFOUND, "directory object refused");
    rmdir(path);
    storage_close(s);
}

static void test_failures(void)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/fail", root);
    sd_err e;
    sd_err_clear(&e);
    storage *s = storage_local_open(dir, "https://cdn.example/i", &e);
    if (!s) {
        CHECKF(0, "open fail dir", "%s", e.msg);
        return;
    }
    /* A write that fails midway (file size limit -> EFBIG, even for root). */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 1000;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    uint8_t *big = malloc(5000);
    memset(big, 7, 5000);
    char key[STORAGE_KEY_MAX];
    int rc = storage_put(s, big, 5000, "png", key, &e);
    setrlimit(RLIMIT_FSIZE, &old);
    int temps, n = count_files(dir, &temps);
    CHECKF(rc == -1 && e.code == SD_EIO && strstr(e.msg, "write") && n == 0 && !key[0],
           "failing write: error, nothing left behind", "rc=%d files=%d %s", rc, n, e.msg);
    sd_err_clear(&e);
    CHECK(storage_put(s, big, 5000, "png", key, &e) == 0 && count_files(dir, &temps) == 1 && temps == 0,
          "same put succeeds once the limit is lifted");
    /* Read-only folder: only meaningful when not root (root ignores modes). */
    if (geteuid() != 0) {
        chmod(dir, 0555);
        sd_err_clear(&e);
        big[0] = 1;
        rc = storage_put(s, big, 5000, "png", key, &e);
        CHECKF(rc == -1 && e.code == SD_EIO && count_files(dir, &temps) == 1, "read-only folder: error", "%s", e.msg);
        chmod(dir, 0755);
    }
    /* The folder disappears under the server. */
    char path[400];
    snprintf(path, sizeof path, "%s/%s.png", dir, key);
    unlink(path);
    rmdir(dir);
    sd_err_clear(&e);
    big[0] = 2;
    rc = storage_put(s, big, 5000, "png", key, &e);
    /* the message reaches HTTP clients: the cause, never the server's path */
    CHECKF(rc == -1 && e.code == SD_EIO && strstr(e.msg, "image folder") && strstr(e.msg, strerror(ENOENT)) &&
               !strstr(e.msg, dir),
           "folder removed: error says the image folder and the cause, not its path", "%s", e.msg);
    storage_close(s);
    free(big);

    /* open errors */
    sd_err_clear(&e);
    CHECK(!storage_local_open(root, "ftp://x", &e) && e.code == SD_EINVAL && !strcmp(e.field, "public_url"),
          "non-http url prefix refused");
    snprintf(path, sizeof path, "%s/afile", root);
    FILE *f = fopen(path, "w");
    fclose(f);
    snprintf(dir, sizeof dir, "%s/afile/sub", root);
    sd_err_clear(&e);
    CHECKF(!storage_local_open(dir, "http://x", &e) && e.code == SD_EIO && strstr(e.msg, "afile"),
           "folder under a file refused", "%s", e.msg);
}

static void test_stale_temps(void)
{
    char dir[300], p1[400], p2[400];
    snprintf(dir, sizeof dir, "%s/stale", root);
    mkdir(dir, 0755);
    snprintf(p1, sizeof p1, "%s/.tmp-old", dir);
    snprintf(p2, sizeof p2, "%s/.tmp-new", dir);
    fclose(fopen(p1, "w"));
    fclose(fopen(p2, "w"));
    struct timeval tv[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
    utimes(p1, tv);
    sd_err e;
    sd_err_clear(&e);
    storage *s = storage_local_open(dir, "http://x/", &e);
    CHECK(s && access(p1, F_OK) != 0 && access(p2, F_OK) == 0, "stale temp removed on open, fresh one kept");
    storage_close(s);
}

typedef struct put_job {
    storage *s;
    int id, ok;
} put_job;

static void *put_many(void *arg)
{
    put_job *j = arg;
    j->ok = 1;
    for (int i = 0; i < 25; i++) {
        char data[64], key[STORAGE_KEY_MAX];
        int n = snprintf(data, sizeof data, "thread %d image %d", j->id, i);
        sd_err e;
        sd_err_clear(&e);
        if (storage_put(j->s, data, (size_t)n, "webp", key, &e)) j->ok = 0;
    }
    return NULL;
}

static void test_concurrent(void)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/conc", root);
    sd_err e;
    sd_err_clear(&e);
    storage *s = storage_local_open(dir, "http://x", &e);
    pthread_t th[4];
    put_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (put_job){s, i, 0};
        pthread_create(&th[i], NULL, put_many, &jobs[i]);
    }
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok &= jobs[i].ok;
    }
    int temps, n = count_files(dir, &temps);
    CHECKF(ok && n == 100 && temps == 0, "4 threads x 25 puts: 100 files, no temps", "ok=%d n=%d temps=%d", ok, n, temps);
    storage_close(s);
}

/* ---- retention ---------------------------------------------------------------- */

static void set_age(const char *path, double now, double age)
{
    double t = now - age;
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = (time_t)t;
    ts[0].tv_nsec = ts[1].tv_nsec = (long)((t - (double)(time_t)t) * 1e9);
    utimensat(AT_FDCWD, path, ts, 0);
}

/* Writes an image file "<tag as 32 hex>.png" of `size` bytes straight into
 * `dir` (not through a put) with its mtime `age` seconds before `now`. */
static void write_aged(const char *dir, unsigned tag, size_t size, double now, double age)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%032x.png", dir, tag);
    FILE *f = fopen(path, "w");
    for (size_t i = 0; f && i < size; i++) fputc((int)(tag + i), f);
    if (f) fclose(f);
    set_age(path, now, age);
}


/* n images of 100 bytes: tags[i] aged ages[i] seconds. */
static void write_aged_set(const char *dir, double now, int n, const unsigned *tags, const double *ages)
{
    for (int i = 0; i < n; i++) write_aged(dir, tags[i], 100, now, ages[i]);
}

static int exists_tag(const char *dir, unsigned tag)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%032x.png", dir, tag);
    return access(path, F_OK) == 0;
}

static double wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Waits up to 10 s for the file of `tag` to disappear (the sweeper runs in its own thread). */
static int gone_soon(const char *dir, unsigned tag)
{
    for (int i = 0; i < 1000 && exists_tag(dir, tag); i++) usleep(10000);
    return !exists_tag(dir, tag);
}

/* A local store in root/sub (dir gets its path), or NULL after a failed check. */
static storage *open_sub(const char *sub, char dir[300])
{
    snprintf(dir, 300, "%s/%s", root, sub);
    sd_err e;
    sd_err_clear(&e);
    storage *s = storage_local_open(dir, "http://x", &e);
    if (!s) CHECKF(0, "open a store for the retention tests", "%s: %s", sub, e.msg);
    return s;
}

static void test_retention_rules(void)
{
    char dir[300], path[400];
    sd_err e;
    sd_err_clear(&e);
    storage *s = open_sub("ret", dir);
    if (!s) return;
    double now = wall();
    write_aged_set(dir, now, 3, (const unsigned[]){1, 2, 3}, (const double[]){10, 100, 1000});
    const char *others[] = {".tmp-old", "notes.txt", "0123456789abcdef0123456789abcdef.gif"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, others[i]);
        fclose(fopen(path, "w"));
        set_age(path, now, 100000);
    }
    storage_sweep_stats st;
    storage_retention r = {.max_age = 500, .max_bytes = 0, .min_age = 5};
    CHECKF(storage_local_sweep(s, &r, now, &st, &e) == 0 && st.removed == 1 && st.removed_bytes == 100 && st.kept == 2 &&
               !exists_tag(dir, 3) && exists_tag(dir, 1) && exists_tag(dir, 2),
           "age rule: the image older than max_age removed, the others kept", "removed %d kept %d %s", st.removed,
           st.kept, e.msg);
    int all = 1;
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, others[i]);
        all &= access(path, F_OK) == 0;
    }
    CHECK(all, "files that are not images (temp, other names, other extensions) are never removed");

    /* size cap: 4 more images of 100 bytes; 600 bytes in all, cap 250 */
    write_aged_set(dir, now, 4, (const unsigned[]){4, 5, 6, 7}, (const double[]){40, 30, 20, 15});
    r = (storage_retention){.max_age = 0, .max_bytes = 250, .min_age = 5};
    CHECKF(storage_local_sweep(s, &r, now, &st, &e) == 0 && st.removed == 4 && st.kept == 2 && st.kept_bytes == 200 &&
               st.pinned == 0 && !exists_tag(dir, 2) && !exists_tag(dir, 4) && !exists_tag(dir, 5) &&
               !exists_tag(dir, 6) && exists_tag(dir, 7) && exists_tag(dir, 1),
           "size cap: oldest removed first until at or under the cap", "removed %d kept %d (%llu bytes)", st.removed,
           st.kept, (unsigned long long)st.kept_bytes);

    /* the pin: images younger than min_age stay, even over the cap or past max_age */
    write_aged_set(dir, now, 3, (const unsigned[]){8, 9, 10}, (const double[]){1, 2, 3});
    r = (storage_retention){.max_age = 0.5, .max_bytes = 1, .min_age = 5};
    CHECKF(storage_local_sweep(s, &r, now, &st, &e) == 0 && st.removed == 2 && st.pinned == 3 && st.kept == 3 &&
               exists_tag(dir, 8) && exists_tag(dir, 9) && exists_tag(dir, 10) && !exists_tag(dir, 1) &&
               !exists_tag(dir, 7),
           "pin: images younger than min_age kept over the cap and past max_age; the older ones removed",
           "removed %d pinned %d kept %d", st.removed, st.pinned, st.kept);

    /* a put of bytes already stored refreshes the image: its age starts again */
    const char blob[] = "an image stored long ago and asked for again";
    char key[STORAGE_KEY_MAX];
    CHECK(storage_put(s, blob, sizeof blob, "png", key, &e) == 0, "put an image");
    snprintf(path, sizeof path, "%s/%s.png", dir, key);
    set_age(path, now, 1000);
    CHECK(storage_put(s, blob, sizeof blob, "png", key, &e) == 0, "put the same bytes again");
    r = (storage_retention){.max_age = 500, .max_bytes = 0, .min_age = 5};
    CHECKF(storage_local_sweep(s, &r, wall(), &st, &e) == 0 && access(path, F_OK) == 0 && st.removed == 0,
           "re-put image is young again: not removed by the age rule", "removed %d", st.removed);
    set_age(path, now, 1000);
    CHECK(storage_local_sweep(s, &r, wall(), &st, &e) == 0 && access(path, F_OK) != 0 && st.removed == 1,
          "without the re-put it is removed");
    storage_close(s);

    /* only the local store has retention */
    static const storage_ops other_ops = {"other", NULL, NULL, NULL, NULL};
    storage other = {&other_ops};
    sd_err_clear(&e);
    CHECK(storage_local_sweep(&other, &r, now, &st, &e) == -1 && e.code == SD_EINVAL, "sweep of another store refused");
    sd_err_clear(&e);
    CHECK(storage_local_retain(&other, &r, &e) == -1 && e.code == SD_EINVAL, "retention on another store refused");
}

static void test_retention_thread(void)
{
    char dir[300];
    sd_err e;
    sd_err_clear(&e);
    storage *s = open_sub("ret-thread", dir);
    if (!s) return;
    double now = wall();
    write_aged_set(dir, now, 3, (const unsigned[]){20, 21, 22}, (const double[]){10000, 1000, 900});
    /* min_age 200: the periodic sweep is 60 s away, so what happens sooner is the start or a kick */
    storage_retention r = {.max_age = 5000, .max_bytes = 250, .min_age = 200};
    CHECKF(storage_local_retain(s, &r, &e) == 0, "retention thread starts", "%s", e.msg);
    sd_err_clear(&e);
    CHECK(storage_local_retain(s, &r, &e) == -1 && e.code == SD_EINVAL, "a second retain on the store refused");
    CHECK(gone_soon(dir, 20) && exists_tag(dir, 21) && exists_tag(dir, 22),
          "sweep at start: the image past max_age removed, 200 bytes left under the 250 cap");
    char key[STORAGE_KEY_MAX];
    const char blob[] = "a fresh image of some bytes, enough of them to go over the cap: 0123456789abcdefghij";
    sd_err_clear(&e);
    CHECK(storage_put(s, blob, sizeof blob, "png", key, &e) == 0 && gone_soon(dir, 21) && exists_tag(dir, 22),
          "a put over the cap wakes the sweeper: the oldest image removed");

    /* an image written behind the store's back takes it over the cap unnoticed; a failing put
     * (a full disk: here a file-size limit) wakes the sweeper */
    write_aged(dir, 23, 100, now, 2000);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 10;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    sd_err_clear(&e);
    int rc = storage_put(s, blob, sizeof blob - 5, "png", key, &e);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECKF(rc == -1 && e.code == SD_EIO && gone_soon(dir, 23) && exists_tag(dir, 22),
           "a failed put wakes the sweeper: the oldest image removed", "rc %d %s", rc, e.msg);
    storage_close(s);   /* stops and joins the thread */
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/sd_test_storage_%d", (int)getpid());
    mkdir(root, 0755);
    test_round_trip();
    test_failures();
    test_stale_temps();
    test_concurrent();
    test_retention_rules();
    test_retention_thread();
    t_rmtree(root);
    return t_done();
}
