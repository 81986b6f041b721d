/* nfa_bench.c — times uf_nfa_run on the latents z.0, z.1, ... of a safetensors file.
 * Built by meson against the public header (bench/meson.build), run by bench/nfa_vs_scipy.py:
 *
 *   build/bench/nfa_bench FILE [--prefix P] [--size H W] [--iters N] [--hp] [--out MAP.f64]
 *
 * Prints one JSON line: median/min/mean milliseconds per call (batch = the file's batch),
 * the anomalous fraction and min log10 NFA of sample 0. --out writes minus_log10_nfa as raw
 * little-endian doubles [B*H*W] so that the caller can compare it with its own result. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c17 */

#include "uflow.h"

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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [--prefix P] [--size H W] [--iters N] [--hp] [--out F]\n",
                argv[0]);
        return 2;
    }
    const char *path = argv[1], *prefix = "", *out = NULL;
    int H = 256, W = 256, iters = 200, hp = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--prefix") && i + 1 < argc)
            prefix = argv[++i];
        else if (!strcmp(argv[i], "--size") && i + 2 < argc) {
            H = atoi(argv[++i]);
            W = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--hp"))
            hp = 1;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else {
            fprintf(stderr, "unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    uf_error err = {0};
    uf_st *st;
    if (uf_st_open(path, &st, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    uf_model_info info;
    memset(&info, 0, sizeof info);
    info.height = H;
    info.width = W;
    const float *z[UF_MAX_SCALES] = {0};
    int B = 0;
    for (int k = 0; k < UF_MAX_SCALES; k++) {
        char name[128];
        snprintf(name, sizeof name, "%sz.%d", prefix, k);
        const uf_st_tensor *t = uf_st_find(st, name);
        if (!t)
            break;
        if (t->dtype != UF_DT_F32 || t->ndim != 4) {
            fprintf(stderr, "%s: expected a float32 [B,C,h,w] tensor\n", name);
            return 1;
        }
        B = (int)t->shape[0];
        info.z_channels[k] = (int)t->shape[1];
        info.z_height[k] = (int)t->shape[2];
        info.z_width[k] = (int)t->shape[3];
        float *copy = malloc(uf_st_nbytes(t)); /* aligned, and off the mapping */
        if (!copy)
            return 1;
        memcpy(copy, t->data, uf_st_nbytes(t));
        z[k] = copy;
        info.n_scales = k + 1;
    }
    if (info.n_scales == 0) {
        fprintf(stderr, "%s: no %sz.0\n", path, prefix);
        return 1;
    }
    uf_nfa_opts o = uf_nfa_opts_default();
    o.high_precision = hp;
    uf_nfa *n;
    if (uf_nfa_init(&info, &o, B, &n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t HW = (size_t)H * W;
    double *minus = malloc(sizeof(double) * B * HW);
    uint8_t *mask = malloc((size_t)B * HW);
    float *frac = malloc(sizeof(float) * B);
    double *mn = malloc(sizeof(double) * B);
    double *t = malloc(sizeof(double) * (iters > 0 ? iters : 1));
    if (!minus || !mask || !frac || !mn || !t || iters < 1)
        return 1;
    for (int i = 0; i < 10; i++) /* warm caches and the branch predictors */
        uf_nfa_run(n, z, B, minus, mask, frac, mn, &err);
    double sum = 0;
    for (int i = 0; i < iters; i++) {
        double t0 = now_ms();
        if (uf_nfa_run(n, z, B, minus, mask, frac, mn, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        t[i] = now_ms() - t0;
        sum += t[i];
    }
    qsort(t, iters, sizeof(double), cmp_double);
    if (out) {
        FILE *f = fopen(out, "wb");
        if (!f || fwrite(minus, sizeof(double), B * HW, f) != B * HW || fclose(f)) {
            fprintf(stderr, "cannot write %s\n", out);
            return 1;
        }
    }
    printf("{\"impl\": \"uflow\", \"batch\": %d, \"high_precision\": %d, \"iters\": %d, "
           "\"median_ms\": %.4f, \"min_ms\": %.4f, \"mean_ms\": %.4f, "
           "\"anomalous_fraction\": %.6f, \"min_log10_nfa\": %.6f}\n",
           B, hp, iters, t[iters / 2], t[0], sum / iters, frac[0], mn[0]);
    uf_nfa_free(n);
    for (int k = 0; k < info.n_scales; k++)
        free((void *)z[k]);
    free(minus);
    free(mask);
    free(frac);
    free(mn);
    free(t);
    uf_st_close(st);
    return 0;
}
