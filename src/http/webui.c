/* webui.c — the web page at /ui/ (issue 16 item 4): its three files, built
 * into the binary (webui_blob.c), served with a strict Content-Security-
 * Policy; /ui redirects to /ui/, and GET / sends a browser (one that asks
 * for HTML and not JSON) to /ui/ while API clients keep their JSON.  The
 * page itself needs no key: it holds nothing secret, and the API calls it
 * makes carry the key the user typed (docs/SERVER.md "Web page"). */
#include "server_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern const unsigned char sd_webui_index_html[], sd_webui_app_js[], sd_webui_app_css[];
extern const uint64_t sd_webui_index_html_size, sd_webui_app_js_size, sd_webui_app_css_size;

typedef struct webui_file {
    const char *name;            /* the path after /ui/ */
    const unsigned char *data;
    const uint64_t *size;
    const char *ctype;
} webui_file;

static const webui_file files[] = {
    {"", sd_webui_index_html, &sd_webui_index_html_size, "text/html; charset=utf-8"},
    {"app.js", sd_webui_app_js, &sd_webui_app_js_size, "text/javascript; charset=utf-8"},
    {"app.css", sd_webui_app_css, &sd_webui_app_css_size, "text/css; charset=utf-8"},
};

/* 1 when the parameters of one Accept item (";level=1;q=0") say q=0. */
static int q_zero(const char *params, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (params[i] != ';') continue;
        size_t j = i + 1;
        while (j < n && (params[j] == ' ' || params[j] == '\t')) j++;
        if (j + 2 <= n && (params[j] == 'q' || params[j] == 'Q') && params[j + 1] == '=')
            return strtod(params + j + 2, NULL) <= 0;
    }
    return 0;
}

/* 1 when the comma-separated Accept list names `type` with a q above 0. */
static int accept_has(const char *accept, const char *type)
{
    size_t tn = strlen(type);
    for (const char *p = accept; *p; p += strcspn(p, ",")) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ","), m = strcspn(p, ";,");
        while (m && (p[m - 1] == ' ' || p[m - 1] == '\t')) m--;
        if (m == tn && !strncasecmp(p, type, tn) && !q_zero(p + m, n - m)) return 1;
    }
    return 0;
}

int webui_accept_html(const char *accept)
{
    return accept && accept_has(accept, "text/html") && !accept_has(accept, "application/json");
}

int webui_wants_page(struct MHD_Connection *c)
{
    return webui_accept_html(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT));
}

/* An empty answer with a Location (relative: it holds whatever host the
 * browser used). */
static enum MHD_Result redirect_to(req *r, struct MHD_Connection *c, unsigned status, const char *where)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, where);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    r->ri.status = (int)status;
    r->ri.bytes = 0;
    return rc;
}

enum MHD_Result webui_root_redirect(req *r, struct MHD_Connection *c)
{
    return redirect_to(r, c, MHD_HTTP_FOUND, "/ui/");
}

enum MHD_Result get_webui_dir(http_server *s, req *r, struct MHD_Connection *c)
{
    (void)s;
    return redirect_to(r, c, MHD_HTTP_MOVED_PERMANENTLY, "/ui/");
}

/* 1 when the space-separated list csp holds the source " origin" as a whole word. */
static int has_source(const char *csp, const char *origin, size_t len)
{
    for (const char *p = strstr(csp, origin); p; p = strstr(p + 1, origin))
        if (p[len] == ' ' || p[len] == 0) return 1;
    return 0;
}

void webui_csp_add_origin(char *csp, size_t cap, const char *url)
{
    const char *sep = strstr(url, "://");
    if (!sep || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) return;
    const char *host = sep + 3;
    size_t n = strcspn(host, "/?#");
    if (!n || strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") < n) return;
    char origin[300];
    int len = snprintf(origin, sizeof origin, " %.*s%.*s", (int)(host - url), url, (int)n, host);
    if (len < 0 || (size_t)len >= sizeof origin || has_source(csp, origin, (size_t)len)) return;
    size_t used = strlen(csp);
    if (used + (size_t)len < cap) memcpy(csp + used, origin, (size_t)len + 1);
}

/* The page's policy: everything from this server only; images also from
 * the public URL's origin and the storage's (an S3 bucket), where the
 * images' URLs point; data: for the favicon. */
static void webui_csp(http_server *s, char *csp, size_t cap)
{
    snprintf(csp, cap, "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                       "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
                       "img-src 'self' data:");
    if (s->public_url) webui_csp_add_origin(csp, cap, s->public_url);
    storage *st = atomic_load(&s->store);
    char url[2048];
    sd_err e;
    sd_err_clear(&e);
    if (st && !storage_url(st, "00000000000000000000000000000000.png", url, sizeof url, &e))
        webui_csp_add_origin(csp, cap, url);
}

enum MHD_Result get_webui(http_server *s, req *r, struct MHD_Connection *c)
{
    const char *name = r->url + strlen("/ui/");
    const webui_file *f = NULL;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (!strcmp(name, files[i].name)) f = &files[i];
    if (!f) return reply_errorf(c, &r->ri, SD_ENOTFOUND, "", "no such page '%.80s'; the web page is /ui/", r->url);
    struct MHD_Response *resp = MHD_create_response_from_buffer((size_t)*f->size, (void *)f->data,
                                                                MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    char csp[1024];
    webui_csp(s, csp, sizeof csp);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, f->ctype);
    MHD_add_response_header(resp, "Content-Security-Policy", csp);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    r->ri.status = MHD_HTTP_OK;
    r->ri.bytes = *f->size;
    return rc;
}
