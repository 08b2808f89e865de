/* clip.h — the CLIP text encoder (SD1's CLIP ViT-L/14 text tower, SD2's
 * OpenCLIP ViT-H text tower, or any size of either): token ids in, one
 * conditioning vector per token out.
 *
 * Weights come from sd_weights under the canonical HF CLIPTextModel names
 * ("text_encoder.text_model.*"); every size is read from the tensor shapes,
 * except the head count and the activation, which tensors cannot tell (see
 * clip_hints).  The encoder knows nothing of tokenizing: the caller gives
 * ids in windows of clip_tokens() (77) tokens; long prompts are several
 * windows, encoded in one call and concatenated by the caller.
 *
 * Not thread safe: an sd_clip keeps its activation buffers (grown to the
 * largest batch seen), so one thread uses it at a time. */
#ifndef SD_CLIP_H
#define SD_CLIP_H

#include <stdint.h>

#include "../../base/err.h"
#include "../loader/weights.h"

typedef enum {
    CLIP_ACT_AUTO = 0,    /* decided at load, see clip_hints */
    CLIP_ACT_QUICK_GELU,  /* x * sigmoid(1.702 x): OpenAI CLIP / SD1 */
    CLIP_ACT_GELU         /* exact erf GELU: OpenCLIP / SD2 */
} clip_act;

/* What the tensors cannot tell.  Zero-initialised = all automatic. */
typedef struct clip_hints {
    int heads;            /* 0 = text_encoder/config.json num_attention_heads, else the
                             LDM config's text.heads (sdw_ldm_config), else width/64 */
    clip_act act;         /* AUTO = config.json hidden_act, else LDM text.act, else the
                             file family (sdw_text_kind_of: OpenCLIP -> GELU) */
    const char *component;/* NULL = "text_encoder"; "text_encoder_2" = SDXL's second tower
                             (its <component>/config.json, LDM "conditioner"[1],
                             sdw_text2_kind_of; its text_projection gives clip_proj_dim) */
} clip_hints;

typedef struct sd_clip sd_clip;

/* Build the encoder from `w` (hints may be NULL); its ops run in ctx, its
 * linear weights are handles of ctx, freed with the model (ctx NULL: a
 * context of its own, freed with it).  NULL + err on failure
 * (missing tensor, inconsistent shapes, width not divisible by heads). */
sd_clip *clip_load(const sd_weights *w, const clip_hints *hints, ops_ctx *ctx, sd_err *err);
void clip_free(sd_clip *c);

int clip_width(const sd_clip *c);     /* W: size of one output vector */
int clip_layers(const sd_clip *c);    /* transformer layers stored */
int clip_tokens(const sd_clip *c);    /* tokens per window (positions, 77) */
int clip_heads(const sd_clip *c);
/* The handle of linear weight `name` (canonical: "text_encoder.text_model.
 * encoder.layers.<i>.self_attn.q_proj.weight", ... mlp.fc2.weight), or NULL
 * (LoRA's seam, like unet_weight). */
struct ops_weight *clip_weight(sd_clip *c, const char *name);
clip_act clip_activation(const sd_clip *c);
/* Family default for `skip`: 1 (last layer) for CLIP-L / SD1; 2 (penultimate)
 * for OpenCLIP / SD2, except a diffusers folder of the published SD2 layout
 * (23 layers: the converter already dropped the last one), where it is 1. */
int clip_default_skip(const sd_clip *c);

/* Allocate the activation buffers for B windows now (start-up), so a
 * shortage does not show mid-request.  0 or -1 + err (SD_ENOMEM). */
int clip_reserve(sd_clip *c, int B, sd_err *err);

/* Encode B windows: ids[B, T] (T = clip_tokens) -> out[B, T, W].
 * skip = 1 uses the last layer, 2 the penultimate, ... (A1111 "CLIP skip");
 * the result always goes through the final layer norm.  skip <= 0 means
 * clip_default_skip().  Ids must be in [0, vocab).  0 or -1 + err. */
int clip_encode(sd_clip *c, const int32_t *ids, int B, int skip, float *out, sd_err *err);
/* The same with injected token vectors: vec NULL, or [B, T] pointers where
 * a non-NULL one (clip_width floats) replaces that slot's token embedding
 * before the position embedding is added (textual inversion). */
int clip_encode_vec(sd_clip *c, const int32_t *ids, const float *const *vec, int B, int skip, float *out,
                    sd_err *err);

/* The general form: the output of layer `layer` (0 = token + position
 * embeddings, i = after transformer layer i, 1 <= i <= clip_layers), with
 * the final layer norm applied when final_ln is set.  For tests and SDXL-style
 * callers.  0 or -1 + err. */
int clip_hidden(sd_clip *c, const int32_t *ids, int B, int layer, int final_ln,
                float *out, sd_err *err);

/* Width of the pooled output: rows of <component>.text_projection.weight
 * ([proj, width], diffusers' orientation), 0 when the tower has none. */
int clip_proj_dim(const sd_clip *c);
/* clip_hidden (with clip_encode_vec's slot vectors, vec may be NULL) and, in
 * the same pass, the pooled output (SDXL's text_embeds): for each window,
 * final_layer_norm(last layer) at the first largest id (argmax: the first
 * end token when padding is 0) @ text_projection^T (no bias) ->
 * pooled[B, clip_proj_dim].  pooled NULL = clip_hidden.  -1 + err when the
 * tower has no projection.  0 or -1 + err. */
int clip_hidden_pooled(sd_clip *c, const int32_t *ids, const float *const *vec, int B, int layer, int final_ln,
                       float *out, float *pooled, sd_err *err);

/* The precision (OPS_FP32, OPS_BF16X2, OPS_BF16: ops.h) the model's ops run
 * at from its next call on; ops_default_precision() until set.
 * sd_engine_load sets each model's.  clip_ops_ctx: the context its ops run in. */
void clip_set_precision(sd_clip *c, int prec);
ops_ctx *clip_ops_ctx(const sd_clip *c);

/* Give the memory of the layers' weight copies back (ops_weight_release):
 * the next encode makes them again from the checkpoint's file mapping.  The
 * pipeline does it after each request's encoding for SDXL, whose two towers
 * (3.3 GB at fp32) are idle while the UNet and the VAE run. */
void clip_release_weights(sd_clip *c);

/* FLOPs of encoding B windows through `layers` transformer layers (<= 0 or
 * past the last: all), from the loaded shapes (multiply-add = 2): the
 * q/k/v/out and MLP linears and attention's two products with the full T²
 * (the causal mask is not discounted); embeddings and norms not counted.
 * SD 1.5's CLIP-L, one window: 13.3 GFLOP.  clip_pooled_flops: the
 * text_projection of B pooled rows (0 without one). */
double clip_flops(const sd_clip *c, int B, int layers);
double clip_pooled_flops(const sd_clip *c, int B);

#endif
