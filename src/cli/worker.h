/* worker.h — a Redis queue worker on a thread of this process (worker.c):
 * what `sdserve worker` runs, and the local worker of an API node
 * (`sdserve serve --queue redis://...` without --workers 0). */
#ifndef SD_CLI_WORKER_H
#define SD_CLI_WORKER_H

#include <pthread.h>
#include <signal.h>

#include "../jobs/generate.h"
#include "../jobs/redis.h"

typedef struct queue_worker {
    jobs_redis_config cfg;
    jobs_worker_stats stats; /* what it does (cfg.stats points here) */
    gen_ctx *gc;
    pthread_t thread;
    int started;
    volatile sig_atomic_t stop;
    sd_err err;              /* the worker's own failure (bad configuration) */
} queue_worker;

/* Starts jobs_redis_worker(cfg, gen_run, gc) on a new thread; cfg's strings
 * and gc must outlive queue_worker_stop.  0, or -1 with err. */
int queue_worker_start(queue_worker *w, const jobs_redis_config *cfg, gen_ctx *gc, sd_err *err);
/* Asks it to stop (a running job stops at its next step and is left for
 * another worker) and joins it.  Safe on a worker never started. */
void queue_worker_stop(queue_worker *w);

/* sdserve worker --health-port: a tiny HTTP server (GET /health, GET
 * /metrics) on bind:port over the worker's counters. */
typedef struct worker_health worker_health;
worker_health *worker_health_start(const char *bind, int port, const jobs_worker_stats *st, sd_err *err);
void worker_health_stop(worker_health *h);   /* NULL-safe */

#endif
