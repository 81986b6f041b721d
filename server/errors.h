/* errors.h — every error the daemon answers with: HTTP status and stable machine code (the
 * "code" of {"error": {"code", "message"}} and the `kind` label of uflowd_errors_total),
 * and the one place where a libuflow status becomes an HTTP error. */
#ifndef UFD_ERRORS_H
#define UFD_ERRORS_H

#include "uflow.h"

typedef enum ufd_err {
    UFD_E_NONE = 0,
    UFD_E_BAD_REQUEST,       /* 400 malformed request (options, shapes, fields) */
    UFD_E_BAD_JSON,          /* 400 body is not the JSON expected */
    UFD_E_BAD_BASE64,        /* 400 */
    UFD_E_BAD_IMAGE,         /* 400 undecodable, truncated or empty image */
    UFD_E_BAD_HTTP,          /* 400 malformed request line, headers or framing */
    UFD_E_UNAUTHORIZED,      /* 401 */
    UFD_E_NOT_FOUND,         /* 404 no such endpoint */
    UFD_E_MODEL_NOT_FOUND,   /* 404 */
    UFD_E_METHOD,            /* 405 */
    UFD_E_REQUEST_TIMEOUT,   /* 408 request head not complete in time */
    UFD_E_BODY_TOO_LARGE,    /* 413 body above --max-body */
    UFD_E_IMAGE_TOO_LARGE,   /* 413 image header above --max-pixels */
    UFD_E_URI_TOO_LONG,      /* 414 */
    UFD_E_MEDIA_TYPE,        /* 415 */
    UFD_E_HEADERS_TOO_LARGE, /* 431 */
    UFD_E_INTERNAL,          /* 500 a bug */
    UFD_E_NOT_IMPLEMENTED,   /* 501 */
    UFD_E_QUEUE_FULL,        /* 503 + Retry-After */
    UFD_E_UNAVAILABLE,       /* 503 loading or draining */
    UFD_E_TOO_MANY_CONNECTIONS, /* 503 connection limits (total or per client address) */
    UFD_E_TIMEOUT,           /* 504 queue wait + run above --request-timeout */
    UFD_E_HTTP_VERSION,      /* 505 */
    UFD_E_COUNT
} ufd_err;

int ufd_err_status(ufd_err e);
const char *ufd_err_code(ufd_err e);

/* The one place where a libuflow status from decoding a request's image becomes an answer:
 * over --max-pixels -> 413 image_too_large, a format outside the loader allow-list
 * (UF_ERR_FORMAT_NOT_ACCEPTED) -> 415 unsupported_media_type, out of memory -> 503,
 * anything else the client sent -> 400. */
ufd_err ufd_err_of_image_status(uf_status st);

#endif
