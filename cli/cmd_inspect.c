/* cmd_inspect.c — `uflow inspect`: what a model file holds. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int cmd_inspect(int argc, char **argv)
{
    if (argc != 2 || !strcmp(argv[1], "--help")) {
        fprintf(argc == 2 ? stdout : stderr, "usage: uflow inspect MODEL.safetensors\n");
        return argc == 2 ? CLI_OK : CLI_USAGE;
    }
    uf_model *m = cli_load_model("inspect", argv[1]);
    if (!m)
        return CLI_FAIL;
    const uf_model_info *i = uf_model_get_info(m);
    printf("file:            %s\n", argv[1]);
    printf("version:         %s (sha256 prefix)\n", i->version);
    if (*i->name)
        printf("name:            %s\n", i->name);
    if (*i->description)
        printf("description:     %s\n", i->description);
    printf("backbone:        %s\n", i->backbone_name);
    printf("input size:      %dx%d (HxW)\n", i->height, i->width);
    printf("flow steps:      %d\n", i->flow_steps);
    printf("affine clamp:    %g\n", i->affine_clamp);
    printf("subnet ratio:    %g\n", i->affine_subnet_channels_ratio);
    printf("permutation:     %s\n", i->permute_soft ? "soft (dense 1x1)" : "hard (gather)");
    printf("parameters:      %llu elements, %llu bytes in the file\n", (unsigned long long)i->n_params,
           (unsigned long long)i->file_bytes);
    printf("preprocessing:   mean [%g, %g, %g] std [%g, %g, %g]\n", i->mean[0], i->mean[1], i->mean[2],
           i->std[0], i->std[1], i->std[2]);
    printf("scales:          %d (finest first)\n", i->n_scales);
    for (int k = 0; k < i->n_scales; k++)
        printf("  scale %d:       feature %dx%dx%d (1/%d)  ->  z %dx%dx%d\n", k, i->feature_channels[k],
               i->z_height[k], i->z_width[k], i->feature_scale[k], i->z_channels[k], i->z_height[k],
               i->z_width[k]);
    if (i->has_postproc)
        printf("post-processing: image threshold %g, pixel threshold %g, scores [%g, %g], maps [%g, %g]\n",
               i->post.image_threshold, i->post.pixel_threshold, i->post.pred_scores_min,
               i->post.pred_scores_max, i->post.anomaly_maps_min, i->post.anomaly_maps_max);
    else
        printf("post-processing: none (raw scores, no label)\n");
    printf("config:          %s\n", i->config_json);
    uf_model_free(m);
    return CLI_OK;
}
