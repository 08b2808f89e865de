/* taesd.c — TAESD, the tiny autoencoder (see taesd.h).
 *
 * Both halves are plain sequences of layers (the nn.Sequential of
 * madebyollin's taesd.py; diffusers' EncoderTiny / DecoderTiny .layers):
 *
 *   block  relu(conv4(relu(conv2(relu(conv0(x))))) + skip(x)), 3x3 convs,
 *          skip = identity or a 1x1 conv without bias ("N.skip.weight")
 *   encoder conv(3 -> C) | blocks | [conv stride 2, no bias | blocks]... | conv(C -> latent)
 *   decoder tanh(z/3)*3 | conv(latent -> C) | ReLU | [blocks | Upsample 2x | conv, no bias]...
 *           | blocks | conv(C -> 3)
 *
 * A layer's kind is read from its tensors: "N.weight" a conv, "N.conv.0.weight"
 * a block, nothing a parameterless layer (in the decoder: the Clamp before
 * the first conv in madebyollin's file, the ReLU right after it, else a
 * nearest 2x upsampling, fused into the conv that follows it).  In the
 * encoder a conv without bias is a stride-2 one.  Activations are NHWC in
 * three ping-pong buffers sized for the largest layer; convs go through
 * the ops layer at the model's precision, each ReLU as its conv's
 * post-op (OPS_CONV_RELU: no pass of its own), the Clamp as op_tanh_clamp,
 * the image's [-1, 1] <-> [0, 1] scales as op_scale_shift. */
#include "taesd.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../loader/safetensors.h"
#include "../../base/alloc.h"

#define FIELD "preview_decoder"
#define TAESD_MAX_LAYERS 256

enum { TL_CONV, TL_BLOCK, TL_RELU, TL_UP };

typedef struct tconv {
    ops_weight *w;
    float *wdata, *b;          /* owned fp32 copies (b NULL: no bias) */
    int ic, oc, k;
} tconv;

typedef struct tlayer {
    int kind, index;           /* index: diffusers' (decoder.layers.N) */
    int stride;                /* TL_CONV */
    int up;                    /* TL_CONV: its input upsampled 2x first (the layer before was TL_UP) */
    tconv c, c2, c4, skip;     /* TL_CONV: c; TL_BLOCK: c (conv.0), c2, c4, skip (w NULL: identity) */
} tlayer;

typedef struct tnet {
    tlayer *l;
    int n;
    int in_c, out_c, width, scale;
} tnet;

struct taesd {
    ops_m om;
    tnet enc, dec;
    float *buf[3];
    size_t buf_n;
    taesd_tap_fn tap; void *tap_ud;
};

/* ---- loading ------------------------------------------------------------ */

typedef struct src {
    const st_file *f;
    const char *prefix;        /* "decoder.layers." or "" */
    int shift;                 /* file index - diffusers index (madebyollin's decoder: 1) */
    const char *what;          /* "decoder" / "encoder" for messages */
} src;

static const st_entry *find(const st_file *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->e[i].name, name)) return &f->e[i];
    return NULL;
}

static const st_entry *findf(const src *s, int idx, const char *suffix)
{
    char name[256];
    snprintf(name, sizeof name, "%s%d.%s", s->prefix, idx + s->shift, suffix);
    return find(s->f, name);
}

static float *widen(const st_entry *e)
{
    float *d = sd_malloc(sizeof(float) * (size_t)(e->numel ? e->numel : 1));
    if (d) st_to_f32(d, e->data, e->dtype, (size_t)e->numel);
    return d;
}

/* conv "<prefix><idx><sub>.weight" [oc, ic, k, k] and its optional bias [oc] */
static int load_conv(const src *s, int idx, const char *sub, ops_ctx *ctx, tconv *c, sd_err *err)
{
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%sweight", sub);
    snprintf(bn, sizeof bn, "%sbias", sub);
    const st_entry *w = findf(s, idx, wn), *b = findf(s, idx, bn);
    if (!w) return sd_errf(err, SD_EFORMAT, FIELD, "%s: missing tensor %s%d.%s", s->f->path, s->prefix, idx + s->shift, wn);
    if (w->dtype == ST_OTHER || w->ndim != 4 || w->shape[2] != w->shape[3] || w->shape[2] % 2 == 0 || w->shape[0] < 1 ||
        w->shape[1] < 1)
        return sd_errf(err, SD_EFORMAT, FIELD, "%s: tensor %s is not a conv weight [out, in, k, k] (odd k, float)",
                       s->f->path, w->name);
    if (b && (b->dtype == ST_OTHER || b->ndim != 1 || b->shape[0] != w->shape[0]))
        return sd_errf(err, SD_EFORMAT, FIELD, "%s: tensor %s has shape [%lld...], expected [%lld]", s->f->path,
                       b->name, (long long)(b->ndim ? b->shape[0] : 0), (long long)w->shape[0]);
    c->oc = (int)w->shape[0];
    c->ic = (int)w->shape[1];
    c->k = (int)w->shape[2];
    if (!(c->wdata = widen(w)) || (b && !(c->b = widen(b))) ||
        !(c->w = ops_weight_register(ctx, c->wdata, (size_t)w->numel, NULL, NULL)))
        return sd_errf(err, SD_ENOMEM, FIELD, "out of memory for the preview decoder's weights");
    return 0;
}

static int load_block(const src *s, int idx, ops_ctx *ctx, tlayer *l, sd_err *err)
{
    if (load_conv(s, idx, "conv.0.", ctx, &l->c, err) || load_conv(s, idx, "conv.2.", ctx, &l->c2, err) ||
        load_conv(s, idx, "conv.4.", ctx, &l->c4, err))
        return -1;
    if (findf(s, idx, "skip.weight") && load_conv(s, idx, "skip.", ctx, &l->skip, err)) return -1;
    const int C = l->c.oc;
    const int ok = l->c.k == 3 && l->c2.k == 3 && l->c4.k == 3 && l->c2.ic == C && l->c2.oc == C && l->c4.ic == C &&
                   (l->skip.w ? l->skip.k == 1 && l->skip.ic == l->c.ic && l->skip.oc == l->c4.oc : l->c.ic == l->c4.oc);
    if (!ok)
        return sd_errf(err, SD_EFORMAT, FIELD, "%s: block %s%d: its convs' shapes do not chain (3x3, %d -> %d -> %d)",
                       s->f->path, s->prefix, idx + s->shift, l->c.ic, C, l->c4.oc);
    return 0;
}

/* The largest diffusers index of the half's layers, -1 when none. */
static int last_index(const src *s)
{
    const size_t pl = strlen(s->prefix);
    int last = -1;
    for (size_t i = 0; i < s->f->n; i++) {
        const char *nm = s->f->e[i].name;
        if (strncmp(nm, s->prefix, pl) || nm[pl] < '0' || nm[pl] > '9') continue;
        long v = strtol(nm + pl, NULL, 10) - s->shift;
        if (v > last && v < TAESD_MAX_LAYERS) last = (int)v;
    }
    return last;
}

static void free_conv(tconv *c)
{
    ops_weight_free(c->w);
    free(c->wdata);
    free(c->b);
}

static void free_net(tnet *n)
{
    for (int i = 0; n->l && i < n->n; i++) {
        free_conv(&n->l[i].c); free_conv(&n->l[i].c2); free_conv(&n->l[i].c4); free_conv(&n->l[i].skip);
    }
    free(n->l);
    memset(n, 0, sizeof *n);
}

/* A parameterless layer of the decoder: the Clamp (before any conv; we
 * apply tanh(z/3)*3 always), the ReLU after the first conv, else 2x up. */
static int bare_layer(const src *s, int dec, int idx, tnet *n, int convs, sd_err *err)
{
    if (!dec)
        return sd_errf(err, SD_EFORMAT, FIELD, "%s: encoder layer %s%d has no weights", s->f->path, s->prefix, idx + s->shift);
    if (convs == 0) return 0;
    tlayer *l = &n->l[n->n++];
    l->index = idx;
    l->kind = convs == 1 && n->l[n->n - 2].kind == TL_CONV && n->n == 2 ? TL_RELU : TL_UP;
    return 0;
}

/* Channels chain and strides/upsamplings; width and scale. */
static int check_net(const src *s, int dec, tnet *n, sd_err *err)
{
    int ch = -1, convs = 0;
    n->scale = 1;
    for (int i = 0; i < n->n; i++) {
        tlayer *l = &n->l[i];
        if (l->kind == TL_RELU) continue;
        if (l->kind == TL_UP) {
            if (i + 1 >= n->n || n->l[i + 1].kind != TL_CONV || n->l[i + 1].c.k != 3)
                return sd_errf(err, SD_EFORMAT, FIELD, "%s: upsampling layer %d is not followed by a 3x3 conv",
                               s->f->path, l->index + s->shift);
            n->l[i + 1].up = 1;
            n->scale *= 2;
            continue;
        }
        if (ch < 0) ch = n->in_c = l->c.ic;
        if (l->c.ic != ch)
            return sd_errf(err, SD_EFORMAT, FIELD, "%s: %s layer %d takes %d channels, the layer before gives %d",
                           s->f->path, s->what, l->index + s->shift, l->c.ic, ch);
        if (l->kind == TL_CONV && !dec && convs > 0 && !l->c.b) { l->stride = 2; n->scale *= 2; }
        else l->stride = 1;
        convs++;
        ch = l->kind == TL_BLOCK ? l->c4.oc : l->c.oc;
        if (ch > n->width) n->width = ch;
        if (l->c.ic > n->width) n->width = l->c.ic;
    }
    n->out_c = ch;
    if (convs < 2 || n->l[n->n - 1].kind != TL_CONV)
        return sd_errf(err, SD_EFORMAT, FIELD, "%s: the %s does not end with a conv", s->f->path, s->what);
    return 0;
}

static int load_net(const src *s, int dec, ops_ctx *ctx, tnet *n, sd_err *err)
{
    const int last = last_index(s);
    if (last < 0) return 0;
    n->l = sd_calloc((size_t)last + 2, sizeof *n->l);
    if (!n->l) return sd_errf(err, SD_ENOMEM, FIELD, "out of memory");
    int convs = 0;
    for (int idx = dec ? -s->shift : 0; idx <= last; idx++) {
        if (findf(s, idx, "conv.0.weight")) {
            tlayer *l = &n->l[n->n++];
            l->kind = TL_BLOCK; l->index = idx;
            if (load_block(s, idx, ctx, l, err)) return -1;
            convs++;
        } else if (findf(s, idx, "weight")) {
            tlayer *l = &n->l[n->n++];
            l->kind = TL_CONV; l->index = idx;
            if (load_conv(s, idx, "", ctx, &l->c, err)) return -1;
            convs++;
        } else if (bare_layer(s, dec, idx, n, convs, err)) {
            return -1;
        }
    }
    return check_net(s, dec, n, err);
}

/* "<dir>/<name>" when it is a regular file: 0 and the path in out. */
static int file_in(const char *dir, const char *name, char *out, size_t n)
{
    struct stat st;
    snprintf(out, n, "%s/%s", dir, name);
    return stat(out, &st) == 0 && S_ISREG(st.st_mode) ? 0 : -1;
}

/* madebyollin's other half: the last "decoder" in the file name swapped for "encoder" (or back). */
static int other_half(const char *path, char *out, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *hit = NULL;
    for (const char *p = base; (p = strstr(p, "coder")) != NULL; p++)
        if (p - base >= 2 && (!strncmp(p - 2, "de", 2) || !strncmp(p - 2, "en", 2))) hit = p - 2;
    if (!hit || strlen(path) + 1 > n) return -1;
    snprintf(out, n, "%.*s%s%s", (int)(hit - path), path, strncmp(hit, "de", 2) ? "de" : "en", hit + 2);
    struct stat st;
    return stat(out, &st) == 0 && S_ISREG(st.st_mode) ? 0 : -1;
}

/* One file's halves: diffusers names, or one madebyollin Sequential (an
 * encoder has "0.weight": its first conv; a decoder starts at 1). */
static int load_file(taesd *t, const char *path, sd_err *err)
{
    st_file f;
    if (st_open(&f, path, err)) {
        if (err) snprintf(err->field, sizeof err->field, "%s", FIELD);
        sd_err_prefix(err, "--preview-decoder");
        return -1;
    }
    int rc = 0;
    ops_ctx *ctx = t->om.ctx;
    src dec = {&f, "decoder.layers.", 0, "decoder"}, enc = {&f, "encoder.layers.", 0, "encoder"};
    if (last_index(&dec) >= 0 || last_index(&enc) >= 0) {
        if (!t->dec.l) rc = load_net(&dec, 1, ctx, &t->dec, err);
        if (!rc && !t->enc.l) rc = load_net(&enc, 0, ctx, &t->enc, err);
    } else if (find(&f, "0.weight")) {
        src e1 = {&f, "", 0, "encoder"};
        if (!t->enc.l) rc = load_net(&e1, 0, ctx, &t->enc, err);
    } else {
        src d1 = {&f, "", 1, "decoder"};
        if (!t->dec.l) rc = load_net(&d1, 1, ctx, &t->dec, err);
    }
    st_close(&f);
    return rc;
}

static int find_file(const char *path, char *out, size_t n, sd_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return sd_errf(err, errno == ENOENT ? SD_ENOTFOUND : SD_EIO, FIELD, "--preview-decoder %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) { snprintf(out, n, "%s", path); return 0; }
    if (!file_in(path, "diffusion_pytorch_model.safetensors", out, n)) return 0;
    if (!file_in(path, "taesd_decoder.safetensors", out, n)) return 0;
    return sd_errf(err, SD_ENOTFOUND, FIELD, "--preview-decoder %s: a folder without diffusion_pytorch_model.safetensors "
                   "(diffusers AutoencoderTiny) or taesd_decoder.safetensors", path);
}

taesd *taesd_load(const char *path, ops_ctx *ctx, int prec, sd_err *err)
{
    char file[4096], other[4096];
    if (!path || !*path) { sd_errf(err, SD_EINVAL, FIELD, "no preview decoder file given"); return NULL; }
    size_t len = strlen(path);
    if (len > 3 && (!strcmp(path + len - 3, ".pt") || !strcmp(path + len - 4, ".pth") || !strcmp(path + len - 5, ".ckpt"))) {
        sd_errf(err, SD_EFORMAT, FIELD, "--preview-decoder %s: pickle files are not read; use the .safetensors "
                "release (taesd_decoder.safetensors) or a diffusers AutoencoderTiny folder", path);
        return NULL;
    }
    if (find_file(path, file, sizeof file, err)) return NULL;
    taesd *t = sd_calloc(1, sizeof *t);
    if (!t) { sd_errf(err, SD_ENOMEM, FIELD, "out of memory"); return NULL; }
    t->om = (ops_m){ctx, prec};
    if (load_file(t, file, err)) goto fail;
    if ((!t->dec.l || !t->enc.l) && !other_half(file, other, sizeof other) && load_file(t, other, err)) goto fail;
    if (!t->dec.l && !t->enc.l) {
        sd_errf(err, SD_EFORMAT, FIELD, "--preview-decoder %s: not a TAESD (no decoder.layers.N / encoder.layers.N "
                "or Sequential-indexed conv tensors)", file);
        goto fail;
    }
    if (t->dec.l && t->enc.l && t->dec.in_c != t->enc.out_c) {
        sd_errf(err, SD_EFORMAT, FIELD, "--preview-decoder %s: the decoder takes %d latent channels, the encoder "
                "gives %d", file, t->dec.in_c, t->enc.out_c);
        goto fail;
    }
    return t;
fail:
    taesd_free(t);
    return NULL;
}

void taesd_free(taesd *t)
{
    if (!t) return;
    free_net(&t->enc);
    free_net(&t->dec);
    for (int i = 0; i < 3; i++) free(t->buf[i]);
    free(t);
}

void taesd_set_precision(taesd *t, int prec) { t->om.prec = prec; }
int taesd_has_decoder(const taesd *t) { return t->dec.l != NULL; }
int taesd_has_encoder(const taesd *t) { return t->enc.l != NULL; }
int taesd_latent_channels(const taesd *t) { return t->dec.l ? t->dec.in_c : t->enc.out_c; }
int taesd_scale(const taesd *t) { return t->dec.l ? t->dec.scale : t->enc.scale; }
int taesd_width(const taesd *t) { return t->dec.width > t->enc.width ? t->dec.width : t->enc.width; }
void taesd_set_tap(taesd *t, taesd_tap_fn tap, void *ud) { t->tap = tap; t->tap_ud = ud; }

double taesd_decode_flops(const taesd *t, int h, int w)
{
    double f = 0, hw = (double)h * w;
    for (int i = 0; t->dec.l && i < t->dec.n; i++) {
        const tlayer *l = &t->dec.l[i];
        if (l->kind == TL_CONV && l->up) hw *= 4;
        const tconv *c[4] = {&l->c, &l->c2, &l->c4, &l->skip};
        for (int k = 0; k < 4 && l->kind != TL_RELU && l->kind != TL_UP; k++)
            if (c[k]->w) f += 2.0 * c[k]->ic * c[k]->oc * c[k]->k * c[k]->k * hw;
    }
    return f;
}

/* ---- forward ------------------------------------------------------------- */

static int reserve(taesd *t, size_t n, sd_err *err)
{
    if (n <= t->buf_n) return 0;
    for (int i = 0; i < 3; i++) {
        free(t->buf[i]);
        t->buf[i] = sd_malloc(n * sizeof(float));
    }
    t->buf_n = t->buf[0] && t->buf[1] && t->buf[2] ? n : 0;
    return t->buf_n ? 0 : sd_errf(err, SD_ENOMEM, FIELD, "out of memory for the preview decoder's activations");
}

/* flags: OPS_CONV_ACCUM (y += conv), OPS_CONV_RELU (then ReLU, the ops layer's post-op). */
static void conv(const taesd *t, const tconv *c, const float *x, int H, int W, int stride, float *y, int flags)
{
    op_conv2d_nhwc(&t->om, x, 1, c->ic, H, W, c->w, c->b, c->oc, c->k, c->k, stride, c->k / 2, y, flags);
}

/* The three buffers: buf[cur] holds the activation; returns the output's
 * slot.  With an identity skip the last conv accumulates into the input
 * itself (no longer needed), so no copy is made. */
static int block_forward(const taesd *t, const tlayer *l, int cur, int H, int W)
{
    float *x = t->buf[cur], *a = t->buf[(cur + 1) % 3], *b = t->buf[(cur + 2) % 3];
    conv(t, &l->c, x, H, W, 1, a, OPS_CONV_RELU);
    conv(t, &l->c2, a, H, W, 1, b, OPS_CONV_RELU);
    if (!l->skip.w) {
        conv(t, &l->c4, b, H, W, 1, x, OPS_CONV_ACCUM | OPS_CONV_RELU);
        return cur;
    }
    conv(t, &l->skip, x, H, W, 1, a, 0);
    conv(t, &l->c4, b, H, W, 1, a, OPS_CONV_ACCUM | OPS_CONV_RELU);
    return (cur + 1) % 3;
}

/* Runs net on buf[0] (C x H x W, NHWC); returns the output's slot and its size in C, H, W. */
static int net_forward(const taesd *t, const tnet *n, int dec, int *C, int *H, int *W)
{
    int cur = 0;
    for (int i = 0; i < n->n; i++) {
        const tlayer *l = &n->l[i];
        if (l->kind == TL_UP) continue;   /* fused into the conv after it */
        /* the decoder's ReLU after its first conv is that conv's post-op (the
         * ops layer's): the ReLU layer only reports, the conv does not */
        const int relu_next = i + 1 < n->n && n->l[i + 1].kind == TL_RELU;
        if (l->kind == TL_RELU) {
            /* done by the conv before it */
        } else if (l->kind == TL_BLOCK) {
            cur = block_forward(t, l, cur, *H, *W);
            *C = l->c4.oc;
        } else {
            float *y = t->buf[(cur + 1) % 3];
            if (l->up) {
                op_conv2d_nhwc_up2(&t->om, t->buf[cur], 1, l->c.ic, *H, *W, l->c.w, l->c.b, l->c.oc, y);
                *H *= 2; *W *= 2;
            } else {
                conv(t, &l->c, t->buf[cur], *H, *W, l->stride, y, relu_next ? OPS_CONV_RELU : 0);
                *H = (*H + 2 * (l->c.k / 2) - l->c.k) / l->stride + 1;
                *W = (*W + 2 * (l->c.k / 2) - l->c.k) / l->stride + 1;
            }
            *C = l->c.oc;
            cur = (cur + 1) % 3;
        }
        if (relu_next) continue;
        if (t->tap) t->tap(t->tap_ud, dec, l->index, t->buf[cur], *C, *H, *W);
    }
    return cur;
}

int taesd_decode(taesd *t, const float *z, int h, int w, float *img, sd_err *err)
{
    const tnet *n = &t->dec;
    if (!n->l) return sd_errf(err, SD_EINVAL, FIELD, "the preview decoder file has no decoder");
    const int s = n->scale;
    if (reserve(t, (size_t)n->width * h * s * w * s, err)) return -1;
    int C = n->in_c, H = h, W = w;
    op_nchw_to_nlc(z, 1, C, h * w, t->buf[0]);
    op_tanh_clamp(t->buf[0], (size_t)C * h * w, 3.0f);   /* the Clamp layer, in the ops layer */
    int out = net_forward(t, n, 1, &C, &H, &W);
    op_nlc_to_nchw(t->buf[out], 1, C, H * W, img);
    op_scale_shift(img, (size_t)C * H * W, 2.0f, -1.0f);   /* [0, 1] -> the pipeline's [-1, 1] */
    return 0;
}

int taesd_encode(taesd *t, const float *img, int H, int W, float *z, sd_err *err)
{
    const tnet *n = &t->enc;
    if (!n->l) return sd_errf(err, SD_EINVAL, FIELD, "the preview decoder files have no encoder");
    if (H % n->scale || W % n->scale)
        return sd_errf(err, SD_EINVAL, "image", "the image's sides (%dx%d) must be multiples of %d", W, H, n->scale);
    if (reserve(t, (size_t)n->width * H * W, err)) return -1;
    int C = n->in_c, h = H, w = W;
    op_nchw_to_nlc(img, 1, C, H * W, t->buf[0]);
    op_scale_shift(t->buf[0], (size_t)C * H * W, 0.5f, 0.5f);   /* [-1, 1] -> TAESD's [0, 1] */
    int out = net_forward(t, n, 0, &C, &h, &w);
    op_nlc_to_nchw(t->buf[out], 1, C, h * w, z);
    return 0;
}
