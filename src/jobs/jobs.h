/* jobs.h — the bounded FIFO of generation jobs and the one worker thread
 * that owns the engine.
 *
 * HTTP threads only submit, look up, cancel and read snapshots; the worker
 * takes jobs in order and runs them through a job_run_fn (generate.c in the
 * server, a fake in unit tests), which reports progress and sees the cancel
 * flag between sampler steps.  Finished jobs stay for `retention` seconds so
 * GET /jobs/{id} can return their result, then are forgotten.  Jobs are
 * reference counted: a waiting connection and the table may both hold one.
 * A job carries its owner (the API key that submitted it); lookups for
 * another owner find nothing.  This module knows nothing of HTTP. */
#ifndef SD_JOBS_H
#define SD_JOBS_H

#include <stdint.h>

#include "../base/err.h"
#include "../engine/sd.h"
#include "request.h"

typedef enum { JOB_QUEUED = 0, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED } job_state;
const char *job_state_name(job_state s);

/* What to generate is an sd_request (request.h), owned by the job once
 * submitted (sd_request_free). */

/* One image of a succeeded job: where it is stored, what it is, its seed. */
typedef struct job_image {
    char *key;               /* storage object name, "<hex key>.<ext>" */
    char *url;               /* where a client fetches it (storage_url) */
    const char *mime;        /* "image/png", ... (static) */
    uint64_t seed;           /* the seed that gives exactly this image alone */
    char *parameters;        /* r3more: the A1111 "parameters" text written into the file
                                (img_a1111_parameters), which the A1111 dialect answers as
                                info.infotexts[i]; NULL = unknown */
} job_image;

/* What a succeeded job produced, in no dialect's shape: each HTTP dialect
 * renders it (the seed API as {"images":[...],"status":"success"}).  The
 * generation info is what the images' A1111 "parameters" say. */
typedef struct job_result {
    int n;
    job_image *images;       /* n of them */
    char *prompt, *negative;
    int width, height, steps;
    float cfg;
    float denoise;           /* img2img strength; < 0 for txt2img */
    const char *sampler;     /* as the parameters text names it (req_sampler_label; static) */
    char *model_name, *model_hash;   /* NULL = unknown */
} job_result;
/* An empty result for n images (all fields zero, denoise -1); NULL on OOM. */
job_result *job_result_new(int n);
/* A deep copy; NULL on OOM or when r is NULL. */
job_result *job_result_dup(const job_result *r);
void job_result_free(job_result *r);

/* Runs one job: progress(ud, step, total) after each step (non-zero return =
 * stop); on success *result is the job's result (taken by the queue). */
typedef int (*job_run_fn)(void *ud, const sd_request *in, sd_progress_fn progress, void *progress_ud,
                          job_result **result, sd_err *err);

typedef struct job job;
typedef struct jobq jobq;

typedef struct jobq_config {
    int queue_size;          /* queued jobs at most (the running one not counted) */
    double job_timeout;      /* seconds a job may run; 0 = no limit */
    double retention;        /* seconds a finished job stays visible */
    int max_retained;        /* finished jobs kept at most (oldest dropped first) */
    int worker_nice;         /* added to the worker thread's nice value (0..19): the engine's
                                OpenMP threads, started from it, inherit it, so HTTP threads
                                keep the CPU they need while a job runs */
} jobq_config;

jobq *jobq_create(const jobq_config *cfg, job_run_fn run, void *run_ud, sd_err *err);
/* Cancels everything still queued or running (reason given in the job's
 * error), waits for the worker, frees the queue.  Jobs still referenced stay
 * valid until released. */
void jobq_destroy(jobq *q, const char *reason);
/* Refuses new submissions from now on (shutdown), cancelling queued jobs and
 * the running one with `reason`. */
void jobq_shutdown(jobq *q, const char *reason);

/* Takes ownership of *in (zeroed on return either way).  listed=1 makes the
 * job findable by id (async API); the caller gets one reference in *out.
 * SD_EBUSY when the queue is full, with the suggested retry in seconds. */
int jobq_submit(jobq *q, sd_request *in, int listed, job **out, int *retry_after, sd_err *err);
/* Reference to a listed job by id, or NULL. */
job *jobq_find(jobq *q, const char *id);
/* The same, but NULL as well when the job belongs to another owner
 * (sd_request.owner): a client cannot tell another's job from no job. */
job *jobq_find_owned(jobq *q, const char *id, int owner);
void job_release(job *j);
const char *job_id(const job *j);
/* Cancels: a queued job leaves the queue at once, a running one stops at the
 * next step.  Returns the state after the call. */
job_state jobq_cancel(jobq *q, job *j, const char *reason);

typedef struct job_status {
    job_state state;
    int position;            /* queued: jobs ahead of it; else -1 */
    int step, total;         /* sampler steps done / to do (0/0 before start) */
    int n;                   /* images */
    int width, height;       /* output size (txt2img: resolved, the model's native size when not
                                asked; img2img: the init image's); 0 = unknown */
    double elapsed;          /* seconds since submission */
    double run_seconds;      /* seconds running (0 while queued) */
    double eta;              /* seconds until done, estimated; < 0 unknown */
    job_result *result;      /* succeeded: a copy (job_result_free) */
    sd_err err;              /* failed / cancelled: why */
} job_status;
void jobq_status(jobq *q, job *j, job_status *out);   /* job_result_free(out->result) */

/* Work units of a request's first `step` progress steps (all of it for
 * step >= its total): steps x images x megapixels, which is what a step
 * costs scales with — with hires fix, pass 2's steps (one image at a time)
 * at their own size, so a 2x second pass counts 4x a first-pass step.
 * ETAs and Retry-After are units x the queue's seconds per unit. */
double job_units_upto(const sd_request *in, int step);
/* Only the state: what a waiting connection polls (no copy of the result). */
job_state jobq_state(jobq *q, job *j);
int job_finished(job_state s);

/* Live previews (issue 18 item 2): the running job's latest preview, an
 * encoded PNG of `len` bytes after sampler step `step` of `total`. */
typedef struct job_preview {
    uint8_t *png;            /* malloc'd; NULL = none */
    size_t len;
    int step, total;
} job_preview;
void job_preview_free(job_preview *p);   /* frees png and zeroes; NULL-safe */
/* A copy of the job's latest preview into *out (out->png NULL when there is
 * none: not running, none made yet, previews off).  Only a running job has
 * one: the queue keeps one per job and drops it when the job ends.  0, or
 * -1 (SD_ENOMEM) with err. */
int jobq_preview(jobq *q, job *j, job_preview *out, sd_err *err);

/* Blocks until some job changes state or timeout_ms passes; *gen is the
 * change counter last seen (updated). */
void jobq_wait_change(jobq *q, unsigned *gen, int timeout_ms);

typedef struct jobq_stats {
    int depth;               /* queued */
    int running;             /* 0 or 1 */
    int listed;              /* jobs in the id table */
    uint64_t submitted, succeeded, failed, cancelled, rejected;
    uint64_t images;         /* images generated */
    double step_seconds_sum; uint64_t steps;        /* seconds per step = sum / steps */
    /* job latency (submission to finish, succeeded jobs) histogram */
    int nbuckets;
    const double *bucket_le;
    uint64_t bucket_count[16];
    double latency_sum; uint64_t latency_count;
    /* a shared queue's (jobs/redis.c); 0 for the in-process one */
    int shared_queue;        /* 1: the counters are the whole cluster's (a shared queue) */
    int workers;             /* worker processes seen alive */
    int queue_down;          /* 1: the queue could not be reached just now */
} jobq_stats;
void jobq_get_stats(jobq *q, jobq_stats *out);

#endif
