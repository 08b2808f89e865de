/* dialect.h — what differs between the HTTP API dialects (the seed API,
 * AUTOMATIC1111's /sdapi/v1, OpenAI's /v1/images): how a body's fields
 * become the one sd_request (jobs/request.h), how the engine's field names
 * are said, and the shape of an error.  Everything else (the queue, limits,
 * auth, storage, metrics, the body reader) is shared.
 *
 * A route row (routes.c) names its dialect (NULL = the seed API).  The
 * server sets r->ri.dl from it as soon as the path is routed, so every
 * error of that request — 401, 404, 405, 413, 415, a bad body, a failed
 * job — goes out through reply_error in the dialect's own shape without
 * its call sites knowing which dialect it is.  Adding a dialect = one
 * `dialect` value + its route rows + their handlers (one file per dialect:
 * api_seed.c, api_a1111.c, api_openai.c).  Private to src/http. */
#ifndef SD_HTTP_DIALECT_H
#define SD_HTTP_DIALECT_H

#include <jansson.h>

#include "../base/err.h"

struct http_server;
struct req;
struct req_field;

/* A seed API field name and a dialect's name for it. */
typedef struct dialect_name { const char *seed, *name; } dialect_name;

typedef struct dialect {
    const char *name;        /* "seed", "a1111", "openai": logs and tests */
    int max_fields;          /* fields a body may hold (0 = PARAMS_MAX_FIELDS): other
                                dialects' clients send many they do not need us to read */
    /* The read body (r->bag) validated into r->request for route r->rt
     * (r->rt->img2img says which fields): 0, or -1 with err naming the
     * field as this dialect's clients call it; 1 = the body was no
     * generation's (A1111's POST /options) and is done with: no model checks.  NULL = the seed API's
     * params_to_request. */
    int (*to_request)(struct http_server *s, struct req *r, sd_err *err);
    /* This dialect's names for the seed API's fields, one table read by
     * dialect_field_name / dialect_name_field: the field table's column
     * for this dialect (A1111's req_field.a1111; NULL = none), then
     * `names`, the renames no row has ({NULL} ends; NULL = none).
     * Without either, the seed API's names. */
    const char *(*row_name)(const struct req_field *f);
    const struct dialect_name *names;
    /* The error body for err; *status holds the HTTP status the code maps
     * to (sd_err_http_status) and may be changed (A1111 answers
     * validation errors with 422).  NULL = the seed API's error_body. */
    json_t *(*error_body)(const sd_err *err, int *status);
    /* The scheme a 401 names in WWW-Authenticate (NULL = "Bearer"). */
    const char *auth_scheme;
    /* Called when a request of this dialect ends (completed), before its
     * job is released: frees what the dialect hung on r->dl_ctx.  NULL = none. */
    void (*req_done)(struct http_server *s, struct req *r);
} dialect;

extern const dialect dialect_seed;

/* d's name for a field the engine or the seed API names `field`
 * ("steps", "num_inference_steps" -> A1111's "steps"); the seed API's name
 * when d has none (NULL d = the seed API). */
const char *dialect_field_name(const dialect *d, const char *field);
/* err said in d's names: err->field, and every whole-word seed API name in
 * err->msg that d names otherwise (NULL d = the seed API: the field only). */
void dialect_name_field(const dialect *d, sd_err *err);
/* The same with a request's own names first: `sent` (the seed API's field
 * -> the name this body gave it, {NULL} ends; NULL = none) for the fields
 * a dialect's clients may name several ways (OpenAI's image / image[] /
 * images, cfg_scale / guidance_scale), so errors say the field as sent. */
const char *dialect_field_name_as(const dialect *d, const dialect_name *sent, const char *field);
void dialect_name_field_as(const dialect *d, const dialect_name *sent, sd_err *err);

#endif
