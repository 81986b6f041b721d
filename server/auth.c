/* auth.c — see auth.h. */
#include "auth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct ufd_auth {
    char **keys;
    size_t n;
};

ufd_auth *ufd_auth_load(const char *path, char *err, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, n, "cannot read API key file '%s'", path);
        return NULL;
    }
    ufd_auth *a = calloc(1, sizeof *a);
    char *line = NULL;
    size_t lcap = 0, cap = 0;
    ssize_t got;
    unsigned lineno = 0;
    int failed = !a;
    if (failed)
        snprintf(err, n, "out of memory");
    /* getline: a line of any length is one key (a fixed buffer split long ones in two, each
     * then accepted on its own) */
    while (!failed && (got = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        char *s = line, *e = line + got;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        *e = '\0';
        if (!*s || *s == '#')
            continue;
        size_t kl = (size_t)(e - s);
        if (kl > UFD_AUTH_KEY_MAX || memchr(s, '\0', kl)) {
            snprintf(err, n, "API key file '%s' line %u: %s", path, lineno,
                     kl > UFD_AUTH_KEY_MAX ? "key longer than " UFD_STR(UFD_AUTH_KEY_MAX) " bytes" : "NUL byte in a key");
            failed = 1;
            break;
        }
        if (a->n == cap) {
            size_t nc = cap ? cap * 2 : 4;
            char **nk = realloc(a->keys, nc * sizeof *nk);
            if (!nk) {
                snprintf(err, n, "out of memory");
                failed = 1;
                break;
            }
            a->keys = nk;
            cap = nc;
        }
        if (!(a->keys[a->n] = strdup(s))) {
            snprintf(err, n, "out of memory");
            failed = 1;
            break;
        }
        a->n++;
    }
    if (line) {
        memset(line, 0, lcap);
        free(line);
    }
    fclose(f);
    if (!failed && a->n == 0) {
        snprintf(err, n, "API key file '%s' holds no key", path);
        failed = 1;
    }
    if (failed) {
        ufd_auth_free(a);
        return NULL;
    }
    return a;
}

void ufd_auth_free(ufd_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        memset(a->keys[i], 0, strlen(a->keys[i]));
        free(a->keys[i]);
    }
    free(a->keys);
    free(a);
}

/* 0 when equal; time depends only on the lengths, never on where the bytes differ. */
static unsigned ct_diff(const char *given, size_t glen, const char *key)
{
    size_t klen = strlen(key);
    unsigned d = (unsigned)(glen ^ klen);
    for (size_t i = 0; i < klen; i++)
        d |= (unsigned char)key[i] ^ (unsigned char)(i < glen ? given[i] : 0);
    return d;
}

static int match(const ufd_auth *a, const char *given, size_t glen)
{
    int ok = 0;
    for (size_t i = 0; i < a->n; i++) /* no early exit: every key is compared */
        ok |= ct_diff(given, glen, a->keys[i]) == 0;
    return ok;
}

int ufd_auth_check(const ufd_auth *a, const char *authorization, const char *x_api_key)
{
    int ok = 0;
    if (authorization && !strncasecmp(authorization, "Bearer ", 7)) {
        const char *t = authorization + 7;
        while (*t == ' ' || *t == '\t')
            t++;
        size_t tl = strlen(t);
        while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t')) /* as nginx and others read it */
            tl--;
        ok |= tl && match(a, t, tl);
    }
    if (x_api_key && *x_api_key)
        ok |= match(a, x_api_key, strlen(x_api_key));
    return ok;
}

const char *ufd_auth_first(const ufd_auth *a) { return a && a->n ? a->keys[0] : NULL; }
