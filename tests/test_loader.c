/* test_loader.c — uf_model_load on bad model files: truncated containers, missing, reshaped,
 * retyped or extra tensors (each rejection checks the status and that the message names the
 * tensor and the file), and the accepted variants (F64/F16/BF16 weights, the Lightning
 * "model." prefix, num_batches_tracked bookkeeping, unaligned data), run and compared with the
 * original. The fixture is loader_fixture.c. */
#include "loader_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- tests ------------------------------------------------------------------------------- */

static void test_valid(void **state)
{
    (void)state;
    uf_model *m = load_ok(g_base_path);
    const uf_model_info *info = uf_model_get_info(m);
    assert_int_equal(info->backbone, UF_BACKBONE_RESNET18);
    assert_string_equal(info->backbone_name, "resnet18");
    assert_int_equal(info->height, SIDE);
    assert_int_equal(info->width, SIDE);
    assert_int_equal(info->flow_steps, 4);
    assert_int_equal(info->n_scales, 3);
    assert_int_equal(info->permute_soft, 0);
    uint64_t n = 0;
    for (size_t i = 0; i < uf_st_count(g_base); i++)
        n += uf_st_at(g_base, i)->numel;
    assert_int_equal(info->n_params, n);
    struct stat sb;
    assert_int_equal(stat(g_base_path, &sb), 0);
    assert_int_equal(info->file_bytes, (uint64_t)sb.st_size);
    assert_int_equal(strlen(info->version), 16);
    assert_string_equal(info->config_json, uf_st_meta(g_base, "config"));
    uf_model_free(m);
    uf_model_free(NULL);

    uf_error err = {0};
    assert_int_equal(uf_model_load(NULL, &m, &err), UF_ERR_ARG);
    assert_int_equal(uf_model_load(g_base_path, NULL, &err), UF_ERR_ARG);
    char p[1024];
    tmp_path(p, sizeof p, "nonexistent.safetensors");
    expect_fail(p, UF_ERR_IO, "cannot open", NULL);
    expect_fail(tmpdir, UF_ERR_IO, "not a regular file", NULL);
}

static void write_prefix_of(const char *dst, size_t len)
{
    size_t blen;
    const void *b = uf_st_bytes(g_base, &blen);
    assert_true(len <= blen);
    FILE *f = fopen(dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_truncated(void **state)
{
    (void)state;
    char p[1024];
    tmp_path(p, sizeof p, "truncated.safetensors");
    size_t len;
    const uint8_t *b = uf_st_bytes(g_base, &len);
    write_prefix_of(p, len / 2);
    expect_fail(p, UF_ERR_FORMAT, "outside the data section", "tensor '");
    /* One byte short: the last tensor in the file is named. */
    char want[300];
    snprintf(want, sizeof want, "tensor '%s'", uf_st_at(g_base, uf_st_count(g_base) - 1)->name);
    write_prefix_of(p, len - 1);
    expect_fail(p, UF_ERR_FORMAT, want, "outside the data section");
    /* Cut inside the header, inside the length, nothing at all. */
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | b[i];
    write_prefix_of(p, 8 + hlen / 2);
    expect_fail(p, UF_ERR_FORMAT, "header length", "exceeds the file");
    uf_model *m = (uf_model *)(uintptr_t)1;
    assert_int_equal(uf_model_load(p, &m, NULL), UF_ERR_FORMAT);
    assert_null(m);
    write_prefix_of(p, 5);
    expect_fail(p, UF_ERR_FORMAT, "too short", NULL);
    write_prefix_of(p, 0);
    expect_fail(p, UF_ERR_FORMAT, "too short", NULL);
    unlink(p);
}

static void test_missing_tensor(void **state)
{
    (void)state;
    static const char *names[] = {
        "flow.module_list.3.subnet.2.bias",
        "flow.module_list.0.global_scale",
        "flow.module_list.9.global_offset",
        "flow.module_list.14.w_perm",
        "flow.module_list.14.w_perm_inv",
        "flow.module_list.16.subnet.0.weight",
        "flow.module_list.12.downsample_kernel",
        "feature_extractor.feature_normalizations.1.bias",
        "feature_extractor.feature_extractor.conv1.weight",
        "feature_extractor.feature_extractor.layer2.0.downsample.1.running_var",
        "feature_extractor.feature_extractor.layer3.1.bn2.weight",
    };
    char p[1024], want[300];
    tmp_path(p, sizeof p, "missing.safetensors");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        assert_non_null(uf_st_find(g_base, names[i]));
        rewrite_fn(p, edit_drop, (void *)names[i]);
        snprintf(want, sizeof want, "missing tensor '%s'", names[i]);
        expect_fail(p, UF_ERR_TENSOR, want, NULL);
    }
    /* Without an error struct the status is the same. */
    uf_model *m = (uf_model *)(uintptr_t)1;
    assert_int_equal(uf_model_load(p, &m, NULL), UF_ERR_TENSOR);
    assert_null(m);
    /* num_batches_tracked is bookkeeping: a file without any still loads. */
    rewrite_fn(p, edit_drop_nbt, NULL);
    uf_model_free(load_ok(p));
    unlink(p);
}

static void test_wrong_shape(void **state)
{
    (void)state;
    static const reshape cases[] = {
        {"flow.module_list.0.global_offset", 1, {256}},
        {"flow.module_list.7.global_scale", 4, {160, 1, 1, 1}},
        {"flow.module_list.1.subnet.0.weight", 4, {128 * 128, 1, 1, 1}},
        {"flow.module_list.17.subnet.2.bias", 1, {83}},
        {"flow.module_list.5.downsample_kernel", 4, {64, 1, 2, 2}},
        {"feature_extractor.feature_extractor.conv1.weight", 4, {3, 64, 7, 7}},
        {"feature_extractor.feature_extractor.layer1.0.bn1.running_mean", 2, {64, 1}},
        {"feature_extractor.feature_normalizations.0.weight", 3, {64, 4, 16}},
    };
    static const char *want_cfg[] = {"[1, 256, 1, 1]", "[1, 160, 1, 1]", "[128, 128, 1, 1]", "[84]",
                                     "[128, 1, 2, 2]", "[64, 3, 7, 7]",  "[64]",
                                     "[64, 8, 8]"};
    char p[1024], want[300];
    tmp_path(p, sizeof p, "shape.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_non_null(uf_st_find(g_base, cases[i].name));
        rewrite_fn(p, edit_reshape, (void *)&cases[i]);
        snprintf(want, sizeof want, "tensor '%s' has shape", cases[i].name);
        char want2[64];
        snprintf(want2, sizeof want2, "the config implies %s", want_cfg[i]);
        expect_fail(p, UF_ERR_TENSOR, want, want2);
    }
    unlink(p);
}

static void test_wrong_dtype(void **state)
{
    (void)state;
    static const retype cases[] = {
        {"flow.module_list.2.subnet.0.weight", UF_DT_I64},
        {"feature_extractor.feature_extractor.conv1.weight", UF_DT_I32},
        {"feature_extractor.feature_normalizations.2.bias", UF_DT_U8},
        {"flow.module_list.8.global_scale", UF_DT_I64},
    };
    char p[1024], want[300];
    tmp_path(p, sizeof p, "dtype.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rewrite_fn(p, edit_retype, (void *)&cases[i]);
        snprintf(want, sizeof want, "tensor '%s' has dtype %s", cases[i].name,
                 uf_dtype_name(cases[i].dt));
        expect_fail(p, UF_ERR_TENSOR, want, "expected F32");
    }
    unlink(p);
}

/* The loader's conversion of flow and LayerNorm parameters equals the test's own rounding. */
static void check_converted(const uf_model *m, const uf_model *ref)
{
    for (int k = 0; k < m->info.n_scales; k++) {
        const uf_flow_stage *a = &m->flow.stage[k], *b = &ref->flow.stage[k];
        for (int j = 0; j < m->info.flow_steps; j++) {
            const uf_flow_block *x = &a->blocks[j], *y = &b->blocks[j];
            size_t n0 = (size_t)x->M * x->C1 * x->k * x->k, n2 = (size_t)2 * x->C2 * x->M * x->k * x->k;
            assert_memory_equal(x->sub0.w, y->sub0.w, sizeof(float) * n0);
            assert_memory_equal(x->sub0.b, y->sub0.b, sizeof(float) * x->M);
            assert_memory_equal(x->sub2.w, y->sub2.w, sizeof(float) * n2);
            assert_memory_equal(x->sub2.b, y->sub2.b, sizeof(float) * 2 * x->C2);
            assert_memory_equal(x->scale, y->scale, sizeof(float) * x->C);
            assert_memory_equal(x->offset, y->offset, sizeof(float) * x->C);
            assert_memory_equal(x->perm, y->perm, sizeof(int32_t) * x->C);
        }
        size_t ln = (size_t)m->info.feature_channels[k] * (SIDE / m->info.feature_scale[k]) *
                    (SIDE / m->info.feature_scale[k]);
        const float *mw, *mb, *rw, *rb;
        m->bb_ops->affine(m->bb, k, &mw, &mb);
        ref->bb_ops->affine(ref->bb, k, &rw, &rb);
        assert_non_null(mw);
        assert_memory_equal(mw, rw, sizeof(float) * ln);
        assert_memory_equal(mb, rb, sizeof(float) * ln);
    }
}

static void test_float_dtypes(void **state)
{
    (void)state;
    char p[1024], pr[1024];
    tmp_path(p, sizeof p, "float.safetensors");
    tmp_path(pr, sizeof pr, "rounded.safetensors");

    /* F64: F32 -> F64 -> F32 is exact. */
    retype all = {NULL, UF_DT_F64};
    rewrite_fn(p, edit_retype, &all);
    expect_same_outputs(p, 0, "F64");

    /* F16 / BF16: the conversion is exact (compared with the test's own rounding, stored as
     * F32), and the outputs stay close to the F32 model's. */
    static const uf_dtype halves[2] = {UF_DT_F16, UF_DT_BF16};
    static const double tol[2] = {1e-2, 5e-2};
    for (int i = 0; i < 2; i++) {
        all.dt = halves[i];
        rewrite_fn(p, edit_retype, &all);
        rewrite_fn(pr, edit_round, (void *)&halves[i]);
        uf_model *m = load_ok(p), *ref = load_ok(pr);
        check_converted(m, ref);
        uf_model_free(m);
        uf_model_free(ref);
        expect_same_outputs(p, tol[i], uf_dtype_name(halves[i]));
    }

    /* One converted tensor among F32 ones. */
    retype one = {"flow.module_list.15.subnet.2.weight", UF_DT_F64};
    rewrite_fn(p, edit_retype, &one);
    expect_same_outputs(p, 0, "one F64");
    unlink(p);
    unlink(pr);
}

static void test_extra_tensor(void **state)
{
    (void)state;
    static const char *extra[] = {
        "extra.weight",
        "flow.module_list.18.global_scale",
        "flow.module_list.4.weight",
        "feature_extractor.feature_extractor.layer4.0.conv1.weight",
        "feature_extractor.feature_extractor.fc.bias",
    };
    char p[1024], want[300];
    tmp_path(p, sizeof p, "extra.safetensors");
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        rewrite_opts o = {.extra = extra[i]};
        rewrite(p, &o);
        snprintf(want, sizeof want, "unexpected tensor '%s'", extra[i]);
        expect_fail(p, UF_ERR_TENSOR, want, "resnet18");
    }
    /* Training bookkeeping anywhere is ignored. */
    rewrite_opts o = {.extra = "flow.module_list.0.num_batches_tracked"};
    rewrite(p, &o);
    uf_model_free(load_ok(p));
    unlink(p);
}

static void test_model_prefix(void **state)
{
    (void)state;
    char p[1024];
    tmp_path(p, sizeof p, "prefixed.safetensors");
    rewrite_fn(p, edit_prefix, NULL);
    uf_model *m = load_ok(p), *base = load_ok(g_base_path);
    assert_int_equal(uf_model_get_info(m)->n_params, uf_model_get_info(base)->n_params);
    uf_model_free(m);
    uf_model_free(base);
    expect_same_outputs(p, 0, "model.");
    /* Mixed: one key without the prefix is missing under its prefixed name. */
    rewrite_fn(p, edit_prefix, (void *)"flow.module_list.2.subnet.0.bias");
    expect_fail(p, UF_ERR_TENSOR, "missing tensor 'model.flow.module_list.2.subnet.0.bias'", NULL);
    unlink(p);
}

/* The header padded by one byte: every tensor is unaligned (no zero-copy; each is copied). */
static void test_unaligned(void **state)
{
    (void)state;
    size_t len;
    const uint8_t *b = uf_st_bytes(g_base, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | b[i];
    char p[1024];
    tmp_path(p, sizeof p, "unaligned.safetensors");
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((hlen + 1) >> (8 * i));
    assert_int_equal(fwrite(len8, 1, 8, f), 8);
    assert_int_equal(fwrite(b + 8, 1, hlen, f), hlen);
    assert_int_equal(fputc(' ', f), ' ');
    assert_int_equal(fwrite(b + 8 + hlen, 1, len - 8 - hlen, f), len - 8 - hlen);
    assert_int_equal(fclose(f), 0);
    expect_same_outputs(p, 0, "unaligned");
    unlink(p);
}

/* An mcait config with no tensors: the CaiT loader names the first tensor it misses. */
static void test_unsupported_backbone(void **state)
{
    (void)state;
    char p[1024];
    tmp_path(p, sizeof p, "mcait.safetensors");
    uf_st_writer *w = uf_st_writer_new();
    uf_error err;
    assert_int_equal(uf_st_writer_meta(w, "config",
                                       "{\"backbone\":\"mcait\",\"input_size\":448,\"flow_steps\":4,"
                                       "\"affine_clamp\":2.0,\"affine_subnet_channels_ratio\":1.0,"
                                       "\"permute_soft\":false}", &err), UF_OK);
    assert_int_equal(uf_st_writer_save(w, p, &err), UF_OK);
    uf_st_writer_free(w);
    expect_fail(p, UF_ERR_TENSOR, "mcait extractor1", "missing tensor 'feature_extractor.extractor1.cls_token'");
    unlink(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_missing_tensor),
        cmocka_unit_test(test_wrong_shape),
        cmocka_unit_test(test_wrong_dtype),
        cmocka_unit_test(test_float_dtypes),
        cmocka_unit_test(test_extra_tensor),
        cmocka_unit_test(test_model_prefix),
        cmocka_unit_test(test_unaligned),
        cmocka_unit_test(test_unsupported_backbone),
    };
    return cmocka_run_group_tests_name("loader", tests, setup, teardown);
}
