/* test_taesd.c — TAESD (src/engine/models/taesd.c) against the reference
 * AutoencoderTiny goldens (reference/goldens/taesd/, tiny-taesd: 24
 * channels, encoder blocks (1,2,2,2), decoder (2,2,2,1)), at fp32, from
 * the three ways the files come: the diffusers folder, its single
 * .safetensors, and madebyollin's taesd_decoder / taesd_encoder pair
 * (Sequential indices, the encoder found beside the decoder).  Checks:
 * decode latent_8x6 -> decoded_8x6, encode image_64x48 -> encoded_8x6, the
 * stage activations (act_decode/, act_encode/), all within 1e-4 max abs
 * difference (the values are O(1): max |x| is printed beside); the preview
 * golden = TAESD decode of tiny-sd1's txt2img_euler_4 final latent, from
 * the recorded latent and from our own pipeline's run of it (recorded
 * noise, through the engine with --vae-decoder taesd: its final images are
 * that decode); previews drawn by the TAESD at the output size without
 * changing the result; shapes read (channels, scale); bad files and
 * options refused naming "preview_decoder" / "vae_decoder". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mm_cli.h"
#include "npy.h"
#include "t.h"
#include "../../src/engine/models/taesd.h"
#include "../../src/engine/pipeline.h"
#include "../../src/engine/ops/ops.h"

#define TOL 1e-4

typedef struct taps {
    const char *src;
    int checked, bad;
    double worst;
} taps;

static void check_golden(const char *name, const float *got, const npy *want, size_t n)
{
    double d = want->n == n ? npy_maxdiff(got, want->f, n) : INFINITY;
    printf("metric taesd/%s maxabs %.3g (max|x| %.3g) tol %g\n", name, d, want->n == n ? npy_maxabs(want->f, n) : 0.0, TOL);
    CHECKF(d <= TOL, name, "max abs difference %.3g > %g (%zu of %zu values)", d, TOL, n, want->n);
}

/* the stage goldens: act_decode/decoder.layers.N.npy [1, C, H, W] */
static void tap(void *ud, int dec, int layer, const float *x, int C, int H, int W)
{
    taps *t = ud;
    char rel[160];
    snprintf(rel, sizeof rel, "goldens/taesd/%s/%s.layers.%d.npy", dec ? "act_decode" : "act_encode",
             dec ? "decoder" : "encoder", layer);
    npy a;
    /* decoder.layers.1 is the ReLU module diffusers 0.25 shares between all
     * its activations: its hook recorded the last call (inside the last
     * block, at 64x48), not the layer's output */
    if (layer == 1 && dec) return;
    if (access(t_ref(rel), R_OK) || npy_load(t_ref(rel), &a)) return;   /* only some layers have goldens */
    float *nchw = malloc(sizeof(float) * C * H * W);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < H * W; i++) nchw[(size_t)c * H * W + i] = x[(size_t)i * C + c];
    double d = a.n == (size_t)C * H * W ? npy_maxdiff(nchw, a.f, a.n) : INFINITY;
    if (d > t->worst) t->worst = d;
    t->bad += !(d <= TOL);
    t->checked++;
    free(nchw);
    npy_free(&a);
}

static void check_model(ops_ctx *ctx, const char *label, const char *path)
{
    char name[200];
    sd_err err;
    sd_err_clear(&err);
    taesd *m = taesd_load(t_ref(path), ctx, OPS_FP32, &err);
    snprintf(name, sizeof name, "taesd %s loads both halves", label);
    CHECKF(m && taesd_has_decoder(m) && taesd_has_encoder(m), name, "%s", err.msg);
    if (!m) return;
    /* decode FLOPs of 8x6 by hand: conv 4->24 and 2 blocks at 8x6; per upsampled level a conv + blocks
     * (2, 2, then 1 and the conv to RGB) at 16x12, 32x24, 64x48 */
    const double k = 2.0 * 24 * 24 * 9;
    const double want_fl = 2.0 * 4 * 24 * 9 * 48 + 6 * k * 48 + 7 * k * 192 + 7 * k * 768 + 4 * k * 3072 +
                           2.0 * 24 * 3 * 9 * 3072;
    snprintf(name, sizeof name, "taesd %s decode FLOPs counted from the shapes", label);
    CHECKF(fabs(taesd_decode_flops(m, 8, 6) - want_fl) < 1, name, "%.0f, want %.0f", taesd_decode_flops(m, 8, 6), want_fl);
    snprintf(name, sizeof name, "taesd %s shapes read", label);
    CHECKF(taesd_latent_channels(m) == 4 && taesd_scale(m) == 8 && taesd_width(m) == 24, name,
           "latent %d scale %d width %d", taesd_latent_channels(m), taesd_scale(m), taesd_width(m));
    npy lat, dec, img, enc;
    if (npy_load(t_ref("goldens/taesd/latent_8x6.npy"), &lat) || npy_load(t_ref("goldens/taesd/decoded_8x6.npy"), &dec) ||
        npy_load(t_ref("goldens/taesd/image_64x48.npy"), &img) || npy_load(t_ref("goldens/taesd/encoded_8x6.npy"), &enc)) {
        CHECKF(0, label, "goldens missing");
        taesd_free(m);
        return;
    }
    taps tp = {label, 0, 0, 0};
    taesd_set_tap(m, tap, &tp);
    float *out = calloc(3 * 64 * 48, sizeof(float)), *z = calloc(4 * 8 * 6, sizeof(float));
    int rc = taesd_decode(m, lat.f, 8, 6, out, &err);
    snprintf(name, sizeof name, "taesd %s decode latent_8x6 = decoded_8x6", label);
    if (rc) CHECKF(0, name, "%s", err.msg); else check_golden(name, out, &dec, 3 * 64 * 48);
    rc = taesd_encode(m, img.f, 64, 48, z, &err);
    snprintf(name, sizeof name, "taesd %s encode image_64x48 = encoded_8x6", label);
    if (rc) CHECKF(0, name, "%s", err.msg); else check_golden(name, z, &enc, 4 * 8 * 6);
    snprintf(name, sizeof name, "taesd %s stage activations (3 decoder, 4 encoder)", label);
    CHECKF(tp.checked == 7 && tp.bad == 0, name, "%d checked, %d off, worst %.3g", tp.checked, tp.bad, tp.worst);
    printf("metric taesd/%s stages maxabs %.3g tol %g\n", label, tp.worst, TOL);
    /* the preview golden: the recorded final latent of tiny-sd1 txt2img_euler_4, decoded directly */
    npy fl, pv;
    taesd_set_tap(m, NULL, NULL);
    snprintf(name, sizeof name, "taesd %s preview of tiny-sd1 txt2img_euler_4", label);
    if (npy_load(t_ref("goldens/tiny-sd1/pipe/txt2img_euler_4/final_latent.npy"), &fl) ||
        npy_load(t_ref("goldens/taesd/preview_of_tiny-sd1_txt2img_euler_4.npy"), &pv)) {
        CHECKF(0, name, "goldens missing");
    } else {
        rc = taesd_decode(m, fl.f, 8, 6, out, &err);
        if (rc) CHECKF(0, name, "%s", err.msg); else check_golden(name, out, &pv, 3 * 64 * 48);
        npy_free(&pv);
        npy_free(&fl);
    }
    free(out); free(z);
    npy_free(&lat); npy_free(&dec); npy_free(&img); npy_free(&enc);
    taesd_free(m);
}

static void check_refused(ops_ctx *ctx, const char *label, const char *path)
{
    sd_err err;
    sd_err_clear(&err);
    taesd *m = taesd_load(path, ctx, OPS_FP32, &err);
    char name[160];
    snprintf(name, sizeof name, "taesd refuses %s", label);
    CHECKF(!m && err.code != SD_OK && !strcmp(err.field, "preview_decoder") && strstr(err.msg, "preview"), name,
           "code %d field '%s': %s", (int)err.code, err.field, err.msg);
    taesd_free(m);
}

/* ---- through the engine ----------------------------------------------------- */

static void zero_noise_start(void *ud, uint64_t seed, uint64_t draw, float *out, size_t n)
{
    const npy *init = ud;   /* txt2img euler: draw 0 is the only one */
    if (draw == 0 && init->n == n) memcpy(out, init->f, n * sizeof *out);
    else memset(out, 0, n * sizeof *out);
}

typedef struct shots { int count, w, h; } shots;

static void shot(void *ud, int step, int total, const sd_image *img)
{
    shots *s = ud;
    s->count++;
    s->w = img->width;
    s->h = img->height;
}

static sd_engine *load_with(const char *preview, const char *vae_decoder, sd_err *err)
{
    sd_load_opts o = {0};
    o.model_path = t_ref("models/tiny-sd1");
    o.preview_decoder = preview;
    o.vae_decoder = vae_decoder;
    sd_err_clear(err);
    return sd_engine_load(&o, err);
}

/* tiny-sd1 txt2img_euler_4 with its recorded noise and --vae-decoder taesd:
 * the final latent is the run's, and the image is the preview golden. */
static void check_engine(void)
{
    sd_err err;
    sd_engine *e = load_with(t_ref("models/tiny-taesd"), "taesd", &err);
    CHECKF(e != NULL, "engine loads tiny-sd1 with --preview-decoder tiny-taesd --vae-decoder taesd", "%s", err.msg);
    if (!e) return;
    npy init, fin, pv;
    if (npy_load(t_ref("goldens/tiny-sd1/pipe/init_noise_8x6.npy"), &init) ||
        npy_load(t_ref("goldens/tiny-sd1/pipe/txt2img_euler_4/final_latent.npy"), &fin) ||
        npy_load(t_ref("goldens/taesd/preview_of_tiny-sd1_txt2img_euler_4.npy"), &pv)) {
        CHECKF(0, "engine run goldens", "missing");
        sd_engine_free(e);
        return;
    }
    sd_gen_params p = {.prompt = "a photograph of an astronaut riding a horse", .negative = "blurry, low quality",
                       .width = 48, .height = 64, .steps = 4, .cfg = 7.5f, .seed = 1234, .n = 1,
                       .sampler = SD_SAMPLER_EULER, .noise = zero_noise_start, .noise_ud = &init};
    float *lat = calloc(fin.n, sizeof(float)), *img = calloc(pv.n, sizeof(float));
    sd_gen_debug dbg = {.final_latent = lat, .image = img};
    sd_image out = {0}, again = {0};
    int rc = sd_generate_debug(e, &p, &out, &dbg, &err);
    double lat_err = rc ? INFINITY : npy_maxdiff(lat, fin.f, fin.n), lat_max = npy_maxabs(fin.f, fin.n);
    printf("metric taesd/engine final_latent maxabs %.3g tol %.3g\n", lat_err, 1e-4 * lat_max);
    CHECKF(rc == 0 && lat_err <= 1e-4 * lat_max, "engine: our txt2img_euler_4 run's final latent is the golden's",
           "rc %d err %.3g: %s", rc, lat_err, err.msg);
    /* the latent is within 1e-4 relative, so its decode is within ~1e-3 */
    double img_err = rc ? INFINITY : npy_maxdiff(img, pv.f, pv.n);
    printf("metric taesd/engine decode of our final latent vs preview golden maxabs %.3g tol 1e-3\n", img_err);
    CHECKF(img_err <= 1e-3, "engine --vae-decoder taesd: the final decode is the preview golden", "max abs %.3g", img_err);
    int worst = 0;
    for (int y = 0; rc == 0 && y < 64; y++)
        for (int x = 0; x < 48; x++)
            for (int c = 0; c < 3; c++) {
                float v = pv.f[((size_t)c * 64 + y) * 48 + x] / 2 + 0.5f;
                int want = (int)lrintf((v < 0 ? 0 : v > 1 ? 1 : v) * 255);
                int d = abs(want - out.rgb[((size_t)y * 48 + x) * 3 + c]);
                if (d > worst) worst = d;
            }
    CHECKF(rc == 0 && out.width == 48 && out.height == 64 && worst <= 1, "engine --vae-decoder taesd: RGB8 output",
           "%dx%d, %d levels off", out.width, out.height, worst);
    /* previews drawn by the TAESD: the output's size, the same result */
    shots s = {0};
    p.preview = shot; p.preview_ud = &s; p.preview_every = 1;
    rc = sd_generate(e, &p, &again, &err);
    CHECKF(rc == 0 && s.count == 3 && s.w == 48 && s.h == 64, "engine: TAESD previews at the output size",
           "rc %d: %d previews of %dx%d: %s", rc, s.count, s.w, s.h, err.msg);
    CHECKF(rc == 0 && out.rgb && !memcmp(out.rgb, again.rgb, 48 * 64 * 3), "engine: same bytes with TAESD previews",
           "differs");
    sd_image_free(&out); sd_image_free(&again);
    free(lat); free(img);
    npy_free(&init); npy_free(&fin); npy_free(&pv);
    sd_engine_free(e);
}

static void refused(const char *label, const char *preview, const char *vae_decoder, const char *field, const char *says)
{
    sd_err err;
    sd_engine *e = load_with(preview, vae_decoder, &err);
    char name[200];
    snprintf(name, sizeof name, "engine refuses %s (%s)", label, field);
    CHECKF(!e && !strcmp(err.field, field) && strstr(err.msg, says), name, "field '%s': %s", err.field, err.msg);
    sd_engine_free(e);
}

static void check_engine_refuses(void)
{
    refused("--vae-decoder bogus", NULL, "bogus", "vae_decoder", "vae or taesd");
    refused("--vae-decoder taesd without a TAESD", NULL, "taesd", "vae_decoder", "--preview-decoder");
    refused("a missing --preview-decoder", "/nonexistent/taesd_decoder.safetensors", NULL, "preview_decoder",
            "--preview-decoder");
    char dir[256], args[600], file[300];
    if (mm_tmpdir(dir, sizeof dir, "taesd3")) { CHECKF(0, "tmpdir", "cannot make one"); return; }
    /* madebyollin's encoder alone (beside the reference's, its decoder would be found) */
    size_t n;
    unsigned char *bytes = t_slurp(t_ref("models/tiny-taesd_encoder.safetensors"), &n);
    snprintf(file, sizeof file, "%s/alone_encoder.safetensors", dir);
    FILE *f = fopen(file, "wb");
    int wrote = bytes && f && fwrite(bytes, 1, n, f) == n;
    if (f) fclose(f);
    free(bytes);
    CHECKF(wrote, "copy the encoder file", "%s", file);
    refused("an encoder-only TAESD", file, NULL, "preview_decoder", "only a TAESD encoder");
    snprintf(file, sizeof file, "%s/taesd3.safetensors", dir);
    snprintf(args, sizeof args, "--preset taesd --latent-channels 3 --dtype f32 -q -o %s", file);
    CHECKF(mm_run(args) == 0, "make-model --preset taesd --latent-channels 3", "failed");
    refused("a TAESD of 3 latent channels for a 4-channel model", file, NULL, "preview_decoder", "latent channels");
    /* the bench's full-size TAESD: taesd's shapes, read from the tensors */
    snprintf(file, sizeof file, "%s/taesd.safetensors", dir);
    snprintf(args, sizeof args, "--preset taesd -q -o %s", file);
    sd_err err;
    sd_err_clear(&err);
    ops_ctx *ctx = ops_ctx_new(0);
    taesd *m = mm_run(args) == 0 ? taesd_load(file, ctx, OPS_FP32, &err) : NULL;
    float z[4 * 2 * 3] = {0.5f, -1, 2}, img[3 * 16 * 24];
    int rc = m ? taesd_decode(m, z, 2, 3, img, &err) : -1;
    CHECKF(m && rc == 0 && taesd_latent_channels(m) == 4 && taesd_scale(m) == 8 && taesd_width(m) == 64 &&
           taesd_has_encoder(m) && isfinite(img[3 * 16 * 24 - 1]),
           "make-model --preset taesd: 64 channels, scale 8, decodes", "%s", err.msg);
    taesd_free(m);
    ops_ctx_free(ctx);
    t_rmtree(dir);
}

int main(void)
{
    if (!t_have_ref()) { CHECKF(0, "reference data", "../shared/reference not found (set SD_REF)"); return t_done(); }
    ops_ctx *ctx = ops_ctx_new(0);
    check_model(ctx, "diffusers folder", "models/tiny-taesd");
    check_model(ctx, "diffusers file", "models/tiny-taesd/diffusion_pytorch_model.safetensors");
    check_model(ctx, "madebyollin pair", "models/tiny-taesd_decoder.safetensors");
    check_refused(ctx, "a missing file", "/nonexistent/taesd_decoder.safetensors");
    check_refused(ctx, "a pickle", "/tmp/taesd_decoder.pth");
    check_refused(ctx, "an SD checkpoint (no TAESD layers)", t_ref("models/tiny-sd1-fp16.safetensors"));
    check_refused(ctx, "a folder without one", t_ref("models"));
    ops_ctx_free(ctx);
    check_engine();
    check_engine_refuses();
    return t_done();
}
