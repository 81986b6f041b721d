/* pool.h — a small fork-join thread pool owned by one inference context.
 *
 * libuflow parallelises each operation itself (convolutions split by output pixels, each
 * part an im2col + single-threaded SGEMM) rather than relying on OpenBLAS's process-wide
 * pool, so that the thread count is a per-context setting and contexts in different worker
 * threads never contend for one BLAS pool. Workers spin briefly after a job (operations
 * come back to back during a run) and then sleep on a condition variable. */
#ifndef UF_POOL_H
#define UF_POOL_H

#include "uflow.h"

typedef struct uf_pool uf_pool;

/* fn(arg, i, n) runs once for every i in [0, n), on n threads (the caller is thread 0). */
typedef void (*uf_task_fn)(void *arg, int i, int n);

/* n_threads >= 1 (1 = no worker threads). */
uf_status uf_pool_init(int n_threads, uf_pool **out, uf_error *err);
void uf_pool_free(uf_pool *p);
int uf_pool_size(const uf_pool *p);
/* Run fn on every thread and wait for all of them. NULL pool = run inline with n = 1. */
void uf_pool_run(uf_pool *p, uf_task_fn fn, void *arg);

/* The [lo, hi) share of thread i out of n for a range of `total` items, in multiples of
 * `align` (except the last share). */
static inline void uf_split(size_t total, size_t align, int i, int n, size_t *lo, size_t *hi)
{
    size_t units = (total + align - 1) / align;
    size_t a = units * (size_t)i / (size_t)n, b = units * (size_t)(i + 1) / (size_t)n;
    *lo = a * align < total ? a * align : total;
    *hi = b * align < total ? b * align : total;
}

#endif
