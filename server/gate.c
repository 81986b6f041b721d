/* gate.c — see gate.h. One thread, one epoll set (edge-triggered: a peek leaves the bytes
 * in the socket, so only new data may wake us). Slots hold connections in the gate, either
 * reading their head or lingering after an answer; counts per client address cover the
 * request phase too and are guarded by one mutex (libmicrohttpd's threads report closes). */
#include "gate.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "reply.h"
#include "util.h"

#define LINGER_SLOTS 64
#define LINGER_SECONDS 2.0
#define EV_LISTEN UINT32_MAX
#define EV_WAKE (UINT32_MAX - 1)

typedef struct ipkey {
    unsigned char a[16];
} ipkey;

typedef struct ipcount {
    ipkey k;
    int n;
} ipcount;

enum { C_FREE = 0, C_HEAD, C_LINGER };

typedef struct gconn {
    int fd, state;
    double t_accept, deadline;
    struct sockaddr_storage addr;
    socklen_t alen;
    ipkey ip;
} gconn;

struct ufd_gate {
    ufd_gate_opts o;
    int lfd, ep, wake;
    pthread_t th;
    int started;
    pthread_mutex_t mu;            /* ips, n_head, n_req */
    ipcount *ips;
    int n_ips, n_head, n_req;
    gconn *c;                      /* slots (gate thread only) */
    int cap;
    char *peek;
    _Atomic int stop, quiesce;
};

static ipkey key_of(const struct sockaddr *a)
{
    ipkey k = {{0}};
    if (a->sa_family == AF_INET) { /* as ::ffff:a.b.c.d, like a v4-mapped IPv6 peer */
        k.a[10] = k.a[11] = 0xff;
        memcpy(k.a + 12, &((const struct sockaddr_in *)a)->sin_addr, 4);
    } else if (a->sa_family == AF_INET6) {
        memcpy(k.a, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
    }
    return k;
}

/* Connections from k (mu held); add (+1/-1) adjusts first. */
static int ip_count(ufd_gate *g, ipkey k, int add)
{
    for (int i = 0; i < g->n_ips; i++)
        if (!memcmp(g->ips[i].k.a, k.a, 16)) {
            g->ips[i].n += add;
            int n = g->ips[i].n;
            if (n <= 0)
                g->ips[i] = g->ips[--g->n_ips];
            return n;
        }
    if (add > 0 && g->n_ips < 2 * g->cap) {
        g->ips[g->n_ips].k = k;
        g->ips[g->n_ips++].n = add;
        return add;
    }
    return 0;
}

static void gauges(ufd_gate *g)
{
    if (g->o.conns_head)
        atomic_store(g->o.conns_head, g->n_head);
    if (g->o.conns_open)
        atomic_store(g->o.conns_open, g->n_head + g->n_req);
}

static const char *reason(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

static void close_slot(ufd_gate *g, gconn *c)
{
    if (c->state == C_HEAD) {
        pthread_mutex_lock(&g->mu);
        ip_count(g, c->ip, -1);
        g->n_head--;
        gauges(g);
        pthread_mutex_unlock(&g->mu);
    }
    epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = C_FREE;
    c->fd = -1;
}

/* Answer e on the connection of slot c (a head may be NULL) and linger. */
static void answer(ufd_gate *g, gconn *c, const ufd_head *h, ufd_err e, const char *msg)
{
    ufd_endpoint ep = UFD_EP_UNKNOWN;
    char rid[UFD_REQUEST_ID_MAX];
    if (h && h->request_id[0])
        snprintf(rid, sizeof rid, "%s", h->request_id);
    else
        ufd_request_id_new(rid);
    if (h && h->target) { /* the v1 or the KServe error shape, as the target asks */
        char t[UFD_TARGET_MAX + 1], terr[8];
        ufd_target tg;
        snprintf(t, sizeof t, "%.*s", (int)h->target_len, h->target);
        if (ufd_target_parse(t, &tg, terr, sizeof terr) == 0) {
            ufd_route r;
            ufd_route_match(tg.path, &r);
            ep = r.ep;
        }
        ufd_target_free(&tg);
    }
    size_t blen = 0;
    char *body = ufd_error_body(ep, e, msg, rid, &blen);
    char head[512];
    int status = ufd_err_status(e);
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "X-Request-Id: %s\r\nCache-Control: no-store\r\n%sConnection: close\r\n\r\n",
                      status, reason(status), body ? blen : 0, rid, status == 503 ? "Retry-After: 1\r\n" : "");
    /* small enough for any socket buffer: one send each, never waiting */
    ssize_t sent = send(c->fd, head, (size_t)hn, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (body && sent == hn)
        sent += send(c->fd, body, blen, MSG_NOSIGNAL | MSG_DONTWAIT);
    free(body);
    if (g->o.answered)
        g->o.answered(g->o.ud, h, ep, e, msg, rid, sent > 0 ? (size_t)sent : 0, ufd_now() - c->t_accept);
    shutdown(c->fd, SHUT_WR);
    if (c->state == C_HEAD) {
        pthread_mutex_lock(&g->mu);
        ip_count(g, c->ip, -1);
        g->n_head--;
        gauges(g);
        pthread_mutex_unlock(&g->mu);
    }
    c->state = C_LINGER;
    c->deadline = ufd_now() + LINGER_SECONDS;
}

/* Lingering: read and drop what the client still sends until it closes. */
static void drain(ufd_gate *g, gconn *c)
{
    char buf[4096];
    for (;;) {
        ssize_t r = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        close_slot(g, c);
        return;
    }
}

static void on_head(ufd_gate *g, gconn *c)
{
    ssize_t n = recv(c->fd, g->peek, UFD_HEAD_MAX + 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        close_slot(g, c); /* the client went away before its head was complete */
        return;
    }
    if (n < 0)
        return;
    ufd_head h;
    ufd_err e;
    char msg[160];
    switch (ufd_head_check(g->peek, (size_t)n, &h, &e, msg, sizeof msg)) {
    case UFD_HEAD_MORE:
        return;
    case UFD_HEAD_BAD:
        answer(g, c, &h, e, msg);
        return;
    case UFD_HEAD_OK:
        break;
    }
    pthread_mutex_lock(&g->mu);
    ip_count(g, c->ip, -1); /* counted again from ufd_gate_opened */
    g->n_head--;
    gauges(g);
    pthread_mutex_unlock(&g->mu);
    epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
    int fd = c->fd;
    c->state = C_FREE;
    c->fd = -1;
    g->o.handoff(g->o.ud, fd, (const struct sockaddr *)&c->addr, c->alen, &h);
}

/* A free slot; when every slot is taken, the lingering one closest to its end is closed
 * (a flood of refused connections must not leave no room for the next good one). */
static gconn *free_slot(ufd_gate *g)
{
    gconn *oldest = NULL;
    for (int i = 0; i < g->cap; i++) {
        if (g->c[i].state == C_FREE)
            return &g->c[i];
        if (g->c[i].state == C_LINGER && (!oldest || g->c[i].deadline < oldest->deadline))
            oldest = &g->c[i];
    }
    if (oldest)
        close_slot(g, oldest);
    return oldest;
}

/* The oldest connection still sending its head, or NULL. */
static gconn *oldest_head(ufd_gate *g)
{
    gconn *o = NULL;
    for (int i = 0; i < g->cap; i++)
        if (g->c[i].state == C_HEAD && (!o || g->c[i].t_accept < o->t_accept))
            o = &g->c[i];
    return o;
}

static void evict(ufd_gate *g, gconn *c)
{
    if (g->o.rejected)
        g->o.rejected(g->o.ud, UFD_GATE_EVICTED);
    answer(g, c, NULL, UFD_E_REQUEST_TIMEOUT,
           "the request head was not complete; the connection was closed to make room for others");
}

static void accept_one(ufd_gate *g, int fd, const struct sockaddr_storage *ss, socklen_t alen)
{
    double now = ufd_now();
    ipkey k = key_of((const struct sockaddr *)ss);
    pthread_mutex_lock(&g->mu);
    int per_ip = ip_count(g, k, 0) >= g->o.per_ip;
    int full = g->n_head + g->n_req >= g->o.max_conns, crowded = g->n_head >= g->o.max_conns - g->o.reserve;
    pthread_mutex_unlock(&g->mu);
    int refuse = per_ip ? UFD_GATE_PER_IP : -1;
    if (refuse < 0 && (full || crowded)) {
        gconn *o = oldest_head(g);
        if (o)
            evict(g, o);
        else if (full)
            refuse = UFD_GATE_CONNECTIONS;
    }
    gconn *c = free_slot(g);
    if (!c) { /* every slot holds a head: cannot happen (cap > max_conns), but never block */
        close(fd);
        if (g->o.rejected)
            g->o.rejected(g->o.ud, UFD_GATE_CONNECTIONS);
        return;
    }
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->t_accept = now;
    memcpy(&c->addr, ss, sizeof *ss);
    c->alen = alen;
    c->ip = k;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.u32 = (uint32_t)(c - g->c)};
    if (epoll_ctl(g->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        c->state = C_FREE;
        return;
    }
    if (refuse >= 0) {
        c->state = C_LINGER;
        if (g->o.rejected)
            g->o.rejected(g->o.ud, refuse);
        answer(g, c, NULL, UFD_E_TOO_MANY_CONNECTIONS,
               refuse == UFD_GATE_PER_IP ? "too many connections from this client address"
                                         : "too many connections; retry later");
        return;
    }
    c->state = C_HEAD;
    c->deadline = now + g->o.header_timeout;
    pthread_mutex_lock(&g->mu);
    ip_count(g, k, +1);
    g->n_head++;
    gauges(g);
    pthread_mutex_unlock(&g->mu);
    on_head(g, c); /* the head often came with the connection */
}

static void accept_all(ufd_gate *g)
{
    for (int i = 0; i < 64 && g->lfd >= 0; i++) {
        struct sockaddr_storage ss;
        socklen_t alen = sizeof ss;
        int fd = accept4(g->lfd, (struct sockaddr *)&ss, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of descriptors (the listening socket stays readable) */
        accept_one(g, fd, &ss, alen);
    }
}

static void sweep(ufd_gate *g)
{
    double now = ufd_now();
    for (int i = 0; i < g->cap; i++) {
        gconn *c = &g->c[i];
        if (c->state == C_HEAD && now > c->deadline) {
            if (g->o.rejected)
                g->o.rejected(g->o.ud, UFD_GATE_HEADER_TIMEOUT);
            char msg[128];
            snprintf(msg, sizeof msg, "the request head was not complete within %g s", g->o.header_timeout);
            answer(g, c, NULL, UFD_E_REQUEST_TIMEOUT, msg);
        } else if (c->state == C_LINGER && now > c->deadline) {
            close_slot(g, c);
        }
    }
}

static void *gate_main(void *arg)
{
    ufd_gate *g = arg;
    struct epoll_event ev[64];
    double next_sweep = 0;
    while (!atomic_load(&g->stop)) {
        int n = epoll_wait(g->ep, ev, 64, 100);
        for (int i = 0; i < n; i++) {
            uint32_t id = ev[i].data.u32;
            if (id == EV_LISTEN) {
                accept_all(g);
            } else if (id == EV_WAKE) {
                uint64_t v;
                if (read(g->wake, &v, sizeof v) < 0) { /* nothing: the flags say why we woke */
                }
                if (atomic_load(&g->quiesce) && g->lfd >= 0) {
                    epoll_ctl(g->ep, EPOLL_CTL_DEL, g->lfd, NULL);
                    close(g->lfd);
                    g->lfd = -1;
                }
            } else if (id < (uint32_t)g->cap) {
                gconn *c = &g->c[id];
                if (c->state == C_HEAD)
                    on_head(g, c);
                else if (c->state == C_LINGER)
                    drain(g, c);
            }
        }
        double now = ufd_now();
        if (now >= next_sweep) {
            sweep(g);
            next_sweep = now + 0.05;
        }
    }
    return NULL;
}

ufd_gate *ufd_gate_start(const ufd_gate_opts *o, int *port, char *err, size_t n)
{
    ufd_gate *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    g->o = *o;
    g->lfd = g->ep = g->wake = -1;
    g->cap = o->max_conns + LINGER_SLOTS;
    pthread_mutex_init(&g->mu, NULL);
    g->c = calloc((size_t)g->cap, sizeof *g->c);
    g->ips = calloc((size_t)g->cap * 2, sizeof *g->ips);
    g->peek = malloc(UFD_HEAD_MAX + 1);
    if (!g->c || !g->ips || !g->peek) {
        snprintf(err, n, "out of memory");
        goto fail;
    }
    g->lfd = socket(o->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (g->lfd < 0 || setsockopt(g->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(g->lfd, o->addr, o->addrlen) != 0 || listen(g->lfd, 1024) != 0) {
        snprintf(err, n, "%s", strerror(errno));
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(g->lfd, (struct sockaddr *)&ss, &sl);
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    g->ep = epoll_create1(EPOLL_CLOEXEC);
    g->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event el = {.events = EPOLLIN, .data.u32 = EV_LISTEN}, ew = {.events = EPOLLIN, .data.u32 = EV_WAKE};
    if (g->ep < 0 || g->wake < 0 || epoll_ctl(g->ep, EPOLL_CTL_ADD, g->lfd, &el) != 0 ||
        epoll_ctl(g->ep, EPOLL_CTL_ADD, g->wake, &ew) != 0) {
        snprintf(err, n, "epoll: %s", strerror(errno));
        goto fail;
    }
    for (int i = 0; i < g->cap; i++)
        g->c[i].fd = -1;
    atomic_init(&g->stop, 0);
    atomic_init(&g->quiesce, 0);
    if (pthread_create(&g->th, NULL, gate_main, g) != 0) {
        snprintf(err, n, "cannot start the connection gate thread");
        goto fail;
    }
    g->started = 1;
    return g;
fail:
    ufd_gate_free(g);
    return NULL;
}

static void wake(ufd_gate *g)
{
    uint64_t one = 1;
    if (write(g->wake, &one, sizeof one) < 0) { /* the counter is full: already woken */
    }
}

void ufd_gate_quiesce(ufd_gate *g)
{
    if (!g)
        return;
    atomic_store(&g->quiesce, 1);
    wake(g);
}

void ufd_gate_stop(ufd_gate *g)
{
    if (!g)
        return;
    atomic_store(&g->stop, 1);
    if (g->started) {
        wake(g);
        pthread_join(g->th, NULL);
    }
    g->started = 0;
    for (int i = 0; g->c && i < g->cap; i++)
        if (g->c[i].state != C_FREE) {
            close(g->c[i].fd);
            g->c[i].state = C_FREE;
        }
    if (g->lfd >= 0)
        close(g->lfd);
    if (g->ep >= 0)
        close(g->ep);
    if (g->wake >= 0)
        close(g->wake);
    g->lfd = g->ep = g->wake = -1;
}

void ufd_gate_free(ufd_gate *g)
{
    if (!g)
        return;
    ufd_gate_stop(g);
    pthread_mutex_destroy(&g->mu);
    free(g->c);
    free(g->ips);
    free(g->peek);
    free(g);
}

void ufd_gate_opened(ufd_gate *g, const struct sockaddr *addr)
{
    pthread_mutex_lock(&g->mu);
    ip_count(g, key_of(addr), +1);
    g->n_req++;
    gauges(g);
    pthread_mutex_unlock(&g->mu);
}

void ufd_gate_closed(ufd_gate *g, const struct sockaddr *addr)
{
    pthread_mutex_lock(&g->mu);
    ip_count(g, key_of(addr), -1);
    g->n_req--;
    gauges(g);
    pthread_mutex_unlock(&g->mu);
}
