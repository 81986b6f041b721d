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
    char line[4096];
    size_t cap = 0;
    while (a && fgets(line, sizeof line, f)) {
        char *s = line, *e;
        while (isspace((unsigned char)*s))
            s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
            *--e = '\0';
        if (!*s || *s == '#')
            continue;
        if (a->n == cap) {
            size_t nc = cap ? cap * 2 : 4;
            char **nk = realloc(a->keys, nc * sizeof *nk);
            if (!nk)
                break;
            a->keys = nk;
            cap = nc;
        }
        a->keys[a->n] = strdup(s);
        if (a->keys[a->n])
            a->n++;
    }
    fclose(f);
    if (a && a->n == 0) {
        snprintf(err, n, "API key file '%s' holds no key", path);
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

static int match(const ufd_auth *a, const char *given)
{
    size_t glen = strlen(given);
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
        while (*t == ' ')
            t++;
        ok |= *t && match(a, t);
    }
    if (x_api_key && *x_api_key)
        ok |= match(a, x_api_key);
    return ok;
}

const char *ufd_auth_first(const ufd_auth *a) { return a && a->n ? a->keys[0] : NULL; }
