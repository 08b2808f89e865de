/* redis.h — the Redis job backend (issue 17): a queue shared by API nodes
 * and worker processes on many machines.  The API-node side is a
 * jobs_backend (backend.h) like the in-process queue; the worker side takes
 * one job at a time from the shared stream and runs it with a job_run_fn.
 * Data layout and commands per job: docs/SCALE.md. */
#ifndef SD_JOBS_REDIS_H
#define SD_JOBS_REDIS_H

#include <signal.h>
#include <stdatomic.h>

#include "backend.h"

/* redis://[user:password@]host:port/db, parsed strictly (port and db
 * required in range; no query, no fragment). */
typedef struct redis_url {
    char host[256];
    int port;                /* 1..65535 */
    int db;                  /* 0..1023 */
    char user[128];          /* "" = none (password alone: AUTH password) */
    char password[256];      /* "" = no AUTH */
} redis_url;
/* 0, or -1 with err (SD_EINVAL, field "queue") saying what is wrong. */
int redis_url_parse(const char *url, redis_url *out, sd_err *err);

/* What a worker is doing, for its own /health and /metrics (sdserve worker
 * --health-port): written by jobs_redis_worker, read from any thread. */
typedef struct jobs_worker_stats {
    char id[160];            /* the consumer name; set before the first job */
    atomic_int busy;         /* 1 while a job runs */
    atomic_int queue_down;   /* 1 while Redis cannot be reached */
    atomic_ullong succeeded, failed, cancelled;   /* outcomes this worker wrote */
    atomic_ullong abandoned; /* runs stopped without an outcome (taken over, or stopping) */
} jobs_worker_stats;

typedef struct jobs_redis_config {
    const char *url;         /* redis://... (--queue) */
    double queue_timeout;    /* seconds one Redis call may take (connect included) */
    double claim_timeout;    /* seconds without heartbeat before a job is taken over */
    int max_attempts;        /* runs of one job at most; then it fails (dead letter) */
    int queue_size;          /* jobs waiting in the shared queue at most */
    double retention;        /* seconds a finished job's record stays */
    double job_timeout;      /* worker: seconds a job may run, then it fails; 0 = no limit */
    const char *worker_id;   /* worker: consumer name; NULL = host:pid:random */
    /* worker: its own size limits (--max-side, --max-pixels; <= 0 = the
     * defaults), checked again on every job it takes: the API node that
     * queued it may run larger ones, or the record may not be a node's */
    int max_side;
    int64_t max_pixels;
    jobs_worker_stats *stats;  /* worker: filled as it works; NULL = none */
    /* routing (issue 17 item 3; docs/SCALE.md "Worker announcements"):
     * this node's models and precision.  A worker announces them in
     * sdserve:worker:<id> (TTL 3 heartbeats) and runs only jobs that match;
     * an API node pins them on its jobs and refuses (503 naming model) a job
     * no live worker matches.  NULL model_lookup = no routing (any job). */
    const char *precision;   /* resolved (sd_precision_resolved): "fp32", "bf16x2", ... */
    int threads;             /* worker: announced (0 = all cores) */
    /* the checkpoint `name` names (NULL/"" = the default): its registry
     * name into name_out[128], its short hash into hash[16]; 0, or -1 when
     * this node has no usable model of that name */
    int (*model_lookup)(void *ud, const char *name, char *name_out, char *hash);
    /* worker: its usable models as a JSON array text [{"name", "hash"}]
     * (malloc'd; NULL = out of memory) */
    char *(*models_json)(void *ud);
    void *models_ud;
} jobs_redis_config;

/* The API-node side: a jobs_backend on the shared queue.  Connects and
 * creates the stream's consumer group; fails (SD_EBUSY naming "queue") when
 * Redis cannot be reached now. */
jobs_backend *jobs_redis_open(const jobs_redis_config *cfg, sd_err *err);

/* The worker side: takes jobs one at a time until *stop becomes non-zero,
 * running each with run(run_ud, ...).  Reconnects with backoff when Redis
 * goes away.  Returns 0 when stopped, -1 with err on a bad configuration. */
int jobs_redis_worker(const jobs_redis_config *cfg, job_run_fn run, void *run_ud, volatile sig_atomic_t *stop,
                      sd_err *err);

#endif
