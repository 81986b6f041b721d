/* cmd_bench.c — `uflow bench`: throughput and latency of uf_ctx_run on a seeded random input. */
#include "cli.h"

#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *sorted, int n, double p)
{
    int i = (int)ceil(p / 100.0 * n) - 1;
    return sorted[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static void help(FILE *f)
{
    fprintf(f, "usage: uflow bench --model M.safetensors [--batch B] [--iters N] [--warmup W]\n"
               "                   [--threads T] [--json]\n\n"
               "Times uf_ctx_run (backbone + flow + anomaly map) on a seeded N(0,1) input.\n"
               "Latency percentiles are per batch; images/s = B * iters / total time.\n");
}

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"batch", required_argument, 0, 'b'},
        {"iters", required_argument, 0, 'n'}, {"warmup", required_argument, 0, 'w'},
        {"threads", required_argument, 0, 'T'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},       {0, 0, 0, 0}};
    const char *model = NULL;
    int B = 1, iters = 20, warm = 3, threads = 0, json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'b': if ((B = cli_int("bench", "--batch", optarg, 1, 1024)) < 0) return CLI_USAGE; break;
        case 'n': if ((iters = cli_int("bench", "--iters", optarg, 1, 1000000)) < 0) return CLI_USAGE; break;
        case 'w': if ((warm = cli_int("bench", "--warmup", optarg, 0, 1000)) < 0) return CLI_USAGE; break;
        case 'T': if ((threads = cli_int("bench", "--threads", optarg, 1, 256)) < 0) return CLI_USAGE; break;
        case 'j': json = 1; break;
        case 'h': help(stdout); return CLI_OK;
        default: help(stderr); return CLI_USAGE;
        }
    }
    if (!model || optind != argc) {
        help(stderr);
        return CLI_USAGE;
    }
    if (threads <= 0)
        threads = cli_default_threads();
    uf_model *m = cli_load_model("bench", model);
    if (!m)
        return CLI_FAIL;
    const uf_model_info *info = uf_model_get_info(m);
    size_t n = (size_t)B * 3 * info->height * info->width;
    float *x = malloc(sizeof(float) * n);
    double *lat = malloc(sizeof(double) * iters);
    uf_ctx *ctx = NULL;
    uf_error err = {0};
    uf_ctx_opts o = {.max_batch = B, .threads = threads};
    if (!x || !lat || uf_ctx_init(m, &o, &ctx, &err) != UF_OK) {
        free(x);
        free(lat);
        uf_model_free(m);
        return cli_fail("bench", &err);
    }
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n; i += 2) { /* Box-Muller on a xorshift stream: any N(0,1) will do */
        double u[2];
        for (int k = 0; k < 2; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            u[k] = ((s >> 11) + 0.5) / 9007199254740992.0;
        }
        double r = sqrt(-2 * log(u[0]));
        x[i] = (float)(r * cos(6.283185307179586 * u[1]));
        if (i + 1 < n)
            x[i + 1] = (float)(r * sin(6.283185307179586 * u[1]));
    }
    uf_result r;
    int rc = CLI_OK;
    for (int i = 0; i < warm + iters && rc == CLI_OK; i++) {
        double t0 = now_ms();
        if (uf_ctx_run(ctx, x, B, &r, &err) != UF_OK)
            rc = cli_fail("bench", &err);
        if (i >= warm)
            lat[i - warm] = now_ms() - t0;
    }
    if (rc == CLI_OK) {
        double tot = 0;
        for (int i = 0; i < iters; i++)
            tot += lat[i];
        qsort(lat, (size_t)iters, sizeof *lat, cmp_d);
        double ips = B * iters / (tot / 1e3);
        if (json)
            printf("{\"impl\":\"uflow\",\"model\":\"%s\",\"backbone\":\"%s\",\"input\":[%d,%d],\"batch\":%d,"
                   "\"threads\":%d,\"iters\":%d,\"mean_ms\":%.3f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
                   "\"p99_ms\":%.3f,\"images_per_s\":%.3f,\"scratch_bytes\":%zu}\n",
                   model, info->backbone_name, info->height, info->width, B, threads, iters, tot / iters,
                   pct(lat, iters, 50), pct(lat, iters, 90), pct(lat, iters, 99), ips,
                   uf_ctx_scratch_bytes(ctx));
        else
            printf("model %s (%s %dx%d), batch %d, %d threads, %d iters\n"
                   "  %.2f images/s   latency per batch: mean %.2f ms  p50 %.2f  p90 %.2f  p99 %.2f\n"
                   "  context scratch: %.1f MiB\n",
                   model, info->backbone_name, info->height, info->width, B, threads, iters, ips,
                   tot / iters, pct(lat, iters, 50), pct(lat, iters, 90), pct(lat, iters, 99),
                   uf_ctx_scratch_bytes(ctx) / 1048576.0);
    }
    uf_ctx_free(ctx);
    free(x);
    free(lat);
    uf_model_free(m);
    return rc;
}
