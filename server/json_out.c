/* json_out.c — see json_out.h. */
#include "json_out.h"

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

void ufd_reply_error(ufd_req *r, ufd_err e, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) /* messages may quote client bytes: keep them valid UTF-8 */
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    r->err = e;
    json_t *o;
    if (ufd_endpoint_is_v2(r->route.ep)) {
        o = json_pack("{s:s}", "error", msg);
    } else {
        o = json_pack("{s:{s:s,s:s},s:s}", "error", "code", ufd_err_code(e), "message", msg, "request_id", r->id);
    }
    ufd_reply_json(r, ufd_err_status(e), o);
}

json_t *ufd_json_num(double v) { return isfinite(v) ? json_real(v) : json_null(); }
