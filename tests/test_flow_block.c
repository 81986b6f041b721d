/* test_flow_block.c — one AllInOneBlock (docs/uflow-math.md "Flow blocks") against a double-precision
 * reference, forward and inverse, hard and soft permutations, Winograd and threads.
 * Tolerances are 1e-5 x max(1, max|ref|) unless said otherwise (an indexing bug gives O(1)
 * errors); pure data movement must be exact. */
#include "kref.h"
#include "models/flow.h"

/* ---------------------------------------------------------------- flow block */

typedef struct fb_owned {
    float *w0, *b0, *w2, *b2, *scale, *offset, *wsoft, *U0, *U2;
    int32_t *perm;
} fb_owned;

static void make_block(rng *r, int C, double ratio, int k, int soft, int wino, uf_flow_block *b,
                       fb_owned *o)
{
    memset(b, 0, sizeof *b);
    memset(o, 0, sizeof *o);
    b->C = C;
    b->C2 = C / 2;
    b->C1 = C - b->C2;
    b->M = (int)(b->C1 * ratio);
    b->k = k;
    int C1 = b->C1, C2 = b->C2, M = b->M, K0 = C1 * k * k, K2 = M * k * k;
    o->w0 = falloc((size_t)M * K0);
    o->b0 = falloc(M);
    o->w2 = falloc((size_t)2 * C2 * K2);
    o->b2 = falloc(2 * C2);
    fill_unif(r, o->w0, (size_t)M * K0, -sqrt(3.0 / K0), sqrt(3.0 / K0));
    fill_unif(r, o->b0, M, -0.3, 0.3);
    /* raw subnet outputs of std ~10, so 0.1*a reaches tanh's saturation and J spans most of
     * [-clamp, clamp] */
    double a2 = 10.0 * sqrt(3.0 * 2.0 / K2);
    fill_unif(r, o->w2, (size_t)2 * C2 * K2, -a2, a2);
    fill_unif(r, o->b2, 2 * C2, -3.0, 3.0);
    b->sub0 = (uf_conv){.cout = M, .cin = C1, .k = k, .stride = 1, .pad = k / 2, .groups = 1,
                        .w = o->w0, .b = o->b0};
    b->sub2 = (uf_conv){.cout = 2 * C2, .cin = M, .k = k, .stride = 1, .pad = k / 2, .groups = 1,
                        .w = o->w2, .b = o->b2};
    if (wino && k == 3) {
        o->U0 = falloc((size_t)16 * M * C1);
        o->U2 = falloc((size_t)16 * 2 * C2 * M);
        uf_wino_weights(&b->sub0, o->U0);
        uf_wino_weights(&b->sub2, o->U2);
        b->sub0.wino = o->U0;
        b->sub2.wino = o->U2;
    }
    o->scale = falloc(C);
    o->offset = falloc(C);
    fill_unif(r, o->scale, C, 0.4, 1.6);
    fill_unif(r, o->offset, C, -0.5, 0.5);
    b->scale = o->scale;
    b->offset = o->offset;
    double lsum = 0;
    for (int c = 0; c < C; c++)
        lsum += (double)logf(o->scale[c]);
    b->log_scale_sum = (float)lsum; /* as the loader computes it */
    if (soft) {
        /* random orthogonal matrix: modified Gram-Schmidt on a Gaussian one, in double */
        double *q = dalloc((size_t)C * C);
        for (size_t i = 0; i < (size_t)C * C; i++)
            q[i] = rng_normal(r);
        for (int i = 0; i < C; i++) {
            for (int j = 0; j < i; j++) {
                double d = 0;
                for (int c = 0; c < C; c++)
                    d += q[i * C + c] * q[j * C + c];
                for (int c = 0; c < C; c++)
                    q[i * C + c] -= d * q[j * C + c];
            }
            double nn = 0;
            for (int c = 0; c < C; c++)
                nn += q[i * C + c] * q[i * C + c];
            for (int c = 0; c < C; c++)
                q[i * C + c] /= sqrt(nn);
        }
        o->wsoft = falloc((size_t)C * C);
        for (size_t i = 0; i < (size_t)C * C; i++)
            o->wsoft[i] = (float)q[i];
        free(q);
        b->wsoft = o->wsoft;
    } else {
        o->perm = malloc(sizeof(int32_t) * C);
        assert_non_null(o->perm);
        for (int i = 0; i < C; i++)
            o->perm[i] = i;
        for (int i = C - 1; i > 0; i--) { /* Fisher-Yates */
            int j = (int)(rng_next(r) % (uint64_t)(i + 1));
            int32_t t = o->perm[i];
            o->perm[i] = o->perm[j];
            o->perm[j] = t;
        }
        b->perm = o->perm;
    }
}

static void free_block(fb_owned *o)
{
    free(o->w0), free(o->b0), free(o->w2), free(o->b2), free(o->scale), free(o->offset), free(o->wsoft),
        free(o->U0), free(o->U2), free(o->perm);
}

/* a = 0.1 * subnet(x1) (double), x1 = [C1][hw] */
static void ref_subnet(const uf_flow_block *b, const double *x1, int h, int w, double *a)
{
    double *hid = dalloc((size_t)b->M * h * w);
    ref_conv(&b->sub0, x1, 1, h, w, NULL, UF_ACT_RELU, hid);
    ref_conv(&b->sub2, hid, 1, h, w, NULL, UF_ACT_NONE, a);
    for (size_t i = 0; i < (size_t)2 * b->C2 * h * w; i++)
        a[i] *= 0.1;
    free(hid);
}

/* Spec §3.4 forward in double. jabs = sum|J| + hw * sum|log scale| (the jac's error scale);
 * sat = fraction of |0.1 a_s| > 1 (how much tanh saturation the case exercises). */
static void ref_block(const uf_flow_block *b, const float *x, int B, int h, int w, double clamp,
                      double *out, double *jac, double *jabs, double *sat)
{
    size_t hw = (size_t)h * w;
    int C = b->C, C1 = b->C1, C2 = b->C2;
    double *xd = dalloc(C * hw), *a = dalloc(2 * C2 * hw), *v = dalloc(C * hw);
    size_t nsat = 0;
    for (int bi = 0; bi < B; bi++) {
        for (size_t i = 0; i < C * hw; i++)
            xd[i] = x[(size_t)bi * C * hw + i];
        ref_subnet(b, xd, h, w, a);
        double js = 0, ja = 0, ls = 0, la = 0;
        for (int c = 0; c < C; c++) {
            ls += log((double)b->scale[c]);
            la += fabs(log((double)b->scale[c]));
        }
        for (size_t i = 0; i < C2 * hw; i++) {
            double J = clamp * tanh(a[i]);
            nsat += fabs(a[i]) > 1.0;
            js += J;
            ja += fabs(J);
            xd[C1 * hw + i] = xd[C1 * hw + i] * exp(J) + a[C2 * hw + i]; /* y = cat(x1, x2') */
        }
        for (int c = 0; c < C; c++)
            for (size_t i = 0; i < hw; i++)
                v[c * hw + i] = xd[c * hw + i] * b->scale[c] + b->offset[c];
        double *ob = out + (size_t)bi * C * hw;
        for (int i = 0; i < C; i++)
            for (size_t p = 0; p < hw; p++) {
                double s = 0;
                if (b->perm)
                    s = v[(size_t)b->perm[i] * hw + p];
                else
                    for (int j = 0; j < C; j++)
                        s += (double)b->wsoft[i * C + j] * v[j * hw + p];
                ob[i * hw + p] = s;
            }
        jac[bi] = js + (double)hw * ls;
        jabs[bi] = ja + (double)hw * la;
    }
    *sat = (double)nsat / (double)((size_t)B * C2 * hw);
    free(xd), free(a), free(v);
}

/* The reverse (docs/uflow-math.md "Flow blocks"): undo the permutation (winv: W^-1 = W^T for the soft one), subtract
 * the offset, divide by the scale, then x2 = (x2' - t) * exp(-J) with the subnet on x1, which
 * the block leaves as is. */
static void ref_block_reverse(const uf_flow_block *b, const double *winv, const double *out, int B,
                              int h, int w, double clamp, double *x)
{
    size_t hw = (size_t)h * w;
    int C = b->C, C1 = b->C1, C2 = b->C2;
    double *v = dalloc(C * hw), *a = dalloc(2 * C2 * hw);
    for (int bi = 0; bi < B; bi++) {
        const double *ob = out + (size_t)bi * C * hw;
        double *xb = x + (size_t)bi * C * hw;
        for (int i = 0; i < C; i++)
            for (size_t p = 0; p < hw; p++) {
                if (b->perm) {
                    v[(size_t)b->perm[i] * hw + p] = ob[i * hw + p];
                } else {
                    double s = 0;
                    for (int j = 0; j < C; j++)
                        s += winv[i * C + j] * ob[j * hw + p];
                    v[i * hw + p] = s;
                }
            }
        for (int c = 0; c < C; c++)
            for (size_t p = 0; p < hw; p++)
                xb[c * hw + p] = (v[c * hw + p] - b->offset[c]) / b->scale[c];
        ref_subnet(b, xb, h, w, a);
        for (size_t i = 0; i < C2 * hw; i++)
            xb[C1 * hw + i] = (xb[C1 * hw + i] - a[C2 * hw + i]) * exp(-clamp * tanh(a[i]));
    }
    free(v), free(a);
}

/* The inverse of the float32 soft permutation in double (Gauss-Jordan, partial pivoting). The
 * matrix is orthogonal up to float32 rounding, so this is W^T to ~1e-7; using the exact inverse
 * keeps that rounding (amplified by 1/scale and exp(-J)) out of the invertibility check. */
static double *soft_inverse(const float *W, int C)
{
    double *a = dalloc((size_t)C * 2 * C);
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            a[(size_t)i * 2 * C + j] = W[(size_t)i * C + j];
            a[(size_t)i * 2 * C + C + j] = i == j;
        }
    for (int col = 0; col < C; col++) {
        int piv = col;
        for (int i = col + 1; i < C; i++)
            if (fabs(a[(size_t)i * 2 * C + col]) > fabs(a[(size_t)piv * 2 * C + col]))
                piv = i;
        for (int j = 0; j < 2 * C; j++) {
            double t = a[(size_t)col * 2 * C + j];
            a[(size_t)col * 2 * C + j] = a[(size_t)piv * 2 * C + j];
            a[(size_t)piv * 2 * C + j] = t;
        }
        double d = a[(size_t)col * 2 * C + col];
        for (int j = 0; j < 2 * C; j++)
            a[(size_t)col * 2 * C + j] /= d;
        for (int i = 0; i < C; i++)
            if (i != col) {
                double f = a[(size_t)i * 2 * C + col];
                for (int j = 0; j < 2 * C; j++)
                    a[(size_t)i * 2 * C + j] -= f * a[(size_t)col * 2 * C + j];
            }
    }
    double *inv = dalloc((size_t)C * C), dev = 0;
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            inv[(size_t)i * C + j] = a[(size_t)i * 2 * C + C + j];
            dev = fmax(dev, fabs(inv[(size_t)i * C + j] - W[(size_t)j * C + i]));
        }
    assert_true(dev <= 1e-6); /* orthogonal: the inverse is the transpose */
    free(a);
    return inv;
}

typedef struct fb_case {
    int C;
    double ratio;
    int k, soft, wino, threads, B, h, w;
    float clamp;
} fb_case;

/* Runs the library's block; out/jac [B*C*hw]/[B]. */
static void run_block(const uf_flow_block *b, const float *x, int B, int h, int w, float clamp,
                      int threads, float *out, float *jac)
{
    size_t hw = (size_t)h * w;
    float *hid = falloc(b->M * hw), *a = falloc(2 * b->C2 * hw), *v = falloc(b->C * hw);
    if (threads <= 1) {
        size_t nc = zmax(uf_conv_col_floats(&b->sub0, h, w), uf_conv_col_floats(&b->sub2, h, w));
        float *col = falloc(nc);
        uf_flow_block_forward(b, x, B, h, w, clamp, out, hid, a, col, v, jac);
        free(col);
    } else {
        uf_pool *pool = make_pool(threads);
        size_t stride = zmax(uf_conv_col_floats_mt(&b->sub0, h, w, threads),
                               uf_conv_col_floats_mt(&b->sub2, h, w, threads));
        float *col = falloc(stride * (size_t)threads);
        uf_exec ex = {.pool = pool, .nt = threads, .col = col, .col_stride = stride};
        uf_flow_block_forward_ex(&ex, b, x, B, h, w, clamp, out, hid, a, v, jac, NULL);
        free(col);
        uf_pool_free(pool);
    }
    free(hid), free(a), free(v);
}

static void flow_block_one(rng *r, const fb_case *fc, double *worst_out, double *worst_jac,
                           double *worst_inv)
{
    uf_flow_block b;
    fb_owned o;
    make_block(r, fc->C, fc->ratio, fc->k, fc->soft, fc->wino, &b, &o);
    int B = fc->B, h = fc->h, w = fc->w, C = fc->C;
    size_t hw = (size_t)h * w, n = (size_t)B * C * hw;
    float *x = falloc(n), *out = falloc(n), *jac = falloc(B);
    fill_normal(r, x, n, 0.0, 1.0);
    for (size_t i = 0; i < n; i++)
        out[i] = NAN;
    double *ref = dalloc(n), *rjac = dalloc(B), *jabs = dalloc(B), sat;
    ref_block(&b, x, B, h, w, fc->clamp, ref, rjac, jabs, &sat);
    run_block(&b, x, B, h, w, fc->clamp, fc->threads, out, jac);

    char what[160];
    snprintf(what, sizeof what, "block C%d(C1 %d C2 %d M %d) k%d %s%s clamp %.1f B%d %dx%d t%d", C, b.C1,
             b.C2, b.M, fc->k, fc->soft ? "soft" : "hard", b.sub0.wino ? " wino" : "", fc->clamp, B, h,
             w, fc->threads);
    *worst_out = fmax(*worst_out, check_rel(what, out, ref, n));
    for (int bi = 0; bi < B; bi++) {
        /* float32 terms summed: the error scales with the sum of their magnitudes */
        double e = fabs((double)jac[bi] - rjac[bi]), tol = 1e-6 * fmax(1.0, jabs[bi]);
        print_message("    jac[%d] %.7g vs %.7g err %.3g (tol %.3g); |0.1a_s|>1 for %.0f%%\n", bi, jac[bi],
                      rjac[bi], e, tol, 100 * sat);
        if (!(e <= tol))
            fail_msg("%s: jac[%d] %g vs %g (err %g > %g)", what, bi, jac[bi], rjac[bi], e, tol);
        *worst_jac = fmax(*worst_jac, e / tol);
    }

    /* invertibility: the test's reverse of the library's output gives x back */
    double *outd = to_double(out, n), *xr = dalloc(n), *winv = b.wsoft ? soft_inverse(b.wsoft, C) : NULL;
    ref_block_reverse(&b, winv, outd, B, h, w, fc->clamp, xr);
    double einv = err_d(x, xr, n);
    print_message("    reverse(forward(x)) vs x: max|err| %.3g (tol 1e-5)\n", einv);
    if (!(einv <= 1e-5))
        fail_msg("%s: reverse(forward(x)) differs from x by %g", what, einv);
    *worst_inv = fmax(*worst_inv, einv);
    /* and the reference against itself (the reverse is right) */
    ref_block_reverse(&b, winv, ref, B, h, w, fc->clamp, xr);
    assert_true(err_d(x, xr, n) <= 1e-9);

    if (b.perm) {
        /* the gather equals the 1x1 conv with the one-hot matrix, bit for bit */
        float *onehot = falloc((size_t)C * C), *out2 = falloc(n), *jac2 = falloc(B);
        for (int i = 0; i < C; i++)
            onehot[(size_t)i * C + b.perm[i]] = 1.f;
        uf_flow_block bs = b;
        bs.perm = NULL;
        bs.wsoft = onehot;
        run_block(&bs, x, B, h, w, fc->clamp, fc->threads, out2, jac2);
        assert_memory_equal(out, out2, sizeof(float) * n);
        assert_memory_equal(jac, jac2, sizeof(float) * B);
        free(onehot), free(out2), free(jac2);
    }
    free(x), free(out), free(jac), free(ref), free(rjac), free(jabs), free(outd), free(xr), free(winv);
    free_block(&o);
}

static void test_flow_block(void **state)
{
    (void)state;
    static const fb_case cases[] = {
        /* C  ratio k soft wino thr B  h  w  clamp */
        {10, 0.6, 3, 0, 0, 1, 2, 6, 7, 2.0f},  /* M = 3 */
        {10, 0.6, 3, 0, 1, 1, 2, 6, 7, 1.5f},
        {10, 1.0, 1, 0, 0, 1, 2, 5, 9, 2.0f},  /* M = 5 */
        {10, 1.0, 1, 0, 0, 1, 2, 5, 9, 1.5f},
        {10, 2.0, 3, 1, 0, 1, 2, 7, 5, 2.0f},  /* M = 10, soft */
        {10, 2.0, 3, 1, 1, 1, 2, 7, 5, 1.5f},
        {10, 0.6, 1, 1, 0, 1, 2, 4, 6, 1.5f},
        {11, 0.5, 3, 0, 1, 1, 2, 7, 6, 2.0f},  /* odd C: C1 6, C2 5, M 3 */
        {11, 1.0, 1, 0, 0, 1, 2, 5, 5, 1.5f},
        {11, 1.0, 3, 1, 0, 1, 2, 6, 5, 2.0f},
        {11, 0.5, 1, 1, 0, 1, 2, 3, 8, 1.5f},
        {3, 1.0, 3, 1, 0, 1, 2, 4, 3, 2.0f},   /* C1 2, C2 1 */
        {10, 1.0, 3, 0, 1, 3, 2, 12, 9, 2.0f}, /* threaded */
        {11, 1.0, 1, 1, 0, 3, 2, 9, 13, 1.5f},
        {11, 0.5, 3, 0, 0, 3, 2, 11, 10, 2.0f},
    };
    rng r = {8080};
    double wo = 0, wj = 0, wi = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        flow_block_one(&r, &cases[i], &wo, &wj, &wi);
    print_message("  flow block: worst out err/tol %.3g, jac err/tol %.3g, reverse max|err| %.3g\n", wo, wj, wi);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flow_block),
    };
    return cmocka_run_group_tests_name("flow_block", tests, NULL, NULL);
}
