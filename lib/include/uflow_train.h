/*
 * uflow_train.h — training U-Flow's flow (and the ResNet feature LayerNorms) on a CPU.
 *
 * The backbone stays frozen, as in anomalib: its features are computed once per image and
 * cached, so an epoch costs only the flow's forward and backward passes. What trains are the
 * feature LayerNorms' affines (ResNet backbones), every block's ActNorm (global_scale through
 * its softplus, global_offset) and the coupling subnets; permutations are frozen.
 *
 *   uf_trainer *t;
 *   uf_train_opts o = uf_train_opts_default();          // paper loss, Adam 1e-3, wd 1e-5
 *   uf_trainer_new(model, &o, &t, &err);               // model = architecture + start values
 *   uf_trainer_add_images(t, x, n, &err);              // normalised [n,3,H,W]; caches features
 *   for (int e = 0; e < epochs; e++)
 *       uf_trainer_epoch(t, NULL, NULL, &loss, &err);  // shuffled batches, then the LR step
 *   uf_trainer_save(t, "trained.safetensors", extra_json, &err);
 *
 * Losses (per batch of B images; z over every scale, ljd the flow's log-det per image):
 *   UF_LOSS_PAPER     mean_b(0.5*|z_b|^2 - ljd_b)        the U-Flow paper's code; latents ~ N(0,1)
 *   UF_LOSS_ANOMALIB  sum_b 0.5*|z_b|^2 - mean_b(ljd_b)  anomalib's UFlowLoss; its optimum has
 *                     latents ~ N(0, 1/B), which de-calibrates the NFA threshold (docs/training.md)
 * Optimiser: PyTorch's Adam (betas 0.9/0.999, eps 1e-8) with L2 weight decay added to the
 * gradient; the learning rate follows LinearLR(1.0 -> end_factor over total_iters) stepped once
 * per epoch, as anomalib's Lightning module does.
 *
 * Threads: the images of a batch are spread over opts.threads threads, each with its own
 * scratch and gradient buffer; the buffers are summed in thread order, so a run is
 * reproducible for a given seed and thread count.
 */
#ifndef UFLOW_TRAIN_H
#define UFLOW_TRAIN_H

#include "uflow.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum uf_loss_kind { UF_LOSS_PAPER = 0, UF_LOSS_ANOMALIB = 1 } uf_loss_kind;

typedef struct uf_train_opts {
    uf_loss_kind loss;
    int batch_size;          /* default 32 (anomalib's MVTec datamodule) */
    double lr;               /* default 1e-3 */
    double weight_decay;     /* default 1e-5 */
    double lr_end_factor;    /* LinearLR end factor, default 0.4 */
    int lr_total_iters;      /* LinearLR total_iters in epochs, default 25000 */
    uint64_t seed;           /* shuffling */
    int threads;             /* default 1 */
    size_t cache_mem_limit;  /* feature cache bytes kept in RAM; above it a temp file (0 = 2 GiB) */
    const char *cache_dir;   /* directory of that file; NULL = $TMPDIR or /tmp */
} uf_train_opts;

uf_train_opts uf_train_opts_default(void);

typedef struct uf_trainer uf_trainer;

/* Start from a loaded model: its architecture, frozen backbone and permutations, and the
 * start values of the trainable tensors (which must be F32). The model must outlive the
 * trainer. */
uf_status uf_trainer_new(const uf_model *m, const uf_train_opts *opts, uf_trainer **out,
                         uf_error *err);
void uf_trainer_free(uf_trainer *t);

/* Run the frozen backbone on n normalised images [n, 3, H, W] and cache their features:
 * training images, or validation images (only ever used by uf_trainer_val_loss). Cache
 * indices count both kinds in the order they were added. */
uf_status uf_trainer_add_images(uf_trainer *t, const float *input, int n, uf_error *err);
uf_status uf_trainer_add_val_images(uf_trainer *t, const float *input, int n, uf_error *err);
int uf_trainer_n_images(const uf_trainer *t);      /* training images */
int uf_trainer_n_val_images(const uf_trainer *t);
/* Bytes the feature cache holds and whether it spilled to a file. */
size_t uf_trainer_cache_bytes(const uf_trainer *t, int *on_disk);

/* Loss and gradients of cached images idx[0..n) as one batch; no update. */
uf_status uf_trainer_grad(uf_trainer *t, const int *idx, int n, double *loss, uf_error *err);
/* uf_trainer_grad, then one Adam update at the current learning rate. */
uf_status uf_trainer_step(uf_trainer *t, const int *idx, int n, double *loss, uf_error *err);

/* Called after every step; return non-zero to stop the epoch early (Ctrl-C). */
typedef int (*uf_train_progress_fn)(void *user, int epoch, int step, int steps, double loss,
                                    int images_done);

/* One epoch over every training image in a seeded shuffled order (the last batch may be
 * smaller), then the scheduler step. *mean_loss = mean of the step losses. Returns
 * UF_ERR_ARG with "interrupted" if the callback stopped it (the epoch does not count). */
uf_status uf_trainer_epoch(uf_trainer *t, uf_train_progress_fn cb, void *user, double *mean_loss,
                           uf_error *err);

/* Loss of cached images [first, first+n) without gradients, in batches of the configured
 * size; uf_trainer_val_loss does it for the validation images. */
uf_status uf_trainer_eval_loss(uf_trainer *t, int first, int n, double *mean_loss, uf_error *err);
uf_status uf_trainer_val_loss(uf_trainer *t, double *mean_loss, uf_error *err);

/* Epochs completed, optimizer steps taken, the learning rate of the next step. */
int uf_trainer_epochs_done(const uf_trainer *t);
long uf_trainer_steps_done(const uf_trainer *t);
double uf_trainer_lr(const uf_trainer *t);

/* Trainable tensors, by anomalib name (without the "model." prefix). */
int uf_trainer_n_tensors(const uf_trainer *t);
const char *uf_trainer_tensor_name(const uf_trainer *t, int i);
/* Values (writable: tests may set them) and the last computed gradient; *numel set. NULL if
 * there is no such trainable tensor. */
float *uf_trainer_tensor(uf_trainer *t, const char *name, size_t *numel);
const float *uf_trainer_tensor_grad(const uf_trainer *t, const char *name, size_t *numel);

/* Write a model file: the start model's tensors in its order with the trained values, its
 * metadata, and the config JSON with `extra_config` (a JSON object, may be NULL) merged in
 * and "params_sha256" (SHA-256 of the tensor data) set. Atomic (temp file + rename). */
uf_status uf_trainer_save(const uf_trainer *t, const char *path, const char *extra_config,
                          uf_error *err);

/* Optimizer state (Adam moments, epoch, step, shuffling state, options) in a safetensors
 * file, and back. Loading checks that the tensor names and shapes match. */
uf_status uf_trainer_save_state(const uf_trainer *t, const char *path, uf_error *err);
uf_status uf_trainer_load_state(uf_trainer *t, const char *path, uf_error *err);

#ifdef __cplusplus
}
#endif
#endif
