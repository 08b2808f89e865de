/* server.c — the HTTP API on libmicrohttpd (server.h).
 *
 * libmicrohttpd calls handle() several times per request: the first call
 * routes and checks method, Content-Type and Content-Length (415/413 before
 * any body is read); upload calls feed the post processor (multipart) or a
 * capped buffer (JSON, form-urlencoded); the last call validates and submits the job.  A
 * synchronous request then suspends its connection; the watcher thread
 * resumes it when the job ends, when the client hangs up (the job is
 * cancelled, so a queued one leaves the queue) or when the wait limit passes.
 * completed() frees the request state, counts it and writes the access log.
 * Slow clients: libmicrohttpd's connection timeout counts inactivity, so a
 * client sending its headers a byte at a time would hold a connection
 * forever; every connection therefore carries a conn_state (socket context)
 * and the watcher shuts down those that have not delivered a request's
 * headers within header_timeout.
 * Transport checks before routing: the raw target (URI log callback) so a
 * %00 in a path is 404 rather than the path before it; absolute-form targets
 * routed by their path; ambiguous body framing (two Content-Lengths, or one
 * beside Transfer-Encoding) 400 at once.  Buffered bodies of all connections
 * together are capped (cfg.max_buffered, body_charge): 503 + Retry-After. */
#include "server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "auth.h"
#include "listen.h"
#include "metrics.h"
#include "openapi.h"
#include "params.h"
#include "ratelimit.h"
#include "reply.h"

#include "../image/image.h"

enum { PH_BODY = 1, PH_WAIT, PH_DONE, PH_NOBODY };
enum { BODY_MULTIPART = 1, BODY_JSON, BODY_URLENCODED };
#define PP_BUFFER (64 * 1024)   /* the multipart post processor's buffer */

/* Decoded init images: sides and pixels refused before allocation above these. */
#define INIT_MAX_SIDE 4096
#define INIT_MAX_PIXELS (4096LL * 4096LL)

typedef struct req {
    struct http_server *s;
    struct MHD_Connection *conn;
    endpoint ep;
    int phase;
    char method[16];
    char path[200];
    char ip[64];
    int raw_nul;             /* the raw target's path had %00 (uri_logged) */
    double t0;
    reply_info ri;
    /* body */
    int body;
    int img2img, async;
    struct MHD_PostProcessor *pp;
    char *text;              /* JSON / form-urlencoded body, NUL-terminated */
    size_t text_len, text_cap;
    size_t received;
    int owner;               /* API key index + 1 (gate); 0 without keys: jobs belong to it */
    size_t declared;         /* Content-Length, 0 = none (chunked) */
    size_t held;             /* body bytes charged to the server's buffered total (body_charge) */
    param_bag bag;
    sd_err err;
    /* sync wait */
    job_handle *job;
    double deadline;
    int gone, wait_timeout, shutdown;
    struct req *wnext;
} req;

/* One per TCP connection (libmicrohttpd socket context): the header deadline. */
typedef struct conn_state {
    int fd;                  /* our dup of the socket: shutdown() on it can never hit a reused number */
    double since;            /* connected, or previous request finished */
    int busy, shut;          /* a request's headers arrived / already shut down */
    struct conn_state *prev, *next;
} conn_state;

struct http_server {
    server_config cfg;
    pthread_mutex_t cmu;     /* guards conns and their fields */
    conn_state *conns;
    char *public_url;
    struct MHD_Daemon *d;
    jobs_backend *q;
    jobs_backend *own_jobs;  /* http_server_start's wrapper over a jobq, freed at stop; else NULL */
    int port;
    pthread_mutex_t wmu;
    req *waiters;
    int nwaiters;
    pthread_t watcher;
    atomic_int stop;
    atomic_int shutting_down;
    atomic_int inflight;     /* requests begun and not yet completed() */
    atomic_size_t buffered;  /* request body bytes held by all requests (cfg.max_buffered) */
    _Atomic(storage *) store;
    char *openapi;
    atomic_int loading;      /* the model is still loading (server_config.loading) */
};

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- routes ---------------------------------------------------------------- */

static int is_hex_name(const char *s, size_t min, size_t max)
{
    size_t n = 0;
    while (s[n] && isxdigit((unsigned char)s[n]) && !isupper((unsigned char)s[n])) n++;
    return n >= min && n <= max && (s[n] == 0 || s[n] == '.');
}

static endpoint route(const char *url, const char **allow)
{
    static const struct { const char *path; endpoint ep; const char *allow; } fixed[] = {
        {"/", EP_ROOT, "GET, HEAD"},
        {"/txt2img", EP_TXT2IMG, "POST"},
        {"/img2img", EP_IMG2IMG, "POST"},
        {"/jobs/txt2img", EP_JOBS_TXT2IMG, "POST"},
        {"/jobs/img2img", EP_JOBS_IMG2IMG, "POST"},
        {"/health", EP_HEALTH, "GET, HEAD"},
        {"/metrics", EP_METRICS, "GET, HEAD"},
        {"/openapi.json", EP_OPENAPI, "GET, HEAD"},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(url, fixed[i].path)) {
            *allow = fixed[i].allow;
            return fixed[i].ep;
        }
    if (!strncmp(url, "/jobs/", 6)) {
        *allow = "GET, HEAD, DELETE";
        return EP_JOB;
    }
    if (!strncmp(url, "/images/", 8)) {
        *allow = "GET, HEAD";
        return EP_IMAGES;
    }
    *allow = NULL;
    return EP_OTHER;
}

static int method_allowed(const char *method, const char *allow)
{
    size_t n = strlen(method);
    for (const char *p = allow; (p = strstr(p, method)); p += n)
        if ((p == allow || p[-1] == ' ') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}

/* ---- body ------------------------------------------------------------------ */

/* The global cap on buffered bodies (cfg.max_buffered, 0 = none): every byte
 * a request keeps of its body (JSON/form text, multipart fields and the post
 * processor's buffer) is charged before it is stored and released when the
 * request drops its buffers; a charge that would pass the cap fails with 503
 * and the request's buffers are dropped at once. */
static int body_over_cap(http_server *s, req *r)
{
    sd_errf(&r->err, SD_EBUSY, "",
            "the request bodies being received would pass the server's limit of %zu MiB (--max-buffered-mb); "
            "retry later", s->cfg.max_buffered >> 20);
    return -1;
}

static void body_release(http_server *s, req *r)
{
    if (r->held) atomic_fetch_sub(&s->buffered, r->held);
    r->held = 0;
}

/* Charges n more bytes to r: 0, or -1 with r->err set (nothing charged). */
static int body_charge(http_server *s, req *r, size_t n)
{
    size_t cur = atomic_load(&s->buffered);
    do {
        if (s->cfg.max_buffered && (n > s->cfg.max_buffered || cur > s->cfg.max_buffered - n))
            return body_over_cap(s, r);
    } while (!atomic_compare_exchange_weak(&s->buffered, &cur, cur + n));
    r->held += n;
    return 0;
}

/* Frees what a refused body had buffered (the rest of it is discarded). */
static void body_drop(http_server *s, req *r)
{
    free(r->text);
    r->text = NULL;
    r->text_len = r->text_cap = 0;
    params_bag_free(&r->bag);
    params_bag_init(&r->bag);
    body_release(s, r);
    malloc_trim(0);   /* freed heap pages back to the system: the cap is about resident memory */
}

static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                 const char *ctype, const char *te, const char *data, uint64_t off, size_t size)
{
    req *r = cls;
    if (r->err.code) return MHD_NO;
    if (body_charge(r->s, r, size)) return MHD_NO;
    if (params_bag_add(&r->bag, key, filename ? PV_FILE : PV_TEXT, data, size, off == 0, &r->err)) return MHD_NO;
    return MHD_YES;
}

/* "application/json; charset=utf-8" -> type "application/json", charset "utf-8". */
static void parse_ctype(const char *ct, char *type, size_t tn, char *charset, size_t cn)
{
    size_t k = 0;
    type[0] = charset[0] = 0;
    if (!ct) return;
    while (*ct == ' ' || *ct == '\t') ct++;
    while (*ct && *ct != ';' && *ct != ' ' && k + 1 < tn) type[k++] = (char)tolower((unsigned char)*ct++);
    type[k] = 0;
    const char *cs = strcasestr(ct, "charset=");
    if (cs) {
        cs += 8;
        if (*cs == '"') cs++;
        k = 0;
        while (*cs && *cs != ';' && *cs != '"' && *cs != ' ' && k + 1 < cn) charset[k++] = (char)tolower((unsigned char)*cs++);
        charset[k] = 0;
    }
}

static enum MHD_Result start_body(http_server *s, req *r, struct MHD_Connection *c)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    char type[64], charset[32];
    parse_ctype(ct, type, sizeof type, charset, sizeof charset);
    if (!ct || !*type)
        return reply_errorf(c, &r->ri, SD_EMEDIA, "Content-Type",
                            "Content-Type is missing; send application/x-www-form-urlencoded, application/json or "
                            "multipart/form-data");
    if (strcmp(type, "application/x-www-form-urlencoded") && strcmp(type, "application/json") &&
        strcmp(type, "multipart/form-data"))
        return reply_errorf(c, &r->ri, SD_EMEDIA, "Content-Type",
                            "Content-Type '%.60s' is not supported; send application/x-www-form-urlencoded, "
                            "application/json or multipart/form-data", type);
    if (charset[0] && strcmp(charset, "utf-8") && strcmp(charset, "utf8"))
        return reply_errorf(c, &r->ri, SD_EMEDIA, "Content-Type", "charset '%.30s' is not supported; send UTF-8",
                            charset);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || *end || n > s->cfg.max_body)
            return reply_errorf(c, &r->ri, SD_ETOOLARGE, "", "request body of %s bytes is larger than the limit of %zu bytes",
                                cl, s->cfg.max_body);
        /* a body that does not fit in what the cap leaves now: 503 before it is sent */
        if (s->cfg.max_buffered && n > s->cfg.max_buffered - min_size(atomic_load(&s->buffered), s->cfg.max_buffered)) {
            body_over_cap(s, r);
            return reply_error(c, &r->ri, &r->err, 0, NULL);
        }
        r->declared = (size_t)n;
    }
    if (atomic_load(&s->shutting_down)) {
        sd_err e;
        sd_err_clear(&e);
        sd_errf(&e, SD_EBUSY, "", "the server is shutting down; retry on another instance");
        return reply_error(c, &r->ri, &e, 5, NULL);
    }
    if (!strcmp(type, "application/json")) {
        r->body = BODY_JSON;
    } else if (!strcmp(type, "application/x-www-form-urlencoded")) {
        r->body = BODY_URLENCODED;   /* buffered: see params_bag_from_urlencoded */
    } else {
        r->body = BODY_MULTIPART;
        if (body_charge(s, r, PP_BUFFER)) return reply_error(c, &r->ri, &r->err, 0, NULL);
        r->pp = MHD_create_post_processor(c, PP_BUFFER, post_iter, r);
        if (!r->pp)
            return reply_errorf(c, &r->ri, SD_EINVAL, "Content-Type",
                                "cannot read the multipart body: Content-Type needs a boundary parameter of 2 to 70 characters");
    }
    r->phase = PH_BODY;
    return MHD_YES;
}

static void feed_body(http_server *s, req *r, const char *data, size_t size)
{
    r->received += size;
    if (r->err.code) return;   /* discard the rest; answer at the end */
    if (r->received > s->cfg.max_body) {
        sd_errf(&r->err, SD_ETOOLARGE, "", "request body is larger than the limit of %zu bytes", s->cfg.max_body);
        return;
    }
    if (r->body == BODY_JSON || r->body == BODY_URLENCODED) {
        if (body_charge(s, r, size)) {
            body_drop(s, r);
            return;
        }
        if (r->text_len + size + 1 > r->text_cap) {
            /* the declared length in one piece (pages are touched only as bytes
             * arrive): no abandoned copies of a growing buffer left in the heap */
            size_t nc = r->declared >= r->text_len + size ? r->declared + 1 : r->text_cap ? r->text_cap * 2 : 16384;
            while (nc < r->text_len + size + 1) nc *= 2;
            char *nb = realloc(r->text, nc);
            if (!nb) {
                sd_errf(&r->err, SD_ENOMEM, "", "out of memory reading the request body");
                return;
            }
            r->text = nb;
            r->text_cap = nc;
        }
        memcpy(r->text + r->text_len, data, size);
        r->text_len += size;
        r->text[r->text_len] = 0;
    } else if (MHD_post_process(r->pp, data, size) != MHD_YES && !r->err.code) {
        sd_errf(&r->err, SD_EINVAL, "", "the multipart body is malformed");
    }
    if (r->err.code == SD_EBUSY) body_drop(s, r);
}

/* Validated request -> job input: moves strings, decodes the init image. */
static int make_input(gen_request *g, size_t max_body, job_input *in, sd_err *err)
{
    memset(in, 0, sizeof *in);
    in->img2img = g->img2img;
    in->prompt = g->prompt;
    g->prompt = NULL;
    in->negative = g->negative;
    g->negative = NULL;
    in->seed = g->seed;
    in->n = g->n;
    in->width = g->width;
    in->height = g->height;
    in->steps = g->steps;
    in->cfg = g->cfg;
    in->strength = g->strength;
    in->sampler = g->sampler;
    in->out_format = g->out_format;
    in->out_quality = g->out_quality;
    if (!g->img2img) return 0;
    uint8_t *bytes = NULL;
    size_t blen = 0;
    if (g->init_is_raw) {
        bytes = (uint8_t *)g->init_data;
        blen = g->init_len;
    } else if (img_base64_decode(g->init_data, g->init_len, max_body, "init_image", &bytes, &blen, err)) {
        return -1;
    }
    img_decode_opts o = {.max_side = INIT_MAX_SIDE, .max_pixels = INIT_MAX_PIXELS, .field = "init_image"};
    img_rgb im = {0};
    int rc = img_decode(bytes, blen, &o, &im, err);
    if (!g->init_is_raw) free(bytes);
    if (rc) return -1;
    if (img_fit_within(&im, PARAMS_MAX_SIDE, err) < 0) {
        img_rgb_free(&im);
        return -1;
    }
    in->init_rgb = im.px;
    in->init_width = im.width;
    in->init_height = im.height;
    return 0;
}

static json_t *job_created_body(http_server *s, const char *id)
{
    char url[1024];
    snprintf(url, sizeof url, "%s/jobs/%s", s->public_url, id);
    /* the same vocabulary as GET /jobs/{id} (reply.h): status pending, state queued */
    return json_pack("{s:s, s:s, s:s, s:s}", "status", job_status_word(JOB_QUEUED), "id", id, "state",
                     job_state_name(JOB_QUEUED), "status_url", url);
}

static enum MHD_Result finish_body(http_server *s, req *r, struct MHD_Connection *c)
{
    r->phase = PH_DONE;
    if (r->pp) {
        if (MHD_destroy_post_processor(r->pp) != MHD_YES && !r->err.code)
            sd_errf(&r->err, SD_EINVAL, "", "the multipart body is incomplete or malformed");
        r->pp = NULL;
    }
    if (!r->err.code && r->body == BODY_JSON)
        params_bag_from_json(&r->bag, r->text ? r->text : "", r->text_len, &r->err);
    if (!r->err.code && r->body == BODY_URLENCODED && r->text)
        params_bag_from_urlencoded(&r->bag, r->text, r->text_len, &r->err);
    free(r->text);
    r->text = NULL;
    gen_request g;
    memset(&g, 0, sizeof g);
    if (!r->err.code) gen_request_from_bag(&r->bag, r->img2img, &g, &r->err);
    /* the model's own limits (prompt token windows), before queueing */
    if (!r->err.code && s->cfg.check_request) s->cfg.check_request(s->cfg.check_ctx, &g, &r->err);
    params_bag_free(&r->bag);
    job_input in;
    memset(&in, 0, sizeof in);
    if (!r->err.code) make_input(&g, s->cfg.max_body, &in, &r->err);
    gen_request_free(&g);
    if (r->err.code) {
        job_input_free(&in);
        return reply_error(c, &r->ri, &r->err, 0, NULL);
    }
    in.owner = r->owner;
    int retry = 0;
    if (jobs_submit(s->q, &in, r->async, &r->job, &retry, &r->err))
        return reply_error(c, &r->ri, &r->err, retry, NULL);
    if (r->async) {
        char loc[1024];
        snprintf(loc, sizeof loc, "%s/jobs/%s", s->public_url, jobs_job_id(s->q, r->job));
        json_t *b = job_created_body(s, jobs_job_id(s->q, r->job));
        char *body = b ? json_dumps(b, JSON_COMPACT) : NULL;
        json_decref(b);
        if (!body) return reply_errorf(c, &r->ri, SD_ENOMEM, "", "out of memory");
        size_t len = strlen(body);
        return reply_raw(c, &r->ri, 202, "application/json", body, len, MHD_HTTP_HEADER_LOCATION, loc, NULL);
    }
    /* Synchronous: wait with the connection suspended (no HTTP thread blocks). */
    pthread_mutex_lock(&s->wmu);
    r->phase = PH_WAIT;
    r->deadline = now_s() + s->cfg.sync_wait;
    r->wnext = s->waiters;
    s->waiters = r;
    s->nwaiters++;
    MHD_suspend_connection(c);
    pthread_mutex_unlock(&s->wmu);
    return MHD_YES;
}

static enum MHD_Result finish_wait(http_server *s, req *r, struct MHD_Connection *c)
{
    r->phase = PH_DONE;
    if (r->gone) {
        /* Nobody reads this; answering (rather than failing) lets the connection close quietly. */
        enum MHD_Result rc = reply_errorf(c, &r->ri, SD_ECANCELLED, "", "the client disconnected; the job was cancelled");
        r->ri.status = 499;
        return rc;
    }
    if (r->wait_timeout)
        return reply_errorf(c, &r->ri, SD_ETIMEOUT, "",
                            "the job did not finish within the %g s synchronous wait limit and was cancelled; use "
                            "POST /jobs/%s to run long jobs asynchronously",
                            s->cfg.sync_wait, r->img2img ? "img2img" : "txt2img");
    if (r->shutdown)
        return reply_errorf(c, &r->ri, SD_EBUSY, "", "the server is shutting down; the job was cancelled");
    job_status st;
    jobs_status(s->q, r->job, &st);
    enum MHD_Result rc;
    if (st.state == JOB_SUCCEEDED && st.result) {
        size_t len = strlen(st.result);
        rc = reply_raw(c, &r->ri, 200, "application/json", st.result, len, NULL);
        st.result = NULL;
    } else if (st.state == JOB_CANCELLED) {
        /* only shutdown cancels a synchronous job that still has its client */
        rc = reply_errorf(c, &r->ri, SD_EBUSY, "", "the job was cancelled: %s", st.err.msg);
    } else {
        rc = reply_error(c, &r->ri, &st.err, 0, NULL);
    }
    free(st.result);
    return rc;
}

/* ---- GET endpoints ------------------------------------------------------- */

static enum MHD_Result serve_image(http_server *s, req *r, struct MHD_Connection *c, const char *url)
{
    const char *name = url + 8;
    storage *st = atomic_load(&s->store);
    storage_object obj = {.fd = -1};
    sd_err e;
    sd_err_clear(&e);
    if (!st || storage_get(st, name, &obj, &e)) {
        if (obj.fd >= 0) close(obj.fd);
        return reply_errorf(c, &r->ri, SD_ENOTFOUND, "", "no image named '%.80s'", name);
    }
    /* Names are content-derived: the name is the entity tag and never changes. */
    char etag[160];
    snprintf(etag, sizeof etag, "\"%.100s\"", name);
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    struct MHD_Response *resp;
    unsigned status = 200;
    if (inm && strstr(inm, etag)) {
        close(obj.fd);
        resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        status = 304;
        r->ri.bytes = 0;
    } else {
        resp = MHD_create_response_from_fd(obj.size, obj.fd);
        r->ri.bytes = obj.size;
        if (!resp) close(obj.fd);
    }
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, obj.content_type ? obj.content_type : "application/octet-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "public, max-age=31536000, immutable");
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    r->ri.status = (int)status;
    return rc;
}

static enum MHD_Result serve_job(http_server *s, req *r, struct MHD_Connection *c, const char *url,
                                 const char *method)
{
    const char *id = url + 6;
    /* another key's job is answered exactly as an unknown id: its existence does not leak */
    job_handle *j = is_hex_name(id, 32, 32) && !strchr(id, '.') ? jobs_find(s->q, id, r->owner, &r->err) : NULL;
    if (!j && r->err.code) return reply_error(c, &r->ri, &r->err, 0, NULL);   /* the backend could not look */
    if (!j)
        return reply_errorf(c, &r->ri, SD_ENOTFOUND, "id",
                            "no job with id '%.64s' (finished jobs are forgotten after %g s)", id, s->cfg.retention);
    int cancel = !strcmp(method, "DELETE");
    if (cancel) jobs_cancel(s->q, j, "cancelled by DELETE /jobs/{id}");
    job_status st;
    jobs_status(s->q, j, &st);
    json_t *b = job_status_body(jobs_job_id(s->q, j), &st, s->public_url, cancel && st.state == JOB_RUNNING);
    free(st.result);
    jobs_release(s->q, j);
    return reply_json(c, &r->ri, 200, b);
}

/* While the model loads: not ready for generation, so 503 (load balancers
 * and readiness probes wait; docs/SERVER.md "Start-up"). */
static enum MHD_Result health_loading(http_server *s, req *r, struct MHD_Connection *c)
{
    json_t *b = json_pack("{s:s, s:b, s:{s:n, s:n, s:n}, s:i, s:i, s:s?}", "status", "loading", "model_loaded", 0,
                          "model", "name", "family", "hash", "queue_depth", 0, "running", 0, "version",
                          s->cfg.version);
    return reply_json(c, &r->ri, 503, b);
}

#define LOADING_RETRY_AFTER 5   /* seconds */

static enum MHD_Result reply_loading(req *r, struct MHD_Connection *c)
{
    sd_err e;
    sd_err_clear(&e);
    sd_errf(&e, SD_EBUSY, "", "the model is still loading; retry in a few seconds (GET /health says \"ok\" "
            "once it is ready)");
    return reply_error(c, &r->ri, &e, LOADING_RETRY_AFTER, NULL);
}

static enum MHD_Result serve_get(http_server *s, req *r, struct MHD_Connection *c, const char *url)
{
    jobs_stats js;
    switch (r->ep) {
    case EP_HEALTH: {
        if (atomic_load(&s->loading)) return health_loading(s, r, c);
        jobs_get_stats(s->q, &js);
        int down = atomic_load(&s->shutting_down);
        json_t *b = json_pack("{s:s, s:b, s:{s:s?, s:s?, s:s?}, s:i, s:i, s:s?}", "status", down ? "shutting_down" : "ok",
                              "model_loaded", 1, "model", "name", s->cfg.model_name, "family", s->cfg.model_family,
                              "hash", s->cfg.model_hash, "queue_depth", js.depth, "running", js.running, "version",
                              s->cfg.version);
        return reply_json(c, &r->ri, down ? 503 : 200, b);
    }
    case EP_METRICS: {
        jobs_get_stats(s->q, &js);
        char *text = metrics_render(&js);
        if (!text) return reply_errorf(c, &r->ri, SD_ENOMEM, "", "out of memory");
        size_t len = strlen(text);
        return reply_raw(c, &r->ri, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL);
    }
    case EP_OPENAPI: {
        char *doc = strdup(s->openapi);
        if (!doc) return reply_errorf(c, &r->ri, SD_ENOMEM, "", "out of memory");
        size_t len = strlen(doc);
        return reply_raw(c, &r->ri, 200, "application/json", doc, len, NULL);
    }
    case EP_ROOT: {
        json_t *b = json_pack("{s:s, s:s?, s:s, s:[s,s,s,s,s,s,s,s,s]}", "name", "sdserve", "version",
                              s->cfg.version, "openapi", "/openapi.json", "endpoints", "POST /txt2img",
                              "POST /img2img", "POST /jobs/txt2img", "POST /jobs/img2img", "GET /jobs/{id}",
                              "DELETE /jobs/{id}", "GET /images/{name}", "GET /health", "GET /metrics");
        return reply_json(c, &r->ri, 200, b);
    }
    case EP_IMAGES: return serve_image(s, r, c, url);
    default: return reply_errorf(c, &r->ri, SD_ENOTFOUND, "", "no such path");
    }
}

/* ---- the access handler ---------------------------------------------------- */

static void client_ip(struct MHD_Connection *c, char *buf, size_t n)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(buf, n, "-");
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)n);
    else if (sa->sa_family == AF_INET6) inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)n);
}

static enum MHD_Result first_call(http_server *s, req *r, struct MHD_Connection *c, const char *url,
                                  const char *method)
{
    const char *allow;
    r->ep = route(url, &allow);
    if (r->raw_nul)
        return reply_errorf(c, &r->ri, SD_ENOTFOUND, "", "no such path: a path may not contain %%00 (a NUL byte)");
    if (r->ep == EP_OTHER)
        return reply_errorf(c, &r->ri, SD_ENOTFOUND, "", "no such path '%.80s'; see GET /openapi.json", url);
    if (!method_allowed(method, allow)) {
        sd_err e;
        sd_err_clear(&e);
        sd_errf(&e, SD_EMETHOD, "", "method %.16s is not allowed on %.80s; use %s", method, url, allow);
        return reply_error(c, &r->ri, &e, 0, allow);
    }
    switch (r->ep) {
    case EP_TXT2IMG: case EP_IMG2IMG: case EP_JOBS_TXT2IMG: case EP_JOBS_IMG2IMG:
        r->img2img = r->ep == EP_IMG2IMG || r->ep == EP_JOBS_IMG2IMG;
        r->async = r->ep == EP_JOBS_TXT2IMG || r->ep == EP_JOBS_IMG2IMG;
        if (atomic_load(&s->loading)) return reply_loading(r, c);
        return start_body(s, r, c);
    case EP_JOB: return serve_job(s, r, c, url, method);
    default: return serve_get(s, r, c, url);
    }
}

/* API key and rate limit, before anything else: 1 when answered (401 / 429).
 * Image URLs need no key (a browser opens them; their names are unguessable,
 * docs/SERVER.md "API keys") but are rate-limited per address. */
static int gate(http_server *s, req *r, struct MHD_Connection *c, const char *url, enum MHD_Result *res)
{
    const char *allow;
    r->ep = route(url, &allow);
    if (r->ep == EP_HEALTH) return 0;
    int key = -1;
    if (auth_keys_count(s->cfg.keys) > 0 && r->ep != EP_IMAGES && !(r->ep == EP_METRICS && s->cfg.metrics_open)) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        int rc = auth_check(s->cfg.keys, h, &key);
        if (rc != AUTH_OK) {
            *res = reply_errorf(c, &r->ri, SD_EAUTH, "Authorization", "%s",
                                rc == AUTH_MISSING ? "an API key is required: send 'Authorization: Bearer KEY'"
                                : rc == AUTH_MALFORMED ? "the Authorization header must be 'Bearer KEY'"
                                                       : "the API key is not valid");
            return 1;
        }
        r->owner = key + 1;
    }
    char who[80];
    if (key >= 0) snprintf(who, sizeof who, "key:%d", key);
    else snprintf(who, sizeof who, "ip:%s", r->ip);
    int wait = rl_take(s->cfg.rl, who, now_s());
    if (wait > 0) {
        sd_err e;
        sd_err_clear(&e);
        sd_errf(&e, SD_ERATE, "", "too many requests from this %s; retry in %d s", key >= 0 ? "API key" : "address",
                wait);
        *res = reply_error(c, &r->ri, &e, wait, NULL);
        return 1;
    }
    return 0;
}

/* ---- connections: header deadline ------------------------------------------------ */

static conn_state *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* busy = 1: a request's headers arrived; 0: it finished, the next one's clock starts. */
static void conn_mark(http_server *s, struct MHD_Connection *c, int busy)
{
    pthread_mutex_lock(&s->cmu);
    conn_state *cs = conn_of(c);
    if (cs) {
        cs->busy = busy;
        cs->since = now_s();
    }
    pthread_mutex_unlock(&s->cmu);
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_ConnectionNotificationCode code)
{
    http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        if (s->cfg.header_timeout <= 0) return;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_state *cs = ci ? calloc(1, sizeof *cs) : NULL;
        if (!cs) return;   /* no deadline for this one; the idle timeout still applies */
        cs->fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
        if (cs->fd < 0) {
            free(cs);
            return;
        }
        cs->since = now_s();
        pthread_mutex_lock(&s->cmu);
        cs->next = s->conns;
        if (s->conns) s->conns->prev = cs;
        s->conns = cs;
        *ctx = cs;
        pthread_mutex_unlock(&s->cmu);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        pthread_mutex_lock(&s->cmu);
        conn_state *cs = *ctx;
        if (cs) {
            if (cs->prev) cs->prev->next = cs->next;
            else s->conns = cs->next;
            if (cs->next) cs->next->prev = cs->prev;
            *ctx = NULL;
        }
        pthread_mutex_unlock(&s->cmu);
        if (cs) {
            close(cs->fd);
            free(cs);
        }
    }
}

/* Shuts down connections past the header deadline; libmicrohttpd then sees
 * the end of the stream and closes them itself.  Returns how many. */
static int sweep_slow(http_server *s, double now)
{
    int n = 0;
    pthread_mutex_lock(&s->cmu);
    for (conn_state *cs = s->conns; cs; cs = cs->next)
        if (!cs->busy && !cs->shut && now - cs->since > s->cfg.header_timeout) {
            shutdown(cs->fd, SHUT_RDWR);
            cs->shut = 1;
            n++;
        }
    pthread_mutex_unlock(&s->cmu);
    return n;
}

/* ---- transport checks before routing ---------------------------------------- */

/* *req_cls of a request whose raw target has "%00" in its path (uri_logged). */
static char raw_nul_mark;

/* libmicrohttpd's URI log callback: the request target before it is
 * percent-decoded (the handler gets it decoded, and a decoded NUL cuts it
 * short: GET /health%00 would be read as /health).  Its return value is the
 * request's first *req_cls: &raw_nul_mark when the path has %00, else NULL. */
static void *uri_logged(void *cls, const char *uri, struct MHD_Connection *c)
{
    size_t n = strcspn(uri, "?");
    for (size_t i = 0; i + 2 < n; i++)
        if (uri[i] == '%' && uri[i + 1] == '0' && uri[i + 2] == '0') return &raw_nul_mark;
    return NULL;
}

/* RFC 9112 §3.2.2: a server must accept a target in absolute form
 * ("http://host/path", the form proxies get): its path is the route and its
 * host is ignored, like the Host header. */
static const char *origin_form(const char *url)
{
    size_t k = !strncasecmp(url, "http://", 7) ? 7 : !strncasecmp(url, "https://", 8) ? 8 : 0;
    if (!k) return url;
    const char *p = strchr(url + k, '/');
    return p ? p : "/";
}

/* Collects the first Content-Length value and the first one that differs. */
static enum MHD_Result content_length_of(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    const char **v = cls;
    if (!key || !value || strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) return MHD_YES;
    if (!v[0]) v[0] = value;
    else if (!v[1] && strcmp(v[0], value)) v[1] = value;
    return MHD_YES;
}

/* Where the body ends must be unambiguous (RFC 9112 §6.1, §6.3): two
 * different Content-Length headers (libmicrohttpd reads the first and would
 * wait for a body the client never sends), or Content-Length beside
 * Transfer-Encoding (libmicrohttpd goes by the latter and keeps the
 * connection, which lets a request hide in another behind a proxy).  Both
 * get 400 at once, which also closes the connection.  1 when answered. */
static int ambiguous_length(req *r, struct MHD_Connection *c, enum MHD_Result *res)
{
    const char *v[2] = {NULL, NULL};
    MHD_get_connection_values(c, MHD_HEADER_KIND, content_length_of, v);
    if (v[1]) {
        *res = reply_errorf(c, &r->ri, SD_EINVAL, "Content-Length",
                            "the request has Content-Length headers with different values ('%.24s' and '%.24s'); "
                            "send one", v[0], v[1]);
        return 1;
    }
    if (v[0] && MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        *res = reply_errorf(c, &r->ri, SD_EINVAL, "Content-Length",
                            "the request has both Content-Length and Transfer-Encoding; send one");
        return 1;
    }
    return 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_size, void **req_cls)
{
    http_server *s = cls;
    int raw_nul = *req_cls == (void *)&raw_nul_mark;
    req *r = raw_nul ? NULL : *req_cls;
    url = origin_form(url);
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        *req_cls = r;
        r->raw_nul = raw_nul;
        atomic_fetch_add(&s->inflight, 1);
        r->s = s;
        r->conn = c;
        r->t0 = now_s();
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        client_ip(c, r->ip, sizeof r->ip);
        params_bag_init(&r->bag);
        conn_mark(s, c, 1);
        enum MHD_Result res;
        if (ambiguous_length(r, c, &res)) return res;
        /* A request that sends no body is answered on the next call:
         * libmicrohttpd closes the connection after a response queued on
         * the first call (it cannot tell whether a body follows), which
         * would end keep-alive for every GET. */
        if (strcmp(method, "POST") && strcmp(method, "PUT") && strcmp(method, "PATCH")) {
            r->phase = PH_NOBODY;
            return MHD_YES;
        }
        if (gate(s, r, c, url, &res)) return res;
        return first_call(s, r, c, url, method);
    }
    if (r->phase == PH_NOBODY) {
        if (*upload_size) {   /* a body nobody asked for: dropped */
            *upload_size = 0;
            return MHD_YES;
        }
        r->phase = 0;
        enum MHD_Result res;
        if (gate(s, r, c, url, &res)) return res;
        return first_call(s, r, c, url, method);
    }
    if (r->phase == PH_BODY) {
        if (*upload_size) {
            feed_body(s, r, upload_data, *upload_size);
            *upload_size = 0;
            return MHD_YES;
        }
        enum MHD_Result res = finish_body(s, r, c);
        body_release(s, r);   /* its buffers are freed by now */
        return res;
    }
    if (r->phase == PH_WAIT) return finish_wait(s, r, c);
    if (*upload_size) {   /* a body we already answered: drop it */
        *upload_size = 0;
        return MHD_YES;
    }
    return MHD_YES;
}

static void completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    if (*req_cls == (void *)&raw_nul_mark) *req_cls = NULL;   /* the handler never ran */
    req *r = *req_cls;
    if (!r) return;
    *req_cls = NULL;
    conn_mark(s, c, 0);
    atomic_fetch_sub(&s->inflight, 1);
    int status = r->ri.status ? r->ri.status : 499;   /* 499: client went away before an answer */
    metrics_count_request(r->ep, status);
    if (s->cfg.access_log) {
        char ts[32];
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        char path[200];
        size_t k = 0;
        for (const char *p = r->path; *p && k + 1 < sizeof path; p++)
            path[k++] = (*p > 0x20 && *p < 0x7f && *p != '"') ? *p : '?';
        path[k] = 0;
        fprintf(stdout, "%s %s \"%s %s\" %d %llu %.0fms%s\n", ts, r->ip, r->method, path, status,
                (unsigned long long)r->ri.bytes, (now_s() - r->t0) * 1000,
                r->gone ? " client-gone" : toe != MHD_REQUEST_TERMINATED_COMPLETED_OK ? " aborted" : "");
        fflush(stdout);
    }
    if (r->pp) MHD_destroy_post_processor(r->pp);
    free(r->text);
    params_bag_free(&r->bag);
    body_release(s, r);
    if (r->job) {
        /* A synchronous job nobody will read: stop it. */
        if (!r->async) jobs_cancel(s->q, r->job, "the client disconnected");
        jobs_release(s->q, r->job);
    }
    free(r);
}

/* ---- watcher: wakes suspended synchronous requests --------------------------- */

static int client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

static void *watcher_main(void *arg)
{
    http_server *s = arg;
    unsigned gen = 0;
    while (!atomic_load(&s->stop)) {
        jobs_wait_change(s->q, &gen, 200);
        double now = now_s();
        if (s->cfg.header_timeout > 0) sweep_slow(s, now);
        pthread_mutex_lock(&s->wmu);
        req **pp = &s->waiters;
        while (*pp) {
            req *r = *pp;
            job_status st;
            jobs_status(s->q, r->job, &st);
            free(st.result);
            int wake = job_finished(st.state);
            if (!wake && atomic_load(&s->shutting_down)) {
                r->shutdown = wake = 1;   /* its job was cancelled by jobs_shutdown */
            } else if (!wake && client_gone(r->conn)) {
                jobs_cancel(s->q, r->job, "the client disconnected");
                r->gone = wake = 1;
            } else if (!wake && now > r->deadline) {
                jobs_cancel(s->q, r->job, "the synchronous wait limit passed");
                r->wait_timeout = wake = 1;
            }
            if (wake) {
                *pp = r->wnext;
                s->nwaiters--;
                MHD_resume_connection(r->conn);
            } else {
                pp = &r->wnext;
            }
        }
        pthread_mutex_unlock(&s->wmu);
    }
    return NULL;
}

/* ---- start / stop ------------------------------------------------------------ */

http_server *http_server_start_jobs(const server_config *cfg, jobs_backend *q, sd_err *err)
{
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        sd_errf(err, SD_ENOMEM, "", "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->q = q;
    atomic_store(&s->store, cfg->store);
    atomic_store(&s->loading, cfg->loading);
    pthread_mutex_init(&s->wmu, NULL);
    pthread_mutex_init(&s->cmu, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    /* our own socket (listen.h): one clear message when the port is taken, not libmicrohttpd's too */
    int port = cfg->port;
    int lfd = cfg->listen_fd > 0 ? cfg->listen_fd : http_listen(cfg->bind_addr, cfg->port, &port, err);
    if (lfd < 0) goto fail;
    s->d = MHD_start_daemon(flags | MHD_USE_EPOLL_LINUX_ONLY, (uint16_t)port, NULL, NULL, handle, s,
                            MHD_OPTION_LISTEN_SOCKET, lfd,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(cfg->http_threads > 0 ? cfg->http_threads : 4),
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->conn_timeout,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)(cfg->max_conn_per_ip > 0 ? cfg->max_conn_per_ip : 0),
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, notify_connection, s,
                            MHD_OPTION_URI_LOG_CALLBACK, uri_logged, s,
                            MHD_OPTION_END);
    if (!s->d) {
        sd_errf(err, SD_EIO, "port", "cannot start the HTTP server: %s", strerror(errno));
        goto fail;   /* (lfd is not closed here: libmicrohttpd may have done it; the process ends) */
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di && di->port ? di->port : port;
    char url[512];
    if (cfg->public_url && *cfg->public_url) snprintf(url, sizeof url, "%s", cfg->public_url);
    else snprintf(url, sizeof url, "http://127.0.0.1:%d", s->port);
    size_t ul = strlen(url);
    while (ul && url[ul - 1] == '/') url[--ul] = 0;
    s->public_url = strdup(url);
    s->openapi = openapi_document(s->public_url, cfg->version);
    if (!s->public_url || !s->openapi) {
        sd_errf(err, SD_ENOMEM, "", "out of memory");
        goto fail;
    }
    if (pthread_create(&s->watcher, NULL, watcher_main, s)) {
        sd_errf(err, SD_EINTERNAL, "", "cannot start the watcher thread");
        goto fail;
    }
    return s;
fail:
    if (s->d) MHD_stop_daemon(s->d);
    free(s->public_url);
    free(s->openapi);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->cmu);
    free(s);
    return NULL;
}

http_server *http_server_start(const server_config *cfg, jobq *q, sd_err *err)
{
    jobs_backend *b = jobs_inproc_wrap(q, err);
    http_server *s = b ? http_server_start_jobs(cfg, b, err) : NULL;
    if (!s) jobs_close(b);
    else s->own_jobs = b;
    return s;
}

int http_server_port(const http_server *s) { return s->port; }
void http_server_set_storage(http_server *s, storage *st) { atomic_store(&s->store, st); }

void http_server_model_ready(http_server *s, const char *name, const char *family, const char *hash)
{
    s->cfg.model_name = name;
    s->cfg.model_family = family;
    s->cfg.model_hash = hash;
    atomic_store(&s->loading, 0);   /* publishes the fields above to the HTTP threads */
}
const char *http_server_public_url(const http_server *s) { return s->public_url; }

void http_server_stop(http_server *s)
{
    if (!s) return;
    atomic_store(&s->shutting_down, 1);
    /* Stop accepting; running connections continue. */
    MHD_quiesce_daemon(s->d);
    jobs_shutdown(s->q, "the server is shutting down");
    /* Every waiting client gets its answer (its job is now cancelled or done). */
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&s->wmu);
        int n = s->nwaiters;
        pthread_mutex_unlock(&s->wmu);
        if (!n) break;
        usleep(50000);
    }
    /* Let resumed connections send their answers (completed() counts them
     * down); a client still uploading a body is not waited for long. */
    for (int i = 0; i < 200 && atomic_load(&s->inflight) > 0; i++) usleep(10000);
    atomic_store(&s->stop, 1);
    pthread_join(s->watcher, NULL);
    MHD_stop_daemon(s->d);
    jobs_close(s->own_jobs);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->cmu);
    free(s->public_url);
    free(s->openapi);
    free(s);
}
