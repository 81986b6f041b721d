/* loader_fixture.c — see loader_fixture.h. */
#include "loader_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char tmpdir[] = "/tmp/uflow_test_loader_XXXXXX";
char g_base_path[1024];
uf_st *g_base;          /* the valid model, mapped */
float *g_input;         /* [3, SIDE, SIDE] */

outputs g_ref;

void tmp_path(char *buf, size_t n, const char *file)
{ ut_path(buf, n, tmpdir, file); }

void assert_msg_has(const uf_error *err, const char *what)
{
    if (what && !strstr(err->msg, what))
        fail_msg("error message \"%s\" does not contain \"%s\"", err->msg, what);
}

/* ---- float conversions (the test's own, independent of model.c) ------------------------ */

uint16_t f32_to_f16(float f)
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

float f16_to_f32(uint16_t h)
{
    int e = (h >> 10) & 31, f = h & 1023;
    float v = e == 0 ? ldexpf((float)f, -24) : e == 31 ? (f ? NAN : INFINITY)
                                                       : ldexpf((float)(1024 + f), e - 25);
    return (h & 0x8000) ? -v : v;
}

uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

float bf16_to_f32(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* n floats (unaligned source) as dtype dt, malloc'd. */
void *convert(const void *src, size_t n, uf_dtype dt)
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
float *round_through(const void *src, size_t n, uf_dtype dt)
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


/* Called for each tensor of the base model in file order; out starts as a copy. 0 drops it. */



void rewrite(const char *dst, const rewrite_opts *o)
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

void rewrite_fn(const char *dst, edit_fn fn, void *user)
{
    rewrite_opts o = {.fn = fn, .user = user};
    rewrite(dst, &o);
}

void rewrite_config(const char *dst, const char *config)
{
    rewrite_opts o = {.meta = META_CONFIG, .config = config};
    rewrite(dst, &o);
}

/* The base config with `key` set to the JSON text `value` (NULL: removed); malloc'd. */
char *config_with(const char *key, const char *value)
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

void expect_fail(const char *path, uf_status status, const char *what, const char *what2)
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

uf_model *load_ok(const char *path)
{
    uf_error err = {0};
    uf_model *m = NULL;
    if (uf_model_load(path, &m, &err) != UF_OK)
        fail_msg("loading %s: %s", path, err.msg);
    return m;
}

void run(const uf_model *m, outputs *o)
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

void free_outputs(outputs *o)
{
    for (int k = 0; k < o->n_scales; k++)
        free(o->z[k]);
}

/* Load, run and compare with the base model's outputs: max abs error of the map, the z and
 * the score within tol x max(1, |ref|); tol 0 means bit-identical. */
void expect_same_outputs(const char *path, double tol, const char *what)
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

int edit_drop(void *user, const uf_st_tensor *in, otensor *out)
{
    (void)out;
    return strcmp(in->name, (const char *)user) != 0;
}

int edit_drop_nbt(void *user, const uf_st_tensor *in, otensor *out)
{
    (void)user;
    (void)out;
    return strstr(in->name, ".num_batches_tracked") == NULL;
}


/* New shape; the data is the original's prefix (the new shape must not need more). */
int edit_reshape(void *user, const uf_st_tensor *in, otensor *out)
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


int edit_retype(void *user, const uf_st_tensor *in, otensor *out)
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
int edit_round(void *user, const uf_st_tensor *in, otensor *out)
{
    const uf_dtype *dt = user;
    if (in->dtype == UF_DT_F32) {
        out->owned = round_through(in->data, in->numel, *dt);
        out->data = out->owned;
    }
    return 1;
}

int edit_prefix(void *user, const uf_st_tensor *in, otensor *out)
{
    const char *skip = user; /* a tensor left without the prefix, or NULL */
    if (!skip || strcmp(in->name, skip) != 0)
        snprintf(out->name, sizeof out->name, "model.%s", in->name);
    return 1;
}


/* Set elements of one F32 tensor. */
int edit_setval(void *user, const uf_st_tensor *in, otensor *out)
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

/* ---- fixture ----------------------------------------------------------------------------- */


int setup(void **state)
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

int teardown(void **state)
{
    (void)state;
    free_outputs(&g_ref);
    free(g_input);
    uf_st_close(g_base);
    return ut_rmtree(tmpdir);
}

