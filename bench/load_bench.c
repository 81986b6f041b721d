/* load_bench.c — how long a process waits for its first answer: uf_model_load, uf_ctx_init, the
 * first uf_ctx_run and a second (steady) one, each timed on its own. Built by meson against the
 * public header (bench/meson.build), run by bench/whole_run.py:
 *
 *   build/bench/load_bench MODEL [--batch B] [--threads T]
 *
 * Prints one JSON line (milliseconds): load_ms, ctx_init_ms, first_run_ms, second_run_ms,
 * load_to_first_result_ms (= the first three), scratch_bytes. The first run pays what is
 * lazily prepared or first touched (weights paged in, scratch pages faulted), the second is
 * what `uflow bench` reports; their difference is the one-off cost. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c17 */

#include "uflow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [--batch B] [--threads T]\n", argv[0]);
        return 2;
    }
    int B = 1, T = 2;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            T = atoi(argv[++i]);
        else {
            fprintf(stderr, "unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (B < 1 || B > 1024 || T < 1 || T > 256) {
        fprintf(stderr, "--batch must be 1..1024, --threads 1..256\n");
        return 2;
    }
    uf_error err = {0};
    uf_model *m = NULL;
    uf_ctx *ctx = NULL;
    double t0 = now_ms();
    if (uf_model_load(argv[1], &m, &err) != UF_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double t1 = now_ms();
    uf_ctx_opts o = {.max_batch = B, .threads = T};
    if (uf_ctx_init(m, &o, &ctx, &err) != UF_OK) {
        fprintf(stderr, "%s\n", err.msg);
        uf_model_free(m);
        return 1;
    }
    double t2 = now_ms();
    const uf_model_info *info = uf_model_get_info(m);
    size_t n = (size_t)B * 3 * (size_t)info->height * (size_t)info->width;
    float *x = malloc(sizeof *x * n);
    int rc = 0;
    double t3 = t2, t4 = t2, t5 = t2;
    if (!x) {
        fprintf(stderr, "out of memory\n");
        rc = 1;
    } else {
        for (size_t i = 0; i < n; i++) /* any smooth input: the cost does not depend on it */
            x[i] = (float)sin(0.001 * (double)i);
        uf_result r;
        t3 = now_ms();
        if (uf_ctx_run(ctx, x, B, &r, &err) != UF_OK)
            rc = 1;
        t4 = now_ms();
        if (!rc && uf_ctx_run(ctx, x, B, &r, &err) != UF_OK)
            rc = 1;
        t5 = now_ms();
        if (rc)
            fprintf(stderr, "%s\n", err.msg);
    }
    if (!rc)
        printf("{\"impl\":\"uflow\",\"model\":\"%s\",\"batch\":%d,\"threads\":%d,\"load_ms\":%.3f,"
               "\"ctx_init_ms\":%.3f,\"first_run_ms\":%.3f,\"second_run_ms\":%.3f,"
               "\"load_to_first_result_ms\":%.3f,\"scratch_bytes\":%zu}\n",
               argv[1], B, T, t1 - t0, t2 - t1, t4 - t3, t5 - t4, (t1 - t0) + (t2 - t1) + (t4 - t3),
               uf_ctx_scratch_bytes(ctx));
    free(x);
    uf_ctx_free(ctx);
    uf_model_free(m);
    return rc;
}
