/* reply.h — building HTTP answers: JSON bodies, the one error shape
 * {"status":"error","code","field","message"}, the job-status words.  Every
 * JSON body ends with a newline (reply_raw adds it).
 * Private to src/http. */
#ifndef SD_HTTP_REPLY_H
#define SD_HTTP_REPLY_H

#include <microhttpd.h>
#include <jansson.h>

#include "../base/err.h"
#include "../jobs/backend.h"

/* What a reply records for the access log and metrics. */
typedef struct reply_info {
    int status;
    uint64_t bytes;
    const struct dialect *dl;   /* the request's API dialect (dialect.h): the shape of its
                                   errors; NULL = the seed API's */
    /* hold = 1: a refusal (status 4xx) is kept here instead of
     * queued, to be sent once the request's body has been read (server.c:
     * a client still sending its body would see the connection reset
     * rather than the answer); status and bytes are set when it is sent */
    int hold;
    struct MHD_Response *held;
    int held_status;
    uint64_t held_bytes;
} reply_info;

/* Queues `body` (taken; malloc'd) with a content type (NULL: none, for an
 * answer without content such as a 204) and optional extra header pairs
 * (name, value, ..., NULL); a 4xx while ri->hold is set is kept in
 * ri->held instead (the first one only). */
enum MHD_Result reply_raw(struct MHD_Connection *c, reply_info *ri, int status, const char *ctype, char *body,
                          size_t len, ...);
/* Queues a JSON value (reference stolen) with status; NULL = out of memory
 * (503).  Non-ASCII text is \u-escaped. */
enum MHD_Result reply_json(struct MHD_Connection *c, reply_info *ri, int status, json_t *v);
/* The same with text as UTF-8 (the generation answers, as they always were)
 * and an optional header (h1 = NULL: none). */
enum MHD_Result reply_json_utf8(struct MHD_Connection *c, reply_info *ri, int status, json_t *v, const char *h1,
                                const char *v1);
/* Queues the error shape for err — the seed API's, or ri->dl's own; 503
 * adds Retry-After (retry_after > 0), 405 adds Allow (allow != NULL). */
enum MHD_Result reply_error(struct MHD_Connection *c, reply_info *ri, const sd_err *err, int retry_after,
                            const char *allow);
enum MHD_Result reply_errorf(struct MHD_Connection *c, reply_info *ri, sd_errcode code, const char *field,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The error object of a body: {"status":"error","code","field","message"}. */
json_t *error_body(const sd_err *err);
/* The job-status vocabulary.  `state` is the job's life: queued, running,
 * succeeded, failed, cancelled (job_state_name).  `status` is the answer's
 * outcome, the same word every body uses: "pending" while queued or running
 * (the 202 too), "success" when succeeded (the synchronous body), "error"
 * when failed or cancelled (the error shape). */
const char *job_status_word(job_state s);

#endif
