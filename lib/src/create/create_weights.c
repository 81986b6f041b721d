/* create_weights.c — backbone tensors for uf_model_create_random from a safetensors file of
 * torchvision/timm weights (tools/export_backbone.py; docs/model-format.md "Backbone
 * weights"): key mapping, shape/dtype checks in the planning pass, F16/BF16/F64 -> F32
 * streaming in the writing pass, the architecture check and the provenance record. */
#include "create/create_weights.h"
#include "core/internal.h"
#include "io/st.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char RN_PRE[] = "feature_extractor.feature_extractor.", FE_PRE[] = "feature_extractor.";
#define RN_PRE_LEN (sizeof RN_PRE - 1)
#define FE_PRE_LEN (sizeof FE_PRE - 1)

/* Backbone tensors (ResNet stem..layer3, the two CaiTs), not the feature LayerNorms. */
static int backbone_name(const char *name)
{
    return strncmp(name, RN_PRE, RN_PRE_LEN) == 0 ||
           strncmp(name, "feature_extractor.extractor", 27) == 0;
}

struct uf_cw_source {
    uf_st *st;
    char *path;
};

int uf_cw_source_has(const uf_cw_source *s, const char *name) { return s && backbone_name(name); }

void uf_cw_source_close(uf_cw_source *s)
{
    if (!s)
        return;
    uf_st_close(s->st);
    free(s->path);
    free(s);
}

/* torchvision/timm key of an anomalib backbone name: "conv1.weight" for resnets,
 * "extractor1.<timm key>" for mcait. */
static const char *bare_key(const char *name)
{
    return strncmp(name, RN_PRE, RN_PRE_LEN) == 0 ? name + RN_PRE_LEN : name + FE_PRE_LEN;
}

/* The file's tensor for an anomalib backbone name: its bare key, or the anomalib key itself
 * (with or without Lightning's "model." prefix). */
static const uf_st_tensor *src_find(const uf_st *st, const char *name)
{
    const uf_st_tensor *t = uf_st_find(st, bare_key(name));
    if (!t)
        t = uf_st_find(st, name);
    if (!t) {
        char full[256];
        snprintf(full, sizeof full, "model.%s", name);
        t = uf_st_find(st, full);
    }
    return t;
}

uf_status uf_cw_source_find(const uf_cw_source *s, const char *name, uf_dtype dt, int ndim,
                            const int64_t *shape, const uf_st_tensor **out, uf_error *err)
{
    const uf_st_tensor *t = *out = src_find(s->st, name);
    const char *bare = bare_key(name);
    if (dt == UF_DT_I64) { /* BatchNorm num_batches_tracked: unused; 0 when absent */
        if (t && !((t->dtype == UF_DT_I64 || t->dtype == UF_DT_I32) && t->numel == 1))
            return uf_err(err, UF_ERR_TENSOR,
                          "backbone weights '%s': tensor '%s' has dtype %s and %llu elements; "
                          "expected one I64 (num_batches_tracked)",
                          s->path, t->name, uf_dtype_name(t->dtype), (unsigned long long)t->numel);
        return UF_OK;
    }
    if (!t)
        return uf_err(err, UF_ERR_TENSOR, "backbone weights '%s': missing tensor '%s' (anomalib: '%s')",
                      s->path, bare, name);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char got[128], want[128];
        uf_st_shape_str(got, sizeof got, t->ndim, t->shape);
        uf_st_shape_str(want, sizeof want, ndim, shape);
        return uf_err(err, UF_ERR_TENSOR,
                      "backbone weights '%s': tensor '%s' has shape %s; the model needs %s",
                      s->path, t->name, got, want);
    }
    if (t->dtype != UF_DT_F32 && t->dtype != UF_DT_F16 && t->dtype != UF_DT_BF16 && t->dtype != UF_DT_F64)
        return uf_err(err, UF_ERR_TENSOR,
                      "backbone weights '%s': tensor '%s' has dtype %s; expected F32 (or F16/BF16/F64)",
                      s->path, t->name, uf_dtype_name(t->dtype));
    return UF_OK;
}

uf_status uf_cw_source_stream(const uf_cw_source *s, const uf_st_tensor *t, uf_dtype dt,
                              uint64_t bytes, const char *name, uf_afile *out, uf_error *err)
{
    if (dt == UF_DT_I64) {
        int64_t v = 0;
        if (t && t->dtype == UF_DT_I64)
            memcpy(&v, t->data, 8);
        else if (t) {
            int32_t v32;
            memcpy(&v32, t->data, 4);
            v = v32;
        }
        uf_afile_write(out, &v, 8);
        return UF_OK;
    }
    const size_t chunk = (size_t)1 << 16, n = bytes / 4, es = uf_dtype_size(t->dtype);
    float *x = malloc(sizeof(float) * UF_MIN(n, chunk) + 1);
    if (!x)
        return uf_err(err, UF_ERR_NOMEM, "out of memory copying '%s'", name);
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t m = UF_MIN(chunk, n - i0);
        uf_st_to_f32(t->dtype, (const uint8_t *)t->data + i0 * es, m, x);
        for (size_t i = 0; i < m; i++)
            if (!isfinite(x[i])) {
                free(x);
                return uf_err(err, UF_ERR_TENSOR,
                              "backbone weights '%s': tensor '%s' has a non-finite value at element %zu",
                              s->path, t->name, i0 + i);
            }
        uf_afile_write(out, x, 4 * m);
    }
    free(x);
    return UF_OK;
}

/* The key of a backbone weights file without an anomalib prefix ("model.", then
 * "feature_extractor.feature_extractor." or "feature_extractor."). */
static const char *strip_prefixes(const char *k)
{
    if (strncmp(k, "model.", 6) == 0)
        k += 6;
    if (strncmp(k, RN_PRE, RN_PRE_LEN) == 0)
        return k + RN_PRE_LEN;
    if (strncmp(k, FE_PRE, FE_PRE_LEN) == 0)
        return k + FE_PRE_LEN;
    return k;
}

/* Which architecture a weights file holds, from its keys: "mcait", "resnet18",
 * "wide_resnet50_2", another ResNet ("resnet34", "resnet50", "another ResNet"), or NULL
 * (cannot tell). */
static const char *guess_arch(const uf_st *st)
{
    int blocks[3] = {0, 0, 0}, cait = 0, bottleneck = 0, resnet = 0;
    int64_t width = 0;
    for (size_t i = 0; i < uf_st_count(st); i++) {
        const uf_st_tensor *t = uf_st_at(st, i);
        const char *k = strip_prefixes(t->name);
        int l, b, n = 0;
        if (strncmp(k, "extractor1.", 11) == 0 || strncmp(k, "extractor2.", 11) == 0)
            cait = 1;
        else if (strcmp(k, "conv1.weight") == 0)
            resnet = 1;
        else if (sscanf(k, "layer%d.%d.%n", &l, &b, &n) == 2 && n > 0 && l >= 1 && l <= 3 && b >= 0 &&
                 b < 1000) {
            resnet = 1;
            blocks[l - 1] = UF_MAX(blocks[l - 1], b + 1);
            if (l == 1 && b == 0 && strcmp(k + n, "conv3.weight") == 0)
                bottleneck = 1;
            if (l == 1 && b == 0 && strcmp(k + n, "conv1.weight") == 0 && t->ndim == 4)
                width = t->shape[0];
        }
    }
    if (cait)
        return resnet ? NULL : "mcait";
    if (!resnet)
        return NULL;
    if (bottleneck)
        return blocks[0] == 3 && blocks[1] == 4 && blocks[2] == 6
                   ? (width == 128 ? "wide_resnet50_2" : width == 64 ? "resnet50" : "another ResNet")
                   : "another ResNet";
    if (blocks[0] == 2 && blocks[1] == 2 && blocks[2] == 2)
        return "resnet18";
    return blocks[0] == 3 && blocks[1] == 4 && blocks[2] == 6 ? "resnet34" : "another ResNet";
}

uf_status uf_cw_source_open(const char *path, const char *backbone, uf_cw_source **out,
                            json_t **prov, uf_error *err)
{
    *out = NULL;
    *prov = NULL;
    uf_cw_source *sr = calloc(1, sizeof *sr);
    if (!sr || !(sr->path = strdup(path))) {
        free(sr);
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    uf_status s = uf_st_open(path, &sr->st, err);
    if (s != UF_OK) {
        uf_err_prefix(err, "backbone weights"); /* the message names the file */
        uf_cw_source_close(sr);
        return s;
    }
    const char *kind = uf_st_meta(sr->st, "uflow_backbone");
    const char *guess = guess_arch(sr->st);
    size_t len;
    const void *bytes = uf_st_bytes(sr->st, &len);
    gchar *hex = NULL;
    if (kind && strcmp(kind, backbone) != 0)
        s = uf_err(err, UF_ERR_CONFIG,
                   "backbone weights '%s' are for %s (its __metadata__ uflow_backbone) but the "
                   "model's backbone is %s",
                   path, kind, backbone);
    else if (guess && strcmp(guess, backbone) != 0)
        s = uf_err(err, UF_ERR_CONFIG,
                   "backbone weights '%s' look like %s%s%s (from their keys) but the model's "
                   "backbone is %s",
                   path, strcmp(guess, "another ResNet") ? "" : "the weights of ", guess,
                   strcmp(guess, "another ResNet") ? " weights" : "", backbone);
    else if (!(hex = g_compute_checksum_for_data(G_CHECKSUM_SHA256, bytes, len)))
        s = uf_err(err, UF_ERR_NOMEM, "out of memory hashing '%s'", path);
    if (s == UF_OK) {
        const char *base = strrchr(path, '/');
        const char *source = uf_st_meta(sr->st, "source");
        *prov = json_pack("{s:s,s:s,s:s}", "file", base ? base + 1 : path, "sha256", hex,
                          "source", source ? source : "unknown");
        if (!*prov)
            s = uf_err(err, UF_ERR_NOMEM, "out of memory");
    }
    g_free(hex);
    if (s != UF_OK) {
        uf_cw_source_close(sr);
        return s;
    }
    *out = sr;
    return UF_OK;
}
