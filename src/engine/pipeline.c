/* pipeline.c — the engine's front door: loads a checkpoint into the text
 * encoder, UNet and VAE, and runs txt2img / img2img (sd.h).
 *
 * Order of a run: tokenizer -> text encoder (negative and prompt) -> start
 * latent (Philox noise, or VAE encode of the init image + noise) -> sampler,
 * whose model callback runs the UNet on [uncond; cond] rows and applies
 * classifier-free guidance -> VAE decode -> RGB8, cropped to the requested
 * size.  Noise draws per image, in order: txt2img draw 0 = initial latent;
 * img2img draw 0 = posterior sample, draw 1 = add-noise; the samplers that
 * need more (Euler a, LCM) continue from there.  Image i of a batch uses
 * seed + i, so it equals that seed rendered alone.
 *
 * Sizes that are not multiples of the VAE factor (8): txt2img generates the
 * next multiple up and crops the centre; img2img pads the init image on the
 * right/bottom by repeating its edge, and crops that padding off. */
#include "pipeline.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/sha256.h"
#include "inpaint.h"
#include "loader/family.h"
#include "loader/weights.h"
#include "lora/apply.h"
#include "models/clip.h"
#include "models/taesd.h"
#include "models/unet.h"
#include "models/vae.h"
#include "prompt/a1111.h"
#include "ops/ops.h"
#include "preview.h"
#include "samplers/kdiff.h"
#include "samplers/samplers.h"
#include "tokenizer/clip_bpe.h"
#include "../base/alloc.h"

#define SD_MAX_TEXT_ENCODERS 2   /* SDXL has two; SD1 and SD2 one */
/* A checker's LoRA cache (parsed files kept for the next check): small, an
 * API node holds one checker per model. */
#define CHECKER_LORA_FILES 2
#define CHECKER_LORA_BYTES ((size_t)256 << 20)

struct sd_engine {
    sd_weights *w;
    sd_tokenizer *tok;
    sd_clip *text[SD_MAX_TEXT_ENCODERS];   /* text encoders, in the order their outputs join the context */
    int n_text;                            /* one today (SD1, SD2) */
    sd_unet *unet;
    sd_vae *vae;
    ops_ctx *ops;       /* the ops state its models share (ops.h): made at load, freed last */
    sd_prediction pred;
    int zsnr;           /* 1: zero-terminal-SNR noise schedule ("ztsnr" marker, config or --zero-terminal-snr) */
    sd_family family;   /* decided once from the tensors at load (loader/family.h) */
    int clip_skip;      /* 0 = family default */
    int64_t params;
    char hash[16];
    char name[256];
    char precision[48];   /* sd_model_info.precision */
    sd_embeddings emb;    /* textual-inversion embeddings (--embeddings-dir), maybe none */
    sd_weights *vae_w;    /* the VAE override's tensors (--vae), or NULL: the checkpoint's */
    char vae_name[256], vae_hash[16];   /* sd_model_info.vae_name / vae_hash */
    lora_engine *lora;    /* LoRA per request: cache and applied set (lora/apply.h) */
    int checker;          /* sd_engine_open_checker: headers only, shape-only handles; never runs */
    /* previews: the preview decoder and the fast final decode */
    taesd *taesd;         /* --preview-decoder (sd_load_opts.preview_decoder), or NULL: the approximation */
    int taesd_final;      /* --vae-decoder taesd: final images decoded by it too */
    int vae_prec;         /* the VAE's precision (OPS_*): the TAESD runs at it */
};

struct sd_unet *sd_engine_unet(sd_engine *e) { return e->unet; }
struct sd_clip *sd_engine_clip(sd_engine *e) { return e->text[0]; }
struct sd_vae *sd_engine_vae(sd_engine *e) { return e->vae; }
struct sd_tokenizer *sd_engine_tokenizer(sd_engine *e) { return e->tok; }
struct taesd *sd_engine_taesd(sd_engine *e) { return e->taesd; }
int sd_engine_is_sdxl(const sd_engine *e) { return sd_family_info(e->family)->base == SD_FAMILY_SDXL; }

static char *read_text_file(const char *path, size_t *len, sd_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sd_errf(err, errno == ENOENT ? SD_ENOTFOUND : SD_EIO, "config", "cannot open the model's config file %s: %s",
                path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (16u << 20)) { free(buf); fclose(f); sd_errf(err, SD_EFORMAT, "config", "config file %s is too large", path); return NULL; }
            char *nb = sd_realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); sd_errf(err, SD_ENOMEM, "config", "out of memory"); return NULL; }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r < 4096) break;
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

/* prediction type: "epsilon"/"v_prediction" in a diffusers scheduler config,
 * "eps"/"v" as LDM "parameterization". */
static sd_prediction prediction_from_json(const char *json, size_t len, const char *key)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    sd_prediction p = SD_PRED_AUTO;
    if (root && json_is_object(root)) {
        const char *s = json_string_value(json_object_get(root, key));
        if (s) p = (!strcmp(s, "v") || !strcmp(s, "v_prediction")) ? SD_PRED_V
                 : (!strcmp(s, "eps") || !strcmp(s, "epsilon")) ? SD_PRED_EPS : SD_PRED_AUTO;
    }
    json_decref(root);
    return p;
}

/* ---- v-prediction markers (NoobAI-style SDXL; docs/LOADING.md) ---------- */

/* 1 when a diffusers scheduler config sets rescale_betas_zero_snr. */
static int zsnr_from_scheduler(const sd_weights *w)
{
    size_t n;
    char *sc = sdw_folder_file(w, "scheduler/scheduler_config.json", &n);
    if (!sc) return 0;
    json_error_t je;
    json_t *root = json_loadb(sc, n, 0, &je);
    int z = root && json_is_true(json_object_get(root, "rescale_betas_zero_snr"));
    json_decref(root);
    free(sc);
    return z;
}

/* The marker tensors a single file may carry (ComfyUI / Forge read them the
 * same way): "v_pred" selects v-prediction when neither the flag nor a
 * config named one; "ztsnr" the zero-terminal-SNR schedule, as does a
 * scheduler config's rescale_betas_zero_snr or --zero-terminal-snr. */
static void prediction_markers(sd_engine *e, const sd_load_opts *o)
{
    if (e->pred == SD_PRED_AUTO && sdw_has_file_tensor(e->w, "v_pred")) e->pred = SD_PRED_V;
    e->zsnr = o->zero_snr > 0 || (o->zero_snr == 0 && (sdw_has_file_tensor(e->w, "ztsnr") || zsnr_from_scheduler(e->w)));
}

/* text.heads of an LDM config JSON (0 when absent). */
static int text_heads_from_ldm(const char *json, size_t len)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    int h = 0;
    if (root) {
        json_t *t = json_object_get(root, "text");
        if (json_is_integer(json_object_get(t, "heads"))) h = (int)json_integer_value(json_object_get(t, "heads"));
        json_decref(root);
    }
    return h;
}

/* AUTOMATIC1111's short model hash: sha256 of 64 KiB at offset 1 MiB, 8 hex.
 * Cheap at load; a diffusers folder gets the hash of its UNet file. */

static void model_hash(const sd_weights *w, char out[16])
{
    out[0] = 0;
    /* the file holding the UNet: the checkpoint itself, or a folder's unet/ file */
    const sdw_tensor *t = sdw_get(w, "unet.conv_in.weight");
    FILE *f = t && t->file ? fopen(t->file, "rb") : NULL;
    if (!f) return;
    unsigned char *chunk = sd_malloc(0x10000);
    size_t n = 0;
    if (chunk && fseek(f, 0x100000, SEEK_SET) == 0) n = fread(chunk, 1, 0x10000, f);
    if (chunk && n == 0 && fseek(f, 0, SEEK_SET) == 0) n = fread(chunk, 1, 0x10000, f);
    fclose(f);
    if (!chunk) return;
    unsigned char d[32];
    sd_sha256(chunk, n, d);
    free(chunk);
    for (int i = 0; i < 4; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

/* sd_model_info.name: the file or folder's base name, without the
 * .safetensors extension. */
static void model_name(const char *path, char *out, size_t size)
{
    const char *base = strrchr(path, '/');
    base = base && base[1] ? base + 1 : path;
    snprintf(out, size, "%s", base);
    size_t bl = strlen(out);
    while (bl > 1 && out[bl - 1] == '/') out[--bl] = 0;
    if (bl > 12 && !strcmp(out + bl - 12, ".safetensors")) out[bl - 12] = 0;
}

int sd_probe_model(const char *path, sd_model_probe *out, sd_err *err)
{
    memset(out, 0, sizeof *out);
    if (!path || !*path) return sd_errf(err, SD_EINVAL, "model", "no model path given");
    model_name(path, out->name, sizeof out->name);
    sd_weights *w = sdw_open_header(path, err);
    if (!w) {
        sd_err_prefix(err, "reading model %s", path);
        return -1;
    }
    /* the parts a checkpoint carries itself (the VAE may come from --vae):
     * without them no family is claimed, as a load would fail */
    const char *lacks = !sdw_get(w, "unet.conv_in.weight") ? "UNet (unet.conv_in.weight)"
                      : sdw_text_kind_of(w) == SDW_TEXT_NONE && sdw_text2_kind_of(w) == SDW_TEXT_NONE
                          ? "text encoder (text_encoder.* or text_encoder_2.*)" : NULL;
    if (lacks) {
        sd_errf(err, SD_EFORMAT, "model", "%s is not a whole checkpoint: it has no %s; a UNet, VAE or TAESD "
                "file alone is not a model", path, lacks);
        sdw_close(w);
        return -1;
    }
    sd_family f = sd_family_decide(w);
    const sd_family_desc *d = sd_family_info(f);
    snprintf(out->family, sizeof out->family, "%s", d->name);
    out->supported = d->supported;
    out->native_size = d->native_size;
    out->size = sdw_file_bytes(w);
    model_hash(w, out->hash);
    sdw_close(w);
    return 0;
}

int sd_precision_known(const char *name)
{
    return name && (!strcmp(name, "auto") || ops_precision_from_name(name) >= 0) ? 0 : -1;
}

/* ---- precision per layer (issue 19 item 2; docs/ACCURACY.md "Precision
 * per layer") ----
 * `auto` runs the UNet's layers of UNET_BF16_LAYERS (unet.h: the
 * feed-forward linears and attention projections of levels 1 and deeper) at plain bf16: over bf16x2 on CPUs with AMX, and over
 * fp32 on CPUs without AMX whose avx512_bf16 dot products NOAMX_BF16_RULE
 * says are worth it (a fixed per-CPU rule, measured once: bench/README.md
 * "Precision per layer").  Explicit precisions mean every layer. */
#define NOAMX_BF16_RULE 1   /* Zen 4, quiet sitting: 0.90x fp32's SD 1.5 512² CFG step (0.89-0.94) */
#define AUTO_AMX_NAME "bf16x2, bf16 " UNET_BF16_LAYERS_NAME ", VAE bf16"
#define AUTO_NOAMX_NAME "fp32, bf16 " UNET_BF16_LAYERS_NAME

/* 1 when `auto` runs the per-layer rule over fp32 on this CPU (no AMX). */
static int auto_rule_noamx(void)
{
    return NOAMX_BF16_RULE && !ops_cpu_amx() && ops_cpu_bf16() && __builtin_cpu_supports("avx512bf16");
}

const char *sd_precision_resolved(const char *name)
{
    int all = ops_precision_from_name(name);
    if (all < 0 && sd_precision_known(name)) return NULL;
    if (all < 0) all = ops_precision_from_name(getenv("SD_PRECISION"));
    if (all >= 0) return ops_precision_name(all);
    return ops_cpu_amx() ? AUTO_AMX_NAME : auto_rule_noamx() ? AUTO_NOAMX_NAME : "fp32";
}

/* sd_load_opts.vae_tiling: the VAE_TILING_* it names, -1 for none. */
static int vae_tiling_mode(const char *name)
{
    if (!name || !strcmp(name, "auto")) return VAE_TILING_AUTO;
    return !strcmp(name, "on") ? VAE_TILING_ON : !strcmp(name, "off") ? VAE_TILING_OFF : -1;
}

int sd_vae_tiling_known(const char *name) { return vae_tiling_mode(name) < 0 ? -1 : 0; }

/* Each model's precision (sd.h): a named one applies to all three; auto is
 * $SD_PRECISION when that names one, else, on a CPU with AMX, bf16x2 for the
 * text encoder and the UNet and bf16 for the VAE — it runs once per image,
 * so its rounding does not compound over the steps as the UNet's does
 * (docs/ACCURACY.md, "Precision") — and fp32 elsewhere; with the UNet's
 * per-layer rule where the CPU takes it (above). */
static int set_precision(sd_engine *e, const char *name, sd_err *err)
{
    int all = ops_precision_from_name(name);
    if (all < 0 && ops_precision_from_name(getenv("SD_PRECISION")) >= 0) all = ops_default_precision();   /* as the ops layer read it */
    int amx = ops_cpu_amx(), pt = all, pu = all, pv = all;
    if (all < 0) {
        pt = pu = amx ? OPS_BF16X2 : OPS_FP32;
        pv = amx ? OPS_BF16 : OPS_FP32;
    }
    if ((pt != OPS_FP32 || pu != OPS_FP32 || pv != OPS_FP32) && !ops_cpu_bf16())
        return sd_errf(err, SD_EINVAL, "precision",
                       "precision %s needs a CPU with AVX-512 (the compute library has no bf16 kernels below it, "
                       "or ONEDNN_MAX_CPU_ISA caps it lower); use --precision fp32",
                       ops_precision_name(pu != OPS_FP32 ? pu : pv));
    for (int i = 0; i < e->n_text; i++) clip_set_precision(e->text[i], pt);
    unet_set_precision(e->unet, pu);
    int rule = all < 0 && (amx || auto_rule_noamx());   /* auto: the per-layer rule (above) */
    if (unet_set_layer_rule(e->unet, rule ? UNET_BF16_LAYERS : "", err)) return -1;
    vae_set_precision(e->vae, pv);
    e->vae_prec = pv;
    if (e->taesd) taesd_set_precision(e->taesd, pv);
    if (rule) snprintf(e->precision, sizeof e->precision, "%s", amx ? AUTO_AMX_NAME : AUTO_NOAMX_NAME);
    else if (pu == pv) snprintf(e->precision, sizeof e->precision, "%s", ops_precision_name(pu));
    else snprintf(e->precision, sizeof e->precision, "%s, VAE %s", ops_precision_name(pu), ops_precision_name(pv));
    return 0;
}

/* Width of the context the text encoders make together (their outputs
 * join along the width). */
static int context_width(const sd_engine *e)
{
    int w = 0;
    for (int i = 0; i < e->n_text; i++) w += clip_width(e->text[i]);
    return w;
}

/* A1111's VAE hash: the first 10 hex digits of the whole file's sha256. */
static void file_hash10(const char *path, char out[16])
{
    out[0] = 0;
    FILE *f = path ? fopen(path, "rb") : NULL;
    unsigned char *buf = f ? sd_malloc(1 << 20) : NULL;
    if (buf) {
        sd_sha256_ctx c;
        sd_sha256_init(&c);
        size_t n;
        while ((n = fread(buf, 1, 1 << 20, f)) > 0) sd_sha256_update(&c, buf, n);
        unsigned char d[32];
        sd_sha256_final(&c, d);
        if (!ferror(f))
            for (int i = 0; i < 5; i++) sprintf(out + 2 * i, "%02x", d[i]);
    }
    free(buf);
    if (f) fclose(f);
}

/* The VAE: the checkpoint's, or the override's (--vae; docs/LOADING.md
 * "VAE override"), which must give the UNet's latent channels and takes
 * the model's scaling factor unless its own config names one. */
static int load_vae(sd_engine *e, const sd_load_opts *o, sd_err *err)
{
    if (!o->vae_path || !*o->vae_path) return (e->vae = vae_load(e->w, e->ops, err)) ? 0 : -1;
    sdw_drop_prefix(e->w, "vae.");   /* the checkpoint's own VAE is not used: its widened pages go back */
    e->vae_w = e->checker ? sdw_open_vae_header(o->vae_path, err) : sdw_open_vae(o->vae_path, err);
    if (!e->vae_w || !(e->vae = vae_load(e->vae_w, e->ops, err))) {
        if (strcmp(err->field, "vae")) snprintf(err->field, sizeof err->field, "vae");
        sd_err_prefix(err, "VAE override %s", o->vae_path);
        return -1;
    }
    int want = unet_get_info(e->unet)->out_channels;   /* an inpainting UNet takes more: mask, masked image */
    if (vae_latent_channels(e->vae) != want)
        return sd_errf(err, SD_EFORMAT, "vae", "VAE override %s has %d latent channels; the model's UNet takes %d",
                       o->vae_path, vae_latent_channels(e->vae), want);
    float s = vae_config_scaling(e->vae_w);
    if (!s) s = vae_config_scaling(e->w);
    if (!s) s = sd_family_info(e->family)->vae_scaling;   /* the model's family default (SDXL 0.13025) */
    vae_set_scaling_factor(e->vae, s);
    const char *base = strrchr(o->vae_path, '/');
    snprintf(e->vae_name, sizeof e->vae_name, "%s", base && base[1] ? base + 1 : o->vae_path);
    size_t bl = strlen(e->vae_name);
    while (bl > 1 && e->vae_name[bl - 1] == '/') e->vae_name[--bl] = 0;
    file_hash10(sdw_get(e->vae_w, "vae.decoder.conv_in.weight")->file, e->vae_hash);
    return 0;
}

/* The UNet's input channels beyond the latent: 0, 1 + C for an inpainting
 * family's UNet (mask, masked-image latents: inpaint.h), -1 when the UNet
 * and the VAE do not fit together. */
static int unet_extra_channels(const sd_engine *e)
{
    const unet_info *u = unet_get_info(e->unet);
    const int C = vae_latent_channels(e->vae), extra = u->in_channels - C;
    if (u->out_channels != C) return -1;
    return extra == 0 ? 0 : sd_family_info(e->family)->inpaint && extra == 1 + C ? extra : -1;
}

/* Refuse, before loading any part, a family this engine cannot run yet. */
static int check_family(sd_family f, const char *path, sd_err *err)
{
    const sd_family_desc *d = sd_family_info(f);
    if (d->supported) return 0;
    if (d->refiner)
        return sd_errf(err, SD_EFORMAT, "model", "%s is an SDXL refiner checkpoint (an sdxl-refiner: one text "
                       "tower, OpenCLIP-bigG, and a UNet whose added conditioning takes an aesthetic score); "
                       "this version runs SDXL base checkpoints, not the refiner", path);
    return sd_errf(err, SD_EFORMAT, "model", "%s is an %s checkpoint (%s%s%s); this version runs sd1, sd2 "
                   "and sdxl checkpoints and their inpainting ones", path, d->name, d->added_cond ? "its UNet takes added conditioning" : "",
                   d->added_cond && d->inpaint ? " and " : "",
                   d->inpaint ? "its UNet takes mask and masked-image channels" : "");
}

/* ---- SDXL: the second text encoder ------------------------------------- */

/* SDXL: the UNet's added vector begins with the pooled text, so its width
 * must be the second tower's projection width (a reshaped label_emb.0.0 /
 * add_embedding.linear_1 loads as a UNet of another pooled width). */
static int check_pooled_fit(sd_engine *e, const char *path, sd_err *err)
{
    const unet_info *ui = unet_get_info(e->unet);
    if (e->n_text < 2 || !ui->add_dim || ui->add_text_dim == clip_proj_dim(e->text[1])) return 0;
    return sd_errf(err, SD_EFORMAT, "unet.add_embedding.linear_1.weight",
                   "%s: parts do not fit together: the UNet's added conditioning (label_emb.0.0 / "
                   "add_embedding.linear_1, %d inputs) expects a %d-wide pooled text vector, the second text "
                   "encoder's projection gives %d", path, ui->add_dim, ui->add_text_dim, clip_proj_dim(e->text[1]));
}

/* SDXL's OpenCLIP-bigG tower (text_encoder_2.*) as e->text[1]: its heads
 * and activation from text_encoder_2/config.json or the LDM config's
 * "conditioner"[1] (clip_hints.component), its pooled output through its
 * text_projection.  Other families have one encoder: nothing to do. */
static int load_text2(sd_engine *e, sd_err *err)
{
    if (sd_family_info(e->family)->base != SD_FAMILY_SDXL) return 0;
    clip_hints h = {.component = "text_encoder_2"};
    if (!(e->text[1] = clip_load(e->w, &h, e->ops, err))) return -1;
    e->n_text = 2;
    if (clip_proj_dim(e->text[1]) <= 0)
        return sd_errf(err, SD_EFORMAT, "text_encoder_2.text_projection.weight", "%s: the second text encoder "
                       "has no text_projection (%s; SDXL's pooled text vector needs it)", sdw_path(e->w),
                       sdw_get_layout(e->w) == SDW_LAYOUT_SINGLE_FILE ? "conditioner.embedders.1.model.text_projection"
                                                                       : "text_encoder_2/: text_projection.weight");
    return 0;
}

struct sd_clip *sd_engine_clip_at(sd_engine *e, int i) { return i >= 0 && i < e->n_text ? e->text[i] : NULL; }

/* SD_EINVAL when e is a checker (sd_engine_open_checker), which runs nothing. */
static int refuse_checker(const sd_engine *e, sd_err *err)
{
    if (!e->checker) return 0;
    return sd_errf(err, SD_EINVAL, "model", "model %s was opened for validation only (no weights loaded): "
                   "it checks requests but cannot generate", e->name);
}

/* ---- LoRA: the model's weights by canonical name, and one request's set -- */

static ops_weight *engine_weight(void *ud, const char *name)
{
    sd_engine *e = ud;
    if (!strncmp(name, "unet.", 5)) return unet_weight(e->unet, name + 5);
    if (!strncmp(name, "text_encoder.", 13)) return clip_weight(e->text[0], name);
    if (!strncmp(name, "text_encoder_2.", 15) && e->n_text > 1) return clip_weight(e->text[1], name);
    return NULL;
}

/* The model's weights made base + p's LoRAs (fields, then prompt tags);
 * lr->prompt is the prompt without its tags. */
static int apply_loras(sd_engine *e, const sd_gen_params *p, lora_request *lr, sd_err *err)
{
    if (lora_request_parse(p, lr, err)) return -1;
    return lora_engine_apply(e->lora, lr, err);
}

int sd_engine_apply_loras(sd_engine *e, const sd_gen_params *p, sd_err *err)
{
    if (refuse_checker(e, err)) return -1;
    lora_request lr;
    ops_ctx_attach(e->ops);
    int rc = apply_loras(e, p, &lr, err);
    lora_request_clear(&lr);
    return rc;
}

int sd_list_loras(sd_engine *e, sd_lora_info *out, int max, sd_err *err)
{
    return lora_engine_list(e->lora, out, max, err);
}

void sd_engine_lora_stats(sd_engine *e, struct lora_stats *st) { lora_engine_stats(e->lora, st); }

int sd_loras_findable(const sd_gen_params *p, const char *dir, const char *label, sd_err *err)
{
    lora_request lr;
    int rc = lora_request_parse(p, &lr, err);
    char path[LORA_PATH_MAX];
    for (int i = 0; !rc && i < lr.n; i++) rc = lora_file_of(dir, label, lr.spec[i].name, path, sizeof path, NULL, err);
    lora_request_clear(&lr);
    return rc;
}

void sd_lora_hashes(sd_engine *e, const sd_gen_params *p, char *out, size_t size)
{
    lora_request lr;
    if (!size) return;
    out[0] = 0;
    if (!lora_request_parse(p, &lr, NULL)) lora_engine_hashes(e->lora, &lr, out, size);
    lora_request_clear(&lr);
}

/* --preview-decoder: the TAESD (not for a checker, which never decodes);
 * its latent channels must be the VAE's.  --vae-decoder taesd needs its decoder. */
static int load_preview_decoder(sd_engine *e, const sd_load_opts *o, sd_err *err)
{
    if (e->checker || !o->preview_decoder || !*o->preview_decoder) return 0;
    if (!(e->taesd = taesd_load(o->preview_decoder, e->ops, e->vae_prec, err))) return -1;
    if (!taesd_has_decoder(e->taesd))
        return sd_errf(err, SD_EFORMAT, "preview_decoder", "--preview-decoder %s holds only a TAESD encoder; give "
                       "the decoder file (taesd_decoder.safetensors)", o->preview_decoder);
    if (taesd_latent_channels(e->taesd) != vae_latent_channels(e->vae) || taesd_scale(e->taesd) != vae_scale(e->vae))
        return sd_errf(err, SD_EFORMAT, "preview_decoder", "--preview-decoder %s takes %d latent channels at 1/%d scale, "
                       "the model's latents have %d at 1/%d: a TAESD for another model family", o->preview_decoder,
                       taesd_latent_channels(e->taesd), taesd_scale(e->taesd), vae_latent_channels(e->vae),
                       vae_scale(e->vae));
    e->taesd_final = o->vae_decoder && !strcmp(o->vae_decoder, "taesd");
    return 0;
}

/* sd_engine_load, or with checker = 1 sd_engine_open_checker: the same
 * steps on the checkpoint's headers (sdw_open_header), so every fact the
 * checks read (family, text encoder layers and widths, the UNet's and the
 * towers' weight names for LoRA, the tokenizer, embeddings) comes from the
 * same code; the models' handles are shape-only and nothing is reserved. */
static sd_engine *engine_open(const sd_load_opts *o, int checker, sd_err *err)
{
    if (!o || !o->model_path || !*o->model_path) {
        sd_errf(err, SD_EINVAL, "model", "no model given (--model)");
        return NULL;
    }
    if (o->precision && sd_precision_known(o->precision)) {
        sd_errf(err, SD_EINVAL, "precision", "precision must be auto, fp32, bf16x2 or bf16; got '%.40s'", o->precision);
        return NULL;
    }
    if (o->vae_decoder && sd_vae_decoder_known(o->vae_decoder)) {
        sd_errf(err, SD_EINVAL, "vae_decoder", "vae decoder must be vae or taesd; got '%.40s'", o->vae_decoder);
        return NULL;
    }
    if (o->vae_decoder && !strcmp(o->vae_decoder, "taesd") && !(o->preview_decoder && *o->preview_decoder)) {
        sd_errf(err, SD_EINVAL, "vae_decoder", "--vae-decoder taesd needs a TAESD file (--preview-decoder)");
        return NULL;
    }
    if (o->vae_tiling && sd_vae_tiling_known(o->vae_tiling)) {
        sd_errf(err, SD_EINVAL, "vae_tiling", "vae tiling must be auto, on or off; got '%.40s'", o->vae_tiling);
        return NULL;
    }
    sd_engine *e = sd_calloc(1, sizeof *e);
    if (!e || !(e->ops = ops_ctx_new(o->threads))) {
        free(e);
        sd_errf(err, SD_ENOMEM, "model", "out of memory");
        return NULL;
    }
    char *cfg = NULL;
    size_t cfg_len = 0;

    e->checker = checker;
    e->w = checker ? sdw_open_header(o->model_path, err) : sdw_open(o->model_path, err);
    if (!e->w) goto fail;
    e->family = sd_family_decide(e->w);
    if (check_family(e->family, o->model_path, err)) goto fail;

    if (o->config_path && *o->config_path) {
        if (!(cfg = read_text_file(o->config_path, &cfg_len, err))) goto fail;
    } else {
        cfg = sdw_ldm_config(e->w, &cfg_len);
    }

    /* text encoders (the one the SD1/SD2 families have) */
    clip_hints ch = {0};
    if (cfg) ch.heads = text_heads_from_ldm(cfg, cfg_len);
    if (!(e->text[0] = clip_load(e->w, &ch, e->ops, err))) goto fail;
    e->n_text = 1;
    e->clip_skip = o->clip_skip;
    if (load_text2(e, err)) goto fail;

    /* UNet */
    unet_hints uh;
    if (o->config_path && *o->config_path) {
        if (unet_hints_from_ldm_config(cfg, cfg_len, &uh, err)) goto fail;
    } else if (unet_hints_from_weights(e->w, &uh, err)) goto fail;
    if (!(e->unet = unet_load(e->w, &uh, e->ops, err))) goto fail;
    /* sized once for the longest prompt and negative allowed, not grown by one */
    unet_plan_context(e->unet, SD_MAX_PROMPT_WINDOWS * TOK_WINDOW);
    for (int i = 0; i < e->n_text && !checker; i++)
        if (clip_reserve(e->text[i], 2 * SD_MAX_PROMPT_WINDOWS, err)) goto fail;

    /* VAE */
    if (load_vae(e, o, err)) goto fail;
    vae_set_tiling(e->vae, vae_tiling_mode(o->vae_tiling), 0);
    if (set_precision(e, o->precision, err)) goto fail;
    if (unet_extra_channels(e) < 0 || unet_get_info(e->unet)->context_dim != context_width(e)) {
        sd_errf(err, SD_EFORMAT, "model",
                "%s: parts do not fit together: UNet takes %d latent channels and %d-wide text, "
                "VAE gives %d channels, text encoder %d wide", o->model_path,
                unet_get_info(e->unet)->in_channels, unet_get_info(e->unet)->context_dim,
                vae_latent_channels(e->vae), context_width(e));
        goto fail;
    }
    if (check_pooled_fit(e, o->model_path, err)) goto fail;
    if (load_preview_decoder(e, o, err)) goto fail;

    /* prediction type: flag, diffusers scheduler config, LDM config, epsilon */
    e->pred = o->prediction;
    if (e->pred == SD_PRED_AUTO) {
        size_t n;
        char *sc = sdw_folder_file(e->w, "scheduler/scheduler_config.json", &n);
        if (sc) e->pred = prediction_from_json(sc, n, "prediction_type");
        free(sc);
    }
    if (e->pred == SD_PRED_AUTO && cfg) e->pred = prediction_from_json(cfg, cfg_len, "parameterization");
    prediction_markers(e, o);
    if (e->pred == SD_PRED_AUTO) e->pred = SD_PRED_EPS;

    /* tokenizer */
    if (!(e->tok = tok_find(o->model_path, o->vocab_path, o->data_dir, err))) goto fail;
    const sdw_tensor *emb = sdw_get(e->w, "text_encoder.text_model.embeddings.token_embedding.weight");
    if (emb && tok_vocab_size(e->tok) > emb->shape[0]) {
        sd_errf(err, SD_EFORMAT, "vocab",
                "the vocabulary has %d ids but the text encoder's token embedding has only %lld rows: "
                "wrong vocabulary for this model; give its own with --vocab (or put it in a tokenizer/ "
                "folder beside the model)", tok_vocab_size(e->tok), (long long)emb->shape[0]);
        goto fail;
    }
    if (o->embeddings_dir && *o->embeddings_dir &&
        emb_dir_load2(o->embeddings_dir, e->tok, clip_width(e->text[0]), e->n_text > 1 ? clip_width(e->text[1]) : 0,
                      &e->emb, err))
        goto fail;

    for (size_t i = 0; i < sdw_count(e->w); i++) e->params += sdw_numel(sdw_at(e->w, i));
    for (size_t i = 0; e->vae_w && i < sdw_count(e->vae_w); i++) e->params += sdw_numel(sdw_at(e->vae_w, i));
    model_hash(e->w, e->hash);
    model_name(o->model_path, e->name, sizeof e->name);
    if (!(e->lora = lora_engine_new(e->w, o->lora_dir, o->lora_dir_label, engine_weight, e, err))) goto fail;
    if (checker) lora_engine_limit_cache(e->lora, CHECKER_LORA_FILES, CHECKER_LORA_BYTES);
    free(cfg);
    return e;
fail:
    sd_err_prefix(err, "%s model %s", checker ? "opening (for validation)" : "loading", o->model_path);
    free(cfg);
    sd_engine_free(e);
    return NULL;
}

sd_engine *sd_engine_load(const sd_load_opts *o, sd_err *err) { return engine_open(o, 0, err); }

sd_engine *sd_engine_open_checker(const sd_load_opts *o, sd_err *err) { return engine_open(o, 1, err); }

int sd_engine_is_checker(const sd_engine *e) { return e && e->checker; }

void sd_engine_free(sd_engine *e)
{
    if (!e) return;
    lora_engine_free(e->lora);
    tok_free(e->tok);
    emb_set_free(&e->emb);
    for (int i = 0; i < e->n_text; i++) clip_free(e->text[i]);
    unet_free(e->unet);
    vae_free(e->vae);
    taesd_free(e->taesd);
    ops_ctx_free(e->ops);
    sdw_close(e->w);
    sdw_close(e->vae_w);
    free(e);
}

int sd_engine_embedding(const sd_engine *e, int i, sd_embedding_info *out)
{
    if (i < 0 || i >= e->emb.n) return -1;
    const sd_embedding *m = &e->emb.v[i];
    *out = (sd_embedding_info){m->name, m->n, m->width, m->error == NULL, m->error};
    return 0;
}

void sd_engine_info(const sd_engine *e, sd_model_info *out)
{
    memset(out, 0, sizeof *out);
    out->family = sd_family_info(e->family)->name;
    out->prediction = e->pred == SD_PRED_V ? "v_prediction" : "epsilon";
    out->zero_snr = e->zsnr;
    out->latent_channels = vae_latent_channels(e->vae);
    out->vae_scale = vae_scale(e->vae);
    out->params = e->params;
    memcpy(out->hash, e->hash, sizeof out->hash);
    out->name = e->name;
    out->precision = e->precision;
    out->vae_name = e->vae_w ? e->vae_name : NULL;
    out->vae_hash = e->vae_w ? e->vae_hash : NULL;
    out->vae_decoder = e->taesd_final ? "TAESD" : NULL;
    out->native_size = sd_family_info(e->family)->native_size;
}

void sd_image_free(sd_image *img)
{
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
}

void sd_latent_size(const sd_engine *e, int width, int height, int *lat_w, int *lat_h)
{
    int s = vae_scale(e->vae);
    *lat_w = (width + s - 1) / s;
    *lat_h = (height + s - 1) / s;
}

int sd_prompt_windows(const sd_engine *e, const char *text, int *windows, size_t *tokens, sd_err *err)
{
    /* A1111's chunks of the text as written (a1111.h): a BREAK closes a
     * chunk, a full one moves its words after a comma to the next */
    a1111_parsed parsed = {0};
    a1111_chunks ch = {0};
    if (a1111_parse(text ? text : "", "prompt", &parsed, err) ||
        a1111_chunk_emb(e->tok, &e->emb, &parsed, "prompt", INT_MAX, &ch, err)) {
        a1111_parsed_free(&parsed);
        return -1;
    }
    *windows = ch.n_chunks;
    if (tokens) *tokens = (size_t)ch.token_count;
    a1111_parsed_free(&parsed);
    a1111_chunks_free(&ch);
    return 0;
}

/* Both texts planned for a run of `steps` (a1111_plan_build): the AND and
 * weight refusals, the schedule, each distinct text tokenized and chunked
 * once within SD_MAX_PROMPT_WINDOWS; plan[0] negative, plan[1] prompt. */
static int plan_texts(const sd_engine *e, const char *prompt, const char *negative, int steps, a1111_plan plan[2],
                      sd_err *err)
{
    const char *text[2] = {negative, prompt}, *field[2] = {"negative", "prompt"};
    memset(plan, 0, 2 * sizeof *plan);
    for (int k = 1; k >= 0; k--)   /* the prompt's error first, as before */
        if (a1111_plan_build_emb(e->tok, &e->emb, text[k], steps < 1 ? 1 : steps, field[k], SD_MAX_PROMPT_WINDOWS,
                                 &plan[k], err)) {
            a1111_plan_free(&plan[0]);
            a1111_plan_free(&plan[1]);
            return -1;
        }
    return 0;
}

int sd_check_prompts(const sd_engine *e, const char *prompt, const char *negative, int steps, sd_err *err)
{
    a1111_plan plan[2];
    if (plan_texts(e, prompt, negative, steps, plan, err)) return -1;
    a1111_plan_free(&plan[0]);
    a1111_plan_free(&plan[1]);
    return 0;
}

/* The text encoder layer from the end (clip_encode's skip) for a request's
 * clip_skip: SD1 takes it, 0 = the load option; SD2 keeps its own
 * (penultimate), as AUTOMATIC1111 does, and so does any text encoder whose
 * own default is not the last layer (an OpenCLIP-style one), so that a
 * request's default of 1 never changes such a model's pictures. */
static int text_skip(const sd_engine *e, int clip_skip)
{
    int fixed = e->family == SD_FAMILY_SD2 || e->family == SD_FAMILY_SD2_INPAINT ||
                sd_family_info(e->family)->base == SD_FAMILY_SDXL ||   /* SDXL: hidden_states[-2], always */
                clip_default_skip(e->text[0]) != 1;
    return fixed || clip_skip <= 0 ? e->clip_skip : clip_skip;
}

int sd_check_request(const sd_engine *e, const sd_gen_params *p, sd_err *err)
{
    lora_request lr;   /* the prompt's LoRA tags are not text: counted without them */
    if (lora_request_parse(p, &lr, err)) { lora_request_clear(&lr); return -1; }
    /* the mask once the init image's pixels are there (the server runs this
     * check before it decodes the images; sd_generate checks again) */
    int rc = p->init_rgb ? inpaint_check(p, err) : 0;
    if (!rc) rc = sd_check_prompts(e, lr.prompt, p->negative, p->steps, err);
    int skip = text_skip(e, p->clip_skip), layers = clip_layers(e->text[0]);
    if (!rc && skip > layers)
        rc = sd_errf(err, SD_EINVAL, "clip_skip", "clip_skip %d is larger than the %d layers of this model's text "
                     "encoder", skip, layers);
    if (!rc) rc = lora_engine_check(e->lora, &lr, err);
    lora_request_clear(&lr);
    return rc;
}

/* SD_ENOMEM if an op ran out of memory since the last look (ops.h): the
 * one check per model call that turns the ops layer's fault into a 503. */
static int ops_fault_err(sd_engine *e, sd_err *err)
{
    if (!ops_take_fault(e->ops)) return 0;
    return sd_errf(err, SD_ENOMEM, "", "out of memory in the engine's kernels (try fewer images or a smaller size)");
}

/* A run's text conditioning: both texts planned and every distinct text
 * encoded once (a1111_conds_encode); freed with text_run_close. */
typedef struct text_run {
    a1111_plan plan[2];
    a1111_conds conds;
} text_run;

static void text_run_close(text_run *r)
{
    a1111_conds_free(&r->conds);
    a1111_plan_free(&r->plan[0]);
    a1111_plan_free(&r->plan[1]);
}

static int text_run_open(sd_engine *e, const sd_gen_params *p, text_run *r, sd_err *err)
{
    memset(r, 0, sizeof *r);
    if (refuse_checker(e, err)) return -1;
    if (plan_texts(e, p->prompt, p->negative, p->steps, r->plan, err)) return -1;
    /* SDXL: an empty negative prompt is zeros, context and pooled (a1111.h) */
    int zero_neg = sd_family_info(e->family)->base == SD_FAMILY_SDXL && (!p->negative || !*p->negative);
    if (a1111_conds_encode_multi(e->text, e->n_text, e->tok, e->family, text_skip(e, p->clip_skip),
                                 2 * SD_MAX_PROMPT_WINDOWS, zero_neg, &r->plan[0], &r->plan[1], &r->conds, err) ||
        ops_fault_err(e, err)) {
        text_run_close(r);
        return -1;
    }
    /* SDXL: the towers' weight copies (3.3 GB at fp32) go back while the UNet
     * and the VAE run; the next encode re-derives them from the file mapping
     * (docs/ARCHITECTURE.md "Weights") */
    if (sd_family_info(e->family)->base == SD_FAMILY_SDXL)
        for (int i = 0; i < e->n_text; i++) clip_release_weights(e->text[i]);
    return 0;
}

int sd_encode_text(sd_engine *e, const sd_gen_params *p, float **ctx_out, int *T_out, int *W_out, sd_err *err)
{
    return sd_encode_text_pooled(e, p, ctx_out, T_out, W_out, NULL, NULL, err);
}

int sd_encode_text_pooled(sd_engine *e, const sd_gen_params *p, float **ctx_out, int *T_out, int *W_out,
                          float **pooled_out, int *P_out, sd_err *err)
{
    ops_ctx_attach(e->ops);
    ops_take_fault(e->ops);   /* a fault left from before is not this request's */
    text_run r;
    if (text_run_open(e, p, &r, err)) return -1;
    int W = r.conds.W, P = r.conds.P, key = -1;
    float *ctx = sd_malloc(sizeof(float) * 2 * (size_t)r.conds.max_chunks * TOK_WINDOW * W);
    float *pooled = pooled_out && P ? sd_malloc(sizeof(float) * 2 * (size_t)P) : NULL;
    if (!ctx || (pooled_out && P && !pooled)) {
        free(ctx);
        free(pooled);
        text_run_close(&r);
        return sd_errf(err, SD_ENOMEM, "prompt", "out of memory");
    }
    *T_out = a1111_conds_rows(&r.conds, 0, 1, A1111_ROWS_NEGATIVE_FIRST, ctx, &key);   /* the texts of the first call */
    if (pooled) a1111_conds_pooled(&r.conds, 0, 1, A1111_ROWS_NEGATIVE_FIRST, pooled);
    *ctx_out = ctx;
    *W_out = W;
    if (pooled_out) *pooled_out = pooled;
    if (P_out) *P_out = P;
    text_run_close(&r);
    return 0;
}

/* ---- the sampler's model callback: UNet on [uncond; cond] + CFG ---------- */

typedef struct guided {
    sd_engine *e;
    int B, C, h, w, T;
    float cfg;
    int uncond;          /* 0 when cfg <= 1: the negative rows are not needed */
    unet_cond cond;      /* ctx [rows, T, W] in g->order (guided_context) */
    float *x2, *t2, *o2; /* [rows][per] */
    const a1111_conds *text;   /* the run's encoded texts */
    float *ctx;                /* [rows][77 * text->max_chunks][W] */
    int ctx_key;               /* a1111_conds_rows' memory of the texts in ctx; -1 = none yet */
    int order;                 /* A1111_ROWS_*: which rows ctx holds, in which order */
    /* k-diffusion runs: A1111's default pad_cond_uncond off (guided_rows) */
    int own;                   /* 1: each side at its own length, not padded */
    int own_T[2];              /* the sides' lengths in row order (own_T[1] 0: one side) */
    int split;                 /* 1: the sides differ in length: two UNet calls */
    /* SDXL: the UNet's added vector (guided_vec), one row beside each context row */
    float *vec;                /* [rows][vec_dim], NULL = a UNet without add-embedding */
    float *pooled;             /* [rows][text->P]: a1111_conds_pooled's rows */
    int vec_dim;               /* unet_info.add_dim = text->P + 6 */
    float time_ids[6];         /* [orig_h, orig_w, crop_top, crop_left, target_h, target_w] */
    /* inpainting (inpaint.h): the UNet's extra input rows, A1111's blend */
    const float *concat;       /* [rows][concat_ch][h][w] in row order, NULL = none */
    int concat_ch;
    const inpaint_run *inp;    /* k-diffusion runs with a mask: denoised blended with init_latent */
    preview_run *pv;           /* live previews (preview.h) */
} guided;

/* The context rows for model call `call` and their length: padded to one
 * length (diffusers-semantics samplers), or each side at its own (g->own,
 * the k-diffusion runs: sets own_T and split).  Returns g->cond's T. */
static int guided_rows(guided *g, int call)
{
    if (!g->own) return a1111_conds_rows(g->text, call, g->B, g->order, g->ctx, &g->ctx_key);
    g->split = a1111_conds_rows_own(g->text, call, g->B, g->order, g->ctx, &g->ctx_key, g->own_T);
    return g->own_T[0];
}

/* The one choice of the UNet's text context for model call `call`: the
 * texts of the prompt's and the negative's schedules in effect then
 * (prompt editing, alternation), padded to one length or each at its own
 * (guided_rows); rows rewritten only when they change.  Any sampling
 * path's model callback calls this. */
/* SDXL's added vector for model call `call`, in the rows and order of the
 * context rows: each side's pooled text in effect then (prompt editing
 * changes it too), then the same 6 time ids on every row (diffusers: the
 * negative rows take the prompt's). */
static void guided_vec(guided *g, int call)
{
    const int rows = g->uncond ? 2 * g->B : g->B, P = g->text->P;
    a1111_conds_pooled(g->text, call, g->B, g->order, g->pooled);
    for (int r = 0; r < rows; r++) {
        float *v = g->vec + (size_t)r * g->vec_dim;
        memcpy(v, g->pooled + (size_t)r * P, sizeof(float) * P);
        memcpy(v + P, g->time_ids, sizeof g->time_ids);
    }
    g->cond.vec = g->vec;
    g->cond.vec_dim = g->vec_dim;
}

static void guided_context(guided *g, int call)
{
    g->cond = unet_cond_text(g->ctx, guided_rows(g, call));
    g->cond.ctx_dim = g->text->W;
    if (g->vec) guided_vec(g, call);
    g->cond.concat = g->concat;
    g->cond.concat_channels = g->concat ? g->concat_ch : 0;
}

/* The added vector's buffers and time ids when the UNet has an
 * add-embedding (SDXL): the request's size conditioning, 0 = diffusers'
 * defaults (original = target = the size asked, W x H, as A1111 sends
 * p.width/p.height; crops 0). */
static int guided_vec_open(guided *g, const sd_gen_params *p, int W, int H, sd_err *err)
{
    const unet_info *in = unet_get_info(g->e->unet);
    if (!in->add_dim) return 0;
    if (in->add_text_dim != g->text->P)
        return sd_errf(err, SD_EFORMAT, "model", "the UNet's add-embedding takes %d pooled text features; "
                       "the text encoders give %d", in->add_text_dim, g->text->P);
    const int rows = g->uncond ? 2 * g->B : g->B;
    g->vec_dim = in->add_dim;
    g->vec = sd_malloc(sizeof(float) * rows * g->vec_dim);
    g->pooled = sd_malloc(sizeof(float) * rows * (g->text->P ? g->text->P : 1));
    if (!g->vec || !g->pooled) return sd_errf(err, SD_ENOMEM, NULL, "out of memory");
    const float ids[6] = {
        (float)(p->orig_height ? p->orig_height : H), (float)(p->orig_width ? p->orig_width : W),
        (float)p->crop_top, (float)p->crop_left,
        (float)(p->target_height ? p->target_height : H), (float)(p->target_width ? p->target_width : W),
    };
    memcpy(g->time_ids, ids, sizeof ids);
    return 0;
}

static int guided_model(void *ud, const float *x_in, float t, int call, float *out, sd_err *err)
{
    guided *g = ud;
    guided_context(g, call);
    size_t per = (size_t)g->C * g->h * g->w;
    int rows = g->uncond ? 2 * g->B : g->B;
    for (int r = 0; r < rows; r++) {
        memcpy(g->x2 + r * per, x_in + (r % g->B) * per, sizeof(float) * per);
        g->t2[r] = t;
    }
    if (unet_forward(g->e->unet, g->x2, g->t2, &g->cond, rows, g->h, g->w, g->o2, err) || ops_fault_err(g->e, err)) return -1;
    if (!g->uncond) {
        memcpy(out, g->o2, sizeof(float) * per * g->B);
        return 0;
    }
    const float *u = g->o2, *c = g->o2 + per * g->B;
    for (size_t i = 0; i < per * g->B; i++) out[i] = u[i] + g->cfg * (c[i] - u[i]);
    return 0;
}

/* ---- A1111's k-diffusion runs (sd_gen_params.ksampler) ------------------ */

/* kd_unet_fn over the same rows, in A1111's order [prompt x B][negative x B]
 * (g->order), each side at its own length (kd_guided_unet).  A v-prediction UNet's
 * output is turned into the eps CompVisDenoiser expects: with x_in = x*c_in,
 * eps = c_in*v + sigma*c_in*x_in, which gives CompVisVDenoiser's
 * denoised = x/(sigma^2+1) - v*sigma*c_in. */
typedef struct kd_guided {
    guided *g;
    kd_cfg cfg;
    float sigma;         /* of the call in progress (kd_guided_denoise) */
} kd_guided;

/* A1111's default, pad_cond_uncond off (CFGDenoiser.forward): prompt and
 * negative of the same length are one batched call on g->cond; of
 * different lengths (75-token chunk counts; g->split) two calls, the
 * prompt rows then the negative rows, each with its own context length
 * (and its rows of any other per-row conditioning g->cond carries);
 * without guidance the prompt rows alone at their own length.  Never more
 * rows or tokens per call than the padded batch: the UNet's workspace does
 * not grow. */
static int kd_unet_calls(guided *g, const float *x_in, int rows, float *eps, sd_err *err)
{
    const size_t per = (size_t)g->C * g->h * g->w;
    const int first = g->split ? g->B : rows;
    unet_cond c = g->cond;
    for (int r = 0, n = first; r < rows; r += n, n = rows - first) {
        if (r) {   /* the second side's rows */
            c.ctx += (size_t)first * c.T * c.ctx_dim;
            c.T = g->own_T[1];
            if (c.vec) c.vec += (size_t)first * c.vec_dim;
            if (c.concat) c.concat += (size_t)first * c.concat_channels * g->h * g->w;
        }
        if (unet_forward(g->e->unet, x_in + r * per, g->t2 + r, &c, n, g->h, g->w, eps + r * per, err) ||
            ops_fault_err(g->e, err))
            return -1;
    }
    return 0;
}

static int kd_guided_unet(void *ud, const float *x_in, int rows, float t, int call, float *eps, sd_err *err)
{
    kd_guided *k = ud;
    guided *g = k->g;
    for (int r = 0; r < rows; r++) g->t2[r] = t;
    guided_context(g, call);
    if (kd_unet_calls(g, x_in, rows, eps, err)) return -1;
    if (g->e->pred == SD_PRED_V) {
        const float c_in = 1.0f / sqrtf(k->sigma * k->sigma + 1.0f), s_in = k->sigma * c_in;
        for (size_t i = 0; i < (size_t)rows * g->C * g->h * g->w; i++) eps[i] = c_in * eps[i] + s_in * x_in[i];
    }
    return 0;
}

static int kd_guided_denoise(void *ud, const float *x, float sigma, int call, float *denoised, sd_err *err)
{
    kd_guided *k = ud;
    k->sigma = sigma;
    if (kd_cfg_denoise(&k->cfg, x, sigma, call, denoised, err)) return -1;
    inpaint_kd_blend(k->g->inp, denoised);   /* A1111: after CFG, before the sampler's update */
    return 0;
}

/* The model's sigma table: the checkpoint's own alphas_cumprod when it
 * stores one (loader: "scheduler.alphas_cumprod"), else the LDM one. */
static int kd_model_of(const sd_engine *e, kd_model *m, sd_err *err)
{
    const sdw_tensor *t = sdw_get(e->w, "scheduler.alphas_cumprod");
    if (!t && e->zsnr) {
        float ldm[SD_TRAIN_STEPS];
        kd_model_init_ldm(m, ldm);
        return kd_model_init_zsnr(m, ldm, SD_TRAIN_STEPS, err);
    }
    if (!t) { kd_model_init_ldm(m, NULL); return 0; }
    int64_t n = sdw_numel(t);
    int nn = n > KD_TABLE_MAX ? KD_TABLE_MAX + 1 : (int)n;
    if (e->zsnr ? kd_model_init_zsnr(m, t->data, nn, err) : kd_model_init_table(m, t->data, nn, err))
        return sd_errf(err, SD_EFORMAT, "model", "the checkpoint's alphas_cumprod (%lld values) is not a noise "
                       "schedule (2..%d values in (0, 1), decreasing)", (long long)n, KD_TABLE_MAX);
    return 0;
}

/* Samples x (out: the final SD-space latent) the A1111 way.  txt2img: x =
 * draw0 * sigma0; img2img (init = the init latent): x = init + draw0 *
 * sigma[first] and the last t_enc + 1 steps (kd_img2img_first).  Every
 * later draw of the image's stream goes to the sampler (kdiff.h). */
static int kd_generate(guided *g, const sd_gen_params *p, const float *init, sd_noise_src *ns, float *noise,
                       float *x, sd_err *err)
{
    const size_t n = (size_t)g->B * g->C * g->h * g->w;
    const int rows = g->uncond ? 2 * g->B : g->B;
    kd_model *m = sd_malloc(sizeof *m);
    float *sig = sd_malloc(sizeof(float) * (KD_MAX_STEPS + 1));
    float *work = sd_malloc(sizeof(float) * 2 * rows * (n / g->B));
    int rc = -1;
    if (!m || !sig || !work) { sd_errf(err, SD_ENOMEM, NULL, "out of memory"); goto out; }
    const kd_sampler s = (kd_sampler)(p->ksampler - 1);
    if (kd_model_of(g->e, m, err) ||
        kd_sigmas(m, s, (kd_schedule)(sd_requested_schedule(p) - 1), p->steps, sig, err)) goto out;
    int first = init ? kd_img2img_first(p->steps, p->strength) : 0;
    sd_noise_next(ns, g->B, n / g->B, noise);
    if (init)
        for (size_t i = 0; i < n; i++) x[i] = init[i] + noise[i] * sig[first];
    else
        kd_start(sig, noise, x, n);
    kd_guided k = {.g = g, .cfg = {.unet = kd_guided_unet, .model = m, .cfg = g->uncond ? g->cfg : 1.0f,
                                   .batch = g->B, .per_image = n / g->B, .work = work}};
    k.cfg.ud = &k;
    kd_sample_req r = {
        .sampler = s, .sigmas = sig + first, .steps = p->steps - first, .batch = g->B, .per_image = n / g->B,
        .denoise = kd_guided_denoise, .denoise_ud = &k, .noise = ns,
        .progress = p->progress, .progress_ud = p->progress_ud,
        .on_denoised = preview_hook(g->pv), .on_denoised_ud = g->pv,
    };
    rc = kd_sample(&r, x, err);
    if (!rc) inpaint_kd_blend(g->inp, x);    /* A1111 blends the samples once more */
out:
    free(m); free(sig); free(work);
    return rc;
}

/* The diffusers-semantics samplers' timestep spacing: the request's, else
 * the checkpoint's scheduler config ("timestep_spacing"), else leading. */
static sd_spacing spacing_of(const sd_engine *e, sd_timestep_spacing asked)
{
    if (asked == SD_TSPACING_LINSPACE) return SD_SPACING_LINSPACE;
    if (asked == SD_TSPACING_TRAILING) return SD_SPACING_TRAILING;
    if (asked == SD_TSPACING_LEADING) return SD_SPACING_LEADING;
    size_t len;
    char *sc = sdw_folder_file(e->w, "scheduler/scheduler_config.json", &len);
    json_t *root = sc ? json_loadb(sc, len, 0, NULL) : NULL;
    const char *v = json_string_value(json_object_get(root, "timestep_spacing"));
    sd_spacing sp = v && !strcmp(v, "linspace") ? SD_SPACING_LINSPACE
                  : v && !strcmp(v, "trailing") ? SD_SPACING_TRAILING : SD_SPACING_LEADING;
    json_decref(root);
    free(sc);
    return sp;
}

/* The engine's own limits, named as the engine names them (sd_gen_params'
 * members); a dialect maps them to its field names (jobs/request.h). */
static int check_params(const sd_gen_params *p, sd_err *err)
{
    if (!p->prompt) return sd_errf(err, SD_EINVAL, "prompt", "prompt is required");
    if (p->n < 1 || p->n > 64) return sd_errf(err, SD_EINVAL, "n", "the number of images must be 1..64, got %d", p->n);
    if (p->steps < 1 || p->steps > SD_MAX_STEPS) return sd_errf(err, SD_EINVAL, "steps", "steps must be 1..%d, got %d", SD_MAX_STEPS, p->steps);
    if (!(p->cfg > 0 && p->cfg <= 100)) return sd_errf(err, SD_EINVAL, "cfg", "the guidance scale must be in (0, 100], got %g", p->cfg);
    if ((unsigned)p->sampler >= SD_SAMPLER_COUNT) return sd_errf(err, SD_EINVAL, "sampler", "unknown sampler %d", (int)p->sampler);
    if (p->init_rgb) {
        if (p->init_width < 1 || p->init_height < 1 || p->init_width > 4096 || p->init_height > 4096)
            return sd_errf(err, SD_EINVAL, "init_image", "init image must be 1..4096 pixels on a side, got %dx%d", p->init_width, p->init_height);
        if (!(p->strength > 0 && p->strength <= 1)) return sd_errf(err, SD_EINVAL, "strength", "strength must be in (0, 1], got %g", p->strength);
        return inpaint_check(p, err);
    } else if (p->width < 1 || p->height < 1 || p->width > 4096 || p->height > 4096) {
        return sd_errf(err, SD_EINVAL, p->width < 1 || p->width > 4096 ? "width" : "height",
                       "width and height must be 1..4096, got %dx%d", p->width, p->height);
    }
    return inpaint_check(p, err);
}

/* -1 + err when v[0..n) holds a NaN or an infinity: `what` (the sampled
 * latents, the decoded image) overflowed somewhere in the model, and its
 * 8-bit picture would be black, which is said instead of sent (A1111
 * raises its NansException where this is).  The prompt's weights that
 * overflow are refused before (a1111_emphasis); what is left is the
 * model's own numbers: a checkpoint or LoRA holding inf/NaN, or values
 * beyond a 16-bit float's range in its arithmetic. */
static int check_finite(const float *v, size_t n, const char *what, int image, sd_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return sd_errf(err, SD_EINTERNAL, "", "%s of image %d are not finite (NaN or infinity: a numeric overflow "
                           "in the model, its weights or a LoRA's); the picture would be black.  A checkpoint known to "
                           "work, another --precision, or a lower LoRA weight may avoid it", what, image + 1);
    return 0;
}

/* [-1, 1] -> 8 bits, rounded; A1111's k-diffusion runs truncate as A1111 does. */
static uint8_t to_u8(float v, int a1111)
{
    if (a1111) return kd_u8_a1111(v);
    float f = v / 2.0f + 0.5f;
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    return (uint8_t)lrintf(f * 255.0f);
}

/* The init image -> [-1,1] NCHW img[3][PH][PW], padded right/bottom to a
 * multiple of the VAE factor by edge repeat. */
static void init_pixels(const sd_gen_params *p, int PH, int PW, float *img)
{
    const int w = p->init_width, h = p->init_height;
    for (int c = 0; c < 3; c++)
        for (int yy = 0; yy < PH; yy++)
            for (int xx = 0; xx < PW; xx++) {
                int sy = yy < h ? yy : h - 1, sx = xx < w ? xx : w - 1;
                img[((size_t)c * PH + yy) * PW + xx] = p->init_rgb[((size_t)sy * w + sx) * 3 + c] / 127.5f - 1.0f;
            }
}

/* ---- inpainting (inpaint.h; docs/INPAINTING.md "Engine") ---------------- */

/* The start of an inpainting run: a mask, or a 9-channel UNet (all-ones
 * mask; a zero image for txt2img).  diffusers: the draws and the start
 * latent into x (the sampler runs next, with inpaint_after_step for a
 * 4-channel UNet); k-diffusion: the whole A1111 run into x.  init_lat
 * (hires fix's latent pass 2): img2img from that latent, with a
 * txt2img's conditioning (all-ones mask, zero image) at its size, as
 * A1111's sample_hr_pass (txt2img_image_conditioning(samples)). */
static int start_inpaint(sd_engine *e, guided *g, const sd_gen_params *p, sd_sched *sch, sd_noise_src *ns,
                         inpaint_run *ip, float *img, int PH, int PW, const float *init_lat, float *noise,
                         float *x, sd_err *err)
{
    const int kd = p->ksampler != SD_KSAMPLER_NONE, from_image = p->init_rgb || init_lat;
    if (p->init_rgb) init_pixels(p, PH, PW, img);
    else memset(img, 0, sizeof(float) * 3 * PH * PW);
    inpaint_in in = {p, e->vae, img, PH, PW, g->B, g->C, g->h, g->w, unet_extra_channels(e), kd};
    int rc = inpaint_open(ip, &in, err);
    vae_release_activations(e->vae);
    if (rc || ops_fault_err(e, err)) return -1;
    if (init_lat) memcpy(ip->image_lat, init_lat, sizeof(float) * g->B * g->C * g->h * g->w);
    if (kd) {
        inpaint_kd_init(ip, ns);
    } else {
        if (from_image) sd_sched_set_strength(sch, p->strength);
        if (inpaint_start(ip, sch, ns, !from_image || p->strength >= 1.0f, x, err)) return -1;
    }
    if (inpaint_rows(ip, g->uncond ? 2 * g->B : g->B, err)) return -1;
    g->concat = ip->rows;
    g->concat_ch = ip->extra;
    if (!kd) return 0;
    g->inp = ip;
    return kd_generate(g, p, from_image ? ip->image_lat : NULL, ns, noise, x, err);
}

/* sd_sample_req.after_step of a diffusers-semantics run: inpainting's
 * blend (4-channel UNet), then sd_gen_debug's record of the step. */
typedef struct step_hook {
    inpaint_run *blend;   /* NULL: no blend */
    sd_gen_debug *dbg;
    size_t n;             /* latent floats of the batch */
} step_hook;

static void after_step(void *ud, int k, float *x)
{
    step_hook *h = ud;
    if (h->blend) inpaint_after_step(h->blend, k, x);
    if (!h->dbg || !h->dbg->step_latents) return;
    if (h->dbg->steps_seen < h->dbg->max_steps)
        memcpy(h->dbg->step_latents + (size_t)h->dbg->steps_seen * h->n, x, sizeof(float) * h->n);
    h->dbg->steps_seen++;
}

/* One image's final decode: SD-space latent z[C, h, w] -> img[3, h*s, w*s]
 * by the VAE (z divided by its scaling factor) or, with --vae-decoder taesd,
 * by the TAESD (SD-space directly).  z is scratch. */
static int decode_final(sd_engine *e, float *z, int h, int w, float *img, sd_err *err)
{
    if (e->taesd_final) return taesd_decode(e->taesd, z, h, w, img, err) || ops_fault_err(e, err) ? -1 : 0;
    const float scaling = vae_scaling_factor(e->vae);
    for (size_t i = 0; i < (size_t)vae_latent_channels(e->vae) * h * w; i++) z[i] /= scaling;
    return vae_decode(e->vae, z, 1, h, w, img, err) || ops_fault_err(e, err) ? -1 : 0;
}

int sd_generate_debug(sd_engine *e, const sd_gen_params *p, sd_image *out, sd_gen_debug *dbg, sd_err *err)
{
    if (refuse_checker(e, err) || check_params(p, err) || sd_check_sampler(p, err)) return -1;
    ops_ctx_attach(e->ops);   /* the team size set at load, in this (worker) thread too */
    ops_take_fault(e->ops);   /* a fault left from before is not this request's */
    lora_request lr;
    if (apply_loras(e, p, &lr, err)) { lora_request_clear(&lr); return -1; }
    sd_gen_params tp = *p;    /* the text encoded: the prompt without its LoRA tags */
    tp.prompt = lr.prompt;
    const float *init_lat = dbg ? dbg->init_latent : NULL;   /* hires fix's second pass */
    const int img2img = p->init_rgb != NULL || init_lat;
    const int B = p->n, s = vae_scale(e->vae), C = vae_latent_channels(e->vae);
    const int out_w = img2img ? p->init_width : p->width, out_h = img2img ? p->init_height : p->height;
    int lw, lh;
    sd_latent_size(e, out_w, out_h, &lw, &lh);
    const int PW = lw * s, PH = lh * s;
    const size_t per = (size_t)C * lh * lw, npix = (size_t)3 * PH * PW;
    const float scaling = vae_scaling_factor(e->vae);
    const int kd = p->ksampler != SD_KSAMPLER_NONE;   /* A1111's k-diffusion run */
    const int inpaint = p->mask || unet_extra_channels(e) > 0;   /* inpaint.h */
    inpaint_run ip = {0};

    int rc = -1;
    text_run text = {0};
    float *x = NULL, *noise = NULL, *img = NULL, *mean = NULL, *stdv = NULL;
    guided g = {0};
    preview_run pv;   /* image 0's live previews (sd_gen_params.preview) */
    preview_run_init(&pv, p, preview_factors_of(sd_engine_is_sdxl(e)), e->taesd, C, lh, lw,
                     out_w, out_h, img2img ? 0 : (PW - out_w) / 2, img2img ? 0 : (PH - out_h) / 2);
    g.pv = &pv;
    sd_sched *sch = sd_calloc(1, sizeof *sch);
    for (int i = 0; i < B; i++) out[i].rgb = NULL;
    if (!sch) { sd_errf(err, SD_ENOMEM, NULL, "out of memory"); goto done; }
    if (!kd && sd_sched_init_zsnr(sch, p->sampler, spacing_of(e, p->spacing), p->steps, e->zsnr, err)) goto done;

    if (text_run_open(e, &tp, &text, err)) goto done;
    g.e = e; g.B = B; g.C = C; g.h = lh; g.w = lw; g.cfg = p->cfg;
    g.uncond = p->cfg > 1.0f;   /* guidance <= 1: the prompt rows only (half the UNet work) */
    /* rows: [negative x B][prompt x B] (k-diffusion: [prompt x B][negative x
     * B], A1111's order), or [prompt x B] without guidance */
    g.order = !g.uncond ? A1111_ROWS_PROMPT : kd ? A1111_ROWS_PROMPT_FIRST : A1111_ROWS_NEGATIVE_FIRST;
    g.own = kd;   /* k-diffusion: A1111's default, prompt and negative not padded */
    int rows = g.uncond ? 2 * B : B;
    g.text = &text.conds;
    g.T = text.conds.max_chunks * TOK_WINDOW;
    g.ctx = sd_malloc(sizeof(float) * rows * g.T * text.conds.W);
    g.ctx_key = -1;
    x = sd_malloc(sizeof(float) * B * per);
    noise = sd_malloc(sizeof(float) * B * per);
    g.x2 = sd_malloc(sizeof(float) * rows * per);
    g.o2 = sd_malloc(sizeof(float) * rows * per);
    g.t2 = sd_malloc(sizeof(float) * rows);
    img = sd_malloc(sizeof(float) * npix);   /* the init image, then one decoded image at a time */
    if (!g.ctx || !x || !noise || !g.x2 || !g.o2 || !g.t2 || !img) { sd_errf(err, SD_ENOMEM, NULL, "out of memory for a %dx%d batch of %d", out_w, out_h, B); goto done; }
    if (guided_vec_open(&g, p, out_w, out_h, err)) goto done;   /* default ids: the size asked (A1111's p.width) */

    sd_noise_src ns = {p->noise, p->noise_ud, p->seed, 0};
    if (inpaint) {
        if (start_inpaint(e, &g, p, sch, &ns, &ip, img, PH, PW, init_lat, noise, x, err)) goto done;
    } else if (kd && !img2img) {
        if (kd_generate(&g, p, NULL, &ns, noise, x, err)) goto done;
    } else if (!img2img) {
        sd_noise_next(&ns, B, per, noise);
        sd_sched_start_txt2img(sch, noise, x, B * per);
    } else if (init_lat) {
        /* hires fix (hires.c): img2img from the upscaled latent, no encode */
        if (kd) {
            if (kd_generate(&g, p, init_lat, &ns, noise, x, err)) goto done;
        } else {
            sd_sched_set_strength(sch, p->strength);
            sd_noise_next(&ns, B, per, noise);
            sd_sched_start_img2img(sch, init_lat, noise, x, B * per);
        }
    } else {
        init_pixels(p, PH, PW, img);
        mean = sd_malloc(sizeof(float) * per);
        stdv = sd_malloc(sizeof(float) * per);
        float *init = sd_malloc(sizeof(float) * B * per), *m2 = sd_malloc(sizeof(float) * B * per), *s2 = sd_malloc(sizeof(float) * B * per);
        if (!mean || !stdv || !init || !m2 || !s2) { free(init); free(m2); free(s2); sd_errf(err, SD_ENOMEM, NULL, "out of memory"); goto done; }
        if (vae_encode(e->vae, img, 1, PH, PW, mean, stdv, err) || ops_fault_err(e, err)) { free(init); free(m2); free(s2); goto done; }
        vae_release_activations(e->vae);
        for (int i = 0; i < B; i++) {
            memcpy(m2 + i * per, mean, sizeof(float) * per);
            memcpy(s2 + i * per, stdv, sizeof(float) * per);
        }
        int bad = 0;
        if (kd) {
            /* A1111 samples the posterior from torch's global generator, not
             * the image's stream: not reproducible, so take its mean */
            for (size_t i = 0; i < B * per; i++) init[i] = m2[i] * scaling;
            bad = kd_generate(&g, p, init, &ns, noise, x, err);
        } else {
            sd_sched_set_strength(sch, p->strength);
            sd_noise_next(&ns, B, per, noise);
            sd_posterior_sample(m2, s2, noise, scaling, init, B * per);
            sd_noise_next(&ns, B, per, noise);
            sd_sched_start_img2img(sch, init, noise, x, B * per);
        }
        free(init); free(m2); free(s2);
        if (bad) goto done;
    }

    if (!kd) {
        sd_sample_req req = {
            .sched = sch, .pred = e->pred, .batch = B, .per_image = per,
            .model = guided_model, .model_ud = &g, .noise = &ns,
            .progress = p->progress, .progress_ud = p->progress_ud,
            .on_denoised = preview_hook(&pv), .on_denoised_ud = &pv,
        };
        step_hook hook = {inpaint && !ip.extra ? &ip : NULL, dbg, (size_t)B * per};
        req.after_step = after_step;   /* diffusers' blend for a 4-channel UNet; the debug record */
        req.after_step_ud = &hook;
        if (sd_sample(&req, x, err)) goto done;
    }
    const int image0 = dbg ? dbg->image0 : 0;
    for (int i = 0; i < B; i++)
        if (check_finite(x + i * per, per, "the sampled latents", image0 + i, err)) goto done;
    if (dbg) {
        dbg->lat_c = C; dbg->lat_h = lh; dbg->lat_w = lw;
        if (dbg->final_latent) memcpy(dbg->final_latent, x, sizeof(float) * B * per);
        if (dbg->latent_only) { rc = 0; goto done; }
    }

    /* decode one image at a time (the VAE is the memory peak); the UNet's
     * activations are not needed meanwhile */
    unet_release_activations(e->unet);
    const int x0 = img2img ? 0 : (PW - out_w) / 2, y0 = img2img ? 0 : (PH - out_h) / 2;
    for (int i = 0; i < B; i++) {
        if (decode_final(e, x + i * per, lh, lw, img, err) || check_finite(img, npix, "the decoded pixels", image0 + i, err))
            goto done;
        if (dbg && dbg->image) memcpy(dbg->image + i * npix, img, sizeof(float) * npix);
        out[i].width = out_w;
        out[i].height = out_h;
        out[i].seed = p->seed + (uint64_t)i;
        out[i].rgb = sd_malloc((size_t)out_w * out_h * 3);
        if (!out[i].rgb) { sd_errf(err, SD_ENOMEM, NULL, "out of memory"); goto done; }
        for (int yy = 0; yy < out_h; yy++)
            for (int xx = 0; xx < out_w; xx++)
                for (int c = 0; c < 3; c++)
                    out[i].rgb[((size_t)yy * out_w + xx) * 3 + c] =
                        to_u8(img[((size_t)c * PH + yy + y0) * PW + xx + x0], kd);
    }
    rc = 0;
done:
    vae_release_activations(e->vae);   /* idle between requests: give the pages back */
    if (rc)
        for (int i = 0; i < B; i++) sd_image_free(&out[i]);
    text_run_close(&text);
    inpaint_close(&ip);
    preview_run_close(&pv);
    free(sch); free(g.ctx); free(x); free(noise); free(img); free(mean); free(stdv);
    free(g.x2); free(g.o2); free(g.t2);
    free(g.vec); free(g.pooled);
    lora_request_clear(&lr);
    return rc;
}

int sd_generate(sd_engine *e, const sd_gen_params *p, sd_image *out, sd_err *err)
{
    if (p->hr_upscaler != SD_HR_NONE) return sd_hires_generate(e, p, out, err);
    return sd_generate_debug(e, p, out, NULL, err);
}
