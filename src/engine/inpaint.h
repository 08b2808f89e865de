/* inpaint.h — engine-internal: the mask of an inpainting run (sd_gen_params
 * .mask) turned into what the sampler and the UNet take, by diffusers'
 * StableDiffusionInpaintPipeline rules (the diffusers-semantics samplers)
 * or AUTOMATIC1111's (k-diffusion runs); docs/INPAINTING.md "Engine".
 *
 * pipeline.c drives it:
 *   inpaint_open    pixel mask (binarized), latent mask, VAE moments of the
 *                   image and of the masked image, the UNet's extra rows
 *   inpaint_start   diffusers: the draws, image and masked-image latents,
 *                   the start latent (noise·init_noise_sigma at strength 1)
 *   inpaint_kd_init A1111: init_latent (posterior mean) with the fill mode,
 *                   the 9-channel conditioning
 *   inpaint_rows    the conditioning per UNet row (CFG rows repeat images)
 *   inpaint_after_step / inpaint_kd_blend  the per-step latent blends
 * A 9-channel UNet without a mask runs with an all-ones mask (A1111's
 * txt2img/img2img conditioning for inpainting models). */
#ifndef SD_INPAINT_H
#define SD_INPAINT_H

#include <stddef.h>

#include "sd.h"
#include "models/vae.h"
#include "samplers/samplers.h"

typedef struct inpaint_run {
    int kd;              /* A1111's rules (a k-diffusion run) */
    int masked;          /* p->mask given: blends apply (else an all-ones 9-channel conditioning) */
    int B, C, lh, lw;    /* images, latent channels and size */
    int extra;           /* the UNet's extra input channels: 1 + C, or 0 (4-channel UNet: blending) */
    float scaling;       /* the VAE's latent scaling factor */
    sd_inpaint_fill fill;
    float *repaint;      /* [lh*lw] latent mask, 1 = repaint (diffusers mask_latent, A1111 nmask) */
    float *image_lat;    /* [B*C*lh*lw] clean image latents (A1111: init_latent after the fill) */
    float *noise;        /* [B*C*lh*lw] diffusers: the add_noise draw, reused by the blend */
    float *cond;         /* [B][extra][lh][lw] mask then masked-image latents, or NULL */
    float *rows;         /* [rows][extra][lh][lw] cond per UNet row (inpaint_rows) */
    float *img_mean, *img_std;   /* VAE posterior of the image, unscaled [C*lh*lw], or NULL */
    float *msk_mean, *msk_std;   /* of the masked image, or NULL (4-channel UNet) */
    const sd_sched *sched;       /* diffusers runs: for the blend's add_noise */
    float *work;                 /* [B*C*lh*lw] the blend's noisy image latents */
} inpaint_run;

/* The request's mask on its own, no model needed: a mask without an init
 * image or with nothing to repaint (no value >= 128, which both rules
 * binarize to keep) -> SD_EINVAL naming "mask"; an unknown fill ->
 * "inpaint_fill".  sd_generate runs it; sd_check_request too once the
 * init image's pixels are there. */
int inpaint_check(const sd_gen_params *p, sd_err *err);

/* Sets r up for p on a run of B images with C x lh x lw latents: img is
 * the (padded) image [3, PH, PW] in [-1, 1] (zeros for a 9-channel UNet's
 * txt2img), PH = lh·s; extra = the UNet's extra input channels.  0, or -1
 * + err (r then still needs inpaint_close). */
typedef struct inpaint_in {
    const sd_gen_params *p;
    sd_vae *vae;
    const float *img;
    int PH, PW, B, C, lh, lw, extra, kd;
} inpaint_in;
int inpaint_open(inpaint_run *r, const inpaint_in *in, sd_err *err);

/* diffusers: draws [image eps (4-channel UNet or strength < 1)], noise,
 * masked-image eps; x = noise·init_noise_sigma at strength 1 (or no init
 * image), else add_noise(image latents, noise, t_start); the fill mode
 * rewrites the masked cells of the image latents first. */
int inpaint_start(inpaint_run *r, const sd_sched *s, sd_noise_src *ns, int strength_max, float *x, sd_err *err);
/* A1111: init_latent = scaling·mean (with an init image) with the fill mode
 * on the masked cells ("latent noise" = the image's draw 0, as A1111's
 * create_random_tensors of the image seed), and the 9-channel
 * conditioning from posterior means. */
void inpaint_kd_init(inpaint_run *r, const sd_noise_src *ns);
/* r->cond repeated for `rows` UNet rows (row j takes image j % B): 0, -1 + err. */
int inpaint_rows(inpaint_run *r, int rows, sd_err *err);

/* sd_sample_req.after_step for a 4-channel UNet (ud = r): after step k,
 * x = (1 - m)·add_noise(image latents, noise, k + 1) + m·x, the clean image
 * latents after the last step. */
void inpaint_after_step(void *ud, int k, float *x);
/* A1111's blend: x = x·nmask + init_latent·(1 - nmask) (denoised after CFG,
 * and the samples after the last step); nothing without a mask. */
void inpaint_kd_blend(const inpaint_run *r, float *x);

void inpaint_close(inpaint_run *r);

#endif
