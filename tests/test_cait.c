/* test_cait.c — the mcait backbone (docs/uflow-math.md "mcait").
 *
 * 1. Block fixtures (tests/golden/cait, outputs of timm's own cait_s24_224 modules): the
 *    448 -> 224 bicubic resize, patch embedding, + pos_embed, blocks 0..2, final norm and the
 *    feature map, each within 1e-4, with 1, 2 and 3 threads and a batch of 2.
 * 2. A full mcait model (422 M parameters) generated at test time by uf_model_create_random
 *    (seeded) against tests/golden/mcait/expected.safetensors from the PyTorch reference
 *    (tools/uflow_ref.py mcait-expected).
 * 3. Loader errors: wrong input size, a missing block, a wrong head count, a truncated file. */
#include "util.h"
#include "uflow_train.h"

#include "models/backbones/cait.h"
#include "core/pool.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/uflow_test_cait_XXXXXX";

static void check(const char *what, const float *got, const float *ref, size_t n, double tol)
{
    double e = ut_max_abs(got, ref, n);
    print_message("  %-26s max|err| %.3g (tol %.3g)\n", what, e, tol);
    if (!(e <= tol))
        fail_msg("%s: %g > %g", what, e, tol);
}

/* ---- 1. block fixtures ----------------------------------------------------------------- */

typedef struct fixture {
    uf_st *w, *e;
    uf_cait c;
    uf_cait_block blk[3];
} fixture;

static const float *wt(const fixture *f, const char *name, size_t want)
{
    size_t n;
    const float *p = ut_f32(f->w, name, &n);
    if (n != want)
        fail_msg("fixture tensor '%s' has %zu elements, expected %zu", name, n, want);
    return p;
}

static void fixture_open(fixture *f)
{
    char dir[1024];
    ut_path(dir, sizeof dir, ut_golden_dir(), "cait");
    f->w = ut_open(dir, "cait_s24_first3_weights.safetensors");
    f->e = ut_open(dir, "cait_s24_first3_expected.safetensors");
    const size_t D = 384, H = 8;
    for (int i = 0; i < 3; i++) {
        uf_cait_block *k = &f->blk[i];
        char n[96];
#define W(field, key, size) (snprintf(n, sizeof n, "blocks.%d.%s", i, key), k->field = wt(f, n, size))
        W(gamma1, "gamma_1", D);
        W(gamma2, "gamma_2", D);
        W(ln1_w, "norm1.weight", D);
        W(ln1_b, "norm1.bias", D);
        W(qkv_w, "attn.qkv.weight", 3 * D * D);
        W(qkv_b, "attn.qkv.bias", 3 * D);
        W(proj_w, "attn.proj.weight", D * D);
        W(proj_b, "attn.proj.bias", D);
        W(pl_w, "attn.proj_l.weight", H * H);
        W(pl_b, "attn.proj_l.bias", H);
        W(pw_w, "attn.proj_w.weight", H * H);
        W(pw_b, "attn.proj_w.bias", H);
        W(ln2_w, "norm2.weight", D);
        W(ln2_b, "norm2.bias", D);
        W(fc1_w, "mlp.fc1.weight", 4 * D * D);
        W(fc1_b, "mlp.fc1.bias", 4 * D);
        W(fc2_w, "mlp.fc2.weight", 4 * D * D);
        W(fc2_b, "mlp.fc2.bias", D);
#undef W
    }
    f->c = (uf_cait){.D = 384, .heads = 8, .depth = 3, .grid = 14,
                     .patch_w = wt(f, "patch_embed.proj.weight", D * 3 * 256),
                     .patch_b = wt(f, "patch_embed.proj.bias", D),
                     .pos = wt(f, "pos_embed", 196 * D),
                     .blocks = f->blk,
                     .norm_w = wt(f, "norm.weight", D),
                     .norm_b = wt(f, "norm.bias", D)};
}

static void fixture_close(fixture *f)
{
    uf_st_close(f->w);
    uf_st_close(f->e);
}

/* An executor with nt threads and its per-thread attention scratch. */
typedef struct runner {
    uf_exec ex;
    float *scratch;
} runner;

static void runner_init(runner *r, const uf_cait *c, int nt, int B)
{
    uf_error err;
    uf_pool *pool = NULL;
    if (nt > 1)
        assert_int_equal(uf_pool_init(nt, &pool, &err), UF_OK);
    size_t cs = uf_cait_col_floats(c);
    r->ex = (uf_exec){.pool = pool, .nt = nt, .col = malloc(sizeof(float) * cs * nt), .col_stride = cs};
    r->scratch = malloc(sizeof(float) * uf_cait_scratch_floats(c, B));
    assert_non_null(r->ex.col);
    assert_non_null(r->scratch);
}

static void runner_free(runner *r)
{
    uf_pool_free(r->ex.pool);
    free(r->ex.col);
    free(r->scratch);
}

/* Compare every sample of a [B, n] result with the one reference sample. */
static void check_batch(const char *what, const float *got, const float *ref, int B, size_t n)
{
    for (int b = 0; b < B; b++) {
        char name[64];
        snprintf(name, sizeof name, "%s[%d]", what, b);
        check(name, got + (size_t)b * n, ref, n, 1e-4);
    }
}

static void run_fixture(int nt, int B)
{
    fixture f;
    fixture_open(&f);
    print_message(" %d thread(s), batch %d\n", nt, B);
    const uf_cait *c = &f.c;
    runner r;
    runner_init(&r, c, nt, B);
    uf_cait_bufs b = uf_cait_bufs_of(c, B, r.scratch);
    const size_t N = 196, D = 384, tok = N * D, img = 3 * 224 * 224;

    /* resize */
    float *small = malloc(sizeof(float) * img * B);
    const float *big = ut_f32(f.e, "image_448", NULL);
    for (int s = 0; s < B; s++)
        uf_resize_bicubic_ac(big, 3, 448, 448, small + s * img, 224, 224);
    check_batch("image_224", small, ut_f32(f.e, "image_224", NULL), B, img);

    /* patch embedding, without and with pos_embed, from the reference 224 image */
    float *in = malloc(sizeof(float) * img * B);
    for (int s = 0; s < B; s++)
        memcpy(in + s * img, ut_f32(f.e, "image_224", NULL), sizeof(float) * img);
    uf_cait_embed(&r.ex, c, in, B, 0, &b);
    check_batch("patch_embed_out", b.x, ut_f32(f.e, "patch_embed_out", NULL), B, tok);
    uf_cait_embed(&r.ex, c, in, B, 1, &b);
    check_batch("tokens_in", b.x, ut_f32(f.e, "tokens_in", NULL), B, tok);

    /* each block alone, from the reference input of that block */
    static const char *names[4] = {"tokens_in", "block0_out", "block1_out", "block2_out"};
    for (int l = 0; l < 3; l++) {
        for (int s = 0; s < B; s++)
            memcpy(b.x + s * tok, ut_f32(f.e, names[l], NULL), sizeof(float) * tok);
        uf_cait_blocks(&r.ex, c, l, l + 1, B, &b);
        check_batch(names[l + 1], b.x, ut_f32(f.e, names[l + 1], NULL), B, tok);
    }

    /* final norm from the reference block output */
    float *normed = malloc(sizeof(float) * tok * B), *map = malloc(sizeof(float) * tok * B);
    uf_cait_final(&r.ex, c, B, &b, normed, map);
    check_batch("norm_out", normed, ut_f32(f.e, "norm_out", NULL), B, tok);
    check_batch("features_after_3_blocks", map, ut_f32(f.e, "features_after_3_blocks", NULL), B, tok);

    /* the whole chain from the 448 image: resize, embed, 3 blocks, norm, map */
    memset(map, 0, sizeof(float) * tok * B);
    uf_cait_forward(&r.ex, c, small, B, r.scratch, map);
    check_batch("chain 448 -> features", map, ut_f32(f.e, "features_after_3_blocks", NULL), B, tok);

    free(small);
    free(in);
    free(normed);
    free(map);
    runner_free(&r);
    fixture_close(&f);
}

static void test_block_fixtures(void **state)
{
    (void)state;
    run_fixture(1, 1);
    run_fixture(2, 1);
    run_fixture(3, 2);   /* row shares that straddle the two samples */
}

/* ---- 2. the full model ------------------------------------------------------------------ */

/* Shared by the full-model and loader tests: one 1.6 GB model written once per run. */
static char model_path[1024];

#define MCAIT_SEED 1
#define MCAIT_INPUT_SEED 20251128ull

static void make_model(void)
{
    if (model_path[0])
        return;
    ut_path(model_path, sizeof model_path, tmpdir, "mcait.safetensors");
    uf_create_opts o = uf_create_opts_default();
    o.backbone = "mcait";
    o.height = o.width = 448;
    o.seed = MCAIT_SEED;
    o.perturb = 1;
    uf_error err;
    if (uf_model_create_random(&o, model_path, &err) != UF_OK)
        fail_msg("creating the mcait model: %s", err.msg);
}

/* tools/uflow_ref.py formula_input: u * 4 - 2, u = (splitmix64_i >> 40) / 2^24. */
static void formula_input(float *x, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t z = seed + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        x[i] = (float)((double)(z >> 40) / 16777216.0 * 4.0 - 2.0);
    }
}

/* Per-channel mean of v^k over hw pixels, for channels [0, C). */
static void chan_moment(const float *x, int C, size_t hw, int k, float *out)
{
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (size_t i = 0; i < hw; i++) {
            double v = x[(size_t)c * hw + i];
            s += k == 2 ? v * v : v;
        }
        out[c] = (float)(s / (double)hw);
    }
}

static void test_full_model(void **state)
{
    (void)state;
    make_model();
    uf_error err;
    uf_model *m;
    if (uf_model_load(model_path, &m, &err) != UF_OK)
        fail_msg("%s", err.msg);
    const uf_model_info *info = uf_model_get_info(m);
    assert_int_equal(info->backbone, UF_BACKBONE_MCAIT);
    assert_int_equal(info->n_params, 422100464); /* docs/uflow-math.md "Parameter names" */
    assert_int_equal(info->z_channels[0], 816);
    assert_int_equal(info->z_channels[1], 192);
    char dir[1024];
    ut_path(dir, sizeof dir, ut_golden_dir(), "mcait");
    uf_st *exp = ut_open(dir, "expected.safetensors");
    const char *sha = uf_st_meta(exp, "model_sha256_16");
    if (!sha || strcmp(sha, info->version) != 0)
        fail_msg("the generated model (version %s) is not the one the expected outputs were made "
                 "from (%s): the generator changed; regenerate tests/golden/mcait (see README)",
                 info->version, sha ? sha : "?");
    uf_ctx *ctx;
    uf_ctx_opts o = {.max_batch = 1, .threads = 2};
    assert_int_equal(uf_ctx_init(m, &o, &ctx, &err), UF_OK);
    size_t n = (size_t)3 * 448 * 448;
    float *x = malloc(sizeof(float) * n);
    formula_input(x, n, MCAIT_INPUT_SEED);
    uf_result r;
    assert_int_equal(uf_ctx_run(ctx, x, 1, &r, &err), UF_OK);

    /* features: the CaiTs' final LayerNorm outputs, O(1) */
    const size_t hw0 = 28 * 28, hw1 = 14 * 14;
    check("features.0 (first 32 ch)", r.features[0], ut_f32(exp, "features.0.first", NULL), 32 * hw0, 1e-4);
    check("features.1 (first 64 ch)", r.features[1], ut_f32(exp, "features.1.first", NULL), 64 * hw1, 1e-4);
    float mom[816];
    chan_moment(r.features[0], 768, hw0, 1, mom);
    check("features.0 channel means", mom, ut_f32(exp, "features.0.mean", NULL), 768, 2e-5);
    chan_moment(r.features[1], 384, hw1, 1, mom);
    check("features.1 channel means", mom, ut_f32(exp, "features.1.mean", NULL), 384, 2e-5);
    /* latents (docs/uflow-math.md "Test fixtures" tolerance: 1e-3 x max(1, max|z|)) */
    size_t nz;
    const float *z1 = ut_f32(exp, "z.1", &nz);
    assert_int_equal(nz, 192 * hw1);
    check("z.1", r.z[1], z1, nz, 1e-3 * fmax(1, ut_max_absval(z1, nz)));
    const float *z0 = ut_f32(exp, "z.0.first", &nz);
    check("z.0 (first 32 ch)", r.z[0], z0, nz, 1e-3 * fmax(1, ut_max_absval(z0, nz)));
    chan_moment(r.z[0], 816, hw0, 2, mom);
    const float *ms = ut_f32(exp, "z.0.meansq", NULL);
    for (int c = 0; c < 816; c++)
        if (!(fabs(mom[c] - ms[c]) <= 1e-3 * fmax(1, ms[c])))
            fail_msg("z.0 channel %d mean square %g, expected %g", c, mom[c], ms[c]);
    print_message("  z.0 channel mean squares  all 816 within 1e-3 relative\n");
    /* outputs */
    float ljd = ut_f32(exp, "log_jac_det", NULL)[0];
    print_message("  log_jac_det                %.2f vs %.2f (rel %.2g)\n", r.log_jac_det[0], ljd,
                  fabs(r.log_jac_det[0] - ljd) / fabs(ljd));
    assert_true(fabs(r.log_jac_det[0] - ljd) <= 1e-4 * fabs(ljd));
    check("anomaly_map", r.anomaly_map, ut_f32(exp, "anomaly_map", NULL), 448 * 448, 1e-4);
    check("pred_score", r.pred_score, ut_f32(exp, "pred_score", NULL), 1, 1e-4);

    /* In a batch of 2 (the image second, behind another one), the same numbers: the token
     * rows of the two samples are split over the threads differently. */
    float *map1 = malloc(sizeof(float) * 448 * 448), *f1 = malloc(sizeof(float) * 384 * hw1);
    memcpy(map1, r.anomaly_map, sizeof(float) * 448 * 448);
    memcpy(f1, r.features[1], sizeof(float) * 384 * hw1);
    float ljd1 = r.log_jac_det[0];
    uf_ctx_free(ctx);
    o.max_batch = 2;
    assert_int_equal(uf_ctx_init(m, &o, &ctx, &err), UF_OK);
    float *x2 = malloc(sizeof(float) * 2 * n);
    formula_input(x2, n, MCAIT_INPUT_SEED + 1);
    memcpy(x2 + n, x, sizeof(float) * n);
    assert_int_equal(uf_ctx_run(ctx, x2, 2, &r, &err), UF_OK);
    check("batch 2: anomaly_map[1]", r.anomaly_map + 448 * 448, map1, 448 * 448, 1e-5);
    check("batch 2: features.1[1]", r.features[1] + 384 * hw1, f1, 384 * hw1, 1e-5);
    assert_true(fabs(r.log_jac_det[1] - ljd1) <= 1e-5 * fabs(ljd1));
    assert_true(fabs(r.log_jac_det[0] - ljd1) > 1.0); /* the other image differs */
    free(x2);
    free(map1);
    free(f1);
    free(x);
    uf_st_close(exp);
    uf_ctx_free(ctx);
    uf_model_free(m);
}

/* ---- 3. loader errors ------------------------------------------------------------------- */

/* Rewrite the JSON header of a safetensors file in place (compact, padded with spaces to its
 * old length) and return the old header so that header_restore can put it back: the 1.6 GB
 * data section is never copied. */
typedef void (*header_fn)(json_t *h, void *arg);

static char *header_edit(const char *path, header_fn fn, void *arg, size_t *len)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    uint8_t l8[8];
    assert_int_equal(fread(l8, 1, 8, f), 8);
    size_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | l8[i];
    char *old = malloc(n);
    assert_int_equal(fread(old, 1, n, f), n);
    json_error_t je;
    json_t *h = json_loadb(old, n, 0, &je);
    assert_non_null(h);
    fn(h, arg);
    char *txt = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    size_t tl = strlen(txt);
    assert_true(tl <= n);
    char *hdr = malloc(n);
    memcpy(hdr, txt, tl);
    memset(hdr + tl, ' ', n - tl);
    free(txt);
    assert_int_equal(fseek(f, 8, SEEK_SET), 0);
    assert_int_equal(fwrite(hdr, 1, n, f), n);
    free(hdr);
    assert_int_equal(fclose(f), 0);
    *len = n;
    return old;
}

static void header_restore(const char *path, char *old, size_t n)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 8, SEEK_SET), 0);
    assert_int_equal(fwrite(old, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    free(old);
}

/* Rename every key starting with `from` to start with `to` (same length). */
typedef struct rename_arg {
    const char *from, *to;
} rename_arg;

static void rename_keys(json_t *h, void *arg)
{
    const rename_arg *a = arg;
    size_t lf = strlen(a->from);
    const char *k;
    json_t *v;
    void *tmp;
    json_t *moved = json_object();
    json_object_foreach_safe(h, tmp, k, v) {
        if (strncmp(k, a->from, lf) == 0) {
            char nk[256];
            snprintf(nk, sizeof nk, "%s%s", a->to, k + lf);
            json_object_set(moved, nk, v);
            json_object_del(h, k);
        }
    }
    json_object_update(h, moved);
    json_decref(moved);
}

/* Make block 0 of extractor1 look like a 12-head CaiT: proj_l/proj_w of shape [12, 12]. */
static void twelve_heads(json_t *h, void *arg)
{
    (void)arg;
    static const char *names[4] = {"attn.proj_l.weight", "attn.proj_l.bias", "attn.proj_w.weight",
                                   "attn.proj_w.bias"};
    for (int i = 0; i < 4; i++) {
        char k[128];
        snprintf(k, sizeof k, "feature_extractor.extractor1.blocks.0.%s", names[i]);
        json_t *t = json_object_get(h, k);
        assert_non_null(t);
        json_int_t b = json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0));
        int mat = i % 2 == 0;
        json_object_set_new(t, "shape", mat ? json_pack("[i,i]", 12, 12) : json_pack("[i]", 12));
        json_object_set_new(t, "data_offsets", json_pack("[I,I]", b, b + (mat ? 144 : 12) * 4));
    }
}

static void expect_load_error(const char *what, uf_status want, const char *needle1, const char *needle2)
{
    uf_model *m = NULL;
    uf_error err = {0};
    uf_status s = uf_model_load(model_path, &m, &err);
    print_message("  %-22s -> %s: %s\n", what, uf_status_str(s), err.msg);
    assert_null(m);
    assert_int_equal(s, want);
    assert_non_null(strstr(err.msg, needle1));
    if (needle2)
        assert_non_null(strstr(err.msg, needle2));
}

static void test_loader_errors(void **state)
{
    (void)state;
    make_model();
    size_t n;
    char *old;
    rename_arg ra = {"feature_extractor.extractor1.blocks.40.", "feature_extractor.extractor1.blocks.4x."};
    old = header_edit(model_path, rename_keys, &ra, &n);
    expect_load_error("missing block 40", UF_ERR_TENSOR,
                      "missing tensor 'feature_extractor.extractor1.blocks.40.gamma_1'", "cait_m48_448");
    header_restore(model_path, old, n);

    ra = (rename_arg){"feature_extractor.extractor1.blocks.47.", "feature_extractor.extractor1.blocks.4y."};
    old = header_edit(model_path, rename_keys, &ra, &n);   /* unused, but part of the model */
    expect_load_error("truncated after 47", UF_ERR_TENSOR,
                      "missing tensor 'feature_extractor.extractor1.blocks.47.gamma_1'", NULL);
    header_restore(model_path, old, n);

    ra = (rename_arg){"feature_extractor.extractor2.head.", "feature_extractor.extractor2.hea_."};
    old = header_edit(model_path, rename_keys, &ra, &n);
    expect_load_error("no head", UF_ERR_TENSOR, "missing tensor 'feature_extractor.extractor2.head.weight'",
                      "cait_s24_224");
    header_restore(model_path, old, n);

    old = header_edit(model_path, twelve_heads, NULL, &n);
    expect_load_error("12 heads", UF_ERR_TENSOR, "blocks.0.attn.proj_l.weight' has shape [12, 12]",
                      "16 heads");
    header_restore(model_path, old, n);

    /* the class token of extractor2 gone */
    ra = (rename_arg){"feature_extractor.extractor2.cls_token", "feature_extractor.extractor2.cls_tokeX"};
    old = header_edit(model_path, rename_keys, &ra, &n);
    expect_load_error("renamed cls_token", UF_ERR_TENSOR,
                      "missing tensor 'feature_extractor.extractor2.cls_token'", NULL);
    header_restore(model_path, old, n);

    /* the restored file loads again */
    uf_model *m;
    uf_error err;
    assert_int_equal(uf_model_load(model_path, &m, &err), UF_OK);
    uf_model_free(m);
}

static void test_input_size(void **state)
{
    (void)state;
    uf_create_opts o = uf_create_opts_default();
    o.backbone = "mcait";
    o.height = o.width = 224;
    char p[1024];
    ut_path(p, sizeof p, tmpdir, "mcait224.safetensors");
    uf_error err;
    assert_int_equal(uf_model_create_random(&o, p, &err), UF_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "448x448"));
    /* a file claiming mcait at 224 (no tensors needed: the config is checked first) */
    uf_st_writer *w = uf_st_writer_new();
    assert_int_equal(uf_st_writer_meta(w, "config",
                                       "{\"backbone\":\"mcait\",\"input_size\":[224,224],"
                                       "\"flow_steps\":4,\"affine_clamp\":2.0,"
                                       "\"affine_subnet_channels_ratio\":1.0,\"permute_soft\":false}",
                                       &err), UF_OK);
    assert_int_equal(uf_st_writer_save(w, p, &err), UF_OK);
    uf_st_writer_free(w);
    uf_model *m;
    assert_int_equal(uf_model_load(p, &m, &err), UF_ERR_CONFIG);
    print_message("  mcait @224 -> %s\n", err.msg);
    assert_non_null(strstr(err.msg, "requires input_size 448x448"));
    unlink(p);
}

/* Training on mcait features (issue 7): only the flow trains (no feature LayerNorms); the
 * trainer's forward pass on cached features gives the loss the inference pass implies; an
 * epoch lowers it. */
static void test_train_mcait(void **state)
{
    (void)state;
    make_model();
    uf_error err;
    uf_model *m;
    assert_int_equal(uf_model_load(model_path, &m, &err), UF_OK);
    size_t n = (size_t)3 * 448 * 448;
    float *x = malloc(sizeof(float) * 2 * n);
    formula_input(x, n, MCAIT_INPUT_SEED);
    formula_input(x + n, n, MCAIT_INPUT_SEED + 1);
    uf_ctx *ctx;
    uf_ctx_opts o = {.max_batch = 2, .threads = 2};
    assert_int_equal(uf_ctx_init(m, &o, &ctx, &err), UF_OK);
    uf_result r;
    assert_int_equal(uf_ctx_run(ctx, x, 2, &r, &err), UF_OK);
    double want = 0;
    for (int b = 0; b < 2; b++) {
        for (int k = 0; k < r.n_scales; k++) {
            size_t zn = (size_t)r.z_channels[k] * r.z_height[k] * r.z_width[k];
            const float *z = r.z[k] + (size_t)b * zn;
            for (size_t i = 0; i < zn; i++)
                want += 0.5 * z[i] * z[i] / 2;
        }
        want -= r.log_jac_det[b] / 2.0;
    }
    uf_ctx_free(ctx);
    uf_train_opts to = uf_train_opts_default();
    to.batch_size = 2;
    to.threads = 2;
    to.lr = 1e-5; /* Adam's first steps move every weight by ~lr: keep them small on this
                   * perturbed 20M-parameter flow so a descent step is a descent */
    uf_trainer *t;
    assert_int_equal(uf_trainer_new(m, &to, &t, &err), UF_OK);
    assert_int_equal(uf_trainer_n_tensors(t), 2 * 4 * 6);
    for (int i = 0; i < uf_trainer_n_tensors(t); i++)
        assert_null(strstr(uf_trainer_tensor_name(t, i), "feature_normalizations"));
    assert_int_equal(uf_trainer_add_images(t, x, 2, &err), UF_OK);
    int idx[2] = {0, 1};
    double l0, l1, l2;
    assert_int_equal(uf_trainer_grad(t, idx, 2, &l0, &err), UF_OK);
    print_message("  trainer loss %.8g, from inference z/ljd %.8g\n", l0, want);
    assert_true(fabs(l0 - want) <= 1e-5 * fabs(want));
    assert_int_equal(uf_trainer_epoch(t, NULL, NULL, &l1, &err), UF_OK);
    assert_int_equal(uf_trainer_epoch(t, NULL, NULL, &l2, &err), UF_OK);
    print_message("  epochs: %.8g -> %.8g\n", l1, l2);
    assert_true(l2 < l1);
    uf_trainer_free(t);
    uf_model_free(m);
    free(x);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_fixtures),
        cmocka_unit_test(test_input_size),
        cmocka_unit_test(test_full_model),
        cmocka_unit_test(test_train_mcait),
        cmocka_unit_test(test_loader_errors),
    };
    int rc = cmocka_run_group_tests_name("cait", tests, NULL, NULL);
    if (model_path[0])
        unlink(model_path);
    rmdir(tmpdir);
    return rc;
}
