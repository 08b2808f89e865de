/* listen.h — the server's listening socket, opened before anything slow:
 * `sdserve serve` binds first (a port in use fails at once, before a
 * multi-GB model load), learns the port chosen for --port 0 (the public URL
 * and the storage need it), then hands the socket to http_server_start. */
#ifndef SD_HTTP_LISTEN_H
#define SD_HTTP_LISTEN_H

#include <stddef.h>

#include "../base/err.h"

/* A bound, listening, non-blocking TCP socket on bind_addr (an IPv4 or IPv6
 * literal; NULL or "" = 0.0.0.0) and port (0 = any free port).  Returns
 * the descriptor (always >= 3, close-on-exec) and the port bound in
 * *bound_port (may be NULL), or -1 with err naming --bind or --port. */
int http_listen(const char *bind_addr, int port, int *bound_port, sd_err *err);

/* 1 when bind_addr (as http_listen takes it) is a wildcard: 0.0.0.0 or ::. */
int http_bind_is_any(const char *bind_addr);

/* "http://HOST:PORT" at which this machine reaches a socket bound to
 * bind_addr: 127.0.0.1 for 0.0.0.0, [::1] for :: (IPv6 sockets are
 * IPv6-only), else the address itself (--bind ::1 or 127.0.0.2 is not
 * reachable at 127.0.0.1). */
void http_bind_url(const char *bind_addr, int port, char *out, size_t n);

#endif
