/* test_make_model.c — `sdserve make-model` writes checkpoints the loader and
 * the models accept: the sd15 preset has exactly the 1131 names and shapes of
 * reference/sd15/tensors.json; the demo preset (a folder with a byte-level
 * tokenizer) has the tiny-sd1 architecture, loads with sdw_open and runs
 * through CLIP, UNet and VAE without NaN; size flags build other models;
 * output depends only on the seed, an existing output is replaced; bad
 * flags and -o places (empty, the wrong kind, in a missing folder) are
 * refused (exit 2, no crash).  The quick tier (SD_QUICK=1) skips the 2.1 GB sd15 preset. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mm_cli.h"
#include "t.h"
#include "../../src/engine/loader/safetensors.h"
#include "../../src/engine/loader/weights.h"
#include "../../src/engine/models/clip.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/models/vae.h"

static char tmp[256];

/* Run sdserve make-model with args; returns its exit status. */
#define make_model mm_run

static int files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int eq = fa && fb;
    while (eq) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) eq = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return eq;
}

static int has_shape(const sd_weights *w, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    int64_t s[4] = {d0, d1, d2, d3};
    sd_err e;
    sd_err_clear(&e);
    return sdw_need(w, &e, name, ndim, s) != NULL;
}

/* Remove /dev/shm files of earlier runs that were killed (their pid is gone). */
static void remove_stale_shm(void)
{
    DIR *d = opendir("/dev/shm");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        int pid;
        char p[600];
        if (sscanf(de->d_name, "sdserve-test-sd15-%d.", &pid) != 1 || kill(pid, 0) == 0 || errno != ESRCH) continue;
        snprintf(p, sizeof p, "/dev/shm/%s", de->d_name);
        remove(p);
    }
    if (d) closedir(d);
}

static void test_sd15(void)
{
    char path[512], args[1024];
    /* 2.1 GB: on tmpfs when there is room (much faster than disk), else in the temp dir. */
    struct statvfs vs;
    remove_stale_shm();
    if (statvfs("/dev/shm", &vs) == 0 && (uint64_t)vs.f_bavail * vs.f_frsize > ((uint64_t)6 << 30))
        snprintf(path, sizeof path, "/dev/shm/sdserve-test-sd15-%d.safetensors", (int)getpid());
    else
        snprintf(path, sizeof path, "%s/sd15.safetensors", tmp);
    snprintf(args, sizeof args, "--preset sd15 --dtype f16 -q -o '%s'", path);
    int rc = make_model(args);
    CHECKF(rc == 0, "sd15: make-model exits 0", "status %d", rc);
    st_file f;
    sd_err e;
    sd_err_clear(&e);
    json_error_t je;
    json_t *ref = json_load_file(t_ref("sd15/tensors.json"), 0, &je);
    json_t *tensors = json_object_get(ref, "tensors");
    CHECKF(tensors && json_object_size(tensors) == 1131, "sd15: reference list has 1131 tensors", "%s", je.text);
    if (rc == 0 && st_open(&f, path, &e) == 0) {
        CHECKF(f.n == 1131, "sd15: 1131 tensors written", "%zu", f.n);
        int missing = 0, shape = 0, dtype = 0;
        char first[512] = "";
        for (size_t i = 0; i < f.n; i++) {
            json_t *s = json_object_get(tensors, f.e[i].name);
            if (!s) {
                if (!missing++) snprintf(first, sizeof first, "extra %s", f.e[i].name);
                continue;
            }
            int ok = (int)json_array_size(s) == f.e[i].ndim;
            for (int d = 0; ok && d < f.e[i].ndim; d++) ok = json_integer_value(json_array_get(s, d)) == f.e[i].shape[d];
            if (!ok && !shape++) snprintf(first + strlen(first), 200, " shape of %s", f.e[i].name);
            int pos = strstr(f.e[i].name, "position_ids") != NULL;
            if (f.e[i].dtype != (pos ? ST_OTHER : ST_F16)) dtype++;
        }
        CHECKF(missing == 0 && shape == 0, "sd15: names and shapes equal reference/sd15/tensors.json",
               "%d extra, %d shape differences: %s", missing, shape, first);
        CHECKF(dtype == 0, "sd15: F16 everywhere (position_ids I64)", "%d wrong dtypes", dtype);
        int64_t params = 0;
        for (size_t i = 0; i < f.n; i++)
            if (f.e[i].dtype == ST_F16) params += f.e[i].numel;
        CHECKF(params > 1060000000 && params < 1070000000, "sd15: 1.066 B parameters", "%lld", (long long)params);
        st_close(&f);
    } else {
        CHECKF(0, "sd15: written file parses", "%s", e.msg);
    }
    json_decref(ref);
    remove(path);
    strcpy(path + strlen(path) - strlen(".safetensors"), ".ldm_config.json");
    remove(path);
}

static float std_of(const float *x, int64_t n, int *finite)
{
    double s = 0, s2 = 0;
    *finite = 1;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) *finite = 0;
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    double m = s / n;
    return (float)sqrt(s2 / n - m * m);
}

/* Run the three models once on the demo: everything finite and not constant. */
static void run_models(const sd_weights *w)
{
    sd_err e;
    sd_err_clear(&e);
    int finite;
    sd_clip *c = clip_load(w, NULL, NULL, &e);
    CHECKF(c != NULL, "demo: CLIP loads", "%s", e.msg);
    if (c) {
        int T = clip_tokens(c), W = clip_width(c);
        int32_t ids[2 * 77];
        for (int i = 0; i < 2 * T && i < 154; i++) ids[i] = i % T == 0 ? 512 : i % T < 6 ? 70 + i % T : 513;
        float *out = malloc(sizeof(float) * 2 * T * W);
        int rc = out ? clip_encode(c, ids, 2, 0, out, &e) : -1;
        float sd = rc == 0 ? std_of(out, (int64_t)2 * T * W, &finite) : 0;
        CHECKF(rc == 0 && finite && sd > 0.1f, "demo: CLIP output finite, not constant", "rc %d std %g %s", rc, sd, e.msg);
        free(out);
        clip_free(c);
    }
    sd_err_clear(&e);
    sd_unet *u = unet_load(w, NULL, NULL, &e);
    CHECKF(u != NULL, "demo: UNet loads (heads from model.ldm_config.json)", "%s", e.msg);
    if (u) {
        const unet_info *in = unet_get_info(u);
        CHECKF(in->heads[0] == 4, "demo: UNet heads from the config", "%d", in->heads[0]);
        int B = 2, H = 8, Wd = 8, T = 77, C = in->context_dim;
        float *x = malloc(sizeof(float) * B * 4 * H * Wd), *ctx = malloc(sizeof(float) * B * T * C),
              *o = malloc(sizeof(float) * B * 4 * H * Wd), t[2] = {999, 1};
        uint32_t s = 1;
        for (int i = 0; i < B * 4 * H * Wd; i++) x[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / (1 << 24) * 2 - 1;
        for (int i = 0; i < B * T * C; i++) ctx[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / (1 << 24) * 2 - 1;
        int rc = unet_forward(u, x, t, &(unet_cond){.ctx = ctx, .T = T}, B, H, Wd, o, &e);
        float sd = rc == 0 ? std_of(o, (int64_t)B * 4 * H * Wd, &finite) : 0;
        CHECKF(rc == 0 && finite && sd > 1e-3f, "demo: UNet output finite, not constant", "rc %d std %g %s", rc, sd, e.msg);
        free(x);
        free(ctx);
        free(o);
        unet_free(u);
    }
    sd_err_clear(&e);
    sd_vae *v = vae_load(w, NULL, &e);
    CHECKF(v != NULL && vae_scale(v) == 8, "demo: VAE loads, 8x", "%s", e.msg);
    if (v) {
        float z[4 * 8 * 8], *img = malloc(sizeof(float) * 3 * 64 * 64);
        for (int i = 0; i < 4 * 64; i++) z[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
        int rc = img ? vae_decode(v, z, 1, 8, 8, img, &e) : -1;
        float sd = rc == 0 ? std_of(img, 3 * 64 * 64, &finite) : 0;
        CHECKF(rc == 0 && finite && sd > 1e-3f, "demo: VAE decode finite, not constant", "rc %d std %g %s", rc, sd, e.msg);
        free(img);
        vae_free(v);
    }
}

static void test_demo(void)
{
    char dir[512], args[1024], p1[600], p2[600];
    snprintf(dir, sizeof dir, "%s/demo", tmp);
    snprintf(args, sizeof args, "--preset demo -q -o '%s'", dir);
    CHECK(make_model(args) == 0, "demo: make-model exits 0");
    sd_err e;
    sd_err_clear(&e);
    sd_weights *w = sdw_open(dir, &e);
    CHECKF(w != NULL, "demo: folder loads with sdw_open", "%s", e.msg);
    if (!w) return;
    CHECK(sdw_get_layout(w) == SDW_LAYOUT_SINGLE_FILE && sdw_text_kind_of(w) == SDW_TEXT_CLIP_L, "demo: layout, text kind");
    CHECK(has_shape(w, "text_encoder.text_model.embeddings.token_embedding.weight", 2, 514, 64, 0, 0),
          "demo: 514-row token embedding");

    /* Same architecture as tiny-sd1 (apart from the vocabulary). */
    sd_weights *ref = sdw_open(t_ref("models/tiny-sd1"), &e);
    if (ref) {
        int diff = 0;
        char first[256] = "";
        for (size_t i = 0; i < sdw_count(ref); i++) {
            const sdw_tensor *a = sdw_at(ref, i), *b = sdw_get(w, a->name);
            int ok = b && sdw_numel(a) == sdw_numel(b);
            if (!ok && strstr(a->name, "token_embedding")) ok = 1;
            if (!ok && !diff++) snprintf(first, sizeof first, "%s", a->name);
        }
        CHECKF(diff == 0 && sdw_count(ref) == sdw_count(w), "demo: same tensors as tiny-sd1", "%d differ (first %s), %zu vs %zu",
               diff, first, sdw_count(ref), sdw_count(w));
        sdw_close(ref);
    }

    /* Weight statistics. */
    const sdw_tensor *t = sdw_get(w, "unet.up_blocks.0.resnets.0.conv1.weight"); /* [64,128,3,3] */
    int finite = 0;
    float sd = t ? std_of(t->data, sdw_numel(t), &finite) : 0, want = 1.0f / sqrtf(128 * 9);
    CHECKF(finite && fabsf(sd - want) < 0.05f * want, "demo: conv weights normal(0, 1/sqrt(fan_in))", "std %g want %g", sd, want);
    t = sdw_get(w, "unet.up_blocks.0.resnets.0.norm1.weight");
    int ones = t != NULL;
    for (int64_t i = 0; t && i < sdw_numel(t); i++) ones &= t->data[i] == 1.0f;
    t = sdw_get(w, "unet.up_blocks.0.resnets.0.conv1.bias");
    for (int64_t i = 0; t && i < sdw_numel(t); i++) ones &= t->data[i] == 0.0f;
    CHECK(ones, "demo: norms gamma 1, biases 0");

    size_t len = 0;
    char *cfg = sdw_ldm_config(w, &len);
    json_t *j = cfg ? json_loadb(cfg, len, 0, NULL) : NULL;
    CHECKF(json_integer_value(json_object_get(json_object_get(j, "unet"), "num_heads")) == 4 &&
               json_integer_value(json_object_get(json_object_get(j, "text"), "pad_id")) == 513,
           "demo: model.ldm_config.json beside model.safetensors", "%s", cfg ? cfg : "NULL");
    json_decref(j);
    free(cfg);
    char *vocab = sdw_folder_file(w, "tokenizer/vocab.json", &len);
    j = vocab ? json_loadb(vocab, len, 0, NULL) : NULL;
    int ids_ok = json_object_size(j) == 514;
    int seen[514] = {0};
    const char *k;
    json_t *val;
    json_object_foreach(j, k, val) {
        json_int_t id = json_integer_value(val);
        if (id < 0 || id >= 514 || seen[id]++) ids_ok = 0;
    }
    CHECKF(ids_ok && json_integer_value(json_object_get(j, "!")) == 0 &&
               json_integer_value(json_object_get(j, "!</w>")) == 256 &&
               json_integer_value(json_object_get(j, "\xc4\xa0")) == 220 && /* U+0120 = byte 0x20 (space) */
               json_integer_value(json_object_get(j, "<|startoftext|>")) == 512 &&
               json_integer_value(json_object_get(j, "<|endoftext|>")) == 513,
           "demo: tokenizer/vocab.json byte-level, 514 ids", "%.200s", vocab ? vocab : "NULL");
    json_decref(j);
    free(vocab);
    char *merges = sdw_folder_file(w, "tokenizer/merges.txt", &len);
    CHECKF(merges && !strcmp(merges, "#version: 0.2\n"), "demo: merges.txt header only", "%s", merges ? merges : "NULL");
    free(merges);

    run_models(w);
    sdw_close(w);

    /* Output depends on the seed only. */
    snprintf(args, sizeof args, "--preset demo -q --seed 1 -o '%s/demo_again'", tmp);
    make_model(args);
    snprintf(p1, sizeof p1, "%s/model.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/demo_again/model.safetensors", tmp);
    CHECK(files_equal(p1, p2), "demo: same seed, same bytes");
    snprintf(args, sizeof args, "--preset demo -q --seed 2 -o '%s/demo_seed2'", tmp);
    make_model(args);
    snprintf(p2, sizeof p2, "%s/demo_seed2/model.safetensors", tmp);
    CHECK(!files_equal(p1, p2), "demo: other seed, other bytes");
    /* an existing output is replaced, as generate -o replaces its file (--help says so) */
    snprintf(args, sizeof args, "--preset demo -q --seed 1 -o '%s/demo_seed2'", tmp);
    CHECK(make_model(args) == 0 && files_equal(p1, p2), "demo: an existing folder's model is replaced");
}

/* make-model ARGS with its stderr into err; its exit status. */
static int make_model_err(const char *args, char *err, size_t size)
{
    char cmd[4096], path[600];
    snprintf(path, sizeof path, "%s/stderr.txt", tmp);
    snprintf(cmd, sizeof cmd, "'%s' make-model %s >'%s/stdout.txt' 2>'%s'", mm_sdserve(), args, tmp, path);
    int rc = system(cmd);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(err, 1, size - 1, f) : 0;
    err[n] = 0;
    if (f) fclose(f);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* -o's place, checked before any tensor is made: exit 2 naming the flag as
 * typed (was "cannot create folder : No such file..." for -o '', and the
 * write's failure after the work for the others). */
static void test_output_place(void)
{
    char args[1024], err[1024], file[600];
    snprintf(file, sizeof file, "%s/a-file", tmp);
    FILE *f = fopen(file, "w");
    if (f) fclose(f);
    static const struct { const char *args, *want; } cases[] = {
        {"--preset demo -o ''", "make-model: -o needs a path; got an empty one"},
        {"--preset demo --output ''", "make-model: --output needs a path"},
        {"--preset demo -o '%s/a-file'", "is a file, but --preset demo writes a folder"},
        {"--preset taesd -o '%s'", "is a folder, but --preset taesd writes a file"},
        {"--preset demo -o '%s/no-such/x'", "/no-such does not exist; create it first"},
        {"--preset demo -o '%s/a-file/x'", "/a-file is not a folder"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, cases[i].args, tmp);
        int rc = make_model_err(args, err, sizeof err);
        CHECKF(rc == 2 && strstr(err, cases[i].want), cases[i].want, "make-model %s: status %d: %s", args, rc, err);
    }
    unlink(file);
}

static void test_custom(void)
{
    char path[512], args[1024];
    snprintf(path, sizeof path, "%s/custom.safetensors", tmp);
    snprintf(args, sizeof args,
             "--preset demo --file --unet-channels 32,64,64 --unet-attn 0,1 --unet-head-channels 16 --linear-proj "
             "--vae-channels 32,64 --text-width 48 --text-heads 4 --text-mlp 192 --text-layers 3 --openclip "
             "--prediction v --dtype f32 -q -o '%s'",
             path);
    CHECK(make_model(args) == 0, "custom: make-model exits 0");
    sd_err e;
    sd_err_clear(&e);
    sd_weights *w = sdw_open(path, &e);
    CHECKF(w != NULL, "custom: loads", "%s", e.msg);
    if (!w) return;
    CHECK(sdw_text_kind_of(w) == SDW_TEXT_OPENCLIP, "custom: OpenCLIP naming");
    CHECK(has_shape(w, "unet.down_blocks.2.resnets.1.conv1.weight", 4, 64, 64, 3, 3) &&
              has_shape(w, "unet.down_blocks.1.attentions.1.proj_in.weight", 2, 64, 64, 0, 0) &&
              !sdw_get(w, "unet.down_blocks.2.attentions.0.norm.weight") &&
              has_shape(w, "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight", 2, 64, 48, 0, 0) &&
              !sdw_get(w, "unet.down_blocks.2.downsamplers.0.conv.weight"),
          "custom: UNet 3 levels, attention at 0-1, linear proj, context 48");
    CHECK(has_shape(w, "unet.up_blocks.0.upsamplers.0.conv.weight", 4, 64, 64, 3, 3) &&
              has_shape(w, "unet.up_blocks.2.attentions.2.proj_out.weight", 2, 32, 32, 0, 0) &&
              has_shape(w, "unet.up_blocks.2.resnets.2.conv_shortcut.weight", 4, 32, 64, 1, 1) &&
              !sdw_get(w, "unet.up_blocks.2.upsamplers.0.conv.weight"),
          "custom: UNet up blocks");
    CHECK(has_shape(w, "vae.decoder.up_blocks.0.upsamplers.0.conv.weight", 4, 64, 64, 3, 3) &&
              !sdw_get(w, "vae.decoder.up_blocks.1.upsamplers.0.conv.weight") &&
              !sdw_get(w, "vae.decoder.up_blocks.2.resnets.0.conv1.weight"),
          "custom: VAE 2 levels");
    CHECK(has_shape(w, "text_encoder.text_model.encoder.layers.2.self_attn.v_proj.weight", 2, 48, 48, 0, 0) &&
              has_shape(w, "text_encoder.text_model.encoder.layers.2.mlp.fc1.weight", 2, 192, 48, 0, 0) &&
              !sdw_get(w, "text_encoder.text_model.encoder.layers.3.mlp.fc1.weight"),
          "custom: text 48 wide, 3 layers, q/k/v split");
    size_t len;
    char *cfg = sdw_ldm_config(w, &len);
    CHECKF(cfg && strstr(cfg, "\"num_head_channels\": 16") && strstr(cfg, "\"parameterization\": \"v\""),
           "custom: <stem>.ldm_config.json beside the file", "%s", cfg ? cfg : "NULL");
    free(cfg);
    sdw_close(w);
}

static void test_bad_flags(void)
{
    char args[1024];
    snprintf(args, sizeof args, "--preset nope -o '%s/x'", tmp);
    CHECK(make_model(args) == 2, "bad flags: unknown preset");
    snprintf(args, sizeof args, "--unet-channels 30,60 -o '%s/x'", tmp);
    CHECK(make_model(args) == 2, "bad flags: channels not multiple of 32");
    snprintf(args, sizeof args, "--text-width 50 --text-heads 4 -o '%s/x'", tmp);
    CHECK(make_model(args) == 2, "bad flags: width not divisible by heads");
    CHECK(make_model("--preset demo") == 2, "bad flags: no -o");
    /* these crashed (SIGFPE: channels of 0 divide) or were taken silently */
    static const char *const refused[][2] = {
        {"--unet-channels 0", "bad flags: --unet-channels 0 refused, no crash"},
        {"--vae-channels 32,0", "bad flags: --vae-channels with a 0 refused, no crash"},
        {"--seed abc", "bad flags: --seed abc refused (was seed 0)"},
        {"--unet-attn 2 --unet-channels 32,64", "bad flags: --unet-attn past the UNet's levels refused (was ignored)"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(args, sizeof args, "%s -o '%s/x'", refused[i][0], tmp);
        CHECKF(make_model(args) == 2, refused[i][1], "make-model %s: not exit 2", args);
    }
}

int main(void)
{
    if (!t_have_ref()) {
        CHECK(0, "reference data present (set SD_REF)");
        return t_done();
    }
    if (mm_tmpdir(tmp, sizeof tmp, "make-model")) {
        CHECK(0, "mkdtemp");
        return t_done();
    }
    test_demo();
    test_custom();
    test_bad_flags();
    test_output_place();
    if (t_quick())
        printf("# sd15 preset (2.1 GB) skipped: SD_QUICK=1, the quick tier (make test runs it)\n");
    else
        test_sd15();
    t_rmtree(tmp);
    return t_done();
}
