/* json_out.h — setting a request's answer: JSON bodies, error bodies (v1:
 * {"error": {"code", "message"}, "request_id"}, KServe v2: {"error": "..."}), plain text. */
#ifndef UFD_JSON_OUT_H
#define UFD_JSON_OUT_H

#include <jansson.h>

#include "request.h"

/* Flags for every JSON answer: compact, keys in insertion order, floats round-trip float32. */
#define UFD_JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))

/* Answer `status` with body (reference stolen). */
void ufd_reply_json(ufd_req *r, int status, json_t *body);
/* Answer error e with a printf-style message; records r->err. */
void ufd_reply_error(ufd_req *r, ufd_err e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Answer with a text body the caller allocated; free_fn releases it (NULL: static). */
void ufd_reply_text(ufd_req *r, int status, const char *type, char *text, size_t len, void (*free_fn)(void *));

/* A JSON number, or null when v is not finite (jansson refuses NaN/inf). */
json_t *ufd_json_num(double v);

#endif
