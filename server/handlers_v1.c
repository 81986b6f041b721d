/* handlers_v1.c — the REST API: model listing and description, predict (validated here,
 * run by a worker in predict.c). */
#include "handlers.h"

#include <stdio.h>

#include "job.h"
#include "metrics.h"
#include "predict.h"
#include "reload.h"
#include "reply.h"

void ufd_h_v1_models(ufd_req *r) { ufd_reply_json(r, 200, ufd_models_describe(r->models)); }

void ufd_h_v1_model(ufd_req *r) { ufd_reply_json(r, 200, ufd_model_describe(&r->models->v[r->model])); }

static void start_reload(ufd_req *r) { ufd_reloader_request(r->srv->reloader, r); }

/* Answered by the reloader thread once a reload that started after this request is done. */
void ufd_h_v1_reload(ufd_req *r)
{
    if (ufd_server_state(r->srv) != UFD_READY) {
        ufd_metrics_rejected(ufd_server_state(r->srv) == UFD_DRAINING ? UFD_REJECT_DRAINING : UFD_REJECT_NOT_READY);
        r->retry_after = 1;
        ufd_reply_error(r, UFD_E_UNAVAILABLE, "models are %s", ufd_server_serving(r->srv) ? "draining" : "loading");
        return;
    }
    ufd_req_defer(r, start_reload);
}

/* Options from the query string, then multipart fields (a JSON body's options are applied
 * by the worker). 0, or -1 with the answer set. */
static int read_options(ufd_req *r)
{
    char msg[256];
    for (int i = 0; ufd_predict_opt_names[i]; i++) {
        const char *q = ufd_req_query(r, ufd_predict_opt_names[i]);
        if (q && ufd_predict_opt_set(&r->opts, ufd_predict_opt_names[i], q, msg, sizeof msg) < 0) {
            ufd_reply_error(r, UFD_E_BAD_REQUEST, "%s", msg);
            return -1;
        }
        if ((r->form_opt_seen & (1u << i)) &&
            ufd_predict_opt_set(&r->opts, ufd_predict_opt_names[i], r->form_opt[i], msg, sizeof msg) < 0) {
            ufd_reply_error(r, UFD_E_BAD_REQUEST, "%s", msg);
            return -1;
        }
    }
    return 0;
}

void ufd_h_v1_predict(ufd_req *r)
{
    if (read_options(r) != 0)
        return;
    if (r->body_kind == UFD_BODY_MULTIPART && !r->form_has_image) {
        ufd_reply_error(r, UFD_E_BAD_REQUEST, "multipart/form-data body without an 'image' field");
        return;
    }
    if (r->body.len == 0) {
        ufd_reply_error(r, r->body_kind == UFD_BODY_JSON ? UFD_E_BAD_JSON : UFD_E_BAD_IMAGE, "empty body");
        return;
    }
    ufd_job_submit(r, ufd_predict_work);
}
