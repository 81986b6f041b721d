/* server_harness.c — see server_harness.h. */
#include "server_harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *uflowd_bin;
const char *record_path;
char tmpdir[] = "/tmp/uflowd_test_XXXXXX";

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------------------------------- */
/* daemons                                                                                  */


#define MAX_DAEMONS 32
static pid_t started[MAX_DAEMONS];
static int n_started;

/* Start uflowd with `args` (space-separated) plus --listen 127.0.0.1:0 --port-file; wait
 * (bounded) until /readyz is 200 when wait_ready, else until /healthz answers at all. */
void daemon_start(uflowd *d, const char *name, const char *args, int wait_ready)
{
    char portfile[1200], argbuf[8192];
    snprintf(portfile, sizeof portfile, "%s/%s.port", tmpdir, name);
    snprintf(d->log, sizeof d->log, "%s/%s.log", tmpdir, name);
    unlink(portfile);
    snprintf(argbuf, sizeof argbuf, "%s --listen 127.0.0.1:0 --port-file %s", args, portfile);
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)uflowd_bin;
    for (char *save = NULL, *t = strtok_r(argbuf, " ", &save); t && argc < 63; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    argv[argc] = NULL;
    assert_true(n_started < MAX_DAEMONS);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        FILE *lf = freopen(d->log, "w", stderr);
        (void)lf;
        dup2(2, 1);
        execv(uflowd_bin, argv);
        _exit(127);
    }
    d->pid = pid;
    d->port = 0;
    started[n_started++] = pid;
    for (int i = 0; i < 3000 && d->port == 0; i++) { /* <= 30 s */
        FILE *f = fopen(portfile, "r");
        if (f) {
            if (fscanf(f, "%d", &d->port) != 1)
                d->port = 0;
            fclose(f);
        }
        int st;
        if (d->port == 0 && waitpid(pid, &st, WNOHANG) == pid) {
            char buf[4096] = "";
            size_t n;
            unsigned char *log = ut_slurp(d->log, &n);
            snprintf(buf, sizeof buf, "%s", log);
            free(log);
            d->pid = 0;
            fail_msg("uflowd %s exited during startup: %s", args, buf);
        }
        if (d->port == 0)
            sleep_ms(10);
    }
    if (d->port == 0)
        fail_msg("uflowd %s wrote no port file", args);
    const char *probe = wait_ready ? "/readyz" : "/healthz";
    long code = 0;
    int done = 0;
    for (int i = 0; i < 600 && !done; i++) { /* <= 60 s under sanitizers */
        code = http_get_status(d->port, probe);
        done = wait_ready ? code == 200 : code != 0;
        if (!done)
            sleep_ms(50);
    }
    if (!done)
        fail_msg("uflowd %s never answered %s (last %ld)", args, probe, code);
}

/* SIGTERM and wait (bounded); the exit status, or -1 if it had to be killed. */
int daemon_stop(uflowd *d)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 6000; i++) { /* <= 60 s */
        pid_t w = waitpid(d->pid, &st, WNOHANG);
        if (w == d->pid) {
            for (int k = 0; k < n_started; k++)
                if (started[k] == d->pid)
                    started[k] = 0;
            d->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        }
        sleep_ms(10);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &st, 0);
    d->pid = 0;
    return -1;
}

void kill_all(void)
{
    for (int k = 0; k < n_started; k++)
        if (started[k] > 0) {
            kill(started[k], SIGKILL);
            waitpid(started[k], NULL, 0);
            started[k] = 0;
        }
}

/* ---------------------------------------------------------------------------------------- */
/* HTTP                                                                                     */


static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t k = sz * n;
    char *nb = realloc(r->body, r->len + k + 1);
    if (!nb)
        return 0;
    r->body = nb;
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t k = sz * n;
    if (r->hlen + k < sizeof r->hdr) {
        memcpy(r->hdr + r->hlen, p, k);
        r->hlen += k;
        r->hdr[r->hlen] = '\0';
    }
    return k;
}

void resp_free(resp *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Value of response header `name` (case-insensitive) into out; NULL if absent. */
const char *resp_header(const resp *r, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *l = r->hdr; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (!strncasecmp(l, name, nl) && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = strcspn(v, "\r\n");
            snprintf(out, n, "%.*s", (int)vl, v);
            return out;
        }
    }
    return NULL;
}

json_t *resp_json(const resp *r)
{
    json_error_t je;
    json_t *o = r->body ? json_loadb(r->body, r->len, 0, &je) : NULL;
    if (!o)
        fail_msg("answer %ld is not JSON: %.300s", r->status, r->body ? r->body : "(empty)");
    return o;
}


/* Append one exchange to record_path (answers whose body is not UTF-8 are left out). */
static void record(const char *method, const char *path, const resp *r)
{
    if (!record_path || r->status == 0)
        return;
    char ct[256] = "";
    resp_header(r, "Content-Type", ct, sizeof ct);
    json_t *body = json_stringn(r->body ? r->body : "", r->len);
    if (!body)
        return;
    json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:o}", "method", method, "path", path, "status", (int)r->status,
                          "content_type", ct, "body", body);
    FILE *f = fopen(record_path, "a");
    if (f && o) {
        json_dumpf(o, f, JSON_COMPACT);
        fputc('\n', f);
    }
    if (f)
        fclose(f);
    json_decref(o);
}

static const char *method_of(const reqopt *o)
{
    return o && o->method ? o->method : o && (o->body || o->mime) ? "POST" : "GET";
}

static CURL *make_easy(int port, const char *path, const reqopt *o, resp *r, struct curl_slist **hl)
{
    char url[2048];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    *hl = NULL;
    if (o && o->ctype) {
        char h[256];
        snprintf(h, sizeof h, "Content-Type: %s", o->ctype);
        *hl = curl_slist_append(*hl, h);
    }
    if (o && o->h1)
        *hl = curl_slist_append(*hl, o->h1);
    if (o && o->h2)
        *hl = curl_slist_append(*hl, o->h2);
    if (o && o->mime)
        curl_easy_setopt(c, CURLOPT_MIMEPOST, o->mime);
    else if (o && o->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->len);
    }
    if (o && o->method)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, o->method);
    if (*hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hl);
    return c;
}

/* One request; r->status is 0 when the transfer failed. */
long http(resp *r, int port, const char *path, const reqopt *o)
{
    memset(r, 0, sizeof *r);
    struct curl_slist *hl;
    CURL *c = make_easy(port, path, o, r, &hl);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    record(method_of(o), path, r);
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    return r->status;
}

long http_get_status(int port, const char *path)
{
    resp r;
    long s = http(&r, port, path, NULL);
    resp_free(&r);
    return s;
}

/* n concurrent requests, all alike; tick(ud) is called about every 20 ms while they run. */
void concurrent(int port, const char *path, const reqopt *o, int n, resp *rs, void (*tick)(void *), void *ud)
{
    CURLM *m = curl_multi_init();
    CURL *e[64];
    struct curl_slist *hl[64];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        e[i] = make_easy(port, path, o, &rs[i], &hl[i]);
        curl_multi_add_handle(m, e[i]);
    }
    int running = 1;
    double t0 = now_s();
    while (running && now_s() - t0 < 90) {
        curl_multi_perform(m, &running);
        if (running)
            curl_multi_poll(m, NULL, 0, 20, NULL);
        if (tick)
            tick(ud);
    }
    for (int i = 0; i < n; i++) {
        curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &rs[i].status);
        record(method_of(o), path, &rs[i]);
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
        curl_slist_free_all(hl[i]);
    }
    curl_multi_cleanup(m);
}

/* A numeric sample from a Prometheus text body: the first line starting with `series `. */
double metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, series, n) && l[n] == ' ')
            return atof(l + n + 1);
    return -1;
}

double get_metric(int port, const char *series, const char *h1)
{
    resp r;
    reqopt o = {.h1 = h1};
    http(&r, port, "/metrics", &o);
    double v = r.status == 200 ? metric(r.body, series) : -1;
    resp_free(&r);
    return v;
}

/* Request counters are taken when MHD reports a request complete, just after the client
 * has its answer: poll (bounded, 2 s) until the series reaches `want`. */
double wait_metric(int port, const char *series, double want)
{
    double v = -1;
    for (int i = 0; i < 100; i++) {
        if ((v = get_metric(port, series, NULL)) >= want)
            break;
        sleep_ms(20);
    }
    return v;
}

/* Error answers: the v1 shape {"error": {"code", "message"}, "request_id"}. */
void expect_error(resp *r, long status, const char *code)
{
    if (r->status != status)
        fail_msg("expected %ld %s, got %ld: %.300s", status, code, r->status, r->body ? r->body : "");
    json_t *o = resp_json(r);
    const char *c = json_string_value(json_object_get(json_object_get(o, "error"), "code"));
    const char *msg = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
    const char *rid = json_string_value(json_object_get(o, "request_id"));
    if (!c || strcmp(c, code) != 0 || !msg || !*msg || !rid || !*rid)
        fail_msg("error body for %ld should have code '%s', a message and a request_id: %s", status, code, r->body);
    json_decref(o);
}


long raw_http(int port, const char *src_ip, const void *req, size_t len, int half_close, double timeout, char *out,
              size_t n, double *closed_after)
{
    out[0] = '\0';
    if (closed_after)
        *closed_after = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (src_ip) {
        struct sockaddr_in b = {.sin_family = AF_INET};
        inet_pton(AF_INET, src_ip, &b.sin_addr);
        if (bind(fd, (struct sockaddr *)&b, sizeof b) != 0) {
            close(fd);
            return -1;
        }
    }
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    double t0 = now_s();
    const char *p = req;
    size_t sent = 0, got = 0;
    while (sent < len) {
        ssize_t w = send(fd, p + sent, len - sent, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may answer and close before reading everything */
        sent += (size_t)w;
    }
    if (half_close)
        shutdown(fd, SHUT_WR);
    for (;;) {
        double left = timeout - (now_s() - t0);
        if (left <= 0)
            break;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(left * 1000) + 1) <= 0)
            break;
        char buf[16384];
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0) {
            if (closed_after)
                *closed_after = now_s() - t0;
            break;
        }
        size_t k = (size_t)r < n - 1 - got ? (size_t)r : n - 1 - got;
        memcpy(out + got, buf, k);
        got += k;
        out[got] = '\0';
    }
    close(fd);
    long status = 0;
    if (!strncmp(out, "HTTP/1.", 7) && strlen(out) > 12)
        status = strtol(out + 9, NULL, 10);
    return status;
}

const char *raw_body(const char *answer)
{
    const char *b = strstr(answer, "\r\n\r\n");
    return b ? b + 4 : NULL;
}
