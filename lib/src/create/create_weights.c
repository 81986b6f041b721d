/* create_weights.c — backbone tensors for uf_model_create_random from a safetensors file of
 * torchvision/timm weights (tools/export_backbone.py; docs/model-format.md "Backbone
 * weights"): key mapping, shape/dtype checks in the planning pass, F16/BF16/F64 -> F32
 * streaming in the writing pass, the architecture check and the provenance record. */
#include "create/create.h"

#include <errno.h>
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

int uf_cw_taken(const writer *w, const char *name) { return w->src && backbone_name(name); }

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

static void shape_str(char *s, size_t n, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(s, n, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(s + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n)
        snprintf(s + o, n - o, "]");
}

/* Planning pass: find and check the file's tensor for entry e. */
void uf_cw_src_plan(writer *w, entry *e)
{
    e->from_file = 1;
    const uf_st_tensor *t = e->from = src_find(w->src, e->name);
    const char *bare = bare_key(e->name);
    if (e->dt == UF_DT_I64) { /* BatchNorm num_batches_tracked: unused; 0 when absent */
        if (t && !((t->dtype == UF_DT_I64 || t->dtype == UF_DT_I32) && t->numel == 1))
            w->st = uf_err(w->err, UF_ERR_TENSOR,
                           "backbone weights '%s': tensor '%s' has dtype %s and %llu elements; "
                           "expected one I64 (num_batches_tracked)",
                           w->src_path, t->name, uf_dtype_name(t->dtype), (unsigned long long)t->numel);
        return;
    }
    if (!t) {
        w->st = uf_err(w->err, UF_ERR_TENSOR, "backbone weights '%s': missing tensor '%s' (anomalib: '%s')",
                       w->src_path, bare, e->name);
        return;
    }
    int same = t->ndim == e->ndim;
    for (int i = 0; same && i < e->ndim; i++)
        same = t->shape[i] == e->shape[i];
    if (!same) {
        char got[128], want[128];
        shape_str(got, sizeof got, t->ndim, t->shape);
        shape_str(want, sizeof want, e->ndim, e->shape);
        w->st = uf_err(w->err, UF_ERR_TENSOR,
                       "backbone weights '%s': tensor '%s' has shape %s; the model needs %s",
                       w->src_path, t->name, got, want);
        return;
    }
    if (t->dtype != UF_DT_F32 && t->dtype != UF_DT_F16 && t->dtype != UF_DT_BF16 && t->dtype != UF_DT_F64)
        w->st = uf_err(w->err, UF_ERR_TENSOR,
                       "backbone weights '%s': tensor '%s' has dtype %s; expected F32 (or F16/BF16/F64)",
                       w->src_path, t->name, uf_dtype_name(t->dtype));
}

static float half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, f = h & 1023u, bits;
    if (e == 0) {
        float v = ldexpf((float)f, -24);
        return s ? -v : v;
    }
    bits = e == 31 ? s | 0x7f800000u | (f << 13) : s | ((e + 112) << 23) | (f << 13);
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

static void to_f32(uf_dtype dt, const uint8_t *src, size_t n, float *x)
{
    for (size_t i = 0; i < n; i++) {
        if (dt == UF_DT_F32)
            memcpy(&x[i], src + 4 * i, 4);
        else if (dt == UF_DT_F64) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            x[i] = (float)d;
        } else {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            if (dt == UF_DT_F16)
                x[i] = half_to_float(h);
            else
                memcpy(&x[i], &bits, 4); /* BF16 */
        }
    }
}

/* Writing pass: stream entry e from the file, as F32 (I64 for num_batches_tracked). */
void uf_cw_src_write(writer *w, const entry *e)
{
    const uf_st_tensor *t = e->from;
    if (e->dt == UF_DT_I64) {
        int64_t v = 0;
        if (t && t->dtype == UF_DT_I64)
            memcpy(&v, t->data, 8);
        else if (t) {
            int32_t v32;
            memcpy(&v32, t->data, 4);
            v = v32;
        }
        if (fwrite(&v, 8, 1, w->f) != 1)
            w->st = uf_err(w->err, UF_ERR_IO, "cannot write tensor '%s': %s", e->name, strerror(errno));
        return;
    }
    const size_t chunk = (size_t)1 << 16, n = e->bytes / 4, es = uf_dtype_size(t->dtype);
    float *x = uf_cw_scratch(w, UF_MIN(n, chunk));
    if (!x)
        return;
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t m = UF_MIN(chunk, n - i0);
        to_f32(t->dtype, (const uint8_t *)t->data + i0 * es, m, x);
        for (size_t i = 0; i < m; i++)
            if (!isfinite(x[i])) {
                w->st = uf_err(w->err, UF_ERR_TENSOR,
                               "backbone weights '%s': tensor '%s' has a non-finite value at element %zu",
                               w->src_path, t->name, i0 + i);
                return;
            }
        if (fwrite(x, 4, m, w->f) != m) {
            w->st = uf_err(w->err, UF_ERR_IO, "cannot write tensor '%s': %s", e->name, strerror(errno));
            return;
        }
    }
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

/* Open and check o->backbone_weights; provenance for the config. */
uf_status uf_cw_open_weights(writer *w, const uf_create_opts *o, json_t **prov, uf_error *err)
{
    if (o->formula_backbone)
        return uf_err(err, UF_ERR_ARG, "backbone_weights and formula_backbone exclude each other");
    uf_status s = uf_st_open(o->backbone_weights, &w->src, err);
    if (s != UF_OK) {
        uf_err_prefix(err, "backbone weights"); /* the message names the file */
        return s;
    }
    w->src_path = o->backbone_weights;
    const char *kind = uf_st_meta(w->src, "uflow_backbone");
    if (kind && strcmp(kind, o->backbone) != 0)
        return uf_err(err, UF_ERR_CONFIG,
                      "backbone weights '%s' are for %s (its __metadata__ uflow_backbone) but the "
                      "model's backbone is %s",
                      w->src_path, kind, o->backbone);
    const char *guess = guess_arch(w->src);
    if (guess && strcmp(guess, o->backbone) != 0)
        return uf_err(err, UF_ERR_CONFIG,
                      "backbone weights '%s' look like %s%s%s (from their keys) but the model's "
                      "backbone is %s",
                      w->src_path, strcmp(guess, "another ResNet") ? "" : "the weights of ", guess,
                      strcmp(guess, "another ResNet") ? " weights" : "", o->backbone);
    size_t len;
    const void *bytes = uf_st_bytes(w->src, &len);
    gchar *hex = g_compute_checksum_for_data(G_CHECKSUM_SHA256, bytes, len);
    if (!hex)
        return uf_err(err, UF_ERR_NOMEM, "out of memory hashing '%s'", w->src_path);
    const char *base = strrchr(w->src_path, '/');
    const char *source = uf_st_meta(w->src, "source");
    *prov = json_pack("{s:s,s:s,s:s}", "file", base ? base + 1 : w->src_path, "sha256", hex,
                      "source", source ? source : "unknown");
    g_free(hex);
    return *prov ? UF_OK : uf_err(err, UF_ERR_NOMEM, "out of memory");
}
