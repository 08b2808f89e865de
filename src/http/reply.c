/* reply.c — JSON answers and the error shape (reply.h). */
#include "reply.h"

#include "dialect.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A JSON body gets a final newline when it lacks one, so the shell prompt
 * after a curl lands on its own line; JSON parsers ignore it.  Returns the
 * (possibly moved) body; on OOM the body is left as it was. */
static char *json_newline(const char *ctype, char *body, size_t *len)
{
    if (!ctype || strncmp(ctype, "application/json", 16) || (*len && body[*len - 1] == '\n')) return body;
    char *nb = realloc(body, *len + 2);
    if (!nb) return body;
    nb[(*len)++] = '\n';
    nb[*len] = 0;
    return nb;
}

enum MHD_Result reply_raw(struct MHD_Connection *c, reply_info *ri, int status, const char *ctype, char *body,
                          size_t len, ...)
{
    body = json_newline(ctype, body, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    va_list ap;
    va_start(ap, len);
    for (;;) {
        const char *name = va_arg(ap, const char *);
        if (!name) break;
        const char *value = va_arg(ap, const char *);
        if (value) MHD_add_response_header(resp, name, value);
    }
    va_end(ap);
    if (ri && ri->hold && status >= 400 && status < 500) {   /* sent once the body has been read (server.c) */
        if (ri->held) MHD_destroy_response(resp);
        else {
            ri->held = resp;
            ri->held_status = status;
            ri->held_bytes = len;
        }
        return MHD_YES;
    }
    enum MHD_Result r = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (ri) {
        ri->status = status;
        ri->bytes = len;
    }
    return r;
}

static enum MHD_Result reply_json_f(struct MHD_Connection *c, reply_info *ri, int status, json_t *v, size_t flags,
                                    const char *h1, const char *v1)
{
    char *body = v ? json_dumps(v, flags) : NULL;
    json_decref(v);
    if (!body) {
        static const char oom[] = "{\"status\":\"error\",\"code\":\"out_of_memory\",\"field\":null,"
                                  "\"message\":\"the server ran out of memory\"}";
        body = strdup(oom);
        status = 503;
        if (!body) return MHD_NO;
    }
    return reply_raw(c, ri, status, "application/json", body, strlen(body), h1, v1, NULL);
}

static enum MHD_Result reply_json_h(struct MHD_Connection *c, reply_info *ri, int status, json_t *v,
                                    const char *h1, const char *v1)
{
    return reply_json_f(c, ri, status, v, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15), h1, v1);
}

enum MHD_Result reply_json(struct MHD_Connection *c, reply_info *ri, int status, json_t *v)
{
    return reply_json_h(c, ri, status, v, NULL, NULL);
}

enum MHD_Result reply_json_utf8(struct MHD_Connection *c, reply_info *ri, int status, json_t *v, const char *h1,
                                const char *v1)
{
    return reply_json_f(c, ri, status, v, JSON_COMPACT, h1, v1);
}

json_t *error_body(const sd_err *err)
{
    sd_errcode code = err->code == SD_OK ? SD_EINTERNAL : err->code;
    return json_pack("{s:s, s:s, s:o, s:s}", "status", "error", "code", sd_err_code_name(code), "field",
                     err->field[0] ? json_string(err->field) : json_null(), "message",
                     err->msg[0] ? err->msg : "unknown error");
}

enum MHD_Result reply_error(struct MHD_Connection *c, reply_info *ri, const sd_err *err, int retry_after,
                            const char *allow)
{
    int status = sd_err_http_status(err->code == SD_OK ? SD_EINTERNAL : err->code);
    const dialect *d = ri ? ri->dl : NULL;
    json_t *(*shape)(const sd_err *, int *) = d && d->error_body ? d->error_body : NULL;
    int st2 = status;
    json_t *b = shape ? shape(err, &st2) : error_body(err);
    /* field and message may not be UTF-8 when they echo a client's bytes (a
     * name, a Content-Type): json_string then fails; said in ASCII instead. */
    if (!b) {
        sd_err e2 = *err;
        e2.field[0] = 0;
        for (char *p = e2.msg; *p; p++)
            if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20) *p = '?';
        st2 = status;
        b = shape ? shape(&e2, &st2) : error_body(&e2);
    }
    status = st2;
    if (status == 503 || status == 429) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry_after > 0 ? retry_after : 5);
        return reply_json_h(c, ri, status, b, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (status == 405) return reply_json_h(c, ri, status, b, MHD_HTTP_HEADER_ALLOW, allow);
    if (status == 401)
        return reply_json_h(c, ri, status, b, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                            d && d->auth_scheme ? d->auth_scheme : "Bearer");
    return reply_json_h(c, ri, status, b, NULL, NULL);
}

enum MHD_Result reply_errorf(struct MHD_Connection *c, reply_info *ri, sd_errcode code, const char *field,
                             const char *fmt, ...)
{
    sd_err e;
    sd_err_clear(&e);
    va_list ap;
    va_start(ap, fmt);
    sd_verrf(&e, code, field, fmt, ap);
    va_end(ap);
    return reply_error(c, ri, &e, 0, NULL);
}

const char *job_status_word(job_state s)
{
    return s == JOB_SUCCEEDED ? "success" : (s == JOB_FAILED || s == JOB_CANCELLED) ? "error" : "pending";
}
