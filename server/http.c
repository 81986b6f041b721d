/* http.c — see http.h. Request life cycle in the access handler:
 *   1st call (headers):  route, method, auth, readiness, model, Content-Type/-Length checks;
 *                        any failure is answered at once (MHD then drops the unread body).
 *   upload calls:        body into a bounded buffer (or MHD's multipart post processor).
 *   final call:          the endpoint handler answers, or submits a job and the connection
 *                        is suspended; the worker resumes it and the next call answers.
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

#include "handlers.h"
#include "json_out.h"
#include "log.h"
#include "metrics.h"
#include "ui.h"

struct ufd_http {
    struct MHD_Daemon *d;
    ufd_server *srv;
    MHD_socket quiesced_fd;
};

static void (*const handlers[UFD_EP_COUNT])(ufd_req *) = {
    [UFD_EP_ROOT] = ufd_h_root,           [UFD_EP_OPENAPI] = ufd_h_openapi,
    [UFD_EP_HEALTHZ] = ufd_h_healthz,     [UFD_EP_READYZ] = ufd_h_readyz,
    [UFD_EP_METRICS] = ufd_h_metrics,     [UFD_EP_V1_MODELS] = ufd_h_v1_models,
    [UFD_EP_V1_MODEL] = ufd_h_v1_model,   [UFD_EP_V1_PREDICT] = ufd_h_v1_predict,
    [UFD_EP_V1_RELOAD] = ufd_h_v1_reload, [UFD_EP_V2_SERVER] = ufd_h_v2_server,
    [UFD_EP_V2_LIVE] = ufd_h_v2_live,     [UFD_EP_V2_READY] = ufd_h_v2_ready,
    [UFD_EP_V2_MODEL] = ufd_h_v2_model,   [UFD_EP_V2_MODEL_READY] = ufd_h_v2_model_ready,
    [UFD_EP_V2_INFER] = ufd_h_v2_infer,
    [UFD_EP_UI] = ufd_h_ui,               [UFD_EP_UI_REDIRECT] = ufd_h_ui_redirect,
};

/* Endpoints that read the model registry (503 while loading). */
static int needs_models(ufd_endpoint ep)
{
    return ep == UFD_EP_V1_MODELS || ep == UFD_EP_V1_MODEL || ep == UFD_EP_V1_PREDICT || ep == UFD_EP_V2_MODEL ||
           ep == UFD_EP_V2_MODEL_READY || ep == UFD_EP_V2_INFER;
}

static const char *header(ufd_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static ufd_req *req_new(ufd_server *srv, struct MHD_Connection *c, const char *url, const char *method)
{
    ufd_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->srv = srv;
    r->conn = c;
    r->t_start = ufd_now();
    r->model = -1;
    r->queue_ms = r->infer_ms = -1;
    r->opts = ufd_predict_opts_default();
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->path, sizeof r->path, "%s", url);
    const char *rid = header(r, "X-Request-Id");
    if (ufd_request_id_valid(rid))
        snprintf(r->id, sizeof r->id, "%s", rid);
    else
        ufd_request_id_new(r->id);
    ufd_route_match(url, &r->route);
    if (r->route.ep == UFD_EP_ROOT && ufd_ui_wants_html(header(r, "Accept")))
        r->route.ep = UFD_EP_UI_REDIRECT; /* a browser: the page, not the JSON */
    atomic_fetch_add(&srv->inflight, 1);
    return r;
}

static void req_free(ufd_req *r)
{
    if (r->pp)
        MHD_destroy_post_processor(r->pp);
    if (r->resp && r->resp_free)
        r->resp_free(r->resp);
    ufd_buf_free(&r->body);
    ufd_models_unref(r->models);
    atomic_fetch_sub(&r->srv->inflight, 1);
    free(r);
}

/* Multipart fields: "image" into the body buffer, option fields into small strings. */
static enum MHD_Result on_form_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                     const char *content_type, const char *transfer_encoding, const char *data,
                                     uint64_t off, size_t size)
{
    (void)kind, (void)filename, (void)content_type, (void)transfer_encoding, (void)off;
    ufd_req *r = cls;
    if (!key)
        return MHD_YES;
    if (!strcmp(key, "image")) {
        r->form_has_image = 1;
        int rc = size ? ufd_buf_append(&r->body, data, size, r->srv->cfg->max_body) : 0;
        if (rc == -1)
            r->body_too_large = 1;
        else if (rc == -2)
            r->body_oom = 1;
        return rc == 0 ? MHD_YES : MHD_NO;
    }
    for (int i = 0; ufd_predict_opt_names[i]; i++) {
        if (strcmp(key, ufd_predict_opt_names[i]) != 0)
            continue;
        size_t have = strlen(r->form_opt[i]);
        if (have + size >= UFD_FORM_OPT_MAX) {
            r->form_bad = 1; /* an option value this long is not a value */
            return MHD_NO;
        }
        memcpy(r->form_opt[i] + have, data, size);
        r->form_opt[i][have + size] = '\0';
    }
    return MHD_YES;
}

/* Checks possible from the headers alone; 1 when r already has its (error) answer. */
static int precheck(ufd_req *r)
{
    ufd_server *srv = r->srv;
    const ufd_config *cfg = srv->cfg;
    ufd_endpoint ep = r->route.ep;
    /* the key first: without one, nothing (not even which paths exist) is revealed */
    if (srv->auth && !(cfg->public_health && ufd_endpoint_is_health(ep)) && !ufd_endpoint_is_public(ep) &&
        !ufd_auth_check(srv->auth, header(r, "Authorization"), header(r, "X-API-Key"))) {
        ufd_reply_error(r, UFD_E_UNAUTHORIZED, "a valid API key is required (Authorization: Bearer KEY or X-API-Key)");
        return 1;
    }
    if (ep == UFD_EP_UNKNOWN) {
        ufd_reply_error(r, UFD_E_NOT_FOUND, "no endpoint %s (see /openapi.yaml)", r->path);
        return 1;
    }
    int is_post = !strcmp(r->method, "POST"), is_get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
    if (ufd_endpoint_is_post(ep) ? !is_post : !is_get) {
        ufd_reply_error(r, UFD_E_METHOD, "%s is not allowed on %s (allowed: %s)", r->method, r->path,
                        ufd_endpoint_allow(ep));
        return 1;
    }
    if (needs_models(ep)) {
        /* the request keeps this snapshot to the end, whatever reloads happen meanwhile */
        if (!ufd_server_serving(srv) || !(r->models = ufd_server_models(srv))) {
            ufd_metrics_rejected(UFD_REJECT_NOT_READY);
            r->retry_after = 1;
            ufd_reply_error(r, UFD_E_UNAVAILABLE, "models are loading");
            return 1;
        }
        if (r->route.model[0] && (r->model = ufd_models_find(r->models, r->route.model)) < 0) {
            ufd_reply_error(r, UFD_E_MODEL_NOT_FOUND, "no model named '%s' (see /v1/models)", r->route.model);
            return 1;
        }
    }
    const char *cl = header(r, "Content-Length");
    if (cl) {
        unsigned long long n = strtoull(cl, NULL, 10);
        if (n > cfg->max_body) {
            ufd_metrics_rejected(UFD_REJECT_BODY_TOO_LARGE);
            ufd_reply_error(r, UFD_E_BODY_TOO_LARGE, "body of %llu bytes is above the limit of %llu", n,
                            (unsigned long long)cfg->max_body);
            return 1;
        }
        if (is_post && n > 0 && ufd_buf_reserve(&r->body, (size_t)n) != 0) {
            ufd_reply_error(r, UFD_E_UNAVAILABLE, "out of memory for a %llu-byte body", n);
            return 1;
        }
    }
    if (!is_post)
        return 0;
    const char *ct = header(r, "Content-Type");
    r->body_kind = ufd_body_kind_of(ct);
    int ok = ep == UFD_EP_V2_INFER ? (!ct || r->body_kind == UFD_BODY_JSON)
           : ep == UFD_EP_V1_PREDICT ? r->body_kind != UFD_BODY_UNSUPPORTED : 1;
    if (!ok) {
        ufd_reply_error(r, UFD_E_MEDIA_TYPE, "unsupported Content-Type '%.100s' (%s)", ct ? ct : "",
                        ep == UFD_EP_V2_INFER ? "expected application/json"
                                              : "expected image/*, application/octet-stream, multipart/form-data "
                                                "or application/json");
        return 1;
    }
    if (ep == UFD_EP_V2_INFER)
        r->body_kind = UFD_BODY_JSON;
    if (ep == UFD_EP_V1_PREDICT && r->body_kind == UFD_BODY_MULTIPART) {
        r->pp = MHD_create_post_processor(r->conn, 32 * 1024, on_form_field, r);
        if (!r->pp) {
            ufd_reply_error(r, UFD_E_BAD_REQUEST, "multipart/form-data without a boundary");
            return 1;
        }
    }
    return 0;
}

/* An upload chunk. MHD_NO (drop the connection) only once a client keeps sending far past
 * the limit after we stopped storing. */
static enum MHD_Result take(ufd_req *r, const char *data, size_t size)
{
    r->bytes_in += size;
    if (r->body_too_large || r->body_oom || r->form_bad)
        return r->bytes_in > 2 * r->srv->cfg->max_body + (1u << 20) ? MHD_NO : MHD_YES;
    if (!ufd_endpoint_is_post(r->route.ep))
        return MHD_YES; /* a GET with a body: ignored */
    if (r->pp) {
        if (MHD_post_process(r->pp, data, size) != MHD_YES && !r->body_too_large && !r->body_oom)
            r->form_bad = 1;
        return MHD_YES;
    }
    int rc = ufd_buf_append(&r->body, data, size, r->srv->cfg->max_body);
    if (rc == -1)
        r->body_too_large = 1;
    else if (rc == -2)
        r->body_oom = 1;
    return MHD_YES;
}

static void dispatch(ufd_req *r)
{
    if (r->pp) {
        MHD_destroy_post_processor(r->pp);
        r->pp = NULL;
    }
    if (r->body_too_large) {
        ufd_metrics_rejected(UFD_REJECT_BODY_TOO_LARGE);
        ufd_reply_error(r, UFD_E_BODY_TOO_LARGE, "body is above the limit of %llu bytes",
                        (unsigned long long)r->srv->cfg->max_body);
    } else if (r->body_oom) {
        r->retry_after = 1;
        ufd_reply_error(r, UFD_E_UNAVAILABLE, "out of memory for the request body");
    } else if (r->form_bad) {
        ufd_reply_error(r, UFD_E_BAD_REQUEST, "malformed multipart/form-data body (or an option field over %d bytes)",
                        UFD_FORM_OPT_MAX - 1);
    } else {
        handlers[r->route.ep](r);
    }
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
    for (const char *const *h = r->headers; h && h[0] && h[1]; h += 2)
        add_header(resp, h[0], h[1]);
    if (r->retry_after > 0) {
        char s[16];
        snprintf(s, sizeof s, "%d", r->retry_after);
        add_header(resp, "Retry-After", s);
    }
    if (r->err == UFD_E_METHOD)
        add_header(resp, "Allow", ufd_endpoint_allow(r->route.ep));
    if (r->err == UFD_E_UNAUTHORIZED)
        add_header(resp, "WWW-Authenticate", "Bearer realm=\"uflowd\"");
    if (ufd_server_state(r->srv) == UFD_DRAINING)
        add_header(resp, "Connection", "close");
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    ufd_req *r = *con_cls;
    if (!r) {
        if (!(r = req_new(cls, c, url, method)))
            return MHD_NO;
        *con_cls = r;
        return precheck(r) ? reply(r) : MHD_YES;
    }
    if (*upload_size) {
        enum MHD_Result rc = take(r, upload, *upload_size);
        *upload_size = 0;
        return rc;
    }
    if (r->queued) { /* resumed by its worker: the answer is ready */
        r->queued = 0;
        return reply(r);
    }
    dispatch(r);
    return r->queued ? MHD_YES : reply(r);
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
        .request_id = r->id, .method = r->method, .path = r->path,
        .model = r->model >= 0 ? r->route.model : NULL,
        .status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status : 0,
        .error = r->err != UFD_E_NONE ? ufd_err_code(r->err)
                 : toe != MHD_REQUEST_TERMINATED_COMPLETED_OK ? "connection_closed" : NULL,
        .bytes_in = r->bytes_in, .bytes_out = r->bytes_out,
        .queue_ms = r->queue_ms, .inference_ms = r->infer_ms, .total_ms = total * 1e3,
    };
    ufd_log_req(&l);
    req_free(r);
}

void ufd_http_submit(ufd_req *r)
{
    switch (ufd_pool_reserve(r->srv->pool)) {
    case UFD_SUBMIT_OK:
        break;
    case UFD_SUBMIT_FULL:
        ufd_metrics_rejected(UFD_REJECT_QUEUE_FULL);
        r->retry_after = 1;
        ufd_reply_error(r, UFD_E_QUEUE_FULL, "all %d queue slots are taken; retry later", r->srv->cfg->queue_size);
        return;
    default:
        ufd_metrics_rejected(UFD_REJECT_DRAINING);
        r->retry_after = 1;
        ufd_reply_error(r, UFD_E_UNAVAILABLE, "the server is shutting down");
        return;
    }
    /* suspend first: the worker may finish and resume before this thread returns */
    MHD_suspend_connection(r->conn);
    r->queued = 1;
    ufd_pool_push(r->srv->pool, &r->job);
}

const char *ufd_req_query(ufd_req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

void ufd_http_resume(ufd_req *r) { MHD_resume_connection(r->conn); }

void ufd_http_suspend(ufd_req *r)
{
    MHD_suspend_connection(r->conn);
    r->queued = 1;
}

void ufd_http_drop(ufd_job *job, ufd_job_end why)
{
    ufd_req *r = (ufd_req *)job;
    r->queue_ms = (job->t_start - job->t_submit) * 1e3;
    if (why == UFD_JOB_EXPIRED) {
        ufd_metrics_rejected(UFD_REJECT_TIMEOUT);
        ufd_reply_error(r, UFD_E_TIMEOUT, "no worker was free within the %g s request timeout",
                        r->srv->cfg->request_timeout);
    } else {
        ufd_metrics_rejected(UFD_REJECT_DRAINING);
        r->retry_after = 1;
        ufd_reply_error(r, UFD_E_UNAVAILABLE, "the server shut down before a worker was free");
    }
    ufd_http_resume(r);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
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
    h->quiesced_fd = MHD_INVALID_SOCKET;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
        flags |= MHD_USE_EPOLL;
    else if (MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES)
        flags |= MHD_USE_POLL;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned timeout = cfg->request_timeout < 5 ? 5 : cfg->request_timeout > 300 ? 300 : (unsigned)cfg->request_timeout;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL, /* first, to catch everything */
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->io_threads,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                            MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, n, "cannot listen on %s (address in use or not available?)", cfg->listen);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : 0;
    ufd_log(UFD_INFO, "listening on %s (port %d, %u I/O threads, %s)", cfg->listen, *port, cfg->io_threads,
            (flags & MHD_USE_EPOLL) ? "epoll" : (flags & MHD_USE_POLL) ? "poll" : "select");
    return h;
}

void ufd_http_quiesce(ufd_http *h)
{
    if (h && h->quiesced_fd == MHD_INVALID_SOCKET)
        h->quiesced_fd = MHD_quiesce_daemon(h->d);
}

void ufd_http_stop(ufd_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    if (h->quiesced_fd != MHD_INVALID_SOCKET)
        close(h->quiesced_fd);
    free(h);
}
