/* cmd_eval.c — `uflow eval`: image/pixel metrics of a model on labelled folders, and
 * `--calibrate` to store anomalib's post-processing statistics in the model (docs/eval.md). */
#include "cli.h"
#include "uflow_eval.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define DEFAULT_MAX_PIXELS 50000000LL
#define AUPRO_FPR_LIMIT 0.3

static void help(FILE *f)
{
    fprintf(f,
            "usage: uflow eval --model M.safetensors --good DIR --anomalous DIR [--masks DIR]\n"
            "                  [--json FILE|-] [--calibrate [--out M2.safetensors]]\n"
            "                  [--threads N] [--batch N] [--max-pixels N] [--allow-any-format]\n"
            "                  [--nfa-window 7] [--nfa-prob-thr 0.5] [--nfa-epsilon 0]\n\n"
            "Runs the model on every image (png, jpg, jpeg, bmp, tif, tiff, webp; sorted by name) of\n"
            "--good (normal) and --anomalous, and reports image AUROC, the F1-optimal image threshold,\n"
            "mean scores, and the NFA mask's false alarms on good images. With --masks (for X.png the\n"
            "mask is MASKS/X.png, MASKS/X.<ext> or MASKS/X_mask.png; non-zero = defect; resized to\n"
            "the model input with nearest neighbour) also pixel AUROC, AUPRO up to FPR 0.3, the\n"
            "F1-optimal pixel threshold and the NFA mask's IoU per anomalous image and mIoU.\n"
            "Pixel metrics use every pixel up to --max-pixels (default 50000000) stored values;\n"
            "beyond that maps and masks are decimated by an integer stride (reported).\n"
            "--json writes every number and one row per image to FILE ('-': stdout; the text\n"
            "report then goes to stderr).\n"
            "--calibrate writes anomalib's post-processing statistics computed from these\n"
            "predictions (F1-optimal image/pixel thresholds, min/max of scores and of maps) into\n"
            "--out, default: the model itself (atomically); `uflow predict` then reports\n"
            "normalized_score and label.\n"
            "--allow-any-format also decodes images (not masks) outside JPEG, PNG, WebP, TIFF and\n"
            "GIF (BMP, PPM, ... through libvips and ImageMagick): for trusted local files only.\n");
}

typedef struct item {
    char *path;
    int label;        /* 0 good, 1 anomalous */
    char *mask;       /* mask file or NULL */
    float score;
    float nfa_fraction;
    int nfa_label;
    double iou;       /* NAN when not computed */
} item;

typedef struct items {
    item *v;
    size_t n, cap;
} items;

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Append the images of dir (sorted by name) with the label; -1 + message on failure. */
static int list_dir(const char *dir, int label, items *it)
{
    char **paths;
    int n;
    if (cli_list_images("eval", dir, &paths, &n))
        return -1;
    if (n == 0) {
        fprintf(stderr, "uflow eval: no images (png, jpg, jpeg, bmp, tif, tiff, webp) in '%s'\n", dir);
        cli_free_list(paths, n);
        return -1;
    }
    if (it->n + (size_t)n > it->cap) {
        size_t c = it->n + (size_t)n;
        item *v = realloc(it->v, c * sizeof *v);
        if (!v) {
            fprintf(stderr, "uflow eval: out of memory listing '%s'\n", dir);
            cli_free_list(paths, n);
            return -1;
        }
        it->v = v;
        it->cap = c;
    }
    for (int i = 0; i < n; i++) /* the items own the paths from here on */
        it->v[it->n++] = (item){.path = paths[i], .label = label, .iou = NAN};
    free(paths);
    return 0;
}

/* The mask of image `path` in mdir: <stem>.<ext>, <stem>.png or <stem>_mask.png. */
static char *find_mask(const char *mdir, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t sl = dot ? (size_t)(dot - base) : strlen(base);
    char stem[1024];
    snprintf(stem, sizeof stem, "%.*s", (int)CLI_MIN(sl, sizeof stem - 16), base);
    char cand[3][1100];
    snprintf(cand[0], sizeof cand[0], "%s", base);
    snprintf(cand[1], sizeof cand[1], "%s.png", stem);
    snprintf(cand[2], sizeof cand[2], "%s_mask.png", stem);
    for (int i = 0; i < 3; i++) {
        char *p = join(mdir, cand[i]);
        if (p && is_file(p))
            return p;
        free(p);
    }
    return NULL;
}

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct eval_opts {
    const char *model, *good, *anom, *masks, *json, *out;
    int calibrate, threads, batch;
    long long max_pixels;
    uf_nfa_opts no;
    uf_image_opts io;
} eval_opts;

typedef struct results {
    double image_auroc, mean_good, mean_anom;
    uf_f1_result f1_image, f1_pixel;
    int have_pixel;
    double pixel_auroc, aupro, miou, good_mean_fraction;
    size_t good_flagged, anom_flagged, n_good, n_anom, pixels;
    int stride, ph, pw;
    float score_min, score_max, map_min, map_max;
    double seconds;
    int calibrated;
    uf_postproc post;
} results;

static void print_text(FILE *f, const eval_opts *eo, const uf_model_info *info, const items *it,
                       const results *r)
{
    fprintf(f, "uflow eval: %s (%s %dx%d), %zu good + %zu anomalous images%s, scored in %.2f s\n",
            eo->model,
            info->backbone_name, info->height, info->width, r->n_good, r->n_anom,
            eo->masks ? " with masks" : "", r->seconds);
    fprintf(f, "  %-28s %10.6f\n", "image AUROC", r->image_auroc);
    fprintf(f, "  %-28s %10.6f   threshold %.6g (precision %.4f, recall %.4f)\n", "image F1",
            r->f1_image.f1, (double)r->f1_image.threshold, r->f1_image.precision, r->f1_image.recall);
    fprintf(f, "  %-28s %10.6f\n", "mean score, good", r->mean_good);
    fprintf(f, "  %-28s %10.6f\n", "mean score, anomalous", r->mean_anom);
    if (r->have_pixel) {
        fprintf(f, "  %-28s %10.6f\n", "pixel AUROC", r->pixel_auroc);
        fprintf(f, "  %-28s %10.6f\n", "pixel AUPRO (FPR <= 0.3)", r->aupro);
        fprintf(f, "  %-28s %10.6f   threshold %.6g (precision %.4f, recall %.4f)\n", "pixel F1",
                r->f1_pixel.f1, (double)r->f1_pixel.threshold, r->f1_pixel.precision,
                r->f1_pixel.recall);
        if (r->stride > 1)
            fprintf(f, "  (pixel metrics on %dx%d maps: every %d-th row and column, %zu pixels)\n",
                    r->ph, r->pw, r->stride, r->pixels);
        fprintf(f, "  %-28s %10.6f\n", "NFA mask mIoU, anomalous", r->miou);
    }
    fprintf(f, "  %-28s %10.6f   (%zu/%zu good images flagged)\n", "NFA false-alarm fraction",
            r->good_mean_fraction, r->good_flagged, r->n_good);
    fprintf(f, "  %-28s %10zu   of %zu anomalous images\n", "NFA flagged", r->anom_flagged, r->n_anom);
    fprintf(f, "\n  %-10s %-12s %-10s %-9s %s\n", "label", "score", "nfa_frac", "nfa_iou", "file");
    for (size_t i = 0; i < it->n; i++) {
        const item *m = &it->v[i];
        char iou[32] = "-";
        if (isfinite(m->iou))
            snprintf(iou, sizeof iou, "%.4f", m->iou);
        fprintf(f, "  %-10s %-12.6g %-10.4f %-9s %s\n", m->label ? "anomalous" : "good",
                (double)m->score, (double)m->nfa_fraction, iou, m->path);
    }
    if (r->calibrated) {
        const uf_postproc *p = &r->post;
        fprintf(f, "\nwrote post-processing statistics to %s:\n"
                   "  image_threshold %.9g  pixel_threshold %.9g\n"
                   "  pred_scores_min %.9g  pred_scores_max %.9g\n"
                   "  anomaly_maps_min %.9g  anomaly_maps_max %.9g\n",
                eo->out ? eo->out : eo->model, (double)p->image_threshold, (double)p->pixel_threshold,
                (double)p->pred_scores_min, (double)p->pred_scores_max, (double)p->anomaly_maps_min,
                (double)p->anomaly_maps_max);
    }
}

static json_t *f1_json(const uf_f1_result *f)
{
    return json_pack("{s:o,s:o,s:o,s:o}", "f1", jnum(f->f1), "threshold", jnum((double)f->threshold),
                     "precision", jnum(f->precision), "recall", jnum(f->recall));
}

static json_t *make_json(const eval_opts *eo, const uf_model_info *info, const items *it,
                         const results *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(eo->model));
    json_object_set_new(o, "input_size", json_pack("[i,i]", info->height, info->width));
    json_object_set_new(o, "counts", json_pack("{s:I,s:I,s:I}", "good", (json_int_t)r->n_good,
                                               "anomalous", (json_int_t)r->n_anom, "masks",
                                               (json_int_t)(eo->masks ? r->n_anom : 0)));
    json_t *img = json_pack("{s:o,s:o,s:o,s:o}", "auroc", jnum(r->image_auroc), "f1",
                            f1_json(&r->f1_image), "mean_score_good", jnum(r->mean_good),
                            "mean_score_anomalous", jnum(r->mean_anom));
    json_object_set_new(o, "image", img);
    if (r->have_pixel)
        json_object_set_new(o, "pixel",
                            json_pack("{s:o,s:o,s:f,s:o,s:I,s:i,s:[i,i]}", "auroc", jnum(r->pixel_auroc),
                                      "aupro", jnum(r->aupro), "aupro_fpr_limit", AUPRO_FPR_LIMIT, "f1",
                                      f1_json(&r->f1_pixel), "pixels", (json_int_t)r->pixels,
                                      "stride", r->stride, "size", r->ph, r->pw));
    else
        json_object_set_new(o, "pixel", json_null());
    json_object_set_new(
        o, "nfa",
        json_pack("{s:i,s:f,s:f,s:o,s:o,s:I,s:I}", "window", eo->no.window, "prob_thr", eo->no.prob_thr,
                  "epsilon", eo->no.epsilon, "miou", r->have_pixel ? jnum(r->miou) : json_null(),
                  "good_mean_fraction", jnum(r->good_mean_fraction), "good_flagged",
                  (json_int_t)r->good_flagged, "anomalous_flagged", (json_int_t)r->anom_flagged));
    json_object_set_new(o, "score_range", json_pack("{s:f,s:f}", "min", (double)r->score_min, "max",
                                                    (double)r->score_max));
    json_object_set_new(o, "map_range", json_pack("{s:f,s:f}", "min", (double)r->map_min, "max",
                                                  (double)r->map_max));
    if (r->calibrated) {
        const uf_postproc *p = &r->post;
        json_object_set_new(
            o, "calibration",
            json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:o}", "path", eo->out ? eo->out : eo->model,
                      "image_threshold", jnum((double)p->image_threshold), "pixel_threshold",
                      jnum((double)p->pixel_threshold), "pred_scores_min", jnum((double)p->pred_scores_min),
                      "pred_scores_max", jnum((double)p->pred_scores_max), "anomaly_maps_min",
                      jnum((double)p->anomaly_maps_min), "anomaly_maps_max",
                      jnum((double)p->anomaly_maps_max)));
    } else
        json_object_set_new(o, "calibration", json_null());
    json_object_set_new(o, "seconds", json_real(r->seconds));
    json_t *rows = json_array();
    for (size_t i = 0; i < it->n; i++) {
        const item *m = &it->v[i];
        json_t *row = json_pack("{s:s,s:i,s:o,s:o,s:b,s:o}", "file", m->path, "label", m->label,
                                "score", jnum((double)m->score), "nfa_fraction",
                                jnum((double)m->nfa_fraction), "nfa_label", m->nfa_label, "nfa_iou",
                                jnum(m->iou));
        if (m->mask)
            json_object_set_new(row, "mask", json_string(m->mask));
        json_array_append_new(rows, row);
    }
    json_object_set_new(o, "images", rows);
    return o;
}

/* Inference over every image; fills the items, the (decimated) map/mask store and r. */
static int run_all(uf_ctx *ctx, const uf_model_info *info, const eval_opts *eo, items *it,
                   float *maps, uint8_t *gts, results *r, uf_error *err)
{
    const int H = info->height, W = info->width, B = eo->batch, s = r->stride;
    const size_t hw = (size_t)H * W, per = 3 * hw, phw = (size_t)r->ph * r->pw;
    float *x = malloc(sizeof(float) * per * (size_t)B);
    uint8_t *gt = calloc(hw * (size_t)B, 1);
    int rc = -1;
    if (!x || !gt) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        goto done;
    }
    r->map_min = INFINITY;
    r->map_max = -INFINITY;
    double sum_frac_good = 0;
    size_t n_iou = 0;
    double sum_iou = 0;
    for (size_t i0 = 0; i0 < it->n; i0 += (size_t)B) {
        int nb = (int)CLI_MIN((size_t)B, it->n - i0);
        for (int b = 0; b < nb; b++) {
            item *m = &it->v[i0 + b];
            if (uf_image_load_file(m->path, info, &eo->io, x + per * b, err) != UF_OK) {
                cli_image_hint(err);
                goto done;
            }
            if (m->mask) {
                if (uf_mask_load_file(m->mask, H, W, gt + hw * b, err) != 0)
                    goto done;
            } else
                memset(gt + hw * b, 0, hw);
        }
        uf_result res;
        uf_nfa_result nr;
        if (uf_ctx_run(ctx, x, nb, &res, err) != UF_OK || uf_ctx_nfa(ctx, &eo->no, &nr, err) != UF_OK)
            goto done;
        for (int b = 0; b < nb; b++) {
            item *m = &it->v[i0 + b];
            size_t idx = i0 + (size_t)b;
            const float *map = res.anomaly_map + hw * b;
            m->score = res.pred_score[b];
            m->nfa_fraction = nr.anomalous_fraction[b];
            m->nfa_label = nr.label[b];
            for (size_t k = 0; k < hw; k++) {
                r->map_min = map[k] < r->map_min ? map[k] : r->map_min;
                r->map_max = map[k] > r->map_max ? map[k] : r->map_max;
            }
            if (maps) {
                float *dm = maps + phw * idx;
                uint8_t *dg = gts + phw * idx;
                for (int y = 0; y < r->ph; y++)
                    for (int xx = 0; xx < r->pw; xx++) {
                        size_t src = (size_t)y * s * W + (size_t)xx * s;
                        dm[(size_t)y * r->pw + xx] = map[src];
                        dg[(size_t)y * r->pw + xx] = gt[hw * b + src];
                    }
            }
            if (m->label == 0) {
                sum_frac_good += m->nfa_fraction;
                r->good_flagged += m->nfa_label != 0;
            } else {
                r->anom_flagged += m->nfa_label != 0;
                if (m->mask) {
                    m->iou = uf_iou(nr.mask + hw * b, gt + hw * b, hw);
                    sum_iou += m->iou;
                    n_iou++;
                }
            }
        }
    }
    r->good_mean_fraction = r->n_good ? sum_frac_good / (double)r->n_good : NAN;
    r->miou = n_iou ? sum_iou / (double)n_iou : NAN;
    rc = 0;
done:
    free(x);
    free(gt);
    return rc;
}

static int parse_args(int argc, char **argv, eval_opts *eo)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"good", required_argument, 0, 'g'},
                                         {"anomalous", required_argument, 0, 'a'},
                                         {"masks", required_argument, 0, 'k'},
                                         {"json", required_argument, 0, 'j'},
                                         {"calibrate", no_argument, 0, 'c'},
                                         {"out", required_argument, 0, 'o'},
                                         {"threads", required_argument, 0, 'T'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"max-pixels", required_argument, 0, 'x'},
                                         {"nfa-window", required_argument, 0, 'W'},
                                         {"nfa-prob-thr", required_argument, 0, 'P'},
                                         {"nfa-epsilon", required_argument, 0, 'E'},
                                         {"allow-any-format", no_argument, 0, 'A'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': eo->model = optarg; break;
        case 'g': eo->good = optarg; break;
        case 'a': eo->anom = optarg; break;
        case 'k': eo->masks = optarg; break;
        case 'j': eo->json = optarg; break;
        case 'c': eo->calibrate = 1; break;
        case 'A': eo->io.any_format = 1; break;
        case 'o': eo->out = optarg; break;
        case 'T': if ((eo->threads = cli_int("eval", "--threads", optarg, 1, 256)) < 0) return -1; break;
        case 'b': if ((eo->batch = cli_int("eval", "--batch", optarg, 1, 1024)) < 0) return -1; break;
        case 'x':
            errno = 0;
            eo->max_pixels = strtoll(optarg, &end, 10);
            if (errno || *end || end == optarg || eo->max_pixels < 1) {
                fprintf(stderr, "uflow eval: --max-pixels expects a positive integer, got '%s'\n", optarg);
                return -1;
            }
            break;
        case 'W': if (cli_nfa_opt("eval", "window", optarg, &eo->no)) return -1; break;
        case 'P': if (cli_nfa_opt("eval", "prob-thr", optarg, &eo->no)) return -1; break;
        case 'E': if (cli_nfa_opt("eval", "epsilon", optarg, &eo->no)) return -1; break;
        case 'h': help(stdout); return 1;
        default: help(stderr); return -1;
        }
    }
    if (!eo->model || !eo->good || !eo->anom || optind != argc) {
        fprintf(stderr, "uflow eval: need --model, --good and --anomalous\n");
        help(stderr);
        return -1;
    }
    if (eo->out && !eo->calibrate) {
        fprintf(stderr, "uflow eval: --out is only meaningful with --calibrate\n");
        return -1;
    }
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    eval_opts eo = {.batch = 1, .max_pixels = DEFAULT_MAX_PIXELS, .no = uf_nfa_opts_default()};
    int pa = parse_args(argc, argv, &eo);
    if (pa)
        return pa > 0 ? CLI_OK : CLI_USAGE;
    items it = {0};
    results r = {.image_auroc = NAN, .pixel_auroc = NAN, .aupro = NAN, .miou = NAN, .stride = 1};
    uf_error err = {0};
    uf_model *m = NULL;
    uf_ctx *ctx = NULL;
    float *maps = NULL, *scores = NULL;
    uint8_t *gts = NULL, *labels = NULL;
    json_t *jo = NULL;
    int rc = CLI_FAIL;
    if (list_dir(eo.good, 0, &it) || list_dir(eo.anom, 1, &it))
        goto out;
    for (size_t i = 0; i < it.n; i++) {
        if (it.v[i].label)
            r.n_anom++;
        else
            r.n_good++;
        if (eo.masks && it.v[i].label && !(it.v[i].mask = find_mask(eo.masks, it.v[i].path))) {
            fprintf(stderr,
                    "uflow eval: no mask for '%s' in '%s' (looked for the same name, .png and "
                    "_mask.png)\n",
                    it.v[i].path, eo.masks);
            goto out;
        }
    }
    if (!(m = cli_load_model("eval", eo.model)))
        goto out;
    const uf_model_info *info = uf_model_get_info(m);
    uf_model_info info_copy = *info; /* the model is freed before calibration writes */
    if (eo.batch > (int)it.n)
        eo.batch = (int)it.n;
    uf_ctx_opts co = {.max_batch = eo.batch, .threads = eo.threads > 0 ? eo.threads : cli_default_threads()};
    if (uf_ctx_init(m, &co, &ctx, &err) != UF_OK) {
        cli_fail("eval", &err);
        goto out;
    }
    /* Pixel store: decimate by an integer stride when N*H*W exceeds --max-pixels. */
    int H = info->height, W = info->width;
    if (eo.masks) {
        for (;;) {
            r.ph = (H + r.stride - 1) / r.stride;
            r.pw = (W + r.stride - 1) / r.stride;
            if ((long long)it.n * r.ph * r.pw <= eo.max_pixels || r.stride >= CLI_MIN(H, W))
                break;
            r.stride++;
        }
        r.pixels = it.n * (size_t)r.ph * (size_t)r.pw;
        maps = malloc(sizeof(float) * r.pixels);
        gts = malloc(r.pixels);
        if (!maps || !gts) {
            fprintf(stderr, "uflow eval: out of memory for %zu map pixels (lower --max-pixels)\n",
                    r.pixels);
            goto out;
        }
    }
    double t0 = now_s();
    if (run_all(ctx, info, &eo, &it, maps, gts, &r, &err) != 0) {
        cli_fail("eval", &err);
        goto out;
    }
    r.seconds = now_s() - t0;

    scores = malloc(sizeof(float) * it.n);
    labels = malloc(it.n);
    if (!scores || !labels) {
        fprintf(stderr, "uflow eval: out of memory\n");
        goto out;
    }
    double sg = 0, sa = 0;
    r.score_min = INFINITY;
    r.score_max = -INFINITY;
    for (size_t i = 0; i < it.n; i++) {
        scores[i] = it.v[i].score;
        labels[i] = (uint8_t)it.v[i].label;
        *(it.v[i].label ? &sa : &sg) += scores[i];
        r.score_min = CLI_MIN(r.score_min, scores[i]);
        r.score_max = CLI_MAX(r.score_max, scores[i]);
    }
    r.mean_good = sg / (double)r.n_good;
    r.mean_anom = sa / (double)r.n_anom;
    if (uf_auroc_ex(scores, labels, it.n, &r.image_auroc, &err) != UF_OK ||
        uf_f1_threshold(scores, labels, it.n, &r.f1_image, &err) != UF_OK) {
        cli_fail("eval", &err);
        goto out;
    }
    if (eo.masks) {
        r.have_pixel = 1;
        if (uf_auroc_ex(maps, gts, r.pixels, &r.pixel_auroc, &err) != UF_OK ||
            uf_f1_threshold(maps, gts, r.pixels, &r.f1_pixel, &err) != UF_OK ||
            uf_aupro(maps, gts, it.n, r.ph, r.pw, AUPRO_FPR_LIMIT, &r.aupro, &err) != UF_OK) {
            cli_fail("eval", &err);
            goto out;
        }
    }
    if (eo.calibrate) {
        /* anomalib's PostProcessor statistics (docs/uflow-math.md "Post-processing"); without masks anomalib has no pixel
         * threshold and matches the image one. */
        r.post = (uf_postproc){.image_threshold = r.f1_image.threshold,
                               .pixel_threshold = eo.masks ? r.f1_pixel.threshold : r.f1_image.threshold,
                               .pred_scores_min = r.score_min, .pred_scores_max = r.score_max,
                               .anomaly_maps_min = r.map_min, .anomaly_maps_max = r.map_max,
                               .image_sensitivity = NAN};
        uf_ctx_free(ctx);
        ctx = NULL;
        uf_model_free(m); /* unmap before replacing the file; frees the transformed weights */
        m = NULL;
        info = &info_copy;
        if (uf_model_write_postproc(eo.model, eo.out ? eo.out : eo.model, &r.post, &err) != UF_OK) {
            cli_fail("eval", &err);
            goto out;
        }
        r.calibrated = 1;
    }
    int json_stdout = eo.json && !strcmp(eo.json, "-");
    print_text(json_stdout ? stderr : stdout, &eo, info, &it, &r);
    if (eo.json) {
        jo = make_json(&eo, info, &it, &r);
        size_t flags = JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9);
        int jr = json_stdout ? json_dumpf(jo, stdout, flags) : json_dump_file(jo, eo.json, flags);
        if (json_stdout)
            fputc('\n', stdout);
        if (jr != 0) {
            fprintf(stderr, "uflow eval: cannot write JSON to '%s'\n", eo.json);
            goto out;
        }
    }
    rc = CLI_OK;
out:
    json_decref(jo);
    for (size_t i = 0; i < it.n; i++) {
        free(it.v[i].path);
        free(it.v[i].mask);
    }
    free(it.v);
    free(maps);
    free(gts);
    free(scores);
    free(labels);
    uf_ctx_free(ctx);
    uf_model_free(m);
    return rc;
}
