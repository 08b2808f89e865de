/* test_flops.c — the FLOP counters `sdserve bench` reports (unet_flops,
 * vae_decode_flops / vae_encode_flops, clip_flops) against the SD 1.5
 * reference figures of shared/reference/README.md "sd15/" (UNet 803.3 GFLOP
 * per image at a 64x64 latent, decode to 512² 2514.5, encode of 512² 1116.7,
 * text 13.3 per window), and their SDXL terms against hand counts from the
 * shapes the README gives for SDXL 1.0 (cross-attention keys: 70 blocks,
 * 2048-wide context; the added-embedding MLP; both text towers).
 *
 * The models are built from the reference tensor lists (sd15/tensors.json,
 * sdxl/tensors.json) as F32 files whose data section is a hole (ftruncate):
 * loading maps them without reading the weights, so the full-size shapes
 * cost seconds and no disk, and only the counters' arithmetic is exercised.
 *
 * Executed FLOPs (issue 19 item 5, ops.h's counters): ops_conv_exec_flops
 * against a count made here from Lavin & Gray's F(4x4, 3x3) transform
 * matrices, and the counters the ops add as they run (direct and Winograd
 * convs, linears at fp32 and bf16x2, plain and causal attention). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mm_cli.h"
#include "t.h"
#include "tops.h"
#include "../../src/engine/loader/st_write.h"
#include "../../src/engine/loader/weights.h"
#include "../../src/engine/models/clip.h"
#include "../../src/engine/models/unet.h"
#include "../../src/engine/models/vae.h"

static char tmp[256];

/* The checkpoint of ref list `rel` (name -> shape) as F32 (I64 position_ids)
 * with a sparse data section, at path.  0 on success. */
static int write_sparse(const char *rel, const char *path)
{
    json_error_t je;
    json_t *ref = json_load_file(t_ref(rel), 0, &je);
    json_t *ts = json_object_get(ref, "tensors");
    size_t n = json_object_size(ts), i = 0;
    stw_tensor *t = calloc(n ? n : 1, sizeof *t);
    const char *name;
    json_t *sh;
    uint64_t bytes = 0;
    json_object_foreach(ts, name, sh) {
        t[i].name = name;
        t[i].dtype = strstr(name, "position_ids") ? "I64" : "F32";
        t[i].ndim = (int)json_array_size(sh);
        uint64_t e = 1;
        for (int d = 0; d < t[i].ndim && d < 4; d++) e *= (uint64_t)(t[i].shape[d] = json_integer_value(json_array_get(sh, d)));
        bytes += e * stw_elem_size(t[i].dtype);
        i++;
    }
    sd_err err = {0};
    FILE *f = n ? stw_begin(path, t, n, &err) : NULL;
    int rc = -1;
    if (f) {
        long start = ftell(f);
        rc = fflush(f) || ftruncate(fileno(f), start + (off_t)bytes) ? -1 : 0;
        if (stw_end(f, path, &err)) rc = -1;
    }
    free(t);
    json_decref(ref);
    return rc;
}

static int near(double got, double want_gf, double rel) { return fabs(got * 1e-9 - want_gf) <= rel * want_gf; }

/* The models of one sparse checkpoint: its UNet, VAE and text tower(s). */
typedef struct models {
    char path[512];
    sd_weights *w;
    sd_unet *u;
    sd_vae *v;
    sd_clip *c1, *c2;
} models;

/* Write ref list `rel` sparse as <tmp>/<stem>.safetensors and load it (the
 * second tower too when two = 1); 0, or -1 with a FAIL line. */
static int models_open(models *m, const char *rel, const char *stem, int two)
{
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s/%s.safetensors", tmp, stem);
    char name[128];
    snprintf(name, sizeof name, "%s: sparse F32 file from %s", stem, rel);
    CHECK(!write_sparse(rel, m->path), name);
    sd_err err = {0};
    m->w = sdw_open(m->path, &err);
    m->u = m->w ? unet_load(m->w, NULL, NULL, &err) : NULL;
    m->v = m->u ? vae_load(m->w, NULL, &err) : NULL;
    m->c1 = m->v ? clip_load(m->w, NULL, NULL, &err) : NULL;
    if (two) m->c2 = m->c1 ? clip_load(m->w, &(clip_hints){.component = "text_encoder_2"}, NULL, &err) : NULL;
    snprintf(name, sizeof name, "%s: UNet, VAE and text tower%s load", stem, two ? "s" : "");
    CHECKF(two ? m->c2 != NULL : m->c1 != NULL, name, "%s", err.msg);
    return err.code ? -1 : 0;
}

static void models_close(models *m)
{
    clip_free(m->c2);
    clip_free(m->c1);
    vae_free(m->v);
    unet_free(m->u);
    sdw_close(m->w);
    unlink(m->path);
}

static void test_sd15(void)
{
    models m;
    if (models_open(&m, "sd15/tensors.json", "sd15", 0)) goto out;
    sd_unet *u = m.u;
    sd_vae *v = m.v;
    sd_clip *c = m.c1;
    double fu = unet_flops(u, 1, 64, 64, 77), fd = vae_decode_flops(v, 64, 64), fe = vae_encode_flops(v, 512, 512);
    double ft = clip_flops(c, 1, 0);
    /* the README's figures have one decimal: within 0.05 GFLOP, or 0.01 % */
    CHECKF(near(fu, 803.3, 1e-4), "sd15: UNet at 64x64, one image = 803.3 GFLOP", "%.2f", fu * 1e-9);
    CHECKF(near(fd, 2514.5, 1e-4), "sd15: VAE decode to 512² = 2514.5 GFLOP", "%.2f", fd * 1e-9);
    CHECKF(near(fe, 1116.7, 1e-4), "sd15: VAE encode of 512² = 1116.7 GFLOP", "%.2f", fe * 1e-9);
    CHECKF(fabs(ft * 1e-9 - 13.3) < 0.05, "sd15: text encoder, one window = 13.3 GFLOP", "%.3f", ft * 1e-9);
    CHECKF(fabs(unet_flops(u, 2, 64, 64, 77) - 2 * fu) < 1e-6 * fu, "sd15: a CFG pair costs two images", "%g",
           unet_flops(u, 2, 64, 64, 77) / fu);
    /* attention grows faster than area: 128x128 is more than 4x 64x64 */
    double f128 = unet_flops(u, 1, 128, 128, 77);
    CHECKF(f128 > 4.2 * fu, "sd15: UNet at 128x128 > 4.2x 64x64 (self-attention's T²)", "%.3f", f128 / fu);
    /* the penultimate layer only: 11/12 of the layers */
    CHECKF(fabs(clip_flops(c, 1, 11) - ft * 11 / 12) < 1e-6 * ft, "sd15: text encoder to layer 11 = 11/12", "%g",
           clip_flops(c, 1, 11) / ft);
    CHECK(clip_pooled_flops(c, 1) == 0, "sd15: CLIP-L has no projection, no pooled FLOPs");
    printf("# sd15: unet %.2f, decode %.2f, encode %.2f, text %.3f GFLOP\n", fu * 1e-9, fd * 1e-9, fe * 1e-9,
           ft * 1e-9);
out:
    models_close(&m);
}

static void test_sdxl(void)
{
    models m;
    if (models_open(&m, "sdxl/tensors.json", "sdxl", 1)) goto out;
    sd_unet *u = m.u;
    sd_vae *v = m.v;
    sd_clip *c1 = m.c1, *c2 = m.c2;
    const unet_info *in = unet_get_info(u);
    /* a second window adds, in each of the 70 transformer blocks (2 at 640
     * channels in 5 transformers at 64x64, 10 at 1280 in 6 at 32x32), k and
     * v of 77 more 2048-wide rows and 77 more keys for every query */
    double d = unet_flops(u, 1, 128, 128, 154) - unet_flops(u, 1, 128, 128, 77), want = 0;
    static const struct { int blocks, c, hw; } lv[2] = {{10, 640, 64 * 64}, {60, 1280, 32 * 32}};
    for (int i = 0; i < 2; i++)
        want += lv[i].blocks * (2.0 * 2 * 77 * 2048 * lv[i].c + 4.0 * lv[i].hw * 77 * lv[i].c);
    CHECKF(in->context_dim == 2048 && fabs(d - want) < 1e-9 * want, "sdxl: 77 more tokens = the hand count of 70 "
           "cross-attention blocks", "%.4f vs %.4f GFLOP", d * 1e-9, want * 1e-9);
    /* the added vector's MLP: 2816 -> 1280 -> 1280, once per row */
    double one = unet_flops(u, 1, 1, 1, 1), two = unet_flops(u, 2, 1, 1, 1);
    CHECKF(in->add_dim == 1286 && fabs(two - 2 * one) < 1e-9 * one, "sdxl: add_dim 1280 + 6, cost linear in rows",
           "add_dim %d", in->add_dim);
    /* towers: CLIP-L 12 x 768 (MLP 3072), bigG 32 x 1280 (MLP 5120); projection 1280 x 1280 */
    double t1 = 11 * (2.0 * 77 * (4.0 * 768 * 768 + 2.0 * 768 * 3072) + 4.0 * 77 * 77 * 768);
    double t2 = 32 * (2.0 * 77 * (4.0 * 1280 * 1280 + 2.0 * 1280 * 5120) + 4.0 * 77 * 77 * 1280);
    CHECKF(fabs(clip_flops(c1, 1, 11) - t1) < 1e-9 * t1, "sdxl: CLIP-L to its penultimate layer", "%.3f GFLOP",
           clip_flops(c1, 1, 11) * 1e-9);
    CHECKF(fabs(clip_flops(c2, 1, 0) - t2) < 1e-9 * t2, "sdxl: OpenCLIP-bigG, all 32 layers (pooled)", "%.3f GFLOP",
           clip_flops(c2, 1, 0) * 1e-9);
    CHECK(clip_pooled_flops(c2, 2) == 2.0 * 2 * 1280 * 1280, "sdxl: pooled projection 1280 x 1280 per row");
    /* the VAE is SD's: from 64² to 128² latents the convs and linears grow
     * with the area (4x), the mid attention's 4·HW²·512 products 16x */
    double fd = vae_decode_flops(v, 128, 128), f64 = vae_decode_flops(v, 64, 64), hw = 64.0 * 64;
    double extra = 12 * 4.0 * hw * hw * 512;
    CHECKF(near(f64, 2514.5, 1e-4) && fabs(fd - 4 * f64 - extra) < 1e-9 * fd,
           "sdxl: decode at 1024² = 4x SD 1.5's 512² + 12x its mid attention's HW² products", "%.1f GFLOP",
           fd * 1e-9);
    printf("# sdxl at 1024²: unet %.1f GFLOP per image, decode %.1f, text %.2f + %.2f GFLOP per window\n",
           unet_flops(u, 1, 128, 128, 77) * 1e-9, fd * 1e-9, t1 * 1e-9, t2 * 1e-9);
out:
    models_close(&m);
}

/* ---------------------------------------------------------------- executed FLOPs */

/* Winograd F(4x4, 3x3) for the points 0, 1, -1, 2, -1/2, ∞ (ops_wino.c's,
 * scaled by powers of 2): input transform Bᵀ (6x6), output Aᵀ (4x6). */
static const float WBT[6][6] = {{2, 3, -4, -3, 2, 0}, {0, -2, -5, -1, 2, 0}, {0, 2, 1, -5, 2, 0},
                                {0, -1, -2, 1, 2, 0}, {0, 2, -1, -2, 1, 0}, {0, 2, 3, -4, -3, 2}};
static const float WAT[4][6] = {{1, 1, 1, 1, -8, 0}, {0, 1, -1, 2, 4, 0}, {0, 1, 1, 4, -2, 0}, {0, 1, -1, 8, 1, 1}};

static int nonzeros(const float *m, int n)
{
    int z = 0;
    for (int i = 0; i < n; i++) z += m[i] != 0;
    return z;
}

/* Winograd's FLOPs counted from the matrices: per 6x6 tile, Bᵀ·d then (·)·B
 * per input channel (nnz(Bᵀ) multiply-adds per column, 6 columns, twice),
 * the 36 element-wise products summed over IC per output channel, and
 * Aᵀ·M (6 columns) then (·)·A (4 rows) per output channel. */
static double wino_by_hand(int N, int IC, int OC, int OH, int OW)
{
    double tiles = (double)N * ((OH + 3) / 4) * ((OW + 3) / 4);
    double bt = nonzeros(&WBT[0][0], 36), at = nonzeros(&WAT[0][0], 24);
    double rows = ceil(tiles / 6) * 6, outs = ceil(OC / 16.0) * 16;   /* the register tile's padding */
    return 2 * tiles * (bt * 6 * 2 * IC + (at * 6 + at * 4) * OC) + 2 * 36.0 * rows * outs * IC;
}

static void test_conv_counts(void)
{
    double d = ops_conv_exec_flops(0, 2, 320, 640, 64, 64, 3, 3);
    CHECKF(d == 2.0 * 2 * 640 * 64 * 64 * 320 * 9, "direct conv: 2·N·OC·OH·OW·IC·KH·KW", "%.0f", d);
    static const int shapes[][5] = {{2, 320, 320, 64, 64}, {1, 3, 5, 5, 5}, {1, 512, 512, 7, 9}, {2, 640, 320, 1, 1}};
    for (int i = 0; i < 4; i++) {
        const int *s = shapes[i];
        double got = ops_conv_exec_flops(1, s[0], s[1], s[2], s[3], s[4], 3, 3);
        double want = wino_by_hand(s[0], s[1], s[2], s[3], s[4]);
        CHECKF(got == want, "Winograd conv = the count from the F(4,3) matrices (partial tiles whole, padded GEMMs)",
               "N%d IC%d OC%d %dx%d: %.0f vs %.0f", s[0], s[1], s[2], s[3], s[4], got, want);
    }
    double w = ops_conv_exec_flops(1, 2, 320, 320, 64, 64, 3, 3), dd = ops_conv_exec_flops(0, 2, 320, 320, 64, 64, 3, 3);
    CHECKF(dd / w > 3.5 && dd / w < 4.0, "Winograd at SD 1.5's first level: 3.5-4x fewer FLOPs than direct",
           "%.3f", dd / w);
    CHECK(ops_conv_exec_flops(1, 1, 4, 4, 4, 4, 3, 3) > ops_conv_exec_flops(0, 1, 4, 4, 4, 4, 3, 3),
          "Winograd on 4 channels executes more than direct (the transforms dominate)");
}

static float *filled(size_t n)
{
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; p && i < n; i++) p[i] = (float)((i * 7919) % 113) / 113.f - 0.5f;
    return p;
}

/* The counters after one op (reset before): total model and executed FLOPs of `kind`. */
static void flops_of(int kind, double *model, double *exec)
{
    ops_flops f;
    ops_flops_get(&f);
    *model = f.model[kind];
    *exec = f.exec[kind];
}

static void test_live_counters(void)
{
    int N = 2, IC = 16, H = 12, W = 12, OC = 24, M = 32, IN = 48, OUT = 40;
    float *x = filled((size_t)N * H * W * IC), *w = filled((size_t)OC * IC * 9), *y = filled((size_t)N * H * W * OC);
    float *lx = filled((size_t)M * IN), *lw = filled((size_t)IN * OUT), *ly = filled((size_t)M * OUT);
    double mo, ex, direct = ops_conv_exec_flops(0, N, IC, OC, H, W, 3, 3);
    /* below AVX-512 the fp32 direct convs and linears run on our own tile
     * (ops_tile.h), which computes outputs in panels of 16 and rows (pixels)
     * in tiles of 6: those padded products are executed, and counted */
    int own = t_own_tile();
    double direct_ex = own ? 2.0 * ((N * H * W + 5) / 6 * 6) * ((OC + 15) / 16 * 16) * IC * 9 : direct;
    double lin_ex = own ? 2.0 * ((M + 5) / 6 * 6) * IN * ((OUT + 15) / 16 * 16) : 2.0 * M * IN * OUT;
    t_set_prec(OPS_FP32);
    ops_conv_set_winograd(t_ops()->ctx, OPS_WINO_OFF);
    ops_flops_reset();
    op_conv2d_nhwc(t_ops(), x, N, IC, H, W, t_w(w, (size_t)OC * IC * 9), NULL, OC, 3, 3, 1, 1, y, 0);
    flops_of(PROF_CONV, &mo, &ex);
    CHECKF(mo == direct && ex == direct_ex, "counters: a direct conv executes its model FLOPs (own tile: padded)",
           "%.0f %.0f, want %.0f %.0f", mo, ex, direct, direct_ex);
    ops_conv_set_winograd(t_ops()->ctx, OPS_WINO_ALL);
    ops_flops_reset();
    op_conv2d_nhwc(t_ops(), x, N, IC, H, W, t_w(w, (size_t)OC * IC * 9), NULL, OC, 3, 3, 1, 1, y, 0);
    flops_of(PROF_CONV, &mo, &ex);
    /* ours on the whole batch: its tiles' rows padded to 6 */
    double wino = ops_conv_exec_flops(1, N, IC, OC, H, W, 3, 3);
    CHECKF(mo == direct && ex == wino, "counters: a Winograd conv counts its model FLOPs and executes Winograd's",
           "model %.0f, executed %.0f, want %.0f", mo, ex, wino);
    ops_conv_set_winograd(t_ops()->ctx, OPS_WINO_AUTO);
    ops_flops_reset();
    op_linear(t_ops(), lx, M, IN, t_w(lw, (size_t)IN * OUT), NULL, OUT, ly);
    flops_of(PROF_LINEAR, &mo, &ex);
    CHECKF(mo == 2.0 * M * IN * OUT && ex == lin_ex, "counters: an fp32 linear (own tile: padded)",
           "%.0f %.0f, want %.0f", mo, ex, lin_ex);
    if (ops_cpu_bf16()) {
        t_set_prec(OPS_BF16X2);
        ops_flops_reset();
        op_linear(t_ops(), lx, M, IN, t_w(lw, (size_t)IN * OUT), NULL, OUT, ly);
        flops_of(PROF_LINEAR, &mo, &ex);
        CHECKF(mo == 2.0 * M * IN * OUT && ex == 2 * mo, "counters: a bf16x2 linear executes hi and lo products",
               "%.0f %.0f", mo, ex);
        t_set_prec(OPS_FP32);
    }
    int B = 1, T = 300, Hh = 2, D = 8;
    float *q = filled((size_t)B * T * Hh * D), *o = filled((size_t)B * T * Hh * D);
    ops_flops_reset();
    op_attention(t_ops(), q, Hh * D, q, Hh * D, q, Hh * D, B, T, T, Hh, D, 0.3f, o);
    flops_of(PROF_ATTN, &mo, &ex);
    /* executed: 300 query rows run as 128 + 128 + 48 (groups of 8 rows;
     * below AVX-512 120 + 120 + 60, groups of 12: 300), QKᵀ over 304 keys
     * (strips of 32, the last 12 keys a strip of 16), PV over the 300 */
#if defined(__AVX512F__)
    const double rows = 304;
#else
    const double rows = 300;
#endif
    CHECKF(mo == 4.0 * B * Hh * T * T * D && ex == 2.0 * B * Hh * D * rows * (304 + 300),
           "counters: attention, QKᵀ and PV, with the padded rows and key strips it executes", "%.0f %.0f", mo,
           ex);
    /* cross-attention's 77 keys: QKᵀ over 80 (32 + 32 + 16), 81 over 96 */
    int tks[2] = {77, 81}, cols[2] = {80, 96};
    for (int i = 0; i < 2; i++) {
        ops_flops_reset();
        op_attention(t_ops(), q, Hh * D, q, Hh * D, q, Hh * D, B, T, tks[i], Hh, D, 0.3f, o);
        flops_of(PROF_ATTN, &mo, &ex);
        CHECKF(ex == 2.0 * B * Hh * D * rows * (cols[i] + tks[i]), "counters: attention over 77/81 keys executes "
               "QKᵀ over 80/96 (a last strip of 16 when enough)", "%d keys: %.0f", tks[i], ex);
    }
    ops_flops_reset();
    op_attention_causal(t_ops(), q, Hh * D, q, Hh * D, q, Hh * D, B, T, Hh, D, 0.3f, o);
    flops_of(PROF_ATTN, &mo, &ex);
    CHECKF(mo == 4.0 * B * Hh * T * T * D && ex < mo && ex > mo / 2,
           "counters: causal attention executes only the key blocks its rows see", "%.0f %.0f", mo, ex);
    ops_prof_reset();
    flops_of(PROF_ATTN, &mo, &ex);
    CHECK(mo == 0 && ex == 0, "counters: ops_prof_reset clears them");
    free(x); free(w); free(y); free(lx); free(lw); free(ly); free(q); free(o);
}

int main(void)
{
    test_conv_counts();
    test_live_counters();
    if (!t_have_ref()) { printf("ok - skipped: no reference data\n"); return t_done(); }
    if (mm_tmpdir(tmp, sizeof tmp, "flops")) { CHECK(0, "temp folder"); return t_done(); }
    test_sd15();
    test_sdxl();
    t_rmtree(tmp);
    return t_done();
}
