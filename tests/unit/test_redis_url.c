/* test_redis_url.c — the --queue URL of the Redis job backend
 * (src/jobs/redis.h redis_url_parse): redis://[user:password@]host:port/db,
 * parsed strictly; every refusal is SD_EINVAL naming "queue". */
#include <string.h>

#include "t.h"
#include "../../src/jobs/redis.h"

/* 1 when url is refused with SD_EINVAL naming queue. */
static int refused(const char *url)
{
    redis_url u;
    sd_err e;
    sd_err_clear(&e);
    return redis_url_parse(url, &u, &e) == -1 && e.code == SD_EINVAL && !strcmp(e.field, "queue") && e.msg[0];
}

int main(void)
{
    redis_url u;
    sd_err e;
    sd_err_clear(&e);
    CHECK(!redis_url_parse("redis://127.0.0.1:6379/0", &u, &e) && !strcmp(u.host, "127.0.0.1") && u.port == 6379 &&
          u.db == 0 && !u.user[0] && !u.password[0], "host, port, db; no credentials");
    CHECK(!redis_url_parse("redis://sdserve:s3cr:et@redis.lan:6380/5", &u, &e) && !strcmp(u.user, "sdserve") &&
          !strcmp(u.password, "s3cr:et") && !strcmp(u.host, "redis.lan") && u.port == 6380 && u.db == 5,
          "user:password (ACL), the password may hold ':'");
    CHECK(!redis_url_parse("redis://:pw@h:1/1023", &u, &e) && !u.user[0] && !strcmp(u.password, "pw") && u.port == 1 &&
          u.db == 1023, "password alone; port 1 and db 1023 (the bounds)");
    CHECK(!redis_url_parse("redis://a@b:c@h:2/0", &u, &e) && !strcmp(u.user, "a@b") && !strcmp(u.password, "c") &&
          !strcmp(u.host, "h"), "the last '@' ends the credentials");
    const char *bad[] = {
        "", "127.0.0.1:6379/0", "http://h:1/0", "rediss://h:1/0", "redis://", "redis://h/0", "redis://h:6379",
        "redis://h:6379/", "redis://:6379/0", "redis://h:0/0", "redis://h:65536/0", "redis://h:-1/0",
        "redis://h:63a9/0", "redis://h:6379/1024", "redis://h:6379/x", "redis://h:6379/0?x=1", "redis://h:6379/0/1",
        "redis://user@h:6379/0", "redis://user:@h:6379/0", "redis://h:6379/0#f", "redis://[::1]:6379/0",
        "redis://h:0000006379/0", "redis://h:6379/ 1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECKF(refused(bad[i]), "refused", "'%s'", bad[i]);
    CHECK(refused(NULL), "refused: none");
    char longhost[400];
    memset(longhost, 'a', sizeof longhost);
    memcpy(longhost, "redis://", 8);
    strcpy(longhost + 300, ":1/0");
    CHECK(refused(longhost), "refused: a host longer than 255 bytes");
    return t_done();
}
