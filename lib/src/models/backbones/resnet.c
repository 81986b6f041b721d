/* resnet.c — the ResNet feature extractors (timm resnet18 / wide_resnet50_2, stem..layer3,
 * eval-mode BatchNorm folded into the convolutions at load) followed by anomalib's feature
 * LayerNorms over C x h x w (docs/uflow-math.md "Backbones"); their trainable elementwise
 * affine is returned by rn_affine and applied by the context. */
#include "core/internal.h"
#include "models/backbones/backbone.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BN_EPS 1e-5f

typedef struct rn_block {
    uf_conv c1, c2, c3, down;
    int has_down;
} rn_block;

typedef struct rn {
    int bottleneck;
    uf_conv stem;
    int nblocks[3];
    rn_block *blocks[3];
    const float *ln_w[3], *ln_b[3]; /* feature LayerNorms, [C, h, w] each */
} rn;

/* Load conv `cname` and BatchNorm `bname` (both under the backbone prefix) and fold them. */
static uf_status load_conv_bn(uf_weights *m, const char *cname, const char *bname, int cout, int cin,
                              int k, int stride, uf_conv *c, uf_error *err)
{
    static const char *pre = "feature_extractor.feature_extractor.";
    char name[256];
    int64_t wshape[4] = {cout, cin, k, k}, cshape[1] = {cout};
    snprintf(name, sizeof name, "%s%s.weight", pre, cname);
    const float *w = uf_weights_f32(m, name, 4, wshape, err);
    if (!w)
        return err ? err->status : UF_ERR_TENSOR;
    const float *bn[4];
    static const char *bn_keys[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s%s.%s", pre, bname, bn_keys[i]);
        if (!(bn[i] = uf_weights_f32(m, name, 1, cshape, err)))
            return err ? err->status : UF_ERR_TENSOR;
    }
    for (int o = 0; o < cout; o++)
        if (!(bn[3][o] >= 0.f))
            return uf_err(err, UF_ERR_TENSOR, "tensor '%s%s.running_var': channel %d is negative",
                          pre, bname, o);
    /* num_batches_tracked is training bookkeeping; accept it when present. */
    snprintf(name, sizeof name, "%s%s.num_batches_tracked", pre, bname);
    (void)uf_weights_expect(m, name, 0, NULL, NULL);
    size_t per = (size_t)cin * k * k;
    float *wf = uf_weights_alloc(m, sizeof(float) * cout * per), *bf = uf_weights_alloc(m, sizeof(float) * cout);
    if (!wf || !bf)
        return uf_err(err, UF_ERR_NOMEM, "out of memory folding %s", cname);
    uf_bn_fold(cout, per, w, NULL, bn[0], bn[1], bn[2], bn[3], BN_EPS, wf, bf);
    *c = (uf_conv){.cout = cout, .cin = cin, .k = k, .stride = stride, .pad = k / 2, .groups = 1,
                   .w = wf, .b = bf};
    return uf_weights_prepare_conv(m, c, err);
}

static uf_status rn_load(uf_weights *m, uf_model_info *info, void **state, uf_error *err)
{
    rn *r = calloc(1, sizeof *r);
    if (!r)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    *state = r;
    r->bottleneck = info->backbone == UF_BACKBONE_WIDE_RESNET50_2;
    static const int n18[3] = {2, 2, 2}, n50[3] = {3, 4, 6};
    memcpy(r->nblocks, r->bottleneck ? n50 : n18, sizeof r->nblocks);
    uf_status s = load_conv_bn(m, "conv1", "bn1", 64, 3, 7, 2, &r->stem, err);
    if (s)
        return s;
    int inplanes = 64;
    for (int l = 0; l < 3; l++) {
        int planes = 64 << l;
        int width = r->bottleneck ? planes * 2 : planes;
        int outc = r->bottleneck ? planes * 4 : planes;
        r->blocks[l] = calloc((size_t)r->nblocks[l], sizeof(rn_block));
        if (!r->blocks[l])
            return uf_err(err, UF_ERR_NOMEM, "out of memory");
        for (int i = 0; i < r->nblocks[l]; i++) {
            rn_block *b = &r->blocks[l][i];
            int stride = (i == 0 && l > 0) ? 2 : 1;
            char cn[64], bn[64];
#define LOAD(field, cidx, co, ci, kk, st)                                                   \
    snprintf(cn, sizeof cn, "layer%d.%d.conv%d", l + 1, i, cidx);                          \
    snprintf(bn, sizeof bn, "layer%d.%d.bn%d", l + 1, i, cidx);                            \
    if ((s = load_conv_bn(m, cn, bn, co, ci, kk, st, &b->field, err)))                     \
        return s;
            if (r->bottleneck) {
                LOAD(c1, 1, width, inplanes, 1, 1)
                LOAD(c2, 2, width, width, 3, stride)
                LOAD(c3, 3, outc, width, 1, 1)
            } else {
                LOAD(c1, 1, width, inplanes, 3, stride)
                LOAD(c2, 2, outc, width, 3, 1)
            }
#undef LOAD
            b->has_down = stride != 1 || inplanes != outc;
            if (b->has_down) {
                snprintf(cn, sizeof cn, "layer%d.%d.downsample.0", l + 1, i);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", l + 1, i);
                if ((s = load_conv_bn(m, cn, bn, outc, inplanes, 1, stride, &b->down, err)))
                    return s;
            }
            inplanes = outc;
        }
        /* The trainable feature LayerNorm of this scale, shape [C, H/s, W/s]. */
        int sc = info->feature_scale[l];
        int64_t shp[3] = {outc, info->height / sc, info->width / sc};
        char name[96];
        snprintf(name, sizeof name, "feature_extractor.feature_normalizations.%d.weight", l);
        if (!(r->ln_w[l] = uf_weights_f32(m, name, 3, shp, err)))
            return err ? err->status : UF_ERR_TENSOR;
        snprintf(name, sizeof name, "feature_extractor.feature_normalizations.%d.bias", l);
        if (!(r->ln_b[l] = uf_weights_f32(m, name, 3, shp, err)))
            return err ? err->status : UF_ERR_TENSOR;
    }
    return UF_OK;
}

static void rn_free(void *state)
{
    rn *r = state;
    if (!r)
        return;
    for (int l = 0; l < 3; l++)
        free(r->blocks[l]);
    free(r);
}

/* Largest activation (floats per image) and largest im2col matrix over the network. */
static void rn_sizes(const rn *r, int H, int W, size_t *act, size_t *col, int nt)
{
    int h = uf_conv_out(&r->stem, H), w = uf_conv_out(&r->stem, W);
    *act = (size_t)64 * h * w;
    *col = uf_conv_col_floats_mt(&r->stem, H, W, nt);
    h = (h + 2 - 3) / 2 + 1;
    w = (w + 2 - 3) / 2 + 1;
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < r->nblocks[l]; i++) {
            const rn_block *b = &r->blocks[l][i];
            const uf_conv *cs[4] = {&b->c1, &b->c2, r->bottleneck ? &b->c3 : NULL, b->has_down ? &b->down : NULL};
            int hh = h, ww = w;
            for (int j = 0; j < 4; j++) {
                if (!cs[j])
                    continue;
                int ih = j == 3 ? h : hh, iw = j == 3 ? w : ww;
                size_t c = uf_conv_col_floats_mt(cs[j], ih, iw, nt);
                *col = UF_MAX(*col, c);
                int oh = uf_conv_out(cs[j], ih), ow = uf_conv_out(cs[j], iw);
                *act = UF_MAX(*act, (size_t)cs[j]->cout * oh * ow);
                if (j < 3) {
                    hh = oh;
                    ww = ow;
                }
            }
            h = hh;
            w = ww;
        }
}

static size_t rn_scratch_floats(const void *state, const uf_model_info *info, int B)
{
    size_t act, col;
    rn_sizes(state, info->height, info->width, &act, &col, 1);
    return 4 * act * B;
}

static size_t rn_col_floats(const void *state, const uf_model_info *info, int nt)
{
    size_t act, col;
    rn_sizes(state, info->height, info->width, &act, &col, nt);
    return col;
}

static void rn_run(const void *state, const uf_model_info *info, const uf_exec *ex, const float *in,
                   int B, float *scratch, float *const feats[UF_MAX_SCALES])
{
    const rn *r = state;
    size_t act, colsz;
    rn_sizes(r, info->height, info->width, &act, &colsz, 1);
    float *x = scratch, *t1 = x + act * B, *t2 = t1 + act * B, *o = t2 + act * B;
    int H = info->height, W = info->width;
    int h = uf_conv_out(&r->stem, H), w = uf_conv_out(&r->stem, W);
    uf_conv2d_ex(ex, &r->stem, in, B, H, W, t1, UF_ACT_RELU, 0);
    uf_maxpool2d_ex(ex, t1, B, 64, h, w, 3, 2, 1, x);
    h = (h - 1) / 2 + 1;
    w = (w - 1) / 2 + 1;
    for (int l = 0; l < 3; l++) {
        int c = 0;
        for (int i = 0; i < r->nblocks[l]; i++) {
            const rn_block *b = &r->blocks[l][i];
            const uf_conv *last = r->bottleneck ? &b->c3 : &b->c2;
            const uf_conv *strided = r->bottleneck ? &b->c2 : &b->c1;
            int oh = uf_conv_out(strided, h), ow = uf_conv_out(strided, w);
            size_t on = (size_t)last->cout * oh * ow;
            /* The shortcut goes into o first; the last conv then accumulates onto it. */
            if (b->has_down)
                uf_conv2d_ex(ex, &b->down, x, B, h, w, o, UF_ACT_NONE, 0);
            else
                uf_copy_ex(ex, o, x, on * B);
            if (r->bottleneck) {
                uf_conv2d_ex(ex, &b->c1, x, B, h, w, t1, UF_ACT_RELU, 0);
                uf_conv2d_ex(ex, &b->c2, t1, B, h, w, t2, UF_ACT_RELU, 0);
                uf_conv2d_ex(ex, &b->c3, t2, B, oh, ow, o, UF_ACT_RELU, 1);
            } else {
                uf_conv2d_ex(ex, &b->c1, x, B, h, w, t1, UF_ACT_RELU, 0);
                uf_conv2d_ex(ex, &b->c2, t1, B, oh, ow, o, UF_ACT_RELU, 1);
            }
            float *tmp = x;
            x = o;
            o = tmp;
            h = oh;
            w = ow;
            c = last->cout;
        }
        /* The raw layer output stays in x for the next layer; the feature is its LayerNorm
         * (the affine comes later, see rn_affine). */
        uf_layernorm_chw_ex(ex, x, B, (size_t)c * h * w, NULL, NULL, 1e-5f, feats[l]);
    }
}

static void rn_affine(const void *state, int k, const float **weight, const float **bias)
{
    const rn *r = state;
    *weight = k >= 0 && k < 3 ? r->ln_w[k] : NULL;
    *bias = k >= 0 && k < 3 ? r->ln_b[k] : NULL;
}

const uf_backbone_ops uf_backbone_resnet = {
    .name = "resnet",
    .load = rn_load,
    .free = rn_free,
    .scratch_floats = rn_scratch_floats,
    .col_floats = rn_col_floats,
    .run = rn_run,
    .affine = rn_affine,
};
