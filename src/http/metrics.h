/* metrics.h — request counters by endpoint and status, rendered with the
 * job queue's statistics in the Prometheus text format (GET /metrics). */
#ifndef SD_HTTP_METRICS_H
#define SD_HTTP_METRICS_H

#include <stdint.h>

#include "../jobs/backend.h"

/* Endpoint labels, fixed so that clients cannot grow the label set. */
typedef enum {
    EP_OTHER = 0, EP_ROOT, EP_TXT2IMG, EP_IMG2IMG, EP_JOBS_TXT2IMG, EP_JOBS_IMG2IMG, EP_JOB,
    EP_IMAGES, EP_HEALTH, EP_METRICS, EP_OPENAPI, EP_COUNT
} endpoint;
const char *endpoint_label(endpoint e);

void metrics_count_request(endpoint e, int status);
/* malloc'd Prometheus text. */
char *metrics_render(const jobs_stats *js);

#endif
