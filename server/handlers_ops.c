/* handlers_ops.c — service endpoints: /, /openapi.yaml, /healthz, /readyz, /metrics. */
#include "handlers.h"

#include <stdlib.h>

#include "reply.h"
#include "metrics.h"
#include "uflow.h"

/* api/openapi.yaml, embedded at build time (openapi_data.c). */
extern const char ufd_openapi_yaml[];
extern const size_t ufd_openapi_yaml_len;

void ufd_h_root(ufd_req *r)
{
    json_t *links = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "models", "/v1/models", "openapi", "/openapi.yaml",
                              "health", "/healthz", "ready", "/readyz", "metrics", "/metrics", "kserve_v2", "/v2");
    ufd_reply_json(r, 200, json_pack("{s:s,s:s,s:s,s:o}", "name", "uflowd", "version", UF_VERSION_STRING,
                                     "description", "U-Flow anomaly detection inference", "links", links));
}

void ufd_h_openapi(ufd_req *r)
{
    ufd_reply_text(r, 200, "application/yaml", (char *)ufd_openapi_yaml, ufd_openapi_yaml_len, NULL);
}

void ufd_h_healthz(ufd_req *r) { ufd_reply_json(r, 200, json_pack("{s:s}", "status", "ok")); }

static const char *state_name(ufd_state s)
{
    return s == UFD_READY ? "ready" : s == UFD_DRAINING ? "draining" : "loading";
}

void ufd_h_readyz(ufd_req *r)
{
    ufd_state s = ufd_server_state(r->srv);
    json_t *o = json_pack("{s:s}", "status", state_name(s));
    if (s != UFD_READY)
        r->retry_after = 1;
    ufd_reply_json(r, s == UFD_READY ? 200 : 503, o);
}

void ufd_h_metrics(ufd_req *r)
{
    ufd_server *srv = r->srv;
    ufd_metrics_gauges g = {.inflight = atomic_load(&srv->inflight), .ready = ufd_server_state(srv) == UFD_READY,
                            .conns_head = atomic_load(&srv->conns_head), .conns_open = atomic_load(&srv->conns_open)};
    ufd_models *ms = NULL;
    if (ufd_server_serving(srv)) {
        ms = ufd_server_models(srv);
        g.queue_depth = ufd_queue_depth(srv->queue);
        g.workers_busy = ufd_queue_busy(srv->queue);
        g.workers = ufd_pool_workers(srv->pool);
    }
    size_t len = 0;
    char *text = ufd_metrics_render(&g, ms, &len);
    ufd_models_unref(ms);
    if (!text) {
        ufd_reply_error(r, UFD_E_INTERNAL, "out of memory");
        return;
    }
    ufd_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, free);
}
