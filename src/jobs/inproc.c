/* inproc.c — the in-process job backend: backend.h's interface over the
 * bounded FIFO and its worker thread in this process (jobs.h, queue.c).
 * A handle is the queue's own reference-counted `job`. */
#include "backend.h"

#include <stdlib.h>

typedef struct inproc {
    jobs_backend base;
    jobq *q;
    int owns;                /* 1: the queue is destroyed with the backend */
} inproc;

static jobq *Q(jobs_backend *b) { return ((inproc *)b)->q; }
static job *J(job_handle *h) { return (job *)h; }

static int ip_submit(jobs_backend *b, sd_request *in, int listed, job_handle **out, int *retry_after, sd_err *err)
{
    job *j = NULL;
    int rc = jobq_submit(Q(b), in, listed, &j, retry_after, err);
    *out = (job_handle *)j;
    return rc;
}

static job_handle *ip_find(jobs_backend *b, const char *id, int owner, sd_err *err)
{
    (void)err;   /* in process: nothing can fail to answer */
    return (job_handle *)jobq_find_owned(Q(b), id, owner);
}

static const char *ip_id(jobs_backend *b, const job_handle *h)
{
    (void)b;
    return job_id((const job *)h);
}

static job_state ip_cancel(jobs_backend *b, job_handle *h, const char *reason)
{
    return jobq_cancel(Q(b), J(h), reason);
}

static void ip_status(jobs_backend *b, job_handle *h, job_status *out) { jobq_status(Q(b), J(h), out); }
static job_state ip_state(jobs_backend *b, job_handle *h) { return jobq_state(Q(b), J(h)); }
static void ip_wait(jobs_backend *b, unsigned *gen, int timeout_ms) { jobq_wait_change(Q(b), gen, timeout_ms); }
static void ip_stats(jobs_backend *b, jobs_stats *out) { jobq_get_stats(Q(b), out); }

static int ip_preview(jobs_backend *b, job_handle *h, job_preview *out, sd_err *err)
{
    return jobq_preview(Q(b), J(h), out, err);
}

static void ip_release(jobs_backend *b, job_handle *h)
{
    (void)b;
    job_release(J(h));
}

static void ip_shutdown(jobs_backend *b, const char *reason) { jobq_shutdown(Q(b), reason); }

static void ip_close(jobs_backend *b)
{
    inproc *p = (inproc *)b;
    if (p->owns) jobq_destroy(p->q, NULL);
    free(p);
}

static const jobs_ops inproc_ops = {
    .name = "in-process",
    .submit = ip_submit,
    .find = ip_find,
    .id = ip_id,
    .cancel = ip_cancel,
    .status = ip_status,
    .state = ip_state,
    .wait_change = ip_wait,
    .stats = ip_stats,
    .release = ip_release,
    .shutdown = ip_shutdown,
    .close = ip_close,
    .preview = ip_preview,
};

static jobs_backend *wrap(jobq *q, int owns, sd_err *err)
{
    inproc *p = calloc(1, sizeof *p);
    if (!p) {
        sd_errf(err, SD_ENOMEM, "", "out of memory creating the job backend");
        return NULL;
    }
    p->base.ops = &inproc_ops;
    p->q = q;
    p->owns = owns;
    return &p->base;
}

jobs_backend *jobs_inproc_wrap(jobq *q, sd_err *err) { return wrap(q, 0, err); }

jobs_backend *jobs_inproc_open(const jobq_config *cfg, job_run_fn run, void *run_ud, sd_err *err)
{
    jobq *q = jobq_create(cfg, run, run_ud, err);
    if (!q) return NULL;
    jobs_backend *b = wrap(q, 1, err);
    if (!b) jobq_destroy(q, NULL);
    return b;
}
