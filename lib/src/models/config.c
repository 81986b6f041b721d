/* config.c — the model config stored as JSON in the safetensors __metadata__["config"].
 *
 * Required (anomalib's UflowModel constructor): backbone, input_size (int or [H, W]),
 * flow_steps, affine_clamp, affine_subnet_channels_ratio, permute_soft.
 * Optional (ours, documented in docs/model-format.md): name, description, mean, std,
 * image_threshold, pixel_threshold, pred_scores_min, pred_scores_max, anomaly_maps_min,
 * anomaly_maps_max, image_sensitivity. feature_channels / feature_scale_factors, when present,
 * must agree with the backbone. Unknown keys are ignored (training provenance etc.). */
#include "core/internal.h"
#include "models/config.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Larger inputs are not a U-Flow use case and would make scratch sizes absurd. */
#define UF_MAX_SIDE 4096

static const struct {
    const char *name;
    uf_backbone_kind kind;
    int n;
    int ch[UF_MAX_SCALES], sc[UF_MAX_SCALES];
} backbones[] = {
    {"resnet18", UF_BACKBONE_RESNET18, 3, {64, 128, 256}, {4, 8, 16}},
    {"wide_resnet50_2", UF_BACKBONE_WIDE_RESNET50_2, 3, {256, 512, 1024}, {4, 8, 16}},
    {"mcait", UF_BACKBONE_MCAIT, 2, {768, 384}, {16, 32}},
};

static uf_status get_number(json_t *o, const char *key, int required, double *out, uf_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (required)
            return uf_err(err, UF_ERR_CONFIG, "config: missing required field '%s'", key);
        return UF_OK;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return uf_err(err, UF_ERR_CONFIG, "config: '%s' must be a finite number", key);
    *out = json_number_value(v);
    return UF_OK;
}

static uf_status get_int(json_t *o, const char *key, int lo, int hi, int *out, uf_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return uf_err(err, UF_ERR_CONFIG, "config: missing required field '%s'", key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return uf_err(err, UF_ERR_CONFIG, "config: '%s' must be an integer in [%d, %d]", key, lo, hi);
    *out = (int)json_integer_value(v);
    return UF_OK;
}

static uf_status get_vec3(json_t *o, const char *key, float out[3], int positive, uf_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return UF_OK;
    if (!json_is_array(v) || json_array_size(v) != 3)
        return uf_err(err, UF_ERR_CONFIG, "config: '%s' must be an array of 3 numbers", key);
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_number(e) || !isfinite(json_number_value(e)) ||
            (positive && json_number_value(e) <= 0))
            return uf_err(err, UF_ERR_CONFIG, "config: '%s'[%zu] must be a %snumber", key, i,
                          positive ? "positive " : "");
        out[i] = (float)json_number_value(e);
    }
    return UF_OK;
}

static uf_status check_list(json_t *o, const char *key, int n, const int *want, uf_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return UF_OK;
    int ok = json_is_array(v) && (int)json_array_size(v) == n;
    for (int i = 0; ok && i < n; i++)
        ok = json_is_integer(json_array_get(v, (size_t)i)) &&
             json_integer_value(json_array_get(v, (size_t)i)) == want[i];
    if (!ok)
        return uf_err(err, UF_ERR_CONFIG, "config: '%s' contradicts the backbone", key);
    return UF_OK;
}

static char *dup_string(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return strdup(s ? s : "");
}

static uf_status parse(json_t *o, uf_model_info *info, uf_error *err)
{
    if (!json_is_object(o))
        return uf_err(err, UF_ERR_CONFIG, "config is not a JSON object");
    const char *bb = json_string_value(json_object_get(o, "backbone"));
    if (!bb)
        return uf_err(err, UF_ERR_CONFIG, "config: missing required field 'backbone' (a string)");
    int found = -1;
    for (size_t i = 0; i < sizeof backbones / sizeof backbones[0]; i++)
        if (strcmp(bb, backbones[i].name) == 0)
            found = (int)i;
    if (found < 0)
        return uf_err(err, UF_ERR_CONFIG,
                      "config: backbone '%s' is not one of resnet18, wide_resnet50_2, mcait", bb);
    info->backbone = backbones[found].kind;
    info->backbone_name = backbones[found].name;
    info->n_scales = backbones[found].n;
    for (int k = 0; k < info->n_scales; k++) {
        info->feature_channels[k] = backbones[found].ch[k];
        info->feature_scale[k] = backbones[found].sc[k];
    }
    uf_status s;
    if ((s = check_list(o, "feature_channels", info->n_scales, info->feature_channels, err)) ||
        (s = check_list(o, "feature_scale_factors", info->n_scales, info->feature_scale, err)))
        return s;

    json_t *is = json_object_get(o, "input_size");
    json_int_t h = -1, w = -1;
    if (json_is_integer(is))
        h = w = json_integer_value(is);
    else if (json_is_array(is) && json_array_size(is) == 2 && json_is_integer(json_array_get(is, 0)) &&
             json_is_integer(json_array_get(is, 1))) {
        h = json_integer_value(json_array_get(is, 0));
        w = json_integer_value(json_array_get(is, 1));
    } else
        return uf_err(err, UF_ERR_CONFIG, "config: 'input_size' must be an integer or [H, W]");
    /* Every scale must halve exactly down to the coarsest (stride 32 for mcait). */
    int mult = info->feature_scale[info->n_scales - 1];
    if (h < mult || w < mult || h > UF_MAX_SIDE || w > UF_MAX_SIDE || h % mult || w % mult)
        return uf_err(err, UF_ERR_CONFIG,
                      "config: input_size %lldx%lld: sides must be multiples of %d in [%d, %d]",
                      (long long)h, (long long)w, mult, mult, UF_MAX_SIDE);
    if (info->backbone == UF_BACKBONE_MCAIT && (h != 448 || w != 448))
        return uf_err(err, UF_ERR_CONFIG, "config: the mcait backbone requires input_size 448x448");
    info->height = (int)h;
    info->width = (int)w;

    if ((s = get_int(o, "flow_steps", 1, 64, &info->flow_steps, err)))
        return s;
    double clamp = 2.0, ratio = 1.0;
    if ((s = get_number(o, "affine_clamp", 1, &clamp, err)) ||
        (s = get_number(o, "affine_subnet_channels_ratio", 1, &ratio, err)))
        return s;
    if (clamp <= 0)
        return uf_err(err, UF_ERR_CONFIG, "config: 'affine_clamp' must be > 0");
    if (ratio <= 0 || ratio > 64)
        return uf_err(err, UF_ERR_CONFIG, "config: 'affine_subnet_channels_ratio' must be in (0, 64]");
    info->affine_clamp = (float)clamp;
    info->affine_subnet_channels_ratio = ratio;
    json_t *ps = json_object_get(o, "permute_soft");
    if (!json_is_boolean(ps))
        return uf_err(err, UF_ERR_CONFIG, "config: missing required field 'permute_soft' (a boolean)");
    info->permute_soft = json_is_true(ps);

    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(info->mean, mean, sizeof mean);
    memcpy(info->std, std, sizeof std);
    if ((s = get_vec3(o, "mean", info->mean, 0, err)) || (s = get_vec3(o, "std", info->std, 1, err)))
        return s;

    static const char *pk[] = {"image_threshold", "pixel_threshold", "pred_scores_min",
                               "pred_scores_max", "anomaly_maps_min", "anomaly_maps_max",
                               "image_sensitivity"};
    float *pv[] = {&info->post.image_threshold, &info->post.pixel_threshold,
                   &info->post.pred_scores_min, &info->post.pred_scores_max,
                   &info->post.anomaly_maps_min, &info->post.anomaly_maps_max,
                   &info->post.image_sensitivity};
    for (size_t i = 0; i < 7; i++) {
        double d = NAN;
        if ((s = get_number(o, pk[i], 0, &d, err)))
            return s;
        *pv[i] = (float)d;
    }
    if (isnan(info->post.image_sensitivity))
        info->post.image_sensitivity = 0.5f;
    /* Normalisation needs a range and at least one threshold (docs/uflow-math.md "Post-processing" fallbacks). */
    info->has_postproc = !isnan(info->post.pred_scores_min) && !isnan(info->post.pred_scores_max) &&
                         info->post.pred_scores_max > info->post.pred_scores_min;
    return UF_OK;
}

uf_status uf_config_parse(const char *txt, uf_model_info *info, char **name, char **desc,
                          uf_error *err)
{
    *name = *desc = NULL;
    if (!txt)
        return uf_err(err, UF_ERR_CONFIG,
                      "no model config: __metadata__ has no 'config' entry (a JSON string)");
    json_error_t je;
    json_t *o = json_loads(txt, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return uf_err(err, UF_ERR_CONFIG, "config is not valid JSON: %s", je.text);
    uf_status s = parse(o, info, err);
    if (s == UF_OK) {
        *name = dup_string(o, "name");
        *desc = dup_string(o, "description");
        if (!*name || !*desc)
            s = uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    json_decref(o);
    return s;
}

float uf_postproc_normalize(const uf_postproc *p, float raw, int image_level)
{
    float lo = image_level ? p->pred_scores_min : p->anomaly_maps_min;
    float hi = image_level ? p->pred_scores_max : p->anomaly_maps_max;
    float thr = image_level ? p->image_threshold : p->pixel_threshold;
    float other = image_level ? p->pixel_threshold : p->image_threshold;
    if (isnan(lo) || isnan(hi) || !(hi > lo))
        return raw; /* no statistics: anomalib passes raw values through */
    if (isnan(thr))
        thr = isnan(other) ? (hi + lo) / 2.f : other;
    float v = (raw - thr) / (hi - lo) + 0.5f;
    return v < 0.f ? 0.f : v > 1.f ? 1.f : v;
}
