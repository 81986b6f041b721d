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
    fprintf(f, "usage: uflow predict --model M.safetensors [--heatmap-dir DIR] [--mask-dir DIR] [--nfa]\n"
               "                     [--nfa-window 7] [--nfa-prob-thr 0.5] [--nfa-epsilon 0]\n"
               "                     [--threads N] [--allow-any-format] IMAGE...\n\n"
               "Prints one JSON object per image: path, score (max of the anomaly map), and when the\n"
               "model carries post-processing statistics normalized_score and label; with\n"
               "--heatmap-dir, the paths of a turbo-colormap PNG of the anomaly map (<name>.heatmap.png)\n"
               "and of that heatmap blended over the image (<name>.overlay.png). --nfa adds the\n"
               "a-contrario test: \"nfa\": {label, anomalous_fraction, min_log10_nfa}, and \"label\"\n"
               "comes from it when the model has no post-processing statistics; --mask-dir (implies\n"
               "--nfa) writes the defect mask as <name>.mask.png (white = anomalous).\n"
               "--allow-any-format also decodes formats outside JPEG, PNG, WebP, TIFF and GIF (BMP,\n"
               "PPM, ... through libvips and ImageMagick): for trusted local files only.\n"
               "Exit status 1 if any image failed (its line has an \"error\").\n");
}

/* DIR/<image basename without extension>.<kind>.png */
static void out_path(char *buf, size_t n, const char *dir, const char *image, const char *kind)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", image);
    char *base = basename(tmp), *dot = strrchr(base, '.');
    if (dot && dot != base)
        *dot = '\0';
    snprintf(buf, n, "%s/%s.%s.png", dir, base, kind);
}

/* Whole file in memory (the overlay needs the encoded image again); NULL + err on failure. */
static void *slurp(const char *path, size_t *len, uf_error *err)
{
    FILE *f = fopen(path, "rb");
    void *buf = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc(n ? (size_t)n : 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        fclose(f);
        *len = (size_t)n;
        return buf;
    }
    snprintf(err->msg, sizeof err->msg, "cannot read '%s'", path);
    free(buf);
    if (f)
        fclose(f);
    return NULL;
}

static int write_png(const char *path, void *png, size_t len, uf_error *err)
{
    uf_status s = uf_write_file(path, png, len, err);
    uf_free(png);
    return s == UF_OK ? 0 : -1;
}

typedef struct predict_opts {
    const char *hdir, *mdir;
    int nfa;
    uf_nfa_opts no;
    uf_image_opts io;
} predict_opts;

static int predict_one(uf_ctx *ctx, const uf_model_info *info, const char *path,
                       const predict_opts *po, float *x, json_t *o, uf_error *err)
{
    const char *hdir = po->hdir;
    uf_result r;
    size_t len = 0;
    void *bytes = slurp(path, &len, err);
    if (!bytes)
        return -1;
    int rc = -1;
    if (uf_image_load_buffer(bytes, len, info, &po->io, x, err) != UF_OK) {
        cli_image_hint(err);
        goto done;
    }
    if (uf_ctx_run(ctx, x, 1, &r, err) != UF_OK)
        goto done;
    json_object_set_new(o, "score", json_real(r.pred_score[0]));
    if (r.norm_score) {
        json_object_set_new(o, "normalized_score", json_real(r.norm_score[0]));
        json_object_set_new(o, "label", json_string(r.label[0] ? "anomalous" : "normal"));
    }
    if (po->nfa) {
        uf_nfa_result nr;
        if (uf_ctx_nfa(ctx, &po->no, &nr, err) != UF_OK)
            goto done;
        json_object_set_new(o, "nfa", json_pack("{s:s,s:f,s:f}", "label", nr.label[0] ? "anomalous" : "normal",
                                                "anomalous_fraction", (double)nr.anomalous_fraction[0],
                                                "min_log10_nfa", nr.min_log10_nfa[0]));
        if (!r.norm_score)
            json_object_set_new(o, "label", json_string(nr.label[0] ? "anomalous" : "normal"));
        if (po->mdir) {
            char mp[4096];
            void *png = NULL;
            size_t plen = 0;
            out_path(mp, sizeof mp, po->mdir, path, "mask");
            if (uf_mask_png(nr.mask, nr.height, nr.width, &png, &plen, err) != UF_OK ||
                write_png(mp, png, plen, err) != 0)
                goto done;
            json_object_set_new(o, "mask", json_string(mp));
        }
    }
    if (hdir) {
        void *png = NULL;
        size_t plen = 0;
        char hp[4096], op[4096];
        out_path(hp, sizeof hp, hdir, path, "heatmap");
        out_path(op, sizeof op, hdir, path, "overlay");
        /* raw anomaly-map values are in [0, 1] */
        if (uf_heatmap_png(r.anomaly_map, r.height, r.width, 0.f, 1.f, &png, &plen, err) != UF_OK ||
            write_png(hp, png, plen, err) != 0)
            goto done;
        if (uf_overlay_png(bytes, len, r.anomaly_map, r.height, r.width, 0.f, 1.f, 0.5f, &po->io, &png,
                           &plen, err) != UF_OK ||
            write_png(op, png, plen, err) != 0)
            goto done;
        json_object_set_new(o, "heatmap", json_string(hp));
        json_object_set_new(o, "overlay", json_string(op));
    }
    rc = 0;
done:
    free(bytes);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"heatmap-dir", required_argument, 0, 'd'},
                                         {"mask-dir", required_argument, 0, 'M'},
                                         {"nfa", no_argument, 0, 'n'},
                                         {"nfa-window", required_argument, 0, 'W'},
                                         {"nfa-prob-thr", required_argument, 0, 'P'},
                                         {"nfa-epsilon", required_argument, 0, 'E'},
                                         {"threads", required_argument, 0, 'T'},
                                         {"allow-any-format", no_argument, 0, 'A'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL;
    predict_opts po = {.no = uf_nfa_opts_default()};
    int threads = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': po.hdir = optarg; break;
        case 'M': po.mdir = optarg; po.nfa = 1; break;
        case 'n': po.nfa = 1; break;
        case 'A': po.io.any_format = 1; break;
        case 'W': if (cli_nfa_opt("predict", "window", optarg, &po.no)) return CLI_USAGE; break;
        case 'P': if (cli_nfa_opt("predict", "prob-thr", optarg, &po.no)) return CLI_USAGE; break;
        case 'E': if (cli_nfa_opt("predict", "epsilon", optarg, &po.no)) return CLI_USAGE; break;
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
    const char *dirs[2] = {po.hdir, po.mdir};
    for (int i = 0; i < 2; i++)
        if (dirs[i] && mkdir(dirs[i], 0755) != 0) {
            struct stat sb;
            if (stat(dirs[i], &sb) != 0 || !S_ISDIR(sb.st_mode)) {
                fprintf(stderr, "uflow predict: cannot create directory '%s'\n", dirs[i]);
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
        if (predict_one(ctx, info, argv[i], &po, x, o, &err) != 0) {
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
