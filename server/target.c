/* target.c — see target.h. */
#include "target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                                                                      : -1;
}

/* Percent-decode s[0..n) into out (NUL-terminated). In a path '/' separates segments and
 * an encoded one is refused; in a query '+' is a space. -1 with a message. */
static int decode(const char *s, size_t n, char *out, int query, const char *what, char *err, size_t en)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f) {
            snprintf(err, en, "%s holds a control character or space", what);
            return -1;
        }
        if (c == '%') {
            if (i + 2 >= n) {
                snprintf(err, en, "%s ends in a truncated percent-escape", what);
                return -1;
            }
            int a = hexval(s[i + 1]), b = a >= 0 ? hexval(s[i + 2]) : -1;
            if (a < 0 || b < 0) {
                snprintf(err, en, "%s holds a malformed percent-escape", what);
                return -1;
            }
            c = (unsigned char)(a * 16 + b);
            i += 2;
            if (c == 0) {
                snprintf(err, en, "%s holds an encoded NUL (%%00)", what);
                return -1;
            }
            if (c < 0x20 || c == 0x7f) {
                snprintf(err, en, "%s holds an encoded control character", what);
                return -1;
            }
            if (c == '/' && !query) {
                snprintf(err, en, "%s holds an encoded '/' (%%2F) inside a segment", what);
                return -1;
            }
        } else if (c == '+' && query) {
            c = ' ';
        }
        out[k++] = (char)c;
    }
    out[k] = '\0';
    return 0;
}

int ufd_target_parse(const char *raw, ufd_target *t, char *err, size_t n)
{
    memset(t, 0, sizeof *t);
    size_t len = raw ? strlen(raw) : 0;
    if (len == 0) {
        snprintf(err, n, "empty request target");
        return -1;
    }
    if (len > UFD_TARGET_MAX) {
        snprintf(err, n, "request target longer than %d bytes", UFD_TARGET_MAX);
        return -1;
    }
    const char *p = raw;
    if (!strncasecmp(p, "http://", 7) || !strncasecmp(p, "https://", 8)) {
        /* absolute-form: the authority is the proxy's business; route on the path */
        p += p[4] == ':' ? 7 : 8;
        p += strcspn(p, "/?");
    } else if (!(p[0] == '/' || (p[0] == '*' && p[1] == '\0'))) {
        snprintf(err, n, "request target must be a path (/...) or an absolute URL");
        return -1;
    }
    /* room: decoded path (+ "/" when empty), raw path, args; each no longer than raw */
    t->buf = malloc(3 * len + 2 * UFD_ARGS_MAX + 16);
    if (!t->buf) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    if (strchr(p, '#')) {
        snprintf(err, n, "request target holds a fragment ('#')");
        return -1;
    }
    size_t plen = strcspn(p, "?");
    char *o = t->buf;
    /* raw path for logs */
    t->raw_path = o;
    if (plen == 0)
        *o++ = '/';
    memcpy(o, p, plen);
    o += plen;
    *o++ = '\0';
    char *path = o;
    if (plen == 0) {
        strcpy(path, "/");
    } else if (decode(p, plen, path, 0, "request path", err, n) != 0) {
        return -1;
    }
    t->path = path;
    o = path + strlen(path) + 1;
    if (p[plen] != '?')
        return 0;
    const char *q = p + plen + 1;
    while (*q) {
        size_t pl = strcspn(q, "&");
        if (pl > 0) {
            const char *eq = memchr(q, '=', pl);
            size_t kl = eq ? (size_t)(eq - q) : pl;
            if (t->n_args == UFD_ARGS_MAX) {
                snprintf(err, n, "more than %d query parameters", UFD_ARGS_MAX);
                return -1;
            }
            char *key = o;
            if (decode(q, kl, key, 1, "query parameter name", err, n) != 0)
                return -1;
            o = key + strlen(key) + 1;
            char *val = o;
            if (decode(eq ? eq + 1 : q + pl, eq ? pl - kl - 1 : 0, val, 1, "query parameter value", err, n) != 0)
                return -1;
            o = val + strlen(val) + 1;
            if (ufd_target_arg(t, key)) {
                snprintf(err, n, "query parameter '%.64s' is given twice", key);
                return -1;
            }
            t->key[t->n_args] = key;
            t->val[t->n_args++] = val;
        }
        q += pl;
        if (*q == '&')
            q++;
    }
    return 0;
}

void ufd_target_free(ufd_target *t)
{
    free(t->buf);
    memset(t, 0, sizeof *t);
}

const char *ufd_target_arg(const ufd_target *t, const char *key)
{
    for (int i = 0; i < t->n_args; i++)
        if (!strcmp(t->key[i], key))
            return t->val[i];
    return NULL;
}
