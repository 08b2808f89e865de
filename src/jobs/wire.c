/* wire.c — a job that can travel: sd_request, job_result and sd_err to and
 * from JSON (wire.h; the keys in docs/WIRE.md).  Writing walks the field
 * table, so a new row travels without a change here; reading is strict
 * and checks every size before it allocates, because its input came over
 * the network. */
#include "wire.h"
#include "../base/alloc.h"
#include "../image/image.h"

#include <float.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A result's texts that are not prompts (key, url, model name and hash), in bytes. */
#define WIRE_MAX_TEXT 4096
/* The init image still undecoded (init_data), in bytes. */
#define WIRE_MAX_INIT_DATA (64 << 20)
/* An image's A1111 parameters text: two prompts and the entries (r3more). */
#define WIRE_MAX_PARAMETERS (2 * REQ_MAX_PROMPT + (64 << 10))
/* An image seed: the request's seed + image index. */
#define WIRE_MAX_IMAGE_SEED (REQ_MAX_SEED + REQ_MAX_OUTPUTS)

/* The request's keys that are not rows of the field table. */
static const char *const request_extra_keys[] = {
    "v", "img2img", "seed_was_random", "owner", "ksampler", "name_schedule", "init_data",
    "mask_data",   /* the undecoded mask */
    NULL,
};
static const char *const result_keys[] = {
    "v", "images", "prompt", "negative", "width", "height", "steps", "cfg", "denoise", "sampler",
    "model_name", "model_hash", NULL,
};
static const char *const image_keys[] = {"key", "url", "mime", "seed", "parameters", NULL};
static const char *const init_image_keys[] = {"width", "height", "rgb", NULL};
static const char *const init_data_keys[] = {"raw", "bytes", NULL};
static const char *const lora_keys[] = {"name", "weight", NULL};
static const char *const error_keys[] = {"code", "field", "message", NULL};

/* ---- writing ------------------------------------------------------------- */

/* o[key] = v (taken); SD_ENOMEM when v is NULL or the object cannot grow. */
static int put(json_t *o, const char *key, json_t *v, sd_err *err)
{
    if (!v || json_object_set_new(o, key, v)) return sd_errf(err, SD_ENOMEM, key, "out of memory");
    return 0;
}

/* o[key] = the text s; nothing when s is NULL. */
static int put_text(json_t *o, const char *key, const char *s, sd_err *err)
{
    if (!s) return 0;
    json_t *v = json_string(s);
    if (!v) return sd_errf(err, SD_EINVAL, key, "%s is not valid UTF-8 text", key);
    return put(o, key, v, err);
}

/* o[key] = base64 of data[0..len). */
static int put_base64(json_t *o, const char *key, const uint8_t *data, size_t len, sd_err *err)
{
    size_t n;
    char *t = img_base64_encode(data, len, &n);
    if (!t) return sd_errf(err, SD_ENOMEM, key, "out of memory");
    json_t *v = json_stringn_nocheck(t, n);
    free(t);
    return put(o, key, v, err);
}

/* d (an undecoded image as sent) as o[key] = {"raw", "bytes"}. */
static int put_image_data(json_t *o, const char *key, req_image_ref d, sd_err *err)
{
    json_t *j = json_object();
    if (put(o, key, j, err) || put(j, "raw", json_boolean(*d.is_raw), err)) return -1;
    return put_base64(j, "bytes", (const uint8_t *)*d.data, *d.len, err);
}

/* the mask, decoded (gen.mask: init-sized bytes) or as sent. */
static int put_mask(json_t *o, const req_field *f, const sd_request *r, sd_err *err)
{
    const sd_gen_params *g = &r->gen;
    if (g->mask && (g->init_width <= 0 || g->init_height <= 0))
        return sd_errf(err, SD_EINVAL, f->name, "%s has no init image to match", f->name);
    if (g->mask && put_base64(o, f->name, g->mask, (size_t)g->init_width * (size_t)g->init_height, err)) return -1;
    return r->mask_data ? put_image_data(o, "mask_data", req_image_slot(f, (sd_request *)r), err) : 0;
}

static int put_init_image(json_t *o, const req_field *f, const sd_request *r, sd_err *err)
{
    if (req_field_is_mask(f)) return put_mask(o, f, r, err);
    const sd_gen_params *g = &r->gen;
    if (g->init_rgb) {
        json_t *im = json_object();
        if (put(o, "init_image", im, err)) return -1;
        if (put(im, "width", json_integer(g->init_width), err) || put(im, "height", json_integer(g->init_height), err))
            return -1;
        if (g->init_width <= 0 || g->init_height <= 0)
            return sd_errf(err, SD_EINVAL, "init_image", "init_image has no size (%dx%d)", g->init_width,
                           g->init_height);
        if (put_base64(im, "rgb", g->init_rgb, (size_t)g->init_width * (size_t)g->init_height * 3, err)) return -1;
    }
    if (r->init_data && put_image_data(o, "init_data", req_image_slot(f, (sd_request *)r), err)) return -1;
    return 0;
}

static int put_loras(json_t *o, const char *key, const sd_gen_params *g, sd_err *err)
{
    json_t *a = json_array();
    if (put(o, key, a, err)) return -1;
    for (int i = 0; i < g->n_loras; i++) {
        json_t *l = json_object();
        if (!l || json_array_append_new(a, l)) return sd_errf(err, SD_ENOMEM, key, "out of memory");
        json_t *name = json_string(g->loras[i].name);
        if (!name) return sd_errf(err, SD_EINVAL, key, "%s: a LoRA name is not valid UTF-8 text", key);
        if (put(l, "name", name, err) || put(l, "weight", json_real(g->loras[i].weight), err)) return -1;
    }
    return 0;
}

/* One row of the field table. */
static int put_field(json_t *o, const req_field *f, const sd_request *r, sd_err *err)
{
    double v = req_field_get_number(f, r);
    switch (f->type) {
    case RF_TEXT: return put_text(o, f->name, *req_field_text(f, (sd_request *)r), err);
    case RF_INT: return put(o, f->name, json_integer((json_int_t)v), err);
    case RF_SEED: return put(o, f->name, json_integer((json_int_t) * (const uint64_t *)((const char *)r + f->offset)), err);
    case RF_FLOAT: return put(o, f->name, json_real(v), err);
    case RF_SAMPLER: return put_text(o, f->name, sd_sampler_name((sd_sampler)(int)v), err);
    case RF_FORMAT: return put_text(o, f->name, img_format_name((img_format)(int)v), err);
    case RF_SCHEDULER: case RF_SPACING: case RF_UPSCALER: {
        const char *n = req_field_value_name(f, v);
        return *n ? put_text(o, f->name, n, err) : 0;
    }
    case RF_IMAGE: return put_init_image(o, f, r, err);
    case RF_LORAS: return put_loras(o, f->name, &r->gen, err);
    }
    return 0;
}

static int put_request(json_t *o, const void *src, sd_err *err)
{
    const sd_request *r = src;
    if (put(o, "v", json_integer(WIRE_VERSION), err) || put(o, "img2img", json_boolean(r->img2img), err) ||
        put(o, "seed_was_random", json_boolean(r->seed_was_random), err) ||
        put(o, "owner", json_integer(r->owner), err))
        return -1;
    if (r->gen.ksampler && put_text(o, "ksampler", sd_ksampler_kname(r->gen.ksampler), err)) return -1;
    if (r->gen.name_schedule && put_text(o, "name_schedule", sd_scheduler_name(r->gen.name_schedule), err)) return -1;
    for (int i = 0; i < req_nfields; i++)
        if (put_field(o, &req_fields[i], r, err)) return -1;
    return 0;
}

/* A new object filled by fill(o, src), or NULL + err. */
static json_t *build(int (*fill)(json_t *, const void *, sd_err *), const void *src, const char *what, sd_err *err)
{
    json_t *o = json_object();
    if (!o) {
        sd_errf(err, SD_ENOMEM, what, "out of memory");
        return NULL;
    }
    if (fill(o, src, err)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *wire_request_to_json(const sd_request *r, sd_err *err) { return build(put_request, r, "request", err); }

/* ---- reading: shapes ------------------------------------------------------ */

static int in_list(const char *key, const char *const *keys)
{
    for (; *keys; keys++)
        if (!strcmp(key, *keys)) return 1;
    return 0;
}

/* A JSON object whose every key is in keys (or, for the request, a row of
 * the field table); `where` names it in errors ("" = the top level). */
static int check_object(const json_t *o, const char *where, const char *const *keys, int table, sd_err *err)
{
    if (!json_is_object(o))
        return sd_errf(err, SD_EINVAL, where, "%s must be a JSON object", *where ? where : "a wire record");
    const char *key;
    size_t len;
    json_t *v;
    json_object_keylen_foreach((json_t *)o, key, len, v) {
        /* a key with a NUL inside ("prompt\u0000x") is none of ours */
        if (len == strlen(key) && (in_list(key, keys) || (table && req_field_find(key)))) continue;
        char field[64];
        snprintf(field, sizeof field, "%s%s%.40s", where, *where ? "." : "", key);
        return sd_errf(err, SD_EINVAL, field, "unknown key '%.80s'%s%s", key, *where ? " in " : "", where);
    }
    return 0;
}

static int check_version(const json_t *o, sd_err *err)
{
    const json_t *v = json_object_get(o, "v");
    if (!json_is_integer(v) || json_integer_value(v) != WIRE_VERSION)
        return sd_errf(err, SD_EINVAL, "v", "v must be %d (the wire format's version)", WIRE_VERSION);
    return 0;
}

/* An integer in [lo, hi] at o[key], into *out; absent: 0 and *out kept
 * unless required. */
static int get_int(const json_t *o, const char *key, const char *field, json_int_t lo, json_int_t hi, int required,
                   json_int_t *out, sd_err *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v && !required) return 0;
    if (!json_is_integer(v)) return sd_errf(err, SD_EINVAL, field, "%s must be an integer", field);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return sd_errf(err, SD_EINVAL, field, "%s must be in [%lld, %lld], got %lld", field, (long long)lo,
                       (long long)hi, (long long)x);
    *out = x;
    return 0;
}

/* The same into an int. */
static int get_small(const json_t *o, const char *key, int lo, int hi, int *out, sd_err *err)
{
    json_int_t x = *out;
    if (get_int(o, key, key, lo, hi, 0, &x, err)) return -1;
    *out = (int)x;
    return 0;
}

/* A boolean at o[key]; absent: *out kept. */
static int get_bool(const json_t *o, const char *key, int *out, sd_err *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) return sd_errf(err, SD_EINVAL, key, "%s must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* A finite number at o[key] that a float holds; absent: *out kept. */
static int get_float(const json_t *o, const char *key, float *out, sd_err *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v) return 0;
    double d = json_number_value(v);
    if (!json_is_number(v) || !(d >= -FLT_MAX && d <= FLT_MAX))
        return sd_errf(err, SD_EINVAL, key, "%s must be a finite number", key);
    *out = (float)d;
    return 0;
}

/* A string of at most max bytes without NUL at v; *s points into v. */
static int text_of(const json_t *v, const char *field, size_t max, const char **s, size_t *n, sd_err *err)
{
    if (!json_is_string(v)) return sd_errf(err, SD_EINVAL, field, "%s must be a string", field);
    *s = json_string_value(v);
    *n = json_string_length(v);
    if (*n > max) return sd_errf(err, SD_EINVAL, field, "%s must be at most %zu bytes, got %zu", field, max, *n);
    if (memchr(*s, 0, *n)) return sd_errf(err, SD_EINVAL, field, "%s contains a NUL byte", field);
    return 0;
}

/* A copy of the text at o[key] into *out (freed first); absent: *out kept. */
static int get_text(const json_t *o, const char *key, const char *field, size_t max, char **out, sd_err *err)
{
    const json_t *v = json_object_get(o, key);
    const char *s;
    size_t n;
    if (!v) return 0;
    if (text_of(v, field, max, &s, &n, err)) return -1;
    free(*out);
    if (!(*out = sd_strndup(s, n))) return sd_errf(err, SD_ENOMEM, field, "out of memory");
    return 0;
}

/* The text at o[key] (required), pointing into o. */
static const char *get_name(const json_t *o, const char *key, sd_err *err)
{
    const char *s;
    size_t n;
    return text_of(json_object_get(o, key), key, 256, &s, &n, err) ? NULL : s;
}

/* Canonical base64 of exactly `len` bytes at v (standard alphabet,
 * padded), decoded into a new buffer; the length is checked first. */
static int get_base64(const json_t *v, const char *field, size_t len, uint8_t **out, sd_err *err)
{
    const char *t;
    size_t n, got = 0;
    if (text_of(v, field, ((size_t)WIRE_MAX_INIT_DATA + 2) / 3 * 4, &t, &n, err)) return -1;
    if (n != (len + 2) / 3 * 4)
        return sd_errf(err, SD_EINVAL, field, "%s must be %zu characters of base64 (%zu bytes), got %zu", field,
                       (len + 2) / 3 * 4, len, n);
    size_t pad = n && t[n - 1] == '=' ? (n > 1 && t[n - 2] == '=' ? 2 : 1) : 0;
    size_t bad = strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    if (bad != n - pad || pad != (3 - len % 3) % 3)
        return sd_errf(err, SD_EINVAL, field, "%s is not canonical base64 (position %zu)", field, bad);
    *out = NULL;
    if (!len) return 0;
    if (img_base64_decode(t, n, len, field, out, &got, err)) return -1;
    if (got != len) {
        free(*out);
        *out = NULL;
        return sd_errf(err, SD_EINVAL, field, "%s decodes to %zu bytes, not %zu", field, got, len);
    }
    return 0;
}

/* ---- reading: the request ------------------------------------------------- */

/* A number row: the right JSON type, inside the table's range or one a
 * dialect widens it to (req_field_in_some_range: A1111's strength 1), or
 * the row's default (width/height 0 = the model's native size, hr_scale 0 =
 * no hires fix). */
static int get_number_field(const json_t *v, const req_field *f, sd_request *r, sd_err *err)
{
    char range[64];
    if (f->type == RF_FLOAT ? !json_is_number(v) : !json_is_integer(v))
        return sd_errf(err, SD_EINVAL, f->name, "%s must be %s", f->name, f->type == RF_FLOAT ? "a number" : "an integer");
    double d = json_number_value(v);
    if (!req_field_in_some_range(f, d) && !((f->type == RF_INT || f->type == RF_FLOAT) && d == f->def)) {
        req_field_range(f, range, sizeof range);
        return sd_errf(err, SD_EINVAL, f->name, "%s must be in %s, got %.17g", f->name, range, d);
    }
    if (f->type == RF_SEED)
        *(uint64_t *)((char *)r + f->offset) = (uint64_t)json_integer_value(v);
    else
        req_field_set_number(f, r, d);
    return 0;
}

/* A name row (sampler: the diffusers-semantics enum only; the A1111 choice
 * travels as ksampler + name_schedule). */
static int get_name_field(const json_t *v, const req_field *f, sd_request *r, sd_err *err)
{
    const char *s;
    size_t n;
    if (text_of(v, f->name, 256, &s, &n, err)) return -1;
    sd_sampler smp;
    int bad = f->type == RF_SAMPLER ? sd_sampler_from_name(s, &smp) : req_field_set_name(f, r, s);
    if (bad) return sd_errf(err, SD_EINVAL, f->name, "%s: unknown name '%.80s'", f->name, s);
    if (f->type == RF_SAMPLER) r->gen.sampler = smp;
    return 0;
}

static int get_init_image(const json_t *v, sd_request *r, sd_err *err)
{
    json_int_t w = 0, h = 0;
    uint8_t *px = NULL;
    if (check_object(v, "init_image", init_image_keys, 0, err) ||
        get_int(v, "width", "init_image.width", 1, REQ_MAX_SIDE_CAP, 1, &w, err) ||
        get_int(v, "height", "init_image.height", 1, REQ_MAX_SIDE_CAP, 1, &h, err) ||
        get_base64(json_object_get(v, "rgb"), "init_image.rgb", (size_t)w * (size_t)h * 3, &px, err))
        return -1;
    r->gen.init_rgb = px;
    r->gen.init_width = (int)w;
    r->gen.init_height = (int)h;
    return 0;
}

/* o[key] = {"raw", "bytes"}: an undecoded image (init_data, mask_data) into d. */
static int get_init_data(const json_t *v, const char *key, req_image_ref d, sd_err *err)
{
    json_int_t raw = 0;
    const json_t *b = json_object_get(v, "bytes");
    uint8_t *bytes = NULL;
    char fraw[48], fbytes[48];
    snprintf(fraw, sizeof fraw, "%s.raw", key);
    snprintf(fbytes, sizeof fbytes, "%s.bytes", key);
    if (check_object(v, key, init_data_keys, 0, err)) return -1;
    if (!json_is_boolean(json_object_get(v, "raw")))
        return sd_errf(err, SD_EINVAL, fraw, "%s must be true or false", fraw);
    raw = json_is_true(json_object_get(v, "raw"));
    /* the length the base64 text declares, bounded before decoding */
    size_t n = json_string_length(b), len = n / 4 * 3;
    if (n % 4)
        return sd_errf(err, SD_EINVAL, fbytes, "%s is not base64 (%zu characters, not a multiple of 4)", fbytes, n);
    if (json_is_string(b) && n % 4 == 0 && n) len -= (json_string_value(b)[n - 1] == '=') + (json_string_value(b)[n - 2] == '=');
    if (len > WIRE_MAX_INIT_DATA)
        return sd_errf(err, SD_EINVAL, fbytes, "%s must be at most %d bytes", fbytes, WIRE_MAX_INIT_DATA);
    if (get_base64(b, fbytes, len, &bytes, err)) return -1;
    /* the text form is NUL-terminated as http/params.c leaves it */
    free(*d.data);
    if (!(*d.data = sd_malloc(len + 1))) {
        free(bytes);
        return sd_errf(err, SD_ENOMEM, key, "out of memory");
    }
    if (len) memcpy(*d.data, bytes, len);
    (*d.data)[len] = 0;
    *d.len = len;
    *d.is_raw = (int)raw;
    free(bytes);
    return 0;
}

/* the decoded mask, one byte per init image pixel (the init_image
 * row comes first in the table, so its size is known). */
static int get_mask(const json_t *v, const req_field *f, sd_request *r, sd_err *err)
{
    uint8_t *px = NULL;
    if (r->gen.init_width <= 0 || r->gen.init_height <= 0)
        return sd_errf(err, SD_EINVAL, f->name, "%s needs a decoded init_image", f->name);
    if (get_base64(v, f->name, (size_t)r->gen.init_width * (size_t)r->gen.init_height, &px, err)) return -1;
    free((uint8_t *)r->gen.mask);
    r->gen.mask = px;
    return 0;
}

static int get_loras(const json_t *v, const req_field *f, sd_request *r, sd_err *err)
{
    if (!json_is_array(v)) return sd_errf(err, SD_EINVAL, f->name, "%s must be an array", f->name);
    if (json_array_size(v) > SD_MAX_LORAS)
        return sd_errf(err, SD_EINVAL, f->name, "%s: at most %d LoRAs in one request", f->name, SD_MAX_LORAS);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *l = json_array_get(v, i);
        char where[32];
        snprintf(where, sizeof where, "%s[%zu]", f->name, i);
        if (check_object(l, where, lora_keys, 0, err)) return -1;
        const json_t *name = json_object_get(l, "name"), *w = json_object_get(l, "weight");
        if (!json_is_string(name) || !json_is_number(w))
            return sd_errf(err, SD_EINVAL, where, "%s must be {\"name\": text, \"weight\": number}", where);
        if (req_add_lora(r, json_string_value(name), json_string_length(name), json_number_value(w), err)) return -1;
    }
    return 0;
}

static int get_field(const json_t *o, const req_field *f, sd_request *r, sd_err *err)
{
    const json_t *v = json_object_get(o, f->name);
    if (!v) return 0;
    switch (f->type) {
    case RF_TEXT: return get_text(o, f->name, f->name, (size_t)f->hi, (char **)req_field_text(f, r), err);
    case RF_INT: case RF_FLOAT: case RF_SEED: return get_number_field(v, f, r, err);
    case RF_SAMPLER: case RF_FORMAT: case RF_SCHEDULER: case RF_SPACING: case RF_UPSCALER: return get_name_field(v, f, r, err);
    case RF_IMAGE: return req_field_is_mask(f) ? get_mask(v, f, r, err) : get_init_image(v, r, err);
    case RF_LORAS: return get_loras(v, f, r, err);
    }
    return 0;
}

/* ksampler (a k_ name) and name_schedule (a request scheduler name). */
static int get_sampler_choice(const json_t *o, sd_request *r, sd_err *err)
{
    const char *s;
    if (json_object_get(o, "ksampler")) {
        if (!(s = get_name(o, "ksampler", err))) return -1;
        sd_ksampler ks = SD_KSAMPLER_NONE + 1;
        while (ks < SD_KSAMPLER_END && strcmp(sd_ksampler_kname(ks), s)) ks++;
        if (ks == SD_KSAMPLER_END) return sd_errf(err, SD_EINVAL, "ksampler", "ksampler: unknown name '%.80s'", s);
        r->gen.ksampler = ks;
    }
    if (json_object_get(o, "name_schedule")) {
        if (!(s = get_name(o, "name_schedule", err))) return -1;
        if (sd_scheduler_from_name(s, &r->gen.name_schedule))
            return sd_errf(err, SD_EINVAL, "name_schedule", "name_schedule: unknown name '%.80s'", s);
    }
    return 0;
}

static int get_request(const json_t *j, sd_request *out, sd_err *err)
{
    if (check_object(j, "", request_extra_keys, 1, err) || check_version(j, err) ||
        get_bool(j, "img2img", &out->img2img, err) || get_bool(j, "seed_was_random", &out->seed_was_random, err) ||
        get_small(j, "owner", 0, INT_MAX, &out->owner, err) || get_sampler_choice(j, out, err))
        return -1;
    for (int i = 0; i < req_nfields; i++)
        if (get_field(j, &req_fields[i], out, err)) return -1;
    const json_t *d = json_object_get(j, "init_data"), *m = json_object_get(j, "mask_data");
    if (d && get_init_data(d, "init_data", req_image_slot(req_field_find("init_image"), out), err)) return -1;
    return m ? get_init_data(m, "mask_data", req_image_slot(req_field_find("mask_image"), out), err) : 0;
}

int wire_request_from_json(const json_t *j, sd_request *out, sd_err *err)
{
    sd_request_defaults(out, 0);
    if (get_request(j, out, err)) {
        sd_request_free(out);
        return -1;
    }
    return 0;
}

/* ---- the result --------------------------------------------------------- */

/* The static mime string job_image holds for name, or NULL. */
static const char *static_mime(const char *name)
{
    for (img_format f = IMG_PNG; f <= IMG_WEBP; f++)
        if (!strcmp(img_format_mime(f), name)) return img_format_mime(f);
    return NULL;
}

/* The static sampler label job_result holds (req_sampler_label), or NULL. */
static const char *static_sampler(const char *name)
{
    for (int s = 0; s < SD_SAMPLER_COUNT; s++)
        if (!strcmp(sd_sampler_name((sd_sampler)s), name)) return sd_sampler_name((sd_sampler)s);
    for (sd_ksampler ks = SD_KSAMPLER_NONE + 1; ks < SD_KSAMPLER_END; ks++)
        if (!strcmp(sd_ksampler_label(ks), name)) return sd_ksampler_label(ks);
    return NULL;
}

static int put_images(json_t *o, const job_result *r, sd_err *err)
{
    json_t *a = json_array();
    if (put(o, "images", a, err)) return -1;
    for (int i = 0; i < r->n; i++) {
        const job_image *im = &r->images[i];
        json_t *m = json_object();
        if (!m || json_array_append_new(a, m)) return sd_errf(err, SD_ENOMEM, "images", "out of memory");
        if (put_text(m, "key", im->key, err) || put_text(m, "url", im->url, err) ||
            put_text(m, "mime", im->mime, err) || put(m, "seed", json_integer((json_int_t)im->seed), err) ||
            put_text(m, "parameters", im->parameters, err))
            return -1;
    }
    return 0;
}

static int put_result(json_t *o, const void *src, sd_err *err)
{
    const job_result *r = src;
    return put(o, "v", json_integer(WIRE_VERSION), err) || put_images(o, r, err) ||
           put_text(o, "prompt", r->prompt, err) || put_text(o, "negative", r->negative, err) ||
           put(o, "width", json_integer(r->width), err) || put(o, "height", json_integer(r->height), err) ||
           put(o, "steps", json_integer(r->steps), err) || put(o, "cfg", json_real(r->cfg), err) ||
           put(o, "denoise", json_real(r->denoise), err) || put_text(o, "sampler", r->sampler, err) ||
           put_text(o, "model_name", r->model_name, err) || put_text(o, "model_hash", r->model_hash, err)
               ? -1 : 0;
}

json_t *wire_result_to_json(const job_result *r, sd_err *err) { return build(put_result, r, "result", err); }

static int get_image(const json_t *m, size_t i, job_image *im, sd_err *err)
{
    char where[32], key[48], url[48], mime[48], seed[48], params[48];
    snprintf(where, sizeof where, "images[%zu]", i);
    snprintf(key, sizeof key, "%s.key", where);
    snprintf(url, sizeof url, "%s.url", where);
    snprintf(mime, sizeof mime, "%s.mime", where);
    snprintf(seed, sizeof seed, "%s.seed", where);
    snprintf(params, sizeof params, "%s.parameters", where);
    json_int_t s = 0;
    const char *t;
    size_t n;
    if (check_object(m, where, image_keys, 0, err) || get_text(m, "key", key, WIRE_MAX_TEXT, &im->key, err) ||
        get_text(m, "url", url, WIRE_MAX_TEXT, &im->url, err) ||
        get_text(m, "parameters", params, WIRE_MAX_PARAMETERS, &im->parameters, err) ||
        get_int(m, "seed", seed, 0, (json_int_t)WIRE_MAX_IMAGE_SEED, 1, &s, err))
        return -1;
    im->seed = (uint64_t)s;
    if (!json_object_get(m, "mime")) return 0;
    if (text_of(json_object_get(m, "mime"), mime, 64, &t, &n, err)) return -1;
    if (!(im->mime = static_mime(t))) return sd_errf(err, SD_EINVAL, mime, "%s: unknown type '%.64s'", mime, t);
    return 0;
}

static int get_result(const json_t *j, job_result *r, sd_err *err)
{
    const json_t *a = json_object_get(j, "images");
    for (size_t i = 0; i < json_array_size(a); i++)
        if (get_image(json_array_get(a, i), i, &r->images[i], err)) return -1;
    const char *t;
    size_t n;
    if (get_text(j, "prompt", "prompt", REQ_MAX_PROMPT, &r->prompt, err) ||
        get_text(j, "negative", "negative", REQ_MAX_PROMPT, &r->negative, err) ||
        get_small(j, "width", 0, REQ_MAX_SIDE_CAP, &r->width, err) ||
        get_small(j, "height", 0, REQ_MAX_SIDE_CAP, &r->height, err) ||
        get_small(j, "steps", 0, REQ_MAX_STEPS, &r->steps, err) || get_float(j, "cfg", &r->cfg, err) ||
        get_float(j, "denoise", &r->denoise, err) ||
        get_text(j, "model_name", "model_name", WIRE_MAX_TEXT, &r->model_name, err) ||
        get_text(j, "model_hash", "model_hash", WIRE_MAX_TEXT, &r->model_hash, err))
        return -1;
    if (!json_object_get(j, "sampler")) return 0;
    if (text_of(json_object_get(j, "sampler"), "sampler", 64, &t, &n, err)) return -1;
    if (!(r->sampler = static_sampler(t))) return sd_errf(err, SD_EINVAL, "sampler", "sampler: unknown name '%.64s'", t);
    return 0;
}

job_result *wire_result_from_json(const json_t *j, sd_err *err)
{
    if (check_object(j, "", result_keys, 0, err) || check_version(j, err)) return NULL;
    const json_t *a = json_object_get(j, "images");
    if (!json_is_array(a) || json_array_size(a) > REQ_MAX_OUTPUTS) {
        sd_errf(err, SD_EINVAL, "images", "images must be an array of at most %d", REQ_MAX_OUTPUTS);
        return NULL;
    }
    job_result *r = job_result_new((int)json_array_size(a));
    if (!r) {
        sd_errf(err, SD_ENOMEM, "images", "out of memory");
        return NULL;
    }
    if (get_result(j, r, err)) {
        job_result_free(r);
        return NULL;
    }
    return r;
}

/* ---- the error ---------------------------------------------------------- */

/* A JSON string of s[0..n); text that is not UTF-8 (a message cut inside a
 * character) goes with its non-ASCII bytes as '?'.  NULL on OOM. */
static json_t *string_or_ascii(const char *s)
{
    json_t *v = json_string(s);
    if (v) return v;
    char *c = sd_strdup(s);
    if (!c) return NULL;
    for (char *p = c; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    v = json_string(c);
    free(c);
    return v;
}

json_t *wire_error_to_json(const sd_err *e)
{
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "code", json_string(sd_err_code_name(e->code))) ||
        json_object_set_new(o, "field", string_or_ascii(e->field)) ||
        json_object_set_new(o, "message", string_or_ascii(e->msg))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The code whose name is s, or SD_OK when none is (ok itself included). */
static sd_errcode code_by_name(const char *s)
{
    for (sd_errcode c = SD_EINVAL; c <= SD_EINTERNAL; c++)
        if (!strcmp(sd_err_code_name(c), s)) return c;
    return SD_OK;
}

static int get_error(const json_t *j, sd_err *out, sd_err *why)
{
    const char *code, *field = "", *msg;
    size_t n;
    if (check_object(j, "", error_keys, 0, why) || text_of(json_object_get(j, "code"), "code", 64, &code, &n, why) ||
        text_of(json_object_get(j, "message"), "message", sizeof out->msg - 1, &msg, &n, why))
        return -1;
    if (json_object_get(j, "field") && text_of(json_object_get(j, "field"), "field", sizeof out->field - 1, &field, &n, why))
        return -1;
    sd_errcode c = code_by_name(code);
    if (c == SD_OK) return sd_errf(why, SD_EINVAL, "code", "code: not an error code: '%.64s'", code);
    sd_errf(out, c, field, "%s", msg);
    return 0;
}

int wire_error_from_json(const json_t *j, sd_err *out)
{
    sd_err why;
    sd_err_clear(&why);
    sd_err_clear(out);
    if (!get_error(j, out, &why)) return 0;
    sd_err_clear(out);
    sd_errf(out, SD_EINTERNAL, why.field, "a malformed error record from the queue: %s", why.msg);
    return -1;
}
