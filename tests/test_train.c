/* test_train.c — the trainer: gradients and Adam steps against the PyTorch reference
 * (tests/golden/train, made by tools/train_ref.py) for both losses, finite-difference
 * checks of every parameter kind (hard and soft permutations), checkpoint/resume, and the
 * on-disk feature cache. */
#include "util.h"
#include "uflow_train.h"

#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/uflow_test_train_XXXXXX";

static uf_model *make_model(const char *file, int h, int w, int steps, int soft, double ratio,
                            uint64_t seed)
{
    char path[1024];
    ut_path(path, sizeof path, tmpdir, file);
    uf_create_opts o = uf_create_opts_default();
    o.height = h;
    o.width = w;
    o.flow_steps = steps;
    o.permute_soft = soft;
    o.subnet_ratio = ratio;
    o.perturb = 1;
    o.seed = seed;
    uf_error err;
    assert_int_equal(uf_model_create_random(&o, path, &err), UF_OK);
    uf_model *m;
    if (uf_model_load(path, &m, &err) != UF_OK)
        fail_msg("%s", err.msg);
    return m;
}

static uf_trainer *make_trainer(const uf_model *m, uf_loss_kind loss, int batch, int threads)
{
    uf_train_opts o = uf_train_opts_default();
    o.loss = loss;
    o.batch_size = batch;
    o.threads = threads;
    o.lr_total_iters = 4;
    uf_trainer *t;
    uf_error err;
    if (uf_trainer_new(m, &o, &t, &err) != UF_OK)
        fail_msg("%s", err.msg);
    return t;
}

static float *random_input(const uf_model *m, int n, uint64_t seed)
{
    const uf_model_info *info = uf_model_get_info(m);
    size_t len = (size_t)n * 3 * info->height * info->width;
    float *x = malloc(sizeof(float) * len);
    uint64_t s = seed;
    for (size_t i = 0; i < len; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 40) / 16777216.0 * 4.0 - 2.0);
    }
    return x;
}

static double f64_at(const uf_st *st, const char *name, int i)
{
    const uf_st_tensor *t = uf_st_find(st, name);
    if (!t || t->dtype != UF_DT_F64 || (int)t->numel <= i)
        fail_msg("fixture tensor %s missing", name);
    double v;
    memcpy(&v, (const char *)t->data + 8 * i, 8);
    return v;
}

/* Compare a trainer tensor with the fixture's sample (idx.<T>) and L2 norm. */
static double cmp_sampled(const uf_st *fx, const char *kind, const char *what, const char *name,
                          const float *got, size_t n)
{
    char key[256];
    snprintf(key, sizeof key, "idx.%s", name);
    const uf_st_tensor *it = uf_st_find(fx, key);
    assert_non_null(it);
    snprintf(key, sizeof key, "%s.%s.%s", what, kind, name);
    size_t ns;
    const float *ref = ut_f32(fx, key, &ns);
    assert_int_equal(ns, it->numel);
    double mx = 0, e = 0;
    for (size_t i = 0; i < ns; i++) {
        int64_t ix;
        memcpy(&ix, (const char *)it->data + 8 * i, 8);
        assert_true(ix >= 0 && (size_t)ix < n);
        e = fmax(e, fabs((double)got[ix] - ref[i]));
        mx = fmax(mx, fabs(ref[i]));
    }
    double nrm = 0;
    for (size_t i = 0; i < n; i++)
        nrm += (double)got[i] * got[i];
    snprintf(key, sizeof key, "%snorm.%s.%s", what, kind, name);
    /* relative to the tensor's scale: the larger of the sample's peak and its RMS (samples of
     * a 3x3 conv on a 1x1 map hit mostly padding taps, whose gradients are exactly 0) */
    double rn = f64_at(fx, key, 0), rel = e / fmax(fmax(mx, rn / sqrt((double)n)), 1e-30);
    double nrel = fabs(sqrt(nrm) - rn) / fmax(rn, 1e-30);
    return fmax(rel, nrel);
}

/* SHA-256 of a safetensors file's data section (what tools/train_ref.py records). */
static char *data_sha256(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t len8[8];
    assert_int_equal(fread(len8, 1, 8, f), 8);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | len8[i];
    assert_int_equal(fseek(f, (long)(8 + hl), SEEK_SET), 0);
    GChecksum *ck = g_checksum_new(G_CHECKSUM_SHA256);
    uint8_t buf[65536];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, f)) > 0)
        g_checksum_update(ck, buf, (gssize)r);
    fclose(f);
    char *hex = strdup(g_checksum_get_string(ck));
    g_checksum_free(ck);
    return hex;
}

typedef struct fx_cfg {
    const char *fixture;
    int h, w, steps, soft, batch;
    double ratio;
    uint64_t seed;
} fx_cfg;

/* The models the fixtures were made from (`uflow create --perturb` with these options). */
static const fx_cfg FX_HARD = {"train/expected.safetensors", 32, 48, 2, 0, 3, 1.0, 11};
static const fx_cfg FX_SOFT = {"train/expected_soft.safetensors", 16, 16, 3, 1, 2, 0.5, 6};

static void fixture_case(const fx_cfg *c, uf_loss_kind kind, const char *kname)
{
    uf_model *m = make_model("fx.safetensors", c->h, c->w, c->steps, c->soft, c->ratio, c->seed);
    uf_st *fx = ut_open(ut_golden_dir(), c->fixture);
    const char *sha = uf_st_meta(fx, "model_data_sha256");
    assert_non_null(sha);
    char mp[1024];
    ut_path(mp, sizeof mp, tmpdir, "fx.safetensors");
    char *mine = data_sha256(mp);
    if (strcmp(sha, mine) != 0)
        fail_msg("the regenerated model's tensors differ from the fixture's (%s vs %s)", mine, sha);
    free(mine);
    size_t nin;
    const float *x = ut_f32(fx, "input", &nin);
    int B = c->batch;
    uf_trainer *t = make_trainer(m, kind, B, 2);
    uf_error err;
    assert_int_equal(uf_trainer_add_images(t, x, B, &err), UF_OK);
    int idx[3] = {0, 1, 2};
    double loss;
    assert_int_equal(nin, (size_t)B * 3 * c->h * c->w);
    assert_int_equal(uf_trainer_grad(t, idx, B, &loss, &err), UF_OK);
    char key[128];
    snprintf(key, sizeof key, "losses.%s", kname);
    double l0 = f64_at(fx, key, 0);
    print_message("  %s: loss %.8g (torch %.8g, rel %.2g)\n", kname, loss, l0, fabs(loss - l0) / fabs(l0));
    assert_true(fabs(loss - l0) <= 1e-4 * fabs(l0));
    double worst = 0;
    const char *wname = "";
    for (int i = 0; i < uf_trainer_n_tensors(t); i++) {
        const char *name = uf_trainer_tensor_name(t, i);
        size_t n;
        const float *g = uf_trainer_tensor_grad(t, name, &n);
        double e = cmp_sampled(fx, kname, "grad", name, g, n);
        if (e > worst)
            worst = e, wname = name;
    }
    print_message("  %s: worst gradient rel err %.3g (%s) over %d tensors\n", kname, worst, wname,
                  uf_trainer_n_tensors(t));
    assert_true(worst <= 1e-4);
    for (int e = 0; e < 3; e++) {
        assert_int_equal(uf_trainer_epoch(t, NULL, NULL, &loss, &err), UF_OK);
        double le = f64_at(fx, key, e);
        assert_true(fabs(loss - le) <= 1e-4 * fabs(le));
    }
    worst = 0;
    for (int i = 0; i < uf_trainer_n_tensors(t); i++) {
        const char *name = uf_trainer_tensor_name(t, i);
        size_t n;
        float *p = uf_trainer_tensor(t, name, &n);
        double e = cmp_sampled(fx, kname, "after", name, p, n);
        if (e > worst)
            worst = e, wname = name;
    }
    print_message("  %s: after 3 Adam steps worst param rel err %.3g (%s)\n", kname, worst, wname);
    assert_true(worst <= 1e-4);
    uf_trainer_free(t);
    uf_st_close(fx);
    uf_model_free(m);
}

static void test_vs_torch_paper(void **s)
{
    (void)s;
    fixture_case(&FX_HARD, UF_LOSS_PAPER, "paper");
    fixture_case(&FX_SOFT, UF_LOSS_PAPER, "paper");
}

static void test_vs_torch_anomalib(void **s)
{
    (void)s;
    fixture_case(&FX_HARD, UF_LOSS_ANOMALIB, "anomalib");
    fixture_case(&FX_SOFT, UF_LOSS_ANOMALIB, "anomalib");
}

/* Central differences on the float32 loss, for the element of largest gradient in a sample
 * of each tensor. The loss is a sum of thousands of float32 terms and ReLU kinks sit inside
 * any step: 5 % is what a float32 difference quotient can promise here; wrong formulas
 * (a missing 0.1, a sign, a transposed weight) are off by far more. The exact check is the
 * PyTorch comparison above. */
static void fd_check(const uf_model *m, uf_loss_kind kind)
{
    int B = 2;
    uf_trainer *t = make_trainer(m, kind, B, 1);
    float *x = random_input(m, B, 77);
    uf_error err;
    assert_int_equal(uf_trainer_add_images(t, x, B, &err), UF_OK);
    int idx[2] = {0, 1};
    double l0;
    assert_int_equal(uf_trainer_grad(t, idx, B, &l0, &err), UF_OK);
    int checked = 0;
    double worst = 0;
    const char *wname = "";
    for (int i = 0; i < uf_trainer_n_tensors(t); i++) {
        const char *name = uf_trainer_tensor_name(t, i);
        size_t n;
        const float *g = uf_trainer_tensor_grad(t, name, &n);
        float *p = uf_trainer_tensor(t, name, &n);
        size_t best = 0;
        for (size_t q = 0; q < n; q += 1 + n / 512)
            if (fabsf(g[q]) > fabsf(g[best]))
                best = q;
        double ga = g[best];
        float p0 = p[best], h = 2e-3f * fmaxf(1.f, fabsf(p0));
        double d[2];
        for (int r = 0; r < 2; r++) { /* central differences at h and 2h, then Richardson */
            float hh = r ? 2.f * h : h;
            double lp, lm;
            p[best] = p0 + hh;
            assert_int_equal(uf_trainer_eval_loss(t, 0, B, &lp, &err), UF_OK);
            p[best] = p0 - hh;
            assert_int_equal(uf_trainer_eval_loss(t, 0, B, &lm, &err), UF_OK);
            p[best] = p0;
            d[r] = (lp - lm) / ((double)(p0 + hh) - (double)(p0 - hh));
        }
        double fd = (4.0 * d[0] - d[1]) / 3.0;
        double rel = fabs(fd - ga) / fmax(fabs(ga), 1e-3 * fabs(l0));
        if (rel > worst)
            worst = rel, wname = name;
        if (rel > 5e-2)
            fail_msg("%s[%zu]: analytic %.6g vs finite difference %.6g (rel %.3g)", name, best, ga,
                     fd, rel);
        checked++;
    }
    print_message("  %d tensors, worst rel err %.3g (%s)\n", checked, worst, wname);
    assert_true(checked > 10);
    free(x);
    uf_trainer_free(t);
}

static void test_finite_differences(void **s)
{
    (void)s;
    uf_model *m = make_model("fd.safetensors", 32, 32, 2, 0, 0.5, 5);
    fd_check(m, UF_LOSS_PAPER);
    fd_check(m, UF_LOSS_ANOMALIB);
    uf_model_free(m);
    m = make_model("fds.safetensors", 32, 32, 3, 1, 1.0, 6); /* soft permutation, odd steps */
    fd_check(m, UF_LOSS_PAPER);
    uf_model_free(m);
}

/* Checkpoint after one epoch, resume in a new trainer: the second epoch is bit-identical. */
static void test_resume(void **s)
{
    (void)s;
    uf_model *m = make_model("rs.safetensors", 32, 32, 2, 0, 1.0, 9);
    float *x = random_input(m, 5, 3);
    uf_error err;
    uf_trainer *a = make_trainer(m, UF_LOSS_PAPER, 2, 2);
    assert_int_equal(uf_trainer_add_images(a, x, 5, &err), UF_OK);
    double la, lb;
    assert_int_equal(uf_trainer_epoch(a, NULL, NULL, &la, &err), UF_OK);
    char mp[1024], sp[1024];
    ut_path(mp, sizeof mp, tmpdir, "ckpt.safetensors");
    ut_path(sp, sizeof sp, tmpdir, "ckpt.state.safetensors");
    assert_int_equal(uf_trainer_save(a, mp, "{\"training\":{\"epochs\":1}}", &err), UF_OK);
    assert_int_equal(uf_trainer_save_state(a, sp, &err), UF_OK);
    assert_int_equal(uf_trainer_epoch(a, NULL, NULL, &la, &err), UF_OK);

    uf_model *m2;
    assert_int_equal(uf_model_load(mp, &m2, &err), UF_OK);
    assert_non_null(strstr(uf_model_get_info(m2)->config_json, "params_sha256"));
    assert_non_null(strstr(uf_model_get_info(m2)->config_json, "\"training\""));
    uf_trainer *b = make_trainer(m2, UF_LOSS_PAPER, 2, 2);
    assert_int_equal(uf_trainer_load_state(b, sp, &err), UF_OK);
    assert_int_equal(uf_trainer_epochs_done(b), 1);
    assert_int_equal(uf_trainer_add_images(b, x, 5, &err), UF_OK);
    assert_int_equal(uf_trainer_epoch(b, NULL, NULL, &lb, &err), UF_OK);
    assert_true(la == lb);
    for (int i = 0; i < uf_trainer_n_tensors(a); i++) {
        const char *name = uf_trainer_tensor_name(a, i);
        size_t n;
        const float *pa = uf_trainer_tensor(a, name, &n), *pb = uf_trainer_tensor(b, name, &n);
        assert_memory_equal(pa, pb, sizeof(float) * n);
    }
    /* a state file does not fit another model's parameters */
    uf_trainer *c = make_trainer(m, UF_LOSS_PAPER, 2, 2);
    assert_int_equal(uf_trainer_load_state(c, sp, &err), UF_ERR_ARG);
    assert_non_null(strstr(err.msg, "other parameters"));
    assert_int_equal(uf_trainer_load_state(c, mp, &err), UF_ERR_FORMAT);
    uf_trainer_free(a);
    uf_trainer_free(b);
    uf_trainer_free(c);
    uf_model_free(m2);
    uf_model_free(m);
    free(x);
}

/* Features spilled to a file give the same gradients as features in RAM. */
static void test_disk_cache(void **s)
{
    (void)s;
    uf_model *m = make_model("dc.safetensors", 32, 32, 2, 0, 1.0, 4);
    float *x = random_input(m, 4, 8);
    uf_error err;
    uf_trainer *a = make_trainer(m, UF_LOSS_PAPER, 4, 2);
    uf_train_opts o = uf_train_opts_default();
    o.batch_size = 4;
    o.threads = 2;
    o.cache_mem_limit = 1;
    o.cache_dir = tmpdir;
    uf_trainer *b;
    assert_int_equal(uf_trainer_new(m, &o, &b, &err), UF_OK);
    assert_int_equal(uf_trainer_add_images(a, x, 4, &err), UF_OK);
    assert_int_equal(uf_trainer_add_images(b, x, 4, &err), UF_OK);
    int disk_a, disk_b;
    assert_true(uf_trainer_cache_bytes(a, &disk_a) == uf_trainer_cache_bytes(b, &disk_b));
    assert_false(disk_a);
    assert_true(disk_b);
    int idx[4] = {3, 1, 0, 2};
    double la, lb;
    assert_int_equal(uf_trainer_grad(a, idx, 4, &la, &err), UF_OK);
    assert_int_equal(uf_trainer_grad(b, idx, 4, &lb, &err), UF_OK);
    assert_true(la == lb);
    for (int i = 0; i < uf_trainer_n_tensors(a); i++) {
        const char *name = uf_trainer_tensor_name(a, i);
        size_t n;
        const float *ga = uf_trainer_tensor_grad(a, name, &n), *gb = uf_trainer_tensor_grad(b, name, &n);
        assert_memory_equal(ga, gb, sizeof(float) * n);
    }
    /* bad arguments are errors, not crashes */
    int bad[1] = {4};
    assert_int_equal(uf_trainer_grad(a, bad, 1, &la, &err), UF_ERR_ARG);
    o.batch_size = 0;
    uf_trainer *c;
    assert_int_equal(uf_trainer_new(m, &o, &c, &err), UF_ERR_ARG);
    uf_trainer_free(a);
    uf_trainer_free(b);
    uf_model_free(m);
    free(x);
}

/* The trainer's forward pass on cached features gives the loss that the inference pass's z
 * and log-det imply (both losses, soft permutation, batch 3). */
static void test_matches_inference(void **s)
{
    (void)s;
    uf_model *m = make_model("mi.safetensors", 32, 48, 3, 1, 0.5, 15);
    float *x = random_input(m, 3, 31);
    uf_error err;
    uf_ctx *ctx;
    uf_ctx_opts co = {.max_batch = 3, .threads = 2};
    assert_int_equal(uf_ctx_init(m, &co, &ctx, &err), UF_OK);
    uf_result r;
    assert_int_equal(uf_ctx_run(ctx, x, 3, &r, &err), UF_OK);
    double zz = 0, lj = 0;
    for (int k = 0; k < r.n_scales; k++) {
        size_t zn = (size_t)3 * r.z_channels[k] * r.z_height[k] * r.z_width[k];
        for (size_t i = 0; i < zn; i++)
            zz += 0.5 * r.z[k][i] * r.z[k][i];
    }
    for (int b = 0; b < 3; b++)
        lj += r.log_jac_det[b];
    double want[2] = {(zz - lj) / 3, zz - lj / 3};
    for (int kind = 0; kind < 2; kind++) {
        uf_trainer *t = make_trainer(m, kind ? UF_LOSS_ANOMALIB : UF_LOSS_PAPER, 3, 2);
        assert_int_equal(uf_trainer_add_images(t, x, 3, &err), UF_OK);
        double l;
        assert_int_equal(uf_trainer_eval_loss(t, 0, 3, &l, &err), UF_OK);
        print_message("  %s: trainer %.9g, inference %.9g\n", kind ? "anomalib" : "paper", l, want[kind]);
        assert_true(fabs(l - want[kind]) <= 1e-5 * fabs(want[kind]));
        uf_trainer_free(t);
    }
    uf_ctx_free(ctx);
    uf_model_free(m);
    free(x);
}

/* A few epochs on fixed images lower the loss. */
static void test_loss_decreases(void **s)
{
    (void)s;
    uf_model *m = make_model("ld.safetensors", 32, 32, 2, 0, 1.0, 12);
    float *x = random_input(m, 8, 21);
    uf_error err;
    uf_trainer *t = make_trainer(m, UF_LOSS_PAPER, 4, 2);
    assert_int_equal(uf_trainer_add_images(t, x, 8, &err), UF_OK);
    double first = 0, last = 0;
    for (int e = 0; e < 8; e++) {
        double l;
        assert_int_equal(uf_trainer_epoch(t, NULL, NULL, &l, &err), UF_OK);
        if (e == 0)
            first = l;
        last = l;
    }
    print_message("  loss %.6g -> %.6g over 8 epochs\n", first, last);
    assert_true(last < 0.9 * first);
    uf_trainer_free(t);
    uf_model_free(m);
    free(x);
}

int main(void)
{
    if (!mkdtemp(tmpdir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vs_torch_paper),   cmocka_unit_test(test_vs_torch_anomalib),
        cmocka_unit_test(test_finite_differences), cmocka_unit_test(test_resume),
        cmocka_unit_test(test_disk_cache),       cmocka_unit_test(test_loss_decreases),
        cmocka_unit_test(test_matches_inference),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ut_rmtree(tmpdir);
    return rc;
}
