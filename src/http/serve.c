/* serve.c — `sdserve serve`: settings -> model -> storage -> job queue ->
 * HTTP server, then waits for SIGTERM/SIGINT and shuts down in order.
 *
 * With no --model, a small random-weight demo model is created once in
 * DATA_DIR/demo-model (through `make-model --preset demo`) so that the whole
 * path runs on a fresh machine; its pictures are noise. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/settings.h"
#include "../cli/cli.h"
#include "../engine/sd.h"
#include "../jobs/generate.h"
#include "../jobs/jobs.h"
#include "../storage/storage.h"
#include "auth.h"
#include "params.h"
#include "ratelimit.h"
#include "server.h"

/* server_config.check_request: the prompt's token windows with the loaded
 * model's tokenizer.  ctx = &engine, read at each request, so a model
 * loaded after the server started is used once set; while it is NULL
 * nothing is checked here (the engine refuses the same prompts when it
 * runs the job).  When prompt syntax arrives (issue 14) its parser runs
 * inside sd_prompt_windows. */
static int check_prompts(void *ctx, const struct gen_request *g, sd_err *err)
{
    sd_engine *engine = *(sd_engine *const *)ctx;
    return engine ? sd_check_prompts(engine, g->prompt, g->negative, err) : 0;
}

static char *o_api_keys, *o_api_keys_file;
static int64_t o_metrics_open;
static double o_rate_limit, o_rate_burst;
static char *o_bind, *o_model, *o_model_config, *o_vocab, *o_data, *o_public, *o_precision;
static int64_t o_engine_nice, o_max_conn_ip;
static double o_header_timeout;
static int64_t o_port, o_queue, o_threads, o_http_threads, o_max_conn, o_conn_timeout, o_max_body_mb, o_access_log,
    o_max_retained;
static double o_job_timeout, o_sync_wait, o_retention;
/* image storage (docs/STORAGE.md) */
static char *o_storage, *o_s3_endpoint, *o_s3_region, *o_s3_bucket, *o_s3_addressing, *o_s3_prefix, *o_s3_access,
    *o_s3_secret, *o_s3_token, *o_s3_public;
static int64_t o_s3_expires, o_s3_attempts;
static double o_s3_timeout;

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
    {"max-conn-per-ip", SD_SET_INT, &o_max_conn_ip, "0", 0, 100000,
     "simultaneous connections from one address (0 = no limit; leave 0 behind a reverse proxy)"},
    {"max-body-mb", SD_SET_INT, &o_max_body_mb, "20", 1, 1024, "largest request body in MiB (413 above)"},
    {"job-timeout", SD_SET_DOUBLE, &o_job_timeout, "1800", 0, 1e7, "seconds a job may run (0 = no limit)"},
    {"sync-wait", SD_SET_DOUBLE, &o_sync_wait, "900", 1, 1e7,
     "seconds POST /txt2img and /img2img wait for their job (504 and the job cancelled after)"},
    {"retention", SD_SET_DOUBLE, &o_retention, "3600", 0, 1e8, "seconds a finished async job stays readable"},
    {"max-retained", SD_SET_INT, &o_max_retained, "1000", 1, 1000000, "finished async jobs kept at most"},
    {"access-log", SD_SET_INT, &o_access_log, "1", 0, 1, "1 = one line per request on stdout"},
    {"api-keys", SD_SET_SECRET, &o_api_keys, NULL, 0, 0,
     "API keys separated by ',' (prefer the environment variable); when keys are set every request but GET /health "
     "needs 'Authorization: Bearer KEY' (401 otherwise)"},
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
};
#define NSETTINGS (int)(sizeof serve_settings / sizeof serve_settings[0])

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

static int mkdir_p(const char *dir, sd_err *err)
{
    char buf[4400];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) && errno != EEXIST) return sd_errf(err, SD_EIO, "data-dir", "cannot create %s: %s", buf, strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, 0755) && errno != EEXIST) return sd_errf(err, SD_EIO, "data-dir", "cannot create %s: %s", buf, strerror(errno));
    return 0;
}

/* The S3 store from the s3-* settings; credentials from flags/SDSERVE_* or else AWS_*. */
static storage *open_s3_storage(sd_err *err)
{
    char endpoint[300];
    if (o_s3_endpoint && *o_s3_endpoint) snprintf(endpoint, sizeof endpoint, "%s", o_s3_endpoint);
    else snprintf(endpoint, sizeof endpoint, "https://s3.%s.amazonaws.com", o_s3_region);
    int path_style = !strcmp(o_s3_addressing, "path");
    if (!path_style && strcmp(o_s3_addressing, "virtual"))
        return sd_errf(err, SD_EINVAL, "s3-addressing", "--s3-addressing must be virtual or path, got '%.100s'",
                       o_s3_addressing), NULL;
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

int cli_serve(int argc, char **argv)
{
    sd_err err;
    sd_err_clear(&err);
    int rc = sd_settings_load(serve_settings, NSETTINGS, argc, argv, &err);
    if (rc == 1) {
        sd_settings_usage(stdout, "usage: sdserve serve [options]\nRuns the HTTP API (see docs/SERVER.md).",
                          serve_settings, NSETTINGS);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "sdserve serve: %s\n", err.msg);
        sd_settings_free(serve_settings, NSETTINGS);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* Signals are taken by sigwait below; every thread started after this inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
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

    int status = 1;
    sd_engine *engine = NULL;
    storage *store = NULL;
    jobq *q = NULL;
    http_server *srv = NULL;
    auth_keys *keys = NULL;
    ratelimit *rl = NULL;
    char images_dir[4200], demo[4200], public_url[512];
    int demo_model = !o_model || !*o_model;

    printf("sdserve %s serve, settings:\n", sd_version());
    sd_settings_print(stdout, serve_settings, NSETTINGS);
    if (sd_precision_known(o_precision)) {   /* before anything slow */
        sd_errf(&err, SD_EINVAL, "precision", "--precision must be auto, fp32, bf16x2 or bf16; got '%.40s'",
                o_precision);
        goto out;
    }
    snprintf(images_dir, sizeof images_dir, "%s/images", o_data);
    if (mkdir_p(images_dir, &err)) goto out;
    if (demo_model && ensure_demo_model(o_data, demo, sizeof demo, &err)) goto out;

    keys = auth_keys_load(o_api_keys, o_api_keys_file, &err);
    if (!keys) goto out;
    if (o_rate_limit > 0 && !(rl = rl_create(o_rate_limit, o_rate_burst, 10000))) {
        sd_errf(&err, SD_ENOMEM, "rate-limit", "out of memory");
        goto out;
    }
    printf("API keys: %d%s; rate limit: %s\n", auth_keys_count(keys),
           auth_keys_count(keys) ? " (every request but GET /health needs one)" : " (no authentication)",
           rl ? "on" : "off");

    sd_load_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.model_path = demo_model ? demo : o_model;
    lo.config_path = o_model_config;
    lo.vocab_path = o_vocab;
    lo.data_dir = o_data;
    lo.threads = (int)o_threads;
    lo.precision = o_precision;
    printf("loading model %s ...\n", lo.model_path);
    engine = sd_engine_load(&lo, &err);
    if (!engine) goto out;
    sd_model_info mi;
    memset(&mi, 0, sizeof mi);
    sd_engine_info(engine, &mi);
    printf("model: %s (%s, %s, %lld parameters, hash %s)\n", mi.name ? mi.name : "?", mi.family ? mi.family : "?",
           mi.prediction ? mi.prediction : "?", (long long)mi.params, mi.hash);
    printf("precision: %s\n", mi.precision);
    if (demo_model)
        printf("NOTE: this is the random-weight DEMO model: its pictures are noise. Start with --model PATH for "
               "real images.\n");

    /* The public URL needs the port: start HTTP on the port first when it is 0. */
    server_config sc = {
        .bind_addr = o_bind, .port = (int)o_port, .http_threads = (int)o_http_threads,
        .max_connections = (int)o_max_conn, .conn_timeout = (int)o_conn_timeout,
        .header_timeout = o_header_timeout, .max_conn_per_ip = (int)o_max_conn_ip,
        .max_body = (size_t)o_max_body_mb << 20, .sync_wait = o_sync_wait, .retention = o_retention,
        .public_url = o_public, .model_name = mi.name, .model_family = mi.family,
        .model_hash = mi.hash, .version = sd_version(), .access_log = (int)o_access_log,
        .keys = keys, .metrics_open = (int)o_metrics_open, .rl = rl,
        .check_request = check_prompts, .check_ctx = &engine,
    };
    gen_ctx gc = {.engine = engine, .store = NULL, .model_name = mi.name, .model_hash = mi.hash};
    jobq_config qc = {.queue_size = (int)o_queue, .job_timeout = o_job_timeout, .retention = o_retention,
                      .max_retained = (int)o_max_retained, .worker_nice = (int)o_engine_nice};
    q = jobq_create(&qc, gen_run, &gc, &err);
    if (!q) goto out;
    srv = http_server_start(&sc, q, &err);
    if (!srv) goto out;
    /* The URL prefix is known only now when the port was chosen by the system (--port 0). */
    snprintf(public_url, sizeof public_url, "%s", http_server_public_url(srv));
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s/images", public_url);
    if (!strcmp(o_storage, "s3")) store = open_s3_storage(&err);
    else if (!strcmp(o_storage, "local")) store = storage_local_open(images_dir, prefix, &err);
    else sd_errf(&err, SD_EINVAL, "storage", "--storage must be local or s3, got '%.100s'", o_storage);
    if (!store) goto out;
    gc.store = store;
    http_server_set_storage(srv, store);
    printf("listening on %s port %d; public URL %s\n", o_bind, http_server_port(srv), public_url);
    printf("try: curl -s -d 'prompt=a red fox' -d num_inference_steps=4 %s/txt2img\n", public_url);

    int sig = 0;
    sigwait(&sigs, &sig);
    printf("received %s: no new connections; cancelling queued and running jobs\n",
           sig == SIGTERM ? "SIGTERM" : "SIGINT");
    http_server_stop(srv);
    srv = NULL;
    jobq_destroy(q, "the server is shutting down");
    q = NULL;
    printf("stopped cleanly\n");
    status = 0;
out:
    if (status && err.code) fprintf(stderr, "sdserve serve: %s\n", err.msg);
    if (srv) http_server_stop(srv);
    if (q) jobq_destroy(q, "the server is shutting down");
    storage_close(store);
    if (engine) sd_engine_free(engine);
    rl_free(rl);
    auth_keys_free(keys);
    sd_settings_free(serve_settings, NSETTINGS);
    return status;
}
