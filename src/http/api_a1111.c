/* api_a1111.c — the AUTOMATIC1111 dialect, /sdapi/v1/...: what Open WebUI,
 * SillyTavern, LibreChat and scripts written for A1111 call.
 *
 * POST /sdapi/v1/txt2img and /img2img: the A1111 body is translated into a
 * bag of the seed API's field names (the field table's `a1111` column;
 * sampler_name / sampler_index with the scheduler, batch_size x n_iter,
 * init_images[0], override_settings are composed here; unknown fields are
 * ignored), validated by params_to_request like every dialect, and
 * answered once the job ends with {"images": [plain base64], "parameters",
 * "info": "<JSON text>"}.  Errors are FastAPI's: 422 {"detail": [{"loc",
 * "msg", "type"}]} for a bad field, else {"error", "detail", "body", "errors"}
 * as A1111's exception handler writes them.
 *
 * A1111's global state (options, progress, interrupt, skip) belongs to the
 * caller's API key (r->owner); without keys there is one owner, 0: it is
 * server-wide, as in A1111.  The state (options per owner, this dialect's
 * in-flight jobs) hangs off http_server (a1111_init / a1111_free). */
#include "server_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"

#define A1111_MAX_FIELDS 1024          /* A1111's whole options dict has ~400 keys */
#define A1111_OPTIONS_MAX (64 * 1024)  /* bytes of options stored per owner (as JSON) */
#define A1111_MAX_MODELS 64
#define A1111_DEFAULT_SAMPLER "Euler"  /* A1111's API default (sampler_index) */
#define A1111_DEFAULT_HR_SCALE 2.0    /* A1111's hr_scale when enable_hr is on without one */

/* One synchronous txt2img/img2img of this dialect, from its body to its end. */
typedef struct a1111_call {
    req *r;                  /* linked while r->job is held (progress, interrupt) */
    int owner, linked, interrupted;
    sd_gen_params gen;       /* the request as validated (pointers cleared: the job owns them) */
    int img2img, send_images, batch_size;
    int clip_from_options;   /* the CLIP skip is the caller's stored option, not override_settings' */
    json_t *params;          /* "parameters": the request as read, defaults filled */
    json_t *notes;           /* what was ignored, for info */
    char stamp[16];          /* job_timestamp, "YYYYmmddHHMMSS" */
    struct a1111_call *next;
} a1111_call;

typedef struct a1111_owner {
    int owner;
    json_t *opts;            /* options written with POST /options */
    struct a1111_owner *next;
} a1111_owner;

struct a1111_state {
    pthread_mutex_t mu;
    a1111_owner *owners;
    a1111_call *calls;       /* in flight */
};

int a1111_init(http_server *s, sd_err *err)
{
    s->a1111 = calloc(1, sizeof *s->a1111);
    if (!s->a1111) return sd_errf(err, SD_ENOMEM, "", "out of memory");
    pthread_mutex_init(&s->a1111->mu, NULL);
    return 0;
}

void a1111_free(http_server *s)
{
    if (!s->a1111) return;
    for (a1111_owner *o = s->a1111->owners, *n; o; o = n) {
        n = o->next;
        json_decref(o->opts);
        free(o);
    }
    pthread_mutex_destroy(&s->a1111->mu);
    free(s->a1111);
    s->a1111 = NULL;
}

/* ---- names and errors ------------------------------------------------------ */

/* A1111's names: the field table's `a1111` column (dialect_name_field). */
static const char *a1111_row_name(const req_field *f) { return f->a1111; }

/* FastAPI's shapes: validation errors (400 here, but for a header) are 422
 * with a list of {loc, msg, type}; the others A1111's exception handler's object. */
static json_t *a1111_error_body(const sd_err *err, int *status)
{
    char safe[sizeof err->msg];   /* a message echoing a client's bytes (a method) may not be UTF-8 */
    snprintf(safe, sizeof safe, "%s", err->msg[0] ? err->msg : "unknown error");
    if (!params_utf8_valid(safe, strlen(safe)))
        for (char *p = safe; *p; p++)
            if ((unsigned char)*p >= 0x80) *p = '?';
    const char *msg = safe;
    if (*status == 400 && !strchr(err->field, '-')) *status = 422;   /* a header's (Content-Length) stays 400 */
    if (*status == 422) {
        json_t *loc = err->field[0] ? json_pack("[s, s]", "body", err->field) : json_pack("[s]", "body");
        return loc ? json_pack("{s:[{s:o, s:s, s:s}]}", "detail", "loc", loc, "msg", msg, "type", "value_error") : NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:s}", "error", "HTTPException", "detail", msg, "body", "", "errors", msg);
}

/* ---- the state: options per owner, calls in flight ------------------------ */

static int keyed(const http_server *s) { return auth_keys_count(s->cfg.keys) > 0; }

/* The owner's options (created empty); with the lock held. */
static a1111_owner *owner_get(struct a1111_state *st, int owner)
{
    for (a1111_owner *o = st->owners; o; o = o->next)
        if (o->owner == owner) return o;
    a1111_owner *o = calloc(1, sizeof *o);
    if (!o || !(o->opts = json_object())) {
        free(o);
        return NULL;
    }
    o->owner = owner;
    o->next = st->owners;
    st->owners = o;
    return o;
}

/* A copy of the owner's stored option `key` (NULL = none). */
static json_t *owner_option(http_server *s, int owner, const char *key)
{
    pthread_mutex_lock(&s->a1111->mu);
    a1111_owner *o = owner_get(s->a1111, owner);
    json_t *v = o ? json_deep_copy(json_object_get(o->opts, key)) : NULL;
    pthread_mutex_unlock(&s->a1111->mu);
    return v;
}

static void call_free(a1111_call *c)
{
    if (!c) return;
    json_decref(c->params);
    json_decref(c->notes);
    free(c);
}

static void call_link(http_server *s, a1111_call *c)
{
    pthread_mutex_lock(&s->a1111->mu);
    c->next = s->a1111->calls;
    s->a1111->calls = c;
    c->linked = 1;
    pthread_mutex_unlock(&s->a1111->mu);
}

static void a1111_req_done(http_server *s, req *r)
{
    a1111_call *c = r->dl_ctx;
    if (!c) return;
    pthread_mutex_lock(&s->a1111->mu);
    for (a1111_call **p = &s->a1111->calls; c->linked && *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    pthread_mutex_unlock(&s->a1111->mu);
    call_free(c);
    r->dl_ctx = NULL;
}

/* ---- models ---------------------------------------------------------------- */

/* "name [hash]" as A1111 titles a checkpoint (the name alone without a hash). */
static void model_title(const server_model *m, char *buf, size_t size)
{
    if (m->hash[0]) snprintf(buf, size, "%s [%s]", m->name, m->hash);
    else snprintf(buf, size, "%s", m->name);
}

/* A1111 names a checkpoint by its title, "name [hash]", or its name. */
static const model_naming a1111_naming = {.titles = 1};

/* The models and the index of the one `name` picks (NULL / unknown: the default). */
static int models_pick(http_server *s, server_model *ms, int *n, const char *name)
{
    sd_err e;
    sd_err_clear(&e);
    *n = server_models(s, ms, A1111_MAX_MODELS, &e);
    if (*n <= 0) {
        *n = 0;
        return -1;
    }
    int i = name ? server_model_pick(ms, *n, name, strlen(name), &a1111_naming) : -1;
    return i < 0 ? server_model_pick(ms, *n, NULL, 0, NULL) : i;
}

/* Checks a model title/name from a client: 0 with the model's name in out,
 * or -1 + 422 naming `field` when no model has it or the model is one
 * requests naming it are refused (server_model.refused: its header), so a
 * stored option never makes the caller's default unusable. */
static int model_check(http_server *s, const json_t *v, const char *field, char *out, size_t size, sd_err *err)
{
    if (!json_is_string(v)) return sd_errf(err, SD_EINVAL, field, "%s must be a model title from GET /sdapi/v1/sd-models", field);
    server_model *ms = calloc(A1111_MAX_MODELS, sizeof *ms);
    if (!ms) return sd_errf(err, SD_ENOMEM, "", "out of memory");
    sd_err e;
    sd_err_clear(&e);
    int n = server_models(s, ms, A1111_MAX_MODELS, &e);
    int i = server_model_pick(ms, n, json_string_value(v), json_string_length(v), &a1111_naming);
    if (i >= 0 && ms[i].refused[0])
        sd_errf(err, SD_EINVAL, field, "%s: model '%s' cannot be used: %s", field, ms[i].name, ms[i].refused);
    else if (i >= 0) snprintf(out, size, "%s", ms[i].name);
    else sd_errf(err, SD_EINVAL, field, "%s: no model '%.100s' on this server (GET /sdapi/v1/sd-models lists them)",
                 field, json_string_value(v));
    int rc = i >= 0 && !ms[i].refused[0] ? 0 : -1;
    free(ms);
    return rc;
}

/* ---- the body: A1111 fields -> the seed API's bag -------------------------- */

/* A bag value as JSON (NULL when it is not valid JSON text). */
static json_t *param_json(const param *p)
{
    switch (p->kind) {
    case PV_TEXT: return json_stringn(p->val, p->len);
    case PV_BOOL: return json_boolean(!strcmp(p->val, "true"));
    case PV_NULL: return json_null();
    case PV_FILE: return NULL;
    default: return json_loadb(p->val, p->len, JSON_DECODE_ANY, NULL);
    }
}

/* The A1111 field `name`, unless absent or null. */
static const param *field_get(const param_bag *b, const char *name)
{
    const param *p = params_bag_get(b, name);
    return p && p->kind != PV_NULL ? p : NULL;
}

/* A whole number field of A1111's own (n_iter, batch_size) in [1, hi]; absent = 1. */
static int small_int(const param_bag *b, const char *name, int hi, int *out, sd_err *err)
{
    const param *p = field_get(b, name);
    double v = 1;
    *out = 1;
    if (!p) return 0;
    if ((p->kind != PV_NUMBER && p->kind != PV_TEXT) || params_parse_number(p->val, p->len, &v) || v != (double)(int)v ||
        v < 1 || v > hi)
        return sd_errf(err, SD_EINVAL, name, "%s must be an integer in [1, %d] on this server", name, hi);
    *out = (int)v;
    return 0;
}

/* A boolean as A1111's request models (pydantic 1) read one: true/false,
 * the numbers 1/0, or a word (params_bool_word: so form and multipart
 * bodies can set them too).  1 with the value in *out, 0 if p is none of
 * these. */
static int a1111_bool(const param *p, int *out)
{
    double v;
    if (p->kind == PV_BOOL) return *out = !strcmp(p->val, "true"), 1;
    if (p->kind == PV_NUMBER) return !params_parse_number(p->val, p->len, &v) && (v == 0 || v == 1) && (*out = v == 1, 1);
    return p->kind == PV_TEXT && strlen(p->val) == p->len && params_bool_word(p->val, out);
}

/* The A1111 boolean fields this server reads or echoes: a value that is not
 * a boolean is a 422 naming the field, as A1111's (null: not given). */
static const char *const a1111_flags[] = {"enable_hr", "send_images", "save_images", "restore_faces", "tiling"};

static int check_flags(const param_bag *b, sd_err *err)
{
    for (size_t i = 0; i < sizeof a1111_flags / sizeof a1111_flags[0]; i++) {
        const param *p = field_get(b, a1111_flags[i]);
        int v;
        if (p && p->kind != PV_NULL && !a1111_bool(p, &v)) {
            char shown[48];
            snprintf(shown, sizeof shown, "%s", p->kind == PV_TEXT || p->kind == PV_NUMBER ? p->val : "a non-boolean");
            return sd_errf(err, SD_EINVAL, a1111_flags[i],
                           "%s must be a boolean (true/false, 1/0, yes/no, on/off), got '%s'", a1111_flags[i], shown);
        }
    }
    return 0;
}

/* A boolean field (absent or null = def). */
static int flag(const param_bag *b, const char *name, int def)
{
    const param *p = field_get(b, name);
    int v;
    return p && p->kind != PV_NULL && a1111_bool(p, &v) ? v : def;
}

/* The sampler: sampler_name, else sampler_index, else A1111's default.
 * A1111 reads `sampler_name or sampler_index`, so an empty sampler_name
 * (a client with no sampler chosen) falls back to sampler_index too. */
static int put_sampler(const param_bag *b, param_bag *sb, json_t *params, sd_err *err)
{
    const param *sn = field_get(b, "sampler_name");
    const char *field = sn && !(sn->kind == PV_TEXT && sn->len == 0) ? "sampler_name" : "sampler_index";
    const param *p = field_get(b, field);
    const char *name = p ? p->val : A1111_DEFAULT_SAMPLER;
    sd_sampler sm;
    sd_ksampler ks;
    sd_scheduler sch;
    if (p && p->kind != PV_TEXT) return sd_errf(err, SD_EINVAL, field, "%s must be a string", field);
    if (sd_sampler_parse(name, &sm, &ks, &sch))
        return sd_errf(err, SD_EINVAL, field, "%s: this server has no sampler '%.60s' (GET /sdapi/v1/samplers lists "
                       "them: Euler, Euler a, Heun, LMS, DPM++ 2M, DPM++ 2M SDE, optionally with a schedule such as "
                       "\"DPM++ 2M Karras\")", field, name);
    json_object_set_new(params, "sampler_name", json_string(name));
    return params_bag_add(sb, "sampler", PV_TEXT, name, strlen(name), 1, err);
}

/* The scheduler by A1111 name or label ("Karras", "karras", "SGM Uniform");
 * "Automatic" defers to a schedule named in the sampler. */
static int put_scheduler(const param_bag *b, param_bag *sb, json_t *params, sd_err *err)
{
    const param *p = field_get(b, "scheduler");
    if (!p) return 0;
    if (p->kind != PV_TEXT) return sd_errf(err, SD_EINVAL, "scheduler", "scheduler must be a string");
    json_object_set_new(params, "scheduler", json_stringn(p->val, p->len));
    for (int k = 1; k < SD_SCHEDULER_END; k++) {
        const char *name = sd_scheduler_name((sd_scheduler)k);
        if (strcasecmp(p->val, name) && strcasecmp(p->val, sd_scheduler_label((sd_scheduler)k))) continue;
        if (k == SD_SCHEDULER_AUTOMATIC) return 0;   /* the sampler's own (or its name's) */
        return params_bag_add(sb, "scheduler", PV_TEXT, name, strlen(name), 1, err);
    }
    return sd_errf(err, SD_EINVAL, "scheduler", "scheduler: this server has no schedule '%.40s' (GET "
                   "/sdapi/v1/schedulers lists them)", p->val);
}

/* init_images[0] as the init image (A1111 sends a list of base64 images). */
static int put_init(const param_bag *b, param_bag *sb, a1111_call *c, sd_err *err)
{
    const param *p = field_get(b, "init_images");
    if (!p) return 0;
    json_t *a = p->kind == PV_ARRAY ? json_loadb(p->val, p->len, 0, NULL) : NULL;
    const json_t *first = json_array_get(a, 0);
    int rc = 0;
    if (!json_is_string(first))
        rc = sd_errf(err, SD_EINVAL, "init_images", "init_images must be a list of base64 images (PNG, JPEG or WebP)");
    else
        rc = params_bag_add(sb, "init_image", PV_TEXT, json_string_value(first), json_string_length(first), 1, err);
    if (!rc && json_array_size(a) > 1)
        json_array_append_new(c->notes, json_string("init_images: only the first image is used"));
    json_decref(a);
    return rc;
}

/* The A1111 field `name` to move into the seed bag (the body is ours: r->bag). */
static param *field_take(param_bag *b, const char *name) { return (param *)field_get(b, name); }

/* img2img's mask, a base64 image (white = repaint), as mask_image. */
static int put_mask(param_bag *b, param_bag *sb, sd_err *err)
{
    param *p = field_take(b, "mask");
    if (!p || p->kind == PV_NULL) return 0;
    if (p->kind != PV_TEXT) return sd_errf(err, SD_EINVAL, "mask", "mask must be a base64 image (PNG, JPEG or WebP)");
    return params_bag_move(sb, p, "mask_image", err);
}

/* batch_size x n_iter images (image i uses seed + i). */
static int put_count(const param_bag *b, param_bag *sb, a1111_call *c, json_t *params, sd_err *err)
{
    const req_field *f = req_field_find("num_outputs");
    int hi = (int)f->hi, bs, it;
    if (small_int(b, "batch_size", hi, &bs, err) || small_int(b, "n_iter", hi, &it, err)) return -1;
    if (bs * it > hi)
        return sd_errf(err, SD_EINVAL, "batch_size", "batch_size x n_iter must be at most %d on this server, got %d x %d",
                       hi, bs, it);
    char num[16];
    int n = snprintf(num, sizeof num, "%d", bs * it);
    c->batch_size = bs * it;
    json_object_set_new(params, "batch_size", json_integer(bs));
    json_object_set_new(params, "n_iter", json_integer(it));
    return params_bag_add(sb, "num_outputs", PV_NUMBER, num, (size_t)n, 1, err);
}

/* A JSON value into the bag under the seed name (model, clip_skip). */
static int put_json(param_bag *sb, const char *name, const json_t *v, sd_err *err)
{
    if (json_is_string(v)) return params_bag_add(sb, name, PV_TEXT, json_string_value(v), json_string_length(v), 1, err);
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!t) return sd_errf(err, SD_ENOMEM, "", "out of memory");
    int rc = params_bag_add(sb, name, json_is_number(v) ? PV_NUMBER : json_is_boolean(v) ? PV_BOOL : PV_OBJECT, t, strlen(t), 1, err);
    free(t);
    return rc;
}

/* override_settings over the owner's options: the model and the CLIP skip. */
static int put_settings(http_server *s, req *r, param_bag *sb, json_t *params, sd_err *err)
{
    a1111_call *call = r->dl_ctx;
    const param *p = field_get(&r->bag, "override_settings");
    json_t *ov = p ? param_json(p) : json_object();
    int rc = 0;
    if (!json_is_object(ov))
        rc = sd_errf(err, SD_EINVAL, "override_settings", "override_settings must be an object of option: value");
    json_t *model = rc ? NULL : json_object_get(ov, "sd_model_checkpoint");
    json_t *mine = model ? NULL : owner_option(s, r->owner, "sd_model_checkpoint");
    json_t *clip = rc ? NULL : json_object_get(ov, "CLIP_stop_at_last_layers");
    json_t *myclip = clip ? NULL : owner_option(s, r->owner, "CLIP_stop_at_last_layers");
    char name[128];
    if (!rc && model && !model_check(s, model, "sd_model_checkpoint", name, sizeof name, err) && req_field_find("model"))
        rc = params_bag_add(sb, "model", PV_TEXT, name, strlen(name), 1, err);
    else if (model) rc = err->code ? -1 : 0;
    if (!rc && mine && json_is_string(mine) && req_field_find("model"))
        rc = params_bag_add(sb, "model", PV_TEXT, json_string_value(mine), json_string_length(mine), 1, err);
    if (!rc && clip && json_is_null(clip))   /* refused as POST /options refuses it (the bag: "an object") */
        rc = sd_errf(err, SD_EINVAL, "CLIP_stop_at_last_layers",
                     "CLIP_stop_at_last_layers must be an integer in [1, 12], got null");
    if (!rc && (clip || myclip)) rc = put_json(sb, "clip_skip", clip ? clip : myclip, err);
    call->clip_from_options = !clip && myclip;
    if (!rc) json_object_set(params, "override_settings", ov);
    json_decref(ov);
    json_decref(mine);
    json_decref(myclip);
    return rc;
}

/* Hires fix (docs/CLIENTS.md): the hr_ rows count only with enable_hr on
 * txt2img, as A1111 (denoising_strength is then the second pass's), and
 * hr_scale defaults to A1111's 2. */
static int put_hires(const param_bag *b, param_bag *sb, int img2img, json_t *params, sd_err *err)
{
    if (img2img || !flag(b, "enable_hr", 0) || field_get(b, "hr_scale")) return 0;
    json_object_set_new(params, "hr_scale", json_real(A1111_DEFAULT_HR_SCALE));
    char num[32];
    int n = snprintf(num, sizeof num, "%g", A1111_DEFAULT_HR_SCALE);
    return params_bag_add(sb, "hr_scale", PV_NUMBER, num, (size_t)n, 1, err);
}

/* The fields the table names for A1111 that are copied as they are. */
static int put_plain(param_bag *b, param_bag *sb, int img2img, json_t *params, sd_err *err)
{
    const int hires = !img2img && flag(b, "enable_hr", 0);
    for (int i = 0; i < req_nfields; i++) {
        const req_field *f = &req_fields[i];
        if (!f->a1111 || f->type == RF_SAMPLER || f->type == RF_SCHEDULER || f->type == RF_IMAGE) continue;
        if (!hires && !strncmp(f->name, "hr_", 3)) continue;   /* enable_hr false: ignored, as A1111 */
        if (!strcmp(f->name, "num_outputs") || !strcmp(f->name, "clip_skip")) continue;   /* composed */
        if (!(f->where & (img2img ? RF_IMG2IMG : RF_TXT2IMG))) continue;   /* denoising_strength of txt2img: hires fix */
        param *p = field_take(b, f->a1111);
        if (!p) continue;
        json_object_set_new(params, f->a1111, param_json(p));   /* (before the value moves) */
        if (params_bag_move(sb, p, f->name, err)) return -1;
    }
    return 0;
}

/* A1111 features this server has not: accepted, noted in info. */
static int note_ignored(const param_bag *b, a1111_call *c, int img2img, sd_err *err)
{
    static const char *const flags[] = {"restore_faces", "tiling"};
    const param *m = field_get(b, "mask");   /* img2img's (put_mask) */
    if (m && !img2img && m->kind != PV_NULL)
        return sd_errf(err, SD_EINVAL, "mask", "mask is a field of /sdapi/v1/img2img (inpainting), not of txt2img");
    const param *sn = field_get(b, "script_name");
    if (sn && sn->len) return sd_errf(err, SD_EINVAL, "script_name", "script_name: this server has no scripts");
    char note[96];
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (flag(b, flags[i], 0)) {
            snprintf(note, sizeof note, "%s: not available on this server, ignored", flags[i]);
            json_array_append_new(c->notes, json_string(note));
        }
    /* A1111 varies the picture with subseed_strength > 0 even when subseed
     * is -1 (a random one), and makes the noise at seed_resize_from_w x _h
     * when both are > 0: neither is done here, so say so */
    const param *sub = field_get(b, "subseed"), *ss = field_get(b, "subseed_strength");
    if ((sub && strcmp(sub->val, "-1")) || (ss && strtod(ss->val, NULL) != 0))
        json_array_append_new(c->notes, json_string("subseed: variation seeds are not available, ignored"));
    const param *rw = field_get(b, "seed_resize_from_w"), *rh = field_get(b, "seed_resize_from_h");
    if (rw && rh && strtod(rw->val, NULL) > 0 && strtod(rh->val, NULL) > 0)
        json_array_append_new(c->notes, json_string("seed_resize_from_w, seed_resize_from_h: not available, ignored"));
    if (img2img && flag(b, "enable_hr", 0))
        json_array_append_new(c->notes, json_string("enable_hr: hires fix is for txt2img, ignored"));
    if (img2img && (field_get(b, "width") || field_get(b, "height")))
        json_array_append_new(c->notes, json_string("width, height: img2img keeps the init image's size"));
    const param *st = field_get(b, "styles");
    if (st && (st->kind != PV_ARRAY || strcmp(st->val, "[]")))
        json_array_append_new(c->notes, json_string("styles: this server has no prompt styles, ignored"));
    /* hires fix's second pass with its own prompt, sampler, scheduler,
     * guidance or checkpoint: A1111 reads "" and its "Use same ..." words as
     * the first pass's; anything else would change the picture there */
    static const struct { const char *field, *same, *main, *what; } hr[] = {
        {"hr_prompt", "", "prompt", "prompt"},
        {"hr_negative_prompt", "", "negative_prompt", "negative prompt"},
        {"hr_sampler_name", "Use same sampler", "sampler_name", "sampler"},
        {"hr_scheduler", "Use same scheduler", "scheduler", "scheduler"},
        {"hr_checkpoint_name", "Use same checkpoint", NULL, "checkpoint"},
        {"hr_cfg", NULL, "cfg_scale", "CFG scale"},
    };
    for (size_t i = 0; !img2img && flag(b, "enable_hr", 0) && i < sizeof hr / sizeof hr[0]; i++) {
        const param *p = field_get(b, hr[i].field), *m = hr[i].main ? field_get(b, hr[i].main) : NULL;
        if (!p || p->kind == PV_NULL || !p->len || (hr[i].same && !strcmp(p->val, hr[i].same))) continue;
        double hv, mv;   /* the first pass's own value, as text or (hr_cfg) as a number: 7.0 is cfg_scale 7 */
        if (m && m->kind == p->kind && m->len == p->len && !memcmp(m->val, p->val, p->len)) continue;
        if (m && p->kind == PV_NUMBER && m->kind == PV_NUMBER && !params_parse_number(p->val, p->len, &hv) &&
            !params_parse_number(m->val, m->len, &mv) && hv == mv)
            continue;
        snprintf(note, sizeof note, "%s: the second pass uses the first pass's %s, ignored", hr[i].field, hr[i].what);
        json_array_append_new(c->notes, json_string(note));
    }
    return 0;
}

/* The A1111 body of a txt2img / img2img into the seed bag, then the request. */
static int a1111_gen_request(http_server *s, req *r, sd_err *err)
{
    param_bag *b = &r->bag;
    int img2img = r->rt->img2img;
    a1111_call *c = calloc(1, sizeof *c);
    if (!c || !(c->params = json_object()) || !(c->notes = json_array())) {
        call_free(c);
        return sd_errf(err, SD_ENOMEM, "", "out of memory");
    }
    r->dl_ctx = c;
    c->r = r;
    c->owner = r->owner;
    c->img2img = img2img;
    c->send_images = flag(b, "send_images", 1);
    param_bag sb;
    params_bag_init(&sb);
    sb.max_fields = A1111_MAX_FIELDS;
    int rc = check_flags(b, err);
    if (!rc) rc = note_ignored(b, c, img2img, err);
    if (!rc) rc = put_plain(b, &sb, img2img, c->params, err);
    if (!rc) rc = put_hires(b, &sb, img2img, c->params, err);
    if (!rc) rc = put_sampler(b, &sb, c->params, err);
    if (!rc) rc = put_scheduler(b, &sb, c->params, err);
    if (!rc) rc = put_count(b, &sb, c, c->params, err);
    if (!rc && img2img) rc = put_init(b, &sb, c, err);
    if (!rc && img2img) rc = put_mask(b, &sb, err);
    if (!rc) rc = put_settings(s, r, &sb, c->params, err);
    /* with A1111's ranges (denoising_strength 1, a full repaint: the engine
     * runs A1111's min(strength, 0.999) of the steps, kd_img2img_first),
     * then the seed API's names -> A1111's */
    if (!rc && (rc = params_to_request(&sb, img2img, dialect_a1111.name, &r->request, err)))
        dialect_name_field(&dialect_a1111, err);
    params_bag_free(&sb);
    if (rc) return -1;
    static const char *const echo[] = {"styles", "subseed", "restore_faces", "tiling", "send_images", "save_images"};
    for (size_t i = 0; i < sizeof echo / sizeof echo[0]; i++) {
        const param *p = field_get(b, echo[i]);
        if (p) json_object_set_new(c->params, echo[i], param_json(p));
    }
    json_object_set_new(c->params, "steps", json_integer(r->request.gen.steps));
    json_object_set_new(c->params, "cfg_scale", json_real(r->request.gen.cfg));
    json_object_set_new(c->params, "clip_skip", json_integer(r->request.gen.clip_skip));
    if (!json_object_get(c->params, "seed")) json_object_set_new(c->params, "seed", json_integer(-1));
    c->gen = r->request.gen;   /* scalars for info; the job owns the rest */
    c->gen.prompt = c->gen.negative = NULL;
    c->gen.init_rgb = NULL;
    c->gen.mask = NULL;   /* the job's */
    c->gen.loras = NULL;
    c->gen.n_loras = 0;
    return 0;
}

/* POST /sdapi/v1/options, validated and stored (no generation: returns 1). */
static int options_store(http_server *s, req *r, sd_err *err)
{
    json_t *add = json_object();
    if (!add) return sd_errf(err, SD_ENOMEM, "", "out of memory");
    const req_field *clip = req_field_find("clip_skip");
    for (int i = 0; i < r->bag.n && !err->code; i++) {
        const param *p = &r->bag.v[i];
        json_t *v = param_json(p);
        char name[128];
        if (!v || !params_utf8_valid(p->name, strlen(p->name))) {
            sd_errf(err, SD_EINVAL, "", "option values must be JSON values and names UTF-8");
        } else if (!strcmp(p->name, "sd_model_checkpoint")) {
            if (!model_check(s, v, p->name, name, sizeof name, err)) json_object_set_new(add, p->name, json_string(name));
        } else if (!strcmp(p->name, clip->a1111) &&
                   (!json_is_number(v) || !req_field_in_range(clip, json_number_value(v)))) {
            char range[48];
            req_field_range(clip, range, sizeof range);
            sd_errf(err, SD_EINVAL, clip->a1111, "%s must be an integer in %s", clip->a1111, range);
        } else {
            json_object_set(add, p->name, v);
        }
        json_decref(v);
    }
    if (!err->code) {
        pthread_mutex_lock(&s->a1111->mu);
        a1111_owner *o = owner_get(s->a1111, r->owner);
        json_t *next = o ? json_deep_copy(o->opts) : NULL;
        if (next) json_object_update(next, add);
        char *dump = next ? json_dumps(next, JSON_COMPACT) : NULL;
        if (!dump) sd_errf(err, SD_ENOMEM, "", "out of memory");
        else if (strlen(dump) > A1111_OPTIONS_MAX)
            sd_errf(err, SD_EINVAL, "", "the options would take more than %d bytes on this server", A1111_OPTIONS_MAX);
        else {
            json_decref(o->opts);
            o->opts = next;
            next = NULL;
        }
        free(dump);
        json_decref(next);
        pthread_mutex_unlock(&s->a1111->mu);
    }
    json_decref(add);
    return err->code ? -1 : 1;
}

static int a1111_to_request(http_server *s, req *r, sd_err *err)
{
    if (!strcmp(r->rt->path, "/sdapi/v1/options")) return options_store(s, r, err);
    return a1111_gen_request(s, r, err);
}

const dialect dialect_a1111 = {.name = "a1111", .max_fields = A1111_MAX_FIELDS, .to_request = a1111_to_request,
                               .row_name = a1111_row_name, .error_body = a1111_error_body, .auth_scheme = "Basic",
                               .req_done = a1111_req_done};

/* ---- txt2img / img2img ----------------------------------------------------- */

/* An error naming the CLIP skip when the call took it from the caller's
 * stored options: it names a field this request never sent, so say where
 * it came from. */
static void stored_clip_note(const a1111_call *call, sd_err *e)
{
    if (call && call->clip_from_options && !strcmp(e->field, "CLIP_stop_at_last_layers"))
        sd_err_prefix(e, "the CLIP_stop_at_last_layers stored with POST /sdapi/v1/options does not fit this model: ");
}

enum MHD_Result a1111_generate(http_server *s, req *r, struct MHD_Connection *c)
{
    int retry;
    a1111_call *call = r->dl_ctx;
    if (!r->err.code && call) {
        time_t t = time(NULL);
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(call->stamp, sizeof call->stamp, "%Y%m%d%H%M%S", &tm);
    }
    if (seed_submit(s, r, 0, &retry)) {   /* (it names the init image's errors the dialect's way, messages too) */
        stored_clip_note(call, &r->err);
        return reply_error(c, &r->ri, &r->err, retry, NULL);
    }
    call_link(s, call);
    return server_wait(s, r, c);
}

/* ---- info.sd_vae_name / sd_vae_hash ---- */
/* The value of the entry `label` in an A1111 parameters text: its last line
 * holds the entries "Label: value, ..." (a value with , : " or a newline
 * JSON-quoted, as image/a1111.c writes them); a new JSON string, NULL when
 * the text has no such entry. */
static json_t *infotext_entry(const char *text, const char *label)
{
    const char *p = text ? strrchr(text, '\n') : NULL;
    const size_t ll = strlen(label);
    for (p = p ? p + 1 : NULL; p && *p;) {
        const char *colon = strstr(p, ": ");
        if (!colon) return NULL;
        const char *v = colon + 2, *end = v + strcspn(v, ",");
        if (*v == '"') {   /* quoted: to the closing quote, over escapes */
            for (end = v + 1; *end && *end != '"'; end++)
                if (*end == '\\' && end[1]) end++;
            end += *end == '"';
        }
        if ((size_t)(colon - p) == ll && !memcmp(p, label, ll))
            return *v == '"' ? json_loadb(v, (size_t)(end - v), JSON_DECODE_ANY, NULL) : json_stringn(v, (size_t)(end - v));
        p = end + (*end == ',');
        p += strspn(p, " ");
    }
    return NULL;
}

/* A1111 fills info.sd_vae_name / sd_vae_hash from the VAE file it loaded
 * (sd_vae.get_loaded_vae_name / _hash: the file's base name, the first 10
 * hex of its sha256), null with the checkpoint's own VAE: here the VAE
 * override's, which are the "VAE" / "VAE hash" entries of the images'
 * parameters (they travel with the result through the Redis queue too). */
static json_t *vae_entry(const job_result *res, const char *label)
{
    json_t *v = res->n ? infotext_entry(res->images[0].parameters, label) : NULL;
    if (v && !json_is_string(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}
/* ---- end sd_vae_name / sd_vae_hash ---- */

/* info: what A1111's Processed.js() holds, for this result.  Its infotexts
 * are the images' own parameters texts (job_image.parameters, written into
 * the files), as A1111 answers the text it saved with each image. */
static json_t *info_json(const a1111_call *call, const job_result *res, int interrupted)
{
    json_t *prompts = json_array(), *negs = json_array(), *seeds = json_array(), *subs = json_array(),
           *texts = json_array();
    json_int_t sub = json_integer_value(json_object_get(call->params, "subseed"));
    for (int i = 0; i < res->n; i++) {
        json_array_append_new(prompts, json_string(res->prompt ? res->prompt : ""));
        json_array_append_new(negs, json_string(res->negative ? res->negative : ""));
        json_array_append_new(seeds, json_integer((json_int_t)res->images[i].seed));
        json_array_append_new(subs, json_integer(sub ? sub : -1));
        const char *t = res->images[i].parameters;   /* r3more */
        json_array_append_new(texts, json_string(t ? t : ""));
    }
    json_t *styles = json_object_get(call->params, "styles");
    json_t *notes = json_deep_copy(call->notes);
    if (interrupted) json_array_append_new(notes, json_string("interrupted: POST /sdapi/v1/interrupt or /skip"));
    const char *sampler = json_string_value(json_object_get(call->params, "sampler_name"));
    return json_pack("{s:s, s:o, s:s, s:o, s:I, s:o, s:I, s:o, s:i, s:i, s:i, s:s, s:f, s:i, s:i, s:b, s:n, s:s?, "
                     "s:s?, s:o?, s:o?, s:i, s:o, s:o, s:i, s:o, s:o, s:s, s:i, s:b, s:s, s:b, s:o}",
                     "prompt", res->prompt ? res->prompt : "", "all_prompts", prompts,
                     "negative_prompt", res->negative ? res->negative : "", "all_negative_prompts", negs,
                     "seed", (json_int_t)(res->n ? res->images[0].seed : call->gen.seed), "all_seeds", seeds,
                     "subseed", sub ? sub : (json_int_t)-1, "all_subseeds", subs, "subseed_strength", 0,
                     "width", res->width, "height", res->height, "sampler_name", sampler ? sampler : "",
                     "cfg_scale", (double)res->cfg, "steps", res->steps, "batch_size", res->n,
                     "restore_faces", 0, "face_restoration_model", "sd_model_name", res->model_name,
                     "sd_model_hash", res->model_hash, "sd_vae_name", vae_entry(res, "VAE"),
                     "sd_vae_hash", vae_entry(res, "VAE hash"),
                     "seed_resize_from_w", -1, "denoising_strength",
                     call->img2img ? json_real(res->denoise) : json_integer(0), "extra_generation_params",
                     json_object(), "index_of_first_image", 0, "infotexts", texts,
                     "styles", styles ? json_incref(styles) : json_array(), "job_timestamp", call->stamp,
                     "clip_skip", call->gen.clip_skip, "is_using_inpainting_conditioning", 0, "version", "sdserve",
                     "interrupted", interrupted, "notes", notes);
}

/* 200: the images (plain base64), parameters and info. */
static enum MHD_Result a1111_success(http_server *s, req *r, struct MHD_Connection *c, const job_result *res,
                                     int interrupted)
{
    a1111_call *call = r->dl_ctx;
    json_t *imgs = json_array();
    sd_err e;
    sd_err_clear(&e);
    for (int i = 0; imgs && call->send_images && i < res->n; i++) {
        size_t len;
        char *b64 = seed_image_base64(s, &res->images[i], &len, &e);
        if (!b64) {
            json_decref(imgs);
            return reply_error(c, &r->ri, &e, 0, NULL);
        }
        json_array_append_new(imgs, json_stringn(b64, len));
        free(b64);
    }
    json_object_set_new(call->params, "width", json_integer(res->width));
    json_object_set_new(call->params, "height", json_integer(res->height));
    json_t *info = info_json(call, res, interrupted);
    char *text = info ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    json_t *b = imgs && text ? json_pack("{s:o, s:O, s:s}", "images", imgs, "parameters", call->params, "info", text)
                             : NULL;
    if (!b) json_decref(imgs);
    free(text);
    return reply_json_utf8(c, &r->ri, b ? 200 : 503, b, NULL, NULL);
}

static int call_interrupted(http_server *s, const a1111_call *call)
{
    pthread_mutex_lock(&s->a1111->mu);
    int v = call->interrupted;
    pthread_mutex_unlock(&s->a1111->mu);
    return v;
}

enum MHD_Result a1111_answer(http_server *s, req *r, struct MHD_Connection *c)
{
    enum MHD_Result rc;
    if (seed_wait_failed(s, r, c, &rc)) return rc;
    job_status st;
    jobs_status(s->q, r->job, &st);
    a1111_call *call = r->dl_ctx;
    if (st.state == JOB_SUCCEEDED && st.result) {
        rc = a1111_success(s, r, c, st.result, 0);
    } else if (st.state == JOB_CANCELLED && call_interrupted(s, call)) {
        /* A1111 answers with the images made so far; a cancelled job has none */
        job_result *none = job_result_new(0);
        if (none) {
            none->width = st.width;
            none->height = st.height;
        }
        rc = none ? a1111_success(s, r, c, none, 1) : reply_errorf(c, &r->ri, SD_ENOMEM, "", "out of memory");
        job_result_free(none);
    } else {
        dialect_name_field(&dialect_a1111, &st.err);
        sd_err e = st.err;
        stored_clip_note(call, &e);
        if (st.state == JOB_CANCELLED) {   /* only shutdown cancels a job that still has its client: 503 */
            e = (sd_err){0};   /* (sd_errf keeps a first error: st.err's SD_ECANCELLED would stay, a 409) */
            sd_errf(&e, SD_EBUSY, "", "the job was cancelled: %s", st.err.msg);
        }
        rc = reply_error(c, &r->ri, &e, 0, NULL);
    }
    job_result_free(st.result);
    return rc;
}

/* ---- options ---------------------------------------------------------------- */

static json_t *options_json(http_server *s, int owner)
{
    server_model *ms = calloc(A1111_MAX_MODELS, sizeof *ms);
    json_t *mine = owner_option(s, owner, "sd_model_checkpoint");
    int n = 0, i = ms ? models_pick(s, ms, &n, json_string_value(mine)) : -1;
    json_decref(mine);
    char title[300] = "";
    if (i >= 0) model_title(&ms[i], title, sizeof title);
    /* no hash (a diffusers folder has no one file to hash): null, as A1111 */
    json_t *o = json_pack("{s:s, s:o, s:s, s:i, s:s, s:b, s:b, s:b}", "sd_model_checkpoint", title,
                          "sd_checkpoint_hash", i >= 0 && ms[i].sha256[0] ? json_string(ms[i].sha256) : json_null(),
                          "sd_vae", "Automatic",
                          "CLIP_stop_at_last_layers", 1, "samples_format", "png", "save_images", 1, "send_seed", 1,
                          "enable_pnginfo", 1);
    free(ms);
    pthread_mutex_lock(&s->a1111->mu);
    a1111_owner *ow = owner_get(s->a1111, owner);
    if (o && ow) {
        json_t *sm = json_incref(json_object_get(o, "sd_model_checkpoint"));
        json_object_update(o, ow->opts);
        json_object_set_new(o, "sd_model_checkpoint", sm);   /* the title, not the stored name */
    }
    pthread_mutex_unlock(&s->a1111->mu);
    return o;
}

enum MHD_Result a1111_options(http_server *s, req *r, struct MHD_Connection *c)
{
    if (!strcmp(r->verb, "POST")) {
        if (r->err.code) return reply_error(c, &r->ri, &r->err, 0, NULL);
        return reply_json(c, &r->ri, 200, json_object());
    }
    return reply_json_utf8(c, &r->ri, 200, options_json(s, r->owner), NULL, NULL);
}

/* ---- progress, interrupt, skip ------------------------------------------------ */

static int mine(http_server *s, const a1111_call *call, int owner) { return !keyed(s) || call->owner == owner; }

/* skip_current_image=true (FastAPI's bool: true, 1, yes, on in any case) */
static int query_true(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    return v && (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"));
}

/* current_image: the running job's latest preview as plain base64 PNG
 * (live previews, issue 18 item 2), or JSON null when it has none. */
static json_t *current_image(const job_preview *pv)
{
    size_t n = 0;
    char *b64 = pv->png ? img_base64_encode(pv->png, pv->len, &n) : NULL;
    json_t *v = b64 ? json_stringn(b64, n) : json_null();
    free(b64);
    return v ? v : json_null();
}

enum MHD_Result a1111_progress(http_server *s, req *r, struct MHD_Connection *c)
{
    int count = 0, step = 0, total = 0, interrupted = 0;
    double eta = 0;
    char stamp[16] = "0", job[16] = "";
    int want_image = !query_true(c, "skip_current_image");
    job_preview pv = {0};
    sd_err perr;
    sd_err_clear(&perr);
    pthread_mutex_lock(&s->a1111->mu);
    for (a1111_call *k = s->a1111->calls; k; k = k->next) {
        if (!mine(s, k, r->owner) || !k->r->job) continue;
        job_status st;
        jobs_status(s->q, k->r->job, &st);
        job_result_free(st.result);
        if (job_finished(st.state)) continue;
        count++;
        if (st.state != JOB_RUNNING) continue;
        step = st.step;
        total = st.total;
        eta = st.eta > 0 ? st.eta : 0;
        interrupted = k->interrupted;
        snprintf(stamp, sizeof stamp, "%s", k->stamp);
        snprintf(job, sizeof job, "%s", k->img2img ? "img2img" : "txt2img");
        job_preview_free(&pv);   /* the last running one's, as for step and total */
        if (want_image) jobs_preview(s->q, k->r->job, &pv, &perr);
    }
    pthread_mutex_unlock(&s->a1111->mu);
    double progress = total > 0 ? (double)step / total : 0;
    json_t *b = json_pack("{s:f, s:f, s:{s:b, s:b, s:s, s:i, s:s, s:i, s:i, s:i}, s:n, s:n, s:n}", "progress", progress,
                          "eta_relative", eta, "state", "skipped", 0, "interrupted", interrupted, "job", job,
                          "job_count", count, "job_timestamp", stamp, "job_no", 0, "sampling_step", step,
                          "sampling_steps", total, "current_image", "textinfo", "current_task");
    if (b && pv.png) json_object_set_new(b, "current_image", current_image(&pv));
    job_preview_free(&pv);
    return reply_json(c, &r->ri, 200, b);
}

/* Cancels the caller's jobs of this dialect: all of them, or the running one (skip). */
static enum MHD_Result stop_jobs(http_server *s, req *r, struct MHD_Connection *c, int running_only)
{
    pthread_mutex_lock(&s->a1111->mu);
    for (a1111_call *k = s->a1111->calls; k; k = k->next) {
        if (!mine(s, k, r->owner) || !k->r->job) continue;
        job_state st = jobs_state(s->q, k->r->job);
        if (job_finished(st) || (running_only && st != JOB_RUNNING)) continue;
        k->interrupted = 1;
        jobs_cancel(s->q, k->r->job, running_only ? "skipped (POST /sdapi/v1/skip)" : "interrupted (POST /sdapi/v1/interrupt)");
    }
    pthread_mutex_unlock(&s->a1111->mu);
    return reply_json(c, &r->ri, 200, json_object());
}

static enum MHD_Result post_interrupt(http_server *s, req *r, struct MHD_Connection *c) { return stop_jobs(s, r, c, 0); }
static enum MHD_Result post_skip(http_server *s, req *r, struct MHD_Connection *c) { return stop_jobs(s, r, c, 1); }

/* ---- the lists ------------------------------------------------------------------ */

static enum MHD_Result get_sd_models(http_server *s, req *r, struct MHD_Connection *c)
{
    server_model *ms = calloc(A1111_MAX_MODELS, sizeof *ms);
    int n = 0;
    if (ms) models_pick(s, ms, &n, NULL);
    json_t *a = ms ? json_array() : NULL;
    for (int i = 0; a && i < n; i++) {
        if (ms[i].refused[0]) continue;   /* not a usable model (GET /models says why): no title to pick */
        char title[300];
        model_title(&ms[i], title, sizeof title);
        json_array_append_new(a, json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:n}", "title", title, "model_name", ms[i].name,
                                           "hash", ms[i].hash[0] ? ms[i].hash : NULL, "sha256",
                                           ms[i].sha256[0] ? ms[i].sha256 : NULL, "filename",
                                           ms[i].file[0] ? ms[i].file : ms[i].name, "config"));
    }
    free(ms);
    return reply_json_utf8(c, &r->ri, 200, a, NULL, NULL);
}

static enum MHD_Result get_a_samplers(http_server *s, req *r, struct MHD_Connection *c)
{
    json_t *a = json_array();
    for (int k = 1; a && k < SD_KSAMPLER_END; k++)
        json_array_append_new(a, json_pack("{s:s, s:[s], s:{}}", "name", sd_ksampler_label((sd_ksampler)k), "aliases",
                                           sd_ksampler_kname((sd_ksampler)k), "options"));
    return reply_json(c, &r->ri, 200, a);
}

static enum MHD_Result get_schedulers(http_server *s, req *r, struct MHD_Connection *c)
{
    json_t *a = json_array();
    for (int k = 1; a && k < SD_SCHEDULER_END; k++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:n, s:i, s:b}", "name", sd_scheduler_name((sd_scheduler)k),
                                           "label", sd_scheduler_label((sd_scheduler)k), "aliases", "default_rho", -1,
                                           "need_inner_model", 0));
    return reply_json(c, &r->ri, 200, a);
}

static enum MHD_Result get_sd_vae(http_server *s, req *r, struct MHD_Connection *c)
{
    json_t *a = s->cfg.model_vae ? json_pack("[{s:s, s:s}]", "model_name", s->cfg.model_vae, "filename", s->cfg.model_vae)
                                 : json_array();
    return reply_json_utf8(c, &r->ri, 200, a, NULL, NULL);
}

#define A1111_MAX_LORAS 256
static enum MHD_Result get_a_loras(http_server *s, req *r, struct MHD_Connection *c)
{
    sd_lora_info *li = calloc(A1111_MAX_LORAS, sizeof *li);
    sd_err e;
    sd_err_clear(&e);
    int n = li && s->cfg.list_loras && !atomic_load(&s->loading)
                ? s->cfg.list_loras(s->cfg.check_ctx, li, A1111_MAX_LORAS, &e) : 0;
    json_t *a = li ? json_array() : NULL;
    for (int i = 0; a && i < n; i++) {
        char path[sizeof li[i].name + 16];
        snprintf(path, sizeof path, "%s.safetensors", li[i].name);
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:{}}", "name", li[i].name, "alias", li[i].name, "path",
                                           path, "metadata"));
    }
    free(li);
    return reply_json_utf8(c, &r->ri, 200, a, NULL, NULL);
}

static enum MHD_Result get_a_embeddings(http_server *s, req *r, struct MHD_Connection *c)
{
    json_t *loaded = json_object(), *skipped = json_object();
    sd_embedding_info in;
    for (int i = 0; loaded && skipped && s->cfg.list_embeddings && !atomic_load(&s->loading) &&
                    !s->cfg.list_embeddings(s->cfg.check_ctx, i, &in); i++)
        json_object_set_new(in.fits ? loaded : skipped, in.name,
                            json_pack("{s:n, s:n, s:n, s:i, s:i}", "step", "sd_checkpoint", "sd_checkpoint_name",
                                      "shape", in.width, "vectors", in.vectors));
    return reply_json_utf8(c, &r->ri, 200, json_pack("{s:o, s:o}", "loaded", loaded, "skipped", skipped), NULL, NULL);
}

/* What A1111 lists and this server has none of, or a fixed set of (the
 * hires fix upscalers, docs/SERVER.md "Hires fix"): a fixed answer. */
typedef struct fixed_answer { const char *name, *json; } fixed_answer;
static const fixed_answer fixed[] = {
    {"upscalers", "[{\"name\":\"Lanczos\",\"model_name\":null,\"model_path\":null,\"model_url\":null,\"scale\":4}]"},
    {"latent-upscale-modes", "[{\"name\":\"Latent\"},{\"name\":\"Latent (nearest-exact)\"}]"}, {"hypernetworks", "[]"}, {"face-restorers", "[]"},
    {"realesrgan-models", "[]"}, {"prompt-styles", "[]"}, {"sd-modules", "[]"}, {"script-info", "[]"},
    {"extensions", "[]"}, {"cmd-flags", "{}"}, {"scripts", "{\"txt2img\":[],\"img2img\":[]}"},
    {"memory", "{\"ram\":{},\"cuda\":{\"error\":\"no CUDA: this server runs on the CPU\"}}"},
};

static enum MHD_Result get_fixed(http_server *s, req *r, struct MHD_Connection *c)
{
    const char *name = r->url + strlen("/sdapi/v1/");
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(fixed[i].name, name)) return reply_json(c, &r->ri, 200, json_loads(fixed[i].json, 0, NULL));
    return reply_errorf(c, &r->ri, SD_ENOTFOUND, "", "Not Found");
}

static enum MHD_Result post_nothing(http_server *s, req *r, struct MHD_Connection *c)
{
    return reply_json(c, &r->ri, 200, json_object());
}

static enum MHD_Result method_not_allowed(req *r, struct MHD_Connection *c, const char *allow)
{
    sd_err e;
    sd_err_clear(&e);
    sd_errf(&e, SD_EMETHOD, "", "Method Not Allowed: use %s", allow);
    return reply_error(c, &r->ri, &e, 0, allow);
}

/* The endpoints behind the /sdapi/v1/ prefix row. */
typedef struct sub_route { const char *name, *method; route_fn fn; } sub_route;
static const sub_route subs[] = {
    {"interrupt", "POST", post_interrupt}, {"skip", "POST", post_skip}, {"sd-models", "GET", get_sd_models},
    {"samplers", "GET", get_a_samplers}, {"schedulers", "GET", get_schedulers}, {"sd-vae", "GET", get_sd_vae},
    {"loras", "GET", get_a_loras}, {"embeddings", "GET", get_a_embeddings}, {"refresh-checkpoints", "POST", post_nothing},
    {"refresh-vae", "POST", post_nothing}, {"refresh-loras", "POST", post_nothing}, {"reload-checkpoint", "POST", post_nothing},
    {"unload-checkpoint", "POST", post_nothing},
};

enum MHD_Result a1111_other(http_server *s, req *r, struct MHD_Connection *c)
{
    if (strncmp(r->url, "/sdapi/v1/", strlen("/sdapi/v1/"))) return reply_errorf(c, &r->ri, SD_ENOTFOUND, "", "Not Found");
    const char *name = r->url + strlen("/sdapi/v1/");
    const char *method = strcmp(r->verb, "HEAD") ? r->verb : "GET";
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(subs[i].name, name)) continue;
        if (!strcmp(subs[i].method, method)) return subs[i].fn(s, r, c);
        return method_not_allowed(r, c, subs[i].method);
    }
    if (!strcmp(method, "GET")) return get_fixed(s, r, c);
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(fixed[i].name, name)) return method_not_allowed(r, c, "GET");
    return reply_errorf(c, &r->ri, SD_ENOTFOUND, "", "Not Found");
}
