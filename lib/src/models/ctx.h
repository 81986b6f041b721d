/* ctx.h — what the library itself (the trainer, tests) needs of an inference context beyond
 * uflow.h. */
#ifndef UF_CTX_H
#define UF_CTX_H

#include "models/flow.h"
#include "uflow.h"

/* Only the backbone on `batch` images; raw = 1 leaves out the feature affine (x-hat, what the
 * trainer caches and applies its own parameters to). *feats points at the context's K
 * feature maps. */
uf_status uf_ctx_backbone(uf_ctx *ctx, const float *input, int batch, int raw,
                          const float *const **feats, uf_error *err);

/* Attach an observer to a context's flow (tests). */
void uf_ctx_set_observer(uf_ctx *ctx, const uf_flow_observer *obs);

#endif
