/* png_bench.c — what encoding the heatmap PNG costs: uf_heatmap_png as the library does it, and
 * the same pixels through libvips' pngsave at other zlib levels and row filters (the choice
 * lib/src/io/heatmap.c makes is measured here, not guessed). Built by meson (bench/meson.build):
 *
 *   build/bench/png_bench [MAP.safetensors] [--iters N]
 *
 * MAP is a `uflow infer` output (its 'anomaly_map', first sample); without it a smooth
 * synthetic 256x256 map is used. Prints one line per encoder setting (median ms, bytes) and a
 * last JSON line for uf_heatmap_png. Libvips is used directly only for the sweep; the pixels
 * come from decoding the library's own PNG, so every row encodes the same image. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c17 */

#include "uflow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vips/vips.h>

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

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The first sample's anomaly map of a `uflow infer` output, copied out. */
static float *load_map(const char *path, int *h, int *w)
{
    uf_error err = {0};
    uf_st *st;
    if (uf_st_open(path, &st, &err) != UF_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    const uf_st_tensor *t = uf_st_find(st, "anomaly_map");
    float *m = NULL;
    if (!t || t->dtype != UF_DT_F32 || t->ndim != 4 || t->shape[1] != 1) {
        fprintf(stderr, "%s: no F32 [B,1,H,W] 'anomaly_map'\n", path);
    } else {
        *h = (int)t->shape[2];
        *w = (int)t->shape[3];
        size_t n = (size_t)*h * (size_t)*w;
        if ((m = malloc(sizeof *m * n)))
            memcpy(m, t->data, sizeof *m * n);
    }
    uf_st_close(st);
    return m;
}

/* Two soft blobs over a gentle ramp: the smooth kind of map a heatmap usually is. */
static float *synthetic_map(int h, int w)
{
    float *m = malloc(sizeof *m * (size_t)h * (size_t)w);
    for (int y = 0; m && y < h; y++)
        for (int x = 0; x < w; x++) {
            double a = exp(-((x - 80.0) * (x - 80.0) + (y - 150.0) * (y - 150.0)) / 900.0);
            double b = exp(-((x - 190.0) * (x - 190.0) + (y - 60.0) * (y - 60.0)) / 300.0);
            m[(size_t)y * w + x] = (float)(0.15 + 0.1 * x / w + 0.6 * a + 0.4 * b);
        }
    return m;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int iters = 50;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            fprintf(stderr, "usage: %s [MAP.safetensors] [--iters N]\n", argv[0]);
            return 2;
        }
    }
    if (iters < 1 || iters > 100000) {
        fprintf(stderr, "--iters must be 1..100000\n");
        return 2;
    }
    int h = 256, w = 256;
    float *map = path ? load_map(path, &h, &w) : synthetic_map(h, w);
    double *t = malloc(sizeof *t * (size_t)iters);
    if (!map || !t || VIPS_INIT(argv[0])) {
        free(map);
        free(t);
        return 1;
    }
    uf_error err = {0};
    void *png = NULL;
    size_t len = 0;
    for (int i = 0; i < iters + 2; i++) { /* two untimed calls: libvips' first-use set-up */
        uf_free(png);
        double t0 = now_ms();
        if (uf_heatmap_png(map, h, w, 0.f, 1.f, &png, &len, &err) != UF_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        if (i >= 2)
            t[i - 2] = now_ms() - t0;
    }
    double lib_ms = median(t, iters);
    uint8_t *rgb;
    int pw, ph, nb;
    if (uf_image_decode_buffer(png, len, NULL, &rgb, &pw, &ph, &nb, &err) != UF_OK || nb != 3) {
        fprintf(stderr, "cannot decode the library's PNG: %s\n", err.msg);
        return 1;
    }
    printf("# %s map %dx%d, %d iterations, median per encode\n", path ? path : "synthetic", w, h, iters);
    printf("%-26s %8.3f ms %8zu bytes\n", "uf_heatmap_png (library)", lib_ms, len);
    static const struct { const char *name; int flag; } filters[] = {
        {"none", VIPS_FOREIGN_PNG_FILTER_NONE}, {"sub", VIPS_FOREIGN_PNG_FILTER_SUB},
        {"up", VIPS_FOREIGN_PNG_FILTER_UP},     {"all", VIPS_FOREIGN_PNG_FILTER_ALL}};
    static const int levels[] = {0, 1, 2, 3, 6, 9};
    VipsImage *im = vips_image_new_from_memory(rgb, (size_t)pw * ph * 3, pw, ph, 3, VIPS_FORMAT_UCHAR);
    for (size_t f = 0; im && f < sizeof filters / sizeof *filters; f++)
        for (size_t l = 0; l < sizeof levels / sizeof *levels; l++) {
            size_t n = 0;
            for (int i = 0; i < iters + 1; i++) {
                void *buf = NULL;
                double t0 = now_ms();
                if (vips_pngsave_buffer(im, &buf, &n, "compression", levels[l], "filter", filters[f].flag, NULL)) {
                    fprintf(stderr, "pngsave: %s\n", vips_error_buffer());
                    return 1;
                }
                if (i >= 1)
                    t[i - 1] = now_ms() - t0;
                g_free(buf);
            }
            char name[64];
            snprintf(name, sizeof name, "pngsave level %d filter %s", levels[l], filters[f].name);
            printf("%-26s %8.3f ms %8zu bytes\n", name, median(t, iters), n);
        }
    if (im)
        g_object_unref(im);
    printf("{\"impl\":\"uf_heatmap_png\",\"width\":%d,\"height\":%d,\"iters\":%d,\"median_ms\":%.3f,\"bytes\":%zu}\n",
           w, h, iters, lib_ms, len);
    uf_free(rgb);
    uf_free(png);
    free(map);
    free(t);
    return 0;
}
