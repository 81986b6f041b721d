/* train_flow.h — the trainer's view of the flow (which tensors train, where activations
 * live) and the per-image forward/backward passes over it (train_flow.c). */
#ifndef UF_TRAIN_INTERNAL_H
#define UF_TRAIN_INTERNAL_H

#include "models/model.h"
#include "uflow_train.h"

#include <stddef.h>
#include <stdint.h>

/* One trainable tensor: a slice [off, off+n) of the trainer's flat parameter vector. */
typedef struct tr_tensor {
    char name[96];
    int ndim;
    int64_t shape[4];
    size_t off, n;
} tr_tensor;

/* A block's parameters (offsets into the flat vector) and where its activations live in a
 * thread's activation area. */
typedef struct tr_block {
    const uf_flow_block *mb; /* the model's block: shape, permutation (frozen) */
    int C, C1, C2, M, k;
    size_t gs, go, w0, b0, w2, b2;
    const int32_t *perm;     /* frozen, from the model (NULL with a soft permutation) */
    const float *wsoft;      /* [C][C] or NULL */
    size_t ax, ah, ath, ae, ay2; /* input, hidden (post-ReLU), tanh(s), exp(J), y2 */
} tr_block;

typedef struct tr_stage {
    int C, h, w, A, fc;      /* channels, size, split-up channels (0 at scale 0), feature channels */
    tr_block *blocks;
    size_t aout;             /* the stage's output [C][h][w] in the activation area */
    size_t ln_w, ln_b;       /* feature LayerNorm offsets (resnets), or SIZE_MAX */
} tr_stage;

/* The trainer's view of the flow: architecture and the flat parameter vector's layout. */
typedef struct tr_net {
    const uf_model *m;
    int K, S;
    int max_c;               /* most channels of any block */
    float clamp;
    tr_stage st[UF_MAX_SCALES];
    size_t act_floats;       /* activation area per sample */
    size_t tmp_floats;       /* temporaries per thread */
    size_t feat_floats;      /* cached features per image (all scales) */
    size_t feat_off[UF_MAX_SCALES];
} tr_net;

/* Temporaries one thread needs for tr_forward/tr_backward. */
size_t tr_tmp_floats(const tr_net *n);

/* Per-sample forward (storing activations in act) and backward (accumulating into g).
 * xhat = the cached normalised features of one image, p = parameters.
 * Returns 0.5*|z|^2 and the log-det through *zz and *ljd. */
void tr_forward(const tr_net *n, const float *p, const float *xhat, float *act, float *tmp,
                double *zz, double *ljd);
/* Loss = cz * 0.5*|z|^2 - cl * ljd for this sample; adds its gradient to g. */
void tr_backward(const tr_net *n, const float *p, const float *xhat, const float *act, float *tmp,
                 float cz, float cl, float *g);

#endif
