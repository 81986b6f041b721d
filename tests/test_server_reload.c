/* test_server_reload.c — model reload: SIGHUP while clients keep predicting (every request
 * 200, the new version served afterwards), POST /v1/models/reload with new, broken, fixed
 * and removed files, a reload that would leave nothing. */
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

    /* a broken file: the previous version stays, reported (a link keeps the served file) */
    char pa0[1400], keep[1400];
    snprintf(pa0, sizeof pa0, "%s/a.safetensors", dir);
    snprintf(keep, sizeof keep, "%s/a.keep", dir);
    assert_int_equal(link(pa0, keep), 0);
    put_garbage(dir, "a.safetensors");
    j = post_reload(port, NULL);
    assert_true(json_is_false(json_object_get(j, "ok")));
    json_t *f = json_array_get(json_object_get(j, "failed"), 0);
    assert_string_equal(json_string_value(json_object_get(f, "name")), "a");
    assert_true(strlen(json_string_value(json_object_get(f, "error"))) > 0);
    assert_true(str_in(json_object_get(j, "models"), "a"));
    json_int_t gen_failed = json_integer_value(json_object_get(j, "generation"));
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
    /* the same failure again changes nothing: same generation (issue 13.10) */
    j = post_reload(port, NULL);
    assert_true(json_is_false(json_object_get(j, "ok")));
    assert_int_equal(json_integer_value(json_object_get(j, "generation")), gen_failed);
    json_decref(j);
    /* the served file put back: no longer stale, and that is a change */
    assert_int_equal(rename(keep, pa0), 0);
    j = post_reload(port, NULL);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_true(str_in(json_object_get(j, "unchanged"), "a"));
    assert_int_equal(json_integer_value(json_object_get(j, "generation")), gen_failed + 1);
    json_decref(j);
    assert_int_equal(model_state(port, "a", ver, st), 200);
    assert_string_equal(ver, va);
    assert_string_equal(st, "loaded");
    assert_true(get_metric(port, "uflowd_model_stale{model=\"a\"}", NULL) == 0);
    j = post_reload(port, NULL); /* and nothing else changed since */
    assert_int_equal(json_integer_value(json_object_get(j, "generation")), gen_failed + 1);
    json_decref(j);

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

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reload_sighup_under_load),
        cmocka_unit_test(test_reload_post),
    };
    return server_main(argc, argv, "server_reload", tests, sizeof tests / sizeof tests[0], 0);
}
