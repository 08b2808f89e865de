/* sd.h — the engine's only public header.
 *
 * Turns a prompt (and optionally an init image) into pixels with a Stable
 * Diffusion 1.x / 2.x or SDXL (base) checkpoint.  Used by the CLI and the server; it knows
 * nothing of HTTP, jobs or storage.  All functions report failure through
 * sd_err (base/err.h) and never exit or abort on bad input.
 *
 * Thread safety: one sd_engine may be used by one generating thread at a
 * time; loading is done once and the weights are read-only afterwards. */
#ifndef SD_ENGINE_H
#define SD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "../base/err.h"

typedef struct sd_engine sd_engine;

typedef enum { SD_PRED_AUTO = 0, SD_PRED_EPS, SD_PRED_V } sd_prediction;

typedef struct sd_load_opts {
    const char *model_path;    /* .safetensors file or diffusers folder (required) */
    const char *config_path;   /* optional LDM-style JSON (ldm_config.json) for single files:
                                  heads / head size / parameterization the tensors cannot tell */
    const char *vocab_path;    /* optional: bpe_simple_vocab_16e6.txt.gz, merges.txt, or a tokenizer/ folder */
    const char *data_dir;      /* optional: where to look for the vocabulary (data_dir/tokenizer/...) */
    sd_prediction prediction;  /* AUTO: diffusers scheduler config, then config_path, then the file's
                                  "v_pred" marker tensor, then eps */
    int zero_snr;              /* zero-terminal-SNR schedule: 0 = auto (the file's "ztsnr" marker or the
                                  scheduler config's rescale_betas_zero_snr), 1 = on, -1 = off */
    int clip_skip;             /* 0 = family default (SD1: last layer, SD2: penultimate); n>=1 = use layer -n */
    int threads;               /* 0 = all cores */
    const char *precision;     /* of convs, matmuls, attention: "fp32" (the reference's results), "bf16x2"
                                  (inputs split in two bf16 terms: only weights rounded), "bf16" (fastest);
                                  NULL or "auto": $SD_PRECISION, else on CPUs with AMX bf16x2 with the VAE
                                  at bf16, fp32 elsewhere (docs/SERVER.md) */
    /* textual inversion (issue 14 item 4) */
    const char *embeddings_dir; /* optional: folder of A1111 / diffusers .safetensors embeddings,
                                  used by name in prompts (docs/PROMPTS.md "Embeddings") */
    const char *vae_path;      /* optional VAE override (--vae): its tensors replace the checkpoint's;
                                  an A1111-style .safetensors or a diffusers VAE folder (docs/LOADING.md) */
    const char *lora_dir;      /* optional: where LoRA names resolve (<dir>/<name>.safetensors); NULL = no LoRA */
    const char *lora_dir_label; /* how an unknown LoRA's refusal names lora_dir, "no NAME.safetensors in
                                  LABEL" (NULL: "the LoRA directory"): the server adds where its clients see
                                  the names, a command line its flag and the folder */
    /* tiled VAE decode (issue 15 item 6; docs/SERVER.md "VAE tiling") */
    const char *vae_tiling;    /* "auto" (NULL: images above 1024x1024 pixels), "on" or "off" */
    /* live previews and the fast decoder (issue 18 item 2; docs/SERVER.md "Previews") */
    const char *preview_decoder; /* a TAESD .safetensors file (madebyollin's taesd_decoder.safetensors or a
                                  diffusers AutoencoderTiny file) or AutoencoderTiny folder; NULL = the
                                  per-family latent-to-RGB approximation.  Its latent channels must be the
                                  model's (error naming "preview_decoder") */
    const char *vae_decoder;   /* "vae" (NULL) = final images decoded by the checkpoint's VAE; "taesd" = by
                                  the preview decoder too: fast, lower quality; needs preview_decoder */
} sd_load_opts;

/* 0 if name is a precision sd_load_opts accepts ("auto", "fp32", "bf16x2", "bf16"), else -1. */
int sd_precision_known(const char *name);
/* The precision a load with this setting runs at, without loading (issue 17
 * item 3: pinned cluster-wide): "fp32", "bf16x2", "bf16", or "bf16x2, VAE
 * bf16" (auto on a CPU with AMX); auto = $SD_PRECISION when that names one.
 * A static string; NULL for an unknown name. */
const char *sd_precision_resolved(const char *name);
/* --prediction: "auto", "eps" (or "epsilon"), "v" (or "v_prediction") into *out;
 * --zero-terminal-snr: "auto" 0, "on" 1, "off" -1 into *out (sd_load_opts).
 * 0, or -1 (unknown name; *out unchanged). */
int sd_prediction_parse(const char *name, sd_prediction *out);
int sd_zero_snr_parse(const char *name, int *out);
/* 0 if name is a vae_tiling sd_load_opts accepts ("auto", "on", "off"), else -1. */
int sd_vae_tiling_known(const char *name);
/* 0 if name is a vae_decoder sd_load_opts accepts ("vae", "taesd"), else -1. */
int sd_vae_decoder_known(const char *name);

sd_engine *sd_engine_load(const sd_load_opts *opts, sd_err *err);
void sd_engine_free(sd_engine *e);
/* An engine opened for validation only (an API node that loads no weights;
 * several models' pre-queue checks): the same load steps on the
 * checkpoint's headers (no tensor data read), the tokenizer, the
 * embeddings and the LoRA directory, so sd_check_request, sd_check_prompts,
 * sd_prompt_windows, sd_list_loras, sd_lora_hashes, sd_engine_embedding and
 * sd_engine_info answer exactly as on sd_engine_load's engine.  sd_generate
 * on it refuses (SD_EINVAL naming "model": "opened for validation only").
 * Free with sd_engine_free.  NULL + err as sd_engine_load. */
sd_engine *sd_engine_open_checker(const sd_load_opts *opts, sd_err *err);
/* 1 for an engine from sd_engine_open_checker. */
int sd_engine_is_checker(const sd_engine *e);

typedef struct sd_model_info {
    const char *family;          /* "sd1", "sd2", "sdxl", "sd1-inpaint", "sd2-inpaint" or "sdxl-inpaint"
                                    (loader/family.h; sd_engine_load refuses "sdxl-refiner") */
    const char *prediction;      /* "epsilon" or "v_prediction" */
    int zero_snr;                /* 1: the zero-terminal-SNR noise schedule is in effect */
    int latent_channels;
    int vae_scale;               /* pixels per latent cell (8) */
    int64_t params;              /* number of parameters loaded */
    char hash[16];               /* short model hash (A1111 style, 10 hex chars) */
    const char *name;            /* file or folder base name */
    const char *precision;       /* in effect: "fp32", "bf16x2", "bf16" or auto's "bf16x2, bf16 ff+attn@1-, VAE bf16" (AMX) */
    const char *vae_name;        /* the VAE override's file or folder name (A1111 "VAE"), NULL: built-in */
    const char *vae_hash;        /* its A1111 "VAE hash" (sha256 of the file, 10 hex), NULL: built-in */
    const char *vae_decoder;     /* "TAESD" with --vae-decoder taesd (A1111's "VAE Decoder"
                                    infotext value), NULL: the VAE decodes */
    int native_size;             /* the family's trained side (512 SD 1.x/2.x, 1024 SDXL): the size of a
                                    request that gives none */
} sd_model_info;
void sd_engine_info(const sd_engine *e, sd_model_info *out);

/* What a checkpoint is, from its header(s) alone, without loading it (a
 * model directory's listing, several models in one server): the tensors'
 * names and shapes give the family by the same rule sd_engine_load applies
 * (loader/family.h); nothing past the headers is read but the 64 KiB of
 * the short hash.  0, or -1 + err (SD_ENOTFOUND / SD_EIO / SD_EFORMAT)
 * when the file or folder cannot be read as a checkpoint, or is not a
 * whole one: without a UNet or without a text encoder (a UNet-only file,
 * a VAE or TAESD file; the family rule alone would call them sd1), family
 * and hash then left empty. */
typedef struct sd_model_probe {
    char name[256];              /* as sd_model_info.name: base name without .safetensors */
    char family[32];             /* as sd_model_info.family ("sd1", "sdxl", "sd1-inpaint", ...) */
    int supported;               /* 1: sd_engine_load runs this family; 0: it refuses it */
    int native_size;             /* the family's trained side (sd_model_info.native_size) */
    char hash[16];               /* as sd_model_info.hash (A1111's short model hash) */
    int64_t size;                /* bytes of the weight files */
} sd_model_probe;
int sd_probe_model(const char *path, sd_model_probe *out, sd_err *err);

/* The embeddings found in embeddings_dir at load, sorted by name: fits = 1
 * when prompts can use it, else `error` says why (another family's width, a
 * pickle, not exactly one tensor...).  0, or -1 when i is past the end. */
typedef struct sd_embedding_info {
    const char *name;
    int vectors, width, fits;
    const char *error;
} sd_embedding_info;
int sd_engine_embedding(const sd_engine *e, int i, sd_embedding_info *out);

typedef enum {
    SD_SAMPLER_EULER = 0,
    SD_SAMPLER_EULER_A,
    SD_SAMPLER_DDIM,
    SD_SAMPLER_DPMPP_2M,
    SD_SAMPLER_DPMPP_2M_KARRAS,
    SD_SAMPLER_LCM,
    SD_SAMPLER_COUNT
} sd_sampler;
/* "euler", "euler_a", "ddim", "dpmpp_2m", "dpmpp_2m_karras", "lcm" */
int sd_sampler_from_name(const char *name, sd_sampler *out);
const char *sd_sampler_name(sd_sampler s);
/* Human name as AUTOMATIC1111 writes it ("Euler a", "DPM++ 2M Karras", ...). */
const char *sd_sampler_a1111_name(sd_sampler s);

/* A1111's samplers on k-diffusion semantics (docs/KDIFFUSION.md), beside
 * the diffusers-semantics sd_sampler above.  Names: A1111's display names
 * in their exact spelling ("Euler a", "DPM++ 2M", optionally followed by a
 * schedule label: "DPM++ 2M Karras") and the k_ names ("k_dpmpp_2m"). */
typedef enum {
    SD_KSAMPLER_NONE = 0,    /* not a k-diffusion run: sd_gen_params.sampler applies */
    SD_KSAMPLER_EULER, SD_KSAMPLER_EULER_A, SD_KSAMPLER_HEUN, SD_KSAMPLER_LMS,
    SD_KSAMPLER_DPMPP_2M, SD_KSAMPLER_DPMPP_2M_SDE,
    SD_KSAMPLER_END
} sd_ksampler;
/* k-diffusion schedules; request names automatic|uniform|karras|exponential|sgm_uniform. */
typedef enum {
    SD_SCHEDULER_UNSET = 0,  /* not given */
    SD_SCHEDULER_AUTOMATIC, SD_SCHEDULER_UNIFORM, SD_SCHEDULER_KARRAS, SD_SCHEDULER_EXPONENTIAL,
    SD_SCHEDULER_SGM_UNIFORM,
    SD_SCHEDULER_END
} sd_scheduler;
/* Timestep spacing of the diffusers-semantics samplers. */
typedef enum {
    SD_TSPACING_MODEL = 0,    /* the checkpoint's scheduler config, else leading */
    SD_TSPACING_LEADING, SD_TSPACING_LINSPACE, SD_TSPACING_TRAILING,
    SD_TSPACING_END
} sd_timestep_spacing;

/* What the `sampler` name selects: a diffusers-semantics sampler (*ks =
 * NONE, *s set) or a k-diffusion one (*ks, and *name_sched = the schedule
 * the display name carried, UNSET when none).  0, or -1 when unknown. */
int sd_sampler_parse(const char *name, sd_sampler *s, sd_ksampler *ks, sd_scheduler *name_sched);
/* A1111 label ("DPM++ 2M") and k_ name ("k_dpmpp_2m"); NULL out of range. */
const char *sd_ksampler_label(sd_ksampler ks);
const char *sd_ksampler_kname(sd_ksampler ks);
/* The schedule A1111's "Automatic" means for ks (KARRAS for DPM++ 2M, ...). */
sd_scheduler sd_ksampler_auto_schedule(sd_ksampler ks);
/* Request name ("sgm_uniform") and A1111 label ("SGM Uniform"); NULL out of range/UNSET. */
const char *sd_scheduler_name(sd_scheduler s);
const char *sd_scheduler_label(sd_scheduler s);
int sd_scheduler_from_name(const char *name, sd_scheduler *out);
/* "leading", "linspace", "trailing"; NULL for MODEL / out of range. */
const char *sd_spacing_name(sd_timestep_spacing s);
int sd_spacing_from_name(const char *name, sd_timestep_spacing *out);

/* Noise source: fills n floats with standard normal draws for draw number
 * `draw` of the image whose seed is `seed`.  Default = Philox (CUDA torch.randn). */
typedef void (*sd_noise_fn)(void *ud, uint64_t seed, uint64_t draw, float *out, size_t n);

/* Called after each sampler step; return non-zero to cancel (between steps). */
typedef int (*sd_progress_fn)(void *ud, int step, int total);

typedef struct sd_image {
    int width, height;           /* exactly the requested size */
    uint8_t *rgb;                /* width*height*3, malloc'd; free with sd_image_free */
    uint64_t seed;
} sd_image;
void sd_image_free(sd_image *img);

/* Live preview (sd_gen_params.preview): step of total done (1-based, as
 * sd_progress_fn), img = image 0's current estimate, valid during the call. */
typedef void (*sd_preview_fn)(void *ud, int step, int total, const sd_image *img);

/* Prompt length.  Prompts are read with AUTOMATIC1111's syntax
 * (engine/prompt/a1111.h, docs/PROMPTS.md) and encoded in A1111's chunks of
 * 77 ids (75 tokens of text between start and end; a full chunk moves the
 * words after a comma 20 tokens back or less to the next, a BREAK closes
 * one); the chunks of one text are concatenated into the UNet's
 * cross-attention context.  sd_prompt_windows counts the chunks (windows)
 * `text` as written is encoded in (an empty text is one) and, when tokens
 * is not NULL, A1111's token count (75 per closed chunk + the last one's).
 * It only reads the loaded tokenizer: any thread may call it while another
 * generates. */
int sd_prompt_windows(const sd_engine *e, const char *text, int *windows, size_t *tokens, sd_err *err);
/* The longest prompt (and, separately, negative prompt) the engine
 * encodes, in windows: 8 windows = 600 tokens.  The cost of the context
 * grows linearly (docs/SERVER.md "Prompt length"): at 8 windows a UNet step
 * costs ~11 % more than at 1, at 64 about twice as much.  The text encoder
 * and the UNet's workspace are sized for it once, at load. */
#define SD_MAX_PROMPT_WINDOWS 8
/* 0 when prompt and negative (NULL = "") are readable and every text
 * their prompt editing / alternation makes in a run of `steps` fits
 * SD_MAX_PROMPT_WINDOWS, else -1 with err naming "prompt" or "negative"
 * (the engine's names; the API says negative_prompt): the count and the
 * limit, AND (composable diffusion), a weight that is not a number, more
 * than A1111_MAX_PLAN_CHUNKS chunks over a schedule's texts.  sd_generate
 * checks the same; a server calls it (via sd_check_request) before
 * queueing. */
int sd_check_prompts(const sd_engine *e, const char *prompt, const char *negative, int steps, sd_err *err);

/* LoRA per request (docs/LORA.md): a name in the load option lora_dir
 * (<lora_dir>/<name>.safetensors; letters, digits, ' ', '_', '-', '.', '+',
 * not starting with '.') and its multiplier.  The request's list comes
 * first, then the prompt's <lora:name:weight> tags (removed from the text
 * before encoding), at most SD_MAX_LORAS in all, weights in
 * [-SD_MAX_LORA_WEIGHT, SD_MAX_LORA_WEIGHT].  Every error names "loras"
 * (a malformed tag: "prompt"). */
typedef struct sd_lora_spec {
    const char *name;
    float weight;
} sd_lora_spec;
#define SD_MAX_LORAS 16
#define SD_MAX_LORA_WEIGHT 4.0f
#define SD_MAX_LORA_NAME 128

typedef struct sd_gen_params sd_gen_params;
/* Hires fix's upscaler between its two passes (docs/SERVER.md "Hires fix"):
 * the pass-1 latent resized as torch's F.interpolate "bilinear" (A1111's
 * "Latent") or "nearest-exact", or the decoded RGB8 picture resized with
 * PIL's Lanczos (base/resample.h) and encoded again. */
typedef enum { SD_HR_NONE = 0, SD_HR_LATENT, SD_HR_LATENT_NEAREST_EXACT, SD_HR_LANCZOS } sd_hr_upscaler;
/* The checks that need the loaded model, for a server to run before it
 * queues a request: the prompt windows (sd_check_prompts) and clip_skip
 * against the text encoder's layers (field "clip_skip").  sd_generate
 * refuses the same requests.  Any thread may call it while another
 * generates. */
int sd_check_request(const sd_engine *e, const sd_gen_params *p, sd_err *err);

/* The LoRAs of lora_dir, for GET /loras and --help, in A1111's order
 * (its natural sort of the file names: runs of digits by value, the rest
 * case-folded; ties in byte order; the first max of them): fills
 * out[0..max) and returns how many there are (may exceed max), or -1 +
 * err.  Each is described as its file is now (one changed since it was
 * read is read again). */
typedef struct sd_lora_info {
    char name[SD_MAX_LORA_NAME];
    int64_t size;                /* file bytes */
    int rank;                    /* largest module rank; 0 when it does not load */
    int modules;                 /* modules that patch this model; 0 when it does not fit */
    char fits[160];              /* "" when it fits this model, else why not */
    char hash[16];               /* A1111's short hash: first 12 hex of the file's sha256 */
} sd_lora_info;
int sd_list_loras(sd_engine *e, sd_lora_info *out, int max, sd_err *err);
/* Before a model is loaded: every LoRA p asks for (fields and prompt tags)
 * names a file in dir, refused as a loaded engine would refuse it (label
 * as sd_load_opts.lora_dir_label), so a command line finds a mistyped
 * name before a load of many seconds.  0, or -1 + err. */
int sd_loras_findable(const sd_gen_params *p, const char *dir, const char *label, sd_err *err);
/* A1111's "Lora hashes" of p's LoRAs (fields and tags, each name once):
 * "name: <first 12 hex of the file's sha256>, ..." into out ("" for none;
 * a LoRA not loaded yet is left out).  Any thread. */
void sd_lora_hashes(sd_engine *e, const sd_gen_params *p, char *out, size_t size);

/* What the masked area of an inpainting run starts from on 4-channel models
 * (A1111's inpainting_fill 0 "original", 2 "latent noise", 3 "latent
 * nothing"; its 1 "fill" is pixel-side and reaches the engine as ORIGINAL). */
typedef enum { SD_FILL_ORIGINAL = 0, SD_FILL_LATENT_NOISE, SD_FILL_LATENT_NOTHING } sd_inpaint_fill;
/* A mask value at least this repaints (value/255 >= 0.5: diffusers' binarize,
 * A1111's round); a mask with no value at least this has nothing to repaint
 * and is refused (the engine's inpaint_check; the request side checks the
 * same rule once the mask is fitted to the init image, jobs/mask_req.c). */
#define SD_MASK_REPAINT 128
/* 1 when some of the n mask values repaints (>= SD_MASK_REPAINT). */
static inline int sd_mask_repaints(const uint8_t *mask, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (mask[i] >= SD_MASK_REPAINT) return 1;
    return 0;
}

struct sd_gen_params {
    const char *prompt;
    const char *negative;        /* NULL = "" */
    int width, height;           /* output pixels, 1..; ignored for img2img (init size used) */
    int steps;
    float cfg;
    sd_sampler sampler;
    uint64_t seed;               /* image i uses seed + i */
    int n;                       /* images, run as one batch */
    /* img2img: RGB8 init image, NULL for txt2img */
    const uint8_t *init_rgb;
    int init_width, init_height;
    float strength;              /* (0,1) */
    int clip_skip;               /* AUTOMATIC1111's "Clip skip": 1 = the text encoder's last layer, n >= 2 =
                                    the hidden state of layer -n, then the final layer norm; 0 = the
                                    load option's.  SD1 only: SD2 always takes its penultimate layer,
                                    SDXL hidden_states[-2] of both towers; both ignore it (as A1111
                                    does).  More than the layers: refused */
    const sd_lora_spec *loras;   /* LoRAs to apply (see sd_lora_spec), n_loras of them; NULL = none */
    int n_loras;
    sd_progress_fn progress; void *progress_ud;
    sd_noise_fn noise; void *noise_ud;   /* NULL = Philox */
    /* k-diffusion (A1111) sampling: ksampler != NONE runs it instead of
     * `sampler`: start latent draw0 * sigma0, UNet rows [prompt, negative],
     * CFG on the denoised outputs, A1111's truncating 8-bit conversion;
     * img2img as A1111 (t_enc = int(min(strength, 0.999) * steps)). */
    sd_ksampler ksampler;
    sd_scheduler name_schedule;  /* the schedule the display name carried ("DPM++ 2M Karras"), or UNSET */
    sd_scheduler scheduler;      /* asked separately; k-diffusion only (else refused, field "scheduler") */
    sd_timestep_spacing spacing; /* diffusers-semantics samplers only (else refused, "timestep_spacing") */
    /* SDXL's size conditioning (the UNet's add_time_ids: original size, crop
     * top-left, target size), in pixels.  0 = diffusers' default: original
     * and target = the output size, crops 0.  Models without added
     * conditioning (SD 1.x/2.x) ignore them. */
    int orig_width, orig_height;
    int crop_top, crop_left;
    int target_width, target_height;
    /* ---- inpainting ---- */
    /* inpainting (docs/INPAINTING.md): with init_rgb, a mask of init_width x init_height 8-bit
     * values, 255 = repaint, 0 = keep; NULL = plain img2img.  The engine reads it as given (blur,
     * invert, "only masked" crops and A1111's pixel "fill" are done before it, in jobs/). */
    const uint8_t *mask;
    sd_inpaint_fill inpaint_fill;  /* what the masked area starts from (4-channel models) */
    /* ---- end inpainting ---- */
    /* ---- previews ---- */
    /* live previews (docs/SERVER.md "Previews"): every preview_every steps (0 = none; also after
     * the last step is not needed) preview(ud, step, total, img) with image 0's current estimate
     * of the picture, decoded by the load option preview_decoder (TAESD) or, without one, the
     * per-family latent-to-RGB approximation; img (any size, RGB8) is valid during the call only.
     * Hires fix: step/total count both passes as the progress callback does (pass 2's image i
     * at the second pass's size). */
    sd_preview_fn preview; void *preview_ud;
    int preview_every;
    /* ---- end previews ---- */
    /* hires fix (docs/SERVER.md "Hires fix"): hr_upscaler != NONE runs a second img2img pass
     * at hr_width x hr_height on the first pass's upscaled result, hr_steps (0 = steps) at
     * hr_strength, with the same seed; txt2img only. */
    sd_hr_upscaler hr_upscaler;
    int hr_width, hr_height;
    int hr_steps;
    float hr_strength;
};

/* The sampler choice's own consistency, no model needed: `scheduler` with a
 * diffusers-semantics sampler, or contradicting the display name's
 * schedule, and `timestep_spacing` with a k-diffusion sampler are refused
 * (SD_EINVAL naming "scheduler" / "timestep_spacing").  sd_generate runs it. */
int sd_check_sampler(const sd_gen_params *p, sd_err *err);
/* The schedule a k-diffusion run uses as the request named it: scheduler,
 * else the display name's, else AUTOMATIC (A1111's "Schedule type"). */
sd_scheduler sd_requested_schedule(const sd_gen_params *p);

/* Generate p->n images into out[0..n-1].  Returns 0 or -1 with err set
 * (SD_ECANCELLED when the progress callback asked to stop).  With
 * p->hr_upscaler != SD_HR_NONE: hires fix, out is hr_width x hr_height and
 * the progress total counts both passes. */
int sd_generate(sd_engine *e, const sd_gen_params *p, sd_image *out, sd_err *err);
/* The progress total (and the previews' total) a txt2img run reports, no
 * model needed: with hires fix pass 1's steps + n x pass 2's, else p->steps
 * (a job's total before its first step). */
int sd_hires_total_steps(const sd_gen_params *p);

/* The default noise source: torch.randn(shape, device="cuda") after
 * torch.manual_seed(seed), draw `draw` = Philox offset. */
void sd_philox_normal(uint64_t seed, uint64_t offset, float *out, size_t n);

const char *sd_version(void);

#endif
