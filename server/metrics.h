/* metrics.h — Prometheus counters, gauges and histograms (text exposition format 0.0.4,
 * base units, `_total` counters). Process-wide; every function is thread-safe. */
#ifndef UFD_METRICS_H
#define UFD_METRICS_H

#include <stddef.h>

#include "errors.h"
#include "models.h"
#include "route.h"

typedef enum ufd_reject {
    UFD_REJECT_QUEUE_FULL = 0,   /* 503 */
    UFD_REJECT_DRAINING,         /* 503 after SIGTERM */
    UFD_REJECT_NOT_READY,        /* 503 while loading */
    UFD_REJECT_TIMEOUT,          /* 504 */
    UFD_REJECT_BODY_TOO_LARGE,   /* 413 from Content-Length or while reading */
    UFD_REJECT_HEADER_TIMEOUT,   /* 408: head not complete within --header-timeout */
    UFD_REJECT_EVICTED,          /* 408: slow head closed to keep the connection reserve free */
    UFD_REJECT_CONNECTIONS,      /* 503: --max-connections reached */
    UFD_REJECT_PER_IP,           /* 503: --max-connections-per-ip reached */
    UFD_REJECT_SLOW_BODY,        /* connection closed: body below --min-body-rate */
    UFD_REJECT_COUNT
} ufd_reject;

void ufd_metrics_init(void);
void ufd_metrics_free(void);
void ufd_metrics_load_failures(int n);
/* A reload ran: ok = every file loaded (else some failed or it was refused). */
void ufd_metrics_reload(int ok);

/* model = a served model's name (registry names only: the label set stays bounded), or
 * NULL when the request names none (or an unknown one). */
void ufd_metrics_request(const char *model, ufd_endpoint ep, int status, double seconds);
void ufd_metrics_inference(const char *model, double seconds);
void ufd_metrics_queue_wait(double seconds);
void ufd_metrics_rejected(ufd_reject why);
void ufd_metrics_error(ufd_err e);

/* Values sampled when /metrics is scraped. */
typedef struct ufd_metrics_gauges {
    int queue_depth, workers_busy, workers, inflight, ready;
    int conns_head, conns_open;  /* connections sending their head; all open ones */
} ufd_metrics_gauges;

/* The exposition text (malloc'd, *len bytes); ms: the current registry (NULL while loading). */
char *ufd_metrics_render(const ufd_metrics_gauges *g, const ufd_models *ms, size_t *len);

#endif
