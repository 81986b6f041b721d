/* export.c — uf_export_checkpoint (uflow_interop.h): a model file as the Lightning checkpoint
 * anomalib writes, holding only what torch.load(weights_only=True) accepts. */
#include "core/internal.h"
#include "interop/torch_write.h"
#include "uflow_interop.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARCHIVE "archive/"

/* anomalib 2.x OneClassPostProcessor buffers and the config keys they come from */
static const char *const pp_buf[6] = {"_image_threshold", "_pixel_threshold", "image_min",
                                      "image_max",        "pixel_min",        "pixel_max"};
static const char *const pp_cfg[6] = {"image_threshold",  "pixel_threshold",  "pred_scores_min",
                                      "pred_scores_max",  "anomaly_maps_min", "anomaly_maps_max"};

static const char *bare(const char *name)
{
    return strncmp(name, "model.", 6) == 0 ? name + 6 : name;
}

/* BatchNorm buffers anomalib's state_dict has and a uflow file may lack (they do nothing). */
static int needs_nbt(const uf_st *st, const char *name, char *nbt, size_t cap)
{
    size_t l = strlen(name), sl = strlen(".running_mean");
    if (l <= sl || strcmp(name + l - sl, ".running_mean") != 0 || l - sl + 32 > cap)
        return 0;
    snprintf(nbt, cap, "%.*s.num_batches_tracked", (int)(l - sl), name);
    char pref[640];
    snprintf(pref, sizeof pref, "model.%s", nbt);
    return !uf_st_find(st, nbt) && !uf_st_find(st, pref);
}

static uf_status write_all(const uf_model_info *info, const uf_st *st, const uf_export_opts *o,
                           const char *out_path, uf_error *err)
{
    json_t *cfg = json_loads(info->config_json, 0, NULL);
    uf_pw w;
    uf_pw_init(&w);
    uf_pw_dict_begin(&w, 0);
    uf_pw_str(&w, "state_dict");
    uf_pw_dict_begin(&w, 1);
    char key[32], name[640], nbt[600];
    size_t k = 0, n = uf_st_count(st);
    for (size_t i = 0; i < n; i++) {
        const uf_st_tensor *t = uf_st_at(st, i);
        snprintf(name, sizeof name, "model.%s", bare(t->name));
        snprintf(key, sizeof key, "%zu", k++);
        uf_pw_str(&w, name);
        uf_pw_tensor(&w, key, t->dtype, t->ndim, t->shape);
        if (needs_nbt(st, bare(t->name), nbt, sizeof nbt)) {
            snprintf(name, sizeof name, "model.%s", nbt);
            snprintf(key, sizeof key, "%zu", k++);
            uf_pw_str(&w, name);
            uf_pw_tensor(&w, key, UF_DT_I64, 0, NULL);
        }
    }
    size_t first_pp = k;
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "post_processor.%s", pp_buf[i]);
        snprintf(key, sizeof key, "%zu", k++);
        uf_pw_str(&w, name);
        uf_pw_tensor(&w, key, UF_DT_F32, 0, NULL);
    }
    uf_pw_items_end(&w);
    uf_pw_str(&w, "hyper_parameters");
    uf_pw_dict_begin(&w, 0);
    uf_pw_str(&w, "backbone");
    uf_pw_str(&w, info->backbone_name);
    uf_pw_str(&w, "flow_steps");
    uf_pw_int(&w, info->flow_steps);
    uf_pw_str(&w, "affine_clamp");
    uf_pw_float(&w, json_number_value(json_object_get(cfg, "affine_clamp")));
    uf_pw_str(&w, "affine_subnet_channels_ratio");
    uf_pw_float(&w, info->affine_subnet_channels_ratio);
    uf_pw_str(&w, "permute_soft");
    uf_pw_bool(&w, info->permute_soft);
    uf_pw_items_end(&w);
    uf_pw_str(&w, "pytorch-lightning_version");
    uf_pw_str(&w, o && o->lightning_version ? o->lightning_version : "2.4.0");
    uf_pw_str(&w, "epoch");
    uf_pw_int(&w, 0);
    uf_pw_str(&w, "global_step");
    uf_pw_int(&w, 0);
    uf_pw_str(&w, "uflow_config");
    uf_pw_str(&w, info->config_json);
    uf_pw_items_end(&w);
    uf_pw_finish(&w);
    if (w.oom || !cfg) {
        json_decref(cfg);
        uf_pw_free(&w);
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    }

    uf_zw z;
    uf_status s = uf_zw_open(&z, out_path, err);
    if (s == UF_OK)
        s = uf_zw_add(&z, ARCHIVE "data.pkl", w.b, w.n, err);
    if (s == UF_OK)
        s = uf_zw_add(&z, ARCHIVE "byteorder", "little", 6, err);
    k = 0;
    static const int64_t zero64 = 0;
    for (size_t i = 0; s == UF_OK && i < n; i++) {
        const uf_st_tensor *t = uf_st_at(st, i);
        snprintf(name, sizeof name, ARCHIVE "data/%zu", k++);
        s = uf_zw_add(&z, name, t->data, uf_st_nbytes(t), err);
        if (s == UF_OK && needs_nbt(st, bare(t->name), nbt, sizeof nbt)) {
            snprintf(name, sizeof name, ARCHIVE "data/%zu", k++);
            s = uf_zw_add(&z, name, &zero64, 8, err);
        }
    }
    for (int i = 0; s == UF_OK && i < 6; i++) {
        json_t *v = json_object_get(cfg, pp_cfg[i]);
        float f = json_is_number(v) ? (float)json_number_value(v) : NAN;
        snprintf(name, sizeof name, ARCHIVE "data/%zu", first_pp + (size_t)i);
        s = uf_zw_add(&z, name, &f, 4, err);
    }
    if (s == UF_OK)
        s = uf_zw_add(&z, ARCHIVE "version", "3\n", 2, err);
    if (s == UF_OK)
        s = uf_zw_commit(&z, err);
    else
        uf_zw_abort(&z);
    json_decref(cfg);
    uf_pw_free(&w);
    return s;
}

uf_status uf_export_checkpoint(const char *model_path, const char *out_path,
                               const uf_export_opts *o, uf_error *err)
{
    uf_model *m = NULL;
    uf_st *st = NULL;
    uf_status s = uf_model_load(model_path, &m, err);
    if (s == UF_OK)
        s = uf_st_open(model_path, &st, err);
    if (s == UF_OK)
        s = write_all(uf_model_get_info(m), st, o, out_path, err);
    uf_st_close(st);
    uf_model_free(m);
    return s;
}
