/* test_wire.c — a job that can travel (src/jobs/wire.c): every row of the
 * field table, the engine-only fields, the init image's pixels, LoRAs and
 * the server-side fields survive request -> JSON text -> request; results
 * of 1 and 4 images and errors likewise; the text is deterministic; bad
 * records (unknown key, wrong type, out of range, short or bad base64,
 * another version, a huge declared image) are refused naming the key, the
 * huge one before any allocation; an allocation failure at any point is
 * an error, never a crash or a leak. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "t.h"
#include "../../src/base/alloc.h"
#include "../../src/image/image.h"
#include "../../src/jobs/wire.h"

#define DUMP_FLAGS (JSON_SORT_KEYS | JSON_COMPACT)

/* ---- building requests -------------------------------------------------- */

/* A non-default value inside row f's range, per type. */
static void set_non_default(const req_field *f, sd_request *r, int i)
{
    char name[64];
    switch (f->type) {
    case RF_TEXT:
        snprintf(name, sizeof name, "%s caf\xc3\xa9 \xf0\x9f\x8e\xa8 %d", f->name, i);
        *req_field_text(f, r) = sd_strdup(name);
        break;
    case RF_INT: req_field_set_number(f, r, f->def == f->hi ? f->lo : f->hi); break;   /* (flags default to 1) */
    case RF_FLOAT: req_field_set_number(f, r, f->lo + (f->hi - f->lo) * 0.37); break;
    case RF_SEED: req_field_set_number(f, r, REQ_MAX_SEED); r->seed_was_random = 0; break;
    case RF_SAMPLER: req_field_set_name(f, r, "DPM++ 2M Karras"); break;   /* sampler, ksampler, name_schedule */
    case RF_FORMAT: req_field_set_name(f, r, "webp"); break;
    case RF_SCHEDULER: req_field_set_name(f, r, "sgm_uniform"); break;
    case RF_SPACING: req_field_set_name(f, r, "trailing"); break;
    case RF_UPSCALER: req_field_set_name(f, r, "Latent (nearest-exact)"); break;
    case RF_IMAGE: {   /* the table's rows are the images as sent (init, mask); the decoded ones are set by the caller */
        req_image_ref d = req_image_slot(f, r);
        *d.data = sd_strdup(req_field_is_mask(f) ? "iVBORw0KGgoAAAA=" : "iVBORw0KGgo=");
        *d.len = strlen(*d.data);
        break;
    }
    case RF_LORAS:
        req_add_lora(r, "detail", 6, 0.5, NULL);
        req_add_lora(r, "style-x", 7, -1.25, NULL);
        break;
    }
}

/* Pixels of a real picture (the tiny SDXL goldens' init image), or a
 * pattern of odd size when the reference folder is absent. */
static void set_init_image(sd_request *r)
{
    size_t n = 0;
    unsigned char *png = t_have_ref() ? t_slurp(t_ref("goldens/tiny-sdxl-s/pipe/init_image.png"), &n) : NULL;
    img_rgb im = {0};
    sd_err err;
    sd_err_clear(&err);
    if (!png || img_decode(png, n, NULL, &im, &err)) {
        im.width = 37, im.height = 23;
        im.px = malloc((size_t)im.width * im.height * 3);
        for (int i = 0; i < im.width * im.height * 3; i++) im.px[i] = (uint8_t)(i * 131 + (i >> 7));
    }
    free(png);
    r->gen.init_rgb = im.px;
    r->gen.init_width = im.width;
    r->gen.init_height = im.height;
    uint8_t *mask = malloc((size_t)im.width * im.height);   /* the decoded mask travels too */
    for (size_t i = 0; i < (size_t)im.width * im.height; i++) mask[i] = (uint8_t)(i * 37);
    r->gen.mask = mask;
}

/* Every field of the table at a non-default value, img2img with pixels. */
static void full_request(sd_request *r)
{
    sd_request_defaults(r, 1);
    for (int i = 0; i < req_nfields; i++) set_non_default(&req_fields[i], r, i);
    set_init_image(r);
    r->owner = 3;
}

/* ---- comparing ------------------------------------------------------------ */

static int same_text(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

/* Row f holds the same value in a and b. */
static int same_field(const req_field *f, const sd_request *a, const sd_request *b)
{
    switch (f->type) {
    case RF_TEXT: return same_text(*req_field_text(f, (sd_request *)a), *req_field_text(f, (sd_request *)b));
    case RF_SEED: return a->gen.seed == b->gen.seed;
    case RF_IMAGE:
        return a->init_len == b->init_len && a->init_is_raw == b->init_is_raw &&
               (!a->init_data ? !b->init_data : b->init_data && !memcmp(a->init_data, b->init_data, a->init_len + 1));
    case RF_LORAS:
        if (a->gen.n_loras != b->gen.n_loras) return 0;
        for (int i = 0; i < a->gen.n_loras; i++)
            if (strcmp(a->gen.loras[i].name, b->gen.loras[i].name) || a->gen.loras[i].weight != b->gen.loras[i].weight)
                return 0;
        return 1;
    default: return req_field_get_number(f, a) == req_field_get_number(f, b);
    }
}

/* What the table does not cover. */
static int same_rest(const sd_request *a, const sd_request *b)
{
    const sd_gen_params *p = &a->gen, *q = &b->gen;
    size_t n = (size_t)p->init_width * p->init_height * 3;
    return a->img2img == b->img2img && a->seed_was_random == b->seed_was_random && a->owner == b->owner &&
           p->ksampler == q->ksampler && p->name_schedule == q->name_schedule && p->init_width == q->init_width &&
           p->init_height == q->init_height && !p->init_rgb == !q->init_rgb &&
           (!p->init_rgb || !memcmp(p->init_rgb, q->init_rgb, n));
}

/* r -> JSON text -> *back; the text in *text (free). */
static int round_trip(const sd_request *r, sd_request *back, char **text, sd_err *err)
{
    json_t *j = wire_request_to_json(r, err);
    *text = j ? json_dumps(j, DUMP_FLAGS) : NULL;
    json_decref(j);
    json_t *k = *text ? json_loads(*text, 0, NULL) : NULL;
    int rc = k ? wire_request_from_json(k, back, err) : -1;
    json_decref(k);
    return rc;
}

static void test_table_round_trip(void)
{
    sd_request r, d, back;
    sd_err err;
    sd_err_clear(&err);
    full_request(&r);
    sd_request_defaults(&d, 1);
    char *text = NULL;
    int rc = round_trip(&r, &back, &text, &err);
    CHECKF(rc == 0, "the full request round-trips", "%s: %s", err.field, err.msg);
    for (int i = 0; !rc && i < req_nfields; i++) {
        const req_field *f = &req_fields[i];
        char name[96];
        snprintf(name, sizeof name, "row %s: set to a non-default value and back", f->name);
        CHECKF(!same_field(f, &r, &d) && same_field(f, &r, &back), name, "%g / %g", req_field_get_number(f, &r),
               req_field_get_number(f, &back));
    }
    CHECK(!rc && same_rest(&r, &back), "route, seed flag, owner, ksampler, name_schedule and pixels survive");
    CHECK(!rc && back.gen.ksampler == SD_KSAMPLER_DPMPP_2M && back.gen.name_schedule == SD_SCHEDULER_KARRAS,
          "the A1111 sampler choice travels as ksampler + name_schedule");
    CHECKF(!rc && r.gen.init_width > 0 && back.gen.init_width == r.gen.init_width &&
               back.gen.init_height == r.gen.init_height &&
               !memcmp(back.gen.init_rgb, r.gen.init_rgb, (size_t)r.gen.init_width * r.gen.init_height * 3),
           "the init image's pixels are bit-identical", "%dx%d", back.gen.init_width, back.gen.init_height);
    CHECK(!rc && back.gen.mask && !memcmp(back.gen.mask, r.gen.mask, (size_t)r.gen.init_width * r.gen.init_height) &&
              back.mask_data && back.mask_len == r.mask_len && !memcmp(back.mask_data, r.mask_data, r.mask_len),
          "the mask (decoded and as sent) is bit-identical");
    /* deterministic: the same request, the same text, also after the trip */
    json_t *j1 = wire_request_to_json(&r, &err), *j2 = rc ? NULL : wire_request_to_json(&back, &err);
    char *t1 = j1 ? json_dumps(j1, DUMP_FLAGS) : NULL, *t2 = j2 ? json_dumps(j2, DUMP_FLAGS) : NULL;
    CHECK(text && t1 && t2 && !strcmp(text, t1) && !strcmp(t1, t2), "the same request gives the same JSON text");
    free(t1), free(t2), free(text);
    json_decref(j1), json_decref(j2);
    sd_request_free(&r), sd_request_free(&d), sd_request_free(&back);
}

/* A txt2img request as the server queues it: prompt, random seed drawn,
 * size resolved, a diffusers sampler, no LoRAs, a model name. */
static void test_txt2img(void)
{
    sd_request r, back;
    sd_err err;
    sd_err_clear(&err);
    sd_request_defaults(&r, 0);
    r.gen.prompt = sd_strdup("a lighthouse at dusk");
    r.gen.seed = req_random_seed();
    req_resolve_size(&r, 1024);
    req_field_set_name(req_field_find("sampler"), &r, "ddim");
    r.model = sd_strdup("sdxl-base");
    r.gen.orig_width = 2048, r.gen.target_height = 768, r.gen.crop_top = 64;
    char *text = NULL;
    int rc = round_trip(&r, &back, &text, &err);
    int same = !rc && same_rest(&r, &back);
    for (int i = 0; same && i < req_nfields; i++) same = same_field(&req_fields[i], &r, &back);
    CHECKF(same, "txt2img with a random seed, model and SDXL ids round-trips", "%s", err.msg);
    CHECK(!rc && back.seed_was_random == 1 && back.gen.seed == r.gen.seed && back.gen.width == 1024 &&
              !strcmp(back.model, "sdxl-base") && back.gen.orig_width == 2048 && !back.gen.init_rgb && !back.init_data,
          "the drawn seed, the resolved size and the model name are kept");
    CHECK(text && !strstr(text, "init_image") && !strstr(text, "ksampler") && !strstr(text, "negative_prompt"),
          "what a txt2img request does not have is not written");
    free(text);
    sd_request_free(&r), sd_request_free(&back);
}

/* The undecoded image as sent, raw bytes with NULs, every base64 padding. */
static void test_init_data(void)
{
    int ok = 1;
    for (size_t len = 0; len < 8; len++) {
        sd_request r, back;
        sd_err err;
        sd_err_clear(&err);
        sd_request_defaults(&r, 1);
        r.gen.prompt = sd_strdup("x");
        r.init_data = malloc(len + 1);
        for (size_t i = 0; i < len; i++) r.init_data[i] = (char)(i * 77);
        r.init_data[len] = 0;
        r.init_len = len;
        r.init_is_raw = (int)(len & 1);
        char *text = NULL;
        ok &= round_trip(&r, &back, &text, &err) == 0 && same_field(req_field_find("init_image"), &r, &back);
        free(text);
        sd_request_free(&r), sd_request_free(&back);
    }
    CHECK(ok, "init_data (the image as sent) of 0..7 bytes round-trips");
}

/* An A1111 img2img with denoising_strength 1 (a full repaint, which its
 * clients send) is queued with strength 1, outside the seed API's (0, 1):
 * a worker must take that job, not fail it. */
static void test_a1111_strength_one(void)
{
    sd_request r, back;
    sd_err err;
    sd_err_clear(&err);
    sd_request_defaults(&r, 1);
    r.gen.prompt = sd_strdup("a fox in winter");
    r.gen.strength = 1.0f;
    char *text = NULL;
    int rc = round_trip(&r, &back, &text, &err);
    CHECKF(rc == 0 && back.gen.strength == 1.0f, "img2img with strength 1 (A1111's full repaint) round-trips",
           "%s: %s", err.field, err.msg);
    free(text);
    if (!rc) sd_request_free(&back);
    sd_request_free(&r);
}

/* ---- refusals ------------------------------------------------------------ */

/* The full request's JSON (bare: only v and img2img) with `patch` merged
 * into it (a key set to null is removed). */
static json_t *patched(const char *patch, int bare)
{
    sd_request r;
    sd_err err;
    sd_err_clear(&err);
    full_request(&r);
    json_t *j = bare ? json_pack("{s:i, s:b}", "v", WIRE_VERSION, "img2img", 1) : wire_request_to_json(&r, &err);
    sd_request_free(&r);
    json_t *p = json_loads(patch, JSON_ALLOW_NUL, NULL);
    if (!j || !p) abort();
    const char *k;
    json_t *v;
    json_object_foreach(p, k, v) {
        if (json_is_null(v)) json_object_del(j, k);
        else json_object_set(j, k, v);
    }
    json_decref(p);
    return j;
}

/* The request patched is refused naming field; no_alloc: a bare request
 * (no texts to copy) refused without one allocation of our own. */
static void refused(const char *patch, const char *field, int no_alloc)
{
    json_t *j = patched(patch, no_alloc);
    sd_request r;
    sd_err err;
    sd_err_clear(&err);
    unsigned long before = sd_alloc_count();
    int rc = wire_request_from_json(j, &r, &err);
    unsigned long allocs = sd_alloc_count() - before;
    char name[200];
    snprintf(name, sizeof name, "refused naming %s: %.120s", field, patch);
    CHECKF(rc == -1 && err.code == SD_EINVAL && !strcmp(err.field, field) && !r.gen.prompt && !r.gen.init_rgb &&
               (!no_alloc || !allocs), name, "rc %d code %d field '%s' (%s), %lu allocations", rc, err.code, err.field,
           err.msg, allocs);
    if (!rc) sd_request_free(&r);
    json_decref(j);
}

/* A base64 text of n bytes of pixels. */
static char *rgb_patch(int w, int h, size_t bytes, char bad)
{
    uint8_t *px = calloc(bytes + 1, 1);
    size_t n;
    char *b = img_base64_encode(px, bytes, &n);
    if (bad && n > 5) b[5] = bad;
    size_t sz = n + 128;
    char *p = malloc(sz);
    snprintf(p, sz, "{\"init_image\": {\"width\": %d, \"height\": %d, \"rgb\": \"%s\"}}", w, h, b);
    free(px), free(b);
    return p;
}

static void test_refusals(void)
{
    refused("{\"colour\": 1}", "colour", 0);
    refused("{\"v\": 2}", "v", 1);
    refused("{\"v\": null}", "v", 1);
    refused("{\"num_inference_steps\": \"30\"}", "num_inference_steps", 0);
    refused("{\"num_inference_steps\": 151}", "num_inference_steps", 0);
    refused("{\"num_inference_steps\": 30.5}", "num_inference_steps", 0);
    refused("{\"guidance_scale\": true}", "guidance_scale", 0);
    refused("{\"guidance_scale\": 0}", "guidance_scale", 0);
    refused("{\"strength\": 1.0001}", "strength", 0);   /* past every dialect's range (A1111 takes 1) */
    refused("{\"strength\": 0}", "strength", 0);
    refused("{\"seed\": -1}", "seed", 0);
    refused("{\"seed\": 9007199254740992}", "seed", 0);
    refused("{\"width\": 2049}", "width", 0);
    refused("{\"output_quality\": 0}", "output_quality", 0);
    refused("{\"output_format\": \"gif\"}", "output_format", 0);
    refused("{\"sampler\": \"DPM++ 2M\"}", "sampler", 0);   /* A1111 names travel as ksampler */
    refused("{\"ksampler\": \"k_nope\"}", "ksampler", 0);
    refused("{\"name_schedule\": 3}", "name_schedule", 0);
    refused("{\"scheduler\": \"karras \"}", "scheduler", 0);
    refused("{\"img2img\": 1}", "img2img", 0);
    refused("{\"owner\": -1}", "owner", 0);
    refused("{\"prompt\": \"a\\u0000b\"}", "prompt", 0);
    refused("{\"model\": null, \"prompt\": 7}", "prompt", 0);
    refused("{\"loras\": {\"name\": \"a\"}}", "loras", 0);
    refused("{\"loras\": [{\"name\": \"a\", \"weight\": 4.5}]}", "loras", 0);
    refused("{\"loras\": [{\"name\": \"a\", \"weight\": 1, \"x\": 0}]}", "loras[0].x", 0);
    refused("{\"loras\": [{\"name\": \"a\"}]}", "loras[0]", 0);
    refused("{\"init_image\": [1]}", "init_image", 0);
    refused("{\"init_data\": {\"raw\": true, \"bytes\": \"AB=C\"}}", "init_data.bytes", 0);
    /* the pixels: sizes first, then the exact length, then the alphabet */
    refused("{\"init_image\": {\"width\": 100000, \"height\": 100000, \"rgb\": \"\"}}", "init_image.width", 1);
    refused("{\"init_image\": {\"width\": 0, \"height\": 8, \"rgb\": \"\"}}", "init_image.width", 1);
    char *p = rgb_patch(2048, 2048, 3000, 0);
    refused(p, "init_image.rgb", 1);   /* declared 12 MiB, 3000 bytes sent: nothing allocated */
    free(p);
    p = rgb_patch(8, 8, 8 * 8 * 3 - 3, 0);
    refused(p, "init_image.rgb", 1);   /* truncated by one pixel */
    free(p);
    p = rgb_patch(8, 8, 8 * 8 * 3, '*');
    refused(p, "init_image.rgb", 1);   /* a byte outside base64 */
    free(p);
    p = rgb_patch(8, 8, 8 * 8 * 3, '-');
    refused(p, "init_image.rgb", 1);   /* the URL-safe alphabet is not the wire's */
    free(p);

    sd_request r;
    sd_err err;
    sd_err_clear(&err);
    /* a key with a NUL inside is not "prompt" (json_loads makes none; a
     * program can) */
    json_t *nk = patched("{}", 1);
    json_object_setn_new(nk, "prompt\0x", 8, json_string("a"));
    CHECKF(wire_request_from_json(nk, &r, &err) == -1 && !strcmp(err.field, "prompt"),
           "a key with a NUL inside is refused", "%s", err.msg);
    json_decref(nk);
    sd_err_clear(&err);
    json_t *a = json_array();
    CHECK(wire_request_from_json(a, &r, &err) == -1 && err.code == SD_EINVAL, "a JSON array is not a request");
    json_decref(a);
    char many[1024] = "{\"loras\": [";
    for (int i = 0; i <= SD_MAX_LORAS; i++) strcat(many, i ? ", {\"name\": \"a\", \"weight\": 1}" : "{\"name\": \"a\", \"weight\": 1}");
    strcat(many, "]}");
    refused(many, "loras", 0);
}

/* ---- results and errors -------------------------------------------------- */

static job_result *make_result(int n)
{
    job_result *r = job_result_new(n);
    for (int i = 0; i < n; i++) {
        char k[96];
        snprintf(k, sizeof k, "%064d.%s", i, i % 2 ? "jpg" : "png");
        r->images[i].key = sd_strdup(k);
        snprintf(k, sizeof k, "http://127.0.0.1:8080/images/%d.png", i);
        r->images[i].url = sd_strdup(k);
        r->images[i].mime = img_format_mime(i % 2 ? IMG_JPEG : i == 2 ? IMG_WEBP : IMG_PNG);
        r->images[i].seed = 9007199254740991ull + (uint64_t)i;
        /* r3more: the file's parameters text (an image of a batch may have none) */
        snprintf(k, sizeof k, "a cat\nNegative prompt: blurry\nSteps: 25, Seed: %d, VAE Decoder: TAESD", i);
        r->images[i].parameters = i == 2 ? NULL : sd_strdup(k);
    }
    r->prompt = sd_strdup("a cat, (masterpiece:1.2) <lora:detail:0.5>");
    r->negative = n > 1 ? sd_strdup("blurry") : NULL;
    r->width = 768, r->height = 512, r->steps = 25, r->cfg = 7.1f, r->denoise = n > 1 ? 0.55f : -1.0f;
    r->sampler = n > 1 ? sd_ksampler_label(SD_KSAMPLER_DPMPP_2M_SDE) : sd_sampler_name(SD_SAMPLER_EULER_A);
    r->model_name = sd_strdup("tiny-sd1");
    r->model_hash = n > 1 ? sd_strdup("0123456789") : NULL;
    return r;
}

static int same_result(const job_result *a, const job_result *b)
{
    if (a->n != b->n || !same_text(a->prompt, b->prompt) || !same_text(a->negative, b->negative) ||
        a->width != b->width || a->height != b->height || a->steps != b->steps || a->cfg != b->cfg ||
        a->denoise != b->denoise || a->sampler != b->sampler || !same_text(a->model_name, b->model_name) ||
        !same_text(a->model_hash, b->model_hash))
        return 0;
    for (int i = 0; i < a->n; i++)
        if (!same_text(a->images[i].key, b->images[i].key) || !same_text(a->images[i].url, b->images[i].url) ||
            a->images[i].mime != b->images[i].mime || a->images[i].seed != b->images[i].seed ||
            !same_text(a->images[i].parameters, b->images[i].parameters))
            return 0;
    return 1;
}

/* r -> text -> result; NULL + err when refused. */
static job_result *result_trip(const char *text, sd_err *err)
{
    json_t *j = json_loads(text, 0, NULL);
    job_result *b = j ? wire_result_from_json(j, err) : NULL;
    json_decref(j);
    return b;
}

static void result_refused(const job_result *r, const char *key, const char *value, const char *field)
{
    sd_err err;
    sd_err_clear(&err);
    json_t *j = wire_result_to_json(r, &err), *v = json_loads(value, JSON_DECODE_ANY, NULL);
    json_t *im = json_array_get(json_object_get(j, "images"), 0);
    json_object_set_new(strncmp(key, "images.", 7) ? j : im, strncmp(key, "images.", 7) ? key : key + 7, v);
    job_result *b = wire_result_from_json(j, &err);
    char name[160];
    snprintf(name, sizeof name, "a result with %s = %.40s is refused naming %s", key, value, field);
    CHECKF(!b && !strcmp(err.field, field), name, "field '%s': %s", err.field, err.msg);
    job_result_free(b);
    json_decref(j);
}

static void test_results(void)
{
    for (int n = 1; n <= 4; n += 3) {
        sd_err err;
        sd_err_clear(&err);
        job_result *r = make_result(n);
        json_t *j = wire_result_to_json(r, &err);
        char *text = j ? json_dumps(j, DUMP_FLAGS) : NULL;
        job_result *b = text ? result_trip(text, &err) : NULL;
        char name[80];
        snprintf(name, sizeof name, "a result of %d image%s round-trips (static mime and sampler)", n, n > 1 ? "s" : "");
        CHECKF(b && same_result(r, b), name, "%s: %s", err.field, err.msg);
        json_decref(j);
        free(text);
        job_result_free(b);
        job_result_free(r);
    }
    job_result *r = make_result(1);
    result_refused(r, "images.mime", "\"image/gif\"", "images[0].mime");
    result_refused(r, "images.seed", "-1", "images[0].seed");
    result_refused(r, "images.size", "1", "images[0].size");
    result_refused(r, "sampler", "\"Euler A\"", "sampler");
    result_refused(r, "v", "2", "v");
    result_refused(r, "steps", "\"25\"", "steps");
    result_refused(r, "cfg", "\"7\"", "cfg");
    result_refused(r, "images", "[{}, {}, {}, {}, {}]", "images");
    result_refused(r, "extra", "0", "extra");
    result_refused(r, "images.parameters", "7", "images[0].parameters");   /* r3more */
    {   /* a parameters text one byte longer than two prompts and 64 KiB */
        size_t n = 2 * REQ_MAX_PROMPT + (64 << 10) + 1;
        char *big = malloc(n + 3);
        memset(big, 'a', n + 2);
        big[0] = big[n + 1] = '"';
        big[n + 2] = 0;
        result_refused(r, "images.parameters", big, "images[0].parameters");
        free(big);
    }
    job_result_free(r);
}

static void test_errors(void)
{
    int ok = 1;
    for (sd_errcode c = SD_EINVAL; c <= SD_EINTERNAL; c++) {
        sd_err e, back;
        sd_err_clear(&e);
        sd_errf(&e, c, c == SD_EBUSY ? "" : "num_inference_steps", "code %d: \xc3\xa9t\xc3\xa9 \"quoted\"", (int)c);
        json_t *j = wire_error_to_json(&e);
        ok &= j && wire_error_from_json(j, &back) == 0 && back.code == e.code && !strcmp(back.field, e.field) &&
              !strcmp(back.msg, e.msg);
        json_decref(j);
    }
    CHECK(ok, "every error code round-trips with its field and message");
    /* a message cut inside a UTF-8 character still travels */
    sd_err e, back;
    sd_err_clear(&e);
    sd_errf(&e, SD_EINVAL, "prompt", "prompt: \xc3");
    json_t *j = wire_error_to_json(&e);
    CHECK(j && !wire_error_from_json(j, &back) && !strcmp(back.msg, "prompt: ?"), "a message that is not UTF-8 travels");
    json_decref(j);
    const char *bad[] = {"{\"code\": \"ok\", \"message\": \"\"}", "{\"code\": \"nope\", \"message\": \"m\"}",
                         "{\"code\": \"busy\"}", "{\"code\": \"busy\", \"message\": \"m\", \"x\": 1}", "[]"};
    ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *k = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        ok &= wire_error_from_json(k, &back) == -1 && back.code == SD_EINTERNAL;
        json_decref(k);
    }
    CHECK(ok, "malformed error records are refused as internal errors");
}

/* Every allocation of a full request's parse failing in turn: -1 and
 * SD_ENOMEM, or success once past the last; nothing leaks (ASan tier). */
static void test_alloc_failures(void)
{
    sd_request r;
    sd_err err;
    sd_err_clear(&err);
    full_request(&r);
    json_t *j = wire_request_to_json(&r, &err);
    sd_request_free(&r);
    int ok = j != NULL, k = 1;
    for (; ok && k < 200; k++) {
        sd_request back;
        sd_err_clear(&err);
        sd_alloc_fail_at((unsigned long)k);
        int rc = wire_request_from_json(j, &back, &err);
        int failed = sd_alloc_failed();
        sd_alloc_fail_at(0);
        if (!failed) {
            ok = rc == 0;
            sd_request_free(&back);
            break;
        }
        ok = rc == -1 && err.code == SD_ENOMEM;
    }
    CHECKF(ok && k > 3, "each allocation of a parse failing gives SD_ENOMEM", "at allocation %d: %s", k, err.msg);
    json_decref(j);
}

int main(void)
{
    test_table_round_trip();
    test_txt2img();
    test_init_data();
    test_a1111_strength_one();
    test_refusals();
    test_results();
    test_errors();
    test_alloc_failures();
    return t_done();
}
