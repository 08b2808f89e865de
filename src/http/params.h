/* params.h — request fields: collected from any body format into one bag,
 * then validated into an sd_request (jobs/request.h) against the ranges of
 * the product contract (/work/shared/spec/API.md), which its field table
 * holds.
 *
 * Form-urlencoded and multipart bodies are split by libmicrohttpd's post
 * processor (server.c) which feeds params_bag_add(); JSON bodies are parsed
 * with jansson by params_bag_from_json().  Every failure fills sd_err with
 * the field at fault; nothing here trusts the client. */
#ifndef SD_HTTP_PARAMS_H
#define SD_HTTP_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "../base/err.h"
#include "../engine/sd.h"
#include "../jobs/request.h"

/* How a value arrived: text (form, multipart, JSON string), a JSON number, a
 * file part of a multipart body (raw bytes), or a JSON value of another kind. */
typedef enum { PV_TEXT, PV_NUMBER, PV_FILE, PV_BOOL, PV_NULL, PV_ARRAY, PV_OBJECT } pv_kind;

typedef struct param {
    char *name;
    pv_kind kind;
    char *val;          /* NUL-terminated; may contain NUL bytes for PV_FILE (use len) */
    size_t len, cap;
} param;

typedef struct param_bag {
    param *v;
    int n, cap;
    size_t total;       /* bytes held */
    int spaces_are_plus;   /* form-urlencoded: a space in base64 was an unencoded '+' */
    int max_fields;        /* fields it may hold; 0 = PARAMS_MAX_FIELDS (dialect.h max_fields) */
    int json_types;        /* from a JSON body, which has booleans: a flag row (an integer field of
                              range [0, 1]) refuses a boolean word in a string ("true"), which a form
                              or multipart body may send; params_bag_from_json sets it */
} param_bag;

/* The body's shape; field ranges are in the field table (jobs/request.h). */
enum {
    PARAMS_MAX_FIELDS = 32,
    PARAMS_MAX_JSON_DEPTH = 16,
};

void params_bag_init(param_bag *b);
void params_bag_free(param_bag *b);
/* Appends a chunk of field `name`.  first=1 starts a new value (offset 0):
 * a second value for a name already present is refused ("appears more than once"). */
int params_bag_add(param_bag *b, const char *name, pv_kind kind, const char *data, size_t len, int first,
                   sd_err *err);
const param *params_bag_get(const param_bag *b, const char *name);
/* A dialect's body into the seed API's bag (api_a1111.c, api_openai.c):
 * p's value appended to dst as field `name` (a new field: a second one is
 * refused as params_bag_add does), moved, not copied (an init image may be
 * large): p is left holding an empty value of its kind. */
int params_bag_move(param_bag *dst, param *p, const char *name, sd_err *err);
/* Splits an application/x-www-form-urlencoded body into the bag: fields on
 * '&', name and value on the FIRST '=' (a raw base64 value keeps its '='
 * padding; libmicrohttpd's post processor refuses those), '+' as space, then
 * %XX decoding by MHD_http_unescape. */
int params_bag_from_urlencoded(param_bag *b, char *body, size_t len, sd_err *err);
/* Parses a JSON object body (depth-limited, duplicates refused) into the bag;
 * array and object values are kept as compact JSON text (PV_ARRAY, PV_OBJECT);
 * sets json_types. */
int params_bag_from_json(param_bag *b, const char *body, size_t len, sd_err *err);

/* Number parsing shared with the tests: decimal text only (no hex, inf, nan),
 * optional surrounding blanks, finite.  0 or -1. */
int params_parse_number(const char *s, size_t len, double *out);
/* A boolean word as A1111's request models (pydantic 1) read one, in any
 * case: true 1 on t y yes / false 0 off f n no.  1 with the value in *out,
 * else 0. */
int params_bool_word(const char *s, int *out);
/* 1 when s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
int params_utf8_valid(const char *s, size_t len);
/* 1 for the code points trimmed from text fields before the emptiness
 * check: C0 blanks, U+0085, Unicode Zs (U+00A0, U+2003, U+3000...), U+2028/9. */
int params_unicode_blank(uint32_t cp);

/* Validates the bag for /txt2img (img2img=0) or /img2img (1) against the
 * field table (jobs/request.h) into *out (sd_request_free), with the ranges
 * `dialect` widens (its name, req_field_as; NULL = the seed API's).  A
 * random seed is drawn here when none was given.  0 or -1 with err (field
 * set). */
int params_to_request(const param_bag *b, int img2img, const char *dialect, sd_request *out, sd_err *err);

/* The seed API's name for a field the engine names `field` in an error
 * ("steps" -> "num_inference_steps", "negative" -> "negative_prompt"), or
 * `field` itself when the engine's name is no request field's. */
const char *params_field_name(const char *field);
/* err->field turned into the seed API's name (params_field_name). */
void params_name_field(sd_err *err);

#endif
