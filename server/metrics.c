/* metrics.c — see metrics.h. One mutex guards everything: a few increments per request are
 * far below anything measurable next to an inference. Request counters are a small vector of
 * (model, endpoint, status) series created on first use; model labels come only from the
 * registry, never from client input, so the label set stays bounded. Model names are
 * interned (a model keeps its series across reloads, and after it is removed). */
#include "metrics.h"

#include <dirent.h>
#include <glib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uflow.h"

#define NB 14
static const double bounds[NB] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                  0.25,  0.5,    1,     2.5,  5,    10,  30};

typedef struct hist {
    unsigned long long counts[NB + 1]; /* last: +Inf only */
    unsigned long long n;
    double sum;
} hist;

typedef struct series {
    int model, status;
    ufd_endpoint ep;
    unsigned long long n;
} series;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static series *req;
static size_t n_req, cap_req;
static hist req_dur[UFD_EP_COUNT];
static hist queue_wait;
typedef struct mname {
    char *name;
    hist infer;                      /* uflowd_inference_duration_seconds */
} mname;
static mname *names;
static int n_names, cap_names;
static unsigned long long rejected[UFD_REJECT_COUNT], errors[UFD_E_COUNT], load_failures, reloads[2];

static const char *reject_name[UFD_REJECT_COUNT] = {"queue_full",     "draining",    "not_ready",   "timeout",
                                                    "body_too_large", "header_timeout", "evicted", "connections",
                                                    "per_ip",         "slow_body"};

static void observe(hist *h, double v)
{
    int i = 0;
    while (i < NB && v > bounds[i])
        i++;
    h->counts[i]++;
    h->n++;
    h->sum += v;
}

void ufd_metrics_init(void) {}

void ufd_metrics_free(void)
{
    pthread_mutex_lock(&mu);
    free(req);
    req = NULL;
    n_req = cap_req = 0;
    for (int i = 0; i < n_names; i++)
        free(names[i].name);
    free(names);
    names = NULL;
    n_names = cap_names = 0;
    pthread_mutex_unlock(&mu);
}

/* Index of a model name in the table, added when new; -1 for NULL or out of memory. mu held. */
static int intern(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < n_names; i++)
        if (!strcmp(names[i].name, name))
            return i;
    if (n_names == cap_names) {
        int nc = cap_names ? cap_names * 2 : 16;
        mname *nv = realloc(names, sizeof *nv * (size_t)nc);
        if (!nv)
            return -1;
        names = nv;
        cap_names = nc;
    }
    char *dup = strdup(name);
    if (!dup)
        return -1;
    memset(&names[n_names], 0, sizeof names[n_names]);
    names[n_names].name = dup;
    return n_names++;
}

void ufd_metrics_reload(int ok)
{
    pthread_mutex_lock(&mu);
    reloads[ok ? 1 : 0]++;
    pthread_mutex_unlock(&mu);
}

void ufd_metrics_load_failures(int n)
{
    pthread_mutex_lock(&mu);
    load_failures += (unsigned long long)n;
    pthread_mutex_unlock(&mu);
}

void ufd_metrics_request(const char *name, ufd_endpoint ep, int status, double seconds)
{
    pthread_mutex_lock(&mu);
    int model = intern(name);
    size_t i = 0;
    while (i < n_req && !(req[i].model == model && req[i].ep == ep && req[i].status == status))
        i++;
    if (i == n_req && n_req == cap_req) {
        size_t nc = cap_req ? cap_req * 2 : 64;
        series *nv = realloc(req, nc * sizeof *nv);
        if (nv) {
            req = nv;
            cap_req = nc;
        }
    }
    if (i < cap_req) {
        if (i == n_req)
            req[n_req++] = (series){.model = model, .status = status, .ep = ep, .n = 0};
        req[i].n++;
    }
    if (ep >= 0 && ep < UFD_EP_COUNT)
        observe(&req_dur[ep], seconds);
    pthread_mutex_unlock(&mu);
}

void ufd_metrics_inference(const char *name, double seconds)
{
    pthread_mutex_lock(&mu);
    int model = intern(name);
    if (model >= 0)
        observe(&names[model].infer, seconds);
    pthread_mutex_unlock(&mu);
}

void ufd_metrics_queue_wait(double seconds)
{
    pthread_mutex_lock(&mu);
    observe(&queue_wait, seconds);
    pthread_mutex_unlock(&mu);
}

void ufd_metrics_rejected(ufd_reject why)
{
    pthread_mutex_lock(&mu);
    if (why >= 0 && why < UFD_REJECT_COUNT)
        rejected[why]++;
    pthread_mutex_unlock(&mu);
}

void ufd_metrics_error(ufd_err e)
{
    pthread_mutex_lock(&mu);
    if (e > UFD_E_NONE && e < UFD_E_COUNT)
        errors[e]++;
    pthread_mutex_unlock(&mu);
}

static void header(GString *s, const char *name, const char *type, const char *help)
{
    g_string_append_printf(s, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* labels: "" or `key="value",...` without braces */
static void hist_out(GString *s, const char *name, const char *labels, const hist *h)
{
    unsigned long long cum = 0;
    const char *sep = *labels ? "," : "";
    for (int i = 0; i < NB; i++) {
        cum += h->counts[i];
        g_string_append_printf(s, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i], cum);
    }
    g_string_append_printf(s, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, h->n);
    g_string_append_printf(s, "%s_sum%s%s%s %.9g\n", name, *labels ? "{" : "", labels, *labels ? "}" : "", h->sum);
    g_string_append_printf(s, "%s_count%s%s%s %llu\n", name, *labels ? "{" : "", labels, *labels ? "}" : "", h->n);
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

static long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long pages = -1, rss = -1;
    if (!f)
        return -1;
    if (fscanf(f, "%lld %lld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

static const char *model_label(int m) { return m >= 0 ? names[m].name : ""; }

char *ufd_metrics_render(const ufd_metrics_gauges *g, const ufd_models *models, size_t *len)
{
    GString *s = g_string_sized_new(8192);
    pthread_mutex_lock(&mu);
    for (int m = 0; models && m < models->n; m++) /* every served model has its series, even at 0 */
        intern(models->v[m].m->name);
    header(s, "uflowd_build_info", "gauge", "Build information (always 1).");
    g_string_append_printf(s, "uflowd_build_info{version=\"%s\"} 1\n", UF_VERSION_STRING);
    header(s, "uflowd_ready", "gauge", "1 when every model is loaded, workers run and the server is not draining.");
    g_string_append_printf(s, "uflowd_ready %d\n", g->ready);
    header(s, "uflowd_requests_total", "counter", "HTTP requests answered, by model, endpoint and status code.");
    for (size_t i = 0; i < n_req; i++)
        g_string_append_printf(s, "uflowd_requests_total{model=\"%s\",endpoint=\"%s\",code=\"%d\"} %llu\n",
                               model_label(req[i].model), ufd_endpoint_name(req[i].ep), req[i].status, req[i].n);
    header(s, "uflowd_request_duration_seconds", "histogram", "Time from request headers to response, by endpoint.");
    for (int ep = 0; ep < UFD_EP_COUNT; ep++) {
        if (!req_dur[ep].n)
            continue;
        char lab[64];
        snprintf(lab, sizeof lab, "endpoint=\"%s\"", ufd_endpoint_name((ufd_endpoint)ep));
        hist_out(s, "uflowd_request_duration_seconds", lab, &req_dur[ep]);
    }
    header(s, "uflowd_inference_duration_seconds", "histogram", "Model run time (decode excluded), by model.");
    for (int m = 0; m < n_names; m++) {
        char lab[UFD_MODEL_NAME_MAX + 16];
        snprintf(lab, sizeof lab, "model=\"%s\"", names[m].name);
        hist_out(s, "uflowd_inference_duration_seconds", lab, &names[m].infer);
    }
    header(s, "uflowd_queue_wait_seconds", "histogram", "Time jobs waited for a worker.");
    hist_out(s, "uflowd_queue_wait_seconds", "", &queue_wait);
    header(s, "uflowd_queue_depth", "gauge", "Jobs waiting for a worker.");
    g_string_append_printf(s, "uflowd_queue_depth %d\n", g->queue_depth);
    header(s, "uflowd_workers", "gauge", "Inference workers.");
    g_string_append_printf(s, "uflowd_workers %d\n", g->workers);
    header(s, "uflowd_workers_busy", "gauge", "Workers running a job now.");
    g_string_append_printf(s, "uflowd_workers_busy %d\n", g->workers_busy);
    header(s, "uflowd_inflight_requests", "gauge", "Requests received and not yet answered.");
    g_string_append_printf(s, "uflowd_inflight_requests %d\n", g->inflight);
    header(s, "uflowd_connections", "gauge", "Open connections, by phase (head: still sending the request head).");
    g_string_append_printf(s, "uflowd_connections{phase=\"head\"} %d\n", g->conns_head);
    g_string_append_printf(s, "uflowd_connections{phase=\"all\"} %d\n", g->conns_open);
    header(s, "uflowd_rejected_total", "counter", "Requests or connections shed without running, by reason.");
    for (int r = 0; r < UFD_REJECT_COUNT; r++)
        g_string_append_printf(s, "uflowd_rejected_total{reason=\"%s\"} %llu\n", reject_name[r], rejected[r]);
    header(s, "uflowd_errors_total", "counter", "Error answers, by kind (the error code of the body).");
    for (int e = 1; e < UFD_E_COUNT; e++)
        g_string_append_printf(s, "uflowd_errors_total{kind=\"%s\"} %llu\n", ufd_err_code((ufd_err)e), errors[e]);
    header(s, "uflowd_models_loaded", "gauge", "Models being served.");
    g_string_append_printf(s, "uflowd_models_loaded %d\n", models ? models->n : 0);
    header(s, "uflowd_model_load_failures_total", "counter", "Model files that failed to load.");
    g_string_append_printf(s, "uflowd_model_load_failures_total %llu\n", load_failures);
    header(s, "uflowd_model_reloads_total", "counter",
           "Model reloads (SIGHUP, POST /v1/models/reload), by result (failed: some file failed or the reload was refused).");
    g_string_append_printf(s, "uflowd_model_reloads_total{result=\"ok\"} %llu\n", reloads[1]);
    g_string_append_printf(s, "uflowd_model_reloads_total{result=\"failed\"} %llu\n", reloads[0]);
    header(s, "uflowd_models_generation", "gauge", "Registry generation: 1 at start, +1 per reload that changed it.");
    g_string_append_printf(s, "uflowd_models_generation %lu\n", models ? models->generation : 0);
    header(s, "uflowd_model_stale", "gauge",
           "1 when the model's file failed to reload and its previous version is served.");
    for (int m = 0; models && m < models->n; m++)
        g_string_append_printf(s, "uflowd_model_stale{model=\"%s\"} %d\n", models->v[m].m->name,
                               models->v[m].error != NULL);
    header(s, "uflowd_model_info", "gauge", "Served models (always 1).");
    for (int m = 0; models && m < models->n; m++) {
        const ufd_model *md = models->v[m].m;
        g_string_append_printf(s, "uflowd_model_info{model=\"%s\",version=\"%s\",backbone=\"%s\",input=\"%dx%d\"} 1\n",
                               md->name, md->info->version, md->info->backbone_name, md->info->height,
                               md->info->width);
    }
    header(s, "uflowd_model_load_duration_seconds", "gauge", "Time the model took to load (with its contexts).");
    for (int m = 0; models && m < models->n; m++)
        g_string_append_printf(s, "uflowd_model_load_duration_seconds{model=\"%s\"} %.6f\n", models->v[m].m->name,
                               models->v[m].m->load_seconds);
    pthread_mutex_unlock(&mu);
    header(s, "process_resident_memory_bytes", "gauge", "Resident set size.");
    g_string_append_printf(s, "process_resident_memory_bytes %lld\n", rss_bytes());
    header(s, "process_open_fds", "gauge", "Open file descriptors.");
    g_string_append_printf(s, "process_open_fds %ld\n", open_fds());
    *len = s->len;
    char *out = malloc(s->len + 1);
    if (out)
        memcpy(out, s->str, s->len + 1);
    g_string_free(s, TRUE);
    return out;
}
