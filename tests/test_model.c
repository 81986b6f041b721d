/* test_model.c — whole-model tests beyond the anomalib golden config: a non-square,
 * non-default config against the independent PyTorch reference (tests/golden/nondefault,
 * made by tools/uflow_ref.py), other configs' shapes, batch consistency. */
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/uflow_test_model_XXXXXX";

static void path_in_tmp(char *buf, size_t n, const char *file) { ut_path(buf, n, tmpdir, file); }

/* The fixture omits the backbone: regenerate it from the formula and merge. */
static void build_nondefault(const char *out)
{
    char dir[1024], bbp[1024];
    ut_path(dir, sizeof dir, ut_golden_dir(), "nondefault");
    uf_st *flow = ut_open(dir, "model_flow.safetensors");
    const char *cfg = uf_st_meta(flow, "config");
    assert_non_null(cfg);
    uf_create_opts o = uf_create_opts_default();
    o.height = 64;
    o.width = 96;
    o.flow_steps = 2;
    o.affine_clamp = 1.5;
    o.subnet_ratio = 0.5;
    o.permute_soft = 1;
    o.formula_backbone = 1;
    path_in_tmp(bbp, sizeof bbp, "formula.safetensors");
    uf_error err;
    assert_int_equal(uf_model_create_random(&o, bbp, &err), UF_OK);
    uf_st *bb;
    assert_int_equal(uf_st_open(bbp, &bb, &err), UF_OK);
    uf_st_writer *w = uf_st_writer_new();
    for (size_t i = 0; i < uf_st_count(bb); i++) {
        const uf_st_tensor *t = uf_st_at(bb, i);
        if (strncmp(t->name, "feature_extractor.feature_extractor.", 36) == 0)
            assert_int_equal(uf_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err), UF_OK);
    }
    for (size_t i = 0; i < uf_st_count(flow); i++) {
        const uf_st_tensor *t = uf_st_at(flow, i);
        assert_int_equal(uf_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err), UF_OK);
    }
    assert_int_equal(uf_st_writer_meta(w, "config", cfg, &err), UF_OK);
    assert_int_equal(uf_st_writer_save(w, out, &err), UF_OK);
    uf_st_writer_free(w);
    uf_st_close(bb);
    uf_st_close(flow);
    unlink(bbp);
}

static void check(const char *what, const float *got, const float *ref, size_t n, double tol)
{
    double e = ut_max_abs(got, ref, n);
    print_message("  %-14s max|err| %.3g (tol %.3g)\n", what, e, tol);
    if (!(e <= tol))
        fail_msg("%s: %g > %g", what, e, tol);
}

static void test_nondefault_vs_pytorch(void **state)
{
    (void)state;
    char mp[1024], dir[1024];
    path_in_tmp(mp, sizeof mp, "nondefault.safetensors");
    build_nondefault(mp);
    uf_model *m;
    uf_error err;
    if (uf_model_load(mp, &m, &err) != UF_OK)
        fail_msg("%s", err.msg);
    const uf_model_info *info = uf_model_get_info(m);
    assert_int_equal(info->height, 64);
    assert_int_equal(info->width, 96);
    assert_true(info->permute_soft);
    ut_path(dir, sizeof dir, ut_golden_dir(), "nondefault");
    uf_st *in = ut_open(dir, "input.safetensors"), *exp = ut_open(dir, "expected.safetensors");
    uf_ctx *ctx;
    uf_ctx_opts o = {.max_batch = 2, .threads = 2};
    assert_int_equal(uf_ctx_init(m, &o, &ctx, &err), UF_OK);
    uf_result r;
    assert_int_equal(uf_ctx_run(ctx, ut_f32(in, "image", NULL), 2, &r, &err), UF_OK);
    char name[32];
    size_t n;
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "features.%d", k);
        const float *ref = ut_f32(exp, name, &n);
        check(name, r.features[k], ref, n, 1e-3 * fmax(1, ut_max_absval(ref, n)));
        snprintf(name, sizeof name, "z.%d", k);
        ref = ut_f32(exp, name, &n);
        assert_int_equal(n, (size_t)2 * r.z_channels[k] * r.z_height[k] * r.z_width[k]);
        check(name, r.z[k], ref, n, 1e-3 * fmax(1, ut_max_absval(ref, n)));
    }
    const float *ljd = ut_f32(exp, "log_jac_det", &n);
    for (int b = 0; b < 2; b++)
        assert_true(fabs(r.log_jac_det[b] - ljd[b]) <= 1e-4 * fabs(ljd[b]));
    check("anomaly_map", r.anomaly_map, ut_f32(exp, "anomaly_map", NULL), (size_t)2 * 64 * 96, 1e-4);
    check("pred_score", r.pred_score, ut_f32(exp, "pred_score", NULL), 2, 1e-4);
    uf_ctx_free(ctx);
    uf_st_close(in);
    uf_st_close(exp);
    uf_model_free(m);
    unlink(mp);
}

static float *randn(size_t n, uint64_t seed)
{
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)(((seed >> 40) / 16777216.0) * 4.0 - 2.0);
    }
    return x;
}

/* Create, load, run: shapes follow docs/uflow-math.md "Graph", everything finite, batch rows independent. */
static void run_config(const char *backbone, int H, int W, int steps, double clamp, double ratio,
                       int soft, const int zc[3])
{
    char mp[1024];
    path_in_tmp(mp, sizeof mp, "cfg.safetensors");
    uf_create_opts o = uf_create_opts_default();
    o.backbone = backbone;
    o.height = H;
    o.width = W;
    o.flow_steps = steps;
    o.affine_clamp = clamp;
    o.subnet_ratio = ratio;
    o.permute_soft = soft;
    o.perturb = 1;
    o.seed = 7;
    uf_error err;
    assert_int_equal(uf_model_create_random(&o, mp, &err), UF_OK);
    uf_model *m;
    if (uf_model_load(mp, &m, &err) != UF_OK)
        fail_msg("%s", err.msg);
    uf_ctx *ctx;
    uf_ctx_opts co = {.max_batch = 2, .threads = 1 + (steps % 2)}; /* 1 and 2 threads */
    assert_int_equal(uf_ctx_init(m, &co, &ctx, &err), UF_OK);
    size_t per = (size_t)3 * H * W;
    float *x = randn(2 * per, 99);
    uf_result r;
    assert_int_equal(uf_ctx_run(ctx, x, 2, &r, &err), UF_OK);
    int scale[3] = {4, 8, 16};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(r.z_channels[k], zc[k]);
        assert_int_equal(r.z_height[k], H / scale[k]);
        assert_int_equal(r.z_width[k], W / scale[k]);
    }
    size_t mapn = (size_t)H * W;
    float *map1 = malloc(sizeof(float) * mapn);
    memcpy(map1, r.anomaly_map + mapn, sizeof(float) * mapn); /* sample 1 of the batch */
    float ljd1 = r.log_jac_det[1], s1 = r.pred_score[1];
    for (size_t i = 0; i < 2 * mapn; i++)
        assert_true(isfinite(r.anomaly_map[i]) && r.anomaly_map[i] >= 0.f && r.anomaly_map[i] <= 1.f);
    assert_true(isfinite(r.log_jac_det[0]) && isfinite(r.log_jac_det[1]));
    /* The same image alone must give the same numbers as inside a batch. */
    assert_int_equal(uf_ctx_run(ctx, x + per, 1, &r, &err), UF_OK);
    assert_true(ut_max_abs(r.anomaly_map, map1, mapn) == 0.0);
    assert_true(r.log_jac_det[0] == ljd1 && r.pred_score[0] == s1);
    print_message("  %s %dx%d steps %d clamp %g ratio %g %s: ljd %.1f score %.4f\n", backbone, H, W,
                  steps, clamp, ratio, soft ? "soft" : "hard", ljd1, s1);
    free(map1);
    free(x);
    uf_ctx_free(ctx);
    uf_model_free(m);
    unlink(mp);
}

static void test_configs(void **state)
{
    (void)state;
    /* resnet18: stage C 256 -> split (128,128); 128+32=160 -> (80,80); 64+20=84 */
    run_config("resnet18", 64, 96, 6, 1.5, 0.5, 1, (const int[3]){84, 80, 128});
    run_config("resnet18", 48, 32, 1, 2.0, 1.0, 0, (const int[3]){84, 80, 128});
    run_config("resnet18", 32, 64, 3, 0.7, 0.3, 0, (const int[3]){84, 80, 128});
    /* wide_resnet50_2: 1024 -> (512,512); 512+128=640 -> (320,320); 256+80=336 */
    run_config("wide_resnet50_2", 32, 48, 2, 2.0, 1.0, 0, (const int[3]){336, 320, 512});
}

static void test_ctx_limits(void **state)
{
    (void)state;
    char mp[1024];
    path_in_tmp(mp, sizeof mp, "small.safetensors");
    uf_create_opts o = uf_create_opts_default();
    o.height = o.width = 32;
    uf_error err;
    assert_int_equal(uf_model_create_random(&o, mp, &err), UF_OK);
    uf_model *m;
    assert_int_equal(uf_model_load(mp, &m, &err), UF_OK);
    uf_ctx *ctx;
    uf_ctx_opts bad = {.max_batch = 0};
    assert_int_equal(uf_ctx_init(m, &bad, &ctx, &err), UF_ERR_ARG);
    assert_int_equal(uf_ctx_init(m, NULL, &ctx, &err), UF_OK);
    float x[3 * 32 * 32] = {0};
    uf_result r;
    uf_nfa_result nr;
    assert_int_equal(uf_ctx_nfa(ctx, NULL, &nr, &err), UF_ERR_ARG); /* nothing run yet */
    assert_int_equal(uf_ctx_run(ctx, x, 2, &r, &err), UF_ERR_ARG);
    assert_non_null(strstr(err.msg, "max_batch"));
    assert_int_equal(uf_ctx_run(ctx, x, 0, &r, &err), UF_ERR_ARG);
    assert_int_equal(uf_ctx_run(ctx, x, 1, &r, &err), UF_OK);
    assert_null(r.norm_score); /* no post-processing statistics in this model */
    /* 32x32 input: latents 8x8, 4x4, 2x2; windows shrink per scale (7, 3, 3), and reflect
     * padding needs each map larger than its half window (3, 1, 1): all fit. */
    assert_int_equal(uf_ctx_nfa(ctx, NULL, &nr, &err), UF_OK);
    assert_int_equal(nr.batch, 1);
    for (int i = 0; i < 32 * 32; i++)
        assert_true(isfinite(nr.minus_log10_nfa[i]) && nr.mask[i] <= 1);
    uf_nfa_opts big = uf_nfa_opts_default();
    big.window = 40; /* half 20 > the 8x8 finest latent */
    assert_int_equal(uf_ctx_nfa(ctx, &big, &nr, &err), UF_ERR_ARG);
    assert_int_equal(uf_ctx_nfa(ctx, NULL, &nr, &err), UF_OK); /* still usable afterwards */
    assert_true(isfinite(r.pred_score[0]));
    x[5] = NAN; /* non-finite input is an error, not a silently finite (ReLU-eaten) score */
    assert_int_equal(uf_ctx_run(ctx, x, 1, &r, &err), UF_ERR_ARG);
    assert_non_null(strstr(err.msg, "non-finite"));
    uf_ctx_free(ctx);
    uf_model_free(m);
    unlink(mp);
}

static void test_postproc(void **state)
{
    (void)state;
    uf_postproc p = {.image_threshold = 0.6f, .pixel_threshold = 0.5f, .pred_scores_min = 0.2f,
                     .pred_scores_max = 1.0f, .anomaly_maps_min = 0.0f, .anomaly_maps_max = 1.0f,
                     .image_sensitivity = 0.5f};
    assert_float_equal(uf_postproc_normalize(&p, 0.6f, 1), 0.5f, 1e-6);
    assert_float_equal(uf_postproc_normalize(&p, 0.8f, 1), 0.75f, 1e-6);
    assert_float_equal(uf_postproc_normalize(&p, 5.0f, 1), 1.0f, 0);
    assert_float_equal(uf_postproc_normalize(&p, -5.0f, 1), 0.0f, 0);
    p.image_threshold = NAN; /* falls back to the pixel threshold (docs/uflow-math.md "Post-processing") */
    assert_float_equal(uf_postproc_normalize(&p, 0.5f, 1), 0.5f, 1e-6);
    p.pixel_threshold = NAN; /* then to the midpoint of min/max */
    assert_float_equal(uf_postproc_normalize(&p, 0.6f, 1), 0.5f, 1e-6);
    p.pred_scores_min = NAN; /* no statistics: raw values pass through */
    assert_float_equal(uf_postproc_normalize(&p, 0.123f, 1), 0.123f, 0);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nondefault_vs_pytorch),
        cmocka_unit_test(test_configs),
        cmocka_unit_test(test_ctx_limits),
        cmocka_unit_test(test_postproc),
    };
    int rc = cmocka_run_group_tests_name("model", tests, NULL, NULL);
    rmdir(tmpdir);
    return rc;
}
