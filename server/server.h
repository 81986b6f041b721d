/* server.h — the daemon's shared state: configuration, lifecycle state, the current model
 * registry snapshot, the worker pool and the API keys. main.c owns it; every stage reads it.
 *
 * Lifecycle: LOADING (HTTP up, /healthz 200, /readyz 503) -> READY (models and workers up)
 * -> DRAINING (SIGTERM: /readyz 503, no new connections, accepted work finishes). `queue`
 * and `pool` are written once before the state turns READY and never change afterwards;
 * readers use them only after seeing READY or DRAINING (acquire).
 *
 * `models` is the current registry snapshot (models.h). A reload swaps it; readers take a
 * reference with ufd_server_models() and keep using that snapshot until they drop it. The
 * mutex guards only the pointer and that reference count increment (never an inference or
 * a load). */
#ifndef UFD_SERVER_H
#define UFD_SERVER_H

#include <pthread.h>
#include <stdatomic.h>

#include "auth.h"
#include "config.h"
#include "models.h"
#include "queue.h"
#include "worker.h"

typedef enum ufd_state { UFD_LOADING = 0, UFD_READY, UFD_DRAINING } ufd_state;

typedef struct ufd_reloader ufd_reloader;

typedef struct ufd_server {
    const ufd_config *cfg;
    pthread_mutex_t models_mu;
    ufd_models *models;          /* current snapshot; NULL until loaded (see above) */
    ufd_reloader *reloader;      /* NULL until ready */
    ufd_queue *queue;            /* admission (queue.h); NULL until ready */
    ufd_pool *pool;              /* the workers taking from it */
    ufd_auth *auth;              /* NULL: no key required */
    _Atomic int state;           /* ufd_state */
    _Atomic int inflight;        /* requests between their headers and their completion */
    _Atomic int conns_head, conns_open; /* connections sending their head; all (gate.h) */
    double t_start;              /* monotonic, process start */
} ufd_server;

/* A LOADING server for cfg (which must outlive it). */
void ufd_server_init(ufd_server *s, const ufd_config *cfg);
/* Drop the snapshot and the keys (the pool, reloader and HTTP front are stopped by main). */
void ufd_server_destroy(ufd_server *s);

static inline ufd_state ufd_server_state(const ufd_server *s)
{
    return (ufd_state)atomic_load_explicit(&((ufd_server *)s)->state, memory_order_acquire);
}
static inline void ufd_server_set_state(ufd_server *s, ufd_state st)
{
    atomic_store_explicit(&s->state, (int)st, memory_order_release);
}

/* Models and workers usable (READY or DRAINING). */
static inline int ufd_server_serving(const ufd_server *s) { return ufd_server_state(s) != UFD_LOADING; }

/* A reference to the current registry snapshot (ufd_models_unref it), or NULL while loading. */
ufd_models *ufd_server_models(ufd_server *s);
/* Install ms (taking over its reference) as the current snapshot; drops the server's
 * reference to the previous one. */
void ufd_server_set_models(ufd_server *s, ufd_models *ms);

#endif
