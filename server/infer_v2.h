/* infer_v2.h — the KServe v2 infer job as it runs on a worker: JSON tensors in (FP32
 * [B,3,H,W] normalised input, or BYTES [B] of base64-encoded images), one inference per
 * batch item, tensors anomaly_map [B,1,H,W], pred_score [B] and, when asked for,
 * minus_log10_nfa [B,1,H,W] (options from the request's "parameters") out. */
#ifndef UFD_INFER_V2_H
#define UFD_INFER_V2_H

#include "request.h"

#define UFD_V2_MAX_BATCH 16

/* ufd_job.run for POST /v2/models/{name}/infer. */
void ufd_infer_v2_run(ufd_job *job, ufd_worker *w);

#endif
