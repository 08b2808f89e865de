/* result.c — a succeeded job's structured result (jobs.h job_result):
 * made by the job runner, copied for status snapshots, rendered by the HTTP
 * dialects.  Knows no dialect. */
#include "jobs.h"
#include "../base/alloc.h"

#include <stdlib.h>
#include <string.h>

job_result *job_result_new(int n)
{
    job_result *r = sd_calloc(1, sizeof *r);
    if (!r) return NULL;
    r->denoise = -1.0f;
    r->images = n > 0 ? sd_calloc((size_t)n, sizeof *r->images) : NULL;
    if (n > 0 && !r->images) {
        free(r);
        return NULL;
    }
    r->n = n > 0 ? n : 0;
    return r;
}

void job_result_free(job_result *r)
{
    if (!r) return;
    for (int i = 0; i < r->n; i++) {
        free(r->images[i].key);
        free(r->images[i].url);
        free(r->images[i].parameters);
    }
    free(r->images);
    free(r->prompt);
    free(r->negative);
    free(r->model_name);
    free(r->model_hash);
    free(r);
}

/* *dst = a copy of src (NULL stays NULL); 0, or -1 on OOM. */
static int dup_str(char **dst, const char *src)
{
    *dst = src ? sd_strdup(src) : NULL;
    return src && !*dst ? -1 : 0;
}

job_result *job_result_dup(const job_result *r)
{
    if (!r) return NULL;
    job_result *c = job_result_new(r->n);
    if (!c) return NULL;
    int bad = 0;
    for (int i = 0; i < r->n; i++) {
        c->images[i].mime = r->images[i].mime;
        c->images[i].seed = r->images[i].seed;
        bad |= dup_str(&c->images[i].key, r->images[i].key) | dup_str(&c->images[i].url, r->images[i].url);
        bad |= dup_str(&c->images[i].parameters, r->images[i].parameters);
    }
    bad |= dup_str(&c->prompt, r->prompt) | dup_str(&c->negative, r->negative);
    bad |= dup_str(&c->model_name, r->model_name) | dup_str(&c->model_hash, r->model_hash);
    c->width = r->width;
    c->height = r->height;
    c->steps = r->steps;
    c->cfg = r->cfg;
    c->denoise = r->denoise;
    c->sampler = r->sampler;
    if (bad) {
        job_result_free(c);
        return NULL;
    }
    return c;
}
