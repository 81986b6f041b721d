/* test_server_errors.c — every v1 error class on the real daemon: routing, methods, media
 * types, malformed bodies and options, image and body limits, and requests whose meaning
 * would be a guess (encoded NUL or '/', repeated parameters, parts or keys, over-long options). */
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
    /* still alive and well, and every error counted */
    assert_int_equal(http_get_status(main_d.port, "/readyz"), 200);
    int port = main_d.port;
    assert_true(wait_metric(port, "uflowd_requests_total{model=\"\",endpoint=\"unknown\",code=\"404\"}", 1) >= 1);
    assert_true(get_metric(port, "uflowd_errors_total{kind=\"bad_image\"}", NULL) >= 3);
    assert_true(get_metric(port, "uflowd_errors_total{kind=\"image_too_large\"}", NULL) >= 1);
    assert_true(get_metric(port, "uflowd_rejected_total{reason=\"body_too_large\"}", NULL) >= 1);
}

/* A raw GET of target on main_d: the status, the v1 error code into code (64 bytes). */
static long raw_get(const char *target, char *code)
{
    char req[512], out[8192];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target);
    long st = raw_http(main_d.port, NULL, req, strlen(req), 0, 10, out, sizeof out, NULL);
    code[0] = '\0';
    const char *b = raw_body(out);
    json_t *j = b ? json_loads(b, 0, NULL) : NULL;
    const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    if (c)
        snprintf(code, 64, "%s", c);
    json_decref(j);
    return st;
}

/* Issue 13 items 4, 5: nothing ambiguous is guessed at. An encoded NUL or '/' in a path
 * segment, a query parameter twice, two 'image' parts, a JSON key twice, an option string
 * longer than an option can be: 400, never truncated, merged or first-wins. */
static void test_ambiguous_requests(void **state)
{
    (void)state;
    char code[64];
    /* raw sockets: curl would normalise "/../" away */
    assert_int_equal(raw_get("/v1/models/small%00/../../x", code), 400);
    assert_string_equal(code, "bad_request");
    assert_int_equal(raw_get("/v1/models/sm%2Fall", code), 400);
    assert_int_equal(raw_get("/v1/models/small%2F", code), 400);
    assert_int_equal(raw_get("/v1/models/sm%41ll", code), 404); /* a decoded letter is fine: no model "smAll" */
    assert_int_equal(raw_get("/v1/models/sm%61ll", code), 200);
    assert_int_equal(raw_get("http://uflowd.example/healthz", code), 200); /* absolute-form */
    size_t len;
    unsigned char *img = input_bytes(0, &len);
    resp r;
    reqopt o = {.ctype = "image/png", .body = img, .len = len};
    http(&r, main_d.port, "/v1/models/small/predict?heatmap=false&heatmap=true", &o);
    expect_error(&r, 400, "bad_request");
    assert_non_null(strstr(r.body, "twice"));
    resp_free(&r);
    http(&r, main_d.port, "/v1/models/small/predict?mask_epsilon=1%00junk", &o);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    /* an option longer than UFD_OPT_TEXT_MAX (63): before, cut to 63 and "0.000...0" taken */
    char lng[200], path[300];
    snprintf(lng, sizeof lng, "0.%070dx", 0);
    snprintf(path, sizeof path, "/v1/models/small/predict?mask_epsilon=%s", lng);
    http(&r, main_d.port, path, &o);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    /* multipart: two image parts; an over-long option field; a field twice */
    CURL *dummy = curl_easy_init();
    const char *fields[3][4] = {{"image", "image", NULL, NULL}, {"image", "mask_epsilon", NULL, NULL},
                                {"image", "heatmap", "heatmap", NULL}};
    const char *why[3] = {"two 'image' parts", "longer than", "given twice"};
    for (int k = 0; k < 3; k++) {
        curl_mime *mime = curl_mime_init(dummy);
        for (int f = 0; fields[k][f]; f++) {
            curl_mimepart *part = curl_mime_addpart(mime);
            curl_mime_name(part, fields[k][f]);
            if (!strcmp(fields[k][f], "image"))
                curl_mime_data(part, (const char *)img, len);
            else
                curl_mime_data(part, !strcmp(fields[k][f], "heatmap") ? "false" : lng, CURL_ZERO_TERMINATED);
        }
        reqopt mo = {.mime = mime};
        http(&r, main_d.port, "/v1/models/small/predict", &mo);
        expect_error(&r, 400, "bad_request");
        if (!strstr(r.body, why[k]))
            fail_msg("multipart case %d: %s", k, r.body);
        resp_free(&r);
        curl_mime_free(mime);
    }
    curl_easy_cleanup(dummy);
    /* JSON: a key twice, also spelt with an escape; an over-long option string */
    gchar *b64 = g_base64_encode(img, len);
    gchar *body = g_strdup_printf("{\"image\":\"%s\",\"heatmap\":false,\"he\\u0061tmap\":true}", b64);
    PE("/v1/models/small/predict", "application/json", body, 400, "bad_json");
    g_free(body);
    body = g_strdup_printf("{\"image\":\"%s\",\"image\":\"%s\"}", b64, b64);
    PE("/v1/models/small/predict", "application/json", body, 400, "bad_json");
    g_free(body);
    body = g_strdup_printf("{\"image\":\"%s\",\"mask_epsilon\":\"%s\"}", b64, lng);
    PE("/v1/models/small/predict", "application/json", body, 400, "bad_request");
    g_free(body);
    /* and the same body without the ambiguity is fine */
    body = g_strdup_printf("{\"image\":\"%s\",\"heatmap\":false,\"mask_epsilon\":\"-1\"}", b64);
    reqopt jo = {.ctype = "application/json", .body = body, .len = strlen(body)};
    assert_int_equal(http(&r, main_d.port, "/v1/models/small/predict", &jo), 200);
    resp_free(&r);
    g_free(body);
    g_free(b64);
    free(img);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_ambiguous_requests),
    };
    return server_main(argc, argv, "server_errors", tests, sizeof tests / sizeof tests[0], 1);
}
