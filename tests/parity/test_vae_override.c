/* test_vae_override.c — the VAE override (sd_load_opts.vae_path, --vae;
 * docs/LOADING.md "VAE override") on tiny-sd1.  VAE files are written here
 * from the checkpoint's own VAE tensors (st_write.h):
 *  - from the fp16 single file: LDM names with and without the
 *    "first_stage_model." prefix, as F16 (the bytes copied) and as F32
 *    (widened): each decodes bit-identical to the checkpoint's built-in VAE
 *    (which widens the same F16 values), and whole txt2img and img2img
 *    images with the override equal the built-in ones;
 *  - a copy of the diffusers folder's vae/ (file + config.json), given
 *    directly and as its parent folder: bit-identical to the folder model's;
 *  - a perturbed decoder.conv_out.bias changes the image;
 *  - the override's config.json scaling_factor wins, a file without one
 *    takes the model's;
 *  - 8 latent channels, a missing tensor, no decoder at all, a .pt file and
 *    a missing path each fail the load with the error naming field "vae";
 *  - a whole checkpoint given as the VAE file uses its VAE;
 *  - sd_model_info names the VAE file and its A1111 hash (sha256, 10 hex);
 *  - sdw_drop_prefix takes the checkpoint's own vae.* out of its table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"
#include "../../src/base/sha256.h"
#include "../../src/engine/loader/safetensors.h"
#include "../../src/engine/loader/st_write.h"
#include "../../src/engine/loader/weights.h"
#include "../../src/engine/models/vae.h"
#include "../../src/engine/pipeline.h"
#include "../../src/engine/sd.h"

#define FP16_CKPT "models/tiny-sd1-fp16.safetensors"
#define FOLDER "models/tiny-sd1"
#define LH 8
#define LW 6

static char tmp[64];

/* How write_vae writes the checkpoint's first_stage_model.* tensors. */
typedef struct vae_file_opts {
    int prefix;           /* keep "first_stage_model." */
    int f32;              /* widen to F32 (else copy the F16 bytes) */
    const char *skip;     /* a tensor (LDM name without prefix) left out */
    const char *perturb;  /* a tensor (F32 only) that gets +0.5 */
    int latent8;          /* decoder only, with 8 latent channels (zeros where reshaped) */
} vae_file_opts;

static int reshaped(const char *n) { return !strcmp(n, "decoder.conv_in.weight") || !strncmp(n, "post_quant_conv.", 16); }

static int keep(const st_entry *e, const vae_file_opts *o, const char **name)
{
    if (strncmp(e->name, "first_stage_model.", 18)) return 0;
    const char *n = e->name + 18;
    if (o->skip && !strcmp(n, o->skip)) return 0;
    if (o->latent8 && strncmp(n, "decoder.", 8) && strncmp(n, "post_quant_conv.", 16)) return 0;
    *name = o->prefix ? e->name : n;
    return 1;
}

static int write_entry(FILE *f, const st_entry *e, const stw_tensor *t, const vae_file_opts *o, const char *n)
{
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
    if (!o->f32 && !o->latent8) return fwrite(e->data, 1, e->nbytes, f) == e->nbytes ? 0 : -1;
    float *x = calloc(numel ? numel : 1, sizeof *x);
    if (!x) return -1;
    if (!(o->latent8 && reshaped(n))) st_to_f32(x, e->data, e->dtype, numel);
    if (o->perturb && !strcmp(n, o->perturb))
        for (size_t i = 0; i < numel; i++) x[i] += 0.5f;
    int rc = fwrite(x, sizeof *x, numel, f) == numel ? 0 : -1;
    free(x);
    return rc;
}

/* Writes tmp/<file> from the fp16 checkpoint's VAE tensors. */
static int write_vae(const char *file, const vae_file_opts *o, char *path, size_t pathsz)
{
    st_file sf;
    sd_err err;
    sd_err_clear(&err);
    snprintf(path, pathsz, "%s/%s", tmp, file);
    if (st_open(&sf, t_ref(FP16_CKPT), &err)) return -1;
    stw_tensor *t = calloc(sf.n, sizeof *t);
    const st_entry **src = calloc(sf.n, sizeof *src);
    size_t n = 0;
    for (size_t i = 0; t && src && i < sf.n; i++) {
        const char *name;
        if (!keep(&sf.e[i], o, &name)) continue;
        t[n] = (stw_tensor){.name = name, .dtype = o->f32 || o->latent8 ? "F32" : "F16", .ndim = sf.e[i].ndim};
        for (int d = 0; d < sf.e[i].ndim; d++) t[n].shape[d] = sf.e[i].shape[d];
        const char *bare = name + (o->prefix ? 18 : 0);
        if (o->latent8 && reshaped(bare)) {   /* conv_in [C,4,3,3] -> [C,8,3,3]; post_quant_conv [4,4,1,1] -> [8,8,1,1] */
            int conv_in = !strcmp(bare, "decoder.conv_in.weight");
            t[n].shape[conv_in] = 8;
            if (!conv_in && t[n].ndim == 4) t[n].shape[1] = 8;
        }
        src[n++] = &sf.e[i];
    }
    FILE *f = t && src ? stw_begin(path, t, n, &err) : NULL;
    int rc = f ? 0 : -1;
    for (size_t i = 0; f && rc == 0 && i < n; i++)
        rc = write_entry(f, src[i], &t[i], o, t[i].name + (o->prefix ? 18 : 0));
    if (f && stw_end(f, path, &err)) rc = -1;
    free(t);
    free(src);
    st_close(&sf);
    return rc;
}

static sd_engine *load(const char *model, const char *vae, sd_err *err)
{
    sd_load_opts o = {.model_path = t_ref(model), .vocab_path = t_ref("tokenizer/bpe_simple_vocab_16e6.txt.gz"),
                      .precision = "fp32", .vae_path = vae};
    sd_err_clear(err);
    return sd_engine_load(&o, err);
}

/* The VAE's decode of a fixed latent, img[3, LH*8, LW*8] (malloc'd). */
static float *decode(sd_engine *e)
{
    float z[4 * LH * LW];
    for (int i = 0; i < 4 * LH * LW; i++) z[i] = 1.5f * sinf(0.37f * (float)i);
    size_t n = (size_t)3 * LH * 8 * LW * 8;
    float *img = malloc(n * sizeof *img);
    sd_err err;
    sd_err_clear(&err);
    if (img && vae_decode(sd_engine_vae(e), z, 1, LH, LW, img, &err)) {
        free(img);
        return NULL;
    }
    return img;
}

/* One 64x64 image's RGB8 (malloc'd): txt2img, or img2img (the VAE's
 * encoder too) from a gradient. */
static unsigned char *run(sd_engine *e, int img2img)
{
    static unsigned char init[64 * 64 * 3];
    for (size_t i = 0; i < sizeof init; i++) init[i] = (unsigned char)(i * 7 % 251);
    sd_gen_params p = {.prompt = "a red fox in the snow", .negative = "blurry", .width = 64, .height = 64,
                       .steps = 3, .cfg = 7.0f, .sampler = SD_SAMPLER_EULER, .seed = 42, .n = 1};
    if (img2img) {
        p.init_rgb = init;
        p.init_width = p.init_height = 64;
        p.strength = 0.6f;
    }
    sd_image out = {0};
    sd_err err;
    sd_err_clear(&err);
    if (sd_generate(e, &p, &out, &err)) return NULL;
    return out.rgb;
}

static unsigned char *image(sd_engine *e) { return run(e, 0); }

#define DEC_N ((size_t)3 * LH * 8 * LW * 8 * sizeof(float))
#define IMG_N ((size_t)64 * 64 * 3)

/* The override at `path` loads on `model` and decodes (and, with img,
 * makes the image) bit-identical to the built-in VAE's dec / img. */
static void check_same(const char *what, const char *model, const char *path, const float *dec,
                       const unsigned char *img, const unsigned char *i2i)
{
    char name[200];
    sd_err err;
    sd_engine *e = load(model, path, &err);
    snprintf(name, sizeof name, "%s: loads", what);
    CHECKF(e != NULL, name, "%s", err.msg);
    if (!e) return;
    float *d = decode(e);
    snprintf(name, sizeof name, "%s: decodes bit-identical to the built-in VAE", what);
    CHECK(d && dec && !memcmp(d, dec, DEC_N), name);
    free(d);
    if (img) {
        unsigned char *im = image(e);
        snprintf(name, sizeof name, "%s: txt2img image equals the built-in VAE's", what);
        CHECK(im && !memcmp(im, img, IMG_N), name);
        free(im);
    }
    if (i2i) {
        unsigned char *im = run(e, 1);
        snprintf(name, sizeof name, "%s: img2img image (its encoder) equals the built-in VAE's", what);
        CHECK(im && !memcmp(im, i2i, IMG_N), name);
        free(im);
    }
    sd_engine_free(e);
}

static void check_refused(const char *what, const char *path, const char *needle)
{
    char name[200];
    sd_err err;
    sd_engine *e = load(FP16_CKPT, path, &err);
    snprintf(name, sizeof name, "%s: load refused naming field vae", what);
    CHECKF(!e && !strcmp(err.field, "vae") && strstr(err.msg, needle), name, "field '%s' msg %s", err.field,
           err.msg);
    sd_engine_free(e);
}

static int copy_file(const char *from, const char *to)
{
    size_t n = 0;
    unsigned char *b = t_slurp(from, &n);
    FILE *f = b ? fopen(to, "wb") : NULL;
    int rc = f && fwrite(b, 1, n, f) == n ? 0 : -1;
    if (f && fclose(f)) rc = -1;
    free(b);
    return rc;
}

static void folder_cases(void)
{
    char dir[128], sub[160], p[256];
    sd_err err;
    snprintf(dir, sizeof dir, "%s/dvae", tmp);
    snprintf(sub, sizeof sub, "%s/vae", dir);
    int ok = !mkdir(dir, 0755) && !mkdir(sub, 0755);
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model.safetensors", sub);
    ok = ok && !copy_file(t_ref(FOLDER "/vae/diffusion_pytorch_model.safetensors"), p);
    snprintf(p, sizeof p, "%s/config.json", sub);
    ok = ok && !copy_file(t_ref(FOLDER "/vae/config.json"), p);
    CHECK(ok, "diffusers VAE folder copied");
    sd_engine *base = load(FOLDER, NULL, &err);
    CHECKF(base != NULL, "diffusers folder model loads", "%s", err.msg);
    if (!ok || !base) { sd_engine_free(base); return; }
    float *dec = decode(base);
    unsigned char *img = image(base);
    sd_engine_free(base);
    check_same("diffusers vae/ folder", FOLDER, sub, dec, img, NULL);
    check_same("folder holding vae/", FOLDER, dir, dec, NULL, NULL);

    /* its config's scaling factor wins */
    FILE *f = fopen(p, "w");
    if (f) {
        fputs("{\"_class_name\": \"AutoencoderKL\", \"latent_channels\": 4, \"scaling_factor\": 0.5}\n", f);
        fclose(f);
    }
    sd_engine *e = load(FP16_CKPT, sub, &err);
    CHECKF(e && vae_scaling_factor(sd_engine_vae(e)) == 0.5f, "override's config.json scaling_factor is used",
           "%s %g", err.msg, e ? vae_scaling_factor(sd_engine_vae(e)) : -1.0);
    sd_engine_free(e);
    free(dec);
    free(img);
}

static void check_info(const char *path)
{
    sd_err err;
    sd_engine *e = load(FP16_CKPT, path, &err);
    if (!e) return;
    sd_model_info mi;
    sd_engine_info(e, &mi);
    size_t n = 0;
    unsigned char *b = t_slurp(path, &n), d[32];
    char want[16] = "";
    if (b) {
        sd_sha256(b, n, d);
        for (int i = 0; i < 5; i++) sprintf(want + 2 * i, "%02x", d[i]);
    }
    free(b);
    CHECKF(mi.vae_name && !strcmp(mi.vae_name, "ldm-f16.safetensors"), "model info names the VAE file", "%s",
           mi.vae_name ? mi.vae_name : "(null)");
    CHECKF(mi.vae_hash && strlen(want) == 10 && !strcmp(mi.vae_hash, want), "VAE hash = first 10 hex of its sha256",
           "%s vs %s", mi.vae_hash ? mi.vae_hash : "(null)", want);
    CHECKF(vae_scaling_factor(sd_engine_vae(e)) == 0.18215f, "no config of its own: the model's scaling factor",
           "%g", vae_scaling_factor(sd_engine_vae(e)));
    sd_engine_free(e);
}

/* The checkpoint's own VAE tensors leave its table (their pages go back). */
static void check_drop(void)
{
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = sdw_open(t_ref(FP16_CKPT), &err);
    CHECKF(w != NULL, "sdw_drop_prefix: checkpoint opens", "%s", err.msg);
    if (!w) return;
    size_t n = sdw_count(w), nvae = 0;
    for (size_t i = 0; i < n; i++) nvae += !strncmp(sdw_at(w, i)->name, "vae.", 4);
    size_t gone = sdw_drop_prefix(w, "vae.");
    CHECKF(nvae > 100 && gone == nvae && sdw_count(w) == n - nvae && !sdw_get(w, "vae.decoder.conv_in.weight") &&
           sdw_get(w, "unet.conv_in.weight") && sdw_get(w, "text_encoder.text_model.final_layer_norm.weight"),
           "sdw_drop_prefix takes out exactly the vae.* tensors", "%zu of %zu vae, %zu left of %zu", gone, nvae,
           sdw_count(w), n);
    sdw_close(w);
}

static void file_cases(void)
{
    sd_err err;
    sd_engine *base = load(FP16_CKPT, NULL, &err);
    CHECKF(base != NULL, "fp16 single file loads", "%s", err.msg);
    if (!base) return;
    sd_model_info mi;
    sd_engine_info(base, &mi);
    CHECK(!mi.vae_name && !mi.vae_hash, "built-in VAE: model info names no override");
    float *dec = decode(base);
    unsigned char *img = image(base), *i2i = run(base, 1);
    sd_engine_free(base);

    static const struct { const char *file, *what; vae_file_opts o; int image; } same[] = {
        {"ldm-f16.safetensors", "LDM names, F16", {.prefix = 0, .f32 = 0}, 1},
        {"ldm-f32.safetensors", "LDM names, F32", {.prefix = 0, .f32 = 1}, 1},
        {"fsm-f16.safetensors", "first_stage_model. names, F16", {.prefix = 1, .f32 = 0}, 0},
        {"fsm-f32.safetensors", "first_stage_model. names, F32", {.prefix = 1, .f32 = 1}, 0},
    };
    char path[256];
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        int w = write_vae(same[i].file, &same[i].o, path, sizeof path);
        CHECKF(!w, same[i].what, "writing %s failed", path);
        if (!w) check_same(same[i].what, FP16_CKPT, path, dec, same[i].image ? img : NULL, same[i].image ? i2i : NULL);
    }
    check_same("a whole checkpoint as the VAE file", FP16_CKPT, t_ref(FP16_CKPT), dec, NULL, NULL);
    snprintf(path, sizeof path, "%s/ldm-f16.safetensors", tmp);
    check_info(path);

    vae_file_opts pert = {.f32 = 1, .perturb = "decoder.conv_out.bias"};
    if (!write_vae("perturbed.safetensors", &pert, path, sizeof path)) {
        sd_engine *e = load(FP16_CKPT, path, &err);
        unsigned char *im = e ? image(e) : NULL;
        CHECKF(im && img && memcmp(im, img, IMG_N), "a perturbed VAE changes the image", "%s", err.msg);
        free(im);
        sd_engine_free(e);
    }
    vae_file_opts l8 = {.f32 = 1, .latent8 = 1}, miss = {.f32 = 1, .skip = "decoder.mid.block_1.conv1.weight"},
                  enc = {.f32 = 1, .skip = "decoder.conv_in.weight"};
    if (!write_vae("latent8.safetensors", &l8, path, sizeof path))
        check_refused("8 latent channels", path, "latent channels");
    if (!write_vae("missing.safetensors", &miss, path, sizeof path))
        check_refused("missing tensor", path, "vae.decoder.mid_block.resnets.0.conv1.weight");
    if (!write_vae("nodecoder.safetensors", &enc, path, sizeof path))
        check_refused("no decoder", path, "no VAE decoder");
    snprintf(path, sizeof path, "%s/vae.pt", tmp);
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
    check_refused(".pt pickle", path, "pickle");
    snprintf(path, sizeof path, "%s/absent.safetensors", tmp);
    check_refused("missing file", path, "no such file");
    free(dec);
    free(img);
    free(i2i);
}

int main(void)
{
    if (!t_have_ref()) {
        printf("ok - # SKIP reference data absent\n");
        return t_done();
    }
    snprintf(tmp, sizeof tmp, "/tmp/sdvae-XXXXXX");
    if (!mkdtemp(tmp)) {
        CHECK(0, "temporary folder");
        return t_done();
    }
    check_drop();
    file_cases();
    folder_cases();
    t_rmtree(tmp);
    return t_done();
}
