/* s3.c — the S3-compatible storage backend (storage.h): AWS S3, Tencent COS,
 * MinIO and the like.
 *
 * Uploads are one PUT per image through libcurl, signed by libcurl's own AWS
 * Signature Version 4 (CURLOPT_AWS_SIGV4) with the payload's SHA-256 in
 * x-amz-content-sha256.  Connection errors and 5xx answers are retried with
 * exponential backoff inside a total time limit; anything else (403, 404
 * bucket, ...) fails at once.  Returned URLs are either a public base URL +
 * object name, or a SigV4 query-signed (pre-signed) GET computed here, since
 * libcurl signs requests but cannot presign.  Secrets never enter a URL
 * that is logged, an error message or a log line. */
#include "storage.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../base/sha256.h"
#include "../base/alloc.h"

#define CACHE_CONTROL "public, max-age=31536000, immutable"
#define MAX_ERROR_BODY 16384

typedef struct s3_storage {
    storage base;
    char *scheme;       /* "http" / "https" */
    char *host;         /* request host[:port] (bucket. prepended when virtual-hosted); default port dropped */
    char *base_url;     /* scheme://host[/bucket] : object URLs are base_url + "/" + object */
    char *bucket, *region, *prefix;
    char *access_key, *secret_key, *session_token;
    char *public_url;   /* without trailing '/', or NULL */
    int path_style, presign_expires, attempts;
    double timeout;
} s3_storage;

/* ---- SigV4 pieces (pre-signing) --------------------------------------------- */

void storage_s3_signing_key(const char *secret, const char *date8, const char *region, const char *service,
                            unsigned char out[32])
{
    size_t sl = strlen(secret);
    char *k = sd_malloc(sl + 5);
    unsigned char a[32], b[32];
    if (!k) {
        memset(out, 0, 32);
        return;
    }
    memcpy(k, "AWS4", 4);
    memcpy(k + 4, secret, sl + 1);
    sd_hmac_sha256(k, sl + 4, date8, strlen(date8), a);
    memset(k, 0, sl + 4);
    free(k);
    sd_hmac_sha256(a, 32, region, strlen(region), b);
    sd_hmac_sha256(b, 32, service, strlen(service), a);
    sd_hmac_sha256(a, 32, "aws4_request", 12, out);
}

/* RFC 3986 percent-encoding of everything but unreserved characters (and '/'
 * when keep_slash), as SigV4 canonical URIs and query values require. */
static size_t uri_encode(const char *s, int keep_slash, char *out, size_t cap)
{
    static const char hx[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
        if (plain) {
            if (n + 1 < cap) out[n] = (char)c;
            n++;
        } else {
            if (n + 3 < cap) {
                out[n] = '%';
                out[n + 1] = hx[c >> 4];
                out[n + 2] = hx[c & 15];
            }
            n += 3;
        }
    }
    if (cap) out[n < cap ? n : cap - 1] = 0;
    return n;
}

/* A growing string; on OOM `bad` is set and appends are ignored. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int bad;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t len)
{
    if (b->bad) return;
    if (b->n + len + 1 > b->cap) {
        size_t nc = (b->n + len + 1) * 2;
        char *q = sd_realloc(b->p, nc);
        if (!q) {
            b->bad = 1;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = 0;
}
static void sb_puts(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }
static void sb_enc(sbuf *b, const char *s, int keep_slash)
{
    size_t need = uri_encode(s, keep_slash, NULL, 0);
    char *t = sd_malloc(need + 1);
    if (!t) {
        b->bad = 1;
        return;
    }
    uri_encode(s, keep_slash, t, need + 1);
    sb_add(b, t, need);
    free(t);
}

int storage_s3_presign(const storage *st, const char *object, long long now, char *out, size_t cap, sd_err *err)
{
    const s3_storage *s = (const s3_storage *)st;
    if (cap) out[0] = 0;
    time_t t = (time_t)now;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) return sd_errf(err, SD_EINTERNAL, "storage", "bad clock value %lld", now);
    char amzdate[32], date8[16], expires[16];
    strftime(amzdate, sizeof amzdate, "%Y%m%dT%H%M%SZ", &tm);
    strftime(date8, sizeof date8, "%Y%m%d", &tm);
    snprintf(expires, sizeof expires, "%d", s->presign_expires);

    /* canonical URI: the path as sent (path-style: /bucket/object) */
    sbuf uri = {0}, query = {0}, cr = {0}, sts = {0}, cred = {0};
    sb_puts(&uri, "/");
    if (s->path_style) {
        sb_enc(&uri, s->bucket, 0);
        sb_puts(&uri, "/");
    }
    sb_enc(&uri, object, 1);

    sb_puts(&cred, s->access_key);
    sb_puts(&cred, "/");
    sb_puts(&cred, date8);
    sb_puts(&cred, "/");
    sb_puts(&cred, s->region);
    sb_puts(&cred, "/s3/aws4_request");

    /* canonical query: parameters sorted by name (this order is sorted) */
    sb_puts(&query, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=");
    sb_enc(&query, cred.bad ? "" : cred.p, 0);
    sb_puts(&query, "&X-Amz-Date=");
    sb_puts(&query, amzdate);
    sb_puts(&query, "&X-Amz-Expires=");
    sb_puts(&query, expires);
    if (s->session_token) {
        sb_puts(&query, "&X-Amz-Security-Token=");
        sb_enc(&query, s->session_token, 0);
    }
    sb_puts(&query, "&X-Amz-SignedHeaders=host");

    sb_puts(&cr, "GET\n");
    sb_add(&cr, uri.p ? uri.p : "", uri.n);
    sb_puts(&cr, "\n");
    sb_add(&cr, query.p ? query.p : "", query.n);
    sb_puts(&cr, "\nhost:");
    sb_puts(&cr, s->host);
    sb_puts(&cr, "\n\nhost\nUNSIGNED-PAYLOAD");

    unsigned char h[32], key[32], sig[32];
    char hex[65], sighex[65];
    int rc = 0;
    if (uri.bad || query.bad || cr.bad || cred.bad) {
        rc = sd_errf(err, SD_ENOMEM, "storage", "out of memory");
        goto out;
    }
    sd_sha256(cr.p, cr.n, h);
    sd_hex(h, 32, hex);
    sb_puts(&sts, "AWS4-HMAC-SHA256\n");
    sb_puts(&sts, amzdate);
    sb_puts(&sts, "\n");
    sb_puts(&sts, date8);
    sb_puts(&sts, "/");
    sb_puts(&sts, s->region);
    sb_puts(&sts, "/s3/aws4_request\n");
    sb_puts(&sts, hex);
    if (sts.bad) {
        rc = sd_errf(err, SD_ENOMEM, "storage", "out of memory");
        goto out;
    }
    storage_s3_signing_key(s->secret_key, date8, s->region, "s3", key);
    sd_hmac_sha256(key, 32, sts.p, sts.n, sig);
    sd_hex(sig, 32, sighex);
    memset(key, 0, sizeof key);
    int n = snprintf(out, cap, "%s://%s%s?%s&X-Amz-Signature=%s", s->scheme, s->host, uri.p, query.p, sighex);
    if (n < 0 || (size_t)n >= cap) {
        if (cap) out[0] = 0;
        rc = sd_errf(err, SD_EINVAL, "storage", "URL buffer too small (%d bytes needed)", n + 1);
    }
out:
    free(uri.p);
    free(query.p);
    free(cr.p);
    free(sts.p);
    free(cred.p);
    return rc;
}

/* ---- upload -------------------------------------------------------------------- */

typedef struct upload {
    const uint8_t *data;
    size_t len, off;
    sbuf body;          /* the answer (error document), capped */
} upload;

static size_t read_cb(char *buf, size_t size, size_t nmemb, void *ud)
{
    upload *u = ud;
    size_t n = size * nmemb, left = u->len - u->off;
    if (n > left) n = left;
    memcpy(buf, u->data + u->off, n);
    u->off += n;
    return n;
}

static size_t write_cb(char *buf, size_t size, size_t nmemb, void *ud)
{
    upload *u = ud;
    size_t n = size * nmemb;
    if (u->body.n < MAX_ERROR_BODY) sb_add(&u->body, buf, n < MAX_ERROR_BODY - u->body.n ? n : MAX_ERROR_BODY - u->body.n);
    return n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Copies the text of <tag>...</tag> from an S3 error document (printable
 * ASCII only, so nothing odd reaches a client). */
static void xml_text(const char *doc, const char *tag, char *out, size_t cap)
{
    out[0] = 0;
    if (!doc) return;
    char open[40], close[40];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(doc, open);
    if (!a) return;
    a += strlen(open);
    const char *b = strstr(a, close);
    if (!b) return;
    size_t n = 0;
    for (; a < b && n + 1 < cap; a++) out[n++] = (*a >= 32 && *a < 127) ? *a : ' ';
    out[n] = 0;
}

static int retryable_curl(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

/* What to tell the operator about a refused request. */
static const char *hint_for(const char *code, long status)
{
    if (!strcmp(code, "InvalidAccessKeyId") || !strcmp(code, "SignatureDoesNotMatch") ||
        !strcmp(code, "InvalidToken") || !strcmp(code, "ExpiredToken") || !strcmp(code, "TokenRefreshRequired"))
        return "check the S3 credentials (access key, secret key, session token)";
    if (!strcmp(code, "NoSuchBucket")) return "check the bucket name and the endpoint";
    if (!strcmp(code, "AuthorizationHeaderMalformed") || !strcmp(code, "PermanentRedirect") ||
        !strcmp(code, "IllegalLocationConstraintException"))
        return "check the region and the endpoint";
    if (!strcmp(code, "RequestTimeTooSkewed")) return "check this machine's clock";
    if (status == 403) return "check the S3 credentials and the bucket's permissions";
    return "";
}

/* One PUT.  Returns 0 on success, 1 when worth retrying, -1 when final; fills what[] either way. */
static int put_once(const s3_storage *s, const char *url, const uint8_t *data, size_t len,
                    struct curl_slist *headers, double budget, char *what, size_t wcap)
{
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(what, wcap, "could not start an HTTP request (out of memory)");
        return -1;
    }
    upload u = {.data = data, .len = len};
    char errbuf[CURL_ERROR_SIZE] = "", sigv4[160];
    snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", s->region);
    long ms = (long)(budget * 1000);
    if (ms < 1) ms = 1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &u);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(c, CURLOPT_USERNAME, s->access_key);
    curl_easy_setopt(c, CURLOPT_PASSWORD, s->secret_key);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ms < 10000 ? ms : 10000L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    /* (removing Expect with an empty "Expect:" header breaks libcurl 7.88's
     * SigV4: the empty header is signed but not sent) */
    curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 200L);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    int rc;
    if (cc != CURLE_OK) {
        snprintf(what, wcap, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
        rc = retryable_curl(cc) ? 1 : -1;
    } else if (status >= 200 && status < 300) {
        rc = 0;
    } else {
        char code[96], msg[256];
        xml_text(u.body.p, "Code", code, sizeof code);
        xml_text(u.body.p, "Message", msg, sizeof msg);
        const char *hint = hint_for(code, status);
        snprintf(what, wcap, "HTTP %ld%s%s%s%s%s%s", status, code[0] ? " " : "", code, msg[0] ? ": " : "", msg,
                 hint[0] ? "; " : "", hint);
        rc = (status >= 500 && status <= 599) ? 1 : -1;
    }
    free(u.body.p);
    return rc;
}

static int s3_put(storage *st, const void *data, size_t len, const char *ext_in, char key[STORAGE_KEY_MAX],
                  sd_err *err)
{
    s3_storage *s = (s3_storage *)st;
    const char *ext = storage_ext_canonical(ext_in);
    char k[STORAGE_KEY_MAX], object[1100], url[2400];
    storage_key_for(data, len, k);
    snprintf(object, sizeof object, "%s%s.%s", s->prefix, k, ext);
    snprintf(url, sizeof url, "%s/%s", s->base_url, object);   /* prefix and names need no encoding */

    char hash[65], h_type[80], h_sha[100], *h_tok = NULL;
    sd_sha256_hex(data, len, 32, hash);
    snprintf(h_type, sizeof h_type, "Content-Type: %s", storage_ext_content_type(ext));
    snprintf(h_sha, sizeof h_sha, "x-amz-content-sha256: %s", hash);
    struct curl_slist *hl = NULL, *t;
    int oom = 0;
#define ADDH(x) ((t = curl_slist_append(hl, (x))) ? (void)(hl = t) : (void)(oom = 1))
    ADDH(h_type);
    ADDH("Cache-Control: " CACHE_CONTROL);
    ADDH(h_sha);
    if (s->session_token) {
        size_t n = strlen(s->session_token) + 32;
        h_tok = sd_malloc(n);
        if (h_tok) {
            snprintf(h_tok, n, "x-amz-security-token: %s", s->session_token);
            ADDH(h_tok);
        } else {
            oom = 1;
        }
    }
#undef ADDH
    if (oom) {
        curl_slist_free_all(hl);
        free(h_tok);
        return sd_errf(err, SD_ENOMEM, "storage", "out of memory");
    }

    double start = now_s(), deadline = start + s->timeout, delay = 0.25;
    char what[600] = "";
    int attempt = 0, rc = 1;
    while (rc == 1 && attempt < s->attempts) {
        double left = deadline - now_s();
        if (left <= 0) break;
        attempt++;
        rc = put_once(s, url, data, len, hl, left, what, sizeof what);
        if (rc != 1 || attempt >= s->attempts) break;
        /* exponential backoff with jitter, never past the deadline */
        double d = delay * (0.5 + 0.5 * (double)rand() / RAND_MAX);
        delay = delay * 2 > 8 ? 8 : delay * 2;
        left = deadline - now_s();
        if (d >= left) {
            fprintf(stderr, "sdserve: S3 upload of %s: attempt %d failed (%s); no time left to retry\n", object,
                    attempt, what);
            break;
        }
        fprintf(stderr, "sdserve: S3 upload of %s: attempt %d failed (%s); retrying in %.2f s\n", object, attempt,
                what, d);
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        while (nanosleep(&ts, &ts) && errno == EINTR) {
        }
    }
    curl_slist_free_all(hl);
    if (h_tok) {
        memset(h_tok, 0, strlen(h_tok));
        free(h_tok);
    }
    if (rc == 0) {
        strcpy(key, k);
        return 0;
    }
    if (!what[0]) snprintf(what, sizeof what, "no time left within the %.0f s limit", s->timeout);
    fprintf(stderr, "sdserve: S3 upload of %s to bucket %s failed after %d attempt%s in %.1f s: %s\n", object,
            s->bucket, attempt, attempt == 1 ? "" : "s", now_s() - start, what);
    return sd_errf(err, SD_EUPSTREAM, "storage",
                   "the image could not be stored: S3 upload to bucket '%s' at %s://%s failed after %d attempt%s "
                   "in %.1f s: %s",
                   s->bucket, s->scheme, s->host, attempt, attempt == 1 ? "" : "s", now_s() - start, what);
}

static int s3_url(const storage *st, const char *key, const char *ext, char *out, size_t cap, sd_err *err)
{
    const s3_storage *s = (const s3_storage *)st;
    if (!ext[0])
        return sd_errf(err, SD_EINVAL, "storage", "S3 object names need their extension ('%s.png')", key);
    char object[1100];
    snprintf(object, sizeof object, "%s%s.%s", s->prefix, key, ext);
    if (!s->public_url) return storage_s3_presign(st, object, (long long)time(NULL), out, cap, err);
    int n = snprintf(out, cap, "%s/%s", s->public_url, object);
    if (n < 0 || (size_t)n >= cap) {
        if (cap) out[0] = 0;
        return sd_errf(err, SD_EINVAL, "storage", "URL buffer too small (%d bytes needed)", n + 1);
    }
    return 0;
}

static void wipe_free(char *p)
{
    if (p) memset(p, 0, strlen(p));
    free(p);
}

static void s3_close(storage *st)
{
    s3_storage *s = (s3_storage *)st;
    free(s->scheme);
    free(s->host);
    free(s->base_url);
    free(s->bucket);
    free(s->region);
    free(s->prefix);
    wipe_free(s->access_key);
    wipe_free(s->secret_key);
    wipe_free(s->session_token);
    free(s->public_url);
    free(s);
    curl_global_cleanup();
}

static const storage_ops s3_ops = {"s3", s3_put, s3_url, NULL, s3_close};

static int chars_ok(const char *s, const char *extra)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr(extra, c)))
            return 0;
    }
    return 1;
}

static char *dup_or_null(const char *s) { return s && *s ? sd_strdup(s) : NULL; }

storage *storage_s3_open(const storage_s3_config *c, sd_err *err)
{
    const char *ep = c->endpoint ? c->endpoint : "";
    const char *hoststart;
    char scheme[8];
    if (!strncmp(ep, "https://", 8)) strcpy(scheme, "https"), hoststart = ep + 8;
    else if (!strncmp(ep, "http://", 7)) strcpy(scheme, "http"), hoststart = ep + 7;
    else
        return sd_errf(err, SD_EINVAL, "s3-endpoint", "the S3 endpoint must start with http:// or https://, got '%.200s'", ep),
               NULL;
    /* host[:port], optionally followed by '/' and nothing else */
    size_t hl = strcspn(hoststart, "/");
    if (hoststart[hl] && strcmp(hoststart + hl, "/"))
        return sd_errf(err, SD_EINVAL, "s3-endpoint", "the S3 endpoint must be scheme://host[:port] without a path, got '%.200s'", ep),
               NULL;
    char host[300];
    if (hl == 0 || hl >= sizeof host || !chars_ok((snprintf(host, sizeof host, "%.*s", (int)hl, hoststart), host), ".-:[]_"))
        return sd_errf(err, SD_EINVAL, "s3-endpoint", "bad host in the S3 endpoint '%.200s'", ep), NULL;
    /* a default port is what clients leave out of Host: drop it so signatures match */
    size_t L = strlen(host);
    if (!strcmp(scheme, "https") && L > 4 && !strcmp(host + L - 4, ":443")) host[L - 4] = 0;
    if (!strcmp(scheme, "http") && L > 3 && !strcmp(host + L - 3, ":80")) host[L - 3] = 0;
    const char *bucket = c->bucket ? c->bucket : "";
    if (strlen(bucket) < 3 || strlen(bucket) > 63 || !chars_ok(bucket, ".-_"))
        return sd_errf(err, SD_EINVAL, "s3-bucket", "the S3 bucket name must be 3 to 63 letters, digits, '.', '-' or '_', got '%.100s'", bucket),
               NULL;
    const char *region = c->region && *c->region ? c->region : "us-east-1";
    if (!chars_ok(region, "-_") || strlen(region) > 64)
        return sd_errf(err, SD_EINVAL, "s3-region", "bad S3 region '%.100s'", region), NULL;
    const char *prefix = c->prefix ? c->prefix : "";
    if (strlen(prefix) > 512 || !chars_ok(prefix, "._/-") || prefix[0] == '/' || strstr(prefix, "//") ||
        strstr(prefix, "./") || (prefix[0] == '.' && !prefix[1]))
        return sd_errf(err, SD_EINVAL, "s3-prefix",
                       "the S3 key prefix may hold letters, digits, '.', '_', '-' and single '/' (not first), got '%.100s'",
                       prefix),
               NULL;
    if (!c->access_key || !*c->access_key || !c->secret_key || !*c->secret_key)
        return sd_errf(err, SD_EINVAL, "s3-access-key",
                       "S3 storage needs credentials: --s3-access-key and --s3-secret-key (or AWS_ACCESS_KEY_ID and "
                       "AWS_SECRET_ACCESS_KEY)"),
               NULL;
    if (strchr(c->access_key, '/') || strchr(c->access_key, ':') || strlen(c->access_key) > 128)
        return sd_errf(err, SD_EINVAL, "s3-access-key", "the S3 access key id has a '/' or ':' or is too long"), NULL;
    if (c->presign_expires < 1 || c->presign_expires > 604800)
        return sd_errf(err, SD_EINVAL, "s3-presign-expires", "pre-signed URLs may last 1 to 604800 seconds, got %d",
                       c->presign_expires),
               NULL;
    if (!(c->timeout > 0) || c->attempts < 1)
        return sd_errf(err, SD_EINVAL, "s3-timeout", "the S3 time limit and attempts must be positive"), NULL;
    const char *pub = c->public_url && *c->public_url ? c->public_url : NULL;
    if (pub && strncmp(pub, "http://", 7) && strncmp(pub, "https://", 8))
        return sd_errf(err, SD_EINVAL, "s3-public-url", "the public URL must start with http:// or https://, got '%.200s'", pub),
               NULL;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return sd_errf(err, SD_EINTERNAL, "storage", "libcurl could not be initialised"), NULL;
    s3_storage *s = sd_calloc(1, sizeof *s);
    if (!s) {
        curl_global_cleanup();
        return sd_errf(err, SD_ENOMEM, "storage", "out of memory"), NULL;
    }
    s->base.ops = &s3_ops;
    s->scheme = sd_strdup(scheme);
    size_t hn = strlen(host) + strlen(bucket) + 2;
    s->host = sd_malloc(hn);
    if (s->host) {
        if (c->path_style) snprintf(s->host, hn, "%s", host);
        else snprintf(s->host, hn, "%s.%s", bucket, host);
    }
    size_t bn = hn + strlen(scheme) + 8;
    s->base_url = sd_malloc(bn);
    if (s->base_url && s->host) {
        if (c->path_style) snprintf(s->base_url, bn, "%s://%s/%s", scheme, s->host, bucket);
        else snprintf(s->base_url, bn, "%s://%s", scheme, s->host);
    }
    s->bucket = sd_strdup(bucket);
    s->region = sd_strdup(region);
    s->prefix = sd_strdup(prefix);
    s->access_key = sd_strdup(c->access_key);
    s->secret_key = sd_strdup(c->secret_key);
    s->session_token = dup_or_null(c->session_token);
    s->public_url = dup_or_null(pub);
    if (s->public_url) {
        size_t n = strlen(s->public_url);
        while (n > 0 && s->public_url[n - 1] == '/') s->public_url[--n] = 0;
    }
    s->path_style = c->path_style != 0;
    s->presign_expires = c->presign_expires;
    s->attempts = c->attempts;
    s->timeout = c->timeout;
    if (!s->scheme || !s->host || !s->base_url || !s->bucket || !s->region || !s->prefix || !s->access_key ||
        !s->secret_key || (c->session_token && *c->session_token && !s->session_token) || (pub && !s->public_url)) {
        s3_close(&s->base);
        return sd_errf(err, SD_ENOMEM, "storage", "out of memory"), NULL;
    }
    return &s->base;
}
