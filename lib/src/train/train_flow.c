/* train_flow.c — the flow's forward pass keeping the activations its backward pass needs,
 * and that backward pass, one image at a time. The forward of every block is the inference
 * forward (models/flow_block.c, uf_flow_block_forward_ex) over the current parameters; only
 * the stage walk that places activations, and the gradients, live here. */
#include "core/internal.h"
#include "kernels/kernels.h"
#include "train/train_flow.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Temporaries of one thread, carved from tmp in this order (sizes from tr_net). */
typedef struct tr_tmp {
    float *col, *gcol, *r, *gv, *gr, *gh, *ga, *gb, *v, *scale;
} tr_tmp;

static size_t max_col(const tr_net *n, size_t *cmax, size_t *r2, size_t *mh)
{
    size_t col = 1;
    *cmax = *r2 = *mh = 1;
    for (int k = 0; k < n->K; k++) {
        const tr_stage *st = &n->st[k];
        size_t hw = (size_t)st->h * st->w;
        for (int j = 0; j < n->S; j++) {
            const tr_block *b = &st->blocks[j];
            size_t kk = (size_t)b->k * b->k;
            col = UF_MAX(col, UF_MAX((size_t)b->C1, (size_t)b->M) * kk * hw);
            *r2 = UF_MAX(*r2, (size_t)2 * b->C2 * hw);
            *mh = UF_MAX(*mh, (size_t)b->M * hw);
        }
        *cmax = UF_MAX(*cmax, (size_t)st->C * hw);
    }
    return col;
}

size_t tr_tmp_floats(const tr_net *n)
{
    size_t cm, r2, mh, col = max_col(n, &cm, &r2, &mh);
    return 2 * col + 2 * r2 + mh + 4 * cm + (size_t)n->max_c + 10 * 16;
}

static tr_tmp carve(const tr_net *n, float *tmp)
{
    size_t cm, r2, mh, col = max_col(n, &cm, &r2, &mh);
    tr_tmp t;
    float *p = tmp;
#define TAKE(f, sz) (t.f = p, p += ((sz) + 15) & ~(size_t)15)
    TAKE(col, col);
    TAKE(gcol, col);
    TAKE(r, r2);
    TAKE(gr, r2);
    TAKE(gh, mh);
    TAKE(gv, cm);
    TAKE(ga, cm);
    TAKE(gb, cm);
    TAKE(v, cm);
    TAKE(scale, (size_t)n->max_c);
#undef TAKE
    return t;
}

static float *block_out(const tr_stage *st, int j, int S, float *act)
{
    return act + (j + 1 < S ? st->blocks[j + 1].ax : st->aout);
}

/* The block over the current parameters p (ActNorm scale into t->scale). */
static void bind(const tr_block *b, const float *p, const tr_tmp *t, uf_flow_block *v)
{
    uf_flow_block_bind(v, b->mb, p + b->gs, p + b->go, p + b->w0, p + b->b0, p + b->w2, p + b->b2,
                       t->scale);
}

static float block_fwd(const tr_net *n, const tr_block *b, int h, int w, const float *p, float *act,
                       float *out, const tr_tmp *t)
{
    uf_flow_block v;
    bind(b, p, t, &v);
    uf_flow_saved sv = {.th = act + b->ath, .e = act + b->ae, .y2 = act + b->ay2};
    uf_exec ex = {.pool = NULL, .nt = 1, .col = t->col, .col_stride = 0};
    float jac;
    uf_flow_block_forward_ex(&ex, &v, act + b->ax, 1, h, w, n->clamp, out, act + b->ah, t->r, t->v,
                             &jac, &sv);
    return jac;
}

/* gout: gradient of the block output; writes the gradient of its input into gx. gl = d loss
 * / d log-det. Adds parameter gradients to g. */
static void block_bwd(const tr_net *n, const tr_block *b, int h, int w, const float *p,
                      const float *act, const float *gout, float *gx, float gl, float *g,
                      const tr_tmp *t)
{
    size_t hw = (size_t)h * w, n2 = (size_t)b->C2 * hw;
    const float *x = act + b->ax, *x2 = x + (size_t)b->C1 * hw;
    const float *hid = act + b->ah, *th = act + b->ath, *e = act + b->ae, *y2 = act + b->ay2;
    float *gv = t->gv;
    uf_flow_block v;
    bind(b, p, t, &v);
    if (b->perm) {
        for (int i = 0; i < b->C; i++)
            memcpy(gv + (size_t)b->perm[i] * hw, gout + (size_t)i * hw, sizeof(float) * hw);
    } else {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, b->C, (int)hw, b->C, 1.f, b->wsoft,
                    b->C, gout, (int)hw, 0.f, gv, (int)hw);
    }
    /* ActNorm: d/d offset = sum gv; d/d scale = sum gv*y + gl*hw/scale; scale' = 0.1*sigmoid(g/2). */
    for (int c = 0; c < b->C; c++) {
        const float *yc = c < b->C1 ? x + (size_t)c * hw : y2 + (size_t)(c - b->C1) * hw;
        float *gc = gv + (size_t)c * hw;
        double s0 = 0, s1 = 0;
        for (size_t q = 0; q < hw; q++) {
            s0 += gc[q];
            s1 += (double)gc[q] * yc[q];
        }
        float gsv = p[b->gs + c], sc = v.scale[c], bx = 0.5f * gsv;
        float dsp = bx > 20.f ? 1.f : 1.f / (1.f + expf(-bx));
        g[b->go + c] += (float)s0;
        g[b->gs + c] += (float)(s1 + (double)gl * (double)hw / sc) * 0.1f * dsp;
        float *dst = c < b->C1 ? gx + (size_t)c * hw : gc;
        for (size_t q = 0; q < hw; q++)
            dst[q] = gc[q] * sc;
    }
    /* Coupling: y2 = x2*exp(J) + 0.1*r_t, J = clamp*tanh(0.1*r_s). */
    const float *gy2 = gv + (size_t)b->C1 * hw;
    float *gx2 = gx + (size_t)b->C1 * hw, clamp = n->clamp;
    for (size_t i = 0; i < n2; i++) {
        float ee = e[i], gJ = gy2[i] * x2[i] * ee + gl;
        gx2[i] = gy2[i] * ee;
        t->gr[i] = 0.1f * (gJ * clamp * (1.f - th[i] * th[i]));
        t->gr[n2 + i] = 0.1f * gy2[i];
    }
    uf_conv2d_backward(&v.sub2, hid, h, w, t->gr, g + b->w2, g + b->b2, t->gh, 0, t->col, t->gcol);
    for (size_t i = 0; i < (size_t)b->M * hw; i++)
        t->gh[i] = hid[i] > 0.f ? t->gh[i] : 0.f;
    uf_conv2d_backward(&v.sub0, x, h, w, t->gh, g + b->w0, g + b->b0, gx, 1, t->col, t->gcol);
}

/* The stage input's feature part: the LayerNorm affine on the cached x-hat (resnets) or the
 * features themselves (mcait). */
static void feature_in(const tr_stage *st, const float *p, const float *xh, float *dst)
{
    size_t nf = (size_t)st->fc * st->h * st->w;
    if (st->ln_w == SIZE_MAX) {
        memcpy(dst, xh, sizeof(float) * nf);
        return;
    }
    const float *lw = p + st->ln_w, *lb = p + st->ln_b;
    for (size_t i = 0; i < nf; i++)
        dst[i] = xh[i] * lw[i] + lb[i];
}

void tr_forward(const tr_net *n, const float *p, const float *xhat, float *act, float *tmp,
                double *zz, double *ljd)
{
    tr_tmp t = carve(n, tmp);
    float lj = 0.f;
    double z2 = 0;
    for (int k = n->K - 1; k >= 0; k--) {
        const tr_stage *st = &n->st[k];
        size_t hw = (size_t)st->h * st->w;
        float *in = act + st->blocks[0].ax;
        feature_in(st, p, xhat + n->feat_off[k], in);
        if (k < n->K - 1) {
            const tr_stage *up = &n->st[k + 1];
            uf_pixel_shuffle2(act + up->aout, 1, up->A, up->h, up->w, in + (size_t)st->fc * hw);
        }
        for (int j = 0; j < n->S; j++)
            lj += block_fwd(n, &st->blocks[j], st->h, st->w, p, act, block_out(st, j, n->S, act), &t);
        const float *z = act + st->aout + (size_t)st->A * hw;
        for (size_t i = 0; i < (size_t)(st->C - st->A) * hw; i++)
            z2 += (double)z[i] * z[i];
    }
    *zz = 0.5 * z2;
    *ljd = lj;
}

void tr_backward(const tr_net *n, const float *p, const float *xhat, const float *act, float *tmp,
                 float cz, float cl, float *g)
{
    tr_tmp t = carve(n, tmp);
    float gl = -cl, *gout = t.ga, *gin = t.gb;
    /* Finest stage output is all latent. */
    {
        const tr_stage *st = &n->st[0];
        const float *z = act + st->aout;
        for (size_t i = 0; i < (size_t)st->C * st->h * st->w; i++)
            gout[i] = cz * z[i];
    }
    for (int k = 0; k < n->K; k++) {
        const tr_stage *st = &n->st[k];
        size_t hw = (size_t)st->h * st->w;
        for (int j = n->S - 1; j >= 0; j--) {
            block_bwd(n, &st->blocks[j], st->h, st->w, p, act, gout, gin, gl, g, &t);
            float *sw = gout;
            gout = gin;
            gin = sw;
        }
        /* gout now holds the gradient of the stage input [features, upsampled]. */
        if (st->ln_w != SIZE_MAX) {
            const float *xh = xhat + n->feat_off[k];
            float *gw = g + st->ln_w, *gbias = g + st->ln_b;
            for (size_t i = 0; i < (size_t)st->fc * hw; i++) {
                gw[i] += gout[i] * xh[i];
                gbias[i] += gout[i];
            }
        }
        if (k + 1 < n->K) {
            const tr_stage *up = &n->st[k + 1];
            size_t uhw = (size_t)up->h * up->w;
            uf_pixel_unshuffle2(gout + (size_t)st->fc * hw, up->A, up->h, up->w, gin);
            const float *z = act + up->aout + (size_t)up->A * uhw;
            float *gz = gin + (size_t)up->A * uhw;
            for (size_t i = 0; i < (size_t)(up->C - up->A) * uhw; i++)
                gz[i] = cz * z[i];
            float *sw = gout;
            gout = gin;
            gin = sw;
        }
    }
}
