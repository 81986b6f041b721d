/* workers.h — the inference side: a bounded FIFO of jobs and a fixed pool of worker threads.
 * Worker i uses context i of whichever model its job names (models.h: every model owns one
 * context per worker, so a model reload never touches the pool). The HTTP
 * I/O threads only submit jobs; everything CPU-heavy (decode, inference, PNG, JSON) runs
 * here.
 *
 * Submitting is two steps so a caller can prepare (suspend its connection) between knowing
 * a slot is free and publishing the job, which may finish at once:
 *   if (ufd_pool_reserve(p) != UFD_SUBMIT_OK) -> answer 503
 *   ...suspend...; ufd_pool_push(p, job);
 * A queued job whose deadline (submit + request timeout) passes before a worker takes it is
 * not run: its drop callback gets UFD_JOB_EXPIRED (from the reaper thread, at the deadline).
 * A job that has started always runs to the end (the library cannot be interrupted). */
#ifndef UFD_WORKERS_H
#define UFD_WORKERS_H

#include <stddef.h>

#include "uflow.h"

typedef struct ufd_pool ufd_pool;
typedef struct ufd_worker ufd_worker;
typedef struct ufd_job ufd_job;

typedef enum ufd_job_end { UFD_JOB_EXPIRED = 0, UFD_JOB_CANCELLED } ufd_job_end;

struct ufd_job {
    ufd_job *next;                                 /* queue link, owned by the pool */
    void (*run)(ufd_job *job, ufd_worker *w);      /* on a worker thread */
    void (*drop)(ufd_job *job, ufd_job_end why);   /* instead of run */
    double t_submit, t_start, deadline;            /* monotonic seconds, set by the pool */
};

typedef enum ufd_submit_rc { UFD_SUBMIT_OK = 0, UFD_SUBMIT_FULL, UFD_SUBMIT_CLOSED } ufd_submit_rc;

/* Start `workers` threads. NULL on failure with a message in err. */
ufd_pool *ufd_pool_create(int workers, int queue_size, double timeout, char *err, size_t errn);
/* Refuse new reservations from now on (drain); queued and running jobs continue. */
void ufd_pool_close(ufd_pool *p);
/* Drop every queued job with UFD_JOB_CANCELLED (drain deadline passed). */
void ufd_pool_cancel_queued(ufd_pool *p);
/* Run the remaining queue to the end, stop the threads, free the contexts. */
void ufd_pool_destroy(ufd_pool *p);

ufd_submit_rc ufd_pool_reserve(ufd_pool *p);
void ufd_pool_unreserve(ufd_pool *p);
void ufd_pool_push(ufd_pool *p, ufd_job *job);

int ufd_pool_queued(ufd_pool *p);    /* waiting jobs (incl. reserved slots) */
int ufd_pool_busy(ufd_pool *p);      /* jobs running now */
int ufd_pool_workers(const ufd_pool *p);

/* What a job may use on its worker: its id (the index of its contexts) and an input
 * buffer of at least n floats (grown on demand, kept for the next job); NULL when out of
 * memory. */
int ufd_worker_id(const ufd_worker *w);
float *ufd_worker_input(ufd_worker *w, size_t n);

#endif
