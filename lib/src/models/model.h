/* model.h — the in-memory model: its weights (the mapped file plus what loading transformed),
 * config, backbone and flow. model.c loads it: map the file, parse the config, let the
 * backbone and the flow take their tensors (each checked against the shape the config
 * implies), reject leftovers. A loaded model is immutable. */
#ifndef UF_MODEL_H
#define UF_MODEL_H

#include "models/backbones/backbone.h"
#include "models/flow.h"
#include "models/weights.h"
#include "uflow.h"

struct uf_model {
    uf_weights w;
    uf_model_info info;
    char *config_json, *name, *description;
    const uf_backbone_ops *bb_ops;
    void *bb;
    uf_flow flow;
};

#endif
