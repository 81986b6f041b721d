/* config.h — uflowd's settings: command-line flags, their UFLOWD_* environment twins and
 * the defaults (sized for a 2-core box). Flags win over the environment. */
#ifndef UFD_CONFIG_H
#define UFD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define UFD_MAX_MODEL_ARGS 64

typedef enum ufd_log_format { UFD_LOG_TEXT = 0, UFD_LOG_JSON } ufd_log_format;

typedef struct ufd_model_arg {
    char *name;                  /* served as /v1/models/<name> */
    char *path;                  /* .safetensors file */
} ufd_model_arg;

typedef struct ufd_config {
    char *models_dir;            /* --models DIR: every *.safetensors in it */
    ufd_model_arg model[UFD_MAX_MODEL_ARGS]; /* --model NAME=PATH, repeatable */
    int n_model;
    char *listen;                /* ADDR:PORT, [v6]:PORT; port 0 = ephemeral */
    int workers;                 /* inference workers (one uf_ctx per model each) */
    int threads_per_worker;      /* threads of each worker's contexts */
    int io_threads;              /* libmicrohttpd's I/O thread pool */
    int queue_size;              /* jobs waiting for a worker before 503 */
    double request_timeout;      /* seconds, queue wait + run, then 504 */
    uint64_t max_body;           /* bytes, then 413 */
    uint64_t max_pixels;         /* decoded pixels an image header may declare, then 413 */
    int max_connections;         /* concurrent connections (memory bound: x max_body) */
    int max_connections_per_ip;  /* from one client address; 0 = a quarter of max_connections */
    double header_timeout;       /* seconds for a request head; also the longest pause in a body */
    uint64_t min_body_rate;      /* bytes/s a body must average after header_timeout */
    char *api_key_file;          /* one key per line; NULL = no auth */
    int public_health;           /* health/readiness/metrics without a key */
    ufd_log_format log_format;
    double drain_timeout;        /* seconds to finish accepted work after SIGTERM */
    char *port_file;             /* write the bound port here once listening */
    int healthcheck;             /* --healthcheck: probe and exit 0/1 */
    char *healthcheck_url;       /* NULL = http://127.0.0.1:<listen port>/readyz */
} ufd_config;

/* Outcome of ufd_config_parse. */
typedef enum ufd_config_rc { UFD_CONFIG_OK = 0, UFD_CONFIG_EXIT_OK, UFD_CONFIG_USAGE } ufd_config_rc;

/* Fill *c from the environment and argv. Prints --help/--version to stdout (returns
 * UFD_CONFIG_EXIT_OK) and errors to stderr (UFD_CONFIG_USAGE). */
ufd_config_rc ufd_config_parse(ufd_config *c, int argc, char **argv);
void ufd_config_free(ufd_config *c);

/* Port number of c->listen (8080 when absent or unparsable). */
int ufd_config_listen_port(const ufd_config *c);

#endif
