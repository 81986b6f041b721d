/* main.c — uflowd: parse the configuration, start HTTP, load models and workers, serve
 * (SIGHUP: reload the models) until SIGTERM/SIGINT, then drain and exit 0.
 *
 * Signals are blocked in every thread and taken synchronously here with sigwait(), so no
 * handler ever runs inside a library call. Exit status: 0 after a drain, 1 when startup
 * fails (port, model, key file) or when a job still runs 5 s after --drain-timeout, 2 for
 * usage errors. */
#include <glib.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "healthcheck.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "models.h"
#include "reload.h"
#include "server.h"
#include "util.h"
#include "queue.h"
#include "worker.h"

/* libvips reports what it could not decode as GLib warnings on stderr; the same text is
 * in the error answer and the request log line, so the duplicates are dropped here. */
static void drop_glib_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer ud)
{
    (void)domain, (void)level, (void)msg, (void)ud;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Write the port atomically (temp file + rename) so a reader never sees a partial file. */
static int write_port_file(const char *path, int port)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%d\n", port) > 0;
    ok &= fclose(f) == 0;
    return ok && rename(tmp, path) == 0 ? 0 : -1;
}

/* SIGTERM: readiness off, no new connections, accepted requests finish within
 * --drain-timeout. When it passes, queued requests are cancelled (503) and running ones
 * stop at their next stage (decode, inference, NFA: ufd_job_check) with 503; one stage
 * cannot be interrupted, so a job still running DRAIN_STAGE_GRACE s later is left behind:
 * 1, and the caller exits at once (libmicrohttpd must not be stopped while it holds a
 * suspended connection). 0 when everything was answered. */
#define DRAIN_STAGE_GRACE 5.0
static int drain(ufd_server *srv, ufd_http *http)
{
    const ufd_config *cfg = srv->cfg;
    ufd_server_set_state(srv, UFD_DRAINING);
    ufd_http_quiesce(http);
    ufd_log(UFD_INFO, "draining: %d requests in flight, %d queued, up to %g s", atomic_load(&srv->inflight),
            ufd_queue_depth(srv->queue), cfg->drain_timeout);
    double deadline = ufd_now() + cfg->drain_timeout;
    while (atomic_load(&srv->inflight) > 0 && ufd_now() < deadline)
        sleep_ms(5);
    ufd_queue_close(srv->queue);
    if (atomic_load(&srv->inflight) > 0) {
        ufd_log(UFD_WARN, "drain timeout: %d requests still in flight; cancelling %d queued ones, stopping %d running",
                atomic_load(&srv->inflight), ufd_queue_depth(srv->queue), ufd_queue_busy(srv->queue));
        ufd_queue_abandon(srv->queue);
        ufd_queue_cancel_queued(srv->queue);
    }
    double hard = ufd_now() + DRAIN_STAGE_GRACE;
    while ((ufd_queue_busy(srv->queue) > 0 || ufd_queue_depth(srv->queue) > 0) && ufd_now() < hard)
        sleep_ms(5);
    if (ufd_queue_busy(srv->queue) > 0) {
        ufd_log(UFD_ERROR, "drain: %d jobs still running %g s after the drain timeout; exiting without them",
                ufd_queue_busy(srv->queue), DRAIN_STAGE_GRACE);
        return 1;
    }
    /* give I/O threads a moment to send the answers of just-resumed requests */
    for (int i = 0; i < 200 && atomic_load(&srv->inflight) > 0; i++)
        sleep_ms(5);
    return 0;
}

int main(int argc, char **argv)
{
    ufd_config cfg;
    switch (ufd_config_parse(&cfg, argc, argv)) {
    case UFD_CONFIG_OK:
        break;
    case UFD_CONFIG_EXIT_OK:
        ufd_config_free(&cfg);
        return 0;
    default:
        ufd_config_free(&cfg);
        return 2;
    }
    if (cfg.healthcheck) {
        int rc = ufd_healthcheck(&cfg);
        ufd_config_free(&cfg);
        return rc;
    }
    ufd_log_init(cfg.log_format);
    json_object_seed(0);
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG,
                      drop_glib_log, NULL);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread started below */
    signal(SIGPIPE, SIG_IGN);

    ufd_server srv;
    ufd_server_init(&srv, &cfg);
    char err[512];
    int rc = 1, port = 0;
    ufd_models *ms = NULL;
    ufd_http *http = NULL;
    if (cfg.api_key_file && !(srv.auth = ufd_auth_load(cfg.api_key_file, err, sizeof err))) {
        ufd_log(UFD_ERROR, "%s", err);
        goto out;
    }
    ufd_metrics_init();
    if (!(http = ufd_http_start(&srv, &port, err, sizeof err))) {
        ufd_log(UFD_ERROR, "%s", err);
        goto out;
    }
    if (cfg.port_file && write_port_file(cfg.port_file, port) != 0) {
        ufd_log(UFD_ERROR, "cannot write the port file '%s'", cfg.port_file);
        goto out;
    }
    ufd_ctx_spec spec = {.workers = cfg.workers, .threads = cfg.threads_per_worker};
    ufd_load_report rep;
    ufd_load_report_init(&rep);
    ms = ufd_models_load(&cfg, NULL, &spec, &rep);
    ufd_metrics_load_failures(rep.n_failures);
    ufd_load_report_clear(&rep);
    if (!ms)
        goto out;
    int n_models = ms->n;
    ufd_server_set_models(&srv, ms);
    if (!(srv.queue = ufd_queue_create(cfg.queue_size, cfg.request_timeout, err, sizeof err)) ||
        !(srv.pool = ufd_pool_create(srv.queue, cfg.workers, err, sizeof err)) ||
        !(srv.reloader = ufd_reloader_start(&srv, err, sizeof err))) {
        ufd_log(UFD_ERROR, "cannot start the workers: %s", err);
        goto out;
    }
    ufd_server_set_state(&srv, UFD_READY);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ufd_log(UFD_INFO, "ready: %d models, %d workers x %d threads, queue %d, %s auth", n_models, cfg.workers,
            cfg.threads_per_worker, cfg.queue_size, srv.auth ? "API key" : "no");
    if (cores > 0 && (long)cfg.workers * cfg.threads_per_worker > cores)
        ufd_log(UFD_WARN, "workers x threads-per-worker = %d exceeds the %ld cores: expect slower requests",
                cfg.workers * cfg.threads_per_worker, cores);
    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            ufd_log(UFD_INFO, "SIGHUP: reloading the models");
            ufd_reloader_request(srv.reloader, NULL);
            continue;
        }
        ufd_log(UFD_INFO, "%s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    if (drain(&srv, http) != 0)
        _exit(1); /* a job is inside the library: nothing can be freed under it */
    rc = 0;
out:
    /* a reload in progress finishes (its waiters are answered) before HTTP stops */
    ufd_reloader_stop(srv.reloader);
    for (int i = 0; i < 200 && srv.reloader && atomic_load(&srv.inflight) > 0; i++)
        sleep_ms(5);
    ufd_http_stop(http);
    ufd_pool_destroy(srv.pool);
    ufd_queue_destroy(srv.queue);
    ufd_metrics_free();
    ufd_server_destroy(&srv);
    if (rc == 0)
        ufd_log(UFD_INFO, "stopped after %.1f s", ufd_now() - srv.t_start);
    ufd_config_free(&cfg);
    return rc;
}
