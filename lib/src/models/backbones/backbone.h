/* backbone.h — the interface every feature extractor implements (one file per backbone:
 * resnet.c, cait.c), and the list of them. model.c picks one by the config's backbone name;
 * nothing else knows which backbones exist.
 *
 * A backbone turns B normalised images [B, 3, H, W] into K feature maps (finest first), the
 * features *before* anomalib's trainable per-scale affine (the elementwise weight and bias of
 * its feature LayerNorms): the context applies that affine (features.c), and the trainer,
 * which learns it, caches the features without it. */
#ifndef UF_BACKBONE_H
#define UF_BACKBONE_H

#include "kernels/kernels.h"
#include "models/weights.h"
#include "uflow.h"

typedef struct uf_backbone_ops {
    const char *name;
    /* Take and check the weights; set info->n_scales, feature_channels, feature_scale. */
    uf_status (*load)(uf_weights *w, uf_model_info *info, void **state, uf_error *err);
    void (*free)(void *state);
    /* Scratch floats run() needs for batch B; im2col floats per thread for nt threads. */
    size_t (*scratch_floats)(const void *state, const uf_model_info *info, int B);
    size_t (*col_floats)(const void *state, const uf_model_info *info, int nt);
    void (*run)(const void *state, const uf_model_info *info, const uf_exec *ex, const float *in,
                int B, float *scratch, float *const feats[UF_MAX_SCALES]);
    /* Scale k's trainable affine [C_k, h_k, w_k] (weight, bias), or NULL pointers when the
     * backbone has none (mcait). */
    void (*affine)(const void *state, int k, const float **weight, const float **bias);
} uf_backbone_ops;

extern const uf_backbone_ops uf_backbone_resnet;  /* resnet18, wide_resnet50_2 */
extern const uf_backbone_ops uf_backbone_mcait;   /* CaiT-M48 + CaiT-S24 */

#endif
