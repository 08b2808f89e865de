/* test_webui_accept.c — the web page's two pure helpers (src/http/webui.c):
 * which Accept headers are a browser's (GET / then redirects to /ui/; every
 * other client keeps the JSON), and the image origins added to the page's
 * Content-Security-Policy (only well-formed http(s) origins, each once, never
 * past the buffer). */
#include <stdio.h>
#include <string.h>

#include "t.h"
#include "../../src/http/server_int.h"

static void accept_cases(void)
{
    static const struct { const char *accept; int html; } cases[] = {
        {"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,"
         "application/signed-exchange;v=b3;q=0.7", 1},                             /* Chromium */
        {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", 1},     /* Firefox */
        {"TEXT/HTML", 1},
        {"  text/html  ", 1},
        {",,text/html,,", 1},
        {"text/html;level=1;q=0.5", 1},
        {"text/html; q=0.001", 1},
        {"application/json;q=0, text/html", 1},   /* JSON refused outright: the page */
        {"*/*", 0},                               /* curl, fetch, most HTTP libraries */
        {"", 0},
        {NULL, 0},                                /* no Accept at all */
        {"application/json", 0},
        {"text/html, application/json", 0},       /* a client that takes JSON gets JSON */
        {"application/json;q=0.1, text/html", 0},
        {"text/html;q=0", 0},
        {"text/html; Q=0.0", 0},
        {"text/html;q=", 0},
        {"text/htmlx", 0},
        {"xtext/html", 0},
        {"text/plain", 0},
        {";;;,,,;q=;", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[300];
        snprintf(name, sizeof name, "Accept '%.60s%s' -> %s", cases[i].accept ? cases[i].accept : "(none)",
                 cases[i].accept && strlen(cases[i].accept) > 60 ? "..." : "", cases[i].html ? "the page" : "JSON");
        int got = webui_accept_html(cases[i].accept);
        CHECKF(got == cases[i].html, name, "got %d", got);
    }
}

static void origin_cases(void)
{
    static const struct { const char *url, *added; } cases[] = {
        {"http://127.0.0.1:8080", " http://127.0.0.1:8080"},
        {"https://cdn.example.com/imgs/0123.png?X-Amz-Signature=ab", " https://cdn.example.com"},
        {"http://[::1]:9000/bucket/k.png", " http://[::1]:9000"},
        {"http://sd.example#frag", " http://sd.example"},
        {"ftp://files.example/x", ""},
        {"http://", ""},
        {"https:///path", ""},
        {"http://a;b.example/x", ""},
        {"http://a b/x", ""},
        {"http://a,b/x", ""},
        {"http://user@host/x", ""},
        {"javascript:alert(1)", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char csp[256] = "img-src 'self'";
        webui_csp_add_origin(csp, sizeof csp, cases[i].url);
        char want[256], name[300];
        snprintf(want, sizeof want, "img-src 'self'%s", cases[i].added);
        snprintf(name, sizeof name, "CSP origin of '%s': '%s'", cases[i].url, cases[i].added);
        CHECKF(!strcmp(csp, want), name, "got '%s'", csp);
    }
    char csp[256] = "img-src 'self'";
    webui_csp_add_origin(csp, sizeof csp, "https://sd.example.com/a");
    webui_csp_add_origin(csp, sizeof csp, "https://sd.example/b");
    webui_csp_add_origin(csp, sizeof csp, "https://sd.example.com/c");
    webui_csp_add_origin(csp, sizeof csp, "https://sd.example");
    CHECKF(!strcmp(csp, "img-src 'self' https://sd.example.com https://sd.example"),
           "each origin once, a prefix of another still added", "got '%s'", csp);
    char small[24] = "img-src 'self'";
    webui_csp_add_origin(small, sizeof small, "https://long.example.com/x");
    CHECKF(!strcmp(small, "img-src 'self'"), "an origin that does not fit is left out", "got '%s'", small);
}

int main(void)
{
    accept_cases();
    origin_cases();
    return t_done();
}
