/* vmath.c — see vmath.h. */
#include "internal.h"
#include "vmath.h"

#include <stdint.h>
#include <string.h>


/* exp(x) = 2^k * exp(r), r = x - k ln2 in [-ln2/2, ln2/2], degree-7 Taylor (|err| < 1 ulp). */
static inline float exp_inline(float x)
{
    x = x < -87.33654f ? -87.33654f : x > 88.72283f ? 88.72283f : x;
    float kf = x * 1.44269504f + 12582912.f; /* round to nearest via the 1.5*2^23 trick */
    kf -= 12582912.f;
    float r = x - kf * 0.693145752f;
    r = r - kf * 1.42860677e-06f;
    float p = 1.f / 5040.f;
    p = p * r + 1.f / 720.f;
    p = p * r + 1.f / 120.f;
    p = p * r + 1.f / 24.f;
    p = p * r + 1.f / 6.f;
    p = p * r + 0.5f;
    p = p * r + 1.f;
    p = p * r + 1.f;
    int32_t k = (int32_t)kf;
    /* 2^k in two halves so that k = 128 (x near the top) does not overflow the exponent */
    int32_t k1 = k >> 1, k2 = k - k1;
    uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(k2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    return p * s1 * s2;
}

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
    float e = exp_inline(2.f * (ax < 9.f ? ax : 9.f));
    float big = 1.f - 2.f / (e + 1.f);
    big = x < 0.f ? -big : big;
    return ax < 0.5f ? small : big;
}

float uf_expf(float x) { return exp_inline(x); }
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
        s[i] = x2[i] * exp_inline(s[i]) + t[i] * 0.1f;
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
        out[i] = exp_inline(-0.5f * (out[i] / fc));
}
