/* test_fuzz_regress.c — every crash the fuzzers found (and the hostile
 * inputs kept beside them), replayed through the normal (gcc) build: each
 * tests/fuzz/corpus/<target>/regress-* input must now be answered with a
 * clean error (or a clean result), never a crash or an oversized
 * allocation.  Run from the repo root (tests/run.sh does). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_memfd.h"
#include "lora_targets.h"
#include "lora_tags_check.h"
#include "t.h"

#include "../../src/image/image.h"
#include "../../src/engine/prompt/a1111.h"
#include "../../src/engine/sd.h"
#include "../../src/engine/loader/weights.h"

/* image: decoding must fail cleanly (these are all malformed) and the
 * parameters reader must not crash either. */
static void image_case(const char *name, const unsigned char *d, size_t n)
{
    sd_err err;
    sd_err_clear(&err);
    img_rgb im;
    int rc = img_decode(d, n, NULL, &im, &err);
    char label[300];
    snprintf(label, sizeof label, "image regression %s: refused with a message", name);
    CHECKF(rc == -1 && err.code == SD_EINVAL && err.msg[0] && !im.px, label, "rc %d code %d msg '%s'", rc, err.code,
           err.msg);
    if (rc == 0) img_rgb_free(&im);
    char *text = NULL;
    sd_err_clear(&err);
    if (img_read_parameters(d, n, &text, &err) == 0) free(text);
}

/* a1111_prompt: parsed, chunked within the engine's window limit,
 * scheduled and planned for 150 steps, or refused naming the field. */
static void a1111_case(const char *name, const unsigned char *d, size_t n)
{
    static sd_tokenizer *tok;
    sd_err err;
    sd_err_clear(&err);
    if (!tok && !(tok = tok_load_builtin(&err))) { CHECKF(0, "built-in vocabulary loads", "%s", err.msg); return; }
    char *text = malloc(n + 1);
    memcpy(text, d, n);
    text[n] = 0;
    a1111_parsed p;
    a1111_chunks c = {0};
    a1111_schedule s = {0};
    int rc = a1111_parse(text, "prompt", &p, &err);
    if (rc == 0) {
        rc = a1111_chunk(tok, &p, "prompt", SD_MAX_PROMPT_WINDOWS, &c, &err);
        a1111_parsed_free(&p);
    }
    char label[300];
    snprintf(label, sizeof label, "a1111_prompt regression %s: chunks within the limit or refused naming prompt", name);
    CHECKF((rc == 0 && c.n_chunks >= 1 && c.n_chunks <= SD_MAX_PROMPT_WINDOWS) ||
           (rc == -1 && err.code == SD_EINVAL && !strcmp(err.field, "prompt")), label, "rc %d chunks %d msg '%s'", rc,
           c.n_chunks, err.msg);
    a1111_chunks_free(&c);
    sd_err_clear(&err);
    rc = a1111_schedule_build(text, 20, "prompt", &s, &err);
    snprintf(label, sizeof label, "a1111_prompt regression %s: schedule ends at step 20", name);
    CHECKF(rc == 0 && s.n >= 1 && s.v[s.n - 1].end_step == 20, label, "rc %d n %d %s", rc, s.n, err.msg);
    a1111_schedule_free(&s);
    a1111_plan pl;
    sd_err_clear(&err);
    rc = a1111_plan_build(tok, text, 150, "negative", SD_MAX_PROMPT_WINDOWS, &pl, &err);
    snprintf(label, sizeof label, "a1111_prompt regression %s: a plan of 150 steps within its limits or refused "
             "naming negative", name);
    CHECKF((rc == 0 && pl.total_chunks <= A1111_MAX_PLAN_CHUNKS && pl.n_texts >= 1) ||
               (rc == -1 && err.code == SD_EINVAL && !strcmp(err.field, "negative")),
           label, "rc %d msg '%s'", rc, err.msg);
    if (rc == 0) a1111_plan_free(&pl);
    free(text);
}

/* lora: the LoRA reader refuses each (through a memfd, as fuzz_lora.c). */
static void lora_case(const char *name, const unsigned char *d, size_t n)
{
    sd_err err;
    sd_err_clear(&err);
    lora_names *nm = lora_names_new(lora_test_targets, LORA_TEST_NTARGETS, &err);
    char path[64];
    int fd = fuzz_memfd(d, n, path);
    sd_lora *l = nm && fd >= 0 ? lora_load(path, "regress", nm, &err) : NULL;
    char label[300];
    snprintf(label, sizeof label, "lora regression %s: refused naming loras", name);
    CHECKF(nm && fd >= 0 && !l && err.code == SD_EINVAL && !strcmp(err.field, "loras"), label, "code %d msg '%s'",
           err.code, err.msg);
    lora_free(l);
    lora_names_free(nm);
    if (fd >= 0) close(fd);
}

/* embeddings: the embedding reader refuses each naming embeddings (memfd, as fuzz_embeddings.c). */
static void embeddings_case(const char *name, const unsigned char *d, size_t n)
{
    sd_err err;
    sd_err_clear(&err);
    char path[64];
    int fd = fuzz_memfd(d, n, path);
    sd_embedding e;
    int rc = fd >= 0 ? emb_read(path, "regress", &e, &err) : -1;
    char label[300];
    snprintf(label, sizeof label, "embeddings regression %s: refused naming embeddings", name);
    CHECKF(fd >= 0 && rc == -1 && err.code == SD_EINVAL && !strcmp(err.field, "embeddings"), label,
           "code %d msg '%s'", err.code, err.msg);
    if (rc == 0) emb_free(&e);
    if (fd >= 0) close(fd);
}

/* vae: the VAE override's reader refuses each, naming field vae. */
static void vae_case(const char *name, const unsigned char *d, size_t n)
{
    sd_err err;
    sd_err_clear(&err);
    char path[64];
    int fd = fuzz_memfd(d, n, path);
    sd_weights *w = fd >= 0 ? sdw_open_vae(path, &err) : NULL;
    char label[300];
    snprintf(label, sizeof label, "vae regression %s: refused naming vae", name);
    CHECKF(fd >= 0 && !w && err.code && !strcmp(err.field, "vae"), label, "code %d field '%s' msg '%s'", err.code,
           err.field, err.msg);
    sdw_close(w);
    if (fd >= 0) close(fd);
}

/* lora_tags: the prompt's LoRA tags and the loras list (lora_tags_check.h). */
static void lora_tags_case(const char *name, const unsigned char *d, size_t n)
{
    char label[300];
    snprintf(label, sizeof label, "lora_tags regression %s: accepted within the limits or refused naming the field", name);
    CHECK(!lora_tags_check(d, n), label);
}

int main(void)
{
    static const struct { const char *target; void (*fn)(const char *, const unsigned char *, size_t); } T[] = {
        {"image", image_case},
        {"a1111_prompt", a1111_case},
        {"lora", lora_case},
        {"embeddings", embeddings_case},
        {"vae", vae_case},
        {"lora_tags", lora_tags_case},
    };
    int seen = 0;
    for (size_t t = 0; t < sizeof T / sizeof T[0]; t++) {
        char dir[256];
        snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", T[t].target);
        DIR *dp = opendir(dir);
        CHECKF(dp != NULL, "regression corpus folder exists", "%s", dir);
        if (!dp) continue;
        struct dirent *de;
        while ((de = readdir(dp))) {
            if (strncmp(de->d_name, "regress-", 8)) continue;
            char path[600];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            size_t n = 0;
            unsigned char *d = t_slurp(path, &n);
            if (!d) continue;
            T[t].fn(de->d_name, d, n);
            free(d);
            seen++;
        }
        closedir(dp);
    }
    CHECKF(seen >= 1, "regression inputs found", "%d", seen);
    return t_done();
}
