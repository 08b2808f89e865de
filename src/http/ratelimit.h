/* ratelimit.h — per-client request rate limit: a token bucket per client
 * name (an API key's index, or the client's address when keys are off).
 *
 * Each client may make `burst` requests at once, refilled at `per_minute`
 * requests a minute.  A refused request learns how many whole seconds until
 * its next token (the Retry-After of the 429).  At most `max_clients` buckets
 * are kept: when the table is full, buckets that have refilled completely
 * (indistinguishable from new clients) are dropped; if none has, the new
 * client is let through untracked rather than blocking everyone.
 * Thread-safe. */
#ifndef SD_HTTP_RATELIMIT_H
#define SD_HTTP_RATELIMIT_H

typedef struct ratelimit ratelimit;

/* NULL when per_minute <= 0 (no limit) or out of memory.  burst < 1 -> per_minute. */
ratelimit *rl_create(double per_minute, double burst, int max_clients);
void rl_free(ratelimit *rl);
/* Takes one request for `who` at time `now` (seconds, monotonic).  Returns 0
 * when allowed, else the seconds (>= 1) to wait.  rl == NULL: always 0. */
int rl_take(ratelimit *rl, const char *who, double now);
/* Buckets currently kept (for tests). */
int rl_clients(ratelimit *rl);

#endif
