/* test_nfa.c — the a-contrario NFA module (lib/src/nfa.c, spec §5) against anomalib's own
 * outputs (tests/golden: nfa_lp.*, nfa_hp.*, nfa_synth.*), against a naive re-implementation
 * of the formula on odd shapes, and on the cases anomalib gets wrong (-inf/NaN, the mask
 * sign). Tolerance vs anomalib: 1e-3 abs on every finite log10 value (spec §9). */
#include "util.h"

#include "core/internal.h"
#include "models/nfa.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */

/* F64/U8 fixture tensors may be unaligned inside the file: copy them out. */
static void *fixture_copy(const uf_st *st, const char *name, uf_dtype dt, size_t *n)
{
    const uf_st_tensor *t = uf_st_find(st, name);
    if (!t || t->dtype != dt)
        fail_msg("fixture tensor '%s' missing or not %s", name, uf_dtype_name(dt));
    void *p = malloc(uf_st_nbytes(t) ? uf_st_nbytes(t) : 1);
    assert_non_null(p);
    memcpy(p, t->data, uf_st_nbytes(t));
    if (n)
        *n = t->numel;
    return p;
}

static double *f64(const uf_st *st, const char *name, size_t *n)
{
    return fixture_copy(st, name, UF_DT_F64, n);
}

static uint8_t *u8(const uf_st *st, const char *name, size_t *n)
{
    return fixture_copy(st, name, UF_DT_U8, n);
}

/* A uf_model_info with just what the NFA reads. */
static uf_model_info make_info(int K, const int *C, const int *h, const int *w, int H, int W)
{
    uf_model_info info;
    memset(&info, 0, sizeof info);
    info.n_scales = K;
    info.height = H;
    info.width = W;
    for (int k = 0; k < K; k++) {
        info.z_channels[k] = C[k];
        info.z_height[k] = h[k];
        info.z_width[k] = w[k];
    }
    return info;
}

/* The resnet18 @256 latent shapes of the fixtures. */
static uf_model_info fixture_info(const uf_st *st, const char *prefix)
{
    int C[3], h[3], w[3];
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "%sz.%d", prefix, k);
        const uf_st_tensor *t = uf_st_find(st, name);
        if (!t || t->ndim != 4)
            fail_msg("fixture has no 4-d %s", name);
        C[k] = (int)t->shape[1];
        h[k] = (int)t->shape[2];
        w[k] = (int)t->shape[3];
    }
    return make_info(3, C, h, w, 256, 256);
}

static uf_nfa *plan(const uf_model_info *info, int hp, int max_batch)
{
    uf_nfa_opts o = uf_nfa_opts_default();
    o.high_precision = hp;
    uf_nfa *n = NULL;
    uf_error err = {0};
    if (uf_nfa_init(info, &o, max_batch, &n, &err) != UF_OK)
        fail_msg("uf_nfa_init: %s", err.msg);
    return n;
}

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

/* ------------------------------------------------------------------------------------------ */
/* A naive implementation straight from spec §5 (per channel, per window, reflect by index,
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
        cmocka_unit_test(test_tau),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_golden_random),
        cmocka_unit_test(test_golden_synth),
        cmocka_unit_test(test_golden_images),
        cmocka_unit_test(test_all_pass),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_naive_odd_shapes),
        cmocka_unit_test(test_batch_and_determinism),
        cmocka_unit_test(test_properties),
    };
    return cmocka_run_group_tests_name("nfa", tests, NULL, NULL);
}
