/* test_s3_sign.c — the S3 backend without a server: SigV4 signing-key
 * derivation and query pre-signing against AWS's published examples, URL
 * shapes for path-style / virtual-hosted / public buckets, session tokens in
 * pre-signed URLs, and refused configurations (named fields, no secrets in
 * messages). */
#include <stdio.h>
#include <string.h>

#include "t.h"
#include "../../src/base/sha256.h"
#include "../../src/storage/storage.h"

#define AK "AKIAIOSFODNN7EXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

static int starts(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

static storage *open_cfg(storage_s3_config *c, sd_err *e)
{
    sd_err_clear(e);
    return storage_s3_open(c, e);
}

static storage_s3_config base_cfg(void)
{
    storage_s3_config c = {.endpoint = "https://s3.amazonaws.com", .region = "us-east-1", .bucket = "examplebucket",
                           .access_key = AK, .secret_key = SK, .presign_expires = 86400, .timeout = 10, .attempts = 3};
    return c;
}

int main(void)
{
    /* AWS General Reference, "deriving the signing key" example */
    unsigned char k[32];
    char hex[65];
    storage_s3_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam", k);
    sd_hex(k, 32, hex);
    CHECKF(!strcmp(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"),
           "sigv4 signing key = AWS example (20120215/us-east-1/iam)", "got %s", hex);

    /* Amazon S3 API reference, "Authenticating Requests: Using Query
     * Parameters": GET examplebucket/test.txt, 2013-05-24T00:00:00Z, 86400 s */
    sd_err e;
    storage_s3_config c = base_cfg();
    storage *s = open_cfg(&c, &e);
    CHECKF(s != NULL && !strcmp(storage_backend_name(s), "s3"), "open s3 storage (virtual-hosted)", "%s", e.msg);
    if (!s) return t_done();
    char url[2048];
    int rc = storage_s3_presign(s, "test.txt", 1369353600LL, url, sizeof url, &e);
    const char *want =
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
    CHECKF(rc == 0 && !strcmp(url, want), "pre-signed URL = AWS's published example", "rc %d %s\n# got  %s\n# want %s",
           rc, e.msg, url, want);
    CHECK(storage_s3_presign(s, "test.txt", 1369353600LL, url, 100, &e) == -1 && e.code == SD_EINVAL && !url[0],
          "pre-sign into a too-small buffer fails cleanly");
    /* storage_url needs "<key>.<ext>" and pre-signs with the current time */
    const char *key = "0123456789abcdef0123456789abcdef";
    char name[64];
    snprintf(name, sizeof name, "%s.webp", key);
    sd_err_clear(&e);
    rc = storage_url(s, name, url, sizeof url, &e);
    CHECKF(rc == 0 && starts(url, "https://examplebucket.s3.amazonaws.com/0123456789abcdef0123456789abcdef.webp?X-Amz-") &&
               strstr(url, "X-Amz-Expires=86400&") && strstr(url, "&X-Amz-Signature=") && !strstr(url, "EXAMPLEKEY"),
           "storage_url pre-signs key.ext, secret not in the URL", "rc %d %s %s", rc, e.msg, url);
    sd_err_clear(&e);
    CHECK(storage_url(s, key, url, sizeof url, &e) == -1 && e.code == SD_EINVAL && strstr(e.msg, "extension"),
          "storage_url without an extension is refused by s3");
    sd_err_clear(&e);
    CHECK(storage_get(s, name, &(storage_object){0}, &e) == -1 && e.code == SD_ENOTFOUND, "s3 objects are not served locally");
    storage_close(s);

    /* path-style, non-default port, prefix, session token */
    c = base_cfg();
    c.endpoint = "http://127.0.0.1:9000/";
    c.path_style = 1;
    c.bucket = "imgs";
    c.prefix = "sd/out/";
    c.session_token = "tok/en+with=chars";
    c.presign_expires = 60;
    s = open_cfg(&c, &e);
    CHECKF(s != NULL, "open s3 storage (path-style, prefix, token)", "%s", e.msg);
    if (s) {
        rc = storage_url(s, name, url, sizeof url, &e);
        CHECKF(rc == 0 && starts(url, "http://127.0.0.1:9000/imgs/sd/out/0123456789abcdef0123456789abcdef.webp?") &&
                   strstr(url, "&X-Amz-Expires=60&X-Amz-Security-Token=tok%2Fen%2Bwith%3Dchars&X-Amz-SignedHeaders=host&"),
               "path-style pre-signed URL with prefix and encoded session token", "%s", url);
        storage_close(s);
    }
    /* default ports are dropped (they are not in the Host header clients send) */
    c = base_cfg();
    c.endpoint = "https://cos.ap-guangzhou.myqcloud.com:443";
    c.region = "ap-guangzhou";
    c.bucket = "examplebucket-1250000000";
    s = open_cfg(&c, &e);
    if (s) {
        rc = storage_url(s, name, url, sizeof url, &e);
        CHECKF(rc == 0 && starts(url, "https://examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com/0123") &&
                   strstr(url, "%2Fap-guangzhou%2Fs3%2Faws4_request"),
               "virtual-hosted COS URL, :443 dropped, region in the credential scope", "%s", url);
        storage_close(s);
    } else {
        CHECKF(0, "virtual-hosted COS URL, :443 dropped, region in the credential scope", "%s", e.msg);
    }
    /* public base URL */
    c = base_cfg();
    c.public_url = "https://cdn.example.com/images/";
    c.prefix = "p/";
    s = open_cfg(&c, &e);
    if (s) {
        rc = storage_url(s, name, url, sizeof url, &e);
        CHECKF(rc == 0 && !strcmp(url, "https://cdn.example.com/images/p/0123456789abcdef0123456789abcdef.webp"),
               "public URL = base + prefix + key.ext", "%s", url);
        storage_close(s);
    }

    /* refused configurations name the field and never echo the secret */
    struct {
        const char *what, *field;
        storage_s3_config c;
    } bad[] = {
        {"endpoint without scheme", "s3-endpoint", {.endpoint = "s3.amazonaws.com"}},
        {"endpoint with a path", "s3-endpoint", {.endpoint = "https://s3.amazonaws.com/bucket"}},
        {"bucket too short", "s3-bucket", {.bucket = "ab"}},
        {"bucket with a slash", "s3-bucket", {.bucket = "a/b/c"}},
        {"prefix starting with /", "s3-prefix", {.prefix = "/x/"}},
        {"prefix with ..", "s3-prefix", {.prefix = "a/../b/"}},
        {"prefix with a space", "s3-prefix", {.prefix = "a b/"}},
        {"no secret key", "s3-access-key", {.secret_key = ""}},
        {"expiry over a week", "s3-presign-expires", {.presign_expires = 604801}},
        {"public url without scheme", "s3-public-url", {.public_url = "cdn.example.com"}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        storage_s3_config b = base_cfg();
        if (bad[i].c.endpoint) b.endpoint = bad[i].c.endpoint;
        if (bad[i].c.bucket) b.bucket = bad[i].c.bucket;
        if (bad[i].c.prefix) b.prefix = bad[i].c.prefix;
        if (bad[i].c.secret_key) b.secret_key = bad[i].c.secret_key;
        if (bad[i].c.presign_expires) b.presign_expires = bad[i].c.presign_expires;
        if (bad[i].c.public_url) b.public_url = bad[i].c.public_url;
        s = open_cfg(&b, &e);
        char nm[120];
        snprintf(nm, sizeof nm, "refused: %s (field %s)", bad[i].what, bad[i].field);
        CHECKF(!s && e.code == SD_EINVAL && !strcmp(e.field, bad[i].field) && !strstr(e.msg, "EXAMPLEKEY"), nm,
               "field '%s' msg %s", e.field, e.msg);
        storage_close(s);
    }
    return t_done();
}
