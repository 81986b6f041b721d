/* test_server_api.c — uflowd's REST API as clients meet it: the real daemon (argv[1]) on
 * 127.0.0.1 with an ephemeral port, driven with libcurl; numbers against the uflow CLI
 * (argv[2], same library). Service endpoints, model metadata (v1 and KServe), predict with
 * raw, multipart and JSON bodies, post-processing labels, the NFA mask, 32 concurrent
 * clients, and the metrics all that leaves behind. */
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

static void test_service_endpoints(void **state)
{
    (void)state;
    resp r;
    int port = main_d.port;
    assert_int_equal(http(&r, port, "/healthz", NULL), 200);
    resp_free(&r);
    assert_int_equal(http(&r, port, "/readyz", NULL), 200);
    resp_free(&r);
    assert_int_equal(http(&r, port, "/", NULL), 200);
    json_t *o = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "uflowd");
    assert_non_null(json_object_get(json_object_get(o, "links"), "openapi"));
    json_decref(o);
    resp_free(&r);
    assert_int_equal(http(&r, port, "/openapi.yaml", NULL), 200);
    assert_non_null(strstr(r.body, "openapi: 3.1"));
    assert_non_null(strstr(r.body, "/v1/models/{name}/predict"));
    resp_free(&r);
    /* request ids: a client's is echoed in the header and the body, else one is made */
    reqopt rid = {.h1 = "X-Request-Id: test-abc.123"};
    char h[128];
    assert_int_equal(http(&r, port, "/v1/models/nope", &rid), 404);
    assert_non_null(resp_header(&r, "X-Request-Id", h, sizeof h));
    assert_string_equal(h, "test-abc.123");
    o = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "request_id")), "test-abc.123");
    json_decref(o);
    resp_free(&r);
    assert_int_equal(http(&r, port, "/healthz", NULL), 200);
    assert_non_null(resp_header(&r, "X-Request-Id", h, sizeof h));
    assert_true(strlen(h) == 16);
    resp_free(&r);
}

static void test_models(void **state)
{
    (void)state;
    resp r;
    assert_int_equal(http(&r, main_d.port, "/v1/models", NULL), 200);
    json_t *o = resp_json(&r), *a = json_object_get(o, "models");
    assert_int_equal(json_array_size(a), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "name")), "golden");
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 1), "name")), "pp");
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 2), "name")), "small");
    json_decref(o);
    resp_free(&r);

    uf_model *m = NULL;
    uf_error err = {0};
    assert_int_equal(uf_model_load(golden_model, &m, &err), UF_OK);
    assert_int_equal(http(&r, main_d.port, "/v1/models/golden", NULL), 200);
    o = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "version")), uf_model_get_info(m)->version);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "loaded");
    assert_string_equal(json_string_value(json_object_get(o, "backbone")), "resnet18");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "input"), "height")), 256);
    assert_int_equal(json_array_size(json_object_get(o, "scales")), 3);
    assert_non_null(json_object_get(o, "loaded_at"));
    assert_true(json_is_object(json_object_get(o, "config")));
    json_decref(o);
    resp_free(&r);

    assert_int_equal(http(&r, main_d.port, "/v2/models/golden", NULL), 200);
    o = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "golden");
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "versions"), 0)),
                        uf_model_get_info(m)->version);
    json_t *shape = json_object_get(json_array_get(json_object_get(o, "inputs"), 0), "shape");
    assert_int_equal(json_integer_value(json_array_get(shape, 3)), 256);
    assert_int_equal(json_array_size(json_object_get(o, "outputs")), 2);
    json_decref(o);
    resp_free(&r);
    uf_model_free(m);

    assert_int_equal(http(&r, main_d.port, "/v2/models/golden/ready", NULL), 200);
    resp_free(&r);
    assert_int_equal(http(&r, main_d.port, "/v2", NULL), 200);
    resp_free(&r);
    assert_int_equal(http(&r, main_d.port, "/v2/health/live", NULL), 200);
    resp_free(&r);
    assert_int_equal(http(&r, main_d.port, "/v2/health/ready", NULL), 200);
    resp_free(&r);
    /* KServe errors are {"error": "<text>"} */
    assert_int_equal(http(&r, main_d.port, "/v2/models/nope", NULL), 404);
    o = resp_json(&r);
    assert_true(json_is_string(json_object_get(o, "error")));
    json_decref(o);
    resp_free(&r);
}

/* Raw bodies for both fixtures give the CLI's score; the answer has every field. */
static void test_predict_raw(void **state)
{
    (void)state;
    const char *types[2] = {"image/png", "image/jpeg"};
    for (int i = 0; i < 2; i++) {
        size_t len;
        unsigned char *img = input_bytes(i, &len);
        reqopt o = {.ctype = types[i], .body = img, .len = len};
        resp r;
        assert_int_equal(http(&r, main_d.port, "/v1/models/golden/predict?overlay=true", &o), 200);
        json_t *j = resp_json(&r);
        double s = json_number_value(json_object_get(j, "score"));
        print_message("  predict %s: %.8f (uflow predict %.8f)\n", inputs[i], s, ref_score[i]);
        assert_true(fabs(s - ref_score[i]) <= 1e-6);
        assert_string_equal(json_string_value(json_object_get(j, "model")), "golden");
        assert_int_equal(strlen(json_string_value(json_object_get(j, "model_version"))), 16);
        assert_true(json_is_null(json_object_get(j, "label")));
        assert_null(json_object_get(j, "normalized_score"));
        assert_null(json_object_get(j, "mask"));
        const char *keys[] = {"queue", "decode", "inference", "nfa", "encode", "total"};
        for (int k = 0; k < 6; k++)
            assert_true(json_is_number(json_object_get(json_object_get(j, "timing_ms"), keys[k])));
        assert_true(json_is_string(json_object_get(j, "request_id")));
        const char *pngs[2] = {"heatmap", "overlay"};
        for (int k = 0; k < 2; k++) {
            json_t *h = json_object_get(j, pngs[k]);
            assert_int_equal(json_integer_value(json_object_get(h, "width")), 256);
            assert_int_equal(json_integer_value(json_object_get(h, "height")), 256);
            gsize n = 0;
            guchar *png = g_base64_decode(json_string_value(json_object_get(h, "png_base64")), &n);
            assert_true(n > 100 && !memcmp(png, "\x89PNG\r\n\x1a\n", 8));
            g_free(png);
        }
        json_decref(j);
        resp_free(&r);
        free(img);
    }
    /* heatmap=false leaves it out; octet-stream is a raw image too */
    size_t len;
    unsigned char *img = input_bytes(0, &len);
    reqopt o = {.ctype = "application/octet-stream", .body = img, .len = len};
    resp r;
    assert_int_equal(http(&r, main_d.port, "/v1/models/golden/predict?heatmap=false", &o), 200);
    json_t *j = resp_json(&r);
    assert_null(json_object_get(j, "heatmap"));
    assert_null(json_object_get(j, "overlay"));
    assert_true(fabs(json_number_value(json_object_get(j, "score")) - ref_score[0]) <= 1e-6);
    json_decref(j);
    resp_free(&r);
    free(img);
}

static void test_predict_multipart_json(void **state)
{
    (void)state;
    size_t len;
    unsigned char *img = input_bytes(1, &len);
    resp r;
    /* multipart/form-data: field "image" plus an option field */
    CURL *dummy = curl_easy_init();
    curl_mime *mime = curl_mime_init(dummy);
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, "image");
    curl_mime_filename(part, "defect.jpg");
    curl_mime_type(part, "image/jpeg");
    curl_mime_data(part, (const char *)img, len);
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "heatmap");
    curl_mime_data(part, "false", CURL_ZERO_TERMINATED);
    reqopt mo = {.mime = mime};
    assert_int_equal(http(&r, main_d.port, "/v1/models/golden/predict", &mo), 200);
    json_t *j = resp_json(&r);
    assert_true(fabs(json_number_value(json_object_get(j, "score")) - ref_score[1]) <= 1e-6);
    assert_null(json_object_get(j, "heatmap"));
    json_decref(j);
    resp_free(&r);
    curl_mime_free(mime);
    /* multipart without the image field */
    mime = curl_mime_init(dummy);
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "picture");
    curl_mime_data(part, "x", CURL_ZERO_TERMINATED);
    mo.mime = mime;
    http(&r, main_d.port, "/v1/models/golden/predict", &mo);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    curl_mime_free(mime);
    curl_easy_cleanup(dummy);

    /* JSON {"image": base64, options} */
    gchar *b64 = g_base64_encode(img, len);
    json_t *body = json_pack("{s:s,s:b,s:b}", "image", b64, "heatmap", 0, "overlay", 1);
    char *txt = json_dumps(body, JSON_COMPACT);
    reqopt jo = {.ctype = "application/json", .body = txt, .len = strlen(txt)};
    assert_int_equal(http(&r, main_d.port, "/v1/models/golden/predict", &jo), 200);
    j = resp_json(&r);
    assert_true(fabs(json_number_value(json_object_get(j, "score")) - ref_score[1]) <= 1e-6);
    assert_null(json_object_get(j, "heatmap"));
    assert_non_null(json_object_get(j, "overlay"));
    json_decref(j);
    resp_free(&r);
    free(txt);
    json_decref(body);
    /* a data: URL prefix is accepted */
    size_t dl = strlen(b64) + 64;
    char *data_url = malloc(dl);
    snprintf(data_url, dl, "{\"image\":\"data:image/jpeg;base64,%s\"}", b64);
    jo.body = data_url;
    jo.len = strlen(data_url);
    assert_int_equal(http(&r, main_d.port, "/v1/models/golden/predict", &jo), 200);
    assert_true(fabs(predict_score(&r) - ref_score[1]) <= 1e-6);
    resp_free(&r);
    free(data_url);
    g_free(b64);
    free(img);
}

/* A model with post-processing statistics: normalized_score, threshold and label. */
static void test_predict_postproc(void **state)
{
    (void)state;
    size_t len;
    unsigned char *img = input_bytes(0, &len);
    reqopt o = {.ctype = "image/png", .body = img, .len = len};
    resp r;
    assert_int_equal(http(&r, main_d.port, "/v1/models/pp/predict", &o), 200);
    json_t *j = resp_json(&r);
    double s = json_number_value(json_object_get(j, "score"));
    double ns = json_number_value(json_object_get(j, "normalized_score"));
    double want = fmin(fmax((s - 0.5) / (0.9 - 0.2) + 0.5, 0), 1);
    assert_true(fabs(ns - want) <= 1e-5);
    assert_true(fabs(json_number_value(json_object_get(j, "threshold")) - 0.5) <= 1e-7);
    assert_string_equal(json_string_value(json_object_get(j, "label")), ns > 0.5 ? "anomalous" : "normal");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "heatmap"), "width")), 64);
    json_decref(j);
    resp_free(&r);
    free(img);
}

/* mask=true: the NFA mask and numbers equal `uflow predict --nfa` with the same options, and
 * the label comes from the NFA when the model has no threshold. */
static void test_predict_mask(void **state)
{
    (void)state;
    char out[4096];
    assert_int_equal(ut_run_stdout(out, sizeof out,
                                   "%s predict --nfa --nfa-window 5 --nfa-epsilon -2 --model %s %s/inputs/%s",
                                   uflow_bin, golden_model, ut_golden_dir(), inputs[1]),
                     0);
    json_t *cli = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(cli);
    json_t *cn = json_object_get(cli, "nfa");
    size_t len;
    unsigned char *img = input_bytes(1, &len);
    gchar *b64 = g_base64_encode(img, len);
    json_t *body = json_pack("{s:s,s:b,s:b,s:i,s:f}", "image", b64, "heatmap", 0, "mask", 1, "nfa_window", 5,
                             "mask_epsilon", -2.0);
    char *txt = json_dumps(body, JSON_COMPACT);
    reqopt o = {.ctype = "application/json", .body = txt, .len = strlen(txt)};
    resp r;
    assert_int_equal(http(&r, main_d.port, "/v1/models/golden/predict", &o), 200);
    json_t *j = resp_json(&r), *mk = json_object_get(j, "mask");
    double frac = json_number_value(json_object_get(mk, "anomalous_fraction"));
    double mn = json_number_value(json_object_get(mk, "min_log10_nfa"));
    print_message("  mask: anomalous_fraction %.7f min_log10_nfa %.6f (uflow predict --nfa %.7f %.6f)\n", frac, mn,
                  json_number_value(json_object_get(cn, "anomalous_fraction")),
                  json_number_value(json_object_get(cn, "min_log10_nfa")));
    assert_true(fabs(frac - json_number_value(json_object_get(cn, "anomalous_fraction"))) <= 1e-6);
    assert_true(fabs(mn - json_number_value(json_object_get(cn, "min_log10_nfa"))) <= 1e-5 * fmax(1, fabs(mn)));
    assert_string_equal(json_string_value(json_object_get(j, "label")), json_string_value(json_object_get(cn, "label")));
    assert_int_equal(json_integer_value(json_object_get(mk, "width")), 256);
    gsize n = 0;
    guchar *png = g_base64_decode(json_string_value(json_object_get(mk, "png_base64")), &n);
    assert_true(n > 50 && !memcmp(png, "\x89PNG\r\n\x1a\n", 8));
    g_free(png);
    assert_true(json_number_value(json_object_get(json_object_get(j, "timing_ms"), "nfa")) > 0);
    json_decref(j);
    resp_free(&r);
    /* the same through the query string and a raw body */
    reqopt raw = {.ctype = "image/jpeg", .body = img, .len = len};
    assert_int_equal(http(&r, main_d.port, "/v1/models/golden/predict?heatmap=false&mask=true&nfa_window=5&mask_epsilon=-2",
                          &raw), 200);
    j = resp_json(&r);
    assert_true(json_number_value(json_object_get(json_object_get(j, "mask"), "anomalous_fraction")) == frac);
    json_decref(j);
    resp_free(&r);
    /* KServe: minus_log10_nfa as an output, options as request parameters; its maximum is
     * -min_log10_nfa */
    json_decref(body);
    free(txt);
    body = json_pack("{s:[{s:s,s:s,s:[i],s:[s]}],s:[{s:s}],s:{s:i}}", "inputs", "name", "image", "datatype", "BYTES",
                     "shape", 1, "data", b64, "outputs", "name", "minus_log10_nfa", "parameters", "nfa_window", 5);
    txt = json_dumps(body, JSON_COMPACT);
    o.body = txt;
    o.len = strlen(txt);
    assert_int_equal(http(&r, main_d.port, "/v2/models/golden/infer", &o), 200);
    j = resp_json(&r);
    json_t *t = json_array_get(json_object_get(j, "outputs"), 0);
    assert_string_equal(json_string_value(json_object_get(t, "name")), "minus_log10_nfa");
    json_t *d = json_object_get(t, "data");
    assert_int_equal(json_array_size(d), 256 * 256);
    double mx = -INFINITY;
    for (size_t i = 0; i < json_array_size(d); i++)
        mx = fmax(mx, json_number_value(json_array_get(d, i)));
    assert_true(fabs(-mx - mn) <= 1e-5 * fmax(1, fabs(mn)));
    json_decref(j);
    resp_free(&r);
    json_decref(body);
    free(txt);
    g_free(b64);
    free(img);
    json_decref(cli);
}

/* 32 concurrent clients on one model get 32 identical answers. */
static void test_concurrent_identical(void **state)
{
    (void)state;
    size_t len;
    unsigned char *img = input_bytes(0, &len);
    reqopt o = {.ctype = "image/png", .body = img, .len = len};
    resp rs[32];
    concurrent(main_d.port, "/v1/models/small/predict?heatmap=false", &o, 32, rs, NULL, NULL);
    double s0 = NAN;
    for (int i = 0; i < 32; i++) {
        if (rs[i].status != 200)
            fail_msg("client %d: %ld %s", i, rs[i].status, rs[i].body ? rs[i].body : "");
        double s = predict_score(&rs[i]);
        if (i == 0)
            s0 = s;
        assert_true(s == s0);
        resp_free(&rs[i]);
    }
    free(img);
}

static void test_metrics(void **state)
{
    (void)state;
    resp r;
    wait_metric(main_d.port, "uflowd_requests_total{model=\"small\",endpoint=\"v1_predict\",code=\"200\"}", 32);
    assert_int_equal(http(&r, main_d.port, "/metrics", NULL), 200);
    char h[128];
    assert_non_null(resp_header(&r, "Content-Type", h, sizeof h));
    assert_non_null(strstr(h, "text/plain"));
    const char *t = r.body;
    assert_true(metric(t, "uflowd_requests_total{model=\"golden\",endpoint=\"v1_predict\",code=\"200\"}") >= 5);
    assert_true(metric(t, "uflowd_requests_total{model=\"small\",endpoint=\"v1_predict\",code=\"200\"}") >= 32);
    assert_true(metric(t, "uflowd_request_duration_seconds_count{endpoint=\"v1_predict\"}") >= 20);
    assert_true(metric(t, "uflowd_inference_duration_seconds_count{model=\"golden\"}") >= 5);
    assert_true(metric(t, "uflowd_queue_wait_seconds_count") >= 20);
    assert_true(metric(t, "uflowd_queue_depth") == 0);
    assert_true(metric(t, "uflowd_requests_total{model=\"\",endpoint=\"v1_model\",code=\"404\"}") >= 1);
    assert_true(metric(t, "uflowd_models_loaded") == 3);
    assert_true(metric(t, "uflowd_model_load_failures_total") == 0);
    assert_true(metric(t, "uflowd_build_info{version=\"" UF_VERSION_STRING "\"}") == 1);
    assert_true(metric(t, "process_resident_memory_bytes") > 1e6);
    assert_true(metric(t, "process_open_fds") > 3);
    assert_non_null(strstr(t, "# TYPE uflowd_request_duration_seconds histogram"));
    assert_non_null(strstr(t, "uflowd_request_duration_seconds_bucket{endpoint=\"v1_predict\",le=\"+Inf\"}"));
    resp_free(&r);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_endpoints),
        cmocka_unit_test(test_models),
        cmocka_unit_test(test_predict_raw),
        cmocka_unit_test(test_predict_multipart_json),
        cmocka_unit_test(test_predict_postproc),
        cmocka_unit_test(test_predict_mask),
        cmocka_unit_test(test_concurrent_identical),
        cmocka_unit_test(test_metrics),
    };
    return server_main(argc, argv, "server_api", tests, sizeof tests / sizeof tests[0], 1);
}
