/* reply.h — setting a request's answer: JSON bodies (small ones as jansson trees, inference
 * answers as text from encode.h), error bodies (v1: {"error": {"code", "message"},
 * "request_id"}, KServe v2: {"error": "..."}), plain text. */
#ifndef UFD_REPLY_H
#define UFD_REPLY_H

#include <jansson.h>

#include "encode.h"
#include "request.h"

/* Flags for every JSON answer: compact, keys in insertion order, floats round-trip float32. */
#define UFD_JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))

/* Answer `status` with body (reference stolen). */
void ufd_reply_json(ufd_req *r, int status, json_t *body);
/* Answer error e with a printf-style message; records r->err. */
void ufd_reply_error(ufd_req *r, ufd_err e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Answer with a text body the caller allocated; free_fn releases it (NULL: static). */
void ufd_reply_text(ufd_req *r, int status, const char *type, char *text, size_t len, void (*free_fn)(void *));

/* Answer `status` with the text of jw (taken; jw is empty afterwards). A writer that ran out
 * of memory gives 503, one that met a non-finite number 500: a numeric field is never null. */
void ufd_reply_jw(ufd_req *r, int status, ufd_jw *jw);

/* The error body of e for a request to endpoint ep with id rid (malloc'd JSON text, *len
 * bytes; NULL if out of memory): for HTTP errors answered before a request exists. */
char *ufd_error_body(ufd_endpoint ep, ufd_err e, const char *msg, const char *rid, size_t *len);

#endif
