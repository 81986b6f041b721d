/* nfa.c — a-contrario NFA map and mask (docs/nfa.md; the math is summarised in nfa.h).
 *
 * anomalib unfolds every 7x7 (3x3) window of every channel and calls scipy per window, ~70 ms
 * per image. Here the work per run is:
 *   1. one pass over z per scale counting, per pixel, the channels with z^2 >= tau. The window
 *      sum of per-channel counts equals the window sum of this channel-summed count, so
 *   2. one integer box sum per scale (running sums over a reflect-padded copy) gives anomalib's
 *      count exactly, whatever the summation order;
 *   3. a table lookup for log10 P[X > floor(count / C)];
 *   4. separable bicubic upsampling with precomputed taps: along x into h_k rows of W, then
 *      along y, accumulated over the scales straight into the output row.
 * Everything is allocated at init; the plan (tau, tables, taps) never changes after it.
 */
#include "models/nfa.h"

#include "core/internal.h"
#include "kernels/kernels.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NFA_LN10 2.302585092994045684017991454684364208
#define NFA_SQRT1_2 0.707106781186547524400844362104849039
#define NFA_SQRT2PI 2.506628274631000502415765284811045253

struct uf_nfa {
    uf_nfa_opts o;
    int K, H, W, max_batch;
    int C[UF_MAX_SCALES], h[UF_MAX_SCALES], w[UF_MAX_SCALES];
    int half[UF_MAX_SCALES], nwin[UF_MAX_SCALES];
    float tau;        /* float32 threshold on z^2 */
    double tau_d;     /* the same value in double (high_precision compares exactly against it) */
    float log_n;      /* float32 log10(sum h_k w_k), promoted when added, as in torch */
    double *table[UF_MAX_SCALES];                 /* [nwin + 1] */
    int32_t *ix[UF_MAX_SCALES], *iy[UF_MAX_SCALES];  /* [W][4], [H][4] clamped taps */
    double *wx[UF_MAX_SCALES], *wy[UF_MAX_SCALES];   /* matching weights */
    /* scratch */
    int32_t *cnt;     /* [max h*w]: channels passing per pixel */
    int32_t *pad;     /* [max (h+2half)(w+2half)]: reflect-padded cnt */
    int32_t *vsum;    /* [max h*(w+2half)]: vertical window sums */
    double *lsf[UF_MAX_SCALES];   /* [max_batch][h*w]: log10 survival maps of the last run */
    double *tmp[UF_MAX_SCALES];   /* [h][W]: rows interpolated along x */
    double *acc;      /* [W]: one output row, sum over scales */
};

uf_nfa_opts uf_nfa_opts_default(void)
{
    return (uf_nfa_opts){.window = 7, .prob_thr = 0.5, .epsilon = 0.0, .high_precision = 0};
}

/* ------------------------------------------------------------------------------------------ */
/* tau                                                                                        */

/* x with P[N(0,1) > x] = q, 0 < q <= 0.5. Abramowitz & Stegun 26.2.23 (|error| < 4.5e-4) as
 * the start, then Halley steps on erfc, which is accurate to a few ulps in relative terms even
 * far in the tail; convergence is cubic, so four steps reach double precision. */
static double norm_isf(double q)
{
    double t = sqrt(-2.0 * log(q));
    double x = t - (2.515517 + t * (0.802853 + t * 0.010328)) /
                       (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308)));
    for (int i = 0; i < 4; i++) {
        double e = 0.5 * erfc(x * NFA_SQRT1_2) - q;       /* f(x) = Q(x) - q, f' = -phi */
        double u = e * NFA_SQRT2PI * exp(0.5 * x * x);  /* f / phi */
        x += u / (1.0 - 0.5 * x * u);                   /* Halley: f'' = x phi */
    }
    return x;
}

double uf_nfa_chi2_1_quantile(double prob_thr)
{
    /* Phi^-1((thr + 1) / 2) = the upper-tail quantile at (1 - thr) / 2; working in the upper
     * tail keeps full relative precision when thr is close to 1. */
    double x = norm_isf(0.5 * (1.0 - prob_thr));
    return x * x;
}

/* ------------------------------------------------------------------------------------------ */
/* Binomial tail tables                                                                       */

/* ln(e^a + e^b), exact for -inf operands. */
static double logaddexp(double a, double b)
{
    if (a < b) {
        double t = a;
        a = b;
        b = t;
    }
    if (b == -INFINITY)
        return a;
    return a + log1p(exp(b - a));
}

void uf_nfa_log10_tail(int n, double p, double *out)
{
    if (p == 0.5 && n <= 50) {
        /* Exact: C(n, j) and all partial sums are integers below 2^53, and 2^-n scaling is
         * exact, so the only rounding is the final log10 (anomalib's default case). */
        double c[51];
        c[0] = 1.0;
        for (int j = 0; j < n; j++)
            c[j + 1] = c[j] * (double)(n - j) / (double)(j + 1); /* exact: the product < 2^53 */
        double s = 0.0;
        out[n] = 0.0;
        for (int k = n - 1; k >= 0; k--) {
            s += c[k + 1];                    /* s = sum_{j > k} C(n, j) */
            out[k] = log10(ldexp(s, -n));
        }
    } else {
        /* Log space for any n and p: ln term_j = ln C(n, j) + j ln p + (n - j) ln(1 - p),
         * accumulated from the top of the tail so that nothing underflows. ln C(n, j) is built
         * by ln C(n, j) = ln C(n, j-1) + ln((n - j + 1) / j) up to n/2 and mirrored, which keeps
         * the error at a few ulps times sqrt(n) with no lgamma (lgamma writes the global
         * signgam). */
        double lp = log(p), lq = log1p(-p);
        double lc = 0.0, tail = -INFINITY;
        out[0] = 0.0;
        for (int j = 1; j <= n / 2; j++) {
            lc += log((double)(n - j + 1) / (double)j);
            out[j] = lc;
        }
        for (int j = n / 2 + 1; j <= n; j++)
            out[j] = out[n - j];
        /* out[j] now holds ln C(n, j); turn it into the tail in place, from the top:
         * tail(k) = ln P[X > k] needs term_{k+1}, which is out[k + 1] before it is overwritten. */
        double term_next = out[n] + n * lp;   /* ln term_n */
        for (int k = n - 1; k >= 0; k--) {
            tail = logaddexp(tail, term_next);
            term_next = out[k] + k * lp + (n - k) * lq;
            out[k] = tail / NFA_LN10;
        }
    }
    /* x >= n: scipy returns -inf (P[X > n] = 0). Replace it with the probability of the most
     * extreme attainable outcome, P[X = n] = P[X > n - 1], so that the map stays finite. */
    out[n] = out[n - 1];
}

/* ------------------------------------------------------------------------------------------ */
/* Init / free                                                                                */

void uf_nfa_free(uf_nfa *n)
{
    if (!n)
        return;
    for (int k = 0; k < UF_MAX_SCALES; k++) {
        uf_afree(n->table[k]);
        uf_afree(n->ix[k]);
        uf_afree(n->iy[k]);
        uf_afree(n->wx[k]);
        uf_afree(n->wy[k]);
        uf_afree(n->lsf[k]);
        uf_afree(n->tmp[k]);
    }
    uf_afree(n->cnt);
    uf_afree(n->pad);
    uf_afree(n->vsum);
    uf_afree(n->acc);
    free(n);
}

uf_status uf_nfa_init(const uf_model_info *info, const uf_nfa_opts *o, int max_batch, uf_nfa **out,
                      uf_error *err)
{
    if (out)
        *out = NULL;
    if (!info || !out)
        return uf_err(err, UF_ERR_ARG, "uf_nfa_init: info and out must not be NULL");
    uf_nfa_opts opt = o ? *o : uf_nfa_opts_default();
    if (opt.window < 1)
        return uf_err(err, UF_ERR_ARG, "NFA window must be >= 1 (got %d)", opt.window);
    if (!(opt.prob_thr > 0.0 && opt.prob_thr < 1.0))
        return uf_err(err, UF_ERR_ARG, "NFA probability threshold must be in (0, 1) (got %g)",
                      opt.prob_thr);
    if (!isfinite(opt.epsilon))
        return uf_err(err, UF_ERR_ARG, "NFA epsilon must be finite (got %g)", opt.epsilon);
    if (max_batch < 1)
        return uf_err(err, UF_ERR_ARG, "NFA max_batch must be >= 1 (got %d)", max_batch);
    int K = info->n_scales;
    if (K < 1 || K > UF_MAX_SCALES)
        return uf_err(err, UF_ERR_ARG, "NFA: %d scales (1..%d supported)", K, UF_MAX_SCALES);
    if (info->height < 1 || info->width < 1)
        return uf_err(err, UF_ERR_ARG, "NFA: output size %dx%d", info->height, info->width);

    uf_nfa *n = calloc(1, sizeof *n);
    if (!n)
        return uf_err(err, UF_ERR_NOMEM, "out of memory allocating the NFA plan");
    n->o = opt;
    n->K = K;
    n->H = info->height;
    n->W = info->width;
    n->max_batch = max_batch;

    int64_t tests = 0;
    size_t max_hw = 1, max_pad = 1, max_vs = 1;
    for (int k = 0; k < K; k++) {
        int C = info->z_channels[k], h = info->z_height[k], w = info->z_width[k];
        if (C < 1 || h < 1 || w < 1) {
            uf_nfa_free(n);
            return uf_err(err, UF_ERR_ARG, "NFA: scale %d latent shape %dx%dx%d", k, C, h, w);
        }
        /* ws = window / 2^s in double, half = max(int(ws // 2), 1): exactly anomalib's rule */
        double ws = ldexp((double)opt.window, -k);
        int half = (int)floor(ws / 2.0);
        if (half < 1)
            half = 1;
        if (half >= h || half >= w) {
            /* PyTorch's reflect padding (and so anomalib) requires pad < size; there is no
             * faithful result to give, so refuse, naming the largest window that fits this
             * scale: floor(window / 2^(k+1)) <= min(h, w) - 1. */
            int mn = UF_MIN(h, w);
            uf_nfa_free(n);
            if (mn <= 1)
                return uf_err(err, UF_ERR_ARG,
                              "NFA: scale %d latent map is %dx%d; the a-contrario test needs every "
                              "latent map to be at least 2x2 (reflect padding by >= 1 pixel)",
                              k, h, w);
            return uf_err(err, UF_ERR_ARG,
                          "NFA: window %d gives a half width of %d at scale %d, but its latent "
                          "map is only %dx%d (reflect padding needs half < height and width); "
                          "use a window of at most %d",
                          opt.window, half, k, h, w, (mn << (k + 1)) - 1);
        }
        /* counts go up to n * C in int32 (and the table has n + 1 entries) */
        int64_t nw64 = (2 * (int64_t)half + 1) * (2 * (int64_t)half + 1);
        if (nw64 * C > INT32_MAX) {
            uf_nfa_free(n);
            return uf_err(err, UF_ERR_ARG, "NFA: a %lld-value window x %d channels is too large",
                          (long long)nw64, C);
        }
        int nw = (int)nw64;
        n->C[k] = C;
        n->h[k] = h;
        n->w[k] = w;
        n->half[k] = half;
        n->nwin[k] = nw;
        tests += (int64_t)h * w;
        size_t hw = (size_t)h * w, pw = (size_t)w + 2 * half, ph = (size_t)h + 2 * half;
        max_hw = UF_MAX(max_hw, hw);
        max_pad = UF_MAX(max_pad, ph * pw);
        max_vs = UF_MAX(max_vs, (size_t)h * pw);

        n->table[k] = uf_aalloc(sizeof(double) * (nw + 1));
        n->ix[k] = uf_aalloc(sizeof(int32_t) * 4 * n->W);
        n->wx[k] = uf_aalloc(sizeof(double) * 4 * n->W);
        n->iy[k] = uf_aalloc(sizeof(int32_t) * 4 * n->H);
        n->wy[k] = uf_aalloc(sizeof(double) * 4 * n->H);
        n->lsf[k] = uf_aalloc(sizeof(double) * hw * max_batch);
        n->tmp[k] = uf_aalloc(sizeof(double) * (size_t)h * n->W);
        if (!n->table[k] || !n->ix[k] || !n->wx[k] || !n->iy[k] || !n->wy[k] || !n->lsf[k] ||
            !n->tmp[k]) {
            uf_nfa_free(n);
            return uf_err(err, UF_ERR_NOMEM, "out of memory allocating the NFA plan");
        }
        /* X ~ Binomial(n, 1 - thr): p = 1 - thr in double, as anomalib passes it to scipy */
        uf_nfa_log10_tail(nw, 1.0 - opt.prob_thr, n->table[k]);
        uf_bicubic_taps_f64(w, n->W, n->ix[k], n->wx[k]);
        uf_bicubic_taps_f64(h, n->H, n->iy[k], n->wy[k]);
    }
    n->cnt = uf_aalloc(sizeof(int32_t) * max_hw);
    n->pad = uf_aalloc(sizeof(int32_t) * max_pad);
    n->vsum = uf_aalloc(sizeof(int32_t) * max_vs);
    n->acc = uf_aalloc(sizeof(double) * n->W);
    if (!n->cnt || !n->pad || !n->vsum || !n->acc) {
        uf_nfa_free(n);
        return uf_err(err, UF_ERR_NOMEM, "out of memory allocating the NFA scratch");
    }
    /* anomalib computes tau in float32 (Normal.icdf); we compute it in double and round once,
     * which is the same float for the default threshold (docs/nfa.md). */
    n->tau = (float)uf_nfa_chi2_1_quantile(opt.prob_thr);
    n->tau_d = (double)n->tau;
    /* torch.log10 of an int64 tensor yields float32 */
    n->log_n = (float)log10((double)tests);
    *out = n;
    return UF_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Run                                                                                        */

/* cnt[p] = number of channels with z^2 >= tau (float32 square and compare, as anomalib). */
UF_CLONES static void count_f32(const float *restrict z, int C, size_t hw, float tau,
                                int32_t *restrict cnt)
{
    memset(cnt, 0, sizeof(int32_t) * hw);
    for (int c = 0; c < C; c++) {
        const float *restrict zc = z + (size_t)c * hw;
        for (size_t p = 0; p < hw; p++) {
            float v = zc[p];
            cnt[p] += (v * v >= tau);
        }
    }
}

/* high_precision: z^2 in double is exact (24-bit mantissas), so this is the exact z^2 >= tau. */
UF_CLONES static void count_f64(const float *restrict z, int C, size_t hw, double tau,
                                int32_t *restrict cnt)
{
    memset(cnt, 0, sizeof(int32_t) * hw);
    for (int c = 0; c < C; c++) {
        const float *restrict zc = z + (size_t)c * hw;
        for (size_t p = 0; p < hw; p++) {
            double v = zc[p];
            cnt[p] += (v * v >= tau);
        }
    }
}

/* PyTorch "reflect": index -1 -> 1, L -> L - 2 (valid for pad < L). */
static inline int reflect(int i, int L) { return i < 0 ? -i : i >= L ? 2 * (L - 1) - i : i; }

/* Vertical running window sums over a padded map of pw columns: vs[y] = sum_{i<win} pad[y+i]. */
UF_CLONES static void box_vertical(const int32_t *restrict pad, int h, int pw, int win,
                                   int32_t *restrict vs)
{
    for (int x = 0; x < pw; x++)
        vs[x] = 0;
    for (int i = 0; i < win; i++) {
        const int32_t *restrict r = pad + (size_t)i * pw;
        for (int x = 0; x < pw; x++)
            vs[x] += r[x];
    }
    for (int y = 1; y < h; y++) {
        const int32_t *restrict prev = vs + (size_t)(y - 1) * pw;
        int32_t *restrict cur = vs + (size_t)y * pw;
        const int32_t *restrict add = pad + (size_t)(y - 1 + win) * pw;
        const int32_t *restrict sub = pad + (size_t)(y - 1) * pw;
        for (int x = 0; x < pw; x++)
            cur[x] = prev[x] + add[x] - sub[x];
    }
}

/* lsf[p] = tab[floor(count / C)]. anomalib: x = count / C in float32, then scipy floors it;
 * x >= n is its -inf case, which the table's last entry replaces. The float quotient is never
 * within rounding of an integer it is not equal to, so this floor is exact. */
UF_CLONES static void lookup(const int32_t *restrict cnt, size_t hw, float Cf, int nw,
                             const double *restrict tab, double *restrict lsf)
{
    for (size_t p = 0; p < hw; p++) {
        float q = (float)cnt[p] / Cf;
        int kk = (int)floorf(q);
        kk = kk < 0 ? 0 : kk > nw ? nw : kk;
        lsf[p] = tab[kk];
    }
}

/* One scale of one sample: z [C][h][w] -> lsf [h][w] = log10 P[X > floor(count / C)]. */
static void scale_log10_sf(const uf_nfa *n, int k, const float *z, double *lsf)
{
    int C = n->C[k], h = n->h[k], w = n->w[k], half = n->half[k], nw = n->nwin[k];
    size_t hw = (size_t)h * w;
    int32_t *cnt = n->cnt, *pad = n->pad, *vs = n->vsum;
    if (n->o.high_precision)
        count_f64(z, C, hw, n->tau_d, cnt);
    else
        count_f32(z, C, hw, n->tau, cnt);

    /* reflect-pad the count map by half on all four sides */
    int pw = w + 2 * half, ph = h + 2 * half, win = 2 * half + 1;
    for (int py = 0; py < ph; py++) {
        const int32_t *src = cnt + (size_t)reflect(py - half, h) * w;
        int32_t *dst = pad + (size_t)py * pw;
        for (int i = 0; i < half; i++) {
            dst[half - 1 - i] = src[i + 1];          /* left: -1-i -> 1+i */
            dst[half + w + i] = src[w - 2 - i];      /* right: w+i -> w-2-i */
        }
        memcpy(dst + half, src, sizeof(int32_t) * w);
    }
    box_vertical(pad, h, pw, win, vs);

    const double *tab = n->table[k];
    const float Cf = (float)C;
    for (int y = 0; y < h; y++) {
        const int32_t *r = vs + (size_t)y * pw;
        int32_t *srow = cnt + (size_t)y * w; /* cnt is consumed: reuse it for the sums */
        int32_t s = 0;
        for (int i = 0; i < win; i++)
            s += r[i];
        srow[0] = s;
        for (int x = 1; x < w; x++) {
            s += r[x - 1 + win] - r[x - 1];
            srow[x] = s;
        }
    }
    lookup(cnt, hw, Cf, nw, tab, lsf);
}

/* tmp[y][X] = sum_j wx[X][j] * src[y][ix[X][j]] for y < h (upsampling along x; gathers, which
 * AVX2/AVX-512 have). */
UF_CLONES static void interp_rows(const double *restrict src, int h, int w, int W,
                                  const int32_t *restrict ix, const double *restrict wx,
                                  double *restrict tmp)
{
    for (int y = 0; y < h; y++) {
        const double *restrict r = src + (size_t)y * w;
        double *restrict o = tmp + (size_t)y * W;
        for (int X = 0; X < W; X++) {
            const int32_t *i4 = ix + 4 * X;
            const double *w4 = wx + 4 * X;
            /* the same association as torch: ((t0 w0 + t1 w1) + t2 w2) + t3 w3 */
            o[X] = r[i4[0]] * w4[0] + r[i4[1]] * w4[1] + r[i4[2]] * w4[2] + r[i4[3]] * w4[3];
        }
    }
}

/* acc[X] (=|+=) w0 r0[X] + w1 r1[X] + w2 r2[X] + w3 r3[X] (upsampling along y). */
UF_CLONES static void interp_col_set(double *restrict acc, const double *restrict r0,
                                     const double *restrict r1, const double *restrict r2,
                                     const double *restrict r3, const double *w, int W)
{
    double w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
    for (int X = 0; X < W; X++)
        acc[X] = r0[X] * w0 + r1[X] * w1 + r2[X] * w2 + r3[X] * w3;
}

UF_CLONES static void interp_col_add(double *restrict acc, const double *restrict r0,
                                     const double *restrict r1, const double *restrict r2,
                                     const double *restrict r3, const double *w, int W)
{
    double w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
    for (int X = 0; X < W; X++)
        acc[X] += r0[X] * w0 + r1[X] * w1 + r2[X] * w2 + r3[X] * w3;
}

/* acc <- minus = -(log_n + acc) in place; returns the number of values > eps and raises
 * lanes[0..7] to the running maxima. Branch-free and split from the optional stores so that
 * each loop vectorises (the 8 explicit lanes let the max reduction use vector max without
 * -ffast-math: `a > b ? a : b` is exactly what maxpd computes). */
UF_CLONES static int64_t finish_row(double *restrict acc, int W, double log_n, double eps,
                                    double *restrict lanes)
{
    int64_t c = 0;
    for (int X = 0; X < W; X++) {
        double v = -(log_n + acc[X]);
        acc[X] = v;
        c += v > eps;
    }
    int X = 0;
    for (; X + 8 <= W; X += 8)
        for (int l = 0; l < 8; l++)
            lanes[l] = acc[X + l] > lanes[l] ? acc[X + l] : lanes[l];
    for (; X < W; X++)
        lanes[0] = acc[X] > lanes[0] ? acc[X] : lanes[0];
    return c;
}

UF_CLONES static void store_mask(const double *restrict v, int W, double eps,
                                 uint8_t *restrict mask)
{
    for (int X = 0; X < W; X++)
        mask[X] = (uint8_t)(v[X] > eps);
}

uf_status uf_nfa_run(uf_nfa *n, const float *const z[UF_MAX_SCALES], int B,
                     double *minus_log10_nfa, uint8_t *mask, float *anomalous_fraction,
                     double *min_log10_nfa, uf_error *err)
{
    if (!n || !z)
        return uf_err(err, UF_ERR_ARG, "uf_nfa_run: plan and z must not be NULL");
    if (B < 1 || B > n->max_batch)
        return uf_err(err, UF_ERR_ARG, "uf_nfa_run: batch %d outside 1..%d", B, n->max_batch);
    for (int k = 0; k < n->K; k++)
        if (!z[k])
            return uf_err(err, UF_ERR_ARG, "uf_nfa_run: z[%d] is NULL", k);
    const int K = n->K, H = n->H, W = n->W;
    const size_t HW = (size_t)H * W;
    const double log_n = (double)n->log_n, eps = n->o.epsilon;
    for (int b = 0; b < B; b++) {
        for (int k = 0; k < K; k++) {
            size_t hw = (size_t)n->h[k] * n->w[k];
            double *lsf = n->lsf[k] + (size_t)b * hw;
            scale_log10_sf(n, k, z[k] + (size_t)b * n->C[k] * hw, lsf);
            interp_rows(lsf, n->h[k], n->w[k], W, n->ix[k], n->wx[k], n->tmp[k]);
        }
        int64_t count = 0;
        double lanes[8];
        for (int l = 0; l < 8; l++)
            lanes[l] = -INFINITY;
        for (int Y = 0; Y < H; Y++) {
            for (int k = 0; k < K; k++) {
                const int32_t *i4 = n->iy[k] + 4 * Y;
                const double *t = n->tmp[k];
                (k == 0 ? interp_col_set : interp_col_add)(
                    n->acc, t + (size_t)i4[0] * W, t + (size_t)i4[1] * W, t + (size_t)i4[2] * W,
                    t + (size_t)i4[3] * W, n->wy[k] + 4 * Y, W);
            }
            count += finish_row(n->acc, W, log_n, eps, lanes);
            size_t off = (size_t)b * HW + (size_t)Y * W;
            if (minus_log10_nfa)
                memcpy(minus_log10_nfa + off, n->acc, sizeof(double) * W);
            if (mask)
                store_mask(n->acc, W, eps, mask + off);
        }
        double mx = lanes[0];
        for (int l = 1; l < 8; l++)
            mx = lanes[l] > mx ? lanes[l] : mx;
        if (anomalous_fraction)
            anomalous_fraction[b] = (float)((double)count / (double)HW);
        if (min_log10_nfa)
            min_log10_nfa[b] = -mx;
    }
    return UF_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Introspection                                                                              */

const double *uf_nfa_log10_sf(const uf_nfa *n, int k)
{
    return n && k >= 0 && k < n->K ? n->lsf[k] : NULL;
}

float uf_nfa_tau(const uf_nfa *n) { return n->tau; }

float uf_nfa_log10_n_tests(const uf_nfa *n) { return n->log_n; }

const double *uf_nfa_table(const uf_nfa *n, int k, int *half, int *n_window)
{
    if (!n || k < 0 || k >= n->K)
        return NULL;
    if (half)
        *half = n->half[k];
    if (n_window)
        *n_window = n->nwin[k];
    return n->table[k];
}
