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
#include "loader/family.h"
#include "loader/weights.h"
#include "lora/apply.h"
#include "models/clip.h"
#include "models/unet.h"
#include "models/vae.h"
#include "ops/ops.h"
#include "samplers/samplers.h"
#include "tokenizer/clip_bpe.h"
#include "../base/alloc.h"

#define SD_MAX_TEXT_ENCODERS 2   /* SDXL has two; SD1 and SD2 one */

struct sd_engine {
    sd_weights *w;
    sd_tokenizer *tok;
    sd_clip *text[SD_MAX_TEXT_ENCODERS];   /* text encoders, in the order their outputs join the context */
    int n_text;                            /* one today (SD1, SD2) */
    sd_unet *unet;
    sd_vae *vae;
    ops_ctx *ops;       /* the ops state its models share (ops.h): made at load, freed last */
    sd_prediction pred;
    sd_family family;   /* decided once from the tensors at load (loader/family.h) */
    int clip_skip;      /* 0 = family default */
    int pad_id;
    int64_t params;
    char hash[16];
    char name[256];
    char precision[32];   /* sd_model_info.precision */
    lora_engine *lora;    /* LoRA per request: cache and applied set (lora/apply.h) */
};

struct sd_unet *sd_engine_unet(sd_engine *e) { return e->unet; }
struct sd_clip *sd_engine_clip(sd_engine *e) { return e->text[0]; }
struct sd_vae *sd_engine_vae(sd_engine *e) { return e->vae; }

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

int sd_precision_known(const char *name)
{
    return name && (!strcmp(name, "auto") || ops_precision_from_name(name) >= 0) ? 0 : -1;
}

/* Each model's precision (sd.h): a named one applies to all three; auto is
 * $SD_PRECISION when that names one, else, on a CPU with AMX, bf16x2 for the
 * text encoder and the UNet and bf16 for the VAE — it runs once per image,
 * so its rounding does not compound over the steps as the UNet's does
 * (docs/ACCURACY.md, "Precision") — and fp32 elsewhere. */
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
    vae_set_precision(e->vae, pv);
    if (pu == pv) snprintf(e->precision, sizeof e->precision, "%s", ops_precision_name(pu));
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

/* Refuse, before loading any part, a family this engine cannot run yet. */
static int check_family(sd_family f, const char *path, sd_err *err)
{
    const sd_family_desc *d = sd_family_info(f);
    if (d->supported) return 0;
    return sd_errf(err, SD_EFORMAT, "model", "%s is an %s checkpoint (%s%s%s); this version runs sd1 and sd2 "
                   "checkpoints only", path, d->name, d->added_cond ? "its UNet takes added conditioning" : "",
                   d->added_cond && d->inpaint ? " and " : "",
                   d->inpaint ? "its UNet takes mask and masked-image channels" : "");
}

/* ---- LoRA: the model's weights by canonical name, and one request's set -- */

static ops_weight *engine_weight(void *ud, const char *name)
{
    sd_engine *e = ud;
    if (!strncmp(name, "unet.", 5)) return unet_weight(e->unet, name + 5);
    if (!strncmp(name, "text_encoder.", 13)) return clip_weight(e->text[0], name);
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

void sd_lora_hashes(sd_engine *e, const sd_gen_params *p, char *out, size_t size)
{
    lora_request lr;
    if (!size) return;
    out[0] = 0;
    if (!lora_request_parse(p, &lr, NULL)) lora_engine_hashes(e->lora, &lr, out, size);
    lora_request_clear(&lr);
}

sd_engine *sd_engine_load(const sd_load_opts *o, sd_err *err)
{
    if (!o || !o->model_path || !*o->model_path) {
        sd_errf(err, SD_EINVAL, "model", "no model given (--model)");
        return NULL;
    }
    if (o->precision && sd_precision_known(o->precision)) {
        sd_errf(err, SD_EINVAL, "precision", "precision must be auto, fp32, bf16x2 or bf16; got '%.40s'", o->precision);
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

    e->w = sdw_open(o->model_path, err);
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

    /* UNet */
    unet_hints uh;
    if (o->config_path && *o->config_path) {
        if (unet_hints_from_ldm_config(cfg, cfg_len, &uh, err)) goto fail;
    } else if (unet_hints_from_weights(e->w, &uh, err)) goto fail;
    if (!(e->unet = unet_load(e->w, &uh, e->ops, err))) goto fail;
    /* sized once for the longest prompt and negative allowed, not grown by one */
    unet_plan_context(e->unet, SD_MAX_PROMPT_WINDOWS * TOK_WINDOW);
    for (int i = 0; i < e->n_text; i++)
        if (clip_reserve(e->text[i], 2 * SD_MAX_PROMPT_WINDOWS, err)) goto fail;

    /* VAE */
    if (!(e->vae = vae_load(e->w, e->ops, err))) goto fail;
    if (set_precision(e, o->precision, err)) goto fail;
    if (unet_get_info(e->unet)->in_channels != vae_latent_channels(e->vae) ||
        unet_get_info(e->unet)->context_dim != context_width(e)) {
        sd_errf(err, SD_EFORMAT, "model",
                "%s: parts do not fit together: UNet takes %d latent channels and %d-wide text, "
                "VAE gives %d channels, text encoder %d wide", o->model_path,
                unet_get_info(e->unet)->in_channels, unet_get_info(e->unet)->context_dim,
                vae_latent_channels(e->vae), context_width(e));
        goto fail;
    }

    /* prediction type: flag, diffusers scheduler config, LDM config, epsilon */
    e->pred = o->prediction;
    if (e->pred == SD_PRED_AUTO) {
        size_t n;
        char *sc = sdw_folder_file(e->w, "scheduler/scheduler_config.json", &n);
        if (sc) e->pred = prediction_from_json(sc, n, "prediction_type");
        free(sc);
    }
    if (e->pred == SD_PRED_AUTO && cfg) e->pred = prediction_from_json(cfg, cfg_len, "parameterization");
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
    e->pad_id = sd_family_info(e->family)->pad_eos ? tok_eos(e->tok) : 0;

    for (size_t i = 0; i < sdw_count(e->w); i++) e->params += sdw_numel(sdw_at(e->w, i));
    model_hash(e->w, e->hash);
    const char *base = strrchr(o->model_path, '/');
    base = base && base[1] ? base + 1 : o->model_path;
    snprintf(e->name, sizeof e->name, "%s", base);
    size_t bl = strlen(e->name);
    while (bl > 1 && e->name[bl - 1] == '/') e->name[--bl] = 0;
    if (bl > 12 && !strcmp(e->name + bl - 12, ".safetensors")) e->name[bl - 12] = 0;
    if (!(e->lora = lora_engine_new(e->w, o->lora_dir, engine_weight, e, err))) goto fail;
    free(cfg);
    return e;
fail:
    sd_err_prefix(err, "loading model %s", o->model_path);
    free(cfg);
    sd_engine_free(e);
    return NULL;
}

void sd_engine_free(sd_engine *e)
{
    if (!e) return;
    lora_engine_free(e->lora);
    tok_free(e->tok);
    for (int i = 0; i < e->n_text; i++) clip_free(e->text[i]);
    unet_free(e->unet);
    vae_free(e->vae);
    ops_ctx_free(e->ops);
    sdw_close(e->w);
    free(e);
}

void sd_engine_info(const sd_engine *e, sd_model_info *out)
{
    memset(out, 0, sizeof *out);
    out->family = sd_family_info(e->family)->name;
    out->prediction = e->pred == SD_PRED_V ? "v_prediction" : "epsilon";
    out->latent_channels = vae_latent_channels(e->vae);
    out->vae_scale = vae_scale(e->vae);
    out->params = e->params;
    memcpy(out->hash, e->hash, sizeof out->hash);
    out->name = e->name;
    out->precision = e->precision;
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
    /* When prompt syntax arrives (issue 14) its parser runs before this
     * count: a BREAK starts a new window and a multi-vector embedding counts
     * its vectors, so count the ids it produces, not the raw text's. */
    int32_t *ids;
    size_t n;
    if (tok_encode(e->tok, text ? text : "", &ids, &n, err)) return -1;
    free(ids);
    size_t nw = tok_window_count(n);
    *windows = nw > INT_MAX ? INT_MAX : (int)nw;
    if (tokens) *tokens = n;
    return 0;
}

int sd_check_prompts(const sd_engine *e, const char *prompt, const char *negative, sd_err *err)
{
    const char *text[2] = {prompt, negative}, *field[2] = {"prompt", "negative"};
    const char *what[2] = {"prompt", "negative prompt"};
    for (int k = 0; k < 2; k++) {
        int nw;
        size_t nt;
        if (sd_prompt_windows(e, text[k], &nw, &nt, err)) return -1;
        if (nw > SD_MAX_PROMPT_WINDOWS)
            return sd_errf(err, SD_EINVAL, field[k], "%s is too long: %zu tokens make %d windows of %d; the limit "
                           "is %d windows (%d tokens)", what[k], nt, nw, TOK_CHUNK, SD_MAX_PROMPT_WINDOWS,
                           SD_MAX_PROMPT_WINDOWS * TOK_CHUNK);
    }
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
                clip_default_skip(e->text[0]) != 1;
    return fixed || clip_skip <= 0 ? e->clip_skip : clip_skip;
}

int sd_check_request(const sd_engine *e, const sd_gen_params *p, sd_err *err)
{
    lora_request lr;   /* the prompt's LoRA tags are not text: counted without them */
    if (lora_request_parse(p, &lr, err)) { lora_request_clear(&lr); return -1; }
    int rc = sd_check_prompts(e, lr.prompt, p->negative, err);
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

int sd_encode_text(sd_engine *e, const sd_gen_params *p, float **ctx_out, int *T_out, int *W_out, sd_err *err)
{
    const char *prompt = p->prompt, *negative = p->negative;
    ops_ctx_attach(e->ops);
    ops_take_fault(e->ops);   /* a fault left from before is not this request's */
    int32_t *ids[2] = {NULL, NULL}, *all = NULL;
    int nw[2] = {0, 0};
    float *enc = NULL, *ctx = NULL;
    const char *text[2] = {negative ? negative : "", prompt ? prompt : ""};
    /* the limit the workspaces were sized for, with the server's message */
    if (sd_check_prompts(e, prompt, negative, err)) goto fail;
    for (int k = 0; k < 2; k++)
        if (tok_windows(e->tok, text[k], e->pad_id, &ids[k], &nw[k], err)) goto fail;
    int nwin = nw[0] > nw[1] ? nw[0] : nw[1];
    int W = clip_width(e->text[0]), L = TOK_WINDOW;   /* SDXL will join text[1]'s along W */
    /* windows of both texts, the shorter padded with empty-prompt windows */
    int32_t *empty = NULL;
    int ne = 0;
    if (tok_windows(e->tok, "", e->pad_id, &empty, &ne, err)) goto fail;
    all = sd_malloc(sizeof(int32_t) * 2 * nwin * L);
    enc = sd_malloc(sizeof(float) * 2 * nwin * L * W);
    ctx = sd_malloc(sizeof(float) * 2 * nwin * L * W);
    if (!all || !enc || !ctx) { free(empty); sd_errf(err, SD_ENOMEM, "prompt", "out of memory"); goto fail; }
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < nwin; i++)
            memcpy(all + (size_t)(k * nwin + i) * L, i < nw[k] ? ids[k] + (size_t)i * L : empty, sizeof(int32_t) * L);
    free(empty);
    if (clip_encode(e->text[0], all, 2 * nwin, text_skip(e, p->clip_skip), enc, err) || ops_fault_err(e, err)) goto fail;
    /* windows of one text are concatenated along the sequence: [k][i*L + t][W] */
    memcpy(ctx, enc, sizeof(float) * 2 * nwin * L * W);
    *ctx_out = ctx;
    *T_out = nwin * L;
    *W_out = W;
    free(ids[0]); free(ids[1]); free(all); free(enc);
    return 0;
fail:
    free(ids[0]); free(ids[1]); free(all); free(enc); free(ctx);
    return -1;
}

/* ---- the sampler's model callback: UNet on [uncond; cond] + CFG ---------- */

typedef struct guided {
    sd_engine *e;
    int B, C, h, w, T;
    float cfg;
    int uncond;          /* 0 when cfg == 1: the negative row is not needed */
    unet_cond cond;      /* ctx [rows, T, W]: rows 0..B-1 negative, B..2B-1 prompt (or B prompt rows) */
    float *x2, *t2, *o2; /* [rows][per] */
} guided;

static int guided_model(void *ud, const float *x_in, float t, int call, float *out, sd_err *err)
{
    guided *g = ud;
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
    } else if (p->width < 1 || p->height < 1 || p->width > 4096 || p->height > 4096) {
        return sd_errf(err, SD_EINVAL, p->width < 1 || p->width > 4096 ? "width" : "height",
                       "width and height must be 1..4096, got %dx%d", p->width, p->height);
    }
    return 0;
}

static uint8_t to_u8(float v)
{
    float f = v / 2.0f + 0.5f;
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    return (uint8_t)lrintf(f * 255.0f);
}

int sd_generate_debug(sd_engine *e, const sd_gen_params *p, sd_image *out, sd_gen_debug *dbg, sd_err *err)
{
    if (check_params(p, err)) return -1;
    ops_ctx_attach(e->ops);   /* the team size set at load, in this (worker) thread too */
    ops_take_fault(e->ops);   /* a fault left from before is not this request's */
    lora_request lr;
    if (apply_loras(e, p, &lr, err)) { lora_request_clear(&lr); return -1; }
    sd_gen_params tp = *p;    /* the text encoded: the prompt without its LoRA tags */
    tp.prompt = lr.prompt;
    const int img2img = p->init_rgb != NULL;
    const int B = p->n, s = vae_scale(e->vae), C = vae_latent_channels(e->vae);
    const int out_w = img2img ? p->init_width : p->width, out_h = img2img ? p->init_height : p->height;
    int lw, lh;
    sd_latent_size(e, out_w, out_h, &lw, &lh);
    const int PW = lw * s, PH = lh * s;
    const size_t per = (size_t)C * lh * lw, npix = (size_t)3 * PH * PW;
    const float scaling = vae_scaling_factor(e->vae);

    int rc = -1, T = 0, W = 0;
    float *ctx1 = NULL, *ctx = NULL, *x = NULL, *noise = NULL, *img = NULL, *mean = NULL, *stdv = NULL;
    guided g = {0};
    sd_sched *sch = sd_calloc(1, sizeof *sch);
    for (int i = 0; i < B; i++) out[i].rgb = NULL;
    if (!sch) { sd_errf(err, SD_ENOMEM, NULL, "out of memory"); goto done; }
    if (sd_sched_init(sch, p->sampler, SD_SPACING_LEADING, p->steps, err)) goto done;

    if (sd_encode_text(e, &tp, &ctx1, &T, &W, err)) goto done;
    g.e = e; g.B = B; g.C = C; g.h = lh; g.w = lw; g.T = T; g.cfg = p->cfg;
    g.uncond = p->cfg != 1.0f;
    int rows = g.uncond ? 2 * B : B;
    ctx = sd_malloc(sizeof(float) * rows * T * W);
    x = sd_malloc(sizeof(float) * B * per);
    noise = sd_malloc(sizeof(float) * B * per);
    g.x2 = sd_malloc(sizeof(float) * rows * per);
    g.o2 = sd_malloc(sizeof(float) * rows * per);
    g.t2 = sd_malloc(sizeof(float) * rows);
    img = sd_malloc(sizeof(float) * npix);   /* the init image, then one decoded image at a time */
    if (!ctx || !x || !noise || !g.x2 || !g.o2 || !g.t2 || !img) { sd_errf(err, SD_ENOMEM, NULL, "out of memory for a %dx%d batch of %d", out_w, out_h, B); goto done; }
    /* rows: [negative x B][prompt x B], or [prompt x B] without guidance */
    size_t tw = (size_t)T * W;
    for (int r = 0; r < rows; r++) {
        int prompt_row = g.uncond ? r >= B : 1;
        memcpy(ctx + r * tw, ctx1 + prompt_row * tw, sizeof(float) * tw);
    }
    g.cond = unet_cond_text(ctx, T);
    g.cond.ctx_dim = W;

    sd_noise_src ns = {p->noise, p->noise_ud, p->seed, 0};
    if (!img2img) {
        sd_noise_next(&ns, B, per, noise);
        sd_sched_start_txt2img(sch, noise, x, B * per);
    } else {
        /* init image -> [-1,1] NCHW, padded right/bottom to a multiple of s by edge repeat */
        for (int c = 0; c < 3; c++)
            for (int yy = 0; yy < PH; yy++)
                for (int xx = 0; xx < PW; xx++) {
                    int sy = yy < out_h ? yy : out_h - 1, sx = xx < out_w ? xx : out_w - 1;
                    img[((size_t)c * PH + yy) * PW + xx] = p->init_rgb[((size_t)sy * out_w + sx) * 3 + c] / 127.5f - 1.0f;
                }
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
        sd_sched_set_strength(sch, p->strength);
        sd_noise_next(&ns, B, per, noise);
        sd_posterior_sample(m2, s2, noise, scaling, init, B * per);
        sd_noise_next(&ns, B, per, noise);
        sd_sched_start_img2img(sch, init, noise, x, B * per);
        free(init); free(m2); free(s2);
    }

    sd_sample_req req = {
        .sched = sch, .pred = e->pred, .batch = B, .per_image = per,
        .model = guided_model, .model_ud = &g, .noise = &ns,
        .progress = p->progress, .progress_ud = p->progress_ud,
    };
    if (sd_sample(&req, x, err)) goto done;
    if (dbg) {
        dbg->lat_c = C; dbg->lat_h = lh; dbg->lat_w = lw;
        if (dbg->final_latent) memcpy(dbg->final_latent, x, sizeof(float) * B * per);
    }

    /* decode one image at a time (the VAE is the memory peak); the UNet's
     * activations are not needed meanwhile */
    unet_release_activations(e->unet);
    const int x0 = img2img ? 0 : (PW - out_w) / 2, y0 = img2img ? 0 : (PH - out_h) / 2;
    for (size_t i = 0; i < B * per; i++) x[i] /= scaling;
    for (int i = 0; i < B; i++) {
        if (vae_decode(e->vae, x + i * per, 1, lh, lw, img, err) || ops_fault_err(e, err)) goto done;
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
                        to_u8(img[((size_t)c * PH + yy + y0) * PW + xx + x0]);
    }
    rc = 0;
done:
    vae_release_activations(e->vae);   /* idle between requests: give the pages back */
    if (rc)
        for (int i = 0; i < B; i++) sd_image_free(&out[i]);
    free(sch); free(ctx1); free(ctx); free(x); free(noise); free(img); free(mean); free(stdv);
    free(g.x2); free(g.o2); free(g.t2);
    lora_request_clear(&lr);
    return rc;
}

int sd_generate(sd_engine *e, const sd_gen_params *p, sd_image *out, sd_err *err)
{
    return sd_generate_debug(e, p, out, NULL, err);
}
