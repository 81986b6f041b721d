/* test_metrics.c — uflow_eval.h: AUROC (hand values, ties, a 1e6-point case against a
 * rank-sum computed with qsort), the F1-optimal threshold (hand values, ties, brute force),
 * IoU/mIoU, AUPRO (a hand-computed case, anomalib's own test cases, brute force with a
 * different connected-components method) and uf_model_write_postproc (round trip, in place,
 * errors). */
#include "util.h"
#include "uflow_eval.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/uflow_test_metrics_XXXXXX";

/* splitmix64: deterministic test data */
static uint64_t rng_state = 12345;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rndu(void) { return (double)(rnd() >> 11) * (1.0 / 9007199254740992.0); }

/* ---- AUROC ------------------------------------------------------------------------------ */

static void test_auroc_known(void **state)
{
    (void)state;
    const float s1[] = {0.1f, 0.4f, 0.35f, 0.8f};
    const uint8_t l1[] = {0, 0, 1, 1};
    /* pairs (pos, neg): (.35,.1) ok, (.35,.4) wrong, (.8,.1) ok, (.8,.4) ok -> 3/4 */
    assert_float_equal(uf_auroc(s1, l1, 4), 0.75, 1e-15);
    const float tied[] = {0.3f, 0.3f, 0.3f, 0.3f};
    assert_float_equal(uf_auroc(tied, l1, 4), 0.5, 1e-15);
    const float perfect[] = {0.1f, 0.2f, 0.3f, 0.4f};
    assert_float_equal(uf_auroc(perfect, l1, 4), 1.0, 1e-15);
    const uint8_t inv[] = {1, 1, 0, 0};
    assert_float_equal(uf_auroc(perfect, inv, 4), 0.0, 1e-15);
    /* ties across classes: pos {0.5, 0.9}, neg {0.5, 0.5}: 0.5 vs two 0.5 -> 2 * 1/2, 0.9 -> 2;
     * U = 3 of 4 pairs. Labels given as 255 (any non-zero is anomalous). */
    const float st[] = {0.5f, 0.5f, 0.5f, 0.9f};
    const uint8_t lt[] = {0, 255, 0, 1};
    assert_float_equal(uf_auroc(st, lt, 4), 0.75, 1e-15);
    /* negative values and infinities keep their order; -0.0 ties with +0.0 */
    const float sn[] = {-INFINITY, -1.f, 2.f, INFINITY};
    assert_float_equal(uf_auroc(sn, l1, 4), 1.0, 1e-15);
    const float sz[] = {-0.0f, 0.0f};
    const uint8_t lz[] = {1, 0};
    assert_float_equal(uf_auroc(sz, lz, 2), 0.5, 1e-15);
    const float sneg[] = {-3.f, -2.f, -2.5f, -1.f};
    const uint8_t lneg[] = {0, 1, 0, 1};
    assert_float_equal(uf_auroc(sneg, lneg, 4), 1.0, 1e-15);
    /* one class only, or nothing: NaN */
    const uint8_t all0[] = {0, 0, 0, 0}, all1[] = {1, 1, 1, 1};
    assert_true(isnan(uf_auroc(s1, all0, 4)));
    assert_true(isnan(uf_auroc(s1, all1, 4)));
    assert_true(isnan(uf_auroc(s1, l1, 0)));
    /* NaN score: an error, not a number */
    const float snan[] = {0.1f, NAN, 0.3f, 0.4f};
    double a = 0;
    uf_error err;
    assert_int_equal(uf_auroc_ex(snan, l1, 4, &a, &err), UF_ERR_ARG);
    assert_true(isnan(a));
    assert_true(isnan(uf_auroc(snan, l1, 4)));
}

typedef struct sl {
    float s;
    uint8_t l;
} sl;

static int cmp_sl(const void *a, const void *b)
{
    float x = ((const sl *)a)->s, y = ((const sl *)b)->s;
    return (x > y) - (x < y);
}

/* Mann-Whitney through the rank sum: qsort, average ranks of tied groups, R_pos. */
static double ranksum_auroc(const float *s, const uint8_t *l, size_t n)
{
    sl *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (sl){s[i], l[i]};
    qsort(v, n, sizeof *v, cmp_sl);
    double rpos = 0, P = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j].s == v[i].s)
            j++;
        double avg = 0.5 * (double)(i + 1 + j); /* ranks i+1..j */
        for (size_t k = i; k < j; k++)
            if (v[k].l) {
                rpos += avg;
                P++;
            }
        i = j;
    }
    free(v);
    double N = (double)n - P;
    return (rpos - P * (P + 1) / 2) / (P * N);
}

static void test_auroc_large(void **state)
{
    (void)state;
    const size_t n = 1000000;
    float *s = malloc(n * sizeof *s);
    uint8_t *l = malloc(n);
    assert_non_null(s);
    assert_non_null(l);
    for (size_t i = 0; i < n; i++) {
        l[i] = rndu() < 0.1;
        /* quantised to 4096 levels around 0 (many ties, both signs), positives shifted */
        double v = rndu() * 2 - 1 + (l[i] ? 0.3 : 0.0);
        s[i] = (float)(floor(v * 2048) / 2048);
    }
    double a = 0;
    uf_error err;
    assert_int_equal(uf_auroc_ex(s, l, n, &a, &err), UF_OK);
    double ref = ranksum_auroc(s, l, n);
    print_message("  AUROC 1e6 points: %.12f (rank sum %.12f)\n", a, ref);
    assert_true(a > 0.6 && a < 0.8); /* the shift is visible */
    assert_float_equal(a, ref, 1e-12);
    free(s);
    free(l);
}

/* ---- F1 threshold ----------------------------------------------------------------------- */

static void test_f1_known(void **state)
{
    (void)state;
    uf_f1_result r;
    uf_error err;
    /* thresholds descending: .8 (tp1 fp0 F1 2/3), .4 (tp1 fp1: 1/2), .35 (tp2 fp1: 4/5),
     * .1 (tp2 fp2: 2/3) -> 0.35 with F1 0.8, precision 2/3, recall 1 */
    const float s1[] = {0.1f, 0.4f, 0.35f, 0.8f};
    const uint8_t l1[] = {0, 0, 1, 1};
    assert_int_equal(uf_f1_threshold(s1, l1, 4, &r, &err), UF_OK);
    assert_true(r.threshold == 0.35f);
    assert_float_equal(r.f1, 0.8, 1e-15);
    assert_float_equal(r.precision, 2.0 / 3.0, 1e-15);
    assert_float_equal(r.recall, 1.0, 1e-15);
    assert_int_equal(r.tp, 2);
    assert_int_equal(r.fp, 1);
    assert_int_equal(r.fn, 0);
    /* equal F1 at .9 (tp1 fp0 fn1: 2/3) and .6 (tp2 fp2: 4/6): the lowest threshold wins, as
     * torch.argmax over anomalib's ascending thresholds picks the first maximum */
    const float s2[] = {0.9f, 0.8f, 0.7f, 0.6f};
    const uint8_t l2[] = {1, 0, 0, 1};
    assert_int_equal(uf_f1_threshold(s2, l2, 4, &r, &err), UF_OK);
    assert_true(r.threshold == 0.6f);
    assert_float_equal(r.f1, 2.0 / 3.0, 1e-15);
    /* ties are one threshold: {.5 x3 (1 pos), .2 (pos)} -> at .5: tp1 fp2 fn1 = 2/5, at .2:
     * tp2 fp2 = 4/6 -> 0.2 */
    const float s3[] = {0.5f, 0.5f, 0.5f, 0.2f};
    const uint8_t l3[] = {0, 1, 0, 1};
    assert_int_equal(uf_f1_threshold(s3, l3, 4, &r, &err), UF_OK);
    assert_true(r.threshold == 0.2f);
    assert_float_equal(r.f1, 2.0 / 3.0, 1e-15);
    /* no anomalous sample: the largest score, F1 0 */
    const uint8_t none[] = {0, 0, 0, 0};
    assert_int_equal(uf_f1_threshold(s1, none, 4, &r, &err), UF_OK);
    assert_true(r.threshold == 0.8f);
    assert_float_equal(r.f1, 0.0, 0);
    /* only anomalous: everything positive, the lowest score, F1 1 */
    const uint8_t all[] = {1, 1, 1, 1};
    assert_int_equal(uf_f1_threshold(s1, all, 4, &r, &err), UF_OK);
    assert_true(r.threshold == 0.1f);
    assert_float_equal(r.f1, 1.0, 1e-15);
    assert_int_equal(uf_f1_threshold(s1, l1, 0, &r, &err), UF_ERR_ARG);
}

static void test_f1_bruteforce(void **state)
{
    (void)state;
    const size_t n = 3000;
    float s[3000];
    uint8_t l[3000];
    for (size_t i = 0; i < n; i++) {
        l[i] = rndu() < 0.3;
        s[i] = (float)(floor((rndu() + (l[i] ? 0.25 : 0)) * 40) / 40 - 0.5); /* ~50 levels */
    }
    uf_f1_result r;
    uf_error err;
    assert_int_equal(uf_f1_threshold(s, l, n, &r, &err), UF_OK);
    /* every candidate threshold by a full scan; keep the lowest of equal F1 */
    double best = -1;
    float bt = 0;
    for (size_t c = 0; c < n; c++) {
        float t = s[c];
        size_t tp = 0, fp = 0, fn = 0;
        for (size_t i = 0; i < n; i++) {
            int pred = s[i] >= t;
            tp += pred && l[i];
            fp += pred && !l[i];
            fn += !pred && l[i];
        }
        double f1 = 2.0 * (double)tp / (double)(2 * tp + fp + fn);
        if (f1 > best || (f1 == best && t < bt)) {
            best = f1;
            bt = t;
        }
    }
    print_message("  F1 brute force: threshold %g F1 %.6f; uf_f1_threshold %g %.6f\n", (double)bt,
                  best, (double)r.threshold, r.f1);
    assert_true(r.threshold == bt);
    assert_float_equal(r.f1, best, 1e-15);
}

/* ---- IoU -------------------------------------------------------------------------------- */

static void test_iou(void **state)
{
    (void)state;
    const uint8_t a[] = {1, 1, 0, 0}, b[] = {0, 255, 7, 0}, z[] = {0, 0, 0, 0};
    assert_float_equal(uf_iou(a, b, 4), 1.0 / 3.0, 1e-15); /* {1} / {0,1,2} */
    assert_float_equal(uf_iou(a, a, 4), 1.0, 0);
    assert_float_equal(uf_iou(z, z, 4), 1.0, 0); /* both empty: agree */
    assert_float_equal(uf_iou(a, z, 4), 0.0, 0);
    const uint8_t c[] = {1, 0, 0, 1};
    assert_float_equal(uf_iou(a, c, 4), 1.0 / 3.0, 1e-15);
    /* two images of 4 pixels: IoU 1/3 and 1 -> mean 2/3 */
    const uint8_t p2[] = {1, 1, 0, 0, 0, 0, 1, 1}, g2[] = {0, 1, 1, 0, 0, 0, 1, 1};
    assert_float_equal(uf_miou(p2, g2, 2, 4), 2.0 / 3.0, 1e-15);
    assert_true(isnan(uf_miou(p2, g2, 0, 4)));
}

/* ---- AUPRO ------------------------------------------------------------------------------ */

/* The hand case (one 3x4 image, FPR limit 0.3):
 *
 *   mask          scores
 *   1 0 0 0       .90 .80 .60 .40
 *   0 1 0 0       .30 .40 .20 .10
 *   0 0 0 1       .05 .02 .01 .55
 *
 * 8-connected regions: A = {(0,0), (1,1)} (diagonal), B = {(2,3)}; 9 normal pixels.
 * Thresholds from the top, points (FPR, PRO = mean of the two region overlaps):
 *   start (0, 0); .90: A 1/2 -> (0, 1/4); .80: fp 1 -> (1/9, 1/4); .60: fp 2 -> (2/9, 1/4);
 *   .55: B full -> (2/9, 3/4); .40: fp 3 and A full -> (3/9, 1); ...
 * Area to 0.3: 1/4 * 2/9 = 1/18, plus the cut segment (2/9, 3/4) -> (3/9, 1): at 0.3 the PRO is
 * 3/4 + 1/4 * (0.3 - 2/9) / (1/9) = 37/40, area 1/2 (3/4 + 37/40)(7/90) = 469/7200.
 * Total 400/7200 + 469/7200 = 869/7200; AUPRO = (869/7200) / 0.3 = 869/2160 = 0.40231...
 * With 4-connectivity A would be two regions: PRO 1/3, 1/3, 2/3, 1 -> 0.45 (not what anomalib
 * computes). Up to FPR 1: 1/18 + 1/2 (3/4 + 1)/9 + 2/3 = 59/72. */
static void test_aupro_hand(void **state)
{
    (void)state;
    const uint8_t mask[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1};
    const float map[12] = {.90f, .80f, .60f, .40f, .30f, .40f, .20f, .10f, .05f, .02f, .01f, .55f};
    double a = 0;
    uf_error err;
    assert_int_equal(uf_aupro(map, mask, 1, 3, 4, 0.3, &a, &err), UF_OK);
    print_message("  AUPRO hand case %.12f (want 869/2160 = %.12f)\n", a, 869.0 / 2160.0);
    assert_float_equal(a, 869.0 / 2160.0, 1e-12);
    assert_int_equal(uf_aupro(map, mask, 1, 3, 4, 1.0, &a, &err), UF_OK);
    assert_float_equal(a, 59.0 / 72.0, 1e-12);
    /* a second, all-normal image adds 12 normal pixels scoring below everything: the first
     * 3 normal pixels are now 3/21 of the normals; FPR 0.3 lies on the PRO = 1 plateau:
     * 1/4 * 2/21 + 1/2 (3/4 + 1)(1/21) + (0.3 - 3/21) * 1 */
    uint8_t mask2[24] = {0};
    float map2[24];
    memcpy(mask2, mask, 12);
    memcpy(map2, map, sizeof map);
    for (int i = 12; i < 24; i++)
        map2[i] = -1.f - (float)i;
    assert_int_equal(uf_aupro(map2, mask2, 2, 3, 4, 0.3, &a, &err), UF_OK);
    double want = (0.25 * 2 / 21 + 0.5 * 1.75 / 21 + (0.3 - 3.0 / 21)) / 0.3;
    assert_float_equal(a, want, 1e-12);
}

/* anomalib's tests/unit/metrics/aupro/test_aupro.py: preds = arange(2800) / 2800 on a 400x7
 * image, regions = column 3 (one region) or columns 1, 3, 5 (three), FPR limit 1/3, expected
 * 1/6 within 1e-3. Exact values of the step curve (each row from the top: the pixels of
 * columns 6..0 cross the threshold in that order):
 *   one column: per row, 3 normal pixels at PRO k/400 then 3 at (k+1)/400: area (6k+3) in
 *     units (1/2400)(1/400); the limit is 800/2400 = 133 rows + 2 pixels: sum_{k<133}(6k+3) +
 *     2*133 = 53333 -> AUPRO = 3 * 53333 / 960000.
 *   three columns (4 normal pixels per row, 3 regions of 400): per row 3k+(0..3) in units
 *     (1/1600)(1/1200) = 12k+6; the limit 533 1/3 = 133 rows + 1 + 1/3 pixel: 106134 + 399 +
 *     400/3 = 319999/3 -> AUPRO = 3 * 319999 / (3 * 1920000). */
static void test_aupro_anomalib_cases(void **state)
{
    (void)state;
    const int H = 400, W = 7;
    float *map = malloc(sizeof(float) * 2 * H * W);
    uint8_t *m = calloc(2 * H * W, 1);
    assert_non_null(map);
    assert_non_null(m);
    for (int i = 0; i < H * W; i++)
        map[i] = map[H * W + i] = (float)i / 2800.f;
    for (int y = 0; y < H; y++) {
        m[y * W + 3] = 1;
        m[H * W + y * W + 1] = m[H * W + y * W + 3] = m[H * W + y * W + 5] = 1;
    }
    double a1, a3, a13;
    uf_error err;
    assert_int_equal(uf_aupro(map, m, 1, H, W, 1.0 / 3.0, &a1, &err), UF_OK);
    assert_int_equal(uf_aupro(map + H * W, m + H * W, 1, H, W, 1.0 / 3.0, &a3, &err), UF_OK);
    assert_int_equal(uf_aupro(map, m, 2, H, W, 1.0 / 3.0, &a13, &err), UF_OK);
    print_message("  anomalib cases: %.9f %.9f %.9f (anomalib expects 1/6 +- 1e-3)\n", a1, a3, a13);
    assert_float_equal(a1, 3.0 * 53333.0 / 960000.0, 1e-12);
    assert_float_equal(a3, 319999.0 / 1920000.0, 1e-12);
    assert_float_equal(a13, 1.0 / 6.0, 1e-3);
    free(map);
    free(m);
}

/* Brute force: regions by iterative max-propagation of pixel ids over 3x3 neighbourhoods
 * (kornia's method) and, for every distinct threshold, a full scan. */
static double aupro_brute(const float *map, const uint8_t *mask, int n, int h, int w, double lim)
{
    size_t N = (size_t)n * h * w;
    int *id = malloc(N * sizeof *id);
    for (size_t i = 0; i < N; i++)
        id[i] = mask[i] ? (int)i + 1 : 0;
    for (int changed = 1; changed;) {
        changed = 0;
        for (int b = 0; b < n; b++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    size_t p = ((size_t)b * h + y) * w + x;
                    if (!id[p])
                        continue;
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++) {
                            int yy = y + dy, xx = x + dx;
                            if (yy < 0 || yy >= h || xx < 0 || xx >= w)
                                continue;
                            size_t q = ((size_t)b * h + yy) * w + xx;
                            if (id[q] > id[p]) {
                                id[p] = id[q];
                                changed = 1;
                            }
                        }
                }
    }
    /* distinct region ids and thresholds */
    int *rid = malloc(N * sizeof *rid), nr = 0;
    for (size_t i = 0; i < N; i++) {
        int found = 0;
        for (int r = 0; r < nr && !found; r++)
            found = rid[r] == id[i];
        if (id[i] && !found)
            rid[nr++] = id[i];
    }
    float *t = malloc(N * sizeof *t);
    size_t nt = 0;
    for (size_t i = 0; i < N; i++) {
        int found = 0;
        for (size_t k = 0; k < nt && !found; k++)
            found = t[k] == map[i];
        if (!found)
            t[nt++] = map[i];
    }
    /* sort thresholds descending (insertion sort, small n) */
    for (size_t i = 1; i < nt; i++)
        for (size_t k = i; k > 0 && t[k] > t[k - 1]; k--) {
            float x = t[k];
            t[k] = t[k - 1];
            t[k - 1] = x;
        }
    size_t nn = 0;
    for (size_t i = 0; i < N; i++)
        nn += !mask[i];
    double x0 = 0, y0 = 0, area = 0;
    for (size_t k = 0; k < nt; k++) {
        size_t fp = 0;
        double pro = 0;
        for (size_t i = 0; i < N; i++)
            fp += !mask[i] && map[i] >= t[k];
        for (int r = 0; r < nr; r++) {
            size_t in = 0, all = 0;
            for (size_t i = 0; i < N; i++)
                if (id[i] == rid[r]) {
                    all++;
                    in += map[i] >= t[k];
                }
            pro += (double)in / (double)all / nr;
        }
        double x1 = (double)fp / (double)nn;
        if (x1 >= lim) {
            double y = y0 + (pro - y0) * (lim - x0) / (x1 - x0);
            area += 0.5 * (y0 + y) * (lim - x0);
            break;
        }
        area += 0.5 * (y0 + pro) * (x1 - x0);
        x0 = x1;
        y0 = pro;
    }
    free(id);
    free(rid);
    free(t);
    return area / lim;
}

static void test_aupro_bruteforce(void **state)
{
    (void)state;
    enum { NI = 3, H = 14, W = 17 };
    float map[NI * H * W];
    uint8_t mask[NI * H * W];
    for (int trial = 0; trial < 4; trial++) {
        memset(mask, 0, sizeof mask);
        for (int b = 0; b < NI; b++) { /* a few random blobs (rectangles and diagonals) */
            if (b == 0 && trial % 2)
                continue; /* one all-good image */
            for (int k = 0; k < 3; k++) {
                int y0 = (int)(rndu() * H), x0 = (int)(rndu() * W);
                int hh = 1 + (int)(rndu() * 4), ww = 1 + (int)(rndu() * 4);
                for (int y = y0; y < y0 + hh && y < H; y++)
                    for (int x = x0; x < x0 + ww && x < W; x++)
                        mask[(b * H + y) * W + x] = 1;
                for (int d = 0; d < 3 && y0 + hh + d < H && x0 + ww + d < W; d++)
                    mask[(b * H + y0 + hh + d) * W + x0 + ww + d] = 1; /* diagonal tail */
            }
        }
        for (int i = 0; i < NI * H * W; i++) /* 64 levels: many ties, anomalies higher */
            map[i] = (float)(floor((rndu() + (mask[i] ? 0.3 : 0)) * 64) / 64);
        const double lims[] = {0.3, 0.05, 1.0};
        for (int li = 0; li < 3; li++) {
            double a = 0, ref = aupro_brute(map, mask, NI, H, W, lims[li]);
            uf_error err;
            assert_int_equal(uf_aupro(map, mask, NI, H, W, lims[li], &a, &err), UF_OK);
            if (li == 0)
                print_message("  AUPRO trial %d: %.12f (brute force %.12f)\n", trial, a, ref);
            assert_true(a > 0.0 && a <= 1.0);
            assert_float_equal(a, ref, 1e-9);
        }
    }
}

static void test_aupro_edges(void **state)
{
    (void)state;
    const float map[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    const uint8_t none[4] = {0}, all[4] = {1, 1, 1, 1}, some[4] = {0, 0, 1, 1};
    double a = 0;
    uf_error err;
    assert_int_equal(uf_aupro(map, none, 1, 2, 2, 0.3, &a, &err), UF_OK);
    assert_true(isnan(a)); /* no region */
    assert_int_equal(uf_aupro(map, all, 1, 2, 2, 0.3, &a, &err), UF_OK);
    assert_true(isnan(a)); /* no normal pixel */
    assert_int_equal(uf_aupro(map, some, 1, 2, 2, 0.3, &a, &err), UF_OK);
    assert_float_equal(a, 1.0, 1e-15); /* perfect separation */
    assert_int_equal(uf_aupro(map, some, 1, 2, 2, 0.0, &a, &err), UF_ERR_ARG);
    assert_int_equal(uf_aupro(map, some, 1, 2, 2, 1.5, &a, &err), UF_ERR_ARG);
    assert_int_equal(uf_aupro(map, some, 1, 0, 2, 0.3, &a, &err), UF_ERR_ARG);
    const float nanmap[4] = {0.1f, NAN, 0.3f, 0.4f};
    assert_int_equal(uf_aupro(nanmap, some, 1, 2, 2, 0.3, &a, &err), UF_ERR_ARG);
}

/* ---- calibration ------------------------------------------------------------------------ */

static void tmp(char *buf, size_t n, const char *f) { ut_path(buf, n, tmpdir, f); }

/* Every tensor of a and b: same order by offset, name, dtype, shape and bytes. */
static void assert_same_tensors(const char *pa, const char *pb)
{
    uf_st *a, *b;
    uf_error err;
    assert_int_equal(uf_st_open(pa, &a, &err), UF_OK);
    assert_int_equal(uf_st_open(pb, &b, &err), UF_OK);
    assert_int_equal(uf_st_count(a), uf_st_count(b));
    assert_true(uf_st_count(a) > 100);
    for (size_t i = 0; i < uf_st_count(a); i++) {
        const uf_st_tensor *x = uf_st_at(a, i), *y = uf_st_at(b, i);
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->dtype, y->dtype);
        assert_int_equal(x->ndim, y->ndim);
        for (int d = 0; d < x->ndim; d++)
            assert_int_equal(x->shape[d], y->shape[d]);
        assert_int_equal(uf_st_nbytes(x), uf_st_nbytes(y));
        assert_memory_equal(x->data, y->data, uf_st_nbytes(x));
    }
    assert_string_equal(uf_st_meta(a, "name") ? uf_st_meta(a, "name") : "",
                        uf_st_meta(b, "name") ? uf_st_meta(b, "name") : "");
    /* every config key of a is in b with the same value, unless it is a statistic */
    json_t *ca = json_loads(uf_st_meta(a, "config"), 0, NULL), *cb = json_loads(uf_st_meta(b, "config"), 0, NULL);
    assert_non_null(ca);
    assert_non_null(cb);
    const char *k;
    json_t *v;
    json_object_foreach(ca, k, v) {
        if (strstr(k, "threshold") || strstr(k, "_min") || strstr(k, "_max"))
            continue;
        if (!json_equal(v, json_object_get(cb, k)))
            fail_msg("config key '%s' changed", k);
    }
    json_decref(ca);
    json_decref(cb);
    uf_st_close(a);
    uf_st_close(b);
}

static size_t count_dir(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void test_write_postproc(void **state)
{
    (void)state;
    char in[1024], out[1024], missing[1024], bad[1024];
    tmp(in, sizeof in, "in.safetensors");
    tmp(out, sizeof out, "out.safetensors");
    tmp(missing, sizeof missing, "missing.safetensors");
    tmp(bad, sizeof bad, "bad.safetensors");
    uf_error err;
    uf_create_opts o = uf_create_opts_default();
    o.height = o.width = 64;
    o.seed = 5;
    o.name = "calibration-test";
    assert_int_equal(uf_model_create_random(&o, in, &err), UF_OK);
    assert_int_equal(chmod(in, 0640), 0);
    uf_model *m;
    assert_int_equal(uf_model_load(in, &m, &err), UF_OK);
    assert_false(uf_model_get_info(m)->has_postproc);
    uf_model_free(m);

    uf_postproc p = {.image_threshold = 0.61234567f, .pixel_threshold = 0.5f,
                     .pred_scores_min = 0.1f, .pred_scores_max = 0.9876543f,
                     .anomaly_maps_min = 1e-7f, .anomaly_maps_max = 1.0f, .image_sensitivity = 0.5f};
    assert_int_equal(uf_model_write_postproc(in, out, &p, &err), UF_OK);
    assert_int_equal(uf_model_load(out, &m, &err), UF_OK);
    const uf_model_info *info = uf_model_get_info(m);
    assert_true(info->has_postproc);
    assert_true(info->post.image_threshold == p.image_threshold); /* exact float round trip */
    assert_true(info->post.pixel_threshold == p.pixel_threshold);
    assert_true(info->post.pred_scores_min == p.pred_scores_min);
    assert_true(info->post.pred_scores_max == p.pred_scores_max);
    assert_true(info->post.anomaly_maps_min == p.anomaly_maps_min);
    assert_true(info->post.anomaly_maps_max == p.anomaly_maps_max);
    assert_string_equal(info->name, "calibration-test");
    /* normalisation now applies: (0.61234567 - thr) / range + 0.5 = 0.5 */
    assert_float_equal(uf_postproc_normalize(&info->post, p.image_threshold, 1), 0.5, 1e-6);
    uf_model_free(m);
    assert_same_tensors(in, out);
    struct stat sb;
    assert_int_equal(stat(out, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);

    /* in place, with a NaN pixel threshold: the key disappears (falls back to the image one) */
    uf_postproc q = p;
    q.image_threshold = 0.25f;
    q.pixel_threshold = NAN;
    assert_int_equal(uf_model_write_postproc(out, out, &q, &err), UF_OK);
    assert_int_equal(uf_model_load(out, &m, &err), UF_OK);
    info = uf_model_get_info(m);
    assert_true(info->post.image_threshold == 0.25f);
    assert_true(isnan(info->post.pixel_threshold));
    assert_null(strstr(info->config_json, "pixel_threshold"));
    assert_non_null(strstr(info->config_json, "image_threshold"));
    uf_model_free(m);
    assert_same_tensors(in, out);

    /* errors leave nothing behind: missing input, infinite value, not a model */
    size_t before = count_dir(tmpdir);
    assert_int_equal(uf_model_write_postproc(missing, bad, &p, &err), UF_ERR_IO);
    assert_non_null(strstr(err.msg, "missing.safetensors"));
    q = p;
    q.pred_scores_max = INFINITY;
    assert_int_equal(uf_model_write_postproc(in, bad, &q, &err), UF_ERR_ARG);
    FILE *f = fopen(missing, "wb");
    assert_non_null(f);
    fputs("not a model", f);
    fclose(f);
    assert_int_equal(uf_model_write_postproc(missing, bad, &p, &err), UF_ERR_FORMAT);
    tmp(bad, sizeof bad, "no/such/dir/out.safetensors");
    assert_int_equal(uf_model_write_postproc(in, bad, &p, &err), UF_ERR_IO);
    assert_int_equal(count_dir(tmpdir), before + 1); /* only the junk input file */
}

int main(void)
{
    if (!mkdtemp(tmpdir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auroc_known),      cmocka_unit_test(test_auroc_large),
        cmocka_unit_test(test_f1_known),         cmocka_unit_test(test_f1_bruteforce),
        cmocka_unit_test(test_iou),              cmocka_unit_test(test_aupro_hand),
        cmocka_unit_test(test_aupro_anomalib_cases), cmocka_unit_test(test_aupro_bruteforce),
        cmocka_unit_test(test_aupro_edges),      cmocka_unit_test(test_write_postproc),
    };
    int rc = cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
    if (ut_rmtree(tmpdir) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
