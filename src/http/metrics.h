/* metrics.h — request counters by endpoint and status, rendered with the
 * job queue's statistics in the Prometheus text format (GET /metrics). */
#ifndef SD_HTTP_METRICS_H
#define SD_HTTP_METRICS_H

#include <stdint.h>

#include "../jobs/backend.h"

/* Endpoints are numbered by the caller (the route table, routes.c; 0 =
 * "other"), so clients cannot grow the label set. */
#define METRICS_MAX_ENDPOINTS 32

void metrics_count_request(int endpoint, int status);
/* malloc'd Prometheus text; labels[e] names endpoints 0 .. n-1. */
char *metrics_render(const jobs_stats *js, const char *const *labels, int n);

#endif
