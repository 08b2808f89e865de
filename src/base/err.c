/* err.c — filling and mapping the sd_err error type (see err.h). */
#include "err.h"

#include <stdio.h>
#include <string.h>

void sd_err_clear(sd_err *e)
{
    if (!e) return;
    e->code = SD_OK;
    e->field[0] = 0;
    e->msg[0] = 0;
}

int sd_verrf(sd_err *e, sd_errcode code, const char *field, const char *fmt, va_list ap)
{
    if (!e || e->code != SD_OK) return -1;
    e->code = code;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    return -1;
}

int sd_errf(sd_err *e, sd_errcode code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sd_verrf(e, code, field, fmt, ap);
    va_end(ap);
    return -1;
}

void sd_err_prefix(sd_err *e, const char *fmt, ...)
{
    if (!e || e->code == SD_OK) return;
    char pre[256], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s: %s", pre, old);
}

static const struct { sd_errcode code; int status; const char *name; } err_table[] = {
    {SD_OK, 200, "ok"},
    {SD_EINVAL, 400, "invalid_argument"},
    {SD_ETOOLARGE, 413, "too_large"},
    {SD_EMEDIA, 415, "unsupported_media_type"},
    {SD_ENOTFOUND, 404, "not_found"},
    {SD_EMETHOD, 405, "method_not_allowed"},
    {SD_EBUSY, 503, "busy"},
    {SD_ECANCELLED, 409, "cancelled"},
    {SD_EFORMAT, 500, "bad_model_file"},
    {SD_EIO, 500, "io_error"},
    {SD_ENOMEM, 503, "out_of_memory"},
    {SD_EUPSTREAM, 502, "storage_failed"},
    {SD_ETIMEOUT, 504, "timeout"},
    {SD_EAUTH, 401, "unauthorized"},
    {SD_ERATE, 429, "rate_limited"},
    {SD_EINTERNAL, 500, "internal_error"},
};

int sd_err_http_status(sd_errcode code)
{
    for (size_t i = 0; i < sizeof err_table / sizeof err_table[0]; i++)
        if (err_table[i].code == code) return err_table[i].status;
    return 500;
}

const char *sd_err_code_name(sd_errcode code)
{
    for (size_t i = 0; i < sizeof err_table / sizeof err_table[0]; i++)
        if (err_table[i].code == code) return err_table[i].name;
    return "internal_error";
}
