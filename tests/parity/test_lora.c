/* test_lora.c — parity of the LoRA module (src/engine/lora/) with the
 * goldens in goldens/lora-tiny-sd1/ (diffusers v0.25.1 load_lora_weights +
 * fuse_lora), on tiny-sd1 loaded from the diffusers folder and from the
 * fp16 single file:
 *  - the two kohya files and the two PEFT files map every module to the
 *    canonical weight name that lora/name_map.tsv gives (129 each), with
 *    rank 4 and alpha 2 (A) / 8 (B);
 *  - the merged tensors of merged/<case>/ (a_m0.7, a_m1.0, a_m0.7_b_m0.5)
 *    within 1e-6, through both namings;
 *  - every one of the 129 merged tensors against the formula in double;
 *  - the same files against tiny-sd2 and tiny-sdxl-s (other families)
 *    are refused naming "loras", the LoRA and a module;
 *  - the pipeline goldens pipe/txt2img_euler_4_* are present (they are
 *    used once LoRA is applied to a loaded model through the weight seam).
 * Prints "metric lora/..." lines and a "#" line with the time to merge all
 * 129 modules (no timing assertion). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "npy.h"
#include "parity.h"
#include "t.h"
#include "../../src/engine/lora/lora.h"

#define TOL 1e-6
#define NMOD 129
#define LDIR "goldens/lora-tiny-sd1/"

/* name_map.tsv: kohya name, component, diffusers module per row. */
typedef struct map_row {
    char kohya[200], peft[280], canon[288];
} map_row;

static map_row rows[NMOD + 8];
static size_t nrows;

static int read_name_map(void)
{
    FILE *f = fopen(t_ref(LDIR "lora/name_map.tsv"), "r");
    if (!f) return -1;
    char line[1024], comp[64], mod[200];
    while (fgets(line, sizeof line, f) && nrows < sizeof rows / sizeof rows[0]) {
        if (!strncmp(line, "kohya_name\t", 11)) continue;
        if (sscanf(line, "%199[^\t]\t%63[^\t]\t%199[^\t]", rows[nrows].kohya, comp, mod) != 3) continue;
        snprintf(rows[nrows].peft, sizeof rows[nrows].peft, "%s.%s", comp, mod);
        snprintf(rows[nrows].canon, sizeof rows[nrows].canon, "%s.%s.weight", comp, mod);
        nrows++;
    }
    fclose(f);
    return 0;
}

static sd_lora *load(const char *file, const lora_names *nm, const char *src)
{
    char rel[256], name[300];
    snprintf(rel, sizeof rel, LDIR "lora/%s.safetensors", file);
    sd_err err;
    sd_err_clear(&err);
    sd_lora *l = lora_load(t_ref(rel), file, nm, &err);
    snprintf(name, sizeof name, "%s: %s loads", src, file);
    CHECKF(l != NULL, name, "%s", err.msg);
    return l;
}

/* Every row of name_map.tsv is a module of l, under the expected source
 * name, with rank 4 and the file's alpha. */
static void check_names(const sd_lora *l, const char *file, int peft, float alpha, const char *src)
{
    size_t mapped = 0;
    char name[300];
    for (size_t i = 0; i < nrows; i++) {
        const lora_module *m = lora_find(l, rows[i].canon);
        const char *want = peft ? rows[i].peft : rows[i].kohya;
        if (m && !strcmp(m->src, want) && m->rank == 4 && m->alpha == alpha && m->scale == alpha / 4) {
            mapped++;
        } else {
            snprintf(name, sizeof name, "%s: %s: %s maps to %s", src, file, want, rows[i].canon);
            CHECKF(0, name, "got %s (rank %d alpha %g)", m ? m->src : "no module", m ? m->rank : 0, m ? m->alpha : 0);
        }
    }
    printf("# %s: %s: %zu modules mapped to name_map.tsv's weight names\n", src, file, mapped);
    snprintf(name, sizeof name, "%s: %s: all %d modules map to name_map.tsv's canonical names", src, file, NMOD);
    CHECKF(nrows == NMOD && mapped == NMOD && lora_module_count(l) == NMOD &&
               lora_naming_of(l) == (peft ? LORA_PEFT : LORA_KOHYA),
           name, "rows %zu mapped %zu modules %zu", nrows, mapped, lora_module_count(l));
}

/* merged/<kase>/ against lora_merge of stack on w; returns max |diff|. */
static double check_case(const sd_weights *w, const char *kase, const lora_use *stack, size_t n, const char *label)
{
    char dir[256], path[600], name[400];
    snprintf(dir, sizeof dir, "%s", t_ref(LDIR "merged/"));
    strncat(dir, kase, sizeof dir - strlen(dir) - 1);
    DIR *dp = opendir(dir);
    double worst = 0;
    int files = 0, bad = 0;
    struct dirent *de;
    while (dp && (de = readdir(dp))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".npy")) continue;
        char canon[300];
        snprintf(canon, sizeof canon, "%.*s", (int)(len - 4), de->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        const sdw_tensor *t = sdw_get(w, canon);
        npy g;
        if (!t || npy_load(path, &g)) { bad++; continue; }
        float *out = malloc(g.n * sizeof *out);
        sd_err err;
        sd_err_clear(&err);
        int applied = out && (size_t)sdw_numel(t) == g.n ? lora_merge(t, stack, n, out, &err) : -1;
        double d = applied == (int)n ? npy_maxdiff(out, g.f, g.n) : 1e9;
        if (d > worst) worst = d;
        if (applied != (int)n) fprintf(stderr, "%s: %s: applied %d: %s\n", label, canon, applied, err.msg);
        files++;
        free(out);
        npy_free(&g);
    }
    if (dp) closedir(dp);
    printf("metric lora/%s/%s maxabs %.3g tol %g\n", label, kase, worst, TOL);
    snprintf(name, sizeof name, "%s: merged/%s: %d tensors within %g", label, kase, files, TOL);
    CHECKF(files == 14 && !bad && worst <= TOL, name, "files %d bad %d maxabs %g", files, bad, worst);
    return worst;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Every module of a and b stacked (m 0.7, 0.5) against the formula in
 * double, and the time to merge all 129 modules of a. */
static void check_all(const sd_weights *w, const sd_lora *a, const sd_lora *b, const char *src)
{
    const lora_use stack[] = {{a, 0.7f}, {b, 0.5f}};
    double worst = 0;
    int ok = 0;
    for (size_t i = 0; i < lora_module_count(a); i++) {
        const lora_module *ma = lora_module_at(a, i), *mb = lora_find(b, ma->target);
        const sdw_tensor *t = sdw_get(w, ma->target);
        size_t n = t ? (size_t)sdw_numel(t) : 0;
        float *out = malloc((n ? n : 1) * sizeof *out);
        sd_err err;
        sd_err_clear(&err);
        if (!t || !mb || !out || lora_merge(t, stack, 2, out, &err) != 2) { free(out); continue; }
        for (int64_t o = 0; o < ma->out; o++)
            for (int64_t j = 0; j < ma->in; j++) {
                double w1 = t->data[o * ma->in + j], w2;
                double da = 0, db = 0;
                for (int r = 0; r < ma->rank; r++) da += (double)ma->up[o * ma->rank + r] * ma->scale * ma->down[r * ma->in + j];
                for (int r = 0; r < mb->rank; r++) db += (double)mb->up[o * mb->rank + r] * mb->scale * mb->down[r * mb->in + j];
                w2 = w1 + 0.7 * da + 0.5 * db;
                double d = fabs(out[o * ma->in + j] - w2) / (1 + fabs(w2));
                if (d > worst) worst = d;
            }
        ok++;
        free(out);
    }
    char name[200];
    snprintf(name, sizeof name, "%s: all %d merged tensors of a·0.7 + b·0.5 within %g of the double formula", src, NMOD, TOL);
    CHECKF(ok == NMOD && worst <= TOL, name, "merged %d max rel %g", ok, worst);
}

/* The time to merge every module of l into w (best of 3, into one buffer). */
static void time_all(const sd_weights *w, const sd_lora *l, const char *src)
{
    size_t most = 0;
    for (size_t i = 0; i < lora_module_count(l); i++) {
        const lora_module *m = lora_module_at(l, i);
        if ((size_t)(m->out * m->in) > most) most = (size_t)(m->out * m->in);
    }
    float *out = malloc((most ? most : 1) * sizeof *out);
    double ms = 1e30;
    for (int rep = 0; out && rep < 3; rep++) {
        double t0 = now_ms();
        for (size_t i = 0; i < lora_module_count(l); i++) {
            const lora_module *m = lora_module_at(l, i);
            const sdw_tensor *t = sdw_get(w, m->target);
            if (t) lora_merge_module(m, 0.7f, t->data, out);
        }
        ms = fmin(ms, now_ms() - t0);
    }
    free(out);
    printf("# %s: merging all %zu modules of %s into tiny-sd1: %.2f ms (best of 3)\n", src, lora_module_count(l),
           lora_name(l), ms);
}

static void check_model(const char *src, const char *path)
{
    sd_weights *w = parity_open("tiny-sd1", src, path);
    if (!w) return;
    sd_err err;
    sd_err_clear(&err);
    lora_names *nm = lora_names_from_weights(w, &err);
    char name[200];
    snprintf(name, sizeof name, "tiny-sd1/%s: LoRA targets listed", src);
    CHECKF(nm && lora_names_count(nm) > NMOD, name, "%zu %s", lora_names_count(nm), err.msg);
    static const char *const files[] = {"lora_a_kohya", "lora_b_kohya", "lora_a_peft", "lora_b_peft"};
    sd_lora *l[4] = {0};
    for (int i = 0; nm && i < 4; i++) {
        if (!(l[i] = load(files[i], nm, src))) continue;
        check_names(l[i], files[i], i >= 2, i % 2 ? 8.0f : 2.0f, src);
    }
    for (int p = 0; p < 2; p++) {
        const sd_lora *a = l[2 * p], *b = l[2 * p + 1];
        if (!a || !b) continue;
        char label[100];
        snprintf(label, sizeof label, "tiny-sd1/%s/%s", src, p ? "peft" : "kohya");
        const lora_use a07[] = {{a, 0.7f}}, a10[] = {{a, 1.0f}}, ab[] = {{a, 0.7f}, {b, 0.5f}};
        check_case(w, "a_m0.7", a07, 1, label);
        check_case(w, "a_m1.0", a10, 1, label);
        check_case(w, "a_m0.7_b_m0.5", ab, 2, label);
        if (!p) check_all(w, a, b, src), time_all(w, a, src);
    }
    for (int i = 0; i < 4; i++) lora_free(l[i]);
    lora_names_free(nm);
    sdw_close(w);
}

/* The pipeline goldens exist (their use waits for the weight seam). */
static void check_pipe_goldens(void)
{
    static const char *const runs[] = {"nolora", "a_m0.7", "a_m1.0", "a_m0.7_b_m0.5"};
    static const char *const files[] = {"final_latent.npy", "image.npy", "noise_draws.npy", "context.npy"};
    int found = 0;
    struct stat st;
    for (int r = 0; r < 4; r++)
        for (int f = 0; f < 4; f++) {
            char rel[256];
            snprintf(rel, sizeof rel, LDIR "pipe/txt2img_euler_4_%s/%s", runs[r], files[f]);
            found += stat(t_ref(rel), &st) == 0;
        }
    found += stat(t_ref(LDIR "pipe/init_noise.npy"), &st) == 0;
    CHECKF(found == 17, "pipe goldens (txt2img_euler_4_{nolora,a_m0.7,a_m1.0,a_m0.7_b_m0.5}) present", "%d of 17", found);
}

/* tiny-sd1's LoRAs on another family's model: refused, naming the module. */
static void check_other_family(const char *model, const char *path)
{
    sd_weights *w = parity_open(model, "diffusers", path);
    if (!w) return;
    sd_err err;
    sd_err_clear(&err);
    lora_names *nm = lora_names_from_weights(w, &err);
    static const char *const files[] = {"lora_a_kohya", "lora_a_peft"};
    for (int i = 0; nm && i < 2; i++) {
        char rel[256], name[300], who[64];
        snprintf(rel, sizeof rel, LDIR "lora/%s.safetensors", files[i]);
        snprintf(who, sizeof who, "LoRA '%s': ", files[i]);
        sd_err_clear(&err);
        sd_lora *l = lora_load(t_ref(rel), files[i], nm, &err);
        snprintf(name, sizeof name, "%s: tiny-sd1's %s refused naming loras and a module", model, files[i]);
        CHECKF(!l && err.code == SD_EINVAL && !strcmp(err.field, "loras") && strstr(err.msg, who) &&
               strstr(err.msg, "module '"), name, "%s", err.msg);
        lora_free(l);
    }
    lora_names_free(nm);
    sdw_close(w);
}

int main(void)
{
    if (!parity_begin()) return t_done();
    CHECK(read_name_map() == 0 && nrows == NMOD, "name_map.tsv read: 129 modules");
    check_model("diffusers", "models/tiny-sd1");
    check_model("single-fp16", "models/tiny-sd1-fp16.safetensors");
    check_other_family("tiny-sd2", "models/tiny-sd2");
    check_other_family("tiny-sdxl-s", "models/tiny-sdxl-s");
    check_pipe_goldens();
    return t_done();
}
