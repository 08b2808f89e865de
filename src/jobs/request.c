/* request.c — the table of request fields and the few helpers every
 * dialect and the CLI share to apply it (request.h).  The rows are in the
 * order the seed API lists its fields in messages. */
#include "request.h"
#include "../base/pyfloat.h"

#include <math.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define AT(member) offsetof(sd_request, member)

const req_field req_fields[] = {
    /* name, engine name, type, where, lo, hi, lo_open, hi_open, default, endpoints,
     * CLI flag, alias, metavar, A1111 name, help */
    {"prompt", "prompt", RF_TEXT, AT(gen.prompt), 0, REQ_MAX_PROMPT, 0, 0, 0, RF_BOTH,
     "--prompt", NULL, "TEXT", "prompt", "what to draw (required)"},
    {"seed", "seed", RF_SEED, AT(gen.seed), 0, REQ_MAX_SEED, 0, 0, -1, RF_BOTH,
     "--seed", NULL, "S", "seed", "0..2^53-1, -1 = random"},
    {"num_outputs", "n", RF_INT, AT(gen.n), 1, REQ_MAX_OUTPUTS, 0, 0, 1, RF_BOTH,
     "--count", "-n", "N", "batch_size", "images; image i uses seed+i"},
    /* default 0 = the model's native size (req_resolve_size); the server's
     * --max-side / --max-pixels narrow the range (req_check_size) */
    {"width", "width", RF_INT, AT(gen.width), 0, REQ_MAX_SIDE_CAP, 1, 0, 0, RF_TXT2IMG,
     "--width", "-W", "W", "width", "output width (default: the model's native size)"},
    {"height", "height", RF_INT, AT(gen.height), 0, REQ_MAX_SIDE_CAP, 1, 0, 0, RF_TXT2IMG,
     "--height", "-H", "H", "height", "output height (default: the model's native size)"},
    {"num_inference_steps", "steps", RF_INT, AT(gen.steps), 0, REQ_MAX_STEPS, 1, 0, 30, RF_BOTH,
     "--steps", NULL, "N", "steps", "sampler steps"},
    {"guidance_scale", "cfg", RF_FLOAT, AT(gen.cfg), 0, 20, 1, 0, 7, RF_BOTH,
     "--cfg", NULL, "X", "cfg_scale", "guidance scale"},
    {"strength", "strength", RF_FLOAT, AT(gen.strength), 0, 1, 1, 1, 0.7, RF_IMG2IMG,
     "--strength", NULL, "S", "denoising_strength", "img2img strength"},
    {"init_image", "init_image", RF_IMAGE, AT(init_data), 0, 0, 0, 0, 0, RF_IMG2IMG,
     "--init-image", NULL, "F", "init_images", "img2img from a PNG/JPEG/WebP image"},
    {"negative_prompt", "negative", RF_TEXT, AT(gen.negative), 0, REQ_MAX_PROMPT, 0, 0, 0, RF_BOTH,
     "--negative", NULL, "TEXT", "negative_prompt", "what to avoid"},
    {"sampler", "sampler", RF_SAMPLER, AT(gen.sampler), 0, 0, 0, 0, SD_SAMPLER_EULER_A, RF_BOTH,
     "--sampler", NULL, "NAME", "sampler_name", "sampler"},
    {"output_format", NULL, RF_FORMAT, AT(out_format), 0, 0, 0, 0, IMG_PNG, RF_BOTH,
     "--format", NULL, "FMT", NULL, "image file format"},
    {"output_quality", NULL, RF_INT, AT(out_quality), 1, 100, 0, 0, 90, RF_BOTH,
     "--quality", NULL, "Q", NULL, "JPEG/WebP quality"},
    {"clip_skip", "clip_skip", RF_INT, AT(gen.clip_skip), 1, 12, 0, 0, 1, RF_BOTH,
     "--clip-skip", NULL, "N", "CLIP_stop_at_last_layers", "A1111 Clip skip: text encoder layer from the end"},
    /* issue 14 items 6-7: A1111's schedules, diffusers' timestep spacing */
    {"scheduler", "scheduler", RF_SCHEDULER, AT(gen.scheduler), 0, 0, 0, 0, SD_SCHEDULER_UNSET, RF_BOTH,
     "--scheduler", NULL, "NAME", "scheduler", "A1111 schedule of a k-diffusion sampler"},
    {"timestep_spacing", "timestep_spacing", RF_SPACING, AT(gen.spacing), 0, 0, 0, 0, SD_TSPACING_MODEL, RF_BOTH,
     "--timestep-spacing", NULL, "S", NULL, "diffusers samplers' spacing (default: the model's)"},
    /* LoRA per request (docs/LORA.md): weights in [-4, 4], default 1 */
    {"loras", "loras", RF_LORAS, AT(gen.loras), -SD_MAX_LORA_WEIGHT, SD_MAX_LORA_WEIGHT, 0, 0, 1, RF_BOTH,
     "--lora", NULL, "NAME[:W],...", NULL, "LoRAs from --lora-dir (repeatable; or <lora:NAME:W> in the prompt)"},
    /* issue 15: SDXL's size conditioning (add_time_ids), 0 = diffusers'
     * default (the output size; crops 0); SD 1.x/2.x models ignore them.
     * AUTOMATIC1111 has no per-request names for them (it sends the output
     * size and its sdxl_crop_top/left settings). */
#define SIZE_ID(name, member, flag, meta, help) \
    {name, #member, RF_INT, AT(gen.member), 0, REQ_MAX_SIZE_ID, 0, 0, 0, RF_BOTH, flag, NULL, meta, NULL, "SDXL only: " help}
    SIZE_ID("original_width", orig_width, "--original-width", "W", "original_size width id (0 = output width)"),
    SIZE_ID("original_height", orig_height, "--original-height", "H", "original_size height id (0 = output height)"),
    SIZE_ID("crop_top", crop_top, "--crop-top", "N", "crop_coords_top_left top id"),
    SIZE_ID("crop_left", crop_left, "--crop-left", "N", "crop_coords_top_left left id"),
    SIZE_ID("target_width", target_width, "--target-width", "W", "target_size width id (0 = output width)"),
    SIZE_ID("target_height", target_height, "--target-height", "H", "target_size height id (0 = output height)"),
#undef SIZE_ID
    /* issue 16: several models (--model-dir; GET /models lists the names) */
    {"model", NULL, RF_TEXT, AT(model), 0, REQ_MAX_MODEL_NAME, 0, 0, 0, RF_BOTH,
     NULL, NULL, "NAME", NULL, "checkpoint by name (GET /models; default: the server's default model)"},
    /* ---- inpainting (docs/INPAINTING.md); defaults are A1111's API's ---- */
    {"mask_image", "mask", RF_IMAGE, AT(mask_data), 0, 0, 0, 0, 0, RF_IMG2IMG,
     "--mask", NULL, "F", "mask", "inpainting mask (PNG/JPEG/WebP): white = repaint, black = keep"},
    {"mask_blur", "mask_blur", RF_INT, AT(mask_blur), 0, 64, 0, 0, 4, RF_IMG2IMG,
     "--mask-blur", NULL, "PX", "mask_blur", "Gaussian blur of the mask's edge, in pixels (A1111's)"},
    {"inpainting_fill", "inpainting_fill", RF_INT, AT(inpainting_fill), 0, 3, 0, 0, 0, RF_IMG2IMG,
     "--inpainting-fill", NULL, "N", "inpainting_fill",
     "masked area starts from: 0 fill, 1 original, 2 latent noise, 3 latent nothing"},
    {"inpaint_full_res", "inpaint_full_res", RF_INT, AT(inpaint_full_res), 0, 1, 0, 0, 1, RF_IMG2IMG,
     "--inpaint-full-res", NULL, "0|1", "inpaint_full_res", "1 = only masked: inpaint a crop around the mask at full size"},
    {"inpaint_full_res_padding", "inpaint_full_res_padding", RF_INT, AT(inpaint_full_res_padding), 0, 256, 0, 0, 0,
     RF_IMG2IMG, "--inpaint-padding", NULL, "PX", "inpaint_full_res_padding", "pixels around the mask in that crop"},
    {"inpainting_mask_invert", "inpainting_mask_invert", RF_INT, AT(inpainting_mask_invert), 0, 1, 0, 0, 0, RF_IMG2IMG,
     "--mask-invert", NULL, "0|1", "inpainting_mask_invert", "1 = repaint where the mask is black"},
    {"mask_overlay", "mask_overlay", RF_INT, AT(mask_overlay), 0, 1, 0, 0, 1, RF_IMG2IMG,
     "--mask-overlay", NULL, "0|1", NULL, "1 = the original's unmasked pixels pasted over the result"},
    /* A1111's per-axis blur; -1 (the default) = mask_blur's */
    {"mask_blur_x", "mask_blur_x", RF_INT, AT(mask_blur_x), 0, 64, 0, 0, -1, RF_IMG2IMG,
     NULL, NULL, "PX", "mask_blur_x", "the mask's blur along x (A1111's; default 4; a given mask_blur sets both)"},
    {"mask_blur_y", "mask_blur_y", RF_INT, AT(mask_blur_y), 0, 64, 0, 0, -1, RF_IMG2IMG,
     NULL, NULL, "PX", "mask_blur_y", "the mask's blur along y (A1111's; default 4; a given mask_blur sets both)"},
    /* ---- end inpainting ---- */
    /* issue 18: hires fix (docs/SERVER.md "Hires fix"), txt2img only; on when
     * hr_scale or hr_resize_x/y is given (A1111: enable_hr, api_a1111.c) */
    {"hr_scale", NULL, RF_FLOAT, AT(hr_scale), 1, REQ_MAX_HR_SCALE, 0, 0, 0, RF_TXT2IMG,
     "--hr-scale", NULL, "X", "hr_scale", "hires fix: second pass at width/height x X (default: off)"},
    {"hr_resize_x", NULL, RF_INT, AT(hr_resize_x), 0, REQ_MAX_SIDE_CAP, 0, 0, 0, RF_TXT2IMG,
     "--hr-resize-x", NULL, "W", "hr_resize_x", "hires fix: second pass width (wins over hr_scale; 0 = keep aspect)"},
    {"hr_resize_y", NULL, RF_INT, AT(hr_resize_y), 0, REQ_MAX_SIDE_CAP, 0, 0, 0, RF_TXT2IMG,
     "--hr-resize-y", NULL, "H", "hr_resize_y", "hires fix: second pass height (wins over hr_scale; 0 = keep aspect)"},
    {"hr_upscaler", "hr_upscaler", RF_UPSCALER, AT(gen.hr_upscaler), 0, 0, 0, 0, SD_HR_NONE, RF_TXT2IMG,
     "--hr-upscaler", NULL, "NAME", "hr_upscaler", "hires fix: the first pass's upscaler"},
    {"hr_steps", "hr_steps", RF_INT, AT(gen.hr_steps), 0, REQ_MAX_STEPS, 0, 0, 0, RF_TXT2IMG,
     "--hr-steps", NULL, "N", "hr_second_pass_steps", "hires fix: second pass steps (0 = num_inference_steps)"},
    {"hr_strength", "hr_strength", RF_FLOAT, AT(gen.hr_strength), 0, 1, 1, 0, 0.75, RF_TXT2IMG,
     "--hr-strength", NULL, "S", "denoising_strength", "hires fix: second pass denoising strength"},
};
const int req_nfields = (int)(sizeof req_fields / sizeof req_fields[0]);

/* hr_upscaler names: the seed API's and A1111's (any case). */
static const char *const upscaler_names[][2] = {
    [SD_HR_LATENT] = {"latent", "Latent"},
    [SD_HR_LATENT_NEAREST_EXACT] = {"latent-nearest-exact", "Latent (nearest-exact)"},
    [SD_HR_LANCZOS] = {"lanczos", "Lanczos"},
};

static sd_hr_upscaler upscaler_from_name(const char *t)
{
    for (int u = SD_HR_LATENT; u <= SD_HR_LANCZOS; u++)
        if (!strcasecmp(t, upscaler_names[u][0]) || !strcasecmp(t, upscaler_names[u][1])) return (sd_hr_upscaler)u;
    return SD_HR_NONE;
}

const req_field *req_field_find(const char *name)
{
    for (int i = 0; i < req_nfields; i++)
        if (!strcmp(req_fields[i].name, name)) return &req_fields[i];
    return NULL;
}

const req_field *req_field_by_engine(const char *field)
{
    for (int i = 0; i < req_nfields; i++)
        if (req_fields[i].engine && !strcmp(req_fields[i].engine, field)) return &req_fields[i];
    return NULL;
}

const req_field *req_field_by_flag(const char *flag)
{
    for (int i = 0; i < req_nfields; i++) {
        const req_field *f = &req_fields[i];
        if (f->cli && (!strcmp(f->cli, flag) || (f->cli_alias && !strcmp(f->cli_alias, flag)))) return f;
    }
    return NULL;
}

static void *slot(const req_field *f, const sd_request *r) { return (char *)r + f->offset; }

const char **req_field_text(const req_field *f, sd_request *r) { return (const char **)slot(f, r); }

void req_field_set_number(const req_field *f, sd_request *r, double v)
{
    switch (f->type) {
    case RF_INT: *(int *)slot(f, r) = (int)v; break;
    case RF_FLOAT: *(float *)slot(f, r) = (float)v; break;
    case RF_SEED: *(uint64_t *)slot(f, r) = (uint64_t)v; break;
    case RF_SAMPLER: *(sd_sampler *)slot(f, r) = (sd_sampler)(int)v; break;
    case RF_FORMAT: *(int *)slot(f, r) = (int)v; break;
    case RF_SCHEDULER: *(sd_scheduler *)slot(f, r) = (sd_scheduler)(int)v; break;
    case RF_SPACING: *(sd_timestep_spacing *)slot(f, r) = (sd_timestep_spacing)(int)v; break;
    case RF_UPSCALER: *(sd_hr_upscaler *)slot(f, r) = (sd_hr_upscaler)(int)v; break;
    default: break;
    }
}

double req_field_get_number(const req_field *f, const sd_request *r)
{
    switch (f->type) {
    case RF_INT: case RF_FORMAT: return *(const int *)slot(f, r);
    case RF_FLOAT: return *(const float *)slot(f, r);
    case RF_SEED: return (double)*(const uint64_t *)slot(f, r);
    case RF_SAMPLER: return (double)*(const sd_sampler *)slot(f, r);
    case RF_SCHEDULER: return (double)*(const sd_scheduler *)slot(f, r);
    case RF_SPACING: return (double)*(const sd_timestep_spacing *)slot(f, r);
    case RF_UPSCALER: return (double)*(const sd_hr_upscaler *)slot(f, r);
    default: return 0;
    }
}

void sd_request_defaults(sd_request *r, int img2img)
{
    memset(r, 0, sizeof *r);
    r->img2img = img2img;
    for (int i = 0; i < req_nfields; i++) {
        const req_field *f = &req_fields[i];
        if (f->type != RF_TEXT && f->type != RF_IMAGE && f->type != RF_SEED && f->type != RF_LORAS)
            req_field_set_number(f, r, f->def);
    }
    r->seed_was_random = 1;
}

/* ---- inpainting ---- */
int req_field_is_mask(const req_field *f) { return f->type == RF_IMAGE && f->offset == AT(mask_data); }

req_image_ref req_image_slot(const req_field *f, sd_request *r)
{
    if (req_field_is_mask(f)) return (req_image_ref){&r->mask_data, &r->mask_len, &r->mask_is_raw};
    return (req_image_ref){&r->init_data, &r->init_len, &r->init_is_raw};
}

/* the blur's sigmas and the infotext's inpainting entries */
void req_mask_blur(const sd_request *r, int *sx, int *sy)
{
    *sx = r->mask_blur_x >= 0 ? r->mask_blur_x : r->mask_blur;
    *sy = r->mask_blur_y >= 0 ? r->mask_blur_y : r->mask_blur;
}

/* the infotext's inpainting entries (A1111's, when the img2img request has
 * a mask); zero when it has none */
static img_inpaint_info req_inpaint_info(const sd_request *r)
{
    if (!r->img2img || (!r->gen.mask && !r->mask_data)) return (img_inpaint_info){0};   /* decoded or not yet */
    static const char *const content[] = {"fill", NULL, "latent noise", "latent nothing"};
    int sx, sy;
    req_mask_blur(r, &sx, &sy);
    return (img_inpaint_info){
        .on = 1, .inverted = r->inpainting_mask_invert, .mask_blur = sx == sy ? sx : 0,
        .only_masked = r->inpaint_full_res, .padding = r->inpaint_full_res_padding,
        .masked_content = (unsigned)r->inpainting_fill < 4 ? content[r->inpainting_fill] : NULL,
    };
}
/* ---- end inpainting ---- */

void req_resolve_size(sd_request *r, int native)
{
    if (r->img2img) return;
    if (native <= 0) native = REQ_NATIVE_SIDE;
    if (r->gen.width <= 0) r->gen.width = native;
    if (r->gen.height <= 0) r->gen.height = native;
    req_resolve_hires(r);
}

int req_check_size(const sd_request *r, int max_side, int64_t max_pixels, sd_err *err)
{
    if (r->img2img) return 0;
    if (max_side <= 0) max_side = REQ_MAX_SIDE;
    if (max_pixels <= 0) max_pixels = REQ_MAX_PIXELS;
    int w = r->gen.width, h = r->gen.height;
    if (w > max_side || h > max_side)
        return sd_errf(err, SD_EINVAL, w > max_side ? "width" : "height",
                       "%s must be at most %d on this server (--max-side), got %dx%d (a request without a size "
                       "gets the model's native size)", w > max_side ? "width" : "height", max_side, w, h);
    if ((int64_t)w * h > max_pixels)
        return sd_errf(err, SD_EINVAL, "width",
                       "width x height must be at most %lld pixels on this server (--max-pixels), got %dx%d = %lld "
                       "(a request without a size gets the model's native size)", (long long)max_pixels, w, h,
                       (long long)w * h);
    return req_check_hires(r, max_side, max_pixels, err);
}

/* ---- hires fix (issue 18 item 3) ---- */

const char *req_upscaler_name(sd_hr_upscaler u, int a1111)
{
    return u >= SD_HR_LATENT && u <= SD_HR_LANCZOS ? upscaler_names[u][a1111 ? 1 : 0] : NULL;
}

void req_output_size(const sd_request *r, int *width, int *height)
{
    const sd_gen_params *g = &r->gen;
    const int hr = !r->img2img && g->hr_upscaler != SD_HR_NONE;
    *width = r->img2img ? g->init_width : hr ? g->hr_width : g->width;
    *height = r->img2img ? g->init_height : hr ? g->hr_height : g->height;
}

void req_resolve_hires(sd_request *r)
{
    sd_gen_params *g = &r->gen;
    const int w = g->width, h = g->height, x = r->hr_resize_x, y = r->hr_resize_y;
    if (r->img2img || w <= 0 || h <= 0 || (r->hr_scale <= 0 && !x && !y)) {
        g->hr_upscaler = SD_HR_NONE;
        g->hr_width = g->hr_height = 0;
        return;
    }
    if (g->hr_upscaler == SD_HR_NONE) g->hr_upscaler = SD_HR_LATENT;
    if (!x && !y) {
        g->hr_width = (int)(w * r->hr_scale);
        g->hr_height = (int)(h * r->hr_scale);
    } else {
        g->hr_width = x ? x : (int)((int64_t)y * w / h);
        g->hr_height = y ? y : (int)((int64_t)x * h / w);
    }
}

int req_check_hires(const sd_request *r, int max_side, int64_t max_pixels, sd_err *err)
{
    const sd_gen_params *g = &r->gen;
    if (g->hr_upscaler == SD_HR_NONE) return 0;
    if (max_side <= 0) max_side = REQ_MAX_SIDE;
    if (max_pixels <= 0) max_pixels = REQ_MAX_PIXELS;
    const char *field = r->hr_resize_x || r->hr_resize_y ? (r->hr_resize_x ? "hr_resize_x" : "hr_resize_y") : "hr_scale";
    int w = g->hr_width, h = g->hr_height;
    if (w < 1 || h < 1)
        return sd_errf(err, SD_EINVAL, field, "%s: the hires size %dx%d is empty", field, w, h);
    if (w > max_side || h > max_side) {
        /* both resize fields given: each sets its own side, so name the one too large */
        if (r->hr_resize_x && r->hr_resize_y && w <= max_side) field = "hr_resize_y";
        return sd_errf(err, SD_EINVAL, field,
                       "%s: the hires size %dx%d is more than %d on a side on this server (--max-side)", field, w,
                       h, max_side);
    }
    if ((int64_t)w * h > max_pixels)
        return sd_errf(err, SD_EINVAL, field,
                       "%s: the hires size %dx%d = %lld pixels is more than %lld on this server (--max-pixels)",
                       field, w, h, (long long)w * h, (long long)max_pixels);
    return 0;
}

const char *req_gen_family(const char *family)
{
    return family && *family && strcmp(family, "sd1") ? family : NULL;
}

void req_free_loras(sd_request *r)
{
    for (int i = 0; i < r->gen.n_loras; i++) free((char *)r->gen.loras[i].name);
    free((sd_lora_spec *)r->gen.loras);
    r->gen.loras = NULL;
    r->gen.n_loras = 0;
}

void sd_request_free(sd_request *r)
{
    req_free_loras(r);
    free((char *)r->gen.prompt);
    free((char *)r->gen.negative);
    free(r->model);
    free((uint8_t *)r->gen.init_rgb);
    free(r->init_data);
    free((uint8_t *)r->gen.mask);
    free(r->mask_data);
    memset(r, 0, sizeof *r);
}

void req_field_range(const req_field *f, char *buf, size_t size)
{
    snprintf(buf, size, "%c%g, %.16g%c", f->lo_open ? '(' : '[', f->lo, f->hi, f->hi_open ? ')' : ']');
}

double req_field_as_stored(const req_field *f, double v)
{
    if (f->type != RF_FLOAT) return v;
    return fabs(v) > FLT_MAX ? copysign(INFINITY, v) : (double)(float)v;
}

int req_field_in_range(const req_field *f, double v)
{
    v = req_field_as_stored(f, v);
    if (f->type != RF_FLOAT && v != floor(v)) return 0;
    return !(v < f->lo || v > f->hi || (f->lo_open && v == f->lo) || (f->hi_open && v == f->hi));
}

/* The ranges dialects widen (req_field_as): dialect, row, lo, hi, lo_open, hi_open. */
static const struct {
    const char *dialect, *field;
    double lo, hi;
    int lo_open, hi_open;
} widened[] = {
    {"a1111", "strength", 0, 1, 1, 0},   /* denoising_strength (0, 1] */
};

const req_field *req_field_as(const req_field *f, const char *dialect, req_field *tmp)
{
    for (size_t i = 0; f && dialect && i < sizeof widened / sizeof widened[0]; i++)
        if (!strcmp(widened[i].dialect, dialect) && !strcmp(widened[i].field, f->name)) {
            *tmp = *f;
            tmp->lo = widened[i].lo, tmp->hi = widened[i].hi;
            tmp->lo_open = widened[i].lo_open, tmp->hi_open = widened[i].hi_open;
            return tmp;
        }
    return f;
}

int req_field_in_some_range(const req_field *f, double v)
{
    if (req_field_in_range(f, v)) return 1;
    for (size_t i = 0; i < sizeof widened / sizeof widened[0]; i++) {
        req_field tmp;
        if (!strcmp(widened[i].field, f->name) && req_field_in_range(req_field_as(f, widened[i].dialect, &tmp), v))
            return 1;
    }
    return 0;
}

/* output_format names -> img_format (the enum only: no image code linked). */
static int format_from_name(const char *t)
{
    if (!strcasecmp(t, "png")) return IMG_PNG;
    if (!strcasecmp(t, "jpeg") || !strcasecmp(t, "jpg")) return IMG_JPEG;
    if (!strcasecmp(t, "webp")) return IMG_WEBP;
    return IMG_UNKNOWN;
}

int req_field_set_name(const req_field *f, sd_request *r, const char *name)
{
    if (f->type == RF_SAMPLER) {
        sd_sampler s;
        sd_ksampler ks;
        sd_scheduler sch;
        if (sd_sampler_parse(name, &s, &ks, &sch)) return -1;
        req_field_set_number(f, r, s);
        r->gen.ksampler = ks;
        r->gen.name_schedule = sch;
        return 0;
    }
    if (f->type == RF_SCHEDULER || f->type == RF_SPACING) {
        sd_scheduler sch;
        sd_timestep_spacing sp;
        int bad = f->type == RF_SCHEDULER ? sd_scheduler_from_name(name, &sch) : sd_spacing_from_name(name, &sp);
        if (!bad) req_field_set_number(f, r, f->type == RF_SCHEDULER ? (double)sch : (double)sp);
        return bad ? -1 : 0;
    }
    if (f->type == RF_UPSCALER) {
        sd_hr_upscaler u = upscaler_from_name(name);
        if (u != SD_HR_NONE) req_field_set_number(f, r, u);
        return u == SD_HR_NONE ? -1 : 0;
    }
    int fmt = f->type == RF_FORMAT ? format_from_name(name) : IMG_UNKNOWN;
    if (fmt == IMG_UNKNOWN) return -1;
    req_field_set_number(f, r, fmt);
    return 0;
}

const char *req_field_names(const req_field *f)
{
    if (f->type == RF_SAMPLER)
        return "euler, euler_a, ddim, dpmpp_2m, dpmpp_2m_karras, lcm (diffusers semantics), or an A1111 name "
               "(k-diffusion semantics): Euler, Euler a, Heun, LMS, DPM++ 2M, DPM++ 2M SDE, optionally followed by "
               "a schedule (Automatic, Uniform, Karras, Exponential, SGM Uniform: \"DPM++ 2M Karras\"), or k_euler, "
               "k_euler_a, k_heun, k_lms, k_dpmpp_2m, k_dpmpp_2m_sde (GET /samplers lists them)";
    if (f->type == RF_FORMAT) return "png, jpeg or webp";
    if (f->type == RF_SCHEDULER) return "automatic, uniform, karras, exponential or sgm_uniform";
    if (f->type == RF_SPACING) return "leading, linspace or trailing";
    if (f->type == RF_UPSCALER)
        return "latent, latent-nearest-exact or lanczos (A1111: \"Latent\", \"Latent (nearest-exact)\", \"Lanczos\"; "
               "A1111's other upscalers, ESRGAN and the like, are not available on this server)";
    return "";
}

const char *req_field_value_name(const req_field *f, double v)
{
    const char *n = f->type == RF_SAMPLER ? sd_sampler_name((sd_sampler)(int)v)
                    : f->type == RF_SCHEDULER ? sd_scheduler_name((sd_scheduler)(int)v)
                    : f->type == RF_SPACING ? sd_spacing_name((sd_timestep_spacing)(int)v)
                    : f->type == RF_UPSCALER ? req_upscaler_name((sd_hr_upscaler)(int)v, 0) : NULL;
    return n ? n : "";
}

const char *req_sampler_name_at(int i, char *buf, size_t size)
{
    if (i < 0) return NULL;
    if (i < SD_SAMPLER_COUNT) return sd_sampler_name((sd_sampler)i);
    i -= SD_SAMPLER_COUNT;
    const int per = 2 + (SD_SCHEDULER_END - 1);   /* k_ name, label, label + each schedule */
    sd_ksampler ks = (sd_ksampler)(1 + i / per);
    if (ks >= SD_KSAMPLER_END) return NULL;
    int j = i % per;
    if (j == 0) return sd_ksampler_kname(ks);
    if (j == 1) return sd_ksampler_label(ks);
    snprintf(buf, size, "%s %s", sd_ksampler_label(ks), sd_scheduler_label((sd_scheduler)(j - 1)));
    return buf;
}

void req_sampler_label(const sd_gen_params *p, const char **sampler, const char **schedule)
{
    if (p->ksampler == SD_KSAMPLER_NONE) {
        *sampler = sd_sampler_name(p->sampler);
        *schedule = NULL;
        return;
    }
    *sampler = sd_ksampler_label(p->ksampler);
    *schedule = sd_scheduler_label(sd_requested_schedule(p));
}

img_gen_info req_gen_info(const sd_request *r, int i, int width, int height, const char *model_hash,
                          const char *model_name, const char *family)
{
    const sd_gen_params *p = &r->gen;
    /* the size ids condition only SDXL's UNet: elsewhere they are ignored, so not written */
    const int ids = family && !strncmp(family, "sdxl", 4);
    const char *sampler, *schedule;
    req_sampler_label(p, &sampler, &schedule);
    if (!r->img2img && p->hr_upscaler != SD_HR_NONE) {   /* hires fix: A1111's Size is the first pass's */
        width = p->width;
        height = p->height;
    }
    return (img_gen_info){
        .prompt = p->prompt, .negative = p->negative, .steps = p->steps, .sampler = sampler, .schedule = schedule,
        .spacing = p->ksampler ? NULL : sd_spacing_name(p->spacing),
        .cfg = p->cfg, .seed = p->seed + (uint64_t)i, .width = width, .height = height, .model_hash = model_hash,
        .model_name = model_name, .denoise = r->img2img ? p->strength : p->hr_upscaler ? p->hr_strength : -1.0f,
        .clip_skip = p->clip_skip,
        .family = req_gen_family(family),
        .orig_width = ids ? p->orig_width : 0, .orig_height = ids ? p->orig_height : 0,
        .crop_top = ids ? p->crop_top : 0, .crop_left = ids ? p->crop_left : 0,
        .target_width = ids ? p->target_width : 0, .target_height = ids ? p->target_height : 0,
        /* hires fix: A1111's Denoising strength is the second pass's */
        .hr_upscaler = req_upscaler_name(p->hr_upscaler, 1), .hr_scale = r->hr_scale,
        .hr_resize_x = r->hr_resize_x, .hr_resize_y = r->hr_resize_y, .hr_steps = p->hr_steps,
        .inpaint = req_inpaint_info(r),
    };
}

int req_add_lora(sd_request *r, const char *name, size_t len, double weight, sd_err *err)
{
    const req_field *f = req_field_find("loras");
    if (r->gen.n_loras >= SD_MAX_LORAS)
        return sd_errf(err, SD_EINVAL, "loras", "loras: at most %d LoRAs in one request", SD_MAX_LORAS);
    if (!len || len >= SD_MAX_LORA_NAME || memchr(name, 0, len))
        return sd_errf(err, SD_EINVAL, "loras", "loras: a LoRA name must be 1..%d bytes", SD_MAX_LORA_NAME - 1);
    if (!(weight >= f->lo && weight <= f->hi)) {
        char got[32];   /* the shortest form that reads back as the value: 4.0000001 is not "4" */
        for (int p = 1; p <= 17; p++)
            if (snprintf(got, sizeof got, "%.*g", p, weight), strtod(got, NULL) == weight) break;
        return sd_errf(err, SD_EINVAL, "loras", "loras: the weight of '%.*s' must be in [%g, %g], got %s", (int)len,
                       name, f->lo, f->hi, got);
    }
    sd_lora_spec *l = (sd_lora_spec *)r->gen.loras;
    if (!l && !(l = calloc(SD_MAX_LORAS, sizeof *l))) return sd_errf(err, SD_ENOMEM, "loras", "out of memory");
    r->gen.loras = l;
    char *nm = strndup(name, len);
    if (!nm) return sd_errf(err, SD_ENOMEM, "loras", "out of memory");
    l[r->gen.n_loras].name = nm;
    l[r->gen.n_loras++].weight = (float)weight;
    return 0;
}

/* s[0..n) without surrounding spaces and tabs. */
static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) { (*s)++; (*n)--; }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

/* One "name" or "name:weight" of the text spelling.  The weight is read
 * as a prompt tag's is (A1111's: Python's float(), base/pyfloat.h), then
 * held to the field's range. */
static int add_lora_item(sd_request *r, const char *s, size_t n, sd_err *err)
{
    const char *colon = memchr(s, ':', n);
    size_t nl = colon ? (size_t)(colon - s) : n;
    double w = req_field_find("loras")->def;
    if (colon) {
        const char *ws = colon + 1;
        size_t wl = n - nl - 1, tl = wl;
        const char *t = ws;
        trim(&t, &tl);
        if (!tl)
            return sd_errf(err, SD_EINVAL, "loras", "loras: '%.*s' has no weight after ':'", (int)(n > 80 ? 80 : n), s);
        if (sd_pyfloat(ws, wl, &w))
            return sd_errf(err, SD_EINVAL, "loras", "loras: the weight of '%.*s' is not a number: '%.*s'",
                           (int)(nl > 80 ? 80 : nl), s, (int)(tl > 40 ? 40 : tl), t);
    }
    trim(&s, &nl);
    return req_add_lora(r, s, nl, w, err);
}

int req_set_loras_text(sd_request *r, const char *text, size_t len, sd_err *err)
{
    const char *s = text, *end = text + len;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *e = comma ? comma : end;
        const char *item = s;
        size_t n = (size_t)(e - s);
        trim(&item, &n);
        if (!n && (comma || s != text))
            return sd_errf(err, SD_EINVAL, "loras", "loras: an empty item; write name:weight,name:weight");
        if (n && add_lora_item(r, item, n, err)) return -1;
        s = comma ? comma + 1 : end;
    }
    return 0;
}

uint64_t req_random_seed(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
        /* getrandom on Linux does not fail for 8 bytes once booted; fall back anyway. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = (uint64_t)ts.tv_nsec * 6364136223846793005ull + (uint64_t)ts.tv_sec;
    }
    return r % ((1ull << 53) - 3);
}
