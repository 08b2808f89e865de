/* test_server.c — the HTTP layer (src/http/) in process, over a job
 * queue whose runner is a fake (no engine): the route table (GET /'s list,
 * 405 + Allow per route, metrics labels), answers and error shapes, async
 * jobs and cancel, 503 + Retry-After when the queue is full, a client that
 * hangs up leaves the queue, the synchronous wait limit, 405/404/415/413,
 * health and metrics.  Driven with libcurl over 127.0.0.1.
 *
 * `test_server --serve PORT` runs the same fake server until interrupted
 * (handy for trying requests by hand; never used by the suite). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "gate.h"
#include "t.h"
#include "../../src/http/server.h"

/* ---- fake runner: holds at the gate (gate.h), then "generates" in steps of 1 ms ---- */
static int fake_run(void *ud, const sd_request *in, sd_progress_fn progress, void *pud, job_result **result,
                    sd_err *err)
{
    gate_enter();
    if (gate_steps(in->gen.steps, 1000, progress, pud)) return sd_errf(err, SD_ECANCELLED, "", "cancelled");
    /* seed 4242: the engine refuses, naming its own concept ("steps") */
    if (in->gen.seed == 4242) return sd_errf(err, SD_EINVAL, "steps", "steps refused by the engine");
    job_result *res = job_result_new(in->gen.n);
    if (!res) return sd_errf(err, SD_ENOMEM, "", "out of memory");
    for (int i = 0; i < in->gen.n; i++) {
        char url[128];
        snprintf(url, sizeof url, "http://example.invalid/images/%016llx", (unsigned long long)(in->gen.seed + i));
        res->images[i].url = strdup(url);
        res->images[i].key = strdup(url + 30);
        res->images[i].mime = "image/png";
        res->images[i].seed = in->gen.seed + (uint64_t)i;
    }
    *result = res;
    return 0;
}

/* ---- client ------------------------------------------------------------- */
static int port;

typedef struct resp {
    long status;
    char *body;
    size_t len;
    char retry_after[32], allow[64], location[256];
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    char *nb = realloc(r->body, r->len + sz * n + 1);
    if (!nb) return 0;
    r->body = nb;
    memcpy(r->body + r->len, p, sz * n);
    r->len += sz * n;
    r->body[r->len] = 0;
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t len = sz * n;
    struct { const char *name; char *dst; size_t cap; } hs[] = {
        {"retry-after:", r->retry_after, sizeof r->retry_after},
        {"allow:", r->allow, sizeof r->allow},
        {"location:", r->location, sizeof r->location},
    };
    for (size_t i = 0; i < 3; i++) {
        size_t hl = strlen(hs[i].name);
        if (len > hl && !strncasecmp(p, hs[i].name, hl)) {
            size_t vl = len - hl;
            const char *v = p + hl;
            while (vl && (*v == ' ')) { v++; vl--; }
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n')) vl--;
            snprintf(hs[i].dst, hs[i].cap, "%.*s", (int)vl, v);
        }
    }
    return len;
}

/* One request; ctype NULL = no body.  timeout_ms > 0 aborts the transfer (a client giving up). */
static resp req(const char *method, const char *path, const char *ctype, const char *body, long timeout_ms)
{
    resp r;
    memset(&r, 0, sizeof r);
    CURL *c = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (timeout_ms > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    struct curl_slist *h = NULL;
    if (ctype) {
        char line[256];
        snprintf(line, sizeof line, "Content-Type: %s", ctype);
        h = curl_slist_append(h, line);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r.body) r.body = calloc(1, 1);
    return r;
}

static json_t *jbody(const resp *r) { return json_loads(r->body, 0, NULL); }

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* An error answer: status, "status":"error", field, message fragment. */
static void expect_error(const char *name, resp r, long status, const char *field, const char *frag)
{
    json_t *j = jbody(&r);
    int ok = r.status == status && j && !strcmp(jstr(j, "status"), "error") && strstr(jstr(j, "message"), frag) &&
             (!field || !strcmp(jstr(j, "field"), field));
    CHECKF(ok, name, "status %ld body %s", r.status, r.body);
    json_decref(j);
    free(r.body);
}

/* ---- answer shape: one final newline, rounded seconds, one status vocabulary ---- */

/* The body ends with exactly one "\n" (a curl's shell prompt on its own line). */
static int one_newline(const resp *r)
{
    return r->len >= 2 && r->body[r->len - 1] == '\n' && r->body[r->len - 2] != '\n';
}

/* The number printed after "key": has at most `n` decimals (or is null / absent). */
static int decimals_at_most(const char *body, const char *key, int n)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(body, pat);
    if (!p) return 1;
    p += strlen(pat);
    if (!strncmp(p, "null", 4)) return 1;
    size_t num = strspn(p, "-0123456789.eE+");
    const char *dot = memchr(p, '.', num);
    if (memchr(p, 'e', num) || memchr(p, 'E', num)) return 0;
    return !dot || (int)(num - (size_t)(dot - p) - 1) <= n;
}

static void expect_shape(const char *name, const char *method, const char *path)
{
    resp r = req(method, path, NULL, NULL, 0);
    json_t *j = jbody(&r);
    CHECKF(j && one_newline(&r), name, "%ld %.300s", r.status, r.body);
    json_decref(j);
    free(r.body);
}

/* The route table (src/http/routes.c): GET /'s list, each route's 405 with
 * its Allow header, and a metrics label per route. */
static void route_table_checks(void)
{
    static const char *listed[] = {"POST /txt2img", "POST /img2img", "POST /jobs/txt2img", "POST /jobs/img2img",
                                   /* issue 18: live previews */
                                   "GET /jobs/{id}/preview",
                                   "GET /jobs/{id}", "DELETE /jobs/{id}", "GET /images/{name}", "GET /health",
                                   "GET /metrics", "GET /samplers",
                                   /* issue 14 item 4 */
                                   "GET /embeddings", "GET /loras",
                                   /* issue 16 item 3 */
                                   "GET /models",
                                   /* issue 16: the OpenAI dialect */
                                   "POST /v1/images/generations", "POST /v1/images/edits", "GET /v1/models",
                                   "GET /v1/models/{id}",

                                   /* issue 16: the A1111 dialect */
                                   "POST /sdapi/v1/txt2img", "POST /sdapi/v1/img2img", "GET /sdapi/v1/options",
                                   "POST /sdapi/v1/options", "GET /sdapi/v1/progress", "GET /sdapi/v1/{other}",
                                   "POST /sdapi/v1/{other}"};
    resp r = req("GET", "/", NULL, NULL, 0);
    json_t *j = jbody(&r);
    json_t *eps = json_object_get(j, "endpoints");
    int same = json_array_size(eps) == sizeof listed / sizeof listed[0];
    for (size_t i = 0; same && i < json_array_size(eps); i++)
        same = !strcmp(json_string_value(json_array_get(eps, i)) ? json_string_value(json_array_get(eps, i)) : "",
                       listed[i]);
    CHECKF(r.status == 200 && same, "GET / lists every listed route and method, in table order", "%s", r.body);
    json_decref(j);
    free(r.body);
    static const struct { const char *method, *path, *allow, *label; } wrong[] = {
        {"PUT", "/", "GET, HEAD", "/"},
        {"GET", "/img2img", "POST", "/img2img"},
        {"DELETE", "/jobs/txt2img", "POST", "/jobs/txt2img"},
        {"GET", "/jobs/img2img", "POST", "/jobs/img2img"},
        {"PUT", "/jobs/0123456789abcdef0123456789abcdef", "GET, HEAD, DELETE", "/jobs/{id}"},
        {"DELETE", "/images/0123.png", "GET, HEAD", "/images/{name}"},
        {"POST", "/health", "GET, HEAD", "/health"},
        {"DELETE", "/metrics", "GET, HEAD", "/metrics"},
        {"PUT", "/openapi.json", "GET, HEAD", "/openapi.json"},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        r = req(wrong[i].method, wrong[i].path, NULL, NULL, 0);
        char name[160];
        snprintf(name, sizeof name, "%s %s -> 405, Allow: %s", wrong[i].method, wrong[i].path, wrong[i].allow);
        CHECKF(r.status == 405 && !strcmp(r.allow, wrong[i].allow), name, "%ld allow '%s'", r.status, r.allow);
        free(r.body);
    }
    /* a request is counted when libmicrohttpd reports it complete, which
     * may come just after the client has its answer: read until all are in */
    int labelled = 0;
    for (int tries = 0; tries < 200 && !labelled; tries++) {
        if (tries) {
            free(r.body);
            usleep(10000);
        }
        r = req("GET", "/metrics", NULL, NULL, 0);
        labelled = r.status == 200 && strstr(r.body, "{endpoint=\"other\",status=\"404\"}");
        for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
            char line[160];
            snprintf(line, sizeof line, "sdserve_http_requests_total{endpoint=\"%s\",status=\"405\"}",
                     wrong[i].label);
            if (!strstr(r.body, line)) labelled = 0;
        }
    }
    CHECKF(labelled, "metrics: each route's own label, unknown paths as other", "%s", r.body);
    free(r.body);
}

/* Every JSON answer ends with a newline; a job's status says pending until it ends. */
static void answer_shape_checks(const char *done_path, const char *queued_path)
{
    expect_shape("GET / ends with a newline", "GET", "/");
    expect_shape("GET /health ends with a newline", "GET", "/health");
    expect_shape("GET /openapi.json ends with a newline", "GET", "/openapi.json");
    expect_shape("404 error ends with a newline", "GET", "/nope");
    expect_shape("405 error ends with a newline", "GET", "/txt2img");
    expect_shape("succeeded job status ends with a newline", "GET", done_path);
    resp r = req("GET", done_path, NULL, NULL, 0);
    CHECKF(decimals_at_most(r.body, "elapsed_seconds", 3) && decimals_at_most(r.body, "eta_seconds", 1) &&
               strstr(r.body, "\"elapsed_seconds\":"),
           "succeeded job: elapsed_seconds to 3 decimals, eta_seconds to 1", "%s", r.body);
    free(r.body);
    r = req("GET", queued_path, NULL, NULL, 0);
    json_t *j = jbody(&r);
    CHECKF(one_newline(&r) && !strcmp(jstr(j, "state"), "queued") && !strcmp(jstr(j, "status"), "pending") &&
               decimals_at_most(r.body, "elapsed_seconds", 3) && decimals_at_most(r.body, "eta_seconds", 1),
           "queued job: status pending, state queued, rounded seconds, final newline", "%s", r.body);
    json_decref(j);
    free(r.body);
}

typedef struct { const char *body; resp out; } bg_req;
static void *bg_post(void *arg)
{
    bg_req *b = arg;
    b->out = req("POST", "/txt2img", "application/x-www-form-urlencoded", b->body, 0);
    return NULL;
}

static jobq *make_queue(int size)
{
    sd_err e;
    sd_err_clear(&e);
    jobq_config qc = {.queue_size = size, .job_timeout = 0, .retention = 60, .max_retained = 100};
    return jobq_create(&qc, fake_run, NULL, &e);
}

static http_server *start(jobq *q, double sync_wait)
{
    sd_err e;
    sd_err_clear(&e);
    server_config sc = {.bind_addr = "127.0.0.1", .port = 0, .http_threads = 2, .max_connections = 64,
                        .conn_timeout = 30, .max_body = 1 << 20, .sync_wait = sync_wait, .retention = 60,
                        .public_url = NULL, .model_name = "fake", .model_family = "sd1",
                        .model_hash = "0000000000", .version = "test", .access_log = 0};
    http_server *s = http_server_start(&sc, q, &e);
    if (!s) fprintf(stderr, "start: %s\n", e.msg);
    else port = http_server_port(s);
    return s;
}

int main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    gate_set(1);   /* jobs run at once unless a check closes the gate */
    if (argc == 3 && !strcmp(argv[1], "--serve")) {
        sigset_t sigs;
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        jobq *q = make_queue(4);
        sd_err e;
        sd_err_clear(&e);
        server_config sc = {.bind_addr = "127.0.0.1", .port = atoi(argv[2]), .http_threads = 4,
                            .max_connections = 512, .conn_timeout = 30, .max_body = 20 << 20, .sync_wait = 60,
                            .retention = 60, .model_name = "fake", .version = "test", .access_log = 1};
        http_server *s = http_server_start(&sc, q, &e);
        if (!s) return fprintf(stderr, "%s\n", e.msg), 1;
        fprintf(stderr, "fake server on port %d\n", http_server_port(s));
        int sig;
        sigwait(&sigs, &sig);
        http_server_stop(s);
        jobq_destroy(q, NULL);
        return 0;
    }

    jobq *q = make_queue(2);
    http_server *s = start(q, 30);
    CHECK(s != NULL, "server starts on a free port");
    if (!s) return t_done();

    /* success, form body as the original client sends it */
    resp r = req("POST", "/txt2img", "application/x-www-form-urlencoded;charset=utf-8",
                 "prompt=Anime+girl+putting+her+hair+up&seed=10086&num_outputs=2&width=512&height=512"
                 "&num_inference_steps=3&guidance_scale=7", 0);
    json_t *j = jbody(&r);
    json_t *imgs = json_object_get(j, "images");
    CHECKF(r.status == 200 && !strcmp(jstr(j, "status"), "success") && json_array_size(imgs) == 2 &&
               json_integer_value(json_object_get(json_array_get(imgs, 1), "seed")) == 10087,
           "sync form request -> 200 with 2 images, seeds seed+i", "%ld %s", r.status, r.body);
    CHECKF(one_newline(&r), "sync 200 body ends with a newline", "%s", r.body);
    json_decref(j);
    free(r.body);

    /* no seed: each request draws its own, reported as an integer in
     * [0, 2^53) (a missing or non-integer seed fails, as would two equal
     * draws: 2^-53 by chance) */
    json_int_t seeds[2] = {-1, -1};
    for (int i = 0; i < 2; i++) {
        r = req("POST", "/txt2img", "application/json",
                "{\"prompt\":\"x\",\"num_inference_steps\":1,\"width\":64,\"height\":64}", 0);
        j = jbody(&r);
        json_t *sj = json_object_get(json_array_get(json_object_get(j, "images"), 0), "seed");
        seeds[i] = json_is_integer(sj) ? json_integer_value(sj) : -1;
        CHECKF(r.status == 200 && seeds[i] >= 0 && seeds[i] < (1ll << 53),
               "JSON body without seed: integer seed in [0, 2^53)", "%s", r.body);
        json_decref(j);
        free(r.body);
    }
    CHECKF(seeds[0] != seeds[1], "two requests without seed draw different seeds", "%lld %lld",
           (long long)seeds[0], (long long)seeds[1]);

    r = req("POST", "/txt2img", "multipart/form-data; boundary=XyZ",
            "--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na fox\r\n"
            "--XyZ\r\nContent-Disposition: form-data; name=\"num_inference_steps\"\r\n\r\n2\r\n--XyZ--\r\n", 0);
    CHECKF(r.status == 200 && strstr(r.body, "\"success\""), "multipart body", "%ld %s", r.status, r.body);
    free(r.body);

    /* errors */
    expect_error("missing prompt", req("POST", "/txt2img", "application/x-www-form-urlencoded", "width=64", 0), 400,
                 "prompt", "prompt is required");
    expect_error("width 1025", req("POST", "/txt2img", "application/x-www-form-urlencoded", "prompt=x&width=1025", 0),
                 400, "width", "1025");
    expect_error("duplicate form field",
                 req("POST", "/txt2img", "application/x-www-form-urlencoded", "prompt=x&prompt=y", 0), 400, "prompt",
                 "more than once");
    expect_error("invalid utf-8 in form",
                 req("POST", "/txt2img", "application/x-www-form-urlencoded", "prompt=%FF%FE", 0), 400, "prompt",
                 "UTF-8");
    expect_error("unknown content type", req("POST", "/txt2img", "text/plain", "prompt=x", 0), 415, "Content-Type",
                 "text/plain");
    expect_error("latin-1 charset",
                 req("POST", "/txt2img", "application/x-www-form-urlencoded; charset=iso-8859-1", "prompt=x", 0), 415,
                 "Content-Type", "charset");
    r = req("GET", "/txt2img", NULL, NULL, 0);
    CHECKF(r.status == 405 && !strcmp(r.allow, "POST"), "GET /txt2img -> 405 with Allow: POST", "%ld allow '%s'",
           r.status, r.allow);
    expect_error("405 body", r, 405, NULL, "not allowed");
    expect_error("unknown path", req("GET", "/nope", NULL, NULL, 0), 404, NULL, "no such path");
    route_table_checks();
    expect_error("unknown job", req("GET", "/jobs/0123456789abcdef0123456789abcdef", NULL, NULL, 0), 404, "id",
                 "no job");
    expect_error("image path trick", req("GET", "/images/..%2f..%2fetc%2fpasswd", NULL, NULL, 0), 404, NULL,
                 "no image");
    {
        size_t n = 2 << 20;
        char *big = malloc(n + 1);
        memset(big, 'a', n);
        memcpy(big, "prompt=", 7);
        big[n] = 0;
        expect_error("body over the limit -> 413", req("POST", "/txt2img", "application/x-www-form-urlencoded", big, 0),
                     413, NULL, "larger than the limit");
        free(big);
    }

    /* async job: 202, status, result */
    r = req("POST", "/jobs/txt2img", "application/json", "{\"prompt\":\"x\",\"num_inference_steps\":3,\"seed\":5}", 0);
    j = jbody(&r);
    char id[64];
    snprintf(id, sizeof id, "%s", jstr(j, "id"));
    CHECKF(r.status == 202 && strlen(id) == 32 && strstr(jstr(j, "status_url"), id) && strstr(r.location, id),
           "async -> 202 with id, status_url, Location", "%ld %s", r.status, r.body);
    CHECKF(!strcmp(jstr(j, "status"), "pending") && !strcmp(jstr(j, "state"), "queued") && one_newline(&r),
           "202 says status pending, state queued (GET /jobs/{id}'s words), final newline", "%s", r.body);
    json_decref(j);
    free(r.body);
    char path[128];
    snprintf(path, sizeof path, "/jobs/%s", id);
    int done = 0;
    for (int i = 0; i < 500 && !done; i++) {
        r = req("GET", path, NULL, NULL, 0);
        j = jbody(&r);
        done = !strcmp(jstr(j, "state"), "succeeded");
        if (done)
            CHECKF(!strcmp(jstr(j, "status"), "success") && json_array_size(json_object_get(j, "images")) == 1 &&
                       json_integer_value(json_object_get(j, "total_steps")) == 3,
                   "job status when done has the synchronous body", "%s", r.body);
        json_decref(j);
        free(r.body);
        if (!done) usleep(10000);
    }
    CHECK(done, "async job succeeds");

    /* an engine error names the engine's concept; each answer names the API's field */
    expect_error("engine error (sync): the engine's \"steps\" answered as num_inference_steps",
                 req("POST", "/txt2img", "application/json", "{\"prompt\":\"x\",\"seed\":4242}", 0), 400,
                 "num_inference_steps", "refused by the engine");
    r = req("POST", "/jobs/txt2img", "application/json", "{\"prompt\":\"x\",\"seed\":4242}", 0);
    j = jbody(&r);
    snprintf(path, sizeof path, "/jobs/%s", jstr(j, "id"));
    json_decref(j);
    free(r.body);
    done = 0;
    for (int i = 0; i < 500 && !done; i++) {
        r = req("GET", path, NULL, NULL, 0);
        j = jbody(&r);
        done = !strcmp(jstr(j, "state"), "failed");
        if (done)
            CHECKF(!strcmp(jstr(j, "field"), "num_inference_steps"),
                   "engine error (async): the failed job's field is num_inference_steps", "%s", r.body);
        json_decref(j);
        free(r.body);
        if (!done) usleep(10000);
    }
    CHECK(done, "the async job the engine refuses fails");

    /* queue full: hold the worker, fill the queue */
    gate_set(0);
    int s0 = gate_started();
    r = req("POST", "/jobs/txt2img", "application/json", "{\"prompt\":\"running\",\"num_inference_steps\":100}", 0);
    j = jbody(&r);
    char running_id[64];
    snprintf(running_id, sizeof running_id, "%s", jstr(j, "id"));
    json_decref(j);
    free(r.body);
    gate_wait_started(s0 + 1);
    char qids[2][64];
    for (int i = 0; i < 2; i++) {
        r = req("POST", "/jobs/txt2img", "application/json", "{\"prompt\":\"queued\",\"num_inference_steps\":1}", 0);
        j = jbody(&r);
        snprintf(qids[i], sizeof qids[i], "%s", jstr(j, "id"));
        json_decref(j);
        free(r.body);
    }
    r = req("POST", "/txt2img", "application/json", "{\"prompt\":\"one too many\"}", 0);
    CHECKF(r.status == 503 && atoi(r.retry_after) >= 1, "queue full -> 503 with Retry-After", "%ld ra '%s'",
           r.status, r.retry_after);
    expect_error("503 body", r, 503, NULL, "queue is full");
    snprintf(path, sizeof path, "/jobs/%s", qids[1]);
    r = req("GET", path, NULL, NULL, 0);
    j = jbody(&r);
    CHECKF(!strcmp(jstr(j, "state"), "queued") && json_integer_value(json_object_get(j, "queue_position")) == 1,
           "queued job reports position 1", "%s", r.body);
    json_decref(j);
    free(r.body);
    {
        char done_path[128];
        snprintf(done_path, sizeof done_path, "/jobs/%s", id);
        answer_shape_checks(done_path, path);
    }
    r = req("DELETE", path, NULL, NULL, 0);
    j = jbody(&r);
    CHECKF(r.status == 200 && !strcmp(jstr(j, "state"), "cancelled") && !strcmp(jstr(j, "status"), "error"),
           "DELETE queued job -> cancelled", "%s", r.body);
    json_decref(j);
    free(r.body);

    /* a synchronous client that gives up while queued: its job leaves the queue */
    r = req("POST", "/txt2img", "application/json", "{\"prompt\":\"impatient\"}", 300);
    CHECK(r.status == 0, "client gives up (timeout) before an answer");
    free(r.body);
    int freed = 0;
    for (int i = 0; i < 100 && !freed; i++) {
        usleep(20000);
        jobq_stats st;
        jobq_get_stats(q, &st);
        freed = st.depth == 1;   /* only qids[0] left */
    }
    CHECK(freed, "disconnected client's queued job removed");

    /* cancel the running job: stops between steps */
    snprintf(path, sizeof path, "/jobs/%s", running_id);
    r = req("DELETE", path, NULL, NULL, 0);
    j = jbody(&r);
    CHECKF(r.status == 200 && (!strcmp(jstr(j, "state"), "running") || !strcmp(jstr(j, "state"), "cancelled")),
           "DELETE running job accepted", "%s", r.body);
    json_decref(j);
    free(r.body);
    gate_set(1);
    done = 0;
    for (int i = 0; i < 200 && !done; i++) {
        r = req("GET", path, NULL, NULL, 0);
        j = jbody(&r);
        done = !strcmp(jstr(j, "state"), "cancelled");
        json_decref(j);
        free(r.body);
        if (!done) usleep(10000);
    }
    CHECK(done, "running job ends cancelled");

    r = req("GET", "/health", NULL, NULL, 0);
    j = jbody(&r);
    CHECKF(r.status == 200 && !strcmp(jstr(j, "status"), "ok") && json_is_integer(json_object_get(j, "queue_depth")),
           "health", "%s", r.body);
    /* several models: without list_models the one model of model_name */
    json_t *ml = json_object_get(j, "models_loaded");
    CHECKF(json_array_size(ml) == 1 && !strcmp(json_string_value(json_array_get(ml, 0)) ?: "", "fake") &&
               json_integer_value(json_object_get(j, "max_loaded")) == 1,
           "health: models_loaded [model_name], max_loaded 1 without list_models", "%s", r.body);
    json_decref(j);
    free(r.body);
    r = req("GET", "/models", NULL, NULL, 0);
    j = jbody(&r);
    json_t *m0 = json_array_get(json_object_get(j, "models"), 0);
    CHECKF(r.status == 200 && json_array_size(json_object_get(j, "models")) == 1 && !strcmp(jstr(m0, "name"), "fake") &&
               !strcmp(jstr(m0, "family"), "sd1") && json_is_null(json_object_get(m0, "sha256")) &&
               json_is_true(json_object_get(m0, "loaded")) && json_is_true(json_object_get(m0, "default")),
           "GET /models without list_models: the one model", "%s", r.body);
    json_decref(j);
    free(r.body);
    r = req("GET", "/metrics", NULL, NULL, 0);
    CHECKF(r.status == 200 && strstr(r.body, "sdserve_http_requests_total{endpoint=\"/txt2img\",status=\"200\"} 4") &&
               strstr(r.body, "status=\"503\"") && strstr(r.body, "sdserve_job_latency_seconds_bucket{le=\"+Inf\"}") &&
               strstr(r.body, "sdserve_queue_depth") && strstr(r.body, "sdserve_images_generated_total") &&
               strstr(r.body, "sdserve_seconds_per_step"),
           "metrics", "%s", r.body);
    free(r.body);
    r = req("GET", "/openapi.json", NULL, NULL, 0);
    j = jbody(&r);
    CHECKF(r.status == 200 && !strncmp(jstr(j, "openapi"), "3.", 2) &&
               json_object_get(json_object_get(j, "paths"), "/txt2img"), "openapi document", "%.200s", r.body);
    json_decref(j);
    free(r.body);
    http_server_stop(s);
    jobq_destroy(q, NULL);

    /* synchronous wait limit */
    q = make_queue(2);
    s = start(q, 0.3);
    gate_set(0);
    expect_error("sync wait limit -> 504", req("POST", "/txt2img", "application/json", "{\"prompt\":\"slow\"}", 0), 504,
                 NULL, "wait limit");
    gate_set(1);
    for (int i = 0; i < 500; i++) {   /* the cancelled job must leave the worker before the gate closes again */
        jobq_stats st;
        jobq_get_stats(q, &st);
        if (!st.running && !st.depth) break;
        usleep(10000);
    }
    /* shutdown answers a waiting client with 503 */
    gate_set(0);
    bg_req bg = {.body = "prompt=waiting"};
    pthread_t th;
    s0 = gate_started();
    pthread_create(&th, NULL, bg_post, &bg);
    gate_wait_started(s0 + 1);
    http_server_stop(s);
    pthread_join(th, NULL);
    expect_error("shutdown answers waiting client 503", bg.out, 503, NULL, "shutting down");
    gate_set(1);
    jobq_destroy(q, NULL);
    curl_global_cleanup();
    return t_done();
}
