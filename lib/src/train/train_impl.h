/* train_impl.h — the trainer object, shared by train.c (optimisation), train_cache.c (the
 * feature cache) and train_io.c (model and optimizer-state files). */
#ifndef UF_TRAIN_IMPL_H
#define UF_TRAIN_IMPL_H

#include "train/train_net.h"

#include <stdint.h>

/* Most threads a trainer runs (the pool's limit too): sizes batch_job's per-thread arrays. */
#define TR_MAX_THREADS 256

typedef struct tr_thread {
    float *g;      /* gradient of this thread's images */
    float *act;    /* activations of the image being processed */
    float *tmp;    /* temporaries of tr_forward/tr_backward */
    float *feat;   /* one image's features (disk cache reads, feature extraction) */
} tr_thread;

struct uf_trainer {
    tr_net net;
    tr_layout L;
    uf_train_opts o;
    float *p, *g, *m1, *m2;    /* parameters, gradient, Adam moments (flat, L.np floats) */
    int nt;
    tr_thread *th;
    struct uf_pool *pool;
    uf_ctx *fctx;              /* feature extraction */
    int epoch;
    long step;
    uint64_t rng;              /* shuffling state */
    /* An epoch stopped part-way (Ctrl-C, an error) took ep_step steps (0: none under way) and
     * left rng at the epoch's start: the next uf_trainer_epoch redoes that shuffle and goes on
     * at step ep_step, so an interrupted and resumed run takes exactly the uninterrupted
     * run's steps. */
    int ep_step;
    double ep_sum;             /* the loss sum of those steps */
    /* feature cache: n_img rows of net.feat_floats floats, in RAM or in an unlinked file */
    float *cache;
    int n_img, cap_img;
    int *train_idx, n_train, *val_idx, n_val;  /* cache indices of each kind */
    int cache_fd;
};

uf_status tr_cache_append(uf_trainer *t, const float *row, uf_error *err);
/* Image i's features: a pointer into the RAM cache, or read into buf from the file. */
uf_status tr_cache_get(const uf_trainer *t, int i, float *buf, const float **out, uf_error *err);
void tr_cache_free(uf_trainer *t);

#endif
