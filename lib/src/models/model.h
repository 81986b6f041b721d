/* model.h — the in-memory model: config, backbone and flow parameters, and the tensor
 * lookup used while loading. A loaded model is immutable. */
#ifndef UF_MODEL_H
#define UF_MODEL_H

#include "kernels/kernels.h"
#include "io/st.h"
#include "uflow.h"

#include <stdint.h>

struct uf_model;

/* A backbone turns a normalised image into K feature maps (finest first). */
typedef struct uf_backbone_ops {
    const char *name;
    /* Read and check weights; set info->n_scales, feature_channels, feature_scale. */
    uf_status (*load)(struct uf_model *m, void **state, uf_error *err);
    void (*free)(void *state);
    /* Scratch floats run() needs for batch B; im2col floats per thread for nt threads. */
    size_t (*scratch_floats)(const void *state, const uf_model_info *info, int B);
    size_t (*col_floats)(const void *state, const uf_model_info *info, int nt);
    void (*run)(const void *state, const uf_model_info *info, const uf_exec *ex, const float *in,
                int B, float *scratch, float *const feats[UF_MAX_SCALES]);
} uf_backbone_ops;

extern const uf_backbone_ops uf_backbone_resnet;

/* One AllInOneBlock (spec §3.4). */
typedef struct uf_flow_block {
    int C, C1, C2, M, k;
    uf_conv sub0, sub2;
    float *scale;          /* [C] 0.1*softplus_{0.5}(global_scale), owned */
    const float *offset;   /* [C] */
    int32_t *perm;         /* [C] hard permutation: out[i] = v[perm[i]], owned; NULL if soft */
    const float *wsoft;    /* [C][C] soft permutation matrix, or NULL */
    float log_scale_sum;   /* sum_c log(scale_c), float32 as in PyTorch */
} uf_flow_block;

typedef struct uf_flow_stage {
    int C, h, w;           /* channels entering the stage (features + upsampled) */
    int split_a;           /* channels sent up (pixel-shuffled); C - split_a is z (0 for scale 0) */
    uf_flow_block *blocks; /* flow_steps of them */
} uf_flow_stage;

struct uf_model {
    uf_st *st;
    uf_model_info info;
    char *config_json, *name, *description;
    const char *prefix;    /* "" or "model." */
    uint8_t *used;         /* per st tensor (index in uf_st_at order): consumed by the loader */
    const uf_backbone_ops *bb_ops;
    void *bb;
    const float *ln_w[UF_MAX_SCALES], *ln_b[UF_MAX_SCALES]; /* feature LayerNorms (resnets) */
    uf_flow_stage stage[UF_MAX_SCALES];
    void **owned;          /* allocations freed with the model */
    size_t n_owned, cap_owned;
};

/* Find `name` (with the model's prefix), check dtype (F32; F64/F16/BF16 are converted) and
 * that its shape is exactly shape[0..ndim), mark it used and return an aligned float pointer
 * (into the mapping when possible). NULL + error otherwise. */
const float *uf_model_f32(struct uf_model *m, const char *name, int ndim, const int64_t *shape,
                          uf_error *err);
/* Like uf_model_f32 but only checks presence/shape and marks used (any dtype). */
uf_status uf_model_expect(struct uf_model *m, const char *name, int ndim, const int64_t *shape,
                          uf_error *err);
/* Memory freed with the model (64-byte aligned). */
void *uf_model_alloc(struct uf_model *m, size_t bytes);
/* Give a loaded convolution its Winograd weights when it qualifies (model-owned). */
uf_status uf_model_prepare_conv(struct uf_model *m, uf_conv *c, uf_error *err);

/* Config parsing (config.c): fills info from the JSON config string. */
uf_status uf_config_parse(const char *json, uf_model_info *info, char **name, char **desc,
                          uf_error *err);

/* Flow (flow.c). Channels entering the stage of scale k; the split's upward part. */
int uf_flow_stage_channels(const uf_model_info *info, int k);
int uf_flow_split_a(int C);
uf_status uf_flow_load(struct uf_model *m, uf_error *err);
size_t uf_flow_scratch_floats(const struct uf_model *m, int B);
size_t uf_flow_col_floats(const struct uf_model *m, int nt);
/* Sees every graph node's output while the flow runs (tests and debugging; NULL in
 * production). Node names follow anomalib/FrEIA (spec §3.1): flow{W}_step{j}, split_{i},
 * up_{i}, cat_{i-1}. data[b * sample_stride + ...] is sample b, [C, h, w]; jac is the
 * node's log-det contribution [B] (NULL for nodes that add nothing). */
typedef struct uf_flow_observer {
    void (*fn)(void *user, const char *node, int out_idx, const float *data, size_t sample_stride,
               int C, int h, int w, const float *jac);
    void *user;
} uf_flow_observer;

/* One block on B samples [B, C, h, w] -> out (not aliasing x). Scratch per sample: hid >= M*h*w,
 * a >= 2*C2*h*w, col >= the subnet convs' im2col, v >= C*h*w (soft permutation only).
 * jac[b] = the block's log-det for sample b. */
void uf_flow_block_forward(const uf_flow_block *blk, const float *x, int B, int h, int w,
                           float clamp, float *out, float *hid, float *a, float *col, float *v,
                           float *jac);
void uf_flow_block_forward_ex(const uf_exec *ex, const uf_flow_block *blk, const float *x, int B,
                              int h, int w, float clamp, float *out, float *hid, float *a, float *v,
                              float *jac);

/* feats: K feature maps; z: K outputs; ljd: [B] (overwritten). */
void uf_flow_run(const struct uf_model *m, const uf_exec *ex, float *const feats[UF_MAX_SCALES], int B,
                 float *scratch, float *const z[UF_MAX_SCALES], float *ljd,
                 const uf_flow_observer *obs);

/* Anomaly map (anomaly_map.c): map [B,1,H,W], score [B]. */
size_t uf_anomaly_map_scratch_floats(const uf_model_info *info);
void uf_anomaly_map(const uf_model_info *info, const float *const z[UF_MAX_SCALES], int B,
                    float *scratch, float *map, float *score);

/* Only the backbone on `batch` images (ctx.c); raw = 1 leaves out the feature LayerNorms'
 * affine (x-hat, for the training cache). *feats points at the context's K feature maps. */
uf_status uf_ctx_backbone(uf_ctx *ctx, const float *input, int batch, int raw,
                          const float *const **feats, uf_error *err);

/* Attach an observer to a context's flow (tests; ctx.c). */
void uf_ctx_set_observer(uf_ctx *ctx, const uf_flow_observer *obs);

#endif
