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
    UFD_REJECT_COUNT
} ufd_reject;

void ufd_metrics_init(void);
void ufd_metrics_free(void);
/* The served models (names label per-model series); call before the server turns ready. */
void ufd_metrics_set_models(const ufd_models *ms);
void ufd_metrics_load_failures(int n);

/* model = index in the registry, or -1 when the request names none (or an unknown one). */
void ufd_metrics_request(int model, ufd_endpoint ep, int status, double seconds);
void ufd_metrics_inference(int model, double seconds);
void ufd_metrics_queue_wait(double seconds);
void ufd_metrics_rejected(ufd_reject why);
void ufd_metrics_error(ufd_err e);

/* Values sampled when /metrics is scraped. */
typedef struct ufd_metrics_gauges {
    int queue_depth, workers_busy, workers, inflight, ready;
} ufd_metrics_gauges;

/* The exposition text (malloc'd, *len bytes). */
char *ufd_metrics_render(const ufd_metrics_gauges *g, size_t *len);

#endif
