/* test_server.c — uflowd as clients and operators meet it: the real daemon binary started
 * on 127.0.0.1 with an ephemeral port (read from --port-file), driven with libcurl.
 * argv[1] is uflowd, argv[2] the uflow CLI (the reference for every number: same library).
 *
 * Covers every endpoint's happy path, raw/multipart/JSON-base64 bodies, the NFA mask and
 * KServe v2 FP32/BYTES inputs against the CLI, the error answers (400/401/404/405/413/415/501/503/504),
 * API keys, overload, SIGTERM with requests in flight, /metrics, the command line, model
 * reload (SIGHUP under load, POST, a broken file, new and removed files), and finally every
 * answer received against api/openapi.yaml (tests/openapi_check.py).
 * Every wait is bounded in count and time; every daemon is killed at the end. */
#include "server_harness.h"

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

static const char *uflow_bin, *python_bin;
static char models_dir[1200], golden_model[1200];
static double ref_score[2];                 /* `uflow predict` on the two inputs */
static const char *inputs[2] = {"texture_300x280.png", "defect_640x480.jpg"};

static unsigned char *input_bytes(int i, size_t *len)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/inputs/%s", ut_golden_dir(), inputs[i]);
    return ut_slurp(p, len);
}

/* ---------------------------------------------------------------------------------------- */
/* fixtures                                                                                 */

static uflowd main_d;                      /* --models DIR: golden, small, pp */

/* A copy of `src` whose config carries anomalib post-processing statistics. */
static void write_postproc_model(const char *src, const char *dst)
{
    uf_st *st = NULL;
    uf_error err = {0};
    assert_int_equal(uf_st_open(src, &st, &err), UF_OK);
    json_t *cfg = json_loads(uf_st_meta(st, "config"), 0, NULL);
    assert_non_null(cfg);
    json_object_set_new(cfg, "image_threshold", json_real(0.5));
    json_object_set_new(cfg, "pixel_threshold", json_real(0.5));
    json_object_set_new(cfg, "pred_scores_min", json_real(0.2));
    json_object_set_new(cfg, "pred_scores_max", json_real(0.9));
    json_object_set_new(cfg, "anomaly_maps_min", json_real(0.0));
    json_object_set_new(cfg, "anomaly_maps_max", json_real(1.0));
    char *txt = json_dumps(cfg, JSON_COMPACT);
    uf_st_writer *w = uf_st_writer_new();
    for (size_t i = 0; i < uf_st_count(st); i++) {
        const uf_st_tensor *t = uf_st_at(st, i);
        assert_int_equal(uf_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err), UF_OK);
    }
    assert_int_equal(uf_st_writer_meta(w, "config", txt, &err), UF_OK);
    assert_int_equal(uf_st_writer_save(w, dst, &err), UF_OK);
    uf_st_writer_free(w);
    free(txt);
    json_decref(cfg);
    uf_st_close(st);
}

static int group_setup(void **state)
{
    (void)state;
    char p[1300], out[8192];
    snprintf(models_dir, sizeof models_dir, "%s/models", tmpdir);
    if (mkdir(models_dir, 0755) != 0)
        return -1;
    ut_path(golden_model, sizeof golden_model, ut_golden_dir(), "resnet18_256_s4.safetensors");
    snprintf(p, sizeof p, "%s/golden.safetensors", models_dir);
    if (symlink(golden_model, p) != 0)
        return -1;
    uf_create_opts o = uf_create_opts_default();
    o.backbone = "resnet18";
    o.height = o.width = 64;
    o.flow_steps = 2;
    o.seed = 7;
    uf_error err = {0};
    snprintf(p, sizeof p, "%s/small.safetensors", models_dir);
    if (uf_model_create_random(&o, p, &err) != UF_OK) {
        fprintf(stderr, "create: %s\n", err.msg);
        return -1;
    }
    char pp[1300];
    snprintf(pp, sizeof pp, "%s/pp.safetensors", models_dir);
    write_postproc_model(p, pp);
    /* reference scores from the CLI */
    if (ut_run_stdout(out, sizeof out, "%s predict --model %s %s/inputs/%s %s/inputs/%s", uflow_bin, golden_model,
                      ut_golden_dir(), inputs[0], ut_golden_dir(), inputs[1]) != 0)
        return -1;
    char *save = NULL, *line = strtok_r(out, "\n", &save);
    for (int i = 0; i < 2; i++, line = strtok_r(NULL, "\n", &save)) {
        json_t *j = line ? json_loads(line, 0, NULL) : NULL;
        if (!j)
            return -1;
        ref_score[i] = json_number_value(json_object_get(j, "score"));
        json_decref(j);
    }
    char args[1500];
    snprintf(args, sizeof args, "--models %s --workers 2 --max-body 8M", models_dir);
    daemon_start(&main_d, "main", args, 1);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = daemon_stop(&main_d);
    if (rc != 0)
        fprintf(stderr, "main uflowd exited with %d (see %s)\n", rc, main_d.log);
    kill_all();
    return rc == 0 ? 0 : -1;
}

static json_t *post_reload(int port, const char *h1)
{
    resp r;
    reqopt o = {.method = "POST", .h1 = h1};
    if (http(&r, port, "/v1/models/reload", &o) != 200)
        fail_msg("POST /v1/models/reload: %ld %s", r.status, r.body ? r.body : "");
    json_t *j = resp_json(&r);
    resp_free(&r);
    return j;
}

static double predict_score(const resp *r)
{
    json_t *o = resp_json(r);
    double s = json_number_value(json_object_get(o, "score"));
    json_decref(o);
    return s;
}

/* ---------------------------------------------------------------------------------------- */
/* tests                                                                                    */

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

/* A PNG whose header declares w x h pixels: IHDR, one tiny IDAT (a stored zlib block of one
 * zero byte), IEND; far too little data for the pixels it declares. */
static size_t png_header(unsigned char *b, uint32_t w, uint32_t h)
{
    static uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    unsigned char ihdr[17] = {'I', 'H', 'D', 'R', (unsigned char)(w >> 24), (unsigned char)(w >> 16),
                              (unsigned char)(w >> 8), (unsigned char)w, (unsigned char)(h >> 24),
                              (unsigned char)(h >> 16), (unsigned char)(h >> 8), (unsigned char)h, 8, 2, 0, 0, 0};
    static const unsigned char idat[] = {'I', 'D', 'A', 'T', 0x78, 0x01, 0x01, 0x01, 0x00,
                                         0xFE, 0xFF, 0x00, 0x00, 0x01, 0x00, 0x01};
    const unsigned char *chunks[3] = {ihdr, idat, (const unsigned char *)"IEND"};
    size_t lens[3] = {13, sizeof idat - 4, 0}, n = 8;
    memcpy(b, "\x89PNG\r\n\x1a\n", 8);
    for (int c = 0; c < 3; c++) {
        b[n++] = 0, b[n++] = 0, b[n++] = 0, b[n++] = (unsigned char)lens[c];
        memcpy(b + n, chunks[c], 4 + lens[c]);
        uint32_t crc = 0xFFFFFFFFu;
        for (size_t i = 0; i < 4 + lens[c]; i++)
            crc = table[(crc ^ chunks[c][i]) & 0xFF] ^ (crc >> 8);
        crc ^= 0xFFFFFFFFu;
        n += 4 + lens[c];
        b[n++] = (unsigned char)(crc >> 24), b[n++] = (unsigned char)(crc >> 16);
        b[n++] = (unsigned char)(crc >> 8), b[n++] = (unsigned char)crc;
    }
    return n;
}

#define PE(path, ctype, text, status, code) post_expect(path, ctype, text, strlen(text), status, code)

static void post_expect(const char *path, const char *ctype, const void *body, size_t len, long status,
                        const char *code)
{
    resp r;
    reqopt o = {.ctype = ctype, .body = body, .len = len};
    http(&r, main_d.port, path, &o);
    expect_error(&r, status, code);
    resp_free(&r);
}

static void test_errors(void **state)
{
    (void)state;
    const char *P = "/v1/models/small/predict";
    resp r;
    /* routing and methods */
    assert_int_equal(http(&r, main_d.port, "/nope", NULL), 404);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    PE("/v1/models/nope/predict", "image/png", "x", 404, "model_not_found");
    assert_int_equal(http(&r, main_d.port, P, NULL), 405);
    expect_error(&r, 405, "method_not_allowed");
    char h[64];
    assert_non_null(resp_header(&r, "Allow", h, sizeof h));
    assert_string_equal(h, "POST");
    resp_free(&r);
    reqopt del = {.method = "DELETE"};
    assert_int_equal(http(&r, main_d.port, "/v1/models", &del), 405);
    resp_free(&r);
    PE("/healthz", "application/json", "{}", 405, "method_not_allowed");
    /* bodies */
    PE(P, "text/plain", "hello", 415, "unsupported_media_type");
    PE(P, "application/x-www-form-urlencoded", "a=b", 415, "unsupported_media_type");
    PE(P, "image/png", "", 400, "bad_image");
    PE(P, "image/png", "garbage bytes, not an image at all", 400, "bad_image");
    PE(P, "application/json", "{\"image\": ", 400, "bad_json");
    PE(P, "application/json", "[1,2]", 400, "bad_json");
    PE(P, "application/json", "{\"img\": \"aGVsbG8=\"}", 400, "bad_request");
    PE(P, "application/json", "{\"image\": \"not*base64!\"}", 400, "bad_base64");
    PE(P, "application/json", "{\"image\": \"aGVsbG8=\", \"heatmap\": \"maybe\"}", 400, "bad_request");
    size_t len;
    unsigned char *jpg = input_bytes(1, &len);
    post_expect(P, "image/jpeg", jpg, len / 2, 400, "bad_image"); /* truncated JPEG */
    /* options */
    resp rr;
    reqopt o = {.ctype = "image/jpeg", .body = jpg, .len = len};
    http(&rr, main_d.port, "/v1/models/small/predict?heatmap=maybe", &o);
    expect_error(&rr, 400, "bad_request");
    resp_free(&rr);
    http(&rr, main_d.port, "/v1/models/small/predict?nfa_prob_thr=2", &o);
    expect_error(&rr, 400, "bad_request");
    resp_free(&rr);
    http(&rr, main_d.port, "/v1/models/small/predict?mask=true&nfa_window=1024", &o);
    expect_error(&rr, 400, "bad_request"); /* a window larger than the 64x64 model's latents */
    assert_non_null(strstr(rr.body, "NFA"));
    resp_free(&rr);
    /* reload is POST only */
    assert_int_equal(http(&r, main_d.port, "/v1/models/reload", NULL), 405);
    expect_error(&r, 405, "method_not_allowed");
    resp_free(&r);
    free(jpg);
    /* decompression bomb: 100000 x 100000 declared in the header -> 413 before decoding */
    unsigned char png[96];
    size_t pn = png_header(png, 100000, 100000);
    post_expect(P, "image/png", png, pn, 413, "image_too_large");
    /* body above --max-body 8M: 413 from Content-Length, before it is read */
    size_t big = 9u << 20;
    unsigned char *b = calloc(1, big);
    post_expect(P, "application/octet-stream", b, big, 413, "body_too_large");
    free(b);
    /* still alive and well */
    assert_int_equal(http_get_status(main_d.port, "/readyz"), 200);
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
    assert_true(metric(t, "uflowd_requests_total{model=\"\",endpoint=\"unknown\",code=\"404\"}") >= 1);
    assert_true(metric(t, "uflowd_request_duration_seconds_count{endpoint=\"v1_predict\"}") >= 20);
    assert_true(metric(t, "uflowd_inference_duration_seconds_count{model=\"golden\"}") >= 5);
    assert_true(metric(t, "uflowd_queue_wait_seconds_count") >= 20);
    assert_true(metric(t, "uflowd_queue_depth") == 0);
    assert_true(metric(t, "uflowd_errors_total{kind=\"bad_image\"}") >= 3);
    assert_true(metric(t, "uflowd_errors_total{kind=\"image_too_large\"}") >= 1);
    assert_true(metric(t, "uflowd_rejected_total{reason=\"body_too_large\"}") >= 1);
    assert_true(metric(t, "uflowd_models_loaded") == 3);
    assert_true(metric(t, "uflowd_model_load_failures_total") == 0);
    assert_true(metric(t, "uflowd_build_info{version=\"" UF_VERSION_STRING "\"}") == 1);
    assert_true(metric(t, "process_resident_memory_bytes") > 1e6);
    assert_true(metric(t, "process_open_fds") > 3);
    assert_non_null(strstr(t, "# TYPE uflowd_request_duration_seconds histogram"));
    assert_non_null(strstr(t, "uflowd_request_duration_seconds_bucket{endpoint=\"v1_predict\",le=\"+Inf\"}"));
    resp_free(&r);
}

/* --workers 1 --queue-size 1: a burst gets some 200 and some 503 with Retry-After. */
static void test_queue_full(void **state)
{
    (void)state;
    uflowd d;
    char args[1500];
    snprintf(args, sizeof args, "--model golden=%s --workers 1 --queue-size 1", golden_model);
    daemon_start(&d, "queue", args, 1);
    size_t len;
    unsigned char *img = input_bytes(1, &len);
    reqopt o = {.ctype = "image/jpeg", .body = img, .len = len};
    resp rs[8];
    concurrent(d.port, "/v1/models/golden/predict?heatmap=false", &o, 8, rs, NULL, NULL);
    int ok = 0, full = 0;
    for (int i = 0; i < 8; i++) {
        if (rs[i].status == 200) {
            ok++;
            assert_true(fabs(predict_score(&rs[i]) - ref_score[1]) <= 1e-6);
        } else {
            expect_error(&rs[i], 503, "queue_full");
            char h[32];
            assert_non_null(resp_header(&rs[i], "Retry-After", h, sizeof h));
            full++;
        }
        resp_free(&rs[i]);
    }
    print_message("  burst of 8 on 1 worker + 1 slot: %d answered, %d rejected\n", ok, full);
    assert_true(ok >= 1 && full >= 1);
    assert_true(get_metric(d.port, "uflowd_rejected_total{reason=\"queue_full\"}", NULL) == full);
    assert_true(wait_metric(d.port, "uflowd_requests_total{model=\"golden\",endpoint=\"v1_predict\",code=\"503\"}",
                            full) == full);
    free(img);
    assert_int_equal(daemon_stop(&d), 0);
}

/* A deadline shorter than one inference: 504 with code "timeout". */
static void test_timeout(void **state)
{
    (void)state;
    uflowd d;
    char args[1500];
    snprintf(args, sizeof args, "--model golden=%s --workers 1 --request-timeout 0.02", golden_model);
    daemon_start(&d, "timeout", args, 1);
    size_t len;
    unsigned char *img = input_bytes(0, &len);
    reqopt o = {.ctype = "image/png", .body = img, .len = len};
    resp rs[3];
    concurrent(d.port, "/v1/models/golden/predict", &o, 3, rs, NULL, NULL);
    for (int i = 0; i < 3; i++) {
        expect_error(&rs[i], 504, "timeout");
        resp_free(&rs[i]);
    }
    assert_true(get_metric(d.port, "uflowd_rejected_total{reason=\"timeout\"}", NULL) == 3);
    free(img);
    assert_int_equal(daemon_stop(&d), 0);
}

static void test_api_key(void **state)
{
    (void)state;
    char keys[1300], args[3000], out[1024];
    snprintf(keys, sizeof keys, "%s/keys", tmpdir);
    FILE *f = fopen(keys, "w");
    fputs("# uflowd keys\nfirst-key-123\n\n  second-key-456  \n", f);
    fclose(f);
    uflowd d, dp;
    snprintf(args, sizeof args, "--models %s --workers 1 --api-key-file %s", models_dir, keys);
    daemon_start(&d, "auth", args, 0); /* /readyz needs the key: wait for any answer */
    resp r;
    assert_int_equal(http(&r, d.port, "/healthz", NULL), 401); /* ...which needs it too */
    expect_error(&r, 401, "unauthorized");
    char h[128];
    assert_non_null(resp_header(&r, "WWW-Authenticate", h, sizeof h));
    resp_free(&r);
    reqopt bearer = {.h1 = "Authorization: Bearer second-key-456"};
    long code = 0;
    for (int i = 0; i < 600 && code != 200; i++) {
        code = http(&r, d.port, "/readyz", &bearer);
        resp_free(&r);
        if (code != 200)
            sleep_ms(50);
    }
    assert_int_equal(code, 200);
    assert_int_equal(http(&r, d.port, "/v1/models", NULL), 401);
    resp_free(&r);
    reqopt wrong = {.h1 = "Authorization: Bearer second-key-45"};
    assert_int_equal(http(&r, d.port, "/v1/models", &wrong), 401);
    resp_free(&r);
    assert_int_equal(http(&r, d.port, "/v1/models", &bearer), 200);
    resp_free(&r);
    size_t len;
    unsigned char *img = input_bytes(0, &len);
    reqopt xk = {.ctype = "image/png", .body = img, .len = len, .h1 = "X-API-Key: first-key-123"};
    assert_int_equal(http(&r, d.port, "/v1/models/small/predict", &xk), 200);
    resp_free(&r);
    xk.h1 = "X-API-Key: nope";
    assert_int_equal(http(&r, d.port, "/v1/models/small/predict", &xk), 401);
    resp_free(&r);
    /* reload is authorised like every other endpoint */
    reqopt rl = {.method = "POST"};
    assert_int_equal(http(&r, d.port, "/v1/models/reload", &rl), 401);
    resp_free(&r);
    json_t *rep = post_reload(d.port, "X-API-Key: first-key-123");
    assert_true(json_is_true(json_object_get(rep, "ok")));
    json_decref(rep);
    free(img);
    /* --healthcheck sends the first key of --api-key-file */
    assert_int_equal(ut_run_stdout(out, sizeof out, "%s --healthcheck http://127.0.0.1:%d/readyz", uflowd_bin, d.port),
                     1);
    assert_int_equal(ut_run_stdout(out, sizeof out, "%s --api-key-file %s --healthcheck http://127.0.0.1:%d/readyz",
                                   uflowd_bin, keys, d.port),
                     0);
    assert_int_equal(daemon_stop(&d), 0);

    /* --public-health: health, readiness and metrics open, the rest still closed */
    snprintf(args, sizeof args, "--models %s --workers 1 --api-key-file %s --public-health", models_dir, keys);
    daemon_start(&dp, "auth_public", args, 1);
    assert_int_equal(http_get_status(dp.port, "/healthz"), 200);
    assert_int_equal(http_get_status(dp.port, "/metrics"), 200);
    assert_int_equal(http_get_status(dp.port, "/v2/health/ready"), 200);
    assert_int_equal(http_get_status(dp.port, "/v1/models"), 401);
    assert_int_equal(http_get_status(dp.port, "/v2/models/small"), 401);
    assert_int_equal(ut_run_stdout(out, sizeof out, "%s --healthcheck http://127.0.0.1:%d/readyz", uflowd_bin, dp.port),
                     0);
    assert_int_equal(ut_run_stdout(out, sizeof out, "UFLOWD_LISTEN=127.0.0.1:%d %s --healthcheck", dp.port, uflowd_bin),
                     0);
    assert_int_equal(daemon_stop(&dp), 0);
    /* nothing listens any more */
    assert_int_equal(ut_run_stdout(out, sizeof out, "UFLOWD_LISTEN=127.0.0.1:%d %s --healthcheck", dp.port, uflowd_bin),
                     1);
}

typedef struct drain_state {
    int port, target, sent;
    pid_t pid;
    double t0;
} drain_state;

/* While the burst runs: once every request is accepted (queued or taken by the worker),
 * send SIGTERM. */
static void drain_tick(void *ud)
{
    drain_state *s = ud;
    if (s->sent || now_s() - s->t0 > 30)
        return;
    resp r;
    http(&r, s->port, "/metrics", NULL);
    if (r.status == 200) {
        double taken = metric(r.body, "uflowd_queue_wait_seconds_count"), queued = metric(r.body, "uflowd_queue_depth");
        if (taken + queued >= s->target) {
            kill(s->pid, SIGTERM);
            s->sent = 1;
        }
    }
    resp_free(&r);
}

/* SIGTERM with 4 accepted requests (1 running, 3 queued): all 4 answered 200, exit 0. */
static void test_sigterm_drain(void **state)
{
    (void)state;
    uflowd d;
    char args[1500];
    snprintf(args, sizeof args, "--model golden=%s --workers 1 --queue-size 8 --log-format json", golden_model);
    daemon_start(&d, "drain", args, 1);
    size_t len;
    unsigned char *img = input_bytes(1, &len);
    reqopt o = {.ctype = "image/jpeg", .body = img, .len = len};
    resp rs[4];
    drain_state s = {.port = d.port, .target = 4, .pid = d.pid, .t0 = now_s()};
    concurrent(d.port, "/v1/models/golden/predict?heatmap=false", &o, 4, rs, drain_tick, &s);
    assert_true(s.sent);
    for (int i = 0; i < 4; i++) {
        if (rs[i].status != 200)
            fail_msg("request %d during drain: %ld %s", i, rs[i].status, rs[i].body ? rs[i].body : "");
        assert_true(fabs(predict_score(&rs[i]) - ref_score[1]) <= 1e-6);
        resp_free(&rs[i]);
    }
    int st = 0, exited = 0;
    for (int i = 0; i < 6000 && !exited; i++) {
        if (waitpid(d.pid, &st, WNOHANG) == d.pid)
            exited = 1;
        else
            sleep_ms(10);
    }
    assert_true(exited);
    d.pid = 0;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* JSON log lines: one per request, with its id, no image data */
    size_t ln;
    char *log = (char *)ut_slurp(d.log, &ln);
    int requests = 0;
    for (char *save = NULL, *l = strtok_r(log, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(l, 0, NULL);
        if (!j)
            fail_msg("log line is not JSON: %s", l);
        const char *msg = json_string_value(json_object_get(j, "msg"));
        if (msg && !strcmp(msg, "request") &&
            !strcmp(json_string_value(json_object_get(j, "path")), "/v1/models/golden/predict")) {
            requests++;
            assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
            assert_true(json_is_string(json_object_get(j, "request_id")));
        }
        json_decref(j);
    }
    assert_int_equal(requests, 4);
    assert_true(ln < 20000);
    free(log);
    free(img);
}

static void test_command_line(void **state)
{
    (void)state;
    char out[16384];
    assert_int_equal(ut_run_stdout(out, sizeof out, "%s --help", uflowd_bin), 0);
    const char *flags[] = {"--models", "--model", "--listen", "--workers", "--threads-per-worker", "--queue-size",
                           "--request-timeout", "--max-body", "--max-pixels", "--api-key-file", "--public-health",
                           "--log-format", "--drain-timeout", "--healthcheck", "UFLOWD_MODELS", "UFLOWD_LISTEN",
                           "UFLOWD_DRAIN_TIMEOUT"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (!strstr(out, flags[i]))
            fail_msg("--help does not mention %s", flags[i]);
    assert_int_equal(ut_run_stdout(out, sizeof out, "%s", uflowd_bin), 2);
    assert_int_equal(ut_run_stdout(out, sizeof out, "%s --models %s --frobnicate", uflowd_bin, models_dir), 2);
    assert_int_equal(ut_run_stdout(out, sizeof out, "UFLOWD_WORKERS=lots %s --models %s", uflowd_bin, models_dir), 2);
    assert_int_equal(ut_run_stdout(out, sizeof out, "%s --models %s --log-format xml", uflowd_bin, models_dir), 2);
    /* startup failures exit 1: a missing model file, an empty directory */
    assert_int_equal(
        ut_run_stdout(out, sizeof out, "%s --model a=/nonexistent.safetensors --listen 127.0.0.1:0", uflowd_bin), 1);
    assert_int_equal(
        ut_run_stdout(out, sizeof out, "%s --models %s/nonexistent --listen 127.0.0.1:0", uflowd_bin, tmpdir), 1);
    /* the environment twins configure a daemon */
    uflowd d;
    char args[64];
    snprintf(args, sizeof args, "--workers 1");
    char envm[1400];
    snprintf(envm, sizeof envm, "g=%s", golden_model);
    setenv("UFLOWD_MODEL", envm, 1);
    setenv("UFLOWD_QUEUE_SIZE", "3", 1);
    daemon_start(&d, "env", args, 1);
    unsetenv("UFLOWD_MODEL");
    unsetenv("UFLOWD_QUEUE_SIZE");
    assert_int_equal(http_get_status(d.port, "/v1/models/g"), 200);
    assert_int_equal(daemon_stop(&d), 0);
}

/* ---------------------------------------------------------------------------------------- */
/* model reload                                                                             */

/* A random 64x64 model written to dir/name via a temporary file and rename(), as operators
 * must replace model files (the old version stays mapped by the requests still using it).
 * version (17 bytes), when given, receives its version. */
static void put_model(const char *dir, const char *name, int seed, char *version)
{
    char tmp[1400], dst[1400];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    uf_create_opts o = uf_create_opts_default();
    o.backbone = "resnet18";
    o.height = o.width = 64;
    o.flow_steps = 2;
    o.seed = (uint64_t)seed;
    uf_error err = {0};
    if (uf_model_create_random(&o, tmp, &err) != UF_OK)
        fail_msg("create %s: %s", tmp, err.msg);
    uf_model *m = NULL;
    assert_int_equal(uf_model_load(tmp, &m, &err), UF_OK);
    if (version)
        snprintf(version, 17, "%s", uf_model_get_info(m)->version);
    uf_model_free(m);
    assert_int_equal(rename(tmp, dst), 0);
}

/* Replace dir/name with bytes that are not a model (atomically, too). */
static void put_garbage(const char *dir, const char *name)
{
    char tmp[1400], dst[1400];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    fputs("this is not a safetensors file", f);
    fclose(f);
    assert_int_equal(rename(tmp, dst), 0);
}

/* GET /v1/models/{name}: its version and state ("" when absent: 404). */
static long model_state(int port, const char *name, char *version, char *state)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/models/%s", name);
    resp r;
    long code = http(&r, port, path, NULL);
    version[0] = state[0] = '\0';
    if (code == 200) {
        json_t *o = resp_json(&r);
        snprintf(version, 17, "%s", json_string_value(json_object_get(o, "version")));
        snprintf(state, 16, "%s", json_string_value(json_object_get(o, "state")));
        json_decref(o);
    }
    resp_free(&r);
    return code;
}

static int str_in(const json_t *a, const char *s)
{
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
        if (json_is_string(v) && !strcmp(json_string_value(v), s))
            return 1;
    return 0;
}

typedef struct hup_state {
    const char *dir;
    pid_t pid;
    int round, at_round, sent;
} hup_state;

/* In the chosen round, while its requests are in flight: swap the file, send SIGHUP. */
static void hup_tick(void *ud)
{
    hup_state *s = ud;
    if (s->sent || s->round < s->at_round)
        return;
    put_model(s->dir, "m.safetensors", 8, NULL);
    kill(s->pid, SIGHUP);
    s->sent = 1;
}

/* SIGHUP under load: clients keep predicting while the model file is replaced and the
 * daemon told to reload. Every request is answered 200 (by the old or the new version),
 * the new version is served afterwards, and the daemon exits 0 (no leak under ASan). */
static void test_reload_sighup_under_load(void **state)
{
    (void)state;
    char dir[1300], other[1300], v1[17], v2[17], args[1500];
    snprintf(dir, sizeof dir, "%s/hup", tmpdir);
    snprintf(other, sizeof other, "%s/hup_v2", tmpdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(mkdir(other, 0755), 0);
    put_model(dir, "m.safetensors", 7, v1);
    put_model(other, "m.safetensors", 8, v2); /* the version the swap will bring */
    assert_string_not_equal(v1, v2);
    uflowd d;
    snprintf(args, sizeof args, "--models %s --workers 2 --queue-size 64", dir);
    daemon_start(&d, "hup", args, 1);
    size_t len;
    unsigned char *img = input_bytes(0, &len);
    reqopt o = {.ctype = "image/png", .body = img, .len = len};
    hup_state hs = {.dir = dir, .pid = d.pid, .at_round = 2};
    int total = 0, old_seen = 0, new_seen = 0, rounds_after_new = 0;
    double t0 = now_s();
    enum { N = 6 };
    for (hs.round = 0; hs.round < 60 && now_s() - t0 < 40 && rounds_after_new < 3; hs.round++) {
        resp rs[N];
        concurrent(d.port, "/v1/models/m/predict?heatmap=false", &o, N, rs, hup_tick, &hs);
        int new_here = 0;
        for (int i = 0; i < N; i++) {
            total++;
            if (rs[i].status != 200)
                fail_msg("round %d client %d: %ld %s", hs.round, i, rs[i].status, rs[i].body ? rs[i].body : "");
            json_t *j = resp_json(&rs[i]);
            const char *v = json_string_value(json_object_get(j, "model_version"));
            if (!strcmp(v, v1)) {
                old_seen++;
                if (rounds_after_new > 0) /* a round that started after one saw v2 */
                    fail_msg("round %d: old version %s answered after the new one", hs.round, v);
            } else if (!strcmp(v, v2)) {
                new_seen++;
                new_here = 1;
            } else {
                fail_msg("unknown model_version %s", v);
            }
            json_decref(j);
            resp_free(&rs[i]);
        }
        if (new_here || rounds_after_new > 0)
            rounds_after_new++;
    }
    print_message("  SIGHUP under load: %d requests in %d rounds, %d by %s, %d by %s, all 200\n", total, hs.round,
                  old_seen, v1, new_seen, v2);
    assert_true(hs.sent);
    assert_true(old_seen > 0 && new_seen > 0);
    char ver[17], st[16];
    assert_int_equal(model_state(d.port, "m", ver, st), 200);
    assert_string_equal(ver, v2);
    assert_string_equal(st, "loaded");
    assert_true(get_metric(d.port, "uflowd_models_generation", NULL) == 2);
    assert_true(get_metric(d.port, "uflowd_model_reloads_total{result=\"ok\"}", NULL) == 1);
    assert_true(get_metric(d.port, "uflowd_model_load_failures_total", NULL) == 0);
    free(img);
    assert_int_equal(daemon_stop(&d), 0);
}

/* POST /v1/models/reload: a new file appears, a broken file keeps its previous version
 * (reported in the answer, /v1/models and the metrics), a removed file disappears, a fixed
 * file is served again; a reload that would leave nothing is refused; SIGHUP does the same. */
static void test_reload_post(void **state)
{
    (void)state;
    char dir[1300], va[17], vb[17], va2[17], args[1500], ver[17], st[16];
    snprintf(dir, sizeof dir, "%s/reload", tmpdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    put_model(dir, "a.safetensors", 7, va);
    uflowd d;
    snprintf(args, sizeof args, "--models %s --workers 2", dir);
    daemon_start(&d, "reload", args, 1);
    int port = d.port;
    assert_int_equal(model_state(port, "b", ver, st), 404);

    /* nothing changed: same generation */
    json_t *j = post_reload(port, NULL);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_int_equal(json_integer_value(json_object_get(j, "generation")), 1);
    assert_true(str_in(json_object_get(j, "unchanged"), "a"));
    json_decref(j);

    /* a new file appears */
    put_model(dir, "b.safetensors", 9, vb);
    j = post_reload(port, NULL);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_int_equal(json_integer_value(json_object_get(j, "generation")), 2);
    assert_true(str_in(json_object_get(j, "loaded"), "b"));
    assert_true(str_in(json_object_get(j, "unchanged"), "a"));
    json_decref(j);
    assert_int_equal(model_state(port, "b", ver, st), 200);
    assert_string_equal(ver, vb);

    /* a broken file: the previous version stays, reported */
    put_garbage(dir, "a.safetensors");
    j = post_reload(port, NULL);
    assert_true(json_is_false(json_object_get(j, "ok")));
    json_t *f = json_array_get(json_object_get(j, "failed"), 0);
    assert_string_equal(json_string_value(json_object_get(f, "name")), "a");
    assert_true(strlen(json_string_value(json_object_get(f, "error"))) > 0);
    assert_true(str_in(json_object_get(j, "models"), "a"));
    json_decref(j);
    assert_int_equal(model_state(port, "a", ver, st), 200);
    assert_string_equal(ver, va);
    assert_string_equal(st, "stale");
    resp r;
    assert_int_equal(http(&r, port, "/v1/models", NULL), 200);
    j = resp_json(&r);
    f = json_array_get(json_object_get(j, "failures"), 0);
    assert_string_equal(json_string_value(json_object_get(f, "name")), "a");
    json_t *ma = json_array_get(json_object_get(j, "models"), 0);
    assert_string_equal(json_string_value(json_object_get(ma, "state")), "stale");
    assert_true(json_is_string(json_object_get(ma, "error")));
    json_decref(j);
    resp_free(&r);
    size_t len;
    unsigned char *img = input_bytes(0, &len);
    reqopt o = {.ctype = "image/png", .body = img, .len = len};
    assert_int_equal(http(&r, port, "/v1/models/a/predict?heatmap=false", &o), 200);
    j = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "model_version")), va);
    json_decref(j);
    resp_free(&r);
    assert_true(get_metric(port, "uflowd_model_load_failures_total", NULL) == 1);
    assert_true(get_metric(port, "uflowd_model_stale{model=\"a\"}", NULL) == 1);
    assert_true(get_metric(port, "uflowd_model_reloads_total{result=\"failed\"}", NULL) == 1);

    /* a removed file stops being served; a fixed one is served in its new version */
    char pb[1400];
    snprintf(pb, sizeof pb, "%s/b.safetensors", dir);
    assert_int_equal(unlink(pb), 0);
    put_model(dir, "a.safetensors", 10, va2);
    j = post_reload(port, NULL);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_true(str_in(json_object_get(j, "removed"), "b"));
    assert_true(str_in(json_object_get(j, "loaded"), "a"));
    assert_int_equal(json_array_size(json_object_get(j, "models")), 1);
    json_decref(j);
    assert_int_equal(model_state(port, "b", ver, st), 404);
    assert_int_equal(model_state(port, "a", ver, st), 200);
    assert_string_equal(ver, va2);
    assert_string_equal(st, "loaded");
    assert_int_equal(http(&r, port, "/v1/models/b/predict", &o), 404);
    resp_free(&r);
    assert_int_equal(http(&r, port, "/v2/models/a", NULL), 200);
    j = resp_json(&r);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "versions"), 0)), va2);
    json_decref(j);
    resp_free(&r);

    /* every file gone: the reload is refused, the current set stays */
    char pa[1400];
    snprintf(pa, sizeof pa, "%s/a.safetensors", dir);
    assert_int_equal(unlink(pa), 0);
    j = post_reload(port, NULL);
    assert_true(json_is_false(json_object_get(j, "ok")));
    assert_true(json_is_string(json_object_get(j, "error")));
    json_decref(j);
    assert_int_equal(model_state(port, "a", ver, st), 200);
    assert_int_equal(http(&r, port, "/v1/models/a/predict?heatmap=false", &o), 200);
    resp_free(&r);

    /* SIGHUP reloads too */
    put_model(dir, "c.safetensors", 11, NULL);
    kill(d.pid, SIGHUP);
    long code = 0;
    for (int i = 0; i < 300 && code != 200; i++) {
        code = model_state(port, "c", ver, st);
        if (code != 200)
            sleep_ms(20);
    }
    assert_int_equal(code, 200);
    assert_int_equal(model_state(port, "a", ver, st), 404);
    free(img);
    assert_int_equal(daemon_stop(&d), 0);
}

/* Every answer this run received, against api/openapi.yaml. Needs python3 with PyYAML and
 * jsonschema (scripts/deps.sh); without them the test says so and rests on the field
 * checks the other tests make in C. */
static void test_openapi_conformance(void **state)
{
    (void)state;
    if (!python_bin || !record_path) {
        print_message("  no python3: answers not checked against api/openapi.yaml\n");
        return;
    }
    const char *recorded = record_path;
    record_path = NULL;
    char out[16384];
    int rc = ut_run_stdout(out, sizeof out, "%s %s/tests/openapi_check.py %s/api/openapi.yaml %s", python_bin,
                           UF_SOURCE_ROOT, UF_SOURCE_ROOT, recorded);
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        print_message("%s\n", l); /* line by line: cmocka's message buffer is short */
    if (rc == 77) /* reported as skipped, never as passed */
        skip();
    assert_int_equal(rc, 0);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_server PATH/TO/uflowd PATH/TO/uflow\n");
        return 2;
    }
    uflowd_bin = argv[1];
    uflow_bin = argv[2];
    python_bin = argc > 3 ? argv[3] : NULL;
    if (!mkdtemp(tmpdir))
        return 1;
    static char records[300];
    snprintf(records, sizeof records, "%s/answers.jsonl", tmpdir);
    record_path = records;
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_endpoints), cmocka_unit_test(test_models),
        cmocka_unit_test(test_predict_raw),       cmocka_unit_test(test_predict_multipart_json),
        cmocka_unit_test(test_predict_postproc),  cmocka_unit_test(test_predict_mask),
        cmocka_unit_test(test_kserve_infer),
        cmocka_unit_test(test_errors),            cmocka_unit_test(test_concurrent_identical),
        cmocka_unit_test(test_metrics),           cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_timeout),           cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_sigterm_drain),     cmocka_unit_test(test_command_line),
        cmocka_unit_test(test_reload_sighup_under_load), cmocka_unit_test(test_reload_post),
        cmocka_unit_test(test_openapi_conformance), /* last: checks every answer above */
    };
    int rc = cmocka_run_group_tests_name("server", tests, group_setup, group_teardown);
    kill_all();
    curl_global_cleanup();
    if (!getenv("UFLOWD_TEST_KEEP") && ut_rmtree(tmpdir) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
