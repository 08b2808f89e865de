/* unet.c — the SD 1.x/2.x/XL UNet, in the order data flows: hints (head split),
 * config read from tensor shapes, weights (borrowed views, each checked with
 * sdw_need), activation buffers (one allocation per forward), the blocks
 * (timestep embedding, ResBlock, attention, SpatialTransformer, down/up
 * sampling), then unet_forward.  Numerics follow diffusers v0.25.1
 * UNet2DConditionModel in fp32.  Only ops.h does arithmetic on big arrays; this
 * file never calls oneDNN. */
#include "unet.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ops/ops.h"
#include "../../base/alloc.h"

#define UNET_MAX_RES 8      /* ResBlocks per level */
#define UNET_MAX_DEPTH 16   /* transformer blocks per SpatialTransformer */
#define UNET_GROUPS 32      /* GroupNorm groups (every SD UNet) */
#define RES_EPS 1e-5f       /* ResBlock GroupNorms and conv_norm_out */
#define ST_EPS 1e-6f        /* SpatialTransformer GroupNorm */
#define LN_EPS 1e-5f        /* transformer LayerNorms */

/* ---------------------------------------------------------------- hints */

unet_hints unet_hints_sd1(void) { unet_hints h = {0}; h.num_heads = 8; return h; }
unet_hints unet_hints_sd2(void) { unet_hints h = {0}; h.head_dim = 64; return h; }

unet_hints unet_hints_for_family(sd_family f)
{
    unet_hints h = {0};
    h.num_heads = sd_family_info(f)->num_heads;
    h.head_dim = sd_family_info(f)->head_dim;
    h.add_time_dim = sd_family_info(f)->add_time_dim;
    return h;
}

/* An int or a list of ints into h->num_heads / h->level_heads. */
static int hints_from_json_heads(json_t *v, unet_hints *h, const char *key, sd_err *err)
{
    memset(h, 0, sizeof *h);
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        h->num_heads = (int)json_integer_value(v);
        return 0;
    }
    if (json_is_array(v) && json_array_size(v) >= 1 && json_array_size(v) <= UNET_MAX_LEVELS) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *e = json_array_get(v, i);
            if (!json_is_integer(e) || json_integer_value(e) <= 0)
                return sd_errf(err, SD_EFORMAT, key, "unet config: %s[%zu] is not a positive integer", key, i);
            h->level_heads[i] = (int)json_integer_value(e);
        }
        h->n_level_heads = (int)json_array_size(v);
        return 0;
    }
    return sd_errf(err, SD_EFORMAT, key, "unet config: %s must be a positive integer or a list of 1..%d of them",
                   key, UNET_MAX_LEVELS);
}

static json_t *parse_json(const char *text, size_t len, const char *what, sd_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) sd_errf(err, SD_EFORMAT, what, "%s: invalid JSON at line %d: %s", what, je.line, je.text);
    else if (!json_is_object(root)) {
        sd_errf(err, SD_EFORMAT, what, "%s: top level is not an object", what);
        json_decref(root);
        root = NULL;
    }
    return root;
}

int unet_hints_from_diffusers_config(const char *text, size_t len, unet_hints *h, sd_err *err)
{
    json_t *root = parse_json(text, len, "unet/config.json", err);
    if (!root) return -1;
    /* diffusers (SD1/2 era) passes attention_head_dim on as the head count;
     * num_attention_heads, when set, is the newer spelling of the same. */
    const char *key = "num_attention_heads";
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) { key = "attention_head_dim"; v = json_object_get(root, key); }
    int rc;
    if (!v || json_is_null(v)) { memset(h, 0, sizeof *h); h->num_heads = 8; rc = 0; } /* diffusers default */
    else rc = hints_from_json_heads(v, h, key, err);
    /* SDXL: width of each added time id's sinusoid */
    json_t *a = json_object_get(root, "addition_time_embed_dim");
    if (!rc && a && !json_is_null(a)) {
        if (json_is_integer(a) && json_integer_value(a) > 0 && json_integer_value(a) <= 1 << 16)
            h->add_time_dim = (int)json_integer_value(a);
        else rc = sd_errf(err, SD_EFORMAT, "addition_time_embed_dim",
                          "unet config: addition_time_embed_dim is not a positive integer");
    }
    json_decref(root);
    return rc;
}

/* sgm (SDXL) configs: the outdim of the first ConcatTimestepEmbedderND in a
 * list of conditioner entries ({"target", "outdim"} or {"target",
 * "params": {"outdim"}}); 0 when none names one. */
static int ldm_add_time_dim(json_t *list)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        const char *t = json_string_value(json_object_get(e, "target"));
        if (!t || !strstr(t, "ConcatTimestepEmbedderND")) continue;
        json_t *d = json_object_get(e, "outdim");
        if (!d) d = json_object_get(json_object_get(e, "params"), "outdim");
        if (json_is_integer(d) && json_integer_value(d) > 0 && json_integer_value(d) <= 1 << 16)
            return (int)json_integer_value(d);
    }
    return 0;
}

/* The UNet's params object of an LDM / sgm config (the root itself when none is nested). */
static json_t *ldm_unet_params(json_t *root)
{
    static const char *const keys[] = {"unet_config", "network_config"};
    json_t *q;
    if ((q = json_object_get(root, "unet")) && json_is_object(q)) return q;
    if ((q = json_object_get(root, "network_config")) && json_is_object(q)) return q;
    json_t *mp = json_object_get(json_object_get(root, "model"), "params");
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if ((q = json_object_get(json_object_get(mp, keys[i]), "params")) && json_is_object(q)) return q;
    return root;
}

int unet_hints_from_ldm_config(const char *text, size_t len, unet_hints *h, sd_err *err)
{
    json_t *root = parse_json(text, len, "LDM config", err);
    if (!root) return -1;
    json_t *p = ldm_unet_params(root);
    json_t *nhc = json_object_get(p, "num_head_channels"), *nh = json_object_get(p, "num_heads");
    int rc = 0;
    memset(h, 0, sizeof *h);
    /* LDM: num_head_channels (when not -1) wins over num_heads */
    if (json_is_integer(nhc) && json_integer_value(nhc) > 0) h->head_dim = (int)json_integer_value(nhc);
    else if (json_is_integer(nh) && json_integer_value(nh) > 0) h->num_heads = (int)json_integer_value(nh);
    else rc = sd_errf(err, SD_EFORMAT, "num_heads", "LDM config: neither num_heads nor num_head_channels is a positive integer");
    json_t *cond = json_object_get(root, "conditioner");
    if (!json_is_array(cond))
        cond = json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(root, "model"), "params"),
                                                               "conditioner_config"), "params"), "emb_models");
    if (json_is_array(cond)) h->add_time_dim = ldm_add_time_dim(cond);
    json_decref(root);
    return rc;
}

int unet_hints_from_weights(const sd_weights *w, unet_hints *h, sd_err *err)
{
    size_t len = 0;
    char *txt = sdw_folder_file(w, "unet/config.json", &len);
    int rc = 0;
    if (txt) rc = unet_hints_from_diffusers_config(txt, len, h, err);
    else if ((txt = sdw_ldm_config(w, &len))) rc = unet_hints_from_ldm_config(txt, len, h, err);
    else *h = unet_hints_for_family(sd_family_decide(w));
    free(txt);
    return rc;
}

/* ---------------------------------------------------------------- weights */

typedef struct resblock {
    int cin, cout;
    const float *norm1_g, *norm1_b, *conv1_b, *temb_b;
    const float *norm2_g, *norm2_b, *conv2_b;
    ops_weight *conv1_w, *temb_w, *conv2_w;
    ops_weight *short_w;              /* 1x1 conv when cin != cout, else NULL */
    const float *short_b;
} resblock;

typedef struct attention {
    int kv_dim;                       /* C for self-attention, context width for cross */
    ops_weight *q, *k, *v, *out_w;
    const float *out_b;
} attention;

typedef struct tblock {               /* BasicTransformerBlock */
    const float *norm1_g, *norm1_b, *norm2_g, *norm2_b, *norm3_g, *norm3_b;
    attention attn1, attn2;
    int ff;                           /* GEGLU inner width F: ff.net.0.proj is [2F, C] */
    ops_weight *ff1_w, *ff2_w;
    const float *ff1_b, *ff2_b;
} tblock;

typedef struct transformer {          /* Transformer2DModel (SpatialTransformer) */
    int c, heads, depth;
    const float *norm_g, *norm_b, *proj_in_b, *proj_out_b;
    ops_weight *proj_in_w, *proj_out_w;
    tblock blocks[UNET_MAX_DEPTH];
} transformer;

typedef struct level {
    int c, heads;
    int n_down, n_up;                 /* ResBlocks in the down and up block */
    resblock down[UNET_MAX_RES], up[UNET_MAX_RES];
    int attn;                         /* 1 if the level has transformers */
    transformer down_attn[UNET_MAX_RES], up_attn[UNET_MAX_RES];
    ops_weight *downsample_w;         /* NULL at the last level */
    ops_weight *upsample_w;           /* NULL at level 0 */
    const float *downsample_b, *upsample_b;
} level;

/* ---------------------------------------------------------------- precision per layer
 *
 * Which layers run at plain bf16 whatever the model's precision (issue 19
 * item 2; docs/ACCURACY.md "Precision per layer"): per layer kind, a mask of
 * levels.  A level is a resolution depth counted from the latent's (0; the
 * mid block is the deepest level), so one rule reads the same on 3- and
 * 4-level UNets.  Kinds: res (the ResBlocks' 3x3 convs), attn (to_q, to_k,
 * to_v, to_out), ff (the GEGLU and output linears), proj (proj_in,
 * proj_out), emb (the time and added-embedding MLPs, at level 0, and each
 * ResBlock's time_emb_proj), sample (conv_shortcut, down- and up-sampling
 * convs: the level of their output), io (conv_in, conv_out, level 0). */
enum { UL_RES, UL_ATTN, UL_FF, UL_PROJ, UL_EMB, UL_SAMPLE, UL_IO, UL_NKINDS };
static const char *const UL_NAMES[UL_NKINDS] = {"res", "attn", "ff", "proj", "emb", "sample", "io"};
typedef struct unet_rule {
    unsigned lv[UL_NKINDS];          /* bit d: the kind's layers at level d run at plain bf16 */
    char text[64];                   /* as set ("" = none) */
} unet_rule;

/* Levels "@d..." (digits, each a level; a trailing '-' adds every deeper
 * level) into a mask; none given = every level.  -1 when malformed. */
static long rule_levels(const char *p, size_t n)
{
    if (!n) return 0xffff;
    if (*p != '@' || n < 2) return -1;
    unsigned m = 0;
    for (size_t i = 1; i < n; i++) {
        if (p[i] >= '0' && p[i] < '0' + UNET_MAX_LEVELS) m |= 1u << (p[i] - '0');
        else if (p[i] == '-' && i == n - 1 && i > 1) m |= 0xffffu << (p[i - 1] - '0');
        else return -1;
    }
    return m;
}

/* "kind[@levels],..." (kinds UL_NAMES or "all"; "" or "none" = no layer)
 * into r.  0, or -1 + err naming the bad item. */
static int rule_parse(const char *text, unet_rule *r, sd_err *err)
{
    memset(r, 0, sizeof *r);
    if (!text || !*text || !strcmp(text, "none")) return 0;
    if (strlen(text) >= sizeof r->text)
        return sd_errf(err, SD_EINVAL, "layer_rule", "unet: layer rule longer than %zu characters", sizeof r->text - 1);
    snprintf(r->text, sizeof r->text, "%s", text);
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, ","), k = strcspn(p, "@,");
        long m = rule_levels(p + k, n - k);
        int kind = -1;
        for (int i = 0; i < UL_NKINDS; i++)
            if (strlen(UL_NAMES[i]) == k && !strncmp(p, UL_NAMES[i], k)) kind = i;
        int all = k == 3 && !strncmp(p, "all", 3);
        if (m < 0 || (kind < 0 && !all))
            return sd_errf(err, SD_EINVAL, "layer_rule", "unet: layer rule item '%.*s' is not kind[@levels] "
                           "(kinds res, attn, ff, proj, emb, sample, io, all; levels digits, '-' = and deeper)",
                           (int)n, p);
        for (int i = 0; i < UL_NKINDS; i++)
            if (all || i == kind) r->lv[i] |= (unsigned)m;
        p += n + (p[n] == ',');
    }
    return 0;
}

struct sd_unet {
    unet_info info;
    int conv_in_k, conv_out_k, time_proj_dim, ff_max;
    const float *conv_in_b, *conv_out_b, *norm_out_g, *norm_out_b, *time1_b, *time2_b;
    ops_weight *conv_in_w, *conv_out_w, *time1_w, *time2_w;
    ops_weight *add1_w, *add2_w;      /* add_embedding.linear_1/2 (SDXL), NULL without */
    const float *add1_b, *add2_b;
    level lv[UNET_MAX_LEVELS];
    resblock mid_res[2];
    transformer mid_attn;
    unet_tap_fn tap;
    void *tap_ud;
    float *ws;                        /* activation workspace (unet_reserve / grown by forward) */
    size_t ws_cap;                    /* its size in floats */
    ops_m om;                         /* its ops' context and precision (OPS_*) */
    unet_rule rule;                   /* layers at plain bf16 (unet_set_layer_rule); none by default */
    ops_ctx *own;                     /* the context it made itself (unet_load without one), or NULL */
    struct { const sdw_tensor *t; ops_weight *w; } *refs;   /* its weight handles, by tensor */
    int nrefs, caprefs;
    int t_plan;                       /* context tokens the workspace is sized for at least
                                         (unet_plan_context): a longer prompt never grows it */
};

/* Loader context: canonical names get the "unet." prefix; the first failure
 * sticks in err and makes every later lookup return NULL. */
typedef struct ld {
    const sd_weights *w;
    sd_err *err;
    int failed;
    ops_ctx *ctx;                     /* the conv/linear weights' handles go here */
    sd_unet *u;                       /* ... and are listed in u->refs */
} ld;

static const sdw_tensor *ld_vget(ld *l, const char *fmt, va_list ap, char *name, size_t cap)
{
    int n = snprintf(name, cap, "unet.");
    vsnprintf(name + n, cap - n, fmt, ap);
    return sdw_get(l->w, name);
}

/* Optional tensor: NULL when absent, no error. */
static const sdw_tensor *ld_find(ld *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const sdw_tensor *ld_find(ld *l, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    const sdw_tensor *t = ld_vget(l, fmt, ap, name, sizeof name);
    va_end(ap);
    return t;
}

/* Required tensor with exact shape (ndim 1, 2 or 4; -1 = any). */
static const sdw_tensor *ld_need(ld *l, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                                 const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static const sdw_tensor *ld_need(ld *l, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                                 const char *fmt, ...)
{
    if (l->failed) return NULL;
    char name[256];
    int n = snprintf(name, sizeof name, "unet.");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name + n, sizeof name - n, fmt, ap);
    va_end(ap);
    int64_t shape[4] = {d0, d1, d2, d3};
    const sdw_tensor *t = sdw_need(l->w, l->err, name, ndim, shape);
    if (!t) l->failed = 1;
    return t;
}

static const float *ld_data(const sdw_tensor *t) { return t ? t->data : NULL; }

/* A conv or linear weight as a handle of the model's context (NULL when t is). */
static ops_weight *ld_handle(ld *l, const sdw_tensor *t)
{
    if (!t) return NULL;
    sd_unet *u = l->u;
    if (u->nrefs == u->caprefs) {
        int cap = u->caprefs ? 2 * u->caprefs : 128;
        void *r = sd_realloc(u->refs, (size_t)cap * sizeof *u->refs);
        if (!r) goto oom;
        u->refs = r;
        u->caprefs = cap;
    }
    ops_weight *h = sdw_weight(t, l->ctx);
    if (!h) goto oom;
    u->refs[u->nrefs].t = t;
    u->refs[u->nrefs++].w = h;
    return h;
oom:
    if (!l->failed) sd_errf(l->err, SD_ENOMEM, "unet", "unet: out of memory registering %s", t->name);
    l->failed = 1;
    return NULL;
}
#define NEED1(l, a, ...) ld_data(ld_need(l, 1, a, 0, 0, 0, __VA_ARGS__))
#define NEEDW2(l, a, b, ...) ld_handle(l, ld_need(l, 2, a, b, 0, 0, __VA_ARGS__))
#define NEEDW4(l, a, b, c, d, ...) ld_handle(l, ld_need(l, 4, a, b, c, d, __VA_ARGS__))

static int ld_fail(ld *l, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ld_fail(ld *l, const char *field, const char *fmt, ...)
{
    if (!l->failed) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        sd_errf(l->err, SD_EFORMAT, field, "unet: %s", msg);
    }
    l->failed = 1;
    return -1;
}

static int count_prefix(ld *l, const char *block, const char *kind, const char *probe)
{
    int n = 0;
    while (n < 64 && ld_find(l, "%s.%s.%d.%s", block, kind, n, probe)) n++;
    return n;
}

static void load_resblock(ld *l, resblock *r, int cin, int cout, int temb, const char *p)
{
    r->cin = cin; r->cout = cout;
    if (cin % UNET_GROUPS || cout % UNET_GROUPS)
        ld_fail(l, p, "%s: channels %d -> %d are not multiples of the %d GroupNorm groups", p, cin, cout, UNET_GROUPS);
    r->norm1_g = NEED1(l, cin, "%s.norm1.weight", p);
    r->norm1_b = NEED1(l, cin, "%s.norm1.bias", p);
    r->conv1_w = NEEDW4(l, cout, cin, 3, 3, "%s.conv1.weight", p);
    r->conv1_b = NEED1(l, cout, "%s.conv1.bias", p);
    r->temb_w = NEEDW2(l, cout, temb, "%s.time_emb_proj.weight", p);
    r->temb_b = NEED1(l, cout, "%s.time_emb_proj.bias", p);
    r->norm2_g = NEED1(l, cout, "%s.norm2.weight", p);
    r->norm2_b = NEED1(l, cout, "%s.norm2.bias", p);
    r->conv2_w = NEEDW4(l, cout, cout, 3, 3, "%s.conv2.weight", p);
    r->conv2_b = NEED1(l, cout, "%s.conv2.bias", p);
    r->short_w = NULL;
    r->short_b = NULL;
    if (cin != cout) {
        r->short_w = NEEDW4(l, cout, cin, 1, 1, "%s.conv_shortcut.weight", p);
        r->short_b = NEED1(l, cout, "%s.conv_shortcut.bias", p);
    }
}

static void load_attention(ld *l, attention *a, int c, int kv, const char *p)
{
    a->kv_dim = kv;
    a->q = NEEDW2(l, c, c, "%s.to_q.weight", p);
    a->k = NEEDW2(l, c, kv, "%s.to_k.weight", p);
    a->v = NEEDW2(l, c, kv, "%s.to_v.weight", p);
    a->out_w = NEEDW2(l, c, c, "%s.to_out.0.weight", p);
    a->out_b = NEED1(l, c, "%s.to_out.0.bias", p);
}

/* proj_in/proj_out: Linear [C,C] (SD2) or 1x1 conv [C,C,1,1] (SD1).  Both are
 * the same per-pixel matrix, applied here on the token layout. */
static ops_weight *load_proj(ld *l, int c, int *linear, const char *p, const char *which)
{
    const sdw_tensor *t = ld_find(l, "%s.%s.weight", p, which);
    int lin = t && t->ndim == 2;
    if (linear) *linear = lin;
    return lin ? NEEDW2(l, c, c, "%s.%s.weight", p, which) : NEEDW4(l, c, c, 1, 1, "%s.%s.weight", p, which);
}

static void load_transformer(ld *l, sd_unet *u, transformer *t, int c, int heads, const char *p)
{
    t->c = c; t->heads = heads;
    t->depth = count_prefix(l, p, "transformer_blocks", "norm1.weight");
    if (t->depth < 1 || t->depth > UNET_MAX_DEPTH) {
        ld_fail(l, p, "%s has %d transformer blocks (expected 1..%d)", p, t->depth, UNET_MAX_DEPTH);
        return;
    }
    if (c % UNET_GROUPS) ld_fail(l, p, "%s: %d channels are not a multiple of %d groups", p, c, UNET_GROUPS);
    t->norm_g = NEED1(l, c, "%s.norm.weight", p);
    t->norm_b = NEED1(l, c, "%s.norm.bias", p);
    int lin_in = 0, lin_out = 0;
    t->proj_in_w = load_proj(l, c, &lin_in, p, "proj_in");
    t->proj_in_b = NEED1(l, c, "%s.proj_in.bias", p);
    t->proj_out_w = load_proj(l, c, &lin_out, p, "proj_out");
    t->proj_out_b = NEED1(l, c, "%s.proj_out.bias", p);
    u->info.linear_proj = lin_in;
    if (u->info.context_dim == 0) {   /* context width: from the first cross-attention seen */
        const sdw_tensor *k = ld_find(l, "%s.transformer_blocks.0.attn2.to_k.weight", p);
        if (!k || k->ndim != 2) { ld_need(l, 2, c, -1, 0, 0, "%s.transformer_blocks.0.attn2.to_k.weight", p); return; }
        if (k->shape[1] < 1) { ld_fail(l, p, "%s: empty context width", p); return; }
        u->info.context_dim = (int)k->shape[1];
    }
    for (int i = 0; i < t->depth && !l->failed; i++) {
        tblock *b = &t->blocks[i];
        char q[256];
        snprintf(q, sizeof q, "%s.transformer_blocks.%d", p, i);
        b->norm1_g = NEED1(l, c, "%s.norm1.weight", q);
        b->norm1_b = NEED1(l, c, "%s.norm1.bias", q);
        b->norm2_g = NEED1(l, c, "%s.norm2.weight", q);
        b->norm2_b = NEED1(l, c, "%s.norm2.bias", q);
        b->norm3_g = NEED1(l, c, "%s.norm3.weight", q);
        b->norm3_b = NEED1(l, c, "%s.norm3.bias", q);
        char a[300];
        snprintf(a, sizeof a, "%s.attn1", q);
        load_attention(l, &b->attn1, c, c, a);
        snprintf(a, sizeof a, "%s.attn2", q);
        load_attention(l, &b->attn2, c, u->info.context_dim, a);
        const sdw_tensor *f = ld_find(l, "%s.ff.net.0.proj.weight", q);
        int64_t f2 = f && f->ndim == 2 && f->shape[0] >= 2 ? f->shape[0] : -1;
        if (f2 > 0 && f2 % 2) {
            ld_fail(l, q, "%s.ff.net.0.proj.weight has odd width %lld (GEGLU needs value|gate halves)", q, (long long)f2);
            return;
        }
        b->ff1_w = NEEDW2(l, f2 > 0 ? f2 : -1, c, "%s.ff.net.0.proj.weight", q);
        if (l->failed) return;
        b->ff = (int)(f2 / 2);
        b->ff1_b = NEED1(l, 2 * b->ff, "%s.ff.net.0.proj.bias", q);
        b->ff2_w = NEEDW2(l, c, b->ff, "%s.ff.net.2.weight", q);
        b->ff2_b = NEED1(l, c, "%s.ff.net.2.bias", q);
        if (b->ff > u->ff_max) u->ff_max = b->ff;
    }
}

/* SDXL's added conditioning (diffusers addition_embed_type "text_time"):
 * add_embedding.linear_1 [TE, P + 6·A] and linear_2 [TE, TE], P the pooled
 * text width and A the sinusoid width per time id, which the shapes cannot
 * separate: A comes from the hints (else the family's default).  Nothing to
 * load when there is no add-embedding. */
static void load_add_embedding(ld *l, sd_unet *u, const unet_hints *h, int te)
{
    const sdw_tensor *a1 = ld_find(l, "add_embedding.linear_1.weight");
    if (!a1 && !ld_find(l, "add_embedding.linear_2.weight")) return;
    if (!a1 || a1->ndim != 2 || a1->shape[0] != te) {
        ld_need(l, 2, te, -1, 0, 0, "add_embedding.linear_1.weight");
        return;
    }
    int A = h->add_time_dim > 0 ? h->add_time_dim : sd_family_info(sd_family_decide(l->w))->add_time_dim;
    if (A <= 0 || A % 2) {
        ld_fail(l, "addition_time_embed_dim", "addition_time_embed_dim %d is not a positive even width", A);
        return;
    }
    if (a1->shape[1] <= 6 * (int64_t)A) {
        ld_fail(l, "add_embedding.linear_1.weight", "unet.add_embedding.linear_1.weight takes %lld inputs: "
                "not a pooled text vector plus 6 time ids of %d (addition_time_embed_dim)",
                (long long)a1->shape[1], A);
        return;
    }
    unet_info *in = &u->info;
    in->add_time_dim = A;
    in->add_text_dim = (int)(a1->shape[1] - 6 * (int64_t)A);
    in->add_dim = in->add_text_dim + 6;
    u->add1_w = ld_handle(l, a1);
    u->add1_b = NEED1(l, te, "add_embedding.linear_1.bias");
    u->add2_w = NEEDW2(l, te, te, "add_embedding.linear_2.weight");
    u->add2_b = NEED1(l, te, "add_embedding.linear_2.bias");
}

static int level_heads(ld *l, const unet_hints *h, int lvl, int c, int levels)
{
    int heads;
    if (h->n_level_heads > 0) {
        if (h->n_level_heads != levels)
            return ld_fail(l, "attention_head_dim", "hints give heads for %d levels but the weights have %d",
                           h->n_level_heads, levels);
        heads = h->level_heads[lvl];
    } else if (h->num_heads > 0) heads = h->num_heads;
    else if (h->head_dim > 0) {
        if (c % h->head_dim)
            return ld_fail(l, "head_dim", "level %d: %d channels do not split into heads of %d", lvl, c, h->head_dim);
        heads = c / h->head_dim;
    } else return ld_fail(l, "num_heads", "no attention head hint (num_heads, head_dim or per-level heads)");
    if (heads <= 0 || c % heads)
        return ld_fail(l, "num_heads", "level %d: %d channels do not split into %d heads", lvl, c, heads);
    return heads;
}

sd_unet *unet_load(const sd_weights *w, const unet_hints *h, ops_ctx *ctx, sd_err *err)
{
    sd_unet *u = sd_calloc(1, sizeof *u);
    if (!u || (!ctx && !(u->own = ctx = ops_ctx_new(0)))) {
        free(u);
        sd_errf(err, SD_ENOMEM, "unet", "unet: out of memory");
        return NULL;
    }
    u->om = (ops_m){ctx, ops_default_precision()};
    ld L = {w, err, 0, ctx, u}, *l = &L;
    unet_info *in = &u->info;
    unet_hints own;
    if (!h) {
        if (unet_hints_from_weights(w, &own, err)) { sd_err_prefix(err, "loading unet"); unet_free(u); return NULL; }
        h = &own;
    }
    char p[128];

    /* class-label conditioning would be silently ignored: refuse it */
    if (ld_find(l, "class_embedding.linear_1.weight")) {
        ld_fail(l, "class_embedding", "class-label conditioning (class_embedding) is not supported");
        goto fail;
    }

    /* stem: conv_in gives in_channels and the level-0 width */
    const sdw_tensor *ci = ld_find(l, "conv_in.weight");
    if (!ci || ci->ndim != 4) { ld_need(l, 4, -1, -1, -1, -1, "conv_in.weight"); goto fail; }
    int c0 = (int)ci->shape[0];
    in->in_channels = (int)ci->shape[1];
    u->conv_in_k = (int)ci->shape[2];
    if (c0 < 1 || in->in_channels < 1) { ld_fail(l, "conv_in.weight", "conv_in.weight has an empty dimension"); goto fail; }
    if (u->conv_in_k % 2 == 0 || ci->shape[3] != ci->shape[2]) {
        ld_fail(l, "conv_in.weight", "conv_in kernel must be square and odd");
        goto fail;
    }
    u->conv_in_w = ld_handle(l, ci);
    u->conv_in_b = NEED1(l, c0, "conv_in.bias");

    /* time embedding: linear_1 [TE, P] with P the sinusoid width */
    const sdw_tensor *t1 = ld_find(l, "time_embedding.linear_1.weight");
    if (!t1 || t1->ndim != 2 || t1->shape[1] % 2 || t1->shape[0] < 1 || t1->shape[1] < 2) {
        ld_need(l, 2, -1, c0, 0, 0, "time_embedding.linear_1.weight");
        if (!l->failed) ld_fail(l, "time_embedding.linear_1.weight", "time_embedding.linear_1 input width must be even");
        goto fail;
    }
    int te = (int)t1->shape[0];
    u->time_proj_dim = (int)t1->shape[1];
    in->time_dim = te;
    u->time1_w = ld_handle(l, t1);
    u->time1_b = NEED1(l, te, "time_embedding.linear_1.bias");
    u->time2_w = NEEDW2(l, te, te, "time_embedding.linear_2.weight");
    u->time2_b = NEED1(l, te, "time_embedding.linear_2.bias");
    load_add_embedding(l, u, h, te);

    /* levels: one per down block */
    int nl = 0;
    while (nl < UNET_MAX_LEVELS + 1 && ld_find(l, "down_blocks.%d.resnets.0.conv1.weight", nl)) nl++;
    if (nl < 1 || nl > UNET_MAX_LEVELS) {
        if (nl) ld_fail(l, "down_blocks", "more than %d down blocks", UNET_MAX_LEVELS);
        else ld_fail(l, "down_blocks", "no down_blocks.0.resnets.0.conv1.weight (is this a UNet?)");
        goto fail;
    }
    in->levels = nl;
    for (int i = 0; i < nl; i++) {
        const sdw_tensor *c1 = ld_find(l, "down_blocks.%d.resnets.0.conv1.weight", i);
        if (c1->ndim != 4) { ld_need(l, 4, -1, -1, 3, 3, "down_blocks.%d.resnets.0.conv1.weight", i); goto fail; }
        if (c1->shape[0] < 1 || c1->shape[0] > (1 << 16)) {
            ld_fail(l, "down_blocks", "down_blocks.%d has %lld channels", i, (long long)c1->shape[0]);
            goto fail;
        }
        u->lv[i].c = in->channels[i] = (int)c1->shape[0];
    }

    /* skip channels pushed on the way down, popped on the way up */
    int skip_c[1 + UNET_MAX_LEVELS * (UNET_MAX_RES + 1)], skip_l[1 + UNET_MAX_LEVELS * (UNET_MAX_RES + 1)], ns = 0;
    skip_l[ns] = 0;
    skip_c[ns++] = c0;
    int prev = c0, down_factor = 1;
    for (int i = 0; i < nl && !l->failed; i++) {
        level *v = &u->lv[i];
        snprintf(p, sizeof p, "down_blocks.%d", i);
        v->n_down = in->down_resnets[i] = count_prefix(l, p, "resnets", "conv1.weight");
        int na = count_prefix(l, p, "attentions", "norm.weight");
        if (v->n_down > UNET_MAX_RES) { ld_fail(l, p, "%s has %d resnets (max %d)", p, v->n_down, UNET_MAX_RES); break; }
        if (na && na != v->n_down) { ld_fail(l, p, "%s has %d resnets but %d attentions", p, v->n_down, na); break; }
        v->attn = in->attention[i] = na > 0;
        v->heads = in->heads[i] = v->attn || i == nl - 1 ? level_heads(l, h, i, v->c, nl) : 0;
        for (int j = 0; j < v->n_down && !l->failed; j++) {
            char q[160];
            snprintf(q, sizeof q, "%s.resnets.%d", p, j);
            load_resblock(l, &v->down[j], prev, v->c, te, q);
            prev = v->c;
            if (v->attn) {
                snprintf(q, sizeof q, "%s.attentions.%d", p, j);
                load_transformer(l, u, &v->down_attn[j], v->c, v->heads, q);
            }
            skip_l[ns] = i;
            skip_c[ns++] = v->c;
        }
        if (i < nl - 1) {
            v->downsample_w = NEEDW4(l, v->c, v->c, 3, 3, "%s.downsamplers.0.conv.weight", p);
            v->downsample_b = NEED1(l, v->c, "%s.downsamplers.0.conv.bias", p);
            skip_l[ns] = i + 1;
            skip_c[ns++] = v->c;
            down_factor *= 2;
        }
    }
    in->down_factor = down_factor;
    if (l->failed) goto fail;

    /* mid block: ResBlock, transformer, ResBlock at the deepest width */
    int cm = u->lv[nl - 1].c;
    load_resblock(l, &u->mid_res[0], cm, cm, te, "mid_block.resnets.0");
    load_transformer(l, u, &u->mid_attn, cm, u->lv[nl - 1].heads, "mid_block.attentions.0");
    load_resblock(l, &u->mid_res[1], cm, cm, te, "mid_block.resnets.1");

    /* up blocks: up_blocks.k works at level nl-1-k */
    for (int k = 0; k < nl && !l->failed; k++) {
        int i = nl - 1 - k;
        level *v = &u->lv[i];
        snprintf(p, sizeof p, "up_blocks.%d", k);
        v->n_up = in->up_resnets[i] = count_prefix(l, p, "resnets", "conv1.weight");
        int na = count_prefix(l, p, "attentions", "norm.weight");
        if (v->n_up < 1 || v->n_up > UNET_MAX_RES) {
            ld_fail(l, p, "%s has %d resnets (expected 1..%d)", p, v->n_up, UNET_MAX_RES);
            break;
        }
        if (na && na != v->n_up) { ld_fail(l, p, "%s has %d resnets but %d attentions", p, v->n_up, na); break; }
        if ((na > 0) != v->attn) {
            ld_fail(l, p, "%s %s attention but down_blocks.%d %s", p, na ? "has" : "lacks", i, v->attn ? "has" : "lacks");
            break;
        }
        for (int j = 0; j < v->n_up && !l->failed; j++) {
            if (ns == 0) { ld_fail(l, p, "%s needs more skip connections than the down path makes", p); break; }
            if (skip_l[ns - 1] != i) {
                ld_fail(l, p, "%s.resnets.%d would join a skip connection from another resolution", p, j);
                break;
            }
            char q[160];
            snprintf(q, sizeof q, "%s.resnets.%d", p, j);
            load_resblock(l, &v->up[j], prev + skip_c[--ns], v->c, te, q);
            prev = v->c;
            if (v->attn) {
                snprintf(q, sizeof q, "%s.attentions.%d", p, j);
                load_transformer(l, u, &v->up_attn[j], v->c, v->heads, q);
            }
        }
        if (i > 0) {
            v->upsample_w = NEEDW4(l, v->c, v->c, 3, 3, "%s.upsamplers.0.conv.weight", p);
            v->upsample_b = NEED1(l, v->c, "%s.upsamplers.0.conv.bias", p);
        }
    }
    if (!l->failed && ns != 0) ld_fail(l, "up_blocks", "the up path uses %d fewer skip connections than the down path makes", ns);

    /* head */
    u->norm_out_g = NEED1(l, c0, "conv_norm_out.weight");
    u->norm_out_b = NEED1(l, c0, "conv_norm_out.bias");
    if (!l->failed && prev != c0) ld_fail(l, "conv_out", "last up block has %d channels, conv_in has %d", prev, c0);
    const sdw_tensor *co = ld_find(l, "conv_out.weight");
    if (!co || co->ndim != 4 || co->shape[2] % 2 == 0 || co->shape[0] < 1) {
        ld_need(l, 4, -1, c0, 3, 3, "conv_out.weight");
        if (!l->failed) ld_fail(l, "conv_out.weight", "conv_out kernel must be odd");
        goto fail;
    }
    in->out_channels = (int)co->shape[0];
    u->conv_out_k = (int)co->shape[2];
    u->conv_out_w = NEEDW4(l, in->out_channels, c0, u->conv_out_k, u->conv_out_k, "conv_out.weight");
    u->conv_out_b = NEED1(l, in->out_channels, "conv_out.bias");
    if (!l->failed && in->context_dim == 0) ld_fail(l, "attentions", "no cross-attention found (not a text-conditioned UNet)");
    if (l->failed) goto fail;
    return u;
fail:
    if (!l->failed) ld_fail(l, "unet", "cannot load");
    sd_err_prefix(err, "loading unet");
    unet_free(u);
    return NULL;
}

void unet_free(sd_unet *u)
{
    if (!u) return;
    free(u->ws);
    if (!u->own)   /* a shared context: its handles go now (a context of its own frees them) */
        for (int i = 0; i < u->nrefs; i++) ops_weight_free(u->refs[i].w);
    free(u->refs);
    ops_ctx_free(u->own);
    free(u);
}
const unet_info *unet_get_info(const sd_unet *u) { return &u->info; }
void unet_set_tap(sd_unet *u, unet_tap_fn fn, void *ud) { u->tap = fn; u->tap_ud = ud; }

/* ---------------------------------------------------------------- state */

/* Activation buffers for one forward, carved from the model's workspace.
 * x/y hold the running hidden state (swapped after each block), t1..t3 are
 * per-block temporaries, att holds attention q/out/k/v or the GEGLU
 * projection, ffh the GEGLU output; skips are the down path's outputs. */
typedef struct state {
    const ops_m *om;                  /* the model's ops context and precision */
    ops_m bf;                         /* the same context at plain bf16: the rule's layers */
    const unet_rule *rule;
    int B, T;
    int h[UNET_MAX_LEVELS], w[UNET_MAX_LEVELS];
    float *x, *y, *t1, *t2, *t3, *att, *ffh;
    float *temb, *temb_act, *tproj, *chan_bias;
    float *add_in, *aug;              /* SDXL: add_embedding input [B, P + 6A] and output [B, TE] */
    float *skip[1 + UNET_MAX_LEVELS * (UNET_MAX_RES + 1)];
    int skip_lvl[1 + UNET_MAX_LEVELS * (UNET_MAX_RES + 1)], nskip;
    size_t gen, att_n, ffh_n, small_c, total;   /* plan: sizes in floats */
} state;

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* The precision a layer of `kind` at level lvl runs at: plain bf16 where
 * the model's rule names it, else the model's. */
static const ops_m *lom(const state *s, int kind, int lvl)
{
    return s->rule && (s->rule->lv[kind] >> lvl & 1) ? &s->bf : s->om;
}

/* Per-level sizes and the buffer sizes they need; s->total floats in all. */
static void state_plan(const sd_unet *u, state *s, int B, int H, int W, int T)
{
    const unet_info *in = &u->info;
    int nl = in->levels, c0 = u->lv[0].c;
    s->B = B; s->T = T;
    s->h[0] = H; s->w[0] = W;
    for (int i = 1; i < nl; i++) { s->h[i] = (s->h[i - 1] - 1) / 2 + 1; s->w[i] = (s->w[i - 1] - 1) / 2 + 1; }

    size_t gen = 0, att = 0, ffh = 0, skips = 0, cmax_all = c0;
    for (int i = 0; i < nl; i++) {
        const level *v = &u->lv[i];
        size_t hw = (size_t)s->h[i] * s->w[i], m = (size_t)B * hw;
        size_t cmax = v->c;
        if (i == 0) cmax = max_sz(cmax, max_sz(c0, max_sz(in->in_channels, in->out_channels)));
        if (i + 1 < nl) cmax = max_sz(cmax, u->lv[i + 1].c);          /* upsampled from below */
        for (int j = 0; j < v->n_up; j++) cmax = max_sz(cmax, v->up[j].cin);
        for (int j = 0; j < v->n_down; j++) cmax = max_sz(cmax, v->down[j].cin);
        gen = max_sz(gen, m * cmax);
        cmax_all = max_sz(cmax_all, cmax);
        int has_attn = v->attn || i == nl - 1;   /* the mid block sits at the last level */
        if (has_attn) {
            size_t kv = (size_t)B * max_sz(hw, max_sz((size_t)T, (size_t)u->t_plan)) * v->c;
            att = max_sz(att, max_sz(m * 2 * u->ff_max, 2 * m * v->c + 2 * kv));
            ffh = max_sz(ffh, m * u->ff_max);
        }
    }
    s->nskip = 0;
    skips += (size_t)B * c0 * H * W;
    for (int i = 0; i < nl; i++) {
        size_t m = (size_t)B * s->h[i] * s->w[i] * u->lv[i].c;
        skips += m * u->lv[i].n_down;
        if (i + 1 < nl) skips += (size_t)B * s->h[i + 1] * s->w[i + 1] * u->lv[i].c;
    }
    size_t small = (size_t)B * (2 * in->time_dim + u->time_proj_dim + cmax_all);
    if (in->add_dim) small += (size_t)B * (in->add_text_dim + 6 * in->add_time_dim + in->time_dim);
    s->gen = gen; s->att_n = att; s->ffh_n = ffh; s->small_c = cmax_all;
    s->total = 5 * gen + att + ffh + skips + small;
}

static int valid_size(int B, int H, int W, int T, sd_err *err)
{
    if (B < 1 || H < 1 || W < 1 || T < 1 || H > 4096 || W > 4096 || T > 77 * 64 ||
        (size_t)B * H * W > ((size_t)1 << 22) || (size_t)B * T > ((size_t)1 << 20))
        return sd_errf(err, SD_EINVAL, "unet", "unet: bad input size B=%d H=%d W=%d T=%d", B, H, W, T);
    return 0;
}

/* Make the workspace at least `need` floats (never shrinks). */
static int ws_grow(sd_unet *u, size_t need, int B, int H, int W, sd_err *err)
{
    if (need <= u->ws_cap) return 0;
    float *p = need < SIZE_MAX / sizeof(float) ? sd_malloc(need * sizeof(float)) : NULL;
    if (!p) return sd_errf(err, SD_ENOMEM, "unet", "unet: cannot allocate %zu MB of activations for %dx%dx%d",
                           need / (1 << 18), B, H, W);
    free(u->ws);
    u->ws = p;
    u->ws_cap = need;
    return 0;
}

void unet_release_activations(sd_unet *u)
{
    if (u && u->ws) ops_release_pages(u->ws, u->ws_cap * sizeof(float));
}

int unet_reserve(sd_unet *u, int B, int H, int W, int T, size_t *bytes, sd_err *err)
{
    if (valid_size(B, H, W, T, err)) return -1;
    state s;
    memset(&s, 0, sizeof s);
    state_plan(u, &s, B, H, W, T);
    if (ws_grow(u, s.total, B, H, W, err)) return -1;
    if (bytes) *bytes = u->ws_cap * sizeof(float);
    return 0;
}

/* Point the buffers of a planned state into the workspace. */
static void state_carve(const sd_unet *u, state *s)
{
    const unet_info *in = &u->info;
    int B = s->B;
    size_t gen = s->gen;
    float *p = u->ws;
    s->x = p; p += gen; s->y = p; p += gen; s->t1 = p; p += gen; s->t2 = p; p += gen; s->t3 = p; p += gen;
    s->att = p; p += s->att_n; s->ffh = p; p += s->ffh_n;
    s->temb = p; p += (size_t)B * in->time_dim;
    s->temb_act = p; p += (size_t)B * in->time_dim;
    s->tproj = p; p += (size_t)B * u->time_proj_dim;
    s->chan_bias = p; p += (size_t)B * s->small_c;
    if (in->add_dim) {
        s->add_in = p; p += (size_t)B * (in->add_text_dim + 6 * in->add_time_dim);
        s->aug = p; p += (size_t)B * in->time_dim;
    }
    s->skip[0] = p;   /* skips are laid out in push order from here */
}

static void swap_xy(state *s) { float *t = s->x; s->x = s->y; s->y = t; }

/* Push the current hidden state x (at level lvl, c channels) as a skip. */
static void skip_push(state *s, int lvl, int c)
{
    size_t n = (size_t)s->B * c * s->h[lvl] * s->w[lvl];
    memcpy(s->skip[s->nskip], s->x, n * sizeof(float));
    s->skip_lvl[s->nskip] = lvl;
    s->skip[s->nskip + 1] = s->skip[s->nskip] + n;
    s->nskip++;
}

static void tap(const sd_unet *u, const char *name, const float *d, int n, int c, int h, int w)
{
    if (u->tap) u->tap(u->tap_ud, name, d, n, c, h, w);
}

/* Taps see NCHW like the goldens; activations live in NHWC (a debug path:
 * the copy is allocated here, never in a normal forward). */
static void tap_nhwc(const sd_unet *u, const char *name, const float *d, int n, int c, int h, int w)
{
    if (!u->tap) return;
    float *t = sd_malloc(sizeof(float) * (size_t)n * c * h * w);
    if (!t) return;
    op_nlc_to_nchw(d, n, c, h * w, t);
    u->tap(u->tap_ud, name, t, n, c, h, w);
    free(t);
}

/* ---------------------------------------------------------------- blocks */

/* Sinusoidal timestep embedding, diffusers Timesteps(flip_sin_to_cos=True,
 * downscale_freq_shift=0) in fp32: [cos(t·f_i) | sin(t·f_i)],
 * f_i = exp(-ln(10000)·i/half). */
static void timestep_embedding(const float *t, int B, int dim, float *out)
{
    int half = dim / 2;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < half; i++) {
            float e = (-logf(10000.f) * (float)i) / (float)half;
            float arg = t[b] * expf(e);
            out[(size_t)b * dim + i] = cosf(arg);
            out[(size_t)b * dim + half + i] = sinf(arg);
        }
}

/* SDXL: s->temb += linear_2(SiLU(linear_1([text | sinusoids of the 6 time
 * ids]))) for vec[B, P + 6] (unet_cond); s->temb_act is its scratch. */
static void add_embedding_forward(const sd_unet *u, const float *vec, state *s)
{
    const unet_info *in = &u->info;
    int B = s->B, P = in->add_text_dim, A = in->add_time_dim, K = P + 6 * A, te = in->time_dim;
    for (int b = 0; b < B; b++) {
        const float *v = vec + (size_t)b * in->add_dim;
        float *row = s->add_in + (size_t)b * K;
        memcpy(row, v, sizeof(float) * P);
        timestep_embedding(v + P, 6, A, row + P);   /* the 6 ids, each A wide, one after another */
    }
    if (u->tap) {   /* [B*6, A] like diffusers' add_time_proj */
        float *t = sd_malloc(sizeof(float) * (size_t)B * 6 * A);
        if (t) {
            for (int b = 0; b < B; b++) memcpy(t + (size_t)b * 6 * A, s->add_in + (size_t)b * K + P, sizeof(float) * 6 * A);
            tap(u, "add_time_proj", t, B * 6, A, 1, 1);
            free(t);
        }
    }
    const ops_m *om = lom(s, UL_EMB, 0);
    op_linear(om, s->add_in, B, K, u->add1_w, u->add1_b, te, s->temb_act);
    op_silu(s->temb_act, (size_t)B * te);
    op_linear(om, s->temb_act, B, te, u->add2_w, u->add2_b, te, s->aug);
    tap(u, "add_embedding", s->aug, B, te, 1, 1);
    for (size_t i = 0; i < (size_t)B * te; i++) s->temb[i] += s->aug[i];
}

/* ResBlock: x[B,hw,cin] in s->x -> s->x[B,hw,cout].  The time embedding's
 * channel bias is folded into the second group norm, and the residual add
 * into the second conv (accumulating onto x, or onto the 1x1 shortcut). */
static void resblock_forward(const resblock *r, state *s, int lvl, int time_dim)
{
    const ops_m *om = lom(s, UL_RES, lvl), *os = lom(s, UL_SAMPLE, lvl);
    int B = s->B, H = s->h[lvl], W = s->w[lvl];
    op_gn_conv2d_nhwc(om, s->x, B, r->cin, H, W, UNET_GROUPS, NULL, r->norm1_g, r->norm1_b, RES_EPS, 1, s->t1,
                      r->conv1_w, r->conv1_b, r->cout, 3, 3, 1, 1, s->t2, 0);
    op_linear(lom(s, UL_EMB, lvl), s->temb_act, B, time_dim, r->temb_w, r->temb_b, r->cout, s->chan_bias);
    if (r->short_w) op_conv2d_nhwc(os, s->x, B, r->cin, H, W, r->short_w, r->short_b, r->cout, 1, 1, 1, 0, s->y, 0);
    op_gn_conv2d_nhwc(om, s->t2, B, r->cout, H, W, UNET_GROUPS, s->chan_bias, r->norm2_g, r->norm2_b, RES_EPS, 1, s->t2,
                      r->conv2_w, r->conv2_b, r->cout, 3, 3, 1, 1, r->short_w ? s->y : s->x, 1);
    if (r->short_w) swap_xy(s);
}

/* h[B*Tq, C] += to_out(attention(norm(h) -> q, kv -> k, v)); kv NULL = self. */
static void attention_forward(const ops_m *om, const ops_m *core, const attention *a, int heads, int B, int Tq,
                              int C, const float *hn, const float *kv, int Tk, float *scratch, float *h, float *tmp)
{
    size_t mq = (size_t)B * Tq, mk = (size_t)B * Tk;
    float *q = scratch, *o = q + mq * C, *k = o + mq * C, *v = k + mk * C;
    const float *src = kv ? kv : hn;
    op_linear(om, hn, (int)mq, C, a->q, NULL, C, q);
    op_linear(om, src, (int)mk, a->kv_dim, a->k, NULL, C, k);
    op_linear(om, src, (int)mk, a->kv_dim, a->v, NULL, C, v);
    int d = C / heads;
    op_attention(core, q, C, k, C, v, C, B, Tq, Tk, heads, d, 1.f / sqrtf((float)d), o);
    op_linear_acc(om, o, (int)mq, C, a->out_w, a->out_b, C, h);
}

/* SpatialTransformer: x[B,hw,C] in s->x — already the token layout —
 * updated in place (residual). */
static void transformer_forward(const transformer *t, state *s, int lvl, const float *ctx)
{
    const ops_m *om = s->om, *op = lom(s, UL_PROJ, lvl), *oa = lom(s, UL_ATTN, lvl), *of = lom(s, UL_FF, lvl);
    int B = s->B, C = t->c, hw = s->h[lvl] * s->w[lvl];
    size_t m = (size_t)B * hw;
    op_group_norm_nhwc(om, s->x, B, C, hw, UNET_GROUPS, NULL, t->norm_g, t->norm_b, ST_EPS, 0, s->t1);
    float *h = s->t3;
    op_linear(op, s->t1, (int)m, C, t->proj_in_w, t->proj_in_b, C, h);
    for (int i = 0; i < t->depth; i++) {
        const tblock *b = &t->blocks[i];
        op_layer_norm(h, (int)m, C, b->norm1_g, b->norm1_b, LN_EPS, s->t1);
        attention_forward(oa, om, &b->attn1, t->heads, B, hw, C, s->t1, NULL, hw, s->att, h, s->t2);
        op_layer_norm(h, (int)m, C, b->norm2_g, b->norm2_b, LN_EPS, s->t1);
        attention_forward(oa, om, &b->attn2, t->heads, B, hw, C, s->t1, ctx, s->T, s->att, h, s->t2);
        op_layer_norm(h, (int)m, C, b->norm3_g, b->norm3_b, LN_EPS, s->t1);
        op_linear(of, s->t1, (int)m, C, b->ff1_w, b->ff1_b, 2 * b->ff, s->att);
        op_geglu(s->att, (int)m, b->ff, s->ffh);
        op_linear_acc(of, s->ffh, (int)m, b->ff, b->ff2_w, b->ff2_b, C, h);
    }
    op_linear_acc(op, h, (int)m, C, t->proj_out_w, t->proj_out_b, C, s->x);
}

void unet_set_precision(sd_unet *u, int prec) { u->om.prec = prec; }

int unet_set_layer_rule(sd_unet *u, const char *rule, sd_err *err)
{
    unet_rule r;
    if (rule_parse(rule, &r, err)) return -1;
    int any = 0;
    for (int k = 0; k < UL_NKINDS; k++) any |= r.lv[k] != 0;
    if (any && !ops_cpu_bf16())
        return sd_errf(err, SD_EINVAL, "layer_rule", "layers at plain bf16 need a CPU with AVX-512 (the compute "
                       "library has no bf16 kernels below it, or ONEDNN_MAX_CPU_ISA caps it lower)");
    u->rule = r;
    return 0;
}
const char *unet_layer_rule(const sd_unet *u) { return u->rule.text; }
ops_ctx *unet_ops_ctx(const sd_unet *u) { return u->om.ctx; }

/* The handle of one conv or linear weight by its diffusers name (without
 * "unet."), for tests and for patching (LoRA); NULL if it is not one. */
ops_weight *unet_weight(sd_unet *u, const char *name)
{
    for (int i = 0; i < u->nrefs; i++)
        if (!strcmp(u->refs[i].t->name + 5, name)) return u->refs[i].w;   /* past "unet." */
    return NULL;
}
void unet_plan_context(sd_unet *u, int T) { u->t_plan = T > 0 ? T : 0; }

/* ---------------------------------------------------------------- forward */

/* Refuse a conditioning this UNet cannot use (unet_cond in unet.h). */
static int check_cond(const unet_info *in, const unet_cond *c, sd_err *err)
{
    if (!c || !c->ctx) return sd_errf(err, SD_EINVAL, "context", "unet: no cross-attention context given");
    if (c->ctx_dim && c->ctx_dim != in->context_dim)
        return sd_errf(err, SD_EINVAL, "context", "unet: the context is %d wide; this UNet's cross-attention "
                       "takes %d", c->ctx_dim, in->context_dim);
    if (c->vec_dim < 0 || (c->vec_dim > 0) != (c->vec != NULL))
        return sd_errf(err, SD_EINVAL, "added_cond", "unet: added vector and its width (%d) disagree", c->vec_dim);
    if (c->vec && !in->add_dim)
        return sd_errf(err, SD_EINVAL, "added_cond", "unet: a %d-wide added vector was given but this UNet has "
                       "no add-embedding", c->vec_dim);
    if (!c->vec && in->add_dim)
        return sd_errf(err, SD_EINVAL, "added_cond", "unet: this UNet has an add-embedding (SDXL) and needs the "
                       "added vector: %d pooled text features + 6 time ids", in->add_text_dim);
    if (c->vec && c->vec_dim != in->add_dim)
        return sd_errf(err, SD_EINVAL, "added_cond", "unet: the added vector is %d wide; this UNet's "
                       "add-embedding takes %d", c->vec_dim, in->add_dim);
    if (c->concat_channels < 0 || (c->concat_channels > 0) != (c->concat != NULL))
        return sd_errf(err, SD_EINVAL, "concat", "unet: extra input channels and their count (%d) disagree",
                       c->concat_channels);
    if (c->concat && in->in_channels - c->concat_channels != in->out_channels)
        return sd_errf(err, SD_EINVAL, "concat", "unet: conv_in takes %d input channels; a %d-channel latent "
                       "and %d extra channels do not make them", in->in_channels, in->out_channels,
                       c->concat_channels);
    return 0;
}

/* conv_in's input in NHWC at dst: the latent, or [latent | extra channels]. */
static void input_nhwc(const unet_info *in, const float *x, const unet_cond *c, state *s, int HW, float *dst)
{
    if (!c->concat_channels) {
        op_nchw_to_nlc(x, s->B, in->in_channels, HW, dst);
        return;
    }
    int cx = in->in_channels - c->concat_channels;
    op_nchw_to_nlc(x, s->B, cx, HW, s->t2);
    op_nchw_to_nlc(c->concat, s->B, c->concat_channels, HW, s->t3);
    op_concat_channels_nhwc(s->t2, cx, s->t3, c->concat_channels, (size_t)s->B * HW, dst);
}

int unet_forward(sd_unet *u, const float *x, const float *t, const unet_cond *c,
                 int B, int H, int W, float *out, sd_err *err)
{
    const unet_info *in = &u->info;
    if (check_cond(in, c, err)) return -1;
    const float *ctx = c->ctx;
    int T = c->T;
    if (valid_size(B, H, W, T, err)) return -1;
    const ops_m *om = &u->om;
    state s;
    memset(&s, 0, sizeof s);
    s.om = om;
    s.bf = (ops_m){om->ctx, OPS_BF16};
    s.rule = &u->rule;
    state_plan(u, &s, B, H, W, T);
    if (ws_grow(u, s.total, B, H, W, err)) return -1;
    state_carve(u, &s);
    int nl = in->levels, c0 = u->lv[0].c, te = in->time_dim;
    char name[64];

    /* time embedding: sinusoid -> linear_1 -> SiLU -> linear_2; ResBlocks see SiLU(emb) */
    timestep_embedding(t, B, u->time_proj_dim, s.tproj);
    tap(u, "time_proj", s.tproj, B, u->time_proj_dim, 1, 1);
    op_linear(lom(&s, UL_EMB, 0), s.tproj, B, u->time_proj_dim, u->time1_w, u->time1_b, te, s.temb_act);
    op_silu(s.temb_act, (size_t)B * te);
    op_linear(lom(&s, UL_EMB, 0), s.temb_act, B, te, u->time2_w, u->time2_b, te, s.temb);
    tap(u, "time_embedding", s.temb, B, te, 1, 1);
    if (in->add_dim) add_embedding_forward(u, c->vec, &s);
    memcpy(s.temb_act, s.temb, sizeof(float) * B * te);
    op_silu(s.temb_act, (size_t)B * te);

    /* activations are NHWC inside; the latent comes and goes as NCHW */
    if (c->concat) tap(u, "concat", c->concat, B, c->concat_channels, H, W);   /* the extra input channels */
    input_nhwc(in, x, c, &s, H * W, s.t1);
    op_conv2d_nhwc(lom(&s, UL_IO, 0), s.t1, B, in->in_channels, H, W, u->conv_in_w, u->conv_in_b, c0,
                   u->conv_in_k, u->conv_in_k, 1, u->conv_in_k / 2, s.x, 0);
    tap_nhwc(u, "conv_in", s.x, B, c0, H, W);
    skip_push(&s, 0, c0);

    for (int i = 0; i < nl; i++) {
        const level *v = &u->lv[i];
        for (int j = 0; j < v->n_down; j++) {
            resblock_forward(&v->down[j], &s, i, te);
            if (v->attn) transformer_forward(&v->down_attn[j], &s, i, ctx);
            skip_push(&s, i, v->c);
        }
        if (v->downsample_w) {
            op_conv2d_nhwc(lom(&s, UL_SAMPLE, i + 1), s.x, B, v->c, s.h[i], s.w[i], v->downsample_w, v->downsample_b, v->c, 3, 3, 2, 1, s.y,
                           0);
            swap_xy(&s);
            skip_push(&s, i + 1, v->c);
        }
        snprintf(name, sizeof name, "down_blocks.%d", i);
        tap_nhwc(u, name, s.x, B, v->c, s.h[i + (v->downsample_w != NULL)], s.w[i + (v->downsample_w != NULL)]);
    }

    resblock_forward(&u->mid_res[0], &s, nl - 1, te);
    transformer_forward(&u->mid_attn, &s, nl - 1, ctx);
    resblock_forward(&u->mid_res[1], &s, nl - 1, te);
    tap_nhwc(u, "mid_block", s.x, B, u->lv[nl - 1].c, s.h[nl - 1], s.w[nl - 1]);

    int cprev = u->lv[nl - 1].c;
    for (int k = 0; k < nl; k++) {
        int i = nl - 1 - k;
        const level *v = &u->lv[i];
        size_t hw = (size_t)s.h[i] * s.w[i];
        for (int j = 0; j < v->n_up; j++) {
            int sc = v->up[j].cin - cprev;
            s.nskip--;
            op_concat_channels_nhwc(s.x, cprev, s.skip[s.nskip], sc, B * hw, s.y);
            swap_xy(&s);
            resblock_forward(&v->up[j], &s, i, te);
            if (v->attn) transformer_forward(&v->up_attn[j], &s, i, ctx);
            cprev = v->c;
        }
        int oh = s.h[i], ow = s.w[i];
        if (v->upsample_w) {
            /* like diffusers' forward_upsample_size: to the next skip's size */
            int tl = s.skip_lvl[s.nskip - 1];
            oh = s.h[tl]; ow = s.w[tl];
            op_upsample_nearest_nhwc(s.x, B, v->c, s.h[i], s.w[i], oh, ow, s.t1);
            op_conv2d_nhwc(lom(&s, UL_SAMPLE, tl), s.t1, B, v->c, oh, ow, v->upsample_w, v->upsample_b, v->c, 3, 3, 1, 1, s.x, 0);
        }
        snprintf(name, sizeof name, "up_blocks.%d", k);
        tap_nhwc(u, name, s.x, B, v->c, oh, ow);
    }

    /* SiLU fused into the norm unless the pre-SiLU value is tapped */
    op_group_norm_nhwc(om, s.x, B, c0, H * W, UNET_GROUPS, NULL, u->norm_out_g, u->norm_out_b, RES_EPS, !u->tap, s.t1);
    if (u->tap) {
        tap_nhwc(u, "conv_norm_out", s.t1, B, c0, H, W);
        op_silu(s.t1, (size_t)B * c0 * H * W);
    }
    op_conv2d_nhwc(lom(&s, UL_IO, 0), s.t1, B, c0, H, W, u->conv_out_w, u->conv_out_b, in->out_channels,
                   u->conv_out_k, u->conv_out_k, 1, u->conv_out_k / 2, s.t2, 0);
    op_nlc_to_nchw(s.t2, B, in->out_channels, H * W, out);
    return 0;
}

/* ---------------------------------------------------------------- FLOP count */

/* Multiply-adds count 2.  Convs, linears and attention's two products (the
 * T² terms); norms, activations and element-wise adds are not counted.
 * Counted per layer kind and level (the per-layer rule's grid); attention's
 * two products go with no kind (-1): they run at the model's precision. */
typedef struct flop_grid {
    double kl[UL_NKINDS][UNET_MAX_LEVELS];
    double core;
} flop_grid;

static void fg_add(flop_grid *g, int kind, int lvl, double f)
{
    if (kind < 0) g->core += f;
    else g->kl[kind][lvl] += f;
}

static double conv_flops(double m, int cin, int cout, int k) { return 2.0 * m * cin * cout * k * k; }

static void resblock_flops(flop_grid *g, int lvl, const resblock *r, int B, double hw, int te)
{
    double m = B * hw;
    fg_add(g, UL_RES, lvl, conv_flops(m, r->cin, r->cout, 3) + conv_flops(m, r->cout, r->cout, 3));
    fg_add(g, UL_EMB, lvl, 2.0 * B * te * r->cout);      /* time-embedding projection */
    if (r->short_w) fg_add(g, UL_SAMPLE, lvl, conv_flops(m, r->cin, r->cout, 1));
}

/* One attention block: q and out on the Tq rows, k and v on the Tk rows of
 * kv_dim features, then Q·Kᵀ and P·V over all heads. */
static void attention_flops(flop_grid *g, int lvl, const attention *a, int B, double Tq, double Tk, int C)
{
    fg_add(g, UL_ATTN, lvl, 2.0 * B * (2 * Tq * C * C + 2 * Tk * a->kv_dim * C));
    fg_add(g, -1, lvl, 4.0 * B * Tq * Tk * C);
}

static void transformer_flops(flop_grid *g, int lvl, const transformer *t, int B, double hw, int T)
{
    int C = t->c;
    double m = B * hw;
    fg_add(g, UL_PROJ, lvl, 2 * 2.0 * m * C * C);         /* proj_in, proj_out */
    for (int i = 0; i < t->depth; i++) {
        const tblock *b = &t->blocks[i];
        attention_flops(g, lvl, &b->attn1, B, hw, hw, C);
        attention_flops(g, lvl, &b->attn2, B, hw, T, C);
        fg_add(g, UL_FF, lvl, 2.0 * m * C * 2 * b->ff + 2.0 * m * b->ff * C);   /* GEGLU in, out */
    }
}

static void unet_flop_grid(const sd_unet *u, int B, int H, int W, int T, flop_grid *g)
{
    const unet_info *in = &u->info;
    state s;
    memset(&s, 0, sizeof s);
    memset(g, 0, sizeof *g);
    state_plan(u, &s, B, H, W, T);
    int nl = in->levels, te = in->time_dim, c0 = u->lv[0].c;
    fg_add(g, UL_EMB, 0, 2.0 * B * ((double)u->time_proj_dim * te + (double)te * te));
    if (in->add_dim)
        fg_add(g, UL_EMB, 0, 2.0 * B * ((double)(in->add_text_dim + 6 * in->add_time_dim) * te + (double)te * te));
    fg_add(g, UL_IO, 0, conv_flops((double)B * H * W, in->in_channels, c0, u->conv_in_k));
    fg_add(g, UL_IO, 0, conv_flops((double)B * H * W, c0, in->out_channels, u->conv_out_k));
    for (int i = 0; i < nl; i++) {
        const level *v = &u->lv[i];
        double hw = (double)s.h[i] * s.w[i];
        for (int j = 0; j < v->n_down; j++) {
            resblock_flops(g, i, &v->down[j], B, hw, te);
            if (v->attn) transformer_flops(g, i, &v->down_attn[j], B, hw, T);
        }
        for (int j = 0; j < v->n_up; j++) {
            resblock_flops(g, i, &v->up[j], B, hw, te);
            if (v->attn) transformer_flops(g, i, &v->up_attn[j], B, hw, T);
        }
        if (v->downsample_w) fg_add(g, UL_SAMPLE, i + 1, conv_flops((double)B * s.h[i + 1] * s.w[i + 1], v->c, v->c, 3));
        if (v->upsample_w) fg_add(g, UL_SAMPLE, i - 1, conv_flops((double)B * s.h[i - 1] * s.w[i - 1], v->c, v->c, 3));
    }
    double hw = (double)s.h[nl - 1] * s.w[nl - 1];
    resblock_flops(g, nl - 1, &u->mid_res[0], B, hw, te);
    resblock_flops(g, nl - 1, &u->mid_res[1], B, hw, te);
    transformer_flops(g, nl - 1, &u->mid_attn, B, hw, T);
}

/* The grid's sum over the layers r names (NULL: every layer, attention's
 * products too). */
static double fg_sum(const flop_grid *g, const unet_rule *r)
{
    double f = r ? 0 : g->core;
    for (int k = 0; k < UL_NKINDS; k++)
        for (int l = 0; l < UNET_MAX_LEVELS; l++)
            if (!r || (r->lv[k] >> l & 1)) f += g->kl[k][l];
    return f;
}

double unet_flops(const sd_unet *u, int B, int H, int W, int T)
{
    flop_grid g;
    unet_flop_grid(u, B, H, W, T, &g);
    return fg_sum(&g, NULL);
}

double unet_flops_rule(const sd_unet *u, int B, int H, int W, int T, const char *rule)
{
    unet_rule r;
    sd_err err = {0};
    if (rule_parse(rule, &r, &err)) return -1;
    flop_grid g;
    unet_flop_grid(u, B, H, W, T, &g);
    return fg_sum(&g, &r);
}
