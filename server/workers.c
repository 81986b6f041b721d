/* workers.c — see workers.h. One mutex guards the queue; workers wait on `work`, the
 * reaper on `reap` until the head's deadline (FIFO + one timeout: the head expires first). */
#include "workers.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

struct ufd_worker {
    int id;
    pthread_t thread;
    ufd_pool *pool;
    float *input;
    size_t input_n;
};

struct ufd_pool {
    pthread_mutex_t mu;
    pthread_cond_t work, reap;
    ufd_job *head, *tail;
    int queued, reserved, busy, cap;
    int closed, stop;
    double timeout;
    int n_workers, n_started;
    ufd_worker *w;
    pthread_t reaper;
    int reaper_started;
};

static void *worker_main(void *arg)
{
    ufd_worker *w = arg;
    ufd_pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->work, &p->mu);
        if (!p->head)
            break; /* stop and nothing left */
        ufd_job *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        p->busy++;
        pthread_mutex_unlock(&p->mu);
        j->next = NULL;
        j->t_start = ufd_now();
        if (j->t_start > j->deadline)
            j->drop(j, UFD_JOB_EXPIRED);
        else
            j->run(j, w);
        pthread_mutex_lock(&p->mu);
        p->busy--;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void *reaper_main(void *arg)
{
    ufd_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        double now = ufd_now();
        ufd_job *expired = NULL, **tail = &expired;
        while (p->head && p->head->deadline < now) {
            ufd_job *j = p->head;
            p->head = j->next;
            p->queued--;
            j->next = NULL;
            *tail = j;
            tail = &j->next;
        }
        if (!p->head)
            p->tail = NULL;
        if (expired) {
            pthread_mutex_unlock(&p->mu);
            while (expired) {
                ufd_job *j = expired;
                expired = j->next;
                j->t_start = now;
                j->drop(j, UFD_JOB_EXPIRED);
            }
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (!p->head) {
            pthread_cond_wait(&p->reap, &p->mu);
            continue;
        }
        double wake = p->head->deadline + 1e-3;
        struct timespec ts = {(time_t)wake, (long)((wake - floor(wake)) * 1e9)};
        pthread_cond_timedwait(&p->reap, &p->mu, &ts);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

ufd_pool *ufd_pool_create(int workers, int queue_size, double timeout, char *err, size_t errn)
{
    ufd_pool *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->reap, &ca);
    pthread_condattr_destroy(&ca);
    p->cap = queue_size;
    p->timeout = timeout;
    p->w = calloc((size_t)workers, sizeof *p->w);
    if (!p->w) {
        snprintf(err, errn, "out of memory");
        goto fail;
    }
    for (int i = 0; i < workers; i++) {
        p->w[i].id = i;
        p->w[i].pool = p;
    }
    p->n_workers = workers;
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&p->w[i].thread, NULL, worker_main, &p->w[i]) != 0) {
            snprintf(err, errn, "cannot start worker thread %d", i);
            ufd_pool_destroy(p);
            return NULL;
        }
        p->n_started = i + 1;
    }
    if (pthread_create(&p->reaper, NULL, reaper_main, p) != 0) {
        snprintf(err, errn, "cannot start the queue reaper thread");
        ufd_pool_destroy(p);
        return NULL;
    }
    p->reaper_started = 1;
    return p;
fail:
    free(p->w);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->reap);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
}

void ufd_pool_close(ufd_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->closed = 1;
    pthread_mutex_unlock(&p->mu);
}

void ufd_pool_cancel_queued(ufd_pool *p)
{
    pthread_mutex_lock(&p->mu);
    ufd_job *list = p->head;
    p->head = p->tail = NULL;
    int n = 0;
    for (ufd_job *j = list; j; j = j->next)
        n++;
    p->queued -= n;
    pthread_mutex_unlock(&p->mu);
    double now = ufd_now();
    while (list) {
        ufd_job *j = list;
        list = j->next;
        j->next = NULL;
        j->t_start = now;
        j->drop(j, UFD_JOB_CANCELLED);
    }
}

void ufd_pool_destroy(ufd_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    p->closed = 1;
    pthread_cond_broadcast(&p->work);
    pthread_cond_broadcast(&p->reap);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->w[i].thread, NULL);
    if (p->reaper_started)
        pthread_join(p->reaper, NULL);
    for (int i = 0; i < p->n_workers; i++)
        free(p->w[i].input);
    free(p->w);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->reap);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

ufd_submit_rc ufd_pool_reserve(ufd_pool *p)
{
    ufd_submit_rc rc = UFD_SUBMIT_OK;
    pthread_mutex_lock(&p->mu);
    if (p->closed)
        rc = UFD_SUBMIT_CLOSED;
    else if (p->queued + p->reserved >= p->cap)
        rc = UFD_SUBMIT_FULL;
    else
        p->reserved++;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void ufd_pool_unreserve(ufd_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->reserved--;
    pthread_mutex_unlock(&p->mu);
}

void ufd_pool_push(ufd_pool *p, ufd_job *job)
{
    job->next = NULL;
    job->t_submit = ufd_now();
    job->deadline = job->t_submit + p->timeout;
    pthread_mutex_lock(&p->mu);
    p->reserved--;
    p->queued++;
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    pthread_cond_signal(&p->work);
    if (p->head == job)
        pthread_cond_signal(&p->reap);
    pthread_mutex_unlock(&p->mu);
}

int ufd_pool_queued(ufd_pool *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->queued + p->reserved;
    pthread_mutex_unlock(&p->mu);
    return n;
}

int ufd_pool_busy(ufd_pool *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->busy;
    pthread_mutex_unlock(&p->mu);
    return n;
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
