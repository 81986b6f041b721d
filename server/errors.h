/* errors.h — every error the daemon answers with: HTTP status and stable machine code (the
 * "code" of {"error": {"code", "message"}} and the `kind` label of uflowd_errors_total). */
#ifndef UFD_ERRORS_H
#define UFD_ERRORS_H

typedef enum ufd_err {
    UFD_E_NONE = 0,
    UFD_E_BAD_REQUEST,       /* 400 malformed request (options, shapes, fields) */
    UFD_E_BAD_JSON,          /* 400 body is not the JSON expected */
    UFD_E_BAD_BASE64,        /* 400 */
    UFD_E_BAD_IMAGE,         /* 400 undecodable, truncated or empty image */
    UFD_E_UNAUTHORIZED,      /* 401 */
    UFD_E_NOT_FOUND,         /* 404 no such endpoint */
    UFD_E_MODEL_NOT_FOUND,   /* 404 */
    UFD_E_METHOD,            /* 405 */
    UFD_E_BODY_TOO_LARGE,    /* 413 body above --max-body */
    UFD_E_IMAGE_TOO_LARGE,   /* 413 image header above --max-pixels */
    UFD_E_MEDIA_TYPE,        /* 415 */
    UFD_E_INTERNAL,          /* 500 a bug */
    UFD_E_NOT_IMPLEMENTED,   /* 501 */
    UFD_E_QUEUE_FULL,        /* 503 + Retry-After */
    UFD_E_UNAVAILABLE,       /* 503 loading or draining */
    UFD_E_TIMEOUT,           /* 504 queue wait + run above --request-timeout */
    UFD_E_COUNT
} ufd_err;

int ufd_err_status(ufd_err e);
const char *ufd_err_code(ufd_err e);

#endif
