/* err.h — the one error type of sdserve.
 *
 * Every fallible function takes an `sd_err *` and, on failure, fills it via
 * sd_errf() and returns -1 (or NULL).  The first failure wins: later calls on
 * an already-set error do not overwrite it, so the most specific message (the
 * one closest to the cause) is what reaches the client, like curl's
 * CURLOPT_ERRORBUFFER.  `field` names the request field or tensor at fault
 * when there is one.  sd_err_http_status() maps codes to HTTP statuses in one
 * table. */
#ifndef SD_ERR_H
#define SD_ERR_H

#include <stdarg.h>

typedef enum {
    SD_OK = 0,
    SD_EINVAL,      /* bad argument / request field             -> 400 */
    SD_ETOOLARGE,   /* body or image too large                  -> 413 */
    SD_EMEDIA,      /* unsupported content type                 -> 415 */
    SD_ENOTFOUND,   /* no such path / job / file                -> 404 */
    SD_EMETHOD,     /* wrong HTTP method                        -> 405 */
    SD_EBUSY,       /* queue full                               -> 503 */
    SD_ECANCELLED,  /* job cancelled by client or shutdown      -> 499-ish, reported as state */
    SD_EFORMAT,     /* a model/data file is malformed           -> 500 at serve time */
    SD_EIO,         /* file system / OS error                   -> 500 */
    SD_ENOMEM,      /* allocation failed                        -> 503 */
    SD_EUPSTREAM,   /* object store failed                      -> 502 */
    SD_ETIMEOUT,    /* job time limit                           -> 504 */
    SD_EAUTH,       /* missing / wrong API key                  -> 401 */
    SD_ERATE,       /* rate limited                             -> 429 */
    SD_EINTERNAL    /* our own bug                              -> 500 */
} sd_errcode;

typedef struct sd_err {
    sd_errcode code;
    char field[64];   /* request field or tensor name at fault, or "" */
    char msg[512];    /* a sentence a person can act on */
} sd_err;

/* Reset to "no error". */
void sd_err_clear(sd_err *e);
/* Set the error unless one is already set; always returns -1.  `e` may be NULL. */
int sd_errf(sd_err *e, sd_errcode code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int sd_verrf(sd_err *e, sd_errcode code, const char *field, const char *fmt, va_list ap);
/* Prefix the existing message with context ("loading unet: ..."). */
void sd_err_prefix(sd_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sd_err_http_status(sd_errcode code);
const char *sd_err_code_name(sd_errcode code);

#endif
