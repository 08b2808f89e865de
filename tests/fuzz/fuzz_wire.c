/* fuzz_wire.c — libFuzzer target for the wire format's readers
 * (src/jobs/wire.c): any JSON text given to wire_request_from_json,
 * wire_result_from_json and wire_error_from_json is either refused with an
 * error naming something, or accepted; what is accepted re-serializes, and
 * that text parses back to a value that serializes to the same text (the
 * round trip is a fixed point).  Nothing may crash or leak.
 * fuzz-sources: src/jobs/wire.c src/jobs/request.c src/jobs/result.c src/image/base64.c src/image/image.c src/image/png.c src/image/jpeg.c src/image/webp.c src/image/exif.c src/image/orient.c src/image/resize.c src/base/resample.c src/image/a1111.c src/base/err.c src/base/pyfloat.c src/base/alloc.c src/engine/samplers/samplers.c src/engine/samplers/schedule.c src/engine/samplers/philox.c src/engine/samplers/choice.c src/engine/samplers/kdiff_sched.c
 * fuzz-libs: -ljansson -lpng16 -ljpeg -lwebp -lz -lm */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/jobs/wire.h"

#define FLAGS (JSON_SORT_KEYS | JSON_COMPACT)

/* The text of j (taken), aborting when it cannot be written. */
static char *dump(json_t *j)
{
    char *t = j ? json_dumps(j, FLAGS) : NULL;
    json_decref(j);
    if (!t) abort();
    return t;
}

/* Parses text, which the writer made, back with from(), re-writes it with
 * to(): must give text again. */
static void fixed_point_request(char *text)
{
    json_t *k = json_loads(text, 0, NULL);
    sd_request r;
    sd_err err;
    sd_err_clear(&err);
    if (!k || wire_request_from_json(k, &r, &err)) abort();
    json_decref(k);
    char *again = dump(wire_request_to_json(&r, &err));
    if (strcmp(text, again)) abort();
    free(again);
    sd_request_free(&r);
}

static void request(const json_t *j)
{
    sd_request r;
    sd_err err;
    sd_err_clear(&err);
    if (wire_request_from_json(j, &r, &err)) {
        if (!err.code || r.gen.prompt || r.gen.init_rgb || r.gen.loras || r.model) abort();
        return;
    }
    char *text = dump(wire_request_to_json(&r, &err));
    sd_request_free(&r);
    fixed_point_request(text);
    free(text);
}

static void result(const json_t *j)
{
    sd_err err;
    sd_err_clear(&err);
    job_result *r = wire_result_from_json(j, &err);
    if (!r) {
        if (!err.code) abort();
        return;
    }
    char *text = dump(wire_result_to_json(r, &err));
    job_result_free(r);
    json_t *k = json_loads(text, 0, NULL);
    job_result *b = k ? wire_result_from_json(k, &err) : NULL;
    json_decref(k);
    if (!b) abort();
    char *again = dump(wire_result_to_json(b, &err));
    if (strcmp(text, again)) abort();
    job_result_free(b);
    free(text);
    free(again);
}

static void error(const json_t *j)
{
    sd_err e, back;
    if (wire_error_from_json(j, &e)) {
        if (e.code != SD_EINTERNAL) abort();
        return;
    }
    json_t *k = wire_error_to_json(&e);
    if (!k || wire_error_from_json(k, &back) || back.code != e.code || strcmp(back.field, e.field) ||
        strcmp(back.msg, e.msg))
        abort();
    json_decref(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!j) return 0;
    request(j);
    result(j);
    error(j);
    json_decref(j);
    return 0;
}
