/* handlers.h — one function per endpoint. Each either sets the answer on r
 * (ufd_reply_*) or submits a job (ufd_http_submit). Called on an I/O thread once the body
 * is complete; cheap checks only: everything heavy goes to a worker job. */
#ifndef UFD_HANDLERS_H
#define UFD_HANDLERS_H

#include "request.h"

/* handlers_ops.c: service endpoints */
void ufd_h_root(ufd_req *r);
void ufd_h_openapi(ufd_req *r);
void ufd_h_healthz(ufd_req *r);
void ufd_h_readyz(ufd_req *r);
void ufd_h_metrics(ufd_req *r);

/* handlers_v1.c: REST */
void ufd_h_v1_models(ufd_req *r);
void ufd_h_v1_model(ufd_req *r);
void ufd_h_v1_predict(ufd_req *r);
void ufd_h_v1_reload(ufd_req *r);

/* handlers_v2.c: KServe v2 / Open Inference Protocol */
void ufd_h_v2_server(ufd_req *r);
void ufd_h_v2_live(ufd_req *r);
void ufd_h_v2_ready(ufd_req *r);
void ufd_h_v2_model(ufd_req *r);
void ufd_h_v2_model_ready(ufd_req *r);
void ufd_h_v2_infer(ufd_req *r);

#endif
