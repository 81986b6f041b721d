/* vmath.h — vectorisable elementwise kernels of the flow and the anomaly map.
 * Branch-free float32 exp/tanh approximations (< 2 ulp on the ranges used) that the compiler
 * turns into SIMD; the hot loops are built for AVX-512, AVX2 and baseline x86-64 and picked
 * at load time (target_clones), so one binary runs everywhere. */
#ifndef UF_VMATH_H
#define UF_VMATH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* exp(x) = 2^k * exp(r), r = x - k ln2 in [-ln2/2, ln2/2], degree-7 Taylor (|err| < 1 ulp). */
static inline float uf_exp_fast(float x)
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


/* The affine coupling of an AllInOneBlock on n elements:
 *   J = clamp * tanh(0.1 * s[i]);  s[i] <- x2[i] * exp(J) + 0.1 * t[i]
 * Returns sum(J) (double accumulation). (docs/uflow-math.md "Flow blocks") */
double uf_coupling(float *s, const float *t, const float *x2, size_t n, float clamp);

/* The same coupling keeping what its backward pass needs (training): th[i] = tanh(0.1 s[i]),
 * e[i] = exp(J), y2[i] = x2[i] * e[i] + 0.1 t[i], bit for bit the values uf_coupling computes;
 * s is not modified. Returns sum(J). */
double uf_coupling_save(const float *s, const float *t, const float *x2, size_t n, float clamp,
                        float *y2, float *th, float *e);

/* dst[i] = src[i] * scale + offset */
void uf_affine(float *dst, const float *src, size_t n, float scale, float offset);

/* out[i] = exp(-0.5 * (sum_c z[c*hw + i]^2) / C) for i < hw */
void uf_gauss_density(const float *z, int C, size_t hw, float *out);

float uf_expf(float x);
float uf_tanhf(float x);

#endif
