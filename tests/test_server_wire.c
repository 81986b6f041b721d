/* test_server_wire.c — uflowd on the wire, through plain sockets (issue 13 items 2 and 3):
 * framing that proxies and servers could read differently (a second or non-digit
 * Content-Length, a transfer coding before chunked), heads libmicrohttpd used to answer
 * itself (414/431/400/505: now uflowd's JSON error body, counted), absolute-form targets,
 * half-closed clients (every answer still arrives), and slow clients (slowloris): a head
 * must be complete in --header-timeout however it trickles, one client address holds at
 * most --max-connections-per-ip, and slow heads never take the reserve that good clients
 * and probes are served from; JSON log lines keep bytes that are not UTF-8. Waits are
 * bounded; nothing here measures speed. */
#include "server_fixture.h"

#include <arpa/inet.h>
#include <glib.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HOST "Host: t\r\n"

/* A raw request to main_d; the answer must be `status` with the v1 error `code` in a JSON
 * body (one status line: the body holds no second one) and the server must close. */
static void raw_expect(const char *req, size_t len, long status, const char *code)
{
    static char out[65536];
    double closed;
    long st = raw_http(main_d.port, NULL, req, len, 0, 5, out, sizeof out, &closed);
    if (st != status)
        fail_msg("%.60s...: status %ld, want %ld: %.300s", req, st, status, out);
    const char *b = raw_body(out);
    assert_non_null(b);
    if (strstr(b, "HTTP/1.1 4") || strstr(b, "HTTP/1.0 4") || strstr(b, "\r\n\r\n"))
        fail_msg("%.60s...: a second answer inside the body: %.300s", req, b);
    json_error_t je;
    json_t *j = json_loads(b, 0, &je);
    if (!j)
        fail_msg("%.60s...: body is not JSON: %.300s", req, b);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), code);
    assert_true(json_is_string(json_object_get(j, "request_id")));
    json_decref(j);
    assert_true(closed >= 0); /* closed, not left open for another request */
}

#define RAW(text, status, code) raw_expect(text, strlen(text), status, code)

static void test_framing(void **state)
{
    (void)state;
    double bad0 = get_metric(main_d.port, "uflowd_errors_total{kind=\"bad_http\"}", NULL);
    /* request smuggling behind a proxy: two lengths, equal or not; lengths that are not digits */
    RAW("POST /v1/models/small/predict HTTP/1.1\r\n" HOST "Content-Type: image/png\r\nContent-Length: 4\r\n"
        "Content-Length: 40\r\n\r\nabcd", 400, "bad_http");
    RAW("POST /v1/models/small/predict HTTP/1.1\r\n" HOST "Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
        400, "bad_http");
    RAW("POST /v1/models/small/predict HTTP/1.1\r\n" HOST "Content-Length: 4x\r\n\r\nabcd", 400, "bad_http");
    RAW("POST /v1/models/small/predict HTTP/1.1\r\n" HOST "Content-Length: -1\r\n\r\nabcd", 400, "bad_http");
    RAW("POST /v1/models/small/predict HTTP/1.1\r\n" HOST "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4\r\nabcd\r\n0\r\n\r\n", 400, "bad_http");
    /* codings: chunked must come last (400), nothing but chunked is decoded (501) */
    RAW("POST /v1/models/small/predict HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip\r\n\r\nabcd", 400, "bad_http");
    RAW("POST /v1/models/small/predict HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
        "not_implemented");
    /* heads libmicrohttpd answered with its own HTML */
    char *longt = malloc(9100);
    int n = snprintf(longt, 9100, "GET /v1/models/");
    memset(longt + n, 'a', 9000);
    snprintf(longt + n + 9000, 100, " HTTP/1.1\r\n" HOST "\r\n");
    raw_expect(longt, strlen(longt), 414, "uri_too_long");
    free(longt);
    GString *many = g_string_new("GET /healthz HTTP/1.1\r\n" HOST);
    for (int i = 0; i < 120; i++)
        g_string_append_printf(many, "X-F%d: v\r\n", i);
    g_string_append(many, "\r\n");
    raw_expect(many->str, many->len, 431, "headers_too_large");
    g_string_assign(many, "GET /healthz HTTP/1.1\r\n" HOST "X-Big: ");
    for (int i = 0; i < 17000; i++)
        g_string_append_c(many, 'b');
    g_string_append(many, "\r\n\r\n");
    raw_expect(many->str, many->len, 431, "headers_too_large");
    g_string_free(many, TRUE);
    RAW("GET /healthz HTTP/2.0\r\n" HOST "\r\n", 505, "http_version_not_supported");
    RAW("GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_http");                      /* no Host */
    RAW("GET /healthz HTTP/1.1\r\n" HOST "Host: u\r\n\r\n", 400, "bad_http");  /* two */
    RAW("GET /healthz HTTP/1.1\r\n" HOST " folded\r\n\r\n", 400, "bad_http");
    RAW("GET /healthz HTTP/1.1\nHost: t\n\n", 400, "bad_http");                 /* bare LF */
    RAW("GET /healthz HTTP/1.1\r\nHost : t\r\n\r\n", 400, "bad_http");
    RAW("BL\x01H\r\n\r\n", 400, "bad_http");
    /* all counted, and the daemon keeps serving */
    double bad1 = wait_metric(main_d.port, "uflowd_errors_total{kind=\"bad_http\"}", bad0 + 12);
    assert_true(bad1 >= bad0 + 12);
    assert_true(get_metric(main_d.port, "uflowd_errors_total{kind=\"uri_too_long\"}", NULL) >= 1);
    assert_true(get_metric(main_d.port, "uflowd_errors_total{kind=\"headers_too_large\"}", NULL) >= 2);
    assert_true(get_metric(main_d.port, "uflowd_errors_total{kind=\"http_version_not_supported\"}", NULL) >= 1);
    assert_true(get_metric(main_d.port, "uflowd_errors_total{kind=\"not_implemented\"}", NULL) >= 1);
    /* absolute-form targets route on their path */
    char out[4096];
    const char *abs = "GET http://t/healthz HTTP/1.1\r\n" HOST "\r\n";
    assert_int_equal(raw_http(main_d.port, NULL, abs, strlen(abs), 0, 5, out, sizeof out, NULL), 200);
    assert_int_equal(http_get_status(main_d.port, "/readyz"), 200);
}

/* A complete request and then shutdown(SHUT_WR), as `nc -N` sends: each is answered. */
static void test_half_close(void **state)
{
    (void)state;
    size_t len;
    unsigned char *img = input_bytes(0, &len);
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "POST /v1/models/small/predict HTTP/1.1\r\n" HOST "Content-Type: image/png\r\n"
                      "Content-Length: %zu\r\n\r\n", len);
    unsigned char *req = malloc((size_t)hn + len);
    memcpy(req, head, (size_t)hn);
    memcpy(req + hn, img, len);
    static char out[65536];
    int answered = 0, healthy = 0;
    for (int i = 0; i < 20; i++) {
        answered += raw_http(main_d.port, NULL, req, (size_t)hn + len, 1, 10, out, sizeof out, NULL) == 200;
        const char *g = "GET /healthz HTTP/1.1\r\n" HOST "\r\n";
        healthy += raw_http(main_d.port, NULL, g, strlen(g), 1, 10, out, sizeof out, NULL) == 200;
    }
    if (answered != 20 || healthy != 20)
        fail_msg("half-closed: %d of 20 predictions and %d of 20 health checks answered", answered, healthy);
    /* a body cut short by EOF: an answer or a prompt close, never a hang */
    double closed;
    raw_http(main_d.port, NULL, req, (size_t)hn + len / 2, 1, 3, out, sizeof out, &closed); /* idle timeout: 10 s */
    assert_true(closed >= 0);
    free(req);
    free(img);
}

/* A connection from src that sends `part` and then nothing; its descriptor. */
static int partial(int port, const char *src, const char *part)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)}, b = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    inet_pton(AF_INET, src, &b.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&b, sizeof b) != 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail_msg("cannot connect from %s", src);
    if (send(fd, part, strlen(part), MSG_NOSIGNAL) != (ssize_t)strlen(part))
        fail_msg("send");
    return fd;
}

/* Seconds until the server closes fd (draining what it sends), or -1 after `limit`. */
static double until_closed(int fd, double limit)
{
    double t0 = now_s();
    char buf[4096];
    while (now_s() - t0 < limit) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 100) > 0 && recv(fd, buf, sizeof buf, 0) <= 0)
            return now_s() - t0;
    }
    return -1;
}

static void test_slowloris(void **state)
{
    (void)state;
    uflowd d;
    char args[1600];
    snprintf(args, sizeof args, "--model small=%s/small.safetensors --workers 1 --max-connections 16 "
             "--max-connections-per-ip 64 --header-timeout 30", models_dir);
    daemon_start(&d, "slowloris", args, 1);
    /* 40 connections (the attack) from another address, heads never finished */
    int slow[40];
    for (int i = 0; i < 40; i++)
        slow[i] = partial(d.port, "127.0.0.2", "GET /healthz HTTP/1.1\r\nHo");
    sleep_ms(200);
    /* the good ones are all served at once, though the slow heads have 30 s left */
    char out[8192];
    const char *g = "GET /healthz HTTP/1.1\r\n" HOST "\r\n";
    int good = 0;
    for (int i = 0; i < 4; i++)
        good += raw_http(d.port, NULL, g, strlen(g), 0, 5, out, sizeof out, NULL) == 200;
    if (good != 4)
        fail_msg("%d of 4 good requests served next to 40 slow heads", good);
    assert_true(get_metric(d.port, "uflowd_rejected_total{reason=\"evicted\"}", NULL) >= 24);
    assert_true(get_metric(d.port, "uflowd_connections{phase=\"head\"}", NULL) <= 14);
    for (int i = 0; i < 40; i++)
        close(slow[i]);
    assert_int_equal(daemon_stop(&d), 0);

    /* a head must be complete in --header-timeout, however it trickles; one address holds at
     * most --max-connections-per-ip */
    snprintf(args, sizeof args, "--model small=%s/small.safetensors --workers 1 --max-connections 16 "
             "--max-connections-per-ip 3 --header-timeout 1", models_dir);
    daemon_start(&d, "trickle", args, 1);
    int fd = partial(d.port, "127.0.0.3", "G");
    double t0 = now_s(), closed = -1;
    const char *rest = "ET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for (size_t i = 0; rest[i] && now_s() - t0 < 8; i++) {
        if (send(fd, rest + i, 1, MSG_NOSIGNAL) != 1) { /* the server closed */
            closed = now_s() - t0;
            break;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 250) > 0) { /* its 408 */
            closed = now_s() - t0;
            break;
        }
    }
    close(fd);
    if (closed < 0 || closed > 4)
        fail_msg("a head trickled one byte per 250 ms was not cut after --header-timeout 1 (%.1f s)", closed);
    assert_true(get_metric(d.port, "uflowd_rejected_total{reason=\"header_timeout\"}", NULL) >= 1);
    int held[3];
    for (int i = 0; i < 3; i++)
        held[i] = partial(d.port, "127.0.0.4", "GET /");
    sleep_ms(100);
    const char *g4 = "GET /healthz HTTP/1.1\r\n" HOST "\r\n";
    long st = raw_http(d.port, "127.0.0.4", g4, strlen(g4), 0, 5, out, sizeof out, NULL);
    assert_int_equal(st, 503);
    assert_non_null(strstr(out, "too_many_connections"));
    assert_int_equal(raw_http(d.port, NULL, g4, strlen(g4), 0, 5, out, sizeof out, NULL), 200);
    for (int i = 0; i < 3; i++) { /* the held ones get their 408 once their time is up */
        double c = until_closed(held[i], 5);
        assert_true(c >= 0);
        close(held[i]);
    }
    assert_true(get_metric(d.port, "uflowd_rejected_total{reason=\"per_ip\"}", NULL) >= 1);
    /* a flood of refused connections kept open (each answered, then lingering) leaves room
     * for the next good client */
    int flood[150];
    for (int i = 0; i < 150; i++)
        flood[i] = partial(d.port, "127.0.0.5", "GET / HTTP/1.1\r\n");
    sleep_ms(100);
    assert_int_equal(raw_http(d.port, NULL, g4, strlen(g4), 0, 5, out, sizeof out, NULL), 200);
    for (int i = 0; i < 150; i++)
        close(flood[i]);
    assert_int_equal(daemon_stop(&d), 0);
}

/* JSON log lines keep fields that are not UTF-8 (jansson refuses them): escaped, never dropped. */
static void test_log_not_utf8(void **state)
{
    (void)state;
    char src[1300], odd[1300], args[3000];
    snprintf(src, sizeof src, "%s/small.safetensors", models_dir);
    snprintf(odd, sizeof odd, "%s/m\xff\xfe.safetensors", tmpdir);
    assert_int_equal(link(src, odd), 0);
    snprintf(args, sizeof args, "--model m=%s --workers 1 --log-format json", odd);
    uflowd d;
    daemon_start(&d, "logutf8", args, 1);
    char out[4096];
    const char *bad = "GET /v1/models/\xff\xc3( HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(raw_http(d.port, NULL, bad, strlen(bad), 0, 5, out, sizeof out, NULL), 400);
    assert_int_equal(daemon_stop(&d), 0);
    gchar *text = NULL;
    assert_true(g_file_get_contents(d.log, &text, NULL, NULL));
    gchar **lines = g_strsplit(text, "\n", -1);
    int model_line = 0, path_line = 0;
    for (gchar **l = lines; *l; l++) {
        if (!**l)
            continue;
        json_error_t je;
        json_t *j = json_loads(*l, 0, &je);
        if (!j)
            fail_msg("log line is not JSON: %s", *l);
        const char *msg = json_string_value(json_object_get(j, "msg"));
        if (!msg)
            fail_msg("log line without msg: %s", *l);
        model_line |= strstr(msg, "m\\xff\\xfe.safetensors") != NULL;
        const char *path = json_string_value(json_object_get(j, "path"));
        if (!strcmp(msg, "request") && !path)
            fail_msg("request line without path: %s", *l);
        path_line |= path && !strcmp(path, "/v1/models/\\xff\\xc3(");
        json_decref(j);
    }
    g_strfreev(lines);
    g_free(text);
    unlink(odd);
    assert_true(model_line);
    assert_true(path_line);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_half_close),
        cmocka_unit_test(test_slowloris),
        cmocka_unit_test(test_log_not_utf8),
    };
    return server_main(argc, argv, "server_wire", tests, sizeof tests / sizeof tests[0], 1);
}
