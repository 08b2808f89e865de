/* fuzz_http.c — libFuzzer target for the HTTP layer end to end: each input is
 * written as raw bytes to a TCP connection of the real server (src/http/server.c
 * on libmicrohttpd, started once in process over a job queue with a fake,
 * instant runner — no engine), so libmicrohttpd's request parsing, chunked
 * bodies, its multipart post processor, our routing, body caps, field parsing
 * and image decoding all see the fuzzed bytes.
 * Per input: connect, write, shutdown(SHUT_WR), read until close (2 s at most;
 * 2 ms of silence once a whole answer is in; a first answer byte must come
 * within 250 ms — the fake runner answers at once — or 3 ms when the input is
 * not a whole request; what libmicrohttpd leaves hanging it closes at the
 * server's timeouts, and the /health check below sees any wedge).  The server
 * runs with a 0.1 s header timeout and a 1 s idle timeout.
 * Checked: an answer starts "HTTP/1.x NNN"; a JSON answer of ours is a JSON
 * object, for 4xx/5xx the error shape {"status":"error","code","message"}
 * — on /v1/ paths OpenAI's {"error":{"message","type","param","code"}},
 * on /sdapi/ paths A1111's {"detail": MESSAGE} or {"detail": [{"loc",
 * "msg"}]} (error_shape_ok) — (libmicrohttpd's own HTML refusals are only
 * status-checked); and every
 * 16 inputs a fresh GET /health still answers 200 (the server neither died
 * nor wedged).  Any violation aborts.
 * fuzz-sources: src/http/server.c src/http/routes.c src/http/body.c src/http/endpoints.c src/http/etag.c src/http/api_seed.c src/http/api_jobs.c src/http/api_samplers.c src/http/api_embeddings.c src/http/api_models.c src/http/api_openai.c src/http/api_a1111.c src/http/webui.c src/http/webui_blob.c src/http/listen.c src/http/reply.c src/http/metrics.c src/http/openapi.c src/http/openapi_doc.c src/http/params.c src/http/auth.c src/http/ratelimit.c src/jobs/request.c src/jobs/queue.c src/jobs/result.c src/jobs/backend.c src/jobs/inproc.c src/storage/storage.c src/base/err.c src/base/pyfloat.c src/base/alloc.c src/base/sha256.c src/engine/samplers/samplers.c src/engine/samplers/schedule.c src/engine/samplers/philox.c src/engine/samplers/choice.c src/engine/samplers/kdiff_sched.c src/image/image.c src/image/png.c src/image/jpeg.c src/image/webp.c src/image/exif.c src/image/orient.c src/image/resize.c src/image/a1111.c src/image/base64.c src/jobs/mask_req.c src/image/mask.c src/base/resample.c
 * fuzz-libs: -lmicrohttpd -ljansson -lpng16 -ljpeg -lwebp -lz -lm -lpthread */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../../src/http/server.h"

static int port;

/* The fake runner: no engine, answers at once (honouring cancel). */
static int fake_run(void *ud, const sd_request *in, sd_progress_fn progress, void *pud, job_result **result,
                    sd_err *err)
{
    (void)ud;
    if (progress(pud, in->gen.steps, in->gen.steps)) return sd_errf(err, SD_ECANCELLED, "", "cancelled");
    *result = job_result_new(0);
    return *result ? 0 : sd_errf(err, SD_ENOMEM, "", "out of memory");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *header(const char *head, const char *end, const char *name, size_t *vlen);

/* 1 when buf holds a whole final answer (head, then Content-Length bytes or
 * a chunked body's last chunk; no body for HEAD, 1xx, 204, 304). */
static int answer_complete(const char *buf, size_t got, int head_req)
{
    const char *r = buf;
    for (;;) {
        const char *end = strstr(r, "\r\n\r\n");
        if (!end || (size_t)(r - buf) + 12 > got) return 0;
        if (r[9] == '1') {
            r = end + 4;
            continue;
        }
        if (head_req || !strncmp(r + 9, "204", 3) || !strncmp(r + 9, "304", 3)) return 1;
        size_t vl;
        const char *cl = header(r, end, "Content-Length", &vl);
        if (cl) return (size_t)(end + 4 - buf) + strtoul(cl, NULL, 10) <= got;
        return strstr(end + 4, "\r\n0\r\n\r\n") != NULL || !strncmp(end + 4, "0\r\n\r\n", 5);
    }
}

/* 1 when req holds a whole first request: a well-formed request line, an end
 * of head, then as many body bytes as its Content-Length says or a last
 * chunk.  Otherwise the server can only refuse early (404, 413, 415, a
 * malformed head) or wait for more until its header (0.1 s) or idle (1 s)
 * timeout, so the client waits 3 ms. */
static int request_whole(const uint8_t *req, size_t n)
{
    const uint8_t *e = memmem(req, n, "\r\n\r\n", 4);
    if (!e) return 0;
    /* request line "METHOD SP target SP HTTP/1.x CRLF" (libmicrohttpd leaves
     * many garbled ones unanswered until its timeouts) */
    size_t i = 0;
    while (i < n && req[i] >= 'A' && req[i] <= 'Z') i++;
    if (!i || i >= n || req[i] != ' ') return 0;
    const uint8_t *eol = memmem(req, n, "\r\n", 2);
    if (eol - req < 10 || memcmp(eol - 9, " HTTP/1.", 8) || eol - 9 <= req + i) return 0;
    size_t hl = (size_t)(e + 4 - req);
    char *head = malloc(hl + 1);
    if (!head) return 0;
    memcpy(head, req, hl);
    head[hl] = 0;
    for (char *p = head; *p; p++) *p = (char)tolower((unsigned char)*p);
    const char *te = strstr(head, "\ntransfer-encoding:");
    const char *cl = strstr(head, "\ncontent-length:");
    int whole = te ? memmem(e + 4, n - hl, "0\r\n\r\n", 5) != NULL
                   : !cl || strtoull(cl + 16, NULL, 10) <= n - hl;
    free(head);
    return whole;
}

/* Sends req (n bytes), half-closes, reads the answer until close or 2 s.
 * libmicrohttpd keeps a kept-alive connection open after a half-close until
 * its idle timeout, so once a whole answer is in, 2 ms of silence ends the
 * read (pipelined answers arrive back to back, well within that).
 * Returns the malloc'd answer (NUL-terminated, *len bytes), or NULL when no
 * connection could be made. */
static char *exchange(const uint8_t *req, size_t n, size_t *len)
{
    int head_req = n >= 5 && !memcmp(req, "HEAD ", 5);
    int whole = request_whole(req, n);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return NULL;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return NULL;
    }
    double deadline = now_s() + 2.0;
    size_t off = 0;
    while (off < n && now_s() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 100) <= 0) continue;
        ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EINTR) break;   /* server closed early: fine */
        if (w > 0) off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    size_t cap = 4096, got = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        double left = deadline - now_s();
        if (left <= 0) break;
        buf[got] = 0;
        int wait_ms = answer_complete(buf, got, head_req) ? 2
                      : !got ? (whole ? 250 : 3)
                             : (int)(left * 1000) + 1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, wait_ms) <= 0) break;
        if (got == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + got, cap - got, 0);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf) return NULL;
    buf[got] = 0;
    *len = got;
    return buf;
}

/* Header value of the first response head in a (case-insensitive name), or NULL. */
static const char *header(const char *head, const char *end, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
        const char *h = p + 2;
        if (h + nl + 1 < end && !strncasecmp(h, name, nl) && h[nl] == ':') {
            const char *v = h + nl + 1;
            while (*v == ' ') v++;
            const char *e = strstr(v, "\r\n");
            *vlen = e ? (size_t)(e - v) : strlen(v);
            return v;
        }
    }
    return NULL;
}

/* ---- the error shape of the request's dialect (by its path) ----------------
 * The first request line's target, as sent: a /v1/ path is OpenAI's, a
 * /sdapi/ one A1111's, any other the seed API's; a target the server may read otherwise (percent
 * escapes, absolute form, no readable request line) may have either shape. */
static char req_path[256];
static int req_path_sure;

static void note_path(const uint8_t *d, size_t n)
{
    size_t i = 0, k = 0;
    while (i < n && (d[i] == '\r' || d[i] == '\n')) i++;
    while (i < n && d[i] != ' ' && d[i] != '\r' && d[i] != '\n') i++;   /* the method */
    if (i < n && d[i] == ' ') i++;
    while (i < n && k + 1 < sizeof req_path && d[i] != ' ' && d[i] != '\r' && d[i] != '\n') req_path[k++] = (char)d[i++];
    req_path[k] = 0;
    req_path_sure = req_path[0] == '/' && !strchr(req_path, '%') && k + 1 < sizeof req_path;
}

static int seed_error_ok(json_t *j)
{
    const char *st = json_string_value(json_object_get(j, "status"));
    const char *msg = json_string_value(json_object_get(j, "message"));
    return st && !strcmp(st, "error") && json_is_string(json_object_get(j, "code")) && msg && *msg;
}

static int openai_error_ok(json_t *j)
{
    json_t *e = json_object_get(j, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    json_t *param = json_object_get(e, "param"), *code = json_object_get(e, "code");
    return json_is_object(e) && msg && *msg && json_is_string(json_object_get(e, "type")) &&
           (json_is_string(param) || json_is_null(param)) && (json_is_string(code) || json_is_null(code));
}

/* A1111's (FastAPI's) shape: {"detail": MESSAGE} or {"detail": [{"loc": [...], "msg": MESSAGE}, ...]}. */
static int a1111_error_ok(json_t *j)
{
    const json_t *d = json_object_get(j, "detail");
    if (json_is_string(d)) return json_string_length(d) > 0;
    const json_t *e = json_array_get(d, 0);
    return json_is_array(json_object_get(e, "loc")) && json_string_length(json_object_get(e, "msg")) > 0;
}

static int error_shape_ok(json_t *j)
{
    if (!req_path_sure) return seed_error_ok(j) || openai_error_ok(j) || a1111_error_ok(j);
    if (!strncmp(req_path, "/v1/", 4)) return openai_error_ok(j);
    if (!strncmp(req_path, "/sdapi/", 7)) return a1111_error_ok(j) || seed_error_ok(j);
    return seed_error_ok(j);
}

/* Checks the first final (non-1xx) response in ans. */
static void check_answer(const char *ans, size_t len, int head_req)
{
    const char *r = ans;
    for (;;) {
        if ((size_t)(r - ans) + 12 > len) return;   /* no (final) answer: the server may close */
        if (strncmp(r, "HTTP/1.", 7) || !(r[7] == '0' || r[7] == '1') || r[8] != ' ' || r[9] < '1' || r[9] > '5' ||
            r[10] < '0' || r[10] > '9' || r[11] < '0' || r[11] > '9') {
            fprintf(stderr, "bad status line: %.40s\n", r);
            abort();
        }
        const char *end = strstr(r, "\r\n\r\n");
        if (!end) return;   /* cut short by our 2 s limit: nothing more to check */
        if (r[9] != '1') break;
        r = end + 4;
    }
    int status = (r[9] - '0') * 100 + (r[10] - '0') * 10 + (r[11] - '0');
    const char *end = strstr(r, "\r\n\r\n");
    size_t ctl = 0, cll = 0;
    const char *ct = header(r, end, "Content-Type", &ctl);
    const char *cl = header(r, end, "Content-Length", &cll);
    if (head_req || !ct || ctl < 16 || strncasecmp(ct, "application/json", 16) || !cl) return;
    size_t blen = strtoul(cl, NULL, 10);
    const char *body = end + 4;
    if ((size_t)(body - ans) + blen > len) return;   /* truncated by the time limit */
    json_error_t je;
    json_t *j = json_loadb(body, blen, 0, &je);
    /* (A1111's lists answer arrays: /sdapi/v1/sd-models) */
    int a1111 = !req_path_sure || strstr(req_path, "/sdapi/") != NULL;
    if (!j || !(json_is_object(j) || (a1111 && status < 400 && json_is_array(j)))) {
        fprintf(stderr, "JSON answer %d does not parse: %s: %.200s\n", status, je.text, body);
        abort();
    }
    if (status >= 400 && !error_shape_ok(j)) {
        fprintf(stderr, "error answer %d to %.80s is not its dialect's error shape: %.200s\n", status, req_path, body);
        abort();
    }
    json_decref(j);
}

static void check_health(void)
{
    static const char h[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (int attempt = 0; attempt < 3; attempt++) {
        size_t len = 0;
        char *a = exchange((const uint8_t *)h, sizeof h - 1, &len);
        int ok = a && len >= 12 && !strncmp(a, "HTTP/1.1 200", 12);
        free(a);
        if (ok) return;
        usleep(200 * 1000);   /* the connection limit may be briefly full */
    }
    fprintf(stderr, "GET /health no longer answers 200\n");
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    sd_err e;
    sd_err_clear(&e);
    jobq_config qc = {.queue_size = 8, .job_timeout = 5, .retention = 5, .max_retained = 64};
    jobq *q = jobq_create(&qc, fake_run, NULL, &e);
    server_config sc = {.bind_addr = "127.0.0.1", .port = 0, .http_threads = 2, .max_connections = 256,
                        .conn_timeout = 1, .header_timeout = 0.1, .max_body = 256 * 1024, .sync_wait = 2,
                        .retention = 5, .model_name = "fake", .model_family = "sd1", .model_hash = "0000000000",
                        .version = "fuzz", .access_log = 0, .metrics_open = 1};
    http_server *s = q ? http_server_start(&sc, q, &e) : NULL;
    if (!s) {
        fprintf(stderr, "fuzz_http: cannot start the server: %s\n", e.msg);
        abort();
    }
    port = http_server_port(s);
    return 0;   /* the server lives until the process exits */
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static unsigned count;
    size_t len = 0;
    note_path(d, n);
    char *a = exchange(d, n, &len);
    if (a) check_answer(a, len, n >= 5 && !memcmp(d, "HEAD ", 5));
    free(a);
    if (++count % 16 == 0) check_health();
    return 0;
}
