/* clip.c — the CLIP text encoder forward pass (see clip.h).
 *
 * Laid out like llama2.c: config (sizes from shapes) -> weights (views of
 * the loader's fp32 tensors, no copies; the linear layers' as ops weight
 * handles) -> state (activation buffers) -> forward.  One pass for B windows of T tokens:
 *
 *   x = token_embedding[id] + position_embedding[t]
 *   for each pre-LN layer:
 *       x += out_proj(causal_attention(q_proj, k_proj, v_proj of LN1(x)))
 *       x += fc2(act(fc1(LN2(x))))
 *   out = final_layer_norm(x after the chosen layer)
 *
 * Attention scale is 1/sqrt(head_dim); act is quick-GELU (SD1) or erf GELU
 * (SD2).  Must not tokenize, allocate per layer, or know about prompts. */
#include "clip.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ops/ops.h"
#include "../../base/alloc.h"

typedef struct clip_config {
    char comp[24];            /* component: "text_encoder" or "text_encoder_2" */
    char pfx[40];             /* "<comp>.text_model." */
    int width, layers, mlp, vocab, tokens, heads;
    int proj;                 /* text_projection rows (pooled width), 0 without one */
    clip_act act;
    float ln_eps;
    int diffusers;            /* weights came from a diffusers folder */
} clip_config;

typedef struct clip_layer {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    ops_weight *q_w, *k_w, *v_w, *o_w, *fc1_w, *fc2_w;
    const float *q_b, *k_b, *v_b, *o_b, *fc1_b, *fc2_b;
} clip_layer;

typedef struct clip_state {
    int cap_rows;             /* rows (B*T) the buffers hold */
    float *x, *h, *q, *k, *v, *att, *mlp;
} clip_state;

struct sd_clip {
    clip_config cfg;
    const float *tok_emb, *pos_emb, *fln_w, *fln_b;
    const float *proj_w;      /* [proj, width] (diffusers orientation) or NULL */
    clip_layer *layer;
    clip_state st;
    ops_m om;        /* its ops' context and precision (OPS_*) */
    ops_ctx *own;    /* the context it made itself (clip_load without one), or NULL */
};

/* ---- loading ---------------------------------------------------------- */

/* A JSON object from malloc'd text (freed), or NULL. */
static json_t *clip_parse(char *txt, size_t len)
{
    if (!txt) return NULL;
    json_t *j = json_loadb(txt, len, 0, NULL);
    free(txt);
    if (j && !json_is_object(j)) { json_decref(j); j = NULL; }
    return j;
}

/* <comp>/config.json of a diffusers folder, or NULL. */
static json_t *clip_read_config(const sd_weights *w, const char *comp)
{
    size_t len = 0;
    char path[64];
    snprintf(path, sizeof path, "%s/config.json", comp);
    char *txt = sdw_folder_file(w, path, &len);
    return clip_parse(txt, len);
}

/* 1 for SDXL's second tower. */
static int is_second(const char *comp) { return !strcmp(comp, "text_encoder_2"); }

/* The text encoder's object of the LDM config beside a single file (heads,
 * act), or NULL: "text" (SD1/SD2), or SDXL's "conditioner" entry 0 / 1. */
static json_t *clip_read_ldm_text(const sd_weights *w, const char *comp)
{
    size_t len = 0;
    char *txt = sdw_ldm_config(w, &len);
    json_t *j = clip_parse(txt, len);
    json_t *cond = json_object_get(j, "conditioner");
    json_t *t = json_is_array(cond) ? json_array_get(cond, is_second(comp) ? 1 : 0)
                                    : is_second(comp) ? NULL : json_object_get(j, "text");
    t = json_incref(t);
    json_decref(j);
    if (t && !json_is_object(t)) { json_decref(t); t = NULL; }
    return t;
}

/* "quick_gelu" / "gelu" (also "gelu (erf)") -> clip_act; AUTO when unknown or absent. */
static clip_act clip_act_from_name(const char *a, int *unknown)
{
    *unknown = 0;
    if (!a) return CLIP_ACT_AUTO;
    if (!strncmp(a, "quick_gelu", 10)) return CLIP_ACT_QUICK_GELU;
    if (!strcmp(a, "gelu") || !strcmp(a, "gelu_python") || !strncmp(a, "gelu ", 5)) return CLIP_ACT_GELU;
    *unknown = 1;
    return CLIP_ACT_AUTO;
}

static const float *need_vec(const sd_weights *w, sd_err *err, const char *name, int n)
{
    const sdw_tensor *t = sdw_need1(w, err, name, n);
    return t ? t->data : NULL;
}

/* A [rows, cols] linear weight as a handle of ctx. */
static ops_weight *need_mat(const sd_weights *w, ops_ctx *ctx, sd_err *err, const char *name, int rows, int cols)
{
    const sdw_tensor *t = sdw_need2(w, err, name, rows, cols);
    ops_weight *h = t ? sdw_weight(t, ctx) : NULL;
    if (t && !h) sd_errf(err, SD_ENOMEM, "", "out of memory registering %s", name);
    return h;
}

static int clip_load_layer(const sd_weights *w, ops_ctx *ctx, const clip_config *c, int i, clip_layer *L,
                           sd_err *err)
{
    char n[160];
    int W = c->width, F = c->mlp;
#define P(suffix) (snprintf(n, sizeof n, "%sencoder.layers.%d.%s", c->pfx, i, suffix), n)
    L->ln1_w = need_vec(w, err, P("layer_norm1.weight"), W);
    L->ln1_b = need_vec(w, err, P("layer_norm1.bias"), W);
    L->ln2_w = need_vec(w, err, P("layer_norm2.weight"), W);
    L->ln2_b = need_vec(w, err, P("layer_norm2.bias"), W);
    L->q_w = need_mat(w, ctx, err, P("self_attn.q_proj.weight"), W, W);
    L->q_b = need_vec(w, err, P("self_attn.q_proj.bias"), W);
    L->k_w = need_mat(w, ctx, err, P("self_attn.k_proj.weight"), W, W);
    L->k_b = need_vec(w, err, P("self_attn.k_proj.bias"), W);
    L->v_w = need_mat(w, ctx, err, P("self_attn.v_proj.weight"), W, W);
    L->v_b = need_vec(w, err, P("self_attn.v_proj.bias"), W);
    L->o_w = need_mat(w, ctx, err, P("self_attn.out_proj.weight"), W, W);
    L->o_b = need_vec(w, err, P("self_attn.out_proj.bias"), W);
    L->fc1_w = need_mat(w, ctx, err, P("mlp.fc1.weight"), F, W);
    L->fc1_b = need_vec(w, err, P("mlp.fc1.bias"), F);
    L->fc2_w = need_mat(w, ctx, err, P("mlp.fc2.weight"), W, F);
    L->fc2_b = need_vec(w, err, P("mlp.fc2.bias"), W);
#undef P
    return err->code == SD_OK ? 0 : -1;
}

/* Sizes from shapes; heads, activation and LN eps from hints / config.json / family. */
/* The tensor "<pfx><rest>" with ndim 2 (-1: any size), or NULL + err. */
static const sdw_tensor *need2p(const sd_weights *w, sd_err *err, const clip_config *c, const char *rest,
                                int64_t d0, int64_t d1)
{
    char n[160];
    snprintf(n, sizeof n, "%s%s", c->pfx, rest);
    return sdw_need2(w, err, n, d0, d1);
}

/* Names, sizes from shapes and the optional text projection. */
static int clip_shapes(const sd_weights *w, const clip_hints *hints, clip_config *c,
                       const sdw_tensor **tok, const sdw_tensor **pos, sd_err *err)
{
    snprintf(c->comp, sizeof c->comp, "%s", hints && hints->component ? hints->component : "text_encoder");
    snprintf(c->pfx, sizeof c->pfx, "%s.text_model.", c->comp);
    *tok = need2p(w, err, c, "embeddings.token_embedding.weight", -1, -1);
    if (!*tok) return -1;
    c->vocab = (int)(*tok)->shape[0];
    c->width = (int)(*tok)->shape[1];
    *pos = need2p(w, err, c, "embeddings.position_embedding.weight", -1, c->width);
    if (!*pos) return -1;
    c->tokens = (int)(*pos)->shape[0];
    while (sdw_getf(w, "%sencoder.layers.%d.self_attn.q_proj.weight", c->pfx, c->layers)) c->layers++;
    if (c->layers == 0)
        return sd_errf(err, SD_EFORMAT, c->pfx, "text encoder in %s has no transformer layers (no tensor "
                       "%sencoder.layers.0.self_attn.q_proj.weight)", sdw_path(w), c->pfx);
    const sdw_tensor *fc1 = need2p(w, err, c, "encoder.layers.0.mlp.fc1.weight", -1, c->width);
    if (!fc1) return -1;
    c->mlp = (int)fc1->shape[0];
    if (c->vocab < 1 || c->width < 1 || c->tokens < 1 || c->mlp < 1)
        return sd_errf(err, SD_EFORMAT, c->pfx, "text encoder in %s has an empty dimension", sdw_path(w));
    const sdw_tensor *pr = sdw_getf(w, "%s.text_projection.weight", c->comp);
    if (pr) {
        char n[64];
        snprintf(n, sizeof n, "%s.text_projection.weight", c->comp);
        if (!(pr = sdw_need2(w, err, n, -1, c->width))) return -1;
        c->proj = (int)pr->shape[0];
    }
    c->diffusers = sdw_get_layout(w) == SDW_LAYOUT_DIFFUSERS;
    return 0;
}

/* Sizes from shapes; heads, activation and LN eps from hints / config.json / family. */
static int clip_configure(const sd_weights *w, const clip_hints *hints, clip_config *c,
                          const sdw_tensor **tok, const sdw_tensor **pos, sd_err *err)
{
    if (clip_shapes(w, hints, c, tok, pos, err)) return -1;
    json_t *cfg = clip_read_config(w, c->comp), *ldm = cfg ? NULL : clip_read_ldm_text(w, c->comp);
    char cfg_name[64];
    snprintf(cfg_name, sizeof cfg_name, "%s", cfg ? c->comp : "the LDM config");
    if (cfg) strcat(cfg_name, "/config.json");
    c->heads = hints ? hints->heads : 0;
    if (c->heads <= 0 && cfg) c->heads = (int)json_integer_value(json_object_get(cfg, "num_attention_heads"));
    if (c->heads <= 0 && ldm) c->heads = (int)json_integer_value(json_object_get(ldm, "heads"));
    if (c->heads <= 0) c->heads = c->width >= 64 ? c->width / 64 : 1;
    c->act = hints ? hints->act : CLIP_ACT_AUTO;
    if (c->act == CLIP_ACT_AUTO && (cfg || ldm)) {
        const char *a = json_string_value(cfg ? json_object_get(cfg, "hidden_act") : json_object_get(ldm, "act"));
        int unknown;
        c->act = clip_act_from_name(a, &unknown);
        if (unknown) {
            sd_errf(err, SD_EFORMAT, "hidden_act", "%s of %s: unsupported text encoder activation "
                    "\"%s\" (expected quick_gelu or gelu)", cfg_name, sdw_path(w), a);
            json_decref(cfg);
            json_decref(ldm);
            return -1;
        }
    }
    if (c->act == CLIP_ACT_AUTO)
        c->act = (is_second(c->comp) ? sdw_text2_kind_of(w) : sdw_text_kind_of(w)) == SDW_TEXT_OPENCLIP
                     ? CLIP_ACT_GELU : CLIP_ACT_QUICK_GELU;
    c->ln_eps = 1e-5f;
    json_t *eps = cfg ? json_object_get(cfg, "layer_norm_eps") : NULL;
    if (eps && json_is_number(eps) && json_number_value(eps) > 0) c->ln_eps = (float)json_number_value(eps);
    json_decref(cfg);
    json_decref(ldm);

    if (c->width % c->heads)
        return sd_errf(err, SD_EFORMAT, "num_attention_heads",
                       "text encoder in %s: width %d is not divisible by %d heads",
                       sdw_path(w), c->width, c->heads);
    return 0;
}

sd_clip *clip_load(const sd_weights *w, const clip_hints *hints, ops_ctx *ctx, sd_err *err)
{
    sd_err local;
    if (!err) { sd_err_clear(&local); err = &local; }
    sd_clip *c = sd_calloc(1, sizeof *c);
    if (!c || (!ctx && !(c->own = ctx = ops_ctx_new(0)))) {
        free(c);
        sd_errf(err, SD_ENOMEM, "", "out of memory loading the text encoder");
        return NULL;
    }
    c->om = (ops_m){ctx, ops_default_precision()};
    const sdw_tensor *tok, *pos;
    if (clip_configure(w, hints, &c->cfg, &tok, &pos, err)) goto fail;
    c->tok_emb = tok->data;
    c->pos_emb = pos->data;
    char n[160];
    snprintf(n, sizeof n, "%sfinal_layer_norm.weight", c->cfg.pfx);
    c->fln_w = need_vec(w, err, n, c->cfg.width);
    snprintf(n, sizeof n, "%sfinal_layer_norm.bias", c->cfg.pfx);
    c->fln_b = need_vec(w, err, n, c->cfg.width);
    const sdw_tensor *pr = c->cfg.proj ? sdw_getf(w, "%s.text_projection.weight", c->cfg.comp) : NULL;
    c->proj_w = pr ? pr->data : NULL;
    c->layer = sd_calloc(c->cfg.layers, sizeof *c->layer);
    if (!c->layer) { sd_errf(err, SD_ENOMEM, "", "out of memory loading the text encoder"); goto fail; }
    for (int i = 0; i < c->cfg.layers; i++)
        if (clip_load_layer(w, ctx, &c->cfg, i, &c->layer[i], err)) goto fail;
    if (err->code != SD_OK) goto fail;
    return c;
fail:
    sd_err_prefix(err, "loading the text encoder");
    clip_free(c);
    return NULL;
}

static void clip_state_free(clip_state *s)
{
    free(s->x); free(s->h); free(s->q); free(s->k); free(s->v); free(s->att); free(s->mlp);
    memset(s, 0, sizeof *s);
}

void clip_free(sd_clip *c)
{
    if (!c) return;
    clip_state_free(&c->st);
    for (int i = 0; c->layer && !c->own && i < c->cfg.layers; i++) {   /* a shared context: its handles go now */
        clip_layer *L = &c->layer[i];
        ops_weight *h[] = {L->q_w, L->k_w, L->v_w, L->o_w, L->fc1_w, L->fc2_w};
        for (size_t j = 0; j < sizeof h / sizeof h[0]; j++) ops_weight_free(h[j]);
    }
    free(c->layer);
    ops_ctx_free(c->own);
    free(c);
}

int clip_width(const sd_clip *c) { return c->cfg.width; }
int clip_layers(const sd_clip *c) { return c->cfg.layers; }
int clip_tokens(const sd_clip *c) { return c->cfg.tokens; }
int clip_heads(const sd_clip *c) { return c->cfg.heads; }

ops_weight *clip_weight(sd_clip *c, const char *name)
{
    static const char *const part[] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                       "self_attn.v_proj.weight", "self_attn.out_proj.weight",
                                       "mlp.fc1.weight", "mlp.fc2.weight"};
    int i, used = 0;
    size_t pl = strlen(c->cfg.pfx);
    if (strncmp(name, c->cfg.pfx, pl) || strncmp(name + pl, "encoder.layers.", 15) ||
        sscanf(name + pl + 15, "%d.%n", &i, &used) != 1 || !used || i < 0 || i >= c->cfg.layers)
        return NULL;
    const char *rest = name + pl + 15 + used;
    clip_layer *L = &c->layer[i];
    ops_weight *h[] = {L->q_w, L->k_w, L->v_w, L->o_w, L->fc1_w, L->fc2_w};
    for (int k = 0; k < 6; k++)
        if (!strcmp(rest, part[k])) return h[k];
    return NULL;
}
clip_act clip_activation(const sd_clip *c) { return c->cfg.act; }

int clip_default_skip(const sd_clip *c)
{
    if (c->cfg.act != CLIP_ACT_GELU) return 1;
    if (c->cfg.diffusers && c->cfg.layers == 23) return 1;
    return 2;
}

/* ---- state ------------------------------------------------------------ */

static int clip_state_reserve(sd_clip *c, int rows, sd_err *err)
{
    clip_state *s = &c->st;
    if (rows <= s->cap_rows) return 0;
    clip_state_free(s);
    size_t W = (size_t)c->cfg.width, F = (size_t)c->cfg.mlp, R = (size_t)rows;
    s->x = sd_malloc(R * W * sizeof(float));
    s->h = sd_malloc(R * W * sizeof(float));
    s->q = sd_malloc(R * W * sizeof(float));
    s->k = sd_malloc(R * W * sizeof(float));
    s->v = sd_malloc(R * W * sizeof(float));
    s->att = sd_malloc(R * W * sizeof(float));
    s->mlp = sd_malloc(R * F * sizeof(float));
    if (!s->x || !s->h || !s->q || !s->k || !s->v || !s->att || !s->mlp) {
        clip_state_free(s);
        return sd_errf(err, SD_ENOMEM, "", "out of memory for text encoder activations (%d tokens)", rows);
    }
    s->cap_rows = rows;
    return 0;
}

int clip_reserve(sd_clip *c, int B, sd_err *err)
{
    if (B < 1 || B > (1 << 20) / c->cfg.tokens)
        return sd_errf(err, SD_EINVAL, "", "text encoder: bad number of token windows %d", B);
    return clip_state_reserve(c, B * c->cfg.tokens, err);
}

/* ---- forward ---------------------------------------------------------- */

static void clip_embed(const sd_clip *c, const int32_t *ids, const float *const *vec, int rows, float *x)
{
    int W = c->cfg.width, T = c->cfg.tokens;
    for (int r = 0; r < rows; r++) {
        const float *te = vec && vec[r] ? vec[r] : c->tok_emb + (size_t)ids[r] * W;
        const float *pe = c->pos_emb + (size_t)(r % T) * W;
        float *o = x + (size_t)r * W;
        for (int i = 0; i < W; i++) o[i] = te[i] + pe[i];
    }
}

/* x[B*T, W] += attention and MLP of one pre-LN layer. */
static void clip_layer_forward(sd_clip *c, const clip_layer *L, int B)
{
    const clip_config *g = &c->cfg;
    clip_state *s = &c->st;
    int W = g->width, T = g->tokens, M = B * T, H = g->heads, D = W / H;
    const ops_m *om = &c->om;

    op_layer_norm(s->x, M, W, L->ln1_w, L->ln1_b, g->ln_eps, s->h);
    op_linear(om, s->h, M, W, L->q_w, L->q_b, W, s->q);
    op_linear(om, s->h, M, W, L->k_w, L->k_b, W, s->k);
    op_linear(om, s->h, M, W, L->v_w, L->v_b, W, s->v);
    op_attention_causal(om, s->q, W, s->k, W, s->v, W, B, T, H, D, 1.0f / sqrtf((float)D), s->att);
    op_linear(om, s->att, M, W, L->o_w, L->o_b, W, s->h);
    op_add(s->x, s->h, (size_t)M * W);

    op_layer_norm(s->x, M, W, L->ln2_w, L->ln2_b, g->ln_eps, s->h);
    op_linear(om, s->h, M, W, L->fc1_w, L->fc1_b, g->mlp, s->mlp);
    if (g->act == CLIP_ACT_GELU) op_gelu(s->mlp, (size_t)M * g->mlp);
    else op_quick_gelu(s->mlp, (size_t)M * g->mlp);
    op_linear(om, s->mlp, M, g->mlp, L->fc2_w, L->fc2_b, W, s->h);
    op_add(s->x, s->h, (size_t)M * W);
}

void clip_set_precision(sd_clip *c, int prec) { c->om.prec = prec; }
ops_ctx *clip_ops_ctx(const sd_clip *c) { return c->om.ctx; }

/* pooled[B, proj]: the final-LN'd last-layer row (in s->x after all layers)
 * at each window's first largest id (the end token) @ text_projection^T. */
static void clip_pool(sd_clip *c, const int32_t *ids, int B, float *pooled)
{
    const clip_config *g = &c->cfg;
    int W = g->width, T = g->tokens, P = g->proj;
    float *row = c->st.h;
    for (int b = 0; b < B; b++) {
        const int32_t *id = ids + (size_t)b * T;
        int eos = 0;
        for (int t = 1; t < T; t++)
            if (id[t] > id[eos]) eos = t;
        op_layer_norm(c->st.x + ((size_t)b * T + eos) * W, 1, W, c->fln_w, c->fln_b, g->ln_eps, row);
        for (int p = 0; p < P; p++) {
            const float *wp = c->proj_w + (size_t)p * W;
            double acc = 0;
            for (int k = 0; k < W; k++) acc += (double)row[k] * wp[k];
            pooled[(size_t)b * P + p] = (float)acc;
        }
    }
}

/* clip_hidden with the slot vectors of clip_encode_vec (and, pooled
 * non-NULL, the pooled output of clip_hidden_pooled). */
static int hidden_vec(sd_clip *c, const int32_t *ids, const float *const *vec, int B, int layer, int final_ln,
                      float *out, float *pooled, sd_err *err)
{
    const clip_config *g = &c->cfg;
    if (B < 1 || B > (1 << 20) / g->tokens)
        return sd_errf(err, SD_EINVAL, "", "text encoder: bad number of token windows %d", B);
    if (layer < 0 || layer > g->layers)
        return sd_errf(err, SD_EINVAL, "clip_skip", "text encoder has %d layers; layer %d does not exist",
                       g->layers, layer);
    int M = B * g->tokens;
    for (int r = 0; r < M; r++)
        if (ids[r] < 0 || ids[r] >= g->vocab)
            return sd_errf(err, SD_EINVAL, "prompt", "token id %d at position %d is outside the "
                           "vocabulary of %d", (int)ids[r], r, g->vocab);
    if (clip_state_reserve(c, M, err)) return -1;

    if (pooled && !c->proj_w)
        return sd_errf(err, SD_EINVAL, c->cfg.comp, "text encoder %s has no text_projection: no pooled output",
                       c->cfg.comp);

    clip_embed(c, ids, vec, M, c->st.x);
    for (int i = 0; i < layer; i++) clip_layer_forward(c, &c->layer[i], B);
    if (final_ln) op_layer_norm(c->st.x, M, g->width, c->fln_w, c->fln_b, g->ln_eps, out);
    else memcpy(out, c->st.x, (size_t)M * g->width * sizeof(float));
    if (pooled) {
        for (int i = layer; i < g->layers; i++) clip_layer_forward(c, &c->layer[i], B);
        clip_pool(c, ids, B, pooled);
    }
    return 0;
}

int clip_proj_dim(const sd_clip *c) { return c->cfg.proj; }   /* from the shape: also a checker's */

int clip_hidden_pooled(sd_clip *c, const int32_t *ids, const float *const *vec, int B, int layer, int final_ln,
                       float *out, float *pooled, sd_err *err)
{
    return hidden_vec(c, ids, vec, B, layer, final_ln, out, pooled, err);
}

int clip_hidden(sd_clip *c, const int32_t *ids, int B, int layer, int final_ln, float *out, sd_err *err)
{
    return hidden_vec(c, ids, NULL, B, layer, final_ln, out, NULL, err);
}

int clip_encode(sd_clip *c, const int32_t *ids, int B, int skip, float *out, sd_err *err)
{
    return clip_encode_vec(c, ids, NULL, B, skip, out, err);
}

int clip_encode_vec(sd_clip *c, const int32_t *ids, const float *const *vec, int B, int skip, float *out,
                    sd_err *err)
{
    if (skip <= 0) skip = clip_default_skip(c);
    if (skip > c->cfg.layers)
        return sd_errf(err, SD_EINVAL, "clip_skip", "clip_skip %d is larger than the %d text encoder layers",
                       skip, c->cfg.layers);
    return hidden_vec(c, ids, vec, B, c->cfg.layers + 1 - skip, 1, out, NULL, err);
}

/* ---- giving the weights back between requests ------------------------------ */

void clip_release_weights(sd_clip *c)
{
    for (int i = 0; i < c->cfg.layers; i++) {
        clip_layer *L = &c->layer[i];
        ops_weight *h[6] = {L->q_w, L->k_w, L->v_w, L->o_w, L->fc1_w, L->fc2_w};
        for (int j = 0; j < 6; j++) ops_weight_release(h[j]);
    }
}

/* ---- FLOP count ----------------------------------------------------------- */

double clip_flops(const sd_clip *c, int B, int layers)
{
    const clip_config *g = &c->cfg;
    if (layers <= 0 || layers > g->layers) layers = g->layers;
    double M = (double)B * g->tokens, W = g->width;
    double per_layer = 2.0 * M * (4 * W * W + 2 * W * g->mlp) + 4.0 * B * (double)g->tokens * g->tokens * W;
    return per_layer * layers;
}

double clip_pooled_flops(const sd_clip *c, int B) { return c->proj_w ? 2.0 * B * c->cfg.width * c->cfg.proj : 0; }
