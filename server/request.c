/* request.c — see request.h. */
#include "request.h"

#include <stdio.h>
#include <stdlib.h>

#include "multipart.h"

ufd_req *ufd_req_new(ufd_server *srv, const char *raw_target)
{
    ufd_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->srv = srv;
    r->t_start = ufd_now();
    r->model = -1;
    r->form_opt_index = -1;
    r->queue_ms = r->infer_ms = -1;
    r->opts = ufd_predict_opts_default();
    r->target_ok = ufd_target_parse(raw_target, &r->target, r->target_err, sizeof r->target_err) == 0;
    if (r->target_ok)
        ufd_route_match(r->target.path, &r->route);
    ufd_request_id_new(r->id);
    atomic_fetch_add(&srv->inflight, 1);
    return r;
}

void ufd_req_free(ufd_req *r)
{
    ufd_mp_free(r->mp);
    if (r->resp && r->resp_free)
        r->resp_free(r->resp);
    ufd_buf_free(&r->body);
    ufd_target_free(&r->target);
    ufd_models_unref(r->models);
    atomic_fetch_sub(&r->srv->inflight, 1);
    free(r);
}

void ufd_req_defer(ufd_req *r, void (*start)(ufd_req *r)) { r->start = start; }
