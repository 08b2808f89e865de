/* server.h — the HTTP API on libmicrohttpd: routes, body parsing, replies,
 * sync waiting (suspended connections), async jobs, images, health, metrics.
 *
 * The server does not generate: it validates, submits to a job backend
 * (jobs/backend.h: the in-process queue, or any other behind the same
 * interface) and answers.  cli/serve.c wires settings, engine, storage and this
 * together; tests may run the same server over a jobq with a fake runner or
 * over a fake backend.  Its files, one seam each (transport, routes, bodies,
 * endpoints, one per API dialect), are listed in server_int.h. */
#ifndef SD_HTTP_SERVER_H
#define SD_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "../base/err.h"
#include "../jobs/backend.h"
#include "../storage/storage.h"

typedef struct http_server http_server;
struct auth_keys;
struct ratelimit;
struct sd_request;

/* One model the server can generate with (GET /models and the dialects'
 * model lists: A1111's /sd-models, OpenAI's /v1/models). */
typedef struct server_model {
    char name[128];            /* what a request's `model` names */
    char family[16];           /* "sd1", "sd2", "sdxl" */
    char hash[16];             /* the short hash images' parameters show; "" = not known yet */
    char sha256[65];           /* the file's full SHA-256; "" = not known yet */
    char file[256];            /* the file or folder it is loaded from */
    int64_t size;              /* bytes; 0 = unknown */
    int loaded;                /* resident now */
    int is_default;            /* what a request without `model` gets */
    char refused[256];         /* why requests naming it are refused (400 naming model: the header
                                  cannot be read, not a whole checkpoint, a family not run); "" = usable */
} server_model;

typedef struct server_config {
    const char *bind_addr;     /* IPv4/IPv6 literal, "0.0.0.0" = all */
    int port;                  /* 0 = any free port (see http_server_port) */
    int http_threads;          /* libmicrohttpd thread pool size */
    int max_connections;
    int conn_timeout;          /* idle seconds before a connection is closed */
    double header_timeout;     /* seconds a client has to send a request's headers, counted from
                                  the connection or the end of its previous request; then the
                                  connection is closed (slow clients); 0 = no limit */
    int max_conn_per_ip;       /* simultaneous connections from one address; 0 = no limit */
    size_t max_body;           /* bytes; larger bodies get 413 */
    size_t max_buffered;       /* bytes of request bodies held at once by all connections together;
                                  a body that would pass it gets 503 + Retry-After; 0 = no limit */
    double sync_wait;          /* seconds a synchronous request waits for its job */
    double retention;          /* seconds finished jobs stay visible (for messages) */
    const char *public_url;    /* base of returned URLs, no trailing '/' */
    const char *model_name, *model_family, *model_hash;
    const char *model_vae;     /* the VAE override's name (GET /health model.vae), NULL = built-in */
    const char *version;
    int access_log;            /* 1 = one line per request on stdout */
    const struct auth_keys *keys;  /* API keys (auth.h); NULL or empty = no authentication */
    int metrics_open;          /* 1 = GET /metrics needs no key (GET /health never does) */
    struct ratelimit *rl;      /* per key / address limit (ratelimit.h); NULL = none */
    /* start order (cli/serve.c): listen, storage, then the model in the background */
    int listen_fd;             /* a listening socket from http_listen (listen.h), owned by the
                                  server from then on; 0 = open one on bind_addr:port here */
    storage *store;            /* served by GET /images/{name} from the first request; NULL = none */
    int loading;               /* 1 = the model is still loading: generation routes answer 503 +
                                  Retry-After and /health says "loading" (503) until
                                  http_server_model_ready(); model_* are then unknown */
    /* Checks a validated request against the loaded model before it is
     * queued (the prompt's token windows, sd_check_prompts), so that the
     * client gets a 400 rather than a 202 and a failed job.  It also fills
     * what only the model knows (an unset width/height: req_resolve_size
     * with sd_model_info.native_size).  Called on HTTP threads; NULL = none. */
    int (*check_request)(void *ctx, struct sd_request *g, sd_err *err);
    void *check_ctx;
    /* Size limits of txt2img requests (--max-side, --max-pixels; 0 =
     * REQ_MAX_SIDE, REQ_MAX_PIXELS), checked after check_request has
     * resolved an unset width/height to the model's native size (without
     * check_request: 512); init images are scaled down to fit them. */
    int max_side;
    int64_t max_pixels;
    /* GET /loras: the LoRAs of the loaded model's directory (sd_list_loras),
     * with check_ctx; NULL = an empty list. */
    int (*list_loras)(void *ctx, sd_lora_info *out, int max, sd_err *err);
    /* GET /embeddings: entry i of the loaded model's embeddings
     * (sd_engine_embedding), with check_ctx; 0, or -1 past the end.  NULL =
     * an empty list. */
    int (*list_embeddings)(void *ctx, int i, sd_embedding_info *out);
    /* Several models (docs/SERVER.md "Several models"): the checkpoints a
     * request's model field may name, with check_ctx: fills out[0..max)
     * and returns how many there are (may exceed max), or -1 + err.  NULL
     * = the one model of model_name / model_family / model_hash.  A
     * request's model is resolved (unknown names refused) by
     * check_request, never loaded on an HTTP thread. */
    int (*list_models)(void *ctx, server_model *out, int max, sd_err *err);
    int max_loaded;            /* --max-loaded, GET /health max_loaded (0 = 1) */
    /* a shared queue (docs/SCALE.md): this node runs no worker and loaded
     * no weights (--workers 0): /health says so */
    int no_local_worker;
} server_config;

/* Serves over job backend `jobs`, which stays the caller's (shut down by
 * http_server_stop, closed by the caller after it). */
http_server *http_server_start_jobs(const server_config *cfg, jobs_backend *jobs, sd_err *err);
/* The same over an in-process queue (jobs.h), wrapped in its backend
 * (jobs_inproc_wrap); the queue stays the caller's. */
http_server *http_server_start(const server_config *cfg, jobq *q, sd_err *err);
int http_server_port(const http_server *s);
/* The storage whose objects GET /images/{name} serves (NULL = none, 404).
 * Set after start when the public URL depends on the port chosen. */
void http_server_set_storage(http_server *s, storage *st);
const char *http_server_public_url(const http_server *s);
/* The model has loaded: its name, family and hash (kept, not copied) go to
 * /health, and generation routes open.  Call once, after everything a job
 * needs is set (the store, the job runner's context). */
void http_server_model_ready(http_server *s, const char *name, const char *family, const char *hash);
/* The VAE override's name for GET /health (NULL: the model's own); call before _model_ready. */
void http_server_model_vae(http_server *s, const char *vae);
/* Graceful stop: refuse new connections, cancel queued and running jobs with
 * an explicit reason, answer every waiting client, then close.  Returns when
 * everything is released (the job backend or jobq is left to the caller,
 * shut down). */
void http_server_stop(http_server *s);

#endif
