/* make_lora.c — writes a random kohya-named LoRA for a checkpoint, for
 * `sdserve bench --lora` (docs/LORA.md "Cost"): one module per UNet
 * attention projection (to_q/k/v/out.0), proj_in/out, feed-forward, every
 * ResBlock conv1/conv2/conv_shortcut/time_emb_proj, down/upsampler conv,
 * and per text-encoder self_attn q/k/v/out_proj and mlp fc1/fc2 (lora_te_;
 * on SDXL, whose second encoder is text_encoder_2.*, lora_te1_/lora_te2_): down
 * [r, in(,kh,kw)], up [out, r(,1,1)], alpha = r, F32, values
 * normal(0, 0.01) (uniform-sum approximation, fixed seed).
 *
 *   build/tools/make_lora MODEL --rank R -o FILE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/engine/loader/st_write.h"
#include "../src/engine/loader/weights.h"

static const char *const KINDS[] = {
    ".to_q.weight", ".to_k.weight", ".to_v.weight", ".to_out.0.weight", "proj_in.weight", "proj_out.weight",
    ".ff.net.0.proj.weight", ".ff.net.2.weight", ".conv1.weight", ".conv2.weight", ".conv_shortcut.weight",
    ".time_emb_proj.weight", "samplers.0.conv.weight", "_proj.weight", ".fc1.weight", ".fc2.weight",
};

/* A weight a LoRA of the usual kind patches: its kohya module name into out
 * (xl: the model has SDXL's two text encoders). */
static int wanted(const sdw_tensor *t, int xl, char *out, size_t size)
{
    const char *n = t->name, *comp;
    if (t->ndim != 2 && t->ndim != 4) return 0;
    if (!strncmp(n, "unet.", 5)) {
        comp = "lora_unet_", n += 5;
    } else if (!strncmp(n, "text_encoder.", 13) && strstr(n, ".encoder.layers.")) {
        comp = xl ? "lora_te1_" : "lora_te_", n += 13;
    } else if (!strncmp(n, "text_encoder_2.", 15) && strstr(n, ".encoder.layers.")) {
        comp = "lora_te2_", n += 15;
    } else {
        return 0;
    }
    int hit = 0;
    for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++) hit |= strstr(n, KINDS[k]) != NULL;
    if (!hit) return 0;
    size_t len = strlen(n) - 7;   /* without ".weight" */
    snprintf(out, size, "%s%.*s", comp, (int)len, n);
    for (char *p = out; *p; p++)
        if (*p == '.') *p = '_';
    return 1;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float noise(void)
{
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        s += (float)(rng >> 40) / (float)(1 << 24) - 0.5f;
    }
    return s * 0.01f * 1.7320508f;   /* 4 uniforms: variance 1/3 -> sd 0.01 */
}

int main(int argc, char **argv)
{
    const char *model = NULL, *out = NULL;
    int rank = 32;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rank") && i + 1 < argc) rank = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else model = argv[i];
    }
    if (!model || !out || rank < 1 || rank > 1024) {
        fprintf(stderr, "usage: make_lora MODEL --rank R -o FILE\n");
        return 2;
    }
    sd_err err = {0};
    sd_weights *w = sdw_open(model, &err);
    if (!w) { fprintf(stderr, "make_lora: %s\n", err.msg); return 1; }
    size_t n = sdw_count(w), k = 0;
    stw_tensor *t = calloc(3 * n, sizeof *t);
    char (*names)[3][300] = calloc(n, sizeof *names);
    const sdw_tensor **src = calloc(n, sizeof *src);
    int xl = 0;
    for (size_t i = 0; i < n; i++) xl |= !strncmp(sdw_at(w, i)->name, "text_encoder_2.", 15);
    for (size_t i = 0; t && names && src && i < n; i++) {
        const sdw_tensor *x = sdw_at(w, i);
        char mod[256];
        if (!wanted(x, xl, mod, sizeof mod)) continue;
        src[k / 3] = x;
        snprintf(names[k / 3][0], 300, "%s.lora_down.weight", mod);
        snprintf(names[k / 3][1], 300, "%s.lora_up.weight", mod);
        snprintf(names[k / 3][2], 300, "%s.alpha", mod);
        t[k] = (stw_tensor){names[k / 3][0], "F32", x->ndim, {rank, x->shape[1], x->ndim == 4 ? x->shape[2] : 0,
                                                             x->ndim == 4 ? x->shape[3] : 0}};
        t[k + 1] = (stw_tensor){names[k / 3][1], "F32", x->ndim, {x->shape[0], rank, 1, 1}};
        t[k + 2] = (stw_tensor){names[k / 3][2], "F32", 0, {0}};
        k += 3;
    }
    FILE *f = t && names && src ? stw_begin(out, t, k, &err) : NULL;
    size_t params = 0;
    for (size_t i = 0; f && i < k; i += 3) {
        const sdw_tensor *x = src[i / 3];
        int64_t in = x->shape[1] * (x->ndim == 4 ? x->shape[2] * x->shape[3] : 1);
        size_t m = (size_t)rank * (size_t)(in > x->shape[0] ? in : x->shape[0]);
        float *buf = malloc(m * sizeof *buf), alpha = (float)rank;
        if (!buf) break;
        for (size_t j = 0; j < (size_t)rank * in; j++) buf[j] = noise();
        fwrite(buf, sizeof *buf, (size_t)rank * in, f);
        for (size_t j = 0; j < (size_t)rank * x->shape[0]; j++) buf[j] = noise();
        fwrite(buf, sizeof *buf, (size_t)rank * x->shape[0], f);
        fwrite(&alpha, sizeof alpha, 1, f);
        params += (size_t)rank * (in + x->shape[0]);
        free(buf);
    }
    int rc = f ? stw_end(f, out, &err) : -1;
    if (rc) fprintf(stderr, "make_lora: %s\n", err.msg[0] ? err.msg : "out of memory");
    else printf("%s: %zu modules, rank %d, %.1f M parameters\n", out, k / 3, rank, params * 1e-6);
    free(t); free(names); free(src);
    sdw_close(w);
    return rc ? 1 : 0;
}
