/* request.h — one generation request, and the one table of its fields.
 *
 * sd_request is what a client asked for, from parsing to the engine: the
 * engine's own input (sd_gen_params, engine/sd.h) plus what only the
 * server needs (output format, the init image as sent, the owner).  An
 * HTTP dialect fills it from a body (http/params.c), `sdserve generate`
 * from argv (cli/generate.c); the job queue carries it as is and the
 * worker hands its `gen` to sd_generate: no field is copied on the way.
 *
 * req_fields[] describes every field once, in the spirit of redis's
 * static_configs[]: name, type, where it lives (offsetof), range, default,
 * help, CLI flag and alias, which endpoints take it and per-dialect names.
 * HTTP validation, the CLI's flags and usage, the defaults, the limits and
 * the check of docs/openapi.json (tests/unit/test_request_table.c) all read
 * it.  A new per-request parameter is one row here plus its use in the
 * engine.  This module knows nothing of HTTP or argv; it links without the
 * image code (only image.h's enum is used). */
#ifndef SD_JOBS_REQUEST_H
#define SD_JOBS_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "../base/err.h"
#include "../engine/sd.h"
#include "../image/image.h"

/* A job's preview sink: put(ud, step, total, png, len) takes the latest
 * preview (an encoded PNG, valid during the call only) after sampler step
 * `step` of `total`. */
typedef struct req_preview_sink {
    void (*put)(void *ud, int step, int total, const uint8_t *png, size_t len);
    void *ud;
} req_preview_sink;

/* Ownership: gen.prompt, gen.negative, model, gen.init_rgb and init_data belong to
 * the request when it came from HTTP (sd_request_free frees them); the CLI
 * points gen.prompt/negative at argv and frees only the pixels it decoded.
 * gen.loras and its names always belong to the request (req_add_lora). */
typedef struct sd_request {
    sd_gen_params gen;       /* the engine's input; gen.init_rgb set once the init image is decoded */
    int img2img;             /* the route: 1 = /img2img (init image required) */
    int seed_was_random;     /* no seed given (or -1): gen.seed was drawn */
    int out_format;          /* img_format (image/image.h); output_format */
    int out_quality;         /* JPEG/WebP 1..100; output_quality */
    /* img2img: the init image as sent (base64 text cleaned of prefix and
     * blanks, or raw bytes from a multipart file part), until decoded */
    char *init_data;
    size_t init_len;
    int init_is_raw;
    int owner;               /* who submitted it: API key index + 1; 0 = no keys configured */
    /* several models (--model-dir): the checkpoint's name, NULL or "" = the
     * server's default; owned like gen.prompt */
    char *model;
    /* live previews (issue 18 item 2; docs/SERVER.md "Previews"): where the
     * running job's previews go, set by whatever runs the job (queue.c, the
     * Redis worker) just before it runs; never a client's, never on the
     * wire.  put = NULL: nowhere (jobs/generate.c then asks for none). */
    req_preview_sink preview;
    /* ---- inpainting (jobs/inpaint.h, docs/INPAINTING.md) ---- */
    /* the mask as sent (like init_data) until decoded into gen.mask: init-sized,
     * 255 = repaint, already inverted when asked; gen.mask is then owned here */
    char *mask_data;
    size_t mask_len;
    int mask_is_raw;
    int mask_blur;                 /* A1111 mask_blur: Gaussian sigma in pixels, x and y (0 = sharp) */
    int inpainting_fill;           /* A1111: 0 fill, 1 original, 2 latent noise, 3 latent nothing */
    int inpaint_full_res;          /* A1111 "only masked": inpaint a crop around the mask at full size */
    int inpaint_full_res_padding;  /* pixels around the mask's box in that crop */
    int inpainting_mask_invert;    /* 1 = repaint where the mask is black */
    int mask_overlay;              /* 1 = paste the original's unmasked pixels over the result */
    int mask_blur_x, mask_blur_y;  /* A1111's per-axis sigmas; -1 (default) = mask_blur */
    int mask_mode;                 /* inpaint_mask_mode (jobs/inpaint.h): how the dialect reads a mask; not sent */
    /* ---- end inpainting ---- */
    /* hires fix (docs/SERVER.md "Hires fix"): what the client sent; with
     * the resolved size they give gen.hr_width/hr_height (req_resolve_hires) */
    float hr_scale;          /* 0 = not given */
    int hr_resize_x, hr_resize_y;   /* A1111: set, they win over hr_scale; one 0 = keep the aspect */
} sd_request;

/* Limits of the product contract (/work/shared/spec/API.md) that are not
 * one field's range: body shape and text length. */
enum {
    REQ_MAX_PROMPT = 8192,   /* bytes of prompt / negative_prompt */
    REQ_MAX_OUTPUTS = 4,     /* num_outputs (the worker's batch array) */
    REQ_MAX_SIDE = 1024,     /* width, height: the default of the server's --max-side; init images are scaled down to fit */
    REQ_MAX_SIDE_CAP = 2048, /* the most --max-side may raise it to (the width/height rows' range) */
    REQ_MAX_PIXELS = 1024 * 1024,  /* width x height: the default of --max-pixels */
    REQ_NATIVE_SIDE = 512,   /* width/height of a request no model resolved (req_resolve_size with 0) */
    REQ_MAX_SIZE_ID = 8192,  /* SDXL's original_/target_ sizes and crops (0 = the default) */
    REQ_MAX_STEPS = 150,     /* num_inference_steps */
    REQ_MAX_MODEL_NAME = 127,
    REQ_MAX_HR_SCALE = 4,    /* hr_scale: the hires size is also held to --max-side / --max-pixels */  /* bytes of a model name (the registry's and server_model's name[128]) */
};
#define REQ_MAX_SEED 9007199254740991.0   /* 2^53 - 1 */

typedef enum {
    RF_TEXT,      /* const char * (prompt, negative_prompt); hi = byte limit */
    RF_INT,       /* int */
    RF_FLOAT,     /* float: ranges are checked on the float the engine sees */
    RF_SEED,      /* uint64_t; -1 / empty / absent = random */
    RF_SAMPLER,   /* sd_sampler, by name; also gen.ksampler and gen.name_schedule (A1111 names) */
    RF_FORMAT,    /* int img_format, by name (png, jpeg|jpg, webp) */
    RF_IMAGE,     /* the init image (init_data / a file) */
    RF_SCHEDULER, /* sd_scheduler, by name (0 = not given) */
    RF_SPACING,   /* sd_timestep_spacing, by name (0 = the model's) */
    RF_LORAS,     /* gen.loras / gen.n_loras: a list of name + weight (lo..hi, default def) */
    /* RF_IMAGE also holds the inpainting mask (mask_data): req_image_slot */
    RF_UPSCALER,  /* sd_hr_upscaler, by name (0 = not given: "latent" when hires fix is on) */
} req_type;

enum { RF_TXT2IMG = 1, RF_IMG2IMG = 2, RF_BOTH = 3 };

typedef struct req_field {
    const char *name;        /* the seed API's name (HTTP field, error "field") */
    const char *engine;      /* the engine's name for it (sd_err.field of its checks: "steps"); NULL = none */
    req_type type;
    size_t offset;           /* into sd_request */
    double lo, hi;           /* range (RF_INT, RF_FLOAT, RF_SEED; RF_TEXT: hi = bytes) */
    int lo_open, hi_open;    /* 1 = the bound is excluded */
    double def;              /* default (numbers; sampler/format: the enum value) */
    unsigned where;          /* RF_TXT2IMG | RF_IMG2IMG */
    const char *cli, *cli_alias, *cli_meta;   /* "--steps", NULL, "N"; cli NULL = not a CLI flag */
    const char *a1111;       /* AUTOMATIC1111 /sdapi/v1 name ("cfg_scale"), NULL = none (api_a1111.c) */
    const char *help;        /* one line, for --help and docs */
} req_field;

extern const req_field req_fields[];
extern const int req_nfields;

/* The row named `name` (seed API name), or NULL. */
const req_field *req_field_find(const char *name);
/* The row the engine calls `field` in its errors ("steps", "cfg",
 * "negative"), or NULL: each dialect maps engine errors to its own names. */
const req_field *req_field_by_engine(const char *field);
/* The row whose CLI flag or alias is `flag`, or NULL. */
const req_field *req_field_by_flag(const char *flag);

/* Every field at its default (prompt NULL, negative NULL, seed random,
 * i.e. seed_was_random = 1 and gen.seed 0 until drawn). */
void sd_request_defaults(sd_request *r, int img2img);
/* Uniform random seed in [0, 2^53 - 4] (room for seed + 3). */
uint64_t req_random_seed(void);
/* Width and height the request left unset (0: the rows' default) become
 * `native` (the loaded model's sd_model_info.native_size; <= 0: 512), so
 * the queue, the job status and the image's parameters all show the size
 * generated.  Only txt2img has a size; img2img keeps its init image's. */
void req_resolve_size(sd_request *r, int native);
/* The server's size limits (--max-side, --max-pixels; <= 0: REQ_MAX_SIDE,
 * REQ_MAX_PIXELS) on a resolved txt2img request: 0, or -1 + SD_EINVAL
 * naming "width" or "height" with the limit in the message. */
int req_check_size(const sd_request *r, int max_side, int64_t max_pixels, sd_err *err);

/* The undecoded bytes of an RF_IMAGE row (init_image or mask_image): where
 * its data, length and raw flag live in r. */
typedef struct req_image_ref {
    char **data;
    size_t *len;
    int *is_raw;
} req_image_ref;
req_image_ref req_image_slot(const req_field *f, sd_request *r);
/* 1 for the mask_image row. */
int req_field_is_mask(const req_field *f);
/* Hires fix: from hr_scale / hr_resize_x / hr_resize_y and the resolved
 * width x height, gen.hr_width x hr_height (A1111's hr_upscale_to_x/y:
 * int(side * scale); one resize side 0 keeps the aspect; both set: that
 * size) and gen.hr_upscaler (not given: latent); none of the three given:
 * hires fix off (gen.hr_upscaler NONE).  req_resolve_size calls it; the
 * job runner again (jobs/generate.c: the Redis wire carries the rows only). */
void req_resolve_hires(sd_request *r);
/* The size of the pictures r makes: img2img its init image's, hires fix
 * gen.hr_width x hr_height, else width x height. */
void req_output_size(const sd_request *r, int *width, int *height);
/* An upscaler's name: the seed API's ("latent-nearest-exact") or, a1111 = 1,
 * A1111's ("Latent (nearest-exact)"); NULL for SD_HR_NONE. */
const char *req_upscaler_name(sd_hr_upscaler u, int a1111);
/* The server's --max-side / --max-pixels on the hires size too: -1 +
 * SD_EINVAL naming "hr_scale" (or "hr_resize_x" when a resize was given).
 * req_check_size calls it. */
int req_check_hires(const sd_request *r, int max_side, int64_t max_pixels, sd_err *err);

/* Frees what the request owns (see above) and zeroes it. */
void sd_request_free(sd_request *r);

/* The AUTOMATIC1111 "parameters" of the request's image i (seed + i,
 * width x height), generated by the model (hash, name; NULL = omitted):
 * what the server and the CLI embed in their files.  Hires fix: Size is the
 * first pass's (as A1111), with the Hires entries. */
img_gen_info req_gen_info(const sd_request *r, int i, int width, int height, const char *model_hash,
                          const char *model_name, const char *family);
/* inpainting: the mask blur's sigmas along x and y
 * (mask_blur_x / _y, each defaulting to mask_blur).  The infotext's
 * inpainting entries come with req_gen_info. */
void req_mask_blur(const sd_request *r, int *sx, int *sy);

/* The "Model family" of an image's parameters for a model of family
 * `family` (sd_model_info.family): NULL for "sd1" (SD 1.x texts stay
 * exactly A1111's), else the name ("sd2", "sdxl"). */
const char *req_gen_family(const char *family);

/* "[1, 4]", "(0, 20]": the field's range as messages show it. */
void req_field_range(const req_field *f, char *buf, size_t size);
/* The value the engine will see for v: rounded to float for RF_FLOAT (1e-46
 * becomes 0, 1e39 infinity), else v. */
double req_field_as_stored(const req_field *f, double v);
/* 1 when req_field_as_stored(f, v) is inside the range (and whole, for
 * RF_INT / RF_SEED), else 0. */
int req_field_in_range(const req_field *f, double v);
/* The table's ranges are the seed API's (API.md); a dialect may widen a
 * row's where its clients send more (AUTOMATIC1111's denoising_strength
 * takes 1, a full repaint, which the engine runs as A1111 does; the seed
 * API's strength stops below 1).  Row f as `dialect` (a dialect's name,
 * "a1111"; NULL = the seed API) takes it: f, or *tmp, a copy of f with
 * that dialect's range. */
const req_field *req_field_as(const req_field *f, const char *dialect, req_field *tmp);
/* 1 when v is inside f's range as some dialect takes it: a queued job may
 * carry a widened value (wire.c). */
int req_field_in_some_range(const req_field *f, double v);
/* Stores a checked number into the field (RF_INT, RF_FLOAT, RF_SEED). */
void req_field_set_number(const req_field *f, sd_request *r, double v);
/* Reads a number field back (tests, docs). */
double req_field_get_number(const req_field *f, const sd_request *r);
/* Stores a name (RF_SAMPLER, RF_FORMAT, RF_SCHEDULER, RF_SPACING); 0, or
 * -1 when it is not one. */
int req_field_set_name(const req_field *f, sd_request *r, const char *name);
/* The allowed names of a name field, "a, b or c" style ("png, jpeg or
 * webp"; the sampler's: every diffusers name and the A1111 forms). */
const char *req_field_names(const req_field *f);
/* A name field's value as the CLI usage shows it ("euler_a"; "" when unset). */
const char *req_field_value_name(const req_field *f, double v);
/* Every name the sampler field takes, in the order docs/openapi.json lists
 * them: the diffusers ones, then per A1111 sampler its k_ name, its label
 * and the label with each schedule label.  i from 0; NULL past the end.
 * buf holds the composed names. */
const char *req_sampler_name_at(int i, char *buf, size_t size);
/* The A1111 "Sampler" and "Schedule type" of a request (schedule NULL for
 * the diffusers-semantics samplers, whose Sampler is their own name:
 * "euler_a", not A1111's "Euler a", which is another picture). */
void req_sampler_label(const sd_gen_params *p, const char **sampler, const char **schedule);

/* LoRAs (RF_LORAS, field "loras"): one more name + weight, at most
 * SD_MAX_LORAS, weight in the row's range; the engine checks the name
 * itself (sd_check_request).  req_set_loras_text reads the form/CLI
 * spelling "name:weight,name:weight" (weight optional, default 1).  0, or
 * -1 + err naming "loras". */
int req_add_lora(sd_request *r, const char *name, size_t len, double weight, sd_err *err);
int req_set_loras_text(sd_request *r, const char *text, size_t len, sd_err *err);
/* Frees gen.loras (sd_request_free does it too). */
void req_free_loras(sd_request *r);
/* Where a text field lives (RF_TEXT). */
const char **req_field_text(const req_field *f, sd_request *r);

#endif
