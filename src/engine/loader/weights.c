/* weights.c — open a checkpoint (diffusers folder or single .safetensors
 * file) and expose its tensors as fp32 under canonical names (weights.h).
 *
 * Each file is mapped and validated by safetensors.c; names are mapped by
 * ldm_names.c (single files) or prefixed by component (diffusers folders);
 * F32 data aligned to 4 bytes is used in place, everything else is widened
 * into one buffer per file.  The table is sorted by canonical name for
 * binary-search lookups, and two file names mapping to one canonical name is
 * a format error. */
#include "weights.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../ops/ops.h"
#include "ldm_names.h"
#include "safetensors.h"
#include "../../base/alloc.h"

#define SDW_MAXFILES 4
#define SDW_NAMELEN 256

struct sd_weights {
    char *path;          /* as given to sdw_open */
    char *folder;        /* folder for sdw_folder_file (NULL for a bare file) */
    char *single;        /* the single .safetensors file (single-file layout) */
    sdw_layout layout;
    sdw_text_kind text_kind;
    sdw_text_kind text2_kind;  /* SDXL's second tower (text_encoder_2.*), SDW_TEXT_NONE without one */
    st_file files[SDW_MAXFILES];
    size_t nfiles;
    sdw_tensor *t;
    size_t n, cap;
    float *bufs[SDW_MAXFILES];
    size_t buflen[SDW_MAXFILES];   /* bytes of bufs[i] */
    int vae_only;        /* sdw_open_vae: keep vae.* only, LDM names may lack first_stage_model. */
    int header_only;     /* sdw_open_header: names and shapes only, data NULL (nothing widened) */
};

/* ---- small helpers ---- */

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Why `p` is neither a regular file nor a folder, for messages: missing,
 * a loop of symbolic links, a FIFO (which would block a read), ... */
static const char *not_file_why(const char *p)
{
    struct stat st;
    if (stat(p, &st))
        return errno == ENOENT || errno == ENOTDIR ? "no such file or folder"
               : errno == ELOOP                    ? "a loop of symbolic links"
                                                   : strerror(errno);
    return S_ISFIFO(st.st_mode) ? "a FIFO (named pipe), not a file or folder"
           : S_ISSOCK(st.st_mode) ? "a socket, not a file or folder"
           : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device, not a file or folder"
                                                      : "not a file or folder";
}

static char *joinf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *joinf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

/* Whole small file as a NUL-terminated string (NULL if absent or > 64 MB). */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && n <= (64L << 20) && fseek(f, 0, SEEK_SET) == 0 && (buf = sd_malloc((size_t)n + 1))) {
            if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            } else {
                buf[n] = 0;
                if (len) *len = (size_t)n;
            }
        }
    }
    fclose(f);
    return buf;
}

static void fmt_shape(char *buf, size_t sz, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, sz, "[");
    for (int i = 0; i < ndim && o < sz; i++) {
        if (shape[i] < 0)
            o += (size_t)snprintf(buf + o, sz - o, "%s*", i ? "," : "");
        else
            o += (size_t)snprintf(buf + o, sz - o, "%s%lld", i ? "," : "", (long long)shape[i]);
    }
    if (o < sz) snprintf(buf + o, sz - o, "]");
}

/* ---- building the table ---- */

static int add_tensor(sd_weights *w, const char *name, const char *src, const char *file, int ndim,
                      const int64_t *shape, const float *data, const void *raw, int raw_dtype, sd_err *err)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        sdw_tensor *t = sd_realloc(w->t, cap * sizeof *t);
        if (!t) return sd_errf(err, SD_ENOMEM, NULL, "out of memory");
        w->t = t;
        w->cap = cap;
    }
    sdw_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = sd_strdup(name);
    t->src_name = sd_strdup(src);
    if (!t->name || !t->src_name) {
        free((char *)t->name);
        free((char *)t->src_name);
        return sd_errf(err, SD_ENOMEM, NULL, "out of memory");
    }
    t->file = file;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = data;
    t->raw = raw;
    t->raw_dtype = raw_dtype;
    w->n++;
    return 0;
}

/* A VAE file's LDM name without the checkpoint's "first_stage_model.". */
static int bare_vae_name(const char *n)
{
    static const char *const roots[] = {"encoder.", "decoder.", "quant_conv.", "post_quant_conv.", "loss."};
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++)
        if (!strncmp(n, roots[i], strlen(roots[i]))) return 1;
    return 0;
}

/* The names of f for the LDM mapping; a VAE file's may lack the
 * checkpoint's "first_stage_model." prefix and get it here. */
static char **ldm_names_of(const st_file *f, int vae_only)
{
    char **names = sd_calloc(f->n ? f->n : 1, sizeof *names);
    for (size_t i = 0; names && i < f->n; i++) {
        const char *n = f->e[i].name;
        names[i] = vae_only && bare_vae_name(n) ? joinf("first_stage_model.%s", n) : sd_strdup(n);
        if (!names[i]) {
            for (size_t j = 0; j < i; j++) free(names[j]);
            free(names);
            return NULL;
        }
    }
    return names;
}

static void names_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

/* A lone VAE file in diffusers naming (decoder.up_blocks..., as a vae/
 * folder's file holds) rather than LDM naming (decoder.up.N...). */
static int vae_diffusers_named(const st_file *f)
{
    for (size_t i = 0; i < f->n; i++)
        if (strstr(f->e[i].name, "coder.up_blocks.") || strstr(f->e[i].name, "coder.down_blocks.")) return 1;
    return 0;
}

/* How one file entry is used: its mapped name and kind (LDM_*). */
typedef struct { int kind; char name[SDW_NAMELEN]; } plan_t;

/* Map every entry of file f, then convert the kept ones and add them. */
/* madvise(DONTNEED) the whole pages inside [p, p+n): content stays valid
 * for file maps (re-read on access); callers never read anonymous ones again. */
static void drop_pages(const void *p, size_t n)
{
    uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)p + ps - 1) & ~(ps - 1),
              b = ((uintptr_t)p + n) & ~(ps - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* a[r, c] -> a[c, r] through a scratch copy (small matrices: a text projection). */
static int transpose_in_place(float *a, int64_t r, int64_t c, sd_err *err)
{
    size_t n = (size_t)(r * c);
    if (n == 0) return 0;
    float *t = sd_malloc(n * sizeof *t);
    if (!t) return sd_errf(err, SD_ENOMEM, NULL, "out of memory");
    memcpy(t, a, n * sizeof *t);
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++) a[j * r + i] = t[i * c + j];
    free(t);
    return 0;
}

static int load_file(sd_weights *w, size_t fi, const char *component, sd_err *err)
{
    st_file *f = &w->files[fi];
    int rc = -1;
    ldm_map *m = NULL;
    char **names = NULL;
    plan_t *plan = sd_calloc(f->n ? f->n : 1, sizeof *plan);
    if (!plan) return sd_errf(err, SD_ENOMEM, NULL, "out of memory");
    if (!component && w->vae_only && vae_diffusers_named(f)) component = "vae";
    if (!component) {
        if (!(names = ldm_names_of(f, w->vae_only))) goto out_oom;
        if (!(m = ldm_map_new((const char *const *)names, f->n, f->path, err))) goto out;
    }

    /* Pass 1: names, dtype/shape checks, how much needs converting. */
    size_t nconv = 0;
    for (size_t i = 0; i < f->n; i++) {
        const st_entry *e = &f->e[i];
        int k = component ? ldm_diffusers_name(component, e->name, plan[i].name, sizeof plan[i].name)
                          : ldm_map_name(m, names[i], plan[i].name, sizeof plan[i].name, err);
        if (k < 0) {
            if (component)
                sd_errf(err, SD_EFORMAT, e->name, "%s: tensor '%s': name too long", f->path, e->name);
            else
                sd_err_prefix(err, "%s", f->path);
            goto out;
        }
        plan[i].kind = k;
        if (w->vae_only && strncmp(plan[i].name, "vae.", 4)) plan[i].kind = k = LDM_IGNORE;
        if (k == LDM_IGNORE) continue;
        /* the optional LDM schedule buffer in another dtype (F64): left out,
         * the k-diffusion samplers then take the LDM table */
        if (e->dtype == ST_OTHER && !strcmp(plan[i].name, "scheduler.alphas_cumprod")) {
            plan[i].kind = LDM_IGNORE;
            continue;
        }
        if (e->dtype == ST_OTHER) {
            sd_errf(err, SD_EFORMAT, e->name, "%s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16",
                    f->path, e->name, e->dtype_name);
            goto out;
        }
        if (k == LDM_SPLIT) {
            int ok = e->ndim == 2 ? (e->shape[0] == 3 * e->shape[1]) : (e->ndim == 1 && e->shape[0] % 3 == 0);
            if (!ok) {
                char s[96];
                fmt_shape(s, sizeof s, e->ndim, e->shape);
                sd_errf(err, SD_EFORMAT, e->name, "%s: tensor '%s' has shape %s, expected [3W,W] or [3W] (packed q,k,v)",
                        f->path, e->name, s);
                goto out;
            }
        }
        if (k == LDM_TRANSPOSE && e->ndim != 2) {
            sd_errf(err, SD_EFORMAT, e->name, "%s: tensor '%s' has %d dimensions, expected 2 (a [width, proj] matrix)",
                    f->path, e->name, e->ndim);
            goto out;
        }
        int aligned = e->dtype == ST_F32 && ((uintptr_t)e->data & 3) == 0 && k != LDM_TRANSPOSE;
        if (!aligned && !w->header_only) nconv += (size_t)e->numel;
    }
    float *buf = NULL;
    if (nconv) {
        buf = sd_malloc(nconv * sizeof(float));
        if (!buf) {
            sd_errf(err, SD_ENOMEM, NULL, "out of memory widening %s (%zu MB)", f->path, nconv * 4 >> 20);
            goto out;
        }
        w->bufs[fi] = buf;
        w->buflen[fi] = nconv * sizeof(float);
    }

    /* Pass 2: assign data (converting in parallel), add tensors. */
    float **dst = sd_calloc(f->n ? f->n : 1, sizeof *dst);
    if (!dst) goto out_oom;
    size_t off = 0;
    for (size_t i = 0; i < f->n; i++) {
        const st_entry *e = &f->e[i];
        if (plan[i].kind == LDM_IGNORE || w->header_only) continue;   /* header only: data stays NULL */
        if (e->dtype == ST_F32 && ((uintptr_t)e->data & 3) == 0 && plan[i].kind != LDM_TRANSPOSE) {
            dst[i] = (float *)e->data; /* read-only map; never written */
        } else {
            dst[i] = buf + off;
            off += (size_t)e->numel;
        }
    }
    /* The 2-byte sources are not read again: each gives its pages back as
     * soon as it is widened, so the load's peak is about the fp32 weights,
     * not the fp32 weights plus the whole file. */
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t i = 0; i < f->n; i++) {
        const st_entry *e = &f->e[i];
        if (plan[i].kind != LDM_IGNORE && dst[i] && (float *)e->data != dst[i]) {
            st_to_f32(dst[i], e->data, e->dtype, (size_t)e->numel);
            drop_pages(e->data, e->nbytes);
        }
    }
    rc = 0;
    for (size_t i = 0; i < f->n && rc == 0; i++) {
        const st_entry *e = &f->e[i];
        if (plan[i].kind == LDM_TRANSPOSE) {
            int64_t sh[2] = {e->shape[1], e->shape[0]};
            rc = dst[i] ? transpose_in_place(dst[i], e->shape[0], e->shape[1], err) : 0;
            if (rc == 0) rc = add_tensor(w, plan[i].name, e->name, f->path, 2, sh, dst[i], NULL, e->dtype, err);
        } else if (plan[i].kind == LDM_KEEP) {
            rc = add_tensor(w, plan[i].name, e->name, f->path, e->ndim, e->shape, dst[i], e->data, e->dtype, err);
        } else if (plan[i].kind == LDM_SPLIT) {
            /* q, k, v views: rows [0,W), [W,2W), [2W,3W) of the packed tensor. */
            int64_t sh[2] = {e->shape[0] / 3, e->ndim == 2 ? e->shape[1] : 0};
            size_t step = (size_t)(e->numel / 3), rawstep = e->nbytes / 3;
            char *qp = strstr(plan[i].name, "q_proj.");
            for (int j = 0; j < 3 && rc == 0; j++) {
                qp[0] = "qkv"[j];
                rc = add_tensor(w, plan[i].name, e->name, f->path, e->ndim, sh, dst[i] ? dst[i] + j * step : NULL,
                                (const unsigned char *)e->data + j * rawstep, e->dtype, err);
            }
        }
    }
    free(dst);
    goto out;
out_oom:
    sd_errf(err, SD_ENOMEM, NULL, "out of memory");
out:
    ldm_map_free(m);
    names_free(names, f->n);
    free(plan);
    return rc;
}

static int open_file(sd_weights *w, const char *path, const char *component, sd_err *err)
{
    if (w->nfiles == SDW_MAXFILES) return sd_errf(err, SD_EINTERNAL, NULL, "too many weight files");
    size_t fi = w->nfiles;
    if (st_open(&w->files[fi], path, err)) return -1;
    w->nfiles++;
    return load_file(w, fi, component, err);
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const sdw_tensor *)a)->name, ((const sdw_tensor *)b)->name);
}

/* Sort the table for lookups; two file names mapping to one name is an error. */
static int sort_table(sd_weights *w, sd_err *err)
{
    if (w->n) qsort(w->t, w->n, sizeof *w->t, cmp_tensor);   /* t is NULL when nothing was kept */
    for (size_t i = 1; i < w->n; i++)
        if (!strcmp(w->t[i - 1].name, w->t[i].name))
            return sd_errf(err, SD_EFORMAT, w->t[i].name, "%s: tensors '%s' (%s) and '%s' (%s) both map to '%s'",
                           w->path, w->t[i - 1].src_name, w->t[i - 1].file, w->t[i].src_name, w->t[i].file,
                           w->t[i].name);
    return 0;
}

static int open_diffusers(sd_weights *w, sd_err *err)
{
    static const struct { const char *dir, *file; } comps[] = {
        {"unet", "diffusion_pytorch_model"}, {"vae", "diffusion_pytorch_model"}, {"text_encoder", "model"},
        {"text_encoder_2", "model"},   /* SDXL's second text tower */
    };
    for (size_t c = 0; c < sizeof comps / sizeof comps[0]; c++) {
        char *dir = joinf("%s/%s", w->folder, comps[c].dir);
        char *p1 = joinf("%s/%s.safetensors", dir ? dir : "", comps[c].file);
        char *p2 = joinf("%s/%s.fp16.safetensors", dir ? dir : "", comps[c].file);
        int rc = 0;
        if (!dir || !p1 || !p2) {
            rc = sd_errf(err, SD_ENOMEM, NULL, "out of memory");
        } else if (is_dir(dir)) {
            const char *p = is_file(p1) ? p1 : is_file(p2) ? p2 : NULL;
            if (p)
                rc = open_file(w, p, comps[c].dir, err);
            else
                rc = sd_errf(err, SD_ENOTFOUND, NULL,
                             "%s has no %s.safetensors (nor %s.fp16.safetensors); only safetensors weights are supported",
                             dir, comps[c].file, comps[c].file);
        }
        free(dir);
        free(p1);
        free(p2);
        if (rc) return -1;
    }
    if (!w->nfiles) return sd_errf(err, SD_EFORMAT, NULL, "%s: diffusers folder without unet/, vae/ or text_encoder/", w->path);
    return 0;
}

/* Which text tower: single files tell by naming (OpenCLIP under
 * cond_stage_model.model.*); a diffusers folder holds both in HF naming, and
 * SD2's converted OpenCLIP tower says hidden_act "gelu" in its config.json. */
static sdw_text_kind text_kind(sd_weights *w, const char *te)
{
    const sdw_tensor *t = sdw_getf(w, "%s.text_model.embeddings.token_embedding.weight", te);
    if (!t) return SDW_TEXT_NONE;
    if (w->layout == SDW_LAYOUT_SINGLE_FILE)
        return strstr(t->src_name, "_stage_model.model.") || strstr(t->src_name, "embedders.1.model.")
                   ? SDW_TEXT_OPENCLIP : SDW_TEXT_CLIP_L;
    size_t len = 0;
    char path[64];
    snprintf(path, sizeof path, "%s/config.json", te);
    char *cfg = sdw_folder_file(w, path, &len);
    json_t *j = cfg ? json_loadb(cfg, len, 0, NULL) : NULL;
    const char *act = json_string_value(json_object_get(j, "hidden_act"));
    sdw_text_kind k = act && !strcmp(act, "gelu") ? SDW_TEXT_OPENCLIP : SDW_TEXT_CLIP_L;
    json_decref(j);
    free(cfg);
    return k;
}

static sd_weights *open_weights(const char *path, int header_only, sd_err *err)
{
    if (!path || !*path) {
        sd_errf(err, SD_EINVAL, "model", "no model path given");
        return NULL;
    }
    sd_weights *w = sd_calloc(1, sizeof *w);
    if (!w || !(w->path = sd_strdup(path))) {
        free(w);
        sd_errf(err, SD_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    w->header_only = header_only;
    int rc;
    if (is_dir(path)) {
        w->folder = sd_strdup(path);
        char *unet = joinf("%s/unet", path), *idx = joinf("%s/model_index.json", path),
             *single = joinf("%s/model.safetensors", path);
        if (!w->folder || !unet || !idx || !single) {
            rc = sd_errf(err, SD_ENOMEM, NULL, "out of memory");
            free(single);
        } else if (is_dir(unet) || is_file(idx)) {
            w->layout = SDW_LAYOUT_DIFFUSERS;
            free(single);
            rc = 0;
        } else if (is_file(single)) {
            w->layout = SDW_LAYOUT_SINGLE_FILE;
            w->single = single;
            rc = 0;
        } else {
            free(single);
            rc = sd_errf(err, SD_ENOTFOUND, NULL,
                         "%s is a folder but neither a diffusers folder (unet/, vae/, text_encoder/) nor holds model.safetensors",
                         path);
        }
        free(unet);
        free(idx);
    } else if (is_file(path)) {
        w->layout = SDW_LAYOUT_SINGLE_FILE;
        w->single = sd_strdup(path);
        rc = w->single ? 0 : sd_errf(err, SD_ENOMEM, NULL, "out of memory");
    } else {
        rc = sd_errf(err, SD_ENOTFOUND, "model", "%s: %s (give --model a .safetensors file or a diffusers folder)", path,
                     not_file_why(path));
    }
    if (rc == 0) {
        if (w->layout == SDW_LAYOUT_DIFFUSERS) {
            rc = open_diffusers(w, err);
        } else {
            rc = open_file(w, w->single, NULL, err);
        }
    }
    if (rc == 0) rc = sort_table(w, err);
    if (rc == 0) w->text_kind = text_kind(w, "text_encoder");
    if (rc == 0) w->text2_kind = text_kind(w, "text_encoder_2");
    if (rc) {
        sdw_close(w);
        return NULL;
    }
    return w;
}

sd_weights *sdw_open(const char *path, sd_err *err) { return open_weights(path, 0, err); }

sd_weights *sdw_open_header(const char *path, sd_err *err) { return open_weights(path, 1, err); }

int64_t sdw_file_bytes(const sd_weights *w)
{
    int64_t n = 0;
    for (size_t i = 0; i < w->nfiles; i++) n += (int64_t)w->files[i].size;
    return n;
}

/* The file of a diffusers VAE folder (its diffusion_pytorch_model file):
 * `path` itself or its vae/ sub-folder; malloc'd, NULL when neither. */
static char *vae_folder_file(const char *path, char **folder)
{
    static const char *const sub[] = {"%s/vae", "%s"}, *const file[] = {"%s/diffusion_pytorch_model.safetensors",
                                                                          "%s/diffusion_pytorch_model.fp16.safetensors"};
    for (size_t i = 0; i < 2; i++) {
        char *dir = joinf(sub[i], path);
        for (size_t j = 0; dir && j < 2; j++) {
            char *p = joinf(file[j], dir);
            if (p && is_file(p)) {
                *folder = dir;
                return p;
            }
            free(p);
        }
        free(dir);
    }
    return NULL;
}

static int is_pickle(const char *path)
{
    static const char *const ext[] = {".pt", ".ckpt", ".pth", ".bin"};
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (n >= strlen(ext[i]) && !strcmp(path + n - strlen(ext[i]), ext[i])) return 1;
    return 0;
}

static int open_vae_path(sd_weights *w, const char *path, sd_err *err)
{
    if (is_pickle(path))
        return sd_errf(err, SD_EFORMAT, "vae", "%s: .pt/.ckpt/.pth/.bin files are Python pickles, which this server "
                       "does not load; give the VAE as .safetensors", path);
    if (is_dir(path)) {
        char *file = vae_folder_file(path, &w->folder);
        if (!file)
            return sd_errf(err, SD_ENOTFOUND, "vae", "%s: folder holds no diffusion_pytorch_model.safetensors "
                           "(nor a vae/ folder with one)", path);
        w->layout = SDW_LAYOUT_DIFFUSERS;
        int rc = open_file(w, file, "vae", err);
        free(file);
        return rc;
    }
    if (!is_file(path)) return sd_errf(err, SD_ENOTFOUND, "vae", "%s: %s", path, not_file_why(path));
    w->layout = SDW_LAYOUT_SINGLE_FILE;
    if (!(w->single = sd_strdup(path))) return sd_errf(err, SD_ENOMEM, NULL, "out of memory");
    return open_file(w, path, NULL, err);
}

static sd_weights *open_vae(const char *path, int header_only, sd_err *err)
{
    sd_weights *w = path && *path ? sd_calloc(1, sizeof *w) : NULL;
    if (!path || !*path) sd_errf(err, SD_EINVAL, "vae", "no VAE path given");
    else if (!w || !(w->path = sd_strdup(path))) sd_errf(err, SD_ENOMEM, NULL, "out of memory");
    else {
        w->vae_only = 1;
        w->header_only = header_only;
        int rc = open_vae_path(w, path, err);
        if (rc == 0) rc = sort_table(w, err);
        if (rc == 0 && !sdw_get(w, "vae.decoder.conv_in.weight"))
            rc = sd_errf(err, SD_EFORMAT, "vae", "%s holds no VAE decoder (no decoder.conv_in.weight, with or "
                         "without first_stage_model.)", path);
        if (rc == 0) return w;
    }
    if (err && strcmp(err->field, "vae")) snprintf(err->field, sizeof err->field, "vae");
    sdw_close(w);
    return NULL;
}

sd_weights *sdw_open_vae(const char *path, sd_err *err) { return open_vae(path, 0, err); }

sd_weights *sdw_open_vae_header(const char *path, sd_err *err) { return open_vae(path, 1, err); }

void sdw_close(sd_weights *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        free((char *)w->t[i].name);
        free((char *)w->t[i].src_name);
    }
    free(w->t);
    for (size_t i = 0; i < w->nfiles; i++) st_close(&w->files[i]);
    for (size_t i = 0; i < SDW_MAXFILES; i++) free(w->bufs[i]);
    free(w->path);
    free(w->folder);
    free(w->single);
    free(w);
}

/* ---- weight handles: the loader owns the memory ---- */

/* The ops made their copy: the fp32 original's pages go back to the OS
 * (widened memory reads as zero afterwards, the file mapping is re-read on
 * access: neither is read again except through weight_reload). */
static void weight_copied(void *ud, const float *data, size_t n)
{
    sdw_tensor *t = ud;   /* our own table entry */
    if (t->handles != 1) return;
    drop_pages(data, n * sizeof(float));
    t->dropped = 1;
}

/* The original again, from the file mapping (whose pages go back after). */
static int weight_reload(void *ud, float *dst, size_t n)
{
    const sdw_tensor *t = ud;
    size_t el = t->raw_dtype == ST_F32 ? 4 : 2;
    st_to_f32(dst, t->raw, (st_dtype)t->raw_dtype, n);
    drop_pages(t->raw, n * el);
    return 0;
}

static const ops_weight_src WEIGHT_SRC = {weight_copied, weight_reload};

ops_weight *sdw_weight(const sdw_tensor *t, ops_ctx *ctx)
{
    sdw_tensor *own = (sdw_tensor *)t;   /* our own table entry: its bookkeeping fields */
    ops_weight *h = ops_weight_register(ctx, t->data, (size_t)sdw_numel(t), &WEIGHT_SRC, own);
    if (!h) return NULL;
    own->handles++;
    if (t->dropped) ops_weight_given_back(h);
    return h;
}

/* ---- queries ---- */

sdw_layout sdw_get_layout(const sd_weights *w) { return w->layout; }
sdw_text_kind sdw_text_kind_of(const sd_weights *w) { return w->text_kind; }
sdw_text_kind sdw_text2_kind_of(const sd_weights *w) { return w->text2_kind; }
const char *sdw_path(const sd_weights *w) { return w->path; }

const sdw_tensor *sdw_get(const sd_weights *w, const char *name)
{
    if (!w || !name) return NULL;
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(w->t[mid].name, name);
        if (c == 0) return &w->t[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const sdw_tensor *sdw_getf(const sd_weights *w, const char *fmt, ...)
{
    char name[SDW_NAMELEN];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof name) return NULL;
    return sdw_get(w, name);
}

const sdw_tensor *sdw_need(const sd_weights *w, sd_err *err, const char *name, int ndim, const int64_t *shape)
{
    char want[128], got[128];
    const sdw_tensor *t = sdw_get(w, name);
    fmt_shape(want, sizeof want, ndim, shape);
    if (!t) {
        sd_errf(err, SD_EFORMAT, name, "missing tensor '%s' (expected shape %s) in %s", name, want,
                w ? w->path : "(no model)");
        return NULL;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        if (shape[i] >= 0 && shape[i] != t->shape[i]) ok = 0;
    if (!ok) {
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        sd_errf(err, SD_EFORMAT, name, "tensor '%s' (%s in %s) has shape %s, expected %s", name, t->src_name, t->file, got,
                want);
        return NULL;
    }
    return t;
}

const sdw_tensor *sdw_need1(const sd_weights *w, sd_err *err, const char *name, int64_t d0)
{
    return sdw_need(w, err, name, 1, &d0);
}

const sdw_tensor *sdw_need2(const sd_weights *w, sd_err *err, const char *name, int64_t d0, int64_t d1)
{
    int64_t s[2] = {d0, d1};
    return sdw_need(w, err, name, 2, s);
}

const sdw_tensor *sdw_need4(const sd_weights *w, sd_err *err, const char *name, int64_t d0, int64_t d1, int64_t d2,
                            int64_t d3)
{
    int64_t s[4] = {d0, d1, d2, d3};
    return sdw_need(w, err, name, 4, s);
}

int64_t sdw_numel(const sdw_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

const sdw_tensor *sdw_at(const sd_weights *w, size_t i) { return i < w->n ? &w->t[i] : NULL; }
size_t sdw_count(const sd_weights *w) { return w->n; }

char *sdw_folder_file(const sd_weights *w, const char *relpath, size_t *len)
{
    if (!w || !w->folder || !relpath || strstr(relpath, "..")) return NULL;
    char *p = joinf("%s/%s", w->folder, relpath);
    if (!p) return NULL;
    char *s = is_file(p) ? slurp(p, len) : NULL;
    free(p);
    return s;
}

char *sdw_ldm_config(const sd_weights *w, size_t *len)
{
    static const char *const strip[] = {"", "-fp16", ".fp16", "_fp16", "-fp32", ".fp32", "_fp32", "-ema", "-pruned"};
    if (!w || !w->single) return NULL;
    size_t n = strlen(w->single);
    if (n >= 12 && !strcmp(w->single + n - 12, ".safetensors")) n -= 12;
    for (size_t i = 0; i < sizeof strip / sizeof strip[0]; i++) {
        size_t l = strlen(strip[i]);
        if (l > n || strncmp(w->single + n - l, strip[i], l)) continue;
        char *p = joinf("%.*s.ldm_config.json", (int)(n - l), w->single);
        char *s = p && is_file(p) ? slurp(p, len) : NULL;
        free(p);
        if (s) return s;
    }
    return NULL;
}

int sdw_is_vae_only(const sd_weights *w) { return w && w->vae_only; }

/* The table is sorted, so the prefix's tensors are one block; the entries
 * after it move down, which a weight handle's pointer to its entry would
 * not survive: nothing is dropped when one of those (or of the block) has
 * a handle. */
size_t sdw_drop_prefix(sd_weights *w, const char *prefix)
{
    size_t n = strlen(prefix), lo = 0, hi;
    while (lo < w->n && strncmp(w->t[lo].name, prefix, n) < 0) lo++;
    for (hi = lo; hi < w->n && !strncmp(w->t[hi].name, prefix, n); hi++) {}
    for (size_t i = lo; i < w->n; i++)
        if (w->t[i].handles) return 0;
    for (size_t i = lo; i < hi; i++) {
        sdw_tensor *t = &w->t[i];
        /* the data inside one of the widening buffers (F16/BF16, unaligned F32) */
        for (size_t b = 0; b < SDW_MAXFILES; b++)
            if (w->bufs[b] && t->data >= w->bufs[b] && (const char *)t->data < (const char *)w->bufs[b] + w->buflen[b])
                drop_pages(t->data, (size_t)sdw_numel(t) * sizeof(float));
        free((char *)t->name);
        free((char *)t->src_name);
    }
    memmove(w->t + lo, w->t + hi, (w->n - hi) * sizeof *w->t);
    w->n -= hi - lo;
    return hi - lo;
}

int sdw_has_file_tensor(const sd_weights *w, const char *name)
{
    for (size_t f = 0; w && f < w->nfiles; f++)
        for (size_t i = 0; i < w->files[f].n; i++)
            if (!strcmp(w->files[f].e[i].name, name)) return 1;
    return 0;
}
