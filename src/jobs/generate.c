/* generate.c — runs one job on the engine and stores its images (generate.h).
 * Runs on the worker thread only.  The result is structured (jobs.h
 * job_result); the HTTP dialects render it. */
#include "generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/alloc.h"
#include "../image/image.h"
#include "inpaint.h"

/* The result with its generation info; images still empty. */
static job_result *new_result(const gen_ctx *g, const sd_request *in)
{
    job_result *r = job_result_new(in->gen.n);
    if (!r) return NULL;
    const sd_gen_params *p = &in->gen;
    r->prompt = strdup(p->prompt ? p->prompt : "");
    r->negative = strdup(p->negative ? p->negative : "");
    r->model_name = g->model_name ? strdup(g->model_name) : NULL;
    r->model_hash = g->model_hash ? strdup(g->model_hash) : NULL;
    req_output_size(in, &r->width, &r->height);   /* the size generated (img2img: the init image's; hires: final) */
    r->steps = p->steps;
    r->cfg = p->cfg;
    r->denoise = in->img2img ? p->strength : p->hr_upscaler != SD_HR_NONE ? p->hr_strength : -1.0f;
    const char *schedule;
    req_sampler_label(p, &r->sampler, &schedule);
    if (!r->prompt || !r->negative || (g->model_name && !r->model_name) || (g->model_hash && !r->model_hash)) {
        job_result_free(r);
        return NULL;
    }
    return r;
}

/* Encodes image i with its parameters, stores it, and fills r->images[i]
 * (its parameters text too, which job_result_free frees). */
static int store_image(const gen_ctx *g, const sd_request *in, job_result *r, const sd_image *im, int i, sd_err *err)
{
    uint64_t seed = in->gen.seed + (uint64_t)i;
    img_gen_info info = req_gen_info(in, i, im->width, im->height, g->model_hash, g->model_name, g->model_family);
    info.vae_hash = g->vae_hash;
    info.vae_name = g->vae_name;
    info.vae_decoder = g->vae_decoder;
    char lora_hashes[SD_MAX_LORAS * (SD_MAX_LORA_NAME + 16)] = "";
    if (g->engine) sd_lora_hashes(g->engine, &in->gen, lora_hashes, sizeof lora_hashes);
    info.lora_hashes = lora_hashes;
    char *params = img_a1111_parameters(&info);
    img_format fmt = in->out_format ? (img_format)in->out_format : IMG_PNG;
    const char *ext = img_format_ext(fmt);
    img_encode_opts eo = {.format = fmt, .quality = in->out_quality, .parameters = params};
    uint8_t *file = NULL;
    size_t file_len = 0;
    char url[4096];
    int rc = params ? img_encode(im->rgb, im->width, im->height, &eo, &file, &file_len, err)
                    : sd_errf(err, SD_ENOMEM, "", "out of memory writing the image's parameters");
    r->images[i].parameters = params;   /* r3more: the file's text is the A1111 dialect's infotext */
    char key[STORAGE_KEY_MAX], name[STORAGE_KEY_MAX + 8];
    if (!rc && !g->store) rc = sd_errf(err, SD_EINTERNAL, "", "no image storage configured");
    if (!rc) rc = storage_put(g->store, file, file_len, ext, key, err);
    if (!rc) snprintf(name, sizeof name, "%s.%s", key, ext);
    if (!rc) rc = storage_url(g->store, name, url, sizeof url, err);
    free(file);
    if (rc) return -1;
    job_image *o = &r->images[i];
    o->seed = seed;
    o->mime = img_format_mime(fmt);
    o->key = sd_strdup(name);
    o->url = sd_strdup(url);
    if (!o->key || !o->url) return sd_errf(err, SD_ENOMEM, "", "out of memory");
    return 0;
}

/* The engine's preview callback (sd_gen_params.preview): the RGB8 estimate
 * as a PNG to the job's sink.  A failed encode only loses this preview. */
static void on_preview(void *ud, int step, int total, const sd_image *img)
{
    const req_preview_sink *sink = ud;
    img_encode_opts eo = {.format = IMG_PNG};
    uint8_t *png = NULL;
    size_t len = 0;
    sd_err e;
    sd_err_clear(&e);
    if (img && img->rgb && !img_encode(img->rgb, img->width, img->height, &eo, &png, &len, &e))
        sink->put(sink->ud, step, total, png, len);
    free(png);
}

static int run_on(const gen_ctx *g, const sd_request *in, sd_progress_fn progress, void *progress_ud,
                  job_result **result, sd_err *err)
{
    *result = NULL;
    sd_request hr = *in;   /* hires fix's size from the hr_ rows (a queued request carries only those) */
    req_resolve_hires(&hr);
    in = &hr;
    sd_gen_params p = in->gen;   /* the request's, with this run's progress callback */
    p.init_rgb = in->img2img ? p.init_rgb : NULL;
    p.mask = in->img2img ? p.mask : NULL;
    p.progress = progress;
    p.progress_ud = progress_ud;
    if (g->preview_every > 0 && in->preview.put) {   /* live previews: the job has a sink */
        p.preview = on_preview;
        p.preview_ud = (void *)&in->preview;
        p.preview_every = g->preview_every;
    }

    sd_image out[REQ_MAX_OUTPUTS];
    memset(out, 0, sizeof out);
    if (p.n < 1 || p.n > REQ_MAX_OUTPUTS)
        return sd_errf(err, SD_EINVAL, "n", "the number of images must be in [1, %d]", REQ_MAX_OUTPUTS);
    if (inpaint_generate(g->engine, in, &p, out, err)) return -1;   /* sd_generate, with a mask's pixel steps */

    job_result *res = new_result(g, in);
    int rc = res ? 0 : sd_errf(err, SD_ENOMEM, "", "out of memory");
    for (int i = 0; i < p.n && !rc; i++) rc = store_image(g, in, res, &out[i], i, err);
    for (int i = 0; i < p.n; i++) sd_image_free(&out[i]);
    if (rc) {
        job_result_free(res);
        return -1;
    }
    *result = res;
    return 0;
}

/* Several models: the request's model (loaded here, on the worker, when it
 * is not resident), named in the result and the images' parameters. */
int gen_run(void *ud, const sd_request *in, sd_progress_fn progress, void *progress_ud, job_result **result, sd_err *err)
{
    const gen_ctx *g = ud;
    *result = NULL;
    if (!g->models) return run_on(g, in, progress, progress_ud, result, err);
    int idx = -1;
    sd_engine *e = models_acquire(g->models, in->model, &idx, err);
    if (!e) return -1;
    sd_model_info mi;
    sd_engine_info(e, &mi);
    gen_ctx run = *g;
    run.engine = e;
    run.model_name = mi.name;
    run.model_hash = mi.hash;
    run.model_family = mi.family;
    run.vae_name = mi.vae_name;
    run.vae_hash = mi.vae_hash;
    run.vae_decoder = mi.vae_decoder;
    int rc = run_on(&run, in, progress, progress_ud, result, err);
    models_release(g->models, idx);
    return rc;
}
