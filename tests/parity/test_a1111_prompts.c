/* test_a1111_prompts.c — A1111 prompt syntax (src/engine/prompt/) against
 * the stable-diffusion-webui v1.10.1 goldens in goldens/a1111-prompts/:
 * for all 44 prompts the parsed (text, weight) list (weights equal as
 * doubles), the fragment ids, chunk count, token count, chunk ids and
 * multipliers; the conditioning on tiny-sd1 at clip skip 1 and 2 and on
 * tiny-sd2 (ids fed with OpenCLIP's 0 padding), from the diffusers folders
 * and the fp16 single files, with the te_patch final layer norm swapped in; schedules.json's prompt-editing schedules at 20
 * steps; and the refusals (AND, bad weight, too many chunks).  Prints
 * "metric a1111/..." lines with the counts and the largest difference. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "npy.h"
#include "parity.h"
#include "t.h"
#include "../../src/engine/prompt/a1111.h"
#include "../../src/engine/sd.h"

#define TOL 1e-4
#define NPROMPTS_MIN 44

static sd_tokenizer *tok;

static int golden(const char *rel, npy *a)
{
    char p[300];
    snprintf(p, sizeof p, "goldens/a1111-prompts/%s", rel);
    if (access(t_ref(p), R_OK)) return 1;   /* absent: not every prompt has every file */
    return npy_load(t_ref(p), a) ? -1 : 0;
}

/* ---- parsing and chunking ------------------------------------------------- */

static int same_parsed(const a1111_parsed *p, json_t *want)
{
    if ((size_t)p->n != json_array_size(want)) return 0;
    for (int i = 0; i < p->n; i++) {
        json_t *e = json_array_get(want, (size_t)i);
        if (strcmp(p->v[i].text, json_string_value(json_array_get(e, 0))) ||
            p->v[i].weight != json_number_value(json_array_get(e, 1)))
            return 0;
    }
    return 1;
}

static int same_fragments(const a1111_parsed *p, json_t *want)
{
    int ok = (size_t)p->n == json_array_size(want);
    for (int i = 0; ok && i < p->n; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        sd_err err;
        sd_err_clear(&err);
        json_t *w = json_array_get(want, (size_t)i);
        ok = !tok_encode(tok, p->v[i].text, &ids, &n, &err) && n == json_array_size(w);
        for (size_t k = 0; ok && k < n; k++) ok = ids[k] == json_integer_value(json_array_get(w, k));
        free(ids);
    }
    return ok;
}

static int same_ids(const a1111_chunks *c, const npy *g)
{
    if (!g->is_int || g->n != (size_t)c->n_chunks * 77) return 0;
    for (size_t i = 0; i < g->n; i++)
        if (c->ids[i] != g->i[i]) return 0;
    return 1;
}

static int same_mults(const a1111_chunks *c, json_t *m64, const npy *g)
{
    if (json_array_size(m64) != (size_t)c->n_chunks || g->n != (size_t)c->n_chunks * 77) return 0;
    for (int k = 0; k < c->n_chunks; k++)
        for (int t = 0; t < 77; t++) {
            double m = c->mults[k * 77 + t];
            if (m != json_number_value(json_array_get(json_array_get(m64, (size_t)k), (size_t)t)) ||
                (float)m != g->f[k * 77 + t])
                return 0;
        }
    return 1;
}

enum { C_PARSED, C_FRAGS, C_NCHUNKS, C_COUNT, C_IDS, C_MULTS, C_N };
static const char *check_name[C_N] = {"parsed", "fragment_ids", "n_chunks", "token_count", "chunk ids", "multipliers"};

static void parse_and_chunk(json_t *prompts)
{
    int matched[C_N] = {0}, n = (int)json_array_size(prompts);
    CHECKF(n >= NPROMPTS_MIN, "prompts.json holds the golden prompts", "%d", n);
    for (int i = 0; i < n; i++) {
        json_t *g = json_array_get(prompts, (size_t)i);
        const char *text = json_string_value(json_object_get(g, "prompt"));
        a1111_parsed p;
        a1111_chunks c = {0};
        sd_err err;
        sd_err_clear(&err);
        int ok[C_N] = {0};
        if (a1111_parse(text, "prompt", &p, &err) == 0) {
            ok[C_PARSED] = same_parsed(&p, json_object_get(g, "parsed"));
            ok[C_FRAGS] = same_fragments(&p, json_object_get(g, "fragment_ids"));
            if (a1111_chunk(tok, &p, "prompt", 64, &c, &err) == 0) {
                char rel[64];
                npy ids = {0}, mults = {0};
                ok[C_NCHUNKS] = c.n_chunks == json_integer_value(json_object_get(g, "n_chunks"));
                ok[C_COUNT] = c.token_count == json_integer_value(json_object_get(g, "token_count"));
                snprintf(rel, sizeof rel, "sd1/p%02d_ids.npy", i);
                ok[C_IDS] = golden(rel, &ids) == 0 && same_ids(&c, &ids);
                snprintf(rel, sizeof rel, "sd1/p%02d_mults.npy", i);
                ok[C_MULTS] = golden(rel, &mults) == 0 &&
                              same_mults(&c, json_object_get(g, "multipliers_float64"), &mults);
                npy_free(&ids);
                npy_free(&mults);
                a1111_chunks_free(&c);
            }
            a1111_parsed_free(&p);
        }
        char name[200];
        for (int k = 0; k < C_N; k++) {
            matched[k] += ok[k];
            if (ok[k]) continue;
            snprintf(name, sizeof name, "p%02d %s: %s", i, json_string_value(json_object_get(g, "name")),
                     check_name[k]);
            CHECKF(0, name, "differs from A1111 (%s)", err.msg);
        }
    }
    for (int k = 0; k < C_N; k++) {
        char name[120];
        printf("metric a1111/%s matched %d of %d\n", check_name[k], matched[k], n);
        snprintf(name, sizeof name, "every golden prompt: %s as A1111", check_name[k]);
        CHECKF(matched[k] == n, name, "%d of %d", matched[k], n);
    }
}

/* ---- conditioning --------------------------------------------------------- */

/* The model's text encoder with te_patch's final layer norm in place of its
 * own (the weights table is ours to repoint before clip_load reads it). */
typedef struct patched { sd_weights *w; sd_clip *clip; npy lnw, lnb; } patched;

static int patched_open(patched *m, const char *model, const char *src, const char *path)
{
    char rel[200];
    sd_err err;
    sd_err_clear(&err);
    memset(m, 0, sizeof *m);
    if (!(m->w = parity_open(model, src, path))) return -1;
    const char *part[2] = {"weight", "bias"};
    npy *dst[2] = {&m->lnw, &m->lnb};
    for (int k = 0; k < 2; k++) {
        char name[120];
        snprintf(rel, sizeof rel, "te_patch/%s_final_layer_norm.%s.npy", model, part[k]);
        snprintf(name, sizeof name, "text_encoder.text_model.final_layer_norm.%s", part[k]);
        sdw_tensor *t = (sdw_tensor *)sdw_get(m->w, name);
        int bad = golden(rel, dst[k]) != 0 || !t || sdw_numel(t) != (int64_t)dst[k]->n;
        CHECKF(!bad, "te_patch final layer norm swapped in", "%s %s", model, part[k]);
        if (bad) return -1;
        t->data = dst[k]->f;
    }
    m->clip = clip_load(m->w, NULL, NULL, &err);
    CHECKF(m->clip != NULL, "patched text encoder loads", "%s: %s", model, err.msg);
    return m->clip ? 0 : -1;
}

static void patched_close(patched *m)
{
    clip_free(m->clip);
    sdw_close(m->w);
    npy_free(&m->lnw);
    npy_free(&m->lnb);
}

typedef struct cond_stats { int tried, matched; double worst; } cond_stats;

/* a1111_condition(text) against the golden `rel` (skipped when absent). */
static void cond_case(patched *m, sd_family fam, int skip, const char *text, const char *rel, const char *label,
                      cond_stats *st)
{
    npy g = {0};
    if (golden(rel, &g) == 1) return;
    float *z = NULL;
    int T = 0;
    sd_err err;
    sd_err_clear(&err);
    int rc = a1111_condition(m->clip, tok, fam, text, skip, "prompt", &z, &T, &err);
    int W = clip_width(m->clip);
    double d = rc || g.n != (size_t)T * W ? INFINITY : npy_maxdiff(z, g.f, g.n);
    st->tried++;
    st->matched += d <= TOL;
    if (d > st->worst) st->worst = d;
    if (!(d <= TOL)) CHECKF(0, label, "rc %d T %d maxabs %g %s", rc, T, d, err.msg);
    free(z);
    npy_free(&g);
}

/* SD2: the ids A1111 feeds OpenCLIP (0 after the first end id). */
static int sd2_ids_fed(json_t *g, int i)
{
    char rel[64];
    npy want = {0};
    snprintf(rel, sizeof rel, "sd2/p%02d_ids_fed.npy", i);
    if (golden(rel, &want)) return -1;
    a1111_parsed p;
    a1111_chunks c = {0};
    sd_err err;
    sd_err_clear(&err);
    int ok = 0;
    if (!a1111_parse(json_string_value(json_object_get(g, "prompt")), "prompt", &p, &err)) {
        if (!a1111_chunk(tok, &p, "prompt", 64, &c, &err)) {
            a1111_openclip_pad(c.ids, c.n_chunks, tok_eos(tok));
            ok = same_ids(&c, &want);
        }
        a1111_chunks_free(&c);
        a1111_parsed_free(&p);
    }
    npy_free(&want);
    return ok;
}

static void report(const char *what, const cond_stats *st, int want_min)
{
    char name[160];
    printf("metric a1111/cond/%s matched %d of %d maxabs %.3g tol %g\n", what, st->matched, st->tried, st->worst,
           TOL);
    snprintf(name, sizeof name, "conditioning %s within %g of A1111 (every golden)", what, TOL);
    CHECKF(st->tried >= want_min && st->matched == st->tried, name, "%d of %d, maxabs %g", st->matched, st->tried,
           st->worst);
}

/* Every prompt on one model file: SD1 at clip skip 1 and 2 (st[0], st[1]);
 * SD2 once, asking for clip skip 2, which A1111 ignores (st[1]), and its ids. */
static void model_cases(const char *model, const char *src, const char *path, sd_family fam, json_t *prompts,
                        cond_stats *st, int *fed, int *fed_ok)
{
    patched m;
    int n = (int)json_array_size(prompts), sd2 = fam == SD_FAMILY_SD2;
    if (patched_open(&m, model, src, path) == 0)
        for (int i = 0; i < n; i++) {
            json_t *g = json_array_get(prompts, (size_t)i);
            const char *text = json_string_value(json_object_get(g, "prompt"));
            for (int skip = 1 + sd2; skip <= 2; skip++) {
                char rel[64], label[120];
                if (sd2) snprintf(rel, sizeof rel, "sd2/p%02d_cond.npy", i);
                else snprintf(rel, sizeof rel, "sd1/p%02d_cond_skip%d.npy", i, skip);
                snprintf(label, sizeof label, "p%02d %s/%s clip skip %d", i, model, src, skip);
                cond_case(&m, fam, skip, text, rel, label, &st[skip - 1]);
            }
            int r = sd2 ? sd2_ids_fed(g, i) : -1;
            if (r < 0) continue;
            (*fed)++;
            *fed_ok += r;
        }
    patched_close(&m);
}

static void conditioning(json_t *prompts)
{
    cond_stats s1[2] = {{0}}, s2[2] = {{0}};
    int fed = 0, fed_ok = 0;
    /* the diffusers folders and the fp16 single files (LDM / OpenCLIP names) */
    model_cases("tiny-sd1", "diffusers", "models/tiny-sd1", SD_FAMILY_SD1, prompts, s1, &fed, &fed_ok);
    model_cases("tiny-sd1", "single-fp16", "models/tiny-sd1-fp16.safetensors", SD_FAMILY_SD1, prompts, s1, &fed,
                &fed_ok);
    model_cases("tiny-sd2", "diffusers", "models/tiny-sd2", SD_FAMILY_SD2, prompts, s2, &fed, &fed_ok);
    model_cases("tiny-sd2", "single-fp16", "models/tiny-sd2-fp16.safetensors", SD_FAMILY_SD2, prompts, s2, &fed,
                &fed_ok);
    report("sd1-skip1", &s1[0], 2 * 44);
    report("sd1-skip2", &s1[1], 2 * 18);
    report("sd2", &s2[1], 2 * 14);
    printf("metric a1111/sd2 ids_fed matched %d of %d\n", fed_ok, fed);
    CHECKF(fed >= 2 * 14 && fed_ok == fed, "sd2: ids fed to OpenCLIP as A1111 (0 after the first end id)", "%d of %d",
           fed_ok, fed);
}

/* ---- schedules -------------------------------------------------------------- */

static int same_schedule(const a1111_schedule *s, json_t *want)
{
    if ((size_t)s->n != json_array_size(want)) return 0;
    for (int i = 0; i < s->n; i++) {
        json_t *e = json_array_get(want, (size_t)i);
        if (s->v[i].end_step != json_integer_value(json_array_get(e, 0)) ||
            strcmp(s->v[i].text, json_string_value(json_array_get(e, 1))))
            return 0;
    }
    return 1;
}

/* schedules.json: every prompt's schedule at 20 steps, and the AND rule on
 * its and_split (more than one part = refused). */
static void schedules(void)
{
    json_error_t je;
    json_t *all = json_load_file(t_ref("goldens/a1111-prompts/schedules.json"), 0, &je);
    int n = (int)json_array_size(all), same = 0, and_ok = 0;
    CHECKF(n >= 50, "schedules.json loads", "%d entries %s", n, je.text);
    for (int i = 0; i < n; i++) {
        json_t *g = json_array_get(all, (size_t)i);
        const char *text = json_string_value(json_object_get(g, "prompt"));
        a1111_schedule s;
        sd_err err;
        sd_err_clear(&err);
        int ok = a1111_schedule_build(text, 20, "prompt", &s, &err) == 0 &&
                 same_schedule(&s, json_object_get(g, "schedule_steps20"));
        same += ok;
        if (!ok) CHECKF(0, "schedule as A1111", "'%s': %s", text, err.msg);
        a1111_schedule_free(&s);
        int parts = (int)json_array_size(json_object_get(g, "and_split"));
        sd_err_clear(&err);
        int refused = a1111_check_and(text, "negative_prompt", &err) != 0;
        int r = refused == (parts > 1) && (!refused || (!strcmp(err.field, "negative_prompt") && strstr(err.msg, "AND")));
        and_ok += r;
        if (!r) CHECKF(0, "AND refused exactly when A1111 splits", "'%s' parts %d: %s", text, parts, err.msg);
    }
    printf("metric a1111/schedules matched %d of %d\n", same, n);
    CHECKF(n > 0 && same == n, "every schedules.json prompt: schedule at 20 steps as A1111", "%d of %d", same, n);
    CHECKF(n > 0 && and_ok == n, "every schedules.json prompt: AND refused exactly when A1111 splits", "%d of %d",
           and_ok, n);
    json_decref(all);
}

/* A plain one-chunk prompt gives exactly today's conditioning (the
 * engine's tok_windows + clip_encode), on the models as published. */
static void plain_is_today(const char *model, sd_family fam, int pad)
{
    char rel[100], name[160];
    snprintf(rel, sizeof rel, "models/%s", model);
    sd_weights *w = parity_open(model, "diffusers", rel);
    sd_err err;
    sd_err_clear(&err);
    sd_clip *c = w ? clip_load(w, NULL, NULL, &err) : NULL;
    const char *text = "a photograph of an astronaut riding a horse";
    int32_t *ids = NULL;
    int nw = 0, T = 0, same = 0;
    float *z = NULL, *today = NULL;
    if (c && !tok_windows(tok, text, pad, &ids, &nw, &err) && nw == 1 &&
        !a1111_condition(c, tok, fam, text, 0, "prompt", &z, &T, &err) && T == 77) {
        size_t n = (size_t)77 * clip_width(c);
        today = malloc(sizeof(float) * n);
        same = !clip_encode(c, ids, 1, 0, today, &err) && !memcmp(today, z, sizeof(float) * n);
    }
    snprintf(name, sizeof name, "%s: a plain prompt gives today's conditioning bit for bit", model);
    CHECKF(same, name, "T %d %s", T, err.msg);
    free(ids); free(z); free(today);
    if (c && fam == SD_FAMILY_SD1) {   /* clip skip beyond the layers: the encoder's refusal */
        sd_err_clear(&err);
        int rc = a1111_condition(c, tok, fam, text, clip_layers(c) + 1, "prompt", &z, &T, &err);
        snprintf(name, sizeof name, "%s: clip skip beyond the layers refused naming clip_skip", model);
        CHECKF(rc == -1 && !z && T == 0 && !strcmp(err.field, "clip_skip"), name, "rc %d %s", rc, err.msg);
    }
    clip_free(c);
    sdw_close(w);
}

int main(void)
{
    if (!parity_begin()) return t_done();
    sd_err err;
    sd_err_clear(&err);
    tok = tok_load_builtin(&err);
    CHECKF(tok != NULL, "built-in CLIP vocabulary loads", "%s", err.msg);
    json_error_t je;
    json_t *prompts = json_load_file(t_ref("goldens/a1111-prompts/prompts.json"), 0, &je);
    CHECKF(json_is_array(prompts), "prompts.json loads", "%s", je.text);
    if (tok && json_is_array(prompts)) {
        parse_and_chunk(prompts);
        conditioning(prompts);
        schedules();
        plain_is_today("tiny-sd1", SD_FAMILY_SD1, 49407);
        plain_is_today("tiny-sd2", SD_FAMILY_SD2, 0);
    }
    json_decref(prompts);
    tok_free(tok);
    return t_done();
}
