/* vae.h — the KL autoencoder (diffusers AutoencoderKL) that maps latents to
 * pixels (decoder) and pixels to the latent posterior (encoder).
 *
 * Weights come from sd_weights under canonical names "vae.*"; channels,
 * levels and blocks per level are read from the tensor shapes.  Latents here
 * are in the VAE's own space: callers divide SD-space latents by
 * vae_scaling_factor() before decoding and multiply the encoder's output by
 * it.  Images are NCHW RGB, nominally in [-1, 1] (decode does not clamp).
 *
 * Images of a batch are processed one at a time, so activation memory does
 * not grow with the batch.  Not thread safe (one caller at a time). */
#ifndef SD_VAE_H
#define SD_VAE_H

#include <stddef.h>

#include "../../base/err.h"
#include "../loader/weights.h"

typedef struct sd_vae sd_vae;

/* Its ops run in ctx, its conv and linear weights are handles of ctx,
 * freed with the model (ctx NULL: a context of its own, freed with it).  NULL + err on failure.
 * The encoder is optional in the file: without it vae_has_encoder() is 0
 * and vae_encode fails cleanly. */
sd_vae *vae_load(const sd_weights *w, ops_ctx *ctx, sd_err *err);
void vae_free(sd_vae *v);

int vae_scale(const sd_vae *v);              /* pixels per latent cell: 2^(levels-1), 8 for SD */
int vae_latent_channels(const sd_vae *v);    /* 4 for SD */
int vae_image_channels(const sd_vae *v);     /* 3 */
float vae_scaling_factor(const sd_vae *v);   /* vae/config.json scaling_factor, else the LDM
                                                config's vae.scale_factor (sgm: scale_factor), else
                                                the family's (family.h: 0.18215, SDXL 0.13025) */
int vae_has_encoder(const sd_vae *v);
/* The scaling factor the weights' config names (as vae_scaling_factor
 * reads it), 0 when none does; and setting it (a VAE override without a
 * config of its own takes the model's). */
float vae_config_scaling(const sd_weights *w);
void vae_set_scaling_factor(sd_vae *v, float s);

/* Allocate the activation workspace now for decoding h x w latents (and
 * encoding the matching h*s x w*s images when there is an encoder), so a
 * shortage fails at start-up, not mid-request.  Smaller requests reuse it;
 * larger ones grow it.  *bytes (may be NULL) gets the workspace size.
 * 0 or -1 + err (SD_ENOMEM). */
int vae_reserve(sd_vae *v, int h, int w, size_t *bytes, sd_err *err);
/* Give the workspace's pages back to the OS until the next call (see
 * unet_release_activations). */
void vae_release_activations(sd_vae *v);

/* The tiled decode (docs/ACCURACY.md "Tiled VAE decode"): the up blocks
 * in row stripes with every GroupNorm's statistics over the whole image,
 * so a decode holds two full activations and two stripes instead of three
 * full ones (2048x2048 at SD's widths: buffers of ~6 GiB, not 12; peak RSS
 * measured 8.8 GiB, not 10.2: bench/README.md).  VAE_TILING_AUTO
 * (the default) tiles images of more than VAE_TILE_AUTO_PIXELS pixels, ON
 * always, OFF never; a decoder whose ResNets widen their input (none of
 * SD's) is never tiled.  stripe_rows > 0 forces the stripe height (tests),
 * 0 picks it from a ~128 MB scratch per stripe buffer.  vae_tiled: whether
 * decoding an h x w latent tiles. */
enum { VAE_TILING_AUTO = 0, VAE_TILING_ON = 1, VAE_TILING_OFF = 2 };
#define VAE_TILE_AUTO_PIXELS ((size_t)1024 * 1024)
void vae_set_tiling(sd_vae *v, int mode, int stripe_rows);
int vae_tiled(const sd_vae *v, int h, int w);

/* z[B, Z, h, w] (already divided by the scaling factor) ->
 * img[B, 3, h*s, w*s] with s = vae_scale().  0 or -1 + err. */
int vae_decode(sd_vae *v, const float *z, int B, int h, int w, float *img, sd_err *err);

/* img[B, 3, H, W] in [-1, 1], H and W multiples of vae_scale() ->
 * moments[B, 2Z, H/s, W/s] = quant_conv(encoder(img)): channels [0, Z) the
 * mean, [Z, 2Z) the log-variance before clamping.  0 or -1 + err. */
int vae_encode_moments(sd_vae *v, const float *img, int B, int H, int W, float *moments, sd_err *err);

/* The posterior: mean[B, Z, H/s, W/s] and std = exp(0.5 * clamp(logvar, -30, 20)),
 * same shape (std may be NULL).  0 or -1 + err. */
int vae_encode(sd_vae *v, const float *img, int B, int H, int W, float *mean, float *std, sd_err *err);

/* The precision (OPS_FP32, OPS_BF16X2, OPS_BF16: ops.h) the model's ops run
 * at from its next call on; ops_default_precision() until set.
 * sd_engine_load sets each model's.  vae_ops_ctx: the context its ops run in. */
void vae_set_precision(sd_vae *v, int prec);
ops_ctx *vae_ops_ctx(const sd_vae *v);

/* FLOPs of decoding one h x w latent / encoding one H x W image, counted
 * from the loaded model's shapes (multiply-add = 2): convs, the mid
 * attention's linears and its HW² products; norms and element-wise ops are
 * not counted.  SD 1.5 at 512²: decode 2514.5, encode 1116.7 GFLOP.
 * vae_encode_flops is 0 without an encoder. */
double vae_decode_flops(const sd_vae *v, int h, int w);
double vae_encode_flops(const sd_vae *v, int H, int W);

#endif
