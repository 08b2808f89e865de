/* backend.c — the jobs interface's entry points: each forwards to the
 * backend's vtable (backend.h). */
#include "backend.h"

#include <stddef.h>
#include <string.h>

int jobs_submit(jobs_backend *b, sd_request *in, int listed, job_handle **out, int *retry_after, sd_err *err)
{
    return b->ops->submit(b, in, listed, out, retry_after, err);
}

job_handle *jobs_find(jobs_backend *b, const char *id, int owner, sd_err *err)
{
    return b->ops->find(b, id, owner, err);
}

const char *jobs_job_id(jobs_backend *b, const job_handle *h) { return b->ops->id(b, h); }

job_state jobs_cancel(jobs_backend *b, job_handle *h, const char *reason) { return b->ops->cancel(b, h, reason); }

void jobs_status(jobs_backend *b, job_handle *h, job_status *out) { b->ops->status(b, h, out); }

job_state jobs_state(jobs_backend *b, job_handle *h)
{
    if (b->ops->state) return b->ops->state(b, h);
    job_status st;
    b->ops->status(b, h, &st);
    job_result_free(st.result);
    return st.state;
}

void jobs_wait_change(jobs_backend *b, unsigned *gen, int timeout_ms) { b->ops->wait_change(b, gen, timeout_ms); }

void jobs_get_stats(jobs_backend *b, jobs_stats *out) { b->ops->stats(b, out); }

void jobs_release(jobs_backend *b, job_handle *h)
{
    if (h) b->ops->release(b, h);
}

void jobs_shutdown(jobs_backend *b, const char *reason) { b->ops->shutdown(b, reason); }

void jobs_close(jobs_backend *b)
{
    if (b) b->ops->close(b);
}

const char *jobs_backend_name(const jobs_backend *b) { return b ? b->ops->name : "none"; }

char *jobs_workers_json(jobs_backend *b) { return b && b->ops->workers_json ? b->ops->workers_json(b) : NULL; }

int jobs_preview(jobs_backend *b, job_handle *h, job_preview *out, sd_err *err)
{
    memset(out, 0, sizeof *out);
    return b->ops->preview ? b->ops->preview(b, h, out, err) : 0;
}
