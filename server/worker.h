/* worker.h — the inference side: a fixed pool of threads taking jobs from the admission
 * queue (queue.h). Worker i uses context i of whichever model its job names (models.h:
 * every model owns one context per worker, so a model reload never touches the pool).
 * Everything CPU-heavy (decode, inference, PNG, JSON) runs here, never on an I/O thread. */
#ifndef UFD_WORKER_H
#define UFD_WORKER_H

#include <stddef.h>

#include "queue.h"

typedef struct ufd_pool ufd_pool;

/* Start `workers` threads on q. NULL on failure with a message in err. */
ufd_pool *ufd_pool_create(ufd_queue *q, int workers, char *err, size_t errn);
/* Run what is left in the queue, then stop and join the threads (ufd_queue_stop first
 * makes them return once the queue is empty). */
void ufd_pool_destroy(ufd_pool *p);
int ufd_pool_workers(const ufd_pool *p);

/* What a job may use on its worker: its id (the index of its contexts) and an input
 * buffer of at least n floats (grown on demand, kept for the next job); NULL when out of
 * memory. */
int ufd_worker_id(const ufd_worker *w);
float *ufd_worker_input(ufd_worker *w, size_t n);

#endif
