/* test_eval_cli.c — `uflow eval` as a user runs it: a seeded random model, 4 good and 4
 * anomalous PNG images (a bright square) with masks in both naming conventions; the JSON
 * report (every key, ranges, per-image rows, consistency with the library metrics), batching
 * and pixel decimation, --calibrate (to --out and in place) followed by `uflow predict`, and
 * the errors. argv[1] is the uflow binary. */
#include "util.h"
#include "uflow_eval.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *uflow;
static char tmpdir[] = "/tmp/uflow_test_eval_XXXXXX";
static char model[256], good[256], anom[256], masks[256];

static void tmp(char *buf, size_t n, const char *file) { ut_path(buf, n, tmpdir, file); }

/* An 80x72 RGB PNG (turbo colours of a map): background noise, plus a bright square when
 * sq > 0; the square's mask (same size) as 8-bit grey when mask_path is set. */
static void write_image(const char *path, const char *mask_path, int sq, int y0, int x0, int seed)
{
    enum { H = 72, W = 80 };
    static float map[H * W];
    static uint8_t m[H * W];
    uint32_t s = (uint32_t)seed * 2654435761u + 1;
    for (int i = 0; i < H * W; i++) {
        s = s * 1664525u + 1013904223u;
        map[i] = 0.2f + 0.1f * (float)(s >> 8) / 16777216.f;
        m[i] = 0;
    }
    for (int y = y0; y < y0 + sq; y++)
        for (int x = x0; x < x0 + sq; x++) {
            map[y * W + x] = 0.62f; /* turbo yellow on blue */
            m[y * W + x] = 1;
        }
    void *png = NULL;
    size_t len = 0;
    uf_error err;
    assert_int_equal(uf_heatmap_png(map, H, W, 0.f, 1.f, &png, &len, &err), UF_OK);
    assert_int_equal(uf_write_file(path, png, len, &err), UF_OK);
    uf_free(png);
    if (mask_path) {
        assert_int_equal(uf_mask_png(m, H, W, &png, &len, &err), UF_OK);
        assert_int_equal(uf_write_file(mask_path, png, len, &err), UF_OK);
        uf_free(png);
    }
}

static int setup(void **state)
{
    (void)state;
    char out[8192], p[1100], mp[1100];
    tmp(model, sizeof model, "m.safetensors");
    tmp(good, sizeof good, "good");
    tmp(anom, sizeof anom, "anomalous");
    tmp(masks, sizeof masks, "masks");
    if (mkdir(good, 0755) || mkdir(anom, 0755) || mkdir(masks, 0755))
        return -1;
    if (ut_run(out, sizeof out, "%s create --out %s --input-size 64 --seed 3", uflow, model) != 0) {
        fprintf(stderr, "uflow create failed: %s\n", out);
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%03d.png", good, i);
        write_image(p, NULL, 0, 0, 0, 100 + i);
        snprintf(p, sizeof p, "%s/%03d.png", anom, i);
        /* MVTec's <name>_mask.png for two, the same name for the other two */
        snprintf(mp, sizeof mp, i % 2 ? "%s/%03d_mask.png" : "%s/%03d.png", masks, i);
        write_image(p, mp, 14 + 3 * i, 8 + 10 * i, 50 - 12 * i, 200 + i);
    }
    /* not images: ignored */
    snprintf(p, sizeof p, "%s/README.txt", good);
    FILE *f = fopen(p, "w");
    if (!f)
        return -1;
    fputs("not an image\n", f);
    fclose(f);
    return 0;
}

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o)
        fail_msg("cannot parse %s: %s (line %d)", path, je.text, je.line);
    return o;
}

static double num(json_t *o, const char *path)
{
    /* "a.b.c" */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
        cur = json_object_get(cur, k);
        if (!cur)
            fail_msg("JSON lacks '%s'", path);
    }
    if (!json_is_number(cur))
        fail_msg("JSON '%s' is not a number", path);
    return json_number_value(cur);
}

static void check_unit(json_t *o, const char *path)
{
    double v = num(o, path);
    if (!(v >= 0.0 && v <= 1.0))
        fail_msg("%s = %g outside [0, 1]", path, v);
}

/* `uflow eval` of the whole data set with masks, batches of 3, the JSON report to jp and the
 * text report into out; fails the test unless it succeeds. */
static void eval_to_json(char *out, size_t n, const char *jp)
{
    int rc = ut_run(out, n, "%s eval --model %s --good %s --anomalous %s --masks %s --json %s --threads 2 --batch 3",
                    uflow, model, good, anom, masks, jp);
    if (rc != 0)
        fail_msg("uflow eval failed (%d): %s", rc, out);
}

static void test_eval_json(void **state)
{
    (void)state;
    char out[32768], jp[1024];
    tmp(jp, sizeof jp, "eval.json");
    eval_to_json(out, sizeof out, jp);
    char *table = strstr(out, "\n\n"); /* the summary, then the per-image table */
    assert_non_null(table);
    print_message("%.*s\n", (int)(table - out), out);
    assert_non_null(strstr(table, "nfa_iou"));
    assert_non_null(strstr(out, "image AUROC"));
    assert_non_null(strstr(out, "pixel AUPRO"));
    json_t *o = load_json(jp);
    assert_string_equal(json_string_value(json_object_get(o, "model")), model);
    assert_int_equal(num(o, "counts.good"), 4);
    assert_int_equal(num(o, "counts.anomalous"), 4);
    assert_int_equal(num(o, "counts.masks"), 4);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(o, "input_size"), 0)), 64);
    check_unit(o, "image.auroc");
    check_unit(o, "image.f1.f1");
    check_unit(o, "image.f1.precision");
    check_unit(o, "image.f1.recall");
    num(o, "image.f1.threshold");
    num(o, "image.mean_score_good");
    num(o, "image.mean_score_anomalous");
    check_unit(o, "pixel.auroc");
    check_unit(o, "pixel.aupro");
    assert_float_equal(num(o, "pixel.aupro_fpr_limit"), 0.3, 1e-12);
    check_unit(o, "pixel.f1.f1");
    num(o, "pixel.f1.threshold");
    assert_int_equal(num(o, "pixel.pixels"), 8 * 64 * 64);
    assert_int_equal(num(o, "pixel.stride"), 1);
    check_unit(o, "nfa.miou");
    check_unit(o, "nfa.good_mean_fraction");
    assert_int_equal(num(o, "nfa.window"), 7);
    num(o, "nfa.good_flagged");
    num(o, "nfa.anomalous_flagged");
    num(o, "score_range.min");
    num(o, "map_range.max");
    num(o, "seconds");
    assert_true(json_is_null(json_object_get(o, "calibration")));

    /* per-image rows: 8, good first, sorted by name, and consistent with the summary */
    json_t *rows = json_object_get(o, "images");
    assert_int_equal(json_array_size(rows), 8);
    float scores[8];
    uint8_t labels[8];
    double sg = 0, sa = 0, smin = INFINITY, iou_sum = 0;
    int thr_is_score = 0;
    for (size_t i = 0; i < 8; i++) {
        json_t *r = json_array_get(rows, i);
        const char *file = json_string_value(json_object_get(r, "file"));
        assert_non_null(file);
        char want[1100];
        snprintf(want, sizeof want, "%s/%03zu.png", i < 4 ? good : anom, i % 4);
        assert_string_equal(file, want);
        labels[i] = (uint8_t)json_integer_value(json_object_get(r, "label"));
        assert_int_equal(labels[i], i >= 4);
        scores[i] = (float)num(r, "score");
        check_unit(r, "nfa_fraction");
        assert_true(json_is_boolean(json_object_get(r, "nfa_label")));
        if (labels[i]) {
            check_unit(r, "nfa_iou");
            iou_sum += num(r, "nfa_iou");
            assert_non_null(json_object_get(r, "mask"));
            sa += scores[i];
        } else {
            assert_true(json_is_null(json_object_get(r, "nfa_iou")));
            sg += scores[i];
        }
        smin = fmin(smin, scores[i]);
        thr_is_score |= scores[i] == (float)num(o, "image.f1.threshold");
    }
    assert_float_equal(uf_auroc(scores, labels, 8), num(o, "image.auroc"), 1e-9);
    assert_float_equal(sg / 4, num(o, "image.mean_score_good"), 1e-6);
    assert_float_equal(sa / 4, num(o, "image.mean_score_anomalous"), 1e-6);
    assert_float_equal(iou_sum / 4, num(o, "nfa.miou"), 1e-6);
    assert_float_equal(smin, num(o, "score_range.min"), 1e-7);
    assert_true(thr_is_score); /* an F1 threshold is one of the scores */
    json_decref(o);
}

/* --batch 1 and --batch 3 agree; --max-pixels forces decimation; JSON on stdout with '-'. */
static void test_eval_batch_decimate(void **state)
{
    (void)state;
    static char out[65536];
    char jp[1024];
    tmp(jp, sizeof jp, "eval_b3.json");
    eval_to_json(out, sizeof out, jp);
    json_t *b3 = load_json(jp);
    /* stdout must be pure JSON: the text report goes to stderr, which we drop here */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s eval --model %s --good %s --anomalous %s --masks %s --json - --batch 1 --max-pixels 8000 2>/dev/null",
             uflow, model, good, anom, masks);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    json_error_t je;
    json_t *b1 = json_loadf(p, 0, &je);
    assert_int_equal(pclose(p), 0);
    if (!b1)
        fail_msg("stdout of --json - is not JSON: %s", je.text);
    /* 8 x 64 x 64 = 32768 > 8000: stride 2 gives 8192, stride 3 gives 8 x 22 x 22 = 3872 */
    assert_int_equal(num(b1, "pixel.stride"), 3);
    assert_int_equal(num(b1, "pixel.pixels"), 8 * 22 * 22);
    check_unit(b1, "pixel.auroc");
    check_unit(b1, "pixel.aupro");
    for (size_t i = 0; i < 8; i++) {
        json_t *r1 = json_array_get(json_object_get(b1, "images"), i);
        json_t *r3 = json_array_get(json_object_get(b3, "images"), i);
        assert_float_equal(num(r1, "score"), num(r3, "score"), 1e-5);
        assert_float_equal(num(r1, "nfa_fraction"), num(r3, "nfa_fraction"), 1e-6);
    }
    assert_float_equal(num(b1, "image.auroc"), num(b3, "image.auroc"), 1e-12);
    /* the map range is over full-resolution maps, not the decimated store */
    assert_float_equal(num(b1, "map_range.max"), num(b3, "map_range.max"), 1e-6);
    json_decref(b1);
    json_decref(b3);
}

static void test_eval_calibrate(void **state)
{
    (void)state;
    static char out[65536];
    char m2[1024], m3[1024], jp[1024], img[1100];
    tmp(m2, sizeof m2, "calibrated.safetensors");
    tmp(m3, sizeof m3, "inplace.safetensors");
    tmp(jp, sizeof jp, "cal.json");
    int rc =
        ut_run(out, sizeof out, "%s eval --model %s --good %s --anomalous %s --masks %s --calibrate --out %s --json %s",
               uflow, model, good, anom, masks, m2, jp);
    if (rc != 0)
        fail_msg("uflow eval --calibrate failed (%d): %s", rc, out);
    assert_non_null(strstr(out, "wrote post-processing statistics"));
    json_t *o = load_json(jp);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "calibration"), "path")), m2);
    uf_model *m;
    uf_error err;
    assert_int_equal(uf_model_load(m2, &m, &err), UF_OK);
    const uf_model_info *info = uf_model_get_info(m);
    assert_true(info->has_postproc);
    /* 9 significant digits round-trip a float exactly */
    assert_true(info->post.image_threshold == (float)num(o, "calibration.image_threshold"));
    assert_true(info->post.pixel_threshold == (float)num(o, "calibration.pixel_threshold"));
    assert_true(info->post.pred_scores_min == (float)num(o, "calibration.pred_scores_min"));
    assert_true(info->post.pred_scores_max == (float)num(o, "calibration.pred_scores_max"));
    assert_true(info->post.anomaly_maps_min == (float)num(o, "calibration.anomaly_maps_min"));
    assert_true(info->post.anomaly_maps_max == (float)num(o, "calibration.anomaly_maps_max"));
    /* and they are the statistics of this run */
    assert_true(info->post.image_threshold == (float)num(o, "image.f1.threshold"));
    assert_true(info->post.pixel_threshold == (float)num(o, "pixel.f1.threshold"));
    assert_true(info->post.pred_scores_min == (float)num(o, "score_range.min"));
    assert_true(info->post.anomaly_maps_max == (float)num(o, "map_range.max"));
    assert_true(info->post.anomaly_maps_min <= info->post.pred_scores_min);
    uf_model_free(m);
    json_decref(o);
    /* the input model is untouched */
    assert_int_equal(uf_model_load(model, &m, &err), UF_OK);
    assert_false(uf_model_get_info(m)->has_postproc);
    uf_model_free(m);

    /* predict on the calibrated model reports the normalised score and label */
    snprintf(img, sizeof img, "%s/001.png", anom);
    rc = ut_run(out, sizeof out, "%s predict --model %s %s", uflow, m2, img);
    if (rc != 0)
        fail_msg("uflow predict failed (%d): %s", rc, out);
    json_t *line = json_loads(out, 0, NULL);
    assert_non_null(line);
    double ns = num(line, "normalized_score");
    assert_true(ns >= 0.0 && ns <= 1.0);
    const char *label = json_string_value(json_object_get(line, "label"));
    assert_non_null(label);
    assert_true(!strcmp(label, "anomalous") || !strcmp(label, "normal"));
    json_decref(line);

    /* in place, without masks: the pixel threshold is the image threshold (anomalib's match) */
    rc = ut_run(out, sizeof out, "cp %s %s && %s eval --model %s --good %s --anomalous %s --calibrate --json %s",
                model, m3, uflow, m3, good, anom, jp);
    if (rc != 0)
        fail_msg("uflow eval --calibrate in place failed (%d): %s", rc, out);
    o = load_json(jp);
    assert_true(json_is_null(json_object_get(o, "pixel")));
    assert_true(json_is_null(json_object_get(json_object_get(o, "nfa"), "miou")));
    assert_int_equal(uf_model_load(m3, &m, &err), UF_OK);
    info = uf_model_get_info(m);
    assert_true(info->has_postproc);
    assert_true(info->post.image_threshold == (float)num(o, "image.f1.threshold"));
    assert_true(info->post.pixel_threshold == info->post.image_threshold);
    uf_model_free(m);
    json_decref(o);
}

static void test_eval_errors(void **state)
{
    (void)state;
    char out[8192], nomask[1024], empty[1024], p[1100];
    tmp(nomask, sizeof nomask, "anom2");
    tmp(empty, sizeof empty, "empty");
    assert_int_equal(mkdir(nomask, 0755), 0);
    assert_int_equal(mkdir(empty, 0755), 0);
    snprintf(p, sizeof p, "%s/zz_unmasked.png", nomask);
    write_image(p, NULL, 10, 5, 5, 7);
    /* an anomalous image without a mask file: exit 1 naming it */
    assert_int_equal(ut_run(out, sizeof out, "%s eval --model %s --good %s --anomalous %s --masks %s", uflow, model,
                            good, nomask, masks), 1);
    assert_non_null(strstr(out, "zz_unmasked.png"));
    /* an empty folder */
    assert_int_equal(ut_run(out, sizeof out, "%s eval --model %s --good %s --anomalous %s", uflow, model, empty,
                            anom), 1);
    assert_non_null(strstr(out, "no images"));
    /* a folder that does not exist, a model that does not exist */
    assert_int_equal(
        ut_run(out, sizeof out, "%s eval --model %s --good %s/nope --anomalous %s", uflow, model, tmpdir, anom), 1);
    assert_int_equal(ut_run(out, sizeof out, "%s eval --model %s/nope.safetensors --good %s --anomalous %s", uflow,
                            tmpdir, good, anom), 1);
    /* usage */
    assert_int_equal(ut_run(out, sizeof out, "%s eval --model %s --anomalous %s", uflow, model, anom), 2);
    assert_int_equal(ut_run(out, sizeof out, "%s eval --model %s --good %s --anomalous %s --out x.safetensors", uflow,
                            model, good, anom), 2);
    assert_int_equal(
        ut_run(out, sizeof out, "%s eval --model %s --good %s --anomalous %s --batch 0", uflow, model, good, anom), 2);
    assert_int_equal(ut_run(out, sizeof out, "%s eval --help", uflow), 0);
    assert_non_null(strstr(out, "--calibrate"));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_eval_cli PATH/TO/uflow\n");
        return 2;
    }
    uflow = argv[1];
    if (!mkdtemp(tmpdir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_json),
        cmocka_unit_test(test_eval_batch_decimate),
        cmocka_unit_test(test_eval_calibrate),
        cmocka_unit_test(test_eval_errors),
    };
    int rc = cmocka_run_group_tests_name("eval_cli", tests, setup, NULL);
    if (ut_rmtree(tmpdir) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
