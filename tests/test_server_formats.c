/* test_server_formats.c — uflowd and image formats (issue 13, item 1): a format outside the
 * allow-list gets 415 naming the accepted formats on every way an image comes in (raw body,
 * JSON base64, KServe v2 BYTES), before any decoder runs; a WebP whose canvas is above
 * --max-pixels gets 413; the daemon stays ready. argv[1] is the uflowd binary. */
#include "image_craft.h"
#include "server_harness.h"

#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

static uflowd d;

static void post_expect(const char *path, const char *ctype, const void *body, size_t len,
                        long status, const char *code)
{
    resp r;
    reqopt o = {.ctype = ctype, .body = body, .len = len};
    http(&r, d.port, path, &o);
    expect_error(&r, status, code);
    assert_non_null(strstr(r.body, UF_IMAGE_ACCEPTED));
    resp_free(&r);
}

static void test_refused(void **state)
{
    (void)state;
    const char *P = "/v1/models/golden/predict";
    static const struct { const char *craft, *ctype; } cases[] = {
        {"svg", "image/svg+xml"},           {"pdf", "application/octet-stream"},
        {"ppm", "image/x-portable-pixmap"}, {"pfm", "application/octet-stream"},
        {"hdr", "image/vnd.radiance"},      {"fits", "image/fits"},
        {"bmp", "image/bmp"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        /* the BMP: headers of a 16000x16000 image, which ImageMagick allocated */
        unsigned char *b = strcmp(cases[i].craft, "bmp") ? craft_refused(cases[i].craft, &len)
                                                         : craft_bmp(16000, 16000, 0, &len);
        assert_non_null(b);
        post_expect(P, cases[i].ctype, b, len, 415, "unsupported_media_type");
        gchar *b64 = g_base64_encode(b, len);
        gchar *js = g_strdup_printf("{\"image\": \"%s\"}", b64);
        post_expect(P, "application/json", js, strlen(js), 415, "unsupported_media_type");
        g_free(js);
        js = g_strdup_printf("{\"inputs\":[{\"name\":\"image\",\"datatype\":\"BYTES\",\"shape\":[1],"
                             "\"data\":[\"%s\"]}]}", b64);
        resp r;
        reqopt v2 = {.ctype = "application/json", .body = js, .len = strlen(js)};
        assert_int_equal(http(&r, d.port, "/v2/models/golden/infer", &v2), 415);
        assert_non_null(strstr(r.body, UF_IMAGE_ACCEPTED));
        resp_free(&r);
        g_free(js);
        g_free(b64);
        free(b);
    }
    /* unrecognised bytes stay a 400 */
    size_t len;
    unsigned char *m = craft_refused("matrix", &len);
    resp r;
    reqopt o = {.ctype = "image/png", .body = m, .len = len};
    http(&r, d.port, P, &o);
    expect_error(&r, 400, "bad_image");
    resp_free(&r);
    free(m);
}

static void test_webp_canvas(void **state)
{
    (void)state;
    size_t len;
    unsigned char *w = craft_webp_huge(0, 16383, 16383, &len);
    assert_non_null(w);
    resp r;
    reqopt o = {.ctype = "image/webp", .body = w, .len = len};
    http(&r, d.port, "/v1/models/golden/predict", &o);
    expect_error(&r, 413, "image_too_large");
    resp_free(&r);
    free(w);
    /* and an ordinary WebP is scored */
    w = craft_small("webp", 64, 48, &len);
    assert_non_null(w);
    o.body = w;
    o.len = len;
    assert_int_equal(http(&r, d.port, "/v1/models/golden/predict?heatmap=false", &o), 200);
    resp_free(&r);
    free(w);
    assert_int_equal(http_get_status(d.port, "/readyz"), 200);
}

static int setup(void **state)
{
    (void)state;
    char args[1500];
    char model[1024];
    ut_path(model, sizeof model, ut_golden_dir(), "resnet18_256_s4.safetensors");
    snprintf(args, sizeof args, "--model golden=%s --workers 1 --max-body 8M", model);
    daemon_start(&d, "formats", args, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int rc = daemon_stop(&d);
    if (rc != 0)
        fprintf(stderr, "uflowd exited with %d (see %s)\n", rc, d.log);
    kill_all();
    return rc == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_server_formats PATH/TO/uflowd\n");
        return 2;
    }
    uflowd_bin = argv[1];
    if (!mkdtemp(tmpdir) || VIPS_INIT("test_server_formats")) /* craft_* encode with libvips */
        return 1;
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_webp_canvas),
    };
    int rc = cmocka_run_group_tests_name("server_formats", tests, setup, teardown);
    kill_all();
    curl_global_cleanup();
    if (ut_rmtree(tmpdir) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
