/* test_jobs_backend.c — the jobs interface (src/jobs/backend.h).
 *
 * 1. The HTTP server over a fake backend that is not the in-process queue:
 *    its jobs live in a table the test drives by hand (the test is the
 *    "worker"), and its handles are copies of the id, as a remote backend's
 *    would be.  Async submit, status with queue position and progress, the
 *    result, cancel, a synchronous request woken through wait_change, a full
 *    queue's 503 + Retry-After, /health and /metrics from its statistics,
 *    shutdown at stop, and every handle the server took released; with
 *    API keys, the owner travels into the backend (another key: 404).
 * 2. The in-process backend through the interface alone: submit, find by
 *    id and owner, status, cancel, close. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "t.h"
#include "../../src/http/auth.h"
#include "../../src/http/server.h"

/* ---- the fake backend ------------------------------------------------------ */

#define FAKE_MAX 8

typedef struct fake_job {
    char id[JOBS_ID_MAX];
    int owner, listed, n, position, step, total;
    uint64_t seed;
    job_state state;
    job_result *result;
    char reason[128];          /* the last cancel's */
} fake_job;

typedef struct fake {
    jobs_backend base;
    pthread_mutex_t mu;
    fake_job jobs[FAKE_MAX];
    int njobs;
    unsigned gen;
    int handles;               /* held by callers: submit/find add one, release takes one */
    int full;                  /* submit answers EBUSY */
    int down;                  /* find cannot look (a remote queue unreachable) */
    int shut, closed;
    char shut_reason[128];
} fake;

/* A handle is a malloc'd copy of the id (nothing of the job's memory). */
typedef struct fake_handle { char id[JOBS_ID_MAX]; } fake_handle;

static fake *F(jobs_backend *b) { return (fake *)b; }

static fake_job *lookup(fake *f, const char *id)
{
    for (int i = 0; i < f->njobs; i++)
        if (!strcmp(f->jobs[i].id, id)) return &f->jobs[i];
    return NULL;
}

static job_handle *new_handle(fake *f, const char *id)
{
    fake_handle *h = malloc(sizeof *h);
    if (!h) return NULL;
    snprintf(h->id, sizeof h->id, "%s", id);
    f->handles++;
    return (job_handle *)h;
}

static void bump(fake *f) { f->gen++; }

static int fk_submit(jobs_backend *b, sd_request *in, int listed, job_handle **out, int *retry_after, sd_err *err)
{
    fake *f = F(b);
    *out = NULL;
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    if (f->full || f->shut || f->njobs == FAKE_MAX) {
        if (retry_after) *retry_after = 42;
        rc = sd_errf(err, SD_EBUSY, "", "the fake queue is full");
    } else {
        fake_job *j = &f->jobs[f->njobs];
        memset(j, 0, sizeof *j);
        snprintf(j->id, sizeof j->id, "fa4e%028d", ++f->njobs);
        j->owner = in->owner;
        j->listed = listed;
        j->n = in->gen.n;
        j->seed = in->gen.seed;
        j->state = JOB_QUEUED;
        j->position = 3;
        *out = new_handle(f, j->id);
        bump(f);
    }
    pthread_mutex_unlock(&f->mu);
    sd_request_free(in);
    return rc;
}

static job_handle *fk_find(jobs_backend *b, const char *id, int owner, sd_err *err)
{
    fake *f = F(b);
    if (f->down) {
        sd_errf(err, SD_EBUSY, "", "the fake queue is unreachable");
        return NULL;
    }
    pthread_mutex_lock(&f->mu);
    fake_job *j = lookup(f, id);
    job_handle *h = j && j->listed && j->owner == owner ? new_handle(f, id) : NULL;
    pthread_mutex_unlock(&f->mu);
    return h;
}

static const char *fk_id(jobs_backend *b, const job_handle *h) { return ((const fake_handle *)h)->id; }

static job_state fk_cancel(jobs_backend *b, job_handle *h, const char *reason)
{
    fake *f = F(b);
    pthread_mutex_lock(&f->mu);
    fake_job *j = lookup(f, ((fake_handle *)h)->id);
    snprintf(j->reason, sizeof j->reason, "%s", reason);
    if (!job_finished(j->state)) j->state = JOB_CANCELLED;
    bump(f);
    job_state s = j->state;
    pthread_mutex_unlock(&f->mu);
    return s;
}

static void fk_status(jobs_backend *b, job_handle *h, job_status *out)
{
    fake *f = F(b);
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&f->mu);
    fake_job *j = lookup(f, ((fake_handle *)h)->id);
    out->state = j->state;
    out->position = j->state == JOB_QUEUED ? j->position : -1;
    out->step = j->step;
    out->total = j->total;
    out->n = j->n;
    out->elapsed = 1.5;
    out->eta = j->state == JOB_RUNNING ? 9 : -1;
    if (j->state == JOB_SUCCEEDED && j->result) out->result = job_result_dup(j->result);
    if (j->state == JOB_CANCELLED) sd_errf(&out->err, SD_ECANCELLED, "", "%s", j->reason);
    pthread_mutex_unlock(&f->mu);
}

/* Polls, as a backend on another process would (no condition variable to share). */
static void fk_wait(jobs_backend *b, unsigned *gen, int timeout_ms)
{
    fake *f = F(b);
    for (int waited = 0;; waited += 5) {
        pthread_mutex_lock(&f->mu);
        int seen = f->gen != *gen;
        *gen = f->gen;
        pthread_mutex_unlock(&f->mu);
        if (seen || waited >= timeout_ms) return;
        usleep(5000);
    }
}

static void fk_stats(jobs_backend *b, jobs_stats *out)
{
    memset(out, 0, sizeof *out);
    out->depth = 7;
    out->running = 1;
    out->submitted = 1234;
}

static void fk_release(jobs_backend *b, job_handle *h)
{
    fake *f = F(b);
    pthread_mutex_lock(&f->mu);
    f->handles--;
    pthread_mutex_unlock(&f->mu);
    free(h);
}

static void fk_shutdown(jobs_backend *b, const char *reason)
{
    fake *f = F(b);
    pthread_mutex_lock(&f->mu);
    f->shut++;
    snprintf(f->shut_reason, sizeof f->shut_reason, "%s", reason);
    bump(f);
    pthread_mutex_unlock(&f->mu);
}

static void fk_close(jobs_backend *b) { F(b)->closed = 1; }

static const jobs_ops fake_ops = {
    .name = "fake", .submit = fk_submit, .find = fk_find, .id = fk_id, .cancel = fk_cancel,
    .status = fk_status, .wait_change = fk_wait, .stats = fk_stats, .release = fk_release,
    .shutdown = fk_shutdown, .close = fk_close,
};

/* The test as the fake's worker: job i runs, or succeeds with a result. */
static void fake_set(fake *f, int i, job_state s, int step, int total)
{
    pthread_mutex_lock(&f->mu);
    fake_job *j = &f->jobs[i];
    j->state = s;
    j->step = step;
    j->total = total;
    if (s == JOB_SUCCEEDED) {
        char url[160];
        snprintf(url, sizeof url, "http://x.invalid/%s", j->id);
        job_result_free(j->result);
        j->result = job_result_new(1);
        if (j->result) {
            j->result->images[0].key = strdup(j->id);
            j->result->images[0].url = strdup(url);
            j->result->images[0].mime = "image/png";
            j->result->images[0].seed = j->seed;
        }
    }
    bump(f);
    pthread_mutex_unlock(&f->mu);
}

static int fake_count(fake *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->njobs;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* ---- client ------------------------------------------------------------------ */

static int port;
static const char *bearer;     /* the API key sent, or NULL */

typedef struct answer {
    long status;
    char *body;
    size_t len;
    char head[2048];           /* the response's header lines, as received */
    size_t hlen;
} answer;

static size_t take_body(char *p, size_t sz, size_t n, void *ud)
{
    answer *a = ud;
    char *nb = realloc(a->body, a->len + sz * n + 1);
    if (!nb) return 0;
    memcpy(nb + a->len, p, sz * n);
    a->body = nb;
    a->len += sz * n;
    nb[a->len] = 0;
    return sz * n;
}

static size_t take_head(char *p, size_t sz, size_t n, void *ud)
{
    answer *a = ud;
    size_t k = sz * n < sizeof a->head - 1 - a->hlen ? sz * n : sizeof a->head - 1 - a->hlen;
    memcpy(a->head + a->hlen, p, k);
    a->hlen += k;
    a->head[a->hlen] = 0;
    return sz * n;
}

/* method + path; a form body when `form` is not NULL. */
static answer call(const char *method, const char *path, const char *form)
{
    answer a = {0};
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, take_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, take_head);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &a);
    if (form) curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    struct curl_slist *h = NULL;
    char auth[128];
    if (bearer) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        h = curl_slist_append(h, auth);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!a.body) a.body = calloc(1, 1);
    return a;
}

/* The string (or integer, printed) at `key` of the answer's JSON body. */
static const char *field(const answer *a, const char *key, char *buf, size_t cap)
{
    json_t *o = json_loads(a->body, 0, NULL);
    json_t *v = json_object_get(o, key);
    if (json_is_string(v)) snprintf(buf, cap, "%s", json_string_value(v));
    else if (json_is_integer(v)) snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else snprintf(buf, cap, "%s", v ? "?" : "(absent)");
    json_decref(o);
    return buf;
}

#define FIELD(a, key) field(&(a), key, (char[256]){0}, 256)

typedef struct { answer out; } bg_call;
static void *bg_sync(void *arg)
{
    ((bg_call *)arg)->out = call("POST", "/txt2img", "prompt=a+cat&num_inference_steps=5&seed=77");
    return NULL;
}

static http_server *serve_fake(fake *f, const auth_keys *keys)
{
    sd_err e;
    sd_err_clear(&e);
    server_config sc = {.bind_addr = "127.0.0.1", .http_threads = 2, .max_connections = 32, .conn_timeout = 30,
                        .max_body = 1 << 20, .sync_wait = 30, .retention = 60, .model_name = "fake",
                        .model_family = "sd1", .model_hash = "0000000000", .version = "test", .keys = keys};
    http_server *s = http_server_start_jobs(&sc, &f->base, &e);
    if (!s) fprintf(stderr, "start: %s\n", e.msg);
    else port = http_server_port(s);
    return s;
}

static void over_fake_backend(void)
{
    fake f = {.base = {&fake_ops}};
    pthread_mutex_init(&f.mu, NULL);
    http_server *s = serve_fake(&f, NULL);
    CHECK(s != NULL, "server starts over a fake job backend");
    if (!s) return;

    answer a = call("POST", "/jobs/txt2img", "prompt=a+cat&num_inference_steps=5&seed=42");
    char want[64];
    snprintf(want, sizeof want, "fa4e%028d", 1);
    CHECKF(a.status == 202 && !strcmp(FIELD(a, "id"), want) && strstr(a.head, want) && f.jobs[0].listed &&
               f.jobs[0].seed == 42 && f.jobs[0].owner == 0,
           "async submit: 202 with the backend's id (body and Location), listed, input handed over",
           "%ld %s", a.status, a.body);
    free(a.body);

    char path[96];
    snprintf(path, sizeof path, "/jobs/%s", want);
    a = call("GET", path, NULL);
    CHECKF(a.status == 200 && !strcmp(FIELD(a, "state"), "queued") && !strcmp(FIELD(a, "queue_position"), "3"),
           "status: queued at the backend's queue position", "%ld %s", a.status, a.body);
    free(a.body);

    fake_set(&f, 0, JOB_RUNNING, 2, 5);
    a = call("GET", path, NULL);
    CHECKF(!strcmp(FIELD(a, "state"), "running") && !strcmp(FIELD(a, "step"), "2") &&
               !strcmp(FIELD(a, "total_steps"), "5") && !strcmp(FIELD(a, "eta_seconds"), "?"),
           "status: running with the backend's progress (step 2 of 5, eta)", "%s", a.body);
    free(a.body);

    fake_set(&f, 0, JOB_SUCCEEDED, 5, 5);
    a = call("GET", path, NULL);
    CHECKF(!strcmp(FIELD(a, "status"), "success") && strstr(a.body, "http://x.invalid/fa4e") &&
               strstr(a.body, "\"seed\":42"),
           "status: succeeded with the backend's result merged in", "%s", a.body);
    free(a.body);

    a = call("GET", "/jobs/fa4e0000000000000000000000000099", NULL);
    CHECKF(a.status == 404 && !strcmp(FIELD(a, "field"), "id"), "an id the backend does not know: 404 naming id",
           "%ld %s", a.status, a.body);
    free(a.body);

    a = call("POST", "/jobs/txt2img", "prompt=a+dog&num_inference_steps=5&seed=43");
    free(a.body);
    snprintf(path, sizeof path, "/jobs/%s", f.jobs[1].id);
    a = call("DELETE", path, NULL);
    CHECKF(a.status == 200 && !strcmp(FIELD(a, "state"), "cancelled") &&
               !strcmp(f.jobs[1].reason, "cancelled by DELETE /jobs/{id}"),
           "DELETE reaches the backend's cancel with its reason", "%ld %s / %s", a.status, a.body, f.jobs[1].reason);
    free(a.body);

    /* synchronous: submitted unlisted, woken through wait_change when the "worker" finishes */
    bg_call bg = {0};
    pthread_t t;
    pthread_create(&t, NULL, bg_sync, &bg);
    for (int i = 0; i < 500 && fake_count(&f) < 3; i++) usleep(10000);
    int listed = f.jobs[2].listed;
    fake_set(&f, 2, JOB_SUCCEEDED, 5, 5);
    pthread_join(t, NULL);
    CHECKF(bg.out.status == 200 && strstr(bg.out.body, f.jobs[2].id) && strstr(bg.out.body, "\"seed\":77") && !listed,
           "sync request: unlisted job, answered with its result once the backend says succeeded", "%ld %s",
           bg.out.status, bg.out.body);
    free(bg.out.body);

    f.full = 1;
    a = call("POST", "/jobs/txt2img", "prompt=a+cow");
    CHECKF(a.status == 503 && strstr(a.head, "Retry-After: 42") && strstr(a.body, "fake queue is full"),
           "backend full: 503 with its Retry-After and message", "%ld %s %s", a.status, a.head, a.body);
    free(a.body);
    f.full = 0;

    f.down = 1;
    a = call("GET", path, NULL);
    CHECKF(a.status == 503 && strstr(a.body, "fake queue is unreachable"),
           "backend cannot look up a job: 503 with its message, not 404", "%ld %s", a.status, a.body);
    free(a.body);
    f.down = 0;

    a = call("GET", "/health", NULL);
    CHECKF(!strcmp(FIELD(a, "queue_depth"), "7") && !strcmp(FIELD(a, "running"), "1"),
           "/health reads the backend's statistics", "%s", a.body);
    free(a.body);
    a = call("GET", "/metrics", NULL);
    CHECKF(strstr(a.body, "sdserve_queue_depth 7\n") && strstr(a.body, "{outcome=\"submitted\"} 1234\n"),
           "/metrics reads the backend's statistics", "%.300s", a.body);
    free(a.body);

    http_server_stop(s);
    CHECKF(f.shut == 1 && !strcmp(f.shut_reason, "the server is shutting down") && !f.closed,
           "stop shuts the backend down once and leaves closing to its owner", "shut %d closed %d", f.shut,
           f.closed);
    CHECKF(f.handles == 0, "every handle the server took was released", "%d held", f.handles);
    for (int i = 0; i < f.njobs; i++) job_result_free(f.jobs[i].result);
    pthread_mutex_destroy(&f.mu);
}

#define KEY_A "key-a-0123456789abcdef"
#define KEY_B "key-b-0123456789abcdef"

/* With API keys, the owner travels with the job into the backend and back:
 * another key's find answers nothing, and the server says 404. */
static void owners_through_backend(void)
{
    sd_err e;
    sd_err_clear(&e);
    auth_keys *keys = auth_keys_load(KEY_A "," KEY_B, NULL, &e);
    fake f = {.base = {&fake_ops}};
    pthread_mutex_init(&f.mu, NULL);
    http_server *s = keys ? serve_fake(&f, keys) : NULL;
    CHECK(s != NULL, "server with two API keys starts over the fake backend");
    if (s) {
        bearer = KEY_B;
        answer a = call("POST", "/jobs/txt2img", "prompt=a+cat");
        CHECKF(a.status == 202 && f.njobs == 1 && f.jobs[0].owner == 2,
               "the job carries its owner (key 2) into the backend", "%ld owner %d", a.status, f.jobs[0].owner);
        free(a.body);
        char path[96];
        snprintf(path, sizeof path, "/jobs/%s", f.jobs[0].id);
        bearer = KEY_A;
        a = call("GET", path, NULL);
        CHECKF(a.status == 404, "another key: the backend finds nothing, 404", "%ld %s", a.status, a.body);
        free(a.body);
        bearer = KEY_B;
        a = call("GET", path, NULL);
        CHECKF(a.status == 200 && !strcmp(FIELD(a, "state"), "queued"), "its own key: found", "%ld %s", a.status,
               a.body);
        free(a.body);
        bearer = NULL;
        http_server_stop(s);
        CHECKF(f.handles == 0, "owners: every handle released", "%d held", f.handles);
    }
    auth_keys_free(keys);
    pthread_mutex_destroy(&f.mu);
}

/* ---- the in-process backend through the interface ------------------------------ */

static int quick_run(void *ud, const sd_request *in, sd_progress_fn progress, void *pud, job_result **result,
                     sd_err *err)
{
    for (int i = 1; i <= in->gen.steps; i++)
        if (progress(pud, i, in->gen.steps)) return sd_errf(err, SD_ECANCELLED, "", "cancelled");
    *result = job_result_new(1);
    if (*result) (*result)->images[0].seed = in->gen.seed;
    return *result ? 0 : sd_errf(err, SD_ENOMEM, "", "out of memory");
}

static void inproc_backend(void)
{
    sd_err e;
    sd_err_clear(&e);
    jobq_config qc = {.queue_size = 4, .retention = 60, .max_retained = 10};
    jobs_backend *b = jobs_inproc_open(&qc, quick_run, NULL, &e);
    CHECK(b && !strcmp(jobs_backend_name(b), "in-process"), "in-process backend opens");
    if (!b) return;
    sd_request in = {.gen = {.prompt = strdup("p"), .negative = strdup(""), .seed = 9, .n = 1, .width = 64,
                             .height = 64, .steps = 3, .cfg = 7}, .owner = 2};
    job_handle *h = NULL;
    CHECK(!jobs_submit(b, &in, 1, &h, NULL, &e) && h && !in.gen.prompt, "submit: a handle, input taken");
    const char *id = jobs_job_id(b, h);
    size_t hex = strspn(id, "0123456789abcdef");
    CHECKF(hex == 32 && !id[32], "id: 32 lowercase hex characters", "%s", id);
    unsigned gen = 0;
    job_status st;
    for (int i = 0; i < 100; i++) {
        jobs_status(b, h, &st);
        if (job_finished(st.state)) break;
        job_result_free(st.result);
        jobs_wait_change(b, &gen, 100);
    }
    CHECKF(st.state == JOB_SUCCEEDED && st.result && st.result->n == 1 && st.result->images[0].seed == 9 && st.step == 3 &&
               st.total == 3,
           "status: succeeded with result and steps", "state %d", st.state);
    job_result_free(st.result);
    job_handle *f = jobs_find(b, id, 2, &e);
    CHECK(f && !strcmp(jobs_job_id(b, f), id), "find by id for its owner");
    jobs_release(b, f);
    CHECK(jobs_find(b, id, 1, &e) == NULL && jobs_find(b, "0123", 2, &e) == NULL && e.code == SD_OK,
          "find: another owner or an unknown id is NULL, with no error");
    CHECK(jobs_cancel(b, h, "late") == JOB_SUCCEEDED, "cancel after the end changes nothing");
    jobs_stats ss;
    jobs_get_stats(b, &ss);
    CHECKF(ss.submitted == 1 && ss.succeeded == 1 && ss.listed == 1, "stats through the interface",
           "%llu %llu %d", (unsigned long long)ss.submitted, (unsigned long long)ss.succeeded, ss.listed);
    jobs_shutdown(b, "bye");
    in = (sd_request){.gen = {.prompt = strdup("p"), .negative = strdup(""), .n = 1, .steps = 1}};
    int retry = 0;
    job_handle *g = NULL;
    CHECK(jobs_submit(b, &in, 1, &g, &retry, &e) == -1 && e.code == SD_EBUSY && !g && retry >= 1,
          "after shutdown: EBUSY with a retry");
    jobs_release(b, h);
    jobs_release(b, NULL);
    jobs_close(b);
    jobs_close(NULL);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    over_fake_backend();
    owners_through_backend();
    inproc_backend();
    curl_global_cleanup();
    return t_done();
}
