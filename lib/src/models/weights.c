/* weights.c — see weights.h. */
#include "models/weights.h"
#include "core/internal.h"
#include "io/st.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uf_status uf_weights_init(uf_weights *w, uf_st *st, uf_error *err)
{
    memset(w, 0, sizeof *w);
    w->st = st;
    /* anomalib's Lightning checkpoints prefix every key with "model." */
    w->prefix = "";
    for (size_t i = 0; i < uf_st_count(st); i++)
        if (strncmp(uf_st_at(st, i)->name, "model.", 6) == 0) {
            w->prefix = "model.";
            break;
        }
    w->used = calloc(uf_st_count(st) + 1, 1);
    if (!w->used)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    return UF_OK;
}

void uf_weights_free(uf_weights *w)
{
    for (size_t i = 0; i < w->n_owned; i++)
        uf_afree(w->owned[i]);
    free(w->owned);
    free(w->used);
    uf_st_close(w->st);
    memset(w, 0, sizeof *w);
}

void *uf_weights_alloc(uf_weights *w, size_t bytes)
{
    if (w->n_owned == w->cap_owned) {
        size_t cap = w->cap_owned ? 2 * w->cap_owned : 64;
        void **o = realloc(w->owned, cap * sizeof *o);
        if (!o)
            return NULL;
        w->owned = o;
        w->cap_owned = cap;
    }
    void *p = uf_aalloc(bytes);
    if (p)
        w->owned[w->n_owned++] = p;
    return p;
}

uf_status uf_weights_prepare_conv(uf_weights *w, uf_conv *c, uf_error *err)
{
    if (!uf_wino_applies(c))
        return UF_OK;
    float *U = uf_weights_alloc(w, sizeof(float) * 16 * c->cout * c->cin);
    if (!U)
        return uf_err(err, UF_ERR_NOMEM, "out of memory preparing Winograd weights");
    uf_wino_weights(c, U);
    c->wino = U;
    return UF_OK;
}

static const uf_st_tensor *lookup(uf_weights *w, const char *name, int ndim, const int64_t *shape,
                                  uf_error *err)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", w->prefix, name);
    const uf_st_tensor *t = uf_st_find(w->st, full);
    if (!t) {
        uf_err(err, UF_ERR_TENSOR, "missing tensor '%s' (the config implies it)", full);
        return NULL;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == shape[i];
    if (!ok) {
        char got[128], want[128];
        uf_st_shape_str(got, sizeof got, t->ndim, t->shape);
        uf_st_shape_str(want, sizeof want, ndim, shape);
        uf_err(err, UF_ERR_TENSOR, "tensor '%s' has shape %s but the config implies %s", full, got,
               want);
        return NULL;
    }
    w->used[t - uf_st_at(w->st, 0)] = 1;
    return t;
}

uf_status uf_weights_expect(uf_weights *w, const char *name, int ndim, const int64_t *shape, uf_error *err)
{
    return lookup(w, name, ndim, shape, err) ? UF_OK : UF_ERR_TENSOR;
}

/* A NaN or inf weight would silently poison every output: reject it at load. */
static const float *check_finite(uf_weights *w, const char *name, const float *x, uint64_t n, uf_error *err)
{
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            uf_err(err, UF_ERR_TENSOR, "tensor '%s%s' has a non-finite value at element %llu",
                   w->prefix, name, (unsigned long long)i);
            return NULL;
        }
    return x;
}

const float *uf_weights_f32(uf_weights *w, const char *name, int ndim, const int64_t *shape, uf_error *err)
{
    const uf_st_tensor *t = lookup(w, name, ndim, shape, err);
    if (!t)
        return NULL;
    if (t->dtype == UF_DT_F32 && ((uintptr_t)t->data & 3) == 0)
        return check_finite(w, name, t->data, t->numel, err); /* zero-copy: the mapping is the weight */
    if (t->dtype != UF_DT_F32 && t->dtype != UF_DT_F64 && t->dtype != UF_DT_F16 &&
        t->dtype != UF_DT_BF16) {
        uf_err(err, UF_ERR_TENSOR, "tensor '%s%s' has dtype %s; expected F32 (or F16/BF16/F64)",
               w->prefix, name, uf_dtype_name(t->dtype));
        return NULL;
    }
    float *out = uf_weights_alloc(w, sizeof(float) * (t->numel ? t->numel : 1));
    if (!out) {
        uf_err(err, UF_ERR_NOMEM, "out of memory converting '%s'", name);
        return NULL;
    }
    uf_st_to_f32(t->dtype, t->data, (size_t)t->numel, out);
    return check_finite(w, name, out, t->numel, err);
}

/* Everything the loaders did not take must be bookkeeping, not a parameter we would ignore. */
uf_status uf_weights_check_leftovers(const uf_weights *w, const char *model_kind, uf_error *err)
{
    for (size_t i = 0; i < uf_st_count(w->st); i++) {
        if (w->used[i])
            continue;
        const char *n = uf_st_at(w->st, i)->name;
        size_t l = strlen(n);
        static const char nbt[] = ".num_batches_tracked";
        if (l >= sizeof nbt - 1 && strcmp(n + l - (sizeof nbt - 1), nbt) == 0)
            continue;
        return uf_err(err, UF_ERR_TENSOR,
                      "unexpected tensor '%s': not part of a %s model with this config", n,
                      model_kind);
    }
    return UF_OK;
}
