/* endpoints.c — the GET endpoints that are no API dialect: /health,
 * /metrics, /openapi.json and /images/{name} (stored images, content-named,
 * cached forever: the name is a strong ETag; If-None-Match answers 304).
 * GET / lists the route table (routes.c). */
#include "server_int.h"
#include "etag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LOADING_RETRY_AFTER 5   /* seconds */

/* One If-None-Match field line against the image's tag (etag.h); a
 * request may send several lines, which count as one list. */
typedef struct inm_check {
    const char *etag;
    int match;
} inm_check;

static enum MHD_Result inm_line(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    inm_check *k = cls;
    if (key && value && !strcasecmp(key, MHD_HTTP_HEADER_IF_NONE_MATCH) && http_if_none_match(value, k->etag))
        k->match = 1;
    return MHD_YES;
}

enum MHD_Result get_image(http_server *s, req *r, struct MHD_Connection *c)
{
    const char *name = r->url + strlen("/images/");
    storage *st = atomic_load(&s->store);
    storage_object obj = {.fd = -1};
    sd_err e;
    sd_err_clear(&e);
    if (!st || storage_get(st, name, &obj, &e)) {
        if (obj.fd >= 0) close(obj.fd);
        return reply_errorf(c, &r->ri, SD_ENOTFOUND, "", "no image named '%.80s'", name);
    }
    /* Names are content-derived: the name is a strong entity tag that never changes. */
    char etag[160];
    snprintf(etag, sizeof etag, "\"%.100s\"", name);
    inm_check inm = {etag, 0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, inm_line, &inm);
    unsigned status = inm.match ? 304 : 200;
    /* A 304 is made from the file too, so its Content-Length is the 200's
     * (libmicrohttpd sends no body with a 304), and without Content-Type:
     * it has no content (RFC 9110 15.4.5). */
    struct MHD_Response *resp = MHD_create_response_from_fd(obj.size, obj.fd);
    r->ri.bytes = inm.match ? 0 : obj.size;
    if (!resp) {
        close(obj.fd);
        return MHD_NO;
    }
    if (!inm.match)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, obj.content_type ? obj.content_type : "application/octet-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "public, max-age=31536000, immutable");
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    r->ri.status = (int)status;
    return rc;
}

/* Several models: the names resident now (server_models), and the most
 * that may be; added to /health's body b (taken). */
static json_t *health_models(http_server *s, json_t *b)
{
    sd_err e;
    sd_err_clear(&e);
    server_model *v = b ? calloc(SERVER_MODELS_MAX, sizeof *v) : NULL;
    int n = v ? server_models(s, v, SERVER_MODELS_MAX, &e) : -1;
    json_t *names = json_array();
    for (int i = 0; names && i < n && i < SERVER_MODELS_MAX; i++)
        if (v[i].loaded) json_array_append_new(names, json_string(v[i].name));
    free(v);
    if (!b || !names || json_object_set_new(b, "models_loaded", names) ||
        json_object_set_new(b, "max_loaded", json_integer(s->cfg.max_loaded > 0 ? s->cfg.max_loaded : 1))) {
        json_decref(b);
        return NULL;
    }
    return b;
}

/* While the model loads: not ready for generation, so 503 (load balancers
 * and readiness probes wait; docs/SERVER.md "Start-up"). */
static enum MHD_Result health_loading(http_server *s, req *r, struct MHD_Connection *c)
{
    json_t *b = json_pack("{s:s, s:b, s:{s:n, s:n, s:n, s:n}, s:i, s:i, s:s?}", "status", "loading", "model_loaded", 0,
                          "model", "name", "family", "hash", "vae", "queue_depth", 0, "running", 0, "version",
                          s->cfg.version);
    return reply_json(c, &r->ri, 503, health_models(s, b));
}

/* A generation route while the model loads. */
enum MHD_Result reply_loading(req *r, struct MHD_Connection *c)
{
    sd_err e;
    sd_err_clear(&e);
    sd_errf(&e, SD_EBUSY, "", "the model is still loading; retry in a few seconds (GET /health says \"ok\" "
            "once it is ready)");
    return reply_error(c, &r->ri, &e, LOADING_RETRY_AFTER, NULL);
}

/* A shared queue's /health: the live workers (id, models, the names this
 * node sends them jobs for, precision, state), how many serve each model —
 * counted from `serves`, so a worker announcing a name with another file's
 * hash or at another precision counts for nothing — and whether this node
 * has a worker and weights of its own (docs/SCALE.md "Worker
 * announcements"). */
static void health_workers(http_server *s, json_t *q)
{
    char *text = jobs_workers_json(s->q);
    json_t *list = text ? json_loads(text, 0, NULL) : NULL, *w, *m;
    free(text);
    json_t *serving = json_object();
    size_t i, k;
    json_array_foreach(list, i, w) {
        json_array_foreach(json_object_get(w, "serves"), k, m) {
            const char *name = json_string_value(m);
            if (name) json_object_set_new(serving, name, json_integer(json_integer_value(json_object_get(serving,
                                                                                                         name)) + 1));
        }
    }
    json_object_set_new(q, "live_workers", list ? list : json_array());
    json_object_set_new(q, "workers_per_model", serving);
    json_object_set_new(q, "local_worker", json_boolean(!s->cfg.no_local_worker));
    json_object_set_new(q, "weights_loaded", json_boolean(!s->cfg.no_local_worker));
}

enum MHD_Result get_health(http_server *s, req *r, struct MHD_Connection *c)
{
    if (atomic_load(&s->loading)) return health_loading(s, r, c);
    jobs_stats js;
    jobs_get_stats(s->q, &js);
    int down = atomic_load(&s->shutting_down);
    json_t *b = json_pack("{s:s, s:b, s:{s:s?, s:s?, s:s?, s:s?}, s:i, s:i, s:s?}", "status",
                          down ? "shutting_down" : "ok", "model_loaded", 1, "model", "name", s->cfg.model_name,
                          "family", s->cfg.model_family, "hash", s->cfg.model_hash, "vae", s->cfg.model_vae,
                          "queue_depth", js.depth, "running", js.running, "version",
                          s->cfg.version);
    /* a shared queue (jobs/redis.c): its workers; unreachable = degraded (503: take this node out) */
    if (b && js.shared_queue) {
        json_object_set_new(b, "queue", json_pack("{s:s, s:b, s:i}", "backend", jobs_backend_name(s->q), "reachable",
                                                  !js.queue_down, "workers", js.workers));
        health_workers(s, json_object_get(b, "queue"));
        if (js.queue_down && !down) json_object_set_new(b, "status", json_string("degraded"));
        down |= js.queue_down;
    }
    return reply_json(c, &r->ri, down ? 503 : 200, health_models(s, b));
}

/* A shared queue's per-worker gauges (its live workers' announcements,
 * docs/SCALE.md): sdserve_worker_busy{worker, precision} 0/1, appended to
 * text (taken; NULL when out of memory). */
static char *metrics_workers(http_server *s, char *text)
{
    char *list = text ? jobs_workers_json(s->q) : NULL;
    json_t *a = list ? json_loads(list, 0, NULL) : NULL, *w;
    free(list);
    size_t i;
    if (json_array_size(a) && text) {
        char *t = NULL;
        if (asprintf(&t, "%s# HELP sdserve_worker_busy 1 while a live worker of the shared queue runs a job.\n"
                     "# TYPE sdserve_worker_busy gauge\n", text) < 0) t = NULL;
        free(text);
        text = t;
    }
    json_array_foreach(a, i, w) {
        const char *id = json_string_value(json_object_get(w, "id"));
        const char *prec = json_string_value(json_object_get(w, "precision"));
        const char *st = json_string_value(json_object_get(w, "state"));
        if (!text || !id || strpbrk(id, "\"\\\n") || (prec && strpbrk(prec, "\"\\\n"))) continue;
        char *t = NULL;
        if (asprintf(&t, "%ssdserve_worker_busy{worker=\"%s\",precision=\"%s\"} %d\n", text, id, prec ? prec : "",
                     st && !strcmp(st, "busy")) < 0) t = NULL;
        free(text);
        text = t;
    }
    json_decref(a);
    return text;
}

/* The request bodies held against --max-buffered-mb (body.c), and the cap,
 * appended to text (taken; NULL when out of memory). */
static char *metrics_bodies(http_server *s, char *text)
{
    char *t = NULL;
    if (text && asprintf(&t, "%s# HELP sdserve_request_body_bytes_buffered Request body bytes held in memory by all "
                         "connections now.\n# TYPE sdserve_request_body_bytes_buffered gauge\n"
                         "sdserve_request_body_bytes_buffered %zu\n"
                         "# HELP sdserve_request_body_bytes_limit Their limit (--max-buffered-mb; 0 = none).\n"
                         "# TYPE sdserve_request_body_bytes_limit gauge\nsdserve_request_body_bytes_limit %zu\n",
                         text, atomic_load(&s->buffered), s->cfg.max_buffered) < 0)
        t = NULL;
    free(text);
    return t;
}

enum MHD_Result get_metrics(http_server *s, req *r, struct MHD_Connection *c)
{
    jobs_stats js;
    jobs_get_stats(s->q, &js);
    char *text = metrics_render(&js, s->labels, s->nlabels);
    if (js.shared_queue) text = metrics_workers(s, text);
    text = metrics_bodies(s, text);
    if (!text) return reply_errorf(c, &r->ri, SD_ENOMEM, "", "out of memory");
    size_t len = strlen(text);
    return reply_raw(c, &r->ri, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL);
}

enum MHD_Result get_openapi(http_server *s, req *r, struct MHD_Connection *c)
{
    char *doc = strdup(s->openapi);
    if (!doc) return reply_errorf(c, &r->ri, SD_ENOMEM, "", "out of memory");
    size_t len = strlen(doc);
    return reply_raw(c, &r->ri, 200, "application/json", doc, len, NULL);
}

/* GET /loras: what --lora-dir holds, each with whether it fits the model. */
#define LIST_LORAS_MAX 256
static json_t *lora_json(const sd_lora_info *l)
{
    char file[sizeof l->name + 16];
    snprintf(file, sizeof file, "%s.safetensors", l->name);
    return json_pack("{s:s, s:s, s:I, s:i, s:i, s:b, s:s?, s:s}", "name", l->name, "file", file, "size", (json_int_t)l->size, "rank", l->rank, "modules", l->modules, "fits", !l->fits[0], "reason",
                     l->fits[0] ? l->fits : NULL, "hash", l->hash);
}

enum MHD_Result get_loras(http_server *s, req *r, struct MHD_Connection *c)
{
    if (atomic_load(&s->loading)) return reply_loading(r, c);
    sd_err e;
    sd_err_clear(&e);
    sd_lora_info *li = calloc(LIST_LORAS_MAX, sizeof *li);
    if (!li) return reply_errorf(c, &r->ri, SD_ENOMEM, "", "out of memory");
    int n = s->cfg.list_loras ? s->cfg.list_loras(s->cfg.check_ctx, li, LIST_LORAS_MAX, &e) : 0;
    if (n < 0) { free(li); return reply_error(c, &r->ri, &e, 0, NULL); }
    json_t *arr = json_array();
    for (int i = 0; arr && i < n && i < LIST_LORAS_MAX; i++)
        if (json_array_append_new(arr, lora_json(&li[i]))) { json_decref(arr); arr = NULL; }
    free(li);
    json_t *b = arr ? json_pack("{s:o, s:i}", "loras", arr, "count", n) : NULL;
    if (!b) return reply_errorf(c, &r->ri, SD_ENOMEM, "", "out of memory");
    return reply_json(c, &r->ri, 200, b);
}
