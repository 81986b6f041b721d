/* model.c — loading a model file: map, parse the config, let the backbone and the flow take
 * their tensors (each checked against the shape the config implies), reject leftovers. */
#include "models/backbones/cait.h"
#include "core/internal.h"
#include "models/model.h"

#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uf_backbone_ops *backbone_ops(uf_backbone_kind k)
{
    switch (k) {
    case UF_BACKBONE_RESNET18:
    case UF_BACKBONE_WIDE_RESNET50_2:
        return &uf_backbone_resnet;
    case UF_BACKBONE_MCAIT:
        return &uf_backbone_mcait;
    }
    return NULL;
}

void *uf_model_alloc(uf_model *m, size_t bytes)
{
    if (m->n_owned == m->cap_owned) {
        size_t cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **o = realloc(m->owned, cap * sizeof *o);
        if (!o)
            return NULL;
        m->owned = o;
        m->cap_owned = cap;
    }
    void *p = uf_aalloc(bytes);
    if (p)
        m->owned[m->n_owned++] = p;
    return p;
}

uf_status uf_model_prepare_conv(uf_model *m, uf_conv *c, uf_error *err)
{
    if (!uf_wino_applies(c))
        return UF_OK;
    float *U = uf_model_alloc(m, sizeof(float) * 16 * c->cout * c->cin);
    if (!U)
        return uf_err(err, UF_ERR_NOMEM, "out of memory preparing Winograd weights");
    uf_wino_weights(c, U);
    c->wino = U;
    return UF_OK;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

static const uf_st_tensor *lookup(uf_model *m, const char *name, int ndim, const int64_t *shape,
                                  uf_error *err)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", m->prefix, name);
    const uf_st_tensor *t = uf_st_find(m->st, full);
    if (!t) {
        uf_err(err, UF_ERR_TENSOR, "missing tensor '%s' (the config implies it)", full);
        return NULL;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == shape[i];
    if (!ok) {
        char got[128], want[128];
        shape_str(got, sizeof got, t->ndim, t->shape);
        shape_str(want, sizeof want, ndim, shape);
        uf_err(err, UF_ERR_TENSOR, "tensor '%s' has shape %s but the config implies %s", full, got,
               want);
        return NULL;
    }
    m->used[t - uf_st_at(m->st, 0)] = 1;
    return t;
}

uf_status uf_model_expect(uf_model *m, const char *name, int ndim, const int64_t *shape, uf_error *err)
{
    return lookup(m, name, ndim, shape, err) ? UF_OK : UF_ERR_TENSOR;
}

static float half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, f = h & 1023u, bits;
    if (e == 0) {
        float v = ldexpf((float)f, -24);
        return s ? -v : v;
    }
    if (e == 31)
        bits = s | 0x7f800000u | (f << 13);
    else
        bits = s | ((e + 112) << 23) | (f << 13);
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

/* A NaN or inf weight would silently poison every output: reject it at load. */
static const float *check_finite(uf_model *m, const char *name, const float *x, uint64_t n, uf_error *err)
{
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            uf_err(err, UF_ERR_TENSOR, "tensor '%s%s' has a non-finite value at element %llu",
                   m->prefix, name, (unsigned long long)i);
            return NULL;
        }
    return x;
}

const float *uf_model_f32(uf_model *m, const char *name, int ndim, const int64_t *shape, uf_error *err)
{
    const uf_st_tensor *t = lookup(m, name, ndim, shape, err);
    if (!t)
        return NULL;
    if (t->dtype == UF_DT_F32 && ((uintptr_t)t->data & 3) == 0)
        return check_finite(m, name, t->data, t->numel, err); /* zero-copy: the mapping is the weight */
    if (t->dtype != UF_DT_F32 && t->dtype != UF_DT_F64 && t->dtype != UF_DT_F16 &&
        t->dtype != UF_DT_BF16) {
        uf_err(err, UF_ERR_TENSOR, "tensor '%s%s' has dtype %s; expected F32 (or F16/BF16/F64)",
               m->prefix, name, uf_dtype_name(t->dtype));
        return NULL;
    }
    float *out = uf_model_alloc(m, sizeof(float) * (t->numel ? t->numel : 1));
    if (!out) {
        uf_err(err, UF_ERR_NOMEM, "out of memory converting '%s'", name);
        return NULL;
    }
    const uint8_t *src = t->data;
    for (uint64_t i = 0; i < t->numel; i++) {
        switch (t->dtype) {
        case UF_DT_F32: memcpy(&out[i], src + 4 * i, 4); break;
        case UF_DT_F64: {
            double d;
            memcpy(&d, src + 8 * i, 8);
            out[i] = (float)d;
            break;
        }
        case UF_DT_F16: {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = half_to_float(h);
            break;
        }
        default: { /* BF16 */
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
        }
        }
    }
    return check_finite(m, name, out, t->numel, err);
}

/* Everything the loaders did not take must be bookkeeping, not a parameter we would ignore. */
static uf_status check_leftovers(uf_model *m, uf_error *err)
{
    for (size_t i = 0; i < uf_st_count(m->st); i++) {
        if (m->used[i])
            continue;
        const char *n = uf_st_at(m->st, i)->name;
        size_t l = strlen(n);
        static const char nbt[] = ".num_batches_tracked";
        if (l >= sizeof nbt - 1 && strcmp(n + l - (sizeof nbt - 1), nbt) == 0)
            continue;
        return uf_err(err, UF_ERR_TENSOR,
                      "unexpected tensor '%s': not part of a %s model with this config", n,
                      m->info.backbone_name);
    }
    return UF_OK;
}

static uf_status load(uf_model *m, const char *path, uf_error *err)
{
    uf_status s = uf_st_open(path, &m->st, err);
    if (s)
        return s;
    const char *cfg = uf_st_meta(m->st, "config");
    if ((s = uf_config_parse(cfg, &m->info, &m->name, &m->description, err)))
        return s;
    if (!(m->config_json = strdup(cfg)))
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    m->info.config_json = m->config_json;
    m->info.name = m->name;
    m->info.description = m->description;
    /* anomalib's Lightning checkpoints prefix every key with "model." */
    m->prefix = "";
    for (size_t i = 0; i < uf_st_count(m->st); i++)
        if (strncmp(uf_st_at(m->st, i)->name, "model.", 6) == 0) {
            m->prefix = "model.";
            break;
        }
    m->used = calloc(uf_st_count(m->st) + 1, 1);
    if (!m->used)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    m->bb_ops = backbone_ops(m->info.backbone);
    if (!m->bb_ops)
        return uf_err(err, UF_ERR_UNSUPPORTED, "backbone '%s' is not implemented yet",
                      m->info.backbone_name);
    if ((s = m->bb_ops->load(m, &m->bb, err)) || (s = uf_flow_load(m, err)) ||
        (s = check_leftovers(m, err)))
        return s;
    size_t len;
    const void *bytes = uf_st_bytes(m->st, &len);
    gchar *hex = g_compute_checksum_for_data(G_CHECKSUM_SHA256, bytes, len);
    if (!hex)
        return uf_err(err, UF_ERR_NOMEM, "out of memory hashing the model");
    snprintf(m->info.version, sizeof m->info.version, "%.16s", hex);
    g_free(hex);
    m->info.file_bytes = len;
    for (size_t i = 0; i < uf_st_count(m->st); i++)
        m->info.n_params += uf_st_at(m->st, i)->numel;
    return UF_OK;
}

uf_status uf_model_load(const char *path, uf_model **out, uf_error *err)
{
    if (!out || !path)
        return uf_err(err, UF_ERR_ARG, "uf_model_load: NULL argument");
    *out = NULL;
    uf_model *m = calloc(1, sizeof *m);
    if (!m)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    uf_status s = load(m, path, err);
    if (s) {
        if (m->st && err && strncmp(err->msg, path, strlen(path)) != 0)
            uf_err_prefix(err, "%s", path);
        uf_model_free(m);
        return s;
    }
    *out = m;
    return UF_OK;
}

void uf_model_free(uf_model *m)
{
    if (!m)
        return;
    if (m->bb_ops && m->bb)
        m->bb_ops->free(m->bb);
    for (size_t i = 0; i < m->n_owned; i++)
        uf_afree(m->owned[i]);
    free(m->owned);
    free(m->used);
    free(m->config_json);
    free(m->name);
    free(m->description);
    uf_st_close(m->st);
    free(m);
}

const uf_model_info *uf_model_get_info(const uf_model *m) { return &m->info; }
