/* test_family.c — the model family, decided from the tensors by one rule
 * (src/engine/loader/family.h): the rule on facts for
 * every branch; made-up tensor sets written as diffusers folders and single
 * files, one per branch (SD1 with and without a text tower, SD2, SDXL,
 * SD1/SD2/SDXL inpainting, the SDXL refiner, a conv_in that is wider but not an inpainting
 * one); every tiny reference model in both layouts; the descriptors the
 * engine reads (pad id, head split); and sd_engine_load refusing the
 * families it cannot run yet with a message naming the family. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"
#include "../../src/engine/loader/family.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/sd.h"

static char tmpdir[64];

typedef struct tdef {
    const char *name;
    int ndim;
    int64_t shape[4];
} tdef;

/* A safetensors file of zero-filled F32 tensors. */
static int write_st(const char *path, const tdef *t, int n)
{
    char hdr[4096];
    size_t hl = 0, off = 0;
    hl += snprintf(hdr + hl, sizeof hdr - hl, "{");
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        hl += snprintf(hdr + hl, sizeof hdr - hl, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[", i ? "," : "", t[i].name);
        for (int d = 0; d < t[i].ndim; d++) {
            hl += snprintf(hdr + hl, sizeof hdr - hl, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
            numel *= (size_t)t[i].shape[d];
        }
        hl += snprintf(hdr + hl, sizeof hdr - hl, "],\"data_offsets\":[%zu,%zu]}", off, off + 4 * numel);
        off += 4 * numel;
    }
    hl += snprintf(hdr + hl, sizeof hdr - hl, "}");
    while (hl % 8) hdr[hl++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint64_t len = hl;
    fwrite(&len, 8, 1, f);
    fwrite(hdr, 1, hl, f);
    for (size_t i = 0; i < off; i++) fputc(0, f);
    return fclose(f);
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

/* A made-up diffusers folder: a text tower with act ("gelu", "quick_gelu",
 * or NULL for none) and a UNet stem of in -> out channels, with an
 * add-embedding when add is set.  Its path, or NULL. */
static const char *make_folder(const char *tag, const char *act, int in, int out, int add)
{
    static char dir[128];
    char p[256];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, tag);
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/unet", dir);
    mkdir(p, 0755);
    tdef u[3] = {
        {"conv_in.weight", 4, {4, in, 3, 3}},
        {"conv_out.weight", 4, {out, 4, 3, 3}},
        {"add_embedding.linear_1.weight", 2, {8, 6}},
    };
    snprintf(p, sizeof p, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    if (write_st(p, u, add ? 3 : 2)) return NULL;
    if (act) {
        snprintf(p, sizeof p, "%s/text_encoder", dir);
        mkdir(p, 0755);
        tdef te[1] = {{"text_model.embeddings.token_embedding.weight", 2, {10, 4}}};
        snprintf(p, sizeof p, "%s/text_encoder/model.safetensors", dir);
        if (write_st(p, te, 1)) return NULL;
        char cfg[128];
        snprintf(cfg, sizeof cfg, "{\"hidden_act\": \"%s\"}\n", act);
        snprintf(p, sizeof p, "%s/text_encoder/config.json", dir);
        if (write_text(p, cfg)) return NULL;
    }
    return dir;
}

static void expect_family(const char *what, const char *path, sd_family want)
{
    sd_err err;
    sd_err_clear(&err);
    sd_weights *w = path ? sdw_open(path, &err) : NULL;
    sd_family got = w ? sd_family_decide(w) : SD_FAMILY_COUNT;
    CHECKF(w && got == want, what, "%s: got %s, want %s", w ? "opened" : err.msg,
           w ? sd_family_info(got)->name : "-", sd_family_info(want)->name);
    sdw_close(w);
}

static void check_rule(void)
{
    static const struct { sd_family_facts f; sd_family want; const char *what; } c[] = {
        {{SDW_TEXT_CLIP_L, 4, 4, 0, SDW_TEXT_NONE}, SD_FAMILY_SD1, "rule: CLIP-L text, 4 -> 4 = sd1"},
        {{SDW_TEXT_NONE, 4, 4, 0, SDW_TEXT_NONE}, SD_FAMILY_SD1, "rule: no text tower = sd1"},
        {{SDW_TEXT_NONE, 0, 0, 0, SDW_TEXT_NONE}, SD_FAMILY_SD1, "rule: nothing = sd1"},
        {{SDW_TEXT_OPENCLIP, 4, 4, 0, SDW_TEXT_NONE}, SD_FAMILY_SD2, "rule: OpenCLIP text = sd2"},
        {{SDW_TEXT_CLIP_L, 4, 4, 1, SDW_TEXT_NONE}, SD_FAMILY_SDXL, "rule: add-embedding = sdxl"},
        {{SDW_TEXT_OPENCLIP, 4, 4, 1, SDW_TEXT_NONE}, SD_FAMILY_SDXL, "rule: add-embedding wins over OpenCLIP"},
        {{SDW_TEXT_CLIP_L, 9, 4, 0, SDW_TEXT_NONE}, SD_FAMILY_SD1_INPAINT, "rule: 9 -> 4 = sd1-inpaint"},
        {{SDW_TEXT_OPENCLIP, 9, 4, 0, SDW_TEXT_NONE}, SD_FAMILY_SD2_INPAINT, "rule: OpenCLIP, 9 -> 4 = sd2-inpaint"},
        {{SDW_TEXT_CLIP_L, 9, 4, 1, SDW_TEXT_NONE}, SD_FAMILY_SDXL_INPAINT, "rule: add-embedding, 9 -> 4 = sdxl-inpaint"},
        {{SDW_TEXT_CLIP_L, 8, 4, 0, SDW_TEXT_NONE}, SD_FAMILY_SD1, "rule: 8 -> 4 is not 2*out+1: sd1"},
        {{SDW_TEXT_CLIP_L, 17, 8, 0, SDW_TEXT_NONE}, SD_FAMILY_SD1_INPAINT, "rule: 17 -> 8 = inpaint of an 8-channel latent"},
        {{SDW_TEXT_NONE, 4, 4, 1, SDW_TEXT_OPENCLIP}, SD_FAMILY_SDXL_REFINER,
         "rule: add-embedding, second tower only = sdxl-refiner"},
        {{SDW_TEXT_CLIP_L, 4, 4, 1, SDW_TEXT_OPENCLIP}, SD_FAMILY_SDXL, "rule: add-embedding, both towers = sdxl"},
        {{SDW_TEXT_NONE, 4, 4, 0, SDW_TEXT_OPENCLIP}, SD_FAMILY_SD1, "rule: second tower, no add-embedding: no refiner"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        sd_family got = sd_family_from_facts(&c[i].f);
        CHECKF(got == c[i].want, c[i].what, "got %s", sd_family_info(got)->name);
    }
}

static void check_made_up(void)
{
    expect_family("made-up folder: quick_gelu text, 4 -> 4 = sd1", make_folder("sd1", "quick_gelu", 4, 4, 0),
                  SD_FAMILY_SD1);
    expect_family("made-up folder: UNet only = sd1", make_folder("unet-only", NULL, 4, 4, 0), SD_FAMILY_SD1);
    expect_family("made-up folder: gelu text = sd2", make_folder("sd2", "gelu", 4, 4, 0), SD_FAMILY_SD2);
    expect_family("made-up folder: add-embedding = sdxl", make_folder("sdxl", "quick_gelu", 4, 4, 1), SD_FAMILY_SDXL);
    expect_family("made-up folder: 9 -> 4 = sd1-inpaint", make_folder("sd1i", "quick_gelu", 9, 4, 0),
                  SD_FAMILY_SD1_INPAINT);
    expect_family("made-up folder: gelu, 9 -> 4 = sd2-inpaint", make_folder("sd2i", "gelu", 9, 4, 0),
                  SD_FAMILY_SD2_INPAINT);
    expect_family("made-up folder: add-embedding, 9 -> 4 = sdxl-inpaint", make_folder("sdxli", "quick_gelu", 9, 4, 1),
                  SD_FAMILY_SDXL_INPAINT);
    expect_family("made-up folder: 8 -> 4 = sd1 (not inpainting)", make_folder("wide", "quick_gelu", 8, 4, 0),
                  SD_FAMILY_SD1);
    /* the SDXL refiner's folder: text_encoder_2/ (OpenCLIP-bigG) and no text_encoder/ */
    const char *rf = make_folder("refiner", NULL, 4, 4, 1);
    char q[256];
    tdef te2[1] = {{"text_model.embeddings.token_embedding.weight", 2, {10, 4}}};
    int bad = !rf;
    if (!bad) {
        snprintf(q, sizeof q, "%s/text_encoder_2", rf);
        mkdir(q, 0755);
        snprintf(q, sizeof q, "%s/text_encoder_2/model.safetensors", rf);
        bad = write_st(q, te2, 1);
        snprintf(q, sizeof q, "%s/text_encoder_2/config.json", rf);
        bad = bad || write_text(q, "{\"hidden_act\": \"gelu\"}\n");
    }
    expect_family("made-up folder: add-embedding, text_encoder_2 only = sdxl-refiner", bad ? NULL : rf,
                  SD_FAMILY_SDXL_REFINER);

    /* single files: the text tower's naming decides the base */
    char p[256];
    tdef oc[1] = {{"cond_stage_model.model.token_embedding.weight", 2, {10, 4}}};
    snprintf(p, sizeof p, "%s/openclip.safetensors", tmpdir);
    expect_family("made-up single file: OpenCLIP naming = sd2", write_st(p, oc, 1) ? NULL : p, SD_FAMILY_SD2);
    tdef cl[1] = {{"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", 2, {10, 4}}};
    snprintf(p, sizeof p, "%s/clipl.safetensors", tmpdir);
    expect_family("made-up single file: CLIP-L naming = sd1", write_st(p, cl, 1) ? NULL : p, SD_FAMILY_SD1);
}

static void check_tiny_models(void)
{
    if (!t_have_ref()) { CHECK(0, "reference data present (set SD_REF)"); return; }
    expect_family("tiny-sd1 folder = sd1", t_ref("models/tiny-sd1"), SD_FAMILY_SD1);
    expect_family("tiny-sd1 single file = sd1", t_ref("models/tiny-sd1-fp16.safetensors"), SD_FAMILY_SD1);
    expect_family("tiny-sd2 folder = sd2", t_ref("models/tiny-sd2"), SD_FAMILY_SD2);
    expect_family("tiny-sd2 single file = sd2", t_ref("models/tiny-sd2-fp16.safetensors"), SD_FAMILY_SD2);
    expect_family("tiny-sd1-inpaint folder = sd1-inpaint", t_ref("models/tiny-sd1-inpaint"), SD_FAMILY_SD1_INPAINT);
    expect_family("tiny-sd1-inpaint UNet file = sd1-inpaint", t_ref("models/tiny-sd1-inpaint-unet-fp16.safetensors"),
                  SD_FAMILY_SD1_INPAINT);
    expect_family("tiny-sdxl-s folder = sdxl", t_ref("models/tiny-sdxl-s"), SD_FAMILY_SDXL);
}

static void check_descriptors(void)
{
    const sd_family_desc *d1 = sd_family_info(SD_FAMILY_SD1), *d2 = sd_family_info(SD_FAMILY_SD2);
    CHECK(!strcmp(d1->name, "sd1") && d1->pad_eos && d1->supported && !d1->added_cond && !d1->inpaint,
          "sd1: named sd1, pads with the end token, runs");
    CHECK(!strcmp(d2->name, "sd2") && !d2->pad_eos && d2->supported, "sd2: named sd2, pads with 0, runs");
    unet_hints h1 = unet_hints_for_family(SD_FAMILY_SD1), h2 = unet_hints_for_family(SD_FAMILY_SD2);
    CHECK(h1.num_heads == 8 && h1.head_dim == 0 && h2.num_heads == 0 && h2.head_dim == 64,
          "head split defaults: sd1 8 heads, sd2 head_dim 64");
    int names_ok = 1;
    for (int f = 0; f < SD_FAMILY_COUNT; f++) {
        const sd_family_desc *d = sd_family_info((sd_family)f);
        names_ok &= d->name != NULL && d->base == sd_family_info(d->base)->base &&
                    d->supported == (f == SD_FAMILY_SD1 || f == SD_FAMILY_SD2 || f == SD_FAMILY_SDXL ||
                                     f == SD_FAMILY_SD1_INPAINT || f == SD_FAMILY_SD2_INPAINT ||
                                     f == SD_FAMILY_SDXL_INPAINT) &&
                    d->inpaint == (f >= SD_FAMILY_SD1_INPAINT && f != SD_FAMILY_SDXL_REFINER) &&
                    d->added_cond == (d->base == SD_FAMILY_SDXL) && d->refiner == (f == SD_FAMILY_SDXL_REFINER);
    }
    CHECK(names_ok, "every family: a name, a base, variant flags; all but the sdxl refiner run");
    CHECK(sd_family_info((sd_family)99) == d1, "an out-of-range family reads as sd1");
}

static void expect_refused_load(const char *what, const char *path, const char *family)
{
    sd_load_opts o = {.model_path = path, .precision = "fp32", .threads = 1};
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    char frag[64];
    snprintf(frag, sizeof frag, "an %s checkpoint", family);
    CHECKF(!e && err.code == SD_EFORMAT && !strcmp(err.field, "model") && strstr(err.msg, frag), what,
           "code %d field '%s': %s", err.code, err.field, err.msg);
    sd_engine_free(e);
}

static void check_engine_refusals(void)
{
    if (!t_have_ref()) return;
    char refiner[256];   /* check_made_up's refiner folder */
    snprintf(refiner, sizeof refiner, "%s/refiner", tmpdir);
    expect_refused_load("engine refuses the sdxl refiner by family", refiner, "SDXL refiner");
    sd_load_opts o = {.model_path = t_ref("models/tiny-sd2"), .precision = "fp32", .threads = 1};
    sd_err err;
    sd_err_clear(&err);
    sd_engine *e = sd_engine_load(&o, &err);
    sd_model_info mi;
    if (e) sd_engine_info(e, &mi);
    CHECKF(e && !strcmp(mi.family, "sd2"), "engine: tiny-sd2 reports family sd2", "%s", e ? mi.family : err.msg);
    CHECKF(e && mi.native_size == 512, "engine: tiny-sd2's native size 512", "%d", e ? mi.native_size : -1);
    sd_engine_free(e);
    o.model_path = t_ref("models/tiny-sdxl-s");
    sd_err_clear(&err);
    e = sd_engine_load(&o, &err);
    if (e) sd_engine_info(e, &mi);
    CHECKF(e && !strcmp(mi.family, "sdxl"), "engine: tiny-sdxl-s loads, family sdxl", "%s", e ? mi.family : err.msg);
    CHECKF(e && mi.native_size == 1024, "engine: tiny-sdxl-s's native size 1024 (a request without a size)", "%d",
           e ? mi.native_size : -1);
    sd_engine_free(e);
}

/* issue 15 item 4: the size a request without width/height gets, per
 * family (API.md: 512 for SD 1.x/2.x, 1024 for SDXL), variants as their
 * base; an out-of-range family reads SD1's. */
static void check_native_sizes(void)
{
    int ok = 1;
    for (int f = 0; f < SD_FAMILY_COUNT; f++) {
        const sd_family_desc *d = sd_family_info((sd_family)f);
        int want = d->base == SD_FAMILY_SDXL ? 1024 : 512;
        ok &= d->native_size == want && d->native_size == sd_family_info(d->base)->native_size;
    }
    CHECK(ok, "native size: 512 for sd1/sd2 and their variants, 1024 for sdxl and its");
    CHECK(sd_family_info(SD_FAMILY_COUNT)->native_size == 512, "native size of an unknown family: SD1's 512");
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sd-family.XXXXXX");
    if (!mkdtemp(tmpdir)) { CHECK(0, "temporary folder"); return t_done(); }
    check_rule();
    check_made_up();
    check_tiny_models();
    check_descriptors();
    check_native_sizes();
    check_engine_refusals();
    t_rmtree(tmpdir);
    return t_done();
}
