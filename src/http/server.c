/* server.c — the HTTP server's transport (server.h; its other files are
 * listed in server_int.h): the libmicrohttpd daemon, connections, the
 * access handler and the watcher.
 *
 * libmicrohttpd calls handle() several times per request: the first call
 * looks the route up (once: routes.c), runs the auth/rate gate and
 * dispatches — a request without a body on the next call, so keep-alive
 * survives; a generation route checks method, Content-Type and
 * Content-Length (415/413 before any body is read; body.c); upload calls
 * feed the body; the last call validates it and calls the route's handler.
 * A synchronous request then suspends its connection (server_wait); the
 * watcher thread resumes it when the job ends, when the client hangs up (the
 * job is cancelled, so a queued one leaves the queue) or when the wait limit
 * passes, and the route's resume handler answers.  completed() frees the
 * request state, counts it and writes the access log.
 * Slow clients: libmicrohttpd's connection timeout counts inactivity, so a
 * client sending its headers a byte at a time would hold a connection
 * forever; every connection therefore carries a conn_state (socket context)
 * and the watcher shuts down those that have not delivered a request's
 * headers within header_timeout.
 * Transport checks before routing: the raw target (URI log callback) so a
 * %00 in a path is 404 rather than the path before it; absolute-form targets
 * routed by their path; ambiguous body framing (two Content-Lengths, or one
 * beside Transfer-Encoding) 400 at once.
 * An early refusal (4xx) of a request whose body is on its way (401, 404,
 * 405, 415, 429...: decided from the headers) is held until the body has been
 * read and discarded (PH_DRAIN), then sent: answered at once, the
 * connection would be closed with the body unread and the client, still
 * sending, would see a reset instead of the answer (the openai SDK: a
 * connection error for a wrong key).  The 413 of a body declared over
 * --max-body-mb too, up to DRAIN_FACTOR times it (a phone photo sent to an
 * edit should learn the limit, not see "Connection error").  Not with
 * Expect: 100-continue (the client waits for the answer before sending),
 * nor for a body declared over that; a chunked body is drained up to it,
 * then answered and the connection closed.  A 503 (the
 * buffered-bodies cap, loading, shutting down) still goes at once: the
 * point there is not to take the body. */
#include "server_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "listen.h"
#include "metrics.h"
#include "openapi.h"

/* One per TCP connection (libmicrohttpd socket context): the header deadline. */
struct conn_state {
    int fd;                  /* our dup of the socket: shutdown() on it can never hit a reused number */
    double since;            /* connected, or previous request finished */
    int busy, shut;          /* a request's headers arrived / already shut down */
    struct conn_state *prev, *next;
};

double http_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- synchronous waits ---------------------------------------------------------- */

enum MHD_Result server_wait(http_server *s, req *r, struct MHD_Connection *c)
{
    /* wait with the connection suspended (no HTTP thread blocks) */
    pthread_mutex_lock(&s->wmu);
    r->phase = PH_WAIT;
    r->deadline = http_now() + s->cfg.sync_wait;
    r->wnext = s->waiters;
    s->waiters = r;
    s->nwaiters++;
    MHD_suspend_connection(c);
    pthread_mutex_unlock(&s->wmu);
    return MHD_YES;
}

static void client_ip(struct MHD_Connection *c, char *buf, size_t n)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(buf, n, "-");
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)n);
    else if (sa->sa_family == AF_INET6) inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)n);
}

/* ---- connections: header deadline ------------------------------------------------ */

static conn_state *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* busy = 1: a request's headers arrived; 0: it finished, the next one's clock starts. */
static void conn_mark(http_server *s, struct MHD_Connection *c, int busy)
{
    pthread_mutex_lock(&s->cmu);
    conn_state *cs = conn_of(c);
    if (cs) {
        cs->busy = busy;
        cs->since = http_now();
    }
    pthread_mutex_unlock(&s->cmu);
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_ConnectionNotificationCode code)
{
    http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        if (s->cfg.header_timeout <= 0) return;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_state *cs = ci ? calloc(1, sizeof *cs) : NULL;
        if (!cs) return;   /* no deadline for this one; the idle timeout still applies */
        cs->fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
        if (cs->fd < 0) {
            free(cs);
            return;
        }
        cs->since = http_now();
        pthread_mutex_lock(&s->cmu);
        cs->next = s->conns;
        if (s->conns) s->conns->prev = cs;
        s->conns = cs;
        *ctx = cs;
        pthread_mutex_unlock(&s->cmu);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        pthread_mutex_lock(&s->cmu);
        conn_state *cs = *ctx;
        if (cs) {
            if (cs->prev) cs->prev->next = cs->next;
            else s->conns = cs->next;
            if (cs->next) cs->next->prev = cs->prev;
            *ctx = NULL;
        }
        pthread_mutex_unlock(&s->cmu);
        if (cs) {
            close(cs->fd);
            free(cs);
        }
    }
}

/* Shuts down connections past the header deadline; libmicrohttpd then sees
 * the end of the stream and closes them itself.  Returns how many. */
static int sweep_slow(http_server *s, double now)
{
    int n = 0;
    pthread_mutex_lock(&s->cmu);
    for (conn_state *cs = s->conns; cs; cs = cs->next)
        if (!cs->busy && !cs->shut && now - cs->since > s->cfg.header_timeout) {
            shutdown(cs->fd, SHUT_RDWR);
            cs->shut = 1;
            n++;
        }
    pthread_mutex_unlock(&s->cmu);
    return n;
}

/* ---- transport checks before routing ---------------------------------------- */

/* *req_cls of a request whose raw target has "%00" in its path (uri_logged). */
static char raw_nul_mark;

/* libmicrohttpd's URI log callback: the request target before it is
 * percent-decoded (the handler gets it decoded, and a decoded NUL cuts it
 * short: GET /health%00 would be read as /health).  Its return value is the
 * request's first *req_cls: &raw_nul_mark when the path has %00, else NULL. */
static void *uri_logged(void *cls, const char *uri, struct MHD_Connection *c)
{
    size_t n = strcspn(uri, "?");
    for (size_t i = 0; i + 2 < n; i++)
        if (uri[i] == '%' && uri[i + 1] == '0' && uri[i + 2] == '0') return &raw_nul_mark;
    return NULL;
}

/* RFC 9112 §3.2.2: a server must accept a target in absolute form
 * ("http://host/path", the form proxies get): its path is the route and its
 * host is ignored, like the Host header. */
static const char *origin_form(const char *url)
{
    size_t k = !strncasecmp(url, "http://", 7) ? 7 : !strncasecmp(url, "https://", 8) ? 8 : 0;
    if (!k) return url;
    const char *p = strchr(url + k, '/');
    return p ? p : "/";
}

/* Collects the first Content-Length value and the first one that differs. */
static enum MHD_Result content_length_of(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    const char **v = cls;
    if (!key || !value || strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) return MHD_YES;
    if (!v[0]) v[0] = value;
    else if (!v[1] && strcmp(v[0], value)) v[1] = value;
    return MHD_YES;
}

/* Where the body ends must be unambiguous (RFC 9112 §6.1, §6.3): two
 * different Content-Length headers (libmicrohttpd reads the first and would
 * wait for a body the client never sends), Content-Length beside
 * Transfer-Encoding (libmicrohttpd goes by the latter and keeps the
 * connection, which lets a request hide in another behind a proxy), or a
 * Transfer-Encoding other than chunked (gzip alone: the body would end only
 * when the client closes, so libmicrohttpd waited for the idle timeout; a
 * coding before chunked we cannot decode).  All get 400 at once, which also
 * closes the connection.  1 when answered. */
static int ambiguous_length(req *r, struct MHD_Connection *c, enum MHD_Result *res)
{
    const char *v[2] = {NULL, NULL};
    MHD_get_connection_values(c, MHD_HEADER_KIND, content_length_of, v);
    if (v[1]) {
        *res = reply_errorf(c, &r->ri, SD_EINVAL, "Content-Length",
                            "the request has Content-Length headers with different values ('%.24s' and '%.24s'); "
                            "send one", v[0], v[1]);
        return 1;
    }
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (v[0] && te) {
        *res = reply_errorf(c, &r->ri, SD_EINVAL, "Content-Length",
                            "the request has both Content-Length and Transfer-Encoding; send one");
        return 1;
    }
    if (te && strcasecmp(te, "chunked")) {   /* (libmicrohttpd's test: "chunked " with a blank is not) */
        *res = reply_errorf(c, &r->ri, SD_EINVAL, "Transfer-Encoding",
                            "Transfer-Encoding '%.40s' is not supported: send the body with Content-Length or "
                            "Transfer-Encoding: chunked", te);
        return 1;
    }
    return 0;
}

/* The most body read and discarded before a held refusal is sent, in
 * multiples of --max-body-mb (the file's comment). */
#define DRAIN_FACTOR 4

static size_t drain_max(const http_server *s)
{
    return s->cfg.max_body > SIZE_MAX / DRAIN_FACTOR ? SIZE_MAX : s->cfg.max_body * DRAIN_FACTOR;
}

/* 1 when an early refusal may wait for the body (the file's comment). */
static int may_hold(http_server *s, struct MHD_Connection *c)
{
    if (atomic_load(&s->shutting_down)) return 0;
    const char *ex = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    if (ex && !strcasecmp(ex, "100-continue")) return 0;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl) return MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    return !errno && !*end && n > 0 && n <= drain_max(s);
}

/* Sends the held refusal (reply_info.held). */
static enum MHD_Result send_held(req *r, struct MHD_Connection *c)
{
    struct MHD_Response *resp = r->ri.held;
    r->ri.held = NULL;
    r->phase = PH_DONE;
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)r->ri.held_status, resp);
    MHD_destroy_response(resp);
    r->ri.status = r->ri.held_status;
    r->ri.bytes = r->ri.held_bytes;
    return rc;
}

/* The route, looked up once, then the gate and the route's own checks. */
static enum MHD_Result route_request(http_server *s, req *r, struct MHD_Connection *c)
{
    enum MHD_Result res;
    r->rt = route_find(r->url);
    r->ri.dl = route_dialect(r->rt);   /* errors from here on in the route's dialect */
    r->bag.max_fields = r->ri.dl->max_fields;
    if (route_gate(s, r, c, &res)) return res;
    return route_dispatch(s, r, c);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_size, void **req_cls)
{
    http_server *s = cls;
    int raw_nul = *req_cls == (void *)&raw_nul_mark;
    req *r = raw_nul ? NULL : *req_cls;
    url = origin_form(url);
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        *req_cls = r;
        r->raw_nul = raw_nul;
        atomic_fetch_add(&s->inflight, 1);
        r->s = s;
        r->conn = c;
        r->t0 = http_now();
        r->url = url;
        r->verb = method;
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        client_ip(c, r->ip, sizeof r->ip);
        params_bag_init(&r->bag);
        conn_mark(s, c, 1);
        enum MHD_Result res;
        r->ri.dl = route_dialect(route_find(url));   /* (this refusal too, in the path's dialect) */
        if (ambiguous_length(r, c, &res)) return res;
        /* A request that sends no body is answered on the next call:
         * libmicrohttpd closes the connection after a response queued on
         * the first call (it cannot tell whether a body follows), which
         * would end keep-alive for every GET. */
        if (strcmp(method, "POST") && strcmp(method, "PUT") && strcmp(method, "PATCH")) {
            r->phase = PH_NOBODY;
            return MHD_YES;
        }
        r->ri.hold = may_hold(s, c);
        res = route_request(s, r, c);
        r->ri.hold = 0;
        if (r->ri.held) r->phase = PH_DRAIN;   /* refused: answered once the body is in */
        return res;
    }
    r->url = url;
    if (r->phase == PH_DRAIN) {
        if (*upload_size) {   /* discarded; past drain_max the answer goes now and the connection closes */
            r->received += *upload_size;
            *upload_size = 0;
            if (r->received <= drain_max(s)) return MHD_YES;
        }
        return send_held(r, c);
    }
    if (r->phase == PH_NOBODY) {
        if (*upload_size) {   /* a body nobody asked for: dropped */
            *upload_size = 0;
            return MHD_YES;
        }
        r->phase = 0;
        return route_request(s, r, c);
    }
    if (r->phase == PH_BODY) {
        if (*upload_size) {
            body_feed(s, r, upload_data, *upload_size);
            *upload_size = 0;
            return MHD_YES;
        }
        body_finish(s, r);
        enum MHD_Result res = r->rt->answer(s, r, c);
        body_release(s, r);   /* its buffers are freed by now */
        return res;
    }
    if (r->phase == PH_WAIT) return r->rt->resume(s, r, c);
    if (*upload_size) {   /* a body we already answered: drop it */
        *upload_size = 0;
        return MHD_YES;
    }
    return MHD_YES;
}

static void completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    if (*req_cls == (void *)&raw_nul_mark) *req_cls = NULL;   /* the handler never ran */
    req *r = *req_cls;
    if (!r) return;
    *req_cls = NULL;
    conn_mark(s, c, 0);
    atomic_fetch_sub(&s->inflight, 1);
    if (r->ri.held) MHD_destroy_response(r->ri.held);   /* the client left before its body ended */
    int status = r->ri.status ? r->ri.status : 499;   /* 499: client went away before an answer */
    metrics_count_request(route_endpoint(r->rt), status);
    if (s->cfg.access_log) {
        char ts[32];
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        char path[200];
        size_t k = 0;
        for (const char *p = r->path; *p && k + 1 < sizeof path; p++)
            path[k++] = (*p > 0x20 && *p < 0x7f && *p != '"') ? *p : '?';
        path[k] = 0;
        fprintf(stdout, "%s %s \"%s %s\" %d %llu %.0fms%s\n", ts, r->ip, r->method, path, status,
                (unsigned long long)r->ri.bytes, (http_now() - r->t0) * 1000,
                r->gone ? " client-gone" : toe != MHD_REQUEST_TERMINATED_COMPLETED_OK ? " aborted" : "");
        fflush(stdout);
    }
    if (r->ri.dl && r->ri.dl->req_done) r->ri.dl->req_done(s, r);
    body_free(s, r);
    if (r->job) {
        /* A synchronous job nobody will read: stop it. */
        if (!r->async) jobs_cancel(s->q, r->job, "the client disconnected");
        jobs_release(s->q, r->job);
    }
    free(r);
}

/* ---- watcher: wakes suspended synchronous requests --------------------------- */

static int client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

static void *watcher_main(void *arg)
{
    http_server *s = arg;
    unsigned gen = 0;
    while (!atomic_load(&s->stop)) {
        jobs_wait_change(s->q, &gen, 200);
        double now = http_now();
        if (s->cfg.header_timeout > 0) sweep_slow(s, now);
        pthread_mutex_lock(&s->wmu);
        req **pp = &s->waiters;
        while (*pp) {
            req *r = *pp;
            int wake = job_finished(jobs_state(s->q, r->job));
            if (!wake && atomic_load(&s->shutting_down)) {
                r->shutdown = wake = 1;   /* its job was cancelled by jobs_shutdown */
            } else if (!wake && client_gone(r->conn)) {
                jobs_cancel(s->q, r->job, "the client disconnected");
                r->gone = wake = 1;
            } else if (!wake && now > r->deadline) {
                jobs_cancel(s->q, r->job, "the synchronous wait limit passed");
                r->wait_timeout = wake = 1;
            }
            if (wake) {
                *pp = r->wnext;
                s->nwaiters--;
                MHD_resume_connection(r->conn);
            } else {
                pp = &r->wnext;
            }
        }
        pthread_mutex_unlock(&s->wmu);
    }
    return NULL;
}

/* ---- start / stop ------------------------------------------------------------ */

http_server *http_server_start_jobs(const server_config *cfg, jobs_backend *q, sd_err *err)
{
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        sd_errf(err, SD_ENOMEM, "", "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->q = q;
    s->nlabels = route_labels(s->labels);
    if (a1111_init(s, err)) {
        free(s);
        return NULL;
    }
    atomic_store(&s->store, cfg->store);
    atomic_store(&s->loading, cfg->loading);
    pthread_mutex_init(&s->wmu, NULL);
    pthread_mutex_init(&s->cmu, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    /* our own socket (listen.h): one clear message when the port is taken, not libmicrohttpd's too */
    int port = cfg->port;
    int lfd = cfg->listen_fd > 0 ? cfg->listen_fd : http_listen(cfg->bind_addr, cfg->port, &port, err);
    if (lfd < 0) goto fail;
    s->d = MHD_start_daemon(flags | MHD_USE_EPOLL_LINUX_ONLY, (uint16_t)port, NULL, NULL, handle, s,
                            MHD_OPTION_LISTEN_SOCKET, lfd,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(cfg->http_threads > 0 ? cfg->http_threads : 4),
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->conn_timeout,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)(cfg->max_conn_per_ip > 0 ? cfg->max_conn_per_ip : 0),
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, notify_connection, s,
                            MHD_OPTION_URI_LOG_CALLBACK, uri_logged, s,
                            MHD_OPTION_END);
    if (!s->d) {
        sd_errf(err, SD_EIO, "port", "cannot start the HTTP server: %s", strerror(errno));
        goto fail;   /* (lfd is not closed here: libmicrohttpd may have done it; the process ends) */
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di && di->port ? di->port : port;
    char url[512];
    if (cfg->public_url && *cfg->public_url) snprintf(url, sizeof url, "%s", cfg->public_url);
    else snprintf(url, sizeof url, "http://127.0.0.1:%d", s->port);
    size_t ul = strlen(url);
    while (ul && url[ul - 1] == '/') url[--ul] = 0;
    s->public_url = strdup(url);
    s->openapi = openapi_document(s->public_url, cfg->version);
    if (!s->public_url || !s->openapi) {
        sd_errf(err, SD_ENOMEM, "", "out of memory");
        goto fail;
    }
    if (pthread_create(&s->watcher, NULL, watcher_main, s)) {
        sd_errf(err, SD_EINTERNAL, "", "cannot start the watcher thread");
        goto fail;
    }
    return s;
fail:
    if (s->d) MHD_stop_daemon(s->d);
    free(s->public_url);
    free(s->openapi);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->cmu);
    a1111_free(s);
    free(s);
    return NULL;
}

http_server *http_server_start(const server_config *cfg, jobq *q, sd_err *err)
{
    jobs_backend *b = jobs_inproc_wrap(q, err);
    http_server *s = b ? http_server_start_jobs(cfg, b, err) : NULL;
    if (!s) jobs_close(b);
    else s->own_jobs = b;
    return s;
}

int http_server_port(const http_server *s) { return s->port; }
void http_server_set_storage(http_server *s, storage *st) { atomic_store(&s->store, st); }

void http_server_model_ready(http_server *s, const char *name, const char *family, const char *hash)
{
    s->cfg.model_name = name;
    s->cfg.model_family = family;
    s->cfg.model_hash = hash;
    atomic_store(&s->loading, 0);   /* publishes the fields above to the HTTP threads */
}
const char *http_server_public_url(const http_server *s) { return s->public_url; }
void http_server_model_vae(http_server *s, const char *vae) { s->cfg.model_vae = vae; }

void http_server_stop(http_server *s)
{
    if (!s) return;
    /* From here new requests are refused with 503 (body_start, /health);
     * running connections continue.  No MHD_quiesce_daemon: in 0.9.75 its
     * removal of the listen socket from a worker's epoll set races with the
     * worker doing the same and then aborts the process ("Failed to remove
     * listen FD from epoll set", seen in test_alloc_fail's start/stop
     * cycles); MHD_stop_daemon below closes the socket. */
    atomic_store(&s->shutting_down, 1);
    jobs_shutdown(s->q, "the server is shutting down");
    /* Every waiting client gets its answer (its job is now cancelled or done). */
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&s->wmu);
        int n = s->nwaiters;
        pthread_mutex_unlock(&s->wmu);
        if (!n) break;
        usleep(50000);
    }
    /* Let resumed connections send their answers (completed() counts them
     * down); a client still uploading a body is not waited for long. */
    for (int i = 0; i < 200 && atomic_load(&s->inflight) > 0; i++) usleep(10000);
    atomic_store(&s->stop, 1);
    pthread_join(s->watcher, NULL);
    MHD_stop_daemon(s->d);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->cmu);
    jobs_close(s->own_jobs);
    a1111_free(s);
    free(s->public_url);
    free(s->openapi);
    free(s);
}
