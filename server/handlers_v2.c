/* handlers_v2.c — KServe v2 / Open Inference Protocol: server and model metadata, health,
 * readiness, and infer (run by a worker in infer_v2.c). */
#include "handlers.h"

#include "infer_v2.h"
#include "job.h"
#include "reply.h"
#include "uflow.h"

void ufd_h_v2_server(ufd_req *r)
{
    ufd_reply_json(r, 200, json_pack("{s:s,s:s,s:[]}", "name", "uflowd", "version", UF_VERSION_STRING, "extensions"));
}

void ufd_h_v2_live(ufd_req *r) { ufd_reply_json(r, 200, json_pack("{s:b}", "live", 1)); }

void ufd_h_v2_ready(ufd_req *r)
{
    int ready = ufd_server_state(r->srv) == UFD_READY;
    ufd_reply_json(r, ready ? 200 : 503, json_pack("{s:b}", "ready", ready));
}

void ufd_h_v2_model(ufd_req *r)
{
    const ufd_model *m = ufd_models_at(r->models, r->model);
    int h = m->info->height, w = m->info->width;
    json_t *in = json_pack("[{s:s,s:s,s:[iiii]}]", "name", "input", "datatype", "FP32", "shape", -1, 3, h, w);
    json_t *out = json_pack("[{s:s,s:s,s:[iiii]},{s:s,s:s,s:[i]}]", "name", "anomaly_map", "datatype", "FP32",
                            "shape", -1, 1, h, w, "name", "pred_score", "datatype", "FP32", "shape", -1);
    ufd_reply_json(r, 200, json_pack("{s:s,s:[s],s:s,s:o,s:o}", "name", m->name, "versions", m->info->version,
                                     "platform", "uflow", "inputs", in, "outputs", out));
}

void ufd_h_v2_model_ready(ufd_req *r)
{
    int ready = ufd_server_state(r->srv) == UFD_READY;
    ufd_reply_json(r, ready ? 200 : 503,
                   json_pack("{s:s,s:b}", "name", ufd_models_at(r->models, r->model)->name, "ready", ready));
}

void ufd_h_v2_infer(ufd_req *r)
{
    if (r->body.len == 0) {
        ufd_reply_error(r, UFD_E_BAD_JSON, "empty body");
        return;
    }
    ufd_job_submit(r, ufd_infer_v2_work);
}
