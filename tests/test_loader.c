/* test_loader.c — uf_model_load on bad model files. One small random resnet18 model (32x32)
 * is written once; every variant is derived from it by re-writing its tensors and metadata
 * (uf_st_open + uf_st_writer), so each file is a valid container that is wrong in one way.
 * Each rejection checks the status and that the message names the tensor or field (and the
 * file). The accepted variants (F64/F16/BF16 weights, the Lightning "model." prefix,
 * num_batches_tracked bookkeeping) are run and compared with the original. */
#include "util.h"

#include "models/model.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIDE 32

static char tmpdir[] = "/tmp/uflow_test_loader_XXXXXX";
static char g_base_path[1024];
static uf_st *g_base;          /* the valid model, mapped */
static float *g_input;         /* [3, SIDE, SIDE] */

typedef struct outputs {
    float map[SIDE * SIDE];
    float score, ljd;
    float *z[UF_MAX_SCALES];
    size_t zn[UF_MAX_SCALES];
    int n_scales;
} outputs;
static outputs g_ref;

static void tmp_path(char *buf, size_t n, const char *file) { ut_path(buf, n, tmpdir, file); }

static void assert_msg_has(const uf_error *err, const char *what)
{
    if (what && !strstr(err->msg, what))
        fail_msg("error message \"%s\" does not contain \"%s\"", err->msg, what);
}

/* ---- float conversions (the test's own, independent of model.c) ------------------------ */

static uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf, nan */
        return sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u);
    if (ax >= 0x477ff000u) /* rounds to >= 65536 */
        return sign | 0x7c00u;
    if (ax < 0x33000000u) /* < 2^-25: rounds to 0 */
        return sign;
    int e = (int)(ax >> 23);
    uint32_t m = (ax & 0x7fffffu) | 0x800000u, h, rem, half;
    if (e < 113) { /* half subnormal: m * 2^(e-150) = h * 2^-24 */
        int shift = 126 - e;
        h = m >> shift;
        rem = m & ((1u << shift) - 1);
        half = 1u << (shift - 1);
    } else {
        h = ((uint32_t)(e - 112) << 10) | ((ax & 0x7fffffu) >> 13);
        rem = ax & 0x1fffu;
        half = 0x1000u;
    }
    if (rem > half || (rem == half && (h & 1)))
        h++;
    return sign | (uint16_t)h;
}

static float f16_to_f32(uint16_t h)
{
    int e = (h >> 10) & 31, f = h & 1023;
    float v = e == 0 ? ldexpf((float)f, -24) : e == 31 ? (f ? NAN : INFINITY)
                                                       : ldexpf((float)(1024 + f), e - 25);
    return (h & 0x8000) ? -v : v;
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* n floats (unaligned source) as dtype dt, malloc'd. */
static void *convert(const void *src, size_t n, uf_dtype dt)
{
    uint8_t *out = malloc(n * uf_dtype_size(dt) + 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        float f;
        memcpy(&f, (const uint8_t *)src + 4 * i, 4);
        switch (dt) {
        case UF_DT_F64: { double d = f; memcpy(out + 8 * i, &d, 8); break; }
        case UF_DT_F16: { uint16_t h = f32_to_f16(f); memcpy(out + 2 * i, &h, 2); break; }
        case UF_DT_BF16: { uint16_t h = f32_to_bf16(f); memcpy(out + 2 * i, &h, 2); break; }
        case UF_DT_I64: { int64_t v = (int64_t)(f * 1000); memcpy(out + 8 * i, &v, 8); break; }
        case UF_DT_I32: { int32_t v = (int32_t)(f * 1000); memcpy(out + 4 * i, &v, 4); break; }
        case UF_DT_U8: out[i] = (uint8_t)(f != 0); break;
        default: fail_msg("convert: unsupported dtype %s", uf_dtype_name(dt));
        }
    }
    return out;
}

/* F32 values rounded through F16/BF16 and back (malloc'd): what the loader must produce. */
static float *round_through(const void *src, size_t n, uf_dtype dt)
{
    float *out = malloc(n * sizeof(float) + 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        float f;
        memcpy(&f, (const uint8_t *)src + 4 * i, 4);
        out[i] = dt == UF_DT_F16 ? f16_to_f32(f32_to_f16(f)) : bf16_to_f32(f32_to_bf16(f));
    }
    return out;
}

/* ---- re-writing the base model --------------------------------------------------------- */

typedef struct otensor {
    char name[256];
    uf_dtype dt;
    int ndim;
    int64_t shape[UF_ST_MAX_DIMS];
    const void *data;
    void *owned; /* freed after the tensor is added */
} otensor;

/* Called for each tensor of the base model in file order; out starts as a copy. 0 drops it. */
typedef int (*edit_fn)(void *user, const uf_st_tensor *in, otensor *out);

enum { META_KEEP, META_CONFIG, META_NO_CONFIG, META_NONE };

typedef struct rewrite_opts {
    edit_fn fn;
    void *user;
    int meta;
    const char *config;      /* META_CONFIG: the new config string */
    const char *extra;       /* an extra F32 [3] tensor of this name, appended */
} rewrite_opts;

static void rewrite(const char *dst, const rewrite_opts *o)
{
    uf_error err = {0};
    uf_st_writer *w = uf_st_writer_new();
    assert_non_null(w);
    for (size_t i = 0; i < uf_st_count(g_base); i++) {
        const uf_st_tensor *t = uf_st_at(g_base, i);
        otensor ot = {.dt = t->dtype, .ndim = t->ndim, .data = t->data};
        snprintf(ot.name, sizeof ot.name, "%s", t->name);
        memcpy(ot.shape, t->shape, sizeof ot.shape);
        int keep = o->fn ? o->fn(o->user, t, &ot) : 1;
        if (keep && uf_st_writer_add(w, ot.name, ot.dt, ot.ndim, ot.shape, ot.data, &err) != UF_OK)
            fail_msg("rewrite: %s", err.msg);
        free(ot.owned);
    }
    if (o->extra) {
        const float x[3] = {1, 2, 3};
        const int64_t s[1] = {3};
        assert_int_equal(uf_st_writer_add(w, o->extra, UF_DT_F32, 1, s, x, &err), UF_OK);
    }
    if (o->meta != META_NONE) {
        if (o->meta != META_NO_CONFIG)
            assert_int_equal(uf_st_writer_meta(w, "config",
                                               o->meta == META_CONFIG ? o->config
                                                                      : uf_st_meta(g_base, "config"),
                                               &err), UF_OK);
        assert_int_equal(uf_st_writer_meta(w, "format", "pt", &err), UF_OK);
    }
    if (uf_st_writer_save(w, dst, &err) != UF_OK)
        fail_msg("rewrite: %s", err.msg);
    uf_st_writer_free(w);
}

static void rewrite_fn(const char *dst, edit_fn fn, void *user)
{
    rewrite_opts o = {.fn = fn, .user = user};
    rewrite(dst, &o);
}

static void rewrite_config(const char *dst, const char *config)
{
    rewrite_opts o = {.meta = META_CONFIG, .config = config};
    rewrite(dst, &o);
}

/* The base config with `key` set to the JSON text `value` (NULL: removed); malloc'd. */
static char *config_with(const char *key, const char *value)
{
    json_error_t je;
    json_t *c = json_loads(uf_st_meta(g_base, "config"), 0, &je);
    assert_non_null(c);
    if (value) {
        json_t *v = json_loads(value, JSON_DECODE_ANY, &je);
        if (!v)
            fail_msg("bad test JSON %s: %s", value, je.text);
        json_object_set_new(c, key, v);
    } else {
        assert_int_equal(json_object_del(c, key), 0);
    }
    char *s = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(c);
    assert_non_null(s);
    return s;
}

/* ---- loading ---------------------------------------------------------------------------- */

static void expect_fail(const char *path, uf_status status, const char *what, const char *what2)
{
    uf_error err = {0};
    uf_model *m = (uf_model *)(uintptr_t)1;
    uf_status s = uf_model_load(path, &m, &err);
    if (s != status)
        fail_msg("loading %s: expected status %s, got %s: \"%s\"", path, uf_status_str(status),
                 uf_status_str(s), s ? err.msg : "");
    assert_null(m);
    assert_int_equal(err.status, status);
    assert_msg_has(&err, what);
    assert_msg_has(&err, what2);
    assert_msg_has(&err, path);
    print_message("  %s\n", err.msg);
}

static uf_model *load_ok(const char *path)
{
    uf_error err = {0};
    uf_model *m = NULL;
    if (uf_model_load(path, &m, &err) != UF_OK)
        fail_msg("loading %s: %s", path, err.msg);
    return m;
}

static void run(const uf_model *m, outputs *o)
{
    uf_ctx *ctx;
    uf_error err = {0};
    if (uf_ctx_init(m, NULL, &ctx, &err) != UF_OK)
        fail_msg("%s", err.msg);
    uf_result r;
    if (uf_ctx_run(ctx, g_input, 1, &r, &err) != UF_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(r.height * r.width, SIDE * SIDE);
    memcpy(o->map, r.anomaly_map, sizeof o->map);
    o->score = r.pred_score[0];
    o->ljd = r.log_jac_det[0];
    o->n_scales = r.n_scales;
    for (int k = 0; k < r.n_scales; k++) {
        o->zn[k] = (size_t)r.z_channels[k] * r.z_height[k] * r.z_width[k];
        o->z[k] = malloc(sizeof(float) * o->zn[k]);
        assert_non_null(o->z[k]);
        memcpy(o->z[k], r.z[k], sizeof(float) * o->zn[k]);
    }
    uf_ctx_free(ctx);
}

static void free_outputs(outputs *o)
{
    for (int k = 0; k < o->n_scales; k++)
        free(o->z[k]);
}

/* Load, run and compare with the base model's outputs: max abs error of the map, the z and
 * the score within tol x max(1, |ref|); tol 0 means bit-identical. */
static void expect_same_outputs(const char *path, double tol, const char *what)
{
    uf_model *m = load_ok(path);
    outputs o;
    run(m, &o);
    uf_model_free(m);
    assert_int_equal(o.n_scales, g_ref.n_scales);
    double e_map = ut_max_abs(o.map, g_ref.map, SIDE * SIDE), e_z = 0;
    for (int k = 0; k < o.n_scales; k++) {
        assert_int_equal(o.zn[k], g_ref.zn[k]);
        e_z = fmax(e_z, ut_max_abs(o.z[k], g_ref.z[k], o.zn[k]) /
                            fmax(1.0, ut_max_absval(g_ref.z[k], g_ref.zn[k])));
    }
    double e_ljd = fabs((double)o.ljd - g_ref.ljd) / fmax(1.0, fabs(g_ref.ljd));
    double e_s = fabs((double)o.score - g_ref.score) / fmax(1.0, fabs(g_ref.score));
    double mscale = fmax(1.0, ut_max_absval(g_ref.map, SIDE * SIDE));
    print_message("  %-12s map %.3g z %.3g ljd %.3g score %.3g (rel, tol %g)\n", what,
                  e_map / mscale, e_z, e_ljd, e_s, tol);
    if (tol == 0) {
        assert_memory_equal(o.map, g_ref.map, sizeof o.map);
        for (int k = 0; k < o.n_scales; k++)
            assert_memory_equal(o.z[k], g_ref.z[k], sizeof(float) * o.zn[k]);
        assert_true(o.ljd == g_ref.ljd && o.score == g_ref.score);
    } else {
        assert_true(e_map / mscale <= tol && e_z <= tol && e_ljd <= tol && e_s <= tol);
    }
    free_outputs(&o);
}

/* ---- edit callbacks ---------------------------------------------------------------------- */

static int edit_drop(void *user, const uf_st_tensor *in, otensor *out)
{
    (void)out;
    return strcmp(in->name, (const char *)user) != 0;
}

static int edit_drop_nbt(void *user, const uf_st_tensor *in, otensor *out)
{
    (void)user;
    (void)out;
    return strstr(in->name, ".num_batches_tracked") == NULL;
}

typedef struct reshape {
    const char *name;
    int ndim;
    int64_t shape[UF_ST_MAX_DIMS];
} reshape;

/* New shape; the data is the original's prefix (the new shape must not need more). */
static int edit_reshape(void *user, const uf_st_tensor *in, otensor *out)
{
    const reshape *r = user;
    if (strcmp(in->name, r->name) == 0) {
        uint64_t n = 1;
        for (int d = 0; d < r->ndim; d++)
            n *= (uint64_t)r->shape[d];
        assert_true(n <= in->numel);
        out->ndim = r->ndim;
        memcpy(out->shape, r->shape, sizeof out->shape);
    }
    return 1;
}

typedef struct retype {
    const char *name; /* NULL: every F32 tensor */
    uf_dtype dt;
} retype;

static int edit_retype(void *user, const uf_st_tensor *in, otensor *out)
{
    const retype *r = user;
    if (in->dtype == UF_DT_F32 && (!r->name || strcmp(in->name, r->name) == 0)) {
        out->owned = convert(in->data, in->numel, r->dt);
        out->data = out->owned;
        out->dt = r->dt;
    }
    return 1;
}

/* F32 tensors rounded through F16 or BF16 but stored as F32. */
static int edit_round(void *user, const uf_st_tensor *in, otensor *out)
{
    const uf_dtype *dt = user;
    if (in->dtype == UF_DT_F32) {
        out->owned = round_through(in->data, in->numel, *dt);
        out->data = out->owned;
    }
    return 1;
}

static int edit_prefix(void *user, const uf_st_tensor *in, otensor *out)
{
    const char *skip = user; /* a tensor left without the prefix, or NULL */
    if (!skip || strcmp(in->name, skip) != 0)
        snprintf(out->name, sizeof out->name, "model.%s", in->name);
    return 1;
}

typedef struct setval {
    const char *name;
    size_t n_idx;
    size_t idx[4];
    float val[4];
} setval;

/* Set elements of one F32 tensor. */
static int edit_setval(void *user, const uf_st_tensor *in, otensor *out)
{
    const setval *s = user;
    if (strcmp(in->name, s->name) == 0) {
        assert_int_equal(in->dtype, UF_DT_F32);
        float *d = malloc(sizeof(float) * in->numel);
        assert_non_null(d);
        memcpy(d, in->data, sizeof(float) * in->numel);
        for (size_t i = 0; i < s->n_idx; i++) {
            assert_true(s->idx[i] < in->numel);
            d[s->idx[i]] = s->val[i];
        }
        out->owned = d;
        out->data = d;
    }
    return 1;
}

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
        const uf_flow_stage *a = &m->stage[k], *b = &ref->stage[k];
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
        assert_memory_equal(m->ln_w[k], ref->ln_w[k], sizeof(float) * ln);
        assert_memory_equal(m->ln_b[k], ref->ln_b[k], sizeof(float) * ln);
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

/* ---- fixture ----------------------------------------------------------------------------- */


static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(tmpdir))
        return -1;
    tmp_path(g_base_path, sizeof g_base_path, "base.safetensors");
    uf_create_opts o = uf_create_opts_default();
    o.height = o.width = SIDE;
    o.perturb = 1; /* every parameter influences the output */
    o.seed = 7;
    uf_error err = {0};
    if (uf_model_create_random(&o, g_base_path, &err) != UF_OK ||
        uf_st_open(g_base_path, &g_base, &err) != UF_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    g_input = malloc(sizeof(float) * 3 * SIDE * SIDE);
    if (!g_input)
        return -1;
    uint32_t s = 12345;
    for (int i = 0; i < 3 * SIDE * SIDE; i++) {
        s = s * 1664525u + 1013904223u;
        g_input[i] = (float)((s >> 8) / 16777216.0 * 4.0 - 2.0);
    }
    uf_model *m = NULL;
    if (uf_model_load(g_base_path, &m, &err) != UF_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    run(m, &g_ref);
    uf_model_free(m);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free_outputs(&g_ref);
    free(g_input);
    uf_st_close(g_base);
    return ut_rmtree(tmpdir);
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
        cmocka_unit_test(test_config_missing),
        cmocka_unit_test(test_config_required),
        cmocka_unit_test(test_config_values),
        cmocka_unit_test(test_config_contradicts),
        cmocka_unit_test(test_not_permutation),
        cmocka_unit_test(test_model_prefix),
        cmocka_unit_test(test_actnorm),
        cmocka_unit_test(test_nonfinite_weights),
        cmocka_unit_test(test_unaligned),
        cmocka_unit_test(test_unsupported_backbone),
    };
    return cmocka_run_group_tests_name("loader", tests, setup, teardown);
}
