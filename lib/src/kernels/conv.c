/* conv.c — convolution as im2col + SGEMM (OpenBLAS, single-threaded per call), split over a
 * context's threads by output pixels, and its backward pass (training) beside it.
 * 1x1 stride-1 convolutions skip im2col: the input already is the column matrix. */
#include "core/internal.h"
#include "kernels/kernels.h"
#include "core/pool.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Output pixels are split in multiples of this (keeps GEMM panels and rows aligned). */
#define COL_ALIGN 16

static int is_pointwise(const uf_conv *c) { return c->k == 1 && c->stride == 1 && c->pad == 0; }

size_t uf_conv_col_floats(const uf_conv *c, int h, int w)
{
    if (c->wino)
        return uf_conv_col_floats_mt(c, h, w, 1);
    if (is_pointwise(c))
        return 0;
    return (size_t)(c->cin / c->groups) * c->k * c->k * uf_conv_out(c, h) * uf_conv_out(c, w);
}

size_t uf_conv_col_floats_mt(const uf_conv *c, int h, int w, int nt)
{
    if (c->wino) {
        size_t rows = (size_t)(h + 1) / 2;
        return uf_wino_scratch_floats(c, w, (rows + (size_t)nt - 1) / (size_t)nt);
    }
    if (is_pointwise(c))
        return 0;
    size_t n = (size_t)uf_conv_out(c, h) * uf_conv_out(c, w);
    size_t units = (n + COL_ALIGN - 1) / COL_ALIGN;
    size_t share = ((units + (size_t)nt - 1) / (size_t)nt) * COL_ALIGN;
    return (size_t)(c->cin / c->groups) * c->k * c->k * (share < n ? share : n);
}

/* Columns [n0, n1) of the im2col matrix: col[r][j - n0], r = (ci*k + ky)*k + kx,
 * j = oy*wo + ox, value in[ci][oy*s - p + ky][ox*s - p + kx] or 0 outside the image. */
static void im2col_range(const float *in, int cin, int h, int w, int k, int s, int p, int wo,
                         size_t n0, size_t n1, float *col)
{
    size_t len = n1 - n0;
    for (int ci = 0; ci < cin; ci++) {
        const float *src = in + (size_t)ci * h * w;
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                float *d = col + ((size_t)(ci * k + ky) * k + kx) * len;
                for (size_t j = n0; j < n1;) {
                    int oy = (int)(j / (size_t)wo), ox0 = (int)(j % (size_t)wo);
                    int ox1 = (size_t)(wo - ox0) < n1 - j ? wo : ox0 + (int)(n1 - j);
                    int iy = oy * s - p + ky;
                    float *dd = d + (j - n0); /* dd[ox - ox0] */
                    if (iy < 0 || iy >= h) {
                        memset(dd, 0, sizeof(float) * (size_t)(ox1 - ox0));
                    } else if (s == 1) {
                        /* valid ox: 0 <= ox - p + kx < w */
                        const float *row = src + (size_t)iy * w;
                        int a = UF_MAX(ox0, p - kx), b = UF_MIN(ox1, w + p - kx);
                        if (b < a)
                            b = a = UF_MIN(a, ox1);
                        for (int ox = ox0; ox < a; ox++)
                            dd[ox - ox0] = 0.f;
                        if (b > a)
                            memcpy(dd + (a - ox0), row + (a - p + kx), sizeof(float) * (size_t)(b - a));
                        for (int ox = b; ox < ox1; ox++)
                            dd[ox - ox0] = 0.f;
                    } else {
                        const float *row = src + (size_t)iy * w;
                        for (int ox = ox0; ox < ox1; ox++) {
                            int ix = ox * s - p + kx;
                            dd[ox - ox0] = (ix >= 0 && ix < w) ? row[ix] : 0.f;
                        }
                    }
                    j += (size_t)(ox1 - ox0);
                }
            }
    }
}

typedef struct conv_job {
    const uf_exec *ex;
    const uf_conv *c;
    const float *x;
    float *y;
    int h, w, act, accumulate;
} conv_job;

static void conv_part(void *arg, int t, int nt)
{
    const conv_job *j = arg;
    const uf_conv *c = j->c;
    if (c->wino) {
        size_t rows = (size_t)(j->h + 1) / 2, t0, t1; /* split by rows of tiles */
        uf_split(rows, 1, t, nt, &t0, &t1);
        if (t1 > t0)
            uf_wino_conv_part(c, j->x, j->h, j->w, j->y, t0, t1, j->ex->col + (size_t)t * j->ex->col_stride,
                              j->act, j->accumulate);
        return;
    }
    int ho = uf_conv_out(c, j->h), wo = uf_conv_out(c, j->w);
    size_t n = (size_t)ho * wo, n0, n1;
    uf_split(n, COL_ALIGN, t, nt, &n0, &n1);
    if (n1 <= n0)
        return;
    int g = c->groups, cin_g = c->cin / g, cout_g = c->cout / g;
    int kk = cin_g * c->k * c->k;
    float *col = j->ex->col + (size_t)t * j->ex->col_stride;
    for (int gi = 0; gi < g; gi++) {
        const float *xg = j->x + (size_t)gi * cin_g * j->h * j->w;
        const float *bm;
        int ldb;
        if (is_pointwise(c)) {
            bm = xg + n0;
            ldb = (int)n;
        } else {
            im2col_range(xg, cin_g, j->h, j->w, c->k, c->stride, c->pad, wo, n0, n1, col);
            bm = col;
            ldb = (int)(n1 - n0);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout_g, (int)(n1 - n0), kk, 1.0f,
                    c->w + (size_t)gi * cout_g * kk, kk, bm, ldb, j->accumulate ? 1.0f : 0.0f,
                    j->y + (size_t)gi * cout_g * n + n0, (int)n);
    }
    if (!c->b && j->act != UF_ACT_RELU)
        return;
    for (int o = 0; o < c->cout; o++) {
        float bias = c->b ? c->b[o] : 0.f, *r = j->y + (size_t)o * n;
        if (j->act == UF_ACT_RELU)
            for (size_t i = n0; i < n1; i++) {
                float v = r[i] + bias;
                r[i] = v > 0.f ? v : 0.f;
            }
        else
            for (size_t i = n0; i < n1; i++)
                r[i] += bias;
    }
}

void uf_conv2d_ex(const uf_exec *ex, const uf_conv *c, const float *in, int B, int h, int w,
                  float *out, int act, int accumulate)
{
    size_t n = (size_t)uf_conv_out(c, h) * uf_conv_out(c, w);
    for (int b = 0; b < B; b++) {
        conv_job j = {ex, c, in + (size_t)b * c->cin * h * w, out + (size_t)b * c->cout * n, h, w,
                      act, accumulate};
        uf_pool_run(ex->pool, conv_part, &j);
    }
}

void uf_conv2d(const uf_conv *c, const float *in, int B, int h, int w, float *out, float *col,
               int act, int accumulate)
{
    uf_exec ex = {.pool = NULL, .nt = 1, .col = col, .col_stride = 0};
    uf_conv2d_ex(&ex, c, in, B, h, w, out, act, accumulate);
}

/* The adjoint of im2col for stride 1: in[ci][y - p + ky][x - p + kx] += col[r][y*w + x]. */
static void col2im_s1(const float *col, int cin, int h, int w, int k, int p, float *in)
{
    size_t hw = (size_t)h * w;
    for (int ci = 0; ci < cin; ci++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                const float *s = col + ((size_t)(ci * k + ky) * k + kx) * hw;
                float *dst = in + (size_t)ci * hw;
                int x0 = UF_MAX(0, p - kx), x1 = UF_MIN(w, w + p - kx);
                for (int y = 0; y < h; y++) {
                    int iy = y - p + ky;
                    if (iy < 0 || iy >= h)
                        continue;
                    const float *row = s + (size_t)y * w;
                    float *o = dst + (size_t)iy * w + kx - p;
                    for (int x = x0; x < x1; x++)
                        o[x] += row[x];
                }
            }
}

void uf_conv2d_backward(const uf_conv *c, const float *x, int h, int w, const float *gy,
                        float *gW, float *gb, float *gx, int accumulate, float *col, float *gcol)
{
    int hw = h * w, K = c->cin * c->k * c->k;
    const float *cm = x;
    if (!is_pointwise(c)) {
        im2col_range(x, c->cin, h, w, c->k, 1, c->pad, w, 0, (size_t)hw, col);
        cm = col;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->cout, K, hw, 1.f, gy, hw, cm, hw, 1.f,
                gW, K);
    if (gb)
        for (int o = 0; o < c->cout; o++) {
            const float *g = gy + (size_t)o * hw;
            double s = 0;
            for (int i = 0; i < hw; i++)
                s += g[i];
            gb[o] += (float)s;
        }
    if (!gx)
        return;
    if (is_pointwise(c)) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c->cin, hw, c->cout, 1.f, c->w, K, gy,
                    hw, accumulate ? 1.f : 0.f, gx, hw);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, hw, c->cout, 1.f, c->w, K, gy, hw, 0.f,
                gcol, hw);
    if (!accumulate)
        memset(gx, 0, sizeof(float) * (size_t)c->cin * hw);
    col2im_s1(gcol, c->cin, h, w, c->k, c->pad, gx);
}
