/* reload.c — see reload.h. */
#include "reload.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "reply.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

struct ufd_reloader {
    ufd_server *srv;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned long asked, started, done; /* reload tickets: asked > started means one is due */
    int stop;
    ufd_req *waiters;            /* POST requests, each with the ticket it waits for */
};

/* One reload; the report as the POST answer. */
static json_t *reload_once(ufd_server *srv)
{
    const ufd_config *cfg = srv->cfg;
    ufd_ctx_spec spec = {.workers = cfg->workers, .threads = cfg->threads_per_worker};
    ufd_load_report rep;
    ufd_load_report_init(&rep);
    double t0 = ufd_now();
    ufd_models *cur = ufd_server_models(srv);
    ufd_log(UFD_INFO, "reloading models (generation %lu)", cur->generation);
    ufd_models *ms = ufd_models_load(cfg, cur, &spec, &rep);
    ufd_metrics_load_failures(rep.n_failures);
    int swapped = 0;
    if (ms) {
        /* nothing changed (a file that failed before failing alike again included): keep the
         * current snapshot and its generation, drop the new one */
        swapped = !ufd_models_same(cur, ms);
        if (swapped) {
            ufd_server_set_models(srv, ms);
            ufd_metrics_reload(rep.n_failures == 0);
        } else {
            ufd_models_unref(ms);
            ufd_metrics_reload(1);
        }
    } else {
        ufd_metrics_reload(0);
    }
    ufd_models *now = ufd_server_models(srv);
    double secs = ufd_now() - t0;
    ufd_log(rep.error[0] || rep.n_failures ? UFD_WARN : UFD_INFO,
            "reload %s: generation %lu, %zu loaded, %zu unchanged, %zu removed, %d failed, %.1f ms",
            rep.error[0] ? "refused" : rep.n_failures ? "partly failed" : "done", now->generation,
            json_array_size(rep.loaded), json_array_size(rep.unchanged), json_array_size(rep.removed),
            rep.n_failures, secs * 1e3);
    json_t *names = json_array();
    for (int i = 0; i < now->n; i++)
        json_array_append_new(names, json_string(now->v[i].m->name));
    json_t *o = json_pack("{s:b,s:I,s:o,s:O,s:O,s:O,s:O,s:f}", "ok", !rep.error[0] && rep.n_failures == 0,
                          "generation", (json_int_t)now->generation, "models", names, "loaded", rep.loaded,
                          "unchanged", rep.unchanged, "removed", rep.removed, "failed", rep.failed, "reload_ms",
                          secs * 1e3);
    if (rep.error[0])
        json_object_set_new(o, "error", json_string(rep.error));
    ufd_models_unref(now);
    ufd_models_unref(cur);
    ufd_load_report_clear(&rep);
    return o;
}

/* Answer the waiters whose reload is done (all of them when `all`). */
static void answer(ufd_reloader *rl, json_t *report, int all)
{
    pthread_mutex_lock(&rl->mu);
    ufd_req *list = NULL, **keep = &rl->waiters;
    while (*keep) {
        ufd_req *r = *keep;
        if (all || r->reload_ticket <= rl->done) {
            *keep = r->reload_next;
            r->reload_next = list;
            list = r;
        } else {
            keep = &r->reload_next;
        }
    }
    pthread_mutex_unlock(&rl->mu);
    while (list) {
        ufd_req *r = list;
        list = r->reload_next;
        if (report) {
            ufd_reply_json(r, 200, json_incref(report));
        } else {
            r->retry_after = 1;
            ufd_reply_error(r, UFD_E_UNAVAILABLE, "the server is shutting down");
        }
        ufd_req_resume(r); /* last use of r here */
    }
}

static void *reloader_main(void *arg)
{
    ufd_reloader *rl = arg;
    pthread_mutex_lock(&rl->mu);
    for (;;) {
        while (!rl->stop && rl->asked == rl->started)
            pthread_cond_wait(&rl->cv, &rl->mu);
        if (rl->stop)
            break;
        unsigned long ticket = rl->started = rl->asked;
        pthread_mutex_unlock(&rl->mu);
        json_t *report = reload_once(rl->srv);
        pthread_mutex_lock(&rl->mu);
        rl->done = ticket;
        pthread_mutex_unlock(&rl->mu);
        answer(rl, report, 0);
        json_decref(report);
        pthread_mutex_lock(&rl->mu);
    }
    pthread_mutex_unlock(&rl->mu);
    answer(rl, NULL, 1);
    return NULL;
}

ufd_reloader *ufd_reloader_start(ufd_server *srv, char *err, size_t errn)
{
    ufd_reloader *rl = calloc(1, sizeof *rl);
    if (!rl) {
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    rl->srv = srv;
    pthread_mutex_init(&rl->mu, NULL);
    pthread_cond_init(&rl->cv, NULL);
    if (pthread_create(&rl->thread, NULL, reloader_main, rl) != 0) {
        snprintf(err, errn, "cannot start the reload thread");
        pthread_cond_destroy(&rl->cv);
        pthread_mutex_destroy(&rl->mu);
        free(rl);
        return NULL;
    }
    return rl;
}

void ufd_reloader_request(ufd_reloader *rl, ufd_req *waiter)
{
    pthread_mutex_lock(&rl->mu);
    /* the next reload to start (one asked for but not started yet serves this asker too) */
    rl->asked = rl->started + 1;
    if (waiter) {
        waiter->reload_ticket = rl->asked;
        waiter->reload_next = rl->waiters;
        rl->waiters = waiter;
    }
    pthread_cond_signal(&rl->cv);
    pthread_mutex_unlock(&rl->mu);
}

void ufd_reloader_stop(ufd_reloader *rl)
{
    if (!rl)
        return;
    pthread_mutex_lock(&rl->mu);
    rl->stop = 1;
    pthread_cond_signal(&rl->cv);
    pthread_mutex_unlock(&rl->mu);
    pthread_join(rl->thread, NULL);
    pthread_cond_destroy(&rl->cv);
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}
