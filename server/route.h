/* route.h — URL path -> endpoint (+ model name), allowed methods, and endpoint properties.
 * A pure function of the path: no server state. */
#ifndef UFD_ROUTE_H
#define UFD_ROUTE_H

typedef enum ufd_endpoint {
    UFD_EP_UNKNOWN = 0,
    UFD_EP_ROOT,             /* GET /                                 */
    UFD_EP_OPENAPI,          /* GET /openapi.yaml                     */
    UFD_EP_HEALTHZ,          /* GET /healthz                          */
    UFD_EP_READYZ,           /* GET /readyz                           */
    UFD_EP_METRICS,          /* GET /metrics                          */
    UFD_EP_UI,               /* GET /ui: the browser page (server/ui.c) */
    UFD_EP_UI_REDIRECT,      /* GET / from a browser (Accept: text/html) -> /ui */
    UFD_EP_V1_MODELS,        /* GET /v1/models                        */
    UFD_EP_V1_MODEL,         /* GET /v1/models/{name}                 */
    UFD_EP_V1_PREDICT,       /* POST /v1/models/{name}/predict        */
    UFD_EP_V1_RELOAD,        /* POST /v1/models/reload (not yet)      */
    UFD_EP_V2_SERVER,        /* GET /v2                               */
    UFD_EP_V2_LIVE,          /* GET /v2/health/live                   */
    UFD_EP_V2_READY,         /* GET /v2/health/ready                  */
    UFD_EP_V2_MODEL,         /* GET /v2/models/{name}                 */
    UFD_EP_V2_MODEL_READY,   /* GET /v2/models/{name}/ready           */
    UFD_EP_V2_INFER,         /* POST /v2/models/{name}/infer          */
    UFD_EP_COUNT
} ufd_endpoint;

#define UFD_MODEL_NAME_MAX 256

typedef struct ufd_route {
    ufd_endpoint ep;
    char model[UFD_MODEL_NAME_MAX];   /* "" when the endpoint has no {name} */
} ufd_route;

/* Match a decoded path (no query string). Unknown paths give UFD_EP_UNKNOWN. */
void ufd_route_match(const char *path, ufd_route *r);

/* Stable label for metrics and logs ("v1_predict", ...). */
const char *ufd_endpoint_name(ufd_endpoint ep);
/* Allowed methods: "GET, HEAD" or "POST" (the Allow header of a 405). */
const char *ufd_endpoint_allow(ufd_endpoint ep);
int ufd_endpoint_is_post(ufd_endpoint ep);
/* Health/readiness/metrics: open without a key under --public-health. */
int ufd_endpoint_is_health(ufd_endpoint ep);
/* The browser page and the redirect to it: open without a key (static, no data; the
 * page asks for the key and sends it with every API call). */
int ufd_endpoint_is_public(ufd_endpoint ep);
/* KServe v2 endpoints answer errors as {"error": "..."}. */
int ufd_endpoint_is_v2(ufd_endpoint ep);

#endif
