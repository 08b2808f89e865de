/* redis.c — the Redis job backend (redis.h): API nodes put jobs into one
 * Redis stream read by a consumer group of worker processes; each job's
 * state lives in a hash (sdserve:job:<id>) that any node reads.  Every
 * change that must be atomic (submit under the queue limit, claim, finish,
 * cancel, progress, heartbeat) is one Lua script, so a late finisher of a
 * reclaimed attempt writes nothing: exactly one result per job.  Nodes wait
 * for changes on one pub/sub channel.  Layout and commands: docs/SCALE.md. */
#include "redis.h"
#include "wire.h"
#include "../base/alloc.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define K_STREAM "sdserve:jobs"
#define K_GROUP "sdserve-workers"
#define K_STATS "sdserve:stats"
#define K_WORKERS "sdserve:workers"
#define K_NODES "sdserve:nodes"
#define K_CHANNEL "sdserve:events"
#define K_JOB "sdserve:job:"
#define K_WORKER "sdserve:worker:"   /* + id: a worker's announcement (routing) */
#define K_PREVIEW "sdserve:preview:" /* + id: the running job's latest preview (issue 18) */
#define PREVIEW_TTL 60          /* seconds a preview outlives its worker at most (docs/SCALE.md) */
#define UNFINISHED_TTL 604800   /* seconds a job record lives before it finishes (a week) */
#define UNLISTED_MIN_TTL 60     /* a synchronous job's record outlives its finish this long at least */

/* A live node's score is refreshed this often; workers give up on its
 * synchronous jobs after node_timeout without it, and /health counts a
 * worker alive for as long. */
#define NODE_BEAT 1.0
static double node_timeout(double claim_timeout) { return claim_timeout > 3 ? claim_timeout : 3; }

/* ---- the URL --------------------------------------------------------------- */

/* Copies s[0..n) into dst (size cap); -1 when it does not fit or is empty. */
static int take(char *dst, size_t cap, const char *s, size_t n)
{
    if (!n || n >= cap) return -1;
    memcpy(dst, s, n);
    dst[n] = 0;
    return 0;
}

/* A decimal number in [lo, hi] spanning exactly s[0..n). */
static int number(const char *s, size_t n, long lo, long hi, int *out)
{
    if (!n || n > 6) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int url_userinfo(const char *s, size_t n, redis_url *u)
{
    const char *colon = memchr(s, ':', n);
    if (!colon) return -1;   /* user@ without a password means nothing to AUTH */
    size_t ul = (size_t)(colon - s);
    if (ul && take(u->user, sizeof u->user, s, ul)) return -1;
    return take(u->password, sizeof u->password, colon + 1, n - ul - 1);
}

int redis_url_parse(const char *url, redis_url *out, sd_err *err)
{
    memset(out, 0, sizeof *out);
    static const char scheme[] = "redis://";
    if (!url || strncmp(url, scheme, sizeof scheme - 1))
        return sd_errf(err, SD_EINVAL, "queue", "--queue must be redis://[user:password@]host:port/db");
    const char *s = url + sizeof scheme - 1;
    const char *at = strrchr(s, '@');
    if (at && url_userinfo(s, (size_t)(at - s), out))
        return sd_errf(err, SD_EINVAL, "queue", "--queue: the credentials must be user:password@ or :password@");
    const char *h = at ? at + 1 : s;
    const char *slash = strchr(h, '/');
    const char *colon = slash ? memchr(h, ':', (size_t)(slash - h)) : NULL;
    if (!slash || !colon)
        return sd_errf(err, SD_EINVAL, "queue", "--queue needs host:port/db (e.g. redis://10.0.0.5:6379/0)");
    if (take(out->host, sizeof out->host, h, (size_t)(colon - h)) || strpbrk(out->host, "?#[]@ "))
        return sd_errf(err, SD_EINVAL, "queue", "--queue: bad host");
    if (number(colon + 1, (size_t)(slash - colon - 1), 1, 65535, &out->port))
        return sd_errf(err, SD_EINVAL, "queue", "--queue: the port must be 1..65535");
    if (number(slash + 1, strlen(slash + 1), 0, 1023, &out->db))
        return sd_errf(err, SD_EINVAL, "queue", "--queue: the database must be a number 0..1023 after the '/'");
    return 0;
}

/* ---- connections ----------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The CLOCK_REALTIME time `s` seconds from now (for cond waits). */
static struct timespec deadline_in(double s)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    long long ns = t.tv_nsec + (long long)(s * 1e9);
    t.tv_sec += (time_t)(ns / 1000000000LL);
    t.tv_nsec = (long)(ns % 1000000000LL);
    return t;
}

static struct timeval tv_of(double s)
{
    struct timeval tv = {.tv_sec = (time_t)s, .tv_usec = (suseconds_t)((s - (time_t)s) * 1e6)};
    return tv;
}

/* One hiredis context (not thread-safe: used under its mutex), connected
 * lazily and again on the next call after a failure; after a failed
 * connect it answers at once for a short while instead of trying again. */
typedef struct rconn {
    pthread_mutex_t mu;
    redisContext *c;
    const redis_url *u;
    double timeout;
    double retry_at;         /* no new connect before this time */
    int down;                /* the last call failed to reach Redis */
    char why[160];           /* why, repeated during the pause */
} rconn;

static void rc_init(rconn *k, const redis_url *u, double timeout)
{
    memset(k, 0, sizeof *k);
    pthread_mutex_init(&k->mu, NULL);
    k->u = u;
    k->timeout = timeout;
}

static void rc_drop(rconn *k)
{
    if (k->c) redisFree(k->c);
    k->c = NULL;
}

static void rc_fini(rconn *k)
{
    rc_drop(k);
    pthread_mutex_destroy(&k->mu);
}

static int unreachable(rconn *k, const char *why, sd_err *err)
{
    if (!k->down || now_s() >= k->retry_at) {   /* a new failure (not the pause after one) */
        k->retry_at = now_s() + (k->timeout < 0.5 ? k->timeout : 0.5);
        snprintf(k->why, sizeof k->why, "%s", why);
    }
    k->down = 1;
    return sd_errf(err, SD_EBUSY, "queue", "the job queue (Redis at %s:%d) is unreachable: %s", k->u->host,
                   k->u->port, k->why);
}

/* A command on the context during connect; -1 with err on an error reply. */
static int setup_cmd(rconn *k, sd_err *err, redisReply *r, const char *what)
{
    int bad = !r || r->type == REDIS_REPLY_ERROR;
    if (bad && r && (!strcmp(what, "XGROUP") && strstr(r->str, "BUSYGROUP"))) bad = 0;
    if (bad) sd_errf(err, SD_EBUSY, "queue", "Redis refused %s: %s", what, r ? r->str : k->c->errstr);
    if (r) freeReplyObject(r);
    return bad ? -1 : 0;
}

static int rc_connect(rconn *k, sd_err *err)
{
    if (k->c) return 0;
    if (now_s() < k->retry_at) return unreachable(k, k->why, err);
    k->c = redisConnectWithTimeout(k->u->host, k->u->port, tv_of(k->timeout));
    if (!k->c || k->c->err) {
        char why[160];
        snprintf(why, sizeof why, "%s", k->c ? k->c->errstr : "out of memory");
        rc_drop(k);
        return unreachable(k, why, err);
    }
    redisSetTimeout(k->c, tv_of(k->timeout));
    int bad = 0;
    if (k->u->password[0] && k->u->user[0])
        bad = setup_cmd(k, err, redisCommand(k->c, "AUTH %s %s", k->u->user, k->u->password), "AUTH");
    else if (k->u->password[0])
        bad = setup_cmd(k, err, redisCommand(k->c, "AUTH %s", k->u->password), "AUTH");
    if (!bad && k->u->db) bad = setup_cmd(k, err, redisCommand(k->c, "SELECT %d", k->u->db), "SELECT");
    /* the group (and the stream) exist from the first connection on, and
     * again after Redis lost its data */
    if (!bad)
        bad = setup_cmd(k, err, redisCommand(k->c, "XGROUP CREATE " K_STREAM " " K_GROUP " 0 MKSTREAM"), "XGROUP");
    if (bad) {
        rc_drop(k);
        k->retry_at = now_s() + 0.5;
        k->down = 1;
        return -1;
    }
    k->down = 0;
    return 0;
}

/* One command (hiredis format: each %s is one argument); the reply, or NULL
 * with err: SD_EBUSY when Redis cannot be reached (the next call
 * reconnects), SD_EINTERNAL for an error reply. */
static redisReply *rc_cmd(rconn *k, sd_err *err, const char *fmt, ...)
{
    pthread_mutex_lock(&k->mu);
    redisReply *r = NULL;
    int reused = k->c != NULL;
    if (!rc_connect(k, err)) {
        va_list ap;
        va_start(ap, fmt);
        r = redisvCommand(k->c, fmt, ap);
        va_end(ap);
        if (!r && reused && k->c->err == REDIS_ERR_EOF) {
            /* Redis restarted since this connection's last call: it closed
             * the connection before reading the command; once more on a
             * new one */
            rc_drop(k);
            if (rc_connect(k, err)) {
                pthread_mutex_unlock(&k->mu);
                return NULL;
            }
            va_start(ap, fmt);
            r = redisvCommand(k->c, fmt, ap);
            va_end(ap);
        }
        if (!r) {
            char why[160];
            snprintf(why, sizeof why, "%s", k->c->errstr);
            rc_drop(k);
            unreachable(k, why, err);
        } else if (r->type == REDIS_REPLY_ERROR) {
            sd_errf(err, SD_EINTERNAL, "queue", "Redis: %.300s", r->str);
            freeReplyObject(r);
            r = NULL;
        } else {
            k->down = 0;
        }
    }
    pthread_mutex_unlock(&k->mu);
    return r;
}

/* Now as member's score in the sorted set (a node's or worker's heartbeat);
 * best effort. */
static void beat(rconn *k, const char *set, const char *member)
{
    sd_err err;
    sd_err_clear(&err);
    char now[32];
    snprintf(now, sizeof now, "%.3f", now_s());
    redisReply *r = rc_cmd(k, &err, "ZADD %s %s %s", set, now, member);
    if (r) freeReplyObject(r);
}

/* ---- reply helpers ----------------------------------------------------------- */

static const redisReply *elem(const redisReply *r, size_t i)
{
    return r && r->type == REDIS_REPLY_ARRAY && i < r->elements ? r->element[i] : NULL;
}

static const char *rstr(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? r->str : NULL;
}

static long long rint_of(const redisReply *r)
{
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    return rstr(r) ? strtoll(r->str, NULL, 10) : 0;
}

/* ---- JSON on the wire (wire.h) as text ------------------------------------------ */

static char *dump(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

static char *error_text(const sd_err *e) { return dump(wire_error_to_json(e)); }

static void error_parse(const char *s, sd_err *out)
{
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    sd_err_clear(out);
    if (!j || wire_error_from_json(j, out)) {
        sd_err_clear(out);
        sd_errf(out, SD_EINTERNAL, "", "the job failed (its error record is unreadable)");
    }
    json_decref(j);
}

static job_result *result_parse(const char *s, sd_err *err)
{
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    job_result *r = j ? wire_result_from_json(j, err) : NULL;
    if (!j) sd_errf(err, SD_EINTERNAL, "result", "the job's result record is not JSON");
    json_decref(j);
    return r;
}

static void make_id(char out[JOBS_ID_MAX])
{
    uint8_t raw[16];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        for (size_t i = 0; i < sizeof raw; i++) raw[i] = (uint8_t)(rand() ^ (int)(now_s() * 1e6) >> (i % 8));
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static void job_key(char *out, size_t n, const char *id) { snprintf(out, n, K_JOB "%s", id); }
static void preview_key(char *out, size_t n, const char *id) { snprintf(out, n, K_PREVIEW "%s", id); }

/* ---- Lua scripts ------------------------------------------------------------------ */

/* The TTL of a finished record: --retention, at least UNLISTED_MIN_TTL for
 * a synchronous job (its waiting node still reads it). ARGV[1] retention. */
#define LUA_FIN_TTL \
    "local ttl = tonumber(ARGV[1]) " \
    "if redis.call('HGET', KEYS[1], 'listed') ~= '1' and ttl < " "60" " then ttl = 60 end " \
    "if ttl < 1 then ttl = 1 end "

/* count(key, field, by): one counter up (sdserve:stats, a job's finishes).
 * Counters are statistics that no job's fate hangs on, and Redis does not
 * roll a script back when a command in it fails: a failing HINCRBY after
 * the job's own writes would leave the job written (queued, finished)
 * while its caller is told that it failed.  So a counter never fails a
 * script: one that is not an integer (hand-edited, another program's
 * value) starts again from this increment, as if it had been deleted;
 * while the key is not a hash at all, no counts are kept (the jobs run;
 * deleting the key starts them again).  docs/SCALE.md "Counters". */
#define LUA_COUNT \
    "local function count(k, f, by) " \
    "  if type(redis.pcall('HINCRBY', k, f, by)) == 'table' then redis.pcall('HSET', k, f, by) end end "

/* KEYS: stream, job, stats.  ARGV: limit, id, created, request, owner,
 * listed, n, width, height, ttl, node (a synchronous job's waiting API
 * node, "" for an async one), then the routing fields model, model_hash,
 * precision ("" = none).  0 = full. */
static const char lua_submit[] =
    LUA_COUNT
    "local len = redis.call('XLEN', KEYS[1]) "
    "local pend = redis.call('XPENDING', KEYS[1], '" K_GROUP "')[1] "
    "if len - pend >= tonumber(ARGV[1]) then count(KEYS[3], 'rejected', 1) return 0 end "
    "redis.call('HSET', KEYS[2], 'state', 'queued', 'owner', ARGV[5], 'listed', ARGV[6], 'created', ARGV[3], "
    "  'attempts', 0, 'n', ARGV[7], 'width', ARGV[8], 'height', ARGV[9], 'request', ARGV[4]) "
    "if ARGV[11] ~= '' then redis.call('HSET', KEYS[2], 'node', ARGV[11]) end "
    "if ARGV[14] ~= '' then redis.call('HSET', KEYS[2], 'model', ARGV[12], 'model_hash', ARGV[13], "
    "  'precision', ARGV[14]) end "
    "redis.call('EXPIRE', KEYS[2], ARGV[10]) "
    "redis.call('XADD', KEYS[1], '*', 'id', ARGV[2]) "
    "count(KEYS[3], 'submitted', 1) "
    "redis.call('PUBLISH', '" K_CHANNEL "', ARGV[2]) "
    "return 1";

/* KEYS: job, stats.  ARGV: retention, error, now, id.  The state after. */
static const char lua_cancel[] =
    LUA_FIN_TTL
    LUA_COUNT
    "local s = redis.call('HGET', KEYS[1], 'state') "
    "if s == 'queued' then "
    "  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished', ARGV[3], 'error', ARGV[2]) "
    "  redis.call('EXPIRE', KEYS[1], ttl) "
    "  count(KEYS[2], 'cancelled', 1) "
    "  redis.call('PUBLISH', '" K_CHANNEL "', ARGV[4]) return 'cancelled' end "
    "if s == 'running' then "
    "  if not redis.call('HGET', KEYS[1], 'cancel') then redis.call('HSET', KEYS[1], 'cancel', ARGV[2]) end "
    "  redis.call('PUBLISH', '" K_CHANNEL "', ARGV[4]) end "
    "return s or 'gone'";

/* KEYS: job, stats.  ARGV: retention, worker, now, max attempts, dead-letter
 * error, id, corrupt-record error.  {'run', attempt, request} | {'gone'} |
 * {'done'} | {'dead'} | {'corrupt'}: the attempts field is not an integer
 * (HINCRBY refuses it), so the attempt cannot be counted nor told from a
 * stale one: the job fails at once instead of being claimed again and
 * again. */
static const char lua_claim[] =
    LUA_FIN_TTL
    LUA_COUNT
    "local s = redis.call('HGET', KEYS[1], 'state') "
    "if not s then return {'gone'} end "
    "if s ~= 'queued' and s ~= 'running' then return {'done'} end "
    "local a = redis.pcall('HINCRBY', KEYS[1], 'attempts', 1) "
    "local corrupt = type(a) == 'table' "
    "if corrupt or a > tonumber(ARGV[4]) then "
    "  redis.call('HSET', KEYS[1], 'state', 'failed', 'finished', ARGV[3], 'error', corrupt and ARGV[7] or ARGV[5]) "
    "  redis.call('EXPIRE', KEYS[1], ttl) "
    "  count(KEYS[2], 'failed', 1) "
    "  redis.call('PUBLISH', '" K_CHANNEL "', ARGV[6]) return {corrupt and 'corrupt' or 'dead'} end "
    "redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[2], 'started', ARGV[3], 'heartbeat', ARGV[3], "
    "  'step', 0, 'total', 0) "
    "redis.call('EXPIRE', KEYS[1], " "604800" ") "
    "redis.call('PUBLISH', '" K_CHANNEL "', ARGV[6]) "
    "return {'run', tostring(a), redis.call('HGET', KEYS[1], 'request')}";

/* KEYS: job, nodes.  ARGV: attempt, step, total, id, now, node timeout.
 * {'ok'} | {'lost'} | {'cancel', error} | {'orphan'}: the API node
 * waiting for this synchronous job stopped heartbeating (killed). */
static const char lua_progress[] =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[1] "
    "then return {'lost'} end "
    "local node = redis.call('HGET', KEYS[1], 'node') "
    "if node then "
    "  local t = redis.call('ZSCORE', KEYS[2], node) "
    "  if not t or tonumber(ARGV[5]) - tonumber(t) > tonumber(ARGV[6]) then return {'orphan'} end end "
    "redis.call('HSET', KEYS[1], 'step', ARGV[2], 'total', ARGV[3]) "
    "redis.call('PUBLISH', '" K_CHANNEL "', ARGV[4]) "
    "local c = redis.call('HGET', KEYS[1], 'cancel') "
    "if c then return {'cancel', c} end "
    "return {'ok'}";

/* KEYS: job, preview.  The preview's value ("step/total\n" + PNG) while
 * the job runs, else nil. */
static const char lua_preview[] =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return false end "
    "return redis.call('GET', KEYS[2])";

/* KEYS: job, stats.  ARGV: retention, attempt, state, now, field (result |
 * error), value, images, id.  1 written, 0 not ours any more. */
static const char lua_finish[] =
    LUA_FIN_TTL
    LUA_COUNT
    "if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[2] "
    "then return 0 end "
    "redis.call('HSET', KEYS[1], 'state', ARGV[3], 'finished', ARGV[4], ARGV[5], ARGV[6]) "
    "count(KEYS[1], 'finishes', 1) "
    "redis.call('EXPIRE', KEYS[1], ttl) "
    "count(KEYS[2], ARGV[3], 1) "
    "count(KEYS[2], 'images', ARGV[7]) "
    "redis.call('PUBLISH', '" K_CHANNEL "', ARGV[8]) "
    "return 1";

/* KEYS: job, stream, workers.  ARGV: attempt, worker, entry, now. */
static const char lua_heartbeat[] =
    "redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2]) "
    "if redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[1] then return 0 end "
    "redis.call('XCLAIM', KEYS[2], '" K_GROUP "', ARGV[2], 0, ARGV[3], 'JUSTID') "
    "redis.call('HSET', KEYS[1], 'heartbeat', ARGV[4]) "
    "return 1";

/* KEYS: stream, stats, workers.  ARGV: alive since.  {len, pending, workers,
 * {stats...}}; no stats when the key is not a hash (LUA_COUNT). */
static const char lua_stats[] =
    "local len = redis.call('XLEN', KEYS[1]) "
    "local p = redis.call('XPENDING', KEYS[1], '" K_GROUP "')[1] "
    "local w = redis.call('ZCOUNT', KEYS[3], ARGV[1], '+inf') "
    "local st = redis.pcall('HGETALL', KEYS[2]) "
    "if st.err then st = {} end "
    "return {len, p, w, st}";

/* ---- routing: workers announce their models and precision ---- */

/* KEYS: workers, the worker's announcement.  ARGV: now, id, models (JSON),
 * precision, threads, started, state, job, ttl. */
static const char lua_announce[] =
    "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) "
    "redis.call('HSET', KEYS[2], 'models', ARGV[3], 'precision', ARGV[4], 'threads', ARGV[5], 'started', ARGV[6], "
    "  'state', ARGV[7], 'job', ARGV[8]) "
    "redis.call('EXPIRE', KEYS[2], ARGV[9]) "
    "return 1";

/* KEYS: workers.  ARGV: alive since.  {id, {field, value, ...}, ...}: the
 * announcements still there (each expires 3 heartbeats after its last). */
static const char lua_workers[] =
    "local out = {} "
    "for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do "
    "  local h = redis.call('HGETALL', '" K_WORKER "' .. id) "
    "  if #h > 0 then out[#out + 1] = id out[#out + 1] = h end end "
    "return out";

/* KEYS: stream.  ARGV: entry, id.  A job this worker does not run goes
 * back to the stream's end in one step (never lost): a new entry. */
static const char lua_requeue[] =
    "redis.call('XACK', KEYS[1], '" K_GROUP "', ARGV[1]) "
    "redis.call('XDEL', KEYS[1], ARGV[1]) "
    "redis.call('XADD', KEYS[1], '*', 'id', ARGV[2]) "
    "return 1";

/* 1 when the announced models (JSON text) hold name with hash; 0 when not
 * at all; -1 when name is there with another hash (*other = that hash). */
static int announced(const char *models, const char *name, const char *hash, char *other, size_t n)
{
    json_t *a = models ? json_loads(models, 0, NULL) : NULL;
    int found = 0;
    size_t i;
    json_t *m;
    json_array_foreach(a, i, m) {
        const char *nm = json_string_value(json_object_get(m, "name"));
        const char *h = json_string_value(json_object_get(m, "hash"));
        if (!nm || strcmp(nm, name)) continue;
        found = h && !strcmp(h, hash) ? 1 : -1;
        if (found < 0) snprintf(other, n, "%s", h ? h : "?");
        break;
    }
    json_decref(a);
    return found;
}

/* A node's or worker's name: host:pid:random. */
static void worker_name(char *out, size_t n)
{
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    char rnd[JOBS_ID_MAX];
    make_id(rnd);
    rnd[8] = 0;
    snprintf(out, n, "%s:%d:%s", host, (int)getpid(), rnd);
}

/* ---- the API-node side -------------------------------------------------------------- */

typedef struct rjob {        /* a job_handle */
    char id[JOBS_ID_MAX];
    job_state last;          /* the state last read (answered while Redis is away) */
} rjob;

typedef struct rback {
    jobs_backend base;
    jobs_redis_config cfg;
    char *url_copy;
    redis_url u;
    rconn cmd;               /* the HTTP threads' commands */
    /* the subscription: bumps gen on every published change */
    pthread_t sub_thread;
    int sub_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned gen;
    int stop;
    redisContext *sub;       /* under mu: close() shuts its socket to end the thread */
    atomic_int shut;         /* shutdown: submissions refused */
    /* this node's heartbeat (sdserve:nodes): workers cancel the synchronous
     * jobs of a node that stopped heartbeating */
    char node[160];
    rconn hb;
    pthread_t hb_thread;
    int hb_started;
    jobs_stats last_stats;   /* answered while Redis is away */
    /* the live workers' announcements, read at most once a second (wmu) */
    pthread_mutex_t wmu;
    double w_at;             /* when w_list was read; 0 = never */
    json_t *w_list;          /* [{id, models, precision, threads, state, job}] */
    char warned[8][160];     /* workers already logged for a hash mismatch */
    int nwarned;
} rback;

static rback *RB(jobs_backend *b) { return (rback *)b; }

static void bump(rback *p)
{
    pthread_mutex_lock(&p->mu);
    p->gen++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static const char *state_text(job_state s)
{
    static const char *const names[] = {"queued", "running", "succeeded", "failed", "cancelled"};
    return names[s];
}

static job_state state_parse(const char *s, job_state dflt)
{
    for (int i = 0; s && i <= JOB_CANCELLED; i++)
        if (!strcmp(s, state_text((job_state)i))) return (job_state)i;
    return dflt;
}

static double field_num(const redisReply *r, const char *name, double dflt)
{
    for (size_t i = 0; i + 1 < (r ? r->elements : 0); i += 2)
        if (rstr(r->element[i]) && !strcmp(r->element[i]->str, name)) return strtod(r->element[i + 1]->str, NULL);
    return dflt;
}

static const char *field_str(const redisReply *r, const char *name)
{
    for (size_t i = 0; i + 1 < (r ? r->elements : 0); i += 2)
        if (rstr(r->element[i]) && !strcmp(r->element[i]->str, name)) return rstr(r->element[i + 1]);
    return NULL;
}

/* The names among a worker's announced models (a JSON array) that this
 * node routes jobs for to it: route_find's rule, per worker — the same
 * file hash as this node's model of that name, at this node's precision
 * (without routing, every name).  A new array (NULL when out of memory). */
static json_t *serves_of(rback *p, const json_t *models, const char *precision)
{
    json_t *out = json_array(), *m;
    size_t i;
    int same_precision = !precision || !p->cfg.precision || !strcmp(precision, p->cfg.precision);
    json_array_foreach(models, i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *hash = json_string_value(json_object_get(m, "hash"));
        char mine[128], mhash[16];
        if (!out || !name) continue;
        if (p->cfg.model_lookup && (!same_precision || !hash ||
                                    p->cfg.model_lookup(p->cfg.models_ud, name, mine, mhash) || strcmp(mine, name) ||
                                    strcmp(mhash, hash)))
            continue;
        json_array_append_new(out, json_string(name));
    }
    return out;
}

/* The reply of lua_workers as a JSON array (new reference). */
static json_t *workers_from(rback *p, const redisReply *r)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i + 1 < (r ? r->elements : 0); i += 2) {
        const redisReply *h = r->element[i + 1];
        json_t *models = json_loads(field_str(h, "models") ? field_str(h, "models") : "[]", 0, NULL);
        if (!json_is_array(models)) {   /* an announcement that is not ours: no models */
            json_decref(models);
            models = json_array();
        }
        json_t *serves = serves_of(p, models, field_str(h, "precision"));
        json_array_append_new(a, json_pack("{s:s?, s:o, s:o, s:s?, s:I, s:s?, s:s?, s:f}", "id", rstr(r->element[i]),
                                           "models", models ? models : json_array(), "serves",
                                           serves ? serves : json_array(), "precision", field_str(h, "precision"),
                                           "threads", (json_int_t)field_num(h, "threads", 0), "state",
                                           field_str(h, "state"), "job", field_str(h, "job"), "started",
                                           field_num(h, "started", 0)));
    }
    return a;
}

/* The live workers (new reference; an empty array when Redis is away),
 * read again when the copy is older than a second: no scan per request. */
static json_t *live_workers(rback *p, double max_age, sd_err *err)
{
    pthread_mutex_lock(&p->wmu);
    if (!p->w_list || now_s() - p->w_at >= max_age) {
        char since[32];
        snprintf(since, sizeof since, "%.3f", now_s() - node_timeout(p->cfg.claim_timeout));
        redisReply *r = rc_cmd(&p->cmd, err, "EVAL %s 1 %s %s", lua_workers, K_WORKERS, since);
        if (r) {
            json_decref(p->w_list);
            p->w_list = workers_from(p, r);
            p->w_at = now_s();
            freeReplyObject(r);
        }
    }
    json_t *a = p->w_list ? json_incref(p->w_list) : json_array();
    pthread_mutex_unlock(&p->wmu);
    return a;
}

/* Logs once per worker that it announces `name` with another file's hash. */
static void warn_mismatch(rback *p, const char *id, const char *name, const char *theirs, const char *ours)
{
    pthread_mutex_lock(&p->wmu);
    int seen = 0;
    for (int i = 0; i < p->nwarned && i < 8; i++) seen |= !strcmp(p->warned[i], id);
    if (!seen) {
        snprintf(p->warned[p->nwarned++ % 8], sizeof p->warned[0], "%s", id);
        fprintf(stderr, "sdserve: worker %s serves a different file as model '%s' (hash %s, this node's is %s): "
                "it gets no jobs for it\n", id, name, theirs, ours);
    }
    pthread_mutex_unlock(&p->wmu);
}

static int route_find(rback *p, const char *name, const char *hash, double max_age, sd_err *err);

/* 0 when a live worker serves model name (with hash) at this node's
 * precision; else -1 + SD_EBUSY naming "model" (503, retry_after). */
static int route_check(rback *p, const char *name, const char *hash, int *retry_after, sd_err *err)
{
    int serve = route_find(p, name, hash, 1.0, err);
    if (serve == 0 && !err->code)   /* a worker that just came: read again */
        serve = route_find(p, name, hash, 0.1, err);
    if (serve > 0) return 0;
    if (err->code) return -1;
    if (retry_after) *retry_after = 10;
    if (serve < 0)
        return sd_errf(err, SD_EBUSY, "model", "no worker serves '%s' at precision %s now (the live ones run "
                       "another precision; the cluster's is pinned by the API node)", name, p->cfg.precision);
    return sd_errf(err, SD_EBUSY, "model", "no worker serves '%s' now; retry later", name);
}

/* 1 when a live worker (announcements at most max_age old) serves name
 * with hash at this node's precision, -1 when only other precisions do,
 * 0 when none (err set when Redis could not be read). */
static int route_find(rback *p, const char *name, const char *hash, double max_age, sd_err *err)
{
    json_t *a = live_workers(p, max_age, err), *w;
    size_t i;
    int serve = 0, other_precision = 0;
    json_array_foreach(a, i, w) {
        char other[32] = "";
        char *models = json_dumps(json_object_get(w, "models"), JSON_COMPACT);
        int has = announced(models, name, hash, other, sizeof other);
        free(models);
        const char *id = json_string_value(json_object_get(w, "id"));
        if (has < 0) warn_mismatch(p, id ? id : "?", name, other, hash);
        if (has <= 0) continue;
        const char *prec = json_string_value(json_object_get(w, "precision"));
        if (prec && p->cfg.precision && strcmp(prec, p->cfg.precision)) other_precision = 1;
        else serve = 1;
    }
    json_decref(a);
    return serve ? 1 : other_precision ? -1 : 0;
}

static char *rb_workers_json(jobs_backend *b)
{
    sd_err err;
    sd_err_clear(&err);
    json_t *a = live_workers(RB(b), 1.0, &err);
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return text;
}

/* The routing fields of a job (model, its hash, the node's precision):
 * "" each without routing; -1 + err when the model is not this node's. */
static int route_fields(rback *p, const char *model, char name[128], char hash[16], int *retry_after, sd_err *err)
{
    name[0] = hash[0] = 0;
    if (!p->cfg.model_lookup) return 0;
    if (p->cfg.model_lookup(p->cfg.models_ud, model, name, hash))
        return sd_errf(err, SD_EINVAL, "model", "unknown model '%.100s' (GET /models)", model ? model : "");
    return route_check(p, name, hash, retry_after, err);
}

static int rb_submit(jobs_backend *b, sd_request *in, int listed, job_handle **out, int *retry_after, sd_err *err)
{
    rback *p = RB(b);
    *out = NULL;
    if (retry_after) *retry_after = 0;
    sd_request req = *in;
    memset(in, 0, sizeof *in);
    if (atomic_load(&p->shut)) {
        sd_request_free(&req);
        if (retry_after) *retry_after = 5;
        return sd_errf(err, SD_EBUSY, "", "the server is shutting down");
    }
    char mname[128], mhash[16];
    if (route_fields(p, req.model, mname, mhash, retry_after, err)) {
        sd_request_free(&req);
        return -1;
    }
    char *text = dump(wire_request_to_json(&req, err));
    int n = req.gen.n, w = req.gen.width, h = req.gen.height, owner = req.owner;
    if (!req.img2img) req_output_size(&req, &w, &h);   /* hires fix: the final size */
    sd_request_free(&req);
    if (!text) return sd_errf(err, SD_ENOMEM, "", "out of memory serializing the job");
    rjob *j = sd_calloc(1, sizeof *j);
    if (!j) {
        free(text);
        return sd_errf(err, SD_ENOMEM, "", "out of memory queueing the job");
    }
    make_id(j->id);
    char key[64], now[32];
    job_key(key, sizeof key, j->id);
    snprintf(now, sizeof now, "%.3f", now_s());
    const char *prec = mname[0] && p->cfg.precision ? p->cfg.precision : "";
    redisReply *r = rc_cmd(&p->cmd, err, "EVAL %s 3 %s %s %s %d %s %s %s %d %d %d %d %d %d %s %s %s %s", lua_submit,
                           K_STREAM, key, K_STATS, p->cfg.queue_size, j->id, now, text, owner, listed, n, w, h,
                           UNFINISHED_TTL, listed ? "" : p->node, mname, mhash, prec);
    free(text);
    int ok = r && rint_of(r) == 1;
    if (r && !ok) sd_errf(err, SD_EBUSY, "queue-size", "the shared queue is full (%d jobs waiting)", p->cfg.queue_size);
    if (!ok && retry_after) *retry_after = r ? 10 : (int)p->cfg.queue_timeout + 1;
    if (r) freeReplyObject(r);
    if (!ok) {
        free(j);
        return -1;
    }
    j->last = JOB_QUEUED;
    *out = (job_handle *)j;
    return 0;
}

static job_handle *rb_find(jobs_backend *b, const char *id, int owner, sd_err *err)
{
    char key[64];
    job_key(key, sizeof key, id);
    redisReply *r = rc_cmd(&RB(b)->cmd, err, "HMGET %s owner listed state", key);
    if (!r) return NULL;
    rjob *j = NULL;
    if (rstr(elem(r, 0)) && rint_of(elem(r, 0)) == owner && rint_of(elem(r, 1)) == 1 &&
        (j = sd_calloc(1, sizeof *j))) {
        snprintf(j->id, sizeof j->id, "%s", id);
        j->last = state_parse(rstr(elem(r, 2)), JOB_QUEUED);
    }
    freeReplyObject(r);
    return (job_handle *)j;
}

static const char *rb_id(jobs_backend *b, const job_handle *h) { return ((const rjob *)h)->id; }

static job_state rb_cancel(jobs_backend *b, job_handle *h, const char *reason)
{
    rback *p = RB(b);
    rjob *j = (rjob *)h;
    sd_err ce, err;
    sd_err_clear(&ce);
    sd_err_clear(&err);
    sd_errf(&ce, SD_ECANCELLED, "", "%s", reason ? reason : "cancelled");
    char *etext = error_text(&ce);
    char key[64], now[32], ret[32];
    job_key(key, sizeof key, j->id);
    snprintf(now, sizeof now, "%.3f", now_s());
    snprintf(ret, sizeof ret, "%.0f", p->cfg.retention);
    redisReply *r = etext ? rc_cmd(&p->cmd, &err, "EVAL %s 2 %s %s %s %s %s %s", lua_cancel, key, K_STATS, ret, etext,
                                   now, j->id)
                          : NULL;
    free(etext);
    if (r) j->last = state_parse(rstr(r), j->last);
    if (r) freeReplyObject(r);
    return j->last;
}

/* The snapshot from the hash's fields (HGETALL). */
static void status_from(const redisReply *r, job_status *out)
{
    double now = now_s(), created = field_num(r, "created", now), started = field_num(r, "started", 0),
           finished = field_num(r, "finished", 0), end = finished > 0 ? finished : now;
    out->step = (int)field_num(r, "step", 0);
    out->total = (int)field_num(r, "total", 0);
    out->n = (int)field_num(r, "n", 0);
    out->width = (int)field_num(r, "width", 0);
    out->height = (int)field_num(r, "height", 0);
    out->elapsed = end - created;
    out->run_seconds = started > 0 ? end - started : 0;
    if (out->state == JOB_SUCCEEDED) {
        out->result = result_parse(field_str(r, "result"), &out->err);
        /* what another process wrote: as many images as the job asked for,
         * or it failed (a client is never told "success" with none) */
        if (out->result && (out->result->n < 1 || out->result->n != out->n)) {
            sd_errf(&out->err, SD_EINTERNAL, "images", "the job's result holds %d image%s where it asked for %d: "
                    "its record is damaged, or was not written by an sdserve worker", out->result->n, out->result->n == 1 ? "" : "s", out->n);
            job_result_free(out->result);
            out->result = NULL;
        }
        if (!out->result) out->state = JOB_FAILED;
    } else if (out->state == JOB_FAILED || out->state == JOB_CANCELLED) {
        error_parse(field_str(r, "error"), &out->err);
    }
}

static void rb_status(jobs_backend *b, job_handle *h, job_status *out)
{
    rjob *j = (rjob *)h;
    memset(out, 0, sizeof *out);
    out->position = -1;
    out->eta = -1;
    out->state = j->last;
    char key[64];
    job_key(key, sizeof key, j->id);
    sd_err err;
    sd_err_clear(&err);
    redisReply *r = rc_cmd(&RB(b)->cmd, &err, "HGETALL %s", key);
    if (!r) return;   /* Redis away: the last state known */
    if (!r->elements) {
        /* the record expired or Redis lost it (restarted without its data,
         * flushed, deleted by hand): the job is not the client's fault nor
         * unknown to it (a synchronous request still waits on it), so 503:
         * sending it again is what works */
        out->state = JOB_FAILED;
        sd_errf(&out->err, SD_EBUSY, "queue", "the job's record was lost from the queue (it expired, or Redis lost its "
                "data); send the request again");
    } else {
        out->state = state_parse(field_str(r, "state"), j->last);
        status_from(r, out);
    }
    j->last = out->state;
    freeReplyObject(r);
}

static job_state rb_state(jobs_backend *b, job_handle *h)
{
    rjob *j = (rjob *)h;
    char key[64];
    job_key(key, sizeof key, j->id);
    sd_err err;
    sd_err_clear(&err);
    redisReply *r = rc_cmd(&RB(b)->cmd, &err, "HGET %s state", key);
    if (!r) return j->last;
    j->last = r->type == REDIS_REPLY_NIL ? JOB_FAILED : state_parse(rstr(r), j->last);
    freeReplyObject(r);
    return j->last;
}

static void rb_wait(jobs_backend *b, unsigned *gen, int timeout_ms)
{
    rback *p = RB(b);
    struct timespec dl = deadline_in(timeout_ms / 1000.0);
    pthread_mutex_lock(&p->mu);
    while (p->gen == *gen && !p->stop)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) == ETIMEDOUT) break;
    *gen = p->gen;
    pthread_mutex_unlock(&p->mu);
}

static void stats_fill(const redisReply *r, jobs_stats *out)
{
    long long len = rint_of(elem(r, 0)), pend = rint_of(elem(r, 1));
    const redisReply *s = elem(r, 3);
    out->depth = (int)(len > pend ? len - pend : 0);
    out->running = (int)pend;
    out->workers = (int)rint_of(elem(r, 2));
    out->shared_queue = 1;
    out->submitted = (uint64_t)field_num(s, "submitted", 0);
    out->succeeded = (uint64_t)field_num(s, "succeeded", 0);
    out->failed = (uint64_t)field_num(s, "failed", 0);
    out->cancelled = (uint64_t)field_num(s, "cancelled", 0);
    out->images = (uint64_t)field_num(s, "images", 0);
    out->rejected = (uint64_t)field_num(s, "rejected", 0);
}

static void rb_stats(jobs_backend *b, jobs_stats *out)
{
    rback *p = RB(b);
    sd_err err;
    sd_err_clear(&err);
    char since[32];
    snprintf(since, sizeof since, "%.3f", now_s() - node_timeout(p->cfg.claim_timeout));
    redisReply *r = rc_cmd(&p->cmd, &err, "EVAL %s 3 %s %s %s %s", lua_stats, K_STREAM, K_STATS, K_WORKERS, since);
    pthread_mutex_lock(&p->mu);
    if (r) {
        memset(&p->last_stats, 0, sizeof p->last_stats);
        stats_fill(r, &p->last_stats);
    }
    p->last_stats.queue_down = r ? 0 : 1;
    p->last_stats.shared_queue = 1;
    *out = p->last_stats;
    pthread_mutex_unlock(&p->mu);
    if (r) freeReplyObject(r);
}

static void rb_release(jobs_backend *b, job_handle *h) { free(h); }

static void rb_shutdown(jobs_backend *b, const char *reason)
{
    /* Jobs on a shared queue are the cluster's: the HTTP layer cancels the
     * synchronous ones it waits for; async jobs go on elsewhere. */
    atomic_store(&RB(b)->shut, 1);
    bump(RB(b));
}

/* The subscriber: one connection SUBSCRIBEd to the events channel; every
 * message (and every reconnect) bumps the change counter. */
static redisContext *sub_connect(rback *p)
{
    rconn k;
    rc_init(&k, &p->u, p->cfg.queue_timeout);
    sd_err err;
    sd_err_clear(&err);
    redisContext *c = NULL;
    if (!rc_connect(&k, &err)) {
        redisReply *r = redisCommand(k.c, "SUBSCRIBE " K_CHANNEL);
        if (r && r->type != REDIS_REPLY_ERROR) {
            c = k.c;
            k.c = NULL;
            struct timeval none = {0, 0};
            redisSetTimeout(c, none);
        }
        if (r) freeReplyObject(r);
    }
    rc_fini(&k);
    return c;
}

static void *sub_main(void *arg)
{
    rback *p = arg;
    for (;;) {
        redisContext *c = sub_connect(p);
        pthread_mutex_lock(&p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            if (c) redisFree(c);
            return NULL;
        }
        p->sub = c;
        p->gen++;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        void *reply;
        while (c && redisGetReply(c, &reply) == REDIS_OK) {
            freeReplyObject(reply);
            bump(p);
        }
        pthread_mutex_lock(&p->mu);
        p->sub = NULL;
        int stop = p->stop;
        if (!stop) {   /* Redis went away: try again in a moment */
            struct timespec dl = deadline_in(0.3);
            pthread_cond_timedwait(&p->cv, &p->mu, &dl);
            stop = p->stop;
        }
        pthread_mutex_unlock(&p->mu);
        if (c) redisFree(c);
        if (stop) return NULL;
    }
}

static void *node_hb_main(void *arg)
{
    rback *p = arg;
    for (;;) {
        beat(&p->hb, K_NODES, p->node);
        pthread_mutex_lock(&p->mu);
        struct timespec dl = deadline_in(NODE_BEAT);
        while (!p->stop)   /* events wake the condvar too: wait the whole beat */
            if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) == ETIMEDOUT) break;
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop) return NULL;
    }
}

static void rb_close(jobs_backend *b)
{
    rback *p = RB(b);
    rb_shutdown(b, NULL);
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    if (p->sub) shutdown(p->sub->fd, SHUT_RDWR);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->sub_started) pthread_join(p->sub_thread, NULL);
    if (p->hb_started) {
        pthread_join(p->hb_thread, NULL);
        sd_err err;
        sd_err_clear(&err);
        redisReply *r = rc_cmd(&p->hb, &err, "ZREM " K_NODES " %s", p->node);
        if (r) freeReplyObject(r);
    }
    rc_fini(&p->hb);
    rc_fini(&p->cmd);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->wmu);
    json_decref(p->w_list);
    free(p->url_copy);
    free(p);
}

/* "step/total\n" + PNG (the worker's SET) into *out; 0, or -1 when it is
 * not one (then there is no preview). */
static int preview_parse(const char *v, size_t n, job_preview *out)
{
    const char *nl = memchr(v, '\n', n < 32 ? n : 32);
    char head[32];
    if (!nl || nl == v) return -1;
    snprintf(head, sizeof head, "%.*s", (int)(nl - v), v);
    int step, total;
    char end;
    size_t len = n - (size_t)(nl + 1 - v);
    if (sscanf(head, "%d/%d%c", &step, &total, &end) != 2 || step < 0 || total < step || !len) return -1;
    if (!(out->png = malloc(len))) return -1;
    memcpy(out->png, nl + 1, len);
    out->len = len;
    out->step = step;
    out->total = total;
    return 0;
}

static int rb_preview(jobs_backend *b, job_handle *h, job_preview *out, sd_err *err)
{
    const rjob *j = (const rjob *)h;
    char key[64], pkey[64];
    job_key(key, sizeof key, j->id);
    preview_key(pkey, sizeof pkey, j->id);
    redisReply *r = rc_cmd(&RB(b)->cmd, err, "EVAL %s 2 %s %s", lua_preview, key, pkey);
    if (!r) return -1;
    if (r->type == REDIS_REPLY_STRING) preview_parse(r->str, r->len, out);
    freeReplyObject(r);
    return 0;
}

static const jobs_ops redis_ops = {
    .name = "redis",
    .submit = rb_submit,
    .find = rb_find,
    .id = rb_id,
    .cancel = rb_cancel,
    .status = rb_status,
    .state = rb_state,
    .wait_change = rb_wait,
    .stats = rb_stats,
    .release = rb_release,
    .shutdown = rb_shutdown,
    .close = rb_close,
    .workers_json = rb_workers_json,
    .preview = rb_preview,
};

/* The parts both sides share: the config copied, the URL parsed. */
static int config_take(jobs_redis_config *dst, char **url_copy, redis_url *u, const jobs_redis_config *src,
                       sd_err *err)
{
    *dst = *src;
    if (redis_url_parse(src->url, u, err)) return -1;
    if (dst->queue_timeout <= 0) dst->queue_timeout = 2;
    if (dst->claim_timeout <= 0) dst->claim_timeout = 30;
    if (dst->max_attempts < 1) dst->max_attempts = 3;
    if (dst->queue_size < 1) dst->queue_size = 16;
    if (!(*url_copy = sd_strdup(src->url))) return sd_errf(err, SD_ENOMEM, "", "out of memory");
    dst->url = *url_copy;
    dst->worker_id = NULL;   /* the worker copies it */
    return 0;
}

jobs_backend *jobs_redis_open(const jobs_redis_config *cfg, sd_err *err)
{
    rback *p = sd_calloc(1, sizeof *p);
    if (!p) return sd_errf(err, SD_ENOMEM, "", "out of memory creating the job backend"), NULL;
    p->base.ops = &redis_ops;
    pthread_mutex_init(&p->wmu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (config_take(&p->cfg, &p->url_copy, &p->u, cfg, err)) goto fail;
    rc_init(&p->cmd, &p->u, p->cfg.queue_timeout);
    rc_init(&p->hb, &p->u, p->cfg.queue_timeout);
    worker_name(p->node, sizeof p->node);
    pthread_mutex_lock(&p->cmd.mu);
    int bad = rc_connect(&p->cmd, err);
    pthread_mutex_unlock(&p->cmd.mu);
    if (bad) goto fail_conn;
    if (pthread_create(&p->sub_thread, NULL, sub_main, p)) {
        sd_errf(err, SD_EINTERNAL, "", "cannot start the queue's subscriber thread");
        goto fail_conn;
    }
    p->sub_started = 1;
    if (!pthread_create(&p->hb_thread, NULL, node_hb_main, p)) p->hb_started = 1;
    return &p->base;
fail_conn:
    rc_fini(&p->hb);
    rc_fini(&p->cmd);
fail:
    pthread_mutex_destroy(&p->wmu);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->url_copy);
    free(p);
    return NULL;
}

/* ---- the worker side ------------------------------------------------------------------- */

typedef struct wjob {        /* the job a worker runs */
    char id[JOBS_ID_MAX];
    char key[64];
    char entry[64];          /* its stream entry id */
    char attempt[24];
    char model[128];         /* the API node's name for its model ("" = none recorded) */
} wjob;

typedef struct worker {
    jobs_redis_config cfg;
    char *url_copy;
    redis_url u;
    char id[160];
    rconn cmd, hb;           /* the worker loop's, the heartbeat thread's */
    volatile sig_atomic_t *stop;
    char *dead_error;        /* the dead-letter error record */
    char *corrupt_error;     /* the error record of a job whose attempts field is not an integer */
    /* the running job (heartbeat thread) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int hb_stop;
    wjob cur;
    char *cancel_error;      /* why the job stopped early (progress), or NULL */
    const char *stop_state;  /* with it: "cancelled", or "failed" (time limit) */
    double t_start;          /* when this attempt started */
    int lost;                /* the attempt was taken over */
    /* its announcement (routing): models_json's text, when it started */
    char *models_text;
    double started;
    char skipped[JOBS_ID_MAX]; /* the last job put back (logged once) */
} worker;

/* The announcement's lifetime: 3 heartbeats (the loop's ~1 s when idle,
 * hb_interval while a job runs). */
static int announce_ttl(const worker *w);

/* Writes this worker's announcement (sdserve:worker:<id>, with a TTL) and
 * its heartbeat score; job = the running job's id, or "" when idle. */
static void announce(worker *w, rconn *k, const char *job)
{
    sd_err err;
    sd_err_clear(&err);
    char key[224], now[32], started[32];
    snprintf(key, sizeof key, K_WORKER "%s", w->id);
    snprintf(now, sizeof now, "%.3f", now_s());
    snprintf(started, sizeof started, "%.0f", w->started);
    redisReply *r = rc_cmd(k, &err, "EVAL %s 2 %s %s %s %s %s %s %d %s %s %s %d", lua_announce, K_WORKERS, key, now,
                           w->id, w->models_text ? w->models_text : "[]", w->cfg.precision ? w->cfg.precision : "",
                           w->cfg.threads, started, *job ? "busy" : "idle", job, announce_ttl(w));
    if (r) freeReplyObject(r);
}

static void heartbeat_once(worker *w, const wjob *j)
{
    sd_err err;
    sd_err_clear(&err);
    char now[32];
    snprintf(now, sizeof now, "%.3f", now_s());
    redisReply *r = rc_cmd(&w->hb, &err, "EVAL %s 3 %s %s %s %s %s %s %s", lua_heartbeat, j->key, K_STREAM, K_WORKERS,
                           j->attempt, w->id, j->entry, now);
    if (r) freeReplyObject(r);
}

static double hb_interval(const worker *w)
{
    double t = w->cfg.claim_timeout / 4;
    return t < 0.2 ? 0.2 : t > 5 ? 5 : t;
}

static int announce_ttl(const worker *w)
{
    double beat = hb_interval(w) > 1.5 ? hb_interval(w) : 1.5;   /* idle: the loop's block (1 s) + a call */
    return (int)(3 * beat + 0.999);
}

static void *hb_main(void *arg)
{
    worker *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->hb_stop) {
        wjob j = w->cur;
        pthread_mutex_unlock(&w->mu);
        heartbeat_once(w, &j);
        announce(w, &w->hb, j.id);
        pthread_mutex_lock(&w->mu);
        struct timespec dl = deadline_in(hb_interval(w));
        if (!w->hb_stop) pthread_cond_timedwait(&w->cv, &w->mu, &dl);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Records why the job stops at this step (text: its error record, taken);
 * returns 1 (stop). */
static int stop_early(worker *w, const char *state, char *text)
{
    if (!w->cancel_error) {
        w->cancel_error = text;
        w->stop_state = state;
    } else {
        free(text);
    }
    return 1;
}

/* The progress callback: step/total into the hash; stops on a cancel, the
 * time limit, a gone API node (synchronous jobs), a lost attempt or the
 * worker's stop. */
static int w_progress(void *ud, int step, int total)
{
    worker *w = ud;
    if (*w->stop) return 1;
    if (w->cfg.job_timeout > 0 && now_s() - w->t_start > w->cfg.job_timeout) {
        sd_err te;
        sd_err_clear(&te);
        sd_errf(&te, SD_ETIMEOUT, "", "the job ran longer than the %g s job time limit and was stopped",
                w->cfg.job_timeout);
        return stop_early(w, "failed", error_text(&te));
    }
    sd_err err;
    sd_err_clear(&err);
    char now[32], nt[32];
    snprintf(now, sizeof now, "%.3f", now_s());
    snprintf(nt, sizeof nt, "%.3f", node_timeout(w->cfg.claim_timeout));
    redisReply *r = rc_cmd(&w->cmd, &err, "EVAL %s 2 %s %s %s %d %d %s %s %s", lua_progress, w->cur.key, K_NODES,
                           w->cur.attempt, step, total, w->cur.id, now, nt);
    if (!r) return 0;   /* Redis away: go on; the finish decides */
    const char *what = rstr(elem(r, 0));
    int stop = 0;
    if (what && !strcmp(what, "lost")) stop = w->lost = 1;
    if (what && !strcmp(what, "cancel"))
        stop = stop_early(w, "cancelled", sd_strdup(rstr(elem(r, 1)) ? rstr(elem(r, 1)) : ""));
    if (what && !strcmp(what, "orphan")) {
        sd_err oe;
        sd_err_clear(&oe);
        sd_errf(&oe, SD_ECANCELLED, "", "the client disconnected (the API node it waited on is gone)");
        stop = stop_early(w, "cancelled", error_text(&oe));
    }
    freeReplyObject(r);
    return stop;
}

/* The running job's preview sink (sd_request.preview): SET with a TTL, so
 * a killed worker's preview goes away on its own; best effort. */
static void w_preview(void *ud, int step, int total, const uint8_t *png, size_t len)
{
    worker *w = ud;
    char head[32], key[64];
    int hn = snprintf(head, sizeof head, "%d/%d\n", step, total);
    char *v = malloc((size_t)hn + len);
    if (!v) return;
    memcpy(v, head, (size_t)hn);
    memcpy(v + hn, png, len);
    preview_key(key, sizeof key, w->cur.id);
    sd_err err;
    sd_err_clear(&err);
    redisReply *r = rc_cmd(&w->cmd, &err, "SET %s %b EX %d", key, v, (size_t)hn + len, PREVIEW_TTL);
    if (r) freeReplyObject(r);
    free(v);
}

/* The run's preview is gone once it ends (the job's images replace it). */
static void preview_drop(worker *w)
{
    char key[64];
    preview_key(key, sizeof key, w->cur.id);
    sd_err err;
    sd_err_clear(&err);
    redisReply *r = rc_cmd(&w->cmd, &err, "DEL %s", key);
    if (r) freeReplyObject(r);
}

/* The worker's own counters (--health-port): state written, or NULL for a
 * run that ended without writing one. */
static void count_outcome(worker *w, const char *state)
{
    jobs_worker_stats *st = w->cfg.stats;
    if (!st) return;
    if (!state) atomic_fetch_add(&st->abandoned, 1);
    else if (!strcmp(state, "succeeded")) atomic_fetch_add(&st->succeeded, 1);
    else if (!strcmp(state, "failed")) atomic_fetch_add(&st->failed, 1);
    else atomic_fetch_add(&st->cancelled, 1);
}

/* Writes the outcome if the attempt is still ours, retrying while Redis is
 * away (up to the claim timeout: then another worker has it anyway).
 * 1 written, 0 not ours, -1 could not reach Redis. */
static int finish(worker *w, const char *state, const char *field, const char *value, int images)
{
    char now[32], ret[32];
    snprintf(ret, sizeof ret, "%.0f", w->cfg.retention);
    double give_up = now_s() + w->cfg.claim_timeout;
    for (double pause = 0.1;; pause *= 2) {
        sd_err err;
        sd_err_clear(&err);
        snprintf(now, sizeof now, "%.3f", now_s());
        redisReply *r = rc_cmd(&w->cmd, &err, "EVAL %s 2 %s %s %s %s %s %s %s %s %d %s", lua_finish, w->cur.key,
                               K_STATS, ret, w->cur.attempt, state, now, field, value, images, w->cur.id);
        if (r) {
            int wrote = rint_of(r) == 1;
            freeReplyObject(r);
            count_outcome(w, wrote ? state : NULL);
            return wrote;
        }
        if (err.code != SD_EBUSY || now_s() + pause > give_up || *w->stop) {
            count_outcome(w, NULL);
            return -1;
        }
        usleep((useconds_t)(pause * 1e6));
    }
}

static void ack(worker *w)
{
    sd_err err;
    sd_err_clear(&err);
    redisReply *r = rc_cmd(&w->cmd, &err, "XACK " K_STREAM " " K_GROUP " %s", w->cur.entry);
    if (r) freeReplyObject(r);
    r = rc_cmd(&w->cmd, &err, "XDEL " K_STREAM " %s", w->cur.entry);
    if (r) freeReplyObject(r);
}

/* This worker's own size limits (--max-side, --max-pixels) on a request
 * from the wire, hires size included: the API node that queued it may run
 * larger ones, or the record may not be a node's at all, and a size this
 * worker was not started for is refused, not tried.  0, or -1 + SD_EINVAL
 * naming the field that sets the size. */
static int check_limits(const worker *w, const sd_request *req, sd_err *err)
{
    sd_request r = *req;   /* a shallow copy: only the hires size is resolved in it */
    req_resolve_hires(&r);
    int side = w->cfg.max_side > 0 ? w->cfg.max_side : REQ_MAX_SIDE;
    int64_t px = w->cfg.max_pixels > 0 ? w->cfg.max_pixels : REQ_MAX_PIXELS;
    sd_err e;
    sd_err_clear(&e);
    int bad = req_check_size(&r, side, px, &e);
    int ow, oh;
    req_output_size(&r, &ow, &oh);
    if (!bad && r.img2img && (ow > side || oh > side || (int64_t)ow * oh > px))
        bad = sd_errf(&e, SD_EINVAL, "init_image", "the init image is %dx%d, more than %d on a side or %lld pixels",
                      ow, oh, side, (long long)px);
    if (!bad) return 0;
    return sd_errf(err, e.code, e.field, "worker %s refuses the job, over its own size limits (--max-side %d, "
                   "--max-pixels %lld): %.300s", w->id, side, (long long)px, e.msg);
}

/* Runs the claimed request; writes its outcome.  0 done (acknowledge),
 * -1 leave the entry pending (stopping, or the outcome could not be
 * written: another worker takes it over). */
static int run_claimed(worker *w, const char *request_text, job_run_fn run, void *run_ud)
{
    sd_err err;
    sd_err_clear(&err);
    sd_request req;
    memset(&req, 0, sizeof req);
    json_t *j = json_loads(request_text ? request_text : "", 0, NULL);
    int bad = !j ? sd_errf(&err, SD_EINTERNAL, "request", "the job's request record is not JSON")
                 : wire_request_from_json(j, &req, &err);
    json_decref(j);
    if (!bad && !(req.model && *req.model) && w->cur.model[0]) {   /* the API node's default, by name */
        free(req.model);
        req.model = sd_strdup(w->cur.model);
    }
    if (!bad) bad = check_limits(w, &req, &err);
    req.preview = (req_preview_sink){.put = w_preview, .ud = w};
    job_result *res = NULL;
    pthread_t hb;
    w->hb_stop = 0;
    w->lost = 0;
    w->t_start = now_s();
    int hb_ok = !pthread_create(&hb, NULL, hb_main, w);
    int rc = bad ? -1 : run(run_ud, &req, w_progress, w, &res, &err);
    if (hb_ok) {
        pthread_mutex_lock(&w->mu);
        w->hb_stop = 1;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(hb, NULL);
    }
    sd_request_free(&req);
    if (!w->lost) preview_drop(w);   /* a lost attempt's key is the new runner's now */
    int out = 0;
    if (w->lost || (*w->stop && rc && !w->cancel_error)) count_outcome(w, NULL);
    if (w->lost) {
        out = -1;  /* another worker has the job now: nothing to write, its entry is theirs */
    } else if (w->cancel_error) {
        out = finish(w, w->stop_state, "error", w->cancel_error, 0) > 0 ? 0 : -1;
    } else if (*w->stop && rc) {
        out = -1;  /* stopped by our own shutdown: another worker runs it again */
    } else {
        char *text = rc ? error_text(&err) : dump(wire_result_to_json(res, &err));
        if (!text && !rc) {
            sd_errf(&err, SD_ENOMEM, "", "out of memory recording the result");
            text = error_text(&err);
            rc = -1;
        }
        int wrote = text ? finish(w, rc ? "failed" : "succeeded", rc ? "error" : "result", text, rc ? 0 : res->n) : -1;
        out = wrote > 0 ? 0 : -1;
        free(text);
    }
    job_result_free(res);
    free(w->cancel_error);
    w->cancel_error = NULL;
    return out;
}

/* 1 when this worker runs the job (its routing fields match: the model's
 * name and hash, the precision); 0 when it puts it back for another.
 * Reads the job's model name into w->cur.model. */
static int accepts(worker *w)
{
    if (!w->cfg.model_lookup) return 1;
    sd_err err;
    sd_err_clear(&err);
    redisReply *r = rc_cmd(&w->cmd, &err, "HMGET %s model model_hash precision", w->cur.key);
    if (!r) return 1;   /* Redis away: the claim fails too */
    const char *model = rstr(elem(r, 0)), *hash = rstr(elem(r, 1)), *prec = rstr(elem(r, 2));
    char name[128] = "", mine[16] = "", why[300] = "";
    if (model) snprintf(w->cur.model, sizeof w->cur.model, "%s", model);
    if (prec && w->cfg.precision && strcmp(prec, w->cfg.precision))
        snprintf(why, sizeof why, "it is pinned to precision %s, this worker runs %s", prec, w->cfg.precision);
    else if (model && w->cfg.model_lookup(w->cfg.models_ud, model, name, mine))
        snprintf(why, sizeof why, "this worker does not serve model '%.100s'", model);
    else if (model && hash && strcmp(hash, mine))
        snprintf(why, sizeof why, "its model '%.100s' is the file with hash %s on the API node, %s here: not the "
                 "same checkpoint", model, hash, mine);
    freeReplyObject(r);
    if (!why[0]) return 1;
    if (strcmp(w->skipped, w->cur.id)) printf("worker %s: job %s put back: %s\n", w->id, w->cur.id, why);
    snprintf(w->skipped, sizeof w->skipped, "%s", w->cur.id);
    return 0;
}

/* Puts the current entry back at the stream's end (lua_requeue), then
 * waits a little so that another worker reads it first. */
static void put_back(worker *w)
{
    sd_err err;
    sd_err_clear(&err);
    redisReply *r = rc_cmd(&w->cmd, &err, "EVAL %s 1 %s %s %s", lua_requeue, K_STREAM, w->cur.entry, w->cur.id);
    if (r) freeReplyObject(r);
    for (int i = 0; i < 5 && !*w->stop; i++) usleep(100000);
}

/* Claims the job of one stream entry and runs it. */
static void take_entry(worker *w, const redisReply *entry, job_run_fn run, void *run_ud)
{
    const char *eid = rstr(elem(entry, 0)), *jid = NULL;
    const redisReply *f = elem(entry, 1);
    for (size_t i = 0; i + 1 < (f ? f->elements : 0); i += 2)
        if (rstr(f->element[i]) && !strcmp(f->element[i]->str, "id")) jid = rstr(f->element[i + 1]);
    if (!eid) return;
    memset(&w->cur, 0, sizeof w->cur);
    snprintf(w->cur.entry, sizeof w->cur.entry, "%s", eid);
    if (!jid || strlen(jid) >= JOBS_ID_MAX) {   /* not ours: drop it */
        ack(w);
        return;
    }
    snprintf(w->cur.id, sizeof w->cur.id, "%s", jid);
    job_key(w->cur.key, sizeof w->cur.key, jid);
    if (!accepts(w)) {
        put_back(w);
        return;
    }
    sd_err err;
    sd_err_clear(&err);
    char now[32], ret[32];
    snprintf(now, sizeof now, "%.3f", now_s());
    snprintf(ret, sizeof ret, "%.0f", w->cfg.retention);
    redisReply *r = rc_cmd(&w->cmd, &err, "EVAL %s 2 %s %s %s %s %s %d %s %s %s", lua_claim, w->cur.key, K_STATS,
                           ret, w->id, now, w->cfg.max_attempts, w->dead_error, jid, w->corrupt_error);
    if (!r) return;   /* Redis away: the entry stays pending, reclaimed later */
    const char *what = rstr(elem(r, 0));
    int done = 1;
    if (what && !strcmp(what, "corrupt"))
        printf("worker %s: job %s failed: its record's attempts field is not an integer\n", w->id, jid);
    if (what && !strcmp(what, "run")) {
        snprintf(w->cur.attempt, sizeof w->cur.attempt, "%s", rstr(elem(r, 1)) ? rstr(elem(r, 1)) : "0");
        printf("worker %s: job %s attempt %s\n", w->id, jid, w->cur.attempt);
        if (w->cfg.stats) atomic_store(&w->cfg.stats->busy, 1);
        done = !run_claimed(w, rstr(elem(r, 2)), run, run_ud);
        if (w->cfg.stats) atomic_store(&w->cfg.stats->busy, 0);
    }
    freeReplyObject(r);
    if (done) ack(w);
}

/* One entry idle past the claim timeout (its worker stopped heartbeating),
 * or a new one: 1 taken and run, 0 none, -1 Redis away. */
static int next_entry(worker *w, job_run_fn run, void *run_ud)
{
    sd_err err;
    sd_err_clear(&err);
    char idle[32];
    snprintf(idle, sizeof idle, "%.0f", w->cfg.claim_timeout * 1000);
    redisReply *r = rc_cmd(&w->cmd, &err, "XAUTOCLAIM " K_STREAM " " K_GROUP " %s %s 0-0 COUNT 1", w->id, idle);
    if (!r) return -1;
    const redisReply *e = elem(elem(r, 1), 0);
    if (e && rstr(elem(e, 0))) {
        take_entry(w, e, run, run_ud);
        freeReplyObject(r);
        return 1;
    }
    freeReplyObject(r);
    int block = (int)(w->cfg.queue_timeout * 500);
    if (block > 1000) block = 1000;
    if (block < 1) block = 1;
    r = rc_cmd(&w->cmd, &err, "XREADGROUP GROUP " K_GROUP " %s COUNT 1 BLOCK %d STREAMS " K_STREAM " >", w->id, block);
    if (!r) return -1;
    e = elem(elem(elem(r, 0), 1), 0);   /* [[stream, [entry]]], or nil after the block */
    if (e) take_entry(w, e, run, run_ud);
    freeReplyObject(r);
    return e ? 1 : 0;
}

static void presence(worker *w) { announce(w, &w->cmd, ""); }

/* A stopping worker takes its announcement down: no job is routed to it. */
static void withdraw(worker *w)
{
    sd_err err;
    sd_err_clear(&err);
    redisReply *r = rc_cmd(&w->cmd, &err, "DEL " K_WORKER "%s", w->id);
    if (r) freeReplyObject(r);
}

static void worker_free(worker *w)
{
    rc_fini(&w->cmd);
    rc_fini(&w->hb);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->dead_error);
    free(w->corrupt_error);
    free(w->models_text);
    free(w->url_copy);
    free(w);
}

static void backoff_sleep(double *pause, volatile sig_atomic_t *stop)
{
    for (double t = 0; t < *pause && !*stop; t += 0.1) usleep(100000);
    *pause = *pause * 2 > 5 ? 5 : *pause * 2;
}

int jobs_redis_worker(const jobs_redis_config *cfg, job_run_fn run, void *run_ud, volatile sig_atomic_t *stop,
                      sd_err *err)
{
    worker *w = sd_calloc(1, sizeof *w);
    if (!w) return sd_errf(err, SD_ENOMEM, "", "out of memory starting the worker");
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (config_take(&w->cfg, &w->url_copy, &w->u, cfg, err)) {   /* keeps cfg->stats */
        rc_init(&w->cmd, &w->u, 1);
        rc_init(&w->hb, &w->u, 1);
        worker_free(w);
        return -1;
    }
    if (cfg->worker_id && *cfg->worker_id) snprintf(w->id, sizeof w->id, "%s", cfg->worker_id);
    else worker_name(w->id, sizeof w->id);
    /* the blocking read waits up to 1 s on top of the call's own bound */
    rc_init(&w->cmd, &w->u, w->cfg.queue_timeout + 1);
    rc_init(&w->hb, &w->u, w->cfg.queue_timeout);
    w->stop = stop;
    sd_err dead;
    sd_err_clear(&dead);
    sd_errf(&dead, SD_EINTERNAL, "", "the job was abandoned %d times (its worker stopped heartbeating: killed or "
            "crashed) and is not retried again", w->cfg.max_attempts);
    sd_err corrupt;
    sd_err_clear(&corrupt);
    sd_errf(&corrupt, SD_EINTERNAL, "attempts", "the job's record in the queue is corrupt (its attempts field is not "
            "an integer), so its runs cannot be counted: it is not run");
    if (!(w->dead_error = error_text(&dead)) || !(w->corrupt_error = error_text(&corrupt))) {
        worker_free(w);
        return sd_errf(err, SD_ENOMEM, "", "out of memory starting the worker");
    }
    if (w->cfg.stats) snprintf(w->cfg.stats->id, sizeof w->cfg.stats->id, "%s", w->id);
    w->started = now_s();
    if (w->cfg.models_json && !(w->models_text = w->cfg.models_json(w->cfg.models_ud))) {
        worker_free(w);
        return sd_errf(err, SD_ENOMEM, "", "out of memory starting the worker");
    }
    if (w->models_text) printf("worker %s: announces models %s, precision %s\n", w->id, w->models_text,
                               w->cfg.precision ? w->cfg.precision : "?");
    printf("worker %s: on the queue at %s:%d/%d\n", w->id, w->u.host, w->u.port, w->u.db);
    double pause = 0.2;
    int was_down = 0;
    while (!*stop) {
        presence(w);
        int got = next_entry(w, run, run_ud);
        if (w->cfg.stats) atomic_store(&w->cfg.stats->queue_down, got < 0);
        if (got < 0) {
            if (!was_down) printf("worker %s: the queue is unreachable; retrying with backoff\n", w->id);
            was_down = 1;
            backoff_sleep(&pause, stop);
        } else {
            if (was_down) printf("worker %s: the queue is back\n", w->id);
            was_down = 0;
            pause = 0.2;
        }
    }
    withdraw(w);
    worker_free(w);
    return 0;
}
