/* job.c — see job.h. */
#include "job.h"

#include "metrics.h"
#include "reply.h"

/* r->job is the first member: the queue's job is the request. */
static ufd_req *req_of(ufd_job *job) { return (ufd_req *)job; }

static void run(ufd_job *job, ufd_worker *w)
{
    ufd_req *r = req_of(job);
    r->queue_ms = (job->t_start - job->t_submit) * 1e3;
    ufd_metrics_queue_wait(job->t_start - job->t_submit);
    r->work(r, w);
    ufd_req_resume(r); /* last use of r on this thread */
}

static void drop(ufd_job *job, ufd_job_end why)
{
    ufd_req *r = req_of(job);
    r->queue_ms = (job->t_start - job->t_submit) * 1e3;
    if (why == UFD_JOB_EXPIRED) {
        ufd_metrics_rejected(UFD_REJECT_TIMEOUT);
        ufd_reply_error(r, UFD_E_TIMEOUT, "no worker was free within the %g s request timeout",
                        r->srv->cfg->request_timeout);
    } else {
        ufd_metrics_rejected(UFD_REJECT_DRAINING);
        r->retry_after = 1;
        ufd_reply_error(r, UFD_E_UNAVAILABLE, "the server shut down before a worker was free");
    }
    ufd_req_resume(r);
}

static void push(ufd_req *r) { ufd_queue_push(r->srv->queue, &r->job); }

void ufd_job_submit(ufd_req *r, void (*work)(ufd_req *r, ufd_worker *w))
{
    switch (ufd_queue_reserve(r->srv->queue)) {
    case UFD_SUBMIT_OK:
        break;
    case UFD_SUBMIT_FULL:
        ufd_metrics_rejected(UFD_REJECT_QUEUE_FULL);
        r->retry_after = 1;
        ufd_reply_error(r, UFD_E_QUEUE_FULL, "all %d queue slots are taken; retry later", r->srv->cfg->queue_size);
        return;
    default:
        ufd_metrics_rejected(UFD_REJECT_DRAINING);
        r->retry_after = 1;
        ufd_reply_error(r, UFD_E_UNAVAILABLE, "the server is shutting down");
        return;
    }
    r->work = work;
    r->job.run = run;
    r->job.drop = drop;
    ufd_req_defer(r, push);
}

int ufd_job_check(ufd_req *r, const char *after)
{
    if (ufd_queue_abandoned(r->srv->queue)) {
        ufd_metrics_rejected(UFD_REJECT_DRAINING);
        r->retry_after = 1;
        ufd_reply_error(r, UFD_E_UNAVAILABLE, "the server's drain timeout passed during %s", after);
        return -1;
    }
    if (ufd_now() > r->job.deadline) {
        ufd_metrics_rejected(UFD_REJECT_TIMEOUT);
        ufd_reply_error(r, UFD_E_TIMEOUT, "the %g s request timeout passed during %s", r->srv->cfg->request_timeout,
                        after);
        return -1;
    }
    return 0;
}

int ufd_job_decode(ufd_req *r, const ufd_model *m, const void *data, size_t len, float *x)
{
    if (len == 0) {
        ufd_reply_error(r, UFD_E_BAD_IMAGE, "empty image");
        return -1;
    }
    uf_error err = {0};
    uf_image_opts io = {.max_pixels = r->srv->cfg->max_pixels};
    uf_status st = uf_image_load_buffer(data, len, m->info, &io, x, &err);
    if (st == UF_OK)
        return 0;
    ufd_err e = ufd_err_of_image_status(st);
    if (e == UFD_E_UNAVAILABLE) {
        r->retry_after = 1;
        ufd_reply_error(r, e, "out of memory decoding the image");
    } else {
        ufd_reply_error(r, e, "%s", err.msg);
    }
    return -1;
}

int ufd_job_infer(ufd_req *r, ufd_worker *w, const ufd_model *m, const float *x, uf_result *res)
{
    uf_error err = {0};
    double t0 = ufd_now();
    uf_status st = uf_ctx_run(ufd_model_ctx(m, ufd_worker_id(w)), x, 1, res, &err);
    double t = ufd_now() - t0;
    r->infer_ms = (r->infer_ms < 0 ? 0 : r->infer_ms) + t * 1e3;
    ufd_metrics_inference(m->name, t);
    if (st != UF_OK) {
        ufd_reply_error(r, st == UF_ERR_ARG ? UFD_E_BAD_REQUEST : UFD_E_INTERNAL, "inference failed: %s", err.msg);
        return -1;
    }
    return 0;
}

int ufd_job_nfa(ufd_req *r, ufd_worker *w, uf_nfa_result *nr)
{
    uf_nfa_opts no = uf_nfa_opts_default();
    no.window = r->opts.nfa_window;
    no.prob_thr = r->opts.nfa_prob_thr;
    no.epsilon = r->opts.mask_epsilon;
    uf_error err = {0};
    uf_status st = uf_ctx_nfa(ufd_model_ctx(ufd_models_at(r->models, r->model), ufd_worker_id(w)), &no, nr, &err);
    if (st == UF_OK)
        return 0;
    ufd_reply_error(r, st == UF_ERR_ARG ? UFD_E_BAD_REQUEST : UFD_E_INTERNAL, "NFA: %s", err.msg);
    return -1;
}
