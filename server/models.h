/* models.h — the model registry. A registry is an immutable, reference-counted snapshot:
 * the served models, sorted by name, each a reference-counted ufd_model that owns the
 * loaded file and one inference context per worker.
 *
 * Reload builds a new snapshot next to the current one: files unchanged since the previous
 * snapshot (same path, device, inode, size and mtime) share its ufd_model; changed or new
 * files are loaded and get fresh contexts *before* the swap; a file that fails to load
 * keeps its previous version (state "stale", with the error) or, new, is only reported;
 * files that disappeared are not in the new snapshot. The server then swaps its current
 * pointer; requests hold a reference to the snapshot they started with, so they finish on
 * the old model and old contexts, which are freed with the last reference. */
#ifndef UFD_MODELS_H
#define UFD_MODELS_H

#include <jansson.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"
#include "uflow.h"

typedef struct ufd_model {
    atomic_int refs;
    char *name;                  /* URL name: file stem or --model NAME */
    char *path;
    uf_model *m;
    const uf_model_info *info;
    double load_seconds;         /* time uf_model_load + contexts took */
    char loaded_at[40];          /* RFC 3339 wall time */
    dev_t dev;                   /* the file as it was when loaded (reload: unchanged?) */
    ino_t ino;
    off_t size;
    struct timespec mtime;
    int n_ctx;
    uf_ctx **ctx;                /* one per worker */
} ufd_model;

typedef struct ufd_entry {
    ufd_model *m;                /* a reference held by the snapshot */
    char *error;                 /* NULL, or why the file now on disk failed (m is the previous version) */
    char error_at[40];
} ufd_entry;

typedef struct ufd_failure {
    char *name, *path, *error;
    char at[40];
} ufd_failure;

typedef struct ufd_models {
    atomic_int refs;
    int n;
    ufd_entry *v;                /* sorted by name */
    int n_failed;
    ufd_failure *failed;         /* every file of the last (re)load that failed, stale ones included */
    unsigned long generation;    /* 1 at start, +1 per reload that swapped */
    char loaded_at[40];
} ufd_models;

/* How contexts are made: one per worker, `threads` threads each. */
typedef struct ufd_ctx_spec {
    int workers, threads;
} ufd_ctx_spec;

/* What one (re)load did: names loaded (new or changed files), unchanged, removed, and
 * the failures; error is set when the whole reload was refused (nothing changes). */
typedef struct ufd_load_report {
    json_t *loaded, *unchanged, *removed, *failed; /* arrays; failed: {name, path, error} */
    int n_failures;              /* files that failed to load (the metric) */
    char error[512];
} ufd_load_report;

void ufd_load_report_init(ufd_load_report *r);
void ufd_load_report_clear(ufd_load_report *r);

/* Collect --models DIR and --model NAME=PATH and build a snapshot.
 * prev == NULL (start): every file must load, NULL otherwise (after logging every failure).
 * prev != NULL (reload): see above; NULL (rep->error set, prev stays) only when the
 * directory cannot be read or no model would be left. */
ufd_models *ufd_models_load(const ufd_config *c, const ufd_models *prev, const ufd_ctx_spec *spec,
                            ufd_load_report *rep);

/* 1 when two snapshots serve the same model objects with the same states and failures
 * (times aside): a reload that finds this keeps the current snapshot and its generation. */
int ufd_models_same(const ufd_models *a, const ufd_models *b);
ufd_models *ufd_models_ref(ufd_models *ms);
/* Drop a reference; the last one frees the snapshot and releases its models (whose last
 * reference frees their contexts and the loaded file). NULL is fine. */
void ufd_models_unref(ufd_models *ms);

/* Index of the model called name, or -1. */
int ufd_models_find(const ufd_models *ms, const char *name);
static inline ufd_model *ufd_models_at(const ufd_models *ms, int i) { return ms->v[i].m; }

/* The worker's context for model m. */
static inline uf_ctx *ufd_model_ctx(const ufd_model *m, int worker) { return m->ctx[worker]; }

/* The /v1/models/{name} description: config, input size, scales, version, load time, state. */
json_t *ufd_model_describe(const ufd_entry *e);
/* The /v1/models answer. */
json_t *ufd_models_describe(const ufd_models *ms);

#endif
