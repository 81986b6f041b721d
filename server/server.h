/* server.h — the daemon's shared state, owned by main.c and read by the HTTP handlers.
 *
 * Lifecycle: LOADING (HTTP up, /healthz 200, /readyz 503) -> READY (models and workers up)
 * -> DRAINING (SIGTERM: /readyz 503, no new connections, accepted work finishes). `pool` is
 * written once before the state turns READY and never changes afterwards; handlers read it
 * only after seeing READY or DRAINING (acquire).
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
#include "workers.h"

typedef enum ufd_state { UFD_LOADING = 0, UFD_READY, UFD_DRAINING } ufd_state;

typedef struct ufd_reloader ufd_reloader;

typedef struct ufd_server {
    const ufd_config *cfg;
    pthread_mutex_t models_mu;
    ufd_models *models;          /* current snapshot; NULL until loaded (see above) */
    ufd_reloader *reloader;      /* NULL until ready */
    ufd_pool *pool;
    ufd_auth *auth;              /* NULL: no key required */
    _Atomic int state;           /* ufd_state */
    _Atomic int inflight;        /* requests between their headers and their completion */
    double t_start;              /* monotonic, process start */
} ufd_server;

static inline ufd_state ufd_server_state(const ufd_server *s)
{
    return (ufd_state)atomic_load_explicit(&((ufd_server *)s)->state, memory_order_acquire);
}

/* Models and workers usable (READY or DRAINING). */
static inline int ufd_server_serving(const ufd_server *s) { return ufd_server_state(s) != UFD_LOADING; }

/* A reference to the current registry snapshot (ufd_models_unref it), or NULL while loading. */
ufd_models *ufd_server_models(ufd_server *s);
/* Install ms (taking over its reference) as the current snapshot; drops the server's
 * reference to the previous one. */
void ufd_server_set_models(ufd_server *s, ufd_models *ms);

#endif
