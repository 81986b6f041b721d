/* flow.h — anomalib's U-shaped normalizing flow (docs/uflow-math.md "The flow"): per scale,
 * from the coarsest to the finest, a stage of flow_steps AllInOneBlocks; between stages the
 * latent is split, its upward part pixel-shuffled to the next finer scale and concatenated
 * with that scale's features.
 *
 * The block forward (flow_block.c) is the one forward pass of the flow: inference runs it on
 * the model's weights, the trainer on its current parameters (uf_flow_block_bind) with
 * uf_flow_saved to keep what its backward pass needs. */
#ifndef UF_FLOW_H
#define UF_FLOW_H

#include "kernels/kernels.h"
#include "models/weights.h"
#include "uflow.h"

#include <stddef.h>
#include <stdint.h>

/* ---- the graph: names and shapes, from the config alone ---------------------------------- */

/* Channels entering the stage of scale k (features + the upsampled part of the coarser
 * stage's split); the split's upward part of a stage with C channels. */
int uf_flow_stage_channels(const uf_model_info *info, int k);
int uf_flow_split_a(int C);

/* The module index in anomalib's flow.module_list of block j of scale k's stage, and of the
 * IRevNetUpsampling after scale k's split (k > 0; its tensor is downsample_kernel). */
int uf_flow_block_index(const uf_model_info *info, int k, int j);
int uf_flow_upsample_index(const uf_model_info *info, int k);

/* "flow.module_list.<idx>.<suffix>" into buf. */
const char *uf_flow_param_name(char *buf, size_t n, int idx, const char *suffix);

/* Block j of scale k: channels C = C1 + C2 (C1 conditions, C2 is transformed), hidden
 * channels M = int(C1 * ratio), kernel k (3 on even steps, 1 on odd ones). */
typedef struct uf_flow_block_shape {
    int C, C1, C2, M, k;
} uf_flow_block_shape;
uf_flow_block_shape uf_flow_block_shape_of(const uf_model_info *info, int k, int j);

/* ---- one AllInOneBlock ---------------------------------------------------------------- */

typedef struct uf_flow_block {
    int C, C1, C2, M, k;
    uf_conv sub0, sub2;
    const float *scale;    /* [C] 0.1*softplus_{0.5}(global_scale) */
    const float *offset;   /* [C] */
    const int32_t *perm;   /* [C] hard permutation: out[i] = v[perm[i]]; NULL if soft */
    const float *wsoft;    /* [C][C] soft permutation matrix, or NULL */
    float log_scale_sum;   /* sum_c log(scale_c) */
} uf_flow_block;

/* ActNorm's scale from its parameter, float32 as torch computes it: scale = 0.1 *
 * softplus(g, beta = 0.5, threshold 20); *log_sum = sum log(scale) (in double, rounded).
 * Returns -1, or the first channel whose scale is not positive and finite. */
int uf_flow_actnorm_scale(const float *global_scale, int C, float *scale, float *log_sum);

/* A block over other parameters with the shape and permutation of `like` (the trainer's
 * current values): subnet convolutions without Winograd weights; scale [C] is filled. */
void uf_flow_block_bind(uf_flow_block *b, const uf_flow_block *like, const float *global_scale,
                        const float *global_offset, const float *w0, const float *b0,
                        const float *w2, const float *b2, float *scale);

/* What the backward pass needs of one sample's block forward, C2*h*w floats each. */
typedef struct uf_flow_saved {
    float *th;             /* tanh(0.1 * s) */
    float *e;              /* exp(J) */
    float *y2;             /* x2 * exp(J) + 0.1 * t */
} uf_flow_saved;

/* One block on B samples [B, C, h, w] -> out (not aliasing x). Scratch per sample: hid >= M*h*w
 * (holds the post-ReLU hidden layer afterwards), a >= 2*C2*h*w, v >= C*h*w (soft permutation
 * only), ex->col >= the subnet convs' column scratch. jac[b] = the block's log-det of sample b.
 * save: NULL, or (B = 1) where to keep the values the backward pass needs. */
void uf_flow_block_forward_ex(const uf_exec *ex, const uf_flow_block *blk, const float *x, int B,
                              int h, int w, float clamp, float *out, float *hid, float *a, float *v,
                              float *jac, const uf_flow_saved *save);
void uf_flow_block_forward(const uf_flow_block *blk, const float *x, int B, int h, int w,
                           float clamp, float *out, float *hid, float *a, float *col, float *v,
                           float *jac);

/* ---- the loaded flow -------------------------------------------------------------------- */

typedef struct uf_flow_stage {
    int C, h, w;           /* channels entering the stage (features + upsampled) */
    int split_a;           /* channels sent up (pixel-shuffled); C - split_a is z (0 for scale 0) */
    uf_flow_block *blocks; /* flow_steps of them */
} uf_flow_stage;

typedef struct uf_flow {
    uf_flow_stage stage[UF_MAX_SCALES];
} uf_flow;

/* Take the flow's tensors (memory owned by w); sets info->z_channels/z_height/z_width. */
uf_status uf_flow_load(uf_weights *w, uf_model_info *info, uf_flow *f, uf_error *err);
size_t uf_flow_scratch_floats(const uf_flow *f, const uf_model_info *info, int B);
size_t uf_flow_col_floats(const uf_flow *f, const uf_model_info *info, int nt);

/* Sees every graph node's output while the flow runs (tests and debugging; NULL in
 * production). Node names follow anomalib/FrEIA: flow{W}_step{j}, split_{i}, up_{i},
 * cat_{i-1}. data[b * sample_stride + ...] is sample b, [C, h, w]; jac is the node's log-det
 * contribution [B] (NULL for nodes that add nothing). */
typedef struct uf_flow_observer {
    void (*fn)(void *user, const char *node, int out_idx, const float *data, size_t sample_stride,
               int C, int h, int w, const float *jac);
    void *user;
} uf_flow_observer;

/* feats: K feature maps; z: K outputs; ljd: [B] (overwritten). */
void uf_flow_run(const uf_flow *f, const uf_model_info *info, const uf_exec *ex,
                 float *const feats[UF_MAX_SCALES], int B, float *scratch,
                 float *const z[UF_MAX_SCALES], float *ljd, const uf_flow_observer *obs);

#endif
