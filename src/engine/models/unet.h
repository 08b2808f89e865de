/* unet.h — the Stable Diffusion 1.x/2.x/XL denoising UNet (diffusers
 * UNet2DConditionModel with CrossAttn down/up blocks): load from canonical
 * weights ("unet.*"), run one forward pass.
 *
 * The architecture is read from tensor shapes, never from constants: levels
 * and channels per level (down_blocks.*.resnets.0.conv1), ResBlocks per level,
 * which levels have attention, transformer depth, context width (attn2.to_k),
 * linear vs 1x1-conv proj_in/out, in/out channels, time-embedding widths.
 * Only the attention head split cannot be seen in the shapes; it comes from
 * unet_hints (parsed from a diffusers or LDM config, or a family default). */
#ifndef SD_UNET_H
#define SD_UNET_H

#include "../../base/err.h"
#include "../loader/family.h"
#include "../loader/weights.h"

#define UNET_MAX_LEVELS 8

/* How attention channels split into heads.  Exactly one way is used, in this
 * order of precedence: level_heads (diffusers' list, heads per down level;
 * the mid block uses the deepest level's entry, up blocks mirror the down
 * levels), num_heads (same count everywhere, SD1: 8), head_dim (channels per
 * head, SD2: 64). */
typedef struct unet_hints {
    int level_heads[UNET_MAX_LEVELS];
    int n_level_heads;
    int num_heads;
    int head_dim;
    /* SDXL added conditioning: width of each size/crop id's sinusoid
     * (diffusers addition_time_embed_dim, sgm ConcatTimestepEmbedderND
     * outdim), which shapes cannot tell; 0 = the family default (family.h) */
    int add_time_dim;
} unet_hints;

/* SD1 family: 8 heads everywhere.  SD2 family: head_dim 64. */
unet_hints unet_hints_sd1(void);
unet_hints unet_hints_sd2(void);
/* The default of a family (family.h's descriptor: SD1 -> 8 heads, SD2 and
 * SDXL -> head_dim 64). */
unet_hints unet_hints_for_family(sd_family f);

/* From a diffusers unet/config.json text: num_attention_heads if set, else
 * attention_head_dim (int or list), which diffusers (SD1/2, and SDXL's list
 * per level) uses as the number of heads; addition_time_embed_dim.
 * 0 on success, -1 + err. */
int unet_hints_from_diffusers_config(const char *json, size_t len, unet_hints *h, sd_err *err);
/* From an LDM config as JSON: the unet params object itself, or one nested as
 * {"unet": {...}}, {"network_config": {...}} (sgm, SDXL) or
 * {"model":{"params":{"unet_config" or "network_config":{"params":{...}}}}};
 * num_heads (> 0) or num_head_channels (> 0); add_time_dim from the outdim of
 * a ConcatTimestepEmbedderND conditioner (a top-level "conditioner" list, or
 * model.params.conditioner_config.params.emb_models).  0, or -1 + err. */
int unet_hints_from_ldm_config(const char *json, size_t len, unet_hints *h, sd_err *err);

/* What a checkpoint says: a diffusers folder's unet/config.json, else the LDM
 * config beside a single file (sdw_ldm_config), else the default of the
 * checkpoint's family (sd_family_decide).  0, or -1 + err when
 * a config exists but is malformed. */
int unet_hints_from_weights(const sd_weights *w, unet_hints *h, sd_err *err);

typedef struct sd_unet sd_unet;

/* Shape summary, for callers and logs. */
typedef struct unet_info {
    int in_channels, out_channels;
    int levels;
    int channels[UNET_MAX_LEVELS];     /* per level */
    int down_resnets[UNET_MAX_LEVELS]; /* per level */
    int up_resnets[UNET_MAX_LEVELS];   /* per level (diffusers up_blocks order reversed) */
    int attention[UNET_MAX_LEVELS];    /* 1 if the level has spatial transformers */
    int heads[UNET_MAX_LEVELS];        /* heads at the level (mid uses the last level's) */
    int context_dim;
    int time_dim;                      /* width of the time embedding MLP output */
    int linear_proj;                   /* 1 if proj_in/out are Linear (SD2), 0 if 1x1 conv */
    int down_factor;                   /* 2^(number of downsamplers) */
    int add_dim;                       /* width of the added vector unet_cond.vec must have:
                                          add_text_dim + 6; 0 = no add-embedding (SD1/SD2) */
    int add_text_dim;                  /* pooled text features at the start of each vec row */
    int add_time_dim;                  /* sinusoid width per time id (addition_time_embed_dim) */
} unet_info;

/* Build the model from canonical "unet.*" tensors (h NULL = unet_hints_from_weights).  Every tensor is checked
 * (sdw_need) against shapes derived from earlier ones, so a wrong or missing
 * tensor gives an error naming it.  Weights are borrowed: `w` must outlive the
 * model.  Its ops run in ctx, its conv and linear weights are handles of
 * ctx, freed with the model (ctx NULL: a context of its own, freed with
 * it).  NULL + err on failure. */
sd_unet *unet_load(const sd_weights *w, const unet_hints *h, ops_ctx *ctx, sd_err *err);
void unet_free(sd_unet *u);
const unet_info *unet_get_info(const sd_unet *u);

/* Allocate the activation workspace now for B x H x W latents with T context
 * tokens, so a shortage fails at start-up, not mid-request.  Smaller requests
 * reuse it; larger ones grow it.  *bytes (may be NULL) gets its size.
 * 0 or -1 + err (SD_EINVAL bad sizes, SD_ENOMEM). */
int unet_reserve(sd_unet *u, int B, int H, int W, int T, size_t *bytes, sd_err *err);
/* Size every workspace for a context of at least T tokens (the longest
 * prompt the engine accepts), so that the prompt's length never grows it. */
void unet_plan_context(sd_unet *u, int T);
/* Give the workspace's pages back to the OS until the next forward (which
 * faults them in again): the pipeline calls it after sampling, so
 * the UNet's and the VAE's activations are never resident together. */
void unet_release_activations(sd_unet *u);

/* What a forward is conditioned on besides the latent and the timestep
 * (sd.cpp's SDCondition; the slots SDXL and inpainting fill):
 *   ctx[B, T, ctx_dim]   cross-attention context (text), T any positive
 *                        length (normally a multiple of 77); ctx_dim 0 = the
 *                        UNet's context_dim (the caller vouches for it);
 *   vec[B, vec_dim]      added conditioning, required by (and only for) a UNet
 *                        with an add-embedding (info.add_dim, SDXL), NULL/0
 *                        otherwise.  Each row: the pooled text embeds
 *                        (info.add_text_dim floats), then the 6 raw time ids
 *                        [orig_h, orig_w, crop_top, crop_left, target_h,
 *                        target_w]; vec_dim = info.add_dim.  The UNet embeds
 *                        each id like the timestep (info.add_time_dim wide,
 *                        [cos | sin]) and adds linear_2(SiLU(linear_1(
 *                        [text | 6 sinusoids]))) to the time embedding;
 *   concat[B, concat_channels, H, W]  extra input channels joined after the
 *                        latent before conv_in (inpainting: mask, masked-image
 *                        latent), NULL/0 for none.  The latent then carries
 *                        in_channels - concat_channels = out_channels.
 * A conditioning the UNet cannot use is refused with an error, never ignored. */
typedef struct unet_cond {
    const float *ctx;
    int T, ctx_dim;
    const float *vec;
    int vec_dim;
    const float *concat;
    int concat_channels;
} unet_cond;

/* Text conditioning only: ctx[B, T, context_dim]. */
static inline unet_cond unet_cond_text(const float *ctx, int T)
{
    unet_cond c = {ctx, T, 0, NULL, 0, NULL, 0};
    return c;
}

/* One denoising pass (one at a time per model: it uses the model's
 * workspace): x[B, in_channels - c->concat_channels, H, W] latent, t[B]
 * timesteps (float, may differ per row), c the conditioning (above) ->
 * out[B,out,H,W].  H, W any size >= 1 (odd down-sampled sizes are matched on
 * the way up like diffusers).  Returns 0, or -1 + err (bad sizes, a
 * conditioning the UNet cannot use, out of memory); out is untouched on error. */
int unet_forward(sd_unet *u, const float *x, const float *t, const unet_cond *c,
                 int B, int H, int W, float *out, sd_err *err);

/* Debug/test hook: called after conv_in, time_proj, time_embedding,
 * add_time_proj [B*6, add_time_dim] and add_embedding [B, time_dim] (SDXL), each
 * down/up block, mid_block and conv_norm_out (before its SiLU), "concat"
 * (an inpainting UNet's extra input channels [B, extra, H, W]) with the
 * diffusers module name and the activation [n, c, h, w] (h = w = 1 for the
 * time vectors).  NULL to disable. */
typedef void (*unet_tap_fn)(void *ud, const char *name, const float *data, int n, int c, int h, int w);
void unet_set_tap(sd_unet *u, unet_tap_fn fn, void *ud);

/* The precision (OPS_FP32, OPS_BF16X2, OPS_BF16: ops.h) the model's ops run
 * at from its next call on; ops_default_precision() until set.
 * sd_engine_load sets each model's.  unet_ops_ctx: the context its ops run in. */
void unet_set_precision(sd_unet *u, int prec);
ops_ctx *unet_ops_ctx(const sd_unet *u);
/* The handle of one conv or linear weight by its diffusers name (without
 * "unet.", e.g. "conv_in.weight"), to patch it (ops_weight_replace /
 * restore: LoRA's seam); NULL if the model has no such weight handle. */
ops_weight *unet_weight(sd_unet *u, const char *name);

/* FLOPs of one forward over B latents of H x W with T context tokens,
 * counted from the loaded model's shapes (multiply-add = 2): convs, linears
 * (time and added embeddings included) and attention's two products with
 * their Tq·Tk terms; norms and element-wise ops are not counted.  The
 * `sdserve bench` figures; SD 1.5 at 64x64, T 77: 803.3 GFLOP per image. */
double unet_flops(const sd_unet *u, int B, int H, int W, int T);

/* ---- precision per layer (issue 19 item 2; docs/ACCURACY.md "Precision
 * per layer") ----
 * A rule names layers that run at plain bf16 (inputs and weights rounded,
 * f32 sums) whatever the model's precision: "kind[@levels],..." with kinds
 * res (ResBlock 3x3 convs), attn (to_q/k/v/out), ff (feed-forward linears),
 * proj (proj_in/out), emb (time and added-embedding MLPs, time_emb_proj),
 * sample (conv_shortcut, down/up-sampling convs), io (conv_in/out) or all;
 * levels are resolution depths from the latent's (0; the mid block is the
 * deepest level), as digits, '-' = and every deeper one ("ff@1-"); no
 * levels = all.  "" or "none" = no layer (the default after load).  A
 * rule naming layers is refused on a CPU without bf16 kernels
 * (ops_cpu_bf16).
 * Attention's own products keep the model's precision.
 * UNET_BF16_LAYERS is the fixed rule the engine's `auto` precision uses
 * (sd_engine_load): never measured at run time; the feed-forward and
 * attention projections below the latent's resolution, the study's pick.  unet_set_layer_rule: 0, or
 * -1 + err (SD_EINVAL, field "layer_rule") leaving the rule unchanged;
 * unet_layer_rule: the rule as set ("" = none).  unet_flops_rule: the FLOPs
 * of unet_flops that the rule's layers do (-1 for a malformed rule). */
#define UNET_BF16_LAYERS "ff@1-,attn@1-"
#define UNET_BF16_LAYERS_NAME "ff+attn@1-"   /* how precision names show it */
int unet_set_layer_rule(sd_unet *u, const char *rule, sd_err *err);
const char *unet_layer_rule(const sd_unet *u);
double unet_flops_rule(const sd_unet *u, int B, int H, int W, int T, const char *rule);

#endif
