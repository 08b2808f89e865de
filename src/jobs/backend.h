/* backend.h — the jobs interface the HTTP layer talks to: submit a job, find
 * it by id, read its status (state, progress, queue position, result),
 * cancel it, wait for a change, read statistics, release it, shut down.
 *
 * A small vtable with one backend per file, like storage.h: inproc.c puts
 * today's in-process queue (jobs.h: one worker thread in this process)
 * behind it; a queue shared by several processes or machines (a Redis
 * stream with worker processes) plugs in beside it without touching
 * callers.  So the contract is written for a remote backend too:
 *
 * - A job is named by its id, a string any node can look up: 32 lowercase
 *   hex characters (the API's ids; HTTP looks up nothing else), random
 *   (128 bits) so that nodes make them without agreeing first.  find()
 *   returns NULL for an id it does not know.
 * - The owner (sd_request.owner, the API key's index + 1) travels with the
 *   job: find() for another owner answers NULL, as for an unknown id.
 * - A job_handle is the caller's hold on one job (a reference, or a copy of
 *   its id): valid until release(), whatever happens to the job meanwhile.
 * - status() is a snapshot; the result (a malloc'd copy of the JSON body)
 *   may have been produced by another process.  Progress is polled with
 *   status() after wait_change(), which may return early or spuriously.
 * - cancel() asks; a running job stops at its next step wherever it runs.
 *
 * The value types (sd_request, job_status, jobq_stats, job_state) are the
 * in-process queue's, declared in jobs.h; the HTTP layer includes this
 * header only and calls nothing named jobq_*.  All functions may be called
 * from several threads at once. */
#ifndef SD_JOBS_BACKEND_H
#define SD_JOBS_BACKEND_H

#include "../base/err.h"
#include "jobs.h"

#define JOBS_ID_MAX 33   /* bytes for an id and its NUL */

typedef struct jobs_backend jobs_backend;
/* Opaque: each backend's own struct (the in-process queue's `job`). */
typedef struct job_handle job_handle;
typedef jobq_stats jobs_stats;

typedef struct jobs_ops {
    const char *name;   /* "in-process", "redis", ... */
    int (*submit)(jobs_backend *b, sd_request *in, int listed, job_handle **out, int *retry_after, sd_err *err);
    job_handle *(*find)(jobs_backend *b, const char *id, int owner, sd_err *err);
    const char *(*id)(jobs_backend *b, const job_handle *h);
    job_state (*cancel)(jobs_backend *b, job_handle *h, const char *reason);
    void (*status)(jobs_backend *b, job_handle *h, job_status *out);
    job_state (*state)(jobs_backend *b, job_handle *h);   /* optional: NULL = from status */
    void (*wait_change)(jobs_backend *b, unsigned *gen, int timeout_ms);
    void (*stats)(jobs_backend *b, jobs_stats *out);
    void (*release)(jobs_backend *b, job_handle *h);
    void (*shutdown)(jobs_backend *b, const char *reason);
    void (*close)(jobs_backend *b);
    /* optional (a shared queue): the live workers as a JSON array text
     * (malloc'd), for /health; NULL when there are none to tell */
    char *(*workers_json)(jobs_backend *b);
    /* optional (live previews, issue 18 item 2): jobs_preview; NULL = a
     * backend whose jobs never have one */
    int (*preview)(jobs_backend *b, job_handle *h, job_preview *out, sd_err *err);
} jobs_ops;

/* Every backend's struct starts with this. */
struct jobs_backend {
    const jobs_ops *ops;
};

/* Takes ownership of *in (zeroed on return either way).  listed=1 makes the
 * job findable by id (the async API; a synchronous request's job is not);
 * the caller gets a handle in *out.  SD_EBUSY when the queue is full or
 * shutting down, with the suggested retry in seconds in *retry_after (may
 * be NULL); SD_ENOMEM; a remote backend adds SD_EUPSTREAM (unreachable). */
int jobs_submit(jobs_backend *b, sd_request *in, int listed, job_handle **out, int *retry_after, sd_err *err);
/* A listed job of `owner` by id, or NULL: with err untouched when there is
 * no such job (unknown, forgotten after retention, unlisted, or another
 * owner's); with err set when the backend could not look (a remote queue
 * unreachable: SD_EBUSY, which HTTP answers with 503). */
job_handle *jobs_find(jobs_backend *b, const char *id, int owner, sd_err *err);
/* The job's id: valid while the handle is held. */
const char *jobs_job_id(jobs_backend *b, const job_handle *h);
/* Cancels: a queued job leaves the queue at once, a running one stops at
 * its next step with `reason` as its error.  Returns the state after the
 * call (JOB_RUNNING until it has stopped). */
job_state jobs_cancel(jobs_backend *b, job_handle *h, const char *reason);
/* Snapshot: state, position (queued: jobs ahead), step/total, eta, timings,
 * the result (succeeded; the caller frees out->result) or the error. */
void jobs_status(jobs_backend *b, job_handle *h, job_status *out);
/* Only the state (what a waiting synchronous request polls): no copy of the
 * result; a backend without a `state` op answers through `status`. */
job_state jobs_state(jobs_backend *b, job_handle *h);
/* Blocks until some job may have changed or timeout_ms passes; *gen is an
 * opaque cursor, 0 at first, updated. */
void jobs_wait_change(jobs_backend *b, unsigned *gen, int timeout_ms);
/* Counters for /health and /metrics (depth, running, totals, latency). */
void jobs_get_stats(jobs_backend *b, jobs_stats *out);
void jobs_release(jobs_backend *b, job_handle *h);   /* NULL h is fine */
/* Refuses submissions from now on and cancels queued and running jobs with
 * `reason` (this node's, for a shared queue).  Handles stay valid. */
void jobs_shutdown(jobs_backend *b, const char *reason);
/* Shuts down (if not yet), waits for its own workers and frees.  NULL-safe. */
void jobs_close(jobs_backend *b);
const char *jobs_backend_name(const jobs_backend *b);
/* The live workers of a shared queue as a JSON array text [{id, models:
 * [{name, hash}], serves: [name] (the models this node sends it jobs for:
 * the same file hash, its precision), precision, threads, state, job,
 * started}] (malloc'd; the caller frees), cached about a second; NULL for
 * the in-process queue. */
char *jobs_workers_json(jobs_backend *b);
/* Live previews (docs/SERVER.md "Previews"): the held job's latest preview
 * (a PNG, its step and total) into *out, out->png NULL when it has none (not
 * running, none made yet, previews off, or the backend keeps none).  The
 * owner was checked by jobs_find.  0, or -1 with err when the backend could
 * not look (a remote queue unreachable: SD_EBUSY) or on SD_ENOMEM; the
 * caller frees with job_preview_free.  Written by whatever runs the job,
 * through its request's sink (request.h req_preview_sink). */
int jobs_preview(jobs_backend *b, job_handle *h, job_preview *out, sd_err *err);

/* ---- the in-process backend (inproc.c) ----------------------------------- */

/* A new jobq (jobs.h) running jobs with `run` on its worker thread, owned by
 * the backend (closed with it). */
jobs_backend *jobs_inproc_open(const jobq_config *cfg, job_run_fn run, void *run_ud, sd_err *err);
/* A backend over an existing queue that stays the caller's: close frees the
 * wrapper only (shutdown still shuts the queue down). */
jobs_backend *jobs_inproc_wrap(jobq *q, sd_err *err);

#endif
