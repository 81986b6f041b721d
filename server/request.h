/* request.h — one HTTP request from its head to its completion, independent of the HTTP
 * library: the transport (http.c) fills in the target and the headers uflowd reads, feeds
 * the body, and sends the answer set here. Owned by the I/O thread that received it, except
 * while it waits for a worker or the reloader (its connection suspended): then that thread
 * owns it until it calls ufd_req_resume(), which must be its last touch. */
#ifndef UFD_REQUEST_H
#define UFD_REQUEST_H

#include <stddef.h>

#include "body.h"
#include "errors.h"
#include "options.h"
#include "queue.h"
#include "route.h"
#include "server.h"
#include "target.h"
#include "util.h"

struct ufd_mp;
typedef struct ufd_req ufd_req;

#define UFD_FORM_OPT_MAX 64

/* The request headers uflowd reads (NULL when absent; owned by the transport, valid until
 * the request completes). */
typedef struct ufd_req_headers {
    const char *authorization, *x_api_key, *content_type, *content_length, *request_id, *accept;
    const char *inference_header_length; /* KServe binary extension */
} ufd_req_headers;

/* How the transport suspends and resumes the connection around deferred answers. */
typedef struct ufd_transport {
    void (*resume)(ufd_req *r);  /* from any thread: the answer is set, send it */
} ufd_transport;

struct ufd_req {
    ufd_job job;                   /* the worker's view (job.h) */
    ufd_server *srv;
    void *conn;                    /* the transport's connection */
    const ufd_transport *tp;
    char id[UFD_REQUEST_ID_MAX];   /* X-Request-Id (client's if valid, else generated) */
    char method[16];
    ufd_target target;             /* parsed request target (path, query) */
    int target_ok;                 /* 0: target_err holds why it was refused */
    char target_err[160];
    ufd_req_headers h;
    ufd_route route;
    ufd_models *models;            /* the snapshot this request uses (a reference), or NULL */
    int model;                     /* index in `models`, or -1 */
    struct ufd_req *reload_next;   /* POST /v1/models/reload waiting for its reload */
    unsigned long reload_ticket;
    double t_start;                /* monotonic, when the request line arrived */

    /* request body */
    ufd_body_kind body_kind;
    ufd_buf body;                  /* raw image or JSON; for multipart the field "image" */
    unsigned long long bytes_in, bytes_out;
    int body_too_large, body_oom, form_bad, form_has_image, form_in_image;
    char form_err[160];
    struct ufd_mp *mp;
    int form_opt_index;            /* option field being read, -1 none */
    unsigned form_opt_seen;        /* option fields met so far (bit per option) */
    char form_opt[6][UFD_FORM_OPT_MAX]; /* multipart option fields, by ufd_predict_opt_names */
    ufd_predict_opts opts;         /* from the query string (and the form) */

    /* deferred answers: start(r) runs on the I/O thread once the connection is suspended */
    void (*start)(ufd_req *r);
    void (*work)(ufd_req *r, struct ufd_worker *w);   /* job.h */
    int queued;                    /* suspended; answer when resumed */
    int head_done, body_done;      /* transport's progress through the life cycle */

    /* the answer */
    int status;                    /* 0 until a response is ready */
    char *resp;                    /* body, released with resp_free */
    size_t resp_len;
    void (*resp_free)(void *);
    const char *resp_type;
    size_t inference_header_len;   /* > 0: KServe binary answer, JSON header of this length */
    const char *const *headers;    /* extra response headers: name, value, ..., NULL (static) */
    ufd_err err;                   /* for metrics and the log line */
    int retry_after;               /* seconds, 0 = no header */
    double queue_ms, infer_ms;     /* -1 when not applicable */
};

/* A request for the target `raw_target` (as sent; the method follows with the headers);
 * NULL if out of memory. Counts as in flight until ufd_req_free. */
ufd_req *ufd_req_new(ufd_server *srv, const char *raw_target);
void ufd_req_free(ufd_req *r);

/* A query-string parameter (decoded), or NULL. */
static inline const char *ufd_req_query(const ufd_req *r, const char *key)
{
    return ufd_target_arg(&r->target, key);
}

/* Answer later: once the transport has suspended the connection it calls start(r) on the
 * I/O thread (which hands r to a worker or the reloader); whoever then sets the answer
 * calls ufd_req_resume(r) as its last use of r. */
void ufd_req_defer(ufd_req *r, void (*start)(ufd_req *r));
static inline void ufd_req_resume(ufd_req *r) { r->tp->resume(r); }

#endif
