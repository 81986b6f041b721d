/* dispatch.c — see dispatch.h. */
#include "dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "metrics.h"
#include "multipart.h"
#include "reply.h"
#include "ui.h"

static void (*const handlers[UFD_EP_COUNT])(ufd_req *) = {
    [UFD_EP_ROOT] = ufd_h_root,           [UFD_EP_OPENAPI] = ufd_h_openapi,
    [UFD_EP_HEALTHZ] = ufd_h_healthz,     [UFD_EP_READYZ] = ufd_h_readyz,
    [UFD_EP_METRICS] = ufd_h_metrics,     [UFD_EP_V1_MODELS] = ufd_h_v1_models,
    [UFD_EP_V1_MODEL] = ufd_h_v1_model,   [UFD_EP_V1_PREDICT] = ufd_h_v1_predict,
    [UFD_EP_V1_RELOAD] = ufd_h_v1_reload, [UFD_EP_V2_SERVER] = ufd_h_v2_server,
    [UFD_EP_V2_LIVE] = ufd_h_v2_live,     [UFD_EP_V2_READY] = ufd_h_v2_ready,
    [UFD_EP_V2_MODEL] = ufd_h_v2_model,   [UFD_EP_V2_MODEL_READY] = ufd_h_v2_model_ready,
    [UFD_EP_V2_INFER] = ufd_h_v2_infer,
    [UFD_EP_UI] = ufd_h_ui,               [UFD_EP_UI_REDIRECT] = ufd_h_ui_redirect,
};

/* Endpoints that read the model registry (503 while loading). */
static int needs_models(ufd_endpoint ep)
{
    return ep == UFD_EP_V1_MODELS || ep == UFD_EP_V1_MODEL || ep == UFD_EP_V1_PREDICT || ep == UFD_EP_V2_MODEL ||
           ep == UFD_EP_V2_MODEL_READY || ep == UFD_EP_V2_INFER;
}

/* ---- multipart fields: "image" into the body buffer, options into small strings ------ */

static int form_begin(void *ud, const char *name, const char *filename, char *err, size_t n)
{
    (void)filename;
    ufd_req *r = ud;
    r->form_in_image = 0;
    r->form_opt_index = -1;
    if (!strcmp(name, "image")) {
        if (r->form_has_image) {
            snprintf(err, n, "two 'image' parts in one form");
            return -1;
        }
        r->form_has_image = r->form_in_image = 1;
        return 0;
    }
    int i = ufd_predict_opt_index(name);
    if (i >= 0) {
        if (r->form_opt_seen & (1u << i)) {
            snprintf(err, n, "form field '%s' given twice", name);
            return -1;
        }
        r->form_opt_seen |= 1u << i;
        r->form_opt_index = i;
    }
    return 0; /* other fields are read and ignored */
}

static int form_data(void *ud, const void *p, size_t len, char *err, size_t n)
{
    ufd_req *r = ud;
    if (r->form_in_image) {
        int rc = ufd_buf_append(&r->body, p, len, r->srv->cfg->max_body);
        if (rc == -1)
            r->body_too_large = 1;
        else if (rc == -2)
            r->body_oom = 1;
        if (rc != 0)
            snprintf(err, n, "image part too large");
        return rc;
    }
    if (r->form_opt_index >= 0) {
        char *o = r->form_opt[r->form_opt_index];
        size_t have = strlen(o);
        if (memchr(p, '\0', len) || have + len > UFD_OPT_TEXT_MAX) {
            snprintf(err, n, "form field '%s' is longer than %d characters (or holds a NUL)",
                     ufd_predict_opt_names[r->form_opt_index], UFD_OPT_TEXT_MAX);
            return -1;
        }
        memcpy(o + have, p, len);
        o[have + len] = '\0';
    }
    return 0;
}

static void form_end(void *ud)
{
    ufd_req *r = ud;
    r->form_in_image = 0;
    r->form_opt_index = -1;
}

/* ---- the head ----------------------------------------------------------------------- */

int ufd_dispatch_head(ufd_req *r, const char *method)
{
    ufd_server *srv = r->srv;
    const ufd_config *cfg = srv->cfg;
    snprintf(r->method, sizeof r->method, "%s", method);
    if (ufd_request_id_valid(r->h.request_id))
        snprintf(r->id, sizeof r->id, "%s", r->h.request_id);
    if (r->route.ep == UFD_EP_ROOT && ufd_ui_wants_html(r->h.accept))
        r->route.ep = UFD_EP_UI_REDIRECT; /* a browser: the page, not the JSON */
    ufd_endpoint ep = r->route.ep;
    /* the key first: without one, nothing (not even which paths exist) is revealed */
    if (srv->auth && !(cfg->public_health && ufd_endpoint_is_health(ep)) && !ufd_endpoint_is_public(ep) &&
        !ufd_auth_check(srv->auth, r->h.authorization, r->h.x_api_key)) {
        ufd_reply_error(r, UFD_E_UNAUTHORIZED, "a valid API key is required (Authorization: Bearer KEY or X-API-Key)");
        return 1;
    }
    if (!r->target_ok) {
        ufd_reply_error(r, UFD_E_BAD_REQUEST, "%s", r->target_err);
        return 1;
    }
    if (ep == UFD_EP_UNKNOWN) {
        ufd_reply_error(r, UFD_E_NOT_FOUND, "no endpoint %.200s (see /openapi.yaml)", r->target.raw_path);
        return 1;
    }
    int is_post = !strcmp(r->method, "POST"), is_get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
    if (ufd_endpoint_is_post(ep) ? !is_post : !is_get) {
        ufd_reply_error(r, UFD_E_METHOD, "%.15s is not allowed on %.200s (allowed: %s)", r->method,
                        r->target.raw_path, ufd_endpoint_allow(ep));
        return 1;
    }
    if (needs_models(ep)) {
        /* the request keeps this snapshot to the end, whatever reloads happen meanwhile */
        if (!ufd_server_serving(srv) || !(r->models = ufd_server_models(srv))) {
            ufd_metrics_rejected(UFD_REJECT_NOT_READY);
            r->retry_after = 1;
            ufd_reply_error(r, UFD_E_UNAVAILABLE, "models are loading");
            return 1;
        }
        if (r->route.model[0] && (r->model = ufd_models_find(r->models, r->route.model)) < 0) {
            ufd_reply_error(r, UFD_E_MODEL_NOT_FOUND, "no model named '%s' (see /v1/models)", r->route.model);
            return 1;
        }
    }
    if (r->h.content_length) {
        unsigned long long n = strtoull(r->h.content_length, NULL, 10);
        if (n > cfg->max_body) {
            ufd_metrics_rejected(UFD_REJECT_BODY_TOO_LARGE);
            ufd_reply_error(r, UFD_E_BODY_TOO_LARGE, "body of %llu bytes is above the limit of %llu", n,
                            (unsigned long long)cfg->max_body);
            return 1;
        }
        /* no reservation from Content-Length: the buffer grows with what arrives */
    }
    if (!is_post)
        return 0;
    const char *ct = r->h.content_type;
    r->body_kind = ufd_body_kind_of(ct);
    int binary_v2 = ep == UFD_EP_V2_INFER && r->h.inference_header_length && r->body_kind == UFD_BODY_IMAGE;
    int ok = ep == UFD_EP_V2_INFER ? (!ct || r->body_kind == UFD_BODY_JSON || binary_v2)
           : ep == UFD_EP_V1_PREDICT ? r->body_kind != UFD_BODY_UNSUPPORTED : 1;
    if (!ok) {
        ufd_reply_error(r, UFD_E_MEDIA_TYPE, "unsupported Content-Type '%.100s' (%s)", ct ? ct : "",
                        ep == UFD_EP_V2_INFER ? "expected application/json, or application/octet-stream with "
                                                "Inference-Header-Content-Length"
                                              : "expected image/*, application/octet-stream, multipart/form-data "
                                                "or application/json");
        return 1;
    }
    if (ep == UFD_EP_V2_INFER)
        r->body_kind = UFD_BODY_JSON;
    if (ep == UFD_EP_V1_PREDICT && r->body_kind == UFD_BODY_MULTIPART) {
        char boundary[UFD_MP_BOUNDARY_MAX + 1];
        ufd_mp_handler mh = {.begin = form_begin, .data = form_data, .end = form_end, .ud = r};
        if (ufd_mp_boundary(ct, boundary, sizeof boundary) != 0) {
            ufd_reply_error(r, UFD_E_BAD_REQUEST, "multipart/form-data without a valid boundary");
            return 1;
        }
        if (!(r->mp = ufd_mp_new(boundary, &mh))) {
            r->retry_after = 1;
            ufd_reply_error(r, UFD_E_UNAVAILABLE, "out of memory");
            return 1;
        }
    }
    return 0;
}

/* ---- the body ----------------------------------------------------------------------- */

int ufd_dispatch_body(ufd_req *r, const void *data, size_t size)
{
    r->bytes_in += size;
    if (r->body_too_large || r->body_oom || r->form_bad)
        return r->bytes_in > 2 * r->srv->cfg->max_body + (1u << 20) ? -1 : 0;
    if (!ufd_endpoint_is_post(r->route.ep))
        return 0; /* a GET with a body: ignored */
    if (r->mp) {
        if (r->bytes_in > r->srv->cfg->max_body)
            r->body_too_large = 1;
        else if (ufd_mp_feed(r->mp, data, size) != 0 && !r->body_too_large && !r->body_oom) {
            r->form_bad = 1;
            snprintf(r->form_err, sizeof r->form_err, "%s", ufd_mp_error(r->mp));
        }
        return 0;
    }
    int rc = ufd_buf_append(&r->body, data, size, r->srv->cfg->max_body);
    if (rc == -1)
        r->body_too_large = 1;
    else if (rc == -2)
        r->body_oom = 1;
    return 0;
}

void ufd_dispatch_end(ufd_req *r)
{
    if (r->mp && !r->body_too_large && !r->body_oom && !r->form_bad && ufd_mp_finish(r->mp) != 0) {
        r->form_bad = 1;
        snprintf(r->form_err, sizeof r->form_err, "%s", ufd_mp_error(r->mp));
    }
    if (r->body_too_large) {
        ufd_metrics_rejected(UFD_REJECT_BODY_TOO_LARGE);
        ufd_reply_error(r, UFD_E_BODY_TOO_LARGE, "body is above the limit of %llu bytes",
                        (unsigned long long)r->srv->cfg->max_body);
    } else if (r->body_oom) {
        r->retry_after = 1;
        ufd_reply_error(r, UFD_E_UNAVAILABLE, "out of memory for the request body");
    } else if (r->form_bad) {
        ufd_reply_error(r, UFD_E_BAD_REQUEST, "malformed multipart/form-data body: %s", r->form_err);
    } else {
        handlers[r->route.ep](r);
    }
}
