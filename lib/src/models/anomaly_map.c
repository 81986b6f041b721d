/* anomaly_map.c — anomalib's AnomalyMapGenerator (docs/uflow-math.md "Anomaly map"): per scale
 * p = exp(-0.5 * mean_c z^2), bilinear upsampling to the input size, map = 1 - mean_k p. */
#include "core/internal.h"
#include "kernels/kernels.h"
#include "models/anomaly_map.h"
#include "kernels/vmath.h"

#include <math.h>
#include <string.h>

void uf_anomaly_map(const uf_model_info *info, const float *const z[UF_MAX_SCALES], int B,
                    float *scratch, float *map, float *score)
{
    int H = info->height, W = info->width, K = info->n_scales;
    size_t HW = (size_t)H * W;
    /* scratch: p (largest h*w) then one upsampled plane */
    size_t pmax = 0;
    for (int k = 0; k < K; k++)
        pmax = UF_MAX(pmax, (size_t)info->z_height[k] * info->z_width[k]);
    float *p = scratch, *up = scratch + pmax;
    for (int b = 0; b < B; b++) {
        float *mb = map + (size_t)b * HW;
        memset(mb, 0, sizeof(float) * HW);
        for (int k = 0; k < K; k++) {
            int C = info->z_channels[k];
            size_t hw = (size_t)info->z_height[k] * info->z_width[k];
            const float *zb = z[k] + (size_t)b * C * hw;
            uf_gauss_density(zb, C, hw, p);
            uf_resize_bilinear(p, 1, info->z_height[k], info->z_width[k], up, H, W);
            for (size_t i = 0; i < HW; i++)
                mb[i] += up[i];
        }
        float mx = -INFINITY;
        for (size_t i = 0; i < HW; i++) {
            mb[i] = 1.f - mb[i] / (float)K;
            if (mb[i] > mx || mb[i] != mb[i]) /* NaN wins, as in torch.amax */
                mx = mb[i] != mb[i] || mx != mx ? NAN : mb[i];
        }
        score[b] = mx;
    }
}

size_t uf_anomaly_map_scratch_floats(const uf_model_info *info)
{
    size_t pmax = 0;
    for (int k = 0; k < info->n_scales; k++)
        pmax = UF_MAX(pmax, (size_t)info->z_height[k] * info->z_width[k]);
    return pmax + (size_t)info->height * info->width;
}
