/* routes.c — the route table and all that comes from it: lookup (once per
 * request), the method check (405 + Allow), the auth/rate gate, metrics
 * labels and GET / (the endpoint list).  Adding an endpoint = one row here + one
 * handler (server_int.h lists the files the handlers live in). */
#include "server_int.h"

#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "ratelimit.h"

/* Exact paths before the prefixes they start with (first match wins); the
 * order is the order of GET /'s list and of the metrics labels. */
static const route routes[] = {
    /* path, prefix, methods, label, listed, auth, body, img2img, answer, resume[, dialect: NULL = seed] */
    {"/", 0, "GET, HEAD", "/", 0, ROUTE_KEY, ROUTE_NOBODY, 0, get_root, NULL, NULL},
    {"/txt2img", 0, "POST", "/txt2img", 1, ROUTE_KEY, ROUTE_GEN, 0, seed_generate, seed_answer, NULL},
    {"/img2img", 0, "POST", "/img2img", 1, ROUTE_KEY, ROUTE_GEN, 1, seed_generate, seed_answer, NULL},
    {"/jobs/txt2img", 0, "POST", "/jobs/txt2img", 1, ROUTE_KEY, ROUTE_GEN, 0, jobs_create, NULL, NULL},
    {"/jobs/img2img", 0, "POST", "/jobs/img2img", 1, ROUTE_KEY, ROUTE_GEN, 1, jobs_create, NULL, NULL},
    /* live previews (issue 18 item 2): before /jobs/, whose prefix it shares */
    {"/jobs/*/preview", ROUTE_SEGMENT, "GET, HEAD", "/jobs/{id}/preview", 1, ROUTE_KEY, ROUTE_NOBODY, 0,
     jobs_preview_get, NULL, NULL},
    {"/jobs/", 1, "GET, HEAD, DELETE", "/jobs/{id}", 1, ROUTE_KEY, ROUTE_NOBODY, 0, jobs_get, NULL, NULL},
    {"/images/", 1, "GET, HEAD", "/images/{name}", 1, ROUTE_NOKEY, ROUTE_NOBODY, 0, get_image, NULL, NULL},
    {"/health", 0, "GET, HEAD", "/health", 1, ROUTE_FREE, ROUTE_NOBODY, 0, get_health, NULL, NULL},
    {"/metrics", 0, "GET, HEAD", "/metrics", 1, ROUTE_METRICS, ROUTE_NOBODY, 0, get_metrics, NULL, NULL},
    {"/openapi.json", 0, "GET, HEAD", "/openapi.json", 0, ROUTE_KEY, ROUTE_NOBODY, 0, get_openapi, NULL, NULL},
    {"/samplers", 0, "GET, HEAD", "/samplers", 1, ROUTE_KEY, ROUTE_NOBODY, 0, get_samplers, NULL, NULL},
    /* textual-inversion embeddings (issue 14 item 4) */
    {"/embeddings", 0, "GET, HEAD", "/embeddings", 1, ROUTE_KEY, ROUTE_NOBODY, 0, get_embeddings, NULL, NULL},
    {"/loras", 0, "GET, HEAD", "/loras", 1, ROUTE_KEY, ROUTE_NOBODY, 0, get_loras, NULL, NULL},
    /* the web page (issue 16 item 4, webui.c): no key for the page, its API calls carry one */
    {"/ui", 0, "GET, HEAD", "/ui", 0, ROUTE_NOKEY, ROUTE_NOBODY, 0, get_webui_dir, NULL, NULL},
    {"/ui/", 1, "GET, HEAD", "/ui/", 0, ROUTE_NOKEY, ROUTE_NOBODY, 0, get_webui, NULL, NULL},
    /* several models (issue 16 item 3) */
    {"/models", 0, "GET, HEAD", "/models", 1, ROUTE_KEY, ROUTE_NOBODY, 0, get_models, NULL, NULL},
    /* the OpenAI Images dialect (api_openai.c); /v1/ last: any other /v1/ path is its 404 */
    {"/v1/images/generations", 0, "POST", "/v1/images/generations", 1, ROUTE_KEY, ROUTE_GEN, 0, seed_generate,
     oai_answer, &dialect_openai},
    {"/v1/images/edits", 0, "POST", "/v1/images/edits", 1, ROUTE_KEY, ROUTE_GEN, 1, seed_generate, oai_answer,
     &dialect_openai},
    {"/v1/models", 0, "GET, HEAD", "/v1/models", 1, ROUTE_KEY, ROUTE_NOBODY, 0, oai_models, NULL, &dialect_openai},
    {"/v1/models/", 1, "GET, HEAD", "/v1/models/{id}", 1, ROUTE_KEY, ROUTE_NOBODY, 0, oai_models, NULL,
     &dialect_openai},
    {"/v1/", 1, "GET, HEAD, POST, PUT, PATCH, DELETE", "/v1/other", 0, ROUTE_KEY, ROUTE_NOBODY, 0, oai_not_found,
     NULL, &dialect_openai},
    /* the AUTOMATIC1111 dialect (issue 16 item 1, api_a1111.c); its other
     * endpoints (lists, interrupt, skip, any other /sdapi/ path) share the prefix row */
    {"/sdapi/v1/txt2img", 0, "POST", "/sdapi/v1/txt2img", 1, ROUTE_KEY, ROUTE_GEN, 0, a1111_generate, a1111_answer, &dialect_a1111},
    {"/sdapi/v1/img2img", 0, "POST", "/sdapi/v1/img2img", 1, ROUTE_KEY, ROUTE_GEN, 1, a1111_generate, a1111_answer, &dialect_a1111},
    {"/sdapi/v1/options", 0, "GET, HEAD, POST", "/sdapi/v1/options", 1, ROUTE_KEY, ROUTE_GEN, 0, a1111_options, NULL, &dialect_a1111},
    {"/sdapi/v1/progress", 0, "GET, HEAD", "/sdapi/v1/progress", 1, ROUTE_KEY, ROUTE_NOBODY, 0, a1111_progress, NULL, &dialect_a1111},
    {"/sdapi/", 1, "GET, HEAD, POST", "/sdapi/v1/{other}", 1, ROUTE_KEY, ROUTE_NOBODY, 0, a1111_other, NULL, &dialect_a1111},
};
#define NROUTES (sizeof routes / sizeof routes[0])
_Static_assert(NROUTES + 1 <= METRICS_MAX_ENDPOINTS, "more routes than metrics endpoints");

/* A ROUTE_SEGMENT row's path: its '*' stands for one non-empty segment. */
static int segment_match(const char *pattern, const char *path)
{
    const char *star = strchr(pattern, '*');
    size_t head = (size_t)(star - pattern);
    if (strncmp(path, pattern, head)) return 0;
    const char *seg = path + head, *rest = seg + strcspn(seg, "/");
    return rest > seg && !strcmp(rest, star + 1);
}

const route *route_find(const char *path)
{
    for (size_t i = 0; i < NROUTES; i++) {
        const route *rt = &routes[i];
        if (rt->prefix == ROUTE_SEGMENT) {
            if (segment_match(rt->path, path)) return rt;
        } else if (rt->prefix ? !strncmp(path, rt->path, strlen(rt->path)) : !strcmp(path, rt->path)) {
            return rt;
        }
    }
    return NULL;
}

const dialect *route_dialect(const route *rt) { return rt && rt->dl ? rt->dl : &dialect_seed; }

int route_endpoint(const route *rt) { return rt ? (int)(rt - routes) + 1 : 0; }
int route_labels(const char *labels[METRICS_MAX_ENDPOINTS])
{
    labels[0] = "other";
    for (size_t i = 0; i < NROUTES; i++) labels[i + 1] = routes[i].label;
    return (int)NROUTES + 1;
}

/* Calls fn(method, len, ud) for each method of a row's "GET, HEAD" list. */
static int each_method(const char *methods, int (*fn)(const char *m, size_t n, void *ud), void *ud)
{
    for (const char *p = methods; *p;) {
        size_t n = strcspn(p, ",");
        if (fn(p, n, ud)) return 1;
        p += n;
        while (*p == ',' || *p == ' ') p++;
    }
    return 0;
}

static int same_method(const char *m, size_t n, void *ud)
{
    const char *want = ud;
    return strlen(want) == n && !strncmp(m, want, n);
}

static int method_allowed(const route *rt, const char *method)
{
    return each_method(rt->methods, same_method, (void *)method);
}

typedef struct listing { json_t *arr; const char *label; int oom; } listing;

static int list_method(const char *m, size_t n, void *ud)
{
    listing *l = ud;
    if (n == 4 && !strncmp(m, "HEAD", 4)) return 0;
    char buf[96];
    snprintf(buf, sizeof buf, "%.*s %s", (int)n, m, l->label);
    if (json_array_append_new(l->arr, json_string(buf))) l->oom = 1;
    return l->oom;
}

static json_t *route_list(void)
{
    listing l = {json_array(), NULL, 0};
    if (!l.arr) return NULL;
    for (size_t i = 0; i < NROUTES && !l.oom; i++) {
        if (!routes[i].listed) continue;
        l.label = routes[i].label;
        each_method(routes[i].methods, list_method, &l);
    }
    if (l.oom) {
        json_decref(l.arr);
        return NULL;
    }
    return l.arr;
}

enum MHD_Result get_root(http_server *s, req *r, struct MHD_Connection *c)
{
    if (webui_wants_page(c)) return webui_root_redirect(r, c);   /* a browser: the web page */
    json_t *list = route_list();
    json_t *b = list ? json_pack("{s:s, s:s?, s:s, s:o}", "name", "sdserve", "version", s->cfg.version, "openapi",
                                 "/openapi.json", "endpoints", list)
                     : NULL;
    return reply_json(c, &r->ri, 200, b);
}

static int needs_key(const http_server *s, const route *rt)
{
    if (auth_keys_count(s->cfg.keys) == 0) return 0;
    if (!rt) return 1;   /* an unknown path answers 404 only to a key holder */
    return rt->auth == ROUTE_KEY || (rt->auth == ROUTE_METRICS && !s->cfg.metrics_open);
}

/* API key and rate limit, before anything else (the row's auth rule).
 * Image URLs need no key (a browser opens them; their names are unguessable,
 * docs/SERVER.md "API keys") but are rate-limited per address. */
int route_gate(http_server *s, req *r, struct MHD_Connection *c, enum MHD_Result *res)
{
    if (r->rt && r->rt->auth == ROUTE_FREE) return 0;
    /* a browser's GET / is only sent on to the web page (webui.c): no key for that */
    if (r->rt && r->rt->answer == get_root && webui_wants_page(c)) return 0;
    int key = -1;
    if (needs_key(s, r->rt)) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        int rc = auth_check(s->cfg.keys, h, &key);
        if (rc != AUTH_OK) {
            /* the dialect's own scheme first: A1111 clients send only Basic
             * (their --api-auth user:password) */
            int basic = r->ri.dl && r->ri.dl->auth_scheme && !strcmp(r->ri.dl->auth_scheme, "Basic");
            const char *how = basic ? "HTTP Basic with the key as the password (any user name), or 'Bearer KEY'"
                                    : "'Bearer KEY' (or HTTP Basic with the key as the password)";
            if (rc == AUTH_MISSING)
                *res = reply_errorf(c, &r->ri, SD_EAUTH, "Authorization", "an API key is required: send Authorization: %s",
                                    how);
            else if (rc == AUTH_MALFORMED)
                *res = reply_errorf(c, &r->ri, SD_EAUTH, "Authorization", "the Authorization header must be %s", how);
            else
                *res = reply_errorf(c, &r->ri, SD_EAUTH, "Authorization", "%s", "the API key is not valid");
            return 1;
        }
        r->owner = key + 1;
    }
    char who[80];
    if (key >= 0) snprintf(who, sizeof who, "key:%d", key);
    else snprintf(who, sizeof who, "ip:%s", r->ip);
    int wait = rl_take(s->cfg.rl, who, http_now());
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

enum MHD_Result route_dispatch(http_server *s, req *r, struct MHD_Connection *c)
{
    const route *rt = r->rt;
    if (r->raw_nul)
        return reply_errorf(c, &r->ri, SD_ENOTFOUND, "", "no such path: a path may not contain %%00 (a NUL byte)");
    if (!rt) return reply_errorf(c, &r->ri, SD_ENOTFOUND, "", "no such path '%.80s'; see GET /openapi.json", r->url);
    if (!method_allowed(rt, r->verb)) {
        sd_err e;
        sd_err_clear(&e);
        sd_errf(&e, SD_EMETHOD, "", "method %.16s is not allowed on %.80s; use %s", r->verb, r->url, rt->methods);
        return reply_error(c, &r->ri, &e, 0, rt->methods);
    }
    /* a row that reads a body on POST answers its GET from the request line (A1111's /options) */
    if (rt->body == ROUTE_NOBODY || strcmp(r->verb, "POST")) return rt->answer(s, r, c);
    if (atomic_load(&s->loading)) return reply_loading(r, c);
    return body_start(s, r, c);
}
