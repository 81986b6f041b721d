/* config.c — one table drives flags, environment twins, defaults and --help. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uflow.h"

typedef enum opt_kind { K_STR, K_INT, K_SECONDS, K_BYTES, K_COUNT, K_FLAG, K_MODEL, K_LOGFMT } opt_kind;

typedef struct opt {
    const char *flag;            /* without the leading "--" */
    const char *env;             /* UFLOWD_... */
    opt_kind kind;
    size_t off;                  /* offset of the field in ufd_config */
    double lo, hi;               /* numeric range */
    const char *arg, *help;
} opt;

#define F(field) offsetof(ufd_config, field)
static const opt opts[] = {
    {"models", "UFLOWD_MODELS", K_STR, F(models_dir), 0, 0, "DIR",
     "serve every DIR/NAME.safetensors as model NAME"},
    {"model", "UFLOWD_MODEL", K_MODEL, 0, 0, 0, "NAME=PATH",
     "serve one model file (repeatable; the environment twin takes a comma-separated list)"},
    {"listen", "UFLOWD_LISTEN", K_STR, F(listen), 0, 0, "ADDR:PORT",
     "address to listen on, [v6addr]:PORT for IPv6, port 0 = any free port (default 0.0.0.0:8080)"},
    {"workers", "UFLOWD_WORKERS", K_INT, F(workers), 1, 256, "N", "inference workers (default 2)"},
    {"threads-per-worker", "UFLOWD_THREADS_PER_WORKER", K_INT, F(threads_per_worker), 1, 256, "T",
     "compute threads per worker; keep workers x threads <= cores (default 1)"},
    {"io-threads", "UFLOWD_IO_THREADS", K_INT, F(io_threads), 1, 64, "N",
     "HTTP I/O threads; they never run inference (default 2)"},
    {"queue-size", "UFLOWD_QUEUE_SIZE", K_INT, F(queue_size), 1, 1 << 20, "Q",
     "requests waiting for a worker before answering 503 (default 64)"},
    {"request-timeout", "UFLOWD_REQUEST_TIMEOUT", K_SECONDS, F(request_timeout), 0.001, 86400, "S",
     "queue wait + inference deadline in seconds, then 504 (default 30)"},
    {"max-body", "UFLOWD_MAX_BODY", K_BYTES, F(max_body), 1, 4294967296.0, "BYTES",
     "largest request body, suffixes K/M/G = KiB/MiB/GiB, then 413 (default 32M)"},
    {"max-pixels", "UFLOWD_MAX_PIXELS", K_COUNT, F(max_pixels), 1, 1e12, "N",
     "largest image (width x height, read from its header before decoding), then 413 (default 64M = 64 Mi)"},
    {"max-connections", "UFLOWD_MAX_CONNECTIONS", K_INT, F(max_connections), 1, 65536, "N",
     "concurrent connections (default 256)"},
    {"max-connections-per-ip", "UFLOWD_MAX_CONNECTIONS_PER_IP", K_INT, F(max_connections_per_ip), 0, 65536, "N",
     "concurrent connections from one client address; 0 = a quarter of --max-connections (default 0)"},
    {"header-timeout", "UFLOWD_HEADER_TIMEOUT", K_SECONDS, F(header_timeout), 0.1, 3600, "S",
     "seconds a client has to send its request head, and the longest pause in a body or while "
     "reading an answer (default 10)"},
    {"min-body-rate", "UFLOWD_MIN_BODY_RATE", K_BYTES, F(min_body_rate), 0, 1073741824.0, "BYTES",
     "bytes per second a body must average once --header-timeout has passed, else the connection "
     "is closed; 0 = no floor (default 16K)"},
    {"api-key-file", "UFLOWD_API_KEY_FILE", K_STR, F(api_key_file), 0, 0, "FILE",
     "require 'Authorization: Bearer KEY' or 'X-API-Key: KEY', one accepted key per line"},
    {"public-health", "UFLOWD_PUBLIC_HEALTH", K_FLAG, F(public_health), 0, 0, NULL,
     "leave /healthz, /readyz, /metrics and /v2/health/* open when keys are required"},
    {"log-format", "UFLOWD_LOG_FORMAT", K_LOGFMT, F(log_format), 0, 0, "text|json",
     "one log line per request as key=value text or JSON (default text)"},
    {"drain-timeout", "UFLOWD_DRAIN_TIMEOUT", K_SECONDS, F(drain_timeout), 0, 86400, "S",
     "on SIGTERM/SIGINT, seconds to finish accepted requests before exiting (default 20)"},
    {"port-file", "UFLOWD_PORT_FILE", K_STR, F(port_file), 0, 0, "FILE",
     "write the bound port number to FILE once listening (for --listen ...:0)"},
};
#undef F
#define N_OPTS (sizeof opts / sizeof opts[0])

static void help(FILE *f)
{
    fprintf(f, "usage: uflowd (--models DIR | --model NAME=PATH ...) [options]\n"
               "       uflowd --healthcheck [URL]\n\n"
               "U-Flow anomaly-detection inference over HTTP (REST /v1 and KServe v2).\n"
               "Every option has an environment twin; flags win over the environment.\n\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", opts[i].flag, opts[i].arg ? " " : "",
                 opts[i].arg ? opts[i].arg : "");
        fprintf(f, "  %-28s %s\n  %-28s [env %s]\n", left, opts[i].help, "", opts[i].env);
    }
    fprintf(f, "  %-28s %s\n", "--healthcheck [URL]",
            "GET URL (default http://127.0.0.1:PORT/readyz), exit 0 on 2xx, else 1");
    fprintf(f, "  %-28s %s\n  %-28s %s\n\n", "--help", "this text", "--version", "print the version");
    fprintf(f, "Signals: SIGTERM/SIGINT drain and exit 0. Docs: docs/server.md, api/openapi.yaml.\n");
}

/* Parse "1.5", "32M", "2G" (binary multiples). -1 on error. */
static int parse_number(const char *s, opt_kind k, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v))
        return -1;
    if (k == K_BYTES || k == K_COUNT) {
        double mul = 1;
        switch (*end) {
        case 'k': case 'K': mul = 1024.0; end++; break;
        case 'm': case 'M': mul = 1048576.0; end++; break;
        case 'g': case 'G': mul = 1073741824.0; end++; break;
        default: break;
        }
        if (*end == 'i' && (end[1] == 'B' || end[1] == '\0'))
            end += end[1] ? 2 : 1;
        else if (*end == 'B' && k == K_BYTES)
            end++;
        v *= mul;
    } else if (k == K_SECONDS && *end == 's') {
        end++;
    }
    if (*end)
        return -1;
    if (k == K_INT && v != floor(v))
        return -1;
    *out = v;
    return 0;
}

static int add_model(ufd_config *c, const char *spec, const char *src)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1]) {
        fprintf(stderr, "uflowd: %s expects NAME=PATH, got '%s'\n", src, spec);
        return -1;
    }
    for (const char *p = spec; p < eq; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.')) {
            fprintf(stderr, "uflowd: model name in '%s' may only hold letters, digits, '-', '_', '.'\n", spec);
            return -1;
        }
    if (c->n_model >= UFD_MAX_MODEL_ARGS) {
        fprintf(stderr, "uflowd: at most %d --model\n", UFD_MAX_MODEL_ARGS);
        return -1;
    }
    c->model[c->n_model].name = strndup(spec, (size_t)(eq - spec));
    c->model[c->n_model].path = strdup(eq + 1);
    c->n_model++;
    return 0;
}

/* Apply one value to option o; src names it in errors ("--workers", "UFLOWD_WORKERS"). */
static int apply(ufd_config *c, const opt *o, const char *val, const char *src)
{
    char *base = (char *)c;
    double v;
    switch (o->kind) {
    case K_STR: {
        char **dst = (char **)(base + o->off);
        free(*dst);
        *dst = strdup(val);
        return 0;
    }
    case K_FLAG:
        if (!strcmp(val, "1") || !strcmp(val, "true") || !strcmp(val, "yes") || !strcmp(val, "on"))
            *(int *)(base + o->off) = 1;
        else if (!strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "no") || !strcmp(val, "off") || !*val)
            *(int *)(base + o->off) = 0;
        else {
            fprintf(stderr, "uflowd: %s expects true or false, got '%s'\n", src, val);
            return -1;
        }
        return 0;
    case K_LOGFMT:
        if (!strcmp(val, "text"))
            c->log_format = UFD_LOG_TEXT;
        else if (!strcmp(val, "json"))
            c->log_format = UFD_LOG_JSON;
        else {
            fprintf(stderr, "uflowd: %s expects text or json, got '%s'\n", src, val);
            return -1;
        }
        return 0;
    case K_MODEL: {
        /* the environment twin is a comma-separated list */
        char *dup = strdup(val), *save = NULL;
        int rc = 0;
        for (char *t = strtok_r(dup, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save))
            rc = add_model(c, t, src);
        free(dup);
        return rc;
    }
    default:
        break;
    }
    if (parse_number(val, o->kind, &v) != 0 || v < o->lo || v > o->hi) {
        fprintf(stderr, "uflowd: %s expects a number in [%g, %g], got '%s'\n", src, o->lo, o->hi, val);
        return -1;
    }
    if (o->kind == K_INT)
        *(int *)(base + o->off) = (int)v;
    else if (o->kind == K_SECONDS)
        *(double *)(base + o->off) = v;
    else
        *(uint64_t *)(base + o->off) = (uint64_t)v;
    return 0;
}

static void defaults(ufd_config *c)
{
    memset(c, 0, sizeof *c);
    c->listen = strdup("0.0.0.0:8080");
    c->workers = 2;
    c->threads_per_worker = 1;
    c->io_threads = 2;
    c->queue_size = 64;
    c->request_timeout = 30;
    c->max_body = UINT64_C(32) << 20;
    c->max_pixels = UINT64_C(64) << 20;
    c->max_connections = 256;
    c->header_timeout = 10;
    c->min_body_rate = UINT64_C(16) << 10;
    c->log_format = UFD_LOG_TEXT;
    c->drain_timeout = 20;
}

ufd_config_rc ufd_config_parse(ufd_config *c, int argc, char **argv)
{
    defaults(c);
    for (size_t i = 0; i < N_OPTS; i++) {
        const char *e = getenv(opts[i].env);
        if (e && *e && apply(c, &opts[i], e, opts[i].env) != 0)
            return UFD_CONFIG_USAGE;
    }
    int env_models = c->n_model;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            return UFD_CONFIG_EXIT_OK;
        }
        if (!strcmp(a, "--version")) {
            printf("uflowd %s\n", UF_VERSION_STRING);
            return UFD_CONFIG_EXIT_OK;
        }
        if (!strncmp(a, "--healthcheck", 13) && (a[13] == '\0' || a[13] == '=')) {
            c->healthcheck = 1;
            const char *url = a[13] == '=' ? a + 14 : (i + 1 < argc && argv[i + 1][0] != '-' ? argv[++i] : NULL);
            if (url) {
                free(c->healthcheck_url);
                c->healthcheck_url = strdup(url);
            }
            continue;
        }
        const opt *o = NULL;
        const char *val = NULL;
        if (a[0] == '-' && a[1] == '-') {
            size_t n = strcspn(a + 2, "=");
            for (size_t k = 0; k < N_OPTS && !o; k++)
                if (strlen(opts[k].flag) == n && !strncmp(opts[k].flag, a + 2, n))
                    o = &opts[k];
            if (o && a[2 + n] == '=')
                val = a + 3 + n;
        }
        if (!o) {
            fprintf(stderr, "uflowd: unknown argument '%s' (see --help)\n", a);
            return UFD_CONFIG_USAGE;
        }
        if (o->kind == K_MODEL && env_models > 0) {
            /* flags replace the environment's list instead of adding to it */
            for (int k = 0; k < c->n_model; k++) {
                free(c->model[k].name);
                free(c->model[k].path);
            }
            c->n_model = env_models = 0;
        }
        if (!val && o->kind == K_FLAG)
            val = "1";
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "uflowd: --%s needs a value\n", o->flag);
                return UFD_CONFIG_USAGE;
            }
            val = argv[++i];
        }
        char src[64];
        snprintf(src, sizeof src, "--%s", o->flag);
        if (apply(c, o, val, src) != 0)
            return UFD_CONFIG_USAGE;
    }
    if (!c->healthcheck && !c->models_dir && c->n_model == 0) {
        fprintf(stderr, "uflowd: no models: give --models DIR or --model NAME=PATH (see --help)\n");
        return UFD_CONFIG_USAGE;
    }
    return UFD_CONFIG_OK;
}

void ufd_config_free(ufd_config *c)
{
    free(c->models_dir);
    free(c->listen);
    free(c->api_key_file);
    free(c->port_file);
    free(c->healthcheck_url);
    for (int i = 0; i < c->n_model; i++) {
        free(c->model[i].name);
        free(c->model[i].path);
    }
    memset(c, 0, sizeof *c);
}

int ufd_config_listen_port(const ufd_config *c)
{
    const char *colon = c->listen ? strrchr(c->listen, ':') : NULL;
    if (!colon)
        return 8080;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    return (*end || p <= 0 || p > 65535) ? 8080 : (int)p;
}
