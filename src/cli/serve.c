/* serve.c — `sdserve serve`: settings -> listening socket -> storage -> job
 * queue -> HTTP server, answering at once while the model loads in the
 * background (generation routes 503, /health "loading"), then waits for
 * SIGTERM/SIGINT/SIGHUP and shuts down in order.  A taken port fails before the
 * model load; a model that fails to load ends the process (status 1).
 *
 * With no --model, a small random-weight demo model is created once in
 * DATA_DIR/demo-model (through `make-model --preset demo`) so that the whole
 * path runs on a fresh machine; its pictures are noise.
 *
 * Several models (--model-dir, --max-loaded): the model registry
 * (jobs/models.h) lists the folder's checkpoints from their headers; the
 * default one loads at start as above, the others in the job that first
 * names them (docs/SERVER.md "Several models").
 *
 * `sdserve worker` is the same start in worker mode: no HTTP, jobs from the
 * shared Redis queue on worker.c's thread. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/settings.h"
#include "cli.h"
#include "../engine/sd.h"
#include "../jobs/backend.h"
#include "../jobs/generate.h"
#include "../jobs/models.h"
#include "../storage/storage.h"
#include "../http/auth.h"
#include "../http/listen.h"
#include "../http/params.h"
#include "../http/ratelimit.h"
#include "../http/server.h"
#include "worker.h"

/* server_config.check_request, on HTTP threads; ctx = the model registry.
 * The request's model (none = the default) must be one the registry has
 * and can use (else 400 naming model, with the names or why: its header, or
 * its checker failing to open it as a model); a request without
 * width/height gets its family's native size, known from the header
 * without loading it.  What only the model decides is checked here too
 * (sd_check_request: the prompt's token windows and prompt syntax,
 * clip_skip against the text encoder's layers, the LoRAs), on the resident
 * engine or, when the model is not loaded, on its checker
 * (models_check_engine: no weights read on an HTTP thread), so every
 * model's requests are refused before queueing. */
static int check_request(void *ctx, struct sd_request *g, sd_err *err)
{
    models *m = ctx;
    int native = 0, pinned;
    int i = models_resolve(m, g->model, &native, err);
    if (i < 0) return -1;
    req_resolve_size(g, native);   /* no width/height: the model's native size */
    sd_engine *engine = models_check_engine(m, i, &pinned, err);
    if (!engine && (err->code == SD_EFORMAT || err->code == SD_ENOTFOUND)) {
        /* a file its header passed that still does not open as a model (no
         * VAE, parts that do not fit; gone since): the request named a
         * model this server cannot use, 400 as models_resolve answers (as
         * it will for the next requests: the registry keeps the failure
         * until the file changes), not our fault.  An I/O failure (EMFILE,
         * mmap) keeps its own status and is tried again next time. */
        char why[sizeof err->msg];
        models_entry me;
        snprintf(why, sizeof why, "%s", err->msg);
        models_get(m, i, &me);
        sd_err_clear(err);
        return sd_errf(err, SD_EINVAL, "model", "model '%s' cannot be used: %.400s", me.name, why);
    }
    if (!engine) return err->code ? -1 : 0;
    int rc = sd_check_request(engine, &g->gen, err);
    if (pinned) models_unpin(m, i);
    return rc;
}

/* The engine for the listings of the model's own things (LoRAs,
 * embeddings): the default model's, resident or its checker (any resident
 * one while there is no default); *i its entry, *pinned as
 * models_check_engine.  NULL when there is none. */
static sd_engine *pin_listing_engine(models *m, int *i, int *pinned)
{
    sd_err err;
    sd_err_clear(&err);
    *i = models_default(m);
    *pinned = 0;
    sd_engine *e = *i >= 0 ? models_check_engine(m, *i, pinned, &err) : NULL;
    for (int k = 0, n = models_count(m); !e && k < n; k++)
        if ((e = models_pin(m, k))) *i = k, *pinned = 1;
    return e;
}

/* server_config.list_loras: GET /loras, with the same context. */
static int list_loras(void *ctx, sd_lora_info *out, int max, sd_err *err)
{
    int i, pinned;
    sd_engine *engine = pin_listing_engine(ctx, &i, &pinned);
    int n = engine ? sd_list_loras(engine, out, max, err) : 0;
    if (pinned) models_unpin(ctx, i);
    return n;
}

/* server_config.list_embeddings: GET /embeddings, with the same context.
 * The strings are copied (per HTTP thread): the engine may be unloaded
 * once it is given back. */
static int list_embeddings(void *ctx, int i, sd_embedding_info *out)
{
    static _Thread_local char name[256], error[256];
    int k, pinned;
    sd_engine *engine = pin_listing_engine(ctx, &k, &pinned);
    int rc = engine ? sd_engine_embedding(engine, i, out) : -1;
    if (!rc) {
        snprintf(name, sizeof name, "%s", out->name ? out->name : "");
        snprintf(error, sizeof error, "%s", out->error ? out->error : "");
        out->name = name;
        out->error = out->error ? error : NULL;
    }
    if (pinned) models_unpin(ctx, k);
    return rc;
}

/* server_config.list_models: GET /models and the dialects' model lists. */
static int list_models(void *ctx, server_model *out, int max, sd_err *err)
{
    models *m = ctx;
    int n = models_count(m);
    models_entry me;
    for (int i = 0; i < n && i < max; i++) {
        models_refresh(m, i);   /* as its file is now: removed, replaced or mended since it was read */
        if (models_get(m, i, &me)) return sd_errf(err, SD_EINTERNAL, "model", "model %d vanished", i);
        server_model *o = &out[i];
        memset(o, 0, sizeof *o);
        snprintf(o->name, sizeof o->name, "%s", me.name);
        snprintf(o->family, sizeof o->family, "%.15s", me.family);
        snprintf(o->hash, sizeof o->hash, "%s", me.hash);
        snprintf(o->file, sizeof o->file, "%.255s", me.path);
        o->size = me.size;
        o->loaded = me.loaded;
        o->is_default = me.is_default;
        if (me.refused) snprintf(o->refused, sizeof o->refused, "%s", me.error);
    }
    return n;
}

static char *o_api_keys, *o_api_keys_file;
static int64_t o_metrics_open;
static double o_rate_limit, o_rate_burst;
static char *o_bind, *o_model, *o_model_config, *o_vocab, *o_data, *o_public, *o_precision;
static int64_t o_engine_nice, o_max_conn_ip;
static int64_t o_max_buffered_mb;
static double o_header_timeout;
static int64_t o_port, o_queue, o_threads, o_http_threads, o_max_conn, o_conn_timeout, o_max_body_mb, o_access_log,
    o_max_retained;
static double o_job_timeout, o_sync_wait, o_retention;
/* image storage (docs/STORAGE.md) */
static char *o_storage, *o_s3_endpoint, *o_s3_region, *o_s3_bucket, *o_s3_addressing, *o_s3_prefix, *o_s3_access,
    *o_s3_secret, *o_s3_token, *o_s3_public;
static int64_t o_s3_expires, o_s3_attempts;
static double o_s3_timeout;
/* local image retention (docs/STORAGE.md "Retention") */
static double o_image_retention, o_image_min_age;
static int64_t o_image_store_max_mb;
/* textual-inversion embeddings (issue 14 item 4) */
static char *o_embeddings_dir;
/* VAE override (issue 14 item 5, docs/LOADING.md) */
static char *o_vae;
/* LoRA per request (docs/LORA.md) */
static char *o_lora_dir;
/* v-prediction and zero-terminal-SNR overrides (issue 15, docs/LOADING.md "Prediction markers") */
static char *o_prediction, *o_zero_snr;
/* output size limits (docs/SERVER.md "Sizes") */
static int64_t o_max_side, o_max_pixels;
/* tiled VAE decode (docs/SERVER.md "VAE tiling") */
static char *o_vae_tiling;
/* live previews' decoder and the fast final decode (issue 18; docs/SERVER.md "Previews") */
static char *o_preview_decoder, *o_vae_decoder;
/* several models (issue 16 item 3; docs/SERVER.md "Several models") */
static char *o_model_dir;
static int64_t o_max_loaded;
/* the shared Redis queue (issue 17; docs/SCALE.md) */
static char *o_queue_url;
static int64_t o_workers, o_max_attempts, o_shared_data_dir, o_health_port;
static double o_claim_timeout, o_queue_timeout;
/* live previews (issue 18 item 2; docs/SERVER.md "Previews") */
static int64_t o_preview_every;

static const sd_setting serve_settings[] = {
    {"bind", SD_SET_STR, &o_bind, "0.0.0.0", 0, 0, "address to listen on (IPv4 or IPv6 literal)"},
    {"port", SD_SET_INT, &o_port, "8080", 0, 65535, "TCP port (0 = any free port)"},
    {"model", SD_SET_STR, &o_model, NULL, 0, 0,
     "checkpoint: .safetensors file or diffusers folder (none = random-weight demo model, pictures are noise)"},
    {"model-config", SD_SET_STR, &o_model_config, NULL, 0, 0, "LDM-style JSON config beside a single-file checkpoint"},
    {"vocab", SD_SET_STR, &o_vocab, NULL, 0, 0, "CLIP vocabulary (bpe_simple_vocab_16e6.txt.gz, merges.txt or tokenizer/)"},
    {"data-dir", SD_SET_STR, &o_data, "./data", 0, 0, "folder for generated images (DATA/images) and the demo model"},
    {"public-url", SD_SET_STR, &o_public, NULL, 0, 0,
     "base of returned image URLs (default http://127.0.0.1:PORT; never taken from the Host header)"},
    {"queue-size", SD_SET_INT, &o_queue, "16", 1, 100000, "jobs that may wait; more get 503 + Retry-After"},
    {"threads", SD_SET_INT, &o_threads, "0", 0, 1024, "engine compute threads (0 = all cores)"},
    {"prediction", SD_SET_STR, &o_prediction, "auto", 0, 0,
     "what the UNet predicts: eps, v, or auto (the diffusers scheduler config, the LDM config, the file's v_pred "
     "marker tensor, else eps)"},
    {"zero-terminal-snr", SD_SET_STR, &o_zero_snr, "auto", 0, 0,
     "noise schedule rescaled to zero terminal SNR: on, off, or auto (the file's ztsnr marker tensor or the "
     "scheduler config's rescale_betas_zero_snr)"},
    {"precision", SD_SET_STR, &o_precision, "auto", 0, 0,
     "convs, matmuls and attention: fp32 (the reference's pictures), bf16x2 (only weights rounded to bf16), bf16 "
     "(fastest); auto = $SD_PRECISION, else on CPUs with AMX bf16x2 with the VAE at bf16, fp32 elsewhere"},
    {"engine-nice", SD_SET_INT, &o_engine_nice, "10", 0, 19,
     "nice levels added to the engine's threads so /health and other requests stay fast during a job (0 = none)"},
    {"http-threads", SD_SET_INT, &o_http_threads, "4", 1, 256, "HTTP thread pool size"},
    {"max-connections", SD_SET_INT, &o_max_conn, "1024", 1, 100000, "simultaneous connections at most"},
    {"conn-timeout", SD_SET_INT, &o_conn_timeout, "60", 1, 86400, "seconds an idle connection stays open"},
    {"header-timeout", SD_SET_DOUBLE, &o_header_timeout, "30", 0, 86400,
     "seconds a client has to send a request's headers (from connecting or its previous request), then the "
     "connection is closed: slow clients cannot hold connections (0 = no limit)"},
    {"max-conn-per-ip", SD_SET_INT, &o_max_conn_ip, "64", 0, 100000,
     "simultaneous connections from one address; more are closed at once (0 = no limit: set 0 or raise it behind "
     "a reverse proxy, whose connections all come from one address)"},
    {"max-body-mb", SD_SET_INT, &o_max_body_mb, "20", 1, 1024, "largest request body in MiB (413 above)"},
    /* transport: the global cap on buffered bodies (issue 12 item 3) */
    {"max-buffered-mb", SD_SET_INT, &o_max_buffered_mb, "0", 0, 1048576,
     "request bodies held in memory at once, all connections together, in MiB; a body that would pass it gets 503 "
     "+ Retry-After (0 = an eighth of physical memory; never less than --max-body-mb)"},
    {"job-timeout", SD_SET_DOUBLE, &o_job_timeout, "1800", 0, 1e7, "seconds a job may run (0 = no limit)"},
    {"sync-wait", SD_SET_DOUBLE, &o_sync_wait, "900", 1, 1e7,
     "seconds POST /txt2img and /img2img wait for their job (504 and the job cancelled after)"},
    {"retention", SD_SET_DOUBLE, &o_retention, "3600", 0, 1e8, "seconds a finished async job stays readable"},
    {"max-retained", SD_SET_INT, &o_max_retained, "1000", 1, 1000000, "finished async jobs kept at most"},
    {"access-log", SD_SET_INT, &o_access_log, "1", 0, 1, "1 = one line per request on stdout"},
    {"api-keys", SD_SET_SECRET, &o_api_keys, NULL, 0, 0,
     "API keys separated by ',' (prefer the environment variable); when keys are set every request but GET /health "
     "and GET /images/NAME (unguessable names a browser opens) needs 'Authorization: Bearer KEY' (401 otherwise)"},
    {"api-keys-file", SD_SET_STR, &o_api_keys_file, NULL, 0, 0,
     "file of API keys, one per line ('#' comments), added to --api-keys"},
    {"metrics-open", SD_SET_INT, &o_metrics_open, "0", 0, 1, "1 = GET /metrics needs no API key"},
    {"rate-limit", SD_SET_DOUBLE, &o_rate_limit, "0", 0, 1e6,
     "requests a minute per API key (or per address without keys); more get 429 + Retry-After (0 = no limit)"},
    {"rate-burst", SD_SET_DOUBLE, &o_rate_burst, "0", 0, 1e6, "requests allowed at once before the rate applies (0 = the per-minute rate)"},
    {"storage", SD_SET_STR, &o_storage, "local", 0, 0,
     "where images go: local (DATA/images, served here) or s3 (any S3-compatible bucket, docs/STORAGE.md)"},
    {"s3-endpoint", SD_SET_STR, &o_s3_endpoint, NULL, 0, 0,
     "S3 endpoint, scheme://host[:port] (none = https://s3.REGION.amazonaws.com)"},
    {"s3-region", SD_SET_STR, &o_s3_region, "us-east-1", 0, 0, "signing region (COS: ap-guangzhou etc.; MinIO: us-east-1)"},
    {"s3-bucket", SD_SET_STR, &o_s3_bucket, NULL, 0, 0, "bucket name"},
    {"s3-addressing", SD_SET_STR, &o_s3_addressing, "virtual", 0, 0,
     "virtual (BUCKET.HOST/KEY: AWS, COS) or path (HOST/BUCKET/KEY: MinIO, local servers)"},
    {"s3-prefix", SD_SET_STR, &o_s3_prefix, NULL, 0, 0, "object key prefix, e.g. sdserve/ ([A-Za-z0-9._/-])"},
    {"s3-access-key", SD_SET_SECRET, &o_s3_access, NULL, 0, 0, "access key id (none = $AWS_ACCESS_KEY_ID)"},
    {"s3-secret-key", SD_SET_SECRET, &o_s3_secret, NULL, 0, 0,
     "secret access key (none = $AWS_SECRET_ACCESS_KEY; prefer the environment to flags)"},
    {"s3-session-token", SD_SET_SECRET, &o_s3_token, NULL, 0, 0,
     "session token of temporary credentials (none = $AWS_SESSION_TOKEN when the key comes from AWS_*)"},
    {"s3-public-url", SD_SET_STR, &o_s3_public, NULL, 0, 0,
     "public base URL of the bucket or its CDN; image_url = this + /KEY (none = pre-signed URLs)"},
    {"s3-presign-expires", SD_SET_INT, &o_s3_expires, "3600", 1, 604800, "seconds a pre-signed image URL stays valid"},
    {"s3-timeout", SD_SET_DOUBLE, &o_s3_timeout, "30", 0.1, 3600,
     "seconds one image upload may take, retries included (then the request fails with 502)"},
    {"s3-attempts", SD_SET_INT, &o_s3_attempts, "5", 1, 100,
     "tries per upload on connection errors and 5xx answers (exponential backoff)"},
    /* local image retention */
    {"image-retention", SD_SET_DOUBLE, &o_image_retention, "0", 0, 1e10,
     "seconds an image stays in the local store, then it is removed (0 = kept until removed by hand)"},
    {"image-store-max-mb", SD_SET_INT, &o_image_store_max_mb, "0", 0, 1e9,
     "MiB the local store's images may take; the oldest are removed above it (0 = no cap)"},
    {"image-min-age", SD_SET_DOUBLE, &o_image_min_age, "600", 1, 1e10,
     "seconds an image is kept at least, whatever the two limits above say, so its URL works when the client "
     "fetches it (keep it >= --retention for async jobs)"},
    /* textual-inversion embeddings (issue 14 item 4) */
    {"embeddings-dir", SD_SET_STR, &o_embeddings_dir, NULL, 0, 0,
     "folder of textual-inversion embeddings (.safetensors, A1111 or diffusers form), read at start; a prompt uses "
     "one by its file name (GET /embeddings lists them, docs/PROMPTS.md)"},
    /* VAE override */
    {"vae", SD_SET_STR, &o_vae, NULL, 0, 0,
     "VAE to use instead of the checkpoint's: A1111-style .safetensors (encoder./decoder. keys, with or without "
     "first_stage_model.) or a diffusers VAE folder (none = the checkpoint's own)"},
    /* LoRA per request */
    {"lora-dir", SD_SET_STR, &o_lora_dir, NULL, 0, 0,
     "folder of LoRA .safetensors files that requests name (loras field, <lora:NAME:W> tags; GET /loras lists it)"},
    /* output size limits (issue 15 item 4) */
    {"max-side", SD_SET_INT, &o_max_side, "1024", 64, REQ_MAX_SIDE_CAP,
     "largest width or height a request may ask (400 naming it above); init images are scaled down to fit"},
    {"max-pixels", SD_SET_INT, &o_max_pixels, "1048576", 4096, (double)REQ_MAX_SIDE_CAP * REQ_MAX_SIDE_CAP,
     "largest width x height (default 1024x1024: SDXL's 1216x832 and 1344x768 fit once --max-side allows them)"},
    /* tiled VAE decode */
    {"vae-tiling", SD_SET_STR, &o_vae_tiling, "auto", 0, 0,
     "decode images in row stripes, with the same pictures (>= 40 dB) in a fraction of the memory: auto (images "
     "above 1024x1024 pixels), on or off"},
    /* live previews' decoder (issue 18) */
    {"preview-decoder", SD_SET_STR, &o_preview_decoder, NULL, 0, 0,
     "TAESD that draws the live previews: madebyollin's taesd_decoder.safetensors (taesdxl_ for SDXL) or a "
     "diffusers AutoencoderTiny folder (none = the cheap latent-to-RGB approximation; docs/SERVER.md \"Previews\")"},
    {"vae-decoder", SD_SET_STR, &o_vae_decoder, "vae", 0, 0,
     "final images decoded by: vae (the checkpoint's VAE) or taesd (the --preview-decoder: much faster, lower "
     "quality)"},
    /* several models */
    {"model-dir", SD_SET_STR, &o_model_dir, NULL, 0, 0,
     "folder of checkpoints requests name in their model field (*.safetensors files, diffusers folders, folders "
     "holding model.safetensors; GET /models lists them); the default model is --model (a path or a name here), "
     "else the first by name"},
    {"max-loaded", SD_SET_INT, &o_max_loaded, "1", 1, 64,
     "models resident at once; a request for another loads it on the worker, unloading the least recently used"},
    /* the shared Redis queue (docs/SCALE.md) */
    {"queue", SD_SET_SECRET, &o_queue_url, NULL, 0, 0,
     "redis://[user:password@]host:port/db: jobs go to this shared Redis queue, run by `sdserve worker` processes "
     "and this node's own worker (none = the in-process queue)"},
    {"workers", SD_SET_INT, &o_workers, "1", 0, 1,
     "with --queue: 1 = this node also runs jobs from the shared queue, 0 = API only: no weights loaded (the "
     "models' headers, tokenizers, embedding and LoRA lists validate requests; docs/SCALE.md)"},
    {"claim-timeout", SD_SET_DOUBLE, &o_claim_timeout, "30", 1, 86400,
     "with --queue: seconds without a heartbeat after which another worker takes a running job over"},
    {"max-attempts", SD_SET_INT, &o_max_attempts, "3", 1, 100,
     "with --queue: runs of one job at most (a worker killed each time); then it fails"},
    {"queue-timeout", SD_SET_DOUBLE, &o_queue_timeout, "2", 0.1, 60,
     "with --queue: seconds one Redis call may take; unreachable = 503 + Retry-After naming the queue"},
    {"shared-data-dir", SD_SET_INT, &o_shared_data_dir, "0", 0, 1,
     "1 = --data-dir is a mount every node sees (NFS, ...): needed for --queue with --storage local"},
    {"health-port", SD_SET_INT, &o_health_port, "0", 0, 65535,
     "sdserve worker: TCP port (on --bind) of its GET /health and GET /metrics (0 = none)"},
    /* live previews (docs/SERVER.md "Previews") */
    {"preview-every", SD_SET_INT, &o_preview_every, "5", 0, REQ_MAX_STEPS,
     "every this many sampler steps the running job's picture so far is kept as a PNG: GET /jobs/{id}/preview, "
     "A1111's current_image (0 = no previews; with --queue the worker's setting counts)"},
};
#define NSETTINGS (int)(sizeof serve_settings / sizeof serve_settings[0])

/* --image-retention / --image-store-max-mb: the local store's housekeeping
 * thread (with S3 check_values refused them: a bucket lifecycle rule does
 * that there). */
static int start_image_retention(storage *store, sd_err *err)
{
    int local = !strcmp(storage_backend_name(store), "local");
    if (o_image_retention <= 0 && o_image_store_max_mb <= 0) {
        if (local) printf("image retention: off (images are kept; see --image-retention, --image-store-max-mb)\n");
        return 0;
    }
    if (!local) return 0;   /* refused by check_values */
    storage_retention r = {.max_age = o_image_retention, .max_bytes = (uint64_t)o_image_store_max_mb << 20,
                           .min_age = o_image_min_age};
    printf("image retention: age limit %g s, size cap %lld MiB (0 = none), minimum age %g s\n", o_image_retention,
           (long long)o_image_store_max_mb, o_image_min_age);
    return storage_local_retain(store, &r, err);
}

/* --max-buffered-mb in bytes: the setting, or 0 = an eighth of physical
 * memory; never under one largest body (--max-body-mb). */
static size_t max_buffered_bytes(void)
{
    size_t max_body = (size_t)o_max_body_mb << 20;
    size_t v = (size_t)o_max_buffered_mb << 20;
    if (!v) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        v = pages > 0 && page > 0 ? (size_t)pages * (size_t)page / 8 : (size_t)1 << 30;
    }
    return v < max_body ? max_body : v;
}

/* Creates DATA/demo-model once (written to a temporary folder, renamed when complete). */
static int ensure_demo_model(const char *data_dir, char *path, size_t size, sd_err *err)
{
    snprintf(path, size, "%s/demo-model", data_dir);
    struct stat sb;
    if (!stat(path, &sb) && S_ISDIR(sb.st_mode)) return 0;
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    fprintf(stderr, "sdserve: no --model given: creating a random-weight demo model in %s\n", path);
    char *argv[] = {"make-model", "--preset", "demo", "-o", tmp, "--quiet", NULL};
    if (cli_make_model(6, argv) != 0)
        return sd_errf(err, SD_EIO, "model", "could not create the demo model in %s", tmp);
    if (rename(tmp, path))
        return sd_errf(err, SD_EIO, "model", "could not rename %s to %s: %s", tmp, path, strerror(errno));
    return 0;
}

static int data_dir_error(const char *path, sd_err *err)
{
    return sd_errf(err, SD_EIO, "data-dir", "cannot create %s (--data-dir): %s", path, strerror(errno));
}

static int mkdir_p(const char *dir, sd_err *err)
{
    char buf[4400];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) && errno != EEXIST) return data_dir_error(buf, err);
            *p = '/';
        }
    if (mkdir(buf, 0755) && errno != EEXIST) return data_dir_error(buf, err);
    return 0;
}

/* The S3 store from the s3-* settings; credentials from flags/SDSERVE_* or else AWS_*. */
static storage *open_s3_storage(sd_err *err)
{
    char endpoint[300];
    if (o_s3_endpoint && *o_s3_endpoint) snprintf(endpoint, sizeof endpoint, "%s", o_s3_endpoint);
    else snprintf(endpoint, sizeof endpoint, "https://s3.%s.amazonaws.com", o_s3_region);
    int path_style = !strcmp(o_s3_addressing, "path");   /* virtual or path: check_values */
    int from_aws_env = !(o_s3_access && *o_s3_access);
    storage_s3_config c = {
        .endpoint = endpoint, .region = o_s3_region, .bucket = o_s3_bucket, .path_style = path_style,
        .prefix = o_s3_prefix,
        .access_key = from_aws_env ? getenv("AWS_ACCESS_KEY_ID") : o_s3_access,
        .secret_key = o_s3_secret && *o_s3_secret ? o_s3_secret : getenv("AWS_SECRET_ACCESS_KEY"),
        .session_token = o_s3_token && *o_s3_token ? o_s3_token : from_aws_env ? getenv("AWS_SESSION_TOKEN") : NULL,
        .public_url = o_s3_public, .presign_expires = (int)o_s3_expires, .timeout = o_s3_timeout,
        .attempts = (int)o_s3_attempts,
    };
    storage *s = storage_s3_open(&c, err);
    if (s)
        printf("storage: S3 bucket %s at %s (%s-style%s%s), %s\n", o_s3_bucket, endpoint, path_style ? "path" : "virtual",
               o_s3_prefix && *o_s3_prefix ? ", prefix " : "", o_s3_prefix && *o_s3_prefix ? o_s3_prefix : "",
               o_s3_public && *o_s3_public ? "public URLs" : "pre-signed URLs");
    return s;
}

/* The default model's load, on a thread of its own while the server answers. */
typedef struct model_loader {
    sd_load_opts lo;         /* every model's (model_path set per load by the registry) */
    int demo;                /* no --model, no --model-dir: make the demo model first */
    char demo_path[4200];
    models *reg;             /* the model registry (jobs/models.h) */
    int def;                 /* its default entry */
    models_entry info;       /* the default's, for /health (stable copies) */
    char vae_name[256];      /* the VAE override's name, for /health */
    sd_err err;
    atomic_int done;         /* 0 loading, 1 loaded, -1 failed */
    int no_weights;          /* an API node without a worker: checkers only, no engine loaded */
    pthread_t main_thread;   /* woken with SIGUSR1 when done */
} model_loader;

/* --workers 0 on the shared queue: the default model's checker (headers,
 * tokenizer, embeddings and LoRA names, no weights) instead of its load. */
static int no_weights_check(model_loader *L)
{
    int pinned = 0;
    printf("API node without weights (--workers 0): model %s opened for validation only (no engine loaded, no "
           "local worker)\n", L->info.path);
    sd_engine *e = models_check_engine(L->reg, L->def, &pinned, &L->err);
    if (pinned) models_unpin(L->reg, L->def);
    return e != NULL;
}

/* A model error's part after "reading model PATH: " or "loading model
 * PATH: " (the header's and the loader's prefixes); the whole message
 * when it starts otherwise. */
static const char *model_error_detail(const char *msg, const char *path)
{
    static const char *const verbs[] = {"reading model ", "loading model "};
    size_t p = strlen(path);
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        size_t v = strlen(verbs[i]);
        if (!strncmp(msg, verbs[i], v) && !strncmp(msg + v, path, p) && !strncmp(msg + v + p, ": ", 2))
            return msg + v + p + 2;
    }
    return msg;
}

static void *load_main(void *arg)
{
    model_loader *L = arg;
    int ok = 0;
    if (!L->demo || !ensure_demo_model(o_data, L->demo_path, sizeof L->demo_path, &L->err)) {
        if (L->demo) models_probe(L->reg, L->def);
        models_get(L->reg, L->def, &L->info);
        if (L->no_weights) {
            ok = no_weights_check(L);
        } else {
            printf("loading model %s ...\n", L->info.path);
            int idx;
            ok = models_acquire(L->reg, NULL, &idx, &L->err) != NULL;
            if (ok) models_release(L->reg, idx);
            if (!ok && L->info.refused && L->info.error[0]) {
                /* the header already said why (not a whole checkpoint, a family
                 * not run): that first, then what the loader ran into, when
                 * that is something else (a missing or broken file: the same) */
                char was[sizeof L->err.msg];
                snprintf(was, sizeof was, "%s", L->err.msg);
                sd_err_clear(&L->err);
                if (!strcmp(model_error_detail(was, L->info.path), model_error_detail(L->info.error, L->info.path)))
                    sd_errf(&L->err, SD_EFORMAT, "model", "%.500s", L->info.error);
                else
                    sd_errf(&L->err, SD_EFORMAT, "model", "%.250s (loading it: %.250s)", L->info.error, was);
            }
        }
    }
    atomic_store(&L->done, ok ? 1 : -1);
    pthread_kill(L->main_thread, SIGUSR1);
    return NULL;
}

static int check_queue_settings(int worker_only, sd_err *err);

/* The settings' values alone, before anything is opened: a word that is
 * none of the listed ones, a malformed URL, a setting another one needs
 * or excludes.  These are usage errors: `serve` exits 2 (docs/SERVER.md
 * "Exit status"); what the values name (files, folders, the port) is
 * checked later and fails with 1. */
static int check_values(int worker_only, sd_err *err)
{
    sd_prediction pred;
    int zsnr;
    if (sd_precision_known(o_precision))
        return sd_errf(err, SD_EINVAL, "precision", "--precision must be auto, fp32, bf16x2 or bf16; got '%.40s'",
                       o_precision);
    if (sd_prediction_parse(o_prediction, &pred))
        return sd_errf(err, SD_EINVAL, "prediction", "--prediction must be auto, eps or v; got '%.40s'", o_prediction);
    if (sd_zero_snr_parse(o_zero_snr, &zsnr))
        return sd_errf(err, SD_EINVAL, "zero-terminal-snr", "--zero-terminal-snr must be auto, on or off; got '%.40s'",
                       o_zero_snr);
    if (sd_vae_tiling_known(o_vae_tiling))
        return sd_errf(err, SD_EINVAL, "vae-tiling", "--vae-tiling must be auto, on or off; got '%.40s'", o_vae_tiling);
    if (sd_vae_decoder_known(o_vae_decoder))
        return sd_errf(err, SD_EINVAL, "vae-decoder", "--vae-decoder must be vae or taesd; got '%.40s'", o_vae_decoder);
    if (!strcmp(o_vae_decoder, "taesd") && !(o_preview_decoder && *o_preview_decoder))
        return sd_errf(err, SD_EINVAL, "vae-decoder", "--vae-decoder taesd needs a TAESD file (--preview-decoder)");
    /* the URL as typed: make_public_url only drops trailing slashes */
    if (o_public && *o_public && strncmp(o_public, "http://", 7) && strncmp(o_public, "https://", 8))
        return sd_errf(err, SD_EINVAL, "public-url", "--public-url must start with http:// or https:// (the address "
                       "clients reach this server at, e.g. http://HOST:PORT), got '%.200s'", o_public);
    int s3 = !strcmp(o_storage, "s3");
    if (!s3 && strcmp(o_storage, "local"))
        return sd_errf(err, SD_EINVAL, "storage", "--storage must be local or s3, got '%.100s'", o_storage);
    if (s3 && strcmp(o_s3_addressing, "path") && strcmp(o_s3_addressing, "virtual"))
        return sd_errf(err, SD_EINVAL, "s3-addressing", "--s3-addressing must be virtual or path, got '%.100s'",
                       o_s3_addressing);
    if (s3 && !(o_s3_bucket && *o_s3_bucket))
        return sd_errf(err, SD_EINVAL, "s3-bucket", "--storage s3 needs a bucket: --s3-bucket NAME (or "
                       "SDSERVE_S3_BUCKET)");
    if (s3 && (o_image_retention > 0 || o_image_store_max_mb > 0))
        return sd_errf(err, SD_EINVAL, o_image_retention > 0 ? "image-retention" : "image-store-max-mb",
                       "--image-retention and --image-store-max-mb apply to --storage local; for S3 give the bucket "
                       "a lifecycle rule");
    return check_queue_settings(worker_only, err);
}

/* A folder setting (--lora-dir, --model-dir, --embeddings-dir) names one
 * that is there: a typo would otherwise start a server whose lists are
 * empty and whose requests fail.  `what` says what the folder holds. */
static int check_folder(const char *name, const char *path, const char *what, sd_err *err)
{
    struct stat st;
    if (!path || !*path) return 0;
    if (stat(path, &st))
        return sd_errf(err, SD_ENOTFOUND, name, "--%s %s: %s (give the folder of %s)", name, path, strerror(errno),
                       what);
    if (!S_ISDIR(st.st_mode))
        return sd_errf(err, SD_EINVAL, name, "--%s %s is not a folder (give the folder of %s)", name, path, what);
    return 0;
}

/* What the settings name, before the port is taken: the --preview-decoder
 * file or folder and the folder settings.  Fails with status 1. */
static int check_paths(sd_err *err)
{
    struct stat st;
    if (o_preview_decoder && *o_preview_decoder && stat(o_preview_decoder, &st) != 0)
        return sd_errf(err, SD_ENOTFOUND, "preview-decoder", "--preview-decoder %s: %s", o_preview_decoder,
                       strerror(errno));
    if (check_folder("lora-dir", o_lora_dir, "LoRA .safetensors files", err)) return -1;
    if (check_folder("model-dir", o_model_dir, "checkpoints: .safetensors files, diffusers folders", err)) return -1;
    return check_folder("embeddings-dir", o_embeddings_dir, "textual-inversion .safetensors embeddings", err);
}

/* A storage error about a setting (s3.c's checks name the field, e.g.
 * s3-bucket, not the flag): the message starts with the flag. */
static void name_storage_flag(sd_err *err)
{
    char flag[80];
    snprintf(flag, sizeof flag, "--%s", err->field);
    if (strncmp(err->field, "s3-", 3) || strstr(err->msg, flag)) return;
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%.70s: %.430s", flag, err->msg);
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}

static void loader_init(model_loader *L)
{
    memset(L, 0, sizeof *L);
    L->demo = (!o_model || !*o_model) && (!o_model_dir || !*o_model_dir);
    L->def = -1;
    L->lo.lora_dir = o_lora_dir && *o_lora_dir ? o_lora_dir : NULL;
    L->lo.lora_dir_label = "the LoRA directory (GET /loras lists them)";   /* clients see no folder */
    L->lo.config_path = o_model_config;
    L->lo.vocab_path = o_vocab;
    L->lo.data_dir = o_data;
    L->lo.threads = (int)o_threads;
    L->lo.precision = o_precision;
    sd_prediction_parse(o_prediction, &L->lo.prediction);   /* checked at start-up */
    sd_zero_snr_parse(o_zero_snr, &L->lo.zero_snr);
    L->lo.embeddings_dir = o_embeddings_dir;
    L->lo.vae_path = o_vae;
    L->lo.vae_tiling = o_vae_tiling;
    L->lo.preview_decoder = o_preview_decoder && *o_preview_decoder ? o_preview_decoder : NULL;
    L->lo.vae_decoder = o_vae_decoder;
    L->main_thread = pthread_self();
}

/* The first usable entry by name (the scan sorted them), else the first. */
static int first_usable(models *m)
{
    models_entry me;
    for (int i = 0; !models_get(m, i, &me); i++)
        if (!me.error[0]) return i;
    return 0;
}

/* The registry from --model-dir and --model (or the demo model), with its
 * default: --model (a name in the folder, or a path), else the folder's
 * first by name.  Headers only: nothing is loaded here. */
static int open_models(model_loader *L, sd_err *err)
{
    models_config mc = {.max_loaded = (int)o_max_loaded, .load_opts = &L->lo};
    if (!(L->reg = models_new(&mc, err))) return -1;
    if (L->demo) {
        snprintf(L->demo_path, sizeof L->demo_path, "%s/demo-model", o_data);
        L->def = models_add(L->reg, "demo-model", L->demo_path, 0, err);   /* probed once made */
    } else if (o_model_dir && *o_model_dir) {
        int n = models_scan_dir(L->reg, o_model_dir, err);
        if (n < 0) return -1;
        if (!n && !(o_model && *o_model))
            return sd_errf(err, SD_ENOTFOUND, "model-dir", "no checkpoints in %s (*.safetensors files or model "
                           "folders)", o_model_dir);
        printf("model dir %s: %d checkpoint%s\n", o_model_dir, n, n == 1 ? "" : "s");
        L->def = n ? first_usable(L->reg) : -1;
    }
    if (o_model && *o_model) {
        L->def = models_find(L->reg, o_model);
        if (L->def < 0) L->def = models_find_path(L->reg, o_model);
        if (L->def < 0) L->def = models_add_path(L->reg, o_model, err);
    }
    if (L->def < 0) return -1;
    models_set_default(L->reg, L->def);
    models_entry me;
    for (int i = 0; !models_get(L->reg, i, &me); i++)
        if (!L->demo || i != L->def)
            printf("model %s: %s%s, hash %s, %lld bytes%s%s\n", me.name, me.family[0] ? me.family : "?",
                   me.is_default ? ", default" : "", me.hash[0] ? me.hash : "?", (long long)me.size,
                   me.error[0] ? "; cannot be used: " : "", me.error);
    return 0;
}

/* One line per embedding of --embeddings-dir: used, or skipped and why. */
static void print_embeddings(const sd_engine *e)
{
    sd_embedding_info in;
    for (int i = 0; !sd_engine_embedding(e, i, &in); i++)
        if (in.fits) printf("embedding: %s (%d vectors)\n", in.name, in.vectors);
        else printf("embedding skipped: %s\n", in.error);
}

/* The loaded default model opens the generation routes: the job runner's
 * registry is set from the start, then the server (which publishes the
 * default's name, family and hash to the HTTP threads). */
static void model_ready(model_loader *L, http_server *srv, const char *public_url)
{
    int def = L->def;
    sd_engine *e = models_pin(L->reg, def);   /* just loaded; --max-loaded >= 1 keeps it until a job asks another */
    if (e) {
        sd_model_info mi;
        sd_engine_info(e, &mi);
        printf("model: %s (%s, %s%s, %lld parameters, hash %s)\n", mi.name ? mi.name : "?",
               mi.family ? mi.family : "?", mi.prediction ? mi.prediction : "?",
               mi.zero_snr ? ", zero terminal SNR" : "", (long long)mi.params, mi.hash);
        printf("precision: %s\n", mi.precision);
        print_embeddings(e);
        if (mi.vae_name) {
            snprintf(L->vae_name, sizeof L->vae_name, "%s", mi.vae_name);
            printf("VAE: %s (hash %s)\n", mi.vae_name, mi.vae_hash);
        }
        models_unpin(L->reg, def);
    }
    models_get(L->reg, def, &L->info);
    if (L->demo)
        printf("NOTE: this is the random-weight DEMO model: its pictures are noise. Start with --model PATH for "
               "real images.\n");
    int native = L->info.native_size;
    if (native > o_max_side || (int64_t)native * native > o_max_pixels)
        printf("NOTE: the model's native size %dx%d is over --max-side %lld / --max-pixels %lld: requests without "
               "width and height will be refused; raise the limits or send a size.\n", native, native,
               (long long)o_max_side, (long long)o_max_pixels);
    if (!srv) {   /* sdserve worker: no HTTP */
        printf("ready: running jobs from the shared queue\n");
        return;
    }
    http_server_model_vae(srv, L->vae_name[0] ? L->vae_name : NULL);
    http_server_model_ready(srv, L->info.name, L->info.family, L->info.hash);
    /* with API keys the line as printed would get 401: it says where the key goes */
    int keyed = (o_api_keys && *o_api_keys) || (o_api_keys_file && *o_api_keys_file);
    printf("ready: try: curl -s%s -d 'prompt=a red fox' -d num_inference_steps=4 %s/txt2img\n",
           keyed ? " -H 'Authorization: Bearer KEY'" : "", public_url);
    /* the web page (issue 16, docs/SERVER.md "Web page") */
    printf("web page: %s/ui/\n", public_url);
}

/* The base of returned URLs: --public-url without trailing '/', else the
 * address this machine reaches --bind at (127.0.0.1 for 0.0.0.0). */
static void make_public_url(char *out, size_t n, int port)
{
    if (o_public && *o_public) snprintf(out, n, "%s", o_public);
    else http_bind_url(o_bind, port, out, n);
    size_t l = strlen(out);
    while (l && out[l - 1] == '/') out[--l] = 0;
}

/* Listening on every address with loopback URLs: say so once at start (a
 * single address, loopback or not, is the URLs' host already). */
static void public_url_hint(const char *public_url, int port)
{
    if ((o_public && *o_public) || !http_bind_is_any(o_bind)) return;
    printf("NOTE: listening on %s, but returned URLs (%s) use %s, which only this machine can open; start with "
           "--public-url http://HOST:%d (the address clients reach this server at)\n",
           o_bind && *o_bind ? o_bind : "0.0.0.0", strcmp(o_storage, "local") ? "status_url" : "image_url, status_url",
           public_url, port);
}

/* Storage from --storage; local images are served here under public_url/images. */
static storage *open_storage(const char *images_dir, const char *public_url, sd_err *err)
{
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s/images", public_url);
    if (!strcmp(o_storage, "s3")) return open_s3_storage(err);
    return storage_local_open(images_dir, prefix, err);   /* local or s3: check_values */
}

/* ---- the shared Redis queue (docs/SCALE.md) ---- */
static queue_worker g_worker;   /* this node's worker on the shared queue */
static worker_health *g_health; /* sdserve worker --health-port */
static gen_ctx *g_worker_gc;

/* jobs_redis_config.model_lookup over the registry (ud): the usable entry
 * `name` names (NULL/"" = the default), its name and short hash. */
static int registry_lookup(void *ud, const char *name, char *name_out, char *hash)
{
    models_entry me;
    int i = name && *name ? models_find(ud, name) : models_default(ud);
    if (i < 0 || models_get(ud, i, &me) || me.error[0]) return -1;
    snprintf(name_out, 128, "%s", me.name);
    snprintf(hash, 16, "%s", me.hash);
    return 0;
}

/* jobs_redis_config.models_json: the registry's usable models, announced
 * by this node's worker. */
static char *registry_json(void *ud)
{
    json_t *a = json_array();
    models_entry me;
    for (int i = 0; a && !models_get(ud, i, &me); i++)
        if (!me.error[0]) json_array_append_new(a, json_pack("{s:s, s:s}", "name", me.name, "hash", me.hash));
    char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return text;
}

static models *g_registry;   /* the routing callbacks' registry */

static jobs_redis_config redis_config(void)
{
    jobs_redis_config c = {.url = o_queue_url, .queue_timeout = o_queue_timeout, .claim_timeout = o_claim_timeout,
                           .max_attempts = (int)o_max_attempts, .queue_size = (int)o_queue,
                           .retention = o_retention, .job_timeout = o_job_timeout,
                           .max_side = (int)o_max_side, .max_pixels = o_max_pixels,
                           .precision = sd_precision_resolved(o_precision), .threads = (int)o_threads,
                           .model_lookup = registry_lookup, .models_json = registry_json, .models_ud = g_registry};
    return c;
}

/* An API node with --queue and --workers 0 loads no weights: its registry
 * only opens checkers (validation before queueing). */
static int api_only(int worker_only)
{
    return !worker_only && o_queue_url && *o_queue_url && !o_workers;
}

/* The checks of a node on the shared queue, before anything starts. */
static int check_queue_settings(int worker_only, sd_err *err)
{
    int shared = o_queue_url && *o_queue_url;
    if (worker_only && !shared)
        return sd_errf(err, SD_EINVAL, "queue", "sdserve worker needs --queue redis://host:port/db");
    if (!shared) return 0;
    redis_url u;
    if (redis_url_parse(o_queue_url, &u, err)) return -1;
    if (!strcmp(o_storage, "local") && !o_shared_data_dir)
        return sd_errf(err, SD_EINVAL, "shared-data-dir", "--queue with --storage local needs --shared-data-dir 1 "
                       "(--data-dir a mount every node sees) and --public-url; or use --storage s3");
    if (worker_only && !strcmp(o_storage, "local") && !(o_public && *o_public))
        return sd_errf(err, SD_EINVAL, "public-url", "sdserve worker with --storage local needs --public-url (an "
                       "API node's address: it serves the shared data dir's images)");
    return 0;
}

/* Model loaded: this node's worker starts taking jobs (not before: the
 * demo model may not exist yet). */
static void start_local_worker(int worker_only)
{
    if (!(o_queue_url && *o_queue_url) || (!worker_only && !o_workers) || !g_worker_gc) return;
    jobs_redis_config c = redis_config();
    sd_err e;
    sd_err_clear(&e);
    if (queue_worker_start(&g_worker, &c, g_worker_gc, &e)) fprintf(stderr, "sdserve: %s\n", e.msg);
    if (worker_only && o_health_port &&
        !(g_health = worker_health_start(o_bind, (int)o_health_port, &g_worker.stats, &e)))
        fprintf(stderr, "sdserve worker: %s\n", e.msg);
}
/* ---- end of the shared queue's part ---- */

static const char *sig_name(int sig)
{
    return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP" : "a signal";
}

/* Waits for SIGTERM/SIGINT/SIGHUP; on the way, the loader's SIGUSR1 opens
 * the server (model loaded) or ends it (load failed: -1 with err set). */
static int wait_signals(const sigset_t *sigs, model_loader *L, http_server *srv, const char *public_url, sd_err *err)
{
    int ready = 0;
    for (;;) {
        int sig = 0;
        sigwait(sigs, &sig);
        if (sig != SIGUSR1) {
            printf("received %s: refusing new requests; cancelling queued and running jobs\n", sig_name(sig));
            return 0;
        }
        int done = atomic_load(&L->done);
        if (done < 0) {
            *err = L->err;
            return -1;
        }
        if (done > 0 && !ready) {
            start_local_worker(!srv);   /* first: it announces itself as the node says "ready" */
            model_ready(L, srv, public_url);
            ready = 1;
        }
    }
}

/* After the stop signal, while the model still loads (a big checkpoint on
 * a slow disk, a --model-config FIFO nobody writes): waits for the loader,
 * but a second SIGTERM/SIGINT/SIGHUP ends the process at once (status
 * 128 + signal, as a shell reports a killed process).  Nothing is half
 * written then: the server and the jobs are stopped, and the loader only
 * reads (the demo model is made in a temporary folder). */
static void wait_load_or_second_signal(const sigset_t *sigs, model_loader *L)
{
    if (atomic_load(&L->done)) return;
    printf("waiting for the model load to finish before stopping (send the signal again to stop now)\n");
    while (!atomic_load(&L->done)) {
        int sig = 0;
        sigwait(sigs, &sig);
        if (sig == SIGUSR1) continue;
        printf("received %s again: stopping without waiting for the model load\n", sig_name(sig));
        fflush(stdout);
        fflush(stderr);
        _exit(128 + sig);
    }
}

/* worker_only = 1 is `sdserve worker` (no HTTP; --queue required) */
static int cli_serve_mode(int argc, char **argv, int worker_only);

int cli_serve(int argc, char **argv) { return cli_serve_mode(argc, argv, 0); }
int cli_worker(int argc, char **argv) { return cli_serve_mode(argc, argv, 1); }

static int cli_serve_mode(int argc, char **argv, int worker_only)
{
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_settings_load(serve_settings, NSETTINGS, argc, argv, &err);
    if (rc == 1) {
        sd_settings_usage(stdout, worker_only ? "usage: sdserve worker --queue redis://... [options]\nRuns jobs "
                          "from the shared queue, no HTTP (see docs/SCALE.md); the settings are serve's."
                          : "usage: sdserve serve [options]\nRuns the HTTP API (see docs/SERVER.md).",
                          serve_settings, NSETTINGS);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "sdserve serve: %s\n", err.msg);
        sd_settings_free(serve_settings, NSETTINGS);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* Signals are taken by sigwait below; every thread started after this
     * inherits the mask.  SIGUSR1: the model loader is done. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);   /* a closed terminal or SSH session: the same clean stop */
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A file-size limit (RLIMIT_FSIZE) must fail the write (EFBIG: the job
     * fails with a storage error), not kill the server. */
    signal(SIGXFSZ, SIG_IGN);
    /* Each connection takes two descriptors (the socket and the header
     * deadline's dup, server.c): allow as many as the hard limit lets us. */
    struct rlimit nofile;
    if (!getrlimit(RLIMIT_NOFILE, &nofile) && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    int status = 1, lfd = -1, port = 0, loader_started = 0;
    storage *store = NULL;
    jobs_backend *q = NULL;   /* the jobs interface (backend.h): here the in-process queue */
    http_server *srv = NULL;
    auth_keys *keys = NULL;
    ratelimit *rl = NULL;
    char images_dir[4200], public_url[512];
    model_loader L;
    loader_init(&L);
    pthread_t loader;

    printf("sdserve %s %s, settings:\n", sd_version(), worker_only ? "worker" : "serve");
    sd_settings_print(stdout, serve_settings, NSETTINGS);
    printf("request bodies: at most %zu MiB buffered at once, %lld MiB each, %lld connections per address%s\n",
           max_buffered_bytes() >> 20, (long long)o_max_body_mb, (long long)o_max_conn_ip,
           o_max_conn_ip ? "" : " (no limit)");
    if (check_values(worker_only, &err)) {   /* before anything slow: a usage error */
        status = 2;
        goto out;
    }
    if (check_paths(&err)) goto out;
    snprintf(images_dir, sizeof images_dir, "%s/images", o_data);
    if (mkdir_p(images_dir, &err)) goto out;

    keys = auth_keys_load(o_api_keys, o_api_keys_file, &err);
    if (!keys) {
        if (err.code == SD_EINVAL && !strcmp(err.field, "api-keys")) status = 2;   /* the list as typed */
        goto out;
    }
    if (o_rate_limit > 0 && !(rl = rl_create(o_rate_limit, o_rate_burst, 10000))) {
        sd_errf(&err, SD_ENOMEM, "rate-limit", "out of memory");
        goto out;
    }
    printf("API keys: %d%s; rate limit: %s\n", auth_keys_count(keys),
           auth_keys_count(keys) ? " (every request but GET /health and /images/NAME needs one)" : " (no authentication)",
           rl ? "on" : "off");

    /* Start order: the port (fails fast; --port 0 learns it), the storage
     * (needs the URL), the server, then the model in the background. */
    if (!worker_only && (lfd = http_listen(o_bind, (int)o_port, &port, &err)) < 0) goto out;
    make_public_url(public_url, sizeof public_url, port);
    if (!(store = open_storage(images_dir, public_url, &err))) {
        if (err.code == SD_EINVAL) status = 2;   /* an s3-* value (open reaches no server) */
        name_storage_flag(&err);
        goto out;
    }
    if (start_image_retention(store, &err)) goto out;
    if (open_models(&L, &err)) goto out;
    gen_ctx gc = {.engine = NULL, .store = store, .models = L.reg};
    gc.preview_every = (int)o_preview_every;   /* live previews */
    jobq_config qc = {.queue_size = (int)o_queue, .job_timeout = o_job_timeout, .retention = o_retention,
                      .max_retained = (int)o_max_retained, .worker_nice = (int)o_engine_nice};
    if (o_queue_url && *o_queue_url) {   /* the shared queue: jobs run by workers (docs/SCALE.md) */
        g_worker_gc = &gc;
        g_registry = L.reg;
        L.no_weights = api_only(worker_only);
        jobs_redis_config rc = redis_config();
        if (!worker_only) q = jobs_redis_open(&rc, &err);
    } else {
        q = jobs_inproc_open(&qc, gen_run, &gc, &err);
    }
    if (!q && !worker_only) goto out;
    if (worker_only) {
        if (pthread_create(&loader, NULL, load_main, &L)) {
            sd_errf(&err, SD_EINTERNAL, "", "cannot start the model loader thread");
            goto out;
        }
        loader_started = 1;
        if (wait_signals(&sigs, &L, NULL, public_url, &err)) goto out;
        worker_health_stop(g_health);
        g_health = NULL;
        queue_worker_stop(&g_worker);
        wait_load_or_second_signal(&sigs, &L);
        pthread_join(loader, NULL);
        loader_started = 0;
        printf("stopped cleanly\n");
        status = 0;
        goto out;
    }
    server_config sc = {
        .bind_addr = o_bind, .port = port, .http_threads = (int)o_http_threads,
        .max_connections = (int)o_max_conn, .conn_timeout = (int)o_conn_timeout,
        .header_timeout = o_header_timeout, .max_conn_per_ip = (int)o_max_conn_ip,
        .max_body = (size_t)o_max_body_mb << 20, .max_buffered = max_buffered_bytes(), .sync_wait = o_sync_wait,
        .retention = o_retention, .public_url = public_url, .version = sd_version(), .access_log = (int)o_access_log,
        .keys = keys, .metrics_open = (int)o_metrics_open, .rl = rl,
        .listen_fd = lfd, .store = store, .loading = 1,
        .check_request = check_request, .check_ctx = L.reg,
        .max_side = (int)o_max_side, .max_pixels = o_max_pixels,
        .list_loras = list_loras,
        .list_embeddings = list_embeddings,
        .list_models = list_models, .max_loaded = (int)o_max_loaded,
        .no_local_worker = api_only(worker_only),
    };
    lfd = -1;   /* the server's now, started or not */
    srv = http_server_start_jobs(&sc, q, &err);
    if (!srv) goto out;
    printf("listening on %s port %d; public URL %s; loading the model (generation answers 503 until ready)\n",
           o_bind, http_server_port(srv), public_url);
    public_url_hint(public_url, port);
    if (pthread_create(&loader, NULL, load_main, &L)) {
        sd_errf(&err, SD_EINTERNAL, "", "cannot start the model loader thread");
        goto out;
    }
    loader_started = 1;
    if (wait_signals(&sigs, &L, srv, public_url, &err)) goto out;
    http_server_stop(srv);
    srv = NULL;
    queue_worker_stop(&g_worker);
    jobs_close(q);
    q = NULL;
    wait_load_or_second_signal(&sigs, &L);
    pthread_join(loader, NULL);
    loader_started = 0;
    printf("stopped cleanly\n");
    status = 0;
out:
    if (status && err.code) fprintf(stderr, "sdserve serve: %s\n", err.msg);
    if (lfd >= 0) close(lfd);
    if (srv) http_server_stop(srv);
    worker_health_stop(g_health);
    queue_worker_stop(&g_worker);
    jobs_close(q);
    if (loader_started) pthread_join(loader, NULL);
    storage_close(store);
    models_free(L.reg);
    rl_free(rl);
    auth_keys_free(keys);
    sd_settings_free(serve_settings, NSETTINGS);
    return status;
}
