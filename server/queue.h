/* queue.h — admission: a bounded FIFO of jobs between the HTTP front and the workers, with
 * a deadline per job. A queued job whose deadline (submit + request timeout) passes before
 * a worker takes it is not run: its drop callback gets UFD_JOB_EXPIRED (from the reaper
 * thread, at the deadline). A job that has started runs until it finishes or gives up at
 * one of its stage checks (job.h).
 *
 * Submitting is two steps so a caller can prepare (suspend its connection) between knowing
 * a slot is free and publishing the job, which may finish at once:
 *   if (ufd_queue_reserve(q) != UFD_SUBMIT_OK) -> answer 503
 *   ...suspend...; ufd_queue_push(q, job);
 * Workers (worker.h) take jobs with ufd_queue_pop and report the end with ufd_queue_done. */
#ifndef UFD_QUEUE_H
#define UFD_QUEUE_H

#include <stddef.h>

typedef struct ufd_queue ufd_queue;
typedef struct ufd_job ufd_job;
typedef struct ufd_worker ufd_worker;

typedef enum ufd_job_end { UFD_JOB_EXPIRED = 0, UFD_JOB_CANCELLED } ufd_job_end;

struct ufd_job {
    ufd_job *next;                                 /* queue link, owned by the queue */
    void (*run)(ufd_job *job, ufd_worker *w);      /* on a worker thread */
    void (*drop)(ufd_job *job, ufd_job_end why);   /* instead of run */
    double t_submit, t_start, deadline;            /* monotonic seconds, set by the queue */
};

typedef enum ufd_submit_rc { UFD_SUBMIT_OK = 0, UFD_SUBMIT_FULL, UFD_SUBMIT_CLOSED } ufd_submit_rc;

/* cap queued jobs, each with `timeout` seconds from submission. NULL + message on failure. */
ufd_queue *ufd_queue_create(int cap, double timeout, char *err, size_t errn);
/* Stop the reaper and free the queue (workers must have stopped popping). */
void ufd_queue_destroy(ufd_queue *q);

ufd_submit_rc ufd_queue_reserve(ufd_queue *q);
void ufd_queue_unreserve(ufd_queue *q);
void ufd_queue_push(ufd_queue *q, ufd_job *job);

/* The next job for a worker (counted busy until ufd_queue_done), waiting while the queue is
 * empty; NULL once ufd_queue_stop was called and nothing is left. */
ufd_job *ufd_queue_pop(ufd_queue *q);
void ufd_queue_done(ufd_queue *q);

/* Refuse new reservations from now on (drain); queued and running jobs continue. */
void ufd_queue_close(ufd_queue *q);
/* Drop every queued job with UFD_JOB_CANCELLED (drain deadline passed). */
void ufd_queue_cancel_queued(ufd_queue *q);
/* Workers return from ufd_queue_pop once the queue is empty. */
void ufd_queue_stop(ufd_queue *q);

/* Running jobs should give up at their next stage check (drain deadline passed). */
void ufd_queue_abandon(ufd_queue *q);
int ufd_queue_abandoned(const ufd_queue *q);

int ufd_queue_depth(ufd_queue *q);   /* waiting jobs (incl. reserved slots) */
int ufd_queue_busy(ufd_queue *q);    /* jobs running now */

#endif
