/* jscan.c — see jscan.h. */
#include "jscan.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ufd_js_init(ufd_js *s, const void *buf, size_t len)
{
    s->base = s->p = buf;
    s->end = s->p + len;
    s->failed = 0;
    s->err[0] = '\0';
}

int ufd_js_fail(ufd_js *s, const char *fmt, ...)
{
    if (!s->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->err, sizeof s->err, fmt, ap);
        va_end(ap);
        s->failed = 1;
    }
    return -1;
}

const char *ufd_js_error(const ufd_js *s) { return s->err[0] ? s->err : "invalid JSON"; }
size_t ufd_js_offset(const ufd_js *s) { return (size_t)(s->p - s->base); }

static void ws(ufd_js *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int syntax(ufd_js *s, const char *what)
{
    return ufd_js_fail(s, "invalid JSON at byte %zu: %s", ufd_js_offset(s), what);
}

ufd_js_kind ufd_js_peek(ufd_js *s)
{
    if (s->failed)
        return UFD_JS_ERROR;
    ws(s);
    if (s->p == s->end)
        return UFD_JS_END;
    switch (*s->p) {
    case '{': return UFD_JS_OBJECT;
    case '[': return UFD_JS_ARRAY;
    case '"': return UFD_JS_STRING;
    case 't': return UFD_JS_TRUE;
    case 'f': return UFD_JS_FALSE;
    case 'n': return UFD_JS_NULL;
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return UFD_JS_NUMBER;
        syntax(s, "unexpected character");
        return UFD_JS_ERROR;
    }
}

int ufd_js_finish(ufd_js *s)
{
    if (s->failed)
        return -1;
    ws(s);
    return s->p == s->end ? 0 : syntax(s, "data after the JSON value");
}

/* ---- strings ---------------------------------------------------------------------------- */

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (d > 15)
            return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at p (< end), 0 if invalid (overlong, surrogate, > U+10FFFF). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || (size_t)(end - p) < n)
        return 0;
    unsigned cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Validate the string at s->p ('"'); with out != NULL also unescape into out (which has
 * room for the raw length). Sets *len (decoded length) and *esc (any escape seen) and
 * leaves s->p after the closing quote. */
static int scan_string(ufd_js *s, char *out, size_t *len, int *esc)
{
    const unsigned char *p = (const unsigned char *)s->p + 1, *end = (const unsigned char *)s->end;
    size_t k = 0;
    *esc = 0;
    for (;;) {
        if (p >= end) {
            s->p = (const char *)p;
            return syntax(s, "unterminated string");
        }
        unsigned c = *p;
        if (c == '"')
            break;
        if (c < 0x20) {
            s->p = (const char *)p;
            return syntax(s, "control character in a string");
        }
        if (c != '\\') {
            size_t n = utf8_len(p, end);
            if (n == 0) {
                s->p = (const char *)p;
                return syntax(s, "invalid UTF-8 in a string");
            }
            if (out)
                memcpy(out + k, p, n);
            k += n;
            p += n;
            continue;
        }
        *esc = 1;
        if (end - p < 2) {
            s->p = (const char *)p;
            return syntax(s, "unterminated escape");
        }
        static const char names[] = "\"\\/bfnrt", map[] = "\"\\/\b\f\n\r\t";
        unsigned e = p[1], cp;
        const char *simple = e ? strchr(names, (int)e) : NULL;
        if (simple) {
            if (out)
                out[k] = map[simple - names];
            k++;
            p += 2;
            continue;
        }
        if (e != 'u' || end - p < 6 || hex4((const char *)p + 2, &cp) != 0) {
            s->p = (const char *)p;
            return syntax(s, "invalid escape");
        }
        p += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4((const char *)p + 2, &lo) != 0 || lo < 0xDC00 ||
                lo > 0xDFFF) {
                s->p = (const char *)p;
                return syntax(s, "unpaired surrogate escape");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            s->p = (const char *)p;
            return syntax(s, "unpaired surrogate escape");
        }
        if (cp == 0) {
            s->p = (const char *)p;
            return syntax(s, "\\u0000 is not accepted");
        }
        char tmp[4];
        size_t n = put_utf8(out ? out + k : tmp, cp);
        k += n;
    }
    s->p = (const char *)p + 1;
    *len = k;
    return 0;
}

int ufd_js_string(ufd_js *s, const char **out, size_t *len, char **owned)
{
    *owned = NULL;
    if (ufd_js_peek(s) != UFD_JS_STRING)
        return s->failed ? -1 : ufd_js_fail(s, "expected a string at byte %zu", ufd_js_offset(s));
    const char *start = s->p;
    int esc;
    if (scan_string(s, NULL, len, &esc) != 0)
        return -1;
    if (!esc) {
        *out = start + 1;
        return 0;
    }
    size_t raw = (size_t)(s->p - start);
    char *buf = malloc(raw + 1);
    if (!buf)
        return ufd_js_fail(s, "out of memory");
    s->p = start;
    if (scan_string(s, buf, len, &esc) != 0) {
        free(buf);
        return -1;
    }
    buf[*len] = '\0';
    *out = *owned = buf;
    return 0;
}

int ufd_js_string_buf(ufd_js *s, char *buf, size_t n)
{
    const char *v;
    size_t len;
    char *owned;
    if (ufd_js_string(s, &v, &len, &owned) != 0)
        return -1;
    int rc = 0;
    if (len >= n)
        rc = ufd_js_fail(s, "string of %zu bytes is longer than %zu", len, n - 1);
    else {
        memcpy(buf, v, len);
        buf[len] = '\0';
    }
    free(owned);
    return rc;
}

/* ---- objects and arrays ------------------------------------------------------------- */

int ufd_js_object(ufd_js *s, ufd_js_obj *o)
{
    o->n = o->done = 0;
    if (ufd_js_peek(s) != UFD_JS_OBJECT)
        return s->failed ? -1 : ufd_js_fail(s, "expected an object at byte %zu", ufd_js_offset(s));
    s->p++;
    return 0;
}

int ufd_js_next_key(ufd_js *s, ufd_js_obj *o, char key[UFD_JS_KEY_MAX])
{
    if (s->failed)
        return -1;
    if (o->done)
        return 0;
    ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        o->done = 1;
        return 0;
    }
    if (o->n > 0) {
        if (s->p >= s->end || *s->p != ',')
            return syntax(s, "expected ',' or '}' in an object");
        s->p++;
        ws(s);
    }
    if (s->p >= s->end || *s->p != '"')
        return syntax(s, "expected a key");
    const char *v;
    size_t len;
    char *owned;
    if (ufd_js_string(s, &v, &len, &owned) != 0)
        return -1;
    if (len >= UFD_JS_KEY_MAX) {
        free(owned);
        return ufd_js_fail(s, "key longer than %d bytes at byte %zu", UFD_JS_KEY_MAX - 1, ufd_js_offset(s));
    }
    memcpy(key, v, len);
    key[len] = '\0';
    free(owned);
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i], key))
            return ufd_js_fail(s, "duplicate key '%s'", key);
    if (o->n == UFD_JS_KEYS_MAX)
        return ufd_js_fail(s, "more than %d keys in an object", UFD_JS_KEYS_MAX);
    strcpy(o->keys[o->n++], key);
    ws(s);
    if (s->p >= s->end || *s->p != ':')
        return syntax(s, "expected ':' after a key");
    s->p++;
    return 1;
}

int ufd_js_array(ufd_js *s, ufd_js_arr *a)
{
    a->n = a->done = 0;
    if (ufd_js_peek(s) != UFD_JS_ARRAY)
        return s->failed ? -1 : ufd_js_fail(s, "expected an array at byte %zu", ufd_js_offset(s));
    s->p++;
    return 0;
}

int ufd_js_next(ufd_js *s, ufd_js_arr *a)
{
    if (s->failed)
        return -1;
    if (a->done)
        return 0;
    ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        a->done = 1;
        return 0;
    }
    if (a->n > 0) {
        if (s->p >= s->end || *s->p != ',')
            return syntax(s, "expected ',' or ']' in an array");
        s->p++;
    }
    a->n++;
    return 1;
}

/* ---- scalars ------------------------------------------------------------------------- */

/* The extent of a JSON number at s->p; -1 if the grammar is not followed. */
static int number_span(ufd_js *s, size_t *n, int *integral)
{
    const char *p = s->p, *e = s->end;
    *integral = 1;
    if (p < e && *p == '-')
        p++;
    if (p < e && *p == '0')
        p++;
    else if (p < e && *p >= '1' && *p <= '9')
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    else
        return syntax(s, "invalid number");
    if (p < e && *p == '.') {
        *integral = 0;
        p++;
        if (p >= e || *p < '0' || *p > '9')
            return syntax(s, "invalid number");
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        *integral = 0;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || *p < '0' || *p > '9')
            return syntax(s, "invalid number");
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    *n = (size_t)(p - s->p);
    return 0;
}

int ufd_js_number(ufd_js *s, double *v)
{
    if (ufd_js_peek(s) != UFD_JS_NUMBER)
        return s->failed ? -1 : ufd_js_fail(s, "expected a number at byte %zu", ufd_js_offset(s));
    size_t n;
    int integral;
    if (number_span(s, &n, &integral) != 0)
        return -1;
    char buf[64];
    if (n >= sizeof buf)
        return ufd_js_fail(s, "number longer than %zu characters at byte %zu", sizeof buf - 1, ufd_js_offset(s));
    memcpy(buf, s->p, n);
    buf[n] = '\0';
    errno = 0;
    double d = strtod(buf, NULL);
    if (!isfinite(d) || (errno == ERANGE && fabs(d) > 1))
        return ufd_js_fail(s, "number %s is out of range", buf);
    s->p += n;
    *v = d;
    return 0;
}

int ufd_js_int(ufd_js *s, long long lo, long long hi, long long *v)
{
    if (ufd_js_peek(s) != UFD_JS_NUMBER)
        return s->failed ? -1 : ufd_js_fail(s, "expected an integer at byte %zu", ufd_js_offset(s));
    size_t n;
    int integral;
    if (number_span(s, &n, &integral) != 0)
        return -1;
    if (!integral || n > 19)
        return ufd_js_fail(s, "expected an integer in [%lld, %lld] at byte %zu", lo, hi, ufd_js_offset(s));
    char buf[24];
    memcpy(buf, s->p, n);
    buf[n] = '\0';
    errno = 0;
    long long x = strtoll(buf, NULL, 10);
    if (errno || x < lo || x > hi)
        return ufd_js_fail(s, "integer %s is outside [%lld, %lld]", buf, lo, hi);
    s->p += n;
    *v = x;
    return 0;
}

static int literal(ufd_js *s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return syntax(s, "invalid literal");
    s->p += n;
    return 0;
}

int ufd_js_bool(ufd_js *s, int *v)
{
    ufd_js_kind k = ufd_js_peek(s);
    if (k != UFD_JS_TRUE && k != UFD_JS_FALSE)
        return s->failed ? -1 : ufd_js_fail(s, "expected true or false at byte %zu", ufd_js_offset(s));
    *v = k == UFD_JS_TRUE;
    return literal(s, *v ? "true" : "false");
}

int ufd_js_null(ufd_js *s)
{
    if (ufd_js_peek(s) != UFD_JS_NULL)
        return 0;
    return literal(s, "null") == 0 ? 1 : 0;
}

/* Iterative, so the depth limit and not the C stack bounds nesting. */
int ufd_js_skip(ufd_js *s)
{
    unsigned char stack[UFD_JS_DEPTH_MAX]; /* '{' or '[' per open level */
    int depth = 0, need_value = 1;
    for (;;) {
        if (need_value) {
            ufd_js_kind k = ufd_js_peek(s);
            size_t n, len;
            int integral, esc;
            switch (k) {
            case UFD_JS_OBJECT:
            case UFD_JS_ARRAY:
                if (depth == UFD_JS_DEPTH_MAX)
                    return ufd_js_fail(s, "JSON nested deeper than %d levels", UFD_JS_DEPTH_MAX);
                stack[depth++] = (unsigned char)*s->p++;
                ws(s);
                if (s->p < s->end && *s->p == (stack[depth - 1] == '{' ? '}' : ']')) {
                    s->p++;
                    depth--;
                    need_value = 0;
                    break;
                }
                if (stack[depth - 1] == '{') {
                    if (s->p >= s->end || *s->p != '"')
                        return syntax(s, "expected a key");
                    if (scan_string(s, NULL, &len, &esc) != 0)
                        return -1;
                    ws(s);
                    if (s->p >= s->end || *s->p != ':')
                        return syntax(s, "expected ':' after a key");
                    s->p++;
                }
                continue; /* a value follows */
            case UFD_JS_STRING:
                if (scan_string(s, NULL, &len, &esc) != 0)
                    return -1;
                break;
            case UFD_JS_NUMBER:
                if (number_span(s, &n, &integral) != 0)
                    return -1;
                s->p += n;
                break;
            case UFD_JS_TRUE:
                if (literal(s, "true") != 0)
                    return -1;
                break;
            case UFD_JS_FALSE:
                if (literal(s, "false") != 0)
                    return -1;
                break;
            case UFD_JS_NULL:
                if (literal(s, "null") != 0)
                    return -1;
                break;
            case UFD_JS_END:
                return syntax(s, "unexpected end of input");
            default:
                return -1;
            }
            need_value = 0;
        }
        if (depth == 0)
            return 0;
        /* after a value inside a container: ',' or its closing bracket */
        ws(s);
        char close = stack[depth - 1] == '{' ? '}' : ']';
        if (s->p < s->end && *s->p == close) {
            s->p++;
            depth--;
            continue;
        }
        if (s->p >= s->end || *s->p != ',')
            return syntax(s, "expected ',' or a closing bracket");
        s->p++;
        if (stack[depth - 1] == '{') {
            ws(s);
            size_t len;
            int esc;
            if (s->p >= s->end || *s->p != '"')
                return syntax(s, "expected a key");
            if (scan_string(s, NULL, &len, &esc) != 0)
                return -1;
            ws(s);
            if (s->p >= s->end || *s->p != ':')
                return syntax(s, "expected ':' after a key");
            s->p++;
        }
        need_value = 1;
    }
}
