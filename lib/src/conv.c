/* conv.c — convolution as im2col + SGEMM (OpenBLAS), BatchNorm folding.
 * 1x1 stride-1 convolutions skip im2col: the input already is the column matrix. */
#include "internal.h"
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static int is_pointwise(const uf_conv *c) { return c->k == 1 && c->stride == 1 && c->pad == 0; }

size_t uf_conv_col_floats(const uf_conv *c, int h, int w)
{
    if (is_pointwise(c))
        return 0;
    return (size_t)(c->cin / c->groups) * c->k * c->k * uf_conv_out(c, h) * uf_conv_out(c, w);
}

/* col[(ci*k + ky)*k + kx][oy*wo + ox] = in[ci][oy*s - p + ky][ox*s - p + kx] (0 outside). */
static void im2col(const float *in, int cin, int h, int w, int k, int s, int p, int ho, int wo,
                   float *col)
{
    for (int ci = 0; ci < cin; ci++) {
        const float *src = in + (size_t)ci * h * w;
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                float *dst = col + ((size_t)(ci * k + ky) * k + kx) * ho * wo;
                for (int oy = 0; oy < ho; oy++) {
                    int iy = oy * s - p + ky;
                    float *d = dst + (size_t)oy * wo;
                    if (iy < 0 || iy >= h) {
                        memset(d, 0, sizeof(float) * wo);
                        continue;
                    }
                    const float *row = src + (size_t)iy * w;
                    if (s == 1) {
                        /* Contiguous run: only the borders need zeros. */
                        int ox0 = p - kx > 0 ? p - kx : 0;
                        int ox1 = w + p - kx < wo ? w + p - kx : wo;
                        for (int ox = 0; ox < ox0; ox++)
                            d[ox] = 0.f;
                        if (ox1 > ox0)
                            memcpy(d + ox0, row + ox0 - p + kx, sizeof(float) * (ox1 - ox0));
                        for (int ox = ox1 > ox0 ? ox1 : ox0; ox < wo; ox++)
                            d[ox] = 0.f;
                    } else {
                        for (int ox = 0; ox < wo; ox++) {
                            int ix = ox * s - p + kx;
                            d[ox] = (ix >= 0 && ix < w) ? row[ix] : 0.f;
                        }
                    }
                }
            }
    }
}

void uf_conv2d(const uf_conv *c, const float *in, int B, int h, int w, float *out, float *col,
               int act, int accumulate)
{
    int ho = uf_conv_out(c, h), wo = uf_conv_out(c, w);
    int g = c->groups, cin_g = c->cin / g, cout_g = c->cout / g;
    int kk = cin_g * c->k * c->k;
    size_t n = (size_t)ho * wo;
    for (int b = 0; b < B; b++) {
        const float *x = in + (size_t)b * c->cin * h * w;
        float *y = out + (size_t)b * c->cout * n;
        for (int gi = 0; gi < g; gi++) {
            const float *xg = x + (size_t)gi * cin_g * h * w;
            const float *cm = xg;
            if (!is_pointwise(c)) {
                im2col(xg, cin_g, h, w, c->k, c->stride, c->pad, ho, wo, col);
                cm = col;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout_g, (int)n, kk, 1.0f,
                        c->w + (size_t)gi * cout_g * kk, kk, cm, (int)n, accumulate ? 1.0f : 0.0f,
                        y + (size_t)gi * cout_g * n, (int)n);
        }
        if (c->b || act == UF_ACT_RELU) {
            for (int o = 0; o < c->cout; o++) {
                float bias = c->b ? c->b[o] : 0.f, *r = y + (size_t)o * n;
                if (act == UF_ACT_RELU)
                    for (size_t i = 0; i < n; i++) {
                        float v = r[i] + bias;
                        r[i] = v > 0.f ? v : 0.f;
                    }
                else
                    for (size_t i = 0; i < n; i++)
                        r[i] += bias;
            }
        }
    }
}

void uf_bn_fold(int cout, size_t per_out, const float *w, const float *b, const float *gamma,
                const float *beta, const float *mean, const float *var, float eps, float *w_out,
                float *b_out)
{
    for (int o = 0; o < cout; o++) {
        /* float32 like PyTorch's eval BN: gamma / sqrt(var + eps) */
        float inv = gamma[o] / sqrtf(var[o] + eps);
        for (size_t i = 0; i < per_out; i++)
            w_out[(size_t)o * per_out + i] = w[(size_t)o * per_out + i] * inv;
        b_out[o] = beta[o] - mean[o] * inv + (b ? b[o] * inv : 0.f);
    }
}
