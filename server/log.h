/* log.h — structured logs on stderr: key=value text or JSON lines, one line per event and
 * one per request. Lines are written with a single write so threads never interleave. */
#ifndef UFD_LOG_H
#define UFD_LOG_H

#include "config.h"

typedef enum ufd_log_level { UFD_INFO = 0, UFD_WARN, UFD_ERROR } ufd_log_level;

void ufd_log_init(ufd_log_format fmt);

/* An event: msg is a printf format; the result becomes the "msg" field. */
void ufd_log(ufd_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The per-request line (no image data, no query string, no headers but the id). */
typedef struct ufd_log_request {
    const char *request_id;
    const char *method;
    const char *path;
    const char *model;           /* NULL when the endpoint has none */
    int status;
    const char *error;           /* error code for 4xx/5xx, else NULL */
    unsigned long long bytes_in, bytes_out;
    double queue_ms, inference_ms, total_ms;  /* < 0: not applicable */
} ufd_log_request;

void ufd_log_req(const ufd_log_request *r);

#endif
