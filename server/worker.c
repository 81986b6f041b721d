/* worker.c — see worker.h. */
#include "worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

struct ufd_worker {
    int id;
    pthread_t thread;
    ufd_queue *q;
    float *input;
    size_t input_n;
};

struct ufd_pool {
    ufd_queue *q;
    int n_workers, n_started;
    ufd_worker *w;
};

static void *worker_main(void *arg)
{
    ufd_worker *w = arg;
    ufd_job *j;
    while ((j = ufd_queue_pop(w->q)) != NULL) {
        j->t_start = ufd_now();
        if (j->t_start > j->deadline)
            j->drop(j, UFD_JOB_EXPIRED);
        else
            j->run(j, w);
        ufd_queue_done(w->q);
    }
    return NULL;
}

ufd_pool *ufd_pool_create(ufd_queue *q, int workers, char *err, size_t errn)
{
    ufd_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->w = calloc((size_t)workers, sizeof *p->w))) {
        free(p);
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    p->q = q;
    p->n_workers = workers;
    for (int i = 0; i < workers; i++) {
        p->w[i].id = i;
        p->w[i].q = q;
        if (pthread_create(&p->w[i].thread, NULL, worker_main, &p->w[i]) != 0) {
            snprintf(err, errn, "cannot start worker thread %d", i);
            ufd_queue_stop(q);
            ufd_pool_destroy(p);
            return NULL;
        }
        p->n_started = i + 1;
    }
    return p;
}

void ufd_pool_destroy(ufd_pool *p)
{
    if (!p)
        return;
    ufd_queue_stop(p->q);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->w[i].thread, NULL);
    for (int i = 0; i < p->n_workers; i++)
        free(p->w[i].input);
    free(p->w);
    free(p);
}

int ufd_pool_workers(const ufd_pool *p) { return p->n_workers; }

float *ufd_worker_input(ufd_worker *w, size_t n)
{
    if (n > w->input_n) {
        float *x = realloc(w->input, sizeof(float) * n);
        if (!x)
            return NULL;
        w->input = x;
        w->input_n = n;
    }
    return w->input;
}

int ufd_worker_id(const ufd_worker *w) { return w->id; }
