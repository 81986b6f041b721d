/* vmath.h — vectorisable elementwise kernels of the flow and the anomaly map.
 * Branch-free float32 exp/tanh approximations (< 2 ulp on the ranges used) that the compiler
 * turns into SIMD; the hot loops are built for AVX-512, AVX2 and baseline x86-64 and picked
 * at load time (target_clones), so one binary runs everywhere. */
#ifndef UF_VMATH_H
#define UF_VMATH_H

#include <stddef.h>

/* The affine coupling of an AllInOneBlock (spec §3.4) on n elements:
 *   J = clamp * tanh(0.1 * s[i]);  s[i] <- x2[i] * exp(J) + 0.1 * t[i]
 * Returns sum(J) (double accumulation). */
double uf_coupling(float *s, const float *t, const float *x2, size_t n, float clamp);

/* dst[i] = src[i] * scale + offset */
void uf_affine(float *dst, const float *src, size_t n, float scale, float offset);

/* out[i] = exp(-0.5 * (sum_c z[c*hw + i]^2) / C) for i < hw */
void uf_gauss_density(const float *z, int C, size_t hw, float *out);

float uf_expf(float x);
float uf_tanhf(float x);

#endif
