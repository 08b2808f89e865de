/* test_storage.c — the local storage (SHA-256 vectors are in test_sha256.c)
 * backend: round trip, content-derived names, atomic writes (a failing write
 * leaves nothing behind, no temp files survive), strict name validation on
 * read (no path tricks), URLs, concurrent puts. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
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

int main(void)
{
    snprintf(root, sizeof root, "/tmp/sd_test_storage_%d", (int)getpid());
    mkdir(root, 0755);
    test_round_trip();
    test_failures();
    test_stale_temps();
    test_concurrent();
    t_rmtree(root);
    return t_done();
}
