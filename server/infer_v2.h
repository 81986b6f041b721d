/* infer_v2.h — the KServe v2 infer job as it runs on a worker: the request (v2_request.h:
 * FP32 [B,3,H,W] normalised input, or BYTES [B] of encoded images, as JSON or binary data),
 * one inference per batch item with a deadline check after each, and the tensors
 * anomaly_map [B,1,H,W], pred_score [B] and, when asked for, minus_log10_nfa [B,1,H,W]
 * (NFA options from the request's "parameters") out, as JSON numbers or binary data. */
#ifndef UFD_INFER_V2_H
#define UFD_INFER_V2_H

#include "request.h"
#include "worker.h"

/* The job work of POST /v2/models/{name}/infer (job.h). */
void ufd_infer_v2_work(ufd_req *r, ufd_worker *w);

#endif
