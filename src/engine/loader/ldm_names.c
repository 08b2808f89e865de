/* ldm_names.c — single-file (CompVis/LDM + OpenCLIP) names -> canonical
 * diffusers names (see ldm_names.h).
 *
 * UNet: input_blocks.0.0 is conv_in; then, level by level, one block per
 * ResBlock (sub-module 0 = resnet, 1 = spatial transformer) and, except at the
 * last level, one block whose only sub-module is the downsampler (`.0.op`).
 * output_blocks hold, level by level from the deepest, ResBlock (+ attention)
 * blocks; the last block of each level but the last also carries the
 * upsampler (`.1.conv` or `.2.conv`).  So levels are found from where the
 * `op` / `conv` samplers sit, and blocks per level by counting. */
#include "ldm_names.h"
#include "../../base/alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LDM_MAXBLK 256  /* more UNet blocks than any real model has */

struct ldm_map {
    int n_in, n_out;
    signed char in_down[LDM_MAXBLK];   /* input block is a downsampler */
    short in_level[LDM_MAXBLK], in_j[LDM_MAXBLK];
    signed char out_up[LDM_MAXBLK];    /* sub-module index of the upsampler, 0 = none */
    short out_level[LDM_MAXBLK], out_j[LDM_MAXBLK];
    int vae_dec_levels;
};

/* If s starts with prefix, return what follows it, else NULL. */
static const char *eat(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(s, prefix, n) ? NULL : s + n;
}

/* Read "<digits>." from s; returns what follows the dot, or NULL. */
static const char *eat_int(const char *s, int *v)
{
    if (!s || *s < '0' || *s > '9') return NULL;
    long x = 0;
    while (*s >= '0' && *s <= '9') {
        x = x * 10 + (*s++ - '0');
        if (x > 1000000) return NULL;
    }
    if (*s != '.') return NULL;
    *v = (int)x;
    return s + 1;
}

static int is_param(const char *s) { return !strcmp(s, "weight") || !strcmp(s, "bias"); }

ldm_map *ldm_map_new(const char *const *names, size_t n, const char *file, sd_err *err)
{
    ldm_map *m = sd_calloc(1, sizeof *m);
    if (!m) {
        sd_errf(err, SD_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *r;
        int k, sub;
        if ((r = eat(names[i], "model.diffusion_model.input_blocks."))) {
            if (!(r = eat_int(r, &k)) || k >= LDM_MAXBLK) goto bad;
            if (k + 1 > m->n_in) m->n_in = k + 1;
            if (eat(r, "0.op.")) m->in_down[k] = 1;
        } else if ((r = eat(names[i], "model.diffusion_model.output_blocks."))) {
            if (!(r = eat_int(r, &k)) || k >= LDM_MAXBLK) goto bad;
            if (k + 1 > m->n_out) m->n_out = k + 1;
            if ((r = eat_int(r, &sub)) && sub >= 1 && (r = eat(r, "conv.")) && is_param(r)) m->out_up[k] = (signed char)sub;
        } else if ((r = eat(names[i], "first_stage_model.decoder.up."))) {
            if (!(r = eat_int(r, &k)) || k >= LDM_MAXBLK) goto bad;
            if (k + 1 > m->vae_dec_levels) m->vae_dec_levels = k + 1;
        }
        continue;
    bad:
        sd_errf(err, SD_EFORMAT, names[i], "%s: tensor '%s': block index missing or out of range", file, names[i]);
        free(m);
        return NULL;
    }
    int level = 0, j = 0;
    for (int k = 1; k < m->n_in; k++) {
        m->in_level[k] = (short)level;
        if (m->in_down[k]) {
            level++;
            j = 0;
        } else {
            m->in_j[k] = (short)j++;
        }
    }
    level = 0, j = 0;
    for (int k = 0; k < m->n_out; k++) {
        m->out_level[k] = (short)level;
        m->out_j[k] = (short)j++;
        if (m->out_up[k]) {
            level++;
            j = 0;
        }
    }
    return m;
}

void ldm_map_free(ldm_map *m) { free(m); }

static int put(char *out, size_t outsz, sd_err *err, const char *src, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int put(char *out, size_t outsz, sd_err *err, const char *src, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, outsz, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= outsz) return sd_errf(err, SD_EFORMAT, src, "tensor name '%s' is too long", src);
    return LDM_KEEP;
}

/* rest of a renamed prefix: table of {from, to}, matched on a whole dotted prefix. */
typedef struct { const char *from, *to; } ren;

static const char *rename_prefix(const ren *t, size_t n, const char *rest, const char **tail)
{
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(t[i].from);
        if (!strncmp(rest, t[i].from, l) && rest[l] == '.') {
            *tail = rest + l + 1;
            return t[i].to;
        }
    }
    return NULL;
}

static const ren unet_resnet[] = {
    {"in_layers.0", "norm1"}, {"in_layers.2", "conv1"}, {"emb_layers.1", "time_emb_proj"},
    {"out_layers.0", "norm2"}, {"out_layers.3", "conv2"}, {"skip_connection", "conv_shortcut"},
};
static const ren vae_resnet[] = {
    {"norm1", "norm1"}, {"conv1", "conv1"}, {"norm2", "norm2"}, {"conv2", "conv2"}, {"nin_shortcut", "conv_shortcut"},
};
static const ren vae_attn[] = {
    {"q", "to_q"}, {"k", "to_k"}, {"v", "to_v"}, {"proj_out", "to_out.0"}, {"norm", "group_norm"},
};
static const ren unet_top[] = {
    {"time_embed.0", "time_embedding.linear_1"}, {"time_embed.2", "time_embedding.linear_2"},
    {"input_blocks.0.0", "conv_in"}, {"out.0", "conv_norm_out"}, {"out.2", "conv_out"},
    /* SDXL's added conditioning (sgm label_emb = Sequential(Linear, SiLU, Linear)) */
    {"label_emb.0.0", "add_embedding.linear_1"}, {"label_emb.0.2", "add_embedding.linear_2"},
};
static const ren clip_layer[] = {
    {"ln_1", "layer_norm1"}, {"ln_2", "layer_norm2"}, {"attn.out_proj", "self_attn.out_proj"},
    {"mlp.c_fc", "mlp.fc1"}, {"mlp.c_proj", "mlp.fc2"},
};
#define N(t) (sizeof t / sizeof t[0])

static int unmapped(sd_err *err, const char *src)
{
    return sd_errf(err, SD_EFORMAT, src, "tensor '%s' has a name the single-file loader does not recognise", src);
}

/* "<prefix>.<resnet-rest>" with LDM ResBlock names. */
static int unet_resnet_name(char *out, size_t outsz, sd_err *err, const char *src, const char *prefix, const char *rest)
{
    const char *tail, *to = rename_prefix(unet_resnet, N(unet_resnet), rest, &tail);
    if (!to || !is_param(tail)) return unmapped(err, src);
    return put(out, outsz, err, src, "unet.%s.%s.%s", prefix, to, tail);
}

static int map_unet(const ldm_map *m, const char *src, const char *r, char *out, size_t outsz, sd_err *err)
{
    const char *tail, *to = rename_prefix(unet_top, N(unet_top), r, &tail);
    char pre[64];
    int k, sub;
    if (to) return is_param(tail) ? put(out, outsz, err, src, "unet.%s.%s", to, tail) : unmapped(err, src);

    const char *b;
    if ((b = eat(r, "input_blocks."))) {
        if (!(b = eat_int(b, &k)) || !(b = eat_int(b, &sub)) || k < 1 || k >= m->n_in) return unmapped(err, src);
        int L = m->in_level[k], j = m->in_j[k];
        if (m->in_down[k]) {
            const char *t = eat(b, "op.");
            if (sub != 0 || !t || !is_param(t)) return unmapped(err, src);
            return put(out, outsz, err, src, "unet.down_blocks.%d.downsamplers.0.conv.%s", L, t);
        }
        if (sub == 0) {
            snprintf(pre, sizeof pre, "down_blocks.%d.resnets.%d", L, j);
            return unet_resnet_name(out, outsz, err, src, pre, b);
        }
        if (sub == 1) return put(out, outsz, err, src, "unet.down_blocks.%d.attentions.%d.%s", L, j, b);
        return unmapped(err, src);
    }
    if ((b = eat(r, "middle_block."))) {
        if (!(b = eat_int(b, &sub))) return unmapped(err, src);
        if (sub == 0 || sub == 2) {
            snprintf(pre, sizeof pre, "mid_block.resnets.%d", sub / 2);
            return unet_resnet_name(out, outsz, err, src, pre, b);
        }
        if (sub == 1) return put(out, outsz, err, src, "unet.mid_block.attentions.0.%s", b);
        return unmapped(err, src);
    }
    if ((b = eat(r, "output_blocks."))) {
        if (!(b = eat_int(b, &k)) || !(b = eat_int(b, &sub)) || k >= m->n_out) return unmapped(err, src);
        int L = m->out_level[k], j = m->out_j[k];
        if (sub == 0) {
            snprintf(pre, sizeof pre, "up_blocks.%d.resnets.%d", L, j);
            return unet_resnet_name(out, outsz, err, src, pre, b);
        }
        if (sub == m->out_up[k]) {
            const char *t = eat(b, "conv.");
            if (!t || !is_param(t)) return unmapped(err, src);
            return put(out, outsz, err, src, "unet.up_blocks.%d.upsamplers.0.conv.%s", L, t);
        }
        if (sub == 1) return put(out, outsz, err, src, "unet.up_blocks.%d.attentions.%d.%s", L, j, b);
        return unmapped(err, src);
    }
    return unmapped(err, src);
}

static int vae_resnet_name(char *out, size_t outsz, sd_err *err, const char *src, const char *prefix, const char *rest)
{
    const char *tail, *to = rename_prefix(vae_resnet, N(vae_resnet), rest, &tail);
    if (!to || !is_param(tail)) return unmapped(err, src);
    return put(out, outsz, err, src, "vae.%s.%s.%s", prefix, to, tail);
}

static int map_vae(const ldm_map *m, const char *src, const char *r, char *out, size_t outsz, sd_err *err)
{
    const char *b, *tail;
    char pre[64];
    int i, j;
    if (eat(r, "loss.")) return LDM_IGNORE;  /* training-time discriminator / LPIPS weights */
    if (((b = eat(r, "quant_conv.")) || (b = eat(r, "post_quant_conv."))) && is_param(b))
        return put(out, outsz, err, src, "vae.%s", r);
    const char *part = (b = eat(r, "encoder.")) ? "encoder" : (b = eat(r, "decoder.")) ? "decoder" : NULL;
    if (!part) return unmapped(err, src);
    if ((tail = eat(b, "conv_in.")) || (tail = eat(b, "conv_out.")))
        return is_param(tail) ? put(out, outsz, err, src, "vae.%s.%s", part, b) : unmapped(err, src);
    if ((tail = eat(b, "norm_out.")))
        return is_param(tail) ? put(out, outsz, err, src, "vae.%s.conv_norm_out.%s", part, tail) : unmapped(err, src);
    if ((tail = eat(b, "mid."))) {
        const char *t;
        if ((t = eat(tail, "block_1.")) || (t = eat(tail, "block_2."))) {
            snprintf(pre, sizeof pre, "%s.mid_block.resnets.%d", part, tail[6] == '2');
            return vae_resnet_name(out, outsz, err, src, pre, t);
        }
        if ((t = eat(tail, "attn_1."))) {
            const char *p, *to = rename_prefix(vae_attn, N(vae_attn), t, &p);
            if (!to || !is_param(p)) return unmapped(err, src);
            return put(out, outsz, err, src, "vae.%s.mid_block.attentions.0.%s.%s", part, to, p);
        }
        return unmapped(err, src);
    }
    int enc = part[0] == 'e';
    if (!(tail = eat(b, enc ? "down." : "up.")) || !(tail = eat_int(tail, &i))) return unmapped(err, src);
    int level = enc ? i : m->vae_dec_levels - 1 - i;
    const char *blocks = enc ? "down_blocks" : "up_blocks";
    const char *t;
    if ((t = eat(tail, "block.")) && (t = eat_int(t, &j))) {
        snprintf(pre, sizeof pre, "%s.%s.%d.resnets.%d", part, blocks, level, j);
        return vae_resnet_name(out, outsz, err, src, pre, t);
    }
    if ((t = eat(tail, enc ? "downsample.conv." : "upsample.conv.")) && is_param(t))
        return put(out, outsz, err, src, "vae.%s.%s.%d.%s.0.conv.%s", part, blocks, level,
                   enc ? "downsamplers" : "upsamplers", t);
    return unmapped(err, src);
}

/* An OpenCLIP text tower under component `te` ("text_encoder" for SD2's
 * cond_stage_model.model.*, "text_encoder_2" for SDXL's second embedder).
 * Its text_projection (pooled = x @ W, stored [width, proj]) is kept only
 * for SDXL, transposed at load to diffusers' [proj, width] (LDM_TRANSPOSE). */
static int map_openclip(const char *src, const char *r, const char *te, int keep_proj, char *out, size_t outsz,
                        sd_err *err)
{
    const char *b, *tail;
    int i;
    if (!strcmp(r, "text_projection") && keep_proj)
        return put(out, outsz, err, src, "%s.text_projection.weight", te) < 0 ? -1 : LDM_TRANSPOSE;
    if (!strcmp(r, "text_projection") || !strcmp(r, "logit_scale") || !strcmp(r, "attn_mask")) return LDM_IGNORE;
    if (!strcmp(r, "token_embedding.weight"))
        return put(out, outsz, err, src, "%s.text_model.embeddings.token_embedding.weight", te);
    if (!strcmp(r, "positional_embedding"))
        return put(out, outsz, err, src, "%s.text_model.embeddings.position_embedding.weight", te);
    if ((b = eat(r, "ln_final.")) && is_param(b))
        return put(out, outsz, err, src, "%s.text_model.final_layer_norm.%s", te, b);
    if (!(b = eat(r, "transformer.resblocks.")) || !(b = eat_int(b, &i))) return unmapped(err, src);
    if (!strcmp(b, "attn.in_proj_weight") || !strcmp(b, "attn.in_proj_bias")) {
        if (put(out, outsz, err, src, "%s.text_model.encoder.layers.%d.self_attn.q_proj.%s", te, i,
                b[13] == 'w' ? "weight" : "bias") < 0)
            return -1;
        return LDM_SPLIT;
    }
    const char *to = rename_prefix(clip_layer, N(clip_layer), b, &tail);
    if (!to || !is_param(tail)) return unmapped(err, src);
    return put(out, outsz, err, src, "%s.text_model.encoder.layers.%d.%s.%s", te, i, to, tail);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int ldm_map_name(const ldm_map *m, const char *src, char *out, size_t outsz, sd_err *err)
{
    const char *r;
    if (ends_with(src, "position_ids")) return LDM_IGNORE;
    if ((r = eat(src, "model.diffusion_model."))) return map_unet(m, src, r, out, outsz, err);
    if ((r = eat(src, "first_stage_model."))) return map_vae(m, src, r, out, outsz, err);
    if ((r = eat(src, "cond_stage_model.transformer."))) {
        const char *t = eat(r, "text_model.");
        return put(out, outsz, err, src, "text_encoder.text_model.%s", t ? t : r);
    }
    if ((r = eat(src, "cond_stage_model.model."))) return map_openclip(src, r, "text_encoder", 0, out, outsz, err);
    /* SDXL: embedder 0 = CLIP-L (HF names), embedder 1 = OpenCLIP-bigG */
    if ((r = eat(src, "conditioner.embedders.0.transformer."))) {
        const char *t = eat(r, "text_model.");
        return put(out, outsz, err, src, "text_encoder.text_model.%s", t ? t : r);
    }
    if ((r = eat(src, "conditioner.embedders.1.model.")))
        return map_openclip(src, r, "text_encoder_2", 1, out, outsz, err);
    /* the SDXL refiner's only tower, OpenCLIP-bigG, is embedder 0: kept as the
     * second tower so that the family rule sees (and refuses) a refiner */
    if ((r = eat(src, "conditioner.embedders.0.model.")))
        return map_openclip(src, r, "text_encoder_2", 1, out, outsz, err);
    /* the LDM noise schedule: A1111's k-diffusion sigmas come from it */
    if (!strcmp(src, "alphas_cumprod")) return put(out, outsz, err, src, "scheduler.alphas_cumprod");
    return LDM_IGNORE;  /* the other LDM buffers (betas, ...), model_ema.*, anything else */
}

int ldm_diffusers_name(const char *component, const char *src, char *out, size_t outsz)
{
    static const ren old_attn[] = {
        {"query", "to_q"}, {"key", "to_k"}, {"value", "to_v"}, {"proj_attn", "to_out.0"},
    };
    if (ends_with(src, "position_ids")) return LDM_IGNORE;
    const char *at = strstr(src, "mid_block.attentions.0.");
    if (!strcmp(component, "vae") && at) {
        const char *rest = at + strlen("mid_block.attentions.0."), *tail;
        const char *to = rename_prefix(old_attn, N(old_attn), rest, &tail);
        if (to) {
            int n = snprintf(out, outsz, "vae.%.*s%s.%s", (int)(rest - src), src, to, tail);
            return n < 0 || (size_t)n >= outsz ? -1 : LDM_KEEP;
        }
    }
    int n = snprintf(out, outsz, "%s.%s", component, src);
    return n < 0 || (size_t)n >= outsz ? -1 : LDM_KEEP;
}
