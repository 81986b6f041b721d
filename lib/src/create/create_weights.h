/* create_weights.h — a safetensors file of pretrained backbone weights under torchvision/timm
 * key names (tools/export_backbone.py; docs/model-format.md "Backbone weights") as the source
 * of a created model's backbone tensors: key mapping, shape/dtype checks, F16/BF16/F64 -> F32
 * streaming, the architecture check and the provenance record. */
#ifndef UF_CREATE_WEIGHTS_H
#define UF_CREATE_WEIGHTS_H

#include "io/atomic_file.h"
#include "uflow.h"

#include <jansson.h>

typedef struct uf_cw_source uf_cw_source;

/* Open and check a weights file for `backbone`; *prov = {"file", "sha256", "source"}. */
uf_status uf_cw_source_open(const char *path, const char *backbone, uf_cw_source **out,
                            json_t **prov, uf_error *err);
void uf_cw_source_close(uf_cw_source *s);

/* Whether an anomalib tensor name is a backbone tensor the file supplies. */
int uf_cw_source_has(const uf_cw_source *s, const char *name);

/* Planning: the file's tensor for (name, dtype, shape), checked; *t = NULL for an absent
 * num_batches_tracked (written as 0). */
uf_status uf_cw_source_find(const uf_cw_source *s, const char *name, uf_dtype dt, int ndim,
                            const int64_t *shape, const uf_st_tensor **t, uf_error *err);

/* Writing: stream t (as F32, or I64 when dt is I64) to out. */
uf_status uf_cw_source_stream(const uf_cw_source *s, const uf_st_tensor *t, uf_dtype dt,
                              uint64_t bytes, const char *name, uf_afile *out, uf_error *err);

#endif
