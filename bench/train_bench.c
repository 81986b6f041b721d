/* train_bench.c — training throughput of libuflow's trainer (flow forward + backward + Adam
 * on cached features): best epoch time over a few epochs. Built and run by
 * bench/train_vs_pytorch.py. Usage: train_bench MODEL IMAGES BATCH THREADS ITERS */
#include "uflow.h"
#include "uflow_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s MODEL IMAGES BATCH THREADS ITERS\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[2]), iters = atoi(argv[5]);
    uf_error err;
    uf_model *m;
    if (uf_model_load(argv[1], &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const uf_model_info *info = uf_model_get_info(m);
    uf_train_opts o = uf_train_opts_default();
    o.batch_size = atoi(argv[3]);
    o.threads = atoi(argv[4]);
    uf_trainer *t;
    if (uf_trainer_new(m, &o, &t, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t len = (size_t)n * 3 * info->height * info->width;
    float *x = malloc(sizeof(float) * len);
    uint64_t s = 1;
    for (size_t i = 0; i < len; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 40) / 16777216.0 * 4.0 - 2.0);
    }
    if (uf_trainer_add_images(t, x, n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double loss, best = 1e30;
    for (int i = 0; i <= iters; i++) { /* epoch 0 warms up */
        double t0 = now_s();
        if (uf_trainer_epoch(t, NULL, NULL, &loss, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double dt = now_s() - t0;
        if (i > 0 && dt < best)
            best = dt;
    }
    printf("{\"images_per_s\": %.4f, \"epoch_s\": %.4f, \"images\": %d, \"batch\": %d, \"threads\": %d}\n",
           n / best, best, n, o.batch_size, o.threads);
    uf_trainer_free(t);
    uf_model_free(m);
    free(x);
    return 0;
}
