/* test_ui.c — the browser page's HTTP side on the real uflowd (argv[1]), with an API key:
 * GET /ui needs no key and carries a Content-Security-Policy whose hashes are those of the
 * page's inline script and style as served; GET / redirects browsers (Accept: text/html)
 * to it, with or without a key, while API clients keep the JSON answer (and its 401); the
 * exemption opens nothing else. Every answer is then checked against api/openapi.yaml.
 * What the page does in a browser: tests/ui/ui_check.py. */
#include "server_harness.h"

#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *python_bin;
static uflowd d;
#define KEY "ui-test-key"
#define AUTH "Authorization: Bearer " KEY
#define BROWSER "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"

static int setup(void **state)
{
    (void)state;
    char keys[300], args[1600], model[1200];
    snprintf(keys, sizeof keys, "%s/keys", tmpdir);
    FILE *f = fopen(keys, "w");
    if (!f)
        return -1;
    fputs(KEY "\n", f);
    fclose(f);
    ut_path(model, sizeof model, ut_golden_dir(), "resnet18_256_s4.safetensors");
    snprintf(args, sizeof args, "--model golden=%s --workers 1 --api-key-file %s", model, keys);
    daemon_start(&d, "ui", args, 0);
    for (int i = 0; i < 600 && get_metric(d.port, "uflowd_ready", AUTH) != 1; i++)
        sleep_ms(50);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return daemon_stop(&d) == 0 ? 0 : -1;
}

/* "'sha256-BASE64'" of the text between <tag> and </tag> (the first such block). */
static char *block_hash(const char *html, const char *tag)
{
    char open[16], close[16];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(html, open), *b = a ? strstr(a, close) : NULL;
    assert_non_null(b);
    a += strlen(open);
    guint8 digest[32];
    gsize n = sizeof digest;
    GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
    g_checksum_update(c, (const guchar *)a, b - a);
    g_checksum_get_digest(c, digest, &n);
    g_checksum_free(c);
    gchar *b64 = g_base64_encode(digest, n);
    char *out = g_strdup_printf("'sha256-%s'", b64);
    g_free(b64);
    return out;
}

static void test_page(void **state)
{
    (void)state;
    resp r;
    char v[2048];
    assert_int_equal(http(&r, d.port, "/ui", NULL), 200); /* no key */
    assert_string_equal(resp_header(&r, "Content-Type", v, sizeof v), "text/html; charset=utf-8");
    assert_non_null(strstr(r.body, "<title>uflowd"));
    assert_non_null(resp_header(&r, "Content-Security-Policy", v, sizeof v));
    const char *want[] = {"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'",
                          "form-action 'none'", "require-trusted-types-for 'script'"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(v, want[i]))
            fail_msg("CSP lacks %s: %s", want[i], v);
    assert_null(strstr(v, "unsafe-inline"));
    const char *tags[] = {"script", "style"};
    for (size_t i = 0; i < 2; i++) {
        char *h = block_hash(r.body, tags[i]);
        if (!strstr(v, h))
            fail_msg("the CSP does not allow the served <%s> (%s): %s", tags[i], h, v);
        g_free(h);
    }
    char h[64];
    assert_string_equal(resp_header(&r, "X-Content-Type-Options", h, sizeof h), "nosniff");
    assert_string_equal(resp_header(&r, "X-Frame-Options", h, sizeof h), "DENY");
    assert_string_equal(resp_header(&r, "Referrer-Policy", h, sizeof h), "no-referrer");
    resp_free(&r);

    /* HEAD (by hand: the harness's requests always read a body) */
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ui", d.port);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    long status = 0;
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    assert_int_equal(status, 200);
    reqopt post = {.ctype = "text/plain", .body = "x", .len = 1};
    assert_int_equal(http(&r, d.port, "/ui", &post), 405);
    expect_error(&r, 405, "method_not_allowed");
    resp_free(&r);
}

static void test_root_redirect(void **state)
{
    (void)state;
    resp r;
    char v[256];
    reqopt browser = {.h1 = BROWSER}, browser_key = {.h1 = BROWSER, .h2 = AUTH};
    const reqopt *browsers[] = {&browser, &browser_key};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(http(&r, d.port, "/", browsers[i]), 302);
        assert_string_equal(resp_header(&r, "Location", v, sizeof v), "ui"); /* relative: proxy prefixes survive */
        resp_free(&r);
    }
    /* API clients: the JSON answer, behind the key as before */
    assert_int_equal(http(&r, d.port, "/", NULL), 401);
    expect_error(&r, 401, "unauthorized");
    resp_free(&r);
    const char *json_accepts[] = {NULL, "Accept: */*", "Accept: application/json", "Accept: text/html;q=0, */*",
                                  "Accept: text/html; q=0.0", "Accept: text/htmlx", "Accept: text/plain, text/*"};
    for (size_t i = 0; i < sizeof json_accepts / sizeof *json_accepts; i++) {
        reqopt o = {.h1 = AUTH, .h2 = json_accepts[i]};
        assert_int_equal(http(&r, d.port, "/", &o), 200);
        json_t *j = resp_json(&r);
        assert_string_equal(json_string_value(json_object_get(j, "name")), "uflowd");
        json_decref(j);
        resp_free(&r);
    }
    const char *html_accepts[] = {"Accept: TEXT/HTML", "Accept: application/xhtml+xml",
                                  "Accept: application/json;q=0.5, text/html;q=0.1"};
    for (size_t i = 0; i < sizeof html_accepts / sizeof *html_accepts; i++) {
        reqopt o = {.h1 = html_accepts[i]};
        if (http(&r, d.port, "/", &o) != 302)
            fail_msg("%s: %ld, not 302", html_accepts[i], r.status);
        resp_free(&r);
    }
}

/* The page's exemption from the key is exactly /ui and the redirect. */
static void test_exemption_is_narrow(void **state)
{
    (void)state;
    resp r;
    reqopt browser = {.h1 = BROWSER};
    const char *paths[] = {"/ui/", "/uix", "/ui/index.html", "/v1/models", "/metrics", "/openapi.yaml"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        if (http(&r, d.port, paths[i], &browser) != 401)
            fail_msg("%s without a key: %ld, not 401", paths[i], r.status);
        expect_error(&r, 401, "unauthorized");
        resp_free(&r);
    }
    double n = 0;
    for (int i = 0; i < 100 && n < 2; i++, sleep_ms(20)) /* counted just after the answer: bounded poll */
        n = get_metric(d.port, "uflowd_requests_total{model=\"\",endpoint=\"ui\",code=\"200\"}", AUTH);
    assert_true(n >= 2);
}

static void test_openapi(void **state)
{
    (void)state;
    if (!python_bin) {
        print_message("  no python3: answers not checked against api/openapi.yaml\n");
        return;
    }
    const char *recorded = record_path;
    record_path = NULL;
    char out[8192];
    int rc = ut_run_stdout(out, sizeof out, "%s %s/tests/openapi_check.py %s/api/openapi.yaml %s", python_bin,
                           UF_SOURCE_ROOT, UF_SOURCE_ROOT, recorded);
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        print_message("%s\n", l);
    if (rc == 77)
        skip();
    assert_int_equal(rc, 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_ui PATH/TO/uflowd [python3]\n");
        return 2;
    }
    uflowd_bin = argv[1];
    python_bin = argc > 2 ? argv[2] : NULL;
    if (!mkdtemp(tmpdir))
        return 1;
    static char records[300];
    snprintf(records, sizeof records, "%s/answers.jsonl", tmpdir);
    record_path = records;
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page), cmocka_unit_test(test_root_redirect), cmocka_unit_test(test_exemption_is_narrow),
        cmocka_unit_test(test_openapi),
    };
    int rc = cmocka_run_group_tests_name("ui", tests, setup, teardown);
    kill_all();
    curl_global_cleanup();
    if (!getenv("UFLOWD_TEST_KEEP") && ut_rmtree(tmpdir) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
