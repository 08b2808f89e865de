/* s3put.c — uploads one image file through the S3 storage backend and prints
 * the URL sdserve would return for it: a way to check S3 settings before
 * starting the server, and the driver of tests/storage/test_s3.sh.
 *
 *   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
 *   build/tools/s3put --endpoint http://127.0.0.1:9000 --bucket imgs --addressing path --file x.png
 *
 * Exit status 0 with the URL on stdout, or 1 with the error on stderr. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/base/settings.h"
#include "../src/storage/storage.h"

static char *o_endpoint, *o_region, *o_bucket, *o_addressing, *o_prefix, *o_public, *o_file, *o_ext;
static int64_t o_expires, o_attempts;
static double o_timeout;

static const sd_setting table[] = {
    {"endpoint", SD_SET_STR, &o_endpoint, NULL, 0, 0, "S3 endpoint, scheme://host[:port]"},
    {"region", SD_SET_STR, &o_region, "us-east-1", 0, 0, "signing region"},
    {"bucket", SD_SET_STR, &o_bucket, NULL, 0, 0, "bucket"},
    {"addressing", SD_SET_STR, &o_addressing, "virtual", 0, 0, "virtual or path"},
    {"prefix", SD_SET_STR, &o_prefix, NULL, 0, 0, "object key prefix"},
    {"public-url", SD_SET_STR, &o_public, NULL, 0, 0, "public base URL (none = pre-signed)"},
    {"expires", SD_SET_INT, &o_expires, "3600", 1, 604800, "seconds a pre-signed URL is valid"},
    {"timeout", SD_SET_DOUBLE, &o_timeout, "30", 0.1, 3600, "seconds for the upload, retries included"},
    {"attempts", SD_SET_INT, &o_attempts, "5", 1, 100, "tries on connection errors and 5xx"},
    {"file", SD_SET_STR, &o_file, NULL, 0, 0, "the file to upload"},
    {"ext", SD_SET_STR, &o_ext, "png", 0, 0, "png, jpg or webp"},
};
#define N (int)(sizeof table / sizeof table[0])

int main(int argc, char **argv)
{
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_settings_load(table, N, argc, argv, &err);
    if (rc == 1) {
        sd_settings_usage(stdout, "usage: s3put [options] --file PATH  (credentials from AWS_ACCESS_KEY_ID, "
                                  "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)", table, N);
        return 0;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    storage *s = NULL;
    if (!rc && !o_file) rc = sd_errf(&err, SD_EINVAL, "file", "--file is required");
    if (!rc) {
        FILE *f = fopen(o_file, "rb");
        if (!f) rc = sd_errf(&err, SD_EIO, "file", "cannot open %s", o_file);
        else {
            fseek(f, 0, SEEK_END);
            long n = ftell(f);
            fseek(f, 0, SEEK_SET);
            data = n > 0 ? malloc((size_t)n) : NULL;
            if (!data || fread(data, 1, (size_t)n, f) != (size_t)n) rc = sd_errf(&err, SD_EIO, "file", "cannot read %s", o_file);
            len = (size_t)n;
            fclose(f);
        }
    }
    if (!rc) {
        storage_s3_config c = {
            .endpoint = o_endpoint, .region = o_region, .bucket = o_bucket,
            .path_style = o_addressing && !strcmp(o_addressing, "path"), .prefix = o_prefix,
            .access_key = getenv("AWS_ACCESS_KEY_ID"), .secret_key = getenv("AWS_SECRET_ACCESS_KEY"),
            .session_token = getenv("AWS_SESSION_TOKEN"), .public_url = o_public,
            .presign_expires = (int)o_expires, .timeout = o_timeout, .attempts = (int)o_attempts,
        };
        s = storage_s3_open(&c, &err);
        if (!s) rc = -1;
    }
    char key[STORAGE_KEY_MAX], name[STORAGE_KEY_MAX + 8], url[4096];
    if (!rc) rc = storage_put(s, data, len, o_ext, key, &err);
    if (!rc) {
        snprintf(name, sizeof name, "%s.%s", key, storage_ext_canonical(o_ext));
        rc = storage_url(s, name, url, sizeof url, &err);
    }
    if (!rc) printf("%s\n", url);
    else fprintf(stderr, "s3put: %s (%s)\n", err.msg, sd_err_code_name(err.code));
    storage_close(s);
    free(data);
    sd_settings_free(table, N);
    return rc ? 1 : 0;
}
