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
static inline void split_row(const float *xc, int h, int w, int iy, int tw, float *restrict ev,
                             float *restrict od)
{
    if (iy < 0 || iy >= h) {
        memset(ev, 0, sizeof(float) * (size_t)(tw + 1));
        memset(od, 0, sizeof(float) * (size_t)(tw + 1));
        return;
    }
    const float *restrict row = xc + (size_t)iy * w;
    ev[0] = 0.f;
    int full = w / 2; /* tiles whose two columns are both inside the row */
    for (int k = 0; k < full; k++) {
        od[k] = row[2 * k];
        ev[k + 1] = row[2 * k + 1];
    }
    if (full < tw) { /* odd width: the last tile's second column is padding */
        od[full] = row[2 * full];
        ev[full + 1] = 0.f;
    }
    od[tw] = 0.f;
}

/* Tile rows [r0, r1) of one image; tiles are 2x2 output blocks, tw per tile row. All loops
 * run along a tile row so that they vectorise. */
UF_CLONES
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
            /* B^T along y, rows 0..3 as even/odd column vectors, overwriting ev/od in place:
             * b0 = r0 - r2, b1 = r1 + r2, b2 = r2 - r1, b3 = r1 - r3 */
            float *restrict E0 = ev[0], *restrict E1 = ev[1], *restrict E2 = ev[2], *restrict E3 = ev[3];
            float *restrict O0 = od[0], *restrict O1 = od[1], *restrict O2 = od[2], *restrict O3 = od[3];
            for (int k = 0; k <= tw; k++) {
                float e0 = E0[k], e1 = E1[k], e2 = E2[k], e3 = E3[k];
                E0[k] = e0 - e2;
                E1[k] = e1 + e2;
                E2[k] = e2 - e1;
                E3[k] = e1 - e3;
                float o0 = O0[k], o1 = O1[k], o2 = O2[k], o3 = O3[k];
                O0[k] = o0 - o2;
                O1[k] = o1 + o2;
                O2[k] = o2 - o1;
                O3[k] = o1 - o3;
            }
            for (int i = 0; i < 4; i++) { /* (B^T d) B along x */
                const float *restrict be = ev[i], *restrict bo = od[i];
                float *restrict v0 = V + (size_t)(i * 4 + 0) * vs + o;
                float *restrict v1 = V + (size_t)(i * 4 + 1) * vs + o;
                float *restrict v2 = V + (size_t)(i * 4 + 2) * vs + o;
                float *restrict v3 = V + (size_t)(i * 4 + 3) * vs + o;
                for (int k = 0; k < tw; k++) {
                    v0[k] = be[k] - be[k + 1];
                    v1[k] = bo[k] + be[k + 1];
                    v2[k] = be[k + 1] - bo[k];
                    v3[k] = bo[k] - bo[k + 1];
                }
            }
        }
    }
    for (int xi = 0; xi < 16; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cout, (int)nt, (int)cin, 1.f,
                    c->wino + (size_t)xi * cout * cin, (int)cin, V + (size_t)xi * vs, (int)nt, 0.f,
                    M + (size_t)xi * cout * nt, (int)nt);
    size_t ms = cout * nt;
    float *restrict ye = tmp, *restrict yo = tmp + tw1; /* one output row, even and odd columns */
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
                /* row i of A^T m (rows of m are groups of 4):
                 * i = 0: s = m[0..3] + m[4..7] + m[8..11];  i = 1: s = m[4..7] - m[8..11] - m[12..15] */
                const float *restrict p0, *restrict p1, *restrict p2, *restrict p3;
                const float *restrict q0, *restrict q1, *restrict q2, *restrict q3;
                const float *restrict u0, *restrict u1, *restrict u2, *restrict u3;
                float sg = i ? -1.f : 1.f;
                if (i == 0) {
                    p0 = m[0]; p1 = m[1]; p2 = m[2]; p3 = m[3];
                    q0 = m[4]; q1 = m[5]; q2 = m[6]; q3 = m[7];
                    u0 = m[8]; u1 = m[9]; u2 = m[10]; u3 = m[11];
                } else {
                    p0 = m[4]; p1 = m[5]; p2 = m[6]; p3 = m[7];
                    q0 = m[8]; q1 = m[9]; q2 = m[10]; q3 = m[11];
                    u0 = m[12]; u1 = m[13]; u2 = m[14]; u3 = m[15];
                }
                for (int k = 0; k < tw; k++) {
                    float s0 = p0[k] + sg * q0[k] + sg * u0[k];
                    float s1 = p1[k] + sg * q1[k] + sg * u1[k];
                    float s2 = p2[k] + sg * q2[k] + sg * u2[k];
                    float s3 = p3[k] + sg * q3[k] + sg * u3[k];
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
