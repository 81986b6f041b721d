/* vmath.c — see vmath.h. */
#include "core/internal.h"
#include "kernels/vmath.h"

#include <stdint.h>
#include <string.h>


/* tanh: odd Taylor series to x^15 for |x| < 0.5 (rel. err ~1e-8), 1 - 2/(e^2|x| + 1) above. */
static inline float tanh_inline(float x)
{
    float ax = x < 0.f ? -x : x;
    float x2 = x * x;
    float p = -929569.f / 638512875.f;
    p = p * x2 + 21844.f / 6081075.f;
    p = p * x2 - 1382.f / 155925.f;
    p = p * x2 + 62.f / 2835.f;
    p = p * x2 - 17.f / 315.f;
    p = p * x2 + 2.f / 15.f;
    p = p * x2 - 1.f / 3.f;
    float small = x + x * x2 * p;
    float e = uf_exp_fast(2.f * (ax < 9.f ? ax : 9.f));
    float big = 1.f - 2.f / (e + 1.f);
    big = x < 0.f ? -big : big;
    return ax < 0.5f ? small : big;
}

float uf_expf(float x) { return uf_exp_fast(x); }
float uf_tanhf(float x) { return tanh_inline(x); }

/* Sum with eight double lanes: a fixed order (reproducible) that vectorises. */
static inline double sum8(const float *x, size_t n)
{
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += (double)x[i + l];
    for (; i < n; i++)
        acc[0] += x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

UF_CLONES
double uf_coupling(float *s, const float *t, const float *x2, size_t n, float clamp)
{
    for (size_t i = 0; i < n; i++)
        s[i] = clamp * tanh_inline(s[i] * 0.1f);
    double jsum = sum8(s, n);
    for (size_t i = 0; i < n; i++)
        s[i] = x2[i] * uf_exp_fast(s[i]) + t[i] * 0.1f;
    return jsum;
}

UF_CLONES
double uf_coupling_save(const float *s, const float *t, const float *x2, size_t n, float clamp,
                        float *y2, float *th, float *e)
{
    for (size_t i = 0; i < n; i++)
        th[i] = tanh_inline(s[i] * 0.1f);
    for (size_t i = 0; i < n; i++)
        e[i] = clamp * th[i]; /* J, summed below, then replaced by exp(J) */
    double jsum = sum8(e, n);
    for (size_t i = 0; i < n; i++) {
        e[i] = uf_exp_fast(e[i]);
        y2[i] = x2[i] * e[i] + t[i] * 0.1f;
    }
    return jsum;
}

UF_CLONES
void uf_affine(float *dst, const float *src, size_t n, float scale, float offset)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] * scale + offset;
}

UF_CLONES
void uf_gauss_density(const float *z, int C, size_t hw, float *out)
{
    /* float accumulation over channels, blocked by pixel so it vectorises across pixels */
    for (size_t i = 0; i < hw; i++)
        out[i] = 0.f;
    for (int c = 0; c < C; c++) {
        const float *zc = z + (size_t)c * hw;
        for (size_t i = 0; i < hw; i++)
            out[i] += zc[i] * zc[i];
    }
    float fc = (float)C;
    for (size_t i = 0; i < hw; i++)
        out[i] = uf_exp_fast(-0.5f * (out[i] / fc));
}
