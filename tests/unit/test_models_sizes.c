/* test_models_sizes.c — the text encoder and the VAE at sizes other than the
 * reference models': every size must come from the tensor shapes and config
 * files.  The test writes small random-weight diffusers folders (3-level VAE
 * with 2 latent channels, scale 4, no quant convs or no encoder; a 3-layer,
 * 2-head, width-32 text encoder) and checks properties that hold at any size:
 * output shapes, causality of the text attention, batch independence, the
 * embedding lookup, [C,C] and [C,C,1,1] attention weights agreeing, the
 * posterior's std = exp(logvar/2) — and that broken files are refused with
 * a message naming the tensor. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"
#include "../../src/engine/loader/st_write.h"
#include "../../src/engine/models/clip.h"
#include "../../src/engine/models/vae.h"
#include "../../src/engine/ops/ops.h"

/* ---- tiny random F32 tensors, written by loader/st_write.c --------------- */

typedef struct fake_tensor {
    char name[160];
    int ndim;
    int64_t shape[4];
    float *data;
} fake_tensor;

static fake_tensor fk[1024];
static int nfk;
static uint64_t rng = 88172645463325252ull;

static float frand(void)   /* uniform in [-1, 1) */
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static void fk_reset(void)
{
    for (int i = 0; i < nfk; i++) free(fk[i].data);
    nfk = 0;
}

/* Add a tensor: values = base + scale * uniform(-1, 1). */
static float *fk_add(const char *name, float base, float scale, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    fake_tensor *t = &fk[nfk++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    int64_t d[4] = {d0, d1, d2, d3}, n = 1;
    for (int i = 0; i < ndim; i++) { t->shape[i] = d[i]; n *= d[i]; }
    t->data = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) t->data[i] = base + scale * frand();
    return t->data;
}

static void fk_drop(const char *name)
{
    for (int i = 0; i < nfk; i++)
        if (!strcmp(fk[i].name, name)) { free(fk[i].data); fk[i] = fk[--nfk]; return; }
}

/* Write fk[] through the shared safetensors writer (F32). */
static void fk_write(const char *path)
{
    static stw_tensor d[1024];
    static const float *data[1024];
    for (int i = 0; i < nfk; i++) {
        d[i] = (stw_tensor){.name = fk[i].name, .dtype = "F32", .ndim = fk[i].ndim};
        memcpy(d[i].shape, fk[i].shape, sizeof d[i].shape);
        data[i] = fk[i].data;
    }
    sd_err e;
    sd_err_clear(&e);
    if (stw_write_f32(path, d, data, (size_t)nfk, &e) != 0) fprintf(stderr, "fk_write: %s\n", e.msg);
}

static char root[256];

static void write_text(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    if (f) { fputs(text, f); fclose(f); }
}

/* A fresh diffusers folder holding only `component` (vae or text_encoder). */
static void new_folder(const char *component)
{
    char p[1024];
    snprintf(p, sizeof p, "rm -rf '%s' && mkdir -p '%s/%s'", root, root, component);
    if (system(p) != 0) fprintf(stderr, "could not make %s\n", root);
    write_text("model_index.json", "{}");
}

/* ---- text encoder ------------------------------------------------------- */

enum { TW = 32, TL = 3, TF = 40, TV = 50, TT = 77 };

static void make_clip(int heads)
{
    fk_reset();
    new_folder("text_encoder");
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"hidden_act\": \"gelu\", \"num_attention_heads\": %d, \"layer_norm_eps\": 1e-05}", heads);
    write_text("text_encoder/config.json", cfg);
    fk_add("text_model.embeddings.token_embedding.weight", 0, 0.5f, 2, TV, TW, 0, 0);
    fk_add("text_model.embeddings.position_embedding.weight", 0, 0.2f, 2, TT, TW, 0, 0);
    fk_add("text_model.final_layer_norm.weight", 1, 0.1f, 1, TW, 0, 0, 0);
    fk_add("text_model.final_layer_norm.bias", 0, 0.1f, 1, TW, 0, 0, 0);
    for (int l = 0; l < TL; l++) {
        char n[160];
#define TN(s) (snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s", l, s), n)
        fk_add(TN("layer_norm1.weight"), 1, 0.1f, 1, TW, 0, 0, 0);
        fk_add(TN("layer_norm1.bias"), 0, 0.1f, 1, TW, 0, 0, 0);
        fk_add(TN("layer_norm2.weight"), 1, 0.1f, 1, TW, 0, 0, 0);
        fk_add(TN("layer_norm2.bias"), 0, 0.1f, 1, TW, 0, 0, 0);
        const char *proj[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
        for (int k = 0; k < 4; k++) {
            char s[64];
            snprintf(s, sizeof s, "self_attn.%s.weight", proj[k]);
            fk_add(TN(s), 0, 0.3f, 2, TW, TW, 0, 0);
            snprintf(s, sizeof s, "self_attn.%s.bias", proj[k]);
            fk_add(TN(s), 0, 0.1f, 1, TW, 0, 0, 0);
        }
        fk_add(TN("mlp.fc1.weight"), 0, 0.3f, 2, TF, TW, 0, 0);
        fk_add(TN("mlp.fc1.bias"), 0, 0.1f, 1, TF, 0, 0, 0);
        fk_add(TN("mlp.fc2.weight"), 0, 0.3f, 2, TW, TF, 0, 0);
        fk_add(TN("mlp.fc2.bias"), 0, 0.1f, 1, TW, 0, 0, 0);
#undef TN
    }
}

static void write_clip(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/text_encoder/model.safetensors", root);
    fk_write(p);
}

static sd_clip *open_clip(sd_weights **w, sd_err *err)
{
    sd_err_clear(err);
    *w = sdw_open(root, err);
    return *w ? clip_load(*w, NULL, NULL, err) : NULL;
}

static void test_clip(void)
{
    sd_err err;
    sd_weights *w;
    make_clip(2);
    const float *tok = fk[0].data, *pos = fk[1].data;
    float tok0[TV * TW], pos0[TT * TW];
    memcpy(tok0, tok, sizeof tok0);
    memcpy(pos0, pos, sizeof pos0);
    write_clip();
    sd_clip *c = open_clip(&w, &err);
    CHECKF(c != NULL, "clip: loads a width-32 3-layer encoder", "%s", err.msg);
    if (!c) { sdw_close(w); return; }
    CHECKF(clip_width(c) == TW && clip_layers(c) == TL && clip_tokens(c) == TT && clip_heads(c) == 2 &&
           clip_activation(c) == CLIP_ACT_GELU && clip_default_skip(c) == 2, "clip: sizes from shapes and config.json",
           "W %d L %d T %d H %d act %d skip %d", clip_width(c), clip_layers(c), clip_tokens(c), clip_heads(c),
           (int)clip_activation(c), clip_default_skip(c));

    sd_err_clear(&err);
    CHECKF(clip_reserve(c, 2, &err) == 0 && clip_reserve(c, 0, &err) == -1 && err.code == SD_EINVAL,
           "clip: reserve for 2 windows; 0 windows refused", "%s", err.msg);
    int32_t ids[2 * TT];
    for (int i = 0; i < 2 * TT; i++) ids[i] = (i * 7 + 3) % TV;
    float *a = malloc(sizeof(float) * 2 * TT * TW), *b = malloc(sizeof(float) * 2 * TT * TW);

    sd_err_clear(&err);
    int rc = clip_hidden(c, ids, 2, 0, 0, a, &err);
    double d = 0;
    for (int r = 0; r < 2 * TT; r++)
        for (int i = 0; i < TW; i++)
            d = fmax(d, fabs(a[r * TW + i] - (tok0[ids[r] * TW + i] + pos0[(r % TT) * TW + i])));
    CHECKF(rc == 0 && d == 0, "clip: layer 0 = token + position embedding", "rc %d diff %g", rc, d);

    /* Causal: changing token 40 leaves rows 0..39 alone and changes row 40. */
    sd_err_clear(&err);
    rc = clip_encode(c, ids, 1, 1, a, &err);
    ids[40] = (ids[40] + 1) % TV;
    rc |= clip_encode(c, ids, 1, 1, b, &err);
    double before = 0, at = 0;
    for (int i = 0; i < 40 * TW; i++) before = fmax(before, fabs(a[i] - b[i]));
    for (int i = 40 * TW; i < 41 * TW; i++) at = fmax(at, fabs(a[i] - b[i]));
    CHECKF(rc == 0 && before == 0 && at > 1e-3, "clip: attention is causal", "rc %d before %g at %g", rc, before, at);

    /* Window 1 of a batch of 2 = the same window alone. */
    sd_err_clear(&err);
    rc = clip_encode(c, ids, 2, 2, a, &err);
    rc |= clip_encode(c, ids + TT, 1, 2, b, &err);
    d = 0;
    for (int i = 0; i < TT * TW; i++) d = fmax(d, fabs(a[TT * TW + i] - b[i]));
    CHECKF(rc == 0 && d < 1e-5, "clip: batch rows independent", "rc %d diff %g", rc, d);
    free(a); free(b);
    clip_free(c);
    sdw_close(w);

    /* Broken files are refused with the tensor's name. */
    make_clip(2);
    fk_drop("text_model.encoder.layers.1.mlp.fc2.bias");
    write_clip();
    c = open_clip(&w, &err);
    CHECKF(!c && err.code != SD_OK && strstr(err.msg, "text_encoder.text_model.encoder.layers.1.mlp.fc2.bias"),
           "clip: missing tensor named", "%s", err.msg);
    clip_free(c);
    sdw_close(w);
    make_clip(2);
    fk_drop("text_model.encoder.layers.2.mlp.fc1.weight");
    fk_add("text_model.encoder.layers.2.mlp.fc1.weight", 0, 0.1f, 2, TF + 1, TW, 0, 0);
    write_clip();
    c = open_clip(&w, &err);
    CHECKF(!c && err.code == SD_EFORMAT && strstr(err.msg, "layers.2.mlp.fc1.weight"), "clip: wrong shape named",
           "%s", err.msg);
    clip_free(c);
    sdw_close(w);
    make_clip(5);
    write_clip();
    c = open_clip(&w, &err);
    CHECKF(!c && err.code == SD_EFORMAT && strstr(err.msg, "5 heads"), "clip: heads not dividing the width refused",
           "%s", err.msg);
    clip_free(c);
    sdw_close(w);
    fk_reset();
}

/* ---- VAE ---------------------------------------------------------------- */

enum { VZ = 2, VLEV = 3, VRES = 1 };
static const int vch[VLEV] = {32, 32, 64};

static void vae_resnet(const char *p, int cin, int cout)
{
    char n[200];
#define VN(s) (snprintf(n, sizeof n, "%s.%s", p, s), n)
    fk_add(VN("norm1.weight"), 1, 0.1f, 1, cin, 0, 0, 0);
    fk_add(VN("norm1.bias"), 0, 0.1f, 1, cin, 0, 0, 0);
    fk_add(VN("conv1.weight"), 0, 0.08f, 4, cout, cin, 3, 3);
    fk_add(VN("conv1.bias"), 0, 0.1f, 1, cout, 0, 0, 0);
    fk_add(VN("norm2.weight"), 1, 0.1f, 1, cout, 0, 0, 0);
    fk_add(VN("norm2.bias"), 0, 0.1f, 1, cout, 0, 0, 0);
    fk_add(VN("conv2.weight"), 0, 0.08f, 4, cout, cout, 3, 3);
    fk_add(VN("conv2.bias"), 0, 0.1f, 1, cout, 0, 0, 0);
    if (cin != cout) {
        fk_add(VN("conv_shortcut.weight"), 0, 0.2f, 4, cout, cin, 1, 1);
        fk_add(VN("conv_shortcut.bias"), 0, 0.1f, 1, cout, 0, 0, 0);
    }
#undef VN
}

static void vae_mid(const char *coder, int c, int attn4d)
{
    char p[200];
    snprintf(p, sizeof p, "%s.mid_block.resnets.0", coder);
    vae_resnet(p, c, c);
    snprintf(p, sizeof p, "%s.mid_block.resnets.1", coder);
    vae_resnet(p, c, c);
    const char *m[] = {"to_q", "to_k", "to_v", "to_out.0"};
    snprintf(p, sizeof p, "%s.mid_block.attentions.0.group_norm.weight", coder);
    fk_add(p, 1, 0.1f, 1, c, 0, 0, 0);
    snprintf(p, sizeof p, "%s.mid_block.attentions.0.group_norm.bias", coder);
    fk_add(p, 0, 0.1f, 1, c, 0, 0, 0);
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "%s.mid_block.attentions.0.%s.weight", coder, m[k]);
        if (attn4d) fk_add(p, 0, 0.2f, 4, c, c, 1, 1);
        else fk_add(p, 0, 0.2f, 2, c, c, 0, 0);
        snprintf(p, sizeof p, "%s.mid_block.attentions.0.%s.bias", coder, m[k]);
        fk_add(p, 0, 0.1f, 1, c, 0, 0, 0);
    }
}

/* decoder (+ encoder) of a 3-level VAE; quant convs only with `quant`. */
static void make_vae(int encoder, int quant, int attn4d)
{
    fk_reset();
    rng = 1234567;   /* same weights for every variant */
    new_folder("vae");
    write_text("vae/config.json", "{\"scaling_factor\": 0.5, \"norm_num_groups\": 32}");
    int top = vch[VLEV - 1];
    char p[200];
    fk_add("decoder.conv_in.weight", 0, 0.2f, 4, top, VZ, 3, 3);
    fk_add("decoder.conv_in.bias", 0, 0.1f, 1, top, 0, 0, 0);
    vae_mid("decoder", top, attn4d);
    int ch = top;
    for (int j = 0; j < VLEV; j++) {
        int out = vch[VLEV - 1 - j];
        for (int r = 0; r < VRES + 1; r++) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", j, r);
            vae_resnet(p, ch, out);
            ch = out;
        }
        if (j < VLEV - 1) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.conv.weight", j);
            fk_add(p, 0, 0.08f, 4, ch, ch, 3, 3);
            snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.conv.bias", j);
            fk_add(p, 0, 0.1f, 1, ch, 0, 0, 0);
        }
    }
    fk_add("decoder.conv_norm_out.weight", 1, 0.1f, 1, ch, 0, 0, 0);
    fk_add("decoder.conv_norm_out.bias", 0, 0.1f, 1, ch, 0, 0, 0);
    fk_add("decoder.conv_out.weight", 0, 0.1f, 4, 3, ch, 3, 3);
    fk_add("decoder.conv_out.bias", 0, 0.1f, 1, 3, 0, 0, 0);
    if (quant) {
        fk_add("post_quant_conv.weight", 0, 0.5f, 4, VZ, VZ, 1, 1);
        fk_add("post_quant_conv.bias", 0, 0.1f, 1, VZ, 0, 0, 0);
    }
    if (!encoder) return;
    fk_add("encoder.conv_in.weight", 0, 0.2f, 4, vch[0], 3, 3, 3);
    fk_add("encoder.conv_in.bias", 0, 0.1f, 1, vch[0], 0, 0, 0);
    ch = vch[0];
    for (int i = 0; i < VLEV; i++) {
        for (int r = 0; r < VRES; r++) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", i, r);
            vae_resnet(p, ch, vch[i]);
            ch = vch[i];
        }
        if (i < VLEV - 1) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0.conv.weight", i);
            fk_add(p, 0, 0.08f, 4, ch, ch, 3, 3);
            snprintf(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0.conv.bias", i);
            fk_add(p, 0, 0.1f, 1, ch, 0, 0, 0);
        }
    }
    vae_mid("encoder", ch, attn4d);
    fk_add("encoder.conv_norm_out.weight", 1, 0.1f, 1, ch, 0, 0, 0);
    fk_add("encoder.conv_norm_out.bias", 0, 0.1f, 1, ch, 0, 0, 0);
    fk_add("encoder.conv_out.weight", 0, 0.1f, 4, 2 * VZ, ch, 3, 3);
    fk_add("encoder.conv_out.bias", 0, 0.1f, 1, 2 * VZ, 0, 0, 0);
    if (quant) {
        fk_add("quant_conv.weight", 0, 0.5f, 4, 2 * VZ, 2 * VZ, 1, 1);
        fk_add("quant_conv.bias", 0, 0.1f, 1, 2 * VZ, 0, 0, 0);
    }
}

static sd_vae *open_vae(sd_weights **w, sd_err *err)
{
    char p[512];
    snprintf(p, sizeof p, "%s/vae/diffusion_pytorch_model.safetensors", root);
    fk_write(p);
    sd_err_clear(err);
    *w = sdw_open(root, err);
    return *w ? vae_load(*w, NULL, err) : NULL;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

static void test_vae(void)
{
    sd_err err;
    sd_weights *w;
    enum { h = 5, wd = 3, H = 16, W = 12 };
    float z[2 * VZ * h * wd], img[2 * 3 * 4 * h * 4 * wd], img4[3 * 4 * h * 4 * wd];
    float src[3 * H * W], mom[2 * VZ * (H / 4) * (W / 4)], mean[VZ * 12], sd[VZ * 12];
    for (size_t i = 0; i < sizeof z / sizeof z[0]; i++) z[i] = frand();
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) src[i] = frand();

    make_vae(1, 1, 0);
    sd_vae *v = open_vae(&w, &err);
    CHECKF(v != NULL, "vae: loads a 3-level VAE", "%s", err.msg);
    if (!v) { sdw_close(w); return; }
    CHECKF(vae_scale(v) == 4 && vae_latent_channels(v) == VZ && vae_image_channels(v) == 3 && vae_has_encoder(v) &&
           vae_scaling_factor(v) == 0.5f, "vae: sizes from shapes, scaling factor from config.json",
           "scale %d Z %d C %d enc %d sf %g", vae_scale(v), vae_latent_channels(v), vae_image_channels(v),
           vae_has_encoder(v), vae_scaling_factor(v));
    /* Workspace for a 5x3 latent: 3 buffers of the largest stage (the encoder's
     * padded 32 x 21 x 13 input to its first downsampler) + 3 of the mid
     * attention (64 x 15). */
    size_t bytes = 0;
    sd_err_clear(&err);
    int rc = vae_reserve(v, h, wd, &bytes, &err);
    CHECKF(rc == 0 && bytes == 3 * (32 * 21 * 13 + 64 * 15) * sizeof(float), "vae: workspace reserved up front",
           "rc %d bytes %zu %s", rc, bytes, err.msg);
    sd_err_clear(&err);
    rc = vae_reserve(v, 0, wd, &bytes, &err);
    CHECKF(rc == -1 && err.code == SD_EINVAL, "vae: reserve of an empty latent refused", "rc %d", rc);
    sd_err_clear(&err);
    rc = vae_decode(v, z, 2, h, wd, img, &err);
    size_t in = 3 * 4 * h * 4 * wd;
    float lo = img[0], hi = img[0];
    for (size_t i = 0; i < 2 * in; i++) { lo = fminf(lo, img[i]); hi = fmaxf(hi, img[i]); }
    CHECKF(rc == 0 && all_finite(img, 2 * in) && hi - lo > 1e-3f, "vae: decode 5x3 latent to 20x12 pixels",
           "rc %d range [%g, %g] %s", rc, lo, hi, err.msg);
    sd_err_clear(&err);
    rc = vae_decode(v, z + VZ * h * wd, 1, h, wd, img4, &err);
    CHECKF(rc == 0 && !memcmp(img4, img + in, sizeof img4), "vae: batch rows independent", "rc %d", rc);

    sd_err_clear(&err);
    rc = vae_encode_moments(v, src, 1, H, W, mom, &err);
    rc |= vae_encode(v, src, 1, H, W, mean, sd, &err);
    double d = 0;
    for (int i = 0; i < VZ * 12; i++) {
        d = fmax(d, fabs(mean[i] - mom[i]));
        float l = fminf(fmaxf(mom[VZ * 12 + i], -30.0f), 20.0f);
        d = fmax(d, fabs(sd[i] - expf(0.5f * l)));
    }
    CHECKF(rc == 0 && all_finite(mom, sizeof mom / sizeof mom[0]) && d < 1e-6,
           "vae: encode 16x12 to 4x3 posterior, std = exp(logvar/2)", "rc %d diff %g %s", rc, d, err.msg);
    sd_err_clear(&err);
    rc = vae_encode(v, src, 1, 18, 12, mean, sd, &err);
    CHECKF(rc == -1 && err.code == SD_EINVAL, "vae: encode of a height not a multiple of 4 refused", "rc %d", rc);
    vae_free(v);
    sdw_close(w);

    /* Attention weights stored [C,C,1,1] give the same result as [C,C]. */
    make_vae(1, 1, 1);
    v = open_vae(&w, &err);
    sd_err_clear(&err);
    rc = v ? vae_decode(v, z, 1, h, wd, img4, &err) : -1;
    CHECKF(rc == 0 && !memcmp(img4, img, sizeof img4), "vae: [C,C,1,1] attention weights = [C,C]", "rc %d %s", rc, err.msg);
    vae_free(v);
    sdw_close(w);

    /* Decoder only, no quant convs: decodes, refuses to encode. */
    make_vae(0, 0, 0);
    v = open_vae(&w, &err);
    CHECKF(v && !vae_has_encoder(v), "vae: decoder-only file loads", "%s", err.msg);
    if (v) {
        sd_err_clear(&err);
        rc = vae_decode(v, z, 1, h, wd, img4, &err);
        CHECKF(rc == 0 && all_finite(img4, in) && memcmp(img4, img, sizeof img4), "vae: decode without post_quant_conv",
               "rc %d", rc);
        sd_err_clear(&err);
        rc = vae_encode(v, src, 1, H, W, mean, sd, &err);
        CHECKF(rc == -1 && err.code == SD_EINVAL && strstr(err.msg, "no encoder"), "vae: encode without an encoder refused",
               "rc %d %s", rc, err.msg);
    }
    vae_free(v);
    sdw_close(w);

    /* Broken files. */
    make_vae(1, 1, 0);
    fk_drop("decoder.up_blocks.1.resnets.0.conv_shortcut.weight");   /* 64 -> 32 needs it */
    v = open_vae(&w, &err);
    CHECKF(!v && err.code != SD_OK && strstr(err.msg, "vae.decoder.up_blocks.1.resnets.0.conv_shortcut.weight"),
           "vae: missing shortcut named", "%s", err.msg);
    vae_free(v);
    sdw_close(w);
    make_vae(1, 1, 0);
    fk_drop("encoder.down_blocks.1.resnets.0.conv1.weight");
    fk_add("encoder.down_blocks.1.resnets.0.conv1.weight", 0, 0.1f, 4, 32, 16, 3, 3);
    v = open_vae(&w, &err);
    CHECKF(!v && err.code == SD_EFORMAT && strstr(err.msg, "encoder.down_blocks.1.resnets.0.conv1.weight"),
           "vae: channel chain mismatch named", "%s", err.msg);
    vae_free(v);
    sdw_close(w);
    make_vae(1, 1, 0);
    write_text("vae/config.json", "{\"norm_num_groups\": 24}");
    v = open_vae(&w, &err);
    CHECKF(!v && err.code == SD_EFORMAT && strstr(err.msg, "24 groups"), "vae: channels not divisible by groups refused",
           "%s", err.msg);
    vae_free(v);
    sdw_close(w);
    fk_reset();
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/sd_test_models_sizes.%d", (int)getpid());
    test_clip();
    test_vae();
    t_rmtree(root);
    return t_done();
}
