/* winograd.c — 3x3 stride-1 pad-1 convolutions as Winograd F(2x2, 3x3): 16 GEMMs of
 * [Cout x Cin] x [Cin x tiles] on transformed weights and inputs, 2.25x fewer multiplies
 * than im2col. Transforms (Lavin & Gray 2016):
 *   V = B^T d B (4x4 input tile), U = G g G^T (at load), Y = A^T (U . V) A (2x2 output)
 * with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 * A^T = [1 1 1 0; 0 1 -1 -1]. The extra rounding is a few ulp, far inside the tolerances. */
#include "internal.h"
#include "ops.h"

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
    return 16 * tile_rows * tw * ((size_t)c->cin + (size_t)c->cout) + 16 * (tw + 2);
}

/* Row iy of a channel, zero-padded by one on the left, split into even and odd columns:
 * ev[k] = padded[2k], od[k] = padded[2k + 1], k <= tw (padded[x + 1] = row[x]). */
static void split_row(const float *xc, int h, int w, int iy, int tw, float *ev, float *od)
{
    if (iy < 0 || iy >= h) {
        memset(ev, 0, sizeof(float) * (size_t)(tw + 1));
        memset(od, 0, sizeof(float) * (size_t)(tw + 1));
        return;
    }
    const float *row = xc + (size_t)iy * w;
    ev[0] = 0.f;
    for (int k = 0; k < tw; k++) {
        od[k] = row[2 * k];
        ev[k + 1] = 2 * k + 1 < w ? row[2 * k + 1] : 0.f;
    }
    od[tw] = 0.f;
}

/* Tile rows [r0, r1) of one image; tiles are 2x2 output blocks, tw per tile row. All loops
 * run along a tile row so that they vectorise. */
void uf_wino_conv_part(const uf_conv *c, const float *x, int h, int w, float *y, size_t r0,
                       size_t r1, float *scratch, int act, int accumulate)
{
    int tw = (w + 1) / 2;
    size_t nt = (r1 - r0) * (size_t)tw, cin = (size_t)c->cin, cout = (size_t)c->cout;
    size_t tw1 = (size_t)tw + 1;
    float *V = scratch, *M = scratch + 16 * cin * nt, *tmp = M + 16 * cout * nt;
    float *ev[4], *od[4];
    for (int i = 0; i < 4; i++) {
        ev[i] = tmp + (size_t)(2 * i) * tw1;
        od[i] = tmp + (size_t)(2 * i + 1) * tw1;
    }
    size_t vs = cin * nt;
    for (size_t ci = 0; ci < cin; ci++) {
        const float *xc = x + ci * (size_t)h * w;
        for (size_t ty = r0; ty < r1; ty++) {
            for (int i = 0; i < 4; i++)
                split_row(xc, h, w, (int)ty * 2 - 1 + i, tw, ev[i], od[i]);
            size_t o = ci * nt + (ty - r0) * (size_t)tw;
            for (int i = 0; i < 4; i++) {
                /* B^T along y: row i of B^T d, as even/odd column vectors */
                const float *e0 = ev[0], *e1 = ev[1], *e2 = ev[2], *e3 = ev[3];
                const float *o0 = od[0], *o1 = od[1], *o2 = od[2], *o3 = od[3];
                float *v0 = V + (size_t)(i * 4 + 0) * vs + o, *v1 = V + (size_t)(i * 4 + 1) * vs + o;
                float *v2 = V + (size_t)(i * 4 + 2) * vs + o, *v3 = V + (size_t)(i * 4 + 3) * vs + o;
                for (int k = 0; k < tw; k++) {
                    float be0, bo0, be1, bo1; /* b at columns 2k, 2k+1, 2k+2, 2k+3 */
                    switch (i) {
                    case 0: be0 = e0[k] - e2[k]; bo0 = o0[k] - o2[k]; be1 = e0[k + 1] - e2[k + 1]; bo1 = o0[k + 1] - o2[k + 1]; break;
                    case 1: be0 = e1[k] + e2[k]; bo0 = o1[k] + o2[k]; be1 = e1[k + 1] + e2[k + 1]; bo1 = o1[k + 1] + o2[k + 1]; break;
                    case 2: be0 = e2[k] - e1[k]; bo0 = o2[k] - o1[k]; be1 = e2[k + 1] - e1[k + 1]; bo1 = o2[k + 1] - o1[k + 1]; break;
                    default: be0 = e1[k] - e3[k]; bo0 = o1[k] - o3[k]; be1 = e1[k + 1] - e3[k + 1]; bo1 = o1[k + 1] - o3[k + 1]; break;
                    }
                    /* (B^T d) B along x */
                    v0[k] = be0 - be1;
                    v1[k] = bo0 + be1;
                    v2[k] = be1 - bo0;
                    v3[k] = bo0 - bo1;
                }
            }
        }
    }
    for (int xi = 0; xi < 16; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cout, (int)nt, (int)cin, 1.f,
                    c->wino + (size_t)xi * cout * cin, (int)cin, V + (size_t)xi * vs, (int)nt, 0.f,
                    M + (size_t)xi * cout * nt, (int)nt);
    size_t ms = cout * nt;
    float *ye = tmp, *yo = tmp + tw1; /* one output row, even and odd columns */
    for (size_t o = 0; o < cout; o++) {
        float bias = c->b ? c->b[o] : 0.f;
        float *yc = y + o * (size_t)h * w;
        for (size_t ty = r0; ty < r1; ty++) {
            size_t k0 = o * nt + (ty - r0) * (size_t)tw;
            for (int i = 0; i < 2; i++) {
                int oy = (int)ty * 2 + i;
                if (oy >= h)
                    break;
                const float *m[16];
                for (int q = 0; q < 16; q++)
                    m[q] = M + (size_t)q * ms + k0;
                for (int k = 0; k < tw; k++) {
                    float s0, s1, s2, s3; /* row i of A^T m */
                    if (i == 0) {
                        s0 = m[0][k] + m[4][k] + m[8][k];
                        s1 = m[1][k] + m[5][k] + m[9][k];
                        s2 = m[2][k] + m[6][k] + m[10][k];
                        s3 = m[3][k] + m[7][k] + m[11][k];
                    } else {
                        s0 = m[4][k] - m[8][k] - m[12][k];
                        s1 = m[5][k] - m[9][k] - m[13][k];
                        s2 = m[6][k] - m[10][k] - m[14][k];
                        s3 = m[7][k] - m[11][k] - m[15][k];
                    }
                    ye[k] = s0 + s1 + s2 + bias;
                    yo[k] = s1 - s2 - s3 + bias;
                }
                float *row = yc + (size_t)oy * w;
                for (int k = 0; k < tw; k++) {
                    float a = ye[k], b = yo[k];
                    if (accumulate) {
                        a += row[2 * k];
                        if (2 * k + 1 < w)
                            b += row[2 * k + 1];
                    }
                    if (act == UF_ACT_RELU) {
                        a = a < 0.f ? 0.f : a;
                        b = b < 0.f ? 0.f : b;
                    }
                    row[2 * k] = a;
                    if (2 * k + 1 < w)
                        row[2 * k + 1] = b;
                }
            }
        }
    }
}
