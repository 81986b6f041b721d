/* test_cli.c — the `uflow` command line as a user runs it: the infer contract (file names,
 * tensor names, shapes, values against anomalib's outputs), predict's JSON lines and PNGs,
 * inspect, bench, create, and exit codes for bad input. argv[1] is the uflow binary. */
#include "image_craft.h"
#include "util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *uflow;
static char tmpdir[] = "/tmp/uflow_test_cli_XXXXXX";

static void tmp(char *buf, size_t n, const char *file) { ut_path(buf, n, tmpdir, file); }

static void golden_model(char *buf, size_t n) { ut_path(buf, n, ut_golden_dir(), "resnet18_256_s4.safetensors"); }

static void test_infer_tensor(void **state)
{
    (void)state;
    char model[1024], in[1024], outp[1024], out[8192];
    golden_model(model, sizeof model);
    tmp(in, sizeof in, "in.safetensors");
    tmp(outp, sizeof outp, "out.safetensors");
    uf_st *exp = ut_open(ut_golden_dir(), "expected_random.safetensors");
    uf_st_writer *w = uf_st_writer_new();
    int64_t shp[4] = {1, 3, 256, 256};
    uf_error err;
    assert_int_equal(uf_st_writer_add(w, "image", UF_DT_F32, 4, shp, ut_f32(exp, "input", NULL), &err), UF_OK);
    assert_int_equal(uf_st_writer_save(w, in, &err), UF_OK);
    uf_st_writer_free(w);
    int rc = ut_run(out, sizeof out, "%s infer --model %s --tensor %s --out %s --threads 2", uflow, model, in, outp);
    if (rc != 0)
        fail_msg("uflow infer failed (%d): %s", rc, out);
    uf_st *got = ut_open(tmpdir, "out.safetensors");
    static const struct { const char *name; int ndim; int64_t shape[4]; double tol; } want[] = {
        {"z.0", 4, {1, 84, 64, 64}, 0.0168}, {"z.1", 4, {1, 80, 32, 32}, 0.0145},
        {"z.2", 4, {1, 128, 16, 16}, 0.0081}, {"log_jac_det", 1, {1}, 2.0},
        {"anomaly_map", 4, {1, 1, 256, 256}, 1e-4}, {"pred_score", 1, {1}, 1e-4}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const uf_st_tensor *t = uf_st_find(got, want[i].name);
        if (!t)
            fail_msg("infer output lacks '%s'", want[i].name);
        assert_int_equal(t->dtype, UF_DT_F32);
        assert_int_equal(t->ndim, want[i].ndim);
        for (int d = 0; d < t->ndim; d++)
            assert_int_equal(t->shape[d], want[i].shape[d]);
        size_t n;
        const float *ref = ut_f32(exp, want[i].name, &n);
        assert_int_equal(n, t->numel);
        double e = ut_max_abs(t->data, ref, n);
        print_message("  infer %-12s max|err| %.3g\n", want[i].name, e);
        assert_true(e <= want[i].tol);
    }
    assert_null(uf_st_find(got, "image")); /* only with --image */
    uf_st_close(got);
    uf_st_close(exp);
}

/* --chunk only changes how many images share one uf_ctx_run: the outputs of a 3-image batch
 * are byte-identical for chunks 1, 2 and 3 (and image 0 is anomalib's). */
static void test_infer_chunks(void **state)
{
    (void)state;
    char model[1024], in[1024], o[3][1024], out[8192];
    golden_model(model, sizeof model);
    tmp(in, sizeof in, "chunk_in.safetensors");
    uf_st *exp = ut_open(ut_golden_dir(), "expected_random.safetensors");
    const size_t per = 3 * 256 * 256;
    float *x = malloc(sizeof(float) * 3 * per);
    assert_non_null(x);
    const float *x0 = ut_f32(exp, "input", NULL);
    for (int i = 0; i < 3; i++)
        for (size_t j = 0; j < per; j++)
            x[per * i + j] = x0[j] * (1.f + 0.25f * (float)i);
    uf_st_writer *w = uf_st_writer_new();
    int64_t shp[4] = {3, 3, 256, 256};
    uf_error err;
    assert_int_equal(uf_st_writer_add(w, "image", UF_DT_F32, 4, shp, x, &err), UF_OK);
    assert_int_equal(uf_st_writer_save(w, in, &err), UF_OK);
    uf_st_writer_free(w);
    free(x);
    for (int c = 0; c < 3; c++) {
        char name[64];
        snprintf(name, sizeof name, "chunk_o%d.safetensors", c + 1);
        tmp(o[c], sizeof o[c], name);
        int rc = ut_run(out, sizeof out, "%s infer --model %s --tensor %s --out %s --nfa --chunk %d --threads 2",
                        uflow, model, in, o[c], c + 1);
        if (rc)
            fail_msg("infer --chunk %d failed (%d): %s", c + 1, rc, out);
    }
    uf_st *ref = ut_open(tmpdir, "chunk_o3.safetensors");
    const uf_st_tensor *map = uf_st_find(ref, "anomaly_map"), *emap = uf_st_find(exp, "anomaly_map");
    assert_true(map && emap && map->numel == 3 * emap->numel);
    const float *a = map->data, *b = emap->data;
    double e = 0, d = 0;
    for (size_t i = 0; i < emap->numel; i++) {
        e = fmax(e, fabs(a[i] - b[i]));
        d = fmax(d, fabs(a[emap->numel + i] - b[i]));
    }
    assert_true(e <= 1e-4);
    assert_true(d > 1e-3); /* image 1 differs from image 0: the batch is not one image thrice */
    for (int c = 0; c < 2; c++) {
        char name[64];
        snprintf(name, sizeof name, "chunk_o%d.safetensors", c + 1);
        uf_st *got = ut_open(tmpdir, name);
        const char *names[] = {"z.0", "z.1", "z.2", "log_jac_det", "anomaly_map", "pred_score",
                               "minus_log10_nfa", "nfa_mask"};
        for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
            const uf_st_tensor *p = uf_st_find(got, names[k]), *q = uf_st_find(ref, names[k]);
            if (!p || !q)
                fail_msg("chunk %d: tensor %s missing", c + 1, names[k]);
            assert_int_equal(uf_st_nbytes(p), uf_st_nbytes(q));
            if (memcmp(p->data, q->data, uf_st_nbytes(p)) != 0)
                fail_msg("chunk %d: %s differs from the one-run batch", c + 1, names[k]);
        }
        uf_st_close(got);
    }
    uf_st_close(ref);
    uf_st_close(exp);
}

static void test_infer_images(void **state)
{
    (void)state;
    char model[1024], outp[1024], out[8192], dir[1024];
    golden_model(model, sizeof model);
    tmp(outp, sizeof outp, "imgs.safetensors");
    ut_path(dir, sizeof dir, ut_golden_dir(), "inputs");
    int rc = ut_run(out, sizeof out,
                    "%s infer --model %s --image %s/texture_300x280.png --image %s/defect_640x480.jpg --out %s", uflow,
                    model, dir, dir, outp);
    if (rc != 0)
        fail_msg("uflow infer --image failed (%d): %s", rc, out);
    uf_st *got = ut_open(tmpdir, "imgs.safetensors"), *exp = ut_open(ut_golden_dir(), "expected_images.safetensors");
    size_t n, m;
    const float *img = ut_f32(got, "image", &n), *ref = ut_f32(exp, "input", &m);
    assert_int_equal(n, m);
    assert_true(ut_max_abs(img, ref, n) <= 0.02);
    const float *map = ut_f32(got, "anomaly_map", &n), *rmap = ut_f32(exp, "anomaly_map", &m);
    assert_int_equal(n, m);
    assert_true(ut_mean_abs(map, rmap, n) <= 1e-3);
    assert_int_equal(uf_st_find(got, "pred_score")->shape[0], 2);
    uf_st_close(got);
    uf_st_close(exp);
}

static void test_predict(void **state)
{
    (void)state;
    char model[1024], hdir[1024], out[8192], dir[1024];
    golden_model(model, sizeof model);
    tmp(hdir, sizeof hdir, "heat");
    ut_path(dir, sizeof dir, ut_golden_dir(), "inputs");
    int rc =
        ut_run(out, sizeof out, "%s predict --model %s --heatmap-dir %s %s/texture_300x280.png %s/defect_640x480.jpg",
               uflow, model, hdir, dir, dir);
    if (rc != 0)
        fail_msg("uflow predict failed (%d): %s", rc, out);
    uf_st *exp = ut_open(ut_golden_dir(), "expected_images.safetensors");
    const float *ps = ut_f32(exp, "pred_score", NULL);
    char *line = strtok(out, "\n");
    for (int i = 0; i < 2; i++, line = strtok(NULL, "\n")) {
        assert_non_null(line);
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o)
            fail_msg("not JSON: %s", line);
        double score = json_real_value(json_object_get(o, "score"));
        print_message("  predict %s score %.6f (anomalib %.6f)\n", json_string_value(json_object_get(o, "path")), score, ps[i]);
        assert_true(fabs(score - ps[i]) <= 1e-3);
        assert_null(json_object_get(o, "label")); /* no post-processing statistics */
        struct stat sb;
        const char *hp = json_string_value(json_object_get(o, "heatmap"));
        const char *op = json_string_value(json_object_get(o, "overlay"));
        assert_true(hp && stat(hp, &sb) == 0 && sb.st_size > 100);
        assert_true(op && stat(op, &sb) == 0 && sb.st_size > 100);
        json_decref(o);
    }
    uf_st_close(exp);
    /* a missing image: its own error line, exit status 1, other images still scored */
    rc = ut_run(out, sizeof out, "%s predict --model %s /nonexistent.png %s/texture_300x280.png", uflow, model, dir);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "\"error\""));
    assert_non_null(strstr(out, "\"score\""));
}

static void test_inspect_create_bench(void **state)
{
    (void)state;
    char model[1024], out[8192], small[1024];
    golden_model(model, sizeof model);
    assert_int_equal(ut_run(out, sizeof out, "%s inspect %s", uflow, model), 0);
    assert_non_null(strstr(out, "resnet18"));
    assert_non_null(strstr(out, "5971031 elements"));
    assert_non_null(strstr(out, "84x64x64"));
    tmp(small, sizeof small, "small.safetensors");
    assert_int_equal(
        ut_run(out, sizeof out, "%s create --out %s --input-size 64x96 --flow-steps 2 --seed 3", uflow, small), 0);
    assert_int_equal(ut_run(out, sizeof out, "%s inspect %s", uflow, small), 0);
    assert_non_null(strstr(out, "64x96"));
    assert_int_equal(ut_run(out, sizeof out, "%s bench --model %s --iters 2 --warmup 0 --json", uflow, small), 0);
    json_t *o = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(o);
    assert_true(json_real_value(json_object_get(o, "images_per_s")) > 0);
    json_decref(o);
}

/* --nfa on infer, and `uflow nfa` on the stored latents, against anomalib's NFA outputs. */
static void check_nfa_out(const char *file, const uf_st *exp)
{
    uf_st *got = ut_open(tmpdir, file);
    const uf_st_tensor *m = uf_st_find(got, "minus_log10_nfa"), *k = uf_st_find(got, "nfa_mask");
    const uf_st_tensor *rm = uf_st_find(exp, "nfa_lp.minus_log10_nfa"), *rk = uf_st_find(exp, "anomalib_nfa_mask_lp");
    assert_true(m && k && rm && rk);
    assert_int_equal(m->dtype, UF_DT_F64);
    assert_int_equal(k->dtype, UF_DT_U8);
    assert_int_equal(m->numel, rm->numel);
    const double *a = m->data, *b = rm->data;
    const uint8_t *ka = k->data, *kb = rk->data;
    double e = 0;
    size_t flipped = 0;
    for (size_t i = 0; i < m->numel; i++) {
        e = fmax(e, fabs(a[i] - b[i]));
        flipped += ka[i] != !kb[i]; /* ours marks anomalous pixels: anomalib's complement */
    }
    print_message("  %s: minus_log10_nfa max|err| %.3g, mask disagreements %zu\n", file, e, flipped);
    assert_true(e <= 1e-3);
    assert_int_equal(flipped, 0);
    uf_st_close(got);
}

static void test_nfa(void **state)
{
    (void)state;
    char model[1024], in[1024], zin[1024], o1[1024], o2[1024], out[8192], mdir[1024], dir[1024];
    golden_model(model, sizeof model);
    uf_st *exp = ut_open(ut_golden_dir(), "expected_random.safetensors");
    tmp(in, sizeof in, "nfa_in.safetensors");
    tmp(zin, sizeof zin, "nfa_z.safetensors");
    tmp(o1, sizeof o1, "nfa_o1.safetensors");
    tmp(o2, sizeof o2, "nfa_o2.safetensors");
    uf_error err;
    uf_st_writer *w = uf_st_writer_new(), *wz = uf_st_writer_new();
    const uf_st_tensor *t = uf_st_find(exp, "input");
    assert_int_equal(uf_st_writer_add(w, "image", t->dtype, t->ndim, t->shape, t->data, &err), UF_OK);
    for (int k = 0; k < 3; k++) {
        char name[8];
        snprintf(name, sizeof name, "z.%d", k);
        t = uf_st_find(exp, name);
        assert_int_equal(uf_st_writer_add(wz, name, t->dtype, t->ndim, t->shape, t->data, &err), UF_OK);
    }
    assert_int_equal(uf_st_writer_save(w, in, &err), UF_OK);
    assert_int_equal(uf_st_writer_save(wz, zin, &err), UF_OK);
    uf_st_writer_free(w);
    uf_st_writer_free(wz);
    int rc = ut_run(out, sizeof out, "%s infer --model %s --tensor %s --out %s --nfa", uflow, model, in, o1);
    if (rc)
        fail_msg("infer --nfa: %s", out);
    check_nfa_out("nfa_o1.safetensors", exp);
    rc = ut_run(out, sizeof out, "%s nfa --latent %s --height 256 --width 256 --out %s", uflow, zin, o2);
    if (rc)
        fail_msg("uflow nfa: %s", out);
    check_nfa_out("nfa_o2.safetensors", exp);
    uf_st_close(exp);
    /* bad options are usage errors; a window too large for the coarsest map is a clear failure */
    assert_int_equal(ut_run(out, sizeof out, "%s nfa --latent %s --height 256 --width 256 --out %s --prob-thr 1.5",
                            uflow, zin, o2), 2);
    assert_int_equal(ut_run(out, sizeof out, "%s nfa --latent %s --height 256 --width 256 --out %s --window 200",
                            uflow, zin, o2), 1);
    assert_non_null(strstr(out, "scale"));
    /* predict --mask-dir writes a mask PNG and reports the NFA fields */
    tmp(mdir, sizeof mdir, "masks");
    ut_path(dir, sizeof dir, ut_golden_dir(), "inputs");
    rc = ut_run(out, sizeof out, "%s predict --model %s --mask-dir %s %s/defect_640x480.jpg", uflow, model, mdir, dir);
    if (rc)
        fail_msg("predict --mask-dir: %s", out);
    json_t *o = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(o);
    json_t *nfa = json_object_get(o, "nfa");
    assert_non_null(nfa);
    assert_true(json_is_real(json_object_get(nfa, "min_log10_nfa")));
    assert_non_null(json_object_get(o, "label")); /* from the NFA: no post-processing stats */
    struct stat sb;
    const char *mp = json_string_value(json_object_get(o, "mask"));
    assert_true(mp && stat(mp, &sb) == 0 && sb.st_size > 50);
    json_decref(o);
}

/* Formats outside the allow-list: refused with a pointer to --allow-any-format, which
 * decodes them (BMP through ImageMagick, PPM through libvips). */
static void test_any_format(void **state)
{
    (void)state;
    char model[1024], bmp[1024], ppm[1024], outp[1024], out[8192];
    golden_model(model, sizeof model);
    tmp(bmp, sizeof bmp, "part.bmp");
    tmp(ppm, sizeof ppm, "part.ppm");
    tmp(outp, sizeof outp, "any.safetensors");
    size_t len;
    uint8_t *b = craft_bmp(40, 30, 1, &len);
    uf_error err;
    assert_int_equal(uf_write_file(bmp, b, len, &err), UF_OK);
    free(b);
    b = craft_refused("ppm", &len);
    assert_int_equal(uf_write_file(ppm, b, len, &err), UF_OK);
    free(b);
    int rc = ut_run(out, sizeof out, "%s predict --model %s %s %s", uflow, model, bmp, ppm);
    print_message("  strict: %s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "BMP images are not accepted"));
    assert_non_null(strstr(out, "PNM/PFM images are not accepted"));
    assert_non_null(strstr(out, "--allow-any-format"));
    rc = ut_run(out, sizeof out, "%s predict --allow-any-format --model %s %s %s", uflow, model, bmp, ppm);
    if (rc != 0)
        fail_msg("predict --allow-any-format failed (%d): %s", rc, out);
    assert_null(strstr(out, "error"));
    assert_int_equal(ut_run(out, sizeof out, "%s infer --model %s --image %s --out %s", uflow, model, bmp, outp), 1);
    assert_non_null(strstr(out, "--allow-any-format"));
    rc = ut_run(out, sizeof out, "%s infer --allow-any-format --model %s --image %s --out %s", uflow, model, bmp, outp);
    if (rc != 0)
        fail_msg("infer --allow-any-format failed (%d): %s", rc, out);
}

static void test_errors(void **state)
{
    (void)state;
    char out[8192], model[1024], bad[1024];
    golden_model(model, sizeof model);
    assert_int_equal(ut_run(out, sizeof out, "%s", uflow), 2);
    assert_int_equal(ut_run(out, sizeof out, "%s frobnicate", uflow), 2);
    assert_int_equal(ut_run(out, sizeof out, "%s infer --model %s", uflow, model), 2); /* no input/out */
    assert_int_equal(ut_run(out, sizeof out, "%s bench --model %s --batch 0", uflow, model), 2);
    assert_int_equal(ut_run(out, sizeof out, "%s inspect /nonexistent.safetensors", uflow), 1);
    assert_non_null(strstr(out, "cannot open"));
    tmp(bad, sizeof bad, "bad.safetensors");
    FILE *f = fopen(bad, "wb");
    fputs("not a model", f);
    fclose(f);
    assert_int_equal(ut_run(out, sizeof out, "%s inspect %s", uflow, bad), 1);
    assert_non_null(strstr(out, "header length"));
    assert_int_equal(ut_run(out, sizeof out, "%s create --out %s --input-size 100", uflow, bad), 1);
    assert_non_null(strstr(out, "multiples of 16"));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_cli PATH/TO/uflow\n");
        return 2;
    }
    uflow = argv[1];
    if (!mkdtemp(tmpdir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_infer_tensor), cmocka_unit_test(test_infer_images),
        cmocka_unit_test(test_infer_chunks),
        cmocka_unit_test(test_predict),      cmocka_unit_test(test_inspect_create_bench),
        cmocka_unit_test(test_nfa),          cmocka_unit_test(test_errors),
        cmocka_unit_test(test_any_format),
    };
    int rc = cmocka_run_group_tests_name("cli", tests, NULL, NULL);
    if (ut_rmtree(tmpdir) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
