/* nfa_util.h — fixture access and NFA plans shared by the NFA tests. */
#ifndef UF_TEST_NFA_UTIL_H
#define UF_TEST_NFA_UTIL_H

#include "util.h"

#include "core/internal.h"
#include "models/nfa.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* F64/U8 fixture tensors may be unaligned inside the file: copy them out. */
static inline void *fixture_copy(const uf_st *st, const char *name, uf_dtype dt, size_t *n)
{
    const uf_st_tensor *t = uf_st_find(st, name);
    if (!t || t->dtype != dt)
        fail_msg("fixture tensor '%s' missing or not %s", name, uf_dtype_name(dt));
    void *p = malloc(uf_st_nbytes(t) ? uf_st_nbytes(t) : 1);
    assert_non_null(p);
    memcpy(p, t->data, uf_st_nbytes(t));
    if (n)
        *n = t->numel;
    return p;
}

static inline double *f64(const uf_st *st, const char *name, size_t *n)
{
    return fixture_copy(st, name, UF_DT_F64, n);
}

static inline uint8_t *u8(const uf_st *st, const char *name, size_t *n)
{
    return fixture_copy(st, name, UF_DT_U8, n);
}

/* A uf_model_info with just what the NFA reads. */
static inline uf_model_info make_info(int K, const int *C, const int *h, const int *w, int H, int W)
{
    uf_model_info info;
    memset(&info, 0, sizeof info);
    info.n_scales = K;
    info.height = H;
    info.width = W;
    for (int k = 0; k < K; k++) {
        info.z_channels[k] = C[k];
        info.z_height[k] = h[k];
        info.z_width[k] = w[k];
    }
    return info;
}

/* The resnet18 @256 latent shapes of the fixtures. */
static inline uf_model_info fixture_info(const uf_st *st, const char *prefix)
{
    int C[3], h[3], w[3];
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "%sz.%d", prefix, k);
        const uf_st_tensor *t = uf_st_find(st, name);
        if (!t || t->ndim != 4)
            fail_msg("fixture has no 4-d %s", name);
        C[k] = (int)t->shape[1];
        h[k] = (int)t->shape[2];
        w[k] = (int)t->shape[3];
    }
    return make_info(3, C, h, w, 256, 256);
}

static inline uf_nfa *plan(const uf_model_info *info, int hp, int max_batch)
{
    uf_nfa_opts o = uf_nfa_opts_default();
    o.high_precision = hp;
    uf_nfa *n = NULL;
    uf_error err = {0};
    if (uf_nfa_init(info, &o, max_batch, &n, &err) != UF_OK)
        fail_msg("uf_nfa_init: %s", err.msg);
    return n;
}

#endif
