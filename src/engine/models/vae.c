/* vae.c — the KL autoencoder's decoder and encoder (see vae.h).
 *
 * Laid out like llama2.c: config (read from shapes while the weights are
 * gathered) -> weights (views of the loader's fp32 tensors) -> workspace
 * (three ping-pong activation buffers sized for the largest stage) ->
 * forward.  Decoder, in diffusers order:
 *
 *   post_quant_conv (1x1) -> conv_in -> mid [resnet, attention, resnet]
 *   -> up_blocks 0..L-1 (up_blocks.0 next to the latent; each n resnets,
 *      then nearest-2x + 3x3 conv except the last) -> GroupNorm+SiLU -> conv_out
 *
 * Encoder: conv_in -> down_blocks (n resnets, then a stride-2 3x3 conv on the
 * input padded by one row/column at the bottom/right, except the last) ->
 * mid -> GroupNorm+SiLU -> conv_out (2Z) -> quant_conv (1x1) = moments.
 *
 * ResNet block: x + conv2(silu(gn2(conv1(silu(gn1(x)))))), with a 1x1
 * conv_shortcut on x when channels change.  Attention: single head over the
 * HW positions of gn(x), q/k/v/out linear (weights [C,C] or [C,C,1,1]),
 * scale 1/sqrt(C), residual.  GroupNorm: 32 groups, eps 1e-6. */
#include "vae.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../loader/family.h"
#include "../ops/ops.h"
#include "../../base/alloc.h"

#define VAE_GN_EPS 1e-6f
#define VAE_MAX_LEVELS 8

typedef struct vae_resnet {
    int cin, cout;
    const float *n1_w, *n1_b, *c1_b, *n2_w, *n2_b, *c2_b;
    ops_weight *c1_w, *c2_w;
    ops_weight *sc_w;           /* 1x1 shortcut when cin != cout, else NULL */
    const float *sc_b;
} vae_resnet;

typedef struct vae_attn {
    int c;
    const float *gn_w, *gn_b, *q_b, *k_b, *v_b, *o_b;
    ops_weight *q_w, *k_w, *v_w, *o_w;
} vae_attn;

typedef struct vae_mid {
    vae_resnet r0, r1;
    int has_attn;
    vae_attn attn;
} vae_mid;

typedef struct vae_level {
    int nres;
    vae_resnet *res;
    ops_weight *samp_w;             /* up/down-sampling conv, NULL on the last level */
    const float *samp_b;
    int cout;                       /* channels leaving the level */
} vae_level;

typedef struct vae_coder {
    int present;
    ops_weight *conv_in_w;                 /* [C, IC, 3, 3] */
    const float *conv_in_b;
    int conv_in_ic, conv_in_oc;
    int nlev;
    vae_level lev[VAE_MAX_LEVELS];
    vae_mid mid;
    const float *norm_w, *norm_b;          /* conv_norm_out over cnorm channels */
    int cnorm;
    ops_weight *conv_out_w;                /* [OC, cnorm, 3, 3] */
    const float *conv_out_b;
    int conv_out_oc;
    ops_weight *quant_w;                   /* quant_conv / post_quant_conv, or NULL */
    const float *quant_b;
} vae_coder;

typedef struct vae_ws {
    size_t cap, attn_cap;
    float *cur, *nxt, *tmp;   /* ping-pong activations, cap floats each */
    float *q, *k, *v;         /* mid-block attention, attn_cap floats each */
} vae_ws;

struct sd_vae {
    int zch, img_ch, scale, groups;
    float scaling;
    vae_coder dec, enc;
    vae_ws ws;
    ops_m om;        /* its ops' context and precision (OPS_*) */
    ops_ctx *own;    /* the context it made itself (vae_load without one), or NULL */
    /* the tiled decode (vae_set_tiling; "tiled decode" below) */
    int tiling, tile_rows;
    struct vae_tiles {
        float *a, *b, *s, *t, *coef;   /* full tensors a, b; stripe scratch s, t; GroupNorm coefficients */
        size_t acap, bcap, scap, ccap; /* their floats (s and t scap each) */
    } tl;
};

/* ---- loading ---------------------------------------------------------- */

typedef struct vae_loader {
    const sd_weights *w;
    ops_ctx *ctx;
    sd_err *err;
    int groups;
    char name[200];
} vae_loader;

static const char *vname(vae_loader *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *vname(vae_loader *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->name, sizeof L->name, fmt, ap);
    va_end(ap);
    return L->name;
}

static const float *vec(vae_loader *L, const char *name, int n)
{
    const sdw_tensor *t = sdw_need1(L->w, L->err, name, n);
    return t ? t->data : NULL;
}

/* GroupNorm affine pair "<prefix>.weight/.bias" over c channels. */
static void norm(vae_loader *L, const char *prefix, int c, const float **wt, const float **bs)
{
    char p[200];
    snprintf(p, sizeof p, "%s", prefix);
    if (c % L->groups)
        sd_errf(L->err, SD_EFORMAT, p, "VAE GroupNorm %s has %d channels, not divisible by %d groups",
                p, c, L->groups);
    *wt = vec(L, vname(L, "%s.weight", p), c);
    *bs = vec(L, vname(L, "%s.bias", p), c);
}

/* The tensor t as a weight handle (NULL when t is). */
static ops_weight *handle(vae_loader *L, const sdw_tensor *t)
{
    ops_weight *h = t ? sdw_weight(t, L->ctx) : NULL;
    if (t && !h) sd_errf(L->err, SD_ENOMEM, "", "out of memory registering %s", t->name);
    return h;
}

/* Conv "<prefix>.weight/.bias" [oc, ic, k, k]; oc or ic -1 = read it (returned). */
static ops_weight *conv(vae_loader *L, const char *prefix, int *oc, int *ic, int k, const float **bias)
{
    char p[200];
    snprintf(p, sizeof p, "%s", prefix);
    const sdw_tensor *t = sdw_need4(L->w, L->err, vname(L, "%s.weight", p), *oc, *ic, k, k);
    *bias = NULL;
    if (!t) return NULL;
    *oc = (int)t->shape[0];
    *ic = (int)t->shape[1];
    *bias = vec(L, vname(L, "%s.bias", p), *oc);
    return handle(L, t);
}

/* A [c, c] matrix stored as [c, c] or [c, c, 1, 1] (VAE attention q/k/v/out). */
static ops_weight *matrix(vae_loader *L, const char *name, int c)
{
    const sdw_tensor *t = sdw_get(L->w, name);
    if (!t) { sdw_need2(L->w, L->err, name, c, c); return NULL; }
    int ok = (t->ndim == 2 || (t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1)) &&
             t->shape[0] == c && t->shape[1] == c;
    if (!ok) {
        sd_errf(L->err, SD_EFORMAT, name, "tensor %s (%s in %s) has %d dims [%lld,%lld,...], "
                "expected [%d,%d] or [%d,%d,1,1]", name, t->src_name ? t->src_name : name,
                t->file ? t->file : "?", t->ndim, (long long)t->shape[0],
                (long long)(t->ndim > 1 ? t->shape[1] : 0), c, c, c, c);
        return NULL;
    }
    return handle(L, t);
}

/* ResNet block "<prefix>" taking *ch channels; updates *ch to its output. */
static void resnet(vae_loader *L, const char *prefix, int *ch, vae_resnet *r)
{
    char p[200];
    snprintf(p, sizeof p, "%s", prefix);
    r->cin = *ch;
    int oc = -1, ic = r->cin;
    norm(L, vname(L, "%s.norm1", p), r->cin, &r->n1_w, &r->n1_b);
    r->c1_w = conv(L, vname(L, "%s.conv1", p), &oc, &ic, 3, &r->c1_b);
    if (!r->c1_w) return;
    r->cout = oc;
    norm(L, vname(L, "%s.norm2", p), r->cout, &r->n2_w, &r->n2_b);
    ic = oc;
    r->c2_w = conv(L, vname(L, "%s.conv2", p), &oc, &ic, 3, &r->c2_b);
    r->sc_w = NULL;
    r->sc_b = NULL;
    if (r->cin != r->cout) {
        oc = r->cout; ic = r->cin;
        r->sc_w = conv(L, vname(L, "%s.conv_shortcut", p), &oc, &ic, 1, &r->sc_b);
    }
    *ch = r->cout;
}

static void attention(vae_loader *L, const char *prefix, int c, vae_attn *a)
{
    char p[200];
    snprintf(p, sizeof p, "%s", prefix);
    a->c = c;
    norm(L, vname(L, "%s.group_norm", p), c, &a->gn_w, &a->gn_b);
    a->q_w = matrix(L, vname(L, "%s.to_q.weight", p), c);
    a->q_b = vec(L, vname(L, "%s.to_q.bias", p), c);
    a->k_w = matrix(L, vname(L, "%s.to_k.weight", p), c);
    a->k_b = vec(L, vname(L, "%s.to_k.bias", p), c);
    a->v_w = matrix(L, vname(L, "%s.to_v.weight", p), c);
    a->v_b = vec(L, vname(L, "%s.to_v.bias", p), c);
    a->o_w = matrix(L, vname(L, "%s.to_out.0.weight", p), c);
    a->o_b = vec(L, vname(L, "%s.to_out.0.bias", p), c);
}

static void mid_block(vae_loader *L, const char *coder, int *ch, vae_mid *m)
{
    char p[120];
    snprintf(p, sizeof p, "vae.%s.mid_block", coder);
    resnet(L, vname(L, "%s.resnets.0", p), ch, &m->r0);
    m->has_attn = sdw_getf(L->w, "%s.attentions.0.group_norm.weight", p) != NULL;
    if (m->has_attn) attention(L, vname(L, "%s.attentions.0", p), *ch, &m->attn);
    resnet(L, vname(L, "%s.resnets.1", p), ch, &m->r1);
}

/* Levels of "vae.<coder>.<blocks>.N": resnets then "<sampler>s.0.conv". */
static void levels(vae_loader *L, const char *coder, const char *blocks, const char *sampler,
                   int *ch, vae_coder *c)
{
    c->nlev = 0;
    while (sdw_getf(L->w, "vae.%s.%s.%d.resnets.0.conv1.weight", coder, blocks, c->nlev)) c->nlev++;
    if (c->nlev == 0 || c->nlev > VAE_MAX_LEVELS) {
        sd_errf(L->err, SD_EFORMAT, "vae", "VAE %s in %s has %d %s (expected 1..%d)", coder,
                sdw_path(L->w), c->nlev, blocks, VAE_MAX_LEVELS);
        return;
    }
    for (int i = 0; i < c->nlev; i++) {
        vae_level *lv = &c->lev[i];
        lv->nres = 0;
        while (sdw_getf(L->w, "vae.%s.%s.%d.resnets.%d.conv1.weight", coder, blocks, i, lv->nres)) lv->nres++;
        lv->res = sd_calloc(lv->nres, sizeof *lv->res);
        if (!lv->res) { sd_errf(L->err, SD_ENOMEM, "", "out of memory loading the VAE"); return; }
        for (int j = 0; j < lv->nres && L->err->code == SD_OK; j++) {
            char p[120];
            snprintf(p, sizeof p, "vae.%s.%s.%d.resnets.%d", coder, blocks, i, j);
            resnet(L, p, ch, &lv->res[j]);
        }
        lv->samp_w = NULL;
        lv->samp_b = NULL;
        if (sdw_getf(L->w, "vae.%s.%s.%d.%s.0.conv.weight", coder, blocks, i, sampler)) {
            int oc = *ch, ic = *ch;
            lv->samp_w = conv(L, vname(L, "vae.%s.%s.%d.%s.0.conv", coder, blocks, i, sampler),
                              &oc, &ic, 3, &lv->samp_b);
        }
        lv->cout = *ch;
        if (L->err->code != SD_OK) return;
    }
}

static int count_samplers(const vae_coder *c)
{
    int n = 0;
    for (int i = 0; i < c->nlev; i++) n += c->lev[i].samp_w != NULL;
    return n;
}

static void load_decoder(vae_loader *L, sd_vae *v)
{
    vae_coder *d = &v->dec;
    d->present = 1;
    int oc = -1, ic = -1;
    d->conv_in_w = conv(L, "vae.decoder.conv_in", &oc, &ic, 3, &d->conv_in_b);
    if (!d->conv_in_w) return;
    d->conv_in_oc = oc; d->conv_in_ic = ic;
    v->zch = ic;
    if (sdw_get(L->w, "vae.post_quant_conv.weight")) {
        int z = v->zch, z2 = v->zch;
        d->quant_w = conv(L, "vae.post_quant_conv", &z, &z2, 1, &d->quant_b);
    }
    int ch = oc;
    mid_block(L, "decoder", &ch, &d->mid);
    if (L->err->code) return;
    levels(L, "decoder", "up_blocks", "upsamplers", &ch, d);
    if (L->err->code) return;
    d->cnorm = ch;
    norm(L, "vae.decoder.conv_norm_out", ch, &d->norm_w, &d->norm_b);
    oc = -1; ic = ch;
    d->conv_out_w = conv(L, "vae.decoder.conv_out", &oc, &ic, 3, &d->conv_out_b);
    d->conv_out_oc = oc;
    v->img_ch = oc;
    if (L->err->code) return;
    if (d->lev[d->nlev - 1].samp_w)
        sd_errf(L->err, SD_EFORMAT, "vae.decoder", "VAE decoder in %s upsamples after its last level",
                sdw_path(L->w));
    v->scale = 1 << count_samplers(d);
}

static void load_encoder(vae_loader *L, sd_vae *v)
{
    vae_coder *e = &v->enc;
    if (!sdw_get(L->w, "vae.encoder.conv_in.weight")) return;
    e->present = 1;
    int oc = -1, ic = v->img_ch;
    e->conv_in_w = conv(L, "vae.encoder.conv_in", &oc, &ic, 3, &e->conv_in_b);
    if (!e->conv_in_w) return;
    e->conv_in_oc = oc; e->conv_in_ic = ic;
    int ch = oc;
    levels(L, "encoder", "down_blocks", "downsamplers", &ch, e);
    if (L->err->code) return;
    mid_block(L, "encoder", &ch, &e->mid);
    e->cnorm = ch;
    norm(L, "vae.encoder.conv_norm_out", ch, &e->norm_w, &e->norm_b);
    oc = 2 * v->zch; ic = ch;
    e->conv_out_w = conv(L, "vae.encoder.conv_out", &oc, &ic, 3, &e->conv_out_b);
    e->conv_out_oc = oc;
    if (sdw_get(L->w, "vae.quant_conv.weight")) {
        int z = 2 * v->zch, z2 = 2 * v->zch;
        e->quant_w = conv(L, "vae.quant_conv", &z, &z2, 1, &e->quant_b);
    }
    if (L->err->code) return;
    if (1 << count_samplers(e) != v->scale)
        sd_errf(L->err, SD_EFORMAT, "vae.encoder", "VAE in %s: encoder downsamples by %d but the "
                "decoder upsamples by %d", sdw_path(L->w), 1 << count_samplers(e), v->scale);
}

/* vae/config.json of a diffusers folder (scaling_factor, norm_num_groups;
 * config.json beside a lone VAE's file), else the LDM config beside a single
 * file (vae.scale_factor, or sgm's top-level scale_factor).  *scaling stays 0 when no config names it. */
static void read_config(const sd_weights *w, float *scaling, int *groups)
{
    *scaling = 0;
    *groups = 32;
    size_t len = 0;
    char *txt = sdw_folder_file(w, sdw_is_vae_only(w) ? "config.json" : "vae/config.json", &len);
    int ldm = !txt;
    if (ldm) txt = sdw_ldm_config(w, &len);
    if (!txt) return;
    json_t *j = json_loadb(txt, len, 0, NULL);
    free(txt);
    if (!j) return;
    json_t *s = ldm ? json_object_get(json_object_get(j, "vae"), "scale_factor") : json_object_get(j, "scaling_factor");
    if (ldm && !s) s = json_object_get(j, "scale_factor");   /* sgm (SDXL) configs: at the top level */
    if (json_is_number(s) && json_number_value(s) > 0) *scaling = (float)json_number_value(s);
    json_t *g = ldm ? NULL : json_object_get(j, "norm_num_groups");
    if (json_is_integer(g) && json_integer_value(g) > 0 && json_integer_value(g) <= 1024)
        *groups = (int)json_integer_value(g);
    json_decref(j);
}

static void ws_free(vae_ws *ws)
{
    free(ws->cur); free(ws->nxt); free(ws->tmp);
    free(ws->q); free(ws->k); free(ws->v);
    memset(ws, 0, sizeof *ws);
}

static void tiles_free(struct vae_tiles *tl)
{
    free(tl->a); free(tl->b); free(tl->s); free(tl->t); free(tl->coef);
    memset(tl, 0, sizeof *tl);
}

static void resnet_free(vae_resnet *r)
{
    ops_weight_free(r->c1_w);
    ops_weight_free(r->c2_w);
    ops_weight_free(r->sc_w);
}

/* The coder's level arrays, and with weights (a shared context) its handles. */
static void coder_free(vae_coder *c, int weights)
{
    for (int i = 0; i < c->nlev; i++) {
        for (int j = 0; weights && c->lev[i].res && j < c->lev[i].nres; j++) resnet_free(&c->lev[i].res[j]);
        if (weights) ops_weight_free(c->lev[i].samp_w);
        free(c->lev[i].res);
    }
    if (!weights) return;
    resnet_free(&c->mid.r0);
    resnet_free(&c->mid.r1);
    ops_weight *h[] = {c->mid.attn.q_w, c->mid.attn.k_w, c->mid.attn.v_w, c->mid.attn.o_w,
                       c->conv_in_w, c->conv_out_w, c->quant_w};
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) ops_weight_free(h[i]);
}

void vae_free(sd_vae *v)
{
    if (!v) return;
    coder_free(&v->dec, !v->own);   /* a shared context: its handles go now */
    coder_free(&v->enc, !v->own);
    ws_free(&v->ws);
    tiles_free(&v->tl);
    ops_ctx_free(v->own);
    free(v);
}

sd_vae *vae_load(const sd_weights *w, ops_ctx *ctx, sd_err *err)
{
    sd_err local;
    if (!err) { sd_err_clear(&local); err = &local; }
    sd_vae *v = sd_calloc(1, sizeof *v);
    if (!v || (!ctx && !(v->own = ctx = ops_ctx_new(0)))) {
        free(v);
        sd_errf(err, SD_ENOMEM, "", "out of memory loading the VAE");
        return NULL;
    }
    v->om = (ops_m){ctx, ops_default_precision()};
    read_config(w, &v->scaling, &v->groups);
    if (!v->scaling) v->scaling = sd_family_info(sd_family_decide(w))->vae_scaling;   /* SD 0.18215, SDXL 0.13025 */
    vae_loader L = {.w = w, .ctx = ctx, .err = err, .groups = v->groups};
    load_decoder(&L, v);
    if (err->code == SD_OK) load_encoder(&L, v);
    if (err->code != SD_OK) {
        sd_err_prefix(err, "loading the VAE");
        vae_free(v);
        return NULL;
    }
    return v;
}

int vae_scale(const sd_vae *v) { return v->scale; }
int vae_latent_channels(const sd_vae *v) { return v->zch; }
int vae_image_channels(const sd_vae *v) { return v->img_ch; }
float vae_scaling_factor(const sd_vae *v) { return v->scaling; }
void vae_set_scaling_factor(sd_vae *v, float s) { v->scaling = s; }

float vae_config_scaling(const sd_weights *w)
{
    float s;
    int groups;
    read_config(w, &s, &groups);
    return s;
}
int vae_has_encoder(const sd_vae *v) { return v->enc.present; }

/* ---- workspace -------------------------------------------------------- */

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

/* Largest activation (floats) of one image through a coder's levels,
 * starting at h x w with ch channels; up = 1 for the decoder. */
static size_t levels_need(const vae_coder *c, int up, size_t h, size_t w, size_t *oh, size_t *ow)
{
    size_t need = 0;
    for (int i = 0; i < c->nlev; i++) {
        const vae_level *lv = &c->lev[i];
        for (int j = 0; j < lv->nres; j++)
            need = zmax(need, (size_t)zmax(lv->res[j].cin, lv->res[j].cout) * h * w);
        if (!lv->samp_w) continue;
        if (up) { h *= 2; w *= 2; need = zmax(need, (size_t)lv->cout * h * w); }
        else { need = zmax(need, (size_t)lv->cout * (h + 1) * (w + 1)); h /= 2; w /= 2; }
    }
    *oh = h; *ow = w;
    return need;
}

static int ws_reserve(sd_vae *v, size_t need, size_t attn_need, sd_err *err)
{
    vae_ws *ws = &v->ws;
    if (need <= ws->cap && attn_need <= ws->attn_cap) return 0;
    need = zmax(need, ws->cap);
    attn_need = zmax(attn_need, ws->attn_cap);
    ws_free(ws);
    ws->cur = sd_malloc(need * sizeof(float));
    ws->nxt = sd_malloc(need * sizeof(float));
    ws->tmp = sd_malloc(need * sizeof(float));
    ws->q = sd_malloc(zmax(attn_need, 1) * sizeof(float));
    ws->k = sd_malloc(zmax(attn_need, 1) * sizeof(float));
    ws->v = sd_malloc(zmax(attn_need, 1) * sizeof(float));
    if (!ws->cur || !ws->nxt || !ws->tmp || !ws->q || !ws->k || !ws->v) {
        ws_free(ws);
        return sd_errf(err, SD_ENOMEM, "", "out of memory for VAE activations (%zu MB)",
                       (3 * need + 3 * attn_need) * sizeof(float) >> 20);
    }
    ws->cap = need;
    ws->attn_cap = attn_need;
    return 0;
}

/* ---- forward ---------------------------------------------------------- */

static void swap(float **a, float **b) { float *t = *a; *a = *b; *b = t; }

/* Activations are NHWC inside the coders (oneDNN's direct convs read and
 * write it natively); images and latents come and go as NCHW. */

/* cur[H, W, cin] -> cur[H, W, cout]; the residual add is fused into conv2.
 * With a 1x1 shortcut (cin != cout) the shortcut is taken first, so the
 * first norm can overwrite cur: at most one cin-wide and two cout-wide
 * tensors are live (the decoder's first 512x512 block: 256 + 2 x 128
 * channels, not 3 x 256). */
static void resnet_forward(const sd_vae *v, vae_ws *ws, const vae_resnet *r, int H, int W)
{
    const ops_m *om = &v->om;
    if (r->sc_w) {
        op_conv2d_nhwc(om, ws->cur, 1, r->cin, H, W, r->sc_w, r->sc_b, r->cout, 1, 1, 1, 0, ws->tmp, 0);
        op_gn_conv2d_nhwc(om, ws->cur, 1, r->cin, H, W, v->groups, NULL, r->n1_w, r->n1_b, VAE_GN_EPS, 1, ws->cur,
                          r->c1_w, r->c1_b, r->cout, 3, 3, 1, 1, ws->nxt, 0);
        op_gn_conv2d_nhwc(om, ws->nxt, 1, r->cout, H, W, v->groups, NULL, r->n2_w, r->n2_b, VAE_GN_EPS, 1, ws->nxt,
                          r->c2_w, r->c2_b, r->cout, 3, 3, 1, 1, ws->tmp, 1);
        swap(&ws->cur, &ws->tmp);
        return;
    }
    op_gn_conv2d_nhwc(om, ws->cur, 1, r->cin, H, W, v->groups, NULL, r->n1_w, r->n1_b, VAE_GN_EPS, 1, ws->tmp,
                      r->c1_w, r->c1_b, r->cout, 3, 3, 1, 1, ws->nxt, 0);
    op_gn_conv2d_nhwc(om, ws->nxt, 1, r->cout, H, W, v->groups, NULL, r->n2_w, r->n2_b, VAE_GN_EPS, 1, ws->nxt,
                      r->c2_w, r->c2_b, r->cout, 3, 3, 1, 1, ws->cur, 1);
}

/* cur[HW, C] += out(attention(q, k, v of gn(cur))) over the HW positions. */
static void attn_forward(const sd_vae *v, vae_ws *ws, const vae_attn *a, int HW)
{
    const ops_m *om = &v->om;
    int C = a->c;
    op_group_norm_nhwc(om, ws->cur, 1, C, HW, v->groups, NULL, a->gn_w, a->gn_b, VAE_GN_EPS, 0, ws->tmp);
    op_linear(om, ws->tmp, HW, C, a->q_w, a->q_b, C, ws->q);
    op_linear(om, ws->tmp, HW, C, a->k_w, a->k_b, C, ws->k);
    op_linear(om, ws->tmp, HW, C, a->v_w, a->v_b, C, ws->v);
    op_attention(om, ws->q, C, ws->k, C, ws->v, C, 1, HW, HW, 1, C, 1.0f / sqrtf((float)C), ws->nxt);
    op_linear_acc(om, ws->nxt, HW, C, a->o_w, a->o_b, C, ws->cur);
}

static void mid_forward(const sd_vae *v, vae_ws *ws, const vae_mid *m, int H, int W)
{
    resnet_forward(v, ws, &m->r0, H, W);
    if (m->has_attn) attn_forward(v, ws, &m->attn, H * W);
    resnet_forward(v, ws, &m->r1, H, W);
}

/* cur[H, W, C] -> cur[2H, 2W, C]: nearest 2x then 3x3 conv, in one op that
 * never makes the upsampled image. */
static void upsample_forward(const ops_m *om, vae_ws *ws, const vae_level *lv, int H, int W)
{
    int C = lv->cout;
    op_conv2d_nhwc_up2(om, ws->cur, 1, C, H, W, lv->samp_w, lv->samp_b, C, ws->tmp);
    swap(&ws->cur, &ws->tmp);
}

/* cur[H, W, C] -> cur[H/2, W/2, C]: pad one zero row/column at the bottom and
 * right, then 3x3 conv with stride 2 and no padding. */
static void downsample_forward(const ops_m *om, vae_ws *ws, const vae_level *lv, int H, int W)
{
    int C = lv->cout, PH = H + 1, PW = W + 1;
    size_t row = (size_t)W * C;
    for (int y = 0; y < H; y++) {
        float *dst = ws->nxt + (size_t)y * PW * C;
        memcpy(dst, ws->cur + y * row, row * sizeof(float));
        memset(dst + row, 0, C * sizeof(float));
    }
    memset(ws->nxt + (size_t)H * PW * C, 0, (size_t)PW * C * sizeof(float));
    op_conv2d_nhwc(om, ws->nxt, 1, C, PH, PW, lv->samp_w, lv->samp_b, C, 3, 3, 2, 0, ws->tmp, 0);
    swap(&ws->cur, &ws->tmp);
}

/* One latent z[Z, h, w] -> ws->cur[h, w, C]: post_quant_conv, conv_in, mid. */
static void decode_head(sd_vae *v, const float *z, int h, int w)
{
    const vae_coder *d = &v->dec;
    vae_ws *ws = &v->ws;
    const ops_m *om = &v->om;
    if (d->quant_w) {
        op_nchw_to_nlc(z, 1, v->zch, h * w, ws->tmp);
        op_conv2d_nhwc(om, ws->tmp, 1, v->zch, h, w, d->quant_w, d->quant_b, v->zch, 1, 1, 1, 0, ws->nxt, 0);
    } else {
        op_nchw_to_nlc(z, 1, v->zch, h * w, ws->nxt);
    }
    op_conv2d_nhwc(om, ws->nxt, 1, v->zch, h, w, d->conv_in_w, d->conv_in_b, d->conv_in_oc, 3, 3, 1, 1, ws->cur, 0);
    mid_forward(v, ws, &d->mid, h, w);
}

/* One latent z[Z, h, w] -> img[3, h*s, w*s]. */
static void decode_one(sd_vae *v, const float *z, int h, int w, float *img)
{
    const vae_coder *d = &v->dec;
    vae_ws *ws = &v->ws;
    const ops_m *om = &v->om;
    decode_head(v, z, h, w);
    for (int i = 0; i < d->nlev; i++) {
        const vae_level *lv = &d->lev[i];
        for (int j = 0; j < lv->nres; j++) resnet_forward(v, ws, &lv->res[j], h, w);
        if (lv->samp_w) { upsample_forward(om, ws, lv, h, w); h *= 2; w *= 2; }
    }
    op_gn_conv2d_nhwc(om, ws->cur, 1, d->cnorm, h, w, v->groups, NULL, d->norm_w, d->norm_b, VAE_GN_EPS, 1, ws->tmp,
                      d->conv_out_w, d->conv_out_b, d->conv_out_oc, 3, 3, 1, 1, ws->nxt, 0);
    op_nlc_to_nchw(ws->nxt, 1, d->conv_out_oc, h * w, img);
}

/* One image img[3, H, W] -> moments[2Z, H/s, W/s]. */
static void encode_one(sd_vae *v, const float *img, int H, int W, float *moments)
{
    const vae_coder *e = &v->enc;
    vae_ws *ws = &v->ws;
    const ops_m *om = &v->om;
    op_nchw_to_nlc(img, 1, e->conv_in_ic, H * W, ws->tmp);
    op_conv2d_nhwc(om, ws->tmp, 1, e->conv_in_ic, H, W, e->conv_in_w, e->conv_in_b, e->conv_in_oc, 3, 3, 1, 1, ws->cur,
                   0);
    for (int i = 0; i < e->nlev; i++) {
        const vae_level *lv = &e->lev[i];
        for (int j = 0; j < lv->nres; j++) resnet_forward(v, ws, &lv->res[j], H, W);
        if (lv->samp_w) { downsample_forward(om, ws, lv, H, W); H /= 2; W /= 2; }
    }
    mid_forward(v, ws, &e->mid, H, W);
    op_gn_conv2d_nhwc(om, ws->cur, 1, e->cnorm, H, W, v->groups, NULL, e->norm_w, e->norm_b, VAE_GN_EPS, 1, ws->tmp,
                      e->conv_out_w, e->conv_out_b, e->conv_out_oc, 3, 3, 1, 1, ws->nxt, 0);
    float *co = ws->nxt;
    if (e->quant_w) {
        op_conv2d_nhwc(om, ws->nxt, 1, 2 * v->zch, H, W, e->quant_w, e->quant_b, 2 * v->zch, 1, 1, 1, 0, ws->tmp, 0);
        co = ws->tmp;
    }
    op_nlc_to_nchw(co, 1, 2 * v->zch, H * W, moments);
}

/* Largest latent/image side accepted (pixels): bounds the buffer arithmetic. */
#define VAE_MAX_SIDE 16384

/* Workspace floats (per ping-pong buffer, and per attention buffer) of
 * decode_head on one h x w latent. */
static size_t dec_head_need(const sd_vae *v, size_t h, size_t w, size_t *attn)
{
    const vae_coder *d = &v->dec;
    size_t hw = h * w;
    size_t need = zmax((size_t)zmax(v->zch, d->conv_in_oc) * hw, (size_t)d->mid.r0.cin * hw);
    need = zmax(need, (size_t)zmax(d->mid.r0.cout, d->mid.r1.cout) * hw);
    *attn = d->mid.has_attn ? (size_t)d->mid.attn.c * hw : 0;
    return need;
}

/* Workspace floats (per ping-pong buffer, and per attention buffer) to decode
 * one h x w latent; *oh, *ow get the image size. */
static size_t dec_need(const sd_vae *v, size_t h, size_t w, size_t *attn, size_t *oh, size_t *ow)
{
    const vae_coder *d = &v->dec;
    size_t need = dec_head_need(v, h, w, attn);
    need = zmax(need, levels_need(d, 1, h, w, oh, ow));
    need = zmax(need, (size_t)zmax(d->cnorm, d->conv_out_oc) * *oh * *ow);
    return need;
}

/* Same for encoding one H x W image; *oh, *ow get the latent size. */
static size_t enc_need(const sd_vae *v, size_t H, size_t W, size_t *attn, size_t *oh, size_t *ow)
{
    const vae_coder *e = &v->enc;
    size_t need = (size_t)zmax(e->conv_in_ic, e->conv_in_oc) * H * W;
    need = zmax(need, levels_need(e, 0, H, W, oh, ow));
    size_t hw = *oh * *ow;
    need = zmax(need, (size_t)zmax(e->mid.r0.cin, e->mid.r0.cout) * hw);
    need = zmax(need, (size_t)zmax(e->mid.r1.cout, e->cnorm) * hw);
    need = zmax(need, (size_t)e->conv_out_oc * hw);
    *attn = e->mid.has_attn ? (size_t)e->mid.attn.c * hw : 0;
    return need;
}

static int bad_latent(const sd_vae *v, int h, int w)
{
    return h < 1 || w < 1 || (size_t)h * v->scale > VAE_MAX_SIDE || (size_t)w * v->scale > VAE_MAX_SIDE;
}

void vae_release_activations(sd_vae *v)
{
    if (!v) return;
    vae_ws *ws = &v->ws;
    float *bufs[3] = {ws->cur, ws->nxt, ws->tmp};
    for (int i = 0; i < 3; i++) ops_release_pages(bufs[i], ws->cap * sizeof(float));
    float *abufs[3] = {ws->q, ws->k, ws->v};
    for (int i = 0; i < 3; i++) ops_release_pages(abufs[i], ws->attn_cap * sizeof(float));
    struct vae_tiles *tl = &v->tl;
    ops_release_pages(tl->a, tl->acap * sizeof(float));
    ops_release_pages(tl->b, tl->bcap * sizeof(float));
    ops_release_pages(tl->s, tl->scap * sizeof(float));
    ops_release_pages(tl->t, tl->scap * sizeof(float));
}

int vae_reserve(sd_vae *v, int h, int w, size_t *bytes, sd_err *err)
{
    if (bad_latent(v, h, w))
        return sd_errf(err, SD_EINVAL, "", "VAE reserve: bad latent size %d x %d", h, w);
    size_t oh, ow, attn, eattn = 0;
    size_t need = dec_need(v, h, w, &attn, &oh, &ow);
    if (v->enc.present) need = zmax(need, enc_need(v, oh, ow, &eattn, &oh, &ow));
    attn = zmax(attn, eattn);
    if (ws_reserve(v, need, attn, err)) return -1;
    if (bytes) *bytes = 3 * (v->ws.cap + v->ws.attn_cap) * sizeof(float);
    return 0;
}

/* ---- tiled decode ------------------------------------------------------
 *
 * Exact by construction but for the convs' blocking (docs/ACCURACY.md
 * "Tiled VAE decode"): post_quant_conv, conv_in and the mid block (whose
 * attention is global) run as above at the latent's size; then the up
 * blocks run layer by layer over row stripes.  Full tensors live in two
 * buffers — a, the running activation, and b, a ResNet's hidden one — and
 * every GroupNorm's scale and shift are computed over its whole input
 * before any stripe is normalised, so they are the untiled decode's.  Each
 * 3x3 conv reads its stripe plus one halo row above and below, normalised
 * into the scratch s, and writes t; only the stripe's own rows are kept
 * (the edge stripes' windows are moved inside the image, so all have one
 * height).
 * A ResNet's output replaces its input in a (in place: its rows are read
 * before they are written, and it is no wider), the upsampler fills a from
 * the bottom stripe up (its output rows lie past the input rows still to
 * be read).  Live at once: a, b and two stripes, not three whole tensors. */

/* Floats of each stripe scratch when no stripe height is forced. */
#define VAE_TILE_SCRATCH ((size_t)32 << 20)

/* The residual a stripe's conv adds to: rows of x (c channels), through
 * the 1x1 conv w when it has one. */
typedef struct vae_resid {
    const float *x;
    int c;
    ops_weight *w;
    const float *b;
} vae_resid;

static int imin(int a, int b) { return a < b ? a : b; }

/* The tiled decoder works in place: no ResNet may widen its input. */
static int tiles_fit(const vae_coder *d)
{
    for (int i = 0; i < d->nlev; i++)
        for (int j = 0; j < d->lev[i].nres; j++)
            if (d->lev[i].res[j].cout > d->lev[i].res[j].cin) return 0;
    return 1;
}

void vae_set_tiling(sd_vae *v, int mode, int stripe_rows)
{
    v->tiling = mode;
    v->tile_rows = stripe_rows > 0 ? stripe_rows : 0;
}

int vae_tiled(const sd_vae *v, int h, int w)
{
    if (v->tiling == VAE_TILING_OFF || !tiles_fit(&v->dec)) return 0;
    size_t px = (size_t)h * v->scale * w * v->scale;
    return v->tiling == VAE_TILING_ON || px > VAE_TILE_AUTO_PIXELS;
}

/* The input rows [*a, *a + n) of the stripe of output rows [r0, r0 + R) of
 * an H-row 3x3 conv: the stripe and a halo row each side, moved inside the
 * image at its edges (there the conv's zero padding is the truth), so that
 * every stripe but a lone one has R + 2 rows: one primitive, one Winograd
 * weight layout per layer, not one per stripe height. */
static void stripe_window(int r0, int R, int H, int *a, int *n)
{
    *n = imin(R + 2, H);
    *a = r0 - 1 < 0 ? 0 : r0 - 1 > H - *n ? H - *n : r0 - 1;
}

/* Stripe height for a layer whose stripe takes `row` scratch floats per row. */
static int stripe_rows(const sd_vae *v, size_t row)
{
    if (v->tile_rows) return v->tile_rows;
    size_t r = v->tl.scap / row - 2;
    return r > 1 << 20 ? 1 << 20 : (int)r;
}

/* The two full buffers, the stripe scratch and the coefficients for one
 * h x w latent (grown once, like the workspace).  0 or -1 + err. */
static int tiles_reserve(sd_vae *v, size_t h, size_t w, sd_err *err)
{
    const vae_coder *d = &v->dec;
    size_t a = (size_t)d->mid.r1.cout * h * w, b = 0, row = 0, cmax = d->cnorm;
    for (int i = 0; i < d->nlev; i++) {
        const vae_level *lv = &d->lev[i];
        for (int j = 0; j < lv->nres; j++) {
            const vae_resnet *r = &lv->res[j];
            a = zmax(a, (size_t)r->cin * h * w);
            b = zmax(b, (size_t)r->cout * h * w);
            row = zmax(row, w * r->cin);
            cmax = zmax(cmax, r->cin);
        }
        if (!lv->samp_w) continue;
        row = zmax(row, 4 * w * lv->cout);
        h *= 2; w *= 2;
        a = zmax(a, (size_t)lv->cout * h * w);
    }
    row = zmax(row, w * zmax(d->cnorm, d->conv_out_oc));
    size_t s = v->tile_rows ? (v->tile_rows + 2) * row : zmax(VAE_TILE_SCRATCH, 3 * row);
    struct vae_tiles *tl = &v->tl;
    if (a <= tl->acap && b <= tl->bcap && s <= tl->scap && 2 * cmax <= tl->ccap) return 0;
    a = zmax(a, tl->acap); b = zmax(b, tl->bcap); s = zmax(s, tl->scap); cmax = zmax(2 * cmax, tl->ccap);
    tiles_free(tl);
    tl->a = sd_malloc(a * sizeof(float));
    tl->b = sd_malloc(b * sizeof(float));
    tl->s = sd_malloc(s * sizeof(float));
    tl->t = sd_malloc(s * sizeof(float));
    tl->coef = sd_malloc(cmax * sizeof(float));
    if (!tl->a || !tl->b || !tl->s || !tl->t || !tl->coef) {
        tiles_free(tl);
        return sd_errf(err, SD_ENOMEM, "", "out of memory for the tiled VAE decode (%zu MB)",
                       (a + b + 2 * s) * sizeof(float) >> 20);
    }
    tl->acap = a; tl->bcap = b; tl->scap = s; tl->ccap = cmax;
    return 0;
}

/* Rows [r0, r1) of an H x W x OC stripe (rows p of t) into the image's NCHW planes. */
static void stripe_to_nchw(const float *t, int rows, int W, int OC, size_t plane, float *img)
{
    for (int c = 0; c < OC; c++)
        for (size_t p = 0; p < (size_t)rows * W; p++) img[c * plane + p] = t[p * OC + c];
}

/* y[H, W, OC] = conv3x3(silu(gn(x[H, W, C]))) (+ res), stripe by stripe;
 * with img, the result goes to img[OC, H, W] instead of y. */
static void gn_conv_tiled(sd_vae *v, const float *x, int C, int H, int W, const float *gw, const float *gb,
                          ops_weight *cw, const float *cb, int OC, const vae_resid *res, float *y, float *img)
{
    struct vae_tiles *tl = &v->tl;
    const ops_m *om = &v->om;
    op_group_norm_coefs_nhwc(om, x, C, H * W, v->groups, gw, gb, VAE_GN_EPS, tl->coef, tl->coef + C);
    size_t rin = (size_t)W * C, rout = (size_t)W * OC;
    int R = stripe_rows(v, zmax(rin, rout));
    for (int r0 = 0; r0 < H; r0 += R) {
        int r1 = imin(H, r0 + R), a, n;
        stripe_window(r0, R, H, &a, &n);
        int b = a + n;
        float *mid = tl->t + (r0 - a) * rout;   /* the stripe's own rows of t */
        op_channel_affine_nhwc(x + a * rin, (size_t)(b - a) * W, C, tl->coef, tl->coef + C, 1, tl->s);
        if (res) {
            memset(tl->t, 0, (size_t)(b - a) * rout * sizeof(float));
            if (res->w) op_conv2d_nhwc(om, res->x + (size_t)r0 * W * res->c, 1, res->c, r1 - r0, W, res->w, res->b,
                                       OC, 1, 1, 1, 0, mid, 0);
            else memcpy(mid, res->x + r0 * rout, (r1 - r0) * rout * sizeof(float));
        }
        op_conv2d_nhwc(om, tl->s, 1, C, b - a, W, cw, cb, OC, 3, 3, 1, 1, tl->t, res != NULL);
        if (img) stripe_to_nchw(mid, r1 - r0, W, OC, (size_t)H * W, img + (size_t)r0 * W);
        else memcpy(y + r0 * rout, mid, (r1 - r0) * rout * sizeof(float));
    }
}

/* a[H, W, cin] -> a[H, W, cout], the hidden activation in b. */
static void resnet_tiled(sd_vae *v, const vae_resnet *r, int H, int W)
{
    struct vae_tiles *tl = &v->tl;
    gn_conv_tiled(v, tl->a, r->cin, H, W, r->n1_w, r->n1_b, r->c1_w, r->c1_b, r->cout, NULL, tl->b, NULL);
    vae_resid res = {tl->a, r->cin, r->sc_w, r->sc_b};
    gn_conv_tiled(v, tl->b, r->cout, H, W, r->n2_w, r->n2_b, r->c2_w, r->c2_b, r->cout, &res, tl->a, NULL);
}

/* a[H, W, C] -> a[2H, 2W, C], bottom stripe first. */
static void upsample_tiled(sd_vae *v, const vae_level *lv, int H, int W)
{
    struct vae_tiles *tl = &v->tl;
    int C = lv->cout;
    size_t row = (size_t)W * C;
    int R = stripe_rows(v, 4 * row);
    for (int k = (H - 1) / R; k >= 0; k--) {
        int r0 = k * R, r1 = imin(H, r0 + R), a, n;
        stripe_window(r0, R, H, &a, &n);
        int b = a + n;
        memcpy(tl->s, tl->a + a * row, (b - a) * row * sizeof(float));
        op_conv2d_nhwc_up2(&v->om, tl->s, 1, C, b - a, W, lv->samp_w, lv->samp_b, C, tl->t);
        memcpy(tl->a + 4 * r0 * row, tl->t + 4 * (r0 - a) * row, 4 * (r1 - r0) * row * sizeof(float));
    }
}

static void decode_one_tiled(sd_vae *v, const float *z, int h, int w, float *img)
{
    const vae_coder *d = &v->dec;
    decode_head(v, z, h, w);
    memcpy(v->tl.a, v->ws.cur, (size_t)d->mid.r1.cout * h * w * sizeof(float));
    for (int i = 0; i < d->nlev; i++) {
        const vae_level *lv = &d->lev[i];
        for (int j = 0; j < lv->nres; j++) resnet_tiled(v, &lv->res[j], h, w);
        if (lv->samp_w) { upsample_tiled(v, lv, h, w); h *= 2; w *= 2; }
    }
    gn_conv_tiled(v, v->tl.a, d->cnorm, h, w, d->norm_w, d->norm_b, d->conv_out_w, d->conv_out_b, d->conv_out_oc,
                  NULL, NULL, img);
}

static int decode_tiled(sd_vae *v, const float *z, int B, int h, int w, float *img, sd_err *err)
{
    size_t attn, need = dec_head_need(v, h, w, &attn);
    if (ws_reserve(v, need, attn, err) || tiles_reserve(v, h, w, err)) return -1;
    size_t zs = (size_t)v->zch * h * w, is = (size_t)v->img_ch * h * w * v->scale * v->scale;
    for (int b = 0; b < B; b++) decode_one_tiled(v, z + b * zs, h, w, img + b * is);
    return 0;
}

void vae_set_precision(sd_vae *v, int prec) { v->om.prec = prec; }
ops_ctx *vae_ops_ctx(const sd_vae *v) { return v->om.ctx; }

int vae_decode(sd_vae *v, const float *z, int B, int h, int w, float *img, sd_err *err)
{
    if (B < 1 || bad_latent(v, h, w))
        return sd_errf(err, SD_EINVAL, "", "VAE decode: bad size %d x [%d, %d, %d]", B, v->zch, h, w);
    size_t oh, ow, attn, hw = (size_t)h * w;
    size_t need = dec_need(v, h, w, &attn, &oh, &ow);
    if (vae_tiled(v, h, w)) return decode_tiled(v, z, B, h, w, img, err);
    if (ws_reserve(v, need, attn, err)) return -1;
    size_t zs = (size_t)v->zch * hw, is = (size_t)v->img_ch * oh * ow;
    for (int b = 0; b < B; b++) decode_one(v, z + b * zs, h, w, img + b * is);
    return 0;
}

int vae_encode_moments(sd_vae *v, const float *img, int B, int H, int W, float *moments, sd_err *err)
{
    if (!v->enc.present)
        return sd_errf(err, SD_EINVAL, "init_image", "this model's VAE has no encoder; img2img is not available");
    if (B < 1 || H < v->scale || W < v->scale || H % v->scale || W % v->scale ||
        H > VAE_MAX_SIDE || W > VAE_MAX_SIDE)
        return sd_errf(err, SD_EINVAL, "init_image", "VAE encode: image %d x %d is not a positive "
                       "multiple of %d (at most %d)", W, H, v->scale, VAE_MAX_SIDE);
    size_t oh, ow, attn;
    size_t need = enc_need(v, H, W, &attn, &oh, &ow);
    if (ws_reserve(v, need, attn, err)) return -1;
    size_t is = (size_t)v->img_ch * H * W, ms = (size_t)2 * v->zch * oh * ow;
    for (int b = 0; b < B; b++) encode_one(v, img + b * is, H, W, moments + b * ms);
    return 0;
}

int vae_encode(sd_vae *v, const float *img, int B, int H, int W, float *mean, float *std, sd_err *err)
{
    if (!v->enc.present || B < 1 || H < v->scale || W < v->scale)
        return vae_encode_moments(v, img, B, H, W, NULL, err);
    size_t hw = (size_t)(H / v->scale) * (W / v->scale), zs = (size_t)v->zch * hw;
    float *mom = sd_malloc(2 * zs * B * sizeof(float));
    if (!mom) return sd_errf(err, SD_ENOMEM, "", "out of memory for VAE moments");
    if (vae_encode_moments(v, img, B, H, W, mom, err)) { free(mom); return -1; }
    for (int b = 0; b < B; b++) {
        const float *m = mom + 2 * zs * b, *lv = m + zs;
        memcpy(mean + zs * b, m, zs * sizeof(float));
        if (!std) continue;
        for (size_t i = 0; i < zs; i++) {
            float l = lv[i] < -30.0f ? -30.0f : lv[i] > 20.0f ? 20.0f : lv[i];
            std[zs * b + i] = expf(0.5f * l);
        }
    }
    free(mom);
    return 0;
}

/* ---- FLOP count ----------------------------------------------------------- */

/* Multiply-adds count 2: convs, the mid attention's linears and its two
 * products (the HW² terms); norms and element-wise ops are not counted. */
static double vconv_flops(double hw, int cin, int cout, int k) { return 2.0 * hw * cin * cout * k * k; }

static double vresnet_flops(const vae_resnet *r, double hw)
{
    double f = vconv_flops(hw, r->cin, r->cout, 3) + vconv_flops(hw, r->cout, r->cout, 3);
    return f + (r->sc_w ? vconv_flops(hw, r->cin, r->cout, 1) : 0);
}

static double vmid_flops(const vae_mid *m, double hw)
{
    double f = vresnet_flops(&m->r0, hw) + vresnet_flops(&m->r1, hw);
    if (m->has_attn) f += 4 * 2.0 * hw * m->attn.c * m->attn.c + 4.0 * hw * hw * m->attn.c;
    return f;
}

/* The levels of coder c from an h x w input (up: upsamplers, else
 * downsamplers); *h, *w become the output size. */
static double vlevels_flops(const vae_coder *c, int up, int *h, int *w)
{
    double f = 0;
    for (int i = 0; i < c->nlev; i++) {
        const vae_level *lv = &c->lev[i];
        for (int j = 0; j < lv->nres; j++) f += vresnet_flops(&lv->res[j], (double)*h * *w);
        if (!lv->samp_w) continue;
        if (up) { *h *= 2; *w *= 2; } else { *h /= 2; *w /= 2; }
        f += vconv_flops((double)*h * *w, lv->cout, lv->cout, 3);
    }
    return f;
}

double vae_decode_flops(const sd_vae *v, int h, int w)
{
    const vae_coder *d = &v->dec;
    double f = (d->quant_w ? vconv_flops((double)h * w, v->zch, v->zch, 1) : 0);
    f += vconv_flops((double)h * w, v->zch, d->conv_in_oc, 3) + vmid_flops(&d->mid, (double)h * w);
    f += vlevels_flops(d, 1, &h, &w);
    return f + vconv_flops((double)h * w, d->cnorm, d->conv_out_oc, 3);
}

double vae_encode_flops(const sd_vae *v, int H, int W)
{
    const vae_coder *e = &v->enc;
    if (!e->present) return 0;
    double f = vconv_flops((double)H * W, e->conv_in_ic, e->conv_in_oc, 3);
    f += vlevels_flops(e, 0, &H, &W);
    f += vmid_flops(&e->mid, (double)H * W) + vconv_flops((double)H * W, e->cnorm, e->conv_out_oc, 3);
    return f + (e->quant_w ? vconv_flops((double)H * W, 2 * v->zch, 2 * v->zch, 1) : 0);
}
