/* test_sd15.c — a full-size SD 1.5-shaped checkpoint (random weights,
 * written by `sdserve make-model --preset sd15`) loads and runs one 512x512
 * step without NaN; the same checkpoint with a tensor removed, with a
 * tensor of the wrong shape, and truncated is refused with a message naming
 * the problem.  Takes a minute or two and ~10 GB of /tmp disk at peak;
 * SD_SKIP_FULLSIZE=1 skips it for quick local runs (never in CI). */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"
#include "../../src/engine/pipeline.h"

static char dir[256];

/* Copy `len` bytes of fd_in from offset `off` to the end of fd_out. */
static int copy_range(int in, off_t off, int out, size_t len)
{
    while (len) {
        ssize_t n = copy_file_range(in, &off, out, NULL, len, 0);
        if (n <= 0) return -1;
        len -= (size_t)n;
    }
    return 0;
}

/* Rewrite `src` with its header changed by `edit` (data bytes unchanged). */
static int rewrite(const char *src, const char *dst, void (*edit)(json_t *hdr))
{
    int in = open(src, O_RDONLY);
    if (in < 0) return -1;
    uint64_t hl;
    struct stat st;
    fstat(in, &st);
    if (pread(in, &hl, 8, 0) != 8) { close(in); return -1; }
    char *h = malloc(hl + 1);
    if (pread(in, h, hl, 8) != (ssize_t)hl) { free(h); close(in); return -1; }
    json_error_t je;
    json_t *root = json_loadb(h, hl, 0, &je);
    free(h);
    if (!root) { close(in); return -1; }
    edit(root);
    char *nh = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    size_t nl = strlen(nh), padded = (nl + 7) & ~(size_t)7;
    char *buf = malloc(padded);
    memcpy(buf, nh, nl);
    memset(buf + nl, ' ', padded - nl);
    free(nh);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    uint64_t pl = padded;
    int rc = out < 0 || write(out, &pl, 8) != 8 || write(out, buf, padded) != (ssize_t)padded ||
             copy_range(in, 8 + hl, out, st.st_size - 8 - hl);
    free(buf);
    close(in);
    if (out >= 0) close(out);
    return rc ? -1 : 0;
}

static void drop_tensor(json_t *h) { json_object_del(h, "model.diffusion_model.out.2.weight"); }
static void bad_shape(json_t *h)
{
    /* same element count, wrong layout: [320,320,3,3] -> [320,320,9,1] */
    json_t *t = json_object_get(h, "model.diffusion_model.input_blocks.1.0.in_layers.2.weight");
    json_object_set_new(t, "shape", json_pack("[iiii]", 320, 320, 9, 1));
}

static sd_engine *load(const char *path, sd_err *err)
{
    sd_load_opts o = {0};
    o.model_path = path;
    o.vocab_path = t_ref("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    sd_err_clear(err);
    return sd_engine_load(&o, err);
}

int main(void)
{
    if (!t_have_ref()) { CHECKF(0, "reference data", "not found (set SD_REF)"); return t_done(); }
    if (getenv("SD_SKIP_FULLSIZE") && *getenv("SD_SKIP_FULLSIZE") == '1') {
        printf("# skipped: SD_SKIP_FULLSIZE=1 (a quick run; CI runs it)\n");
        return t_done();
    }
    const char *bin = getenv("SD_BUILD") ? getenv("SD_BUILD") : "build";
    snprintf(dir, sizeof dir, "/tmp/sdserve-sd15-XXXXXX");
    if (!mkdtemp(dir)) { CHECKF(0, "tmpdir", "mkdtemp failed"); return t_done(); }
    char good[300], cmd[1024];
    snprintf(good, sizeof good, "%s/sd15.safetensors", dir);
    snprintf(cmd, sizeof cmd, "%s/sdserve make-model --preset sd15 --dtype f16 -q -o %s", bin, good);
    CHECKF(system(cmd) == 0, "make-model sd15", "%s failed", cmd);

    sd_err err;
    sd_engine *e = load(good, &err);
    CHECKF(e != NULL, "sd15 loads", "%s", err.msg);
    if (e) {
        sd_model_info info;
        sd_engine_info(e, &info);
        CHECKF(info.params > 1060000000LL && info.params < 1070000000LL && !strcmp(info.family, "sd1"),
               "sd15 parameter count", "%lld params, family %s", (long long)info.params, info.family);
        sd_gen_params p = {0};
        p.prompt = "a photograph of an astronaut riding a horse";
        p.width = 512; p.height = 512; p.steps = 1; p.cfg = 7.5f; p.n = 1; p.seed = 42;
        p.sampler = SD_SAMPLER_EULER;
        float *lat = malloc(sizeof(float) * 4 * 64 * 64), *img = malloc(sizeof(float) * 3 * 512 * 512);
        sd_gen_debug dbg = {.final_latent = lat, .image = img};
        sd_image out = {0};
        sd_err_clear(&err);
        int rc = sd_generate_debug(e, &p, &out, &dbg, &err);
        CHECKF(rc == 0, "sd15 512x512 step runs", "%s", err.msg);
        if (rc == 0) {
            size_t bad = 0;
            double m = 0;
            for (size_t i = 0; i < 4 * 64 * 64; i++) { if (!isfinite(lat[i])) bad++; else if (fabs(lat[i]) > m) m = fabs(lat[i]); }
            for (size_t i = 0; i < 3 * 512 * 512; i++) if (!isfinite(img[i])) bad++;
            CHECKF(bad == 0 && m > 0, "sd15 latent and image finite", "%zu non-finite values, max |latent| %g", bad, m);
            CHECKF(out.width == 512 && out.height == 512 && out.rgb, "sd15 output 512x512", "%dx%d", out.width, out.height);
        }
        sd_image_free(&out);
        free(lat); free(img);
        sd_engine_free(e);
    }

    char bad[300];
    snprintf(bad, sizeof bad, "%s/missing.safetensors", dir);
    CHECK(rewrite(good, bad, drop_tensor) == 0, "write checkpoint without out.2.weight");
    e = load(bad, &err);
    CHECKF(!e && err.code == SD_EFORMAT && strstr(err.msg, "missing tensor") && strstr(err.msg, "conv_out.weight"),
           "missing tensor refused", "%s", e ? "loaded!" : err.msg);
    sd_engine_free(e);
    unlink(bad);

    snprintf(bad, sizeof bad, "%s/shape.safetensors", dir);
    CHECK(rewrite(good, bad, bad_shape) == 0, "write checkpoint with a wrong shape");
    e = load(bad, &err);
    CHECKF(!e && err.code == SD_EFORMAT && strstr(err.msg, "input_blocks.1.0.in_layers.2.weight") &&
           strstr(err.msg, "[320,320,9,1]") && strstr(err.msg, "expected"),
           "wrong shape refused", "%s", e ? "loaded!" : err.msg);
    sd_engine_free(e);
    unlink(bad);

    /* truncated: cut the file in the middle of its data */
    struct stat st;
    stat(good, &st);
    CHECK(truncate(good, st.st_size / 2) == 0, "truncate checkpoint");
    e = load(good, &err);
    CHECKF(!e && err.code == SD_EFORMAT && strstr(err.msg, "sd15.safetensors") &&
           (strstr(err.msg, "truncat") || strstr(err.msg, "beyond") || strstr(err.msg, "past the end")),
           "truncated checkpoint refused", "%s", e ? "loaded!" : err.msg);
    printf("# messages:\n#  %s\n", err.msg);
    sd_engine_free(e);
    unlink(good);
    rmdir(dir);
    return t_done();
}
