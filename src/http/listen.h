/* listen.h — the server's listening socket, opened before anything slow:
 * `sdserve serve` binds first (a port in use fails at once, before a
 * multi-GB model load), learns the port chosen for --port 0 (the public URL
 * and the storage need it), then hands the socket to http_server_start. */
#ifndef SD_HTTP_LISTEN_H
#define SD_HTTP_LISTEN_H

#include "../base/err.h"

/* A bound, listening, non-blocking TCP socket on bind_addr (an IPv4 or IPv6
 * literal; NULL or "" = 0.0.0.0) and port (0 = any free port).  Returns
 * the descriptor (always >= 3, close-on-exec) and the port bound in
 * *bound_port (may be NULL), or -1 with err naming --bind or --port. */
int http_listen(const char *bind_addr, int port, int *bound_port, sd_err *err);

/* 1 when bind_addr (as http_listen takes it) listens only on loopback. */
int http_bind_is_loopback(const char *bind_addr);

#endif
