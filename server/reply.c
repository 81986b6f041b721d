/* reply.c — see reply.h. */
#include "reply.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_body(ufd_req *r, int status, const char *type, char *text, size_t len, void (*free_fn)(void *))
{
    if (r->resp && r->resp_free)
        r->resp_free(r->resp);
    r->status = status;
    r->resp = text;
    r->resp_len = len;
    r->resp_free = free_fn;
    r->resp_type = type;
}

void ufd_reply_text(ufd_req *r, int status, const char *type, char *text, size_t len, void (*free_fn)(void *))
{
    set_body(r, status, type, text, len, free_fn);
}

void ufd_reply_json(ufd_req *r, int status, json_t *body)
{
    char *s = body ? json_dumps(body, UFD_JSON_FLAGS) : NULL;
    json_decref(body);
    if (!s) {
        static char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        r->err = UFD_E_INTERNAL;
        set_body(r, 500, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    set_body(r, status, "application/json", s, strlen(s), free);
}

char *ufd_error_body(ufd_endpoint ep, ufd_err e, const char *msg, const char *rid, size_t *len)
{
    char m[768];
    snprintf(m, sizeof m, "%s", msg);
    for (char *p = m; *p; p++) /* messages may quote client bytes: keep them printable ASCII */
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    json_t *o = ufd_endpoint_is_v2(ep) ? json_pack("{s:s}", "error", m)
                                       : json_pack("{s:{s:s,s:s},s:s}", "error", "code", ufd_err_code(e), "message", m,
                                                   "request_id", rid);
    char *s = o ? json_dumps(o, UFD_JSON_FLAGS) : NULL;
    json_decref(o);
    *len = s ? strlen(s) : 0;
    return s;
}

void ufd_reply_error(ufd_req *r, ufd_err e, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->err = e;
    size_t len;
    char *s = ufd_error_body(r->route.ep, e, msg, r->id, &len);
    if (!s) {
        static char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        set_body(r, 500, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    set_body(r, ufd_err_status(e), "application/json", s, len, free);
}

void ufd_reply_jw(ufd_req *r, int status, ufd_jw *jw)
{
    int nonfinite = ufd_jw_nonfinite(jw);
    size_t len;
    char *s = ufd_jw_take(jw, &len);
    if (!s) {
        r->retry_after = 1;
        ufd_reply_error(r, UFD_E_UNAVAILABLE, "out of memory for the answer");
    } else if (nonfinite) {
        free(s);
        ufd_reply_error(r, UFD_E_INTERNAL, "the model produced a value that is not a finite number");
    } else {
        r->err = UFD_E_NONE;
        set_body(r, status, "application/json", s, len, free);
    }
}
