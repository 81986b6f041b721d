/* pipeline_bench.c — the library alone doing what one uflowd predict call does, in one thread of
 * one process: decode + resize + normalise an encoded image (uf_image_load_buffer), uf_ctx_run
 * at batch 1, and (unless --no-heatmap) the heatmap PNG (uf_heatmap_png). The reference that
 * bench/http_vs_lib.py holds the HTTP path against. Built by meson (bench/meson.build):
 *
 *   build/bench/pipeline_bench MODEL IMAGE [--threads 1] [--iters 30] [--warmup 3] [--no-heatmap]
 *
 * Prints one JSON line: p50 (and mean) milliseconds of each stage and of the whole call. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c17 */

#include "uflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { DECODE, INFER, HEATMAP, TOTAL, NSTAGE };

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    void *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n)) && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n > 0 ? (size_t)n : 0;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL IMAGE [--threads T] [--iters N] [--warmup W] [--no-heatmap]\n", argv[0]);
        return 2;
    }
    int T = 1, iters = 30, warm = 3, heatmap = 1;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
            warm = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-heatmap"))
            heatmap = 0;
        else {
            fprintf(stderr, "unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (T < 1 || T > 256 || iters < 1 || iters > 100000 || warm < 0 || warm > 1000) {
        fprintf(stderr, "--threads 1..256, --iters 1..100000, --warmup 0..1000\n");
        return 2;
    }
    size_t len;
    void *img = read_file(argv[2], &len);
    if (!img) {
        fprintf(stderr, "cannot read %s\n", argv[2]);
        return 1;
    }
    uf_error err = {0};
    uf_model *m = NULL;
    uf_ctx *ctx = NULL;
    uf_ctx_opts o = {.max_batch = 1, .threads = T};
    if (uf_model_load(argv[1], &m, &err) != UF_OK || uf_ctx_init(m, &o, &ctx, &err) != UF_OK) {
        fprintf(stderr, "%s\n", err.msg);
        uf_model_free(m);
        free(img);
        return 1;
    }
    const uf_model_info *info = uf_model_get_info(m);
    float *x = malloc(sizeof *x * 3 * (size_t)info->height * (size_t)info->width);
    double *t[NSTAGE];
    int rc = !x;
    for (int s = 0; s < NSTAGE; s++)
        rc |= !(t[s] = calloc((size_t)iters, sizeof **t));
    size_t png_bytes = 0;
    for (int i = 0; i < warm + iters && !rc; i++) {
        double t0 = now_ms();
        if (uf_image_load_buffer(img, len, info, NULL, x, &err) != UF_OK) {
            rc = 1;
            break;
        }
        double t1 = now_ms();
        uf_result r;
        if (uf_ctx_run(ctx, x, 1, &r, &err) != UF_OK) {
            rc = 1;
            break;
        }
        double t2 = now_ms();
        if (heatmap) {
            void *png;
            if (uf_heatmap_png(r.anomaly_map, r.height, r.width, 0.f, 1.f, &png, &png_bytes, &err) != UF_OK) {
                rc = 1;
                break;
            }
            uf_free(png);
        }
        double t3 = now_ms();
        if (i >= warm) {
            double d[NSTAGE] = {t1 - t0, t2 - t1, t3 - t2, t3 - t0};
            for (int s = 0; s < NSTAGE; s++)
                t[s][i - warm] = d[s];
        }
    }
    if (rc)
        fprintf(stderr, "%s\n", err.msg[0] ? err.msg : "out of memory");
    else {
        static const char *names[NSTAGE] = {"decode", "infer", "heatmap", "total"};
        printf("{\"impl\":\"uflow-lib\",\"model\":\"%s\",\"image\":\"%s\",\"threads\":%d,\"iters\":%d,"
               "\"heatmap\":%s,\"heatmap_bytes\":%zu", argv[1], argv[2], T, iters, heatmap ? "true" : "false",
               png_bytes);
        for (int s = 0; s < NSTAGE; s++) {
            double sum = 0;
            for (int i = 0; i < iters; i++)
                sum += t[s][i];
            qsort(t[s], (size_t)iters, sizeof **t, cmp_double);
            printf(",\"%s_p50_ms\":%.3f,\"%s_mean_ms\":%.3f", names[s], t[s][iters / 2], names[s], sum / iters);
        }
        printf("}\n");
    }
    for (int s = 0; s < NSTAGE; s++)
        free(t[s]);
    free(x);
    free(img);
    uf_ctx_free(ctx);
    uf_model_free(m);
    return rc;
}
