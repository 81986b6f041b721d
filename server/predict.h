/* predict.h — the v1 predict job as it runs on a worker: body -> image bytes (raw,
 * multipart field, or JSON base64) -> decode -> inference -> heatmap/overlay PNGs -> the
 * JSON answer. Kept apart from handlers_v1.c, which only validates and submits. */
#ifndef UFD_PREDICT_H
#define UFD_PREDICT_H

#include "request.h"

/* ufd_job.run for POST /v1/models/{name}/predict. */
void ufd_predict_run(ufd_job *job, ufd_worker *w);

/* Decode an encoded image for model m into x (3 x H x W), mapping library failures to HTTP:
 * header above --max-pixels -> 413 image_too_large, anything else -> 400 bad_image. 0, or
 * -1 with the error answer set on r. Shared with the KServe BYTES input. */
int ufd_decode_image(ufd_req *r, const ufd_model *m, const void *data, size_t len, float *x);

/* The NFA test (r->opts: nfa_window, nfa_prob_thr, mask_epsilon) on the latents of the
 * worker's last run of r->model. 0, or -1 with the error answer set (400 for options the
 * model cannot take, e.g. a window larger than its latent maps). */
int ufd_nfa(ufd_req *r, ufd_worker *w, uf_nfa_result *nr);

#endif
