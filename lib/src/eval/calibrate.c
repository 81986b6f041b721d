/* calibrate.c — uf_model_write_postproc: a copy of a model file with anomalib's
 * post-processing statistics in its config (uflow_eval.h).
 *
 * The input is mapped and validated with uf_st_open and streamed to the output by
 * uf_st_rewrite (st_rewrite.c) with the new config: nothing is copied into memory. */
#include "uflow_eval.h"
#include "core/internal.h"
#include "io/st.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>

/* The config with the six statistics set (NaN: key removed). Caller frees the string. */
static uf_status new_config(const char *txt, const uf_postproc *p, char **out, uf_error *err)
{
    *out = NULL;
    if (!txt)
        return uf_err(err, UF_ERR_CONFIG, "no model config: __metadata__ has no 'config' entry");
    json_error_t je;
    json_t *o = json_loads(txt, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return uf_err(err, UF_ERR_CONFIG, "config is not valid JSON: %s", je.text);
    if (!json_is_object(o)) {
        json_decref(o);
        return uf_err(err, UF_ERR_CONFIG, "config is not a JSON object");
    }
    const char *keys[6] = {"image_threshold",  "pixel_threshold",  "pred_scores_min",
                           "pred_scores_max",  "anomaly_maps_min", "anomaly_maps_max"};
    const float vals[6] = {p->image_threshold,  p->pixel_threshold,  p->pred_scores_min,
                           p->pred_scores_max,  p->anomaly_maps_min, p->anomaly_maps_max};
    uf_status st = UF_OK;
    for (int i = 0; i < 6 && st == UF_OK; i++) {
        if (isnan(vals[i]))
            json_object_del(o, keys[i]); /* absent is fine */
        else if (isinf(vals[i]))
            st = uf_err(err, UF_ERR_ARG, "post-processing value '%s' is infinite", keys[i]);
        else if (json_object_set_new(o, keys[i], json_real((double)vals[i])) != 0)
            st = uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    if (st == UF_OK && !(*out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        st = uf_err(err, UF_ERR_NOMEM, "out of memory");
    json_decref(o);
    return st;
}

uf_status uf_model_write_postproc(const char *in_path, const char *out_path, const uf_postproc *p,
                                  uf_error *err)
{
    if (!in_path || !out_path || !p)
        return uf_err(err, UF_ERR_ARG, "uf_model_write_postproc: NULL argument");
    uf_st *st = NULL;
    uf_status s = uf_st_open(in_path, &st, err);
    if (s)
        return s;
    char *config = NULL;
    if ((s = new_config(uf_st_meta(st, "config"), p, &config, err)) == UF_OK)
        s = uf_st_rewrite(st, config, NULL, in_path, out_path, err);
    if (s == UF_ERR_CONFIG || s == UF_ERR_FORMAT || s == UF_ERR_ARG)
        uf_err_prefix(err, "'%s'", in_path);
    free(config);
    uf_st_close(st);
    return s;
}
