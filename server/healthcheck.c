/* healthcheck.c — see healthcheck.h. */
#include "healthcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"

#define HC_TIMEOUT_MS 5000

/* http://HOST[:PORT][/PATH] with HOST a name, an IPv4 address or [IPv6]. */
static int parse_url(const char *url, char *host, size_t hn, char *port, size_t pn, char *path, size_t qn)
{
    if (strncmp(url, "http://", 7) != 0)
        return -1;
    const char *h = url + 7, *end = h + strcspn(h, "/"), *colon;
    if (*h == '[') {
        const char *close = memchr(h, ']', (size_t)(end - h));
        if (!close)
            return -1;
        snprintf(host, hn, "%.*s", (int)(close - h - 1), h + 1);
        colon = close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        snprintf(host, hn, "%.*s", (int)((colon ? colon : end) - h), h);
    }
    snprintf(port, pn, "%.*s", colon ? (int)(end - colon - 1) : 2, colon ? colon + 1 : "80");
    snprintf(path, qn, "%s", *end ? end : "/");
    return *host && *port ? 0 : -1;
}

static int connect_timeout(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            close(fd);
            fd = -1;
            continue;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int e = 0;
        socklen_t el = sizeof e;
        if (poll(&p, 1, HC_TIMEOUT_MS) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 || e != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Write all of buf, or read into buf until "\r\n" or full; -1 on error/timeout. */
static int io_all(int fd, char *buf, size_t n, int writing)
{
    size_t done = 0;
    while (done < n) {
        struct pollfd p = {.fd = fd, .events = writing ? POLLOUT : POLLIN};
        if (poll(&p, 1, HC_TIMEOUT_MS) != 1)
            return -1;
        ssize_t k = writing ? send(fd, buf + done, n - done, MSG_NOSIGNAL) : recv(fd, buf + done, n - done, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k <= 0)
            return writing || done == 0 ? -1 : (int)done;
        done += (size_t)k;
        if (!writing && memchr(buf, '\n', done))
            break;
    }
    return (int)done;
}

int ufd_healthcheck(const ufd_config *c)
{
    char url[1024], host[256], port[16], path[768];
    if (c->healthcheck_url)
        snprintf(url, sizeof url, "%s", c->healthcheck_url);
    else
        snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", ufd_config_listen_port(c));
    if (parse_url(url, host, sizeof host, port, sizeof port, path, sizeof path) != 0) {
        fprintf(stderr, "uflowd --healthcheck: cannot parse '%s' (expected http://HOST[:PORT]/PATH)\n", url);
        return 1;
    }
    char auth[600] = "";
    if (c->api_key_file) {
        char err[256];
        ufd_auth *a = ufd_auth_load(c->api_key_file, err, sizeof err);
        if (a && strlen(ufd_auth_first(a)) < 512)
            snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", ufd_auth_first(a));
        ufd_auth_free(a);
    }
    int fd = connect_timeout(host, port);
    if (fd < 0) {
        fprintf(stderr, "uflowd --healthcheck: cannot connect to %s:%s\n", host, port);
        return 1;
    }
    char req[2048], resp[512] = {0};
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n%s\r\n", path, host,
                     port, auth);
    int got = -1;
    if (n > 0 && n < (int)sizeof req && io_all(fd, req, (size_t)n, 1) == n)
        got = io_all(fd, resp, sizeof resp - 1, 0);
    close(fd);
    int status = 0;
    if (got <= 0 || sscanf(resp, "HTTP/%*d.%*d %d", &status) != 1) {
        fprintf(stderr, "uflowd --healthcheck: no HTTP answer from %s\n", url);
        return 1;
    }
    printf("%s: %d\n", url, status);
    return status >= 200 && status < 300 ? 0 : 1;
}
