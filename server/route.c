/* route.c — see route.h. */
#include "route.h"

#include <stdio.h>
#include <string.h>

static const char *names[UFD_EP_COUNT] = {
    [UFD_EP_UNKNOWN] = "unknown",     [UFD_EP_ROOT] = "root",
    [UFD_EP_OPENAPI] = "openapi",     [UFD_EP_HEALTHZ] = "healthz",
    [UFD_EP_READYZ] = "readyz",       [UFD_EP_METRICS] = "metrics",
    [UFD_EP_UI] = "ui",               [UFD_EP_UI_REDIRECT] = "ui_redirect",
    [UFD_EP_V1_MODELS] = "v1_models", [UFD_EP_V1_MODEL] = "v1_model",
    [UFD_EP_V1_PREDICT] = "v1_predict", [UFD_EP_V1_RELOAD] = "v1_reload",
    [UFD_EP_V2_SERVER] = "v2_server", [UFD_EP_V2_LIVE] = "v2_live",
    [UFD_EP_V2_READY] = "v2_ready",   [UFD_EP_V2_MODEL] = "v2_model",
    [UFD_EP_V2_MODEL_READY] = "v2_model_ready", [UFD_EP_V2_INFER] = "v2_infer",
};

const char *ufd_endpoint_name(ufd_endpoint ep) { return ep >= 0 && ep < UFD_EP_COUNT ? names[ep] : "unknown"; }

int ufd_endpoint_is_post(ufd_endpoint ep)
{
    return ep == UFD_EP_V1_PREDICT || ep == UFD_EP_V1_RELOAD || ep == UFD_EP_V2_INFER;
}

const char *ufd_endpoint_allow(ufd_endpoint ep) { return ufd_endpoint_is_post(ep) ? "POST" : "GET, HEAD"; }

int ufd_endpoint_is_health(ufd_endpoint ep)
{
    return ep == UFD_EP_HEALTHZ || ep == UFD_EP_READYZ || ep == UFD_EP_METRICS || ep == UFD_EP_V2_LIVE ||
           ep == UFD_EP_V2_READY;
}

int ufd_endpoint_is_public(ufd_endpoint ep) { return ep == UFD_EP_UI || ep == UFD_EP_UI_REDIRECT; }

int ufd_endpoint_is_v2(ufd_endpoint ep) { return ep >= UFD_EP_V2_SERVER && ep <= UFD_EP_V2_INFER; }

/* Split "a/b/c" (after the leading '/') into at most 5 segments; -1 if more or empty ones. */
static int split(const char *path, const char *seg[5], size_t len[5])
{
    if (path[0] != '/')
        return -1;
    const char *p = path + 1;
    int n = 0;
    if (!*p)
        return 0;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 0 || n == 5)
            return -1;
        seg[n] = p;
        len[n++] = l;
        if (!e)
            return n;
        p = e + 1;
    }
}

static int is(const char *s, size_t n, const char *lit) { return strlen(lit) == n && !memcmp(s, lit, n); }

static int take_model(ufd_route *r, const char *s, size_t n)
{
    if (n >= UFD_MODEL_NAME_MAX || memchr(s, '\0', n))
        return -1;
    memcpy(r->model, s, n);
    r->model[n] = '\0';
    return 0;
}

void ufd_route_match(const char *path, ufd_route *r)
{
    const char *s[5];
    size_t l[5];
    r->ep = UFD_EP_UNKNOWN;
    r->model[0] = '\0';
    int n = split(path, s, l);
    if (n < 0)
        return;
    if (n == 0) {
        r->ep = UFD_EP_ROOT;
        return;
    }
    if (n == 1) {
        if (is(s[0], l[0], "openapi.yaml"))
            r->ep = UFD_EP_OPENAPI;
        else if (is(s[0], l[0], "healthz"))
            r->ep = UFD_EP_HEALTHZ;
        else if (is(s[0], l[0], "readyz"))
            r->ep = UFD_EP_READYZ;
        else if (is(s[0], l[0], "metrics"))
            r->ep = UFD_EP_METRICS;
        else if (is(s[0], l[0], "v2"))
            r->ep = UFD_EP_V2_SERVER;
        else if (is(s[0], l[0], "ui"))
            r->ep = UFD_EP_UI;
        return;
    }
    if (is(s[0], l[0], "v1") && is(s[1], l[1], "models")) {
        if (n == 2)
            r->ep = UFD_EP_V1_MODELS;
        else if (n == 3 && is(s[2], l[2], "reload"))
            r->ep = UFD_EP_V1_RELOAD;
        else if (n == 3 && take_model(r, s[2], l[2]) == 0)
            r->ep = UFD_EP_V1_MODEL;
        else if (n == 4 && is(s[3], l[3], "predict") && take_model(r, s[2], l[2]) == 0)
            r->ep = UFD_EP_V1_PREDICT;
        return;
    }
    if (!is(s[0], l[0], "v2"))
        return;
    if (n == 3 && is(s[1], l[1], "health")) {
        if (is(s[2], l[2], "live"))
            r->ep = UFD_EP_V2_LIVE;
        else if (is(s[2], l[2], "ready"))
            r->ep = UFD_EP_V2_READY;
        return;
    }
    if (!is(s[1], l[1], "models") || n < 3 || take_model(r, s[2], l[2]) != 0)
        return;
    if (n == 3)
        r->ep = UFD_EP_V2_MODEL;
    else if (n == 4 && is(s[3], l[3], "ready"))
        r->ep = UFD_EP_V2_MODEL_READY;
    else if (n == 4 && is(s[3], l[3], "infer"))
        r->ep = UFD_EP_V2_INFER;
    if (r->ep == UFD_EP_UNKNOWN)
        r->model[0] = '\0';
}
