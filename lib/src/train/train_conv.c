/* train_conv.c — forward and backward of the flow subnets' "same" convolutions (k = 1 or 3,
 * stride 1) for training: im2col + SGEMM, and col2im for the input gradient. One image per
 * call on the calling thread; the trainer parallelises over the images of a batch. */
#include "core/internal.h"
#include "train/train.h"

#include <cblas.h>
#include <string.h>

/* col[(ci*9 + ky*3 + kx)][y*w + x] = in[ci][y+ky-1][x+kx-1], zero outside. */
static void im2col3(const float *in, int cin, int h, int w, float *col)
{
    size_t hw = (size_t)h * w;
    for (int ci = 0; ci < cin; ci++)
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                float *d = col + ((size_t)ci * 9 + ky * 3 + kx) * hw;
                const float *src = in + (size_t)ci * hw;
                int x0 = kx == 0 ? 1 : 0, x1 = kx == 2 ? w - 1 : w;
                for (int y = 0; y < h; y++) {
                    int iy = y + ky - 1;
                    float *row = d + (size_t)y * w;
                    if (iy < 0 || iy >= h) {
                        memset(row, 0, sizeof(float) * (size_t)w);
                        continue;
                    }
                    if (x0 > 0)
                        row[0] = 0.f;
                    if (x1 < w)
                        row[w - 1] = 0.f;
                    memcpy(row + x0, src + (size_t)iy * w + x0 + kx - 1, sizeof(float) * (size_t)(x1 - x0));
                }
            }
}

/* The adjoint of im2col3: out[ci][y+ky-1][x+kx-1] += col[...]. */
static void col2im3(const float *col, int cin, int h, int w, float *out)
{
    size_t hw = (size_t)h * w;
    for (int ci = 0; ci < cin; ci++)
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                const float *s = col + ((size_t)ci * 9 + ky * 3 + kx) * hw;
                float *dst = out + (size_t)ci * hw;
                int x0 = kx == 0 ? 1 : 0, x1 = kx == 2 ? w - 1 : w;
                for (int y = 0; y < h; y++) {
                    int iy = y + ky - 1;
                    if (iy < 0 || iy >= h)
                        continue;
                    const float *row = s + (size_t)y * w;
                    float *o = dst + (size_t)iy * w + kx - 1;
                    for (int x = x0; x < x1; x++)
                        o[x] += row[x];
                }
            }
}

void tr_conv_fwd(int cout, int cin, int k, int h, int w, const float *W, const float *b,
                 const float *x, float *y, float *col)
{
    int hw = h * w, K = cin * k * k;
    const float *c = x;
    if (k == 3) {
        im2col3(x, cin, h, w, col);
        c = col;
    }
    for (int o = 0; o < cout; o++) {
        float *yo = y + (size_t)o * hw;
        for (int i = 0; i < hw; i++)
            yo[i] = b[o];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, hw, K, 1.f, W, K, c, hw, 1.f, y, hw);
}

void tr_conv_bwd(int cout, int cin, int k, int h, int w, const float *W, const float *x,
                 const float *gy, float *gW, float *gb, float *gx, int accumulate, float *col,
                 float *gcol)
{
    int hw = h * w, K = cin * k * k;
    const float *c = x;
    if (k == 3) {
        im2col3(x, cin, h, w, col);
        c = col;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cout, K, hw, 1.f, gy, hw, c, hw, 1.f, gW, K);
    for (int o = 0; o < cout; o++) {
        const float *g = gy + (size_t)o * hw;
        double s = 0;
        for (int i = 0; i < hw; i++)
            s += g[i];
        gb[o] += (float)s;
    }
    if (!gx)
        return;
    if (k == 1) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cin, hw, cout, 1.f, W, K, gy, hw,
                    accumulate ? 1.f : 0.f, gx, hw);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, hw, cout, 1.f, W, K, gy, hw, 0.f, gcol, hw);
    if (!accumulate)
        memset(gx, 0, sizeof(float) * (size_t)cin * hw);
    col2im3(gcol, cin, h, w, gx);
}
