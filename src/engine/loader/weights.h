/* weights.h — the model's tensors, by canonical name, as fp32 arrays.
 *
 * A checkpoint (single .safetensors file in CompVis/LDM naming, or a diffusers
 * folder) is opened once; every tensor is exposed under its *canonical* name,
 * which is the diffusers name prefixed by the component:
 *     "unet.<diffusers unet name>"            e.g. unet.down_blocks.0.resnets.1.conv1.weight
 *     "vae.<diffusers vae name>"              e.g. vae.decoder.up_blocks.0.resnets.0.norm1.weight
 *     "text_encoder.<HF CLIPTextModel name>"  e.g. text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight
 *     "text_encoder_2.<HF CLIPTextModelWithProjection name>"  SDXL's second tower, incl.
 *                                              text_encoder_2.text_projection.weight [proj, width]
 *     "scheduler.alphas_cumprod"              the LDM buffer, when a single file stores it
 * Single-file names are mapped to these (LDM -> diffusers, OpenCLIP -> HF
 * CLIP with in_proj split into q/k/v views).  Shapes are kept exactly as
 * stored (so the VAE mid-attention q/k/v may be [C,C,1,1] or [C,C]; models
 * treat both as a [C,C] matrix via sdw_numel).
 *
 * Data is always fp32: F32 tensors point into the read-only mmap when
 * aligned, F16/BF16 are widened once at load into model-lifetime memory.
 * Lookups never fail silently: sdw_need() fills an sd_err naming the
 * canonical name, the name in the file, the file, and the expected vs actual
 * shape. */
#ifndef SD_WEIGHTS_H
#define SD_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "../../base/err.h"
#include "../ops/ops.h"

#define SDW_MAXDIM 4

typedef struct sdw_tensor {
    const char *name;      /* canonical name */
    const char *src_name;  /* name as stored in the file */
    const char *file;      /* path of the file it came from */
    int ndim;              /* 0..4 (0 = scalar) */
    int64_t shape[SDW_MAXDIM];
    const float *data;     /* fp32, C order, numel elements */
    const void *raw;       /* the loader's: the bytes data came from in the file mapping */
    int raw_dtype;         /* ... and their st_dtype (safetensors.h) */
    int handles;           /* the loader's: weight handles made of it (sdw_weight) */
    int dropped;           /* the loader's: data's pages were given back (read only through a handle) */
} sdw_tensor;

typedef struct sd_weights sd_weights;

typedef enum { SDW_LAYOUT_DIFFUSERS, SDW_LAYOUT_SINGLE_FILE } sdw_layout;
typedef enum { SDW_TEXT_NONE, SDW_TEXT_CLIP_L, SDW_TEXT_OPENCLIP } sdw_text_kind;

/* Open a .safetensors single file or a diffusers folder.  NULL + err on failure. */
sd_weights *sdw_open(const char *path, sd_err *err);
void sdw_close(sd_weights *w);
/* The same table from the files' headers only, for deciding what a
 * checkpoint is without loading it (sd_probe_model): names, shapes, dtypes
 * and files as sdw_open gives them, every `data` NULL, nothing widened or
 * read past the headers (the mappings stay untouched).  Only sdw_get,
 * sdw_at, the kinds and sdw_folder_file may be used on it, and sdw_weight
 * for a shape-only handle that is never run (a checker engine's models:
 * sd_engine_open_checker). */
sd_weights *sdw_open_header(const char *path, sd_err *err);
/* Bytes of the weight files opened (a folder's: all of its components'). */
int64_t sdw_file_bytes(const sd_weights *w);

/* A VAE on its own (--vae, docs/LOADING.md "VAE override"): an A1111-style
 * .safetensors file (LDM names encoder.* / decoder.* / quant_conv /
 * post_quant_conv, with or without "first_stage_model.", or diffusers names)
 * or a diffusers VAE folder (diffusion_pytorch_model.safetensors + config.json,
 * given directly or as its parent holding vae/).  Only vae.* tensors are
 * kept, under the same canonical names as a checkpoint's; sdw_folder_file
 * reads the folder that holds the file.  Pickles (.pt/.ckpt) are refused.
 * NULL + err naming field "vae" on failure. */
sd_weights *sdw_open_vae(const char *path, sd_err *err);
/* The same from the file's header only (as sdw_open_header): a checker
 * engine's VAE override (sd_engine_open_checker). */
sd_weights *sdw_open_vae_header(const char *path, sd_err *err);
/* 1 for weights from sdw_open_vae. */
int sdw_is_vae_only(const sd_weights *w);
/* Take the tensors whose canonical names start with `prefix` out of the
 * table (sdw_get no longer finds them) and give their widened pages back
 * to the OS: a VAE override's checkpoint drops its own "vae.".  Nothing
 * is dropped (0) when a handle was made of one of them or of a tensor
 * sorting after them.  Returns how many went. */
size_t sdw_drop_prefix(sd_weights *w, const char *prefix);

sdw_layout sdw_get_layout(const sd_weights *w);
/* Which text tower the file had (SD1 = CLIP ViT-L style HF naming, SD2 = OpenCLIP). */
sdw_text_kind sdw_text_kind_of(const sd_weights *w);
/* The second text tower's kind (SDXL: text_encoder_2.*, OpenCLIP-bigG from
 * conditioner.embedders.1.model.* or a text_encoder_2/ folder whose config
 * says hidden_act "gelu"); SDW_TEXT_NONE when there is none. */
sdw_text_kind sdw_text2_kind_of(const sd_weights *w);
/* Path given to sdw_open (folder or file). */
const char *sdw_path(const sd_weights *w);

/* Look up a tensor by canonical name; NULL when absent (no error). */
const sdw_tensor *sdw_get(const sd_weights *w, const char *name);
/* printf-style variant of sdw_get. */
const sdw_tensor *sdw_getf(const sd_weights *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Require a tensor with `ndim` dims; each shape[i] >= 0 must match exactly,
 * -1 means "any" (and is then readable from the result).  Returns NULL and
 * fills err ("missing tensor ..." / "tensor X in FILE has shape [..], expected
 * [..]") on failure. */
const sdw_tensor *sdw_need(const sd_weights *w, sd_err *err, const char *name,
                           int ndim, const int64_t *shape);
/* Convenience: sdw_need with shape given inline, e.g. sdw_need4(w,e,name,C,-1,3,3).
 * Pass ndim dims; unused trailing ones are ignored. */
const sdw_tensor *sdw_need1(const sd_weights *w, sd_err *err, const char *name, int64_t d0);
const sdw_tensor *sdw_need2(const sd_weights *w, sd_err *err, const char *name, int64_t d0, int64_t d1);
const sdw_tensor *sdw_need4(const sd_weights *w, sd_err *err, const char *name,
                            int64_t d0, int64_t d1, int64_t d2, int64_t d3);

int64_t sdw_numel(const sdw_tensor *t);

/* The tensor as a weight handle of ctx (ops.h), for a conv or linear layer:
 * the loader owns its memory.  Once the ops have made their first blocked
 * copy, the loader gives the fp32 original's pages back to the OS (it is
 * resident once, not twice); whenever the original is wanted again (another
 * layout or precision, ops_weight_restore) it is re-derived from the file
 * mapping (F32 read again, F16/BF16 widened again).  The handle belongs to
 * ctx; `t` (and its sd_weights) must outlive it.  A tensor with more than
 * one handle keeps its pages (a second handle would read them).  NULL when
 * out of memory. */
ops_weight *sdw_weight(const sdw_tensor *t, ops_ctx *ctx);

/* Iterate all canonical names (for tools and counting); i from 0. NULL at end. */
const sdw_tensor *sdw_at(const sd_weights *w, size_t i);
size_t sdw_count(const sd_weights *w);

/* Read a small JSON/text file inside a diffusers folder component, e.g.
 * sdw_folder_file(w, "scheduler/scheduler_config.json"); returns malloc'd
 * NUL-terminated contents or NULL when absent or not a folder. */
char *sdw_folder_file(const sd_weights *w, const char *relpath, size_t *len);

/* --- added by the loader (not part of the original fixed API) --- */

/* The LDM hyper-parameter JSON of a single-file checkpoint (heads / head size,
 * parameterization: what the tensors cannot tell; format of
 * reference/models/tiny-sd1.ldm_config.json), found beside the file as
 * <stem>.ldm_config.json, where <stem> is the file name without .safetensors
 * and also tried with a -fp16/.fp16/_fp16/-fp32/... suffix removed
 * (tiny-sd1-fp16.safetensors -> tiny-sd1.ldm_config.json; a folder holding
 * model.safetensors -> model.ldm_config.json).  malloc'd contents, or NULL
 * when absent or for a diffusers folder. */
char *sdw_ldm_config(const sd_weights *w, size_t *len);

/* 1 when one of the opened files holds a tensor named exactly `name` as
 * written in the file, whatever its dtype or shape, also one the loader
 * left out: the marker tensors of v-prediction SDXL checkpoints ("v_pred",
 * "ztsnr"; docs/LOADING.md "Prediction markers"), which are not weights. */
int sdw_has_file_tensor(const sd_weights *w, const char *name);

#endif
