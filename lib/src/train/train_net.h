/* train_net.h — building the trainer's layout (train_net.c). */
#ifndef UF_TRAIN_NET_H
#define UF_TRAIN_NET_H

#include "train/train_flow.h"

/* The trainable tensors in flat-vector order: the feature LayerNorms (resnets), then every
 * flow block's global_scale, global_offset, subnet.0.{weight,bias}, subnet.2.{weight,bias}. */
typedef struct tr_layout {
    tr_tensor *t;
    int n, cap;
    size_t np;               /* total trainable floats */
} tr_layout;

uf_status tr_layout_build(const uf_model *m, tr_net *n, tr_layout *L, uf_error *err);
void tr_layout_free(tr_net *n, tr_layout *L);
/* Index of a tensor by anomalib name (no "model." prefix), or -1. */
int tr_layout_find(const tr_layout *L, const char *name);

#endif
