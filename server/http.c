/* http.c — see http.h. Connections arrive through the gate (gate.h: head complete and
 * checked), which hands them to libmicrohttpd. Request life cycle in its callbacks:
 *   URI callback:        the request object, with the target exactly as sent.
 *   1st access call:     the head: dispatch checks it; a failure is answered at once
 *                        (libmicrohttpd then drops the unread body).
 *   upload calls:        body chunks to dispatch.
 *   final call:          dispatch runs the endpoint's handler, which answers or defers.
 *   deferred answers:    the connection is suspended on the *next* call, not the final one
 *                        (see on_request), the request goes to its worker or the reloader,
 *                        which resumes it; the call after that sends the answer.
 * The completion callback records metrics, writes the log line and frees the request. */
#include "http.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dispatch.h"
#include "gate.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"

struct ufd_http {
    struct MHD_Daemon *d;
    ufd_gate *gate;
    ufd_server *srv;
};

static void resume(ufd_req *r) { MHD_resume_connection(r->conn); }
static const ufd_transport transport = {.resume = resume};

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    ufd_req *r = ufd_req_new(cls, uri);
    if (r) {
        r->conn = c;
        r->tp = &transport;
    }
    return r;
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static void add_header(struct MHD_Response *resp, const char *k, const char *v)
{
    if (MHD_add_response_header(resp, k, v) != MHD_YES)
        ufd_log(UFD_WARN, "cannot add response header %s", k);
}

static enum MHD_Result reply(ufd_req *r)
{
    if (r->status == 0)
        ufd_reply_error(r, UFD_E_INTERNAL, "no answer was produced (a bug)");
    struct MHD_Response *resp;
    if (r->resp_free)
        resp = MHD_create_response_from_buffer_with_free_callback(r->resp_len, r->resp, r->resp_free);
    else
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    r->bytes_out = r->resp_len;
    r->resp = NULL; /* MHD owns it now */
    r->resp_free = NULL;
    add_header(resp, "Content-Type", r->resp_type ? r->resp_type : "application/json");
    add_header(resp, "X-Request-Id", r->id);
    add_header(resp, "Cache-Control", "no-store");
    char s[32];
    if (r->inference_header_len) {
        snprintf(s, sizeof s, "%zu", r->inference_header_len);
        add_header(resp, "Inference-Header-Content-Length", s);
    }
    if (r->retry_after > 0) {
        snprintf(s, sizeof s, "%d", r->retry_after);
        add_header(resp, "Retry-After", s);
    }
    for (const char *const *h = r->headers; h && h[0] && h[1]; h += 2)
        add_header(resp, h[0], h[1]);
    if (r->err == UFD_E_METHOD)
        add_header(resp, "Allow", ufd_endpoint_allow(r->route.ep));
    if (r->err == UFD_E_UNAUTHORIZED)
        add_header(resp, "WWW-Authenticate", "Bearer realm=\"uflowd\"");
    /* one request per connection: every head passes the gate (gate.h) */
    add_header(resp, "Connection", "close");
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Below --min-body-rate, counted from --header-timeout after the head (a trickle of bytes
 * would otherwise hold the connection forever: libmicrohttpd's timeout restarts on each). */
static int body_too_slow(const ufd_req *r)
{
    const ufd_config *cfg = r->srv->cfg;
    double late = ufd_now() - r->t_start - cfg->header_timeout;
    return cfg->min_body_rate > 0 && late > 0 && (double)r->bytes_in < late * (double)cfg->min_body_rate;
}

/* The client closed its sending side before the whole Content-Length arrived. libmicrohttpd
 * 0.9.75 does not notice such an EOF while it reads a body (edge-triggered: the FIN that
 * came with the last bytes wakes nobody) and holds the connection until its idle timeout;
 * a peek at the socket after each piece tells at once. */
static int body_cut_short(const ufd_req *r, struct MHD_Connection *c)
{
    if (!r->h.content_length || r->bytes_in >= strtoull(r->h.content_length, NULL, 10))
        return 0;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    char b;
    return ci && recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls, (void)url, (void)version;
    ufd_req *r = *con_cls;
    if (!r)
        return MHD_NO; /* out of memory in the URI callback */
    if (!r->head_done) {
        r->head_done = 1;
        r->h.authorization = header(c, "Authorization");
        r->h.x_api_key = header(c, "X-API-Key");
        r->h.content_type = header(c, "Content-Type");
        r->h.content_length = header(c, "Content-Length");
        r->h.request_id = header(c, "X-Request-Id");
        r->h.accept = header(c, "Accept");
        r->h.inference_header_length = header(c, "Inference-Header-Content-Length");
        return ufd_dispatch_head(r, method) ? reply(r) : MHD_YES;
    }
    if (*upload_size) {
        int rc = ufd_dispatch_body(r, upload, *upload_size);
        *upload_size = 0;
        if (rc == 0 && body_too_slow(r)) {
            ufd_metrics_rejected(UFD_REJECT_SLOW_BODY);
            r->err = UFD_E_REQUEST_TIMEOUT;
            return MHD_NO;
        }
        if (rc == 0 && body_cut_short(r, c)) {
            r->err = UFD_E_BAD_HTTP;
            return MHD_NO;
        }
        return rc == 0 ? MHD_YES : MHD_NO;
    }
    if (r->queued) { /* resumed: the answer is ready */
        r->queued = 0;
        return reply(r);
    }
    if (r->start) {
        /* Suspended here rather than in the final call: libmicrohttpd 0.9.75 does not update
         * a connection's poll interest while it is suspended, so one suspended in the same
         * round that read the body still "wants to read" when resumed, reads the client's
         * FIN of a half-closed connection and closes it without sending the answer. One
         * round later the connection waits for us (no read interest), and resuming it goes
         * straight to the answer. */
        void (*start)(ufd_req *) = r->start;
        r->start = NULL;
        MHD_suspend_connection(c);
        r->queued = 1;
        start(r); /* may resume at once, from another thread */
        return MHD_YES;
    }
    if (!r->body_done) {
        r->body_done = 1;
        ufd_dispatch_end(r);
        return r->start ? MHD_YES : reply(r);
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c;
    ufd_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    double total = ufd_now() - r->t_start;
    if (r->status) {
        ufd_metrics_request(r->model >= 0 ? r->route.model : NULL, r->route.ep, r->status, total);
        if (r->err != UFD_E_NONE)
            ufd_metrics_error(r->err);
    }
    ufd_log_request l = {
        .request_id = r->id, .method = r->method, .path = r->target.raw_path ? r->target.raw_path : "(invalid)",
        .model = r->model >= 0 ? r->route.model : NULL,
        .status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status : 0,
        .error = r->err != UFD_E_NONE ? ufd_err_code(r->err)
                 : toe != MHD_REQUEST_TERMINATED_COMPLETED_OK ? "connection_closed" : NULL,
        .bytes_in = r->bytes_in, .bytes_out = r->bytes_out,
        .queue_ms = r->queue_ms, .inference_ms = r->infer_ms, .total_ms = total * 1e3,
    };
    ufd_log_req(&l);
    ufd_req_free(r);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    /* heads never reach it unchecked, but a malformed chunked body is answered by
     * libmicrohttpd itself (with its own body): count those at least */
    unsigned code = 0;
    if (sscanf(msg, "Error processing request (HTTP response code is %u", &code) == 1) {
        ufd_metrics_request(NULL, UFD_EP_UNKNOWN, (int)code, 0);
        ufd_metrics_error(UFD_E_BAD_HTTP);
    }
    ufd_log(UFD_WARN, "libmicrohttpd: %s", msg);
}

/* "ADDR:PORT", "[V6]:PORT", ":PORT" or "PORT" into a socket address. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t n)
{
    char host[256] = "0.0.0.0", port[16];
    const char *colon = strrchr(s, ':');
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || close - s - 1 >= (long)sizeof host) {
            snprintf(err, n, "--listen '%s': expected [ADDR]:PORT", s);
            return -1;
        }
        snprintf(host, sizeof host, "%.*s", (int)(close - s - 1), s + 1);
        colon = close + 1;
    } else if (colon && colon != s) {
        if (colon - s >= (long)sizeof host) {
            snprintf(err, n, "--listen '%s': address too long", s);
            return -1;
        }
        snprintf(host, sizeof host, "%.*s", (int)(colon - s), s);
    }
    snprintf(port, sizeof port, "%s", colon ? colon + 1 : s);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, n, "--listen '%s': %s", s, rc ? gai_strerror(rc) : "no address");
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* ---- the gate's callbacks ------------------------------------------------------------ */

static void handoff(void *ud, int fd, const struct sockaddr *addr, socklen_t len, const ufd_head *h)
{
    (void)h;
    ufd_http *hp = ud;
    if (MHD_add_connection(hp->d, fd, addr, len) != MHD_YES) /* it closed fd */
        ufd_log(UFD_WARN, "libmicrohttpd did not take a connection");
}

static void gate_answered(void *ud, const ufd_head *h, ufd_endpoint ep, ufd_err e, const char *msg,
                          const char *rid, size_t bytes_out, double seconds)
{
    (void)ud;
    ufd_metrics_request(NULL, ep, ufd_err_status(e), seconds);
    ufd_metrics_error(e);
    char method[16] = "-", path[200] = "-";
    if (h && h->method[0])
        snprintf(method, sizeof method, "%s", h->method);
    if (h && h->target) {
        size_t pl = strcspn(h->target, "? ");
        snprintf(path, sizeof path, "%.*s", (int)(pl < h->target_len ? pl : h->target_len), h->target);
    }
    ufd_log_request l = {.request_id = rid, .method = method, .path = path, .status = ufd_err_status(e),
                         .error = ufd_err_code(e), .bytes_out = bytes_out, .queue_ms = -1, .inference_ms = -1,
                         .total_ms = seconds * 1e3};
    (void)msg;
    ufd_log_req(&l);
}

static void gate_rejected(void *ud, int reason)
{
    (void)ud;
    static const ufd_reject map[] = {[UFD_GATE_HEADER_TIMEOUT] = UFD_REJECT_HEADER_TIMEOUT,
                                     [UFD_GATE_EVICTED] = UFD_REJECT_EVICTED,
                                     [UFD_GATE_CONNECTIONS] = UFD_REJECT_CONNECTIONS,
                                     [UFD_GATE_PER_IP] = UFD_REJECT_PER_IP};
    ufd_metrics_rejected(map[reason]);
}

/* The request phase of a connection begins and ends: the gate counts it per address. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)socket_context;
    ufd_http *hp = cls;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        ufd_gate_opened(hp->gate, ci->client_addr);
    else
        ufd_gate_closed(hp->gate, ci->client_addr);
}

ufd_http *ufd_http_start(ufd_server *srv, int *port, char *err, size_t n)
{
    const ufd_config *cfg = srv->cfg;
    struct sockaddr_storage ss;
    socklen_t slen;
    if (parse_listen(cfg->listen, &ss, &slen, err, n) != 0)
        return NULL;
    ufd_http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->srv = srv;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
        flags |= MHD_USE_EPOLL;
    else if (MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES)
        flags |= MHD_USE_POLL;
    unsigned idle = cfg->header_timeout < 1 ? 1 : (unsigned)(cfg->header_timeout + 0.999);
    /* the gate enforces --max-connections; libmicrohttpd's own limit is split over its I/O
     * threads, so each gets all of it and never refuses one the gate let through */
    unsigned limit = (unsigned)cfg->max_connections * (unsigned)cfg->io_threads;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL, /* first, to catch everything */
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->io_threads,
                            MHD_OPTION_CONNECTION_LIMIT, limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, idle,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(4 * UFD_HEAD_MAX),
                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                            MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, n, "cannot start libmicrohttpd");
        free(h);
        return NULL;
    }
    int per_ip = cfg->max_connections_per_ip > 0 ? cfg->max_connections_per_ip
                                                  : (cfg->max_connections >= 4 ? cfg->max_connections / 4 : 1);
    ufd_gate_opts go = {.addr = (struct sockaddr *)&ss, .addrlen = slen, .max_conns = cfg->max_connections,
                        .per_ip = per_ip, .reserve = cfg->max_connections >= 8 ? cfg->max_connections / 8 : 1,
                        .header_timeout = cfg->header_timeout, .handoff = handoff, .answered = gate_answered,
                        .rejected = gate_rejected, .ud = h, .conns_head = &srv->conns_head,
                        .conns_open = &srv->conns_open};
    char gerr[256];
    if (!(h->gate = ufd_gate_start(&go, port, gerr, sizeof gerr))) {
        snprintf(err, n, "cannot listen on %s: %s", cfg->listen, gerr);
        MHD_stop_daemon(h->d);
        free(h);
        return NULL;
    }
    ufd_log(UFD_INFO, "listening on %s (port %d, %u I/O threads, %s; %d connections, %d per client, %d kept for "
            "clients that send their head at once)", cfg->listen, *port, cfg->io_threads,
            (flags & MHD_USE_EPOLL) ? "epoll" : (flags & MHD_USE_POLL) ? "poll" : "select", go.max_conns, go.per_ip,
            go.reserve);
    return h;
}

void ufd_http_quiesce(ufd_http *h)
{
    if (h)
        ufd_gate_quiesce(h->gate);
}

void ufd_http_stop(ufd_http *h)
{
    if (!h)
        return;
    ufd_gate_stop(h->gate); /* first: it hands connections to the daemon */
    MHD_stop_daemon(h->d);  /* its connections' closes still report to the gate */
    ufd_gate_free(h->gate);
    free(h);
}
