/* test_lora_apply.c — LoRA per request through sd_generate on tiny-sd1
 * (lora/apply.c and the weight seam), replaying the goldens' start noise
 * (goldens/lora-tiny-sd1/pipe/, Euler 4 steps, guidance 7.5):
 *  - every pipe/txt2img_euler_4_<case> final latent within 1e-4 of its
 *    largest value and image within 1/255 at fp32, kohya and PEFT files,
 *    scaled and stacked, chosen by the `loras` list and by prompt tags;
 *  - a run without LoRA after one with is bit-identical to the run before
 *    any LoRA (restore), at fp32 and at bf16x2;
 *  - the same set twice merges nothing the second time (stats);
 *  - tag weights spelt as Python's float() takes them (" 0.7_0 ", 5e-1,
 *    fullwidth digits) give the goldens too;
 *  - refusals: unknown name, 17 stacked, weight out of range, a bad name,
 *    malformed tags (a hex weight too), a tiny-sd1 LoRA on tiny-sd2 (field
 *    "loras"/"prompt"),
 *    before queueing (sd_check_request) and in sd_generate;
 *  - every allocation of an apply failing in turn: SD_ENOMEM or success,
 *    and the base model's image after it, bit for bit;
 *  - SD2's single file, whose text encoder q/k/v are views into one packed
 *    in_proj: a LoRA on them gives the diffusers folder's result, and
 *    restores bit for bit;
 *  - a LoRA file rewritten in place (same inode, size and mtime), truncated,
 *    replaced and removed after its first use: each use reads it as it is
 *    now (the same set included), refusals name it, the listing and the
 *    Lora hashes follow; the listing is in A1111's order.
 * Prints "metric lora_apply/..." lines and "#" lines with apply times. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "npy.h"
#include "t.h"
#include "../../src/base/alloc.h"
#include "../../src/base/sha256.h"
#include "../../src/engine/loader/st_write.h"
#include "../../src/engine/lora/apply.h"
#include "../../src/engine/models/clip.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/ops/ops.h"
#include "../../src/engine/pipeline.h"

#define LDIR "goldens/lora-tiny-sd1/"
#define PROMPT "a photograph of an astronaut riding a horse"

static npy init_noise;

static void start_noise(void *ud, uint64_t seed, uint64_t draw, float *out, size_t n)
{
    int *bad = ud;
    if (draw != 0 || n != init_noise.n) { *bad = 1; memset(out, 0, n * sizeof *out); return; }
    memcpy(out, init_noise.f, n * sizeof *out);
}

typedef struct run {
    int rc;
    sd_err err;
    float lat[4 * 8 * 6];
    float img[3 * 64 * 48];
    uint8_t rgb[64 * 48 * 3];
} run;

static run R;   /* the last run */

static int gen(sd_engine *e, const char *prompt, const sd_lora_spec *l, int n)
{
    sd_gen_params p = {0};
    int bad = 0;
    p.prompt = prompt;
    p.negative = "blurry, low quality";
    p.width = 48; p.height = 64; p.steps = 4; p.cfg = 7.5f; p.n = 1; p.seed = 1234;
    p.sampler = SD_SAMPLER_EULER;
    p.noise = start_noise; p.noise_ud = &bad;
    p.loras = l; p.n_loras = n;
    sd_image out = {0};
    sd_gen_debug dbg = {.final_latent = R.lat, .image = R.img};
    sd_err_clear(&R.err);
    R.rc = sd_generate_debug(e, &p, &out, &dbg, &R.err);
    if (!R.rc) memcpy(R.rgb, out.rgb, sizeof R.rgb);
    sd_image_free(&out);
    return R.rc || bad ? -1 : 0;
}

static sd_engine *load_dir(const char *model, const char *precision, const char *dir)
{
    char mp[1024], ld[1024];
    snprintf(mp, sizeof mp, "%s", t_ref(model));
    snprintf(ld, sizeof ld, "%s", dir ? dir : t_ref(LDIR "lora"));
    sd_load_opts o = {.model_path = mp, .precision = precision, .lora_dir = ld};
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    CHECKF(e != NULL, "load", "%s: %s", model, err.msg);
    return e;
}

static sd_engine *load(const char *model, const char *precision) { return load_dir(model, precision, NULL); }

/* The last run against pipe/txt2img_euler_4_<kase> (strict = 0: the
 * metric line only). */
static void judge_at(const char *kase, const char *label, int strict)
{
    char path[256], name[300];
    npy lat = {0}, img = {0};
    snprintf(path, sizeof path, LDIR "pipe/txt2img_euler_4_%s/final_latent.npy", kase);
    int ok = !npy_load(t_ref(path), &lat);
    snprintf(path, sizeof path, LDIR "pipe/txt2img_euler_4_%s/image.npy", kase);
    ok = ok && !npy_load(t_ref(path), &img) && lat.n == 4 * 8 * 6 && img.n == 3 * 64 * 48;
    snprintf(name, sizeof name, "lora_apply/%s/%s", kase, label);
    if (!ok || R.rc) {
        CHECKF(0, name, "goldens %s, run: %s", ok ? "read" : "missing", R.err.msg);
    } else {
        double dl = npy_maxdiff(R.lat, lat.f, lat.n), tol = 1e-4 * npy_maxabs(lat.f, lat.n);
        double di = npy_maxdiff(R.img, img.f, img.n) / 2;
        printf("metric %s final_latent_maxabs %.3g tol %.3g image_maxabs_01 %.3g tol %.3g\n", name, dl, tol, di, 1.0 / 255);
        if (strict) CHECKF(dl <= tol && di <= 1.0 / 255, name, "latent %.3g (tol %.3g) image %.3g (tol 1/255)", dl, tol, di);
    }
    npy_free(&lat);
    npy_free(&img);
}

static void judge(const char *kase, const char *label) { judge_at(kase, label, 1); }

static size_t merges(sd_engine *e)
{
    lora_stats st;
    sd_engine_lora_stats(e, &st);
    return st.merges;
}

static double last_ms(sd_engine *e)
{
    lora_stats st;
    sd_engine_lora_stats(e, &st);
    return st.last_ms;
}

/* The weights the engine holds after an apply (ops_weight_read of the
 * lazily patched handles) are merged/a_m0.7/'s, within 1e-6: two UNet
 * weights and a text-encoder one. */
static void held_weights(sd_engine *e)
{
    static const char *names[] = {"unet.down_blocks.1.resnets.0.conv1.weight",
                                  "unet.up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_out.0.weight",
                                  "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight"};
    sd_lora_spec a[] = {{"lora_a_kohya", 0.7f}};
    sd_gen_params p = {.loras = a, .n_loras = 1};
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_engine_apply_loras(e, &p, &err);
    double worst = rc ? 1e9 : 0;
    for (int i = 0; i < 3 && !rc; i++) {
        char path[300];
        snprintf(path, sizeof path, LDIR "merged/a_m0.7/%s.npy", names[i]);
        npy g;
        ops_weight *h = !strncmp(names[i], "unet.", 5) ? unet_weight(sd_engine_unet(e), names[i] + 5)
                                                       : clip_weight(sd_engine_clip(e), names[i]);
        if (!h || npy_load(t_ref(path), &g)) { worst = 1e9; continue; }
        float *w = malloc(g.n * sizeof *w);
        double d = w && ops_weight_numel(h) == g.n && !ops_weight_read(h, w) ? npy_maxdiff(w, g.f, g.n) : 1e9;
        if (d > worst) worst = d;
        free(w);
        npy_free(&g);
    }
    CHECKF(worst <= 1e-6, "lora_apply: the weights held after an apply are merged/a_m0.7's", "%s max diff %.3g",
           err.msg, worst);
}

static void parity(sd_engine *e, run *base)
{
    const char *nm[2] = {"kohya", "peft"};
    for (int k = 0; k < 2; k++) {
        char a[32], b[32];
        snprintf(a, sizeof a, "lora_a_%s", nm[k]);
        snprintf(b, sizeof b, "lora_b_%s", nm[k]);
        sd_lora_spec s07[] = {{a, 0.7f}}, s10[] = {{a, 1.0f}}, st[] = {{a, 0.7f}, {b, 0.5f}};
        gen(e, PROMPT, s07, 1);
        judge("a_m0.7", nm[k]);
        printf("# %s: first apply of a (129 modules) %.2f ms\n", nm[k], last_ms(e));
        size_t m0 = merges(e);
        gen(e, PROMPT, s07, 1);
        printf("# %s: same set again %.3f ms\n", nm[k], last_ms(e));
        CHECKF(merges(e) == m0 && m0 > 0, "lora_apply: the same set twice merges nothing the second time",
               "%s: merges %zu then %zu", nm[k], m0, merges(e));
        gen(e, PROMPT, s10, 1);
        judge("a_m1.0", nm[k]);
        gen(e, PROMPT, st, 2);
        judge("a_m0.7_b_m0.5", nm[k]);
        gen(e, PROMPT, NULL, 0);
        CHECKF(!R.rc && !memcmp(R.lat, base->lat, sizeof R.lat) && !memcmp(R.rgb, base->rgb, sizeof R.rgb),
               "lora_apply: no LoRA after a stack is bit-identical to never applied", "%s: %s", nm[k], R.err.msg);
        /* the same LoRAs as prompt tags (weight given, and the default 1); then Python's float() spellings
         * of 0.7, 0.5 and 1 (A1111's tag parser): blanks, an underscore, an exponent, fullwidth digits and
         * a no-break space (%1$s: a, %2$s: b) */
        static const struct { const char *fmt, *golden, *label; } tags[] = {
            {"a photograph of <lora:%1$s:0.7>an astronaut riding a horse<lora:%2$s:0.5>", "a_m0.7_b_m0.5", "tags"},
            {PROMPT "<lora:%1$s>", "a_m1.0", "tag without weight"},
            {"a photograph of <lora:%1$s: 0.7_0 >an astronaut riding a horse<lora:%2$s:5e-1>", "a_m0.7_b_m0.5",
             "tags in Python float() spellings"},
            {PROMPT "<lora:%1$s:\xef\xbc\x91\xc2\xa0>", "a_m1.0", "tag weight in fullwidth digits"},
        };
        for (size_t t = 0; t < sizeof tags / sizeof tags[0]; t++) {
            char pr[256];
            snprintf(pr, sizeof pr, tags[t].fmt, a, b);
            gen(e, pr, NULL, 0);
            judge(tags[t].golden, tags[t].label);
        }
    }
}

/* One refusal: sd_check_request and sd_generate both say field. */
static void refused(sd_engine *e, const char *prompt, const sd_lora_spec *l, int n, const char *field, const char *what)
{
    sd_gen_params p = {.prompt = prompt, .width = 48, .height = 64, .steps = 4, .cfg = 7.5f, .n = 1, .loras = l, .n_loras = n};
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_check_request(e, &p, &err);
    char name[200];
    snprintf(name, sizeof name, "lora_apply: refused before queueing: %s", what);
    CHECKF(rc && err.code == SD_EINVAL && !strcmp(err.field, field), name, "rc %d field '%s' %s", rc, err.field, err.msg);
    gen(e, prompt, l, n);
    snprintf(name, sizeof name, "lora_apply: refused by sd_generate: %s", what);
    CHECKF(R.rc && R.err.code == SD_EINVAL && !strcmp(R.err.field, field), name, "field '%s' %s", R.err.field, R.err.msg);
}

static void refusals(sd_engine *e)
{
    sd_lora_spec unk[] = {{"nosuch", 1}}, w5[] = {{"lora_a_kohya", 5}}, wnan[] = {{"lora_a_kohya", NAN}},
                 path[] = {{"../lora/lora_a_kohya", 1}}, many[17];
    for (int i = 0; i < 17; i++) many[i] = (sd_lora_spec){"lora_a_kohya", 0.1f};
    refused(e, PROMPT, unk, 1, "loras", "unknown LoRA");
    refused(e, PROMPT, w5, 1, "loras", "weight 5");
    refused(e, PROMPT, wnan, 1, "loras", "weight NaN");
    refused(e, PROMPT, path, 1, "loras", "a path for a name");
    refused(e, PROMPT, many, 17, "loras", "17 stacked");
    refused(e, "x <lora:lora_a_kohya", NULL, 0, "prompt", "tag without '>'");
    refused(e, "x <lora:lora_a_kohya:abc>", NULL, 0, "prompt", "tag weight abc");
    refused(e, "x <lora:lora_a_kohya:>", NULL, 0, "prompt", "tag with empty weight");
    refused(e, "x <lora:nosuch:0.5>", NULL, 0, "loras", "tag naming an unknown LoRA");
    /* a tag's weight is read as A1111 reads it, by Python's float(): no hex; inf and nan are numbers the range refuses */
    refused(e, "x <lora:lora_a_kohya:0x1p1>", NULL, 0, "prompt", "tag weight 0x1p1 (hex: not Python's float())");
    refused(e, "x <lora:lora_a_kohya:nan(1)>", NULL, 0, "prompt", "tag weight nan(1)");
    refused(e, "x <lora:lora_a_kohya:1__0>", NULL, 0, "prompt", "tag weight 1__0");
    refused(e, "x <lora:lora_a_kohya:inf>", NULL, 0, "prompt", "tag weight inf (out of range)");
    refused(e, "x <lora:lora_a_kohya:4.0000001>", NULL, 0, "prompt", "tag weight 4.0000001 (out of range, not rounded to 4)");
    char big[17 * 32 + 8] = "x";
    for (int i = 0; i < 17; i++) strcat(big, "<lora:lora_a_kohya:0.1>");
    refused(e, big, NULL, 0, "loras", "17 stacked tags");
}

/* Each allocation of an apply failing in turn: SD_ENOMEM (or success), and
 * the base image after it, bit for bit. */
static void out_of_memory(sd_engine *e, const run *base)
{
    sd_lora_spec st[] = {{"lora_a_kohya", 0.7f}, {"lora_b_peft", 0.5f}};
    int bad = 0, tried = 0;
    for (unsigned long k = 1; k < 400; k += k < 12 ? 1 : t_subset() ? 97 : 23) {
        gen(e, PROMPT, NULL, 0);
        sd_alloc_fail_at(k);
        gen(e, PROMPT, st, 2);
        int hit = sd_alloc_failed();
        sd_alloc_fail_at(0);
        if (hit && (!R.rc || R.err.code != SD_ENOMEM) && R.rc) bad++;
        gen(e, PROMPT, NULL, 0);
        if (R.rc || memcmp(R.rgb, base->rgb, sizeof R.rgb)) bad++;
        tried++;
    }
    CHECKF(bad == 0, "lora_apply: an allocation failing in an apply gives SD_ENOMEM and leaves the base model",
           "%d of %d", bad, tried);
}

static void at_bf16x2(void)
{
    if (!ops_cpu_bf16()) {
        printf("# no bf16 kernels on this CPU (below AVX-512): the bf16x2 restore checks skipped\n");
        return;
    }
    sd_engine *e = load("models/tiny-sd1", "bf16x2");
    if (!e) return;
    static run base;
    sd_lora_spec st[] = {{"lora_a_kohya", 0.7f}, {"lora_b_kohya", 0.5f}};
    gen(e, PROMPT, NULL, 0);
    base = R;
    gen(e, PROMPT, st, 2);
    double d = npy_maxdiff(R.lat, base.lat, 4 * 8 * 6);
    CHECKF(!R.rc && d > 1e-3, "lora_apply: bf16x2: the stack changes the picture", "%s: latent moved %.3g", R.err.msg, d);
    judge_at("a_m0.7_b_m0.5", "bf16x2", 0);   /* reported: bf16x2 is not fp32 */
    gen(e, PROMPT, NULL, 0);
    CHECKF(!R.rc && !memcmp(R.lat, base.lat, sizeof R.lat) && !memcmp(R.rgb, base.rgb, sizeof R.rgb),
           "lora_apply: bf16x2: no LoRA after a stack is bit-identical to never applied", "%s", R.err.msg);
    sd_engine_free(e);
}

static void other_family(void)
{
    sd_engine *e = load("models/tiny-sd2", "fp32");
    if (!e) return;
    sd_lora_spec a[] = {{"lora_a_kohya", 1}}, b[] = {{"lora_a_peft", 1}};
    refused(e, "x", a, 1, "loras", "a tiny-sd1 kohya LoRA on tiny-sd2");
    refused(e, "x", b, 1, "loras", "a tiny-sd1 PEFT LoRA on tiny-sd2");
    sd_engine_free(e);
}

static void listing(sd_engine *e)
{
    sd_lora_info li[8];
    sd_err err;
    sd_err_clear(&err);
    int n = sd_list_loras(e, li, 8, &err), ok = n == 4;
    for (int i = 0; i < n && i < 8; i++)
        ok = ok && !strncmp(li[i].name, "lora_", 5) && li[i].rank == 4 && li[i].modules == 129 && !li[i].fits[0] &&
             strlen(li[i].hash) == 12 && li[i].size > 1000;
    CHECKF(ok, "lora_apply: the LoRA directory lists 4 LoRAs, rank 4, 129 modules, fitting, hashed", "n %d %s", n, err.msg);
}

/* ---- the LoRA folder: files that change under the running engine; the listing ---- */

static int put_file(const char *path, const unsigned char *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(d, 1, n, f) == n;
    if (f) ok = !fclose(f) && ok;
    return ok ? 0 : -1;
}

/* path's bytes replaced by d (same length) in place: same inode and size,
 * and the old mtime put back, so only the ctime tells. */
static int rewrite_in_place(const char *path, const unsigned char *d, size_t n)
{
    struct stat before;
    int fd = stat(path, &before) ? -1 : open(path, O_WRONLY);
    if (fd < 0) return -1;
    int ok = write(fd, d, n) == (ssize_t)n && !fsync(fd);
    struct timespec ts[2] = {before.st_atim, before.st_mtim};
    ok = !futimens(fd, ts) && ok;
    close(fd);
    return ok ? 0 : -1;
}

static void sha12(const unsigned char *d, size_t n, char out[13])
{
    unsigned char h[32];
    sd_sha256_ctx c;
    sd_sha256_init(&c);
    sd_sha256_update(&c, d, n);
    sd_sha256_final(&c, h);
    for (int i = 0; i < 6; i++) snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static void hashes_of(sd_engine *e, const sd_lora_spec *l, int n, char *out, size_t size)
{
    sd_gen_params p = {.prompt = PROMPT, .loras = l, .n_loras = n};
    sd_lora_hashes(e, &p, out, size);
}

/* The LoRA folder's file x.safetensors is rewritten in place (same size,
 * inode and mtime), truncated, replaced and removed while the engine runs:
 * each use reads it as it is now (the applied set too), GET /loras says
 * so, and "Lora hashes" names the file the image was made with. */
static void changed_files(const run *base)
{
    char dir[] = "/tmp/sd-lora-change-XXXXXX", x[300], y[300], tmp[300];
    size_t na = 0, nb = 0;
    unsigned char *a = t_slurp(t_ref(LDIR "lora/lora_a_kohya.safetensors"), &na);
    unsigned char *b = t_slurp(t_ref(LDIR "lora/lora_b_kohya.safetensors"), &nb);
    if (!a || !b || na != nb || !mkdtemp(dir)) {
        CHECKF(0, "lora_apply: changed files: set up", "a %zu b %zu bytes", na, nb);
        free(a); free(b);
        return;
    }
    snprintf(x, sizeof x, "%s/x.safetensors", dir);
    snprintf(y, sizeof y, "%s/y.safetensors", dir);
    snprintf(tmp, sizeof tmp, "%s/x.new", dir);
    char ha[13], hb[13], hs[256], want[256];
    sha12(a, na, ha);
    sha12(b, nb, hb);
    sd_engine *e = put_file(x, a, na) || put_file(y, a, na) ? NULL : load_dir("models/tiny-sd1", "fp32", dir);
    if (!e) { free(a); free(b); return; }
    sd_lora_spec x07[] = {{"x", 0.7f}}, yx[] = {{"y", 0.7f}, {"x", 0.5f}};
    gen(e, PROMPT, x07, 1);
    judge("a_m0.7", "x.safetensors holding lora_a");
    static run first;
    first = R;
    hashes_of(e, x07, 1, hs, sizeof hs);
    snprintf(want, sizeof want, "x: %s", ha);
    CHECKF(!strcmp(hs, want), "lora_apply: Lora hashes of x = lora_a's", "'%s' want '%s'", hs, want);

    /* 1. rewritten in place with lora_b's bytes: size, inode and mtime as they were */
    struct stat s0, s1;
    int same_looks = !stat(x, &s0) && !rewrite_in_place(x, b, nb) && !stat(x, &s1) && s0.st_ino == s1.st_ino &&
                     s0.st_size == s1.st_size && s0.st_mtim.tv_sec == s1.st_mtim.tv_sec &&
                     s0.st_mtim.tv_nsec == s1.st_mtim.tv_nsec;
    CHECKF(same_looks, "lora_apply: x rewritten in place keeps its inode, size and mtime (the test's premise)", "%s", x);
    size_t m0 = merges(e);
    gen(e, PROMPT, x07, 1);
    CHECKF(!R.rc && memcmp(R.rgb, first.rgb, sizeof R.rgb) && merges(e) > m0,
           "lora_apply: the same set over a rewritten file is applied again, with the new weights",
           "%s; merges %zu -> %zu, pixels %s", R.err.msg, m0, merges(e), memcmp(R.rgb, first.rgb, sizeof R.rgb) ? "differ" : "equal");
    hashes_of(e, x07, 1, hs, sizeof hs);
    snprintf(want, sizeof want, "x: %s", hb);
    CHECKF(!strcmp(hs, want), "lora_apply: Lora hashes of the rewritten x = lora_b's", "'%s' want '%s'", hs, want);
    gen(e, PROMPT, yx, 2);
    judge("a_m0.7_b_m0.5", "y = lora_a, x rewritten to lora_b");

    /* 2. truncated: refused before queueing and by sd_generate, listed as not fitting; the base model after */
    if (truncate(x, 1000)) CHECKF(0, "lora_apply: truncate x", "%s", x);
    refused(e, PROMPT, x07, 1, "loras", "x.safetensors truncated after its first use");
    CHECKF(strstr(R.err.msg, "'x'") != NULL, "lora_apply: the truncated file's refusal names it", "%s", R.err.msg);
    sd_lora_info li[16];
    sd_err err;
    sd_err_clear(&err);
    int n = sd_list_loras(e, li, 16, &err);
    CHECKF(n == 2 && !strcmp(li[0].name, "x") && li[0].fits[0] && li[0].size == 1000 && !li[1].fits[0],
           "lora_apply: the listing says the truncated x does not fit, y does", "n %d x: size %lld fits '%s'", n,
           n > 0 ? (long long)li[0].size : -1LL, n > 0 ? li[0].fits : "");
    gen(e, PROMPT, NULL, 0);
    CHECKF(!R.rc && !memcmp(R.rgb, base->rgb, sizeof R.rgb), "lora_apply: no LoRA after the refusal: the base model",
           "%s", R.err.msg);

    /* 3. replaced by a new file (rename: another inode) holding lora_a again, then removed */
    int moved = !put_file(tmp, a, na) && !rename(tmp, x);
    gen(e, PROMPT, x07, 1);
    judge("a_m0.7", "x replaced by lora_a again");
    CHECKF(moved && !memcmp(R.rgb, first.rgb, sizeof R.rgb), "lora_apply: x replaced by lora_a: the first pixels again",
           "%s", R.err.msg);
    unlink(x);
    refused(e, PROMPT, x07, 1, "loras", "x.safetensors removed after its use");
    CHECKF(strstr(R.err.msg, "unknown LoRA 'x'") != NULL, "lora_apply: a removed file is an unknown LoRA", "%s",
           R.err.msg);
    unlink(y);
    rmdir(dir);
    sd_engine_free(e);
    free(a);
    free(b);
}

/* A folder's listing is in A1111's order whatever order readdir gives,
 * and one cut short gives the first names. */
static void sorted_listing(void)
{
    char dir[] = "/tmp/sd-lora-sorted-XXXXXX", p[300];
    size_t na = 0;
    unsigned char *a = t_slurp(t_ref(LDIR "lora/lora_a_kohya.safetensors"), &na);
    static const char *made[] = {"k", "c", "Zeta", "a", "q", "m", "B", "e", "x2", "x10", "x010b", "b_1", "b-1", "y", "b"};
    int ok = a && mkdtemp(dir);
    for (size_t i = 0; ok && i < sizeof made / sizeof made[0]; i++) {
        snprintf(p, sizeof p, "%s/%s.safetensors", dir, made[i]);
        ok = !put_file(p, a, na);
    }
    sd_engine *e = ok ? load_dir("models/tiny-sd1", "fp32", dir) : NULL;
    if (e) {
        sd_lora_info li[16];
        sd_err err;
        sd_err_clear(&err);
        char names[512] = "";
        int n = sd_list_loras(e, li, 16, &err);
        for (int i = 0; i < n && i < 16; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%.60s ", li[i].name);
        /* (as A1111 v1.10.1 sorts a folder: modules/util.py natural_sort_key, run in Python on these
         * names; its ties, B and b, in byte order) */
        CHECKF(n == 15 && !strcmp(names, "a b-1 B b b_1 c e k m q x2 x10 x010b y Zeta "),
               "lora_apply: the listing is in A1111's order (numbers by value, case folded; ties in byte order)",
               "n %d: %s", n, names);
        sd_err_clear(&err);
        n = sd_list_loras(e, li, 3, &err);
        CHECKF(n == 15 && !strcmp(li[0].name, "a") && !strcmp(li[2].name, "B"),
               "lora_apply: a listing cut short gives the first names in that order", "n %d", n);
        sd_engine_free(e);
    } else {
        CHECKF(0, "lora_apply: sorted listing: set up", "%s", dir);
    }
    for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
        snprintf(p, sizeof p, "%s/%s.safetensors", dir, made[i]);
        unlink(p);
    }
    rmdir(dir);
    free(a);
}

/* A rank-2 kohya LoRA on layer 0's self-attention q/k/v/out of a W-wide
 * text encoder, written to dir/te_qkv.safetensors. */
static int write_te_lora(const char *dir, int W)
{
    static const char *mods[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    char names[12][128];
    stw_tensor t[12];
    float *data[12], alpha = 2;
    const float *cdata[12];
    uint32_t x = 12345;
    for (int m = 0; m < 4; m++) {
        const char *part[3] = {"lora_down.weight", "lora_up.weight", "alpha"};
        for (int k = 0; k < 3; k++) {
            int i = m * 3 + k;
            snprintf(names[i], sizeof names[i], "lora_te_text_model_encoder_layers_0_self_attn_%s.%s", mods[m], part[k]);
            t[i] = (stw_tensor){names[i], "F32", k == 2 ? 0 : 2, {k == 0 ? 2 : W, k == 0 ? W : 2}};
            size_t n = k == 2 ? 1 : 2 * (size_t)W;
            data[i] = malloc(n * sizeof(float));
            for (size_t j = 0; j < n; j++) {
                x = x * 1664525u + 1013904223u;
                data[i][j] = k == 2 ? alpha : ((float)(x >> 8) / (float)(1 << 24) - 0.5f) * 0.5f;
            }
            cdata[i] = data[i];
        }
    }
    char path[600];
    snprintf(path, sizeof path, "%s/te_qkv.safetensors", dir);
    sd_err err;
    sd_err_clear(&err);
    int rc = stw_write_f32(path, t, cdata, 12, &err);
    for (int i = 0; i < 12; i++) free(data[i]);
    return rc;
}

static void sd2_views(void)
{
    char dir[] = "/tmp/sd-lora-sd2-XXXXXX";
    if (!mkdtemp(dir)) { CHECKF(0, "sd2 views: a temporary folder", "%s", dir); return; }
    sd_engine *single = load_dir("models/tiny-sd2-fp16.safetensors", "fp32", dir);
    sd_engine *folder = load_dir("models/tiny-sd2", "fp32", dir);
    if (single && write_te_lora(dir, clip_width(sd_engine_clip(single)))) CHECKF(0, "sd2 views: LoRA written", "%s", dir);
    sd_lora_spec l[] = {{"te_qkv", 1.0f}};
    static run base, with;
    if (single && folder) {
        gen(single, PROMPT, NULL, 0);
        base = R;
        gen(single, PROMPT, l, 1);
        with = R;
        double moved = npy_maxdiff(with.lat, base.lat, 4 * 8 * 6);
        CHECKF(!base.rc && !with.rc && moved > 1e-4, "lora_apply: sd2 single file: a LoRA on the packed q/k/v views "
               "applies", "%s / %s: latent moved %.3g", base.err.msg, with.err.msg, moved);
        gen(folder, PROMPT, l, 1);
        double d = npy_maxdiff(R.lat, with.lat, 4 * 8 * 6), tol = 1e-5 * npy_maxabs(with.lat, 4 * 8 * 6);
        printf("metric lora_apply/sd2 single file vs folder with the LoRA final_latent_maxabs %.3g tol %.3g\n", d, tol);
        CHECKF(!R.rc && d <= tol, "lora_apply: sd2: the single file's views patched as the folder's separate weights",
               "%s: latent diff %.3g > %.3g", R.err.msg, d, tol);
        gen(single, PROMPT, NULL, 0);
        CHECKF(!R.rc && !memcmp(R.lat, base.lat, sizeof R.lat) && !memcmp(R.rgb, base.rgb, sizeof R.rgb),
               "lora_apply: sd2 single file: the views restore bit for bit", "%s", R.err.msg);
    }
    sd_engine_free(single);
    sd_engine_free(folder);
    char path[600];
    snprintf(path, sizeof path, "%s/te_qkv.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    if (!t_have_ref()) { CHECKF(0, "reference data", "../shared/reference not found (set SD_REF)"); return t_done(); }
    if (npy_load(t_ref(LDIR "pipe/init_noise.npy"), &init_noise)) { CHECKF(0, "init noise", "missing"); return t_done(); }
    sd_engine *e = load("models/tiny-sd1", "fp32");
    if (e) {
        static run base;
        CHECKF(!gen(e, PROMPT, NULL, 0), "lora_apply: base run", "%s", R.err.msg);
        judge("nolora", "never applied");
        base = R;
        parity(e, &base);
        held_weights(e);
        refusals(e);
        gen(e, PROMPT, NULL, 0);
        CHECKF(!R.rc && !memcmp(R.rgb, base.rgb, sizeof R.rgb), "lora_apply: refusals leave the base model", "%s", R.err.msg);
        listing(e);
        out_of_memory(e, &base);
        sd_engine_free(e);
        changed_files(&base);
        sorted_listing();
    }
    at_bf16x2();
    other_family();
    sd2_views();
    npy_free(&init_noise);
    return t_done();
}
