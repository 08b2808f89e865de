/* generate.h — the job runner of the server: one job = one sd_generate call
 * for all its images (a batch), each image encoded as PNG, JPEG or WebP
 * (output_format, output_quality) with its generation parameters, stored,
 * and the job's structured result filled (jobs.h job_result: per image its
 * storage name, URL, MIME type and seed, plus the generation info). */
#ifndef SD_JOBS_GENERATE_H
#define SD_JOBS_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "../storage/storage.h"
#include "jobs.h"
#include "models.h"

typedef struct gen_ctx {
    sd_engine *engine;
    storage *store;          /* where images go (content-derived hex names) */
    const char *model_name, *model_hash;
    const char *model_family;          /* sd_model_info.family: the parameters' "Model family" */
    const char *vae_name, *vae_hash;   /* the VAE override's (sd_model_info), NULL = built-in */
    const char *vae_decoder;           /* sd_model_info.vae_decoder ("TAESD"), NULL = the VAE */
    /* several models: when set, each job runs on its request's model
     * (sd_request.model, acquired from the registry) and the five fields
     * above come from that engine; engine is then unused */
    models *models;
    /* live previews (issue 18 item 2; --preview-every): every this many
     * sampler steps the engine's preview of image 0 goes, as a PNG, to the
     * job's sink (sd_request.preview); 0 = none */
    int preview_every;
} gen_ctx;

/* A job_run_fn (jobs.h); ud is a gen_ctx. */
int gen_run(void *ud, const sd_request *in, sd_progress_fn progress, void *progress_ud, job_result **result, sd_err *err);

#endif
