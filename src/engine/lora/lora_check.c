/* lora_check.c — one LoRA module: its target found, its down/up/alpha
 * checked against each other and against that target, its halves widened
 * to fp32 (see lora_check.h).
 *
 * Shapes (target [out, in] or [out, in, kh, kw], flattened in = in·kh·kw):
 * down [r, in] or [r, in, kh, kw], up [out, r] or [out, r, 1, 1], alpha one
 * value; 1 <= r <= LORA_MAX_RANK; alpha and every value finite.  A PEFT
 * module's alpha comes from __metadata__ lora_alpha (or its own .alpha),
 * and its rank must equal the metadata's r unless a rank_pattern is given.
 * A file without alpha means alpha = rank (scale 1), as kohya and diffusers
 * read it. */
#include "lora_int.h"
#include "lora_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/alloc.h"

int lora_fail(sd_err *err, const char *lora, const char *module, const char *fmt, ...)
{
    char detail[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (module) return sd_errf(err, SD_EINVAL, "loras", "LoRA '%s': module '%s': %s", lora, module, detail);
    return sd_errf(err, SD_EINVAL, "loras", "LoRA '%s': %s", lora, detail);
}

const char *lora_part_name(lora_part p)
{
    static const char *const names[] = {"down (lora_down / lora_A)", "up (lora_up / lora_B)", "alpha"};
    return p < LORA_NPARTS ? names[p] : "?";
}

static const char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}

static int is_peft(const char *module)
{
    return strncmp(module, "lora_", 5) != 0;
}

static const char *family_name(const lora_names *nm)
{
    return lora_names_two_te(nm) ? "SDXL" : "SD 1.x/2.x";
}

static int starts_with_any(const char *s, const char *const *prefixes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strncmp(s, prefixes[i], strlen(prefixes[i]))) return 1;
    return 0;
}

/* A module of the other family's text encoders: refused with the reason
 * (SDXL's lora_te1_/lora_te2_/text_encoder_2. on a one-encoder model;
 * SD1/SD2's lora_te_ on SDXL, which A1111 does not apply either). */
int lora_check_family(const char *lora, const char *module, const lora_names *nm, sd_err *err)
{
    static const char *const sdxl[] = {"lora_te1_", "lora_te2_", "text_encoder_2."};
    static const char *const sd12[] = {"lora_te_"};
    if (!lora_names_two_te(nm) && starts_with_any(module, sdxl, sizeof sdxl / sizeof sdxl[0]))
        return lora_fail(err, lora, NULL,
                         "is for SDXL, not this SD 1.x/2.x model (module '%s' names SDXL's two text encoders: "
                         "lora_te1_/lora_te2_, text_encoder_2.)", module);
    if (lora_names_two_te(nm) && starts_with_any(module, sd12, 1))
        return lora_fail(err, lora, NULL,
                         "is for SD 1.x/2.x, not this SDXL model (module '%s' names one text encoder: lora_te_; "
                         "SDXL's are lora_te1_/lora_te2_)", module);
    return 0;
}

static const lora_target *resolve(const char *lora, const char *module, const lora_names *nm, sd_err *err)
{
    static const char *const known[] = {"lora_unet_", "lora_te_", "lora_te1_", "lora_te2_",
                                        "unet.",      "text_encoder.", "text_encoder_2."};
    if (lora_check_family(lora, module, nm, err)) return NULL;
    int ambiguous = 0;
    const lora_target *t = lora_names_find(nm, module, &ambiguous);
    if (t && ambiguous) {
        lora_fail(err, lora, module, "its kohya name fits more than one weight of this model");
        return NULL;
    }
    if (t) return t;
    if (starts_with_any(module, known, sizeof known / sizeof known[0]))
        lora_fail(err, lora, NULL, "matches no weight of this %s model (another family's LoRA?): module '%s'",
                  family_name(nm), module);
    else
        lora_fail(err, lora, module, "unrecognised naming (kohya lora_unet_/lora_te_/lora_te1_/lora_te2_ or "
                  "diffusers/PEFT unet./text_encoder./text_encoder_2. expected)");
    return NULL;
}

static int64_t flat_in(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 1; i < ndim; i++) n *= shape[i];
    return n;
}

/* The rank, or -1 + err: down/up agree with each other and with t. */
static int check_shapes(const char *lora, const char *module, const st_entry *d, const st_entry *u,
                        const lora_target *t, const lora_names *nm, sd_err *err)
{
    char sd[80], su[80], st[80];
    shape_str(sd, sizeof sd, d->ndim, d->shape);
    shape_str(su, sizeof su, u->ndim, u->shape);
    shape_str(st, sizeof st, t->ndim, t->shape);
    if ((d->ndim != 2 && d->ndim != 4) || (u->ndim != 2 && u->ndim != 4))
        return lora_fail(err, lora, module, "down %s and up %s must be 2-D (linear) or 4-D (conv)", sd, su);
    int64_t r = d->shape[0];
    if (r < 1 || r > LORA_MAX_RANK)
        return lora_fail(err, lora, module, "rank %lld (down %s) is not in 1..%d", (long long)r, sd, LORA_MAX_RANK);
    if (u->shape[1] != r || (u->ndim == 4 && (u->shape[2] != 1 || u->shape[3] != 1)))
        return lora_fail(err, lora, module, "up %s does not fit down %s (up must be [out,%lld] or [out,%lld,1,1])",
                         su, sd, (long long)r, (long long)r);
    int kernel_differs = d->ndim == 4 && t->ndim == 4 &&
                         (d->shape[1] != t->shape[1] || d->shape[2] != t->shape[2] || d->shape[3] != t->shape[3]);
    if (u->shape[0] != t->shape[0] || flat_in(d->ndim, d->shape) != flat_in(t->ndim, t->shape) || kernel_differs)
        return lora_fail(err, lora, NULL, "does not fit this %s model (another family's LoRA?): module '%s': down %s "
                         "/ up %s do not fit the weight %s %s", family_name(nm), module, sd, su, t->name, st);
    return (int)r;
}

static int read_alpha(const char *lora, const char *module, const st_entry *a, const lora_meta *meta, int rank,
                      float *alpha, sd_err *err)
{
    if (a) {
        if (a->numel != 1)
            return lora_fail(err, lora, module, "alpha has %lld values (one expected)", (long long)a->numel);
        st_to_f32(alpha, a->data, a->dtype, 1);
    } else if (is_peft(module)) {
        if (meta->has_r && !meta->rank_pattern && meta->r != rank)
            return lora_fail(err, lora, module, "rank %d differs from __metadata__ r %d (and no rank_pattern)", rank,
                             meta->r);
        *alpha = meta->has_alpha ? (float)meta->alpha : (float)rank;
    } else {
        *alpha = (float)rank;
    }
    if (!isfinite(*alpha)) return lora_fail(err, lora, module, "alpha is not a finite number");
    return 0;
}

/* n values of e widened into a new fp32 array; NULL + err (a non-finite
 * value, or ENOMEM). */
static float *widen(const char *lora, const char *module, const st_entry *e, lora_part p, size_t n, sd_err *err)
{
    float *x = sd_malloc(n * sizeof *x);
    if (!x) {
        sd_errf(err, SD_ENOMEM, "loras", "LoRA '%s': out of memory reading module '%s'", lora, module);
        return NULL;
    }
    st_to_f32(x, e->data, e->dtype, n);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            lora_fail(err, lora, module, "its %s holds a non-finite value at index %zu", lora_part_name(p), i);
            free(x);
            return NULL;
        }
    return x;
}

int lora_check_module(const char *lora, const char *module, const st_entry *const part[LORA_NPARTS],
                      const lora_names *nm, const lora_meta *meta, lora_module *m, sd_err *err)
{
    memset(m, 0, sizeof *m);
    for (int p = LORA_DOWN; p <= LORA_UP; p++)
        if (!part[p])
            return lora_fail(err, lora, module, "has no %s half (a LoRA module needs both down and up)",
                             lora_part_name((lora_part)p));
    const lora_target *t = resolve(lora, module, nm, err);
    if (!t) return -1;
    int rank = check_shapes(lora, module, part[LORA_DOWN], part[LORA_UP], t, nm, err);
    if (rank < 0 || read_alpha(lora, module, part[LORA_ALPHA], meta, rank, &m->alpha, err)) return -1;
    m->rank = rank;
    m->scale = (float)((double)m->alpha / rank);
    m->out = t->shape[0];
    m->in = flat_in(t->ndim, t->shape);
    m->target_ndim = t->ndim;
    memcpy(m->target_shape, t->shape, sizeof m->target_shape);
    m->src = sd_strdup(module);
    m->target = sd_strdup(t->name);
    if (!m->src || !m->target) {
        lora_module_clear(m);
        return sd_errf(err, SD_ENOMEM, "loras", "LoRA '%s': out of memory reading module '%s'", lora, module);
    }
    m->up = widen(lora, module, part[LORA_UP], LORA_UP, (size_t)(m->out * rank), err);
    m->down = m->up ? widen(lora, module, part[LORA_DOWN], LORA_DOWN, (size_t)(rank * m->in), err) : NULL;
    if (!m->down) {
        lora_module_clear(m);
        return -1;
    }
    return 0;
}

void lora_module_clear(lora_module *m)
{
    free(m->src);
    free(m->target);
    free(m->up);
    free(m->down);
    memset(m, 0, sizeof *m);
}
