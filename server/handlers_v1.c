/* handlers_v1.c — the REST API: model listing and description, predict (validated here,
 * run by a worker in predict.c). */
#include "handlers.h"

#include <stdio.h>

#include "json_out.h"
#include "predict.h"

void ufd_h_v1_models(ufd_req *r)
{
    const ufd_models *ms = r->srv->models;
    json_t *a = json_array();
    for (int i = 0; i < ms->n; i++)
        json_array_append_new(a, ufd_model_describe(&ms->v[i]));
    ufd_reply_json(r, 200, json_pack("{s:o}", "models", a));
}

void ufd_h_v1_model(ufd_req *r) { ufd_reply_json(r, 200, ufd_model_describe(&r->srv->models->v[r->model])); }

void ufd_h_v1_reload(ufd_req *r)
{
    ufd_reply_error(r, UFD_E_NOT_IMPLEMENTED, "model reload is not available yet in this build");
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
        if (r->form_opt[i][0] &&
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
    r->job.run = ufd_predict_run;
    r->job.drop = ufd_http_drop;
    ufd_http_submit(r);
}
