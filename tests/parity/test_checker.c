/* test_checker.c — an engine opened for validation only
 * (sd_engine_open_checker: issue 17 item 3, an API node without weights):
 *  - on tiny-sd1, tiny-sd2 and tiny-sdxl-s, single file and diffusers
 *    folder, the checker and sd_engine_load's engine give identical answers
 *    (rc, code, field, message) to sd_check_request, sd_check_prompts and
 *    sd_prompt_windows on good and bad requests: prompt windows (long, too
 *    long, negative too long), AND, prompt editing, embeddings, clip_skip
 *    from 0 to past the layers, LoRA fields and tags (known, unknown, one
 *    that does not fit, weight out of range, a malformed tag);
 *  - the same sd_engine_info, sd_engine_embedding list (one that fits,
 *    one too wide), sd_list_loras and sd_lora_hashes;
 *  - with a VAE override (--vae) the same info (VAE name, hash, parameters);
 *  - sd_generate and sd_encode_text on a checker refuse ("validation only"),
 *    naming "model";
 *  - with SD_CHECKER_MODEL=<a big .safetensors> it prints "#" lines with
 *    the RSS and time of opening a checker vs a full load (bench/README.md). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "t.h"
#include "../../src/engine/loader/st_write.h"
#include "../../src/engine/models/clip.h"
#include "../../src/engine/pipeline.h"
#include "../../src/engine/sd.h"

static char dir[] = "/tmp/sd_checker_XXXXXX";

static int same_str(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

static void write_tensors(const char *file, const stw_tensor *t, size_t n)
{
    const float *data[4];
    float *z = calloc(4 * 2048, sizeof *z);
    for (size_t i = 0; i < n; i++) data[i] = z;
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    sd_err err;
    sd_err_clear(&err);
    CHECKF(z && !stw_write_f32(path, t, data, n, &err), "fixture written", "%s: %s", file, err.msg);
    free(z);
}

/* dir/emb_<W>: emb1 (1 vector), emb3 (3), wide (W + 1) and, with W2 > 0,
 * xl (clip_l W + clip_g W2); dir/lora: the goldens' LoRAs and bad_fit,
 * whose module names nothing in any model. */
static void make_fixtures(int W, int W2, char *emb_dir, size_t size)
{
    char sub[64];
    snprintf(sub, sizeof sub, "emb_%d_%d", W, W2);
    snprintf(emb_dir, size, "%s/%s", dir, sub);
    mkdir(emb_dir, 0700);
    char f[128];
    stw_tensor e1 = {"emb_params", "F32", 2, {1, W}}, e3 = {"emb_params", "F32", 2, {3, W}},
               wide = {"emb_params", "F32", 2, {1, W + 1}};
    snprintf(f, sizeof f, "%s/emb1.safetensors", sub), write_tensors(f, &e1, 1);
    snprintf(f, sizeof f, "%s/emb3.safetensors", sub), write_tensors(f, &e3, 1);
    snprintf(f, sizeof f, "%s/wide.safetensors", sub), write_tensors(f, &wide, 1);
    if (W2 > 0) {
        stw_tensor xl[2] = {{"clip_g", "F32", 2, {2, W2}}, {"clip_l", "F32", 2, {2, W}}};
        snprintf(f, sizeof f, "%s/xl.safetensors", sub), write_tensors(f, xl, 2);
    }
}

static void make_lora_dir(void)
{
    static const char *const names[] = {"lora_a_kohya", "lora_a_peft", "lora_b_kohya", "lora_b_peft"};
    char p[800], target[800];
    snprintf(p, sizeof p, "%s/lora", dir);
    mkdir(p, 0700);
    for (size_t i = 0; i < 4; i++) {
        snprintf(target, sizeof target, "%s", t_ref("goldens/lora-tiny-sd1/lora/"));
        strncat(target, names[i], sizeof target - strlen(target) - 20);
        strcat(target, ".safetensors");
        snprintf(p, sizeof p, "%s/lora/%s.safetensors", dir, names[i]);
        CHECKF(!symlink(target, p), "LoRA linked", "%s", p);
    }
    stw_tensor bad[2] = {{"lora_unet_no_such_block_proj.lora_down.weight", "F32", 2, {2, 8}},
                         {"lora_unet_no_such_block_proj.lora_up.weight", "F32", 2, {8, 2}}};
    write_tensors("lora/bad_fit.safetensors", bad, 2);
}

static void same_err(const char *what, const char *model, int rc1, const sd_err *e1, int rc2, const sd_err *e2)
{
    CHECKF(rc1 == rc2 && e1->code == e2->code && !strcmp(e1->field, e2->field) && !strcmp(e1->msg, e2->msg),
           "checker answers as the loaded engine", "%s %s: rc %d/%d code %d/%d field '%s'/'%s' msg '%s' / '%s'",
           model, what, rc1, rc2, e1->code, e2->code, e1->field, e2->field, e1->msg, e2->msg);
}

typedef struct req {
    const char *prompt, *negative;
    int steps, clip_skip;
    sd_lora_spec lora;   /* name NULL: none */
} req;

static int compare_requests(sd_engine *full, sd_engine *chk, const char *model)
{
    char *longp = t_repeat("word, ", 100), *toolong = t_repeat("word ", 700);
    const req rq[] = {
        {"a cat", "", 20, 0, {0}},
        {longp, "blurry", 20, 0, {0}},
        {toolong, "", 20, 0, {0}},
        {"a cat", toolong, 20, 0, {0}},
        {"a cat :1.2 AND a dog :0.5", "", 20, 0, {0}},
        {"[a cat:a dog:0.5], [x|y]", "", 10, 0, {0}},
        {"emb1 emb3 xl wide a cat", "emb1", 20, 0, {0}},
        {"a <lora:lora_a_kohya:0.8> cat", "", 20, 0, {0}},
        {"a <lora:no_such_lora:1> cat", "", 20, 0, {0}},
        {"a <lora:bad_fit:1> cat", "", 20, 0, {0}},
        {"a cat <lora:lora_a_kohya", "", 20, 0, {0}},
        {"a cat", "", 20, 0, {"lora_b_peft", 0.5f}},
        {"a cat", "", 20, 0, {"lora_a_peft", 9.0f}},
        {"a cat", "", 20, 0, {"../etc/passwd", 1.0f}},
        {"a cat", "", 20, 1, {0}},
        {"a cat", "", 20, 2, {0}},
        {"a cat", "", 20, 3, {0}},
        {"a cat", "", 20, 5, {0}},
        {"a cat", "", 20, 12, {0}},
        {"a cat", "", 20, 13, {0}},
        {"a cat", "", 20, 99, {0}},
    };
    int bad = 0;   /* requests refused: the set must hold both kinds */
    for (size_t i = 0; i < sizeof rq / sizeof *rq; i++) {
        sd_gen_params p = {.prompt = rq[i].prompt, .negative = rq[i].negative, .steps = rq[i].steps,
                           .clip_skip = rq[i].clip_skip, .n = 1, .width = 64, .height = 64, .cfg = 7};
        if (rq[i].lora.name) p.loras = &rq[i].lora, p.n_loras = 1;
        sd_err e1, e2;
        char what[64];
        sd_err_clear(&e1), sd_err_clear(&e2);
        snprintf(what, sizeof what, "request %zu (sd_check_request)", i);
        int r1 = sd_check_request(full, &p, &e1), r2 = sd_check_request(chk, &p, &e2);
        same_err(what, model, r1, &e1, r2, &e2);
        bad += r1 != 0;
        sd_err_clear(&e1), sd_err_clear(&e2);
        snprintf(what, sizeof what, "request %zu (sd_check_prompts)", i);
        same_err(what, model, sd_check_prompts(full, p.prompt, p.negative, p.steps, &e1), &e1,
                 sd_check_prompts(chk, p.prompt, p.negative, p.steps, &e2), &e2);
        int w1 = -1, w2 = -2;
        size_t t1 = 1, t2 = 2;
        sd_err_clear(&e1), sd_err_clear(&e2);
        r1 = sd_prompt_windows(full, p.prompt, &w1, &t1, &e1);
        r2 = sd_prompt_windows(chk, p.prompt, &w2, &t2, &e2);
        snprintf(what, sizeof what, "request %zu (sd_prompt_windows)", i);
        same_err(what, model, r1, &e1, r2, &e2);
        CHECKF(r1 || (w1 == w2 && t1 == t2), "checker counts the same windows and tokens", "%s request %zu: %d/%d "
               "windows, %zu/%zu tokens", model, i, w1, w2, t1, t2);
        char h1[512], h2[512];
        sd_lora_hashes(full, &p, h1, sizeof h1);
        sd_lora_hashes(chk, &p, h2, sizeof h2);
        CHECKF(!strcmp(h1, h2), "checker gives the same LoRA hashes", "%s request %zu: '%s' / '%s'", model, i, h1, h2);
    }
    free(longp);
    free(toolong);
    return bad;
}

static void compare_info(sd_engine *full, sd_engine *chk, const char *model)
{
    sd_model_info a, b;
    sd_engine_info(full, &a);
    sd_engine_info(chk, &b);
    CHECKF(same_str(a.family, b.family) && same_str(a.prediction, b.prediction) && a.zero_snr == b.zero_snr &&
           a.latent_channels == b.latent_channels && a.vae_scale == b.vae_scale && a.params == b.params &&
           !strcmp(a.hash, b.hash) && same_str(a.name, b.name) && same_str(a.precision, b.precision) &&
           same_str(a.vae_name, b.vae_name) && same_str(a.vae_hash, b.vae_hash) && a.native_size == b.native_size,
           "checker's sd_engine_info is the loaded engine's", "%s: family %s/%s params %lld/%lld hash %s/%s "
           "precision %s/%s latent %d/%d scale %d/%d", model, a.family, b.family, (long long)a.params,
           (long long)b.params, a.hash, b.hash, a.precision, b.precision, a.latent_channels, b.latent_channels,
           a.vae_scale, b.vae_scale);
    int n = 0, same = 1;
    sd_embedding_info x, y;
    for (;; n++) {
        int r1 = sd_engine_embedding(full, n, &x), r2 = sd_engine_embedding(chk, n, &y);
        if (r1 != r2) { same = 0; break; }
        if (r1) break;
        same &= same_str(x.name, y.name) && x.vectors == y.vectors && x.width == y.width && x.fits == y.fits &&
                same_str(x.error, y.error);
    }
    CHECKF(same && n >= 3, "checker lists the same embeddings", "%s: %d listed, same %d", model, n, same);
    sd_lora_info l1[8], l2[8];
    sd_err e1, e2;
    sd_err_clear(&e1), sd_err_clear(&e2);
    int n1 = sd_list_loras(full, l1, 8, &e1), n2 = sd_list_loras(chk, l2, 8, &e2);
    same = n1 == n2 && n1 == 5;
    for (int i = 0; same && i < n1; i++)
        same = !strcmp(l1[i].name, l2[i].name) && l1[i].size == l2[i].size && l1[i].rank == l2[i].rank &&
               l1[i].modules == l2[i].modules && !strcmp(l1[i].fits, l2[i].fits) && !strcmp(l1[i].hash, l2[i].hash);
    CHECKF(same, "checker lists the same LoRAs (sizes, ranks, fits, hashes)", "%s: %d / %d", model, n1, n2);
    int fit = 0;
    for (int i = 0; i < n1 && i < 8; i++) fit += l1[i].fits[0] == 0;
    CHECKF(fit < n1, "a LoRA that does not fit is listed as such", "%s: %d of %d fit", model, fit, n1);
}

static void refuses_to_run(sd_engine *chk, const char *model)
{
    sd_gen_params p = {.prompt = "a cat", .steps = 2, .n = 1, .width = 64, .height = 64, .cfg = 7};
    sd_image img = {0};
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_generate(chk, &p, &img, &err);
    CHECKF(rc && err.code == SD_EINVAL && !strcmp(err.field, "model") && strstr(err.msg, "validation only") &&
           !img.rgb, "sd_generate on a checker refuses", "%s: rc %d code %d field '%s' msg %s", model, rc, err.code,
           err.field, err.msg);
    float *ctx = NULL;
    int T, W;
    sd_err_clear(&err);
    rc = sd_encode_text(chk, &p, &ctx, &T, &W, &err);
    CHECKF(rc && !ctx && strstr(err.msg, "validation only"), "sd_encode_text on a checker refuses", "%s: %s", model,
           err.msg);
    CHECK(sd_engine_is_checker(chk), "sd_engine_is_checker says so");
}

static void one_model(const char *rel)
{
    const char *model = t_ref(rel);
    char mp[800], emb[900], ld[900];
    snprintf(mp, sizeof mp, "%s", model);
    snprintf(ld, sizeof ld, "%s/lora", dir);
    sd_load_opts o = {.model_path = mp, .precision = "fp32", .lora_dir = ld, .threads = 1};
    sd_err err;
    sd_err_clear(&err);
    sd_engine *full = sd_engine_load(&o, &err);
    CHECKF(full != NULL, "the model loads", "%s: %s", rel, err.msg);
    if (!full) return;
    struct sd_clip *c2 = sd_engine_clip_at(full, 1);
    make_fixtures(clip_width(sd_engine_clip(full)), c2 ? clip_width(c2) : 0, emb, sizeof emb);
    sd_engine_free(full);
    o.embeddings_dir = emb;
    full = sd_engine_load(&o, &err);
    sd_engine *chk = full ? sd_engine_open_checker(&o, &err) : NULL;
    CHECKF(full && chk, "engine and checker open with embeddings and LoRAs", "%s: %s", rel, err.msg);
    if (full && chk) {
        CHECK(!sd_engine_is_checker(full), "a loaded engine is not a checker");
        compare_info(full, chk, rel);
        int bad = compare_requests(full, chk, rel);
        CHECKF(bad >= 5 && bad < 21, "the requests hold good and refused ones", "%s: %d refused", rel, bad);
        refuses_to_run(chk, rel);
    }
    sd_engine_free(chk);
    sd_engine_free(full);
}

/* --vae: the checker reads the override's header too (its name, hash,
 * parameters in sd_engine_info). */
static void vae_override(void)
{
    char mp[800], vp[800];
    snprintf(mp, sizeof mp, "%s", t_ref("models/tiny-sd1-fp16.safetensors"));
    snprintf(vp, sizeof vp, "%s", t_ref("models/tiny-sd1/vae"));
    sd_load_opts o = {.model_path = mp, .vae_path = vp, .precision = "fp32", .threads = 1};
    sd_err err;
    sd_err_clear(&err);
    sd_engine *full = sd_engine_load(&o, &err), *chk = full ? sd_engine_open_checker(&o, &err) : NULL;
    CHECKF(full && chk, "engine and checker open with a VAE override", "%s", err.msg);
    if (full && chk) {
        sd_model_info a, b;
        sd_engine_info(full, &a);
        sd_engine_info(chk, &b);
        CHECKF(a.vae_name && same_str(a.vae_name, b.vae_name) && same_str(a.vae_hash, b.vae_hash) &&
               a.params == b.params && a.latent_channels == b.latent_channels,
               "--vae: the checker's info is the loaded engine's", "vae %s/%s hash %s/%s params %lld/%lld", a.vae_name,
               b.vae_name, a.vae_hash, b.vae_hash, (long long)a.params, (long long)b.params);
    }
    sd_engine_free(chk);
    sd_engine_free(full);
}

/* VmRSS of this process in KiB. */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* SD_CHECKER_MODEL: RSS and time of a checker, then of a full load. */
static void measure(const char *path)
{
    sd_load_opts o = {.model_path = path, .precision = "fp32"};
    sd_err err;
    sd_err_clear(&err);
    for (int checker = 1; checker >= 0; checker--) {
        long r0 = rss_kib();
        size_t h0 = mallinfo2().uordblks;
        double t0 = now_s();
        sd_engine *e = checker ? sd_engine_open_checker(&o, &err) : sd_engine_load(&o, &err);
        double dt = now_s() - t0;
        long r1 = rss_kib();
        size_t h1 = mallinfo2().uordblks;
        CHECKF(e != NULL, "the measured model opens", "%s", err.msg);
        printf("# %s %s: %.3f s, RSS +%ld KiB (%ld MiB in all), heap in use +%zu KiB\n",
               checker ? "checker" : "full load", path, dt, r1 - r0, r1 / 1024, (h1 - h0) / 1024);
        sd_engine_free(e);
    }
}

int main(void)
{
    if (!t_have_ref()) {
        printf("ok - skipped: no reference data\n");
        return t_done();
    }
    CHECK(mkdtemp(dir) != NULL, "temporary folder");
    make_lora_dir();
    static const char *const models[] = {"models/tiny-sd1-fp16.safetensors", "models/tiny-sd1",
                                         "models/tiny-sd2-fp16.safetensors", "models/tiny-sd2",
                                         "models/tiny-sdxl-s-fp16.safetensors", "models/tiny-sdxl-s"};
    const char *big = getenv("SD_CHECKER_MODEL");
    if (big && *big) measure(big);   /* first: a fresh heap */
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) one_model(models[i]);
    vae_override();
    t_rmtree(dir);
    return t_done();
}
