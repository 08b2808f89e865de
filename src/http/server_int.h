/* server_int.h — what the files of the HTTP server share (private to
 * src/http; server.h is the public face).  The server's files, one seam each:
 *   server.c     transport: the libmicrohttpd daemon, connections and their
 *                header deadline, URI checks, the access handler, the
 *                watcher of suspended requests, start and stop
 *   routes.c     the route table, and what comes from it: lookup (once per
 *                request), method check (405 + Allow), the auth/rate gate,
 *                metrics labels, GET / (the endpoint list)
 *   body.c       reading a generation request's body (form, JSON,
 *                multipart) into a validated sd_request; the server-wide
 *                cap on buffered bodies
 *   endpoints.c  GET /health, /metrics, /openapi.json, /images/{name}
 *   api_seed.c   the seed API: POST /txt2img, /img2img (synchronous);
 *                request -> job; a job_result rendered as its images
 *   api_jobs.c   the async jobs API: POST /jobs/txt2img, /jobs/img2img
 *                (202), GET and DELETE /jobs/{id}
 *   api_samplers.c  GET /samplers: the sampler and scheduler names
 *   api_openai.c the OpenAI Images dialect: POST /v1/images/generations,
 *                /v1/images/edits, GET /v1/models[/{id}], 404 for other /v1/
 *   dialect.h    what differs between API dialects (fields, error shape):
 *                a route row names its dialect, r->ri.dl carries it
 *   webui.c      the web page: GET /ui/ (the files in webui/, built in by webui_blob.c),
 *                /ui -> /ui/, a browser's GET / -> /ui/
 *   api_models.c GET /models: the checkpoints requests may name (several
 *                models); server_models, the list /health and dialects read
 *   api_a1111.c  the AUTOMATIC1111 dialect /sdapi/v1/...: txt2img, img2img,
 *                options (per API key), progress, interrupt, skip, lists
 * Adding an endpoint = one row in routes.c + one handler. */
#ifndef SD_HTTP_SERVER_INT_H
#define SD_HTTP_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <jansson.h>
#include <microhttpd.h>

#include "dialect.h"
#include "metrics.h"
#include "params.h"
#include "reply.h"
#include "server.h"

typedef struct req req;
typedef struct conn_state conn_state;
typedef enum MHD_Result (*route_fn)(http_server *s, req *r, struct MHD_Connection *c);

enum route_auth {
    ROUTE_KEY = 0,           /* an API key when keys are configured; rate-limited per key */
    ROUTE_METRICS,           /* the same, unless --metrics-open: then as ROUTE_NOKEY */
    ROUTE_NOKEY,             /* no key (image URLs open in a browser); rate-limited per address */
    ROUTE_FREE,              /* no key, no rate limit (GET /health) */
};
enum route_body {
    ROUTE_NOBODY = 0,        /* answered from the request line and headers */
    ROUTE_GEN,               /* a generation request's body (body.c), read before `answer` */
};

typedef struct route {
    const char *path;        /* exact, or the start of the path (prefix = 1), or a pattern
                                whose '*' is one non-empty segment (prefix = ROUTE_SEGMENT) */
    int prefix;
    const char *methods;     /* served, as a 405's Allow header says them: "GET, HEAD" */
    const char *label;       /* metrics label and, when listed, GET /'s name for it */
    int listed;              /* in GET /'s endpoint list (each method but HEAD) */
    enum route_auth auth;
    enum route_body body;
    int img2img;             /* ROUTE_GEN: /img2img's fields */
    route_fn answer;         /* answers (ROUTE_GEN: with the body read into r->request, or r->err) */
    route_fn resume;         /* answers a request that waited suspended (server_wait) */
    const dialect *dl;       /* the API dialect (dialect.h): body fields, error shape; NULL = seed */
} route;

enum { ROUTE_SEGMENT = 2 };   /* route.prefix: a pattern row (GET /jobs/{id}/preview) */

enum { PH_BODY = 1, PH_WAIT, PH_DONE, PH_NOBODY, PH_DRAIN };
enum { BODY_MULTIPART = 1, BODY_JSON, BODY_URLENCODED };   /* req.body */
enum { REQ_SENT_MAX = 8 };   /* req.sent */

struct req {
    struct http_server *s;
    struct MHD_Connection *conn;
    const route *rt;         /* NULL: no such path */
    int phase;
    const char *verb;        /* the method (libmicrohttpd's, valid for the request) */
    char method[16];         /* its copy for the access log */
    const char *url;         /* the path routed (origin form; libmicrohttpd's, valid for the request) */
    char path[200];          /* its copy for the access log */
    char ip[64];
    int raw_nul;             /* the raw target's path had %00 (uri_logged) */
    double t0;
    reply_info ri;
    int owner;               /* API key index + 1 (gate); 0 without keys: jobs belong to it */
    /* body (body.c) */
    int body;                /* BODY_MULTIPART, BODY_JSON, BODY_URLENCODED; 0 = none */
    struct MHD_PostProcessor *pp;
    char *text;              /* JSON / form-urlencoded body, NUL-terminated */
    size_t text_len, text_cap;
    size_t received;
    size_t declared;         /* Content-Length, 0 = none (chunked) */
    size_t held;             /* body bytes charged to the server's buffered total (body_charge) */
    param_bag bag;
    sd_request request;      /* the body, validated (ROUTE_GEN); given to the job queue */
    sd_err err;
    /* the job, and a synchronous wait (server_wait) */
    int async;
    job_handle *job;
    double deadline;
    int gone, wait_timeout, shutdown;
    struct req *wnext;
    /* the OpenAI dialect's answer (api_openai.c): response_format "url"
     * (else b64_json), and the quality / background it echoes (static) */
    int oai_url;
    const char *oai_quality, *oai_background;
    /* the names this body gave the seed API's fields where its dialect has
     * several (static strings; {NULL} ends): errors say them (dialect_name_field_as) */
    dialect_name sent[REQ_SENT_MAX + 1];
    void *dl_ctx;            /* the dialect's own per-request state (dialect.req_done frees it) */
};

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
    const char *labels[METRICS_MAX_ENDPOINTS];   /* metrics endpoint labels (route_labels) */
    int nlabels;
    struct a1111_state *a1111;   /* the A1111 dialect's options and in-flight jobs (api_a1111.c) */
};

/* server.c */
double http_now(void);
/* Suspends r's connection until its job ends, the client leaves or the
 * wait limit passes; then r->rt->resume answers. */
enum MHD_Result server_wait(http_server *s, req *r, struct MHD_Connection *c);

/* routes.c */
const route *route_find(const char *path);
/* Metrics endpoint of a route: 1.. in table order, 0 = no route ("other"). */
int route_endpoint(const route *rt);
/* Fills labels[0 ..] with each endpoint's metrics label; returns how many. */
int route_labels(const char *labels[METRICS_MAX_ENDPOINTS]);
/* The auth/rate gate: 1 when it answered (401 / 429) into *res. */
int route_gate(http_server *s, req *r, struct MHD_Connection *c, enum MHD_Result *res);
/* Answers 404 / 405 / 503 (loading), starts reading a body, or calls the handler. */
enum MHD_Result route_dispatch(http_server *s, req *r, struct MHD_Connection *c);
/* GET /: the name, the version and the listed routes, "METHOD label" each. */
enum MHD_Result get_root(http_server *s, req *r, struct MHD_Connection *c);

/* body.c */
/* Charges n more body bytes to r against cfg.max_buffered: 0, or -1 with
 * r->err set (503, nothing charged).  body_release gives back all r holds. */
int body_charge(http_server *s, req *r, size_t n);
void body_release(http_server *s, req *r);
int body_over_cap(http_server *s, req *r);
enum MHD_Result body_start(http_server *s, req *r, struct MHD_Connection *c);
void body_feed(http_server *s, req *r, const char *data, size_t size);
/* The whole body read: parses and validates it into r->request (or r->err). */
void body_finish(http_server *s, req *r);
/* Frees what the body holds (request end). */
void body_free(http_server *s, req *r);

/* endpoints.c */
enum MHD_Result get_health(http_server *s, req *r, struct MHD_Connection *c);
enum MHD_Result get_metrics(http_server *s, req *r, struct MHD_Connection *c);
enum MHD_Result get_openapi(http_server *s, req *r, struct MHD_Connection *c);
enum MHD_Result get_loras(http_server *s, req *r, struct MHD_Connection *c);
enum MHD_Result get_image(http_server *s, req *r, struct MHD_Connection *c);
enum MHD_Result reply_loading(req *r, struct MHD_Connection *c);

/* api_seed.c */
enum MHD_Result seed_generate(http_server *s, req *r, struct MHD_Connection *c);
enum MHD_Result seed_answer(http_server *s, req *r, struct MHD_Connection *c);
/* A dialect's 200 answer for a succeeded job's result. */
typedef enum MHD_Result (*result_render)(http_server *s, req *r, struct MHD_Connection *c, const job_result *res);
/* The synchronous answer once the wait is over (server_wait): the client
 * gone, the wait limit, shutdown and failed jobs as errors in the request's
 * dialect; a succeeded job through `ok`.  seed_answer = with the seed API's. */
enum MHD_Result seed_answer_with(http_server *s, req *r, struct MHD_Connection *c, result_render ok);
/* The validated request (r->request) as a job: listed = findable by id.  0, or
 * -1 with r->err (and *retry_after for a full queue). */
int seed_submit(http_server *s, req *r, int listed, int *retry_after);
/* A result's images, [{"image_url","mime_type","seed"}]. */
json_t *seed_images(const job_result *res);
/* The dialect of a routed request (never NULL: the seed API's by default). */
const dialect *route_dialect(const route *rt);

/* The stored bytes of a result's image, base64 (no data: prefix), for
 * the dialects that answer with the picture itself (A1111's images,
 * OpenAI's b64_json).  malloc'd, NUL-terminated, *len its length; NULL
 * with err when the store cannot give it back. */
char *seed_image_base64(http_server *s, const job_image *im, size_t *len, sd_err *err);

/* api_openai.c: the OpenAI dialect's value (dialect.h) and its handlers
 * (POST /v1/images/generations and /edits: seed_generate, then oai_answer) */
extern const dialect dialect_openai;
enum MHD_Result oai_answer(http_server *s, req *r, struct MHD_Connection *c);
enum MHD_Result oai_models(http_server *s, req *r, struct MHD_Connection *c);
enum MHD_Result oai_not_found(http_server *s, req *r, struct MHD_Connection *c);

/* api_samplers.c */
enum MHD_Result get_samplers(http_server *s, req *r, struct MHD_Connection *c);

/* api_embeddings.c */
enum MHD_Result get_embeddings(http_server *s, req *r, struct MHD_Connection *c);

/* api_models.c */
#define SERVER_MODELS_MAX 256   /* models listed at most */
/* cfg.list_models, or the one model of cfg.model_*: how many were written
 * to out (at most max; a longer list is cut) or -1 + err. */
int server_models(http_server *s, server_model *out, int max, sd_err *err);
/* How a dialect's clients name a model (server_model_pick). */
typedef struct model_naming {
    int titles;                    /* A1111: "name [hash]" names `name` */
    const char *const *defaults;   /* NULL-ended prefixes meaning the default model (OpenAI's "dall-e-"); NULL = none */
} model_naming;
/* The one model-name resolution of the dialects: the index in ms[0..n) of
 * the model `name` (len bytes; a NUL inside names none) picks: an exact
 * name, a title when how->titles, the default (is_default, else the first)
 * for a name with one of how->defaults' prefixes or for NULL; -1 when none
 * (or n < 1).  how NULL = exact names only.  The registry (models_resolve)
 * then resolves the name a request carries. */
int server_model_pick(const server_model *ms, int n, const char *name, size_t len, const model_naming *how);
enum MHD_Result get_models(http_server *s, req *r, struct MHD_Connection *c);
/* api_seed.c: the synchronous wait ended without the job's end (the client
 * left, the wait limit, shutdown): 1 with the answer queued in *rc, else 0. */
int seed_wait_failed(http_server *s, req *r, struct MHD_Connection *c, enum MHD_Result *rc);

/* api_a1111.c: the AUTOMATIC1111 dialect (its state: a1111_init at start,
 * a1111_free at stop) */
extern const dialect dialect_a1111;
int a1111_init(http_server *s, sd_err *err);
void a1111_free(http_server *s);
enum MHD_Result a1111_generate(http_server *s, req *r, struct MHD_Connection *c);
enum MHD_Result a1111_answer(http_server *s, req *r, struct MHD_Connection *c);
enum MHD_Result a1111_options(http_server *s, req *r, struct MHD_Connection *c);
enum MHD_Result a1111_progress(http_server *s, req *r, struct MHD_Connection *c);
enum MHD_Result a1111_other(http_server *s, req *r, struct MHD_Connection *c);

/* api_jobs.c */
enum MHD_Result jobs_create(http_server *s, req *r, struct MHD_Connection *c);
enum MHD_Result jobs_get(http_server *s, req *r, struct MHD_Connection *c);
/* GET /jobs/{id}/preview (live previews, issue 18 item 2) */
enum MHD_Result jobs_preview_get(http_server *s, req *r, struct MHD_Connection *c);

/* webui.c */
/* 1 when the request's Accept asks for HTML and not JSON (a browser):
 * text/html is named with q > 0 and application/json is not. */
int webui_wants_page(struct MHD_Connection *c);
int webui_accept_html(const char *accept);   /* the same for an Accept value (NULL: 0) */
/* Appends " scheme://host[:port]" of an http(s) URL to the policy csp (cap
 * bytes) unless it is there already; a URL whose host part holds anything
 * but a host name's, an IP literal's and a port's characters is left out
 * (a CSP source must not carry ';' or ','). */
void webui_csp_add_origin(char *csp, size_t cap, const char *url);
/* 302 to /ui/ (GET / from a browser). */
enum MHD_Result webui_root_redirect(req *r, struct MHD_Connection *c);
/* GET /ui: 301 to /ui/.  GET /ui/{file}: the page's files, 404 for others. */
enum MHD_Result get_webui_dir(http_server *s, req *r, struct MHD_Connection *c);
enum MHD_Result get_webui(http_server *s, req *r, struct MHD_Connection *c);

#endif
