/* test_image_meta.c — the A1111 parameters text (and its Sampler /
 * Schedule type read back as A1111 reads them), the hand-written EXIF block
 * (round trip, long text cut at a character boundary, malformed blocks), and
 * fitting an init image within a side (PIL's Lanczos, keeping the aspect
 * ratio). */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "../../src/base/resample.h"
#include "../../src/image/image.h"
#include "../../src/jobs/request.h"

static void test_a1111(void)
{
    img_gen_info g = {.prompt = "a red bicycle", .negative = "blurry, low quality", .steps = 20,
                      .sampler = "Euler a", .cfg = 7, .seed = 3090352432285578ULL, .width = 512, .height = 768,
                      .model_hash = "6ce0161689", .model_name = "v1-5-pruned-emaonly", .denoise = -1};
    char *s = img_a1111_parameters(&g);
    CHECKF(s && !strcmp(s, "a red bicycle\nNegative prompt: blurry, low quality\nSteps: 20, Sampler: Euler a, "
                           "CFG scale: 7, Seed: 3090352432285578, Size: 512x768, Model hash: 6ce0161689, "
                           "Model: v1-5-pruned-emaonly"), "a1111 txt2img text", "%s", s);
    free(s);
    g.negative = "";
    g.cfg = 7.5f;
    g.denoise = 0.7f;
    g.model_name = "my, model";
    g.model_hash = NULL;
    s = img_a1111_parameters(&g);
    CHECKF(s && !strcmp(s, "a red bicycle\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 3090352432285578, "
                           "Size: 512x768, Model: \"my, model\", Denoising strength: 0.7"),
           "a1111 img2img text, quoting, omitted fields", "%s", s);
    free(s);
    g.clip_skip = 2;
    s = img_a1111_parameters(&g);
    CHECKF(s && strstr(s, ", Denoising strength: 0.7, Clip skip: 2") && !strstr(s, "\n\n"),
           "a1111 text: Clip skip: 2 after the denoising strength", "%s", s);
    free(s);
    g.clip_skip = 1;
    s = img_a1111_parameters(&g);
    CHECKF(s && !strstr(s, "Clip skip"), "a1111 text: no Clip skip entry for 1 (the default)", "%s", s);
    free(s);
    /* SDXL's size conditioning: the entries the request set, after the spacing */
    g.crop_top = 16;
    g.orig_width = 2048;
    s = img_a1111_parameters(&g);
    CHECKF(s && strstr(s, ", Original width: 2048, Crop top: 16") && !strstr(s, "Crop left") &&
               !strstr(s, "Original height") && !strstr(s, "Target"),
           "a1111 text: SDXL size conditioning, only the entries set", "%s", s);
    free(s);
    g.crop_top = g.orig_width = 0;
    /* r2follow: inpainting's entries, A1111's order, then none without a mask */
    g.inpaint = (img_inpaint_info){.on = 1, .inverted = 1, .mask_blur = 4, .only_masked = 1, .padding = 0,
                                   .masked_content = "latent nothing"};
    s = img_a1111_parameters(&g);
    CHECKF(s && strstr(s, "Denoising strength: 0.7, Mask mode: Inpaint not masked, Mask blur: 4, Inpaint area: "
                         "Only masked, Masked area padding: 0, Masked content: latent nothing"),
           "a1111 text: inpainting entries after the denoising strength, A1111's order", "%s", s);
    free(s);
    g.inpaint = (img_inpaint_info){.on = 1, .mask_blur = 0, .masked_content = NULL};
    s = img_a1111_parameters(&g);
    CHECKF(s && !strstr(s, "Mask") && !strstr(s, "Inpaint area"),
           "a1111 text: blur 0 (or x != y), whole picture, original: no inpainting entry", "%s", s);
    free(s);
    g.inpaint = (img_inpaint_info){0};
    /* the VAE override: A1111's order, after the model, before the denoising strength */
    g.vae_hash = "63aeecb90f";
    g.vae_name = "vae-ft-mse-840000-ema-pruned.safetensors";
    s = img_a1111_parameters(&g);
    CHECKF(s && strstr(s, "Model: \"my, model\", VAE hash: 63aeecb90f, VAE: vae-ft-mse-840000-ema-pruned.safetensors, "
                          "Denoising strength: 0.7"), "a1111 text: VAE hash and VAE after the model", "%s", s);
    free(s);
    /* issue 15: the family after the model (SD2/SDXL; SD1's text unchanged) */
    g.family = "sdxl";
    s = img_a1111_parameters(&g);
    CHECKF(s && strstr(s, "Model: \"my, model\", Model family: sdxl, VAE hash: 63aeecb90f"),
           "a1111 text: Model family after the model", "%s", s);
    free(s);
    g.family = NULL;
    g.vae_hash = g.vae_name = NULL;
    s = img_a1111_parameters(&g);
    CHECKF(s && !strstr(s, "VAE"), "a1111 text: no VAE entries without an override", "%s", s);
    free(s);
    /* --vae-decoder taesd: A1111's "VAE Decoder: TAESD", last (after Lora hashes) */
    g.vae_decoder = "TAESD";
    g.lora_hashes = "pix: 0123456789ab";
    s = img_a1111_parameters(&g);
    CHECKF(s && strstr(s, ", Lora hashes: \"pix: 0123456789ab\", VAE Decoder: TAESD") &&
               !strcmp(s + strlen(s) - strlen(", VAE Decoder: TAESD"), ", VAE Decoder: TAESD"),
           "a1111 text: VAE Decoder: TAESD last, after Lora hashes", "%s", s);
    free(s);
    g.lora_hashes = NULL;
}

/* The value of "key: " in a parameters text (up to ", " or the end), or "". */
static void param_value(const char *text, const char *key, char *out, size_t size)
{
    const char *p = strstr(text, key);
    out[0] = 0;
    if (!p) return;
    p += strlen(key);
    size_t n = strcspn(p, ",");
    snprintf(out, size, "%.*s", (int)n, p);
}

/* Every sampler name: the text names what reproduces the picture, and
 * reading its Sampler (+ Schedule type, label -> request name) back gives
 * the same choice.  A diffusers-semantics run is written with its own name,
 * never as A1111's label of another picture. */
static void test_sampler_round_trip(void)
{
    char buf[64], smp[64], sch[64];
    const char *name;
    int ok = 1, distinct = 1, n = 0;
    char bad[160] = "";
    for (int i = 0; (name = req_sampler_name_at(i, buf, sizeof buf)); i++, n++) {
        sd_request a, b;
        sd_request_defaults(&a, 0);
        sd_request_defaults(&b, 0);
        a.gen.prompt = "x";
        req_field_set_name(req_field_find("sampler"), &a, name);
        img_gen_info g = req_gen_info(&a, 0, 64, 64, NULL, NULL, "sd1");
        char *text = img_a1111_parameters(&g);
        param_value(text ? text : "", "Sampler: ", smp, sizeof smp);
        param_value(text ? text : "", "Schedule type: ", sch, sizeof sch);
        for (char *c = sch; *c; c++) *c = *c == ' ' ? '_' : (char)(*c | 0x20);   /* "SGM Uniform" -> sgm_uniform */
        int back = req_field_set_name(req_field_find("sampler"), &b, smp) == 0 &&
                   (!*sch || req_field_set_name(req_field_find("scheduler"), &b, sch) == 0);
        int same = back && a.gen.ksampler == b.gen.ksampler &&
                   (a.gen.ksampler ? sd_requested_schedule(&a.gen) == sd_requested_schedule(&b.gen)
                                   : a.gen.sampler == b.gen.sampler && !*sch);
        if (!same && !bad[0]) snprintf(bad, sizeof bad, "%s -> Sampler: %s, Schedule type: %s", name, smp, sch);
        ok &= same;
        if (!a.gen.ksampler && !strcmp(smp, sd_sampler_a1111_name(a.gen.sampler)) && strcmp(smp, name)) distinct = 0;
        free(text);
    }
    CHECKF(ok && n == 48, "parameters text: Sampler / Schedule type read back give the same choice (48 names)", "%s",
           bad);
    CHECK(distinct, "parameters text: diffusers-semantics runs are not written with A1111's label");
    {
        /* SDXL's size ids are written for an SDXL model only (others ignore them) */
        sd_request a;
        sd_request_defaults(&a, 0);
        a.gen.prompt = "x";
        a.gen.orig_width = 4096;
        a.gen.crop_top = 16;
        img_gen_info x = req_gen_info(&a, 0, 64, 64, NULL, NULL, "sdxl"), o = req_gen_info(&a, 0, 64, 64, NULL, NULL, "sd1");
        char *tx = img_a1111_parameters(&x), *to = img_a1111_parameters(&o);
        CHECKF(tx && to && strstr(tx, "Original width: 4096") && strstr(tx, "Crop top: 16") && strstr(tx, "Model family: sdxl") &&
                   !strstr(to, "Original width") && !strstr(to, "Crop top") && !strstr(to, "Model family"),
               "parameters: size ids and family written for SDXL, not for SD1", "%s | %s", tx, to);
        free(tx);
        free(to);
    }
    img_gen_info g = {.prompt = "p", .steps = 20, .sampler = "DPM++ 2M", .schedule = "Karras", .cfg = 7, .seed = 1,
                      .width = 512, .height = 512, .denoise = -1};
    char *s = img_a1111_parameters(&g);
    CHECKF(s && !strcmp(s, "p\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512"),
           "a1111 text: Schedule type right after the sampler, as A1111 v1.10.1", "%s", s);
    free(s);
    g.sampler = "euler_a", g.schedule = NULL, g.spacing = "trailing";
    s = img_a1111_parameters(&g);
    CHECKF(s && !strcmp(s, "p\nSteps: 20, Sampler: euler_a, CFG scale: 7, Seed: 1, Size: 512x512, Timestep spacing: trailing"),
           "a1111 text: a diffusers run by its own name, its timestep spacing when asked", "%s", s);
    free(s);
}

static void test_exif(void)
{
    const char *txt = "naïve café ☕ 🚲 end";
    size_t n;
    uint8_t *x = img_exif_build(txt, &n);
    char *back = NULL;
    sd_err e;
    sd_err_clear(&e);
    CHECKF(x && !memcmp(x, "MM\0\x2a", 4) && img_exif_user_comment(x, n, &back, &e) == 0 && back &&
               !strcmp(back, txt), "exif UserComment round trip (UTF-16 with surrogates)", "%s", back);
    free(back);
    /* every truncation of the block: a clean error or "none", never a crash */
    int clean = 1;
    for (size_t k = 0; k < n; k++) {
        sd_err_clear(&e);
        char *o = NULL;
        int rc = img_exif_user_comment(x, k, &o, &e);
        if (rc == 0 && o && strlen(o) > strlen(txt)) clean = 0;
        if (rc == -1 && (o || e.code == SD_OK)) clean = 0;
        free(o);
    }
    CHECK(clean, "exif truncated blocks handled");
    /* the IFD count and offsets garbled */
    x[9] = 0xFF;
    sd_err_clear(&e);
    char *o = NULL;
    CHECK(img_exif_user_comment(x, n, &o, &e) == -1 && !o && e.code == SD_EINVAL, "exif bad IFD count refused");
    free(x);

    /* a 70000-character prompt must still fit in one JPEG APP1 segment */
    char *big = malloc(70001);
    memset(big, 'a', 70000);
    big[70000] = 0;
    big[32736] = (char)0xE2, big[32737] = (char)0x98, big[32738] = (char)0x95;   /* '☕' near the cut */
    x = img_exif_build(big, &n);
    CHECKF(x && n <= 65527, "exif capped to one APP1 segment", "%zu bytes", n);
    sd_err_clear(&e);
    back = NULL;
    CHECK(x && img_exif_user_comment(x, n, &back, &e) == 0 && back && strlen(back) > 32000 &&
              !strncmp(back, big, 1000), "exif long text read back (cut)");
    free(back);
    free(x);
    /* same text through a JPEG file */
    uint8_t px[8 * 8 * 3];
    memset(px, 128, sizeof px);
    img_encode_opts oj = {IMG_JPEG, 80, big};
    uint8_t *jpg;
    size_t nj;
    sd_err_clear(&e);
    back = NULL;
    CHECKF(img_encode(px, 8, 8, &oj, &jpg, &nj, &e) == 0 && img_read_parameters(jpg, nj, &back, &e) == 0 && back &&
               !strncmp(back, big, 30000), "jpeg with a 70000-char prompt", "%s", e.msg);
    free(back);
    free(jpg);
    free(big);
}

static void test_resize(void)
{
    sd_err e;
    sd_err_clear(&e);
    /* an init image too large is shrunk with PIL's Lanczos (as
     * A1111's resize_image), the same pixels as sd_resample gives */
    img_rgb g = {1500, 40, malloc(1500 * 40 * 3)};
    for (int i = 0; i < 1500 * 40 * 3; i++) g.px[i] = (uint8_t)((i * 37) ^ (i / 7));
    uint8_t *want = NULL;
    int rc = sd_resample(g.px, 1500, 40, 3, 1024, 27, SD_FILTER_LANCZOS, &want, &e);
    int ok = rc == 0 && img_fit_within(&g, 1024, &e) == 1 && g.width == 1024 && g.height == 27;
    for (int i = 0; ok && i < 1024 * 27 * 3; i++) ok &= g.px[i] == want[i];
    CHECK(ok, "fit 1500x40 -> 1024x27 is PIL's Lanczos, pixel for pixel");
    free(want);
    img_rgb_free(&g);
    /* fit within 1024 */
    img_rgb im = {2000, 1000, calloc(2000 * 1000, 3)};
    CHECK(img_fit_within(&im, 1024, &e) == 1 && im.width == 1024 && im.height == 512, "fit 2000x1000 -> 1024x512");
    img_rgb_free(&im);
    im = (img_rgb){1000, 3000, calloc(1000 * 3000, 3)};
    CHECK(img_fit_within(&im, 1024, &e) == 1 && im.width == 341 && im.height == 1024, "fit 1000x3000 -> 341x1024");
    img_rgb_free(&im);
    im = (img_rgb){1024, 700, calloc(1024 * 700, 3)};
    uint8_t *before = im.px;
    CHECK(img_fit_within(&im, 1024, &e) == 0 && im.px == before && im.width == 1024, "fit leaves 1024x700 alone");
    img_rgb_free(&im);
    im = (img_rgb){5000, 2, calloc(5000 * 2, 3)};
    CHECK(img_fit_within(&im, 1024, &e) == 1 && im.width == 1024 && im.height == 1, "fit keeps at least one row");
    img_rgb_free(&im);

}

int main(void)
{
    test_a1111();
    test_sampler_round_trip();
    test_exif();
    test_resize();
    return t_done();
}
