/* embeddings.c — reading textual-inversion embeddings and finding them in
 * token lists (embeddings.h).  No pickle is ever loaded: a .pt / .bin file
 * is refused with a message saying to convert it to .safetensors. */
#include "embeddings.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../base/alloc.h"
#include "../../base/dirnames.h"
#include "../loader/safetensors.h"

#define FIELD "embeddings"

void emb_free(sd_embedding *e)
{
    if (!e) return;
    free(e->name);
    free(e->vec);
    free(e->ids);
    free(e->error);
    memset(e, 0, sizeof *e);
}

void emb_set_free(sd_embeddings *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) emb_free(&s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* The entry that holds the vectors: the file's only tensor, whatever its
 * name (emb_params, string_to_param.*, <token>), as A1111 reads a
 * .safetensors; else NULL + err (SDXL's clip_l + clip_g, several terms). */
static const st_entry *pick_tensor(const st_file *f, const char *name, const st_entry **second, sd_err *err)
{
    *second = NULL;
    if (f->n == 1) return &f->e[0];
    if (f->n == 2) {   /* SDXL: clip_l (first encoder) + clip_g (second), in either order */
        int l = !strcmp(f->e[0].name, "clip_l") ? 0 : !strcmp(f->e[1].name, "clip_l") ? 1 : -1;
        if (l >= 0 && !strcmp(f->e[1 - l].name, "clip_g")) {
            *second = &f->e[1 - l];
            return &f->e[l];
        }
    }
    sd_errf(err, SD_EINVAL, FIELD, "embedding '%s': %zu tensors; an embedding file holds exactly one "
            "(emb_params, string_to_param.* or its token's name), or SDXL's clip_l + clip_g", name, f->n);
    return NULL;
}

int emb_stride(const sd_embedding *e) { return e->width + e->width2; }

/* Shape [W] or [n, W] with 1 <= n <= EMB_MAX_VECTORS and a float dtype. */
static int check_shape(const st_entry *t, const char *name, int *n, int *w, sd_err *err)
{
    if (t->dtype == ST_OTHER)
        return sd_errf(err, SD_EINVAL, FIELD, "embedding '%s': tensor %s is %s, not F32, F16 or BF16", name,
                       t->name, t->dtype_name);
    if (t->ndim != 1 && t->ndim != 2)
        return sd_errf(err, SD_EINVAL, FIELD, "embedding '%s': tensor %s has %d dimensions, expected [vectors, "
                       "width] or [width]", name, t->name, t->ndim);
    int64_t rows = t->ndim == 2 ? t->shape[0] : 1, cols = t->shape[t->ndim - 1];
    if (rows < 1 || rows > EMB_MAX_VECTORS || cols < 1 || cols > 65536)
        return sd_errf(err, SD_EINVAL, FIELD, "embedding '%s': shape [%lld, %lld]: 1 to %d vectors of width "
                       "1 to 65536 expected", name, (long long)rows, (long long)cols, EMB_MAX_VECTORS);
    *n = (int)rows;
    *w = (int)cols;
    return 0;
}

/* t's n rows of w values into dst's rows of `stride` floats, at column col. */
static int read_rows(float *dst, const st_entry *t, int n, int w, size_t stride, size_t col)
{
    float *tmp = sd_malloc(sizeof(float) * (size_t)n * (size_t)w);
    if (!tmp) return -1;
    st_to_f32(tmp, t->data, t->dtype, (size_t)n * (size_t)w);
    for (int r = 0; r < n; r++) memcpy(dst + (size_t)r * stride + col, tmp + (size_t)r * w, sizeof(float) * (size_t)w);
    free(tmp);
    return 0;
}

int emb_read(const char *path, const char *name, sd_embedding *out, sd_err *err)
{
    memset(out, 0, sizeof *out);
    if (ends_with(path, ".pt") || ends_with(path, ".bin"))
        return sd_errf(err, SD_EINVAL, FIELD, "embedding '%s': %s is a pickle (.pt / .bin), which is never "
                       "loaded; convert it to .safetensors", name, path);
    st_file f;
    if (st_open(&f, path, err)) {
        sd_err_prefix(err, "embedding '%s': ", name);
        err->code = SD_EINVAL;
        snprintf(err->field, sizeof err->field, "%s", FIELD);
        return -1;
    }
    int rc = -1, n = 0, w = 0, n2 = 0, w2 = 0;
    const st_entry *t2, *t = pick_tensor(&f, name, &t2, err);
    if (!t || check_shape(t, name, &n, &w, err) || (t2 && check_shape(t2, name, &n2, &w2, err))) goto done;
    if (t2 && n2 != n) {
        sd_errf(err, SD_EINVAL, FIELD, "embedding '%s': clip_l has %d vectors, clip_g %d; a pair has as many",
                name, n, n2);
        goto done;
    }
    size_t sw = (size_t)w + (size_t)w2;
    out->vec = sd_malloc(sizeof(float) * (size_t)n * sw);
    out->name = sd_strdup(name);
    if (!out->vec || !out->name) { sd_errf(err, SD_ENOMEM, FIELD, "out of memory reading embedding '%s'", name); goto done; }
    if (read_rows(out->vec, t, n, w, sw, 0) || (t2 && read_rows(out->vec, t2, n, w2, sw, (size_t)w))) {
        sd_errf(err, SD_ENOMEM, FIELD, "out of memory reading embedding '%s'", name);
        goto done;
    }
    out->width2 = w2;
    for (size_t i = 0; i < (size_t)n * sw; i++)
        if (!isfinite(out->vec[i])) {
            sd_errf(err, SD_EINVAL, FIELD, "embedding '%s': value %zu is not a finite number", name, i);
            goto done;
        }
    out->n = n;
    out->width = w;
    rc = 0;
done:
    st_close(&f);
    if (rc) emb_free(out);
    return rc;
}

/* A1111's order: file names compared case-insensitively. */
static int by_name(const void *a, const void *b)
{
    int c = strcasecmp(*(char *const *)a, *(char *const *)b);
    return c ? c : strcmp(*(char *const *)a, *(char *const *)b);
}

static int may_be_embedding(const char *dir, const char *f, void *ud)
{
    return f[0] != '.' && (ends_with(f, ".safetensors") || ends_with(f, ".pt") || ends_with(f, ".bin"));
}

/* The file names of dir that may be embeddings, sorted; -1 + err. */
static int list_dir(const char *dir, char ***names, int *n, sd_err *err)
{
    if (!sd_dir_names(dir, may_be_embedding, NULL, by_name, names, n)) return 0;
    return errno == ENOMEM ? sd_errf(err, SD_ENOMEM, "embeddings_dir", "out of memory listing %s", dir)
                           : sd_errf(err, SD_ENOTFOUND, "embeddings_dir", "cannot open the embeddings folder %s", dir);
}

/* Why a read embedding cannot be used with this encoder (malloc'd), or NULL. */
static void check_usable(sd_embedding *e, const sd_tokenizer *tok, int width, int width2)
{
    sd_err err;
    sd_err_clear(&err);
    char msg[256] = "";
    if (e->width2 && !width2)
        snprintf(msg, sizeof msg, "embedding '%s' is an SDXL embedding (clip_l / clip_g), which SD1 and SD2 "
                 "models cannot use", e->name);
    else if (width2 && !e->width2)
        snprintf(msg, sizeof msg, "embedding '%s' has one tensor; an SDXL model needs a clip_l + clip_g pair "
                 "(an embedding of another model family)", e->name);
    else if (width2 && (e->width != width || e->width2 != width2))
        snprintf(msg, sizeof msg, "embedding '%s' has clip_l / clip_g vectors of width %d / %d; this model's "
                 "text encoders take %d / %d", e->name, e->width, e->width2, width, width2);
    else if (e->width != width)
        snprintf(msg, sizeof msg, "embedding '%s' has vectors of width %d; this model's text encoder takes %d "
                 "(an embedding of another model family)", e->name, e->width, width);
    else if (tok_encode(tok, e->name, &e->ids, &e->n_ids, &err) || !e->n_ids)
        snprintf(msg, sizeof msg, "embedding '%s': its name has no tokens", e->name);
    if (msg[0]) {
        free(e->ids);
        e->ids = NULL;
        e->n_ids = 0;
        e->error = sd_strdup(msg);
    }
}

int emb_dir_load(const char *dir, const sd_tokenizer *tok, int width, sd_embeddings *out, sd_err *err)
{
    return emb_dir_load2(dir, tok, width, 0, out, err);
}

int emb_dir_load2(const char *dir, const sd_tokenizer *tok, int width, int width2, sd_embeddings *out, sd_err *err)
{
    memset(out, 0, sizeof *out);
    char **names;
    int n;
    if (list_dir(dir, &names, &n, err)) return -1;
    out->v = n ? sd_calloc((size_t)n, sizeof *out->v) : NULL;
    int rc = n && !out->v ? sd_errf(err, SD_ENOMEM, "embeddings_dir", "out of memory reading %s", dir) : 0;
    for (int i = 0; !rc && i < n; i++) {
        char path[4096], name[256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(name, sizeof name, "%.*s", (int)(strrchr(names[i], '.') - names[i]), names[i]);
        sd_embedding *e = &out->v[out->n++];
        sd_err fe;
        sd_err_clear(&fe);
        if (emb_read(path, name, e, &fe)) {
            e->name = sd_strdup(name);
            e->error = sd_strdup(fe.msg);
        } else {
            check_usable(e, tok, width, width2);
        }
        if (!e->name) rc = sd_errf(err, SD_ENOMEM, "embeddings_dir", "out of memory reading %s", dir);
    }
    sd_dir_names_free(names, n);
    if (rc) emb_set_free(out);
    return rc;
}

const sd_embedding *emb_match(const sd_embeddings *s, const int32_t *ids, size_t n, size_t at)
{
    const sd_embedding *best = NULL;
    for (int i = 0; s && i < s->n; i++) {
        const sd_embedding *e = &s->v[i];
        if (!e->n_ids || e->n_ids > n - at || (best && e->n_ids <= best->n_ids)) continue;
        if (!memcmp(ids + at, e->ids, sizeof(int32_t) * e->n_ids)) best = e;
    }
    return best;
}
