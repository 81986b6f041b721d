/* body.c — see body.h. */
#include "body.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int ufd_buf_reserve(ufd_buf *b, size_t n)
{
    if (n <= b->cap)
        return 0;
    unsigned char *p = realloc(b->data, n);
    if (!p)
        return -2;
    b->data = p;
    b->cap = n;
    return 0;
}

int ufd_buf_append(ufd_buf *b, const void *p, size_t n, size_t limit)
{
    if (n > limit || b->len > limit - n)
        return -1;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 16384;
        while (nc < b->len + n)
            nc *= 2;
        if (nc > limit)
            nc = limit;
        if (ufd_buf_reserve(b, nc) != 0)
            return -2;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void ufd_buf_free(ufd_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* Media type without parameters, compared case-insensitively. */
static int type_is(const char *ct, size_t n, const char *lit) { return strlen(lit) == n && !strncasecmp(ct, lit, n); }

ufd_body_kind ufd_body_kind_of(const char *ct)
{
    if (!ct)
        return UFD_BODY_IMAGE;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    if (n == 0)
        return UFD_BODY_IMAGE;
    if (n > 6 && !strncasecmp(ct, "image/", 6))
        return UFD_BODY_IMAGE;
    if (type_is(ct, n, "application/octet-stream"))
        return UFD_BODY_IMAGE;
    if (type_is(ct, n, "multipart/form-data"))
        return UFD_BODY_MULTIPART;
    if (type_is(ct, n, "application/json") || (n > 5 && !strncasecmp(ct + n - 5, "+json", 5)))
        return UFD_BODY_JSON;
    return UFD_BODY_UNSUPPORTED;
}

static int b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

unsigned char *ufd_base64_decode(const char *text, size_t len, size_t *out_len)
{
    *out_len = 0;
    if (len > 5 && !strncmp(text, "data:", 5)) {
        const char *comma = memchr(text, ',', len);
        if (!comma || comma - text < 12 || strncmp(comma - 7, ";base64", 7) != 0)
            return NULL;
        len -= (size_t)(comma + 1 - text);
        text = comma + 1;
    }
    /* compact: drop whitespace, check the alphabet and the padding */
    char *s = g_malloc(len + 4);
    size_t n = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
        } else if (!b64_char(c) || pad) {
            g_free(s);
            return NULL;
        }
        s[n++] = (char)c;
    }
    size_t data = n - pad;
    if (n == 0 || pad > 2 || data % 4 == 1 || (pad && n % 4 != 0)) {
        g_free(s);
        return NULL;
    }
    while (n % 4)
        s[n++] = '=';
    s[n] = '\0';
    gsize outn = 0;
    guchar *out = g_base64_decode(s, &outn);
    g_free(s);
    *out_len = outn;
    return out;
}
