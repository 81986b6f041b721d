/* test_server_parsers.c — uflowd's parsers as pure functions (linked from ufd_core): the
 * request target, multipart/form-data, the JSON reader, predict options, the v1 JSON
 * predict body, the KServe v2 request, and the API key file. Each case is one a hostile
 * client (or a careless operator) could send. */
#include "util.h"

#include <float.h>
#include <math.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "jscan.h"
#include "multipart.h"
#include "options.h"
#include "predict_body.h"
#include "route.h"
#include "target.h"
#include "v2_request.h"

/* ---- request target ------------------------------------------------------------------ */

static void test_target(void **state)
{
    (void)state;
    ufd_target t;
    char err[160];
    assert_int_equal(ufd_target_parse("/v1/models/a%2Db/predict?heatmap=false&mask=1", &t, err, sizeof err), 0);
    assert_string_equal(t.path, "/v1/models/a-b/predict");
    assert_string_equal(t.raw_path, "/v1/models/a%2Db/predict");
    assert_string_equal(ufd_target_arg(&t, "heatmap"), "false");
    assert_string_equal(ufd_target_arg(&t, "mask"), "1");
    assert_null(ufd_target_arg(&t, "overlay"));
    ufd_target_free(&t);
    /* absolute-form routes on its path */
    assert_int_equal(ufd_target_parse("http://example.com:8080/healthz", &t, err, sizeof err), 0);
    assert_string_equal(t.path, "/healthz");
    ufd_target_free(&t);
    assert_int_equal(ufd_target_parse("HTTP://host", &t, err, sizeof err), 0);
    assert_string_equal(t.path, "/");
    ufd_target_free(&t);
    assert_int_equal(ufd_target_parse("/x?a=%2B+b", &t, err, sizeof err), 0);
    assert_string_equal(ufd_target_arg(&t, "a"), "+ b");
    ufd_target_free(&t);
    /* never truncated, never re-split, never ambiguous */
    static const char *bad[] = {
        "/v1/models/m%00/../../x", "/v1/models/sm%2Fall", "/v1/models/sm%2fall", "/a%zz", "/a%4", "/a%",
        "/a%0a", "/a b", "/x?mask_epsilon=1%00junk", "/x?mask=true&mask=false", "/x#frag", "relative/path", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (ufd_target_parse(bad[i], &t, err, sizeof err) != -1)
            fail_msg("target '%s' should be refused", bad[i]);
        assert_true(strlen(err) > 0);
        ufd_target_free(&t);
    }
    char *lng = malloc(UFD_TARGET_MAX + 2);
    lng[0] = '/';
    memset(lng + 1, 'a', UFD_TARGET_MAX);
    lng[UFD_TARGET_MAX + 1] = '\0';
    assert_int_equal(ufd_target_parse(lng, &t, err, sizeof err), -1);
    ufd_target_free(&t);
    free(lng);
    /* route on the decoded path */
    ufd_route r;
    ufd_route_match("/v2/models/m.1/infer", &r);
    assert_int_equal(r.ep, UFD_EP_V2_INFER);
    assert_string_equal(r.model, "m.1");
    ufd_route_match("/v1/models//predict", &r);
    assert_int_equal(r.ep, UFD_EP_UNKNOWN);
}

/* ---- multipart ---------------------------------------------------------------------- */

typedef struct form {
    char names[8][64];
    GString *data[8];
    int n, refuse_dup;
} form;

static int f_begin(void *ud, const char *name, const char *filename, char *err, size_t n)
{
    (void)filename;
    form *f = ud;
    for (int i = 0; f->refuse_dup && i < f->n; i++)
        if (!strcmp(f->names[i], name)) {
            snprintf(err, n, "duplicate %s", name);
            return -1;
        }
    if (f->n == 8)
        return -1;
    snprintf(f->names[f->n], 64, "%s", name);
    f->data[f->n++] = g_string_new(NULL);
    return 0;
}

static int f_data(void *ud, const void *p, size_t len, char *err, size_t n)
{
    (void)err, (void)n;
    form *f = ud;
    g_string_append_len(f->data[f->n - 1], p, (gssize)len);
    return 0;
}

/* Parse body fed in chunks of `step` bytes; 0/-1 as the parser says. */
static int parse_form(const char *body, size_t len, size_t step, form *f, char *why, size_t wn)
{
    memset(f, 0, sizeof *f);
    f->refuse_dup = 1;
    ufd_mp_handler h = {.begin = f_begin, .data = f_data, .ud = f};
    ufd_mp *m = ufd_mp_new("XyZ", &h);
    assert_non_null(m);
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i += step)
        rc = ufd_mp_feed(m, body + i, len - i < step ? len - i : step);
    if (rc == 0)
        rc = ufd_mp_finish(m);
    snprintf(why, wn, "%s", rc ? ufd_mp_error(m) : "");
    ufd_mp_free(m);
    return rc;
}

static void form_free(form *f)
{
    for (int i = 0; i < f->n; i++)
        g_string_free(f->data[i], TRUE);
}

static void test_multipart(void **state)
{
    (void)state;
    char b[80], why[200];
    assert_int_equal(ufd_mp_boundary("multipart/form-data; boundary=XyZ", b, sizeof b), 0);
    assert_string_equal(b, "XyZ");
    assert_int_equal(ufd_mp_boundary("Multipart/Form-Data;boundary=\"a b'c\"", b, sizeof b), 0);
    assert_string_equal(b, "a b'c");
    assert_int_equal(ufd_mp_boundary("multipart/form-data", b, sizeof b), -1);
    assert_int_equal(ufd_mp_boundary("multipart/form-data; boundary=", b, sizeof b), -1);
    assert_int_equal(ufd_mp_boundary("multipart/form-data; boundary=a; boundary=b", b, sizeof b), -1);
    assert_int_equal(ufd_mp_boundary("multipart/mixed; boundary=a", b, sizeof b), -1);

    /* a CR, a partial delimiter and a NUL inside the data survive, at every chunk size */
    static const char ok[] = "preamble\r\n--XyZ\r\n"
                             "Content-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
                             "Content-Type: image/png\r\n\r\n"
                             "ab\r\n--Xy\rz\0q\r\n--XyZ  \r\n"
                             "Content-Disposition: form-data; name=heatmap\r\n\r\n"
                             "false\r\n--XyZ--\r\nepilogue";
    for (size_t step = 1; step <= sizeof ok; step++) {
        form f;
        if (parse_form(ok, sizeof ok - 1, step, &f, why, sizeof why) != 0)
            fail_msg("step %zu: %s", step, why);
        assert_int_equal(f.n, 2);
        assert_string_equal(f.names[0], "image");
        assert_int_equal(f.data[0]->len, 12);
        assert_memory_equal(f.data[0]->str, "ab\r\n--Xy\rz\0q", 12);
        assert_string_equal(f.names[1], "heatmap");
        assert_string_equal(f.data[1]->str, "false");
        form_free(&f);
    }
    static const struct { const char *body, *why; } bad[] = {
        {"--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nA\r\n--XyZ\r\n"
         "Content-Disposition: form-data; name=\"image\"\r\n\r\nB\r\n--XyZ--", "duplicate"},
        {"--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nA\r\n--XyZ", "close delimiter"},
        {"--XyZ\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nA", "close delimiter"},
        {"--XyZ\r\nContent-Type: image/png\r\n\r\nA\r\n--XyZ--", "Content-Disposition"},
        {"--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nA\r\n--XyZ--", "form-data"},
        {"--XyZ\r\nContent-Disposition: form-data\r\n\r\nA\r\n--XyZ--", "no name"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\nA\r\n--XyZ--", "two names"},
        {"--XyZ\nContent-Disposition: form-data; name=a\n\nA\n--XyZ--", "delimiter"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a\r\n folded\r\n\r\nA\r\n--XyZ--", "folded"},
        {"--XyZ\r\nContent-Disposition: form-data; name=a\r\nContent-Transfer-Encoding: base64\r\n\r\nQQ==\r\n--XyZ--",
         "Transfer-Encoding"},
        {"no delimiter at all", "no part"},
        {"--XyZx\r\n", "delimiter"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        form f;
        if (parse_form(bad[i].body, strlen(bad[i].body), 7, &f, why, sizeof why) != -1)
            fail_msg("case %zu should be refused", i);
        if (!strstr(why, bad[i].why))
            fail_msg("case %zu: '%s' does not say '%s'", i, why, bad[i].why);
        form_free(&f);
    }
    /* bounded: part headers and the number of parts */
    GString *g = g_string_new("--XyZ\r\nContent-Disposition: form-data; name=a\r\nX-Pad: ");
    for (int i = 0; i < UFD_MP_HEADER_MAX; i++)
        g_string_append_c(g, 'p');
    g_string_append(g, "\r\n\r\nA\r\n--XyZ--");
    form f;
    assert_int_equal(parse_form(g->str, g->len, 4096, &f, why, sizeof why), -1);
    assert_non_null(strstr(why, "longer than"));
    form_free(&f);
    g_string_assign(g, "");
    for (int i = 0; i <= UFD_MP_PARTS_MAX; i++)
        g_string_append_printf(g, "--XyZ\r\nContent-Disposition: form-data; name=f%d\r\n\r\nv\r\n", i);
    g_string_append(g, "--XyZ--");
    memset(&f, 0, sizeof f);
    ufd_mp_handler h = {.ud = &f};
    ufd_mp *m = ufd_mp_new("XyZ", &h);
    assert_int_equal(ufd_mp_feed(m, g->str, g->len), -1);
    assert_non_null(strstr(ufd_mp_error(m), "parts"));
    ufd_mp_free(m);
    g_string_free(g, TRUE);
}

/* ---- JSON reader -------------------------------------------------------------------- */

static int skip_all(const char *text)
{
    ufd_js s;
    ufd_js_init(&s, text, strlen(text));
    return ufd_js_skip(&s) == 0 && ufd_js_finish(&s) == 0 ? 0 : -1;
}

static void test_jscan(void **state)
{
    (void)state;
    static const char *good[] = {"{}", "[]", " {\"a\":[1,-0.5e+3,true,false,null,\"\\u00e9\\ud83d\\ude00\"]} ",
                                 "\"caf\xc3\xa9\"", "0", "-0", "1E9", "[[[[]]]]"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (skip_all(good[i]) != 0)
            fail_msg("'%s' is valid JSON", good[i]);
    static const char *bad[] = {"{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "01", "1.", ".5", "+1", "1e", "NaN",
                                "Infinity", "tru", "\"\\x\"", "\"\\u00\"", "\"\\ud800\"", "\"\\udc00x\"",
                                "\"a\nb\"", "\"\xc3\x28\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "\"\\u0000\"",
                                "[1] 2", "{\"a\":1}}", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (skip_all(bad[i]) == 0)
            fail_msg("'%s' must be refused", bad[i]);
    /* depth is bounded without recursion */
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    ufd_js s;
    ufd_js_init(&s, deep, sizeof deep);
    assert_int_equal(ufd_js_skip(&s), -1);
    assert_non_null(strstr(ufd_js_error(&s), "deeper"));
    /* duplicate keys, also when spelt with an escape */
    const char *dup = "{\"image\":1,\"im\\u0061ge\":2}";
    ufd_js_init(&s, dup, strlen(dup));
    ufd_js_obj o;
    char key[UFD_JS_KEY_MAX];
    assert_int_equal(ufd_js_object(&s, &o), 0);
    assert_int_equal(ufd_js_next_key(&s, &o, key), 1);
    assert_int_equal(ufd_js_skip(&s), 0);
    assert_int_equal(ufd_js_next_key(&s, &o, key), -1);
    assert_non_null(strstr(ufd_js_error(&s), "duplicate key 'image'"));
    /* numbers out of double range; integers in range */
    double d;
    ufd_js_init(&s, "1e999", 5);
    assert_int_equal(ufd_js_number(&s, &d), -1);
    long long v;
    ufd_js_init(&s, "17", 2);
    assert_int_equal(ufd_js_int(&s, 0, 16, &v), -1);
    ufd_js_init(&s, "2.0", 3);
    assert_int_equal(ufd_js_int(&s, 0, 16, &v), -1);
    /* strings: a pointer into the input without escapes, a copy with */
    const char *text;
    size_t len;
    char *owned;
    ufd_js_init(&s, "\"abc\"", 5);
    assert_int_equal(ufd_js_string(&s, &text, &len, &owned), 0);
    assert_null(owned);
    assert_int_equal(len, 3);
    ufd_js_init(&s, "\"a\\/b\"", 6);
    assert_int_equal(ufd_js_string(&s, &text, &len, &owned), 0);
    assert_non_null(owned);
    assert_string_equal(text, "a/b");
    free(owned);
}

/* ---- options, v1 body ------------------------------------------------------------------ */

static void test_predict_body(void **state)
{
    (void)state;
    ufd_predict_opts o = ufd_predict_opts_default();
    char err[256];
    /* an over-long option is refused, never cut to a prefix that parses */
    char lng[100];
    snprintf(lng, sizeof lng, "0.%0*d", 80, 0);
    assert_int_equal(ufd_predict_opt_set(&o, "mask_epsilon", lng, err, sizeof err), -1);
    assert_non_null(strstr(err, "longer"));
    assert_int_equal(ufd_predict_opt_set(&o, "nfa_window", "5", err, sizeof err), 0);
    assert_int_equal(o.nfa_window, 5);
    assert_int_equal(ufd_predict_opt_set(&o, "unknown", "5", err, sizeof err), 1);

    unsigned char *img;
    size_t n;
    ufd_err e;
    const char *good = "{\"heatmap\":false,\"x\":{\"nested\":[1,{\"y\":null}]},\"image\":\"aGVs\\/bG8=\",\"mask\":1}";
    o = ufd_predict_opts_default();
    assert_int_equal(ufd_predict_body_read(good, strlen(good), &o, &img, &n, &e, err, sizeof err), -1);
    assert_int_equal(e, UFD_E_BAD_BASE64); /* "hel/lo": not base64 after the unescape */
    good = "{\"heatmap\":false,\"x\":{\"nested\":[1,{\"y\":null}]},\"image\":\"aGVsbG8=\",\"mask\":1}";
    assert_int_equal(ufd_predict_body_read(good, strlen(good), &o, &img, &n, &e, err, sizeof err), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(img, "hello", 5);
    assert_int_equal(o.heatmap, 0);
    assert_int_equal(o.mask, 1);
    g_free(img);
    static const struct { const char *body; ufd_err e; const char *msg; } bad[] = {
        {"{\"image\":\"aGVsbG8=\",\"image\":\"aGVsbG8=\"}", UFD_E_BAD_JSON, "duplicate key"},
        {"{\"image\":\"aGVsbG8=\",\"heatmap\":true,\"heatmap\":false}", UFD_E_BAD_JSON, "duplicate key"},
        {"{\"image\":\"aGVsbG8=\",\"mask_epsilon\":\"0.0000000000000000000000000000000000000000000000000000000000001x\"}",
         UFD_E_BAD_REQUEST, "at most"},
        {"{\"image\":\"aGVsbG8=\",\"nfa_window\":2.5}", UFD_E_BAD_REQUEST, "nfa_window"},
        {"{\"image\":\"aGVsbG8=\",\"heatmap\":[]}", UFD_E_BAD_REQUEST, "boolean"},
        {"{\"image\":5}", UFD_E_BAD_REQUEST, "base64 string"},
        {"{\"img\":\"aGVsbG8=\"}", UFD_E_BAD_REQUEST, "required"},
        {"[\"aGVsbG8=\"]", UFD_E_BAD_JSON, "object"},
        {"{\"image\":\"aGVsbG8=\"} x", UFD_E_BAD_JSON, "after"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = ufd_predict_opts_default();
        err[0] = '\0';
        if (ufd_predict_body_read(bad[i].body, strlen(bad[i].body), &o, &img, &n, &e, err, sizeof err) != -1)
            fail_msg("body %zu should be refused", i);
        if (e != bad[i].e || !strstr(err, bad[i].msg))
            fail_msg("body %zu: error %d '%s', expected %d '%s'", i, e, err, bad[i].e, bad[i].msg);
    }
}

/* ---- KServe v2 -------------------------------------------------------------------------- */

static int v2(const char *body, size_t json_len, ufd_v2_request *q, ufd_err *e, char *err, size_t n)
{
    size_t len = strlen(body);
    return ufd_v2_parse(body, len, json_len ? json_len : len, 2, 2, q, e, err, n);
}

static void test_v2_request(void **state)
{
    (void)state;
    ufd_v2_request q;
    ufd_err e;
    char err[256];
    /* data before datatype and shape; nested arrays; outputs in the asked order */
    const char *ok = "{\"id\":\"r\\u0031\",\"inputs\":[{\"data\":[[[[1,2],[3,4]],[[5,6],[7,8]],[[9,10],[11,12.5]]]],"
                     "\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,3,2,2]}],"
                     "\"outputs\":[{\"name\":\"pred_score\"},{\"name\":\"minus_log10_nfa\"}],"
                     "\"parameters\":{\"nfa_window\":3,\"something\":{\"else\":[]}}}";
    assert_int_equal(v2(ok, 0, &q, &e, err, sizeof err), 0);
    assert_string_equal(q.id, "r1");
    assert_int_equal(q.batch, 1);
    assert_true(q.fp32);
    assert_true(q.x[11] == 12.5f);
    assert_int_equal(q.want[UFD_V2_OUT_SCORE], 1);
    assert_int_equal(q.want[UFD_V2_OUT_NFA], 2);
    assert_int_equal(q.want[UFD_V2_OUT_MAP], 0);
    assert_int_equal(q.opts.nfa_window, 3);
    ufd_v2_request_free(&q);
    /* BYTES elements stay in the body until asked for */
    const char *bytes = "{\"inputs\":[{\"name\":\"i\",\"datatype\":\"BYTES\",\"shape\":[2],"
                        "\"data\":[\"aGVsbG8=\",\"d29y\\/bGQ=\"]}]}";
    assert_int_equal(v2(bytes, 0, &q, &e, err, sizeof err), 0);
    assert_int_equal(q.batch, 2);
    assert_int_equal(q.want[UFD_V2_OUT_MAP], 1);
    const unsigned char *data;
    size_t n;
    unsigned char *owned;
    assert_int_equal(ufd_v2_item(&q, 0, &data, &n, &owned, &e, err, sizeof err), 0);
    assert_memory_equal(data, "hello", 5);
    g_free(owned);
    assert_int_equal(ufd_v2_item(&q, 1, &data, &n, &owned, &e, err, sizeof err), -1);
    assert_int_equal(e, UFD_E_BAD_BASE64);
    ufd_v2_request_free(&q);
    /* binary extension: 12 floats after the JSON */
    const char *hdr = "{\"inputs\":[{\"name\":\"i\",\"datatype\":\"FP32\",\"shape\":[1,3,2,2],"
                      "\"parameters\":{\"binary_data_size\":48}}],\"outputs\":[{\"name\":\"anomaly_map\","
                      "\"parameters\":{\"binary_data\":true}}]}";
    size_t hl = strlen(hdr);
    char *buf = malloc(hl + 48);
    memcpy(buf, hdr, hl);
    for (int i = 0; i < 12; i++) {
        float f = (float)i / 2;
        memcpy(buf + hl + 4 * i, &f, 4);
    }
    assert_int_equal(ufd_v2_parse(buf, hl + 48, hl, 2, 2, &q, &e, err, sizeof err), 0);
    assert_true(q.x[3] == 1.5f);
    assert_true(q.binary[UFD_V2_OUT_MAP]);
    ufd_v2_request_free(&q);
    float inf = INFINITY;
    memcpy(buf + hl + 8, &inf, 4);
    assert_int_equal(ufd_v2_parse(buf, hl + 48, hl, 2, 2, &q, &e, err, sizeof err), -1);
    assert_non_null(strstr(err, "finite"));
    ufd_v2_request_free(&q);
    assert_int_equal(ufd_v2_parse(buf, hl + 40, hl, 2, 2, &q, &e, err, sizeof err), -1);
    ufd_v2_request_free(&q);
    free(buf);
    static const struct { const char *body; ufd_err e; const char *msg; } bad[] = {
        /* finite in JSON, but no float32 */
        {"{\"inputs\":[{\"datatype\":\"FP32\",\"shape\":[1,3,2,2],\"data\":[1e39,1,1,1,1,1,1,1,1,1,1,1]}]}",
         UFD_E_BAD_REQUEST, "float32 range"},
        {"{\"inputs\":[{\"datatype\":\"FP32\",\"shape\":[1,3,2,2],\"data\":[1e999,1,1,1,1,1,1,1,1,1,1,1]}]}",
         UFD_E_BAD_REQUEST, "out of range"},
        {"{\"inputs\":[{\"datatype\":\"FP32\",\"shape\":[1,3,2,2],\"data\":[1,1]}]}", UFD_E_BAD_REQUEST, "exactly"},
        {"{\"inputs\":[{\"datatype\":\"FP32\",\"shape\":[1,3,2,2],\"data\":[1,1,1,1,1,1,1,1,1,1,1,1,1]}]}",
         UFD_E_BAD_REQUEST, "exactly"},
        {"{\"inputs\":[{\"datatype\":\"FP32\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"x\"]}]}",
         UFD_E_BAD_JSON, "duplicate key"},
        {"{\"inputs\":[],\"inputs\":[]}", UFD_E_BAD_JSON, "duplicate key"},
        {"{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"x\"]},{}]}", UFD_E_BAD_REQUEST, "exactly one"},
        {"{\"inputs\":[{\"datatype\":\"INT8\",\"shape\":[1],\"data\":[1]}]}", UFD_E_BAD_REQUEST, "FP32 or BYTES"},
        {"{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[17],\"data\":[]}]}", UFD_E_BAD_REQUEST, "1 <= B"},
        {"{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[1]}]}", UFD_E_BAD_REQUEST, "base64 strings"},
        {"{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"x\"]}],\"outputs\":[{\"name\":\"z\"}]}",
         UFD_E_BAD_REQUEST, "unknown output"},
        {"{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"x\"]}],"
         "\"outputs\":[{\"name\":\"pred_score\"},{\"name\":\"pred_score\"}]}", UFD_E_BAD_REQUEST, "twice"},
        {"{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"x\"]}],\"parameters\":{\"nfa_prob_thr\":7}}",
         UFD_E_BAD_REQUEST, "nfa_prob_thr"},
        {"{\"id\":5,\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"x\"]}]}", UFD_E_BAD_REQUEST, "'id'"},
        {"{\"inputs\":[{\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"x\"]}]", UFD_E_BAD_JSON, "invalid JSON"},
        {"not json", UFD_E_BAD_JSON, "JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (v2(bad[i].body, 0, &q, &e, err, sizeof err) != -1)
            fail_msg("v2 body %zu should be refused", i);
        if (e != bad[i].e || !strstr(err, bad[i].msg))
            fail_msg("v2 body %zu: error %d '%s', expected %d '%s'", i, e, err, bad[i].e, bad[i].msg);
        ufd_v2_request_free(&q);
    }
}

/* ---- API key file ---------------------------------------------------------------- */

static ufd_auth *keys_from(const char *text, char *err, size_t n)
{
    char path[] = "/tmp/ufd_keys_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    ufd_auth *a = ufd_auth_load(path, err, n);
    unlink(path);
    return a;
}

static void test_auth(void **state)
{
    (void)state;
    char err[300];
    /* a key longer than any line buffer is one key: its halves are not keys (issue 13.9) */
    char *big = malloc(5002), *half = malloc(2501);
    memset(big, 'k', 5000);
    big[5000] = '\n';
    big[5001] = '\0';
    ufd_auth *a = keys_from(big, err, sizeof err);
    assert_null(a); /* over UFD_AUTH_KEY_MAX: refused, the line named */
    assert_non_null(strstr(err, "line 1"));
    memset(big, 'k', UFD_AUTH_KEY_MAX);
    memcpy(big + UFD_AUTH_KEY_MAX, "\n", 2);
    GString *file = g_string_new("# comment\n\n  short-key  \n");
    g_string_append(file, big);
    a = keys_from(file->str, err, sizeof err);
    assert_non_null(a);
    big[UFD_AUTH_KEY_MAX] = '\0';
    assert_true(ufd_auth_check(a, NULL, big));
    memset(half, 'k', 1000);
    half[1000] = '\0';
    assert_false(ufd_auth_check(a, NULL, half));
    /* white space around a Bearer token is not part of it; inside a key it is */
    assert_true(ufd_auth_check(a, "Bearer short-key", NULL));
    assert_true(ufd_auth_check(a, "Bearer   short-key \t ", NULL));
    assert_true(ufd_auth_check(a, "bearer short-key", NULL));
    assert_false(ufd_auth_check(a, "Bearer short-ke", NULL));
    assert_false(ufd_auth_check(a, "Bearer short-key x", NULL));
    assert_false(ufd_auth_check(a, "Bearer ", NULL));
    assert_false(ufd_auth_check(a, "Basic short-key", NULL));
    assert_false(ufd_auth_check(a, NULL, "# comment"));
    ufd_auth_free(a);
    g_string_free(file, TRUE);
    assert_null(keys_from("# only a comment\n\n", err, sizeof err));
    assert_non_null(strstr(err, "no key"));
    free(big);
    free(half);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target),       cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_jscan),        cmocka_unit_test(test_predict_body),
        cmocka_unit_test(test_v2_request),   cmocka_unit_test(test_auth),
    };
    return cmocka_run_group_tests_name("server_parsers", tests, NULL, NULL);
}
