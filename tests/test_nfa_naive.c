/* test_nfa_naive.c — the NFA module against a naive re-implementation of the formula
 * (docs/nfa.md) on shapes the fixtures do not cover, batch independence and determinism, and
 * properties that must hold for any latent. */
#include "nfa_util.h"

/* ------------------------------------------------------------------------------------------ */
/* A naive implementation straight from docs/nfa.md (per channel, per window, reflect by index,
 * bicubic per output pixel), for shapes the fixtures do not cover.                           */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float rng_normal(uint64_t *s)
{
    double u1 = ((rng_next(s) >> 11) + 1.0) * 0x1p-53, u2 = (rng_next(s) >> 11) * 0x1p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static int refl(int i, int L) { return i < 0 ? -i : i >= L ? 2 * (L - 1) - i : i; }

static double naive_cubic(const double *m, int h, int w, int Y, int X, int H, int W)
{
    const double A = -0.75;
    double sy = H > 1 ? (double)(h - 1) / (H - 1) * Y : 0;
    double sx = W > 1 ? (double)(w - 1) / (W - 1) * X : 0;
    int iy = (int)floor(sy), ix = (int)floor(sx);
    double ty = sy - iy, tx = sx - ix;
    double wy[4], wx[4];
    double d[4] = {ty + 1, ty, 1 - ty, 2 - ty}, e[4] = {tx + 1, tx, 1 - tx, 2 - tx};
    /* Keys' cubic kernel by distance: |d| <= 1 and 1 < |d| < 2 */
    for (int j = 0; j < 4; j++) {
        double a = d[j], b = e[j];
        wy[j] = a <= 1 ? ((A + 2) * a - (A + 3)) * a * a + 1
                       : ((A * a - 5 * A) * a + 8 * A) * a - 4 * A;
        wx[j] = b <= 1 ? ((A + 2) * b - (A + 3)) * b * b + 1
                       : ((A * b - 5 * A) * b + 8 * A) * b - 4 * A;
    }
    double s = 0;
    for (int a = 0; a < 4; a++) {
        int r = UF_MIN(UF_MAX(iy - 1 + a, 0), h - 1);
        double row = 0;
        for (int b = 0; b < 4; b++) {
            int c = UF_MIN(UF_MAX(ix - 1 + b, 0), w - 1);
            row += wx[b] * m[r * w + c];
        }
        s += wy[a] * row;
    }
    return s;
}

static void test_naive_odd_shapes(void **state)
{
    (void)state;
    /* non-square, odd sizes, C = 1 at one scale, window 5 (half 2, 1, 1), thr 0.3, hp */
    int C[3] = {3, 1, 5}, h[3] = {5, 3, 2}, w[3] = {7, 4, 3};
    int H = 19, W = 27;
    uf_model_info info = make_info(3, C, h, w, H, W);
    for (int variant = 0; variant < 2; variant++) {
        uf_nfa_opts o = uf_nfa_opts_default();
        o.window = 5;
        o.prob_thr = variant ? 0.3 : 0.5;
        o.high_precision = variant;
        o.epsilon = -2.0;
        uf_nfa *n = NULL;
        uf_error err;
        assert_int_equal(uf_nfa_init(&info, &o, 1, &n, &err), UF_OK);
        uint64_t seed = 1234 + variant;
        float *z[UF_MAX_SCALES] = {0};
        for (int k = 0; k < 3; k++) {
            z[k] = malloc(sizeof(float) * C[k] * h[k] * w[k]);
            assert_non_null(z[k]);
            for (int i = 0; i < C[k] * h[k] * w[k]; i++)
                z[k][i] = 1.4f * rng_normal(&seed);
        }
        double *minus = malloc(sizeof(double) * H * W);
        uint8_t *mask = malloc((size_t)H * W);
        assert_non_null(minus);
        assert_non_null(mask);
        assert_int_equal(uf_nfa_run(n, (const float *const *)z, 1, minus, mask, NULL, NULL, &err),
                         UF_OK);
        float tau = uf_nfa_tau(n);
        double *ref = calloc((size_t)H * W, sizeof(double));
        assert_non_null(ref);
        for (int k = 0; k < 3; k++) {
            int half, nw;
            const double *tab = uf_nfa_table(n, k, &half, &nw);
            assert_int_equal(half, k == 0 ? 2 : 1);
            double *m = malloc(sizeof(double) * h[k] * w[k]);
            assert_non_null(m);
            for (int y = 0; y < h[k]; y++)
                for (int x = 0; x < w[k]; x++) {
                    long cnt = 0;
                    for (int c = 0; c < C[k]; c++)
                        for (int dy = -half; dy <= half; dy++)
                            for (int dx = -half; dx <= half; dx++) {
                                float v = z[k][(c * h[k] + refl(y + dy, h[k])) * w[k] +
                                               refl(x + dx, w[k])];
                                cnt += o.high_precision ? (double)v * v >= (double)tau
                                                        : v * v >= tau;
                            }
                    float xq = (float)cnt / (float)C[k];
                    int kk = (int)floorf(xq);
                    m[y * w[k] + x] = tab[kk > nw ? nw : kk];
                }
            const double *got = uf_nfa_log10_sf(n, k);
            for (int i = 0; i < h[k] * w[k]; i++)
                if (got[i] != m[i])
                    fail_msg("variant %d scale %d pixel %d: %g vs naive %g", variant, k, i, got[i],
                             m[i]);
            for (int Y = 0; Y < H; Y++)
                for (int X = 0; X < W; X++)
                    ref[Y * W + X] += naive_cubic(m, h[k], w[k], Y, X, H, W);
            free(m);
        }
        double e = 0;
        for (int i = 0; i < H * W; i++) {
            double r = -((double)uf_nfa_log10_n_tests(n) + ref[i]);
            e = fmax(e, fabs(minus[i] - r));
            assert_int_equal(mask[i], minus[i] > -2.0);
        }
        print_message("  naive variant %d: max|err| %.3g\n", variant, e);
        assert_true(e < 1e-12);
        assert_true(uf_nfa_log10_n_tests(n) == (float)log10(35 + 12 + 6));
        for (int k = 0; k < 3; k++)
            free(z[k]);
        free(minus);
        free(mask);
        free(ref);
        uf_nfa_free(n);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Batch and determinism                                                                      */

static void test_batch_and_determinism(void **state)
{
    (void)state;
    uf_st *st = ut_open(ut_golden_dir(), "expected_random.safetensors");
    uf_model_info info = fixture_info(st, "");
    const char *pre[2] = {"", "nfa_synth."};
    float *zb[3];
    const float *zs[2][UF_MAX_SCALES] = {{0}};
    for (int k = 0; k < 3; k++) {
        size_t per = (size_t)info.z_channels[k] * info.z_height[k] * info.z_width[k];
        zb[k] = malloc(sizeof(float) * 2 * per);
        assert_non_null(zb[k]);
        for (int b = 0; b < 2; b++) {
            char name[64];
            snprintf(name, sizeof name, "%sz.%d", pre[b], k);
            zs[b][k] = ut_f32(st, name, NULL);
            memcpy(zb[k] + b * per, zs[b][k], sizeof(float) * per);
        }
    }
    size_t HW = 256 * 256;
    double *m2 = malloc(sizeof(double) * 2 * HW), *m1 = malloc(sizeof(double) * HW);
    uint8_t *k2 = malloc(2 * HW), *k1 = malloc(HW);
    assert_true(m2 && m1 && k2 && k1);
    float f2[2], f1;
    double n2[2], n1;
    uf_error err;
    uf_nfa *n = plan(&info, 0, 2);
    const float *zz[UF_MAX_SCALES] = {zb[0], zb[1], zb[2]};
    assert_int_equal(uf_nfa_run(n, zz, 2, m2, k2, f2, n2, &err), UF_OK);
    for (int b = 0; b < 2; b++) {
        for (int rep = 0; rep < 2; rep++) { /* twice: the same bits every time */
            assert_int_equal(uf_nfa_run(n, zs[b], 1, m1, k1, &f1, &n1, &err), UF_OK);
            assert_memory_equal(m1, m2 + b * HW, sizeof(double) * HW);
            assert_memory_equal(k1, k2 + b * HW, HW);
            assert_true(f1 == f2[b]);
            assert_true(n1 == n2[b]);
        }
    }
    /* the synthetic sample is detected somewhere, the random one nowhere */
    assert_true(f2[0] == 0.0f);
    assert_true(f2[1] > 0.0f);
    /* epsilon moves the mask threshold and nothing else */
    uf_nfa_opts o = uf_nfa_opts_default();
    o.epsilon = 2.0;
    uf_nfa *ne = NULL;
    assert_int_equal(uf_nfa_init(&info, &o, 1, &ne, &err), UF_OK);
    assert_int_equal(uf_nfa_run(ne, zs[1], 1, m1, k1, &f1, &n1, &err), UF_OK);
    assert_memory_equal(m1, m2 + HW, sizeof(double) * HW);
    size_t c = 0;
    for (size_t i = 0; i < HW; i++) {
        assert_int_equal(k1[i], m1[i] > 2.0);
        c += k1[i];
    }
    assert_true(f1 < f2[1] && f1 == (float)((double)c / HW));
    uf_nfa_free(ne);
    uf_nfa_free(n);
    for (int k = 0; k < 3; k++)
        free(zb[k]);
    free(m2);
    free(m1);
    free(k2);
    free(k1);
    uf_st_close(st);
}

/* ------------------------------------------------------------------------------------------ */
/* Properties (issue 3): no detection on N(0,1) latents in >= 95 % of seeds; an inflated 8x8
 * block at the finest scale is detected and localised.                                      */

static void fill_normal(float *z, size_t m, uint64_t *seed)
{
    for (size_t i = 0; i < m; i++)
        z[i] = rng_normal(seed);
}

static void test_properties(void **state)
{
    (void)state;
    int C[3] = {84, 80, 128}, h[3] = {64, 32, 16};
    uf_model_info info = make_info(3, C, h, h, 256, 256);
    uf_nfa *n = plan(&info, 0, 1);
    float *z[UF_MAX_SCALES] = {0};
    size_t m[3];
    for (int k = 0; k < 3; k++) {
        m[k] = (size_t)C[k] * h[k] * h[k];
        z[k] = malloc(sizeof(float) * m[k]);
        assert_non_null(z[k]);
    }
    size_t HW = 256 * 256;
    uint8_t *mask = malloc(HW);
    assert_non_null(mask);
    uf_error err;
    const int seeds = 20;
    int clean = 0;
    double worst = -INFINITY;
    for (int s = 0; s < seeds; s++) {
        uint64_t seed = 1000 + s;
        for (int k = 0; k < 3; k++)
            fill_normal(z[k], m[k], &seed);
        float frac;
        double mn;
        assert_int_equal(uf_nfa_run(n, (const float *const *)z, 1, NULL, mask, &frac, &mn, &err),
                         UF_OK);
        clean += frac == 0.0f;
        worst = fmax(worst, -mn);
    }
    print_message("  N(0,1): %d/%d seeds without detection (max -log10 NFA %.2f)\n", clean, seeds,
                  worst);
    assert_true(clean * 100 >= 95 * seeds);

    /* Inflate a block of the finest latent (all channels) by 2.5. An 8x8 block is detected
     * with no false positive, but only its core: a 7x7 window centred near the block's edge
     * holds too many normal pixels, and the two coarser scales (untouched) add their
     * ~log10(1/2) each, so the mask IoU with the block is ~0.2 (issue 3 asked for > 0.5, which
     * the exact formula does not give at this size). A 16x16 block reaches IoU > 0.5. */
    for (int bs = 8; bs <= 16; bs += 8) {
        uint64_t seed = 77;
        for (int k = 0; k < 3; k++)
            fill_normal(z[k], m[k], &seed);
        const int y0 = 20, x0 = 36;
        for (int c = 0; c < C[0]; c++)
            for (int y = y0; y < y0 + bs; y++)
                for (int x = x0; x < x0 + bs; x++)
                    z[0][(c * 64 + y) * 64 + x] *= 2.5f;
        float frac;
        double mn;
        assert_int_equal(uf_nfa_run(n, (const float *const *)z, 1, NULL, mask, &frac, &mn, &err),
                         UF_OK);
        /* the block in output pixels: latent pixel i covers output ~[4i, 4i + 4) */
        size_t inter = 0, uni = 0, marked = 0;
        double cy = 0, cx = 0;
        for (int Y = 0; Y < 256; Y++)
            for (int X = 0; X < 256; X++) {
                int in = Y >= 4 * y0 && Y < 4 * (y0 + bs) && X >= 4 * x0 && X < 4 * (x0 + bs);
                int mk = mask[Y * 256 + X];
                inter += in && mk;
                uni += in || mk;
                marked += mk;
                cy += mk * Y;
                cx += mk * X;
            }
        double iou = (double)inter / (double)uni;
        double prec = marked ? (double)inter / (double)marked : 0;
        print_message("  inflated %dx%d block: anomalous fraction %.4f, IoU %.3f, precision %.3f, "
                      "min log10 NFA %.1f\n", bs, bs, frac, iou, prec, mn);
        assert_true(marked > 0);        /* detected */
        assert_true(prec >= 0.95);      /* localised: the mask lies in the block */
        cy /= (double)marked;
        cx /= (double)marked;
        assert_true(fabs(cy - 4 * (y0 + bs / 2.0)) < 8 && fabs(cx - 4 * (x0 + bs / 2.0)) < 8);
        if (bs == 16)
            assert_true(iou > 0.5);
    }
    free(mask);
    for (int k = 0; k < 3; k++)
        free(z[k]);
    uf_nfa_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_naive_odd_shapes),
        cmocka_unit_test(test_batch_and_determinism),
        cmocka_unit_test(test_properties),
    };
    return cmocka_run_group_tests_name("nfa_naive", tests, NULL, NULL);
}
