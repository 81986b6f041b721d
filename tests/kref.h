/* kref.h — what the kernel tests share: a seeded generator, allocation and the error
 * measures against double-precision references (static inline: each test takes what it uses). */
#ifndef UF_TEST_KREF_H
#define UF_TEST_KREF_H

#include "util.h"

#include "core/pool.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REL_TOL 1e-5

/* ---------------------------------------------------------------- helpers */

typedef struct rng {
    uint64_t s;
} rng;

static inline uint64_t rng_next(rng *r) /* splitmix64 */
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double rng_unif(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; } /* [0, 1) */

static inline double rng_normal(rng *r)
{
    double u = rng_unif(r), v = rng_unif(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

static inline size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

static inline float *falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

static inline double *dalloc(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof(double));
    assert_non_null(p);
    return p;
}

static inline void fill_unif(rng *r, float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * rng_unif(r));
}

static inline void fill_normal(rng *r, float *x, size_t n, double mean, double sd)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(mean + sd * rng_normal(r));
}

static inline double *to_double(const float *x, size_t n)
{
    double *d = dalloc(n);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* max |got - ref| (inf on NaN) and max |ref| */
static inline double err_d(const float *got, const double *ref, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static inline double absmax_d(const double *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

/* Checks got against ref with tol = REL_TOL * max(1, max|ref|); returns err / tol. */
static inline double check_rel(const char *what, const float *got, const double *ref, size_t n)
{
    double tol = REL_TOL * fmax(1.0, absmax_d(ref, n)), e = err_d(got, ref, n);
    print_message("  %-44s max|err| %.3g (tol %.3g, max|ref| %.3g)\n", what, e, tol, absmax_d(ref, n));
    if (!(e <= tol))
        fail_msg("%s: max abs error %g > %g", what, e, tol);
    return e / tol;
}

static inline uf_pool *make_pool(int n)
{
    uf_pool *p = NULL;
    uf_error err;
    assert_int_equal(uf_pool_init(n, &p, &err), UF_OK);
    return p;
}


/* out[b,o,oy,ox] = act(bias[o] + sum_{ci,ky,kx} w[o,ci,ky,kx] in[b, g*cin_g+ci, oy*s-p+ky, ox*s-p+kx]
 * (+ res)), zero outside the image. */
static inline void ref_conv(const uf_conv *c, const double *in, int B, int h, int w, const double *res,
                     int act, double *out)
{
    int ho = uf_conv_out(c, h), wo = uf_conv_out(c, w), k = c->k;
    int cin_g = c->cin / c->groups, cout_g = c->cout / c->groups;
    for (int b = 0; b < B; b++)
        for (int o = 0; o < c->cout; o++) {
            int g = o / cout_g;
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    double s = c->b ? c->b[o] : 0.0;
                    for (int ci = 0; ci < cin_g; ci++) {
                        int ic = g * cin_g + ci;
                        for (int ky = 0; ky < k; ky++) {
                            int iy = oy * c->stride - c->pad + ky;
                            if (iy < 0 || iy >= h)
                                continue;
                            for (int kx = 0; kx < k; kx++) {
                                int ix = ox * c->stride - c->pad + kx;
                                if (ix < 0 || ix >= w)
                                    continue;
                                s += (double)c->w[((size_t)(o * cin_g + ci) * k + ky) * k + kx] *
                                     in[(((size_t)b * c->cin + ic) * h + iy) * w + ix];
                            }
                        }
                    }
                    size_t oi = (((size_t)b * c->cout + o) * ho + oy) * wo + ox;
                    if (res)
                        s += res[oi];
                    if (act == UF_ACT_RELU && s < 0)
                        s = 0;
                    out[oi] = s;
                }
        }
}

/* Run c on B images: single-threaded uf_conv2d, or uf_conv2d_ex on a pool of `threads`. */
#endif
