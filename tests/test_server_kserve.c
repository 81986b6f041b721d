/* test_server_kserve.c — KServe v2 / Open Inference Protocol inference on the real daemon:
 * FP32 tensors against `uflow infer --tensor`, BYTES against `uflow predict`, the error
 * answers ({"error": "..."}). */
#include "server_fixture.h"

#include <curl/curl.h>
#include <glib.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* KServe v2 infer: FP32 tensor == `uflow infer --tensor`, BYTES == `uflow predict`. */
static void test_kserve_infer(void **state)
{
    (void)state;
    char in[1300], outp[1300], out[4096];
    snprintf(in, sizeof in, "%s/in.safetensors", tmpdir);
    snprintf(outp, sizeof outp, "%s/out.safetensors", tmpdir);
    uf_st *exp = ut_open(ut_golden_dir(), "expected_random.safetensors");
    size_t n;
    const float *x = ut_f32(exp, "input", &n);
    assert_int_equal(n, 3 * 256 * 256);
    uf_st_writer *w = uf_st_writer_new();
    int64_t shp[4] = {1, 3, 256, 256};
    uf_error err = {0};
    assert_int_equal(uf_st_writer_add(w, "image", UF_DT_F32, 4, shp, x, &err), UF_OK);
    assert_int_equal(uf_st_writer_save(w, in, &err), UF_OK);
    uf_st_writer_free(w);
    assert_int_equal(
        ut_run_stdout(out, sizeof out, "%s infer --model %s --tensor %s --out %s", uflow_bin, golden_model, in, outp),
        0);
    uf_st *ref = ut_open(tmpdir, "out.safetensors");
    const float *ref_map = ut_f32(ref, "anomaly_map", NULL), *ref_ps = ut_f32(ref, "pred_score", NULL);

    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, json_real(x[i]));
    json_t *body = json_pack("{s:s,s:[{s:s,s:s,s:[iiii],s:o}]}", "id", "req-1", "inputs", "name", "input", "datatype",
                             "FP32", "shape", 1, 3, 256, 256, "data", data);
    char *txt = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9));
    reqopt o = {.ctype = "application/json", .body = txt, .len = strlen(txt)};
    resp r;
    assert_int_equal(http(&r, main_d.port, "/v2/models/golden/infer", &o), 200);
    json_t *j = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "model_name")), "golden");
    assert_string_equal(json_string_value(json_object_get(j, "id")), "req-1");
    json_t *outs = json_object_get(j, "outputs");
    assert_int_equal(json_array_size(outs), 2);
    double max_err = 0, ps = NAN;
    for (size_t k = 0; k < 2; k++) {
        json_t *t = json_array_get(outs, k);
        const char *name = json_string_value(json_object_get(t, "name"));
        json_t *d = json_object_get(t, "data");
        if (!strcmp(name, "anomaly_map")) {
            assert_int_equal(json_array_size(d), 256 * 256);
            assert_int_equal(json_integer_value(json_array_get(json_object_get(t, "shape"), 1)), 1);
            for (size_t i = 0; i < 256 * 256; i++)
                max_err = fmax(max_err, fabs(json_number_value(json_array_get(d, i)) - ref_map[i]));
        } else {
            assert_string_equal(name, "pred_score");
            ps = json_number_value(json_array_get(d, 0));
        }
    }
    print_message("  v2 infer FP32: pred_score %.8f (uflow infer %.8f), anomaly_map max|err| %.3g\n", ps,
                  (double)ref_ps[0], max_err);
    assert_true(fabs(ps - ref_ps[0]) <= 1e-6);
    assert_true(max_err <= 1e-6);
    json_decref(j);
    resp_free(&r);
    free(txt);
    json_decref(body);
    uf_st_close(ref);
    uf_st_close(exp);

    /* BYTES: base64-encoded image, only pred_score requested */
    size_t len;
    unsigned char *img = input_bytes(1, &len);
    gchar *b64 = g_base64_encode(img, len);
    body = json_pack("{s:[{s:s,s:s,s:[i],s:[s]}],s:[{s:s}]}", "inputs", "name", "image", "datatype", "BYTES", "shape",
                     1, "data", b64, "outputs", "name", "pred_score");
    txt = json_dumps(body, JSON_COMPACT);
    o.body = txt;
    o.len = strlen(txt);
    assert_int_equal(http(&r, main_d.port, "/v2/models/golden/infer", &o), 200);
    j = resp_json(&r);
    outs = json_object_get(j, "outputs");
    assert_int_equal(json_array_size(outs), 1);
    ps = json_number_value(json_array_get(json_object_get(json_array_get(outs, 0), "data"), 0));
    assert_true(fabs(ps - ref_score[1]) <= 1e-6);
    json_decref(j);
    resp_free(&r);
    free(txt);
    json_decref(body);
    g_free(b64);
    free(img);

    /* errors: {"error": "..."} */
    static const struct { const char *body; long status; } bad[] = {
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,3,8,8],\"data\":[1,2]}]}", 400},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT8\",\"shape\":[1],\"data\":[1]}]}", 400},
        {"{\"inputs\":[]}", 400},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"!!\"]}]}", 400},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"aGVsbG8=\"]}]}", 400},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"aGVsbG8=\"]}],"
         "\"outputs\":[{\"name\":\"z\"}]}", 400},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"aGVsbG8=\"]}],"
         "\"parameters\":{\"nfa_prob_thr\":7}}", 400},
        {"not json", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.body = bad[i].body;
        o.len = strlen(bad[i].body);
        http(&r, main_d.port, "/v2/models/golden/infer", &o);
        if (r.status != bad[i].status)
            fail_msg("v2 infer case %zu: expected %ld, got %ld: %s", i, bad[i].status, r.status, r.body);
        j = resp_json(&r);
        assert_true(json_is_string(json_object_get(j, "error")));
        json_decref(j);
        resp_free(&r);
    }
    o.ctype = "text/plain";
    assert_int_equal(http(&r, main_d.port, "/v2/models/golden/infer", &o), 415);
    resp_free(&r);
}

/* Issue 13 item 7: FP32 values beyond float32 (1e39) are refused before any cast; a finite
 * float32 value so large that the model's outputs overflow (3e38) is refused too, and no
 * numeric output ever holds null. */
static void test_kserve_numbers(void **state)
{
    (void)state;
    const double vals[2] = {1e39, 3e38};
    for (int k = 0; k < 2; k++) {
        json_t *data = json_array();
        for (int i = 0; i < 3 * 64 * 64; i++)
            json_array_append_new(data, json_real(i == 100 ? vals[k] : 0.25));
        json_t *body = json_pack("{s:[{s:s,s:s,s:[iiii],s:o}]}", "inputs", "name", "input", "datatype", "FP32",
                                 "shape", 1, 3, 64, 64, "data", data);
        char *txt = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(17));
        reqopt o = {.ctype = "application/json", .body = txt, .len = strlen(txt)};
        resp r;
        long st = http(&r, main_d.port, "/v2/models/small/infer", &o);
        print_message("  FP32 input %g: %ld %s\n", vals[k], st, r.body);
        assert_int_equal(st, 400);
        assert_null(strstr(r.body, "null"));
        json_t *j = resp_json(&r);
        assert_true(json_is_string(json_object_get(j, "error")));
        json_decref(j);
        resp_free(&r);
        free(txt);
        json_decref(body);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kserve_infer),
        cmocka_unit_test(test_kserve_numbers),
    };
    return server_main(argc, argv, "server_kserve", tests, sizeof tests / sizeof tests[0], 1);
}
