/* test_server_ops.c — uflowd as operators meet it: overload (503 with Retry-After),
 * timeouts (504), API keys and --public-health, --healthcheck, SIGTERM with requests in
 * flight (all answered, JSON log lines), the command line and its environment twins. */
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

/* A KServe v2 body of n copies of the golden 640x480 JPEG. */
static GString *v2_many(int n)
{
    size_t len;
    unsigned char *img = input_bytes(1, &len);
    gchar *b64 = g_base64_encode(img, len);
    GString *body = g_string_new("");
    g_string_printf(body, "{\"inputs\":[{\"name\":\"image\",\"datatype\":\"BYTES\",\"shape\":[%d],\"data\":[", n);
    for (int i = 0; i < n; i++)
        g_string_append_printf(body, "%s\"%s\"", i ? "," : "", b64);
    g_string_append(body, "]}]}");
    g_free(b64);
    free(img);
    return body;
}

/* --drain-timeout covers running jobs (issue 13.8): a KServe request of 16 images that
 * holds the only worker for seconds stops between two decodes once the drain timeout has
 * passed (503), and the daemon exits 0 soon after. */
static void test_drain_timeout(void **state)
{
    (void)state;
    uflowd d;
    char args[1500];
    snprintf(args, sizeof args, "--model golden=%s --workers 1 --drain-timeout 0.5 --request-timeout 120",
             golden_model);
    daemon_start(&d, "drain_timeout", args, 1);
    GString *body = v2_many(16);
    reqopt o = {.ctype = "application/json", .body = body->str, .len = body->len};
    resp rs[1];
    drain_state s = {.port = d.port, .target = 1, .pid = d.pid, .t0 = now_s()};
    concurrent(d.port, "/v2/models/golden/infer", &o, 1, rs, drain_tick, &s);
    double t_sig = now_s();
    assert_true(s.sent);
    if (rs[0].status != 503 || !strstr(rs[0].body, "drain timeout"))
        fail_msg("a running job after the drain timeout: %ld %s", rs[0].status, rs[0].body ? rs[0].body : "");
    resp_free(&rs[0]);
    int st = 0, exited = 0;
    while (!exited && now_s() - t_sig < 20) {
        if (waitpid(d.pid, &st, WNOHANG) == d.pid)
            exited = 1;
        else
            sleep_ms(10);
    }
    assert_true(exited);
    d.pid = 0;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    g_string_free(body, TRUE);
}

/* The request deadline is checked between the stages (each decode, each inference) of a
 * v2 request, not once at the end (issue 13.8). */
static void test_v2_deadline(void **state)
{
    (void)state;
    uflowd d;
    char args[1500];
    snprintf(args, sizeof args, "--model golden=%s --workers 1 --request-timeout 0.3", golden_model);
    daemon_start(&d, "v2_deadline", args, 1);
    GString *body = v2_many(16);
    reqopt o = {.ctype = "application/json", .body = body->str, .len = body->len};
    resp r;
    assert_int_equal(http(&r, d.port, "/v2/models/golden/infer", &o), 504);
    resp_free(&r);
    /* stopped at the first stage past the deadline: far fewer than 16 images were run */
    double runs = wait_metric(d.port, "uflowd_inference_duration_seconds_count{model=\"golden\"}", 1);
    if (runs < 1 || runs >= 16)
        fail_msg("%g of 16 inferences ran after a 0.3 s deadline", runs);
    g_string_free(body, TRUE);
    assert_int_equal(daemon_stop(&d), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_sigterm_drain),
        cmocka_unit_test(test_drain_timeout),
        cmocka_unit_test(test_v2_deadline),
        cmocka_unit_test(test_command_line),
    };
    return server_main(argc, argv, "server_ops", tests, sizeof tests / sizeof tests[0], 0);
}
