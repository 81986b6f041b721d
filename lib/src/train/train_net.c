/* train_net.c — the trainer's layout of a loaded model: which tensors train (anomalib names),
 * where each sits in the flat parameter vector, and where every block keeps its activations
 * for the backward pass. */
#include "core/internal.h"
#include "train/train_net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uf_status add_tensor(tr_layout *L, const char *name, int ndim, const int64_t *shape,
                            size_t *off, uf_error *err)
{
    if (L->n == L->cap) {
        int cap = L->cap ? 2 * L->cap : 64;
        tr_tensor *t = realloc(L->t, sizeof *t * (size_t)cap);
        if (!t)
            return uf_err(err, UF_ERR_NOMEM, "out of memory");
        L->t = t;
        L->cap = cap;
    }
    tr_tensor *t = &L->t[L->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->n = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->n *= (size_t)shape[d];
    }
    t->off = L->np;
    L->np += t->n;
    *off = t->off;
    return UF_OK;
}

uf_status tr_layout_build(const uf_model *m, tr_net *n, tr_layout *L, uf_error *err)
{
    const uf_model_info *info = &m->info;
    memset(n, 0, sizeof *n);
    memset(L, 0, sizeof *L);
    n->m = m;
    n->K = info->n_scales;
    n->S = info->flow_steps;
    n->clamp = info->affine_clamp;
    int resnet = info->backbone != UF_BACKBONE_MCAIT;
    char name[128];
    uf_status s = UF_OK;
    size_t feat = 0;
    for (int k = 0; k < n->K; k++) {
        tr_stage *st = &n->st[k];
        const uf_flow_stage *ms = &m->flow.stage[k];
        st->C = ms->C;
        st->h = ms->h;
        st->w = ms->w;
        st->A = ms->split_a;
        st->fc = info->feature_channels[k];
        st->ln_w = st->ln_b = SIZE_MAX;
        n->feat_off[k] = feat;
        feat += (size_t)st->fc * st->h * st->w;
        if (resnet) {
            int64_t shp[3] = {st->fc, st->h, st->w};
            snprintf(name, sizeof name, "feature_extractor.feature_normalizations.%d.weight", k);
            if ((s = add_tensor(L, name, 3, shp, &st->ln_w, err)))
                return s;
            snprintf(name, sizeof name, "feature_extractor.feature_normalizations.%d.bias", k);
            if ((s = add_tensor(L, name, 3, shp, &st->ln_b, err)))
                return s;
        }
    }
    n->feat_floats = feat;
    /* Flow tensors in module order: coarsest stage first. */
    size_t act = 0;
    for (int k = n->K - 1; k >= 0; k--) {
        tr_stage *st = &n->st[k];
        size_t hw = (size_t)st->h * st->w;
        st->blocks = calloc((size_t)n->S, sizeof *st->blocks);
        if (!st->blocks)
            return uf_err(err, UF_ERR_NOMEM, "out of memory");
        for (int j = 0; j < n->S; j++) {
            const uf_flow_block *mb = &m->flow.stage[k].blocks[j];
            int idx = uf_flow_block_index(info, k, j);
            tr_block *b = &st->blocks[j];
            b->mb = mb;
            n->max_c = UF_MAX(n->max_c, mb->C);
            b->C = mb->C;
            b->C1 = mb->C1;
            b->C2 = mb->C2;
            b->M = mb->M;
            b->k = mb->k;
            b->perm = mb->perm;
            b->wsoft = mb->wsoft;
            int64_t sc[4] = {1, b->C, 1, 1}, w0[4] = {b->M, b->C1, b->k, b->k}, b0[1] = {b->M},
                    w2[4] = {2 * b->C2, b->M, b->k, b->k}, b2[1] = {2 * b->C2};
#define ADD(suffix, nd, shp, field)                                                   \
    do {                                                                              \
        uf_flow_param_name(name, sizeof name, idx, suffix);                           \
        if ((s = add_tensor(L, name, nd, shp, &b->field, err)))                       \
            return s;                                                                 \
    } while (0)
            ADD("global_scale", 4, sc, gs);
            ADD("global_offset", 4, sc, go);
            ADD("subnet.0.weight", 4, w0, w0);
            ADD("subnet.0.bias", 1, b0, b0);
            ADD("subnet.2.weight", 4, w2, w2);
            ADD("subnet.2.bias", 1, b2, b2);
#undef ADD
            b->ax = act;
            act += (size_t)b->C * hw;
            b->ah = act;
            act += (size_t)b->M * hw;
            b->ath = act;
            act += (size_t)b->C2 * hw;
            b->ae = act;
            act += (size_t)b->C2 * hw;
            b->ay2 = act;
            act += (size_t)b->C2 * hw;
        }
        st->aout = act;
        act += (size_t)st->C * hw;
    }
    n->act_floats = act;
    n->tmp_floats = tr_tmp_floats(n);
    return UF_OK;
}

void tr_layout_free(tr_net *n, tr_layout *L)
{
    for (int k = 0; k < UF_MAX_SCALES; k++) {
        free(n->st[k].blocks);
        n->st[k].blocks = NULL;
    }
    free(L->t);
    memset(L, 0, sizeof *L);
}

int tr_layout_find(const tr_layout *L, const char *name)
{
    for (int i = 0; i < L->n; i++)
        if (!strcmp(L->t[i].name, name))
            return i;
    return -1;
}
