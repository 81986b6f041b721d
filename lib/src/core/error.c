/* error.c — status strings and the error-message helpers. */
#include "core/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *uf_status_str(uf_status s)
{
    switch (s) {
    case UF_OK: return "ok";
    case UF_ERR_IO: return "i/o error";
    case UF_ERR_FORMAT: return "format error";
    case UF_ERR_CONFIG: return "config error";
    case UF_ERR_TENSOR: return "tensor error";
    case UF_ERR_ARG: return "invalid argument";
    case UF_ERR_IMAGE: return "image error";
    case UF_ERR_NOMEM: return "out of memory";
    case UF_ERR_UNSUPPORTED: return "not supported";
    case UF_ERR_LIMIT: return "limit exceeded";
    case UF_ERR_FORMAT_NOT_ACCEPTED: return "image format not accepted";
    }
    return "unknown error";
}

uf_status uf_err(uf_error *err, uf_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = st;
    }
    return st;
}

void uf_err_prefix(uf_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char pre[UF_ERR_MSG_SIZE], old[UF_ERR_MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    /* A message longer than the buffer is cut; the start names the context, which matters most. */
    if (snprintf(err->msg, sizeof err->msg, "%s: %s", pre, old) >= (int)sizeof err->msg)
        err->msg[sizeof err->msg - 1] = '\0';
}

void *uf_aalloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes) != 0)
        return NULL;
    return p;
}

void uf_afree(void *p) { free(p); }
