/* taesd.h — TAESD, the tiny autoencoder (madebyollin's taesd / taesdxl;
 * diffusers AutoencoderTiny): a fast approximate VAE for live previews and
 * the optional fast final decode (sd_load_opts.preview_decoder, vae_decoder).
 *
 * Files: a diffusers AutoencoderTiny folder (config.json +
 * diffusion_pytorch_model.safetensors) or single .safetensors with
 * encoder.layers.N / decoder.layers.N, or madebyollin's
 * taesd_decoder.safetensors / taesd_encoder.safetensors (nn.Sequential
 * indices, the decoder's shifted by one: it starts with a Clamp).  The other
 * half beside a madebyollin file (_decoder <-> _encoder) is read when present.
 * Channels, blocks, latent channels and the scale are read from the tensors.
 *
 * Latents are SD-space (scaling factor 1.0: no division by the VAE's
 * 0.18215).  Images are NCHW RGB in the VAE's convention [-1, 1]: decode
 * gives the network's [0, 1] output times 2 minus 1 (not clamped); encode
 * takes [-1, 1] and feeds (x+1)/2.  One image per call; not thread safe. */
#ifndef SD_TAESD_H
#define SD_TAESD_H

#include "../../base/err.h"
#include "../ops/ops.h"

typedef struct taesd taesd;

/* Its convs run in ctx at precision prec (OPS_*), its weights are handles
 * of ctx, freed with the model (free it before ctx).  NULL + err (field
 * "preview_decoder") when the file or folder is missing, is not a TAESD
 * (neither half found) or a tensor has an unexpected shape. */
taesd *taesd_load(const char *path, ops_ctx *ctx, int prec, sd_err *err);
void taesd_free(taesd *t);
void taesd_set_precision(taesd *t, int prec);

int taesd_has_decoder(const taesd *t);
int taesd_has_encoder(const taesd *t);
int taesd_latent_channels(const taesd *t);   /* 4 for SD 1.x/2.x and SDXL */
int taesd_scale(const taesd *t);             /* pixels per latent cell: 2^(upsamplings), 8 */
int taesd_width(const taesd *t);             /* the widest layer's channels (64 in taesd, 24 in the tiny one) */

/* z[C, h, w] SD-space latent -> img[3, h*s, w*s], [-1, 1] nominally.  0, or
 * -1 + err (no decoder, SD_ENOMEM). */
int taesd_decode(taesd *t, const float *z, int h, int w, float *img, sd_err *err);
/* img[3, H, W] in [-1, 1], H and W multiples of the scale -> z[C, H/s, W/s]. */
int taesd_encode(taesd *t, const float *img, int H, int W, float *z, sd_err *err);

/* FLOPs of decoding one h x w latent (multiply-add = 2; convs only, as
 * vae_decode_flops counts).  0 without a decoder. */
double taesd_decode_flops(const taesd *t, int h, int w);

/* Tests: after each layer of the next decode / encode, tap(ud, decoder,
 * layer, x, C, H, W) with the layer's output x[H][W][C] (NHWC) and its
 * diffusers index (decoder.layers.N / encoder.layers.N; the ReLUs inside
 * blocks are not layers).  NULL turns it off. */
typedef void (*taesd_tap_fn)(void *ud, int decoder, int layer, const float *x, int C, int H, int W);
void taesd_set_tap(taesd *t, taesd_tap_fn tap, void *ud);

#endif
