/* wire.h — a job that can travel: sd_request, job_result and sd_err to and
 * from JSON, for a queue whose workers run on other machines (issue 17).
 *
 * The request is one JSON object: "v": 1, every row of the field table
 * (request.c req_fields[]) by its seed API name, the route and the
 * server-side fields (img2img, seed_was_random, owner), the engine-only
 * fields the table does not name (ksampler, name_schedule), and the init
 * image as decoded pixels ("init_image": {width, height, rgb: base64 of the
 * raw RGB8 bytes}: bit-identical, never re-encoded).  Parsing is strict:
 * it reads what came over the network, so an unknown key, a wrong type, a
 * value outside the table's range, a pixel buffer of the wrong length, bad
 * base64 or another version is an SD_EINVAL naming the key, and sizes are
 * checked before anything is allocated.  The output is deterministic: the
 * same request gives the same text under JSON_SORT_KEYS | JSON_COMPACT.
 * docs/WIRE.md lists the keys.  This module knows nothing of Redis or
 * HTTP. */
#ifndef SD_JOBS_WIRE_H
#define SD_JOBS_WIRE_H

#include <jansson.h>

#include "../base/err.h"
#include "jobs.h"
#include "request.h"

#define WIRE_VERSION 1

/* The whole request as one JSON object (new reference), or NULL + err
 * (SD_ENOMEM; SD_EINVAL naming the field for a text that is not UTF-8). */
json_t *wire_request_to_json(const sd_request *r, sd_err *err);
/* The inverse, into *out (sd_request_free frees it; zeroed on failure):
 * 0, or -1 + err naming the key ("num_inference_steps", "init_image.rgb",
 * "loras[1].weight", "v"). */
int wire_request_from_json(const json_t *j, sd_request *out, sd_err *err);

/* A succeeded job's result: {"v": 1, "images": [{key, url, mime, seed}],
 * prompt, negative, width, height, steps, cfg, denoise, sampler,
 * model_name, model_hash} (NULL texts omitted).  mime and sampler come back
 * as the static strings job_result holds (img_format_mime, the sampler
 * labels); an unknown one is refused.  from_json: a new result
 * (job_result_free), or NULL + err naming the key. */
json_t *wire_result_to_json(const job_result *r, sd_err *err);
job_result *wire_result_from_json(const json_t *j, sd_err *err);

/* A failed job's error: {"code": sd_err_code_name, "field", "message"}.
 * to_json: NULL only when out of memory.  from_json: 0, or -1 with *out
 * an SD_EINTERNAL saying what was malformed (an unknown code name, "ok",
 * a text longer than sd_err holds). */
json_t *wire_error_to_json(const sd_err *e);
int wire_error_from_json(const json_t *j, sd_err *out);

#endif
