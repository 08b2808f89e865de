/* api_seed.c — the seed API dialect: POST /txt2img and POST /img2img with
 * form, JSON or multipart bodies (validated by params.c into an sd_request),
 * answered when the job ends with {"images":[{"image_url","mime_type",
 * "seed"}],"status":"success"} rendered from the job's structured result.
 * The request -> job step (seed_submit, with the init image decoded) and
 * the images array are shared with the async jobs API (api_jobs.c), which
 * takes the same bodies. */
#include "server_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/resample.h"
#include "../image/image.h"
#include "../jobs/mask_req.h"

/* The seed API's dialect: its fields are the field table's names
 * (params_to_request), its errors {"status":"error","code","field","message"}. */
const dialect dialect_seed = {.name = "seed"};

/* ---- names: one table per dialect (dialect.h) ------------------------------ */

/* t's name for the seed API's field `seed`, or NULL when it has none. */
static const char *renamed_in(const dialect_name *t, const char *seed)
{
    for (const dialect_name *n = t; n && n->seed; n++)
        if (!strcmp(n->seed, seed)) return n->name;
    return NULL;
}

/* d's name for the seed API's field `seed`, or NULL when it has none. */
static const char *renamed(const dialect *d, const char *seed)
{
    const char *name = renamed_in(d ? d->names : NULL, seed);
    if (name) return name;
    const req_field *f = d && d->row_name ? req_field_find(seed) : NULL;
    return f ? d->row_name(f) : NULL;
}

const char *dialect_field_name_as(const dialect *d, const dialect_name *sent, const char *field)
{
    if (!field || !*field) return field;
    const char *seed = req_field_find(field) ? field : params_field_name(field);   /* engine names -> the seed API's */
    const char *name = renamed_in(sent, seed);
    if (!name) name = renamed(d, seed);
    return name ? name : seed;
}

const char *dialect_field_name(const dialect *d, const char *field) { return dialect_field_name_as(d, NULL, field); }

static int word_char(char c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

/* Every whole-word `from` in msg replaced by `to` (the buffer's size kept). */
static void replace_word(char *msg, size_t size, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to);
    for (char *p = strstr(msg, from); p; p = strstr(p, from)) {
        if ((p > msg && word_char(p[-1])) || word_char(p[fl])) {
            p += fl;
            continue;
        }
        size_t rest = strlen(p + fl);
        if ((size_t)(p - msg) + tl + rest + 1 > size) return;
        memmove(p + tl, p + fl, rest + 1);
        memcpy(p, to, tl);
        p += tl;
    }
}

void dialect_name_field(const dialect *d, sd_err *err) { dialect_name_field_as(d, NULL, err); }

void dialect_name_field_as(const dialect *d, const dialect_name *sent, sd_err *err)
{
    const char *name = dialect_field_name_as(d, sent, err->field);
    if (name != err->field) snprintf(err->field, sizeof err->field, "%s", name ? name : "");   /* never onto itself */
    for (const dialect_name *n = sent; n && n->seed; n++)   /* (before d's: they win) */
        if (strcmp(n->seed, n->name)) replace_word(err->msg, sizeof err->msg, n->seed, n->name);
    for (const dialect_name *n = d ? d->names : NULL; n && n->seed; n++)
        if (strcmp(n->seed, n->name)) replace_word(err->msg, sizeof err->msg, n->seed, n->name);
    for (int i = 0; d && d->row_name && i < req_nfields; i++) {
        const char *to = d->row_name(&req_fields[i]);
        if (to && strcmp(to, req_fields[i].name)) replace_word(err->msg, sizeof err->msg, req_fields[i].name, to);
    }
}

/* Decoded init images: sides and pixels refused before allocation above these. */
#define INIT_MAX_SIDE 4096
#define INIT_MAX_PIXELS (4096LL * 4096LL)

/* The init image of a validated img2img request decoded into its pixels
 * (gen.init_rgb), the bytes as sent freed. */
/* The side an init image of w x h is scaled down to fit so that it keeps
 * within the server's --max-side and --max-pixels (0: the defaults). */
static int init_fit_side(const server_config *c, int w, int h)
{
    int side = c->max_side > 0 ? c->max_side : REQ_MAX_SIDE;
    int64_t px = c->max_pixels > 0 ? c->max_pixels : REQ_MAX_PIXELS;
    int big = w > h ? w : h;
    if ((int64_t)w * h > px) {
        int s = (int)floor(big * sqrt((double)px / ((double)w * h)));
        if (s < side) side = s < 1 ? 1 : s;
    }
    return side;
}

/* An undecoded image (init_image, mask_image) as bytes: *bytes points at
 * the raw part or a new decoded buffer (*owned = 1). */
static int image_bytes(const sd_request *g, int mask, size_t max_body, const char *field, uint8_t **bytes,
                       size_t *blen, int *owned, sd_err *err)
{
    const char *data = mask ? g->mask_data : g->init_data;
    size_t len = mask ? g->mask_len : g->init_len;
    *owned = !(mask ? g->mask_is_raw : g->init_is_raw);
    if (!*owned) {
        *bytes = (uint8_t *)data;
        *blen = len;
        return 0;
    }
    return img_base64_decode(data, len, max_body, field, bytes, blen, err);
}

/* the mask (mask_image, or an OpenAI edit's own alpha) as a plane of
 * the init image's size as sent (w x h); *plane NULL = no mask. */
static int decode_mask(sd_request *g, const server_config *c, int w, int h, const uint8_t *init_alpha,
                       const char *field, uint8_t **plane, sd_err *err)
{
    *plane = NULL;
    if (!g->mask_data)
        return g->mask_mode == INPAINT_MASK_ALPHA ? inpaint_mask_from_alpha(init_alpha, w, h, plane, err) : 0;
    uint8_t *bytes = NULL;
    size_t blen = 0;
    int owned = 0;
    if (image_bytes(g, 1, c->max_body, field, &bytes, &blen, &owned, err)) return -1;
    int rc = inpaint_decode_mask(bytes, blen, (inpaint_mask_mode)g->mask_mode, field, w, h, plane, err);
    if (owned) free(bytes);
    free(g->mask_data);
    g->mask_data = NULL;
    g->mask_len = 0;
    return rc;
}

/* mask_field: the dialect's name of mask_image, for its messages. */
static int decode_init(sd_request *g, const server_config *c, const char *mask_field, sd_err *err)
{
    size_t max_body = c->max_body;
    if (!g->img2img) return 0;
    uint8_t *bytes = NULL, *alpha = NULL, *mask = NULL;
    size_t blen = 0;
    int owned = 0;
    if (image_bytes(g, 0, max_body, "init_image", &bytes, &blen, &owned, err)) return -1;
    img_decode_opts o = {.max_side = INIT_MAX_SIDE, .max_pixels = INIT_MAX_PIXELS, .field = "init_image",
                         .alpha = g->mask_mode == INPAINT_MASK_ALPHA && !g->mask_data ? &alpha : NULL};
    img_rgb im = {0};
    int rc = img_decode(bytes, blen, &o, &im, err);
    if (owned) free(bytes);
    free(g->init_data);
    g->init_data = NULL;
    g->init_len = 0;
    if (!rc) rc = decode_mask(g, c, im.width, im.height, alpha, mask_field, &mask, err);
    free(alpha);
    int mw = im.width, mh = im.height;
    if (rc || img_fit_within(&im, init_fit_side(c, im.width, im.height), err) < 0) {
        img_rgb_free(&im);
        free(mask);
        return -1;
    }
    /* a size asked for img2img (OpenAI edits' `size`, checked against the
     * server's limits by the dialect): the init image resized to it with
     * PIL's Lanczos, as A1111's "Just resize" (images.resize_image) */
    if (g->gen.width > 0 && g->gen.height > 0 && (g->gen.width != im.width || g->gen.height != im.height)) {
        uint8_t *px = NULL;
        if (sd_resample(im.px, im.width, im.height, 3, g->gen.width, g->gen.height, SD_FILTER_LANCZOS, &px, err)) {
            img_rgb_free(&im);
            free(mask);
            return -1;
        }
        img_rgb_free(&im);
        im.px = px;
        im.width = g->gen.width;
        im.height = g->gen.height;
    }
    g->gen.init_rgb = im.px;
    g->gen.init_width = im.width;
    g->gen.init_height = im.height;
    return mask ? inpaint_set_mask(g, mask, mw, mh, mask_field, err) : 0;   /* fitted to it, inverted, checked */
}

int seed_submit(http_server *s, req *r, int listed, int *retry_after)
{
    *retry_after = 0;
    const dialect *d = route_dialect(r->rt);
    if (!r->err.code && decode_init(&r->request, &s->cfg, dialect_field_name_as(d, r->sent, "mask_image"), &r->err))
        dialect_name_field_as(d, r->sent, &r->err);   /* init_image -> the dialect's name (as sent) */
    if (r->err.code) {
        sd_request_free(&r->request);
        return -1;
    }
    r->request.owner = r->owner;
    r->async = listed;
    return jobs_submit(s->q, &r->request, listed, &r->job, retry_after, &r->err);
}

enum MHD_Result seed_generate(http_server *s, req *r, struct MHD_Connection *c)
{
    int retry;
    if (seed_submit(s, r, 0, &retry)) return reply_error(c, &r->ri, &r->err, retry, NULL);
    return server_wait(s, r, c);
}

json_t *seed_images(const job_result *res)
{
    json_t *a = json_array();
    for (int i = 0; a && i < res->n; i++) {
        const job_image *im = &res->images[i];
        json_t *o = json_pack("{s:s, s:s, s:I}", "image_url", im->url, "mime_type", im->mime, "seed",
                              (json_int_t)im->seed);
        if (!o || json_array_append_new(a, o)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

char *seed_image_base64(http_server *s, const job_image *im, size_t *len, sd_err *err)
{
    storage *st = atomic_load(&s->store);
    uint8_t *raw = NULL;
    size_t n = 0;
    if (!st) {
        sd_errf(err, SD_EINTERNAL, "", "the image %s is not in the store", im->key);
        return NULL;
    }
    if (storage_read_all(st, im->key, &raw, &n, err)) return NULL;
    char *b64 = img_base64_encode(raw, n, len);
    free(raw);
    if (!b64) sd_errf(err, SD_ENOMEM, "", "out of memory encoding the image %s", im->key);
    return b64;
}

/* 200 with the result's images. */
static enum MHD_Result seed_success(http_server *s, req *r, struct MHD_Connection *c, const job_result *res)
{
    json_t *imgs = seed_images(res);
    json_t *b = imgs ? json_pack("{s:o, s:s}", "images", imgs, "status", job_status_word(JOB_SUCCEEDED)) : NULL;
    return reply_json_utf8(c, &r->ri, b ? 200 : 503, b, NULL, NULL);
}

int seed_wait_failed(http_server *s, req *r, struct MHD_Connection *c, enum MHD_Result *rc)
{
    r->phase = PH_DONE;
    if (r->gone) {
        /* Nobody reads this; answering (rather than failing) lets the connection close quietly. */
        *rc = reply_errorf(c, &r->ri, SD_ECANCELLED, "", "the client disconnected; the job was cancelled");
        r->ri.status = 499;
        return 1;
    }
    if (r->wait_timeout)
        *rc = reply_errorf(c, &r->ri, SD_ETIMEOUT, "",
                           "the job did not finish within the %g s synchronous wait limit and was cancelled; use "
                           "POST /jobs/%s to run long jobs asynchronously",
                           s->cfg.sync_wait, r->rt->img2img ? "img2img" : "txt2img");
    else if (r->shutdown)
        *rc = reply_errorf(c, &r->ri, SD_EBUSY, "", "the server is shutting down; the job was cancelled");
    return r->wait_timeout || r->shutdown;
}

/* The synchronous answer, once the wait is over (server_wait). */
enum MHD_Result seed_answer(http_server *s, req *r, struct MHD_Connection *c)
{
    return seed_answer_with(s, r, c, seed_success);
}

enum MHD_Result seed_answer_with(http_server *s, req *r, struct MHD_Connection *c, result_render ok)
{
    enum MHD_Result rc;
    if (seed_wait_failed(s, r, c, &rc)) return rc;
    job_status st;
    jobs_status(s->q, r->job, &st);
    if (st.state == JOB_SUCCEEDED && st.result) {
        rc = ok(s, r, c, st.result);
    } else if (st.state == JOB_CANCELLED) {
        /* only shutdown cancels a synchronous job that still has its client */
        rc = reply_errorf(c, &r->ri, SD_EBUSY, "", "the job was cancelled: %s", st.err.msg);
    } else {
        dialect_name_field_as(route_dialect(r->rt), r->sent, &st.err);   /* the engine's names -> the API's */
        rc = reply_error(c, &r->ri, &st.err, 0, NULL);
    }
    job_result_free(st.result);
    return rc;
}
