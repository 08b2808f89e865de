/* test_auth.c — API keys (src/http/auth.c) and the per-client rate limit
 * (src/http/ratelimit.c): loading from a list and a file, refusals that name
 * the line without echoing the key, the Bearer check (missing, malformed,
 * wrong, prefix/extension of a key, which key matched), token buckets
 * (burst, Retry-After, refill, independence, table sweep). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"

#include "../../src/http/auth.h"
#include "../../src/http/ratelimit.h"

#define K1 "k1-0123456789abcdef"
#define K2 "k2-fedcba9876543210xyz"
#define K3 "k3-from-the-file-0000"

static void test_keys(void)
{
    sd_err err;
    sd_err_clear(&err);
    auth_keys *k = auth_keys_load(NULL, NULL, &err);
    CHECK(k && auth_keys_count(k) == 0, "no keys configured: empty set (auth off)");
    auth_keys_free(k);

    char path[] = "/tmp/sdserve-keys-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# keys for the test\n\n   " K3 "  \n");
    fclose(f);
    k = auth_keys_load(K1 ", " K2, path, &err);
    CHECKF(k && auth_keys_count(k) == 3, "keys from a list and a file", "%s", err.msg);
    int idx = -9;
    CHECK(auth_check(k, NULL, &idx) == AUTH_MISSING && idx == -1, "no header: missing");
    /* HTTP Basic (A1111 clients): the password is the key, the user ignored */
    CHECK(auth_check(k, "Basic dXNlcjpwYXNz", &idx) == AUTH_WRONG && idx == -1, "Basic user:pass, not a key: wrong");
    CHECK(auth_check(k, "Basic dXNlcjprMS0wMTIzNDU2Nzg5YWJjZGVm", &idx) == AUTH_OK && idx == 0, "Basic user:KEY1 accepted, index 0");
    CHECK(auth_check(k, "basic  OmsyLWZlZGNiYTk4NzY1NDMyMTB4eXo= ", &idx) == AUTH_OK && idx == 1, "Basic :KEY2 (no user), scheme case-insensitive");
    CHECK(auth_check(k, "Basic azEtMDEyMzQ1Njc4OWFiY2RlZg==", &idx) == AUTH_MALFORMED, "Basic without a colon: malformed");
    CHECK(auth_check(k, "Basic dXNlcjo=", &idx) == AUTH_MALFORMED, "Basic with an empty password: malformed");
    CHECK(auth_check(k, "Basic %%%%not-base64", &idx) == AUTH_MALFORMED, "Basic with bad base64: malformed");
    CHECK(auth_check(k, "Basic", &idx) == AUTH_MALFORMED, "Basic without credentials: malformed");
    CHECK(auth_check(k, "Digest abc", &idx) == AUTH_MALFORMED, "another scheme: malformed");
    CHECK(auth_check(k, "Bearer", &idx) == AUTH_MALFORMED, "Bearer without a token: malformed");
    CHECK(auth_check(k, "Bearer    ", &idx) == AUTH_MALFORMED, "Bearer with blanks only: malformed");
    CHECK(auth_check(k, "Bearer" K1, &idx) == AUTH_MALFORMED, "no blank after Bearer: malformed");
    CHECK(auth_check(k, "Bearer " K1, &idx) == AUTH_OK && idx == 0, "first key accepted, index 0");
    CHECK(auth_check(k, "bearer   " K2 " ", &idx) == AUTH_OK && idx == 1, "scheme case-insensitive, blanks trimmed");
    CHECK(auth_check(k, "Bearer " K3, &idx) == AUTH_OK && idx == 2, "key from the file accepted, index 2");
    CHECK(auth_check(k, "Bearer k1-0123456789abcde", &idx) == AUTH_WRONG && idx == -1, "prefix of a key: wrong");
    CHECK(auth_check(k, "Bearer " K1 "0", &idx) == AUTH_WRONG, "key plus a character: wrong");
    CHECK(auth_check(k, "Bearer K1-0123456789abcdef", &idx) == AUTH_WRONG, "keys are case-sensitive");
    CHECK(auth_check(k, "Bearer " K1 "," K2, &idx) == AUTH_WRONG, "two keys in one header: wrong");
    auth_keys_free(k);

    sd_err_clear(&err);
    k = auth_keys_load("short", NULL, &err);
    CHECKF(!k && err.code == SD_EINVAL && !strcmp(err.field, "api-keys") && strstr(err.msg, "16") &&
               !strstr(err.msg, "short"),
           "a short key is refused without echoing it", "%s", err.msg);
    CHECKF(!k && strstr(err.msg, "--api-keys: "), "a short key: the message names --api-keys", "%s", err.msg);
    f = fopen(path, "w");
    fprintf(f, K3 "\nbad\x01key-0123456789abc\n");
    fclose(f);
    sd_err_clear(&err);
    k = auth_keys_load(NULL, path, &err);
    CHECKF(!k && !strcmp(err.field, "api-keys-file") && strstr(err.msg, "line 2") && strstr(err.msg, "0x01"),
           "a control byte in the file: refused naming the line", "%s", err.msg);
    CHECKF(!k && strstr(err.msg, "--api-keys-file "), "a control byte in the file: the message names --api-keys-file",
           "%s", err.msg);
    unlink(path);
    sd_err_clear(&err);
    k = auth_keys_load(NULL, path, &err);
    CHECKF(!k && err.code == SD_ENOTFOUND && strstr(err.msg, path) && strstr(err.msg, "--api-keys-file"),
           "missing key file: refused naming it and --api-keys-file", "%s", err.msg);
    /* a folder: said so, not the first read's "Is a directory" */
    char dir[300];
    snprintf(dir, sizeof dir, "%s.d", path);
    mkdir(dir, 0700);
    sd_err_clear(&err);
    k = auth_keys_load(NULL, dir, &err);
    CHECKF(!k && !strcmp(err.field, "api-keys-file") && strstr(err.msg, "--api-keys-file") && strstr(err.msg, dir) &&
               strstr(err.msg, "is a folder; give the file of API keys"),
           "a key file that is a folder: refused saying so", "%s", err.msg);
    rmdir(dir);
    /* given but empty: refused, not "no authentication" (the server would be open) */
    f = fopen(path, "w");
    fprintf(f, "# keys go here\n\n");
    fclose(f);
    sd_err_clear(&err);
    k = auth_keys_load(NULL, path, &err);
    CHECKF(!k && !strcmp(err.field, "api-keys-file") && strstr(err.msg, "--api-keys-file") && strstr(err.msg, path) &&
               strstr(err.msg, "no API key"),
           "a key file of comments only: refused naming --api-keys-file", "%s", err.msg);
    sd_err_clear(&err);
    k = auth_keys_load(" , ,", "", &err);
    CHECKF(!k && !strcmp(err.field, "api-keys") && strstr(err.msg, "--api-keys holds no API key"),
           "a key list of separators only: refused naming --api-keys", "%s", err.msg);
    sd_err_clear(&err);
    k = auth_keys_load("", "", &err);
    CHECK(k && auth_keys_count(k) == 0, "empty settings (SDSERVE_API_KEYS=): auth off");
    auth_keys_free(k);
    unlink(path);
}

static void test_rate(void)
{
    CHECK(rl_create(0, 5, 10) == NULL && rl_take(NULL, "ip:1", 0) == 0, "rate 0: no limiter, always allowed");
    ratelimit *rl = rl_create(60, 3, 100);   /* one a second, 3 at once */
    int ok = 1;
    for (int i = 0; i < 3; i++) ok &= rl_take(rl, "key:0", 100.0) == 0;
    CHECK(ok, "burst of 3 allowed");
    int w = rl_take(rl, "key:0", 100.0);
    CHECKF(w == 1, "4th at once refused, retry after 1 s", "wait %d", w);
    CHECK(rl_take(rl, "key:1", 100.0) == 0, "another client is independent");
    CHECK(rl_take(rl, "key:0", 100.5) == 1, "half a second later: still refused");
    CHECK(rl_take(rl, "key:0", 101.0) == 0, "one second later: one more allowed");
    CHECK(rl_take(rl, "key:0", 101.0) == 1, "and then refused again");
    rl_free(rl);

    rl = rl_create(6, 1, 100);   /* one per 10 s */
    rl_take(rl, "ip:a", 0);
    w = rl_take(rl, "ip:a", 1);
    CHECKF(w == 9, "Retry-After is the whole seconds to the next token", "wait %d", w);
    rl_free(rl);

    rl = rl_create(60, 2, 4);   /* at most 4 clients tracked */
    char who[32];
    for (int i = 0; i < 4; i++) {
        snprintf(who, sizeof who, "ip:%d", i);
        rl_take(rl, who, 0);
    }
    CHECK(rl_clients(rl) == 4, "4 clients tracked");
    CHECK(rl_take(rl, "ip:new", 0) == 0 && rl_clients(rl) == 4, "table full of busy clients: a new one passes untracked");
    CHECK(rl_take(rl, "ip:new2", 10) == 0 && rl_clients(rl) == 1, "after refill the sweep drops the idle clients");
    rl_take(rl, "ip:new2", 10);
    CHECK(rl_take(rl, "ip:new2", 10) == 1, "the tracked client is limited again");
    rl_free(rl);
}

int main(void)
{
    test_keys();
    test_rate();
    return t_done();
}
