/* flow.c — anomalib's U-shaped normalizing flow (spec §3): stages of AllInOneBlocks from
 * the coarsest scale to the finest, with split / pixel-shuffle / concat between them. */
#include "core/internal.h"
#include "models/model.h"
#include "core/pool.h"
#include "kernels/vmath.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Channels of the s0 part of a split: (V // 8) * 4 (FrEIA Split with section sizes). */
static int split_a(int V) { return (V / 8) * 4; }

static uf_status load_block(uf_model *m, int idx, int C, int h, int w, int step, uf_flow_block *b,
                            uf_error *err)
{
    const uf_model_info *info = &m->info;
    b->C = C;
    b->C2 = C / 2;
    b->C1 = C - b->C2;
    b->M = (int)(b->C1 * info->affine_subnet_channels_ratio);
    b->k = step % 2 == 0 ? 3 : 1;
    if (b->M < 1 || b->C2 < 1)
        return uf_err(err, UF_ERR_CONFIG,
                      "config: flow block %d with %d channels and subnet ratio %g has no hidden channels",
                      idx, C, info->affine_subnet_channels_ratio);
    char name[128];
    int k = b->k;
#define NAME(suffix) (snprintf(name, sizeof name, "flow.module_list.%d.%s", idx, suffix), name)
    int64_t sc[4] = {1, C, 1, 1}, pm[4] = {C, C, 1, 1};
    int64_t w0[4] = {b->M, b->C1, k, k}, b0[1] = {b->M}, w2[4] = {2 * b->C2, b->M, k, k},
            b2[1] = {2 * b->C2};
    const float *gs = uf_model_f32(m, NAME("global_scale"), 4, sc, err);
    if (!gs || !(b->offset = uf_model_f32(m, NAME("global_offset"), 4, sc, err)))
        return err ? err->status : UF_ERR_TENSOR;
    const float *wp = uf_model_f32(m, NAME("w_perm"), 4, pm, err);
    if (!wp || uf_model_expect(m, NAME("w_perm_inv"), 4, pm, err) != UF_OK)
        return err ? err->status : UF_ERR_TENSOR;
    const float *sw0 = uf_model_f32(m, NAME("subnet.0.weight"), 4, w0, err);
    const float *sb0 = sw0 ? uf_model_f32(m, NAME("subnet.0.bias"), 1, b0, err) : NULL;
    const float *sw2 = sb0 ? uf_model_f32(m, NAME("subnet.2.weight"), 4, w2, err) : NULL;
    const float *sb2 = sw2 ? uf_model_f32(m, NAME("subnet.2.bias"), 1, b2, err) : NULL;
    if (!sb2)
        return err ? err->status : UF_ERR_TENSOR;
    b->sub0 = (uf_conv){.cout = b->M, .cin = b->C1, .k = k, .stride = 1, .pad = k / 2, .groups = 1,
                        .w = sw0, .b = sb0};
    b->sub2 = (uf_conv){.cout = 2 * b->C2, .cin = b->M, .k = k, .stride = 1, .pad = k / 2,
                        .groups = 1, .w = sw2, .b = sb2};
    uf_status ps = uf_model_prepare_conv(m, &b->sub0, err);
    if (ps || (ps = uf_model_prepare_conv(m, &b->sub2, err)))
        return ps;

    /* ActNorm: scale = 0.1 * softplus_{beta=0.5}(g), float32 like torch (threshold 20). */
    b->scale = uf_model_alloc(m, sizeof(float) * C);
    if (!b->scale)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    double lsum = 0;
    for (int c = 0; c < C; c++) {
        float g = gs[c], bx = g * 0.5f;
        float sp = bx > 20.f ? g : log1pf(expf(bx)) / 0.5f;
        b->scale[c] = 0.1f * sp;
        if (!(b->scale[c] > 0.f) || !isfinite(b->scale[c]) || !isfinite(b->offset[c]))
            return uf_err(err, UF_ERR_TENSOR,
                          "tensor 'flow.module_list.%d.global_scale/offset': channel %d gives a "
                          "non-positive or non-finite scale", idx, c);
        lsum += (double)logf(b->scale[c]);
    }
    b->log_scale_sum = (float)lsum;
    (void)h;
    (void)w;

    if (info->permute_soft) {
        b->wsoft = wp;
        return UF_OK;
    }
    /* Hard permutation: every row one-hot and every column used once, else it is not the
     * model the config says. */
    b->perm = uf_model_alloc(m, sizeof(int32_t) * C);
    uint8_t *seen = uf_model_alloc(m, (size_t)C);
    if (!b->perm || !seen)
        return uf_err(err, UF_ERR_NOMEM, "out of memory");
    memset(seen, 0, (size_t)C);
    for (int i = 0; i < C; i++) {
        int one = -1, bad = 0;
        for (int j = 0; j < C; j++) {
            float v = wp[(size_t)i * C + j];
            if (v == 1.f && one < 0)
                one = j;
            else if (v != 0.f)
                bad = 1;
        }
        if (bad || one < 0 || seen[one])
            return uf_err(err, UF_ERR_TENSOR,
                          "tensor 'flow.module_list.%d.w_perm': row %d is not a permutation row "
                          "(permute_soft is false)", idx, i);
        seen[one] = 1;
        b->perm[i] = one;
    }
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

uf_status uf_flow_load(uf_model *m, uf_error *err)
{
    uf_model_info *info = &m->info;
    int K = info->n_scales, S = info->flow_steps, idx = 0;
    for (int k = K - 1; k >= 0; k--) {
        int h = info->height / info->feature_scale[k], w = info->width / info->feature_scale[k];
        int C = uf_flow_stage_channels(info, k);
        uf_flow_stage *st = &m->stage[k];
        st->C = C;
        st->h = h;
        st->w = w;
        st->blocks = uf_model_alloc(m, sizeof(uf_flow_block) * S);
        if (!st->blocks)
            return uf_err(err, UF_ERR_NOMEM, "out of memory");
        memset(st->blocks, 0, sizeof(uf_flow_block) * S);
        for (int j = 0; j < S; j++) {
            uf_status s = load_block(m, idx++, C, h, w, j, &st->blocks[j], err);
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
            /* Split (idx), IRevNetUpsampling (idx+1, a fixed pixel-shuffle kernel), Concat. */
            snprintf(name, sizeof name, "flow.module_list.%d.downsample_kernel", idx + 1);
            uf_status s = uf_model_expect(m, name, 4, shp, err);
            if (s)
                return s;
            idx += 3;
        }
    }
    return UF_OK;
}

/* Per-sample scratch of the largest block: hidden, a, col (per thread of nt), soft-permutation input. */
static void block_sizes(const uf_model *m, int nt, size_t *hid, size_t *a, size_t *col, size_t *v)
{
    *hid = *a = *col = *v = 0;
    for (int k = 0; k < m->info.n_scales; k++) {
        const uf_flow_stage *st = &m->stage[k];
        size_t hw = (size_t)st->h * st->w;
        for (int j = 0; j < m->info.flow_steps; j++) {
            const uf_flow_block *b = &st->blocks[j];
            *hid = UF_MAX(*hid, (size_t)b->M * hw);
            *a = UF_MAX(*a, (size_t)2 * b->C2 * hw);
            *col = UF_MAX(*col, uf_conv_col_floats_mt(&b->sub0, st->h, st->w, nt));
            *col = UF_MAX(*col, uf_conv_col_floats_mt(&b->sub2, st->h, st->w, nt));
            *v = UF_MAX(*v, (size_t)b->C * hw);
        }
    }
}

static size_t stage_max(const uf_model *m)
{
    size_t mx = 0;
    for (int k = 0; k < m->info.n_scales; k++)
        mx = UF_MAX(mx, (size_t)m->stage[k].C * m->stage[k].h * m->stage[k].w);
    return mx;
}

size_t uf_flow_scratch_floats(const uf_model *m, int B)
{
    size_t hid, a, col, v;
    block_sizes(m, 1, &hid, &a, &col, &v);
    return 2 * stage_max(m) * B + hid + a + (m->info.permute_soft ? v : 0) + B;
}

size_t uf_flow_col_floats(const uf_model *m, int nt)
{
    size_t hid, a, col, v;
    block_sizes(m, nt, &hid, &a, &col, &v);
    return col;
}

#define JSUM_MAX_THREADS 256

typedef struct couple_job {
    const uf_flow_block *blk;
    const float *xb;
    float *a, *ob, *v;
    size_t hw;
    float clamp;
    double jpart[JSUM_MAX_THREADS];
} couple_job;

/* a *= 0.1; J = clamp*tanh(a_s); y2 = x2*exp(J) + a_t, stored over a_s. */
static void couple_part(void *arg, int t, int nt)
{
    couple_job *j = arg;
    size_t n = (size_t)j->blk->C2 * j->hw, lo, hi;
    uf_split(n, 64, t, nt, &lo, &hi);
    j->jpart[t] = hi > lo ? uf_coupling(j->a + lo, j->a + n + lo, j->xb + (size_t)j->blk->C1 * j->hw + lo,
                                        hi - lo, j->clamp)
                          : 0.0;
}

/* ActNorm in the pre-permutation channel index, then the permutation (a gather). */
static void actnorm_part(void *arg, int t, int nt)
{
    couple_job *j = arg;
    const uf_flow_block *blk = j->blk;
    size_t lo, hi;
    uf_split((size_t)blk->C, 1, t, nt, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        int src_c = blk->perm ? blk->perm[i] : (int)i;
        const float *src = src_c < blk->C1 ? j->xb + (size_t)src_c * j->hw
                                           : j->a + (size_t)(src_c - blk->C1) * j->hw;
        float *dst = (blk->perm ? j->ob : j->v) + i * j->hw;
        uf_affine(dst, src, j->hw, blk->scale[src_c], blk->offset[src_c]);
    }
}

/* Soft permutation: out = W v, split by pixel columns. */
static void softperm_part(void *arg, int t, int nt)
{
    couple_job *j = arg;
    int C = j->blk->C;
    size_t lo, hi;
    uf_split(j->hw, 16, t, nt, &lo, &hi);
    if (hi > lo)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, (int)(hi - lo), C, 1.f,
                    j->blk->wsoft, C, j->v + lo, (int)j->hw, 0.f, j->ob + lo, (int)j->hw);
}

/* One AllInOneBlock on every sample: out = P(actnorm(concat(x1, x2*exp(J) + t))). */
void uf_flow_block_forward_ex(const uf_exec *ex, const uf_flow_block *blk, const float *x, int B,
                              int h, int w, float clamp, float *out, float *hid, float *a, float *v,
                              float *jac)
{
    size_t hw = (size_t)h * w;
    int C = blk->C;
    int nt = uf_pool_size(ex->pool);
    for (int b = 0; b < B; b++) {
        couple_job j = {.blk = blk, .xb = x + (size_t)b * C * hw, .a = a, .ob = out + (size_t)b * C * hw,
                        .v = v, .hw = hw, .clamp = clamp};
        uf_conv2d_ex(ex, &blk->sub0, j.xb, 1, h, w, hid, UF_ACT_RELU, 0);
        uf_conv2d_ex(ex, &blk->sub2, hid, 1, h, w, a, UF_ACT_NONE, 0);
        uf_pool_run(ex->pool, couple_part, &j);
        double jsum = 0;
        for (int t = 0; t < nt; t++)
            jsum += j.jpart[t];
        jac[b] = (float)jsum + (float)hw * blk->log_scale_sum;
        uf_pool_run(ex->pool, actnorm_part, &j);
        if (!blk->perm)
            uf_pool_run(ex->pool, softperm_part, &j);
    }
}

void uf_flow_block_forward(const uf_flow_block *blk, const float *x, int B, int h, int w, float clamp,
                           float *out, float *hid, float *a, float *col, float *v, float *jac)
{
    uf_exec ex = {.pool = NULL, .nt = 1, .col = col, .col_stride = 0};
    uf_flow_block_forward_ex(&ex, blk, x, B, h, w, clamp, out, hid, a, v, jac);
}

static void notify(const uf_flow_observer *obs, const char *node, int idx, const float *d,
                   size_t stride, int C, int h, int w, const float *jac)
{
    if (obs && obs->fn)
        obs->fn(obs->user, node, idx, d, stride, C, h, w, jac);
}

void uf_flow_run(const uf_model *m, const uf_exec *ex, float *const feats[UF_MAX_SCALES], int B,
                 float *scratch, float *const z[UF_MAX_SCALES], float *ljd, const uf_flow_observer *obs)
{
    const uf_model_info *info = &m->info;
    size_t hidn, an, coln, vn, smax = stage_max(m);
    block_sizes(m, 1, &hidn, &an, &coln, &vn);
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
        const uf_flow_stage *st = &m->stage[k];
        size_t hw = (size_t)st->h * st->w;
        for (int j = 0; j < S; j++) {
            float *out = (k == 0 && j == S - 1) ? z[0] : bufs[which];
            uf_flow_block_forward_ex(ex, &st->blocks[j], cur, B, st->h, st->w, clamp, out, hid, a, v, jac);
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
        const uf_flow_stage *nx = &m->stage[k - 1];
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
