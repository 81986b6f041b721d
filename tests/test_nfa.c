/* test_nfa.c — the a-contrario NFA module (lib/src/models/nfa.c, docs/nfa.md) against
 * anomalib's own outputs (tests/golden: nfa_lp.*, nfa_hp.*, nfa_synth.*), on the cases anomalib
 * gets wrong (-inf/NaN, the mask sign) and on bad options. Tolerance vs anomalib: 1e-3 abs on
 * every finite log10 value. test_nfa_naive.c checks odd shapes against a naive version. */
#include "nfa_util.h"

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */

/* Ours vs an anomalib map: within tol where the reference is finite; where anomalib has
 * -inf/NaN ours must be finite and very negative (log10 sf) / very positive (minus map).
 * Returns the max abs error over the finite entries. */
static double check_map(const char *what, const double *got, const double *ref, size_t n,
                        double tol, int ref_is_minus)
{
    double e = 0;
    size_t nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]))
            fail_msg("%s[%zu] = %g is not finite", what, i, got[i]);
        if (isfinite(ref[i])) {
            e = fmax(e, fabs(got[i] - ref[i]));
        } else {
            nonfinite++;
            if (ref_is_minus ? !(got[i] > 1.0) : !(got[i] < -1.0))
                fail_msg("%s[%zu]: anomalib %g, ours %g not extreme", what, i, ref[i], got[i]);
        }
    }
    print_message("  %-30s max|err| %.3g (tol %.0e)%s\n", what, e, tol,
                  nonfinite ? " (+ non-finite in anomalib)" : "");
    if (!(e <= tol))
        fail_msg("%s: max abs error %g > %g", what, e, tol);
    return e;
}

/* Our mask is the complement of anomalib's wherever anomalib's score is finite and not
 * within 1e-6 of the 0 boundary (where 1e-13 of rounding may legitimately flip it). */
static void check_mask(const char *what, const uint8_t *ours, const uint8_t *anomalib,
                       const double *ref_minus, size_t n, int *saw0, int *saw1)
{
    size_t checked = 0, boundary = 0;
    for (size_t i = 0; i < n; i++) {
        if (ours[i] > 1)
            fail_msg("%s[%zu] = %d", what, i, ours[i]);
        *saw0 |= ours[i] == 0;
        *saw1 |= ours[i] == 1;
        if (!isfinite(ref_minus[i]))
            continue;
        if (fabs(ref_minus[i]) <= 1e-6) {
            boundary++;
            continue;
        }
        if (ours[i] != !anomalib[i])
            fail_msg("%s[%zu]: ours %d, anomalib %d (minus_log10_nfa %g)", what, i, ours[i],
                     anomalib[i], ref_minus[i]);
        checked++;
    }
    print_message("  %-30s = !anomalib on %zu pixels (%zu at the boundary)\n", what, checked,
                  boundary);
}

/* Run one fixture group (prefix "" or "nfa_synth.") in lp and hp mode and compare. */
static void golden_group(const char *file, const char *zprefix, const char *lp_prefix,
                         const char *hp_prefix, const char *mask_lp, const char *mask_hp,
                         int need_both_mask_values)
{
    uf_st *st = ut_open(ut_golden_dir(), file);
    uf_model_info info = fixture_info(st, zprefix);
    const float *z[UF_MAX_SCALES] = {0};
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "%sz.%d", zprefix, k);
        z[k] = ut_f32(st, name, NULL);
    }
    size_t HW = 256 * 256;
    double *minus = malloc(sizeof(double) * HW);
    uint8_t *mask = malloc(HW);
    assert_non_null(minus);
    assert_non_null(mask);
    int saw0 = 0, saw1 = 0;
    for (int hp = 0; hp < 2; hp++) {
        const char *pre = hp ? hp_prefix : lp_prefix;
        uf_nfa *n = plan(&info, hp, 1);
        uf_error err;
        float frac;
        double mn;
        assert_int_equal(uf_nfa_run(n, z, 1, minus, mask, &frac, &mn, &err), UF_OK);
        char name[96];
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof name, "%slog10_sf.%d", pre, k);
            size_t cnt;
            double *ref = f64(st, name, &cnt);
            assert_int_equal(cnt, (size_t)info.z_height[k] * info.z_width[k]);
            check_map(name, uf_nfa_log10_sf(n, k), ref, cnt, 1e-3, 0);
            free(ref);
        }
        snprintf(name, sizeof name, "%sminus_log10_nfa", pre);
        size_t cnt;
        double *ref = f64(st, name, &cnt);
        assert_int_equal(cnt, HW);
        check_map(name, minus, ref, HW, 1e-3, 1);
        uint8_t *am = u8(st, hp ? mask_hp : mask_lp, &cnt);
        assert_int_equal(cnt, HW);
        check_mask(hp ? mask_hp : mask_lp, mask, am, ref, HW, &saw0, &saw1);
        /* per-sample summaries agree with the map */
        size_t c = 0;
        double mx = -INFINITY;
        for (size_t i = 0; i < HW; i++) {
            c += mask[i];
            mx = fmax(mx, minus[i]);
        }
        assert_true(frac == (float)((double)c / (double)HW));
        assert_true(mn == -mx);
        print_message("  anomalous fraction %.4f, min log10 NFA %.3f\n", frac, mn);
        free(am);
        free(ref);
        uf_nfa_free(n);
    }
    if (need_both_mask_values && !(saw0 && saw1))
        fail_msg("%s: expected both mask values (saw 0: %d, 1: %d)", zprefix, saw0, saw1);
    free(minus);
    free(mask);
    uf_st_close(st);
}

/* ------------------------------------------------------------------------------------------ */
/* tests                                                                                      */

static void test_tau(void **state)
{
    (void)state;
    /* default threshold: anomalib's float32 value, bit for bit */
    double t = uf_nfa_chi2_1_quantile(0.5);
    assert_true(fabs(t - 0.45493642311957283) < 1e-15);
    float tf = (float)t;
    uint32_t bits;
    memcpy(&bits, &tf, 4);
    assert_int_equal(bits, 0x3EE8ED6D);
    /* other thresholds: the float32 rounding of scipy's chi2.ppf(thr, 1) */
    static const struct {
        double thr;
        float tau;
    } ref[] = {{0.3, 0.148471862077713f},   {0.9, 2.7055435180664062f},
               {0.999, 10.827566146850586f}, {0.01, 0.00015708785213064402f},
               {0.99, 6.634896755218506f},   {1e-6, 1.5707963358854715e-12f}};
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        float got = (float)uf_nfa_chi2_1_quantile(ref[i].thr);
        if (got != ref[i].tau)
            fail_msg("tau(%g) = %.9g, expected %.9g", ref[i].thr, got, ref[i].tau);
    }
    /* and the plan uses it, as well as float32 log10(5376) for resnet @256 */
    int C[3] = {84, 80, 128}, h[3] = {64, 32, 16};
    uf_model_info info = make_info(3, C, h, h, 256, 256);
    uf_nfa *n = plan(&info, 0, 1);
    memcpy(&bits, &(float){uf_nfa_tau(n)}, 4);
    assert_int_equal(bits, 0x3EE8ED6D);
    assert_true(uf_nfa_log10_n_tests(n) == 3.730459213256836f);
    int half, nw;
    uf_nfa_table(n, 0, &half, &nw);
    assert_int_equal(half, 3);
    assert_int_equal(nw, 49);
    uf_nfa_table(n, 1, &half, &nw);
    assert_int_equal(half, 1);
    assert_int_equal(nw, 9);
    uf_nfa_table(n, 2, &half, &nw);
    assert_int_equal(half, 1);
    assert_int_equal(nw, 9);
    assert_null(uf_nfa_table(n, 3, NULL, NULL));
    assert_null(uf_nfa_log10_sf(n, -1));
    uf_nfa_free(n);
}

/* log10 P[X > k] by the plain double sum (accurate for these small n). */
static double direct_tail(int n, double p, int k)
{
    double s = 0, c = 1; /* C(n, j) */
    for (int j = 0; j <= n; j++) {
        if (j > k)
            s += c * pow(p, j) * pow(1 - p, n - j);
        c = c * (n - j) / (j + 1);
    }
    return log10(s);
}

static void test_tables(void **state)
{
    (void)state;
    static const int ns[] = {9, 25, 49, 81};
    static const double ps[] = {0.5, 0.7, 0.3, 0.05};
    double out[82];
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 4; b++) {
            int n = ns[a];
            double p = ps[b];
            uf_nfa_log10_tail(n, p, out);
            double e = 0;
            for (int k = 0; k < n; k++) {
                double d = direct_tail(n, p, k);
                e = fmax(e, fabs(out[k] - d) / fmax(1.0, fabs(d)));
                /* non-increasing: near 1 neighbouring tails can round to the same double */
                if (k > 0 && !(out[k] <= out[k - 1]))
                    fail_msg("n=%d p=%g: table not decreasing at %d", n, p, k);
            }
            if (!(e < 1e-12))
                fail_msg("n=%d p=%g: max rel error %g vs the direct sum", n, p, e);
            /* the finite replacement: log10 P[X = n] */
            assert_true(out[n] == out[n - 1]);
            assert_true(fabs(out[n] - n * log10(p)) < 1e-12 * n);
        }
    /* the exact p = 0.5 path against the log-space path (p = 0.5 with n > 50 takes the log
     * path; compare n = 49 through a p that is 0.5 only after rounding would be fragile, so
     * compare against direct_tail above and the symmetry below instead) */
    uf_nfa_log10_tail(49, 0.5, out);
    assert_true(out[24] == log10(0.5)); /* P[X > 24] = 1/2 exactly for n = 49 */
    /* large n (a big window): finite, decreasing, symmetric median */
    int nb = 127 * 127;
    double *big = malloc(sizeof(double) * (nb + 1));
    assert_non_null(big);
    uf_nfa_log10_tail(nb, 0.5, big);
    for (int k = 0; k <= nb; k++) {
        assert_true(isfinite(big[k]));
        if (k > 0 && k < nb)
            assert_true(big[k] <= big[k - 1]);
    }
    assert_true(fabs(big[nb / 2] - log10(0.5)) < 1e-10);
    assert_true(fabs(big[nb] - nb * log10(0.5)) < 1e-9);
    /* p so close to 1 that 1 - p underflows ln(1-p) to -inf in places: still finite */
    uf_nfa_log10_tail(nb, 1.0 - 1e-17, big);
    for (int k = 0; k <= nb; k++)
        assert_true(isfinite(big[k]));
    free(big);
}

static void test_golden_random(void **state)
{
    (void)state;
    golden_group("expected_random.safetensors", "", "nfa_lp.", "nfa_hp.", "anomalib_nfa_mask_lp",
                 "anomalib_nfa_mask_hp", 0);
}

static void test_golden_synth(void **state)
{
    (void)state;
    golden_group("expected_random.safetensors", "nfa_synth.", "nfa_synth.lp.", "nfa_synth.hp.",
                 "nfa_synth.anomalib_mask_lp", "nfa_synth.anomalib_mask_hp", 1);
}

/* expected_images is slimmed (no z.0): check the coarser scales' log10 sf for both images,
 * feeding zeros at the finest scale, which those maps do not depend on. */
static void test_golden_images(void **state)
{
    (void)state;
    uf_st *st = ut_open(ut_golden_dir(), "expected_images.safetensors");
    const uf_st_tensor *t1 = uf_st_find(st, "z.1"), *t2 = uf_st_find(st, "z.2");
    assert_non_null(t1);
    assert_non_null(t2);
    int B = (int)t1->shape[0];
    int C[3] = {84, (int)t1->shape[1], (int)t2->shape[1]};
    int h[3] = {64, (int)t1->shape[2], (int)t2->shape[2]};
    int w[3] = {64, (int)t1->shape[3], (int)t2->shape[3]};
    uf_model_info info = make_info(3, C, h, w, 256, 256);
    float *z0 = calloc((size_t)B * 84 * 64 * 64, sizeof(float));
    assert_non_null(z0);
    const float *z[UF_MAX_SCALES] = {z0, ut_f32(st, "z.1", NULL), ut_f32(st, "z.2", NULL)};
    for (int hp = 0; hp < 2; hp++) {
        uf_nfa *n = plan(&info, hp, B);
        uf_error err;
        assert_int_equal(uf_nfa_run(n, z, B, NULL, NULL, NULL, NULL, &err), UF_OK);
        for (int k = 1; k < 3; k++) {
            char name[64];
            snprintf(name, sizeof name, "nfa_%s.log10_sf.%d", hp ? "hp" : "lp", k);
            size_t cnt;
            double *ref = f64(st, name, &cnt);
            assert_int_equal(cnt, (size_t)B * h[k] * w[k]);
            check_map(name, uf_nfa_log10_sf(n, k), ref, cnt, 1e-3, 0);
            free(ref);
        }
        uf_nfa_free(n);
    }
    free(z0);
    uf_st_close(st);
}

/* Every z^2 above tau in every window: anomalib's -inf case. */
static void test_all_pass(void **state)
{
    (void)state;
    int C[3] = {4, 3, 1}, h[3] = {8, 4, 2}, w[3] = {8, 4, 2};
    int H = 32, W = 32;
    uf_model_info info = make_info(3, C, h, w, H, W);
    float *z[UF_MAX_SCALES] = {0};
    for (int k = 0; k < 3; k++) {
        size_t m = (size_t)C[k] * h[k] * w[k];
        z[k] = malloc(sizeof(float) * m);
        assert_non_null(z[k]);
        for (size_t i = 0; i < m; i++)
            z[k][i] = (i & 1) ? 3.0f : -2.5f; /* z^2 >= 6.25 > tau everywhere */
    }
    double *minus = malloc(sizeof(double) * H * W);
    uint8_t *mask = malloc((size_t)H * W);
    assert_non_null(minus);
    assert_non_null(mask);
    for (int hp = 0; hp < 2; hp++) {
        uf_nfa *n = plan(&info, hp, 1);
        float frac;
        double mn;
        uf_error err;
        assert_int_equal(uf_nfa_run(n, (const float *const *)z, 1, minus, mask, &frac, &mn, &err),
                         UF_OK);
        double expect = -(double)uf_nfa_log10_n_tests(n);
        for (int k = 0; k < 3; k++) {
            int nw;
            const double *tab = uf_nfa_table(n, k, NULL, &nw);
            const double *sf = uf_nfa_log10_sf(n, k);
            for (int i = 0; i < h[k] * w[k]; i++)
                assert_true(sf[i] == tab[nw]);
            assert_true(fabs(tab[nw] - nw * log10(0.5)) < 1e-12);
            expect -= tab[nw];
        }
        for (int i = 0; i < H * W; i++) {
            assert_true(isfinite(minus[i]));
            /* bicubic of a constant is the constant up to rounding of the weights */
            if (!(fabs(minus[i] - expect) < 1e-9))
                fail_msg("minus[%d] = %.17g, expected %.17g", i, minus[i], expect);
            assert_int_equal(mask[i], 1);
        }
        assert_true(frac == 1.0f);
        assert_true(fabs(mn + expect) < 1e-9); /* -(log10 5376... here 84 + 67 log10(1/2)) */
        uf_nfa_free(n);
    }
    /* and nothing passes: x = 0, log10 P[X > 0] ~ -0, NFA ~ number of tests, no detection */
    for (int k = 0; k < 3; k++)
        memset(z[k], 0, sizeof(float) * C[k] * h[k] * w[k]);
    uf_nfa *n = plan(&info, 0, 1);
    float frac;
    double mn;
    uf_error err;
    assert_int_equal(uf_nfa_run(n, (const float *const *)z, 1, minus, mask, &frac, &mn, &err),
                     UF_OK);
    double expect0 = -(double)uf_nfa_log10_n_tests(n); /* ~ -log10(64 + 16 + 4 tests) */
    for (int k = 0; k < 3; k++)
        expect0 -= uf_nfa_table(n, k, NULL, NULL)[0];    /* log10 P[X > 0] = log10(1 - 2^-n) */
    assert_true(fabs(expect0 + log10(84.0)) < 2e-3);
    for (int i = 0; i < H * W; i++) {
        assert_int_equal(mask[i], 0);
        if (!(fabs(minus[i] - expect0) < 1e-9))
            fail_msg("minus[%d] = %.17g, expected %.17g", i, minus[i], expect0);
    }
    assert_true(frac == 0.0f);
    uf_nfa_free(n);
    for (int k = 0; k < 3; k++)
        free(z[k]);
    free(minus);
    free(mask);
}

static void expect_init_error(const uf_model_info *info, uf_nfa_opts o, int max_batch,
                              const char *needle)
{
    uf_nfa *n = (uf_nfa *)(uintptr_t)1;
    uf_error err = {0};
    uf_status s = uf_nfa_init(info, &o, max_batch, &n, &err);
    if (s != UF_ERR_ARG)
        fail_msg("expected UF_ERR_ARG (%s), got %d", needle, s);
    assert_null(n);
    if (!strstr(err.msg, needle))
        fail_msg("error '%s' does not mention '%s'", err.msg, needle);
}

static void test_options(void **state)
{
    (void)state;
    int C[3] = {8, 8, 8}, h[3] = {16, 8, 4};
    uf_model_info info = make_info(3, C, h, h, 64, 64);
    uf_nfa_opts d = uf_nfa_opts_default();
    assert_int_equal(d.window, 7);
    assert_true(d.prob_thr == 0.5);
    assert_true(d.epsilon == 0.0);
    assert_int_equal(d.high_precision, 0);
    uf_nfa_opts o = d;
    o.window = 0;
    expect_init_error(&info, o, 1, "window");
    o.window = -3;
    expect_init_error(&info, o, 1, "window");
    o = d;
    const double bad_thr[] = {0.0, 1.0, -0.5, 1.5, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_thr / sizeof bad_thr[0]; i++) {
        o.prob_thr = bad_thr[i];
        expect_init_error(&info, o, 1, "probability");
    }
    o = d;
    o.epsilon = NAN;
    expect_init_error(&info, o, 1, "epsilon");
    o.epsilon = -INFINITY;
    expect_init_error(&info, o, 1, "epsilon");
    expect_init_error(&info, d, 0, "max_batch");
    uf_model_info bad = info;
    bad.n_scales = 0;
    expect_init_error(&bad, d, 1, "scales");
    bad = info;
    bad.z_channels[1] = 0;
    expect_init_error(&bad, d, 1, "scale 1");
    /* maps too small for reflect padding: 1x1 anywhere, or half >= size */
    bad = info;
    bad.z_height[2] = bad.z_width[2] = 1;
    expect_init_error(&bad, d, 1, "at least 2x2");
    o = d;
    o.window = 33; /* half 16 at scale 0 (16x16): needs <= 31 */
    expect_init_error(&info, o, 1, "at most 31");
    o.window = 31;
    uf_nfa *n = NULL;
    uf_error err;
    assert_int_equal(uf_nfa_init(&info, &o, 1, &n, &err), UF_OK);
    uf_nfa_free(n);
    assert_int_equal(uf_nfa_init(NULL, &d, 1, &n, &err), UF_ERR_ARG);
    uf_nfa_free(NULL);

    /* run-time argument checks */
    assert_int_equal(uf_nfa_init(&info, NULL, 2, &n, &err), UF_OK); /* NULL opts = defaults */
    float *zb = calloc(8 * 16 * 16, sizeof(float) * 2);
    assert_non_null(zb);
    const float *z[UF_MAX_SCALES] = {zb, zb, zb};
    assert_int_equal(uf_nfa_run(n, z, 3, NULL, NULL, NULL, NULL, &err), UF_ERR_ARG);
    assert_int_equal(uf_nfa_run(n, z, 0, NULL, NULL, NULL, NULL, &err), UF_ERR_ARG);
    const float *zn[UF_MAX_SCALES] = {zb, NULL, zb};
    assert_int_equal(uf_nfa_run(n, zn, 1, NULL, NULL, NULL, NULL, &err), UF_ERR_ARG);
    assert_int_equal(uf_nfa_run(n, z, 2, NULL, NULL, NULL, NULL, &err), UF_OK);
    uf_nfa_free(n);
    free(zb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tau),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_golden_random),
        cmocka_unit_test(test_golden_synth),
        cmocka_unit_test(test_golden_images),
        cmocka_unit_test(test_all_pass),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests_name("nfa", tests, NULL, NULL);
}
