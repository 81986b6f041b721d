/* models.h — the model registry: which files are served under which names, loaded once at
 * start and shared read-only by every worker. */
#ifndef UFD_MODELS_H
#define UFD_MODELS_H

#include <jansson.h>

#include "config.h"
#include "uflow.h"

typedef struct ufd_model {
    char *name;                  /* URL name: file stem or --model NAME */
    char *path;
    uf_model *m;
    const uf_model_info *info;
    double load_seconds;         /* time uf_model_load took */
    char loaded_at[40];          /* RFC 3339 wall time */
} ufd_model;

typedef struct ufd_models {
    int n;
    ufd_model *v;                /* sorted by name */
} ufd_models;

/* Collect --models DIR and --model NAME=PATH, load every file. Returns NULL after logging
 * every failure (unreadable dir, no models, duplicate names, a model that fails to load);
 * *failures counts the files that failed to load. */
ufd_models *ufd_models_load(const ufd_config *c, int *failures);
void ufd_models_free(ufd_models *ms);

/* Index of the model called name, or -1. */
int ufd_models_find(const ufd_models *ms, const char *name);

/* The /v1/models/{name} description: config, input size, scales, version, load time, state. */
json_t *ufd_model_describe(const ufd_model *m);

#endif
