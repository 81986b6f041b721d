/* multipart.c — see multipart.h. The delimiter is "\r\n--" BOUNDARY; the stream is read as
 * if it began with "\r\n" so the first delimiter needs no special case. A boundary holds no
 * CR (RFC 2046 bchars), so a failed partial match can only restart at a CR: the bytes
 * matched so far are data and the scan goes on from the current byte. */
#include "multipart.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum state { S_PRE, S_AFTER_DELIM, S_PAD, S_AFTER_CR, S_CLOSE, S_HDR, S_BODY, S_EPILOGUE, S_ERROR };

struct ufd_mp {
    ufd_mp_handler h;
    char delim[4 + UFD_MP_BOUNDARY_MAX + 1];
    size_t dlen, match;          /* delimiter bytes matched so far */
    enum state st;
    char hdr[UFD_MP_HEADER_MAX + 1];
    size_t hlen;
    int parts, in_part;
    char err[160];
};

static int fail(ufd_mp *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(ufd_mp *m, const char *fmt, ...)
{
    if (m->st != S_ERROR) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->err, sizeof m->err, fmt, ap);
        va_end(ap);
        m->st = S_ERROR;
    }
    return -1;
}

/* RFC 2046 bchars (space allowed except last) */
static int bchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           strchr("'()+_,-./:=? ", c) != NULL;
}

static int tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* One parameter value (token or quoted-string) at *s into out; advances *s. -1 if invalid
 * or longer than n - 1. */
static int param_value(const char **s, char *out, size_t n)
{
    const char *p = *s;
    size_t k = 0;
    if (*p == '"') {
        for (p++; *p != '"'; p++) {
            if (*p == '\\')
                p++;
            if (!*p || ((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f || k + 1 >= n)
                return -1;
            out[k++] = *p;
        }
        p++;
    } else {
        while (tchar((unsigned char)*p)) {
            if (k + 1 >= n)
                return -1;
            out[k++] = *p++;
        }
        if (k == 0)
            return -1;
    }
    out[k] = '\0';
    *s = p;
    return 0;
}

/* `form-data; name="x"; filename="y"` */
static int disposition(ufd_mp *m, const char *v, char *name, char *filename, int *has_filename)
{
    static const char fd[] = "form-data";
    if (strncasecmp(v, fd, sizeof fd - 1) != 0 || tchar((unsigned char)v[sizeof fd - 1]))
        return fail(m, "a part's Content-Disposition must be form-data");
    const char *p = v + sizeof fd - 1;
    int has_name = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (*p++ != ';')
            return fail(m, "malformed Content-Disposition parameters");
        while (*p == ' ' || *p == '\t')
            p++;
        const char *k = p;
        while (tchar((unsigned char)*p))
            p++;
        size_t kl = (size_t)(p - k);
        if (kl == 0 || *p++ != '=')
            return fail(m, "malformed Content-Disposition parameter");
        char val[1024];
        if (param_value(&p, val, sizeof val) != 0)
            return fail(m, "malformed or over-long Content-Disposition parameter value");
        if (kl == 4 && !strncasecmp(k, "name", 4)) {
            if (has_name)
                return fail(m, "two names in one Content-Disposition");
            if (strlen(val) >= UFD_MP_NAME_MAX)
                return fail(m, "form field name longer than %d bytes", UFD_MP_NAME_MAX - 1);
            strcpy(name, val);
            has_name = 1;
        } else if (kl == 8 && !strncasecmp(k, "filename", 8)) {
            if (*has_filename)
                return fail(m, "two filenames in one Content-Disposition");
            if (strlen(val) >= 256)
                return fail(m, "form file name longer than 255 bytes");
            memcpy(filename, val, strlen(val) + 1);
            *has_filename = 1;
        } /* other parameters (filename*, ...) carry nothing uflowd uses */
    }
    return has_name ? 0 : fail(m, "a part's Content-Disposition has no name");
}

/* The part header block m->hdr (lines ending in CRLF, without the empty last line). */
static int part_headers(ufd_mp *m)
{
    char name[UFD_MP_NAME_MAX] = "", filename[256] = "";
    int has_disp = 0, has_filename = 0;
    char *line = m->hdr, *end = m->hdr + m->hlen;
    while (line < end) {
        char *crlf = strstr(line, "\r\n");
        if (!crlf)
            return fail(m, "malformed part header");
        *crlf = '\0';
        if (memchr(line, '\n', (size_t)(crlf - line)) || memchr(line, '\r', (size_t)(crlf - line)))
            return fail(m, "a part header line ends without CRLF");
        if (line[0] == ' ' || line[0] == '\t')
            return fail(m, "folded part header lines are not accepted");
        char *colon = strchr(line, ':');
        if (!colon || colon == line)
            return fail(m, "malformed part header line");
        for (char *q = line; q < colon; q++)
            if (!tchar((unsigned char)*q))
                return fail(m, "malformed part header name");
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            v[--vl] = '\0';
        if (!strcasecmp(line, "Content-Disposition")) {
            if (has_disp)
                return fail(m, "two Content-Disposition headers in one part");
            has_disp = 1;
            if (disposition(m, v, name, filename, &has_filename) != 0)
                return -1;
        } else if (!strcasecmp(line, "Content-Transfer-Encoding")) {
            if (strcasecmp(v, "binary") && strcasecmp(v, "8bit") && strcasecmp(v, "7bit"))
                return fail(m, "Content-Transfer-Encoding '%.32s' is not accepted", v);
        }
        line = crlf + 2;
    }
    if (!has_disp)
        return fail(m, "a part has no Content-Disposition header");
    if (++m->parts > UFD_MP_PARTS_MAX)
        return fail(m, "more than %d parts", UFD_MP_PARTS_MAX);
    char err[160] = "";
    if (m->h.begin && m->h.begin(m->h.ud, name, has_filename ? filename : NULL, err, sizeof err) != 0)
        return fail(m, "%s", err[0] ? err : "part refused");
    m->in_part = 1;
    return 0;
}

static int emit(ufd_mp *m, const void *p, size_t n)
{
    if (!n || m->st != S_BODY || !m->h.data)
        return 0;
    char err[160] = "";
    if (m->h.data(m->h.ud, p, n, err, sizeof err) != 0)
        return fail(m, "%s", err[0] ? err : "part refused");
    return 0;
}

int ufd_mp_boundary(const char *ct, char *out, size_t n)
{
    static const char mt[] = "multipart/form-data";
    if (!ct || n < UFD_MP_BOUNDARY_MAX + 1)
        return -1;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, mt, sizeof mt - 1) != 0)
        return -1;
    const char *p = ct + sizeof mt - 1;
    int found = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (*p++ != ';')
            return -1;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *k = p;
        while (tchar((unsigned char)*p))
            p++;
        size_t kl = (size_t)(p - k);
        if (kl == 0 || *p++ != '=')
            return -1;
        char val[UFD_MP_BOUNDARY_MAX + 1];
        if (param_value(&p, val, sizeof val) != 0)
            return -1;
        if (kl == 8 && !strncasecmp(k, "boundary", 8)) {
            size_t bl = strlen(val);
            if (found || bl == 0 || val[bl - 1] == ' ')
                return -1;
            for (size_t i = 0; i < bl; i++)
                if (!bchar((unsigned char)val[i]))
                    return -1;
            strcpy(out, val);
            found = 1;
        }
    }
    return found ? 0 : -1;
}

ufd_mp *ufd_mp_new(const char *boundary, const ufd_mp_handler *h)
{
    size_t bl = strlen(boundary);
    if (bl == 0 || bl > UFD_MP_BOUNDARY_MAX)
        return NULL;
    ufd_mp *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->h = *h;
    m->dlen = (size_t)snprintf(m->delim, sizeof m->delim, "\r\n--%s", boundary);
    m->match = 2; /* as if the body began with CRLF */
    m->st = S_PRE;
    return m;
}

void ufd_mp_free(ufd_mp *m) { free(m); }

const char *ufd_mp_error(const ufd_mp *m) { return m->err[0] ? m->err : "malformed multipart body"; }

/* Scan for the delimiter in PRE or BODY state; bytes that are not part of it are data
 * (discarded in the preamble). Returns bytes consumed, or -1. */
static long scan(ufd_mp *m, const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (m->match == 0) {
            const unsigned char *cr = memchr(p + i, '\r', n - i);
            size_t run = cr ? (size_t)(cr - (p + i)) : n - i;
            if (emit(m, p + i, run) != 0)
                return -1;
            i += run;
            if (!cr)
                break;
            m->match = 1;
            i++;
            continue;
        }
        if (p[i] == (unsigned char)m->delim[m->match]) {
            i++;
            if (++m->match == m->dlen) {
                m->match = 0;
                if (m->in_part && m->h.end)
                    m->h.end(m->h.ud);
                m->in_part = 0;
                m->st = S_AFTER_DELIM;
                return (long)i;
            }
            continue;
        }
        /* mismatch: what matched so far is data; the current byte is looked at again */
        size_t had = m->match;
        m->match = 0;
        if (emit(m, m->delim, had) != 0) /* (in the preamble, where the virtual CRLF is, nothing) */
            return -1;
    }
    return (long)i;
}

int ufd_mp_feed(ufd_mp *m, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        switch (m->st) {
        case S_ERROR:
            return -1;
        case S_PRE:
        case S_BODY: {
            long k = scan(m, p + i, n - i);
            if (k < 0)
                return -1;
            i += (size_t)k;
            continue;
        }
        case S_AFTER_DELIM:
            if (c == '-') {
                m->st = S_CLOSE;
                i++;
                continue;
            }
            m->st = S_PAD;
            continue;
        case S_PAD: /* transport padding, then CRLF */
            if (c == ' ' || c == '\t')
                i++;
            else if (c == '\r') {
                m->st = S_AFTER_CR;
                i++;
            } else
                return fail(m, "malformed multipart delimiter line");
            continue;
        case S_AFTER_CR:
            if (c != '\n')
                return fail(m, "malformed multipart delimiter line");
            m->st = S_HDR;
            m->hlen = 0;
            i++;
            continue;
        case S_CLOSE:
            if (c != '-')
                return fail(m, "malformed multipart close delimiter");
            m->st = S_EPILOGUE;
            i++;
            continue;
        case S_HDR:
            if (m->hlen >= UFD_MP_HEADER_MAX)
                return fail(m, "part headers longer than %d bytes", UFD_MP_HEADER_MAX);
            m->hdr[m->hlen++] = (char)c;
            m->hdr[m->hlen] = '\0';
            i++;
            if (m->hlen == 2 && !memcmp(m->hdr, "\r\n", 2))
                return fail(m, "a part has no headers");
            if (m->hlen >= 4 && !memcmp(m->hdr + m->hlen - 4, "\r\n\r\n", 4)) {
                m->hlen -= 2; /* keep the last header line's CRLF */
                m->hdr[m->hlen] = '\0';
                if (memchr(m->hdr, '\0', m->hlen))
                    return fail(m, "NUL in part headers");
                if (part_headers(m) != 0)
                    return -1;
                m->hlen = 0;
                m->st = S_BODY;
            }
            continue;
        case S_EPILOGUE:
            return 0; /* ignored */
        }
    }
    return m->st == S_ERROR ? -1 : 0;
}

int ufd_mp_finish(ufd_mp *m)
{
    if (m->st == S_EPILOGUE)
        return 0;
    if (m->st != S_ERROR)
        fail(m, m->parts ? "multipart body ends before its close delimiter" : "multipart body holds no part");
    return -1;
}
