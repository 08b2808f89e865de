/* body.c — reading a generation request's body: Content-Type and
 * Content-Length checked before any byte is read (415/413; 503 when the
 * server-wide cap on buffered bodies has no room), then JSON and
 * form-urlencoded text into a capped buffer and multipart through
 * libmicrohttpd's post processor into a param_bag; at the end the bag is
 * parsed and validated (params.c) into r->request.  Every byte kept is charged
 * to the server-wide cap on buffered bodies (body_charge). */
#include "server_int.h"

#include <ctype.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PP_BUFFER (64 * 1024)   /* the multipart post processor's buffer */

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* The global cap on buffered bodies (cfg.max_buffered, 0 = none): every byte
 * a request keeps of its body (JSON/form text, multipart fields and the post
 * processor's buffer) is charged before it is stored and released when the
 * request drops its buffers; a charge that would pass the cap fails with 503
 * and the request's buffers are dropped at once (body_drop). */
int body_over_cap(http_server *s, req *r)
{
    sd_errf(&r->err, SD_EBUSY, "",
            "the request bodies being received would pass the server's limit of %zu MiB (--max-buffered-mb); "
            "retry later", s->cfg.max_buffered >> 20);
    return -1;
}

void body_release(http_server *s, req *r)
{
    if (r->held) atomic_fetch_sub(&s->buffered, r->held);
    r->held = 0;
}

int body_charge(http_server *s, req *r, size_t n)
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
    int max = r->bag.max_fields;
    params_bag_free(&r->bag);
    params_bag_init(&r->bag);
    r->bag.max_fields = max;
    body_release(s, r);
    malloc_trim(0);   /* freed heap pages back to the system: the cap is about resident memory */
}

static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                 const char *ctype, const char *te, const char *data, uint64_t off, size_t size)
{
    req *r = cls;
    if (r->err.code) return MHD_NO;
    if (body_charge(r->s, r, size)) return MHD_NO;
    /* libmicrohttpd may announce a value with an empty call (offset 0, no
     * bytes) and then give its bytes at offset 0 again (seen with undici's
     * FormData uploads: the openai SDK): that is the same value, not a
     * repeated field */
    const param *last = r->bag.n ? &r->bag.v[r->bag.n - 1] : NULL;
    int again = off == 0 && last && key && last->len == 0 && !strcmp(last->name, key);
    if (params_bag_add(&r->bag, key, filename ? PV_FILE : PV_TEXT, data, size, off == 0 && !again, &r->err))
        return MHD_NO;
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

enum MHD_Result body_start(http_server *s, req *r, struct MHD_Connection *c)
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

/* Appends to the JSON / form text, growing it to the declared length at once. */
static void text_append(req *r, const char *data, size_t size)
{
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
}

void body_feed(http_server *s, req *r, const char *data, size_t size)
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
        text_append(r, data, size);
    } else if (MHD_post_process(r->pp, data, size) != MHD_YES && !r->err.code) {
        sd_errf(&r->err, SD_EINVAL, "", "the multipart body is malformed");
    }
    if (r->err.code == SD_EBUSY) body_drop(s, r);
}

void body_finish(http_server *s, req *r)
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
    const dialect *d = route_dialect(r->rt);
    if (!r->err.code) {
        if (d->to_request && d->to_request(s, r, &r->err) > 0) {   /* no generation's body */
            params_bag_free(&r->bag);
            return;
        }
        if (!d->to_request) params_to_request(&r->bag, r->rt->img2img, NULL, &r->request, &r->err);
    }
    /* the model's own limits (prompt token windows), before queueing */
    if (!r->err.code && s->cfg.check_request && s->cfg.check_request(s->cfg.check_ctx, &r->request, &r->err))
        dialect_name_field_as(d, r->sent, &r->err);   /* the engine's names -> the dialect's (as sent) */
    /* the size: the model's native one when unset, then the server's limits */
    if (!r->err.code) req_resolve_size(&r->request, 0);
    if (!r->err.code && req_check_size(&r->request, s->cfg.max_side, s->cfg.max_pixels, &r->err))
        dialect_name_field_as(d, r->sent, &r->err);
    params_bag_free(&r->bag);
}

void body_free(http_server *s, req *r)
{
    if (r->pp) MHD_destroy_post_processor(r->pp);
    r->pp = NULL;
    free(r->text);
    r->text = NULL;
    params_bag_free(&r->bag);
    sd_request_free(&r->request);
    body_release(s, r);
}
