/* weights.h — taking a model's tensors out of its safetensors file while it loads: lookup by
 * anomalib name (with the file's optional "model." prefix), shape and dtype checks, dtype
 * conversion, and the memory for what loading transforms (folded BatchNorms, Winograd
 * weights), freed with the model.
 *
 * Every tensor a loader takes is marked used; uf_weights_check_leftovers then rejects a file
 * that holds parameters no loader took (a model we would silently run wrong). */
#ifndef UF_WEIGHTS_H
#define UF_WEIGHTS_H

#include "kernels/kernels.h"
#include "uflow.h"

#include <stdint.h>

typedef struct uf_weights {
    uf_st *st;
    const char *prefix;    /* "" or "model." (anomalib's Lightning state_dict keys) */
    uint8_t *used;         /* per st tensor (index in uf_st_at order) */
    void **owned;          /* allocations freed with the weights */
    size_t n_owned, cap_owned;
} uf_weights;

/* Take ownership of an open file (closed by uf_weights_free, also on failure). */
uf_status uf_weights_init(uf_weights *w, uf_st *st, uf_error *err);
void uf_weights_free(uf_weights *w);

/* Find `name` (with the prefix), check that its shape is exactly shape[0..ndim) and its dtype
 * F32 (F64/F16/BF16 are converted), reject non-finite values, mark it used and return an
 * aligned float pointer (into the mapping when possible). NULL + error otherwise. */
const float *uf_weights_f32(uf_weights *w, const char *name, int ndim, const int64_t *shape,
                            uf_error *err);
/* Like uf_weights_f32 but only checks presence/shape and marks used (any dtype). */
uf_status uf_weights_expect(uf_weights *w, const char *name, int ndim, const int64_t *shape,
                            uf_error *err);
/* Memory freed with the weights (64-byte aligned), NULL when out of memory. */
void *uf_weights_alloc(uf_weights *w, size_t bytes);
/* Give a loaded convolution its Winograd weights when it qualifies (owned by w). */
uf_status uf_weights_prepare_conv(uf_weights *w, uf_conv *c, uf_error *err);
/* UF_ERR_TENSOR naming the first tensor no loader took (num_batches_tracked excepted). */
uf_status uf_weights_check_leftovers(const uf_weights *w, const char *model_kind, uf_error *err);

#endif
