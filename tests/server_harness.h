/* server_harness.h — what test_server.c needs to drive the real uflowd: start and stop
 * daemons on 127.0.0.1 with ephemeral ports, HTTP over libcurl (single and concurrent
 * requests), Prometheus samples, and the v1 error shape. Every wait is bounded. */
#ifndef UF_TEST_SERVER_HARNESS_H
#define UF_TEST_SERVER_HARNESS_H

#include "util.h"

#include <curl/curl.h>
#include <jansson.h>
#include <sys/types.h>

extern const char *uflowd_bin;   /* argv[1] of the test */
extern char tmpdir[];            /* mkdtemp'd by main; daemons' port files and logs go here */

typedef struct uflowd {
    pid_t pid;
    int port;
    char log[1200];
} uflowd;

typedef struct resp {
    long status;
    char *body;
    size_t len;
    char hdr[8192];
    size_t hlen;
} resp;

typedef struct reqopt {
    const char *method;          /* NULL: GET, or POST when body */
    const char *ctype;           /* Content-Type of body */
    const void *body;
    size_t len;
    const char *h1, *h2;         /* extra request headers "Name: value" */
    curl_mime *mime;             /* multipart body */
} reqopt;

void sleep_ms(int ms);
double now_s(void);                  /* monotonic seconds */
/* Start uflowd with `args` (space-separated) plus --listen 127.0.0.1:0 --port-file; wait
 * (bounded) until /readyz is 200 when wait_ready, else until /healthz answers at all. */
void daemon_start(uflowd *d, const char *name, const char *args, int wait_ready);

/* SIGTERM and wait (bounded); the exit status, or -1 if it had to be killed. */
int daemon_stop(uflowd *d);

/* SIGKILL every daemon still running (teardown, and after a failed test). */
void kill_all(void);

void resp_free(resp *r);

/* Value of response header `name` (case-insensitive) into out; NULL if absent. */
const char *resp_header(const resp *r, const char *name, char *out, size_t n);

/* The body as JSON (fails the test when it is not). */
json_t *resp_json(const resp *r);

/* One request; r->status is 0 when the transfer failed. */
long http(resp *r, int port, const char *path, const reqopt *o);

long http_get_status(int port, const char *path);   /* GET, status only */

/* n concurrent requests, all alike; tick(ud) is called about every 20 ms while they run. */
void concurrent(int port, const char *path, const reqopt *o, int n, resp *rs, void (*tick)(void *), void *ud);

/* A numeric sample from a Prometheus text body: the first line starting with `series `. */
double metric(const char *text, const char *series);

/* GET /metrics (h1: an optional extra header) and take one sample; -1 if absent. */
double get_metric(int port, const char *series, const char *h1);

/* Request counters are taken when MHD reports a request complete, just after the client
 * has its answer: poll (bounded, 2 s) until the series reaches `want`. */
double wait_metric(int port, const char *series, double want);

/* When set (a path), every answer http() and concurrent() receive is appended there as a
 * JSON line {"method", "path", "status", "content_type", "body"} for tests/openapi_check.py. */
extern const char *record_path;

/* Raw HTTP over a plain socket from 127.0.0.1 (or src_ip): send req (len bytes), optionally
 * shut down the sending side (as `nc -N` does), and read the answer until the server closes
 * or timeout seconds pass. The answer (NUL-terminated, cut to n) goes to out; returns its
 * status code, 0 when none arrived, -1 when the connection failed. *closed_after (if not
 * NULL) receives the seconds until the server closed, or -1 when it did not. */
long raw_http(int port, const char *src_ip, const void *req, size_t len, int half_close, double timeout, char *out,
              size_t n, double *closed_after);
/* The body of a raw answer (after the blank line), or NULL. */
const char *raw_body(const char *answer);

/* Error answers: the v1 shape {"error": {"code", "message"}, "request_id"}. */
void expect_error(resp *r, long status, const char *code);

#endif
