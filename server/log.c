/* log.c — see log.h. JSON lines are built with jansson so every string is escaped. */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static ufd_log_format format = UFD_LOG_TEXT;
static const char *level_name[] = {"info", "warn", "error"};

void ufd_log_init(ufd_log_format fmt) { format = fmt; }

static void emit(const char *line, size_t n)
{
    /* one write(2) per line: atomic with respect to other threads' lines */
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, line, n);
        if (w <= 0)
            return;
        line += w;
        n -= (size_t)w;
    }
}

/* A JSON string of any bytes: jansson refuses invalid UTF-8 (the field would vanish from
 * the line), so then every byte above 0x7f is written as the text \xNN. */
static json_t *jstr(const char *v)
{
    if (!v)
        return json_null();
    json_t *j = json_string(v);
    if (j)
        return j;
    size_t n = strlen(v);
    char *t = malloc(4 * n + 1);
    if (!t)
        return json_string("(unprintable)");
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        k += (size_t)(*p < 0x80 ? (t[k] = (char)*p, 1) : snprintf(t + k, 5, "\\x%02x", *p));
    t[k] = '\0';
    j = json_string(t);
    free(t);
    return j;
}

static void emit_json(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (s) {
        size_t n = strlen(s);
        s[n] = '\n'; /* replace the terminator; length passed explicitly */
        emit(s, n + 1);
        free(s);
    }
    json_decref(o);
}

/* Text values: quoted when they hold spaces, quotes or '='; control characters dropped. */
static void text_value(char *out, size_t n, const char *v)
{
    int quote = !*v || strpbrk(v, " \"=") != NULL;
    size_t k = 0;
    if (quote && k + 1 < n)
        out[k++] = '"';
    for (; *v && k + 3 < n; v++) {
        if ((unsigned char)*v < 0x20)
            continue;
        if (*v == '"' || *v == '\\')
            out[k++] = '\\';
        out[k++] = *v;
    }
    if (quote && k + 1 < n)
        out[k++] = '"';
    out[k] = '\0';
}

void ufd_log(ufd_log_level lvl, const char *fmt, ...)
{
    char msg[1024], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ufd_wall_time(ts, sizeof ts);
    if (format == UFD_LOG_JSON) {
        json_t *o = json_object();
        json_object_set_new(o, "ts", json_string(ts));
        json_object_set_new(o, "level", json_string(level_name[lvl]));
        json_object_set_new(o, "msg", jstr(msg));
        emit_json(o);
        return;
    }
    char line[1200], q[1100];
    text_value(q, sizeof q, msg);
    int n = snprintf(line, sizeof line, "ts=%s level=%s msg=%s\n", ts, level_name[lvl], q);
    emit(line, n < (int)sizeof line ? (size_t)n : sizeof line - 1);
}

void ufd_log_req(const ufd_log_request *r)
{
    char ts[40];
    ufd_wall_time(ts, sizeof ts);
    if (format == UFD_LOG_JSON) {
        json_t *o = json_object();
        json_object_set_new(o, "ts", json_string(ts));
        json_object_set_new(o, "level", json_string("info"));
        json_object_set_new(o, "msg", json_string("request"));
        json_object_set_new(o, "request_id", jstr(r->request_id));
        json_object_set_new(o, "method", jstr(r->method));
        json_object_set_new(o, "path", jstr(r->path));
        json_object_set_new(o, "model", jstr(r->model));
        json_object_set_new(o, "status", json_integer(r->status));
        if (r->error)
            json_object_set_new(o, "error", jstr(r->error));
        json_object_set_new(o, "bytes_in", json_integer((json_int_t)r->bytes_in));
        json_object_set_new(o, "bytes_out", json_integer((json_int_t)r->bytes_out));
        if (r->queue_ms >= 0)
            json_object_set_new(o, "queue_ms", json_real(r->queue_ms));
        if (r->inference_ms >= 0)
            json_object_set_new(o, "inference_ms", json_real(r->inference_ms));
        json_object_set_new(o, "total_ms", json_real(r->total_ms));
        emit_json(o);
        return;
    }
    char line[2048], path[600], model[200], method[40];
    text_value(path, sizeof path, r->path ? r->path : "");
    text_value(model, sizeof model, r->model ? r->model : "-");
    text_value(method, sizeof method, r->method ? r->method : "");
    int n = snprintf(line, sizeof line,
                     "ts=%s level=info msg=request request_id=%s method=%s path=%s model=%s status=%d",
                     ts, r->request_id, method, path, model, r->status);
    if (r->error)
        n += snprintf(line + n, sizeof line - (size_t)n, " error=%s", r->error);
    n += snprintf(line + n, sizeof line - (size_t)n, " bytes_in=%llu bytes_out=%llu", r->bytes_in, r->bytes_out);
    if (r->queue_ms >= 0)
        n += snprintf(line + n, sizeof line - (size_t)n, " queue_ms=%.3f", r->queue_ms);
    if (r->inference_ms >= 0)
        n += snprintf(line + n, sizeof line - (size_t)n, " inference_ms=%.3f", r->inference_ms);
    n += snprintf(line + n, sizeof line - (size_t)n, " total_ms=%.3f\n", r->total_ms);
    emit(line, n < (int)sizeof line ? (size_t)n : sizeof line - 1);
}
