/* ops.c — small kernels: pooling, LayerNorm, bilinear resize, pixel shuffle, channel copy. */
#include "internal.h"
#include "ops.h"

#include <math.h>
#include <string.h>

void uf_maxpool2d(const float *in, int B, int C, int h, int w, int k, int s, int p, float *out)
{
    int ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1;
    for (size_t pl = 0; pl < (size_t)B * C; pl++) {
        const float *x = in + pl * h * w;
        float *y = out + pl * ho * wo;
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++) {
                float m = -INFINITY;
                for (int ky = 0; ky < k; ky++) {
                    int iy = oy * s - p + ky;
                    if (iy < 0 || iy >= h)
                        continue;
                    for (int kx = 0; kx < k; kx++) {
                        int ix = ox * s - p + kx;
                        if (ix >= 0 && ix < w && (x[iy * w + ix] > m || isnan(x[iy * w + ix])))
                            m = x[iy * w + ix];
                    }
                }
                y[oy * wo + ox] = m;
            }
    }
}

void uf_layernorm_chw(const float *in, int B, size_t n, const float *gamma, const float *beta,
                      float eps, float *out)
{
    for (int b = 0; b < B; b++) {
        const float *x = in + (size_t)b * n;
        float *y = out + (size_t)b * n;
        double s = 0, ss = 0;
        for (size_t i = 0; i < n; i++)
            s += x[i];
        double mean = s / (double)n;
        for (size_t i = 0; i < n; i++) {
            double d = x[i] - mean;
            ss += d * d;
        }
        float meanf = (float)mean, rstd = (float)(1.0 / sqrt(ss / (double)n + eps));
        for (size_t i = 0; i < n; i++)
            y[i] = (x[i] - meanf) * rstd * gamma[i] + beta[i];
    }
}

/* PyTorch's area_pixel_compute_source_index for align_corners=False (clamped at 0). */
static void bilinear_taps(int in, int out, int *i0, int *i1, float *l1)
{
    float scale = (float)in / (float)out;
    for (int d = 0; d < out; d++) {
        float src = scale * ((float)d + 0.5f) - 0.5f;
        if (src < 0.f)
            src = 0.f;
        int i = (int)src;
        i0[d] = i;
        i1[d] = i < in - 1 ? i + 1 : i;
        l1[d] = src - (float)i;
    }
}

void uf_resize_bilinear(const float *in, int planes, int ih, int iw, float *out, int oh, int ow)
{
    /* Taps on the stack: sizes here are model input sizes, bounded by the caller. */
    int y0[oh], y1[oh], x0[ow], x1[ow];
    float ly[oh], lx[ow];
    bilinear_taps(ih, oh, y0, y1, ly);
    bilinear_taps(iw, ow, x0, x1, lx);
    for (int p = 0; p < planes; p++) {
        const float *x = in + (size_t)p * ih * iw;
        float *y = out + (size_t)p * oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            const float *r0 = x + (size_t)y0[oy] * iw, *r1 = x + (size_t)y1[oy] * iw;
            float h1 = ly[oy], h0 = 1.f - h1;
            for (int ox = 0; ox < ow; ox++) {
                float w1 = lx[ox], w0 = 1.f - w1;
                y[(size_t)oy * ow + ox] = h0 * (w0 * r0[x0[ox]] + w1 * r0[x1[ox]]) +
                                          h1 * (w0 * r1[x0[ox]] + w1 * r1[x1[ox]]);
            }
        }
    }
}

void uf_pixel_shuffle2(const float *in, int B, int C, int h, int w, float *out)
{
    int G = C / 4;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            float *o = out + ((size_t)b * G + g) * 4 * h * w;
            for (int a = 0; a < 2; a++)
                for (int bb = 0; bb < 2; bb++) {
                    const float *src = in + ((size_t)b * C + 4 * g + 2 * a + bb) * h * w;
                    for (int i = 0; i < h; i++)
                        for (int j = 0; j < w; j++)
                            o[(size_t)(2 * i + a) * 2 * w + 2 * j + bb] = src[(size_t)i * w + j];
                }
        }
}

void uf_copy_channels(const float *in, int B, int C, int c0, int n, size_t hw, float *out)
{
    for (int b = 0; b < B; b++)
        memcpy(out + (size_t)b * n * hw, in + ((size_t)b * C + c0) * hw, sizeof(float) * n * hw);
}
