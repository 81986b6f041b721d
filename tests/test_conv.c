/* test_conv.c — convolution (im2col/SGEMM, Winograd, groups, threads) and BatchNorm folding
 * against naive double-precision references on seeded random inputs.
 * Tolerances are 1e-5 x max(1, max|ref|) unless said otherwise (an indexing bug gives O(1)
 * errors); pure data movement must be exact. */
#include "kref.h"

/* ---------------------------------------------------------------- conv2d */

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

/* ---------------------------------------------------------------- conv2d backward */

/* The gradients of y = conv(x) + b (stride 1, "same" padding) against loops in double:
 * gW[o,c,ky,kx] = sum gy[o,y,x] x[c, y-p+ky, x-p+kx], gb[o] = sum gy[o], gx the adjoint. */
static void conv_backward_one(rng *r, int cin, int cout, int k, int h, int w, int accumulate)
{
    int p = k / 2;
    size_t hw = (size_t)h * w, nw = (size_t)cout * cin * k * k;
    float *x = falloc((size_t)cin * hw), *gy = falloc((size_t)cout * hw), *W = falloc(nw);
    float *gW = falloc(nw), *gb = falloc((size_t)cout), *gx = falloc((size_t)cin * hw);
    fill_unif(r, x, (size_t)cin * hw, -1, 1);
    fill_unif(r, gy, (size_t)cout * hw, -1, 1);
    fill_unif(r, W, nw, -0.5, 0.5);
    fill_unif(r, gW, nw, -1, 1);      /* the kernel adds to what is there */
    fill_unif(r, gb, (size_t)cout, -1, 1);
    fill_unif(r, gx, (size_t)cin * hw, -1, 1);
    double *rW = to_double(gW, nw), *rb = to_double(gb, (size_t)cout);
    double *rx = accumulate ? to_double(gx, (size_t)cin * hw) : dalloc((size_t)cin * hw);
    if (!accumulate)
        memset(rx, 0, sizeof(double) * (size_t)cin * hw);
    for (int o = 0; o < cout; o++)
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++) {
                double g = gy[(size_t)o * hw + (size_t)y * w + xx];
                rb[o] += g;
                for (int c = 0; c < cin; c++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = y - p + ky, ix = xx - p + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                continue;
                            size_t wi = (((size_t)o * cin + c) * k + ky) * k + kx;
                            size_t xi = (size_t)c * hw + (size_t)iy * w + ix;
                            rW[wi] += g * x[xi];
                            rx[xi] += g * W[wi];
                        }
            }
    uf_conv c = {.cout = cout, .cin = cin, .k = k, .stride = 1, .pad = p, .groups = 1, .w = W};
    size_t cs = uf_conv_col_floats(&c, h, w);
    float *col = falloc(cs + 1), *gcol = falloc(cs + 1);
    uf_conv2d_backward(&c, x, h, w, gy, gW, gb, gx, accumulate, col, gcol);
    char what[96];
    snprintf(what, sizeof what, "backward k%d %dx%d cin %d cout %d acc %d: gW", k, h, w, cin, cout,
             accumulate);
    check_rel(what, gW, rW, nw);
    check_rel("  gb", gb, rb, (size_t)cout);
    check_rel("  gx", gx, rx, (size_t)cin * hw);
    free(x), free(gy), free(W), free(gW), free(gb), free(gx), free(col), free(gcol);
    free(rW), free(rb), free(rx);
}

static void test_conv2d_backward(void **state)
{
    (void)state;
    rng r = {4242};
    conv_backward_one(&r, 5, 7, 3, 9, 6, 0);
    conv_backward_one(&r, 5, 7, 3, 9, 6, 1);
    conv_backward_one(&r, 8, 3, 1, 4, 11, 0);
    conv_backward_one(&r, 3, 8, 1, 5, 5, 1);
    conv_backward_one(&r, 2, 4, 3, 1, 7, 1);   /* a single row: every vertical tap is padding */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_bn_fold),
        cmocka_unit_test(test_conv2d_backward),
    };
    return cmocka_run_group_tests_name("conv", tests, NULL, NULL);
}
