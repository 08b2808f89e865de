/* pipeline.h — engine-internal view of a generation run, for the parity
 * tests and the bench command: sd_generate with its float outputs exposed
 * (final latent in SD space and the decoded image before quantisation).
 * A tools/tests header (docs/ARCHITECTURE.md): tests/, tools/ and the bench
 * command may include it; http/, jobs/ and the rest of the app use only
 * sd.h (tests/unit/test_engine_headers.sh checks that). */
#ifndef SD_PIPELINE_H
#define SD_PIPELINE_H

#include "sd.h"

typedef struct sd_gen_debug {
    float *final_latent;   /* out: [n, C, h, w] SD-space latent (caller-allocated) or NULL */
    float *image;          /* out: [n, 3, h*8, w*8] decoded, unclamped, before crop, or NULL */
    int lat_h, lat_w, lat_c; /* set by the run */
    /* diffusers-semantics samplers: the latent after each step (after
     * inpainting's blend), [max_steps][n, C, h, w], or NULL */
    float *step_latents;
    int max_steps;
    int steps_seen;        /* set by the run: steps recorded or not */
    /* hires fix's second pass (hires.c): */
    const float *init_latent; /* in: img2img from this SD-space latent [n, C, h, w] (the latent of
                                 p->init_width x p->init_height; p->init_rgb NULL) instead of an
                                 encoded init image; draw 0 is the add-noise, as A1111 */
    int latent_only;          /* in: 1 = stop after sampling (final_latent set, out untouched) */
    int image0;               /* in: the batch's index of image 0, for messages (pass 2 runs one image at a time) */
} sd_gen_debug;

/* Latent size for an output of width x height pixels: ceil(size / scale). */
void sd_latent_size(const sd_engine *e, int width, int height, int *lat_w, int *lat_h);

int sd_generate_debug(sd_engine *e, const sd_gen_params *p, sd_image *out,
                      sd_gen_debug *dbg, sd_err *err);

/* Hires fix (hires.c; sd_generate calls it when p->hr_upscaler != NONE):
 * pass 1 at p->width x p->height, the upscale, then pass 2 per image. */
int sd_hires_generate(sd_engine *e, const sd_gen_params *p, sd_image *out, sd_err *err);
/* The latent upscale of one [C, h, w] latent to [C, oh, ow], as torch's
 * F.interpolate(size=(oh, ow), antialias=False): SD_HR_LATENT "bilinear"
 * (align_corners=False), SD_HR_LATENT_NEAREST_EXACT "nearest-exact". */
void sd_hr_upscale_latent(sd_hr_upscaler mode, const float *in, int C, int h, int w, float *out, int oh,
                          int ow);

struct sd_unet;
struct sd_clip;
struct sd_vae;
struct sd_tokenizer;
struct sd_unet *sd_engine_unet(sd_engine *e);
struct sd_clip *sd_engine_clip(sd_engine *e);
struct sd_vae *sd_engine_vae(sd_engine *e);
struct sd_tokenizer *sd_engine_tokenizer(sd_engine *e);   /* the loaded vocabulary (prompt plans in tests) */
/* LoRA counters (lora/apply.h): merges, applies, time of the last apply. */
struct lora_stats;
void sd_engine_lora_stats(sd_engine *e, struct lora_stats *st);
/* What sd_generate does first: the model's weights made base + p's LoRAs
 * (the bench times it alone). */
int sd_engine_apply_loras(sd_engine *e, const sd_gen_params *p, sd_err *err);

/* Text conditioning for p's prompt and negative (A1111 syntax, clip_skip):
 * ctx[2, T, W] with row 0 the negative and row 1 the prompt, T = 77 *
 * chunks (the shorter padded with the empty prompt's chunk, as A1111's
 * "Pad prompt/negative prompt": the diffusers-semantics samplers' context;
 * the k-diffusion runs keep each side's own length), the texts in effect at the first model
 * call of a run of p->steps (prompt editing switches later; steps < 1 reads
 * as 1).  *ctx malloc'd. */
int sd_encode_text(sd_engine *e, const sd_gen_params *p, float **ctx, int *T, int *W, sd_err *err);
/* The same plus, for SDXL, the pooled rows beside the context rows:
 * pooled[2, P] (row 0 negative, row 1 prompt; each text's first chunk's
 * text_encoder_2 pooled output, zeros for an empty negative as the context),
 * P = the projection width (1280 in SDXL); *pooled NULL and *P 0 for models
 * without one (SD1/SD2).  The UNet's added vector is built from these rows
 * (in a run: a1111_conds_pooled beside a1111_conds_rows).  Either out may
 * be NULL; *pooled malloc'd. */
int sd_encode_text_pooled(sd_engine *e, const sd_gen_params *p, float **ctx, int *T, int *W, float **pooled,
                          int *P, sd_err *err);
/* Text encoder i (0 = the first; SDXL: 1 = OpenCLIP-bigG), NULL past the last. */
struct sd_clip *sd_engine_clip_at(sd_engine *e, int i);
/* The preview decoder (--preview-decoder, models/taesd.h), NULL without one;
 * 1 when the model is of the SDXL family (the preview approximation's factors). */
struct taesd;
struct taesd *sd_engine_taesd(sd_engine *e);
int sd_engine_is_sdxl(const sd_engine *e);

#endif
