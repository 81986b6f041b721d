/* target.h — the request target as the client sent it (libmicrohttpd's early URI callback
 * hands it over raw): origin-form "/path?query" or absolute-form "http://host/path?query"
 * (RFC 9112 3.2), split, percent-decoded and checked. Decoding is uflowd's own so that
 * nothing is lost or merged on the way: an encoded NUL, an encoded '/' inside a path
 * segment, a control character or a malformed escape is an error (400), never truncated
 * or re-split; a query parameter given twice is an error too (which one would win?). */
#ifndef UFD_TARGET_H
#define UFD_TARGET_H

#include <stddef.h>

#define UFD_TARGET_MAX 8192         /* longest request target (the HTTP front answers 414) */
#define UFD_ARGS_MAX 32             /* query parameters */

typedef struct ufd_target {
    char *buf;                      /* owns the strings below */
    const char *path;               /* decoded path, "/..." (or "*" for OPTIONS *) */
    const char *raw_path;           /* the path as sent, without the query (for logs) */
    int n_args;
    const char *key[UFD_ARGS_MAX], *val[UFD_ARGS_MAX];
} ufd_target;

/* 0, or -1 with the reason in err (a 400 message); t needs ufd_target_free either way. */
int ufd_target_parse(const char *raw, ufd_target *t, char *err, size_t n);
void ufd_target_free(ufd_target *t);
/* Value of query parameter key (decoded; "" for a bare "?key"), or NULL when absent. */
const char *ufd_target_arg(const ufd_target *t, const char *key);

#endif
