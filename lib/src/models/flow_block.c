/* flow_block.c — one AllInOneBlock forward (docs/uflow-math.md "Flow blocks"), the single
 * implementation inference and training share:
 *   a = subnet(x1) = conv2(relu(conv1(x1)));  J = clamp * tanh(0.1 a_s);
 *   y2 = x2 * exp(J) + 0.1 a_t;  v = concat(x1, y2) * scale + offset;  out = P v;
 *   log-det = sum J + h*w * sum log(scale). */
#include "core/internal.h"
#include "core/pool.h"
#include "kernels/vmath.h"
#include "models/flow.h"

#include <cblas.h>
#include <math.h>

int uf_flow_actnorm_scale(const float *global_scale, int C, float *scale, float *log_sum)
{
    double lsum = 0;
    for (int c = 0; c < C; c++) {
        float g = global_scale[c], bx = g * 0.5f;
        float sp = bx > 20.f ? g : log1pf(expf(bx)) / 0.5f;
        scale[c] = 0.1f * sp;
        if (!(scale[c] > 0.f) || !isfinite(scale[c]))
            return c;
        lsum += (double)logf(scale[c]);
    }
    *log_sum = (float)lsum;
    return -1;
}

void uf_flow_block_bind(uf_flow_block *b, const uf_flow_block *like, const float *global_scale,
                        const float *global_offset, const float *w0, const float *b0,
                        const float *w2, const float *b2, float *scale)
{
    *b = *like;
    b->sub0.w = w0;
    b->sub0.b = b0;
    b->sub0.wino = NULL;
    b->sub2.w = w2;
    b->sub2.b = b2;
    b->sub2.wino = NULL;
    b->offset = global_offset;
    b->log_scale_sum = 0.f;
    /* A non-positive scale cannot come out of softplus; an overflow to inf shows in the loss. */
    (void)uf_flow_actnorm_scale(global_scale, b->C, scale, &b->log_scale_sum);
    b->scale = scale;
}

#define JSUM_MAX_THREADS 256

typedef struct block_job {
    const uf_flow_block *blk;
    const float *xb;       /* this sample's input */
    float *a;              /* subnet output [a_s; a_t]; y2 replaces a_s unless saved */
    const float *y2;       /* where y2 is after the coupling */
    float *ob, *v;
    size_t hw;
    float clamp;
    double jpart[JSUM_MAX_THREADS];
} block_job;

static void couple_part(void *arg, int t, int nt)
{
    block_job *j = arg;
    size_t n = (size_t)j->blk->C2 * j->hw, lo, hi;
    uf_split(n, 64, t, nt, &lo, &hi);
    j->jpart[t] = hi > lo ? uf_coupling(j->a + lo, j->a + n + lo,
                                        j->xb + (size_t)j->blk->C1 * j->hw + lo, hi - lo, j->clamp)
                          : 0.0;
}

/* ActNorm in the pre-permutation channel index, then the permutation (a gather). */
static void actnorm_part(void *arg, int t, int nt)
{
    block_job *j = arg;
    const uf_flow_block *blk = j->blk;
    size_t lo, hi;
    uf_split((size_t)blk->C, 1, t, nt, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        int src_c = blk->perm ? blk->perm[i] : (int)i;
        const float *src = src_c < blk->C1 ? j->xb + (size_t)src_c * j->hw
                                           : j->y2 + (size_t)(src_c - blk->C1) * j->hw;
        float *dst = (blk->perm ? j->ob : j->v) + i * j->hw;
        uf_affine(dst, src, j->hw, blk->scale[src_c], blk->offset[src_c]);
    }
}

/* Soft permutation: out = W v, split by pixel columns. */
static void softperm_part(void *arg, int t, int nt)
{
    block_job *j = arg;
    int C = j->blk->C;
    size_t lo, hi;
    uf_split(j->hw, 16, t, nt, &lo, &hi);
    if (hi > lo)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, (int)(hi - lo), C, 1.f,
                    j->blk->wsoft, C, j->v + lo, (int)j->hw, 0.f, j->ob + lo, (int)j->hw);
}

void uf_flow_block_forward_ex(const uf_exec *ex, const uf_flow_block *blk, const float *x, int B,
                              int h, int w, float clamp, float *out, float *hid, float *a, float *v,
                              float *jac, const uf_flow_saved *save)
{
    size_t hw = (size_t)h * w, n2 = (size_t)blk->C2 * hw;
    int C = blk->C, nt = uf_pool_size(ex->pool);
    for (int b = 0; b < B; b++) {
        block_job j = {.blk = blk, .xb = x + (size_t)b * C * hw, .a = a, .y2 = a,
                       .ob = out + (size_t)b * C * hw, .v = v, .hw = hw, .clamp = clamp};
        uf_conv2d_ex(ex, &blk->sub0, j.xb, 1, h, w, hid, UF_ACT_RELU, 0);
        uf_conv2d_ex(ex, &blk->sub2, hid, 1, h, w, a, UF_ACT_NONE, 0);
        double jsum = 0;
        if (save) {
            jsum = uf_coupling_save(a, a + n2, j.xb + (size_t)blk->C1 * hw, n2, clamp, save->y2,
                                    save->th, save->e);
            j.y2 = save->y2;
        } else {
            uf_pool_run(ex->pool, couple_part, &j);
            for (int t = 0; t < nt; t++)
                jsum += j.jpart[t];
        }
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
    uf_flow_block_forward_ex(&ex, blk, x, B, h, w, clamp, out, hid, a, v, jac, NULL);
}
