/* generate.c — runs one job on the engine and stores its images (generate.h).
 * Runs on the worker thread only. */
#include "generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../image/image.h"

#define PARAMS_BATCH_MAX 4

int gen_run(void *ud, const job_input *in, sd_progress_fn progress, void *progress_ud, char **result, sd_err *err)
{
    gen_ctx *g = ud;
    *result = NULL;
    sd_gen_params p;
    memset(&p, 0, sizeof p);
    p.prompt = in->prompt;
    p.negative = in->negative;
    p.width = in->width;
    p.height = in->height;
    p.steps = in->steps;
    p.cfg = in->cfg;
    p.sampler = in->sampler;
    p.seed = in->seed;
    p.n = in->n;
    p.init_rgb = in->img2img ? in->init_rgb : NULL;
    p.init_width = in->init_width;
    p.init_height = in->init_height;
    p.strength = in->strength;
    p.progress = progress;
    p.progress_ud = progress_ud;

    sd_image out[PARAMS_BATCH_MAX];
    memset(out, 0, sizeof out);
    if (in->n < 1 || in->n > PARAMS_BATCH_MAX) return sd_errf(err, SD_EINVAL, "num_outputs", "num_outputs must be in [1, 4]");
    if (sd_generate(g->engine, &p, out, err)) return -1;

    json_t *images = json_array();
    int rc = images ? 0 : sd_errf(err, SD_ENOMEM, "", "out of memory");
    for (int i = 0; i < in->n && !rc; i++) {
        uint64_t seed = in->seed + (uint64_t)i;
        img_gen_info info = {
            .prompt = in->prompt, .negative = in->negative, .steps = in->steps,
            .sampler = sd_sampler_a1111_name(in->sampler), .cfg = in->cfg, .seed = seed,
            .width = out[i].width, .height = out[i].height, .model_hash = g->model_hash,
            .model_name = g->model_name, .denoise = in->img2img ? in->strength : -1.0f,
        };
        char *params = img_a1111_parameters(&info);
        img_format fmt = in->out_format ? (img_format)in->out_format : IMG_PNG;
        const char *ext = img_format_ext(fmt);
        img_encode_opts eo = {.format = fmt, .quality = in->out_quality, .parameters = params};
        uint8_t *file = NULL;
        size_t file_len = 0;
        char url[4096];
        rc = params ? img_encode(out[i].rgb, out[i].width, out[i].height, &eo, &file, &file_len, err)
                    : sd_errf(err, SD_ENOMEM, "", "out of memory writing the image's parameters");
        free(params);
        char key[STORAGE_KEY_MAX], name[STORAGE_KEY_MAX + 8];
        if (!rc && !g->store) rc = sd_errf(err, SD_EINTERNAL, "", "no image storage configured");
        if (!rc) rc = storage_put(g->store, file, file_len, ext, key, err);
        if (!rc) snprintf(name, sizeof name, "%s.%s", key, ext);
        if (!rc) rc = storage_url(g->store, name, url, sizeof url, err);
        free(file);
        if (!rc) {
            json_t *o = json_pack("{s:s, s:s, s:I}", "image_url", url, "mime_type", img_format_mime(fmt), "seed",
                                  (json_int_t)seed);
            if (!o || json_array_append_new(images, o)) rc = sd_errf(err, SD_ENOMEM, "", "out of memory");
        }
    }
    for (int i = 0; i < in->n; i++) sd_image_free(&out[i]);
    if (rc) {
        json_decref(images);
        return -1;
    }
    json_t *body = json_pack("{s:o, s:s}", "images", images, "status", "success");
    *result = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!*result) return sd_errf(err, SD_ENOMEM, "", "out of memory");
    return 0;
}
