/* request.h — one HTTP request from its headers to its completion. Owned by the I/O thread
 * that received it, except while it sits in the worker pool (its connection suspended):
 * then the worker owns it until it calls ufd_http_resume(), which must be its last touch. */
#ifndef UFD_REQUEST_H
#define UFD_REQUEST_H

#include <stddef.h>

#include "body.h"
#include "errors.h"
#include "options.h"
#include "route.h"
#include "server.h"
#include "util.h"
#include "workers.h"

struct MHD_Connection;
struct MHD_PostProcessor;

#define UFD_FORM_OPT_MAX 64

typedef struct ufd_req {
    ufd_job job;                   /* the worker's view; set run/drop, then ufd_http_submit */
    ufd_server *srv;
    struct MHD_Connection *conn;
    char id[UFD_REQUEST_ID_MAX];   /* X-Request-Id (client's if valid, else generated) */
    char method[12];
    char path[512];                /* decoded path, for logs */
    ufd_route route;
    ufd_models *models;            /* the snapshot this request uses (a reference), or NULL */
    int model;                     /* index in `models`, or -1 */
    struct ufd_req *reload_next;   /* POST /v1/models/reload waiting for its reload */
    unsigned long reload_ticket;
    double t_start;                /* monotonic, when the headers arrived */

    /* request body */
    ufd_body_kind body_kind;
    ufd_buf body;                  /* raw image or JSON; for multipart the field "image" */
    unsigned long long bytes_in, bytes_out;
    int body_too_large, body_oom, form_bad, form_has_image;
    struct MHD_PostProcessor *pp;
    char form_opt[6][UFD_FORM_OPT_MAX]; /* multipart option fields, by ufd_predict_opt_names */
    ufd_predict_opts opts;         /* from the query string (and the form) */

    /* state and response */
    int queued;                    /* suspended in the pool; answer when resumed */
    int status;                    /* 0 until a response is ready */
    char *resp;                    /* body, released with resp_free */
    size_t resp_len;
    void (*resp_free)(void *);
    const char *resp_type;
    const char *const *headers;    /* extra response headers: name, value, ..., NULL (static) */
    ufd_err err;                   /* for metrics and the log line */
    int retry_after;               /* seconds, 0 = no header */
    double queue_ms, infer_ms;     /* -1 when not applicable */
} ufd_req;

/* A query-string argument (decoded), or NULL. I/O thread only. */
const char *ufd_req_query(ufd_req *r, const char *key);

/* Submit r->job (run/drop set by the caller) to the pool: suspends the connection, or sets
 * a 503 answer when the queue is full or the server drains. */
void ufd_http_submit(ufd_req *r);
/* Suspend r's connection until ufd_http_resume (for answers made on another thread that
 * is not the worker pool: the model reloader). */
void ufd_http_suspend(ufd_req *r);
/* From the worker, as its very last use of r: hand r back to its I/O thread. */
void ufd_http_resume(ufd_req *r);
/* A generic drop callback: 504 when the job expired in the queue, 503 when cancelled. */
void ufd_http_drop(ufd_job *job, ufd_job_end why);

#endif
