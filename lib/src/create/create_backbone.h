/* create_backbone.h — the seeded backbones of uf_model_create_random (create_backbone.c). */
#ifndef UF_CREATE_BACKBONE_H
#define UF_CREATE_BACKBONE_H

#include "create/writer.h"

/* Every backbone tensor (and the ResNet feature LayerNorms) of info's backbone, in
 * anomalib's state_dict order, through w. */
void uf_cw_backbone(uf_cw_writer *w, const uf_model_info *info);

#endif
