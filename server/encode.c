/* encode.c — see encode.h. */
#include "encode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ufd_jw_init(ufd_jw *w)
{
    memset(w, 0, sizeof *w);
    w->first[0] = 1;
}

void ufd_jw_free(ufd_jw *w)
{
    free(w->buf);
    ufd_jw_init(w);
}

char *ufd_jw_take(ufd_jw *w, size_t *len)
{
    char *s = w->oom ? NULL : w->buf;
    *len = s ? w->len : 0;
    if (!s)
        free(w->buf);
    w->buf = NULL;
    ufd_jw_init(w);
    return s;
}

/* Room for n more bytes (plus the terminator); 0 or -1 (oom recorded). */
static int room(ufd_jw *w, size_t n)
{
    if (w->oom)
        return -1;
    if (w->len + n + 1 <= w->cap)
        return 0;
    size_t nc = w->cap ? w->cap : 4096;
    while (nc < w->len + n + 1)
        nc *= 2;
    char *b = realloc(w->buf, nc);
    if (!b) {
        w->oom = 1;
        return -1;
    }
    w->buf = b;
    w->cap = nc;
    return 0;
}

static void put(ufd_jw *w, const char *s, size_t n)
{
    if (room(w, n) != 0)
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

/* Separator before a value: a comma unless it is the first at its level or follows a key. */
static void sep(ufd_jw *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (!w->first[w->depth])
        put(w, ",", 1);
    w->first[w->depth] = 0;
}

static void open_(ufd_jw *w, char c)
{
    sep(w);
    put(w, &c, 1);
    if (w->depth + 1 < UFD_JW_DEPTH)
        w->first[++w->depth] = 1;
    else
        w->oom = 1; /* deeper than any answer uflowd writes: a bug */
}

static void close_(ufd_jw *w, char c)
{
    put(w, &c, 1);
    if (w->depth > 0)
        w->depth--;
}

void ufd_jw_obj(ufd_jw *w) { open_(w, '{'); }
void ufd_jw_obj_end(ufd_jw *w) { close_(w, '}'); }
void ufd_jw_arr(ufd_jw *w) { open_(w, '['); }
void ufd_jw_arr_end(ufd_jw *w) { close_(w, ']'); }

void ufd_jw_key(ufd_jw *w, const char *key)
{
    sep(w);
    put(w, "\"", 1);
    put(w, key, strlen(key));
    put(w, "\":", 2);
    w->after_key = 1;
}

/* Length of a valid UTF-8 sequence at p, 0 if invalid. */
static size_t u8len(const unsigned char *p, size_t left)
{
    unsigned c = p[0];
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || left < n)
        return 0;
    unsigned cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    return cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ? 0 : n;
}

void ufd_jw_strn(ufd_jw *w, const char *s, size_t n)
{
    sep(w);
    put(w, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        put(w, s + i, run - i);
        i = run;
        if (i >= n)
            break;
        unsigned c = p[i];
        char e[8];
        if (c == '"' || c == '\\') {
            e[0] = '\\', e[1] = (char)c;
            put(w, e, 2);
            i++;
        } else if (c < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", c);
            put(w, e, 6);
            i++;
        } else {
            size_t k = u8len(p + i, n - i);
            if (k) {
                put(w, s + i, k);
                i += k;
            } else {
                put(w, "\\ufffd", 6);
                i++;
            }
        }
    }
    put(w, "\"", 1);
}

void ufd_jw_str(ufd_jw *w, const char *s) { ufd_jw_strn(w, s, strlen(s)); }

void ufd_jw_int(ufd_jw *w, long long v)
{
    char b[32];
    int n = snprintf(b, sizeof b, "%lld", v);
    sep(w);
    put(w, b, (size_t)n);
}

/* %.*g, with ".0" added to integral values so readers see a real as jansson writes it. */
static void real(ufd_jw *w, double v, int digits)
{
    sep(w);
    if (!isfinite(v)) {
        w->nonfinite = 1;
        put(w, "0", 1); /* keeps the text valid; the answer is replaced by an error */
        return;
    }
    char b[40];
    int n = snprintf(b, sizeof b - 2, "%.*g", digits, v);
    if (!strpbrk(b, ".eE")) {
        b[n++] = '.';
        b[n++] = '0';
    }
    put(w, b, (size_t)n);
}

void ufd_jw_f32(ufd_jw *w, float v) { real(w, v, 9); }
void ufd_jw_f64(ufd_jw *w, double v) { real(w, v, 17); }

void ufd_jw_bool(ufd_jw *w, int v)
{
    sep(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void ufd_jw_null(ufd_jw *w)
{
    sep(w);
    put(w, "null", 4);
}

void ufd_jw_f32s(ufd_jw *w, const float *v, size_t n)
{
    ufd_jw_arr(w);
    for (size_t i = 0; i < n && !w->oom; i++)
        ufd_jw_f32(w, v[i]);
    ufd_jw_arr_end(w);
}

void ufd_jw_png(ufd_jw *w, const void *png, size_t len, int width, int height)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    ufd_jw_obj(w);
    ufd_jw_key(w, "png_base64");
    sep(w);
    size_t out = (len + 2) / 3 * 4;
    if (room(w, out + 2) == 0) {
        const unsigned char *p = png;
        char *o = w->buf + w->len;
        *o++ = '"';
        size_t i = 0;
        for (; i + 3 <= len; i += 3) {
            unsigned x = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
            *o++ = tab[x >> 18], *o++ = tab[(x >> 12) & 63], *o++ = tab[(x >> 6) & 63], *o++ = tab[x & 63];
        }
        if (i < len) {
            unsigned x = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0);
            *o++ = tab[x >> 18], *o++ = tab[(x >> 12) & 63];
            *o++ = i + 1 < len ? tab[(x >> 6) & 63] : '=';
            *o++ = '=';
        }
        *o++ = '"';
        w->len = (size_t)(o - w->buf);
        w->buf[w->len] = '\0';
    }
    ufd_jw_key(w, "width");
    ufd_jw_int(w, width);
    ufd_jw_key(w, "height");
    ufd_jw_int(w, height);
}

void ufd_jw_raw(ufd_jw *w, const void *p, size_t n) { put(w, p, n); }

void ufd_jw_f32_le(ufd_jw *w, const float *v, size_t n)
{
    if (room(w, 4 * n) != 0)
        return;
    unsigned char *o = (unsigned char *)w->buf + w->len;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        if (!isfinite(v[i]))
            w->nonfinite = 1;
        o[4 * i] = (unsigned char)u, o[4 * i + 1] = (unsigned char)(u >> 8);
        o[4 * i + 2] = (unsigned char)(u >> 16), o[4 * i + 3] = (unsigned char)(u >> 24);
    }
    w->len += 4 * n;
    w->buf[w->len] = '\0';
}
