/* test_golden.c — libuflow against anomalib's own outputs (tests/golden, or the full
 * ../shared/golden with every graph node when run as `test_golden shared`).
 * Tolerances are docs/uflow-math.md "Test fixtures"'s: anomaly_map/pred_score 1e-4 abs, z and node outputs
 * 1e-3 x max(1, max|ref|), log_jac_det 1e-4 relative. */
#include "util.h"

#include "models/ctx.h"
#include "models/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_dir;   /* fixture dir for this run */
static int g_full;          /* every node.* must be present (shared fixtures) */

typedef struct node_check {
    const uf_st *exp;
    int nodes_checked, jacs_checked;
    double worst_rel;
} node_check;

static double check_close(const char *what, const float *got, const float *ref, size_t n, double tol)
{
    double e = ut_max_abs(got, ref, n);
    print_message("  %-28s max|err| %.3g (tol %.3g)\n", what, e, tol);
    if (!(e <= tol))
        fail_msg("%s: max abs error %g > %g", what, e, tol);
    return e;
}

static double z_tol(const float *ref, size_t n) { return 1e-3 * fmax(1.0, ut_max_absval(ref, n)); }

/* Observer: compare each node output the fixture has with the running flow. */
static void on_node(void *user, const char *node, int idx, const float *data, size_t stride, int C,
                    int h, int w, const float *jac)
{
    node_check *nc = user;
    char name[96];
    snprintf(name, sizeof name, "node.%s.%d", node, idx);
    const uf_st_tensor *t = uf_st_find(nc->exp, name);
    if (t) {
        size_t per = (size_t)C * h * w;
        assert_int_equal(t->numel, per); /* batch 1 fixtures */
        const float *ref = t->data;
        (void)stride;
        check_close(name, data, ref, per, z_tol(ref, per));
        nc->nodes_checked++;
    } else if (g_full) {
        fail_msg("fixture has no %s", name);
    }
    snprintf(name, sizeof name, "node_jac.%s", node);
    const uf_st_tensor *tj = uf_st_find(nc->exp, name);
    if (tj && jac) {
        const float *ref = tj->data;
        double rel = fabs((double)jac[0] - ref[0]) / fmax(1.0, fabs(ref[0]));
        if (!(rel <= 1e-4))
            fail_msg("%s: %g vs %g (rel %g)", name, jac[0], ref[0], rel);
        nc->jacs_checked++;
    }
}

static uf_model *load_model(void)
{
    char p[1024];
    ut_path(p, sizeof p, g_dir, "resnet18_256_s4.safetensors");
    uf_model *m = NULL;
    uf_error err = {0};
    if (uf_model_load(p, &m, &err) != UF_OK)
        fail_msg("load %s: %s", p, err.msg);
    return m;
}

static void compare_outputs(const uf_st *exp, const uf_result *r, int B)
{
    char name[64];
    size_t n;
    for (int k = 0; k < r->n_scales; k++) {
        snprintf(name, sizeof name, "features.%d", k);
        if (uf_st_find(exp, name)) {
            const float *ref = ut_f32(exp, name, &n);
            check_close(name, r->features[k], ref, n, z_tol(ref, n));
        }
        snprintf(name, sizeof name, "z.%d", k);
        if (uf_st_find(exp, name)) {
            const float *ref = ut_f32(exp, name, &n);
            assert_int_equal(n, (size_t)B * r->z_channels[k] * r->z_height[k] * r->z_width[k]);
            check_close(name, r->z[k], ref, n, z_tol(ref, n));
        }
    }
    const float *ljd = ut_f32(exp, "log_jac_det", &n);
    assert_int_equal(n, (size_t)B);
    for (int b = 0; b < B; b++) {
        double rel = fabs((double)r->log_jac_det[b] - ljd[b]) / fabs((double)ljd[b]);
        print_message("  log_jac_det[%d] %.6g vs %.6g rel %.3g\n", b, r->log_jac_det[b], ljd[b], rel);
        assert_true(rel <= 1e-4);
    }
    const float *map = ut_f32(exp, "anomaly_map", &n);
    assert_int_equal(n, (size_t)B * r->height * r->width);
    check_close("anomaly_map", r->anomaly_map, map, n, 1e-4);
    const float *ps = ut_f32(exp, "pred_score", &n);
    assert_int_equal(n, (size_t)B);
    check_close("pred_score", r->pred_score, ps, n, 1e-4);
}

static void test_random_input(void **state)
{
    (void)state;
    uf_model *m = load_model();
    uf_st *exp = ut_open(g_dir, "expected_random.safetensors");
    uf_ctx *ctx;
    uf_error err;
    uf_ctx_opts o = {.max_batch = 1, .threads = 2};
    assert_int_equal(uf_ctx_init(m, &o, &ctx, &err), UF_OK);
    node_check nc = {.exp = exp};
    uf_flow_observer obs = {.fn = on_node, .user = &nc};
    uf_ctx_set_observer(ctx, &obs);
    uf_result r;
    assert_int_equal(uf_ctx_run(ctx, ut_f32(exp, "input", NULL), 1, &r, &err), UF_OK);
    compare_outputs(exp, &r, 1);
    print_message("  nodes checked: %d, node jacobians checked: %d\n", nc.nodes_checked, nc.jacs_checked);
    /* cond_* and output_scale_* are the features and z, compared above. */
    assert_int_equal(nc.nodes_checked, g_full ? 20 : 10);
    assert_int_equal(nc.jacs_checked, 12);
    uf_ctx_free(ctx);
    uf_st_close(exp);
    uf_model_free(m);
}

/* The two images: the model on anomalib's own preprocessed input (exact), then our
 * preprocessing from the files (docs/uflow-math.md "Test fixtures": input within 0.02, map mean abs err within 1e-3). */
static void test_images(void **state)
{
    (void)state;
    uf_model *m = load_model();
    const uf_model_info *info = uf_model_get_info(m);
    uf_st *exp = ut_open(g_dir, "expected_images.safetensors");
    uf_ctx *ctx;
    uf_error err;
    uf_ctx_opts o = {.max_batch = 2, .threads = 2};
    assert_int_equal(uf_ctx_init(m, &o, &ctx, &err), UF_OK);
    size_t n;
    const float *in = ut_f32(exp, "input", &n);
    uf_result r;
    assert_int_equal(uf_ctx_run(ctx, in, 2, &r, &err), UF_OK);
    compare_outputs(exp, &r, 2);

    static const char *files[2] = {"texture_300x280.png", "defect_640x480.jpg"};
    size_t per = (size_t)3 * info->height * info->width;
    float *mine = malloc(sizeof(float) * per * 2);
    char dir[1024], p[1024];
    ut_path(dir, sizeof dir, g_dir, "inputs");
    for (int i = 0; i < 2; i++) {
        ut_path(p, sizeof p, dir, files[i]);
        if (uf_image_load_file(p, info, NULL, mine + i * per, &err) != UF_OK)
            fail_msg("%s: %s", p, err.msg);
        double e = ut_max_abs(mine + i * per, in + i * per, per);
        print_message("  preprocess %-22s max|err| %.3g mean %.3g (tol 0.02)\n", files[i], e,
                      ut_mean_abs(mine + i * per, in + i * per, per));
        assert_true(e <= 0.02);
    }
    assert_int_equal(uf_ctx_run(ctx, mine, 2, &r, &err), UF_OK);
    const float *map = ut_f32(exp, "anomaly_map", &n);
    double me = ut_mean_abs(r.anomaly_map, map, n);
    print_message("  anomaly_map from files: mean|err| %.3g (tol 1e-3)\n", me);
    assert_true(me <= 1e-3);
    free(mine);
    uf_ctx_free(ctx);
    uf_st_close(exp);
    uf_model_free(m);
}

int main(int argc, char **argv)
{
    g_full = argc > 1 && strcmp(argv[1], "shared") == 0;
    if (g_full) {
        g_dir = ut_shared_golden_dir();
        if (!g_dir) {
            printf("../shared/golden not present: skipping the full-node golden test\n");
            return 77; /* meson: skipped */
        }
    } else {
        g_dir = ut_golden_dir();
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_input),
        cmocka_unit_test(test_images),
    };
    return cmocka_run_group_tests_name(g_full ? "golden_shared" : "golden", tests, NULL, NULL);
}
