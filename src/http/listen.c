/* listen.c — opens the listening socket (listen.h). */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* bind_addr -> socket address; 0, or -1 when it is not an IP literal. */
static int parse_bind(const char *bind_addr, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, bind_addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, bind_addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return 0;
    }
    return -1;
}

/* A descriptor >= 3, so that 0 can mean "none" in a zeroed server_config. */
static int above_stdio(int fd)
{
    if (fd >= 3) return fd;
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return d;
}

int http_listen(const char *bind_addr, int port, int *bound_port, sd_err *err)
{
    const char *addr = bind_addr && *bind_addr ? bind_addr : "0.0.0.0";
    struct sockaddr_storage ss;
    socklen_t len;
    if (parse_bind(addr, port, &ss, &len))
        return sd_errf(err, SD_EINVAL, "bind", "--bind '%.100s' is not an IPv4 or IPv6 address", addr);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || (fd = above_stdio(fd)) < 0)
        return sd_errf(err, SD_EIO, "port", "cannot open a socket: %s", strerror(errno));
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);   /* restart while old connections linger */
    if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 1024)) {
        int en = errno;
        close(fd);
        return sd_errf(err, SD_EIO, "port", "cannot listen on %s port %d: %s%s", addr, port, strerror(en),
                       en == EADDRINUSE ? " (another program has it: choose another --port)" : "");
    }
    if (bound_port) {
        len = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &len);
        *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return fd;
}

int http_bind_is_any(const char *bind_addr)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (!bind_addr || !*bind_addr) return 1;
    if (parse_bind(bind_addr, 0, &ss, &len)) return 0;
    if (ss.ss_family == AF_INET) return ((struct sockaddr_in *)&ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr);
}

void http_bind_url(const char *bind_addr, int port, char *out, size_t n)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int v6 = bind_addr && *bind_addr && !parse_bind(bind_addr, 0, &ss, &len) && ss.ss_family == AF_INET6;
    if (http_bind_is_any(bind_addr)) snprintf(out, n, "http://%s:%d", v6 ? "[::1]" : "127.0.0.1", port);
    else snprintf(out, n, v6 ? "http://[%s]:%d" : "http://%s:%d", bind_addr, port);
}
