/* test_loader_config.c — uf_model_load on bad configs and parameter values: missing or
 * malformed config fields, configs that contradict the tensors, rows that are not a
 * permutation, non-finite weights, ActNorm scales. The fixture is loader_fixture.c. */
#include "loader_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


static void test_config_missing(void **state)
{
    (void)state;
    char p[1024];
    tmp_path(p, sizeof p, "noconfig.safetensors");
    rewrite_opts o = {.meta = META_NO_CONFIG};
    rewrite(p, &o);
    expect_fail(p, UF_ERR_CONFIG, "no model config", "'config'");
    o.meta = META_NONE;
    rewrite(p, &o);
    expect_fail(p, UF_ERR_CONFIG, "no model config", NULL);
    uf_model *m = (uf_model *)(uintptr_t)1;
    assert_int_equal(uf_model_load(p, &m, NULL), UF_ERR_CONFIG);
    assert_null(m);

    static const char *bad[] = {"{backbone: resnet18}", "", "{\"backbone\": \"resnet18\",",
                                "{\"a\": 1, \"a\": 2}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rewrite_config(p, bad[i]);
        expect_fail(p, UF_ERR_CONFIG, "config is not valid JSON", NULL);
    }
    rewrite_config(p, "[\"resnet18\"]");
    expect_fail(p, UF_ERR_CONFIG, "config is not a JSON object", NULL);
    unlink(p);
}

static void test_config_required(void **state)
{
    (void)state;
    static const char *fields[] = {"backbone", "input_size", "flow_steps", "affine_clamp",
                                   "affine_subnet_channels_ratio", "permute_soft"};
    char p[1024], want[128];
    tmp_path(p, sizeof p, "required.safetensors");
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char *cfg = config_with(fields[i], NULL);
        rewrite_config(p, cfg);
        free(cfg);
        snprintf(want, sizeof want, "'%s'", fields[i]);
        /* input_size's message says what it must be rather than "missing". */
        expect_fail(p, UF_ERR_CONFIG, want, strcmp(fields[i], "input_size") ? "missing required" : NULL);
    }
    unlink(p);
}

/* Invalid values: these fail before any tensor is looked at, so a container with the config
 * alone is enough (a config the parser wrongly accepted would fail with UF_ERR_TENSOR). */
static void test_config_values(void **state)
{
    (void)state;
    static const struct {
        const char *key, *value, *want;
    } cases[] = {
        {"input_size", "40", "multiples of 16"},
        {"input_size", "[32, 40]", "input_size 32x40"},
        {"input_size", "[40, 32]", "multiples of 16"},
        {"input_size", "8", "multiples of 16"},
        {"input_size", "0", "input_size"},
        {"input_size", "-32", "input_size"},
        {"input_size", "8192", "input_size"},
        {"input_size", "\"32\"", "'input_size' must be an integer or [H, W]"},
        {"input_size", "32.0", "'input_size' must be an integer"},
        {"input_size", "[32]", "'input_size' must be an integer"},
        {"input_size", "[32, 32, 3]", "'input_size' must be an integer"},
        {"backbone", "\"resnet50\"", "backbone 'resnet50' is not one of"},
        {"backbone", "18", "'backbone'"},
        {"flow_steps", "0", "'flow_steps' must be an integer"},
        {"flow_steps", "\"4\"", "'flow_steps'"},
        {"flow_steps", "4.5", "'flow_steps'"},
        {"affine_clamp", "0", "'affine_clamp' must be > 0"},
        {"affine_clamp", "-2.0", "'affine_clamp'"},
        {"affine_clamp", "\"2\"", "'affine_clamp' must be a finite number"},
        {"affine_subnet_channels_ratio", "0", "'affine_subnet_channels_ratio'"},
        {"affine_subnet_channels_ratio", "null", "'affine_subnet_channels_ratio'"},
        {"permute_soft", "0", "'permute_soft'"},
        {"permute_soft", "\"false\"", "'permute_soft'"},
        {"mean", "[0.5, 0.5]", "'mean' must be an array of 3"},
        {"std", "[0.2, 0.0, 0.2]", "'std'[1] must be a positive number"},
        {"feature_channels", "[64, 128, 512]", "'feature_channels' contradicts the backbone"},
        {"feature_scale_factors", "[4, 8]", "'feature_scale_factors' contradicts"},
        {"image_threshold", "\"high\"", "'image_threshold' must be a finite number"},
    };
    char p[1024];
    tmp_path(p, sizeof p, "values.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *cfg = config_with(cases[i].key, cases[i].value);
        uf_st_writer *w = uf_st_writer_new();
        uf_error err;
        assert_int_equal(uf_st_writer_meta(w, "config", cfg, &err), UF_OK);
        assert_int_equal(uf_st_writer_save(w, p, &err), UF_OK);
        uf_st_writer_free(w);
        free(cfg);
        expect_fail(p, UF_ERR_CONFIG, cases[i].want, NULL);
    }
    unlink(p);
}

static void test_config_contradicts(void **state)
{
    (void)state;
    static const struct {
        const char *key, *value, *want, *want2;
    } cases[] = {
        {"flow_steps", "3", "missing tensor 'flow.module_list.4.downsample_kernel'", NULL},
        {"flow_steps", "5", "missing tensor 'flow.module_list.4.global_scale'", NULL},
        {"flow_steps", "2", "flow.module_list.", NULL},
        {"input_size", "64", "tensor 'feature_extractor.feature_normalizations.0.weight' has shape "
                             "[64, 8, 8]", "[64, 16, 16]"},
        {"input_size", "[32, 48]", "feature_normalizations.0.weight", "[64, 8, 12]"},
        {"backbone", "\"wide_resnet50_2\"", "'feature_extractor.feature_extractor.layer1.0.conv1.weight' "
                                            "has shape [64, 64, 3, 3]", "[128, 64, 1, 1]"},
        {"affine_subnet_channels_ratio", "0.5", "'flow.module_list.0.subnet.0.weight' has shape",
         "[64, 128, 3, 3]"},
    };
    char p[1024];
    tmp_path(p, sizeof p, "contradicts.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *cfg = config_with(cases[i].key, cases[i].value);
        rewrite_config(p, cfg);
        free(cfg);
        expect_fail(p, UF_ERR_TENSOR, cases[i].want, cases[i].want2);
    }
    /* A hard permutation is a valid soft one: permute_soft true runs it as a matrix and gives
     * the same result. */
    char *cfg = config_with("permute_soft", "true");
    rewrite_config(p, cfg);
    free(cfg);
    expect_same_outputs(p, 1e-6, "soft perm");
    unlink(p);
}

/* w_perm of block 1 (C = 256) edited so it is no longer a permutation. */
static void test_not_permutation(void **state)
{
    (void)state;
    const char *name = "flow.module_list.1.w_perm";
    const uf_st_tensor *t = uf_st_find(g_base, name);
    assert_non_null(t);
    const float *wp = t->data;
    int C = (int)t->shape[0];
    int one3 = -1, one4 = -1; /* the columns of the ones in rows 3 and 4 */
    for (int j = 0; j < C; j++) {
        if (wp[3 * C + j] == 1.f)
            one3 = j;
        if (wp[4 * C + j] == 1.f)
            one4 = j;
    }
    assert_true(one3 >= 0 && one4 >= 0);
    int other = (one3 + 1) % C;
    setval cases[] = {
        /* row 3 with a second 1 */
        {name, 1, {(size_t)3 * C + other}, {1.f}},
        /* row 3 moved onto row 4's column: a column used twice */
        {name, 2, {(size_t)3 * C + one3, (size_t)3 * C + one4}, {0.f, 1.f}},
        /* row 3 scaled */
        {name, 1, {(size_t)3 * C + one3}, {0.5f}},
        /* row 3 negated */
        {name, 1, {(size_t)3 * C + one3}, {-1.f}},
        /* row 3 empty */
        {name, 1, {(size_t)3 * C + one3}, {0.f}},
        /* row 3 with a NaN */
        {name, 1, {(size_t)3 * C + other}, {NAN}},
    };
    /* A NaN is caught earlier by the finiteness check on every weight. */
    static const char *want[] = {"row 3", "row 4", "row 3", "row 3", "row 3", "non-finite value"};
    char p[1024];
    tmp_path(p, sizeof p, "perm.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rewrite_fn(p, edit_setval, &cases[i]);
        expect_fail(p, UF_ERR_TENSOR, "tensor 'flow.module_list.1.w_perm'", want[i]);
    }
    unlink(p);
}

/* Every weight must be finite, every BatchNorm variance non-negative. */
static void test_nonfinite_weights(void **state)
{
    (void)state;
    static const setval cases[] = {
        {"feature_extractor.feature_extractor.conv1.weight", 1, {10}, {NAN}},
        {"feature_extractor.feature_extractor.layer2.0.bn1.running_var", 1, {2}, {-1.f}},
        {"feature_extractor.feature_normalizations.1.bias", 1, {7}, {INFINITY}},
        {"flow.module_list.7.subnet.2.weight", 1, {0}, {-INFINITY}},
    };
    static const char *want[] = {"non-finite value at element 10", "channel 2 is negative",
                                 "non-finite value at element 7", "non-finite value at element 0"};
    char p[1024];
    tmp_path(p, sizeof p, "nonfinite.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rewrite_fn(p, edit_setval, (void *)&cases[i]);
        expect_fail(p, UF_ERR_TENSOR, cases[i].name, want[i]);
    }
    unlink(p);
}

static void test_actnorm(void **state)
{
    (void)state;
    static const setval cases[] = {
        {"flow.module_list.2.global_scale", 1, {5}, {NAN}},
        {"flow.module_list.2.global_scale", 1, {0}, {INFINITY}},
        {"flow.module_list.2.global_scale", 1, {255}, {-INFINITY}},
        {"flow.module_list.2.global_scale", 1, {7}, {-1000.f}}, /* softplus underflows to 0 */
        {"flow.module_list.15.global_offset", 1, {3}, {INFINITY}},
        {"flow.module_list.15.global_offset", 1, {83}, {NAN}},
    };
    /* Non-finite values fail the finiteness check on every weight (element = channel here);
     * a finite value whose softplus underflows fails the ActNorm check. */
    static const char *want[] = {"non-finite value at element 5", "non-finite value at element 0",
                                 "non-finite value at element 255", "channel 7 ",
                                 "non-finite value at element 3", "non-finite value at element 83"};
    char p[1024], name[128];
    tmp_path(p, sizeof p, "actnorm.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rewrite_fn(p, edit_setval, (void *)&cases[i]);
        snprintf(name, sizeof name, "tensor '%.*s", (int)(strrchr(cases[i].name, '.') - cases[i].name),
                 cases[i].name);
        expect_fail(p, UF_ERR_TENSOR, name, want[i]);
    }
    /* A negative raw global_scale is fine (softplus makes it positive). */
    setval neg = {"flow.module_list.2.global_scale", 1, {9}, {-3.f}};
    rewrite_fn(p, edit_setval, &neg);
    uf_model_free(load_ok(p));
    unlink(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_missing),
        cmocka_unit_test(test_config_required),
        cmocka_unit_test(test_config_values),
        cmocka_unit_test(test_config_contradicts),
        cmocka_unit_test(test_not_permutation),
        cmocka_unit_test(test_actnorm),
        cmocka_unit_test(test_nonfinite_weights),
    };
    return cmocka_run_group_tests_name("loader_config", tests, setup, teardown);
}
