/* metrics.c — AUROC, F1-optimal threshold, AUPRO, IoU (uflow_eval.h, docs/eval.md).
 *
 * Every curve is built from scores sorted ascending. Floats are mapped to 32-bit keys whose
 * unsigned order is the float order (-0.0 folded onto +0.0 so equal floats give equal keys),
 * then sorted with an LSD radix sort (three 11-bit passes, passes whose digit is constant are
 * skipped): O(n) time and one scratch array. The curves are walked from the largest key down,
 * one step per distinct key. */
#include "uflow_eval.h"
#include "core/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- keys and radix sort ------------------------------------------------------------------ */

static inline uint32_t fkey(float f)
{
    uint32_t u;
    if (f == 0.f)
        f = 0.f; /* -0.0 == +0.0: one threshold */
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline float keyf(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define RBITS 11
#define RSIZE (1u << RBITS)
#define RPASSES 3 /* 3 x 11 >= 32 */

/* Sort a[0..n) ascending; tmp holds n elements. The result is in a. */
static void radix_u32(uint32_t *a, uint32_t *tmp, size_t n)
{
    static const int shift[RPASSES] = {0, 11, 22};
    size_t cnt[RPASSES][RSIZE];
    memset(cnt, 0, sizeof cnt);
    for (size_t i = 0; i < n; i++)
        for (int p = 0; p < RPASSES; p++)
            cnt[p][(a[i] >> shift[p]) & (RSIZE - 1)]++;
    uint32_t *src = a, *dst = tmp;
    for (int p = 0; p < RPASSES; p++) {
        if (n == 0 || cnt[p][(a[0] >> shift[p]) & (RSIZE - 1)] == n)
            continue; /* every element has this digit */
        size_t sum = 0;
        for (size_t d = 0; d < RSIZE; d++) {
            size_t c = cnt[p][d];
            cnt[p][d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[cnt[p][(src[i] >> shift[p]) & (RSIZE - 1)]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
}

/* Stable sort of a[0..n) by the upper 32 bits (the key; the lower 32 bits carry a payload). */
static void radix_u64_hi(uint64_t *a, uint64_t *tmp, size_t n)
{
    static const int shift[RPASSES] = {32, 43, 54};
    size_t cnt[RPASSES][RSIZE];
    memset(cnt, 0, sizeof cnt);
    for (size_t i = 0; i < n; i++)
        for (int p = 0; p < RPASSES; p++)
            cnt[p][(a[i] >> shift[p]) & (RSIZE - 1)]++;
    uint64_t *src = a, *dst = tmp;
    for (int p = 0; p < RPASSES; p++) {
        if (n == 0 || cnt[p][(a[0] >> shift[p]) & (RSIZE - 1)] == n)
            continue;
        size_t sum = 0;
        for (size_t d = 0; d < RSIZE; d++) {
            size_t c = cnt[p][d];
            cnt[p][d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[cnt[p][(src[i] >> shift[p]) & (RSIZE - 1)]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
}

static uf_status check_n(size_t n, uf_error *err)
{
    if (n > UINT32_MAX)
        return uf_err(err, UF_ERR_LIMIT, "%zu points: at most 2^32-1 are supported", n);
    return UF_OK;
}

/* Sorted keys of the positive and the negative scores: pos = keys, neg = keys + P. */
typedef struct split {
    uint32_t *keys;
    size_t P, N;
} split;

static uf_status split_sort(const float *scores, const uint8_t *labels, size_t n, split *s,
                            uf_error *err)
{
    memset(s, 0, sizeof *s);
    uf_status st = check_n(n, err);
    if (st)
        return st;
    if (n && (!scores || !labels))
        return uf_err(err, UF_ERR_ARG, "scores and labels must not be NULL");
    for (size_t i = 0; i < n; i++) {
        if (isnan(scores[i]))
            return uf_err(err, UF_ERR_ARG, "score %zu is NaN", i);
        s->P += labels[i] != 0;
    }
    s->N = n - s->P;
    s->keys = malloc((n ? n : 1) * sizeof *s->keys);
    uint32_t *tmp = malloc((UF_MAX(s->P, s->N) + 1) * sizeof *tmp);
    if (!s->keys || !tmp) {
        free(s->keys);
        free(tmp);
        s->keys = NULL;
        return uf_err(err, UF_ERR_NOMEM, "out of memory sorting %zu scores", n);
    }
    size_t ip = 0, in = s->P;
    for (size_t i = 0; i < n; i++)
        s->keys[labels[i] ? ip++ : in++] = fkey(scores[i]);
    radix_u32(s->keys, tmp, s->P);
    radix_u32(s->keys + s->P, tmp, s->N);
    free(tmp);
    return UF_OK;
}

/* ---- AUROC -------------------------------------------------------------------------------- */

uf_status uf_auroc_ex(const float *scores, const uint8_t *labels, size_t n, double *auroc,
                      uf_error *err)
{
    *auroc = NAN;
    split s;
    uf_status st = split_sort(scores, labels, n, &s, err);
    if (st)
        return st;
    if (s.P == 0 || s.N == 0) {
        free(s.keys);
        return UF_OK;
    }
    /* 2U = sum over positives of 2 * #(neg < s) + #(neg == s). P * N <= n^2 / 4 <= 2^62, so
     * 2U <= 2^63 fits in 64 bits exactly. */
    const uint32_t *pos = s.keys, *neg = s.keys + s.P;
    uint64_t u2 = 0;
    size_t lo = 0, hi = 0; /* #neg < key, #neg <= key */
    for (size_t i = 0; i < s.P;) {
        uint32_t k = pos[i];
        size_t j = i;
        while (j < s.P && pos[j] == k)
            j++;
        while (lo < s.N && neg[lo] < k)
            lo++;
        if (hi < lo)
            hi = lo;
        while (hi < s.N && neg[hi] <= k)
            hi++;
        u2 += (uint64_t)(j - i) * (uint64_t)(2 * lo + (hi - lo));
        i = j;
    }
    *auroc = (double)u2 / (2.0 * (double)s.P * (double)s.N);
    free(s.keys);
    return UF_OK;
}

double uf_auroc(const float *scores, const uint8_t *labels, size_t n)
{
    double a;
    return uf_auroc_ex(scores, labels, n, &a, NULL) == UF_OK ? a : NAN;
}

/* ---- F1-optimal threshold ----------------------------------------------------------------- */

uf_status uf_f1_threshold(const float *scores, const uint8_t *labels, size_t n, uf_f1_result *out,
                          uf_error *err)
{
    memset(out, 0, sizeof *out);
    out->threshold = NAN;
    out->f1 = out->precision = out->recall = NAN;
    if (n == 0)
        return uf_err(err, UF_ERR_ARG, "F1 threshold of an empty set");
    split s;
    uf_status st = split_sort(scores, labels, n, &s, err);
    if (st)
        return st;
    const uint32_t *pos = s.keys, *neg = s.keys + s.P;
    size_t ip = s.P, in = s.N; /* unvisited prefix lengths: tp = P - ip, fp = N - in */
    uint64_t btp = 0, bfp = 0;
    uint32_t bkey = 0;
    double best = -1.0;
    while (ip > 0 || in > 0) {
        /* next threshold: the largest key not yet visited */
        uint32_t k = ip == 0 ? neg[in - 1] : in == 0 ? pos[ip - 1] : UF_MAX(pos[ip - 1], neg[in - 1]);
        while (ip > 0 && pos[ip - 1] == k)
            ip--;
        while (in > 0 && neg[in - 1] == k)
            in--;
        uint64_t tp = s.P - ip, fp = s.N - in, fn = ip;
        double f1 = tp ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 0.0;
        if (f1 >= best) { /* ">=": walking downwards, the lowest of equal F1 wins */
            best = f1;
            bkey = k;
            btp = tp;
            bfp = fp;
        }
    }
    if (s.P == 0) { /* no anomalous sample: the largest score, F1 0 */
        bkey = neg[s.N - 1];
        btp = 0;
        bfp = 1;
        while (bfp < s.N && neg[s.N - 1 - bfp] == bkey)
            bfp++;
        best = 0.0;
    }
    out->threshold = keyf(bkey);
    out->f1 = best;
    out->tp = btp;
    out->fp = bfp;
    out->fn = s.P - btp;
    out->precision = btp + bfp ? (double)btp / (double)(btp + bfp) : NAN;
    out->recall = s.P ? (double)btp / (double)s.P : NAN;
    free(s.keys);
    return UF_OK;
}

/* ---- AUPRO -------------------------------------------------------------------------------- */

/* 8-connected components of mask [h, w] (non-zero = foreground). lab[i] = component id + 1
 * (first + 0, first + 1, ...) or 0; queue holds h * w entries. Returns the count. */
static uint32_t components(const uint8_t *mask, int h, int w, uint32_t first, uint32_t *lab,
                           uint32_t *queue)
{
    size_t n = (size_t)h * (size_t)w;
    memset(lab, 0, n * sizeof *lab);
    uint32_t count = 0;
    for (size_t s = 0; s < n; s++) {
        if (!mask[s] || lab[s])
            continue;
        uint32_t id = first + count + 1;
        count++;
        size_t qh = 0, qt = 0;
        lab[s] = id;
        queue[qt++] = (uint32_t)s;
        while (qh < qt) {
            uint32_t p = queue[qh++];
            int y = (int)(p / (uint32_t)w), x = (int)(p % (uint32_t)w);
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int yy = y + dy, xx = x + dx;
                    if (yy < 0 || yy >= h || xx < 0 || xx >= w)
                        continue;
                    size_t q = (size_t)yy * (size_t)w + (size_t)xx;
                    if (mask[q] && !lab[q]) {
                        lab[q] = id;
                        queue[qt++] = (uint32_t)q;
                    }
                }
        }
    }
    return count;
}

uf_status uf_aupro(const float *maps, const uint8_t *masks, size_t n_images, int h, int w,
                   double fpr_limit, double *aupro, uf_error *err)
{
    *aupro = NAN;
    if (h <= 0 || w <= 0 || !(fpr_limit > 0.0 && fpr_limit <= 1.0))
        return uf_err(err, UF_ERR_ARG, "AUPRO: size %dx%d or fpr_limit %g invalid (limit in (0, 1])",
                      h, w, fpr_limit);
    size_t hw = (size_t)h * (size_t)w;
    if (n_images && hw > SIZE_MAX / n_images)
        return uf_err(err, UF_ERR_LIMIT, "AUPRO: too many pixels");
    size_t n = hw * n_images;
    uf_status st = check_n(n, err);
    if (st)
        return st;
    if (n && (!maps || !masks))
        return uf_err(err, UF_ERR_ARG, "AUPRO: maps and masks must not be NULL");
    size_t na = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(maps[i]))
            return uf_err(err, UF_ERR_ARG, "AUPRO: map value %zu is NaN", i);
        na += masks[i] != 0;
    }
    size_t nn = n - na;
    if (na == 0 || nn == 0)
        return UF_OK;

    uint32_t *normal = malloc(nn * sizeof *normal), *ntmp = malloc(nn * sizeof *ntmp);
    uint64_t *reg = malloc(na * sizeof *reg), *rtmp = malloc(na * sizeof *rtmp);
    uint32_t *lab = malloc(hw * sizeof *lab), *queue = malloc(hw * sizeof *queue);
    uint32_t *size = NULL, nreg = 0, cap = 0;
    double *inc = NULL;
    if (!normal || !ntmp || !reg || !rtmp || !lab || !queue) {
        st = uf_err(err, UF_ERR_NOMEM, "AUPRO: out of memory for %zu pixels", n);
        goto done;
    }
    /* Pixels: normal keys, and (key << 32 | region id) for the anomalous ones. */
    size_t jn = 0, ja = 0;
    for (size_t b = 0; b < n_images; b++) {
        const uint8_t *m = masks + b * hw;
        const float *s = maps + b * hw;
        uint32_t c = components(m, h, w, nreg, lab, queue);
        if (nreg + c > cap) {
            uint32_t nc = UF_MAX(2 * cap, nreg + c + 16);
            uint32_t *ns = realloc(size, nc * sizeof *ns);
            if (!ns) {
                st = uf_err(err, UF_ERR_NOMEM, "AUPRO: out of memory");
                goto done;
            }
            memset(ns + cap, 0, (nc - cap) * sizeof *ns);
            size = ns;
            cap = nc;
        }
        nreg += c;
        for (size_t i = 0; i < hw; i++) {
            if (lab[i]) {
                uint32_t r = lab[i] - 1;
                size[r]++;
                reg[ja++] = (uint64_t)fkey(s[i]) << 32 | r;
            } else
                normal[jn++] = fkey(s[i]);
        }
    }
    free(lab);
    free(queue);
    lab = queue = NULL;
    radix_u32(normal, ntmp, nn);
    radix_u64_hi(reg, rtmp, na);
    free(ntmp);
    free(rtmp);
    ntmp = NULL;
    rtmp = NULL;
    /* Each region pixel crossing the threshold adds 1 / (R * |region|) to PRO. */
    inc = malloc(nreg * sizeof *inc);
    if (!inc) {
        st = uf_err(err, UF_ERR_NOMEM, "AUPRO: out of memory");
        goto done;
    }
    for (uint32_t r = 0; r < nreg; r++)
        inc[r] = 1.0 / ((double)nreg * (double)size[r]);

    /* Walk distinct thresholds from the top: the curve (FPR, PRO) from (0, 0). */
    size_t in = nn, ia = na;
    double x0 = 0.0, y0 = 0.0, area = 0.0, pro = 0.0;
    while (in > 0 || ia > 0) {
        uint32_t kn = in ? normal[in - 1] : 0, ka = ia ? (uint32_t)(reg[ia - 1] >> 32) : 0;
        uint32_t k = !in ? ka : !ia ? kn : UF_MAX(kn, ka);
        while (in > 0 && normal[in - 1] == k)
            in--;
        while (ia > 0 && (uint32_t)(reg[ia - 1] >> 32) == k)
            pro += inc[(uint32_t)reg[--ia]];
        double x1 = (double)(nn - in) / (double)nn, y1 = ia ? pro : 1.0;
        if (x1 >= fpr_limit) {
            double y = x1 > x0 ? y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0) : y1;
            area += 0.5 * (y0 + y) * (fpr_limit - x0);
            break;
        }
        area += 0.5 * (y0 + y1) * (x1 - x0);
        x0 = x1;
        y0 = y1;
    }
    *aupro = area / fpr_limit;
done:
    free(normal);
    free(ntmp);
    free(reg);
    free(rtmp);
    free(lab);
    free(queue);
    free(size);
    free(inc);
    return st;
}

/* ---- IoU ---------------------------------------------------------------------------------- */

double uf_iou(const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t inter = 0, uni = 0;
    for (size_t i = 0; i < n; i++) {
        int x = a[i] != 0, y = b[i] != 0;
        inter += (size_t)(x & y);
        uni += (size_t)(x | y);
    }
    return uni ? (double)inter / (double)uni : 1.0;
}

double uf_miou(const uint8_t *pred, const uint8_t *gt, size_t n_images, size_t pixels)
{
    if (n_images == 0)
        return NAN;
    double s = 0.0;
    for (size_t i = 0; i < n_images; i++)
        s += uf_iou(pred + i * pixels, gt + i * pixels, pixels);
    return s / (double)n_images;
}
