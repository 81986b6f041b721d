/* server.h — the daemon's shared state, owned by main.c and read by the HTTP handlers.
 *
 * Lifecycle: LOADING (HTTP up, /healthz 200, /readyz 503) -> READY (models and workers up)
 * -> DRAINING (SIGTERM: /readyz 503, no new connections, accepted work finishes). `models`
 * and `pool` are written once before the state turns READY and never change afterwards;
 * handlers read them only after seeing READY or DRAINING (acquire). */
#ifndef UFD_SERVER_H
#define UFD_SERVER_H

#include <stdatomic.h>

#include "auth.h"
#include "config.h"
#include "models.h"
#include "workers.h"

typedef enum ufd_state { UFD_LOADING = 0, UFD_READY, UFD_DRAINING } ufd_state;

typedef struct ufd_server {
    const ufd_config *cfg;
    ufd_models *models;
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

#endif
