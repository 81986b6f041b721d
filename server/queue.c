/* queue.c — see queue.h. One mutex guards the FIFO and the counters; workers wait on
 * `work`, the reaper on `reap` until the head's deadline (FIFO + one timeout: the head
 * expires first). */
#include "queue.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"

struct ufd_queue {
    pthread_mutex_t mu;
    pthread_cond_t work, reap;
    ufd_job *head, *tail;
    int queued, reserved, busy, cap;
    int closed, stop;
    _Atomic int abandon;
    double timeout;
    pthread_t reaper;
    int reaper_started;
};

static void *reaper_main(void *arg)
{
    ufd_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    while (!q->stop) {
        double now = ufd_now();
        ufd_job *expired = NULL, **tail = &expired;
        while (q->head && q->head->deadline < now) {
            ufd_job *j = q->head;
            q->head = j->next;
            q->queued--;
            j->next = NULL;
            *tail = j;
            tail = &j->next;
        }
        if (!q->head)
            q->tail = NULL;
        if (expired) {
            pthread_mutex_unlock(&q->mu);
            while (expired) {
                ufd_job *j = expired;
                expired = j->next;
                j->t_start = now;
                j->drop(j, UFD_JOB_EXPIRED);
            }
            pthread_mutex_lock(&q->mu);
            continue;
        }
        if (!q->head) {
            pthread_cond_wait(&q->reap, &q->mu);
            continue;
        }
        double wake = q->head->deadline + 1e-3;
        struct timespec ts = {(time_t)wake, (long)((wake - floor(wake)) * 1e9)};
        pthread_cond_timedwait(&q->reap, &q->mu, &ts);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

ufd_queue *ufd_queue_create(int cap, double timeout, char *err, size_t errn)
{
    ufd_queue *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->reap, &ca);
    pthread_condattr_destroy(&ca);
    q->cap = cap;
    q->timeout = timeout;
    atomic_init(&q->abandon, 0);
    if (pthread_create(&q->reaper, NULL, reaper_main, q) != 0) {
        snprintf(err, errn, "cannot start the queue reaper thread");
        ufd_queue_destroy(q);
        return NULL;
    }
    q->reaper_started = 1;
    return q;
}

void ufd_queue_stop(ufd_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    q->closed = 1;
    pthread_cond_broadcast(&q->work);
    pthread_cond_broadcast(&q->reap);
    pthread_mutex_unlock(&q->mu);
}

void ufd_queue_destroy(ufd_queue *q)
{
    if (!q)
        return;
    ufd_queue_stop(q);
    if (q->reaper_started)
        pthread_join(q->reaper, NULL);
    pthread_cond_destroy(&q->work);
    pthread_cond_destroy(&q->reap);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

ufd_job *ufd_queue_pop(ufd_queue *q)
{
    pthread_mutex_lock(&q->mu);
    while (!q->head && !q->stop)
        pthread_cond_wait(&q->work, &q->mu);
    ufd_job *j = q->head;
    if (j) {
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        q->queued--;
        q->busy++;
        j->next = NULL;
    }
    pthread_mutex_unlock(&q->mu);
    return j;
}

void ufd_queue_done(ufd_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->busy--;
    pthread_mutex_unlock(&q->mu);
}

void ufd_queue_close(ufd_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_mutex_unlock(&q->mu);
}

void ufd_queue_cancel_queued(ufd_queue *q)
{
    pthread_mutex_lock(&q->mu);
    ufd_job *list = q->head;
    q->head = q->tail = NULL;
    int n = 0;
    for (ufd_job *j = list; j; j = j->next)
        n++;
    q->queued -= n;
    pthread_mutex_unlock(&q->mu);
    double now = ufd_now();
    while (list) {
        ufd_job *j = list;
        list = j->next;
        j->next = NULL;
        j->t_start = now;
        j->drop(j, UFD_JOB_CANCELLED);
    }
}

void ufd_queue_abandon(ufd_queue *q) { atomic_store(&q->abandon, 1); }
int ufd_queue_abandoned(const ufd_queue *q) { return atomic_load(&((ufd_queue *)q)->abandon); }

ufd_submit_rc ufd_queue_reserve(ufd_queue *q)
{
    ufd_submit_rc rc = UFD_SUBMIT_OK;
    pthread_mutex_lock(&q->mu);
    if (q->closed)
        rc = UFD_SUBMIT_CLOSED;
    else if (q->queued + q->reserved >= q->cap)
        rc = UFD_SUBMIT_FULL;
    else
        q->reserved++;
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void ufd_queue_unreserve(ufd_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->reserved--;
    pthread_mutex_unlock(&q->mu);
}

void ufd_queue_push(ufd_queue *q, ufd_job *job)
{
    job->next = NULL;
    job->t_submit = ufd_now();
    job->deadline = job->t_submit + q->timeout;
    pthread_mutex_lock(&q->mu);
    q->reserved--;
    q->queued++;
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    pthread_cond_signal(&q->work);
    if (q->head == job)
        pthread_cond_signal(&q->reap);
    pthread_mutex_unlock(&q->mu);
}

int ufd_queue_depth(ufd_queue *q)
{
    pthread_mutex_lock(&q->mu);
    int n = q->queued + q->reserved;
    pthread_mutex_unlock(&q->mu);
    return n;
}

int ufd_queue_busy(ufd_queue *q)
{
    pthread_mutex_lock(&q->mu);
    int n = q->busy;
    pthread_mutex_unlock(&q->mu);
    return n;
}
