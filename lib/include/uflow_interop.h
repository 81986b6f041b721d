/*
 * uflow_interop.h — anomalib interop: import Lightning checkpoints and state_dicts written by
 * torch.save, export a uflow model as a checkpoint anomalib and torch load.
 *
 *   uf_import_opts o = uf_import_opts_default();
 *   uf_error err;
 *   if (uf_import_checkpoint("uflow.ckpt", "model.safetensors", &o, &err) != UF_OK)
 *       fprintf(stderr, "%s\n", err.msg);
 *
 *   uf_export_checkpoint("model.safetensors", "back.ckpt", NULL, &err);
 *
 * Import reads, in C, both torch serialisations (the zip archive and the legacy stream) and
 * interprets the pickle inside without ever running it: no module is imported, no callable is
 * called, and a pickle that asks a real unpickler to call anything but torch's tensor rebuilders
 * and plain data constructors (os.system, builtins.eval, subprocess.Popen, ...) is refused with
 * an error naming the callable. That is safer than torch.load, which runs such calls. The exact
 * rule and what is taken from where are in docs/model-format.md ("Importing from anomalib").
 *
 * Inputs: an anomalib 2.x Lightning checkpoint, an anomalib 1.x checkpoint, a Lightning or bare
 * UflowModel state_dict. Taken: the "model." tensors (F16/BF16/F64 converted to F32), the
 * hyper-parameters (backbone, flow_steps, affine_clamp, affine_subnet_channels_ratio,
 * permute_soft; inferred from the tensors when absent, affine_clamp then defaults to 2.0),
 * the input size and normalisation of the pickled pre-processor (2.x hyper_parameters
 * "pre_processor", 1.x "transform"), the post-processor's thresholds and min/max (2.x buffers,
 * 1.x metric states) as the six post-processing config keys. Everything else (optimizer
 * states, loops, callbacks) is parsed as inert data and skipped; its tensor bytes are never read.
 */
#ifndef UFLOW_INTEROP_H
#define UFLOW_INTEROP_H

#include "uflow.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct uf_import_opts {
    /* Input size: 0 = from the checkpoint's pre-processor; without one, anomalib's default
     * 448x448 unless the feature LayerNorm shapes (ResNet backbones) say otherwise. When set,
     * it must agree with the LayerNorm shapes. */
    int height, width;
    const char *name;  /* config "name", or NULL */
    /* Called with one line per decision the user should know about (a default taken, a value
     * inferred); NULL = silent. */
    void (*note)(void *ud, const char *msg);
    void *ud;
} uf_import_opts;

uf_import_opts uf_import_opts_default(void);

/* Import in_path into a model file at out_path. The model is written to a temporary file
 * beside out_path, loaded and validated like any model (uf_model_load), and renamed over
 * out_path only then: on any failure nothing is left at out_path (an existing file there is
 * untouched). The config records provenance as "imported_from": {"file", "sha256", "kind",
 * "serialization", "pytorch_lightning_version", "anomalib_version", "epoch", "global_step",
 * "input_size_from", "uflow_version"} (keys without a value in the checkpoint are omitted).
 * Errors: UF_ERR_IO (unreadable file), UF_ERR_FORMAT (not a torch file, truncated, garbage,
 * refused pickle), UF_ERR_CONFIG (not a U-Flow checkpoint, contradicting sizes),
 * UF_ERR_TENSOR (missing / mis-shaped / non-finite tensor), UF_ERR_UNSUPPORTED (a storage
 * dtype or container variant uflow does not read), UF_ERR_LIMIT (pickle limits). */
uf_status uf_import_checkpoint(const char *in_path, const char *out_path,
                               const uf_import_opts *o, uf_error *err);

/* The same analysis on bytes in memory, writing nothing (tests, fuzzing): every tensor that
 * would be written is located and copied into scratch memory, and *config_json (when not NULL)
 * receives the config it would write (free() it). src_name is used for provenance only. The
 * final model validation of uf_import_checkpoint is not done. */
uf_status uf_import_buffer(const void *buf, size_t len, const char *src_name,
                           const uf_import_opts *o, char **config_json, size_t *n_tensors,
                           uf_error *err);

typedef struct uf_export_opts {
    /* Written as "pytorch-lightning_version" (Lightning migrates checkpoints by it); NULL =
     * "2.4.0". */
    const char *lightning_version;
} uf_export_opts;

/* Write model_path as a torch zip checkpoint at out_path (temporary file + rename):
 *   {"state_dict": OrderedDict("model.<key>": tensor, ..., "post_processor._image_threshold",
 *    "_pixel_threshold", "image_min", "image_max", "pixel_min", "pixel_max": 0-d tensors, NaN
 *    when the model has no such statistic),
 *    "hyper_parameters": {"backbone", "flow_steps", "affine_clamp",
 *    "affine_subnet_channels_ratio", "permute_soft"},
 *    "pytorch-lightning_version", "epoch", "global_step", "uflow_config": <the config JSON>}
 * Only tensors, containers, numbers and strings: torch.load(..., weights_only=True) (torch >= 2)
 * reads it, and UflowModel.load_state_dict(strict=True) accepts the "model." part (missing
 * BatchNorm num_batches_tracked are written as 0). The model is validated with uf_model_load
 * first. */
uf_status uf_export_checkpoint(const char *model_path, const char *out_path,
                               const uf_export_opts *o, uf_error *err);

#ifdef __cplusplus
}
#endif
#endif /* UFLOW_INTEROP_H */
