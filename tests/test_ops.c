/* test_ops.c — max pooling, LayerNorm, bilinear resize, pixel shuffle and channel copies against
 * naive references (and a few values computed by PyTorch 1.13, embedded as constants).
 * Tolerances are 1e-5 x max(1, max|ref|) unless said otherwise (an indexing bug gives O(1)
 * errors); pure data movement must be exact. */
#include "kref.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_resize_bilinear),
        cmocka_unit_test(test_pixel_shuffle2),
        cmocka_unit_test(test_copy_channels),
    };
    return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
