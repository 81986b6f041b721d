/* server.c — see server.h. */
#include "server.h"

#include <string.h>

#include "util.h"

void ufd_server_init(ufd_server *s, const ufd_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->t_start = ufd_now();
    pthread_mutex_init(&s->models_mu, NULL);
    atomic_init(&s->state, UFD_LOADING);
    atomic_init(&s->inflight, 0);
    atomic_init(&s->conns_head, 0);
    atomic_init(&s->conns_open, 0);
}

void ufd_server_destroy(ufd_server *s)
{
    ufd_server_set_models(s, NULL);
    pthread_mutex_destroy(&s->models_mu);
    ufd_auth_free(s->auth);
    s->auth = NULL;
}

ufd_models *ufd_server_models(ufd_server *s)
{
    pthread_mutex_lock(&s->models_mu);
    ufd_models *ms = ufd_models_ref(s->models);
    pthread_mutex_unlock(&s->models_mu);
    return ms;
}

void ufd_server_set_models(ufd_server *s, ufd_models *ms)
{
    pthread_mutex_lock(&s->models_mu);
    ufd_models *old = s->models;
    s->models = ms;
    pthread_mutex_unlock(&s->models_mu);
    ufd_models_unref(old); /* outside the lock: the last reference frees models and contexts */
}
