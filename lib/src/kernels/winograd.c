/* winograd.c — 3x3 stride-1 pad-1 convolutions as Winograd F(2x2, 3x3): 16 GEMMs of
 * [Cout x Cin] x [Cin x tiles] on transformed weights and inputs, 2.25x fewer multiplies
 * than im2col. Transforms (Lavin & Gray 2016):
 *   V = B^T d B (4x4 input tile), U = G g G^T (at load), Y = A^T (U . V) A (2x2 output)
 * with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 * A^T = [1 1 1 0; 0 1 -1 -1]. The extra rounding is a few ulp, far inside the tolerances. */
#include "core/internal.h"
#include "kernels/kernels.h"

#include <cblas.h>
#include <string.h>

int uf_wino_applies(const uf_conv *c)
{
    return c->k == 3 && c->stride == 1 && c->pad == 1 && c->groups == 1;
}

void uf_wino_weights(const uf_conv *c, float *U)
{
    size_t oc = (size_t)c->cout * c->cin;
    for (size_t i = 0; i < oc; i++) {
        const float *g = c->w + i * 9;
        float t[4][3]; /* G g */
        for (int j = 0; j < 3; j++) {
            float g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
            t[0][j] = g0;
            t[1][j] = 0.5f * (g0 + g1 + g2);
            t[2][j] = 0.5f * (g0 - g1 + g2);
            t[3][j] = g2;
        }
        for (int r = 0; r < 4; r++) { /* (G g) G^T */
            float a = t[r][0], b = t[r][1], d = t[r][2];
            U[(size_t)(r * 4 + 0) * oc + i] = a;
            U[(size_t)(r * 4 + 1) * oc + i] = 0.5f * (a + b + d);
            U[(size_t)(r * 4 + 2) * oc + i] = 0.5f * (a - b + d);
            U[(size_t)(r * 4 + 3) * oc + i] = d;
        }
    }
}

size_t uf_wino_scratch_floats(const uf_conv *c, int w, size_t tile_rows)
{
    size_t tw = (size_t)(w + 1) / 2;
    return 16 * tile_rows * tw * ((size_t)c->cin + (size_t)c->cout) + 16 * (tw + 1);
}

#define HOT static inline __attribute__((always_inline))

/* Row iy of a channel, zero-padded by one on the left, split into even and odd columns:
 * ev[k] = padded[2k], od[k] = padded[2k + 1], k <= tw (padded[x + 1] = row[x]). */
HOT void deinterleave(const float *restrict row, float *restrict ev1, float *restrict od, int n)
{
    for (int k = 0; k < n; k++) {
        od[k] = row[2 * k];
        ev1[k] = row[2 * k + 1];
    }
}

HOT void split_row(const float *xc, int h, int w, int iy, int tw, float *ev, float *od)
{
    if (iy < 0 || iy >= h) {
        memset(ev, 0, sizeof(float) * (size_t)(tw + 1));
        memset(od, 0, sizeof(float) * (size_t)(tw + 1));
        return;
    }
    const float *row = xc + (size_t)iy * w;
    int full = w / 2; /* tiles whose two columns are both inside the row */
    ev[0] = 0.f;
    deinterleave(row, ev + 1, od, full);
    if (full < tw) { /* odd width: the last tile's second column is padding */
        od[full] = row[2 * full];
        ev[full + 1] = 0.f;
    }
    od[tw] = 0.f;
}

/* B^T along y for one column parity: b0 = r0 - r2, b1 = r1 + r2, b2 = r2 - r1, b3 = r1 - r3. */
HOT void bt_rows(const float *restrict r0, const float *restrict r1, const float *restrict r2,
                 const float *restrict r3, float *restrict b0, float *restrict b1,
                 float *restrict b2, float *restrict b3, int n)
{
    for (int k = 0; k < n; k++) {
        b0[k] = r0[k] - r2[k];
        b1[k] = r1[k] + r2[k];
        b2[k] = r2[k] - r1[k];
        b3[k] = r1[k] - r3[k];
    }
}

/* (B^T d) B along x: columns 2k..2k+3 are be[k], bo[k], be[k+1], bo[k+1]. */
HOT void bt_cols(const float *restrict be, const float *restrict bo, float *restrict v0,
                 float *restrict v1, float *restrict v2, float *restrict v3, int n)
{
    for (int k = 0; k < n; k++) {
        v0[k] = be[k] - be[k + 1];
        v1[k] = bo[k] + be[k + 1];
        v2[k] = be[k + 1] - bo[k];
        v3[k] = bo[k] - bo[k + 1];
    }
}

/* One output row of a tile row: s = p + sg*q + sg*u (row of A^T m, 4 columns), then
 * even column s0 + s1 + s2, odd column s1 - s2 - s3, plus bias. */
HOT void at_row(const float *const *restrict m, int base, float sg, float bias, float *restrict ye,
                float *restrict yo, int n)
{
    const float *restrict p0 = m[base], *restrict p1 = m[base + 1], *restrict p2 = m[base + 2],
                          *restrict p3 = m[base + 3];
    const float *restrict q0 = m[base + 4], *restrict q1 = m[base + 5], *restrict q2 = m[base + 6],
                          *restrict q3 = m[base + 7];
    const float *restrict u0 = m[base + 8], *restrict u1 = m[base + 9], *restrict u2 = m[base + 10],
                          *restrict u3 = m[base + 11];
    for (int k = 0; k < n; k++) {
        float s0 = p0[k] + sg * q0[k] + sg * u0[k];
        float s1 = p1[k] + sg * q1[k] + sg * u1[k];
        float s2 = p2[k] + sg * q2[k] + sg * u2[k];
        float s3 = p3[k] + sg * q3[k] + sg * u3[k];
        ye[k] = s0 + s1 + s2 + bias;
        yo[k] = s1 - s2 - s3 + bias;
    }
}

/* Interleave even/odd columns into the output row (n full pairs), with residual and ReLU. */
HOT void store_row(const float *restrict ye, const float *restrict yo, float *restrict row, int n,
                   int act, int accumulate)
{
    if (accumulate)
        for (int k = 0; k < n; k++) {
            float a = ye[k] + row[2 * k], b = yo[k] + row[2 * k + 1];
            row[2 * k] = act && a < 0.f ? 0.f : a;
            row[2 * k + 1] = act && b < 0.f ? 0.f : b;
        }
    else
        for (int k = 0; k < n; k++) {
            float a = ye[k], b = yo[k];
            row[2 * k] = act && a < 0.f ? 0.f : a;
            row[2 * k + 1] = act && b < 0.f ? 0.f : b;
        }
}

/* Tile rows [r0, r1) of one image; tiles are 2x2 output blocks, tw per tile row. Every loop
 * runs along a tile row so that it vectorises. */
UF_CLONES
void uf_wino_conv_part(const uf_conv *c, const float *x, int h, int w, float *y, size_t r0,
                       size_t r1, float *scratch, int act, int accumulate)
{
    int tw = (w + 1) / 2, relu = act == UF_ACT_RELU;
    size_t nt = (r1 - r0) * (size_t)tw, cin = (size_t)c->cin, cout = (size_t)c->cout;
    size_t tw1 = (size_t)tw + 1;
    float *V = scratch, *M = scratch + 16 * cin * nt, *tmp = M + 16 * cout * nt;
    float *ev[4], *od[4], *bev[4], *bod[4];
    for (int i = 0; i < 4; i++) {
        ev[i] = tmp + (size_t)i * tw1;
        od[i] = tmp + (size_t)(4 + i) * tw1;
        bev[i] = tmp + (size_t)(8 + i) * tw1;
        bod[i] = tmp + (size_t)(12 + i) * tw1;
    }
    size_t vs = cin * nt;
    for (size_t ci = 0; ci < cin; ci++) {
        const float *xc = x + ci * (size_t)h * w;
        for (size_t ty = r0; ty < r1; ty++) {
            for (int i = 0; i < 4; i++)
                split_row(xc, h, w, (int)ty * 2 - 1 + i, tw, ev[i], od[i]);
            bt_rows(ev[0], ev[1], ev[2], ev[3], bev[0], bev[1], bev[2], bev[3], tw + 1);
            bt_rows(od[0], od[1], od[2], od[3], bod[0], bod[1], bod[2], bod[3], tw + 1);
            size_t o = ci * nt + (ty - r0) * (size_t)tw;
            for (int i = 0; i < 4; i++)
                bt_cols(bev[i], bod[i], V + (size_t)(i * 4 + 0) * vs + o, V + (size_t)(i * 4 + 1) * vs + o,
                        V + (size_t)(i * 4 + 2) * vs + o, V + (size_t)(i * 4 + 3) * vs + o, tw);
        }
    }
    for (int xi = 0; xi < 16; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cout, (int)nt, (int)cin, 1.f,
                    c->wino + (size_t)xi * cout * cin, (int)cin, V + (size_t)xi * vs, (int)nt, 0.f,
                    M + (size_t)xi * cout * nt, (int)nt);
    size_t ms = cout * nt;
    float *ye = tmp, *yo = tmp + tw1; /* one output row, even and odd columns */
    int full = w / 2;
    for (size_t o = 0; o < cout; o++) {
        float bias = c->b ? c->b[o] : 0.f;
        float *yc = y + o * (size_t)h * w;
        for (size_t ty = r0; ty < r1; ty++) {
            const float *m[16];
            for (int q = 0; q < 16; q++)
                m[q] = M + (size_t)q * ms + o * nt + (ty - r0) * (size_t)tw;
            for (int i = 0; i < 2; i++) {
                int oy = (int)ty * 2 + i;
                if (oy >= h)
                    break;
                /* i = 0: m[0..3] + m[4..7] + m[8..11];  i = 1: m[4..7] - m[8..11] - m[12..15] */
                at_row(m, 4 * i, i ? -1.f : 1.f, bias, ye, yo, tw);
                float *row = yc + (size_t)oy * w;
                store_row(ye, yo, row, full, relu, accumulate);
                if (full < tw) { /* odd width: last column alone */
                    float a = ye[full] + (accumulate ? row[2 * full] : 0.f);
                    row[2 * full] = relu && a < 0.f ? 0.f : a;
                }
            }
        }
    }
}
