/* worker.c — `sdserve worker`: a process that only runs jobs from the
 * shared Redis queue (no HTTP), and the queue worker thread that it and an
 * API node's local worker use.  The settings, storage and model loading
 * are `serve`'s (serve.c runs in its worker mode). */
#include "worker.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

static void *worker_main(void *arg)
{
    queue_worker *w = arg;
    sd_err_clear(&w->err);
    if (jobs_redis_worker(&w->cfg, gen_run, w->gc, &w->stop, &w->err))
        fprintf(stderr, "sdserve: the queue worker stopped: %s\n", w->err.msg);
    return NULL;
}

int queue_worker_start(queue_worker *w, const jobs_redis_config *cfg, gen_ctx *gc, sd_err *err)
{
    memset(w, 0, sizeof *w);
    w->cfg = *cfg;
    w->gc = gc;
    if (pthread_create(&w->thread, NULL, worker_main, w))
        return sd_errf(err, SD_EINTERNAL, "workers", "cannot start the queue worker thread");
    w->started = 1;
    return 0;
}

void queue_worker_stop(queue_worker *w)
{
    if (!w->started) return;
    w->stop = 1;
    pthread_join(w->thread, NULL);
    w->started = 0;
}

int cli_worker(int argc, char **argv) { return cli_serve_mode(argc, argv, 1); }
