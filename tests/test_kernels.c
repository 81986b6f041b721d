/* test_kernels.c — every numeric kernel of ops.h, and one flow block (spec §3.4), against
 * naive references written here: plain loops in double on small seeded random inputs.
 * Tolerances are 1e-5 x max(1, max|ref|) unless said otherwise (an indexing bug gives O(1)
 * errors); pure data movement (pooling, pixel shuffle, channel copy) must be exact. A few
 * values computed by PyTorch 1.13 (bilinear resize, pixel_shuffle) are embedded as constants. */
#include "util.h"

#include "models/model.h"
#include "kernels/kernels.h"
#include "core/pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REL_TOL 1e-5

/* ---------------------------------------------------------------- helpers */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) /* splitmix64 */
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unif(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; } /* [0, 1) */

static double rng_normal(rng *r)
{
    double u = rng_unif(r), v = rng_unif(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

static float *falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

static double *dalloc(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof(double));
    assert_non_null(p);
    return p;
}

static void fill_unif(rng *r, float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * rng_unif(r));
}

static void fill_normal(rng *r, float *x, size_t n, double mean, double sd)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(mean + sd * rng_normal(r));
}

static double *to_double(const float *x, size_t n)
{
    double *d = dalloc(n);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* max |got - ref| (inf on NaN) and max |ref| */
static double err_d(const float *got, const double *ref, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static double absmax_d(const double *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

/* Checks got against ref with tol = REL_TOL * max(1, max|ref|); returns err / tol. */
static double check_rel(const char *what, const float *got, const double *ref, size_t n)
{
    double tol = REL_TOL * fmax(1.0, absmax_d(ref, n)), e = err_d(got, ref, n);
    print_message("  %-44s max|err| %.3g (tol %.3g, max|ref| %.3g)\n", what, e, tol, absmax_d(ref, n));
    if (!(e <= tol))
        fail_msg("%s: max abs error %g > %g", what, e, tol);
    return e / tol;
}

static uf_pool *make_pool(int n)
{
    uf_pool *p = NULL;
    uf_error err;
    assert_int_equal(uf_pool_init(n, &p, &err), UF_OK);
    return p;
}

/* ---------------------------------------------------------------- conv2d */

/* out[b,o,oy,ox] = act(bias[o] + sum_{ci,ky,kx} w[o,ci,ky,kx] in[b, g*cin_g+ci, oy*s-p+ky, ox*s-p+kx]
 * (+ res)), zero outside the image. */
static void ref_conv(const uf_conv *c, const double *in, int B, int h, int w, const double *res,
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
static void run_conv(const uf_conv *c, const float *x, int B, int h, int w, float *y, int act, int acc,
                     int threads)
{
    if (threads <= 1) {
        float *col = falloc(uf_conv_col_floats(c, h, w));
        uf_conv2d(c, x, B, h, w, y, col, act, acc);
        free(col);
        return;
    }
    uf_pool *pool = make_pool(threads);
    size_t stride = uf_conv_col_floats_mt(c, h, w, threads);
    float *col = falloc(stride * (size_t)threads);
    uf_exec ex = {.pool = pool, .nt = threads, .col = col, .col_stride = stride};
    uf_conv2d_ex(&ex, c, x, B, h, w, y, act, acc);
    free(col);
    uf_pool_free(pool);
}

typedef struct conv_case {
    int B, cin, cout, h, w, k, s, p, groups;
    int bias, act, acc, wino, threads;
} conv_case;

static double conv_one(rng *r, const conv_case *cc)
{
    uf_conv c = {.cout = cc->cout, .cin = cc->cin, .k = cc->k, .stride = cc->s, .pad = cc->p,
                 .groups = cc->groups};
    int K = cc->cin / cc->groups * cc->k * cc->k;
    size_t nw = (size_t)cc->cout * K, nx = (size_t)cc->B * cc->cin * cc->h * cc->w;
    int ho = uf_conv_out(&c, cc->h), wo = uf_conv_out(&c, cc->w);
    size_t ny = (size_t)cc->B * cc->cout * ho * wo;
    float *wt = falloc(nw), *bias = falloc(cc->cout), *x = falloc(nx), *y = falloc(ny), *U = NULL;
    fill_unif(r, wt, nw, -sqrt(3.0 / K), sqrt(3.0 / K)); /* unit-variance outputs */
    fill_unif(r, bias, cc->cout, -0.5, 0.5);
    fill_normal(r, x, nx, 0.0, 1.0);
    c.w = wt;
    c.b = cc->bias ? bias : NULL;
    if (cc->wino) {
        assert_true(uf_wino_applies(&c));
        U = falloc((size_t)16 * cc->cout * cc->cin);
        uf_wino_weights(&c, U);
        c.wino = U;
    }
    double *res = NULL, *ref = dalloc(ny), *xd = to_double(x, nx);
    if (cc->acc) {
        fill_normal(r, y, ny, 0.0, 1.0); /* the residual the conv is added to */
        res = to_double(y, ny);
    } else {
        for (size_t i = 0; i < ny; i++)
            y[i] = NAN; /* must be overwritten */
    }
    ref_conv(&c, xd, cc->B, cc->h, cc->w, res, cc->act, ref);
    run_conv(&c, x, cc->B, cc->h, cc->w, y, cc->act, cc->acc, cc->threads);
    char what[160];
    snprintf(what, sizeof what, "B%d %dx%dx%d->%d k%d s%d p%d g%d%s%s%s%s t%d", cc->B, cc->cin,
             cc->h, cc->w, cc->cout, cc->k, cc->s, cc->p, cc->groups, cc->bias ? " bias" : "",
             cc->act ? " relu" : "", cc->acc ? " acc" : "", cc->wino ? " wino" : "", cc->threads);
    double q = check_rel(what, y, ref, ny);
    free(wt), free(bias), free(x), free(y), free(U), free(res), free(ref), free(xd);
    return q;
}

static void test_conv2d(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        /* B cin cout  h   w  k  s  p  g bias act acc wino thr */
        {2, 3, 8, 19, 23, 7, 2, 3, 1, 1, 1, 0, 0, 1},    /* ResNet stem, odd non-square */
        {2, 3, 8, 20, 14, 7, 2, 3, 1, 0, 0, 1, 0, 1},    /* even, no bias, accumulate */
        {2, 8, 6, 10, 13, 3, 1, 1, 1, 1, 0, 0, 0, 1},    /* 3x3 im2col */
        {2, 8, 6, 10, 13, 3, 1, 1, 1, 1, 1, 1, 0, 1},    /* + relu + residual */
        {2, 6, 10, 9, 12, 3, 2, 1, 1, 0, 0, 0, 0, 1},    /* 3x3 stride 2 */
        {2, 6, 10, 12, 9, 3, 2, 1, 1, 1, 1, 1, 0, 1},
        {2, 8, 12, 11, 8, 1, 2, 0, 1, 1, 0, 0, 0, 1},    /* 1x1 stride-2 downsample */
        {2, 8, 12, 8, 11, 1, 2, 0, 1, 0, 0, 1, 0, 1},
        {2, 7, 5, 6, 9, 1, 1, 0, 1, 1, 1, 0, 0, 1},      /* pointwise: no im2col */
        {2, 7, 5, 6, 9, 1, 1, 0, 1, 0, 0, 1, 0, 1},
        {2, 8, 6, 7, 10, 3, 1, 1, 2, 1, 1, 0, 0, 1},     /* groups */
        {2, 8, 12, 8, 11, 3, 2, 1, 4, 1, 0, 1, 0, 1},
        {2, 8, 8, 5, 6, 1, 1, 0, 4, 1, 0, 0, 0, 1},      /* grouped pointwise */
        {2, 8, 4, 9, 7, 1, 2, 0, 2, 0, 1, 1, 0, 1},
        {2, 4, 6, 11, 9, 5, 1, 2, 1, 1, 0, 0, 0, 1},     /* 5x5 s1 p2 */
        {2, 4, 6, 8, 10, 3, 1, 0, 1, 1, 0, 0, 0, 1},     /* no padding */
        {2, 3, 4, 1, 2, 3, 1, 1, 1, 1, 0, 0, 0, 1},      /* image smaller than the kernel */
        {2, 3, 4, 2, 1, 7, 2, 3, 1, 1, 1, 0, 0, 1},
        {2, 8, 6, 16, 16, 3, 1, 1, 1, 1, 1, 0, 1, 1},    /* Winograd, even */
        {2, 5, 7, 7, 5, 3, 1, 1, 1, 0, 0, 1, 1, 1},      /* Winograd, odd, residual */
        {2, 6, 3, 1, 1, 3, 1, 1, 1, 1, 0, 0, 1, 1},
        {2, 8, 6, 17, 21, 3, 1, 1, 1, 1, 1, 1, 0, 3},    /* threaded: pixel split */
        {2, 3, 8, 23, 19, 7, 2, 3, 1, 1, 1, 0, 0, 3},
        {2, 7, 5, 13, 11, 1, 1, 0, 1, 1, 0, 1, 0, 3},
        {2, 8, 12, 9, 13, 3, 2, 1, 4, 0, 1, 0, 0, 3},
        {2, 8, 6, 15, 13, 3, 1, 1, 1, 1, 1, 1, 1, 3},    /* threaded Winograd */
    };
    rng r = {12345};
    double worst = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        worst = fmax(worst, conv_one(&r, &cases[i]));
    print_message("  conv2d: worst err/tol %.3g over %zu cases\n", worst,
                  sizeof cases / sizeof cases[0]);
}

/* ---------------------------------------------------------------- bn_fold */

static void bn_fold_one(rng *r, int with_bias)
{
    const int B = 2, cin = 4, cout = 6, h = 7, w = 9, k = 3;
    const float eps = 1e-5f;
    size_t per = (size_t)cin * k * k, nx = (size_t)B * cin * h * w, ny = (size_t)B * cout * h * w;
    float *wt = falloc(cout * per), *b = falloc(cout), *gamma = falloc(cout), *beta = falloc(cout),
          *mean = falloc(cout), *var = falloc(cout), *wf = falloc(cout * per), *bf = falloc(cout),
          *x = falloc(nx), *y = falloc(ny);
    fill_unif(r, wt, cout * per, -0.5, 0.5);
    fill_unif(r, b, cout, -0.5, 0.5);
    fill_unif(r, gamma, cout, -1.5, 1.5);
    fill_unif(r, beta, cout, -1.0, 1.0);
    fill_unif(r, mean, cout, -1.0, 1.0);
    fill_unif(r, var, cout, 0.05, 2.0);
    var[0] = 0.f; /* eps must be inside the sqrt */
    fill_normal(r, x, nx, 0.0, 1.0);
    uf_bn_fold(cout, per, wt, with_bias ? b : NULL, gamma, beta, mean, var, eps, wf, bf);

    /* the folded parameters themselves, against the formula in double */
    double werr = 0, berr = 0;
    for (int o = 0; o < cout; o++) {
        double inv = gamma[o] / sqrt((double)var[o] + (double)eps);
        for (size_t i = 0; i < per; i++) {
            double e = wt[o * per + i] * inv;
            werr = fmax(werr, fabs(wf[o * per + i] - e) / fmax(1e-30, fabs(e)));
        }
        double eb = beta[o] - mean[o] * inv + (with_bias ? b[o] * inv : 0.0);
        berr = fmax(berr, fabs(bf[o] - eb) / fmax(1.0, fabs(eb)));
    }
    print_message("  bn_fold%s: folded w rel err %.3g, b err %.3g\n", with_bias ? " (conv bias)" : "",
                  werr, berr);
    assert_true(werr <= 1e-6);
    assert_true(berr <= 1e-6);

    /* conv with folded weights == BN(conv(x)) */
    uf_conv c = {.cout = cout, .cin = cin, .k = k, .stride = 1, .pad = 1, .groups = 1, .w = wt,
                 .b = with_bias ? b : NULL};
    double *xd = to_double(x, nx), *ref = dalloc(ny);
    ref_conv(&c, xd, B, h, w, NULL, UF_ACT_NONE, ref);
    for (int bi = 0; bi < B; bi++)
        for (int o = 0; o < cout; o++)
            for (int i = 0; i < h * w; i++) {
                double *v = &ref[((size_t)bi * cout + o) * h * w + i];
                *v = (*v - mean[o]) / sqrt((double)var[o] + (double)eps) * gamma[o] + beta[o];
            }
    uf_conv cf = c;
    cf.w = wf;
    cf.b = bf;
    run_conv(&cf, x, B, h, w, y, UF_ACT_NONE, 0, 1);
    check_rel(with_bias ? "conv(folded) vs BN(conv+bias)" : "conv(folded) vs BN(conv)", y, ref, ny);
    free(wt), free(b), free(gamma), free(beta), free(mean), free(var), free(wf), free(bf), free(x),
        free(y), free(xd), free(ref);
}

static void test_bn_fold(void **state)
{
    (void)state;
    rng r = {777};
    bn_fold_one(&r, 0);
    bn_fold_one(&r, 1);
}

/* ---------------------------------------------------------------- maxpool */

static void test_maxpool(void **state)
{
    (void)state;
    /* k, s, p: the ResNet stem's 3/2/1 (special-cased) and a few generic ones */
    static const int kinds[][3] = {{3, 2, 1}, {3, 1, 1}, {2, 2, 0}, {3, 2, 0}, {5, 2, 2}};
    static const int sizes[][2] = {{1, 1}, {1, 2}, {2, 1}, {2, 2}, {3, 3}, {4, 5}, {5, 4}, {7, 9},
                                   {8, 6}, {13, 16}, {16, 13}, {56, 57}, {112, 112}};
    const int B = 2, C = 3;
    rng r = {4242};
    int ncase = 0;
    for (size_t ki = 0; ki < sizeof kinds / sizeof kinds[0]; ki++)
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            int k = kinds[ki][0], s = kinds[ki][1], p = kinds[ki][2], h = sizes[si][0], w = sizes[si][1];
            if (h + 2 * p < k || w + 2 * p < k)
                continue;
            int ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1;
            size_t nx = (size_t)B * C * h * w, ny = (size_t)B * C * ho * wo;
            float *x = falloc(nx), *y = falloc(ny);
            fill_unif(&r, x, nx, -10.0, -0.5); /* all negative: zero padding would show */
            uf_maxpool2d(x, B, C, h, w, k, s, p, y);
            size_t bad = 0;
            for (int pl = 0; pl < B * C; pl++)
                for (int oy = 0; oy < ho; oy++)
                    for (int ox = 0; ox < wo; ox++) {
                        float m = -INFINITY;
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * s - p + ky, ix = ox * s - p + kx;
                                if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                                    m = fmaxf(m, x[((size_t)pl * h + iy) * w + ix]);
                            }
                        float got = y[((size_t)pl * ho + oy) * wo + ox];
                        if (got != m) {
                            if (!bad)
                                print_message("  maxpool k%d s%d p%d %dx%d: plane %d (%d,%d) got %g want %g\n",
                                              k, s, p, h, w, pl, oy, ox, got, m);
                            bad++;
                        }
                    }
            if (bad)
                fail_msg("maxpool k%d s%d p%d %dx%d: %zu of %zu outputs differ", k, s, p, h, w, bad, ny);
            free(x), free(y);
            ncase++;
        }
    print_message("  maxpool: %d shape/kind cases, all outputs exact\n", ncase);
}

/* ---------------------------------------------------------------- layernorm */

static void layernorm_one(rng *r, int B, size_t n, double offset, int threads, int inplace)
{
    const float eps = 1e-5f;
    float *x = falloc(B * n), *g = falloc(n), *be = falloc(n), *y = falloc(B * n);
    fill_normal(r, x, B * n, offset, 1.0);
    fill_unif(r, g, n, -1.5, 1.5);
    fill_unif(r, be, n, -1.0, 1.0);
    /* ref: exact two-pass moments; reff: the same with the mean rounded to float32 before the
     * subtraction, as the kernel (and PyTorch) does. That rounding (half an ulp of |mean|,
     * times rstd * |gamma|) is inherent, not a bug: ref is checked with it allowed explicitly,
     * reff with the plain relative tolerance. */
    double *ref = dalloc(B * n), *reff = dalloc(B * n), extra = 0;
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * n;
        double s = 0, ss = 0;
        for (size_t i = 0; i < n; i++)
            s += xb[i];
        double mean = s / (double)n, meanf = (float)mean;
        for (size_t i = 0; i < n; i++)
            ss += (xb[i] - mean) * (xb[i] - mean);
        double rstd = 1.0 / sqrt(ss / (double)n + eps);
        for (size_t i = 0; i < n; i++) {
            ref[(size_t)b * n + i] = (xb[i] - mean) * rstd * g[i] + be[i];
            reff[(size_t)b * n + i] = (xb[i] - meanf) * rstd * g[i] + be[i];
        }
        extra = fmax(extra, ldexp(1.0, ilogb(fabs(mean) + 1e-30) - 24) * rstd * 1.5);
    }
    const float *src = x;
    if (inplace) {
        memcpy(y, x, sizeof(float) * B * n);
        src = y;
    }
    if (threads > 1) {
        uf_pool *pool = make_pool(threads);
        uf_exec ex = {.pool = pool, .nt = threads};
        uf_layernorm_chw_ex(&ex, src, B, n, g, be, eps, y);
        uf_pool_free(pool);
    } else {
        uf_layernorm_chw(src, B, n, g, be, eps, y);
    }
    char what[128];
    snprintf(what, sizeof what, "layernorm B%d n=%zu offset %g t%d%s (f32 mean)", B, n, offset, threads,
             inplace ? " in-place" : "");
    check_rel(what, y, reff, B * n);
    double tol = REL_TOL * fmax(1.0, absmax_d(ref, B * n)) + extra, e = err_d(y, ref, B * n);
    print_message("    vs exact mean: max|err| %.3g (tol %.3g incl. %.3g for the f32 mean)\n", e, tol, extra);
    if (!(e <= tol))
        fail_msg("layernorm n=%zu offset %g: max abs error %g > %g", n, offset, e, tol);
    free(x), free(g), free(be), free(y), free(ref), free(reff);
}

static void test_layernorm(void **state)
{
    (void)state;
    rng r = {99};
    layernorm_one(&r, 2, 5 * 7 * 9, 1000.0, 1, 0);
    layernorm_one(&r, 2, 5 * 7 * 9, 1000.0, 1, 1);
    layernorm_one(&r, 2, 64 * 28 * 28, 1000.0, 1, 0);
    layernorm_one(&r, 2, 64 * 28 * 28, 1000.0, 3, 0);
    layernorm_one(&r, 2, 64 * 28 * 28, 0.0, 3, 1);
    layernorm_one(&r, 2, 3 * 5 * 7, -37.0, 4, 0); /* fewer elements than threads x 64 */
}

/* ---------------------------------------------------------------- resize_bilinear */

/* PyTorch upsample_bilinear2d, align_corners=False, transcribed: float32 source index,
 * src = max((dst + 0.5) * in/out - 0.5, 0), i0 = (int)src, i1 = min(i0 + 1, in - 1). */
static void ref_taps(int in, int out, int d, int *i0, int *i1, double *l1)
{
    float scale = (float)in / (float)out;
    float src = scale * ((float)d + 0.5f) - 0.5f;
    if (src < 0.f)
        src = 0.f;
    *i0 = (int)src;
    *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
    *l1 = (double)(src - (float)*i0);
}

static void ref_resize(const float *in, int planes, int ih, int iw, double *out, int oh, int ow)
{
    for (int p = 0; p < planes; p++)
        for (int oy = 0; oy < oh; oy++) {
            int y0, y1;
            double ly;
            ref_taps(ih, oh, oy, &y0, &y1, &ly);
            for (int ox = 0; ox < ow; ox++) {
                int x0, x1;
                double lx;
                ref_taps(iw, ow, ox, &x0, &x1, &lx);
                const float *pl = in + (size_t)p * ih * iw;
                out[((size_t)p * oh + oy) * ow + ox] =
                    (1 - ly) * ((1 - lx) * pl[y0 * iw + x0] + lx * pl[y0 * iw + x1]) +
                    ly * ((1 - lx) * pl[y1 * iw + x0] + lx * pl[y1 * iw + x1]);
            }
        }
}

typedef struct torch_pt {
    int p, y, x;
    float v;
} torch_pt;

/* in[p,y,x] = ((131y + 71x + 17p + 5xy) mod 97) / 64 - 0.75 (exact in float32) */
static void torch_input(float *x, int P, int ih, int iw)
{
    for (int p = 0; p < P; p++)
        for (int y = 0; y < ih; y++)
            for (int xx = 0; xx < iw; xx++)
                x[((size_t)p * ih + y) * iw + xx] = (float)((y * 131 + xx * 71 + p * 17 + xx * y * 5) % 97) / 64.0f - 0.75f;
}

/* F.interpolate(x[None], size=(oh, ow), mode="bilinear", align_corners=False), torch 1.13.1 */
static const struct torch_case {
    int P, ih, iw, oh, ow;
    torch_pt pts[9];
} torch_cases[] = {
    {2, 16, 16, 64, 64, {{0, 0, 0, -7.500000000e-01f}, {1, 63, 63, -7.343750000e-01f},
                         {0, 63, 0, -3.593750000e-01f}, {1, 0, 63, -5.156250000e-01f},
                         {0, 32, 21, 2.458496094e-01f}, {1, 22, 33, 4.870605469e-01f},
                         {0, 1, 1, -7.500000000e-01f}, {1, 62, 62, -7.343750000e-01f},
                         {0, 7, 11, 2.180175781e-01f}}},
    {3, 10, 7, 23, 31, {{0, 0, 0, -7.500000000e-01f}, {2, 22, 30, 2.812500000e-01f},
                        {0, 22, 0, -5.156250000e-01f}, {2, 0, 30, 3.750000000e-01f},
                        {0, 11, 10, 2.268134430e-02f}, {2, 8, 16, -2.665345967e-01f},
                        {0, 1, 1, -6.691576242e-01f}, {2, 21, 29, 1.290757656e-01f},
                        {0, 7, 11, 3.171567619e-01f}}},
    {1, 9, 13, 5, 6, {{0, 0, 0, -2.257812321e-01f}, {0, 4, 5, -2.812489867e-02f},
                      {0, 4, 0, 3.656248748e-01f}, {0, 0, 5, 1.070314571e-01f},
                      {0, 2, 2, -6.015624404e-01f}, {0, 2, 4, 5.078123808e-01f},
                      {0, 1, 1, -2.257813215e-01f}, {0, 3, 4, 3.671880811e-02f},
                      {0, 2, 5, 3.046874702e-01f}}},
    {1, 5, 8, 16, 12, {{0, 0, 0, -7.500000000e-01f}, {0, 15, 11, 7.187500000e-01f},
                       {0, 15, 0, -1.406250000e-01f}, {0, 0, 11, -5.625000000e-01f},
                       {0, 8, 4, -1.989746392e-01f}, {0, 6, 7, -1.132811904e-01f},
                       {0, 1, 1, -1.953125000e-01f}, {0, 14, 10, 7.812849246e-03f},
                       {0, 7, 11, 1.464843750e-01f}}},
};

static void test_resize_bilinear(void **state)
{
    (void)state;
    static const int cases[][5] = {/* planes, ih, iw, oh, ow */
                                   {2, 16, 16, 64, 64},  {3, 10, 7, 23, 31}, {1, 9, 13, 5, 6},
                                   {1, 5, 8, 16, 12},    {2, 8, 8, 256, 256}, {2, 7, 5, 7, 5},
                                   {1, 1, 1, 3, 4},      {1, 6, 4, 1, 1},     {2, 32, 24, 100, 75}};
    rng r = {2024};
    double worst = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int P = cases[i][0], ih = cases[i][1], iw = cases[i][2], oh = cases[i][3], ow = cases[i][4];
        size_t nx = (size_t)P * ih * iw, ny = (size_t)P * oh * ow;
        float *x = falloc(nx), *y = falloc(ny);
        double *ref = dalloc(ny);
        fill_normal(&r, x, nx, 0.0, 1.0);
        ref_resize(x, P, ih, iw, ref, oh, ow);
        uf_resize_bilinear(x, P, ih, iw, y, oh, ow);
        char what[96];
        snprintf(what, sizeof what, "resize %dx%dx%d -> %dx%d", P, ih, iw, oh, ow);
        worst = fmax(worst, check_rel(what, y, ref, ny));
        if (ih == oh && iw == ow)
            for (size_t j = 0; j < nx; j++)
                assert_true(y[j] == x[j]); /* identity size: exact copy */
        free(x), free(y), free(ref);
    }
    /* spot values from PyTorch */
    double terr = 0;
    for (size_t i = 0; i < sizeof torch_cases / sizeof torch_cases[0]; i++) {
        const struct torch_case *tc = &torch_cases[i];
        float *x = falloc((size_t)tc->P * tc->ih * tc->iw), *y = falloc((size_t)tc->P * tc->oh * tc->ow);
        torch_input(x, tc->P, tc->ih, tc->iw);
        uf_resize_bilinear(x, tc->P, tc->ih, tc->iw, y, tc->oh, tc->ow);
        for (int j = 0; j < 9; j++) {
            const torch_pt *pt = &tc->pts[j];
            float got = y[((size_t)pt->p * tc->oh + pt->y) * tc->ow + pt->x];
            double e = fabs((double)got - pt->v);
            terr = fmax(terr, e);
            if (!(e <= 1e-6))
                fail_msg("resize %dx%d -> %dx%d at (%d,%d,%d): %.9g vs torch %.9g", tc->ih, tc->iw,
                         tc->oh, tc->ow, pt->p, pt->y, pt->x, got, pt->v);
        }
        free(x), free(y);
    }
    print_message("  resize: worst err/tol %.3g; vs torch spot values max|err| %.3g (tol 1e-6)\n",
                  worst, terr);
}

/* ---------------------------------------------------------------- pixel_shuffle2, copy_channels */

/* F.pixel_shuffle(torch.arange(96.).view(2, 8, 2, 3), 2).flatten(), torch 1.13.1 */
static const int torch_shuffle[96] = {
    0,  6,  1,  7,  2,  8,  12, 18, 13, 19, 14, 20, 3,  9,  4,  10, 5,  11, 15, 21, 16, 22, 17, 23,
    24, 30, 25, 31, 26, 32, 36, 42, 37, 43, 38, 44, 27, 33, 28, 34, 29, 35, 39, 45, 40, 46, 41, 47,
    48, 54, 49, 55, 50, 56, 60, 66, 61, 67, 62, 68, 51, 57, 52, 58, 53, 59, 63, 69, 64, 70, 65, 71,
    72, 78, 73, 79, 74, 80, 84, 90, 85, 91, 86, 92, 75, 81, 76, 82, 77, 83, 87, 93, 88, 94, 89, 95};

static void test_pixel_shuffle2(void **state)
{
    (void)state;
    float in[96], out[96];
    for (int i = 0; i < 96; i++)
        in[i] = (float)i;
    uf_pixel_shuffle2(in, 2, 8, 2, 3, out);
    for (int i = 0; i < 96; i++)
        if (out[i] != (float)torch_shuffle[i])
            fail_msg("pixel_shuffle2 vs torch: out[%d] = %g, torch %d", i, out[i], torch_shuffle[i]);

    static const int shapes[][4] = {{2, 12, 5, 7}, {3, 4, 1, 1}, {1, 20, 6, 3}};
    rng r = {31337};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], C = shapes[s][1], h = shapes[s][2], w = shapes[s][3], G = C / 4;
        size_t n = (size_t)B * C * h * w;
        float *x = falloc(n), *y = falloc(n);
        fill_normal(&r, x, n, 0.0, 1.0);
        uf_pixel_shuffle2(x, B, C, h, w, y);
        for (int b = 0; b < B; b++)
            for (int g = 0; g < G; g++)
                for (int a = 0; a < 2; a++)
                    for (int bb = 0; bb < 2; bb++)
                        for (int i = 0; i < h; i++)
                            for (int j = 0; j < w; j++) {
                                float want = x[(((size_t)b * C + 4 * g + 2 * a + bb) * h + i) * w + j];
                                float got = y[(((size_t)b * G + g) * 2 * h + 2 * i + a) * 2 * w + 2 * j + bb];
                                if (got != want)
                                    fail_msg("pixel_shuffle2 B%d C%d %dx%d: out[%d,%d,%d,%d] wrong", B, C,
                                             h, w, b, g, 2 * i + a, 2 * j + bb);
                            }
        free(x), free(y);
    }
    print_message("  pixel_shuffle2: torch constant case and 3 random shapes exact\n");
}

static void test_copy_channels(void **state)
{
    (void)state;
    static const int cases[][5] = {/* B, C, c0, n, hw */ {3, 7, 2, 4, 15}, {2, 5, 0, 5, 6},
                                   {2, 9, 8, 1, 1},       {1, 4, 1, 2, 33}};
    rng r = {5};
    for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) {
        int B = cases[s][0], C = cases[s][1], c0 = cases[s][2], n = cases[s][3];
        size_t hw = (size_t)cases[s][4];
        float *x = falloc((size_t)B * C * hw), *y = falloc((size_t)B * n * hw);
        fill_normal(&r, x, (size_t)B * C * hw, 0.0, 1.0);
        uf_copy_channels(x, B, C, c0, n, hw, y);
        for (int b = 0; b < B; b++)
            for (int c = 0; c < n; c++)
                for (size_t i = 0; i < hw; i++)
                    if (y[((size_t)b * n + c) * hw + i] != x[((size_t)b * C + c0 + c) * hw + i])
                        fail_msg("copy_channels B%d C%d c0 %d n %d: [%d,%d,%zu] wrong", B, C, c0, n, b, c, i);
        free(x), free(y);
    }
    print_message("  copy_channels: 4 shapes exact\n");
}

/* ---------------------------------------------------------------- flow block */

typedef struct fb_owned {
    float *w0, *b0, *w2, *b2, *scale, *offset, *wsoft, *U0, *U2;
    int32_t *perm;
} fb_owned;

static void make_block(rng *r, int C, double ratio, int k, int soft, int wino, uf_flow_block *b,
                       fb_owned *o)
{
    memset(b, 0, sizeof *b);
    memset(o, 0, sizeof *o);
    b->C = C;
    b->C2 = C / 2;
    b->C1 = C - b->C2;
    b->M = (int)(b->C1 * ratio);
    b->k = k;
    int C1 = b->C1, C2 = b->C2, M = b->M, K0 = C1 * k * k, K2 = M * k * k;
    o->w0 = falloc((size_t)M * K0);
    o->b0 = falloc(M);
    o->w2 = falloc((size_t)2 * C2 * K2);
    o->b2 = falloc(2 * C2);
    fill_unif(r, o->w0, (size_t)M * K0, -sqrt(3.0 / K0), sqrt(3.0 / K0));
    fill_unif(r, o->b0, M, -0.3, 0.3);
    /* raw subnet outputs of std ~10, so 0.1*a reaches tanh's saturation and J spans most of
     * [-clamp, clamp] */
    double a2 = 10.0 * sqrt(3.0 * 2.0 / K2);
    fill_unif(r, o->w2, (size_t)2 * C2 * K2, -a2, a2);
    fill_unif(r, o->b2, 2 * C2, -3.0, 3.0);
    b->sub0 = (uf_conv){.cout = M, .cin = C1, .k = k, .stride = 1, .pad = k / 2, .groups = 1,
                        .w = o->w0, .b = o->b0};
    b->sub2 = (uf_conv){.cout = 2 * C2, .cin = M, .k = k, .stride = 1, .pad = k / 2, .groups = 1,
                        .w = o->w2, .b = o->b2};
    if (wino && k == 3) {
        o->U0 = falloc((size_t)16 * M * C1);
        o->U2 = falloc((size_t)16 * 2 * C2 * M);
        uf_wino_weights(&b->sub0, o->U0);
        uf_wino_weights(&b->sub2, o->U2);
        b->sub0.wino = o->U0;
        b->sub2.wino = o->U2;
    }
    o->scale = falloc(C);
    o->offset = falloc(C);
    fill_unif(r, o->scale, C, 0.4, 1.6);
    fill_unif(r, o->offset, C, -0.5, 0.5);
    b->scale = o->scale;
    b->offset = o->offset;
    double lsum = 0;
    for (int c = 0; c < C; c++)
        lsum += (double)logf(o->scale[c]);
    b->log_scale_sum = (float)lsum; /* as the loader computes it */
    if (soft) {
        /* random orthogonal matrix: modified Gram-Schmidt on a Gaussian one, in double */
        double *q = dalloc((size_t)C * C);
        for (size_t i = 0; i < (size_t)C * C; i++)
            q[i] = rng_normal(r);
        for (int i = 0; i < C; i++) {
            for (int j = 0; j < i; j++) {
                double d = 0;
                for (int c = 0; c < C; c++)
                    d += q[i * C + c] * q[j * C + c];
                for (int c = 0; c < C; c++)
                    q[i * C + c] -= d * q[j * C + c];
            }
            double nn = 0;
            for (int c = 0; c < C; c++)
                nn += q[i * C + c] * q[i * C + c];
            for (int c = 0; c < C; c++)
                q[i * C + c] /= sqrt(nn);
        }
        o->wsoft = falloc((size_t)C * C);
        for (size_t i = 0; i < (size_t)C * C; i++)
            o->wsoft[i] = (float)q[i];
        free(q);
        b->wsoft = o->wsoft;
    } else {
        o->perm = malloc(sizeof(int32_t) * C);
        assert_non_null(o->perm);
        for (int i = 0; i < C; i++)
            o->perm[i] = i;
        for (int i = C - 1; i > 0; i--) { /* Fisher-Yates */
            int j = (int)(rng_next(r) % (uint64_t)(i + 1));
            int32_t t = o->perm[i];
            o->perm[i] = o->perm[j];
            o->perm[j] = t;
        }
        b->perm = o->perm;
    }
}

static void free_block(fb_owned *o)
{
    free(o->w0), free(o->b0), free(o->w2), free(o->b2), free(o->scale), free(o->offset), free(o->wsoft),
        free(o->U0), free(o->U2), free(o->perm);
}

/* a = 0.1 * subnet(x1) (double), x1 = [C1][hw] */
static void ref_subnet(const uf_flow_block *b, const double *x1, int h, int w, double *a)
{
    double *hid = dalloc((size_t)b->M * h * w);
    ref_conv(&b->sub0, x1, 1, h, w, NULL, UF_ACT_RELU, hid);
    ref_conv(&b->sub2, hid, 1, h, w, NULL, UF_ACT_NONE, a);
    for (size_t i = 0; i < (size_t)2 * b->C2 * h * w; i++)
        a[i] *= 0.1;
    free(hid);
}

/* Spec §3.4 forward in double. jabs = sum|J| + hw * sum|log scale| (the jac's error scale);
 * sat = fraction of |0.1 a_s| > 1 (how much tanh saturation the case exercises). */
static void ref_block(const uf_flow_block *b, const float *x, int B, int h, int w, double clamp,
                      double *out, double *jac, double *jabs, double *sat)
{
    size_t hw = (size_t)h * w;
    int C = b->C, C1 = b->C1, C2 = b->C2;
    double *xd = dalloc(C * hw), *a = dalloc(2 * C2 * hw), *v = dalloc(C * hw);
    size_t nsat = 0;
    for (int bi = 0; bi < B; bi++) {
        for (size_t i = 0; i < C * hw; i++)
            xd[i] = x[(size_t)bi * C * hw + i];
        ref_subnet(b, xd, h, w, a);
        double js = 0, ja = 0, ls = 0, la = 0;
        for (int c = 0; c < C; c++) {
            ls += log((double)b->scale[c]);
            la += fabs(log((double)b->scale[c]));
        }
        for (size_t i = 0; i < C2 * hw; i++) {
            double J = clamp * tanh(a[i]);
            nsat += fabs(a[i]) > 1.0;
            js += J;
            ja += fabs(J);
            xd[C1 * hw + i] = xd[C1 * hw + i] * exp(J) + a[C2 * hw + i]; /* y = cat(x1, x2') */
        }
        for (int c = 0; c < C; c++)
            for (size_t i = 0; i < hw; i++)
                v[c * hw + i] = xd[c * hw + i] * b->scale[c] + b->offset[c];
        double *ob = out + (size_t)bi * C * hw;
        for (int i = 0; i < C; i++)
            for (size_t p = 0; p < hw; p++) {
                double s = 0;
                if (b->perm)
                    s = v[(size_t)b->perm[i] * hw + p];
                else
                    for (int j = 0; j < C; j++)
                        s += (double)b->wsoft[i * C + j] * v[j * hw + p];
                ob[i * hw + p] = s;
            }
        jac[bi] = js + (double)hw * ls;
        jabs[bi] = ja + (double)hw * la;
    }
    *sat = (double)nsat / (double)((size_t)B * C2 * hw);
    free(xd), free(a), free(v);
}

/* The reverse (spec §3.4): undo the permutation (winv: W^-1 = W^T for the soft one), subtract
 * the offset, divide by the scale, then x2 = (x2' - t) * exp(-J) with the subnet on x1, which
 * the block leaves as is. */
static void ref_block_reverse(const uf_flow_block *b, const double *winv, const double *out, int B,
                              int h, int w, double clamp, double *x)
{
    size_t hw = (size_t)h * w;
    int C = b->C, C1 = b->C1, C2 = b->C2;
    double *v = dalloc(C * hw), *a = dalloc(2 * C2 * hw);
    for (int bi = 0; bi < B; bi++) {
        const double *ob = out + (size_t)bi * C * hw;
        double *xb = x + (size_t)bi * C * hw;
        for (int i = 0; i < C; i++)
            for (size_t p = 0; p < hw; p++) {
                if (b->perm) {
                    v[(size_t)b->perm[i] * hw + p] = ob[i * hw + p];
                } else {
                    double s = 0;
                    for (int j = 0; j < C; j++)
                        s += winv[i * C + j] * ob[j * hw + p];
                    v[i * hw + p] = s;
                }
            }
        for (int c = 0; c < C; c++)
            for (size_t p = 0; p < hw; p++)
                xb[c * hw + p] = (v[c * hw + p] - b->offset[c]) / b->scale[c];
        ref_subnet(b, xb, h, w, a);
        for (size_t i = 0; i < C2 * hw; i++)
            xb[C1 * hw + i] = (xb[C1 * hw + i] - a[C2 * hw + i]) * exp(-clamp * tanh(a[i]));
    }
    free(v), free(a);
}

/* The inverse of the float32 soft permutation in double (Gauss-Jordan, partial pivoting). The
 * matrix is orthogonal up to float32 rounding, so this is W^T to ~1e-7; using the exact inverse
 * keeps that rounding (amplified by 1/scale and exp(-J)) out of the invertibility check. */
static double *soft_inverse(const float *W, int C)
{
    double *a = dalloc((size_t)C * 2 * C);
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            a[(size_t)i * 2 * C + j] = W[(size_t)i * C + j];
            a[(size_t)i * 2 * C + C + j] = i == j;
        }
    for (int col = 0; col < C; col++) {
        int piv = col;
        for (int i = col + 1; i < C; i++)
            if (fabs(a[(size_t)i * 2 * C + col]) > fabs(a[(size_t)piv * 2 * C + col]))
                piv = i;
        for (int j = 0; j < 2 * C; j++) {
            double t = a[(size_t)col * 2 * C + j];
            a[(size_t)col * 2 * C + j] = a[(size_t)piv * 2 * C + j];
            a[(size_t)piv * 2 * C + j] = t;
        }
        double d = a[(size_t)col * 2 * C + col];
        for (int j = 0; j < 2 * C; j++)
            a[(size_t)col * 2 * C + j] /= d;
        for (int i = 0; i < C; i++)
            if (i != col) {
                double f = a[(size_t)i * 2 * C + col];
                for (int j = 0; j < 2 * C; j++)
                    a[(size_t)i * 2 * C + j] -= f * a[(size_t)col * 2 * C + j];
            }
    }
    double *inv = dalloc((size_t)C * C), dev = 0;
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            inv[(size_t)i * C + j] = a[(size_t)i * 2 * C + C + j];
            dev = fmax(dev, fabs(inv[(size_t)i * C + j] - W[(size_t)j * C + i]));
        }
    assert_true(dev <= 1e-6); /* orthogonal: the inverse is the transpose */
    free(a);
    return inv;
}

typedef struct fb_case {
    int C;
    double ratio;
    int k, soft, wino, threads, B, h, w;
    float clamp;
} fb_case;

/* Runs the library's block; out/jac [B*C*hw]/[B]. */
static void run_block(const uf_flow_block *b, const float *x, int B, int h, int w, float clamp,
                      int threads, float *out, float *jac)
{
    size_t hw = (size_t)h * w;
    float *hid = falloc(b->M * hw), *a = falloc(2 * b->C2 * hw), *v = falloc(b->C * hw);
    if (threads <= 1) {
        size_t nc = zmax(uf_conv_col_floats(&b->sub0, h, w), uf_conv_col_floats(&b->sub2, h, w));
        float *col = falloc(nc);
        uf_flow_block_forward(b, x, B, h, w, clamp, out, hid, a, col, v, jac);
        free(col);
    } else {
        uf_pool *pool = make_pool(threads);
        size_t stride = zmax(uf_conv_col_floats_mt(&b->sub0, h, w, threads),
                               uf_conv_col_floats_mt(&b->sub2, h, w, threads));
        float *col = falloc(stride * (size_t)threads);
        uf_exec ex = {.pool = pool, .nt = threads, .col = col, .col_stride = stride};
        uf_flow_block_forward_ex(&ex, b, x, B, h, w, clamp, out, hid, a, v, jac);
        free(col);
        uf_pool_free(pool);
    }
    free(hid), free(a), free(v);
}

static void flow_block_one(rng *r, const fb_case *fc, double *worst_out, double *worst_jac,
                           double *worst_inv)
{
    uf_flow_block b;
    fb_owned o;
    make_block(r, fc->C, fc->ratio, fc->k, fc->soft, fc->wino, &b, &o);
    int B = fc->B, h = fc->h, w = fc->w, C = fc->C;
    size_t hw = (size_t)h * w, n = (size_t)B * C * hw;
    float *x = falloc(n), *out = falloc(n), *jac = falloc(B);
    fill_normal(r, x, n, 0.0, 1.0);
    for (size_t i = 0; i < n; i++)
        out[i] = NAN;
    double *ref = dalloc(n), *rjac = dalloc(B), *jabs = dalloc(B), sat;
    ref_block(&b, x, B, h, w, fc->clamp, ref, rjac, jabs, &sat);
    run_block(&b, x, B, h, w, fc->clamp, fc->threads, out, jac);

    char what[160];
    snprintf(what, sizeof what, "block C%d(C1 %d C2 %d M %d) k%d %s%s clamp %.1f B%d %dx%d t%d", C, b.C1,
             b.C2, b.M, fc->k, fc->soft ? "soft" : "hard", b.sub0.wino ? " wino" : "", fc->clamp, B, h,
             w, fc->threads);
    *worst_out = fmax(*worst_out, check_rel(what, out, ref, n));
    for (int bi = 0; bi < B; bi++) {
        /* float32 terms summed: the error scales with the sum of their magnitudes */
        double e = fabs((double)jac[bi] - rjac[bi]), tol = 1e-6 * fmax(1.0, jabs[bi]);
        print_message("    jac[%d] %.7g vs %.7g err %.3g (tol %.3g); |0.1a_s|>1 for %.0f%%\n", bi, jac[bi],
                      rjac[bi], e, tol, 100 * sat);
        if (!(e <= tol))
            fail_msg("%s: jac[%d] %g vs %g (err %g > %g)", what, bi, jac[bi], rjac[bi], e, tol);
        *worst_jac = fmax(*worst_jac, e / tol);
    }

    /* invertibility: the test's reverse of the library's output gives x back */
    double *outd = to_double(out, n), *xr = dalloc(n), *winv = b.wsoft ? soft_inverse(b.wsoft, C) : NULL;
    ref_block_reverse(&b, winv, outd, B, h, w, fc->clamp, xr);
    double einv = err_d(x, xr, n);
    print_message("    reverse(forward(x)) vs x: max|err| %.3g (tol 1e-5)\n", einv);
    if (!(einv <= 1e-5))
        fail_msg("%s: reverse(forward(x)) differs from x by %g", what, einv);
    *worst_inv = fmax(*worst_inv, einv);
    /* and the reference against itself (the reverse is right) */
    ref_block_reverse(&b, winv, ref, B, h, w, fc->clamp, xr);
    assert_true(err_d(x, xr, n) <= 1e-9);

    if (b.perm) {
        /* the gather equals the 1x1 conv with the one-hot matrix, bit for bit */
        float *onehot = falloc((size_t)C * C), *out2 = falloc(n), *jac2 = falloc(B);
        for (int i = 0; i < C; i++)
            onehot[(size_t)i * C + b.perm[i]] = 1.f;
        uf_flow_block bs = b;
        bs.perm = NULL;
        bs.wsoft = onehot;
        run_block(&bs, x, B, h, w, fc->clamp, fc->threads, out2, jac2);
        assert_memory_equal(out, out2, sizeof(float) * n);
        assert_memory_equal(jac, jac2, sizeof(float) * B);
        free(onehot), free(out2), free(jac2);
    }
    free(x), free(out), free(jac), free(ref), free(rjac), free(jabs), free(outd), free(xr), free(winv);
    free_block(&o);
}

static void test_flow_block(void **state)
{
    (void)state;
    static const fb_case cases[] = {
        /* C  ratio k soft wino thr B  h  w  clamp */
        {10, 0.6, 3, 0, 0, 1, 2, 6, 7, 2.0f},  /* M = 3 */
        {10, 0.6, 3, 0, 1, 1, 2, 6, 7, 1.5f},
        {10, 1.0, 1, 0, 0, 1, 2, 5, 9, 2.0f},  /* M = 5 */
        {10, 1.0, 1, 0, 0, 1, 2, 5, 9, 1.5f},
        {10, 2.0, 3, 1, 0, 1, 2, 7, 5, 2.0f},  /* M = 10, soft */
        {10, 2.0, 3, 1, 1, 1, 2, 7, 5, 1.5f},
        {10, 0.6, 1, 1, 0, 1, 2, 4, 6, 1.5f},
        {11, 0.5, 3, 0, 1, 1, 2, 7, 6, 2.0f},  /* odd C: C1 6, C2 5, M 3 */
        {11, 1.0, 1, 0, 0, 1, 2, 5, 5, 1.5f},
        {11, 1.0, 3, 1, 0, 1, 2, 6, 5, 2.0f},
        {11, 0.5, 1, 1, 0, 1, 2, 3, 8, 1.5f},
        {3, 1.0, 3, 1, 0, 1, 2, 4, 3, 2.0f},   /* C1 2, C2 1 */
        {10, 1.0, 3, 0, 1, 3, 2, 12, 9, 2.0f}, /* threaded */
        {11, 1.0, 1, 1, 0, 3, 2, 9, 13, 1.5f},
        {11, 0.5, 3, 0, 0, 3, 2, 11, 10, 2.0f},
    };
    rng r = {8080};
    double wo = 0, wj = 0, wi = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        flow_block_one(&r, &cases[i], &wo, &wj, &wi);
    print_message("  flow block: worst out err/tol %.3g, jac err/tol %.3g, reverse max|err| %.3g\n", wo, wj, wi);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),          cmocka_unit_test(test_bn_fold),
        cmocka_unit_test(test_maxpool),         cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_resize_bilinear), cmocka_unit_test(test_pixel_shuffle2),
        cmocka_unit_test(test_copy_channels),   cmocka_unit_test(test_flow_block),
    };
    return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
