/* ops.c — small kernels: pooling, LayerNorm, bilinear resize, pixel shuffle, channel copy. */
#include "core/internal.h"
#include "kernels/kernels.h"
#include "core/pool.h"

#include <math.h>
#include <string.h>

/* NaN-propagating max, as PyTorch's max pooling (a NaN anywhere in the window wins). */
static inline float nanmax(float m, float v) { return (v > m || v != v) ? v : m; }

static void maxpool_generic(const float *x, int h, int w, int k, int s, int p, float *y, int ho, int wo)
{
    for (int oy = 0; oy < ho; oy++)
        for (int ox = 0; ox < wo; ox++) {
            float m = -INFINITY;
            for (int ky = 0; ky < k; ky++) {
                int iy = oy * s - p + ky;
                if (iy < 0 || iy >= h)
                    continue;
                for (int kx = 0; kx < k; kx++) {
                    int ix = ox * s - p + kx;
                    if (ix >= 0 && ix < w)
                        m = nanmax(m, x[iy * w + ix]);
                }
            }
            y[oy * wo + ox] = m;
        }
}

/* 3x3, stride 2, pad 1 (the ResNet stem): a horizontal pass into a row buffer, then a
 * vertical max of three rows; padding is -inf, so out-of-range taps are skipped. Plain
 * compares so it vectorises: NaN inputs do not propagate here as they do in PyTorch, but
 * the stem's ReLU (v > 0 ? v : 0) has already mapped NaN to 0. */
static inline float fmax2(float m, float v) { return v > m ? v : m; }

static void maxpool_3s2(const float *x, int h, int w, float *y, int ho, int wo, float *rows)
{
    for (int oy = 0; oy < ho; oy++) {
        float *r = rows;
        for (int i = 0; i < wo; i++)
            r[i] = -INFINITY;
        for (int ky = 0; ky < 3; ky++) {
            int iy = 2 * oy - 1 + ky;
            if (iy < 0 || iy >= h)
                continue;
            const float *src = x + (size_t)iy * w;
            r[0] = fmax2(r[0], src[0]);
            if (w > 1)
                r[0] = fmax2(r[0], src[1]);
            /* interior outputs read src[2ox-1 .. 2ox+1], all in range while 2ox+1 < w */
            int inner = (w - 2) / 2 + 1 < wo ? (w - 2) / 2 + 1 : wo;
            for (int ox = 1; ox < inner; ox++) {
                const float *q = src + 2 * ox - 1;
                r[ox] = fmax2(r[ox], fmax2(fmax2(q[0], q[1]), q[2]));
            }
            for (int ox = inner > 1 ? inner : 1; ox < wo; ox++) {
                int ix = 2 * ox - 1;
                float m = src[ix];
                if (ix + 1 < w)
                    m = fmax2(m, src[ix + 1]);
                r[ox] = fmax2(r[ox], m);
            }
        }
        memcpy(y + (size_t)oy * wo, r, sizeof(float) * wo);
    }
}

typedef struct pool_job {
    const float *in;
    float *out;
    int planes, h, w, k, s, p;
} pool_job;

static void maxpool_part(void *arg, int t, int nt)
{
    const pool_job *j = arg;
    int ho = (j->h + 2 * j->p - j->k) / j->s + 1, wo = (j->w + 2 * j->p - j->k) / j->s + 1;
    float rows[wo > 0 ? wo : 1];
    size_t lo, hi;
    uf_split((size_t)j->planes, 1, t, nt, &lo, &hi);
    for (size_t pl = lo; pl < hi; pl++) {
        const float *x = j->in + pl * j->h * j->w;
        float *y = j->out + pl * ho * wo;
        if (j->k == 3 && j->s == 2 && j->p == 1)
            maxpool_3s2(x, j->h, j->w, y, ho, wo, rows);
        else
            maxpool_generic(x, j->h, j->w, j->k, j->s, j->p, y, ho, wo);
    }
}

void uf_maxpool2d_ex(const uf_exec *ex, const float *in, int B, int C, int h, int w, int k, int s,
                     int p, float *out)
{
    pool_job j = {in, out, B * C, h, w, k, s, p};
    uf_pool_run(ex ? ex->pool : NULL, maxpool_part, &j);
}

void uf_maxpool2d(const float *in, int B, int C, int h, int w, int k, int s, int p, float *out)
{
    uf_maxpool2d_ex(NULL, in, B, C, h, w, k, s, p, out);
}

/* LayerNorm in three parallel passes (sum, squared deviations, affine); partial sums are
 * combined in thread order, in double. */
#define LN_MAX_THREADS 256
typedef struct ln_job {
    const float *x, *gamma, *beta;
    float *y;
    size_t n;
    int phase;
    double mean;
    float meanf, rstd;
    double part[LN_MAX_THREADS];
} ln_job;

static void ln_part(void *arg, int t, int nt)
{
    ln_job *j = arg;
    size_t lo, hi;
    uf_split(j->n, 64, t, nt, &lo, &hi);
    if (j->phase == 0) {
        double s = 0;
        for (size_t i = lo; i < hi; i++)
            s += j->x[i];
        j->part[t] = s;
    } else if (j->phase == 1) {
        double ss = 0;
        for (size_t i = lo; i < hi; i++) {
            double d = j->x[i] - j->mean;
            ss += d * d;
        }
        j->part[t] = ss;
    } else if (j->gamma) {
        for (size_t i = lo; i < hi; i++)
            j->y[i] = (j->x[i] - j->meanf) * j->rstd * j->gamma[i] + j->beta[i];
    } else {
        for (size_t i = lo; i < hi; i++)
            j->y[i] = (j->x[i] - j->meanf) * j->rstd;
    }
}

void uf_layernorm_chw_ex(const uf_exec *ex, const float *in, int B, size_t n, const float *gamma,
                         const float *beta, float eps, float *out)
{
    uf_pool *pool = ex ? ex->pool : NULL;
    int nt = uf_pool_size(pool);
    ln_job j = {.gamma = gamma, .beta = beta, .n = n};
    for (int b = 0; b < B; b++) {
        j.x = in + (size_t)b * n;
        j.y = out + (size_t)b * n;
        double s = 0;
        j.phase = 0;
        uf_pool_run(pool, ln_part, &j);
        for (int t = 0; t < nt; t++)
            s += j.part[t];
        j.mean = s / (double)n;
        j.phase = 1;
        uf_pool_run(pool, ln_part, &j);
        double ss = 0;
        for (int t = 0; t < nt; t++)
            ss += j.part[t];
        j.meanf = (float)j.mean;
        j.rstd = (float)(1.0 / sqrt(ss / (double)n + eps));
        j.phase = 2;
        uf_pool_run(pool, ln_part, &j);
    }
}

void uf_layernorm_chw(const float *in, int B, size_t n, const float *gamma, const float *beta,
                      float eps, float *out)
{
    uf_layernorm_chw_ex(NULL, in, B, n, gamma, beta, eps, out);
}

typedef struct copy_job {
    float *dst;
    const float *src;
    size_t n;
} copy_job;

static void copy_part(void *arg, int t, int nt)
{
    const copy_job *j = arg;
    size_t lo, hi;
    uf_split(j->n, 1024, t, nt, &lo, &hi);
    if (hi > lo)
        memcpy(j->dst + lo, j->src + lo, sizeof(float) * (hi - lo));
}

void uf_copy_ex(const uf_exec *ex, float *dst, const float *src, size_t n)
{
    copy_job j = {dst, src, n};
    uf_pool_run(ex ? ex->pool : NULL, copy_part, &j);
}

/* PyTorch's area_pixel_compute_source_index for align_corners=False (clamped at 0). */
static void bilinear_taps(int in, int out, int *i0, int *i1, float *l1)
{
    float scale = (float)in / (float)out;
    for (int d = 0; d < out; d++) {
        float src = scale * ((float)d + 0.5f) - 0.5f;
        if (src < 0.f)
            src = 0.f;
        int i = (int)src;
        i0[d] = i;
        i1[d] = i < in - 1 ? i + 1 : i;
        l1[d] = src - (float)i;
    }
}

void uf_resize_bilinear(const float *in, int planes, int ih, int iw, float *out, int oh, int ow)
{
    /* Taps on the stack: sizes here are model input sizes, bounded by the caller. */
    int y0[oh], y1[oh], x0[ow], x1[ow];
    float ly[oh], lx[ow];
    bilinear_taps(ih, oh, y0, y1, ly);
    bilinear_taps(iw, ow, x0, x1, lx);
    for (int p = 0; p < planes; p++) {
        const float *x = in + (size_t)p * ih * iw;
        float *y = out + (size_t)p * oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            const float *r0 = x + (size_t)y0[oy] * iw, *r1 = x + (size_t)y1[oy] * iw;
            float h1 = ly[oy], h0 = 1.f - h1;
            for (int ox = 0; ox < ow; ox++) {
                float w1 = lx[ox], w0 = 1.f - w1;
                y[(size_t)oy * ow + ox] = h0 * (w0 * r0[x0[ox]] + w1 * r0[x1[ox]]) +
                                          h1 * (w0 * r1[x0[ox]] + w1 * r1[x1[ox]]);
            }
        }
    }
}

void uf_pixel_shuffle2(const float *in, int B, int C, int h, int w, float *out)
{
    int G = C / 4;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            float *o = out + ((size_t)b * G + g) * 4 * h * w;
            for (int a = 0; a < 2; a++)
                for (int bb = 0; bb < 2; bb++) {
                    const float *src = in + ((size_t)b * C + 4 * g + 2 * a + bb) * h * w;
                    for (int i = 0; i < h; i++)
                        for (int j = 0; j < w; j++)
                            o[(size_t)(2 * i + a) * 2 * w + 2 * j + bb] = src[(size_t)i * w + j];
                }
        }
}

void uf_copy_channels(const float *in, int B, int C, int c0, int n, size_t hw, float *out)
{
    for (int b = 0; b < B; b++)
        memcpy(out + (size_t)b * n * hw, in + ((size_t)b * C + c0) * hw, sizeof(float) * n * hw);
}
