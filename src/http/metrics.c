/* metrics.c — counters for GET /metrics (metrics.h). */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STATUS 600
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t requests[METRICS_MAX_ENDPOINTS][MAX_STATUS];

void metrics_count_request(int e, int status)
{
    if (e < 0 || e >= METRICS_MAX_ENDPOINTS) e = 0;
    if (status < 0 || status >= MAX_STATUS) status = 0;
    pthread_mutex_lock(&mu);
    requests[e][status]++;
    pthread_mutex_unlock(&mu);
}

typedef struct sbuf { char *p; size_t len, cap; int oom; } sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = 1; return; }
        if ((size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        size_t nc = b->cap * 2 + (size_t)n;
        char *np = realloc(b->p, nc);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = nc;
    }
}

char *metrics_render(const jobs_stats *js, const char *const *labels, int n)
{
    if (n > METRICS_MAX_ENDPOINTS) n = METRICS_MAX_ENDPOINTS;
    sbuf b = {malloc(4096), 0, 4096, 0};
    if (!b.p) return NULL;
    b.p[0] = 0;
    put(&b, "# HELP sdserve_http_requests_total HTTP requests answered, by endpoint and status.\n"
            "# TYPE sdserve_http_requests_total counter\n");
    pthread_mutex_lock(&mu);
    for (int e = 0; e < n; e++)
        for (int s = 0; s < MAX_STATUS; s++)
            if (requests[e][s])
                put(&b, "sdserve_http_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", labels[e], s,
                    (unsigned long long)requests[e][s]);
    pthread_mutex_unlock(&mu);
    put(&b, "# HELP sdserve_job_latency_seconds Time from submission to finish of succeeded jobs.\n"
            "# TYPE sdserve_job_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < js->nbuckets; i++) {
        cum += js->bucket_count[i];
        put(&b, "sdserve_job_latency_seconds_bucket{le=\"%g\"} %llu\n", js->bucket_le[i], (unsigned long long)cum);
    }
    cum += js->bucket_count[js->nbuckets];
    put(&b, "sdserve_job_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    put(&b, "sdserve_job_latency_seconds_sum %.6f\nsdserve_job_latency_seconds_count %llu\n", js->latency_sum,
        (unsigned long long)js->latency_count);
    put(&b, "# HELP sdserve_queue_depth Jobs waiting in the queue.\n# TYPE sdserve_queue_depth gauge\n"
            "sdserve_queue_depth %d\n", js->depth);
    put(&b, "# HELP sdserve_jobs_running Jobs being generated now.\n# TYPE sdserve_jobs_running gauge\n"
            "sdserve_jobs_running %d\n", js->running);
    put(&b, "# HELP sdserve_jobs_total Jobs by outcome.\n# TYPE sdserve_jobs_total counter\n"
            "sdserve_jobs_total{outcome=\"submitted\"} %llu\nsdserve_jobs_total{outcome=\"succeeded\"} %llu\n"
            "sdserve_jobs_total{outcome=\"failed\"} %llu\nsdserve_jobs_total{outcome=\"cancelled\"} %llu\n"
            "sdserve_jobs_total{outcome=\"rejected\"} %llu\n",
        (unsigned long long)js->submitted, (unsigned long long)js->succeeded, (unsigned long long)js->failed,
        (unsigned long long)js->cancelled, (unsigned long long)js->rejected);
    put(&b, "# HELP sdserve_images_generated_total Images generated.\n# TYPE sdserve_images_generated_total counter\n"
            "sdserve_images_generated_total %llu\n", (unsigned long long)js->images);
    put(&b, "# HELP sdserve_step_seconds Sampler step time (whole job time / steps, succeeded jobs).\n"
            "# TYPE sdserve_step_seconds summary\nsdserve_step_seconds_sum %.6f\nsdserve_step_seconds_count %llu\n",
        js->step_seconds_sum, (unsigned long long)js->steps);
    put(&b, "# HELP sdserve_seconds_per_step Mean seconds per sampler step so far.\n"
            "# TYPE sdserve_seconds_per_step gauge\nsdserve_seconds_per_step %.6f\n",
        js->steps ? js->step_seconds_sum / (double)js->steps : 0.0);
    /* a shared queue (jobs/redis.c): the cluster's workers and the queue's reachability */
    if (js->shared_queue)
        put(&b, "# HELP sdserve_workers_alive Worker processes that heartbeated recently.\n"
                "# TYPE sdserve_workers_alive gauge\nsdserve_workers_alive %d\n"
                "# HELP sdserve_queue_up 1 when the shared queue answered.\n# TYPE sdserve_queue_up gauge\n"
                "sdserve_queue_up %d\n", js->workers, !js->queue_down);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
