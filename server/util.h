/* util.h — small helpers shared by the daemon's modules: clocks and request ids. */
#ifndef UFD_UTIL_H
#define UFD_UTIL_H

#include <stddef.h>

/* Monotonic seconds (for durations and deadlines). */
double ufd_now(void);

/* Wall-clock time as RFC 3339 UTC with milliseconds into buf (>= 32 bytes). */
void ufd_wall_time(char *buf, size_t n);

#define UFD_REQUEST_ID_MAX 64
/* A fresh 16-hex-digit request id (unique within the process, unpredictable across runs). */
void ufd_request_id_new(char buf[UFD_REQUEST_ID_MAX]);
/* 1 when a client-supplied X-Request-Id is safe to echo and log: 1..63 chars of
 * [A-Za-z0-9._:-]. */
int ufd_request_id_valid(const char *s);

#endif
