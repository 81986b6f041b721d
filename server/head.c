/* head.c — see head.h. */
#include "head.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static int tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A field value byte: HTAB, SP, visible ASCII, obs-text. */
static int vchar(unsigned char c) { return c == '\t' || c >= 0x20 ? c != 0x7f : 0; }

static ufd_head_rc bad(ufd_err *e, ufd_err what, char *msg, size_t n, const char *text)
{
    *e = what;
    snprintf(msg, n, "%s", text);
    return UFD_HEAD_BAD;
}

static int request_line(const char *l, size_t ll, ufd_head *h, ufd_err *e, char *msg, size_t n)
{
    const char *sp1 = memchr(l, ' ', ll);
    if (!sp1 || sp1 == l || (size_t)(sp1 - l) >= sizeof h->method)
        return bad(e, UFD_E_BAD_HTTP, msg, n, "malformed request line (method)");
    for (const char *p = l; p < sp1; p++)
        if (!tchar((unsigned char)*p))
            return bad(e, UFD_E_BAD_HTTP, msg, n, "malformed request line (method)");
    memcpy(h->method, l, (size_t)(sp1 - l)); /* for the log line even when refused */
    h->method[sp1 - l] = '\0';
    const char *t = sp1 + 1, *end = l + ll;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2 || sp2 == t)
        return bad(e, UFD_E_BAD_HTTP, msg, n, "malformed request line (target)");
    if ((size_t)(sp2 - t) > UFD_TARGET_MAX)
        return bad(e, UFD_E_URI_TOO_LONG, msg, n, "request target longer than 8192 bytes");
    h->target = t; /* for the log line even when refused */
    h->target_len = (size_t)(sp2 - t);
    for (const char *p = t; p < sp2; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return bad(e, UFD_E_BAD_HTTP, msg, n, "request target holds a byte that is not visible ASCII");
    const char *v = sp2 + 1;
    size_t vl = (size_t)(end - v);
    if (vl != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' || v[7] < '0' || v[7] > '9')
        return bad(e, UFD_E_BAD_HTTP, msg, n, "malformed request line (version)");
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return bad(e, UFD_E_HTTP_VERSION, msg, n, "only HTTP/1.0 and HTTP/1.1 are served");
    h->minor = v[7] - '0';
    return 0;
}

/* Transfer-Encoding: codings separated by commas; only a final "chunked" is decoded. */
static int transfer_encoding(const char *v, size_t vl, ufd_err *e, char *msg, size_t n)
{
    int count = 0, last_chunked = 0;
    size_t i = 0;
    while (i <= vl) {
        while (i < vl && (v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t s = i;
        while (i < vl && tchar((unsigned char)v[i]))
            i++;
        size_t tl = i - s;
        while (i < vl && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (tl == 0 || (i < vl && v[i] != ','))
            return bad(e, UFD_E_BAD_HTTP, msg, n, "malformed Transfer-Encoding");
        count++;
        last_chunked = tl == 7 && !strncasecmp(v + s, "chunked", 7);
        i++; /* past the comma (or the end) */
    }
    if (!last_chunked)
        return bad(e, UFD_E_BAD_HTTP, msg, n, "Transfer-Encoding must end in chunked");
    if (count > 1)
        return bad(e, UFD_E_NOT_IMPLEMENTED, msg, n, "only the chunked transfer coding is supported");
    return 0;
}

static int is(const char *name, size_t nl, const char *lit)
{
    return strlen(lit) == nl && !strncasecmp(name, lit, nl);
}

ufd_head_rc ufd_head_check(const char *buf, size_t len, ufd_head *h, ufd_err *e, char *msg, size_t n)
{
    memset(h, 0, sizeof *h);
    *e = UFD_E_NONE;
    int has_cl = 0, has_te = 0, hosts = 0, fields = 0;
    size_t pos = 0;
    for (int line = 0;; line++) {
        const char *l = buf + pos;
        const char *lf = memchr(l, '\n', len - pos);
        size_t avail = lf ? (size_t)(lf - l) : len - pos;
        /* what is there of the line so far must already be right */
        for (size_t i = 0; i < avail; i++) {
            unsigned char c = (unsigned char)l[i];
            if (c == '\r' && (lf ? i + 1 != avail : i + 1 < avail))
                return bad(e, UFD_E_BAD_HTTP, msg, n, "CR without LF in the request head");
            if (c != '\r' && c != '\t' && (c < 0x20 || c == 0x7f))
                return bad(e, UFD_E_BAD_HTTP, msg, n, "control character in the request head");
        }
        if (!lf) {
            if (line == 0 && avail > UFD_TARGET_MAX + 32)
                return bad(e, UFD_E_URI_TOO_LONG, msg, n, "request line longer than 8 KiB");
            if (len > UFD_HEAD_MAX)
                return bad(e, UFD_E_HEADERS_TOO_LARGE, msg, n, "request head longer than 16 KiB");
            if (line > 0 && avail > 0 && (l[0] == ' ' || l[0] == '\t'))
                return bad(e, UFD_E_BAD_HTTP, msg, n, "folded header lines are not accepted");
            return UFD_HEAD_MORE;
        }
        if (avail == 0 || l[avail - 1] != '\r')
            return bad(e, UFD_E_BAD_HTTP, msg, n, "a line of the request head ends in LF without CR");
        size_t ll = avail - 1, end = pos + avail + 1;
        if (end > UFD_HEAD_MAX)
            return line == 0 ? bad(e, UFD_E_URI_TOO_LONG, msg, n, "request line longer than 8 KiB")
                             : bad(e, UFD_E_HEADERS_TOO_LARGE, msg, n, "request head longer than 16 KiB");
        pos = end;
        if (line == 0) {
            if (request_line(l, ll, h, e, msg, n) != 0)
                return UFD_HEAD_BAD;
            continue;
        }
        if (ll == 0) { /* the blank line: the head is complete */
            if (h->minor == 1 && hosts != 1)
                return bad(e, UFD_E_BAD_HTTP, msg, n, "an HTTP/1.1 request needs exactly one Host header");
            if (has_te && has_cl)
                return bad(e, UFD_E_BAD_HTTP, msg, n, "Content-Length together with Transfer-Encoding");
            if (has_te && h->minor == 0)
                return bad(e, UFD_E_BAD_HTTP, msg, n, "Transfer-Encoding in an HTTP/1.0 request");
            h->len = pos;
            return UFD_HEAD_OK;
        }
        if (l[0] == ' ' || l[0] == '\t')
            return bad(e, UFD_E_BAD_HTTP, msg, n, "folded header lines are not accepted");
        if (++fields > UFD_HEAD_FIELDS_MAX)
            return bad(e, UFD_E_HEADERS_TOO_LARGE, msg, n, "more than 100 header fields");
        const char *colon = memchr(l, ':', ll);
        if (!colon || colon == l)
            return bad(e, UFD_E_BAD_HTTP, msg, n, "malformed header line");
        for (const char *p = l; p < colon; p++)
            if (!tchar((unsigned char)*p))
                return bad(e, UFD_E_BAD_HTTP, msg, n, "malformed header name (or a space before its colon)");
        size_t nl = (size_t)(colon - l);
        const char *v = colon + 1, *ve = l + ll;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *p = v; p < ve; p++)
            if (!vchar((unsigned char)*p))
                return bad(e, UFD_E_BAD_HTTP, msg, n, "control character in a header value");
        size_t vl = (size_t)(ve - v);
        if (is(l, nl, "Content-Length")) {
            if (has_cl++)
                return bad(e, UFD_E_BAD_HTTP, msg, n, "two Content-Length headers");
            if (vl == 0 || vl > 19 || strspn(v, "0123456789") < vl)
                return bad(e, UFD_E_BAD_HTTP, msg, n, "invalid Content-Length");
        } else if (is(l, nl, "Transfer-Encoding")) {
            if (has_te++)
                return bad(e, UFD_E_BAD_HTTP, msg, n, "two Transfer-Encoding headers");
            if (transfer_encoding(v, vl, e, msg, n) != 0)
                return UFD_HEAD_BAD;
        } else if (is(l, nl, "Host")) {
            if (++hosts > 1)
                return bad(e, UFD_E_BAD_HTTP, msg, n, "two Host headers");
        } else if (is(l, nl, "X-Request-Id") && vl < sizeof h->request_id) {
            memcpy(h->request_id, v, vl);
            h->request_id[vl] = '\0';
            if (!ufd_request_id_valid(h->request_id))
                h->request_id[0] = '\0';
        }
    }
}
