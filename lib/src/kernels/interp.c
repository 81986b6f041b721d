/* interp.c — interpolation, as PyTorch computes it: bilinear (align_corners=False, no
 * antialias) and bicubic (align_corners=True, A = -0.75).
 *
 * Bicubic exists at two precisions because PyTorch dispatches its kernel by dtype and
 * anomalib calls it with both: CaiT's 448 -> 224 image downscale runs in float32 (the FMA
 * roundings of torch's vectorised build reproduced below), the NFA's upsampling of log10
 * survival maps runs in float64 (taps here, applied by nfa.c in double). */
#include "core/internal.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdint.h>

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

/* PyTorch's CPU kernel (HelperInterpCubic + cpu_upsample_generic, float32) as its vectorised
 * builds evaluate it: the compiler contracts its multiply-adds into FMAs, including
 * t = scale * i - floor(scale * i), which changes t by up to an ulp of 447 (3e-5) and the
 * output by 1e-4. fmaf reproduces those roundings (to ~1e-7). */
static inline float cubic1(float x, float A)
{
    return fmaf(fmaf(A + 2.f, x, -(A + 3.f)) * x, x, 1.f);
}
static inline float cubic2(float x, float A)
{
    return fmaf(fmaf(fmaf(A, x, -(5.f * A)), x, 8.f * A), x, -(4.f * A));
}

/* Source taps and weights of output index i. */
static void cubic_taps(int i, int in, int out, int idx[4], float w[4])
{
    float scale = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.f;
    float real = scale * (float)i;
    int i0 = (int)floorf(real);
    float t = fmaf(scale, (float)i, -(float)i0);
    const float A = -0.75f;
    w[0] = cubic2(t + 1.f, A);
    w[1] = cubic1(t, A);
    w[2] = cubic1(1.f - t, A);
    w[3] = cubic2(2.f - t, A);
    for (int k = 0; k < 4; k++)
        idx[k] = UF_MIN(UF_MAX(i0 - 1 + k, 0), in - 1);
}

UF_CLONES
void uf_resize_bicubic_ac_rows(const float *in, int planes, int ih, int iw, float *out, int oh, int ow,
                         int y0, int y1)
{
    for (int y = y0; y < y1; y++) {
        int yi[4], xi[4];
        float wy[4], wx[4];
        cubic_taps(y, ih, oh, yi, wy);
        for (int x = 0; x < ow; x++) {
            cubic_taps(x, iw, ow, xi, wx);
            for (int p = 0; p < planes; p++) {
                const float *src = in + (size_t)p * ih * iw;
                float acc = 0.f;
                for (int k = 0; k < 4; k++) {   /* along x first, then the four rows along y */
                    const float *r = src + (size_t)yi[k] * iw;
                    float rv = r[xi[0]] * wx[0];
                    rv = fmaf(r[xi[1]], wx[1], rv);
                    rv = fmaf(r[xi[2]], wx[2], rv);
                    rv = fmaf(r[xi[3]], wx[3], rv);
                    acc = k == 0 ? rv * wy[0] : fmaf(rv, wy[k], acc);
                }
                out[((size_t)p * oh + y) * ow + x] = acc;
            }
        }
    }
}

void uf_resize_bicubic_ac(const float *in, int planes, int ih, int iw, float *out, int oh, int ow)
{
    uf_resize_bicubic_ac_rows(in, planes, ih, iw, out, oh, ow, 0, oh);
}

/* float64: the taps of torch's double kernel (nfa.c applies them). */

static double cc1(double x, double A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
static double cc2(double x, double A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

void uf_bicubic_taps_f64(int in, int out, int32_t *idx, double *wt)
{
    const double A = -0.75;
    /* align_corners=True: src = dst * (in - 1) / (out - 1), the ratio in double as torch's
     * float64 kernel computes it (0 when out == 1). */
    double scale = out > 1 ? (double)(in - 1) / (double)(out - 1) : 0.0;
    for (int d = 0; d < out; d++) {
        double src = scale * d;
        double f = floor(src);
        double t = src - f;
        int i0 = (int)f;
        /* written as torch's get_cubic_upsample_coefficients: x2 = 1 - t, then x2 + 1 */
        double x2 = 1.0 - t;
        wt[4 * d + 0] = cc2(t + 1.0, A);
        wt[4 * d + 1] = cc1(t, A);
        wt[4 * d + 2] = cc1(x2, A);
        wt[4 * d + 3] = cc2(x2 + 1.0, A);
        for (int j = 0; j < 4; j++) {
            int s = i0 - 1 + j;
            idx[4 * d + j] = s < 0 ? 0 : s > in - 1 ? in - 1 : s;
        }
    }
}
