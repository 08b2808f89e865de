/* worker.c — the queue worker thread that `sdserve worker` (a process that
 * only runs jobs from the shared Redis queue) and an API node's local
 * worker run, and the worker's optional /health + /metrics port.  The
 * command itself is serve.c's worker mode (cli_worker). */
#include "worker.h"
#include "../http/listen.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    w->cfg.stats = &w->stats;
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

/* ---- --health-port ---------------------------------------------------------- */

struct worker_health {
    struct MHD_Daemon *d;
    const jobs_worker_stats *st;
};

static char *health_body(const jobs_worker_stats *st, int *status)
{
    int down = atomic_load(&st->queue_down);
    *status = down ? 503 : 200;
    json_t *b = json_pack("{s:s, s:s, s:s, s:b, s:b, s:{s:I, s:I, s:I, s:I}}", "status", down ? "degraded" : "ok",
                          "role", "worker", "worker", st->id, "busy", atomic_load(&st->busy), "queue_reachable", !down,
                          "jobs", "succeeded", (json_int_t)atomic_load(&st->succeeded), "failed",
                          (json_int_t)atomic_load(&st->failed), "cancelled", (json_int_t)atomic_load(&st->cancelled),
                          "abandoned", (json_int_t)atomic_load(&st->abandoned));
    char *text = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    return text;
}

static char *metrics_body(const jobs_worker_stats *st)
{
    char *text = NULL;
    if (asprintf(&text,
                 "# HELP sdserve_worker_busy 1 while this worker runs a job.\n# TYPE sdserve_worker_busy gauge\n"
                 "sdserve_worker_busy %d\n"
                 "# HELP sdserve_queue_up 1 when the shared queue answered.\n# TYPE sdserve_queue_up gauge\n"
                 "sdserve_queue_up %d\n"
                 "# HELP sdserve_worker_jobs_total Jobs this worker ended, by outcome.\n"
                 "# TYPE sdserve_worker_jobs_total counter\n"
                 "sdserve_worker_jobs_total{outcome=\"succeeded\"} %llu\n"
                 "sdserve_worker_jobs_total{outcome=\"failed\"} %llu\n"
                 "sdserve_worker_jobs_total{outcome=\"cancelled\"} %llu\n"
                 "sdserve_worker_jobs_total{outcome=\"abandoned\"} %llu\n",
                 atomic_load(&st->busy), !atomic_load(&st->queue_down), atomic_load(&st->succeeded),
                 atomic_load(&st->failed), atomic_load(&st->cancelled), atomic_load(&st->abandoned)) < 0)
        return NULL;
    return text;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_len, void **state)
{
    worker_health *h = cls;
    int status = 404;
    const char *type = "application/json";
    char *text = NULL;
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        status = 405;
        text = strdup("{\"status\":\"error\",\"message\":\"only GET /health and GET /metrics\"}\n");
    } else if (!strcmp(url, "/health")) {
        text = health_body(h->st, &status);
    } else if (!strcmp(url, "/metrics")) {
        status = 200;
        type = "text/plain; version=0.0.4; charset=utf-8";
        text = metrics_body(h->st);
    } else {
        text = strdup("{\"status\":\"error\",\"message\":\"a worker answers GET /health and GET /metrics only\"}\n");
    }
    if (!text) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

worker_health *worker_health_start(const char *bind, int port, const jobs_worker_stats *st, sd_err *err)
{
    int bound = 0, fd = http_listen(bind, port, &bound, err);
    if (fd < 0) return NULL;
    worker_health *h = calloc(1, sizeof *h);
    if (!h) {
        close(fd);
        return sd_errf(err, SD_ENOMEM, "", "out of memory"), NULL;
    }
    h->st = st;
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, answer, h, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!h->d) {
        close(fd);
        free(h);
        return sd_errf(err, SD_EIO, "health-port", "cannot start the worker's /health server"), NULL;
    }
    printf("worker /health and /metrics on port %d\n", bound);
    return h;
}

void worker_health_stop(worker_health *h)
{
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h);
}
