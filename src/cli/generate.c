/* generate.c — `sdserve generate`: one or more images from the command line
 * through the public engine API (engine/sd.h) only: load the model, optional
 * init image (decoded upright per its EXIF orientation, scaled to fit
 * 1024), generate with a progress line on stderr, encode with the A1111
 * parameters embedded, write the files and print "file seed=S" per image on
 * stdout.
 *
 * Exit status: 0 done, 2 bad command line (message names the flag), 1 any
 * other failure (model, image, disk). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "generate.h"
#include "progress.h"
#include "../jobs/inpaint.h"

/* A request field's range as the usage shows it: "1..150", "(0, 20]". */
static void usage_range(const req_field *f, char *buf, size_t size)
{
    buf[0] = 0;
    if (f->type == RF_INT)
        snprintf(buf, size, "%.0f..%.0f", f->lo + f->lo_open, f->hi - f->hi_open);
    else if (f->type == RF_FLOAT)
        req_field_range(f, buf, size);
    else if (f->type == RF_FORMAT || f->type == RF_SCHEDULER || f->type == RF_SPACING)
        snprintf(buf, size, "%s", req_field_names(f));
    else if (f->type == RF_UPSCALER)   /* the names once; req_field_names' A1111 note is the API's */
        snprintf(buf, size, "latent, latent-nearest-exact or lanczos (A1111's names too)");
    else if (f->type == RF_SAMPLER)
        snprintf(buf, size, "euler_a, ddim, ..., \"DPM++ 2M\", k_euler (docs/KDIFFUSION.md)");
}

/* A request field's default as the usage shows it ("" for none, and for a
 * default outside the range: width/height's 0 = the model's native size). */
static void usage_default(const req_field *f, char *buf, size_t size)
{
    buf[0] = 0;
    if ((f->type == RF_INT || f->type == RF_FLOAT) && req_field_in_range(f, f->def)) snprintf(buf, size, "[%g]", f->def);
    else if (f->type == RF_SEED) snprintf(buf, size, "[random]");
    else if (f->type == RF_SAMPLER) snprintf(buf, size, "[%s]", req_field_value_name(f, f->def));
    else if (f->type == RF_UPSCALER) snprintf(buf, size, "[%s]", req_upscaler_name(SD_HR_LATENT, 0));   /* 0 = latent */
}

/* One line per request field of the table that has a flag. */
static void usage_fields(FILE *f)
{
    for (int i = 0; i < req_nfields; i++) {
        const req_field *r = &req_fields[i];
        if (!r->cli) continue;
        char flag[40], range[160], def[40], text[400];   /* wide enough that no line is cut */
        snprintf(flag, sizeof flag, "%s%s%s %s", r->cli_alias ? r->cli_alias : "", r->cli_alias ? ", " : "", r->cli,
                 r->cli_meta);
        usage_range(r, range, sizeof range);
        usage_default(r, def, sizeof def);
        snprintf(text, sizeof text, "%s%s%s", r->help, range[0] ? ", " : "", range);
        if (def[0]) fprintf(f, "  %-20s %-38s %s\n", flag, text, def);
        else fprintf(f, "  %-20s %s\n", flag, text);
    }
}

void gen_usage(FILE *f)
{
    fprintf(f,
            "usage: sdserve generate --model M --prompt TEXT [options]\n"
            "\n"
            "  --model M            .safetensors file or diffusers folder (required)\n");
    usage_fields(f);
    fprintf(f,
            "  -o, --output F       output file (replaced if it exists)   [out.png]\n"
            "  --config F           LDM config JSON for a single-file checkpoint\n"
            "  --vocab F            CLIP vocabulary (bpe .txt.gz, merges.txt or tokenizer/)\n"
            "  --threads N          0 = all cores                         [0]\n"
            "  --precision P        auto|fp32|bf16x2|bf16 (docs/SERVER.md)  [auto]\n"
            "  --prediction P       auto|eps|v: what the UNet predicts (docs/LOADING.md)  [auto]\n"
            "  --zero-terminal-snr Z auto|on|off: zero-terminal-SNR noise schedule  [auto]\n"
            "  --embeddings-dir D   textual-inversion embeddings, used by name (docs/PROMPTS.md)\n"
            "  --vae F              VAE override: .safetensors or diffusers VAE folder\n"
            "  --lora-dir DIR       where --lora and <lora:NAME:W> names resolve (docs/LORA.md)\n"
            "  --vae-tiling M       auto|on|off: decode in row stripes (auto: above 1024x1024)  [auto]\n"
            "  --preview-decoder F  TAESD file or folder for previews (docs/SERVER.md \"Previews\")\n"
            "  --vae-decoder D      vae|taesd: final decode by the TAESD (fast, lower quality)  [vae]\n"
            "  -h, --help           this text\n"
            "\n"
            "--init-image F: the file is turned upright by its EXIF orientation and\n"
            "scaled to fit 1024; the output has its size, -W/-H are ignored.\n"
            "-o F: its extension decides the format: .png, .jpg/.jpeg, .webp; another\n"
            "one is refused unless --format is given (which must agree with a known\n"
            "extension).  With -n N: F, then F-1, F-2, ... before the extension\n"
            "(out.png, out-1.png, out-2.png).\n"
            "\n"
            "Progress goes to stderr; each written file is printed on stdout as\n"
            "\"FILE seed=S\".  The PNG/JPEG/WebP carries the generation parameters\n"
            "(AUTOMATIC1111 style).  Exit status: 0 ok, 2 bad arguments, 1 other errors.\n");
}

/* ---- argument parsing -------------------------------------------------- */

static int parse_int(const char *flag, const char *v, long long lo, long long hi, long long *out, sd_err *err)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno == ERANGE)
        return sd_errf(err, SD_EINVAL, flag, "%s expects an integer, got '%s'", flag, v);
    if (x < lo || x > hi)
        return sd_errf(err, SD_EINVAL, flag, "%s must be in [%lld, %lld], got %lld", flag, lo, hi, x);
    *out = x;
    return 0;
}

/* A float in the field's range, checked as the float the engine sees. */
static int parse_float(const char *flag, const char *v, const req_field *f, double *out, sd_err *err)
{
    char *end, range[64];
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno == ERANGE || !isfinite(x) || strpbrk(v, "xXnNiI"))
        return sd_errf(err, SD_EINVAL, flag, "%s expects a number, got '%s'", flag, v);
    req_field_range(f, range, sizeof range);
    if (!req_field_in_range(f, x)) return sd_errf(err, SD_EINVAL, flag, "%s must be in %s, got %s", flag, range, v);
    *out = x;
    return 0;
}

/* A request field's flag: its value checked against the table's range and stored in a->req. */
static int apply_field(gen_args *a, const req_field *f, const char *flag, const char *v, sd_err *err)
{
    long long x;
    double d = 0;
    a->given |= 1ull << (f - req_fields);
    switch (f->type) {
    case RF_TEXT: *req_field_text(f, &a->req) = v; return 0;
    case RF_IMAGE: *(req_field_is_mask(f) ? &a->mask_image : &a->init_image) = v; return 0;
    case RF_LORAS: return req_set_loras_text(&a->req, v, strlen(v), err);
    case RF_FLOAT:
        if (parse_float(flag, v, f, &d, err)) return -1;
        req_field_set_number(f, &a->req, d);
        return 0;
    case RF_INT:
        if (parse_int(flag, v, (long long)f->lo + f->lo_open, (long long)f->hi - f->hi_open, &x, err)) return -1;
        req_field_set_number(f, &a->req, (double)x);
        return 0;
    case RF_SEED:
        a->req.seed_was_random = !strcmp(v, "-1");
        if (a->req.seed_was_random) return 0;
        if (parse_int(flag, v, (long long)f->lo, (long long)f->hi, &x, err)) return -1;
        req_field_set_number(f, &a->req, (double)x);
        return 0;
    case RF_SAMPLER:
    case RF_FORMAT:
    case RF_SCHEDULER:
    case RF_SPACING:
    case RF_UPSCALER:
        if (req_field_set_name(f, &a->req, v))
            return sd_errf(err, SD_EINVAL, flag, "%s must be %s%s; got '%s'", flag,
                           f->type == RF_SAMPLER ? "one of " : "", req_field_names(f), v);
        return 0;
    }
    return 0;
}

/* 1 when the flag of the request field `name` was given. */
static int given(const gen_args *a, const char *name)
{
    const req_field *f = req_field_find(name);
    return f && (a->given >> (f - req_fields) & 1);
}

/* The flags that are not request fields. */
typedef enum { O_MODEL, O_CONFIG, O_VOCAB, O_OUTPUT, O_THREADS, O_PRECISION, O_HELP, O_EMBEDDINGS_DIR, O_VAE, O_LORA_DIR,
               O_PREDICTION, O_ZERO_SNR, O_VAE_TILING,
               O_PREVIEW_DECODER, O_VAE_DECODER } opt_id;

static const struct {
    const char *lng, *shrt;
    opt_id id;
    int has_value;
} opts[] = {
    {"--model", NULL, O_MODEL, 1},     {"--config", NULL, O_CONFIG, 1},       {"--vocab", NULL, O_VOCAB, 1},
    {"--output", "-o", O_OUTPUT, 1},   {"--threads", NULL, O_THREADS, 1},     {"--precision", NULL, O_PRECISION, 1},
    {"--help", "-h", O_HELP, 0},
    {"--embeddings-dir", NULL, O_EMBEDDINGS_DIR, 1},
    {"--vae", NULL, O_VAE, 1},
    {"--lora-dir", NULL, O_LORA_DIR, 1},
    {"--prediction", NULL, O_PREDICTION, 1},
    {"--zero-terminal-snr", NULL, O_ZERO_SNR, 1},
    {"--vae-tiling", NULL, O_VAE_TILING, 1},
    {"--preview-decoder", NULL, O_PREVIEW_DECODER, 1},
    {"--vae-decoder", NULL, O_VAE_DECODER, 1},
};

static int apply(gen_args *a, opt_id id, const char *flag, const char *v, sd_err *err)
{
    long long x;
    switch (id) {
    case O_MODEL: a->model = v; break;
    case O_CONFIG: a->config = v; break;
    case O_VOCAB: a->vocab = v; break;
    case O_OUTPUT:
        if (!*v) return sd_errf(err, SD_EINVAL, flag, "%s needs a file name", flag);
        a->output = v;
        a->output_flag = !strcmp(flag, "-o") ? "-o" : "--output";
        break;
    case O_THREADS:
        if (parse_int(flag, v, 0, 1024, &x, err)) return -1;
        a->threads = (int)x;
        break;
    case O_PREDICTION:
        if (sd_prediction_parse(v, &a->prediction))
            return sd_errf(err, SD_EINVAL, flag, "%s must be auto, eps or v; got '%s'", flag, v);
        break;
    case O_ZERO_SNR:
        if (sd_zero_snr_parse(v, &a->zero_snr))
            return sd_errf(err, SD_EINVAL, flag, "%s must be auto, on or off; got '%s'", flag, v);
        break;
    case O_PRECISION:
        if (sd_precision_known(v))
            return sd_errf(err, SD_EINVAL, flag, "%s must be auto, fp32, bf16x2 or bf16; got '%s'", flag, v);
        a->precision = v;
        break;
    case O_HELP: a->help = 1; break;
    case O_EMBEDDINGS_DIR: a->embeddings_dir = v; break;
    case O_VAE:
        if (!*v) return sd_errf(err, SD_EINVAL, flag, "%s needs a VAE file or folder", flag);
        a->vae = v;
        break;
    case O_LORA_DIR: a->lora_dir = v; break;
    case O_VAE_TILING:
        if (sd_vae_tiling_known(v)) return sd_errf(err, SD_EINVAL, flag, "%s must be auto, on or off; got '%s'", flag, v);
        a->vae_tiling = v;
        break;
    case O_PREVIEW_DECODER:
        if (!*v) return sd_errf(err, SD_EINVAL, flag, "%s needs a TAESD file or folder", flag);
        a->preview_decoder = v;
        break;
    case O_VAE_DECODER:
        if (sd_vae_decoder_known(v)) return sd_errf(err, SD_EINVAL, flag, "%s must be vae or taesd; got '%s'", flag, v);
        a->vae_decoder = v;
        break;
    }
    return 0;
}

/* The extension of a file name (after the last '.' of its last component,
 * which must not start with it: ".hidden" has none); NULL when none. */
static const char *output_ext(const char *path)
{
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path, *dot = strrchr(base, '.');
    return dot && dot != base ? dot + 1 : NULL;
}

/* -o's extension decides the format, so out.gif never holds PNG bytes: a
 * known one (.png .jpg .jpeg .webp, any case) sets it and must agree with
 * --format; another one is refused unless --format says what to write; no
 * extension means --format or PNG.  Checked before any work. */
static int output_format(gen_args *a, int format_set, sd_err *err)
{
    const char *ext = output_ext(a->output), *flag = a->output_flag;
    img_format f = ext ? img_format_from_name(ext) : IMG_UNKNOWN;
    if (ext && f == IMG_UNKNOWN && !format_set)
        return sd_errf(err, SD_EINVAL, flag,
                       "%s %s: '.%s' is not a format sdserve writes; name the file .png, .jpg, .jpeg or .webp "
                       "(or give --format to write one of those under another name)", flag, a->output, ext);
    if (f != IMG_UNKNOWN && format_set && f != (img_format)a->req.out_format)
        return sd_errf(err, SD_EINVAL, flag, "%s %s names a %s file but --format asks for %s; make them agree",
                       flag, a->output, img_format_name(f), img_format_name((img_format)a->req.out_format));
    if (!format_set) a->req.out_format = f == IMG_UNKNOWN ? IMG_PNG : f;
    return 0;
}

/* The option table's entry for `name`, or -1. */
static int find_opt(const char *name)
{
    for (size_t j = 0; j < sizeof opts / sizeof opts[0]; j++)
        if (!strcmp(name, opts[j].lng) || (opts[j].shrt && !strcmp(name, opts[j].shrt))) return (int)j;
    return -1;
}

int gen_args_parse(int argc, char **argv, gen_args *a, sd_err *err)
{
    memset(a, 0, sizeof *a);
    sd_request_defaults(&a->req, 0);
    a->output = "out.png";
    a->output_flag = "-o";

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        char name[64];
        /* --flag=value */
        const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        snprintf(name, sizeof name, "%.*s", (int)(nlen < sizeof name ? nlen : sizeof name - 1), arg);
        const req_field *f = req_field_by_flag(name);
        int k = f ? -1 : find_opt(name);
        if (!f && k < 0) {
            if (arg[0] == '-' && arg[1])
                return sd_errf(err, SD_EINVAL, name, "unknown option '%s' (see sdserve generate --help)", name);
            return sd_errf(err, SD_EINVAL, "argument",
                           "unexpected argument '%s' (options take the form --name value; see --help)", arg);
        }
        if (f || opts[k].has_value) {
            if (eq) {
                val = eq + 1;
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                return sd_errf(err, SD_EINVAL, name, "%s needs a value", name);
            }
        } else if (eq) {
            return sd_errf(err, SD_EINVAL, name, "%s takes no value", name);
        }
        if (f ? apply_field(a, f, name, val, err) : apply(a, opts[k].id, name, val, err)) return -1;
    }
    if (a->help) return 0;
    if (!a->model || !*a->model) return sd_errf(err, SD_EINVAL, "--model", "--model is required (a .safetensors file or diffusers folder)");
    if (!a->req.gen.prompt) return sd_errf(err, SD_EINVAL, "--prompt", "--prompt is required");
    const char *p = a->req.gen.prompt;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (!*p) return sd_errf(err, SD_EINVAL, "--prompt", "--prompt is empty");
    if (given(a, "strength") && !a->init_image)
        return sd_errf(err, SD_EINVAL, "--strength", "--strength only applies with --init-image");
    if (a->mask_image && !a->init_image)
        return sd_errf(err, SD_EINVAL, "--mask", "--mask only applies with --init-image (it marks what to repaint)");
    if (sd_check_sampler(&a->req.gen, err)) {   /* --scheduler / --timestep-spacing vs --sampler */
        const req_field *f = req_field_by_engine(err->field);
        if (f && f->cli) snprintf(err->field, sizeof err->field, "%s", f->cli);
        return -1;
    }
    a->req.img2img = a->init_image != NULL;
    return output_format(a, given(a, "output_format"), err);
}

int gen_output_name(const char *output, int i, char *buf, size_t cap)
{
    int n;
    if (i == 0) {
        n = snprintf(buf, cap, "%s", output);
    } else {
        const char *ext = output_ext(output), *dot = ext ? ext - 1 : NULL;
        if (dot)
            n = snprintf(buf, cap, "%.*s-%d%s", (int)(dot - output), output, i, dot);
        else
            n = snprintf(buf, cap, "%s-%d", output, i);
    }
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ---- running ----------------------------------------------------------- */

static int read_file(const char *path, uint8_t **out, size_t *len, size_t cap, sd_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sd_errf(err, SD_EIO, "--init-image", "cannot open %s: %s", path, strerror(errno));
    size_t n = 0, sz = 1 << 16;
    uint8_t *b = malloc(sz);
    while (b) {
        size_t r = fread(b + n, 1, sz - n, f);
        n += r;
        if (n < sz) break;
        if (sz >= cap) {
            free(b);
            fclose(f);
            return sd_errf(err, SD_ETOOLARGE, "--init-image", "%s is larger than %zu MB", path, cap >> 20);
        }
        uint8_t *nb = realloc(b, sz * 2);
        if (!nb) free(b);
        b = nb;
        sz *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!b) return sd_errf(err, SD_ENOMEM, "--init-image", "out of memory reading %s", path);
    if (bad) {
        free(b);
        return sd_errf(err, SD_EIO, "--init-image", "cannot read %s", path);
    }
    *out = b;
    *len = n;
    return 0;
}

/* Each output file's place, before the model loads and the images are
 * made (minutes with a real checkpoint): not a folder, in a folder that
 * exists and can be written.  -1 with err naming -o/--output otherwise. */
static int check_output_place(const gen_args *a, sd_err *err)
{
    const char *flag = a->output_flag;
    char name[4096], dir[4096];
    struct stat st;
    for (int i = 0; i < a->req.gen.n; i++) {
        if (gen_output_name(a->output, i, name, sizeof name))
            return sd_errf(err, SD_EINVAL, flag, "%s %.200s: file name too long", flag, a->output);
        size_t len = strlen(name);
        if (name[len - 1] == '/' || (!stat(name, &st) && S_ISDIR(st.st_mode)))
            return sd_errf(err, SD_EINVAL, flag, "%s %s is a folder; give a file name, e.g. %s%sout.png", flag, name,
                           name, name[len - 1] == '/' ? "" : "/");
    }
    const char *slash = strrchr(a->output, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == a->output) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - a->output), a->output);
    if (stat(dir, &st))
        return sd_errf(err, SD_EINVAL, flag, "%s %s: the folder %s %s; create it first or write elsewhere", flag,
                       a->output, dir, errno == ENOENT ? "does not exist" : strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return sd_errf(err, SD_EINVAL, flag, "%s %s: %s is not a folder", flag, a->output, dir);
    if (access(dir, W_OK | X_OK))
        return sd_errf(err, SD_EINVAL, flag, "%s %s: cannot write in %s: %s", flag, a->output, dir, strerror(errno));
    return 0;
}

/* Writes next to the target and renames, so a failed run leaves no half file. */
static int write_file(const char *path, const uint8_t *d, size_t n, sd_err *err)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp) return sd_errf(err, SD_ENOMEM, "--output", "out of memory");
    snprintf(tmp, pl + 16, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(d, 1, n, f) == n;
    if (f && fclose(f)) ok = 0;
    if (ok && rename(tmp, path)) ok = 0;
    int e = errno;
    if (!ok) {
        unlink(tmp);
        free(tmp);
        return sd_errf(err, SD_EIO, "--output", "cannot write %s: %s", path, strerror(e));
    }
    free(tmp);
    return 0;
}

typedef struct run_state {
    progress bar;
} run_state;

static int on_progress(void *ud, int step, int total)
{
    progress_step(&((run_state *)ud)->bar, step, total);
    return 0;
}

/* --mask FILE as a plane of the init image's size (w x h). */
static int read_mask(const char *path, int w, int h, uint8_t **mask, sd_err *err)
{
    uint8_t *file = NULL;
    size_t flen = 0;
    if (read_file(path, &file, &flen, (size_t)64 << 20, err)) return -1;
    int rc = inpaint_decode_mask(file, flen, INPAINT_MASK_LUMA, "--mask", w, h, mask, err);
    free(file);
    return rc;
}

static int run(const gen_args *a, sd_err *err)
{
    uint8_t *file = NULL, *mask = NULL;
    size_t flen = 0;
    img_rgb init = {0};
    int mw = 0, mh = 0;
    char lora_label[4200];   /* an unknown LoRA names the flag and the folder, not the server's GET /loras */
    snprintf(lora_label, sizeof lora_label, "--lora-dir %.4000s", a->lora_dir ? a->lora_dir : "");
    /* the LoRA names first, before the init image and the long load: the cheapest mistake to find */
    if (sd_loras_findable(&a->req.gen, a->lora_dir, lora_label, err)) return -1;
    if (a->init_image) {
        if (read_file(a->init_image, &file, &flen, (size_t)64 << 20, err)) return -1;
        img_decode_opts o = {.field = "--init-image"};
        int rc = img_decode(file, flen, &o, &init, err);
        free(file);
        if (rc) return -1;
        int w0 = init.width, h0 = init.height;
        if (a->mask_image && read_mask(a->mask_image, w0, h0, &mask, err)) {
            img_rgb_free(&init);
            return -1;
        }
        rc = img_fit_within(&init, REQ_MAX_SIDE, err);
        if (rc < 0) {
            img_rgb_free(&init);
            free(mask);
            return -1;
        }
        if (rc > 0) fprintf(stderr, "init image %dx%d scaled to %dx%d\n", w0, h0, init.width, init.height);
        mw = w0;
        mh = h0;
        if (given(a, "width") || given(a, "height")) fprintf(stderr, "note: -W/-H are ignored with --init-image (output is %dx%d)\n", init.width, init.height);
    }

    sd_load_opts lo = {.model_path = a->model, .config_path = a->config, .vocab_path = a->vocab, .threads = a->threads,
                       .precision = a->precision, .embeddings_dir = a->embeddings_dir,
                       .vae_path = a->vae, .lora_dir = a->lora_dir,
                       .prediction = a->prediction, .zero_snr = a->zero_snr, .vae_tiling = a->vae_tiling};
    lo.lora_dir_label = lora_label;
    lo.preview_decoder = a->preview_decoder;   /* previews (issue 18) */
    lo.vae_decoder = a->vae_decoder;
    sd_engine *eng = sd_engine_load(&lo, err);
    if (!eng) {
        img_rgb_free(&init);
        free(mask);
        return -1;
    }
    sd_model_info info;
    sd_engine_info(eng, &info);
    fprintf(stderr, "model %s (%s, %s%s, hash %s), precision %s\n", info.name ? info.name : "?", info.family,
            info.prediction, info.zero_snr ? ", zero terminal SNR" : "", info.hash, info.precision);
    if (info.vae_name) fprintf(stderr, "VAE %s (hash %s)\n", info.vae_name, info.vae_hash);

    sd_request req = a->req;   /* argv's strings, borrowed: not sd_request_free'd */
    req_resolve_size(&req, info.native_size);   /* no -W/-H: the model's native size */
    if (req.seed_was_random) req.gen.seed = req_random_seed();
    req.gen.init_width = init.width;
    req.gen.init_height = init.height;
    req.gen.mask = NULL;
    if (mask && inpaint_set_mask(&req, mask, mw, mh, "--mask", err)) {   /* fitted, inverted, checked */
        img_rgb_free(&init);
        sd_engine_free(eng);
        return -1;
    }
    sd_gen_params p = req.gen;
    p.init_rgb = init.px;
    p.init_width = init.width;
    p.init_height = init.height;
    run_state st;
    progress_start(&st.bar, stderr, "", -1);
    p.progress = on_progress;
    p.progress_ud = &st;
    sd_image *imgs = calloc((size_t)p.n, sizeof *imgs);
    int rc = imgs ? inpaint_generate(eng, &req, &p, imgs, err) : sd_errf(err, SD_ENOMEM, NULL, "out of memory");
    progress_end(&st.bar);
    img_rgb_free(&init);
    free((uint8_t *)req.gen.mask);

    for (int i = 0; rc == 0 && i < p.n; i++) {
        img_gen_info g = req_gen_info(&req, i, imgs[i].width, imgs[i].height, info.hash, info.name, info.family);
        g.vae_hash = info.vae_hash;
        g.vae_decoder = info.vae_decoder;
        g.vae_name = info.vae_name;
        char lora_hashes[SD_MAX_LORAS * (SD_MAX_LORA_NAME + 16)];
        sd_lora_hashes(eng, &req.gen, lora_hashes, sizeof lora_hashes);
        g.lora_hashes = lora_hashes;
        char *text = img_a1111_parameters(&g);
        img_encode_opts eo = {(img_format)a->req.out_format, a->req.out_quality, text};
        uint8_t *buf = NULL;
        size_t n = 0;
        char name[4096];
        if (!text) rc = sd_errf(err, SD_ENOMEM, NULL, "out of memory");
        else if (gen_output_name(a->output, i, name, sizeof name))
            rc = sd_errf(err, SD_EINVAL, "--output", "output file name too long");
        else if (img_encode(imgs[i].rgb, imgs[i].width, imgs[i].height, &eo, &buf, &n, err)) rc = -1;
        else if (write_file(name, buf, n, err)) rc = -1;
        else printf("%s seed=%llu\n", name, (unsigned long long)imgs[i].seed);
        free(buf);
        free(text);
    }
    fflush(stdout);
    if (imgs)
        for (int i = 0; i < p.n; i++) sd_image_free(&imgs[i]);
    free(imgs);
    sd_engine_free(eng);
    return rc;
}

int cli_generate(int argc, char **argv)
{
    gen_args a;
    sd_err err;
    sd_err_clear(&err);
    int rc = 0;
    if (gen_args_parse(argc, argv, &a, &err)) {
        fprintf(stderr, "sdserve generate: %s\n", err.msg);
        rc = 2;
    } else if (a.help) {
        gen_usage(stdout);
    } else if (check_output_place(&a, &err)) {
        fprintf(stderr, "sdserve generate: %s\n", err.msg);
        rc = 2;
    } else if (run(&a, &err)) {
        fprintf(stderr, "sdserve generate: %s\n", err.msg);
        rc = 1;
    }
    req_free_loras(&a.req);   /* the one part of the request it owns */
    return rc;
}
