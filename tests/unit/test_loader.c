/* test_loader.c — the checkpoint loader (src/engine/loader/weights.h):
 * single-file (LDM naming, F16) and diffusers-folder (F32) copies of the tiny
 * reference models expose the same canonical tensors with the same shapes and
 * values; dtypes widen correctly; corrupt files are refused with SD_EFORMAT
 * and a message naming the file and tensor; sdw_need explains what is wrong. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t.h"
#include "../../src/engine/loader/safetensors.h"
#include "../../src/engine/loader/st_write.h"
#include "../../src/engine/loader/weights.h"

static char tmpdir[256];

/* Write a safetensors file through the shared writer's raw layer: header
 * text under the length field hlen (UINT64_MAX: its own length), then data
 * bytes. */
static const char *write_st(const char *name, const char *header, uint64_t hlen, const void *data, size_t ndata)
{
    static char path[8][512];
    static int k;
    char *p = path[k++ & 7];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    sd_err e;
    sd_err_clear(&e);
    FILE *f = stw_begin_raw(p, header, hlen, &e);
    if (!f) return p;
    if (ndata) fwrite(data, 1, ndata, f);
    stw_end(f, p, &e);
    return p;
}

/* Open must fail with SD_EFORMAT and a message containing the file and `want`. */
static void expect_bad(const char *test, const char *path, const char *want)
{
    sd_err e;
    sd_err_clear(&e);
    sd_weights *w = sdw_open(path, &e);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    CHECKF(!w && e.code == SD_EFORMAT && strstr(e.msg, base) && (!want || strstr(e.msg, want)), test,
           "w=%p code=%s msg=%s (want '%s')", (void *)w, sd_err_code_name(e.code), e.msg, want ? want : "");
    sdw_close(w);
}

static int same_shape(const sdw_tensor *a, const sdw_tensor *b)
{
    /* [C,C,1,1] and [C,C] (VAE mid attention) count as the same. */
    int na = a->ndim, nb = b->ndim;
    while (na > nb && a->shape[na - 1] == 1) na--;
    while (nb > na && b->shape[nb - 1] == 1) nb--;
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static void compare_model(const char *tag, const char *folder, const char *single, sdw_text_kind kind)
{
    char name[128];
    sd_err e;
    sd_err_clear(&e);
    sd_weights *a = sdw_open(t_ref(folder), &e);
    snprintf(name, sizeof name, "%s: open diffusers folder", tag);
    CHECKF(a != NULL, name, "%s", e.msg);
    sd_err_clear(&e);
    sd_weights *b = sdw_open(t_ref(single), &e);
    snprintf(name, sizeof name, "%s: open single file", tag);
    CHECKF(b != NULL, name, "%s", e.msg);
    if (!a || !b) {
        sdw_close(a);
        sdw_close(b);
        return;
    }
    snprintf(name, sizeof name, "%s: layouts", tag);
    CHECK(sdw_get_layout(a) == SDW_LAYOUT_DIFFUSERS && sdw_get_layout(b) == SDW_LAYOUT_SINGLE_FILE, name);
    snprintf(name, sizeof name, "%s: text kind", tag);
    CHECKF(sdw_text_kind_of(a) == kind && sdw_text_kind_of(b) == kind, name, "folder %d file %d want %d",
           sdw_text_kind_of(a), sdw_text_kind_of(b), kind);

    /* Same name set (list differences). */
    char diff[2048] = "";
    size_t o = 0;
    int ndiff = 0;
    for (size_t i = 0; i < sdw_count(a); i++)
        if (!sdw_get(b, sdw_at(a, i)->name) && ndiff++ < 12)
            o += (size_t)snprintf(diff + o, o < sizeof diff ? sizeof diff - o : 0, " only-folder:%s", sdw_at(a, i)->name);
    for (size_t i = 0; i < sdw_count(b); i++)
        if (!sdw_get(a, sdw_at(b, i)->name) && ndiff++ < 24 && o < sizeof diff)
            o += (size_t)snprintf(diff + o, sizeof diff - o, " only-file:%s(%s)", sdw_at(b, i)->name,
                                  sdw_at(b, i)->src_name);
    snprintf(name, sizeof name, "%s: same canonical names", tag);
    CHECKF(ndiff == 0 && sdw_count(a) == sdw_count(b), name, "%d differences, counts %zu vs %zu:%s", ndiff,
           sdw_count(a), sdw_count(b), diff);

    int nshape = 0, nval = 0;
    char first[512] = "";
    for (size_t i = 0; i < sdw_count(a); i++) {
        const sdw_tensor *ta = sdw_at(a, i), *tb = sdw_get(b, ta->name);
        if (!tb) continue;
        if (!same_shape(ta, tb)) {
            if (!nshape++) snprintf(first, sizeof first, "%s vs %s", ta->name, tb->src_name);
            continue;
        }
        if (memcmp(ta->data, tb->data, (size_t)sdw_numel(ta) * sizeof(float))) nval++;
    }
    snprintf(name, sizeof name, "%s: same shapes", tag);
    CHECKF(nshape == 0, name, "%d shape differences, first %s", nshape, first);
    snprintf(name, sizeof name, "%s: identical values (F16 file widened == F32 folder)", tag);
    CHECKF(nval == 0, name, "%d tensors differ", nval);

    snprintf(name, sizeof name, "%s: position_ids ignored", tag);
    CHECK(!sdw_get(a, "text_encoder.text_model.embeddings.position_ids") &&
              !sdw_get(b, "text_encoder.text_model.embeddings.position_ids"),
          name);
    snprintf(name, sizeof name, "%s: count sane", tag);
    CHECKF(sdw_count(a) > 500, name, "%zu", sdw_count(a));
    sdw_close(a);
    sdw_close(b);
}

static void test_dtypes(void)
{
    /* F16: 1, -2.5, 65504, 2^-24 (subnormal), -0, 0.333 (0x3555); BF16: 1, -3; F32 at an unaligned offset. */
    unsigned char data[64];
    uint16_t h[6] = {0x3c00, 0xc100, 0x7bff, 0x0001, 0x8000, 0x3555};
    uint16_t bf[2] = {0x3f80, 0xc040};
    float f[3] = {1.5f, -7.25f, 1e-30f};
    memcpy(data, h, 12);
    memcpy(data + 12, bf, 4);
    memcpy(data + 17, f, 12); /* data_offsets [17, 29]: not 4-aligned */
    const char *hdr = "{\"model.diffusion_model.out.2.bias\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[0,12]},"
                      "\"model.diffusion_model.out.0.bias\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]},"
                      "\"model.diffusion_model.out.0.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[17,29]},"
                      "\"cond_stage_model.transformer.text_model.embeddings.position_ids\":{\"dtype\":\"I64\",\"shape\":[1,4],\"data_offsets\":[32,64]},"
                      "\"alphas_cumprod\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[32,48]},"
                      "\"__metadata__\":{\"format\":\"pt\"}}";
    const char *p = write_st("dtypes.safetensors", hdr, UINT64_MAX, data, sizeof data);
    sd_err e;
    sd_err_clear(&e);
    sd_weights *w = sdw_open(p, &e);
    CHECKF(w != NULL, "dtypes: small file opens", "%s", e.msg);
    if (!w) return;
    CHECKF(sdw_count(w) == 3, "dtypes: buffers and position_ids ignored", "count %zu", sdw_count(w));
    const sdw_tensor *a = sdw_get(w, "unet.conv_out.bias"), *b = sdw_get(w, "unet.conv_norm_out.bias"),
                     *c = sdw_get(w, "unet.conv_norm_out.weight");
    CHECK(a && b && c, "dtypes: LDM out.0/out.2 -> conv_norm_out/conv_out");
    if (a && b && c) {
        CHECKF(a->data[0] == 1.0f && a->data[1] == -2.5f && a->data[2] == 65504.0f && a->data[3] == 0x1p-24f &&
                   a->data[4] == 0.0f && a->data[5] == 0x1.554p-2f,
               "dtypes: F16 widened exactly", "%g %g %g %g %g %g", a->data[0], a->data[1], a->data[2], a->data[3],
               a->data[4], a->data[5]);
        CHECK(b->data[0] == 1.0f && b->data[1] == -3.0f, "dtypes: BF16 widened exactly");
        CHECK(c->data[0] == 1.5f && c->data[1] == -7.25f && c->data[2] == 1e-30f && ((uintptr_t)c->data & 3) == 0,
              "dtypes: unaligned F32 copied");
        CHECK(!strcmp(a->src_name, "model.diffusion_model.out.2.bias") && strstr(a->file, "dtypes.safetensors"),
              "dtypes: src_name and file kept");
    }
    sdw_close(w);
}

/* Byte mutations and every truncation of a small valid file: each open
 * either succeeds (then all data is readable) or fails with SD_EFORMAT. */
static void test_mutations(void)
{
    char src[512], p[512];
    snprintf(src, sizeof src, "%s/dtypes.safetensors", tmpdir);
    snprintf(p, sizeof p, "%s/mutant.safetensors", tmpdir);
    static unsigned char orig[4096], buf[4096];
    FILE *f = fopen(src, "rb");
    size_t n = f ? fread(orig, 1, sizeof orig, f) : 0;
    if (f) fclose(f);
    CHECK(n > 100, "mutations: source file read");
    static const char interesting[] = "0123456789-]}[{\",:eE.";
    uint32_t rng = 12345;
    int bad = 0, opened = 0, refused = 0;
    char first[600] = "";
    for (int it = 0; it < 600 + (int)n; it++) {
        size_t len = n;
        memcpy(buf, orig, n);
        if (it < (int)n) {
            len = (size_t)it; /* every truncation */
        } else {
            int k = 1 + (int)((rng = rng * 1103515245u + 12345u) >> 16) % 3;
            while (k--) {
                rng = rng * 1103515245u + 12345u;
                size_t at = (rng >> 8) % n;
                rng = rng * 1103515245u + 12345u;
                buf[at] = (rng >> 20) & 1 ? (unsigned char)(rng >> 8) : (unsigned char)interesting[(rng >> 9) % (sizeof interesting - 1)];
            }
        }
        f = fopen(p, "wb");
        if (!f) break;
        fwrite(buf, 1, len, f);
        fclose(f);
        sd_err e;
        sd_err_clear(&e);
        sd_weights *w = sdw_open(p, &e);
        if (w) {
            opened++;
            volatile float sum = 0;
            for (size_t i = 0; i < sdw_count(w); i++)
                for (int64_t j = 0; j < sdw_numel(sdw_at(w, i)); j++) sum += sdw_at(w, i)->data[j];
            (void)sum;
            if (it < (int)n && !bad++) snprintf(first, sizeof first, "truncation to %d bytes accepted", it);
        } else if (e.code != SD_EFORMAT || !strstr(e.msg, "mutant.safetensors")) {
            if (!bad++) snprintf(first, sizeof first, "iteration %d: %s: %s", it, sd_err_code_name(e.code), e.msg);
        } else {
            refused++;
        }
        sdw_close(w);
    }
    CHECKF(bad == 0 && refused > (int)n && opened > 0, "mutations: every truncation refused, mutants opened or refused with SD_EFORMAT",
           "%d bad (%s), %d opened, %d refused", bad, first, opened, refused);
}

static void test_corrupt(void)
{
    unsigned char z[64] = {0};
    const char *one = "{\"model.diffusion_model.out.2.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    expect_bad("corrupt: truncated data", write_st("trunc.safetensors", one, UINT64_MAX, z, 8),
               "model.diffusion_model.out.2.weight");
    {
        /* A real file cut in half. */
        FILE *in = fopen(t_ref("models/tiny-sd1-fp16.safetensors"), "rb");
        char p[512];
        snprintf(p, sizeof p, "%s/half.safetensors", tmpdir);
        FILE *out = fopen(p, "wb");
        if (in && out) {
            static unsigned char buf[1 << 16];
            size_t total = 0, n;
            while (total < 6000000 && (n = fread(buf, 1, sizeof buf, in)) > 0) {
                fwrite(buf, 1, n, out);
                total += n;
            }
        }
        if (in) fclose(in);
        if (out) fclose(out);
        expect_bad("corrupt: real file truncated", p, "truncated");
    }
    expect_bad("corrupt: header length larger than file", write_st("hlen.safetensors", one, 5000, z, 16), "header length");
    expect_bad("corrupt: header length 2^63", write_st("hlen2.safetensors", one, (uint64_t)1 << 63, z, 16), "header length");
    expect_bad("corrupt: offset beyond data",
               write_st("beyond.safetensors",
                        "{\"model.diffusion_model.out.2.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}",
                        UINT64_MAX, z, 16),
               "model.diffusion_model.out.2.weight");
    expect_bad("corrupt: end < begin",
               write_st("endbegin.safetensors",
                        "{\"model.diffusion_model.out.2.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}",
                        UINT64_MAX, z, 16),
               "model.diffusion_model.out.2.weight");
    expect_bad("corrupt: numel/size mismatch",
               write_st("numel.safetensors",
                        "{\"model.diffusion_model.out.2.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}",
                        UINT64_MAX, z, 16),
               "model.diffusion_model.out.2.weight");
    expect_bad("corrupt: unknown dtype",
               write_st("dtype.safetensors",
                        "{\"model.diffusion_model.out.2.weight\":{\"dtype\":\"F33\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                        UINT64_MAX, z, 16),
               "model.diffusion_model.out.2.weight");
    expect_bad("corrupt: integer dtype on a weight",
               write_st("i64.safetensors",
                        "{\"model.diffusion_model.out.2.weight\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}",
                        UINT64_MAX, z, 16),
               "model.diffusion_model.out.2.weight");
    expect_bad("corrupt: 5-dim shape",
               write_st("dims.safetensors",
                        "{\"model.diffusion_model.out.2.weight\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,4],\"data_offsets\":[0,16]}}",
                        UINT64_MAX, z, 16),
               "model.diffusion_model.out.2.weight");
    expect_bad("corrupt: negative dim",
               write_st("neg.safetensors",
                        "{\"model.diffusion_model.out.2.weight\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}",
                        UINT64_MAX, z, 16),
               "model.diffusion_model.out.2.weight");
    expect_bad("corrupt: huge shape overflows",
               write_st("huge.safetensors",
                        "{\"model.diffusion_model.out.2.weight\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,16]}}",
                        UINT64_MAX, z, 16),
               "model.diffusion_model.out.2.weight");
    expect_bad("corrupt: invalid JSON", write_st("json.safetensors", "{\"a\": {\"dtype\": ", UINT64_MAX, z, 16), "JSON");
    expect_bad("corrupt: header not an object", write_st("array.safetensors", "[1, 2, 3]", UINT64_MAX, z, 16),
               "not a JSON object");
    expect_bad("corrupt: entry not an object",
               write_st("entry.safetensors", "{\"model.diffusion_model.out.2.weight\": 3}", UINT64_MAX, z, 16),
               "model.diffusion_model.out.2.weight");
    {
        char p[512];
        snprintf(p, sizeof p, "%s/empty.safetensors", tmpdir);
        FILE *f = fopen(p, "wb");
        if (f) fclose(f);
        expect_bad("corrupt: empty file", p, "too short");
    }
    expect_bad("corrupt: header length 0", write_st("zero.safetensors", "", 0, z, 16), "header length");
    expect_bad("corrupt: packed qkv of wrong shape",
               write_st("qkv.safetensors",
                        "{\"cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}",
                        UINT64_MAX, z, 16),
               "in_proj_weight");
    expect_bad("corrupt: unrecognised UNet name",
               write_st("name.safetensors",
                        "{\"model.diffusion_model.bogus.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                        UINT64_MAX, z, 16),
               "model.diffusion_model.bogus.weight");

    sd_err e;
    sd_err_clear(&e);
    char p[512];
    snprintf(p, sizeof p, "%s/does-not-exist.safetensors", tmpdir);
    sd_weights *w = sdw_open(p, &e);
    CHECKF(!w && e.code == SD_ENOTFOUND && strstr(e.msg, "does-not-exist"), "missing path is SD_ENOTFOUND", "%s", e.msg);
    sd_err_clear(&e);
    w = sdw_open(tmpdir, &e);
    CHECKF(!w && e.code == SD_ENOTFOUND && strstr(e.msg, "diffusers"), "folder that is no model", "%s", e.msg);
}

static void test_need(void)
{
    sd_err e;
    sd_err_clear(&e);
    sd_weights *w = sdw_open(t_ref("models/tiny-sd1-fp16.safetensors"), &e);
    CHECKF(w != NULL, "need: open", "%s", e.msg);
    if (!w) return;
    const sdw_tensor *t = sdw_need4(w, &e, "unet.conv_in.weight", 32, 4, 3, 3);
    CHECKF(t && t->data && sdw_numel(t) == 32 * 4 * 9, "need: right shape", "%s", e.msg);
    t = sdw_need4(w, &e, "unet.conv_in.weight", -1, 4, -1, -1);
    CHECK(t && t->shape[0] == 32, "need: wildcard dims");
    t = sdw_need4(w, &e, "unet.conv_in.weight", 64, 4, 3, 3);
    CHECKF(!t && e.code == SD_EFORMAT && strstr(e.msg, "unet.conv_in.weight") &&
               strstr(e.msg, "model.diffusion_model.input_blocks.0.0.weight") && strstr(e.msg, "[32,4,3,3]") &&
               strstr(e.msg, "[64,4,3,3]") && strstr(e.msg, "tiny-sd1-fp16.safetensors") &&
               !strcmp(e.field, "unet.conv_in.weight"),
           "need: wrong shape names tensor, source, file, shapes", "%s", e.msg);
    sd_err_clear(&e);
    t = sdw_need2(w, &e, "unet.conv_in.weight", 32, 36);
    CHECKF(!t && strstr(e.msg, "expected [32,36]"), "need: wrong ndim", "%s", e.msg);
    sd_err_clear(&e);
    t = sdw_need1(w, &e, "unet.no_such.weight", 7);
    CHECKF(!t && e.code == SD_EFORMAT && strstr(e.msg, "missing tensor 'unet.no_such.weight'") && strstr(e.msg, "[7]"),
           "need: missing tensor", "%s", e.msg);
    CHECK(sdw_getf(w, "unet.up_blocks.%d.attentions.%d.proj_in.weight", 1, 2) != NULL, "getf formats");
    CHECK(sdw_getf(w, "vae.decoder.up_blocks.%d.upsamplers.0.conv.weight", 3) == NULL &&
              sdw_get(w, "vae.decoder.up_blocks.2.upsamplers.0.conv.weight"),
          "vae decoder levels reversed (up.0 -> up_blocks.3 has no upsampler)");

    size_t len = 0;
    char *cfg = sdw_ldm_config(w, &len);
    CHECKF(cfg && len > 10 && strstr(cfg, "\"num_heads\": 8"), "ldm_config found beside the file (-fp16 stripped)",
           "%s", cfg ? cfg : "NULL");
    free(cfg);
    CHECK(sdw_folder_file(w, "scheduler/scheduler_config.json", NULL) == NULL, "folder_file on a single file is NULL");
    sdw_close(w);

    sd_err_clear(&e);
    w = sdw_open(t_ref("models/tiny-sd2"), &e);
    if (w) {
        char *s = sdw_folder_file(w, "scheduler/scheduler_config.json", &len);
        CHECKF(s && strstr(s, "v_prediction") && strlen(s) == len, "folder_file reads scheduler config", "%s",
               s ? s : "NULL");
        free(s);
        CHECK(sdw_folder_file(w, "scheduler/nope.json", NULL) == NULL, "folder_file absent -> NULL");
        CHECK(sdw_ldm_config(w, NULL) == NULL, "ldm_config on a folder is NULL");
        /* OpenCLIP in_proj split: q/k/v of the single file equal the folder's. */
        sdw_close(w);
    }
}

/* The shared writer (loader/st_write.c): what it writes, the reader reads
 * back exactly — names in order, dtypes, shapes, bytes — with the data
 * section 8-aligned; a dtype it does not know is refused naming the tensor. */
static void test_writer(void)
{
    float a[6] = {1, -2, 3.5f, 0, 1e-3f, -7}, b[3] = {9, 8, 7};
    stw_tensor t[3] = {{"a.weight", "F32", 2, {2, 3}}, {"b", "F32", 1, {3}}, {"s", "F32", 0, {0}}};
    float sc = 0.25f;
    const float *data[3] = {a, b, &sc};
    char p[512];
    snprintf(p, sizeof p, "%s/written.safetensors", tmpdir);
    sd_err e;
    sd_err_clear(&e);
    st_file f;
    int ok = stw_write_f32(p, t, data, 3, &e) == 0 && st_open(&f, p, &e) == 0;
    CHECKF(ok, "writer: stw_write_f32 then st_open", "%s", e.msg);
    if (!ok) return;
    int same = f.n == 3;
    for (size_t i = 0; same && i < 3; i++) {
        const st_entry *x = &f.e[i];
        same = !strcmp(x->name, t[i].name) && x->dtype == ST_F32 && x->ndim == t[i].ndim &&
               (size_t)x->numel * 4 == x->nbytes && !memcmp(x->data, data[i], x->nbytes);
        for (int d = 0; same && d < x->ndim; d++) same = x->shape[d] == t[i].shape[d];
    }
    same = same && (f.e[0].data - f.map) % 8 == 0; /* the data section's start */
    CHECKF(same, "writer: names in order, dtypes, shapes and bytes read back, data 8-aligned", "%zu entries",
           f.n);
    st_close(&f);

    stw_tensor bad = {"q.weight", "F8", 1, {4}};
    sd_err_clear(&e);
    FILE *fp = stw_begin(p, &bad, 1, &e);
    CHECKF(!fp && e.code == SD_EINVAL && !strcmp(e.field, "q.weight"), "writer: unknown dtype refused naming the tensor",
           "code %s field %s", sd_err_code_name(e.code), e.field);
    if (fp) fclose(fp);
}

int main(void)
{
    if (!t_have_ref()) {
        CHECK(0, "reference data present (set SD_REF)");
        return t_done();
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sdserve-test-loader-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        CHECK(0, "mkdtemp");
        return t_done();
    }
    compare_model("tiny-sd1", "models/tiny-sd1", "models/tiny-sd1-fp16.safetensors", SDW_TEXT_CLIP_L);
    compare_model("tiny-sd2", "models/tiny-sd2", "models/tiny-sd2-fp16.safetensors", SDW_TEXT_OPENCLIP);
    test_dtypes();
    test_mutations();
    test_corrupt();
    test_need();
    test_writer();

    t_rmtree(tmpdir);
    return t_done();
}
