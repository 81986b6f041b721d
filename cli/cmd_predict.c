/* cmd_predict.c — `uflow predict`: one JSON object per image per line. */
#include "cli.h"

#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void help(FILE *f)
{
    fprintf(f, "usage: uflow predict --model M.safetensors [--heatmap-dir DIR] [--threads N] IMAGE...\n\n"
               "Prints one JSON object per image: path, score (max of the anomaly map), and when the\n"
               "model carries post-processing statistics normalized_score and label; with\n"
               "--heatmap-dir, the path of a turbo-colormap PNG of the anomaly map.\n"
               "Exit status 1 if any image failed (its line has an \"error\").\n");
}

/* DIR/<image basename without extension>.heatmap.png */
static void heatmap_path(char *buf, size_t n, const char *dir, const char *image)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", image);
    char *base = basename(tmp), *dot = strrchr(base, '.');
    if (dot && dot != base)
        *dot = '\0';
    snprintf(buf, n, "%s/%s.heatmap.png", dir, base);
}

static int predict_one(uf_ctx *ctx, const uf_model_info *info, const char *path, const char *hdir,
                       float *x, json_t *o, uf_error *err)
{
    uf_result r;
    if (uf_image_load_file(path, info, NULL, x, err) != UF_OK || uf_ctx_run(ctx, x, 1, &r, err) != UF_OK)
        return -1;
    json_object_set_new(o, "score", json_real(r.pred_score[0]));
    if (r.norm_score) {
        json_object_set_new(o, "normalized_score", json_real(r.norm_score[0]));
        json_object_set_new(o, "label", json_string(r.label[0] ? "anomalous" : "normal"));
    }
    if (hdir) {
        void *png = NULL;
        size_t len = 0;
        char hp[4096];
        heatmap_path(hp, sizeof hp, hdir, path);
        if (uf_heatmap_png(r.anomaly_map, r.height, r.width, 0.f, 1.f, &png, &len, err) != UF_OK)
            return -1;
        uf_status s = uf_write_file(hp, png, len, err);
        uf_free(png);
        if (s != UF_OK)
            return -1;
        json_object_set_new(o, "heatmap", json_string(hp));
    }
    return 0;
}

int cmd_predict(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"heatmap-dir", required_argument, 0, 'd'},
                                         {"threads", required_argument, 0, 'T'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL, *hdir = NULL;
    int threads = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': hdir = optarg; break;
        case 'T':
            if ((threads = cli_int("predict", "--threads", optarg, 1, 256)) < 0)
                return CLI_USAGE;
            break;
        case 'h': help(stdout); return CLI_OK;
        default: help(stderr); return CLI_USAGE;
        }
    }
    if (!model || optind >= argc) {
        help(stderr);
        return CLI_USAGE;
    }
    if (hdir && mkdir(hdir, 0755) != 0) {
        struct stat sb;
        if (stat(hdir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            fprintf(stderr, "uflow predict: cannot create heatmap directory '%s'\n", hdir);
            return CLI_FAIL;
        }
    }
    uf_model *m = cli_load_model("predict", model);
    if (!m)
        return CLI_FAIL;
    const uf_model_info *info = uf_model_get_info(m);
    uf_error err = {0};
    uf_ctx *ctx = NULL;
    float *x = malloc(sizeof(float) * 3 * info->height * info->width);
    uf_ctx_opts o = {.max_batch = 1, .threads = threads > 0 ? threads : cli_default_threads()};
    if (!x || uf_ctx_init(m, &o, &ctx, &err) != UF_OK) {
        free(x);
        uf_model_free(m);
        return cli_fail("predict", &err);
    }
    int failed = 0;
    for (int i = optind; i < argc; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "path", json_string(argv[i]));
        if (predict_one(ctx, info, argv[i], hdir, x, o, &err) != 0) {
            json_object_set_new(o, "error", json_string(err.msg));
            failed = 1;
        }
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7));
        if (line)
            printf("%s\n", line);
        fflush(stdout);
        free(line);
        json_decref(o);
    }
    uf_ctx_free(ctx);
    free(x);
    uf_model_free(m);
    return failed ? CLI_FAIL : CLI_OK;
}
