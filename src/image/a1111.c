/* a1111.c — the "parameters" text AUTOMATIC1111's web UI writes into its
 * images (and reads back with "PNG Info"), so our outputs can be dropped
 * into that tool and reproduced. */
#include "image.h"
#include "../base/alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = sd_realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_fmt(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A value as A1111 writes it: bare, or JSON-quoted when it holds , : " or a newline. */
static void sb_value(sbuf *b, const char *v)
{
    if (!strpbrk(v, ",:\"\n")) {
        sb_str(b, v);
        return;
    }
    sb_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        switch (*p) {
        case '"': sb_str(b, "\\\""); break;
        case '\\': sb_str(b, "\\\\"); break;
        case '\n': sb_str(b, "\\n"); break;
        case '\r': sb_str(b, "\\r"); break;
        case '\t': sb_str(b, "\\t"); break;
        default:
            if (*p < 0x20) sb_fmt(b, "\\u%04x", *p);
            else sb_add(b, (const char *)p, 1);
        }
    }
    sb_add(b, "\"", 1);
}

/* ", Label: value" when there is a value (NULL or "" -> nothing). */
static void sb_entry(sbuf *b, const char *label, const char *v)
{
    if (!v || !*v) return;
    sb_fmt(b, ", %s: ", label);
    sb_value(b, v);
}

/* Inpainting's entries (img_inpaint_info). */
static void sb_inpaint(sbuf *b, const img_inpaint_info *m)
{
    if (!m->on) return;
    if (m->inverted) sb_str(b, ", Mask mode: Inpaint not masked");
    if (m->mask_blur > 0) sb_fmt(b, ", Mask blur: %d", m->mask_blur);
    if (m->only_masked) sb_fmt(b, ", Inpaint area: Only masked, Masked area padding: %d", m->padding);
    sb_entry(b, "Masked content", m->masked_content);
}

char *img_a1111_parameters(const img_gen_info *g)
{
    sbuf b = {0};
    sb_str(&b, g->prompt ? g->prompt : "");
    if (g->negative && *g->negative) {
        sb_str(&b, "\nNegative prompt: ");
        sb_str(&b, g->negative);
    }
    sb_fmt(&b, "\nSteps: %d, Sampler: ", g->steps);
    sb_value(&b, g->sampler ? g->sampler : "");
    if (g->schedule) {
        sb_str(&b, ", Schedule type: ");
        sb_value(&b, g->schedule);
    }
    sb_fmt(&b, ", CFG scale: %g, Seed: %llu, Size: %dx%d", (double)g->cfg, (unsigned long long)g->seed,
           g->width, g->height);
    sb_entry(&b, "Model hash", g->model_hash);
    sb_entry(&b, "Model", g->model_name);
    sb_entry(&b, "Model family", g->family);
    sb_entry(&b, "VAE hash", g->vae_hash);
    sb_entry(&b, "VAE", g->vae_name);
    if (g->denoise >= 0) sb_fmt(&b, ", Denoising strength: %g", (double)g->denoise);
    if (g->clip_skip > 1) sb_fmt(&b, ", Clip skip: %d", g->clip_skip);
    if (g->spacing) {
        sb_str(&b, ", Timestep spacing: ");
        sb_value(&b, g->spacing);
    }
    /* SDXL's size conditioning, the entries the request set (so the
     * picture can be made again) */
    const struct { const char *label; int v; } size_cond[] = {
        {"Original width", g->orig_width}, {"Original height", g->orig_height}, {"Crop top", g->crop_top},
        {"Crop left", g->crop_left}, {"Target width", g->target_width}, {"Target height", g->target_height},
    };
    for (size_t i = 0; i < sizeof size_cond / sizeof size_cond[0]; i++)
        if (size_cond[i].v) sb_fmt(&b, ", %s: %d", size_cond[i].label, size_cond[i].v);
    sb_inpaint(&b, &g->inpaint);
    if (g->hr_upscaler) {   /* hires fix */
        if (g->hr_resize_x || g->hr_resize_y) sb_fmt(&b, ", Hires resize: %dx%d", g->hr_resize_x, g->hr_resize_y);
        else sb_fmt(&b, ", Hires upscale: %g", (double)g->hr_scale);
        if (g->hr_steps > 0) sb_fmt(&b, ", Hires steps: %d", g->hr_steps);
        sb_entry(&b, "Hires upscaler", g->hr_upscaler);
    }
    if (g->lora_hashes && *g->lora_hashes) {
        sb_str(&b, ", Lora hashes: ");
        sb_value(&b, g->lora_hashes);
    }
    sb_entry(&b, "VAE Decoder", g->vae_decoder);
    if (b.oom || !b.s) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
