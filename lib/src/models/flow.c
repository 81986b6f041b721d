/* flow.c — the U-shaped flow's graph (module indices, names, shapes), its loading, and the
 * stage walk from the coarsest scale to the finest with split / pixel-shuffle / concat
 * between stages (flow.h). The blocks themselves run in flow_block.c. */
#include "core/internal.h"
#include "models/flow.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Channels of the s0 part of a split: (V // 8) * 4 (FrEIA Split with section sizes). */
static int split_a(int V) { return (V / 8) * 4; }

int uf_flow_block_index(const uf_model_info *info, int k, int j)
{
    /* stages from scale K-1 down to 0; each has S blocks, then Split, IRevNetUpsampling and
     * Concat (all but the last stage) */
    return (info->n_scales - 1 - k) * (info->flow_steps + 3) + j;
}

int uf_flow_upsample_index(const uf_model_info *info, int k)
{
    return uf_flow_block_index(info, k, info->flow_steps) + 1;
}

const char *uf_flow_param_name(char *buf, size_t n, int idx, const char *suffix)
{
    snprintf(buf, n, "flow.module_list.%d.%s", idx, suffix);
    return buf;
}

uf_flow_block_shape uf_flow_block_shape_of(const uf_model_info *info, int k, int j)
{
    uf_flow_block_shape s;
    s.C = uf_flow_stage_channels(info, k);
    s.C2 = s.C / 2;
    s.C1 = s.C - s.C2;
    s.M = (int)(s.C1 * info->affine_subnet_channels_ratio);
    s.k = j % 2 == 0 ? 3 : 1;
    return s;
}

static uf_status load_block(uf_weights *m, const uf_model_info *info, int k, int step,
                            uf_flow_block *b, uf_error *err)
{
    int idx = uf_flow_block_index(info, k, step);
    uf_flow_block_shape sh = uf_flow_block_shape_of(info, k, step);
    b->C = sh.C;
    b->C1 = sh.C1;
    b->C2 = sh.C2;
    b->M = sh.M;
    b->k = sh.k;
    int C = b->C, kk = b->k;
    if (b->M < 1 || b->C2 < 1)
        return uf_err(err, UF_ERR_CONFIG,
                      "config: flow block %d with %d channels and subnet ratio %g has no hidden channels",
                      idx, C, info->affine_subnet_channels_ratio);
    char name[128];
#define NAME(suffix) uf_flow_param_name(name, sizeof name, idx, suffix)
    int64_t sc[4] = {1, C, 1, 1}, pm[4] = {C, C, 1, 1};
    int64_t w0[4] = {b->M, b->C1, kk, kk}, b0[1] = {b->M}, w2[4] = {2 * b->C2, b->M, kk, kk},
            b2[1] = {2 * b->C2};
    const float *gs = uf_weights_f32(m, NAME("global_scale"), 4, sc, err);
    if (!gs || !(b->offset = uf_weights_f32(m, NAME("global_offset"), 4, sc, err)))
        return err ? err->status : UF_ERR_TENSOR;
    const float *wp = uf_weights_f32(m, NAME("w_perm"), 4, pm, err);
    if (!wp || uf_weights_expect(m, NAME("w_perm_inv"), 4, pm, err) != UF_OK)
        return err ? err->status : UF_ERR_TENSOR;
    const float *sw0 = uf_weights_f32(m, NAME("subnet.0.weight"), 4, w0, err);
    const float *sb0 = sw0 ? uf_weights_f32(m, NAME("subnet.0.bias"), 1, b0, err) : NULL;
    const float *sw2 = sb0 ? uf_weights_f32(m, NAME("subnet.2.weight"), 4, w2, err) : NULL;
    const float *sb2 = sw2 ? uf_weights_f32(m, NAME("subnet.2.bias"), 1, b2, err) : NULL;
    if (!sb2)
        return err ? err->status : UF_ERR_TENSOR;
    b->sub0 = (uf_conv){.cout = b->M, .cin = b->C1, .k = kk, .stride = 1, .pad = kk / 2, .groups = 1,
                        .w = sw0, .b = sb0};
    b->sub2 = (uf_conv){.cout = 2 * b->C2, .cin = b->M, .k = kk, .stride = 1, .pad = kk / 2,
                        .groups = 1, .w = sw2, .b = sb2};
    uf_status ps = uf_weights_prepare_conv(m, &b->sub0, err);
    if (ps || (ps = uf_weights_prepare_conv(m, &b->sub2, err)))
        return ps;

    float *scale = uf_weights_alloc(m, sizeof(float) * C);
    if (!scale)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    int bad = uf_flow_actnorm_scale(gs, C, scale, &b->log_scale_sum);
    for (int c = 0; bad < 0 && c < C; c++)
        if (!isfinite(b->offset[c]))
            bad = c;
    if (bad >= 0)
        return uf_err(err, UF_ERR_TENSOR,
                      "tensor 'flow.module_list.%d.global_scale/offset': channel %d gives a "
                      "non-positive or non-finite scale", idx, bad);
    b->scale = scale;

    if (info->permute_soft) {
        b->wsoft = wp;
        return UF_OK;
    }
    /* Hard permutation: every row one-hot and every column used once, else it is not the
     * model the config says. */
    int32_t *perm = uf_weights_alloc(m, sizeof(int32_t) * C);
    uint8_t *seen = uf_weights_alloc(m, (size_t)C);
    if (!perm || !seen)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    memset(seen, 0, (size_t)C);
    for (int i = 0; i < C; i++) {
        int one = -1, badrow = 0;
        for (int j = 0; j < C; j++) {
            float v = wp[(size_t)i * C + j];
            if (v == 1.f && one < 0)
                one = j;
            else if (v != 0.f)
                badrow = 1;
        }
        if (badrow || one < 0 || seen[one])
            return uf_err(err, UF_ERR_TENSOR,
                          "tensor 'flow.module_list.%d.w_perm': row %d is not a permutation row "
                          "(permute_soft is false)", idx, i);
        seen[one] = 1;
        perm[i] = one;
    }
    b->perm = perm;
#undef NAME
    return UF_OK;
}

int uf_flow_stage_channels(const uf_model_info *info, int k)
{
    int K = info->n_scales, C = info->feature_channels[K - 1];
    for (int j = K - 2; j >= k; j--)
        C = info->feature_channels[j] + split_a(C) / 4;
    return C;
}

int uf_flow_split_a(int C) { return split_a(C); }

uf_status uf_flow_load(uf_weights *m, uf_model_info *info, uf_flow *f, uf_error *err)
{
    int K = info->n_scales, S = info->flow_steps;
    for (int k = K - 1; k >= 0; k--) {
        int h = info->height / info->feature_scale[k], w = info->width / info->feature_scale[k];
        int C = uf_flow_stage_channels(info, k);
        uf_flow_stage *st = &f->stage[k];
        st->C = C;
        st->h = h;
        st->w = w;
        st->blocks = uf_weights_alloc(m, sizeof(uf_flow_block) * S);
        if (!st->blocks)
            return uf_err(err, UF_ERR_NOMEM, "out of memory");
        memset(st->blocks, 0, sizeof(uf_flow_block) * S);
        for (int j = 0; j < S; j++) {
            uf_status s = load_block(m, info, k, j, &st->blocks[j], err);
            if (s)
                return s;
        }
        st->split_a = k > 0 ? split_a(C) : 0;
        if (k > 0 && (st->split_a < 4 || st->split_a >= C))
            return uf_err(err, UF_ERR_CONFIG, "flow stage with %d channels cannot be split", C);
        info->z_channels[k] = C - st->split_a;
        info->z_height[k] = h;
        info->z_width[k] = w;
        if (k > 0) {
            char name[96];
            int64_t shp[4] = {st->split_a, 1, 2, 2};
            /* a fixed pixel-shuffle kernel, checked and otherwise unused */
            uf_flow_param_name(name, sizeof name, uf_flow_upsample_index(info, k), "downsample_kernel");
            uf_status s = uf_weights_expect(m, name, 4, shp, err);
            if (s)
                return s;
        }
    }
    return UF_OK;
}

/* Per-sample scratch of the largest block: hidden, a, col (per thread of nt), soft-permutation input. */
static void block_sizes(const uf_flow *f, const uf_model_info *info, int nt, size_t *hid, size_t *a, size_t *col, size_t *v)
{
    *hid = *a = *col = *v = 0;
    for (int k = 0; k < info->n_scales; k++) {
        const uf_flow_stage *st = &f->stage[k];
        size_t hw = (size_t)st->h * st->w;
        for (int j = 0; j < info->flow_steps; j++) {
            const uf_flow_block *b = &st->blocks[j];
            *hid = UF_MAX(*hid, (size_t)b->M * hw);
            *a = UF_MAX(*a, (size_t)2 * b->C2 * hw);
            *col = UF_MAX(*col, uf_conv_col_floats_mt(&b->sub0, st->h, st->w, nt));
            *col = UF_MAX(*col, uf_conv_col_floats_mt(&b->sub2, st->h, st->w, nt));
            *v = UF_MAX(*v, (size_t)b->C * hw);
        }
    }
}

static size_t stage_max(const uf_flow *f, const uf_model_info *info)
{
    size_t mx = 0;
    for (int k = 0; k < info->n_scales; k++)
        mx = UF_MAX(mx, (size_t)f->stage[k].C * f->stage[k].h * f->stage[k].w);
    return mx;
}

size_t uf_flow_scratch_floats(const uf_flow *f, const uf_model_info *info, int B)
{
    size_t hid, a, col, v;
    block_sizes(f, info, 1, &hid, &a, &col, &v);
    return 2 * stage_max(f, info) * B + hid + a + (info->permute_soft ? v : 0) + B;
}

size_t uf_flow_col_floats(const uf_flow *f, const uf_model_info *info, int nt)
{
    size_t hid, a, col, v;
    block_sizes(f, info, nt, &hid, &a, &col, &v);
    return col;
}

static void notify(const uf_flow_observer *obs, const char *node, int idx, const float *d,
                   size_t stride, int C, int h, int w, const float *jac)
{
    if (obs && obs->fn)
        obs->fn(obs->user, node, idx, d, stride, C, h, w, jac);
}

void uf_flow_run(const uf_flow *f, const uf_model_info *info, const uf_exec *ex,
                 float *const feats[UF_MAX_SCALES], int B, float *scratch,
                 float *const z[UF_MAX_SCALES], float *ljd, const uf_flow_observer *obs)
{
    size_t hidn, an, coln, vn, smax = stage_max(f, info);
    block_sizes(f, info, 1, &hidn, &an, &coln, &vn);
    float *bufs[2] = {scratch, scratch + smax * B};
    float *hid = bufs[1] + smax * B, *a = hid + hidn, *v = a + an;
    float *jac = v + (info->permute_soft ? vn : 0);
    int K = info->n_scales, S = info->flow_steps;
    float clamp = info->affine_clamp;
    for (int b = 0; b < B; b++)
        ljd[b] = 0.f;
    const float *cur = feats[K - 1];
    int which = 0;
    char name[64];
    for (int k = K - 1; k >= 0; k--) {
        const uf_flow_stage *st = &f->stage[k];
        size_t hw = (size_t)st->h * st->w;
        for (int j = 0; j < S; j++) {
            float *out = (k == 0 && j == S - 1) ? z[0] : bufs[which];
            uf_flow_block_forward_ex(ex, &st->blocks[j], cur, B, st->h, st->w, clamp, out, hid, a, v, jac,
                                     NULL);
            for (int b = 0; b < B; b++)
                ljd[b] += jac[b];
            snprintf(name, sizeof name, "flow%d_step%d", st->w, j);
            notify(obs, name, 0, out, (size_t)st->C * hw, st->C, st->h, st->w, jac);
            cur = out;
            which ^= 1;
        }
        if (k == 0)
            break;
        /* Split: s0 = first a channels goes up, s1 = the rest is this scale's latent. */
        int A = st->split_a, zc = st->C - A;
        uf_copy_channels(cur, B, st->C, A, zc, hw, z[k]);
        snprintf(name, sizeof name, "split_%d", k + 1);
        notify(obs, name, 0, cur, (size_t)st->C * hw, A, st->h, st->w, NULL);
        notify(obs, name, 1, z[k], (size_t)zc * hw, zc, st->h, st->w, NULL);
        /* Up + concat: [feature of scale k-1, pixel_shuffle(s0)] into the free buffer. */
        const uf_flow_stage *nx = &f->stage[k - 1];
        size_t nhw = (size_t)nx->h * nx->w;
        int fc = info->feature_channels[k - 1];
        float *cat = bufs[which];
        for (int b = 0; b < B; b++) {
            float *cb = cat + (size_t)b * nx->C * nhw;
            memcpy(cb, feats[k - 1] + (size_t)b * fc * nhw, sizeof(float) * fc * nhw);
            uf_pixel_shuffle2(cur + (size_t)b * st->C * hw, 1, A, st->h, st->w, cb + (size_t)fc * nhw);
        }
        snprintf(name, sizeof name, "up_%d", k + 1);
        notify(obs, name, 0, cat + (size_t)fc * nhw, (size_t)nx->C * nhw, A / 4, nx->h, nx->w, NULL);
        snprintf(name, sizeof name, "cat_%d", k);
        notify(obs, name, 0, cat, (size_t)nx->C * nhw, nx->C, nx->h, nx->w, NULL);
        cur = cat;
        which ^= 1;
    }
}
