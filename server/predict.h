/* predict.h — the v1 predict job as it runs on a worker: body -> image bytes (raw,
 * multipart field, or JSON base64) -> decode -> inference -> NFA -> heatmap/overlay/mask
 * PNGs -> the JSON answer. handlers_v1.c only validates and submits. */
#ifndef UFD_PREDICT_H
#define UFD_PREDICT_H

#include "request.h"
#include "worker.h"

/* The job work of POST /v1/models/{name}/predict (job.h). */
void ufd_predict_work(ufd_req *r, ufd_worker *w);

#endif
