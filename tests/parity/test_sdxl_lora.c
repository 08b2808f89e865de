/* test_sdxl_lora.c — LoRA on SDXL (issue 15 item 2) on tiny-sdxl-s, with
 * LoRA files written here (no golden exists for SDXL LoRA):
 *  - names: every UNet weight of the SDXL and SD1 single files, named by
 *    its LDM spelling as kohya's SDXL files do
 *    ("lora_unet_input_blocks_4_1_..."), resolves to that weight, the
 *    block numbers learnt from the diffusers names alone;
 *  - merge: a stack of three LoRAs — kohya LDM names, kohya diffusers names
 *    and PEFT names; linears and LoCon convs; lora_te1_/lora_te2_ and
 *    text_encoder./text_encoder_2. — leaves each patched weight of the
 *    UNet and of both text encoders at W + m·(alpha/rank)·up@down computed
 *    here in double (the folder, and the single file whose te2 q/k/v are
 *    views into one packed in_proj);
 *  - the stack changes both encoders' context, the pooled vector and a UNet
 *    pass (added vector included); no LoRA afterwards gives every patched
 *    weight back bit for bit, per model part, and the same context, pooled
 *    vector and UNet output as before, bit for bit (the kernels' copies);
 *  - the whole picture through sd_generate: the stack's image differs from
 *    the plain one, and the request without LoRA right after gives the
 *    plain image again, byte for byte (issue 14's rule, on SDXL);
 *  - family: an SD1 LoRA on SDXL and an SDXL LoRA on SD1 are refused naming
 *    "loras" with the reason; sd_list_loras says which fit and why not. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t.h"
#include "../../src/engine/loader/st_write.h"
#include "../../src/engine/lora/lora.h"
#include "../../src/engine/models/clip.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/pipeline.h"

#define MAXMOD 8

/* One module of a LoRA written here. */
typedef struct mod {
    const char *key;      /* module as the file names it */
    const char *target;   /* canonical weight it must patch */
    int rank;
    float alpha;          /* 0: the file has no alpha (alpha = rank) */
} mod;

typedef struct lora_file {
    const char *name;
    float weight;
    mod m[MAXMOD];
} lora_file;

static const lora_file FILES[] = {
    {"xl_ldm", 0.8f, {
        {"lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k",
         "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight", 4, 2},
        {"lora_unet_input_blocks_1_0_in_layers_2", "unet.down_blocks.0.resnets.0.conv1.weight", 2, 1},
        {"lora_unet_output_blocks_2_2_conv", "unet.up_blocks.0.upsamplers.0.conv.weight", 3, 6},
        {"lora_unet_middle_block_1_proj_out", "unet.mid_block.attentions.0.proj_out.weight", 2, 4},
        {"lora_unet_label_emb_0_0", "unet.add_embedding.linear_1.weight", 2, 2},
        {"lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
         "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight", 4, 2},
        {"lora_te2_text_model_encoder_layers_1_mlp_fc1",
         "text_encoder_2.text_model.encoder.layers.1.mlp.fc1.weight", 4, 8},
        {"lora_te2_text_model_encoder_layers_0_self_attn_k_proj",
         "text_encoder_2.text_model.encoder.layers.0.self_attn.k_proj.weight", 2, 1}}},
    {"xl_kohya", 0.5f, {
        {"lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_v",
         "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_v.weight", 4, 2},
        {"lora_unet_mid_block_resnets_0_conv2", "unet.mid_block.resnets.0.conv2.weight", 2, 0},
        {"lora_te1_text_model_encoder_layers_2_mlp_fc2",
         "text_encoder.text_model.encoder.layers.2.mlp.fc2.weight", 2, 1},
        {"lora_te2_text_model_encoder_layers_2_self_attn_out_proj",
         "text_encoder_2.text_model.encoder.layers.2.self_attn.out_proj.weight", 3, 3}}},
    {"xl_peft", 1.2f, {
        {"unet.up_blocks.1.attentions.0.proj_in", "unet.up_blocks.1.attentions.0.proj_in.weight", 4, 0},
        {"text_encoder.text_model.encoder.layers.1.self_attn.v_proj",
         "text_encoder.text_model.encoder.layers.1.self_attn.v_proj.weight", 2, 0},
        {"text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj",
         "text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.weight", 4, 0}}},
};
#define NFILES (sizeof FILES / sizeof FILES[0])

static char DIR_[] = "/tmp/sd-xllora-XXXXXX";

static float rnd(uint32_t *x)
{
    *x = *x * 1664525u + 1013904223u;
    return ((float)(*x >> 8) / (float)(1 << 24) - 0.5f) * 0.5f;
}

static int n_mods(const lora_file *f)
{
    int n = 0;
    while (n < MAXMOD && f->m[n].key) n++;
    return n;
}

static const char *part_name(const mod *m, int k, char *buf, size_t size)
{
    int peft = strncmp(m->key, "lora_", 5) != 0;
    static const char *kohya[] = {"lora_down.weight", "lora_up.weight", "alpha"};
    static const char *pe[] = {"lora_A.weight", "lora_B.weight", "alpha"};
    snprintf(buf, size, "%s.%s", m->key, peft ? pe[k] : kohya[k]);
    return buf;
}

/* The values of module i of f (down [r, in], up [out, r]): deterministic. */
static void values(const lora_file *f, int i, int64_t in, int64_t out, float *down, float *up)
{
    uint32_t x = 7u + 131u * (uint32_t)i + (uint32_t)f->name[3];
    for (int64_t j = 0; j < f->m[i].rank * in; j++) down[j] = rnd(&x);
    for (int64_t j = 0; j < out * f->m[i].rank; j++) up[j] = rnd(&x);
}

static const sdw_tensor *find(const sd_weights *w, const char *name)
{
    for (size_t i = 0; i < sdw_count(w); i++)
        if (!strcmp(sdw_at(w, i)->name, name)) return sdw_at(w, i);
    return NULL;
}

static int64_t flat_in(const sdw_tensor *t)
{
    int64_t n = 1;
    for (int i = 1; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* f written to DIR_/<name>.safetensors with the shapes of w's weights. */
static int write_file(const lora_file *f, const sd_weights *w)
{
    stw_tensor t[3 * MAXMOD];
    const float *data[3 * MAXMOD];
    float *own[3 * MAXMOD] = {0};
    char names[3 * MAXMOD][160];
    size_t k = 0;
    int bad = 0;
    for (int i = 0; i < n_mods(f); i++) {
        const sdw_tensor *base = find(w, f->m[i].target);
        if (!base) { bad = 1; break; }
        int r = f->m[i].rank, conv = base->ndim == 4;
        int64_t in = flat_in(base), out = base->shape[0];
        own[k] = malloc((size_t)(r * in) * sizeof(float));
        own[k + 1] = malloc((size_t)(out * r) * sizeof(float));
        values(f, i, in, out, own[k], own[k + 1]);
        t[k] = (stw_tensor){part_name(&f->m[i], 0, names[k], 160), "F32", base->ndim,
                            {r, base->shape[1], conv ? base->shape[2] : 0, conv ? base->shape[3] : 0}};
        t[k + 1] = (stw_tensor){part_name(&f->m[i], 1, names[k + 1], 160), "F32", base->ndim, {out, r, 1, 1}};
        data[k] = own[k], data[k + 1] = own[k + 1];
        k += 2;
        if (f->m[i].alpha > 0) {
            own[k] = malloc(sizeof(float));
            own[k][0] = f->m[i].alpha;
            t[k] = (stw_tensor){part_name(&f->m[i], 2, names[k], 160), "F32", 0, {0}};
            data[k] = own[k];
            k++;
        }
    }
    char path[300];
    snprintf(path, sizeof path, "%s/%s.safetensors", DIR_, f->name);
    sd_err err;
    sd_err_clear(&err);
    int rc = bad || stw_write_f32(path, t, data, k, &err);
    for (size_t i = 0; i < k; i++) free(own[i]);
    return rc;
}

static ops_weight *handle(sd_engine *e, const char *name)
{
    if (!strncmp(name, "unet.", 5)) return unet_weight(sd_engine_unet(e), name + 5);
    int i = !strncmp(name, "text_encoder_2.", 15);
    struct sd_clip *c = sd_engine_clip_at(e, i);
    return c ? clip_weight(c, name) : NULL;
}

static float *read_weight(sd_engine *e, const char *name, size_t *n)
{
    ops_weight *h = handle(e, name);
    if (!h) return NULL;
    *n = ops_weight_numel(h);
    float *w = malloc(*n * sizeof *w);
    if (w && ops_weight_read(h, w)) { free(w); return NULL; }
    return w;
}

static int apply(sd_engine *e, const sd_lora_spec *l, int n, sd_err *err)
{
    sd_gen_params p = {.loras = l, .n_loras = n};
    sd_err_clear(err);
    return sd_engine_apply_loras(e, &p, err);
}

/* The model part of a canonical name: 0 UNet, 1 te1, 2 te2. */
static int part_of(const char *name)
{
    return !strncmp(name, "unet.", 5) ? 0 : !strncmp(name, "text_encoder_2.", 15) ? 2 : 1;
}

static sd_engine *load(const char *model);

/* What the model computes: both encoders' context and pooled rows for a
 * prompt and a negative, and one UNet pass over them (B = 2, latent 8×12,
 * t 500, default time ids 64×96), through the kernels' weight copies. */
typedef struct probe {
    float *ctx, *pooled, *eps;
    size_t n_ctx, n_pooled, n_eps;
    int rc;
} probe;

static void probe_free(probe *p)
{
    free(p->ctx), free(p->pooled), free(p->eps);
    memset(p, 0, sizeof *p);
}

static probe run_probe(sd_engine *e)
{
    enum { B = 2, H = 8, W = 12 };
    probe r = {0};
    sd_gen_params p = {.prompt = "a photograph of an astronaut riding a horse", .negative = "blurry",
                       .width = 96, .height = 64, .steps = 1, .cfg = 5, .n = 1};
    int T = 0, Wc = 0, P = 0;
    sd_err err;
    sd_err_clear(&err);
    r.rc = sd_encode_text_pooled(e, &p, &r.ctx, &T, &Wc, &r.pooled, &P, &err);
    const unet_info *in = unet_get_info(sd_engine_unet(e));
    if (r.rc || P != in->add_text_dim) return r.rc = -1, r;
    r.n_ctx = (size_t)B * T * Wc, r.n_pooled = (size_t)B * P, r.n_eps = (size_t)B * 4 * H * W;
    float *vec = calloc((size_t)B * in->add_dim, sizeof *vec), *x = malloc(r.n_eps * sizeof *x);
    r.eps = malloc(r.n_eps * sizeof *r.eps);
    for (size_t i = 0; x && i < r.n_eps; i++) x[i] = (float)((i * 37) % 101) / 50.f - 1.f;
    static const float ids[6] = {64, 96, 0, 0, 64, 96};
    for (int b = 0; vec && b < B; b++) {
        memcpy(vec + (size_t)b * in->add_dim, r.pooled + (size_t)b * P, (size_t)P * sizeof *vec);
        memcpy(vec + (size_t)b * in->add_dim + P, ids, sizeof ids);
    }
    float t[B] = {500, 500};
    unet_cond c = {r.ctx, T, Wc, vec, in->add_dim, NULL, 0};
    r.rc = !vec || !x || !r.eps || unet_forward(sd_engine_unet(e), x, t, &c, B, H, W, r.eps, &err);
    free(vec), free(x);
    return r;
}

static int same(const float *a, const float *b, size_t n) { return a && b && !memcmp(a, b, n * sizeof *a); }

static const char *LABEL[] = {"UNet", "text encoder 1 (CLIP-L)", "text encoder 2 (OpenCLIP-bigG)"};

/* Apply FILES as one stack on model `model`; check every patched weight,
 * then no LoRA and every weight back bit for bit. */
static void merge_and_restore(const char *model)
{
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = load(model);
    sd_weights *w = sdw_open(t_ref("models/tiny-sdxl-s"), &err);
    CHECKF(w != NULL, "sdxl lora: open the folder's weights", "%s", err.msg);
    if (!e || !w) { sd_engine_free(e); sdw_close(w); return; }
    float *base[NFILES][MAXMOD] = {{0}};
    size_t nel[NFILES][MAXMOD] = {{0}};
    for (size_t f = 0; f < NFILES; f++)
        for (int i = 0; i < n_mods(&FILES[f]); i++) base[f][i] = read_weight(e, FILES[f].m[i].target, &nel[f][i]);
    probe before = run_probe(e);
    sd_lora_spec stack[NFILES];
    for (size_t f = 0; f < NFILES; f++) stack[f] = (sd_lora_spec){FILES[f].name, FILES[f].weight};
    int rc = apply(e, stack, NFILES, &err);
    probe with = run_probe(e);
    CHECKF(!before.rc && !with.rc && !same(before.ctx, with.ctx, before.n_ctx) &&
           !same(before.pooled, with.pooled, before.n_pooled) && !same(before.eps, with.eps, before.n_eps),
           "sdxl lora: the stack changes the context, the pooled vector and the UNet's output", "%s", model);
    CHECKF(!rc, "sdxl lora: a stack of kohya LDM, kohya diffusers and PEFT LoRAs applies", "%s: %s", model, err.msg);
    double worst[3] = {0, 0, 0};
    int count[3] = {0, 0, 0};
    for (size_t f = 0; f < NFILES && !rc; f++)
        for (int i = 0; i < n_mods(&FILES[f]); i++) {
            const mod *m = &FILES[f].m[i];
            const sdw_tensor *t = find(w, m->target);
            size_t n = 0;
            float *got = read_weight(e, m->target, &n);
            int p = part_of(m->target);
            count[p]++;
            if (!t || !got || !base[f][i] || n != nel[f][i] || n != (size_t)sdw_numel(t)) {
                worst[p] = 1e9;
                free(got);
                continue;
            }
            int64_t in = flat_in(t), out = t->shape[0];
            float *down = malloc((size_t)(m->rank * in) * sizeof *down);
            float *up = malloc((size_t)(out * m->rank) * sizeof *up);
            values(&FILES[f], i, in, out, down, up);
            double scale = (double)FILES[f].weight * (m->alpha > 0 ? m->alpha : m->rank) / m->rank;
            for (int64_t r = 0; r < out; r++)
                for (int64_t c = 0; c < in; c++) {
                    double d = 0;
                    for (int k = 0; k < m->rank; k++) d += (double)up[r * m->rank + k] * down[k * in + c];
                    double want = base[f][i][r * in + c] + scale * d;
                    double err1 = fabs(got[r * in + c] - want) / (1 + fabs(want));
                    if (err1 > worst[p]) worst[p] = err1;
                }
            free(down), free(up), free(got);
        }
    for (int p = 0; p < 3 && !rc; p++) {
        printf("metric sdxl_lora/%s/%s merged_vs_hand %.3g tol 1e-6 (%d weights)\n", model, LABEL[p], worst[p],
               count[p]);
        CHECKF(count[p] > 0 && worst[p] <= 1e-6, "sdxl lora: merged weights = W + m·(alpha/rank)·up@down", "%s %s: %.3g",
               model, LABEL[p], worst[p]);
    }
    rc = apply(e, NULL, 0, &err);
    int kept[3] = {1, 1, 1};
    for (size_t f = 0; f < NFILES; f++)
        for (int i = 0; i < n_mods(&FILES[f]); i++) {
            size_t n = 0;
            float *got = read_weight(e, FILES[f].m[i].target, &n);
            int p = part_of(FILES[f].m[i].target);
            if (rc || !got || !base[f][i] || n != nel[f][i] || memcmp(got, base[f][i], n * sizeof *got)) kept[p] = 0;
            free(got);
            free(base[f][i]);
        }
    for (int p = 0; p < 3; p++)
        CHECKF(kept[p], "sdxl lora: no LoRA after the stack restores every patched weight bit for bit", "%s %s: %s",
               model, LABEL[p], err.msg);
    probe after = run_probe(e);
    CHECKF(!after.rc && same(before.ctx, after.ctx, before.n_ctx) &&
           same(before.pooled, after.pooled, before.n_pooled) &&
           same(before.eps, after.eps, before.n_eps) && after.n_eps == before.n_eps && after.n_ctx == before.n_ctx,
           "sdxl lora: after the stack, context, pooled vector and UNet output are bit-identical to before", "%s",
           model);
    probe_free(&before), probe_free(&with), probe_free(&after);
    sd_engine_free(e);
    sdw_close(w);
}

/* One 64x64 txt2img (2 steps, Euler a, CFG 5) with the LoRAs l[0..nl). */
static int picture(sd_engine *e, const sd_lora_spec *l, int nl, sd_image *img)
{
    sd_gen_params p = {.prompt = "a red fox in the snow", .negative = "blurry", .width = 64, .height = 64,
                       .steps = 2, .cfg = 5.0f, .sampler = SD_SAMPLER_EULER_A, .seed = 11, .n = 1,
                       .loras = l, .n_loras = nl};
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_generate(e, &p, img, &err);
    if (rc) printf("# sd_generate: %s\n", err.msg);
    return rc;
}

/* Plain, with the stack, plain again: the stack's picture differs, the
 * second plain one is the first byte for byte. */
static void pictures(const char *model)
{
    sd_engine *e = load(model);
    if (!e) return;
    sd_lora_spec stack[NFILES];
    for (size_t f = 0; f < NFILES; f++) stack[f] = (sd_lora_spec){FILES[f].name, FILES[f].weight};
    sd_image a = {0}, b = {0}, c = {0};
    int rc = picture(e, NULL, 0, &a) || picture(e, stack, NFILES, &b) || picture(e, NULL, 0, &c);
    const size_t n = (size_t)64 * 64 * 3;
    CHECKF(!rc && memcmp(a.rgb, b.rgb, n), "sdxl lora: sd_generate with the stack gives another picture", "%s",
           model);
    CHECKF(!rc && !memcmp(a.rgb, c.rgb, n),
           "sdxl lora: sd_generate without LoRA after the stack = the picture before, byte for byte", "%s", model);
    sd_image_free(&a), sd_image_free(&b), sd_image_free(&c);
    sd_engine_free(e);
}

/* Every 2-D/4-D UNet weight of single file `file`, as a rank-1 LoRA module
 * named by its LDM spelling (kohya: "lora_unet_" + the name past
 * "model.diffusion_model." with '.' -> '_'), resolves against the names of
 * diffusers folder `folder` to that same weight. */
static void ldm_names(const char *file, const char *folder)
{
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = sdw_open(t_ref(file), &err), *fw = sdw_open(t_ref(folder), &err);
    lora_names *nm = fw ? lora_names_from_weights(fw, &err) : NULL;
    size_t n = w ? sdw_count(w) : 0, k = 0, mods = 0;
    stw_tensor *t = calloc(2 * n + 1, sizeof *t);
    const float **data = calloc(2 * n + 1, sizeof *data);
    char (*names)[200] = calloc(2 * n + 1, sizeof *names);
    static const float zero[4096];
    for (size_t i = 0; i < n && t && data && names; i++) {
        const sdw_tensor *x = sdw_at(w, i);
        const char *s = x->src_name;
        size_t len = strlen(s);
        if ((x->ndim != 2 && x->ndim != 4) || strncmp(s, "model.diffusion_model.", 22) || len < 30 ||
            strcmp(s + len - 7, ".weight") || x->shape[0] > 4096 || flat_in(x) > 4096)
            continue;
        char mod[160];
        snprintf(mod, sizeof mod, "lora_unet_%.*s", (int)(len - 29), s + 22);
        for (char *c = mod; *c; c++) *c = *c == '.' ? '_' : *c;
        snprintf(names[k], 200, "%s.lora_down.weight", mod);
        t[k] = (stw_tensor){names[k], "F32", x->ndim, {1, x->shape[1], x->ndim == 4 ? x->shape[2] : 0,
                                                       x->ndim == 4 ? x->shape[3] : 0}};
        snprintf(names[k + 1], 200, "%s.lora_up.weight", mod);
        t[k + 1] = (stw_tensor){names[k + 1], "F32", x->ndim, {x->shape[0], 1, 1, 1}};
        data[k] = data[k + 1] = zero;
        k += 2;
        mods++;
    }
    char path[300];
    snprintf(path, sizeof path, "%s/ldm_names.safetensors", DIR_);
    int rc = nm && k ? stw_write_f32(path, t, data, k, &err) : -1;
    sd_lora *l = rc ? NULL : lora_load(path, "ldm_names", nm, &err);
    size_t right = 0;
    for (size_t i = 0; l && i < n; i++) {
        const sdw_tensor *x = sdw_at(w, i);
        const lora_module *m = lora_find(l, x->name);
        if (m && !strncmp(m->src, "lora_unet_", 10) && !strncmp(x->src_name, "model.diffusion_model.", 22)) {
            char want[200];
            snprintf(want, sizeof want, "lora_unet_%.*s", (int)(strlen(x->src_name) - 29), x->src_name + 22);
            for (char *c = want; *c; c++) *c = *c == '.' ? '_' : *c;
            right += !strcmp(want, m->src);
        }
    }
    printf("# %s: %zu UNet weights named by their LDM spelling\n", file, mods);
    CHECKF(l && mods > 20 && lora_module_count(l) == mods && right == mods,
           "sdxl lora: every UNet weight resolves by its kohya LDM name", "%s against %s: %zu of %zu modules, %zu "
           "right: %s", file, folder, l ? lora_module_count(l) : 0, mods, right, err.msg);
    lora_free(l);
    unlink(path);
    free(t), free(data), free(names);
    lora_names_free(nm);
    sdw_close(w), sdw_close(fw);
}

static sd_engine *load(const char *model)
{
    char mp[1024];
    snprintf(mp, sizeof mp, "%s", t_ref(model));
    sd_load_opts o = {.model_path = mp, .precision = "fp32", .lora_dir = DIR_};
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    CHECKF(e != NULL, "sdxl lora: load", "%s: %s", model, err.msg);
    return e;
}

static void refused(sd_engine *e, const char *model, const char *lora, const char *why)
{
    sd_lora_spec l[] = {{lora, 1}};
    sd_err err;
    int rc = apply(e, l, 1, &err);
    CHECKF(rc && err.code == SD_EINVAL && !strcmp(err.field, "loras") && strstr(err.msg, lora) && strstr(err.msg, why),
           "sdxl lora: another family's LoRA refused naming loras, with the reason", "%s on %s: rc %d field '%s' %s",
           lora, model, rc, err.field, err.msg);
}

/* sd_list_loras: `lora` fits (with want_mods modules) or not, saying why. */
static void listed(sd_engine *e, const char *model, const char *lora, int want_mods, const char *why)
{
    sd_lora_info li[16];
    sd_err err;
    sd_err_clear(&err);
    int n = sd_list_loras(e, li, 16, &err), ok = 0;
    for (int i = 0; i < n && i < 16; i++)
        if (!strcmp(li[i].name, lora))
            ok = why ? li[i].fits[0] && strstr(li[i].fits, why) && li[i].modules == 0
                     : !li[i].fits[0] && li[i].modules == want_mods;
    CHECKF(ok, why ? "sdxl lora: the LoRA list says another family's LoRA does not fit, and why"
                   : "sdxl lora: the LoRA list says an SDXL LoRA fits", "%s on %s (%d listed): %s", lora, model, n,
           err.msg);
}

/* SD1 LoRAs (the reference's) on SDXL, SDXL LoRAs on SD1. */
static void families(void)
{
    char src[1024], dst[400];
    static const char *const sd1[] = {"lora_a_kohya", "lora_a_peft"};
    for (int i = 0; i < 2; i++) {
        snprintf(src, sizeof src, "%s", t_ref("goldens/lora-tiny-sd1/lora/"));
        strncat(src, sd1[i], sizeof src - strlen(src) - 20);
        strcat(src, ".safetensors");
        snprintf(dst, sizeof dst, "%s/%s.safetensors", DIR_, sd1[i]);
        if (symlink(src, dst)) CHECKF(0, "sdxl lora: link the SD1 LoRAs", "%s", dst);
    }
    sd_engine *e = load("models/tiny-sdxl-s");
    if (e) {
        refused(e, "tiny-sdxl-s", "lora_a_kohya", "is for SD 1.x/2.x, not this SDXL model");
        refused(e, "tiny-sdxl-s", "lora_a_peft", "this SDXL model");
        for (size_t f = 0; f < NFILES; f++) listed(e, "tiny-sdxl-s", FILES[f].name, n_mods(&FILES[f]), NULL);
        listed(e, "tiny-sdxl-s", "lora_a_kohya", 0, "is for SD 1.x/2.x, not this SDXL model");
        listed(e, "tiny-sdxl-s", "lora_a_peft", 0, "this SDXL model");
        sd_engine_free(e);
    }
    if ((e = load("models/tiny-sd1"))) {
        for (size_t f = 0; f < NFILES; f++) {
            refused(e, "tiny-sd1", FILES[f].name, "is for SDXL, not this SD 1.x/2.x model");
            listed(e, "tiny-sd1", FILES[f].name, 0, "is for SDXL, not this SD 1.x/2.x model");
        }
        sd_engine_free(e);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(dst, sizeof dst, "%s/%s.safetensors", DIR_, sd1[i]);
        unlink(dst);
    }
}

int main(void)
{
    if (!t_have_ref()) { CHECKF(0, "reference data", "../shared/reference not found (set SD_REF)"); return t_done(); }
    if (!mkdtemp(DIR_)) { CHECKF(0, "a temporary folder", "%s", DIR_); return t_done(); }
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = sdw_open(t_ref("models/tiny-sdxl-s"), &err);
    int bad = !w;
    for (size_t f = 0; f < NFILES && w; f++) bad |= write_file(&FILES[f], w);
    sdw_close(w);
    CHECKF(!bad, "sdxl lora: LoRA files written", "%s", err.msg);
    if (!bad) {
        merge_and_restore("models/tiny-sdxl-s");
        merge_and_restore("models/tiny-sdxl-s-fp16.safetensors");
        pictures("models/tiny-sdxl-s");
        pictures("models/tiny-sdxl-s-fp16.safetensors");
        families();
    }
    ldm_names("models/tiny-sdxl-s-fp16.safetensors", "models/tiny-sdxl-s");
    ldm_names("models/tiny-sd1-fp16.safetensors", "models/tiny-sd1");
    ldm_names("models/tiny-sd2-fp16.safetensors", "models/tiny-sd2");
    for (size_t f = 0; f < NFILES; f++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s.safetensors", DIR_, FILES[f].name);
        unlink(path);
    }
    rmdir(DIR_);
    return t_done();
}
