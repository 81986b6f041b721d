/* pool.c — see pool.h. */
#include "core/pool.h"
#include "core/internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Spin briefly (operations of a run come back to back), then yield the core (another thread
 * of ours may be waiting for it when the machine is oversubscribed), then sleep. */
#define SPIN_ITERS 2000
#define YIELD_ITERS 200

typedef struct worker {
    struct uf_pool *p;
    int idx;
} worker;

struct uf_pool {
    int n;
    pthread_t *th;
    worker *w;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;       /* bumped for every job */
    atomic_int pending;    /* workers still running the current job */
    atomic_int stop;
    uf_task_fn fn;
    void *arg;
};

static void *worker_main(void *arg)
{
    worker *w = arg;
    uf_pool *p = w->p;
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_acquire)) {
            if (++spins < SPIN_ITERS) {
                CPU_RELAX();
                continue;
            }
            if (spins < SPIN_ITERS + YIELD_ITERS) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = atomic_load(&p->gen);
        p->fn(p->arg, w->idx, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

uf_status uf_pool_init(int n, uf_pool **out, uf_error *err)
{
    *out = NULL;
    if (n < 1 || n > 256)
        return uf_err(err, UF_ERR_ARG, "thread count %d outside [1, 256]", n);
    uf_pool *p = calloc(1, sizeof *p);
    if (!p)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    p->n = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (n > 1) {
        p->th = calloc((size_t)n, sizeof *p->th);
        p->w = calloc((size_t)n, sizeof *p->w);
        if (!p->th || !p->w) {
            uf_pool_free(p);
            return uf_err(err, UF_ERR_NOMEM, "out of memory");
        }
        for (int i = 1; i < n; i++) {
            p->w[i] = (worker){p, i};
            if (pthread_create(&p->th[i], NULL, worker_main, &p->w[i]) != 0) {
                p->n = i; /* join only those started */
                uf_pool_free(p);
                return uf_err(err, UF_ERR_NOMEM, "cannot start worker thread %d", i);
            }
        }
    }
    *out = p;
    return UF_OK;
}

void uf_pool_free(uf_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n && p->th; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->th);
    free(p->w);
    free(p);
}

int uf_pool_size(const uf_pool *p) { return p ? p->n : 1; }

void uf_pool_run(uf_pool *p, uf_task_fn fn, void *arg)
{
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    for (int spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++) {
        if (spins < SPIN_ITERS)
            CPU_RELAX();
        else
            sched_yield();
    }
}
