/* api_jobs.c — the async jobs API dialect: POST /jobs/txt2img and
 * /jobs/img2img take the seed API's bodies and answer 202 at once
 * ({"status":"pending","id","state":"queued","status_url"} + Location);
 * GET /jobs/{id} answers the job's status, with its images once it
 * succeeded, rendered from the structured result; DELETE /jobs/{id}
 * cancels; GET /jobs/{id}/preview answers the running job's latest
 * preview (a PNG; docs/SERVER.md "Previews").  Another key's job is
 * answered as an unknown id. */
#include "server_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* elapsed_seconds is rounded to milliseconds, eta_seconds (an estimate) to
 * tenths of a second. */
#define JOBS_ELAPSED_UNIT 0.001
#define JOBS_ETA_UNIT 0.1

static json_t *job_created_body(http_server *s, const char *id)
{
    char url[1024];
    snprintf(url, sizeof url, "%s/jobs/%s", s->public_url, id);
    /* the same vocabulary as GET /jobs/{id} (reply.h): status pending, state queued */
    return json_pack("{s:s, s:s, s:s, s:s}", "status", job_status_word(JOB_QUEUED), "id", id, "state",
                     job_state_name(JOB_QUEUED), "status_url", url);
}

enum MHD_Result jobs_create(http_server *s, req *r, struct MHD_Connection *c)
{
    int retry;
    if (seed_submit(s, r, 1, &retry)) return reply_error(c, &r->ri, &r->err, retry, NULL);
    char loc[1024];
    snprintf(loc, sizeof loc, "%s/jobs/%s", s->public_url, jobs_job_id(s->q, r->job));
    return reply_json_utf8(c, &r->ri, 202, job_created_body(s, jobs_job_id(s->q, r->job)), MHD_HTTP_HEADER_LOCATION, loc);
}

/* Seconds rounded to a multiple of `unit` (printed short: bodies are dumped
 * with 15 significant digits, so 1.234 stays "1.234"). */
static json_t *json_seconds(double s, double unit)
{
    return json_real(round(s / unit) * unit);
}

/* GET /jobs/{id} body from a status snapshot: the images first when it
 * succeeded, then the job's status (reply.h's vocabulary). */
static json_t *job_status_body(const char *id, const job_status *st, const char *public_url, int cancel_requested)
{
    char url[1024];
    snprintf(url, sizeof url, "%s/jobs/%s", public_url, id);
    json_t *o = json_object();
    if (!o) return NULL;
    if (st->state == JOB_SUCCEEDED && st->result) json_object_set_new(o, "images", seed_images(st->result));
    json_object_set_new(o, "status", json_string(job_status_word(st->state)));
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "state", json_string(job_state_name(st->state)));
    json_object_set_new(o, "status_url", json_string(url));
    json_object_set_new(o, "queue_position", st->position >= 0 ? json_integer(st->position) : json_null());
    json_object_set_new(o, "step", json_integer(st->step));
    json_object_set_new(o, "total_steps", json_integer(st->total));
    json_object_set_new(o, "num_outputs", json_integer(st->n));
    if (st->width > 0 && st->height > 0) {   /* the size generated (no width/height asked: the model's) */
        json_object_set_new(o, "width", json_integer(st->width));
        json_object_set_new(o, "height", json_integer(st->height));
    }
    json_object_set_new(o, "elapsed_seconds", json_seconds(st->elapsed, JOBS_ELAPSED_UNIT));
    json_object_set_new(o, "eta_seconds", st->eta >= 0 ? json_seconds(st->eta, JOBS_ETA_UNIT) : json_null());
    if (st->state == JOB_RUNNING) {   /* live previews: where its picture so far is (404 until one is made) */
        char purl[1100];
        snprintf(purl, sizeof purl, "%s/preview", url);
        json_object_set_new(o, "preview_url", json_string(purl));
    }
    if (cancel_requested) json_object_set_new(o, "cancel_requested", json_true());
    if (st->state == JOB_FAILED || st->state == JOB_CANCELLED) {
        sd_errcode code = st->err.code == SD_OK ? SD_EINTERNAL : st->err.code;
        json_object_set_new(o, "code", json_string(sd_err_code_name(code)));
        json_object_set_new(o, "field", st->err.field[0] ? json_string(params_field_name(st->err.field)) : json_null());
        json_object_set_new(o, "message", json_string(st->err.msg[0] ? st->err.msg : "unknown error"));
    }
    return o;
}

/* A job id: 32 lower-case hex digits. */
static int is_job_id(const char *s)
{
    size_t n = 0;
    while (s[n] && isxdigit((unsigned char)s[n]) && !isupper((unsigned char)s[n])) n++;
    return n == 32 && s[n] == 0;
}

/* The caller's job by id, or NULL with the answer queued in *res: 404
 * naming id (another key's job is answered exactly as an unknown id: its
 * existence does not leak), or the backend's error. */
static job_handle *find_job(http_server *s, req *r, struct MHD_Connection *c, const char *id, enum MHD_Result *res)
{
    job_handle *j = is_job_id(id) ? jobs_find(s->q, id, r->owner, &r->err) : NULL;
    if (!j && r->err.code) *res = reply_error(c, &r->ri, &r->err, 0, NULL);   /* the backend could not look */
    else if (!j)
        *res = reply_errorf(c, &r->ri, SD_ENOTFOUND, "id",
                            "no job with id '%.64s' (finished jobs are forgotten after %g s)", id, s->cfg.retention);
    return j;
}

/* GET (status) and DELETE (cancel, then status) /jobs/{id}. */
enum MHD_Result jobs_get(http_server *s, req *r, struct MHD_Connection *c)
{
    const char *id = r->url + strlen("/jobs/");
    enum MHD_Result res;
    job_handle *j = find_job(s, r, c, id, &res);
    if (!j) return res;
    int cancel = !strcmp(r->verb, "DELETE");
    if (cancel) jobs_cancel(s->q, j, "cancelled by DELETE /jobs/{id}");
    job_status st;
    jobs_status(s->q, j, &st);
    json_t *b = job_status_body(jobs_job_id(s->q, j), &st, s->public_url, cancel && st.state == JOB_RUNNING);
    job_result_free(st.result);
    jobs_release(s->q, j);
    return reply_json(c, &r->ri, 200, b);
}

/* GET /jobs/{id}/preview: 200 image/png with X-Preview-Step "step/total"
 * while the job runs and has one, else 204 (queued, none made yet, previews
 * off, or finished: GET /jobs/{id} tells which; a browser's console shows no
 * error for it); an unknown job (or another key's) is 404 naming id as
 * GET /jobs/{id}. */
enum MHD_Result jobs_preview_get(http_server *s, req *r, struct MHD_Connection *c)
{
    const char *start = r->url + strlen("/jobs/");
    char id[JOBS_ID_MAX + 1];
    snprintf(id, sizeof id, "%.*s", (int)strcspn(start, "/"), start);
    enum MHD_Result res;
    job_handle *j = find_job(s, r, c, id, &res);
    if (!j) return res;
    job_preview pv;
    int rc = jobs_preview(s->q, j, &pv, &r->err);
    jobs_release(s->q, j);
    if (rc) return reply_error(c, &r->ri, &r->err, 0, NULL);
    if (!pv.png)   /* none now: 204, no content, so no Content-Type either */
        return reply_raw(c, &r->ri, 204, NULL, NULL, 0, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store", NULL);
    char step[48];
    snprintf(step, sizeof step, "%d/%d", pv.step, pv.total);
    return reply_raw(c, &r->ri, 200, "image/png", (char *)pv.png, pv.len, "X-Preview-Step", step,
                     MHD_HTTP_HEADER_CACHE_CONTROL, "no-store", NULL);
}
