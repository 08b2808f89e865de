/* test_alloc_fail.c — the failure policy (docs/RELIABILITY.md): the server,
 * its job queue and the engine on tiny-sd1, in process over loopback, with
 * every allocation of one small txt2img and one img2img made to fail in
 * turn through the seam (src/base/alloc.h).  Each answer must be a JSON
 * success or a JSON error (503 for out of memory), and the next request
 * must succeed.  Linked with -Wl,--wrap=abort,--wrap=exit (Makefile): a
 * call to either from our code fails the test instead of ending it.
 * Prints the allocation counts ("# txt2img: N allocations through the
 * seam").  SD_SANITIZED=1: every third N only (the sanitizer tier is
 * slower; the normal tier sweeps them all). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "t.h"
#include "../../src/base/alloc.h"
#include "../../src/engine/ops/ops.h"
#include "../../src/http/server.h"
#include "../../src/image/image.h"
#include "../../src/jobs/generate.h"

/* ---- abort and exit from our code fail the test ---- */
void __real_abort(void);
void __wrap_abort(void)
{
    printf("FAIL - abort() called from the request path\n");
    fflush(stdout);
    _exit(1);
}

void __wrap_exit(int code)
{
    printf("FAIL - exit(%d) called from the request path\n", code);
    fflush(stdout);
    _exit(1);
}

/* ---- client ---- */
static int port;

typedef struct resp {
    long status;
    char *body;
    size_t len;
} resp;

static const char *TXT = "prompt=a red fox&width=64&height=64&num_inference_steps=1&seed=7";
static uint8_t *g_png;   /* the img2img init image */
static size_t g_npng;

/* POST /txt2img (img2img = 0) or /img2img (multipart, the init PNG). */
static resp post(int img2img)
{
    resp r = {0};
    CURL *c = curl_easy_init();
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%s", port, img2img ? "img2img" : "txt2img");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_mime *m = NULL;
    if (img2img) {
        m = curl_mime_init(c);
        const char *kv[][2] = {{"prompt", "a red fox"}, {"num_inference_steps", "2"}, {"strength", "0.5"}, {"seed", "8"}};
        for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
            curl_mimepart *p = curl_mime_addpart(m);
            curl_mime_name(p, kv[i][0]);
            curl_mime_data(p, kv[i][1], CURL_ZERO_TERMINATED);
        }
        curl_mimepart *p = curl_mime_addpart(m);
        curl_mime_name(p, "init_image");
        curl_mime_filename(p, "init.png");
        curl_mime_type(p, "image/png");
        curl_mime_data(p, (const char *)g_png, g_npng);
        curl_easy_setopt(c, CURLOPT_MIMEPOST, m);
    }
    else curl_easy_setopt(c, CURLOPT_POSTFIELDS, TXT);
    FILE *body = open_memstream(&r.body, &r.len);   /* curl's default writer: fwrite */
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    if (body && curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    if (body) fclose(body);
    curl_mime_free(m);
    curl_easy_cleanup(c);
    return r;
}

/* 1 if r is a success with one image; 2 if it is the API's JSON error shape
 * ({"status":"error","code","field","message"}) with a 4xx/5xx status; 0
 * otherwise. */
static int answer_kind(const resp *r, char *why, size_t cap)
{
    json_error_t je;
    json_t *j = r->body ? json_loads(r->body, 0, &je) : NULL;
    int kind = 0;
    if (!j) snprintf(why, cap, "status %ld, body not JSON: %.200s", r->status, r->body ? r->body : "(none)");
    else if (r->status == 200 && json_array_size(json_object_get(j, "images")) == 1) kind = 1;
    else {
        const char *st = json_string_value(json_object_get(j, "status"));
        if (r->status >= 400 && st && !strcmp(st, "error") && json_is_string(json_object_get(j, "code")) &&
            json_is_string(json_object_get(j, "message")))
            kind = 2;
        else snprintf(why, cap, "status %ld body %.200s", r->status, r->body);
    }
    json_decref(j);
    return kind;
}

/* One request with the n-th allocation from now failing (0 = none). */
static int try_once(int img2img, unsigned long n, long *status, int *fired, char *why, size_t cap)
{
    sd_alloc_fail_at(n);
    resp r = post(img2img);
    if (fired) *fired = sd_alloc_failed();
    sd_alloc_fail_at(0);
    int kind = answer_kind(&r, why, cap);
    if (kind == 2 && r.status != 503) snprintf(why, cap, "%.300s", r.body);
    *status = r.status;
    free(r.body);
    return kind;
}

/* Count one request's seam calls (warm: after one run), then fail each. */
static void sweep(int img2img, int every)
{
    const char *name = img2img ? "img2img" : "txt2img";
    char why[400] = "", tname[128];
    long st;
    int ok = try_once(img2img, 0, &st, NULL, why, sizeof why) == 1;   /* warm-up: caches and thread buffers */
    unsigned long c0 = sd_alloc_count();
    ok = ok && try_once(img2img, 0, &st, NULL, why, sizeof why) == 1;
    unsigned long count = sd_alloc_count() - c0;
    snprintf(tname, sizeof tname, "%s answers 200 with no fault injected", name);
    CHECKF(ok, tname, "%s", why);
    printf("# %s: %lu allocations through the seam (one request, warm)\n", name, count);
    snprintf(tname, sizeof tname, "%s makes allocations through the seam", name);
    CHECKF(count > 10, tname, "only %lu", count);
    unsigned long tried = 0, errors = 0, bad = 0, dead = 0, n503 = 0, fired = 0;
    for (unsigned long n = 1; n <= count; n += (unsigned long)every) {
        tried++;
        int f = 0, kind = try_once(img2img, n, &st, &f, why, sizeof why);
        fired += f;
        if (kind == 0 && !bad++) printf("# %s: allocation %lu failed -> %s\n", name, n, why);
        if (kind == 2) { errors++; n503 += st == 503; }
        if (kind == 2 && st != 503) printf("# %s: allocation %lu failed -> %ld %s", name, n, st, why);
        if (kind == 1) printf("# %s: allocation %lu failed -> 200 (the failure was absorbed)\n", name, n);
        char w2[400] = "";
        if (try_once(img2img, 0, &st, NULL, w2, sizeof w2) != 1 && !dead++)
            printf("# %s: after allocation %lu failed, the next request: %s\n", name, n, w2);
    }
    printf("# %s: failed allocations 1..%lu (step %d): %lu tried, %lu fired, %lu JSON errors (%lu of them 503), "
           "%lu successes\n", name, count, every, tried, fired, errors, n503, tried - errors - bad);
    snprintf(tname, sizeof tname, "%s: every failed allocation answers JSON success or a JSON error", name);
    CHECKF(bad == 0, tname, "%lu of %lu answers were not", bad, tried);
    snprintf(tname, sizeof tname, "%s: the server serves the next request after each", name);
    CHECKF(dead == 0, tname, "%lu of %lu next requests failed", dead, tried);
    snprintf(tname, sizeof tname, "%s: the injected failures fired and most became errors, all 503", name);
    CHECKF(fired == tried && errors * 2 >= tried && n503 == errors, tname, "%lu fired, %lu errors (%lu 503) of %lu",
           fired, errors, n503, tried);
}

static int make_init_png(void)
{
    int w = 32, h = 32;
    uint8_t rgb[32 * 32 * 3];
    for (int i = 0; i < w * h * 3; i++) rgb[i] = (uint8_t)(i * 7 % 251);
    sd_err e;
    sd_err_clear(&e);
    img_encode_opts o = {.format = IMG_PNG};
    return img_encode(rgb, w, h, &o, &g_png, &g_npng, &e);
}

/* The server, its queue and a freshly loaded engine (cold: no weight
 * copies, primitives or worker buffers yet). */
typedef struct stack {
    sd_engine *eng;
    storage *store;
    jobq *q;
    http_server *srv;
    gen_ctx gc;
} stack;

static int up(stack *k, const char *dir, char *msg, size_t cap)
{
    sd_err e;
    sd_err_clear(&e);
    memset(k, 0, sizeof *k);
    sd_load_opts lo = {.model_path = t_ref("models/tiny-sd1"), .threads = 2};
    k->eng = sd_engine_load(&lo, &e);
    k->store = k->eng ? storage_local_open(dir, "http://127.0.0.1/images", &e) : NULL;
    k->gc = (gen_ctx){.engine = k->eng, .store = k->store, .model_name = "tiny-sd1", .model_hash = "0000000000"};
    jobq_config qc = {.queue_size = 4, .job_timeout = 0, .retention = 60, .max_retained = 100};
    k->q = k->store ? jobq_create(&qc, gen_run, &k->gc, &e) : NULL;
    server_config sc = {.bind_addr = "127.0.0.1", .port = 0, .http_threads = 2, .max_connections = 64,
                        .conn_timeout = 30, .max_body = 1 << 20, .sync_wait = 120, .retention = 60,
                        .model_name = "tiny-sd1", .model_family = "sd1", .model_hash = "0000000000",
                        .version = "test", .store = k->store};
    k->srv = k->q ? http_server_start(&sc, k->q, &e) : NULL;
    if (k->srv) port = http_server_port(k->srv);
    snprintf(msg, cap, "%s", e.msg);
    return k->srv ? 0 : -1;
}

static void down(stack *k)
{
    if (k->srv) http_server_stop(k->srv);
    if (k->q) jobq_destroy(k->q, NULL);
    storage_close(k->store);
    sd_engine_free(k->eng);
    memset(k, 0, sizeof *k);
}

/* The first txt2img after loading: the weight copies, the ops layer's
 * buffers and the queue's worker made for it; each of its allocations
 * failed on a fresh stack (every `every`-th). */
static void sweep_cold(const char *dir, int every)
{
    char why[400] = "";
    stack k;
    long st;
    int ok = up(&k, dir, why, sizeof why) == 0;
    unsigned long c0 = sd_alloc_count();
    ok = ok && try_once(0, 0, &st, NULL, why, sizeof why) == 1;
    unsigned long count = sd_alloc_count() - c0;
    down(&k);
    CHECKF(ok, "cold txt2img answers 200 with no fault injected", "%s", why);
    printf("# cold txt2img: %lu allocations through the seam (the first request after loading)\n", count);
    unsigned long tried = 0, bad = 0, dead = 0, errors = 0, n503 = 0;
    for (unsigned long n = 1; ok && n <= count; n += (unsigned long)every) {
        if (up(&k, dir, why, sizeof why)) { bad++; break; }
        tried++;
        int f = 0, kind = try_once(0, n, &st, &f, why, sizeof why);
        if ((kind == 0 || !f) && !bad++) printf("# cold txt2img: allocation %lu failed (fired %d) -> %s\n", n, f, why);
        if (kind == 2) { errors++; n503 += st == 503; }
        if (try_once(0, 0, &st, NULL, why, sizeof why) != 1 && !dead++)
            printf("# cold txt2img: after allocation %lu failed, the next request: %s\n", n, why);
        down(&k);
    }
    printf("# cold txt2img: failed allocations 1..%lu (step %d): %lu tried, %lu JSON errors (%lu of them 503)\n",
           count, every, tried, errors, n503);
    CHECKF(bad == 0, "cold txt2img: every failed allocation fired and answers JSON success or a JSON error",
           "%lu of %lu were not", bad, tried);
    CHECKF(tried > 0 && n503 == errors, "cold txt2img: every error is a 503", "%lu errors, %lu of them 503",
           errors, n503);
    CHECKF(dead == 0, "cold txt2img: the server serves the next request after each", "%lu of %lu failed", dead, tried);
}

int main(void)
{
    if (!t_have_ref()) { CHECKF(0, "reference data", "../shared/reference not found (set SD_REF)"); return t_done(); }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    const char *san = getenv("SD_SANITIZED");
    int sanitized = san && *san == '1';
    char dir[] = "/tmp/sd_allocfail_XXXXXX", msg[512] = "";
    CHECK(mkdtemp(dir) != NULL, "temporary image folder");
    CHECK(make_init_png() == 0, "encode the init image");
    stack k;
    int ok = up(&k, dir, msg, sizeof msg) == 0;
    CHECKF(ok, "load tiny-sd1 and start the server", "%s", msg);
    if (ok) {
        sweep(0, sanitized ? 3 : 1);
        sweep(1, sanitized ? 3 : 1);
    }
    down(&k);
    if (ok) sweep_cold(dir, sanitized ? 50 : 5);
    free(g_png);
    t_rmtree(dir);
    curl_global_cleanup();
    return t_done();
}
