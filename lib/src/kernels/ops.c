/* ops.c — data-movement kernels: max pooling, parallel copy, pixel shuffle, channel slices. */
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

void uf_pixel_unshuffle2(const float *out, int A, int h, int w, float *in)
{
    int W = 2 * w;
    for (int c = 0; c < A; c++) {
        int g = c / 4, a = (c % 4) / 2, bb = c % 2;
        const float *src = out + (size_t)g * 4 * h * w;
        float *d = in + (size_t)c * h * w;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++)
                d[(size_t)i * w + j] = src[(size_t)(2 * i + a) * W + 2 * j + bb];
    }
}

void uf_copy_channels(const float *in, int B, int C, int c0, int n, size_t hw, float *out)
{
    for (int b = 0; b < B; b++)
        memcpy(out + (size_t)b * n * hw, in + ((size_t)b * C + c0) * hw, sizeof(float) * n * hw);
}
