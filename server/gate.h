/* gate.h — the first stage of the HTTP front: uflowd's own listening socket and one thread
 * that holds every new connection until its request head is complete (read with MSG_PEEK,
 * so the bytes stay for libmicrohttpd), checks the head (head.h) and only then hands the
 * connection to libmicrohttpd (MHD_add_connection, in http.c). Built this way because
 * libmicrohttpd 0.9.75 restarts its idle timeout on every byte (40 clients trickling a
 * header byte every 2 s held all its slots), cannot cap connections per client while
 * keeping room for others, and answers malformed heads with its own HTML bodies.
 *
 * What the gate enforces, all counted in uflowd_rejected_total{reason}:
 *   - a head must be complete within header_timeout of the connect (408, "header_timeout");
 *   - at most max_conns connections in all (request phase included: the HTTP front reports
 *     connections' ends with ufd_gate_closed) and per_ip from one client address (503
 *     "too_many_connections"; reasons "connections", "per_ip");
 *   - connections still sending their head may hold at most max_conns - reserve slots; a
 *     newcomer beyond that closes the oldest of them (408, "evicted"), so the reserve is
 *     always there for clients that send a head at once (probes, good clients);
 *   - a head that head.h refuses gets its 400/414/431/501/505 answer with the JSON error
 *     body of every other uflowd error.
 * Answers from the gate close the connection after a short linger (so the client reads
 * the answer rather than a reset). */
#ifndef UFD_GATE_H
#define UFD_GATE_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>

#include "errors.h"
#include "head.h"
#include "route.h"

typedef struct ufd_gate ufd_gate;

typedef struct ufd_gate_opts {
    const struct sockaddr *addr;   /* where to listen */
    socklen_t addrlen;
    int max_conns, per_ip, reserve;
    double header_timeout;         /* seconds */
    /* A connection whose head h passed: take over fd (always, even on failure). Gate thread. */
    void (*handoff)(void *ud, int fd, const struct sockaddr *addr, socklen_t len, const ufd_head *h);
    /* The gate answered a head itself (for metrics and the log line): ep is the endpoint
     * its target routes to (UFD_EP_UNKNOWN when none or the line is malformed). Gate thread. */
    void (*answered)(void *ud, const ufd_head *h, ufd_endpoint ep, ufd_err e, const char *msg,
                     const char *request_id, size_t bytes_out, double seconds);
    /* A connection was refused or closed before its head was complete (reject reason). */
    void (*rejected)(void *ud, int reason);
    void *ud;
    _Atomic int *conns_head, *conns_open; /* gauges kept up to date (may be NULL) */
} ufd_gate_opts;

/* Reasons passed to rejected(). */
enum { UFD_GATE_HEADER_TIMEOUT = 0, UFD_GATE_EVICTED, UFD_GATE_CONNECTIONS, UFD_GATE_PER_IP };

/* Bind and listen, start the thread. *port receives the bound port. NULL + message. */
ufd_gate *ufd_gate_start(const ufd_gate_opts *o, int *port, char *err, size_t n);
/* Close the listening socket (drain): no new connections; those in the gate continue. */
void ufd_gate_quiesce(ufd_gate *g);
/* Stop the thread and close every connection still in the gate (no more handoffs). */
void ufd_gate_stop(ufd_gate *g);
/* Free it (after the HTTP front has closed its connections: they report to the gate). */
void ufd_gate_free(ufd_gate *g);

/* The request phase of a handed-off connection from addr began / ended (HTTP front's
 * connection notifications; any thread). */
void ufd_gate_opened(ufd_gate *g, const struct sockaddr *addr);
void ufd_gate_closed(ufd_gate *g, const struct sockaddr *addr);

#endif
