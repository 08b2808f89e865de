/* test_inpaint.c — inpainting in the engine (sd_gen_params.mask,
 * docs/INPAINTING.md "Engine") on tiny-sd1 and its 9-channel inpainting UNet
 * (reference README "Inpainting"):
 *  - the 9-channel UNet loads from a diffusers folder (tiny-sd1's, unet/
 *    linked to tiny-sd1-inpaint's) and from a single file written here
 *    (tiny-sd1-fp16's tensors with the inpaint UNet's, tiny-sd1's LDM config
 *    beside it), family sd1-inpaint;
 *  - diffusers' StableDiffusionInpaintPipeline goldens replayed with their
 *    recorded noise: inpaint9_euler_10_strength1, inpaint9_ddim_10_strength0.75
 *    (both layouts) and inpaint4_euler_10_strength0.75 (tiny-sd1's own UNet):
 *    latents after every step within 1e-4·max|latent|, final latent too,
 *    decoded image within 1/255 (SD_SANITIZED / SD_QUICK: the single file
 *    runs one of them); the DDIM run's UNet input built by inpaint.c
 *    (latent mask, start latent, the 5 extra channels of every call);
 *  - sdxl-inpaint: tiny-sdxl-s with conv_in widened by 5 zero channels loads
 *    and its txt2img equals tiny-sdxl-s's; masked runs of both rules run;
 *  - invariants of both rules: an all-white mask equals plain img2img (4-channel,
 *    diffusers Euler and A1111) / no mask (9-channel A1111), a 9-channel
 *    txt2img equals an all-white strength-1 inpaint; A1111: unmasked latent
 *    cells end as the init latent, the fill modes change only masked cells;
 *    image 2 of a batch of 2 equals seed + 1 alone;
 *  - the errors: a mask without init image, an all-black (or all < 128) mask,
 *    an unknown fill, each SD_EINVAL naming the field;
 *  - hires fix with the 9-channel UNet, A1111's Euler a, 32x32 ->
 *    64x64: pass 2's UNet extra channels (the "concat" tap) are A1111's
 *    sample_hr_pass conditioning at the hires size (inpainting_mask_weight
 *    1): an all-ones mask and the VAE mean of a zero (mid-grey) image
 *    times the scaling factor, for both upscalers; the latent upscaler's
 *    pass 2 starts from the upscaled latent (it differs from a plain 64x64
 *    txt2img of hr_steps). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "npy.h"
#include "pipe_case.h"
#include "t.h"
#include "../../src/engine/loader/safetensors.h"
#include "../../src/engine/loader/st_write.h"
#include "../../src/engine/inpaint.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/models/vae.h"

#define G "goldens/inpaint-tiny-sd1/"
#define W 48
#define H 64
#define LW 6
#define LH 8
#define PER (4 * LH * LW)

static char tmp[64];
static uint8_t init_rgb[W * H * 3], mask[W * H], white[W * H];

/* ---- loading ------------------------------------------------------------ */

/* tmp/folder: tiny-sd1's diffusers folder with unet/ the inpainting one. */
static int make_folder(char *path, size_t n)
{
    static const char *parts[] = {"model_index.json", "scheduler", "text_encoder", "tokenizer", "vae"};
    char models[4096], src[4600], dst[256];
    if (!realpath(t_ref("models"), models)) return -1;
    snprintf(path, n, "%s/folder", tmp);
    if (mkdir(path, 0700)) return -1;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        snprintf(src, sizeof src, "%s/tiny-sd1/%s", models, parts[i]);
        snprintf(dst, sizeof dst, "%s/%s", path, parts[i]);
        if (symlink(src, dst)) return -1;
    }
    snprintf(src, sizeof src, "%s/tiny-sd1-inpaint/unet", models);
    snprintf(dst, sizeof dst, "%s/unet", path);
    return symlink(src, dst);
}

/* tmp/inpaint.safetensors: tiny-sd1-fp16's tensors but its UNet's, then
 * the inpainting UNet's (original naming), bytes as stored. */
static int make_single(char *path, size_t n)
{
    st_file a, b;
    sd_err err;
    snprintf(path, n, "%s/inpaint.safetensors", tmp);
    if (st_open(&a, t_ref("models/tiny-sd1-fp16.safetensors"), &err)) return -1;
    if (st_open(&b, t_ref("models/tiny-sd1-inpaint-unet-fp16.safetensors"), &err)) { st_close(&a); return -1; }
    stw_tensor *t = calloc(a.n + b.n, sizeof *t);
    const st_entry **src = calloc(a.n + b.n, sizeof *src);
    size_t k = 0;
    for (size_t i = 0; t && src && i < a.n + b.n; i++) {
        const st_entry *e = i < a.n ? &a.e[i] : &b.e[i - a.n];
        if (i < a.n && !strncmp(e->name, "model.diffusion_model.", 22)) continue;
        t[k] = (stw_tensor){.name = e->name, .dtype = e->dtype_name, .ndim = e->ndim};
        memcpy(t[k].shape, e->shape, sizeof(int64_t) * e->ndim);
        src[k++] = e;
    }
    FILE *f = t && src ? stw_begin(path, t, k, &err) : NULL;
    for (size_t i = 0; f && i < k; i++) fwrite(src[i]->data, 1, src[i]->nbytes, f);
    int rc = f ? stw_end(f, path, &err) : -1;
    char cfg[4096], link[128];   /* the text encoder's heads: tiny-sd1's LDM config beside it */
    snprintf(link, sizeof link, "%s/inpaint.ldm_config.json", tmp);
    if (!rc && (!realpath(t_ref("models/tiny-sd1.ldm_config.json"), cfg) || symlink(cfg, link))) rc = -1;
    free(t); free(src);
    st_close(&a); st_close(&b);
    return rc;
}

/* tmp/sdxl-inpaint.safetensors: tiny-sdxl-s-fp16 with conv_in widened to
 * 2·4 + 1 input channels, zero weights on the 5 new ones (its LDM config
 * beside it): an sdxl-inpaint checkpoint whose UNet ignores the mask and
 * the masked image, so its txt2img is tiny-sdxl-s's. */
static int make_sdxl_inpaint(char *path, size_t n)
{
    static const char *conv_in = "model.diffusion_model.input_blocks.0.0.weight";
    st_file a;
    sd_err err;
    snprintf(path, n, "%s/sdxl-inpaint.safetensors", tmp);
    if (st_open(&a, t_ref("models/tiny-sdxl-s-fp16.safetensors"), &err)) return -1;
    stw_tensor *t = calloc(a.n, sizeof *t);
    for (size_t i = 0; t && i < a.n; i++) {
        t[i] = (stw_tensor){.name = a.e[i].name, .dtype = a.e[i].dtype_name, .ndim = a.e[i].ndim};
        memcpy(t[i].shape, a.e[i].shape, sizeof(int64_t) * a.e[i].ndim);
        if (!strcmp(a.e[i].name, conv_in)) t[i].shape[1] = 9;
    }
    FILE *f = t ? stw_begin(path, t, a.n, &err) : NULL;
    for (size_t i = 0; f && i < a.n; i++) {
        if (strcmp(a.e[i].name, conv_in)) { fwrite(a.e[i].data, 1, a.e[i].nbytes, f); continue; }
        const size_t k = (size_t)a.e[i].shape[2] * a.e[i].shape[3], es = a.e[i].nbytes / a.e[i].numel;
        static const unsigned char zero[64];
        for (int64_t o = 0; o < a.e[i].shape[0]; o++) {
            fwrite(a.e[i].data + (size_t)o * 4 * k * es, es, 4 * k, f);
            for (size_t z = 0; z < 5 * k * es; z += sizeof zero) fwrite(zero, 1, 5 * k * es - z < sizeof zero ? 5 * k * es - z : sizeof zero, f);
        }
    }
    int rc = f ? stw_end(f, path, &err) : -1;
    char cfg[4096], link[128];
    snprintf(link, sizeof link, "%s/sdxl-inpaint.ldm_config.json", tmp);
    if (!rc && (!realpath(t_ref("models/tiny-sdxl-s.ldm_config.json"), cfg) || symlink(cfg, link))) rc = -1;
    free(t);
    st_close(&a);
    return rc;
}

static sd_engine *load(const char *path, int single, const char *family, const char *what)
{
    sd_load_opts o = {0};
    o.model_path = path;
    o.vocab_path = single ? t_ref("tokenizer/bpe_simple_vocab_16e6.txt.gz") : NULL;
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    CHECKF(e != NULL, what, "%s", err.msg);
    if (!e) return NULL;
    sd_model_info info;
    sd_engine_info(e, &info);
    sd_model_probe pr;
    CHECKF(!sd_probe_model(path, &pr, &err) && pr.supported && !strcmp(pr.family, family) &&
           !strcmp(info.family, family), what, "family %s / probe %s supported %d", info.family, pr.family,
           pr.supported);
    return e;
}

/* ---- inputs and noise ------------------------------------------------------ */

static int load_inputs(void)
{
    npy a = {0};
    img_rgb m = {0};
    if (npy_load(t_ref(G "init_image.npy"), &a) || a.n != (size_t)W * H * 3) { npy_free(&a); return -1; }
    for (int c = 0; c < 3; c++)   /* init_image.npy = u8/127.5 - 1: the bytes back exactly */
        for (int i = 0; i < W * H; i++) init_rgb[i * 3 + c] = (uint8_t)lrintf((a.f[c * W * H + i] + 1.0f) * 127.5f);
    npy_free(&a);
    if (pipe_load_png(G "mask.png", &m) || m.width != W || m.height != H) { img_rgb_free(&m); return -1; }
    for (int i = 0; i < W * H; i++) mask[i] = m.px[i * 3];
    img_rgb_free(&m);
    return 0;
}

/* The golden's draws: with `first` (the strength-1 run's latents), draw 0 =
 * first and draw k = draws[k - 1]; else draw k = draws[k]. */
typedef struct replay { const npy *first, *draws; int bad; } replay;

static void replay_noise(void *ud, uint64_t seed, uint64_t draw, float *out, size_t n)
{
    replay *r = ud;
    const npy *src = r->draws;
    uint64_t k = draw;
    if (r->first && draw == 0) src = r->first;
    else if (r->first) k = draw - 1;
    size_t per = src && src->ndim ? src->n / (src == r->first ? 1 : (size_t)src->shape[0]) : 0;
    if (!src || per != n || (src != r->first && k >= (uint64_t)src->shape[0])) {
        r->bad = 1;
        memset(out, 0, n * sizeof *out);
        return;
    }
    memcpy(out, src->f + k * per, n * sizeof *out);
}

static sd_gen_params params(const char *sampler, float strength)
{
    sd_gen_params p = {.prompt = "a photograph of an astronaut riding a horse", .negative = "blurry, low quality",
                       .steps = 10, .cfg = 7.5f, .n = 1, .seed = 1234, .init_rgb = init_rgb, .init_width = W,
                       .init_height = H, .strength = strength, .mask = mask};
    sd_sampler_from_name(sampler, &p.sampler);
    return p;
}

/* ---- the goldens ------------------------------------------------------------ */

static void golden_run(sd_engine *e, const char *src, const char *run, const char *sampler, float strength)
{
    char name[256], path[256];
    npy first = {0}, draws = {0}, fin = {0}, gimg = {0}, steps = {0};
    snprintf(path, sizeof path, G "%s/noise_draws.npy", run);
    int ok = !npy_load(t_ref(path), &draws);
    snprintf(path, sizeof path, G "%s/final_latent.npy", run);
    ok = ok && !npy_load(t_ref(path), &fin);
    snprintf(path, sizeof path, G "%s/image.npy", run);
    ok = ok && !npy_load(t_ref(path), &gimg);
    snprintf(path, sizeof path, G "%s/latents_per_step.npy", run);
    ok = ok && !npy_load(t_ref(path), &steps);
    if (strength >= 1.0f) ok = ok && !npy_load(t_ref(G "init_noise.npy"), &first);
    snprintf(name, sizeof name, "inpaint/%s/%s", src, run);
    CHECKF(ok, name, "goldens missing");
    sd_gen_params p = params(sampler, strength);
    replay rp = {strength >= 1.0f ? &first : NULL, &draws, 0};
    p.noise = replay_noise;
    p.noise_ud = &rp;
    float lat[PER], *img = calloc(3 * W * H, sizeof(float)), *per_step = calloc(steps.n + 1, sizeof(float));
    sd_gen_debug dbg = {.final_latent = lat, .image = img};
    dbg.step_latents = per_step;
    dbg.max_steps = ok ? (int)steps.shape[0] : 0;
    sd_image out = {0};
    sd_err err;
    sd_err_clear(&err);
    int rc = ok ? sd_generate_debug(e, &p, &out, &dbg, &err) : -1;
    CHECKF(!rc, name, "generate: %s", err.msg);
    if (!rc) {
        double lmax = npy_maxabs(fin.f, fin.n), lerr = npy_maxdiff(lat, fin.f, fin.n);
        double serr = npy_maxdiff(per_step, steps.f, steps.n), smax = npy_maxabs(steps.f, steps.n);
        double ierr = npy_maxdiff(img, gimg.f, gimg.n) / 2.0;
        printf("metric %s final_latent_maxabs %.3g tol %.3g\n", name, lerr, 1e-4 * lmax);
        printf("metric %s per_step_maxabs %.3g tol %.3g\n", name, serr, 1e-4 * smax);
        printf("metric %s image_maxabs_01 %.3g tol %.3g\n", name, ierr, 1.0 / 255);
        CHECKF(!rp.bad, name, "the engine asked for a noise draw the reference run did not make");
        CHECKF(dbg.steps_seen == (int)steps.shape[0], name, "%d steps seen, the run has %d", dbg.steps_seen,
               (int)steps.shape[0]);
        CHECKF(serr <= 1e-4 * smax, name, "latents after each step: max error %.3g > %.3g", serr, 1e-4 * smax);
        CHECKF(lerr <= 1e-4 * lmax, name, "final latent max error %.3g > %.3g", lerr, 1e-4 * lmax);
        CHECKF(ierr <= 1.0 / 255, name, "decoded image max error %.3g > 1/255", ierr);
    }
    sd_image_free(&out);
    free(img); free(per_step);
    npy_free(&first); npy_free(&draws); npy_free(&fin); npy_free(&gimg); npy_free(&steps);
}

/* The UNet's input of the 9-channel DDIM run, built by inpaint.c alone
 * (its draws replayed): the latent mask equals mask_latent.npy, the start
 * latent unet_in[0]'s latent channels (DDIM does not scale them), the 5
 * extra channels those of every call and both CFG rows. */
static void check_unet_in(sd_engine *e9)
{
    const char *name = "inpaint/unet_in of inpaint9_ddim_10_strength0.75 from inpaint.c";
    npy uin = {0}, draws = {0}, mlat = {0};
    int ok = !npy_load(t_ref(G "inpaint9_ddim_10_strength0.75/unet_in.npy"), &uin) &&
             !npy_load(t_ref(G "inpaint9_ddim_10_strength0.75/noise_draws.npy"), &draws) &&
             !npy_load(t_ref(G "mask_latent.npy"), &mlat) && uin.n == (size_t)uin.shape[0] * 2 * 9 * LH * LW;
    static float img[3 * W * H];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < W * H; i++) img[c * W * H + i] = init_rgb[i * 3 + c] / 127.5f - 1.0f;
    sd_gen_params p = params("ddim", 0.75f);
    inpaint_in in = {&p, sd_engine_vae(e9), img, H, W, 1, 4, LH, LW, 5, 0};
    inpaint_run r = {0};
    sd_sched *s = calloc(1, sizeof *s);
    replay rp = {NULL, &draws, 0};
    sd_noise_src ns = {replay_noise, &rp, 1234, 0};
    float x[PER];
    sd_err err;
    sd_err_clear(&err);
    ok = ok && s && !inpaint_open(&r, &in, &err) && !sd_sched_init(s, SD_SAMPLER_DDIM, SD_SPACING_LEADING, 10, &err);
    if (ok) sd_sched_set_strength(s, 0.75);
    ok = ok && !inpaint_start(&r, s, &ns, 0, x, &err) && !rp.bad;
    CHECKF(ok, name, "setup: %s", err.msg);
    if (ok) {
        const size_t cells = LH * LW, row = 9 * cells;
        double xerr = npy_maxdiff(x, uin.f + row, 4 * cells), xmax = npy_maxabs(uin.f + row, 4 * cells);
        double cerr = 0, cmax = npy_maxabs(uin.f + row + 4 * cells, 5 * cells);
        for (int64_t c = 0; c < uin.shape[0] * 2; c++) {
            double d = npy_maxdiff(r.cond, uin.f + c * row + 4 * cells, 5 * cells);
            cerr = d > cerr ? d : cerr;
        }
        printf("metric %s start_maxabs %.3g extra_maxabs %.3g\n", name, xerr, cerr);
        CHECKF(!memcmp(r.repaint, mlat.f, sizeof(float) * cells), name, "latent mask differs from mask_latent.npy");
        CHECKF(xerr <= 1e-4 * xmax, name, "start latent max error %.3g", xerr);
        CHECKF(cerr <= 1e-4 * cmax, name, "mask + masked-image latents: max error %.3g over every call and row", cerr);
    }
    inpaint_close(&r);
    free(s);
    npy_free(&uin); npy_free(&draws); npy_free(&mlat);
}

/* ---- invariants ------------------------------------------------------------- */

/* The invariants' runs: 4 steps (each asserts an equality, not parity). */
static sd_gen_params inv(const char *sampler, float strength)
{
    sd_gen_params p = params(sampler, strength);
    p.steps = 4;
    return p;
}

/* Final latents of p (n images) into lat; 0 or -1 (a FAIL line under name). */
static int run(sd_engine *e, const sd_gen_params *p, float *lat, const char *name)
{
    sd_image out[2] = {{0}};
    sd_gen_debug dbg = {.final_latent = lat};
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_generate_debug(e, p, out, &dbg, &err);
    CHECKF(!rc, name, "generate: %s", err.msg);
    for (int i = 0; i < p->n; i++) sd_image_free(&out[i]);
    return rc;
}

static int same(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * sizeof *a); }

/* p with an all-white mask gives the latent p gives without a mask. */
static void white_is_plain(sd_engine *e, sd_gen_params p, const char *name)
{
    float a[PER], b[PER];
    p.mask = white;
    int ok = !run(e, &p, a, name);
    p.mask = NULL;
    ok = ok && !run(e, &p, b, name);
    CHECKF(ok && same(a, b, PER), name, "the latents differ");
}

/* Image 2 of p as a batch of 2 equals p's seed + 1 alone. */
static void second_is_next_seed(sd_engine *e, sd_gen_params p, const char *name)
{
    float a[2 * PER], b[PER];
    p.n = 2;
    int ok = !run(e, &p, a, name);
    p.n = 1;
    p.seed++;
    ok = ok && !run(e, &p, b, name);
    CHECKF(ok && same(a + PER, b, PER), name, "image 2 differs");
}

/* Latent cells whose pixels (with the 2-cell reach of A1111's bicubic
 * resize) are all `v`: surely kept (0) or surely repainted (255).  The
 * A1111 runs take a mask of the top half: rows 0-1 repaint, 6-7 kept. */
static int cell_is(const uint8_t *mask, int i, int j, uint8_t v)
{
    for (int y = i * 8 - 16; y < i * 8 + 24; y++)
        for (int x = j * 8 - 16; x < j * 8 + 24; x++) {
            int yy = y < 0 ? 0 : y >= H ? H - 1 : y, xx = x < 0 ? 0 : x >= W ? W - 1 : x;
            if (mask[yy * W + xx] != v) return 0;
        }
    return 1;
}

static void a1111_invariants(sd_engine *e4)
{
    float init[PER], mean[PER], stdv[PER], a[PER], b[PER];
    float img[3 * W * H];
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < W * H; i++) img[ch * W * H + i] = init_rgb[i * 3 + ch] / 127.5f - 1.0f;
    sd_err err;
    struct sd_vae *vae = sd_engine_vae(e4);
    CHECKF(!vae_encode(vae, img, 1, H, W, mean, stdv, &err), "a1111: encode the init image", "%s", err.msg);
    for (int i = 0; i < PER; i++) init[i] = mean[i] * vae_scaling_factor(vae);

    uint8_t *half = calloc(W * H, 1);
    memset(half, 255, W * H / 2);
    sd_gen_params p = inv("euler", 0.75f);
    p.ksampler = SD_KSAMPLER_EULER;
    p.seed = 7;
    p.mask = half;
    int kept = 0, repainted = 0, kept_equal = 0, repaint_moved = 0;
    if (!run(e4, &p, a, "a1111/4ch mask")) {
        for (int ch = 0; ch < 4; ch++)
            for (int i = 0; i < LH; i++)
                for (int j = 0; j < LW; j++) {
                    int k = (ch * LH + i) * LW + j;
                    if (cell_is(half, i, j, 0)) { kept++; kept_equal += a[k] == init[k]; }
                    if (cell_is(half, i, j, 255)) { repainted++; repaint_moved += fabsf(a[k] - init[k]) > 1e-3f; }
                }
        CHECKF(kept > 0 && kept_equal == kept, "a1111/4ch: kept latent cells end as the init latent", "%d of %d",
               kept_equal, kept);
        CHECKF(repainted > 0 && repaint_moved == repainted, "a1111/4ch: repainted cells change", "%d of %d",
               repaint_moved, repainted);
    }
    /* fill modes: only the repaint cells differ from "original" */
    for (int f = SD_FILL_LATENT_NOISE; f <= SD_FILL_LATENT_NOTHING; f++) {
        char name[96];
        snprintf(name, sizeof name, "a1111/4ch: fill %s changes only masked cells", f == SD_FILL_LATENT_NOISE ?
                 "latent noise" : "latent nothing");
        p.inpaint_fill = (sd_inpaint_fill)f;
        if (run(e4, &p, b, name)) continue;
        int kept_same = 1, masked_diff = 0;
        for (int ch = 0; ch < 4; ch++)
            for (int i = 0; i < LH; i++)
                for (int j = 0; j < LW; j++) {
                    int k = (ch * LH + i) * LW + j;
                    if (cell_is(half, i, j, 0)) kept_same &= b[k] == a[k];
                    if (cell_is(half, i, j, 255)) masked_diff += b[k] != a[k];
                }
        CHECKF(kept_same && masked_diff > 0, name, "kept cells equal %d, masked cells differing %d", kept_same,
               masked_diff);
    }
    /* a batch of 2 (latent noise: each image's own draw 0) */
    p.inpaint_fill = SD_FILL_LATENT_NOISE;
    second_is_next_seed(e4, p, "a1111/4ch: image 2 of a batch equals seed + 1 alone");
    p = inv("euler", 0.6f);
    p.ksampler = SD_KSAMPLER_EULER;
    white_is_plain(e4, p, "a1111/4ch: an all-white mask equals img2img");
    free(half);
}

static void diffusers_invariants(sd_engine *e4, sd_engine *e9)
{
    float a[PER], b[PER];
    /* 4-channel, Euler: the blend with an all-ones mask changes nothing */
    white_is_plain(e4, inv("euler", 0.75f), "diffusers/4ch: an all-white mask equals img2img (euler)");
    /* 9-channel: txt2img = an all-white strength-1 inpaint (mask 1, masked image 0) */
    sd_gen_params p = inv("euler", 1.0f);
    p.mask = white;
    int ok = !run(e9, &p, a, "diffusers/9ch white mask strength 1");
    p.init_rgb = NULL;
    p.mask = NULL;
    p.width = W;
    p.height = H;
    ok = ok && !run(e9, &p, b, "diffusers/9ch txt2img");
    CHECKF(ok && same(a, b, PER), "diffusers/9ch: txt2img equals an all-white inpaint at strength 1", "differs");
    second_is_next_seed(e9, inv("ddim", 0.75f), "diffusers/9ch: image 2 of a batch equals seed + 1 alone");
    /* A1111, 9-channel: the all-white mask's conditioning is the no-mask one */
    p = inv("euler", 0.6f);
    p.ksampler = SD_KSAMPLER_EULER;
    white_is_plain(e9, p, "a1111/9ch: an all-white mask equals img2img without one");
}

/* ---- SDXL inpainting ----------------------------------------------------------- */

static void sdxl_inpaint(void)
{
    char path[128], msg[600];
    CHECKF(!make_sdxl_inpaint(path, sizeof path), "sdxl-inpaint file (tiny-sdxl-s, conv_in widened)", "%s", path);
    sd_engine *e9 = load(path, 1, "sdxl-inpaint", "load sdxl-inpaint single file");
    sd_engine *e4 = pipe_load(2, 1, NULL, msg, sizeof msg);
    CHECKF(e4 != NULL, "load tiny-sdxl-s", "%s", msg);
    if (e9 && e4) {
        float a[PER], b[PER];
        sd_gen_params p = inv("euler", 1.0f);
        p.init_rgb = NULL;
        p.mask = NULL;
        p.width = W;
        p.height = H;
        p.cfg = 5.0f;
        int ok = !run(e9, &p, a, "sdxl-inpaint txt2img") && !run(e4, &p, b, "tiny-sdxl-s txt2img");
        double d = ok ? npy_maxdiff(a, b, PER) : 1, m = ok ? npy_maxabs(b, PER) : 0;
        printf("metric inpaint/sdxl-inpaint-zero-extra txt2img_maxabs %.3g tol %.3g\n", d, 1e-5 * m);
        CHECKF(ok && d <= 1e-5 * m, "sdxl-inpaint (zero extra weights): txt2img equals tiny-sdxl-s's",
               "max diff %.3g", d);
        p = inv("ddim", 0.75f);
        p.cfg = 5.0f;
        ok = !run(e9, &p, a, "sdxl-inpaint: a masked img2img runs (diffusers rules)");
        p.ksampler = SD_KSAMPLER_EULER;
        ok = ok && !run(e9, &p, a, "sdxl-inpaint: a masked img2img runs (A1111 rules)");
        int finite = ok;
        for (int i = 0; i < PER; i++) finite &= isfinite(a[i]);
        CHECKF(finite, "sdxl-inpaint: masked runs give finite latents", "ran %d", ok);
    }
    sd_engine_free(e9);
    sd_engine_free(e4);
}

/* ---- errors ----------------------------------------------------------------- */

/* sd_generate refuses p naming field; so does sd_check_request when p has
 * its init image's pixels (the server checks before decoding them). */
static void expect_einval(sd_engine *e, const sd_gen_params *p, const char *field, const char *name)
{
    sd_image out = {0};
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_generate(e, p, &out, &err);
    sd_image_free(&out);
    CHECKF(rc && err.code == SD_EINVAL && !strcmp(err.field, field), name, "rc %d code %d field '%s': %s", rc,
           err.code, err.field, err.msg);
    sd_err_clear(&err);
    rc = sd_check_request(e, p, &err);
    CHECKF(p->init_rgb ? rc && !strcmp(err.field, field) : !rc, name, "sd_check_request: rc %d field '%s'", rc,
           err.field);
}

static void errors(sd_engine *e)
{
    uint8_t *m = malloc(W * H);
    sd_gen_params p = params("euler", 0.75f);
    p.init_rgb = NULL;
    p.width = W;
    p.height = H;
    expect_einval(e, &p, "mask", "error: a mask without an init image names mask");
    p = params("euler", 0.75f);
    memset(m, 0, W * H);
    p.mask = m;
    expect_einval(e, &p, "mask", "error: an all-black mask names mask");
    memset(m, 127, W * H);
    expect_einval(e, &p, "mask", "error: a mask all below half names mask");
    p = params("euler", 0.75f);
    p.inpaint_fill = (sd_inpaint_fill)9;
    expect_einval(e, &p, "inpaint_fill", "error: an unknown fill names inpaint_fill");
    free(m);
}

/* ---- hires fix's pass 2 with the 9-channel UNet ----------------- */

typedef struct concat_rec { int calls, n, c, h, w; float *last; } concat_rec;

/* unet tap: keeps the last "concat" call's extra channels. */
static void concat_tap(void *ud, const char *name, const float *d, int n, int c, int h, int w)
{
    concat_rec *r = ud;
    if (strcmp(name, "concat")) return;
    r->calls++;
    free(r->last);
    r->last = malloc(sizeof(float) * n * c * h * w);
    if (r->last) memcpy(r->last, d, sizeof(float) * n * c * h * w);
    r->n = n; r->c = c; r->h = h; r->w = w;
}

static sd_gen_params hires_params(sd_hr_upscaler u)
{
    sd_gen_params p = {.prompt = "a red bicycle", .negative = "blurry", .width = 32, .height = 32, .steps = 2,
                       .cfg = 5, .n = 1, .seed = 21, .sampler = SD_SAMPLER_EULER_A, .ksampler = SD_KSAMPLER_EULER_A,
                       .hr_upscaler = u, .hr_width = 64, .hr_height = 64, .hr_steps = 3, .hr_strength = 0.7f};
    return p;
}

/* p's picture into *out; 0 or -1 (a FAIL line under name). */
static int picture(sd_engine *e, const sd_gen_params *p, sd_image *out, const char *name)
{
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_generate(e, p, out, &err);
    if (rc) CHECKF(0, name, "generate: %s", err.msg);
    return rc;
}

static void hires_pass2(sd_engine *e9)
{
    enum { HW = 64, L = 8 };
    static float zero[3 * HW * HW];
    float mean[4 * L * L], stdv[4 * L * L];
    sd_err err;
    sd_err_clear(&err);
    int ok = !vae_encode(sd_engine_vae(e9), zero, 1, HW, HW, mean, stdv, &err);
    CHECKF(ok, "hires 9-ch: the hand-built masked-image latent (VAE of a zero image)", "%s", err.msg);
    if (!ok) return;
    const float sc = vae_scaling_factor(sd_engine_vae(e9));
    const sd_hr_upscaler ups[] = {SD_HR_LATENT, SD_HR_LANCZOS};
    sd_image pic[2] = {{0}};
    for (int k = 0; k < 2; k++) {
        char name[128];
        snprintf(name, sizeof name, "hires 9-ch %s: pass 2's extra channels = ones + scaled VAE mean of a zero "
                 "image at 64x64", k ? "lanczos" : "latent");
        concat_rec r = {0};
        unet_set_tap(sd_engine_unet(e9), concat_tap, &r);
        sd_gen_params p = hires_params(ups[k]);
        int rc = picture(e9, &p, &pic[k], name);
        unet_set_tap(sd_engine_unet(e9), NULL, NULL);
        double merr = 0, lerr = 0, lmax = 0;
        ok = !rc && r.last && r.c == 5 && r.h == L && r.w == L && r.n >= 1;
        for (int b = 0; ok && b < r.n; b++) {
            const float *row = r.last + (size_t)b * 5 * L * L;
            for (int i = 0; i < L * L; i++) merr = fmax(merr, fabs(row[i] - 1.0));
            for (int i = 0; i < 4 * L * L; i++) {
                lerr = fmax(lerr, fabs(row[L * L + i] - mean[i] * sc));
                lmax = fmax(lmax, fabs(mean[i] * sc));
            }
        }
        CHECKF(ok && merr == 0 && lerr <= 1e-5 * lmax, name, "calls %d last %dx%dx%dx%d mask err %.3g latent err "
               "%.3g (max %.3g)", r.calls, r.n, r.c, r.h, r.w, merr, lerr, lmax);
        free(r.last);
    }
    /* the latent upscaler's pass 2 is img2img from the upscaled latent, not a fresh txt2img */
    sd_gen_params q = hires_params(SD_HR_NONE);
    q.width = q.height = HW;
    q.steps = 3;
    sd_image plain = {0};
    ok = pic[0].rgb && !picture(e9, &q, &plain, "hires 9-ch: a plain 64x64 txt2img of hr_steps");
    CHECK(ok && memcmp(pic[0].rgb, plain.rgb, (size_t)HW * HW * 3),
          "hires 9-ch latent: pass 2 starts from the upscaled latent (differs from a plain 64x64 txt2img)");
    sd_image_free(&plain);
    /* and with a diffusers-semantics sampler (euler_a) */
    sd_gen_params d = hires_params(SD_HR_LATENT);
    d.ksampler = q.ksampler = SD_KSAMPLER_NONE;
    sd_image dh = {0};
    ok = !picture(e9, &d, &dh, "hires 9-ch euler_a") && !picture(e9, &q, &plain, "hires 9-ch: plain euler_a");
    CHECK(ok && memcmp(dh.rgb, plain.rgb, (size_t)HW * HW * 3),
          "hires 9-ch latent, euler_a: pass 2 starts from the upscaled latent (differs from a plain txt2img)");
    sd_image_free(&dh);
    sd_image_free(&plain);
    sd_image_free(&pic[0]);
    sd_image_free(&pic[1]);
}

int main(void)
{
    if (!t_have_ref()) { CHECKF(0, "reference data", "../shared/reference not found (set SD_REF)"); return t_done(); }
    snprintf(tmp, sizeof tmp, "/tmp/sd_inpaint_XXXXXX");
    if (!mkdtemp(tmp)) { CHECKF(0, "temp dir", "mkdtemp"); return t_done(); }
    CHECKF(!load_inputs(), "inputs: init image and mask.png", "cannot read them");
    memset(white, 255, sizeof white);
    char folder[128], single[128], msg[600];
    CHECKF(!make_folder(folder, sizeof folder), "diffusers folder with the inpaint UNet", "%s", folder);
    CHECKF(!make_single(single, sizeof single), "single file with the inpaint UNet", "%s", single);
    sd_engine *e9 = load(folder, 0, "sd1-inpaint", "load sd1-inpaint diffusers folder");
    sd_engine *e9s = load(single, 1, "sd1-inpaint", "load sd1-inpaint single file");
    sd_engine *e4 = pipe_load(0, 0, NULL, msg, sizeof msg);
    CHECKF(e4 != NULL, "load tiny-sd1", "%s", msg);
    if (e9) {
        golden_run(e9, "diffusers", "inpaint9_euler_10_strength1", "euler", 1.0f);
        golden_run(e9, "diffusers", "inpaint9_ddim_10_strength0.75", "ddim", 0.75f);
    }
    if (e9s) {   /* the sanitizer and quick tiers (t_subset): one run of the other layout */
        golden_run(e9s, "single", "inpaint9_euler_10_strength1", "euler", 1.0f);
        if (!t_subset()) golden_run(e9s, "single", "inpaint9_ddim_10_strength0.75", "ddim", 0.75f);
    }
    if (e9) check_unet_in(e9);
    if (e9) hires_pass2(e9);
    if (e4) {
        golden_run(e4, "tiny-sd1", "inpaint4_euler_10_strength0.75", "euler", 0.75f);
        a1111_invariants(e4);
        errors(e4);
    }
    if (e4 && e9) diffusers_invariants(e4, e9);
    sdxl_inpaint();
    sd_engine_free(e9);
    sd_engine_free(e9s);
    sd_engine_free(e4);
    t_rmtree(tmp);
    return t_done();
}
