/* test_body_cap.c — the global cap on buffered request bodies
 * (server_config.max_buffered, --max-buffered-mb) in process, over raw
 * sockets and a fake instant runner: a declared body larger than what the
 * cap leaves gets 503 + Retry-After before it is sent; chunked form and
 * multipart bodies that reach the cap while arriving are dropped and get the
 * same 503 when they end; the bytes a request held are released when it ends
 * (a held upload that is abandoned gives its share back); requests within
 * the cap are served.  Runs in the sanitizer tier too (the drop and release
 * paths under ASan/LSan); the RSS side is tests/http/test_stalled_upload.sh. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "t.h"
#include "../../src/http/server.h"

#define CAP (256 * 1024)

static int port;

static int fake_run(void *ud, const sd_request *in, sd_progress_fn progress, void *pud, job_result **result,
                    sd_err *err)
{
    (void)ud;
    (void)progress;
    (void)pud;
    (void)in;
    *result = job_result_new(0);
    return *result ? 0 : sd_errf(err, SD_ENOMEM, "", "out of memory");
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Reads an answer until the server closes (Connection: close) or 5 s pass:
 * its status, whether it has Retry-After, and its body's "field". */
typedef struct { int status, retry_after; char field[32], msg[200]; } answer;

static answer read_answer(int fd)
{
    answer a = {0};
    char buf[8192];
    size_t n = 0;
    ssize_t k;
    while (n + 1 < sizeof buf && (k = recv(fd, buf + n, sizeof buf - 1 - n, 0)) > 0) n += (size_t)k;
    buf[n] = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &a.status) != 1) return a;
    a.retry_after = strcasestr(buf, "\r\nRetry-After: 5\r\n") != NULL;
    const char *body = strstr(buf, "\r\n\r\n");
    json_t *j = body ? json_loads(body + 4, 0, NULL) : NULL;
    json_t *f = json_object_get(j, "field");
    snprintf(a.field, sizeof a.field, "%s", json_is_null(f) ? "null" : json_is_string(f) ? json_string_value(f) : "-");
    snprintf(a.msg, sizeof a.msg, "%s", json_string_value(json_object_get(j, "message")) ? json_string_value(json_object_get(j, "message")) : "");
    json_decref(j);
    return a;
}

/* POST /txt2img head; content_length < 0: chunked. */
static int post_head(const char *ctype, long content_length)
{
    int fd = dial();
    if (fd < 0) return -1;
    char h[512];
    if (content_length >= 0)
        snprintf(h, sizeof h, "POST /txt2img HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: %s\r\n"
                 "Content-Length: %ld\r\n\r\n", ctype, content_length);
    else
        snprintf(h, sizeof h, "POST /txt2img HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: %s\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n", ctype);
    if (send_all(fd, h, strlen(h))) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One chunk of a chunked body (n = 0: the last). */
static int send_chunk(int fd, const char *p, size_t n)
{
    char h[32];
    snprintf(h, sizeof h, "%zx\r\n", n);
    return send_all(fd, h, strlen(h)) || send_all(fd, p, n) || send_all(fd, "\r\n", 2);
}

/* A whole body sent chunked in 16 KiB pieces: form "prompt=aaa..." or one multipart field. */
static answer chunked_body(int multipart, size_t size)
{
    answer a = {0};
    int fd = post_head(multipart ? "multipart/form-data; boundary=XyZ" : "application/x-www-form-urlencoded", -1);
    if (fd < 0) return a;
    char *fill = malloc(16384);
    memset(fill, 'a', 16384);
    const char *head = multipart ? "--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n" : "prompt=";
    int bad = send_chunk(fd, head, strlen(head));
    for (size_t sent = 0; !bad && sent < size; sent += 16384) bad = send_chunk(fd, fill, 16384);
    if (!bad && multipart) bad = send_chunk(fd, "\r\n--XyZ--\r\n", 11);
    if (!bad) send_chunk(fd, "", 0);
    free(fill);
    a = read_answer(fd);
    close(fd);
    return a;
}

/* A form body of `size` bytes whose only field is unknown: 400 widht when it got through. */
static answer whole_body(size_t size)
{
    answer a = {0};
    int fd = post_head("application/x-www-form-urlencoded", (long)size);
    if (fd < 0) return a;
    char *b = malloc(size);
    memcpy(b, "widht=", 6);
    memset(b + 6, 'a', size - 6);
    if (!send_all(fd, b, size)) a = read_answer(fd);
    free(b);
    close(fd);
    return a;
}

static int is_busy(answer a) { return a.status == 503 && a.retry_after && !strcmp(a.field, "null") && strstr(a.msg, "--max-buffered-mb"); }

int main(void)
{
    sd_err e;
    sd_err_clear(&e);
    jobq_config qc = {.queue_size = 4, .retention = 60, .max_retained = 16};
    jobq *q = jobq_create(&qc, fake_run, NULL, &e);
    server_config sc = {.bind_addr = "127.0.0.1", .http_threads = 2, .max_connections = 64, .conn_timeout = 30,
                        .max_body = 1 << 20, .max_buffered = CAP, .sync_wait = 30, .retention = 60,
                        .model_name = "fake", .version = "test"};
    http_server *s = q ? http_server_start(&sc, q, &e) : NULL;
    CHECKF(s != NULL, "server starts", "%s", e.msg);
    if (!s) return t_done();
    port = http_server_port(s);

    /* declared larger than the cap: refused before the body */
    int fd = post_head("application/x-www-form-urlencoded", CAP + 1);
    answer a = read_answer(fd);
    close(fd);
    CHECKF(is_busy(a), "Content-Length over the cap -> 503 + Retry-After at once (field null)", "%d ra %d field %s: %s",
           a.status, a.retry_after, a.field, a.msg);

    /* chunked bodies reach the cap while arriving */
    a = chunked_body(0, CAP + 65536);
    CHECKF(is_busy(a), "chunked form body past the cap -> 503 + Retry-After when it ends", "%d ra %d field %s: %s",
           a.status, a.retry_after, a.field, a.msg);
    a = chunked_body(1, CAP + 65536);
    CHECKF(is_busy(a), "chunked multipart field past the cap -> 503 + Retry-After when it ends", "%d ra %d field %s: %s",
           a.status, a.retry_after, a.field, a.msg);
    a = chunked_body(1, CAP / 2);
    CHECKF(a.status == 400 && !strcmp(a.field, "prompt"), "chunked multipart within the cap reaches validation",
           "%d %s: %s", a.status, a.field, a.msg);

    /* a held upload takes its share: a newcomer that does not fit in the rest gets 503 */
    int held = post_head("application/x-www-form-urlencoded", CAP * 3 / 4);
    char *fill = malloc(CAP);
    memset(fill, 'a', CAP);
    int sent = held >= 0 && !send_all(held, "prompt=", 7) && !send_all(held, fill, CAP / 2);
    free(fill);
    usleep(300 * 1000);   /* let the server buffer it */
    fd = post_head("application/x-www-form-urlencoded", CAP / 2 + 1);
    a = read_answer(fd);
    close(fd);
    CHECKF(sent && is_busy(a), "while half the cap is held, a body of half the cap + 1 -> 503 at once",
           "sent %d, %d ra %d: %s", sent, a.status, a.retry_after, a.msg);
    a = whole_body(CAP / 4);
    CHECKF(a.status == 400 && !strcmp(a.field, "widht"), "and a body that fits in the rest is read (400 widht)",
           "%d %s: %s", a.status, a.field, a.msg);

    /* the abandoned upload gives its bytes back */
    close(held);
    for (int i = 0; i < 50; i++) {
        a = whole_body(CAP * 3 / 4);
        if (a.status != 503) break;
        usleep(100 * 1000);
    }
    CHECKF(a.status == 400 && !strcmp(a.field, "widht"),
           "after the held upload is abandoned, a body of 3/4 of the cap is read (bytes released)", "%d %s: %s",
           a.status, a.field, a.msg);
    for (int i = 0; i < 3; i++) a = whole_body(CAP * 3 / 4);
    CHECKF(a.status == 400, "bodies read one after another each give their bytes back", "%d: %s", a.status, a.msg);

    /* and a whole request is served */
    fd = post_head("application/x-www-form-urlencoded", 8);
    send_all(fd, "prompt=x", 8);
    a = read_answer(fd);
    close(fd);
    CHECKF(a.status == 200, "a small request is served", "%d: %s", a.status, a.msg);

    http_server_stop(s);
    jobq_destroy(q, NULL);
    return t_done();
}
