/* gendata_defects.c — synthetic defects for `uflow gen-demo`: scratch, hole, stain, cutpaste.
 *
 * Every defect is a blend weight w (0..1, anti-aliased/soft edged) and a target value t per
 * pixel: out = img + w * (t - img). The ground-truth mask is w > 0.5. Shapes are given for
 * 128 px crops and scale with the crop size (not below half). All randomness comes from the
 * caller's gd_rng, so a seed fixes every pixel.
 */
#include "gendata_defects.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

const char *const gd_kind_names[GD_NKINDS] = {"scratch", "hole", "stain", "cutpaste"};

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void gd_rng_init(gd_rng *r, uint64_t seed, uint64_t stream, uint64_t index)
{
    r->s = mix64(seed + 0x9E3779B97F4A7C15ULL * (1 + mix64(stream * 0x100000001B3ULL + index)));
}

uint64_t gd_rng_next(gd_rng *r) { return mix64(r->s += 0x9E3779B97F4A7C15ULL); }

double gd_uniform(gd_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(gd_rng_next(r) >> 11) * 0x1p-53);
}

int gd_int(gd_rng *r, int lo, int hi)
{
    return lo + (int)(gd_rng_next(r) % (uint64_t)(hi - lo + 1));
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* What every shape draws into: weights and targets of an n x n image. */
typedef struct canvas {
    const float *img;
    float *w, *t;
    int n;
    double sc; /* shape scale: n / 128, at least 0.5 */
} canvas;

/* Pixel box [x0, x1] x [y0, y1] around (cx, cy) with half extent h, clipped to the image. */
typedef struct box {
    int x0, y0, x1, y1;
} box;

static box box_around(const canvas *c, double cx, double cy, double hx, double hy)
{
    box b = {(int)floor(cx - hx), (int)floor(cy - hy), (int)ceil(cx + hx), (int)ceil(cy + hy)};
    b.x0 = b.x0 < 0 ? 0 : b.x0;
    b.y0 = b.y0 < 0 ? 0 : b.y0;
    b.x1 = b.x1 > c->n - 1 ? c->n - 1 : b.x1;
    b.y1 = b.y1 > c->n - 1 ? c->n - 1 : b.y1;
    return b;
}

/* A thin, slightly curved (quadratic Bezier) line with tapered ends, bright or dark. */
static void scratch(canvas *c, gd_rng *r)
{
    enum { NS = 48 };
    double len = gd_uniform(r, 0.2, 0.6) * c->n, ang = gd_uniform(r, 0.0, M_PI);
    double dx = cos(ang), dy = sin(ang), bend = gd_uniform(r, -0.12, 0.12) * len;
    double width = gd_uniform(r, 1.2, 3.0), phase = gd_uniform(r, 0.0, 2 * M_PI);
    int bright = gd_uniform(r, 0, 1) < 0.6;
    double level = bright ? gd_uniform(r, 205, 240) : gd_uniform(r, 15, 45);
    double hx = fabs(dx) * len / 2 + fabs(bend) + 4, hy = fabs(dy) * len / 2 + fabs(bend) + 4;
    if (2 * hx >= c->n - 1 || 2 * hy >= c->n - 1)
        return; /* does not fit: empty, rejected by the caller */
    double cx = gd_uniform(r, hx, c->n - 1 - hx), cy = gd_uniform(r, hy, c->n - 1 - hy);
    double p0x = cx - dx * len / 2, p0y = cy - dy * len / 2;
    double p2x = cx + dx * len / 2, p2y = cy + dy * len / 2;
    double p1x = cx - dy * bend, p1y = cy + dx * bend;
    double px[NS + 1], py[NS + 1];
    for (int k = 0; k <= NS; k++) {
        double s = (double)k / NS, a = (1 - s) * (1 - s), b = 2 * s * (1 - s), d = s * s;
        px[k] = a * p0x + b * p1x + d * p2x;
        py[k] = a * p0y + b * p1y + d * p2y;
    }
    box bx = box_around(c, cx, cy, hx, hy);
    for (int y = bx.y0; y <= bx.y1; y++)
        for (int x = bx.x0; x <= bx.x1; x++) {
            double best = 1e30, sbest = 0;
            for (int k = 0; k < NS; k++) {
                double ex = px[k + 1] - px[k], ey = py[k + 1] - py[k];
                double u = ((x - px[k]) * ex + (y - py[k]) * ey) / (ex * ex + ey * ey + 1e-12);
                u = clampd(u, 0, 1);
                double qx = x - px[k] - u * ex, qy = y - py[k] - u * ey, d2 = qx * qx + qy * qy;
                if (d2 < best) {
                    best = d2;
                    sbest = (k + u) / NS;
                }
            }
            double taper = clampd(fmin(sbest, 1 - sbest) / 0.12, 0, 1);
            double half = 0.5 * width * (0.4 + 0.6 * taper);
            double cov = clampd(half + 0.5 - sqrt(best), 0, 1);
            size_t i = (size_t)y * c->n + x;
            if (cov > 0) {
                c->w[i] = (float)cov;
                c->t[i] = (float)(level + 10 * sin(6 * M_PI * sbest + phase) + gd_uniform(r, -8, 8));
            }
        }
}

/* A roughly circular pit (dark, lighter towards the rim) or spot (bright), soft edged, noisy,
 * keeping a little of the texture underneath. */
static void hole(canvas *c, gd_rng *r)
{
    double rad = gd_uniform(r, 4, 12) * c->sc, edge = gd_uniform(r, 1.0, 2.0);
    double a2 = gd_uniform(r, 0, 0.15), a3 = gd_uniform(r, 0, 0.10), a5 = gd_uniform(r, 0, 0.05);
    double p2 = gd_uniform(r, 0, 2 * M_PI), p3 = gd_uniform(r, 0, 2 * M_PI), p5 = gd_uniform(r, 0, 2 * M_PI);
    int dark = gd_uniform(r, 0, 1) < 0.7;
    double base = dark ? gd_uniform(r, 10, 40) : gd_uniform(r, 215, 245);
    double m = rad * 1.35 + edge + 2;
    if (2 * m >= c->n - 1)
        return;
    double cx = gd_uniform(r, m, c->n - 1 - m), cy = gd_uniform(r, m, c->n - 1 - m);
    box bx = box_around(c, cx, cy, m, m);
    for (int y = bx.y0; y <= bx.y1; y++)
        for (int x = bx.x0; x <= bx.x1; x++) {
            double d = hypot(x - cx, y - cy), phi = atan2(y - cy, x - cx);
            double R = rad * (1 + a2 * cos(2 * phi + p2) + a3 * cos(3 * phi + p3) + a5 * cos(5 * phi + p5));
            double cov = clampd((R - d) / edge + 0.5, 0, 1), rr = d / R;
            size_t i = (size_t)y * c->n + x;
            if (cov > 0) {
                c->w[i] = (float)cov;
                c->t[i] = (float)(base + (dark ? 35 : -25) * rr * rr + 0.15 * (c->img[i] - 128) +
                                  gd_uniform(r, -10, 10));
            }
        }
}

/* A smooth irregular blob (a few Gaussians, rippled by low-frequency waves, thresholded
 * softly) that darkens (or, less often, bleaches) the texture multiplicatively, more towards
 * its centre. */
static void stain(canvas *c, gd_rng *r)
{
    enum { KMAX = 7, NW = 3 };
    double rad = gd_uniform(r, 8, 20) * c->sc;
    int k = gd_int(r, 4, KMAX);
    double gx[KMAX], gy[KMAX], gs[KMAX], ga[KMAX], wx[NW], wy[NW], wp[NW];
    for (int j = 0; j < k; j++) {
        double a = gd_uniform(r, 0, 2 * M_PI), d = gd_uniform(r, 0, 0.6) * rad;
        gx[j] = d * cos(a);
        gy[j] = d * sin(a);
        gs[j] = gd_uniform(r, 0.3, 0.5) * rad;
        ga[j] = gd_uniform(r, 0.5, 1.0);
    }
    for (int j = 0; j < NW; j++) {
        double a = gd_uniform(r, 0, 2 * M_PI), f = 2 * M_PI / (gd_uniform(r, 0.5, 1.0) * rad);
        wx[j] = f * cos(a);
        wy[j] = f * sin(a);
        wp[j] = gd_uniform(r, 0, 2 * M_PI);
    }
    double strength = gd_uniform(r, 0.85, 1.0), kf = gd_uniform(r, 0.5, 0.7);
    int darken = gd_uniform(r, 0, 1) < 0.8;
    double m = rad * 1.8 + 2;
    if (2 * m >= c->n - 1)
        return;
    double cx = gd_uniform(r, m, c->n - 1 - m), cy = gd_uniform(r, m, c->n - 1 - m);
    box bx = box_around(c, cx, cy, m, m);
    double fmax = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int y = bx.y0; y <= bx.y1; y++)
            for (int x = bx.x0; x <= bx.x1; x++) {
                double f = 0, rip = 1;
                for (int j = 0; j < k; j++) {
                    double ex = x - cx - gx[j], ey = y - cy - gy[j];
                    f += ga[j] * exp(-(ex * ex + ey * ey) / (2 * gs[j] * gs[j]));
                }
                for (int j = 0; j < NW; j++)
                    rip += 0.1 * sin(wx[j] * (x - cx) + wy[j] * (y - cy) + wp[j]);
                f *= rip;
                if (pass == 0) {
                    fmax = fmax > f ? fmax : f;
                    continue;
                }
                double thr = 0.35 * fmax, del = 0.4 * thr;
                double s = clampd((f - (thr - del)) / (2 * del), 0, 1);
                size_t i = (size_t)y * c->n + x;
                if (s > 0) {
                    double kk = 1 - (1 - kf) * (0.7 + 0.3 * f / fmax);
                    c->w[i] = (float)(strength * s * s * (3 - 2 * s));
                    c->t[i] = (float)(darken ? c->img[i] * kk : 255 - (255 - c->img[i]) * kk);
                }
            }
}

static double bilinear(const gd_texture *g, double x, double y)
{
    int x0 = (int)floor(x), y0 = (int)floor(y);
    double fx = x - x0, fy = y - y0;
    const uint8_t *p = g->px + (size_t)y0 * g->w + x0;
    return (1 - fy) * ((1 - fx) * p[0] + fx * p[1]) + fy * ((1 - fx) * p[g->w] + fx * p[g->w + 1]);
}

/* A rectangle of a foreign texture, axis-aligned or rotated, pasted with anti-aliased edges. */
static void cutpaste(canvas *c, gd_rng *r, const gd_texture *fg, int nfg)
{
    double pw = gd_uniform(r, 10, 30) * c->sc, ph = gd_uniform(r, 10, 30) * c->sc;
    double rot = gd_uniform(r, 0, 1) < 0.5 ? 0.0 : gd_uniform(r, 0, M_PI);
    double gain = gd_uniform(r, 0.9, 1.1), hd = 0.5 * hypot(pw, ph) + 2;
    const gd_texture *g = &fg[gd_int(r, 0, nfg - 1)];
    if (2 * hd >= c->n - 1 || 2 * hd >= g->w - 2 || 2 * hd >= g->h - 2)
        return;
    double cx = gd_uniform(r, hd, c->n - 1 - hd), cy = gd_uniform(r, hd, c->n - 1 - hd);
    double sx = gd_uniform(r, hd, g->w - 2 - hd), sy = gd_uniform(r, hd, g->h - 2 - hd);
    double cs = cos(rot), sn = sin(rot);
    box bx = box_around(c, cx, cy, hd, hd);
    for (int y = bx.y0; y <= bx.y1; y++)
        for (int x = bx.x0; x <= bx.x1; x++) {
            double u = cs * (x - cx) + sn * (y - cy), v = -sn * (x - cx) + cs * (y - cy);
            double cov = clampd(fmin(pw / 2 - fabs(u), ph / 2 - fabs(v)) + 0.5, 0, 1);
            size_t i = (size_t)y * c->n + x;
            if (cov > 0) {
                c->w[i] = (float)cov;
                c->t[i] = (float)(gain * bilinear(g, sx + u, sy + v));
            }
        }
}

int gd_defect(gd_kind kind, float *img, int size, uint8_t *mask, const gd_texture *foreign,
              int nforeign, gd_rng *r)
{
    size_t npx = (size_t)size * (size_t)size;
    canvas c = {img, calloc(npx, sizeof(float)), calloc(npx, sizeof(float)), size,
                size >= 64 ? size / 128.0 : 0.5};
    int count = -1;
    if (!c.w || !c.t || (kind == GD_CUTPASTE && nforeign < 1))
        goto done;
    for (int attempt = 0; attempt < 200 && count < 0; attempt++) {
        memset(c.w, 0, npx * sizeof(float));
        switch (kind) {
        case GD_SCRATCH: scratch(&c, r); break;
        case GD_HOLE: hole(&c, r); break;
        case GD_STAIN: stain(&c, r); break;
        default: cutpaste(&c, r, foreign, nforeign); break;
        }
        size_t n = 0, changed = 0;
        double sum = 0;
        for (size_t i = 0; i < npx; i++)
            if (c.w[i] > 0.5f) {
                double out = clampd(img[i] + c.w[i] * (c.t[i] - img[i]), 0, 255);
                double d = fabs(out - img[i]);
                n++;
                sum += d;
                changed += d >= 10;
            }
        if (n >= 20 && n < npx / 4 && sum >= 20.0 * n && changed * 5 >= n * 4)
            count = (int)n;
    }
    if (count < 0)
        goto done;
    for (size_t i = 0; i < npx; i++) {
        mask[i] = c.w[i] > 0.5f ? 255 : 0;
        if (c.w[i] > 0)
            img[i] = (float)clampd(img[i] + c.w[i] * (c.t[i] - img[i]), 0, 255);
    }
done:
    free(c.w);
    free(c.t);
    return count;
}
