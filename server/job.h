/* job.h — what every inference request does on a worker, in one place: the job wrapper
 * (queue wait, metrics, hand the answer back to the I/O thread) and the stages the v1 and
 * KServe jobs share (decode an image, run the model, the NFA test), each followed by a
 * deadline check so a late request stops at the next stage instead of running on.
 *
 * Every stage returns 0, or -1 with the error answer already set on r. */
#ifndef UFD_JOB_H
#define UFD_JOB_H

#include <stddef.h>

#include "request.h"
#include "worker.h"

/* Reserve a queue slot for r and defer its answer to work(r, w) on a worker; when the
 * queue is full or closed the answer (503) is set instead. */
void ufd_job_submit(ufd_req *r, void (*work)(ufd_req *r, ufd_worker *w));

/* Between stages: -1 with 504 when r's deadline (queue wait + run) has passed, or 503 when
 * the daemon's drain deadline has passed and running jobs must give up. `after` names the
 * stage just done, for the message. */
int ufd_job_check(ufd_req *r, const char *after);

/* Decode an encoded image for model m into x (3 x H x W); failures mapped by
 * ufd_err_of_image_status (errors.h). */
int ufd_job_decode(ufd_req *r, const ufd_model *m, const void *data, size_t len, float *x);

/* One image through the model on the worker's context; adds to r->infer_ms and the
 * inference histogram. */
int ufd_job_infer(ufd_req *r, ufd_worker *w, const ufd_model *m, const float *x, uf_result *res);

/* The NFA test (r->opts: nfa_window, nfa_prob_thr, mask_epsilon) on the latents of the
 * worker's last run of r->model; 400 for options the model cannot take (e.g. a window
 * larger than its latent maps). */
int ufd_job_nfa(ufd_req *r, ufd_worker *w, uf_nfa_result *nr);

#endif
