/* anomaly_map.h — anomalib's AnomalyMapGenerator: per scale p = exp(-0.5 mean_c z^2),
 * bilinear upsampling to the input size, map = 1 - mean_k p, score = max of the map. */
#ifndef UF_ANOMALY_MAP_H
#define UF_ANOMALY_MAP_H

#include "uflow.h"

#include <stddef.h>

/* map [B,1,H,W], score [B]; scratch holds uf_anomaly_map_scratch_floats(info) floats. */
size_t uf_anomaly_map_scratch_floats(const uf_model_info *info);
void uf_anomaly_map(const uf_model_info *info, const float *const z[UF_MAX_SCALES], int B,
                    float *scratch, float *map, float *score);

#endif
