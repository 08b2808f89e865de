/* api_openai.c — the OpenAI Images dialect (/v1): POST /v1/images/generations
 * (JSON: prompt, n, size, response_format, quality, output_format, ...) and
 * POST /v1/images/edits (multipart `image` + prompt: img2img), GET /v1/models
 * and /v1/models/{id}, and a 404 for every other /v1/ path; every error as
 * {"error":{"message","type","param","code"}} with OpenAI's statuses, so the
 * `openai` SDKs raise their own error classes.
 *
 * A body is translated into the seed API's field names (oai_to_seed: n ->
 * num_outputs, size "WxH" -> width/height, output_compression ->
 * output_quality, image -> init_image; our extra fields such as seed, steps,
 * negative_prompt and loras pass through) and validated by the one field
 * table (params_to_request), so every dialect has the same ranges and
 * limits; errors are then said with OpenAI's names (oai_names), or the
 * name the body used where it had a choice (r->sent: image, image[] or
 * images; cfg_scale or guidance_scale).  JSON null is "not given" for every
 * optional field, as OpenAI reads it (prompt is required).  The
 * answer is rendered from the job's result: {"created", "data":[{"b64_json"}
 * or {"url"}], "output_format", "size", "quality", "background"}.
 * docs/SERVER.md "OpenAI dialect" lists what is accepted and what it does. */
#include "server_int.h"
#include "../jobs/mask_req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

/* ---- field names ----------------------------------------------------------- */

/* The seed API's fields OpenAI clients name otherwise (errors are said with
 * OpenAI's name by dialect_name_field; the seed name itself is not accepted
 * in a /v1 body).  The field table has no OpenAI column: this is it. */
static const dialect_name oai_names[] = {
    {"num_outputs", "n"},
    {"width", "size"},
    {"height", "size"},
    {"init_image", "image"},
    {"output_quality", "output_compression"},
    {"num_inference_steps", "steps"},
    {"mask_image", "mask"},
    {"image[]", "image"},
    {NULL, NULL},
};

/* ---- errors ---------------------------------------------------------------- */

/* OpenAI's error object: type invalid_request_error for 4xx (401: code
 * invalid_api_key; 429: rate_limit_exceeded), server_error for 5xx; param
 * the field at fault or null; code our error code's name. */
static json_t *oai_error_body(const sd_err *err, int *status)
{
    sd_errcode code = err->code == SD_OK ? SD_EINTERNAL : err->code;
    const char *type = *status >= 500 ? "server_error" : "invalid_request_error";
    const char *cname = *status == 401 ? "invalid_api_key" : *status == 429 ? "rate_limit_exceeded"
                                                                              : sd_err_code_name(code);
    /* (fields are already OpenAI's: to_request and dialect_name_field named them) */
    const char *param = *status == 401 || !err->field[0] ? NULL : !strcmp(err->field, "image[]") ? "image" : err->field;
    json_t *e = json_pack("{s:s, s:s, s:o, s:s}", "message", err->msg[0] ? err->msg : "unknown error", "type", type,
                          "param", param ? json_string(param) : json_null(), "code", cname);
    return e ? json_pack("{s:o}", "error", e) : NULL;
}

/* ---- the body: OpenAI's fields -> the seed API's bag -------------------------- */

/* The per-request answer options live in req (oai_url, oai_quality, oai_background). */
static const char *const qualities[] = {"auto", "standard", "hd", "low", "medium", "high", NULL};
static const char *const backgrounds[] = {"auto", "opaque", NULL};

/* Steps a quality asks for when the body names no steps (NULL: the server's default). */
static const char *quality_steps(const char *q)
{
    if (!strcmp(q, "low")) return "15";
    if (!strcmp(q, "medium")) return "25";
    if (!strcmp(q, "high") || !strcmp(q, "hd")) return "40";
    return NULL;
}

/* Index of text value p in list, or -1 (not text, or not one of them). */
static int one_of(const param *p, const char *const *list)
{
    if (p->kind != PV_TEXT) return -1;
    for (int i = 0; list[i]; i++)
        if (strlen(list[i]) == p->len && !memcmp(list[i], p->val, p->len)) return i;
    return -1;
}

/* s[0..len) for a message: printable ASCII, others as '?', cut to fit buf. */
static const char *shown(const char *s, size_t len, char *buf, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < size; i++) buf[k++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    buf[k] = 0;
    return buf;
}

/* "a, b or c" for messages. */
static void list_text(const char *const *list, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; list[i] && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s'%s'", i == 0 ? "" : list[i + 1] ? ", " : " or ", list[i]);
}

static int choice(const param *p, const char *const *list, sd_err *err)
{
    int i = one_of(p, list);
    if (i >= 0) return i;
    char names[160];
    list_text(list, names, sizeof names);
    return sd_errf(err, SD_EINVAL, p->name, "%s must be %s", p->name, names);
}

/* size "WxH" (each side 1..REQ_MAX_SIDE_CAP) or "auto" (0 x 0: the model's
 * native size, or the image's for an edit). */
static int parse_size(const param *p, int *w, int *h, sd_err *err)
{
    *w = *h = 0;
    if (p->kind == PV_TEXT && p->len == 4 && !memcmp(p->val, "auto", 4)) return 0;
    char tail = 0;
    if (p->kind == PV_TEXT && p->len < 16 && !memchr(p->val, 0, p->len) &&
        sscanf(p->val, "%5u%*[xX]%5u%c", (unsigned *)w, (unsigned *)h, &tail) == 2 &&
        p->val[0] >= '0' && p->val[0] <= '9' && p->val[p->len - 1] >= '0' && p->val[p->len - 1] <= '9' &&
        *w >= 1 && *h >= 1 && *w <= REQ_MAX_SIDE_CAP && *h <= REQ_MAX_SIDE_CAP)
        return 0;
    char buf[24];
    *w = *h = 0;
    return sd_errf(err, SD_EINVAL, "size",
                   "size must be 'WIDTHxHEIGHT' with sides 1..%d (e.g. '512x512') or 'auto', got '%s'",
                   REQ_MAX_SIDE_CAP, shown(p->val, p->kind == PV_TEXT ? p->len : 0, buf, 21));
}

/* An integer lo..hi, a JSON number or text (output_compression, partial_images). */
static int whole(const param *p, int lo, int hi, int *out, sd_err *err)
{
    double v;
    if ((p->kind != PV_TEXT && p->kind != PV_NUMBER) || params_parse_number(p->val, p->len, &v) || v != (int)v ||
        v < lo || v > hi)
        return sd_errf(err, SD_EINVAL, p->name, "%s must be an integer in [%d, %d]", p->name, lo, hi);
    *out = (int)v;
    return 0;
}

/* stream: false.  A boolean is a JSON boolean in a JSON body; a form or
 * multipart body (text only) says it as the word, in any case as params.c
 * reads the flags. */
static int take_stream(const req *r, const param *p, sd_err *err)
{
    int is_bool = p->kind == (r->body == BODY_JSON ? PV_BOOL : PV_TEXT) && !memchr(p->val, 0, p->len) &&
                  (!strcasecmp(p->val, "false") || !strcasecmp(p->val, "true"));
    if (!is_bool)
        return sd_errf(err, SD_EINVAL, "stream", "stream must be %s (streamed images are not available)",
                       r->body == BODY_JSON ? "a JSON boolean: false" : "'false'");
    if (p->val[0] == 'f' || p->val[0] == 'F') return 0;
    return sd_errf(err, SD_EINVAL, "stream", "stream must be false: streamed (partial) images are not available");
}

/* model: one of ours (GET /v1/models) picks it; OpenAI's own names
 * (dall-e-*, gpt-image-*), which clients send by default, get the default
 * model (nothing in the bag: the server's default).  Into the seed bag only
 * when the field table has `model`. */
static const model_naming oai_naming = {.defaults = (const char *const[]){"dall-e-", "gpt-image-", NULL}};

static int take_model(http_server *s, param *p, param_bag *sb, sd_err *err)
{
    if (p->kind != PV_TEXT) return sd_errf(err, SD_EINVAL, "model", "model must be a string");
    server_model ms[16];
    int n = server_models(s, ms, 16, err);
    if (n < 0) return -1;
    int i = server_model_pick(ms, n, p->val, p->len, &oai_naming);
    if (i >= 0 && !strcmp(ms[i].name, p->val))
        return req_field_find("model") ? params_bag_move(sb, p, "model", err) : 0;
    if (i >= 0) return 0;   /* one of OpenAI's names: the default */
    char names[300], buf[64];
    size_t k = 0;
    names[0] = 0;
    for (int j = 0; j < n && k < sizeof names; j++)
        k += (size_t)snprintf(names + k, sizeof names - k, "%s'%s'", j ? ", " : "", ms[j].name);
    return sd_errf(err, SD_EINVAL, "model",
                   "model '%s' is not one of this server's models (%s; GET /v1/models lists them); OpenAI's "
                   "names (dall-e-*, gpt-image-*) get the default model", shown(p->val, p->len, buf, sizeof buf),
                   n ? names : "none loaded yet");
}

typedef struct oai_body {
    param_bag sb;            /* the seed API's fields */
    int w, h;                /* size; 0 = auto */
    int has_steps, has_image;
    const char *quality;
} oai_body;

/* The name an error gives seed API field `seed` when the body gave it
 * twice: OpenAI's (oai_names: init_image -> image), else the seed API's own
 * (guidance_scale, also sent as cfg_scale). */
static const char *oai_name_of(const char *seed)
{
    for (const dialect_name *k = oai_names; k->seed; k++)
        if (!strcmp(k->seed, seed)) return k->name;
    return seed;
}

/* The seed API's field `seed` is about to be given by the body's field
 * `sent` (a static string: it outlives the body): kept in r->sent when the
 * names differ, so errors say `sent`.  A second field giving the same one
 * (image and image[], images and image, cfg_scale and guidance_scale) is
 * refused the same way whichever came first: naming the field by
 * oai_name_of (image, guidance_scale), the two names in sorted order. */
static int claim(req *r, const oai_body *o, const char *sent, const char *seed, sd_err *err)
{
    int k = 0;
    while (k < REQ_SENT_MAX && r->sent[k].seed && strcmp(r->sent[k].seed, seed)) k++;
    const char *first = k < REQ_SENT_MAX && r->sent[k].seed ? r->sent[k].name
                        : params_bag_get(&o->sb, seed) ? seed : NULL;
    if (first) {
        const char *a = strcmp(first, sent) <= 0 ? first : sent, *b = a == first ? sent : first;
        if (!strcmp(seed, "init_image"))
            return sd_errf(err, SD_EINVAL, oai_name_of(seed), "more than one image: give '%s' or '%s', not both "
                           "(one image per edit)", a, b);
        return sd_errf(err, SD_EINVAL, oai_name_of(seed), "'%s' and '%s' are one field: send one of them", a, b);
    }
    if (strcmp(sent, seed) && k < REQ_SENT_MAX) r->sent[k] = (dialect_name){seed, sent};
    return 0;
}

/* p into the seed bag as `seed`, said `sent` in errors (claim). */
static int move_as(req *r, oai_body *o, param *p, const char *sent, const char *seed, sd_err *err)
{
    return claim(r, o, sent, seed, err) ? -1 : params_bag_move(&o->sb, p, seed, err);
}

/* {"image_url": "data:image/...;base64,..."} (o) as the seed API's field
 * `to`; anything else is a 400 naming `field`. */
static int take_image_url(const json_t *o, const char *field, const char *to, param_bag *sb, sd_err *err)
{
    const json_t *u = json_object_get(o, "image_url");
    if (!json_is_string(u) || strncmp(json_string_value(u), "data:", 5))
        return sd_errf(err, SD_EINVAL, field, "%s must hold one {\"image_url\": \"data:image/png;base64,...\"} (one "
                       "image; no http URLs)", field);
    return params_bag_add(sb, to, PV_TEXT, json_string_value(u), json_string_length(u), 1, err);
}

/* The JSON form of an edit: images [{"image_url": "data:image/png;base64,..."}] (one). */
static int take_images_json(req *r, param *p, oai_body *o, sd_err *err)
{
    if (claim(r, o, "images", "init_image", err)) return -1;
    json_t *a = p->kind == PV_ARRAY ? json_loadb(p->val, p->len, 0, NULL) : NULL;
    int rc = json_array_size(a) == 1 ? take_image_url(json_array_get(a, 0), "images", "init_image", &o->sb, err)
                                     : take_image_url(NULL, "images", "init_image", &o->sb, err);
    json_decref(a);
    return rc;
}

/* an edit's mask: a file part, base64 text, or in a JSON body
 * {"image_url": "data:image/png;base64,..."} as the images are. */
static int take_mask(req *r, param *p, oai_body *o, sd_err *err)
{
    if (claim(r, o, "mask", "mask_image", err)) return -1;
    if (p->kind != PV_OBJECT) return params_bag_move(&o->sb, p, "mask_image", err);
    json_t *m = json_loadb(p->val, p->len, 0, NULL);
    int rc = take_image_url(m, "mask", "mask_image", &o->sb, err);
    json_decref(m);
    return rc;
}

/* The fields OpenAI's API defines that we accept and do not act on (values checked). */
static const char *const styles[] = {"vivid", "natural", NULL};
static const char *const moderations[] = {"auto", "low", NULL};
static const char *const fidelities[] = {"low", "high", NULL};
static const char *const formats[] = {"b64_json", "url", NULL};

/* The names take_oai_field reads (OpenAI's, and our steps / cfg_scale), for
 * both endpoints and for edits only: null is "not given" for each but prompt. */
static const char *const oai_fields[] = {"n", "size", "response_format", "quality", "background",
                                         "output_compression", "style", "moderation", "user", "stream",
                                         "partial_images", "model", "steps", "cfg_scale", NULL};
static const char *const oai_edit_fields[] = {"image", "image[]", "images", "input_fidelity", "mask", NULL};

static int named(const char *n, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(n, list[i])) return 1;
    return 0;
}

/* One field of the OpenAI body: 0, 1 = not an OpenAI field, -1 = refused. */
static int take_oai_field(http_server *s, req *r, param *p, oai_body *o, sd_err *err)
{
    const char *n = p->name;
    int img2img = r->rt->img2img, v = 0;
    /* null: not given, as OpenAI reads an optional field (its SDKs send null
     * for some they omit); prompt:null is "prompt is required" (params.c) */
    if (p->kind == PV_NULL && (named(n, oai_fields) || (img2img && named(n, oai_edit_fields)))) return 0;
    if (!strcmp(n, "prompt")) return params_bag_move(&o->sb, p, "prompt", err);
    if (!strcmp(n, "n")) return move_as(r, o, p, "n", "num_outputs", err);
    if (!strcmp(n, "size")) return parse_size(p, &o->w, &o->h, err);
    if (!strcmp(n, "response_format")) return (r->oai_url = choice(p, formats, err)) < 0 ? -1 : 0;
    if (!strcmp(n, "quality")) return (v = choice(p, qualities, err)) < 0 ? -1 : (o->quality = qualities[v], 0);
    if (!strcmp(n, "background")) {
        if (one_of(p, (const char *const[]){"transparent", NULL}) == 0)
            return sd_errf(err, SD_EINVAL, "background", "background 'transparent' is not available: the models "
                           "draw opaque images; send 'auto' or 'opaque'");
        return (v = choice(p, backgrounds, err)) < 0 ? -1 : (r->oai_background = backgrounds[v], 0);
    }
    if (!strcmp(n, "output_compression")) {
        if (whole(p, 0, 100, &v, err) || claim(r, o, "output_compression", "output_quality", err)) return -1;
        char q[16];
        snprintf(q, sizeof q, "%d", v < 1 ? 1 : v);
        return params_bag_add(&o->sb, "output_quality", PV_NUMBER, q, strlen(q), 1, err);
    }
    if (!strcmp(n, "style")) return choice(p, styles, err) < 0 ? -1 : 0;
    if (!strcmp(n, "moderation")) return choice(p, moderations, err) < 0 ? -1 : 0;
    if (!strcmp(n, "user"))
        return p->kind == PV_TEXT ? 0 : sd_errf(err, SD_EINVAL, "user", "user must be a string");
    if (!strcmp(n, "stream")) return take_stream(r, p, err);
    if (!strcmp(n, "partial_images")) return whole(p, 0, 3, &v, err);   /* meaningful with stream only */
    if (!strcmp(n, "model")) return take_model(s, p, &o->sb, err);
    if (!strcmp(n, "steps")) return o->has_steps = 1, move_as(r, o, p, "steps", "num_inference_steps", err);
    if (!strcmp(n, "cfg_scale")) return move_as(r, o, p, "cfg_scale", "guidance_scale", err);
    if (!img2img) return 1;
    /* edits only */
    if (!strcmp(n, "image")) return o->has_image = 1, move_as(r, o, p, "image", "init_image", err);
    if (!strcmp(n, "image[]")) return o->has_image = 1, move_as(r, o, p, "image[]", "init_image", err);
    if (!strcmp(n, "images")) return o->has_image = 1, take_images_json(r, p, o, err);
    if (!strcmp(n, "input_fidelity")) return choice(p, fidelities, err) < 0 ? -1 : 0;
    if (!strcmp(n, "mask")) return take_mask(r, p, o, err);   /* transparent = repaint */
    return 1;
}

/* A field that is not OpenAI's: one of our extra fields (the seed API's
 * names: seed, negative_prompt, loras, guidance_scale, sampler, strength...)
 * passes through; the seed names OpenAI names otherwise do not. */
static int take_extra_field(req *r, param *p, oai_body *o, sd_err *err)
{
    const req_field *f = req_field_find(p->name);
    for (const dialect_name *k = oai_names; f && k->seed; k++)
        if (!strcmp(f->name, k->seed)) f = NULL;
    const char *route = r->rt->img2img ? "/v1/images/edits" : "/v1/images/generations";
    char label[48];
    shown(p->name, strlen(p->name), label, 41);
    if (!f)
        return sd_errf(err, SD_EINVAL, label,
                       "unknown field '%s' for %s (OpenAI's: prompt, n, size, response_format, quality, "
                       "output_format, output_compression, background, style, moderation, user, model, stream, "
                       "partial_images%s; extra: seed, steps, negative_prompt, guidance_scale (or cfg_scale), "
                       "sampler, scheduler, loras%s)",
                       label, route, r->rt->img2img ? ", image, mask, input_fidelity" : "",
                       r->rt->img2img ? ", strength" : "");
    if (!(f->where & (r->rt->img2img ? RF_IMG2IMG : RF_TXT2IMG)))
        return sd_errf(err, SD_EINVAL, f->name, "%s is not a field of %s", f->name, route);
    if (p->kind == PV_NULL) return 0;   /* not given, as OpenAI's own fields */
    return move_as(r, o, p, f->name, f->name, err);   /* (guidance_scale after cfg_scale: refused) */
}

/* An edit's size: the init image is resized to it (api_seed.c decode_init);
 * the server's --max-side / --max-pixels apply as to txt2img. */
static int edit_size(http_server *s, sd_request *rq, int w, int h, sd_err *err)
{
    rq->gen.width = w;
    rq->gen.height = h;
    if (!w) return 0;
    sd_request as_txt2img = *rq;   /* (a shallow copy, only read) */
    as_txt2img.img2img = 0;
    return req_check_size(&as_txt2img, s->cfg.max_side, s->cfg.max_pixels, err);
}

/* OpenAI's mask is exact: no blur, the whole picture (the extra
 * fields mask_blur / inpaint_full_res may still ask otherwise). */
static int edit_mask_defaults(param_bag *sb, sd_err *err)
{
    /* per axis, as a given mask_blur wins over both (params.c) */
    static const char *const names[] = {"mask_blur_x", "mask_blur_y", "inpaint_full_res"};
    int blur = 0;
    for (int i = 0; i < sb->n; i++) blur |= !strcmp(sb->v[i].name, "mask_blur");
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        int given = blur && k < 2;
        for (int i = 0; i < sb->n && !given; i++) given = !strcmp(sb->v[i].name, names[k]);
        if (!given && params_bag_add(sb, names[k], PV_NUMBER, "0", 1, 1, err)) return -1;
    }
    return 0;
}

static int oai_translate(http_server *s, req *r, oai_body *o, sd_err *err)
{
    for (int i = 0; i < r->bag.n; i++) {
        param *p = &r->bag.v[i];
        int rc = take_oai_field(s, r, p, o, err);
        if (rc > 0) rc = take_extra_field(r, p, o, err);
        if (rc) return -1;
    }
    if (r->rt->img2img && !o->has_image)
        return sd_errf(err, SD_EINVAL, "image", "image is required: send the picture to edit as a multipart file "
                       "part 'image' (PNG, JPEG or WebP)");
    if (r->rt->img2img && edit_mask_defaults(&o->sb, err)) return -1;
    const char *steps = o->quality && !o->has_steps ? quality_steps(o->quality) : NULL;
    if (steps && params_bag_add(&o->sb, "num_inference_steps", PV_NUMBER, steps, strlen(steps), 1, err)) return -1;
    char side[8];
    for (int k = 0; o->w && !r->rt->img2img && k < 2; k++) {
        snprintf(side, sizeof side, "%d", k ? o->h : o->w);
        if (params_bag_add(&o->sb, k ? "height" : "width", PV_NUMBER, side, strlen(side), 1, err)) return -1;
    }
    return 0;
}

static int oai_to_request(http_server *s, req *r, sd_err *err)
{
    oai_body o = {.quality = "auto"};
    params_bag_init(&o.sb);
    o.sb.json_types = r->bag.json_types;   /* the extra flag fields take JSON booleans in a JSON body */
    r->oai_background = "opaque";
    int rc = oai_translate(s, r, &o, err);
    r->oai_quality = o.quality;
    if (!rc) {   /* (oai_translate's errors already say OpenAI's names) */
        rc = params_to_request(&o.sb, r->rt->img2img, NULL, &r->request, err);
        if (!rc && r->rt->img2img) rc = edit_size(s, &r->request, o.w, o.h, err);
        r->request.mask_mode = INPAINT_MASK_ALPHA;   /* transparent = repaint; else the image's alpha */
        if (rc) dialect_name_field_as(&dialect_openai, r->sent, err);
    }
    params_bag_free(&o.sb);
    return rc;
}

const dialect dialect_openai = {.name = "openai", .to_request = oai_to_request, .names = oai_names,
                                .error_body = oai_error_body};

/* ---- answers -------------------------------------------------------------- */

/* One data item: {"b64_json"} (the default) or {"url"}. */
static json_t *oai_item(http_server *s, req *r, const job_image *im, sd_err *err)
{
    if (r->oai_url) return json_pack("{s:s}", "url", im->url);
    size_t len;
    char *b64 = seed_image_base64(s, im, &len, err);
    json_t *o = b64 ? json_pack("{s:s%}", "b64_json", b64, len) : NULL;
    free(b64);
    return o;
}

static enum MHD_Result oai_success(http_server *s, req *r, struct MHD_Connection *c, const job_result *res)
{
    sd_err err;
    sd_err_clear(&err);
    json_t *data = json_array();
    for (int i = 0; data && i < res->n; i++) {
        json_t *it = oai_item(s, r, &res->images[i], &err);
        if (!it || json_array_append_new(data, it)) {
            json_decref(data);
            data = NULL;
        }
    }
    if (!data) {
        if (!err.code) sd_errf(&err, SD_ENOMEM, "", "out of memory rendering the images");
        return reply_error(c, &r->ri, &err, 0, NULL);
    }
    char size[32];
    snprintf(size, sizeof size, "%dx%d", res->width, res->height);
    const char *fmt = res->n ? strchr(res->images[0].mime, '/') + 1 : "png";
    json_t *b = json_pack("{s:I, s:o, s:s, s:s, s:s, s:s}", "created", (json_int_t)time(NULL), "data", data,
                          "output_format", fmt, "size", size, "quality", r->oai_quality ? r->oai_quality : "auto",
                          "background", r->oai_background ? r->oai_background : "opaque");
    return reply_json_utf8(c, &r->ri, b ? 200 : 503, b, NULL, NULL);
}

enum MHD_Result oai_answer(http_server *s, req *r, struct MHD_Connection *c)
{
    return seed_answer_with(s, r, c, oai_success);
}

/* ---- models ----------------------------------------------------------------- */

static json_t *oai_model(const server_model *m)
{
    struct stat st;
    json_int_t created = m->file[0] && !stat(m->file, &st) ? (json_int_t)st.st_mtime : 0;
    return json_pack("{s:s, s:s, s:I, s:s}", "id", m->name, "object", "model", "created", created, "owned_by",
                     "sdserve");
}

/* GET /v1/models (the list) and /v1/models/{id} (one). */
enum MHD_Result oai_models(http_server *s, req *r, struct MHD_Connection *c)
{
    server_model ms[64];
    sd_err err;
    sd_err_clear(&err);
    int n = server_models(s, ms, 64, &err);
    if (n < 0) return reply_error(c, &r->ri, &err, 0, NULL);
    const char *id = strncmp(r->url, "/v1/models/", 11) ? NULL : r->url + 11;
    json_t *data = id ? NULL : json_array();
    for (int i = 0; i < n; i++) {
        if (ms[i].refused[0]) continue;   /* not a usable model (GET /models says why) */
        if (id && !strcmp(ms[i].name, id)) return reply_json(c, &r->ri, 200, oai_model(&ms[i]));
        if (data && json_array_append_new(data, oai_model(&ms[i]))) {
            json_decref(data);
            return reply_json(c, &r->ri, 503, NULL);
        }
    }
    char buf[84];
    if (id) return reply_errorf(c, &r->ri, SD_ENOTFOUND, "model", "no model '%s' on this server; GET /v1/models "
                                "lists them", shown(id, strlen(id), buf, 81));
    return reply_json(c, &r->ri, 200, data ? json_pack("{s:s, s:o}", "object", "list", "data", data) : NULL);
}

/* Any other /v1/ path: 404 in OpenAI's shape. */
enum MHD_Result oai_not_found(http_server *s, req *r, struct MHD_Connection *c)
{
    char verb[20], path[84];   /* (a path may hold any bytes: shown as printable ASCII) */
    return reply_errorf(c, &r->ri, SD_ENOTFOUND, "", "Invalid URL (%s %s): the OpenAI dialect serves POST "
                        "/v1/images/generations, POST /v1/images/edits and GET /v1/models",
                        shown(r->verb, strlen(r->verb), verb, 17), shown(r->url, strlen(r->url), path, 81));
}
