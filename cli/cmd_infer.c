/* cmd_infer.c — `uflow infer`: every model output for a tensor or a list of images, written
 * as safetensors (the contract external checks use; keep it stable). */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IMAGES 256
#define DEFAULT_CHUNK 4 /* images per uf_ctx_run; measured in docs/benchmarks.md "Whole runs" */

static void help(FILE *f)
{
    fprintf(f,
            "usage: uflow infer --model M.safetensors (--tensor IN.safetensors | --image A [--image B ...])\n"
            "                   --out OUT.safetensors [--threads N] [--chunk N] [--allow-any-format]\n"
            "                   [--nfa [--nfa-window 7] [--nfa-prob-thr 0.5] [--nfa-epsilon 0] [--nfa-high-precision]]\n\n"
            "IN holds 'image': float32 [B,3,H,W], already normalised. OUT holds z.0..z.{K-1} (finest\n"
            "first), log_jac_det [B], anomaly_map [B,1,H,W], pred_score [B] and, with --image, 'image'\n"
            "(the normalised input computed from the files). --nfa adds minus_log10_nfa (F64\n"
            "[B,1,H,W]) and nfa_mask (U8 [B,1,H,W], 1 = anomalous; see docs/nfa.md).\n"
            "--chunk N runs N images at a time (default %d; the outputs do not depend on it).\n"
            "--allow-any-format also decodes formats outside JPEG, PNG, WebP, TIFF and GIF (BMP,\n"
            "PPM, ... through libvips and ImageMagick): for trusted local files only.\n", DEFAULT_CHUNK);
}

/* Reads IN's 'image' into a fresh buffer after checking it fits the model. */
static float *read_tensor(const char *path, const uf_model_info *info, int *B, uf_error *err)
{
    uf_st *st;
    if (uf_st_open(path, &st, err) != UF_OK)
        return NULL;
    const uf_st_tensor *t = uf_st_find(st, "image");
    float *x = NULL;
    if (!t)
        snprintf(err->msg, sizeof err->msg, "%s: no tensor 'image'", path);
    else if (t->dtype != UF_DT_F32 || t->ndim != 4 || t->shape[1] != 3 || t->shape[2] != info->height ||
             t->shape[3] != info->width || t->shape[0] < 1 || t->shape[0] > 1024)
        snprintf(err->msg, sizeof err->msg,
                 "%s: 'image' must be F32 [B,3,%d,%d] with 1 <= B <= 1024", path, info->height,
                 info->width);
    else if ((x = malloc(uf_st_nbytes(t)))) {
        memcpy(x, t->data, uf_st_nbytes(t));
        *B = (int)t->shape[0];
    } else
        snprintf(err->msg, sizeof err->msg, "out of memory");
    uf_st_close(st);
    return x;
}

static int write_out(const char *path, const uf_result *r, const uf_nfa_result *nfa,
                     const float *image, int B, uf_error *err)
{
    uf_st_writer *w = uf_st_writer_new();
    if (!w) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    uf_status s = UF_OK;
    char name[32];
    for (int k = 0; k < r->n_scales && !s; k++) {
        int64_t shp[4] = {B, r->z_channels[k], r->z_height[k], r->z_width[k]};
        snprintf(name, sizeof name, "z.%d", k);
        s = uf_st_writer_add(w, name, UF_DT_F32, 4, shp, r->z[k], err);
    }
    int64_t b1[1] = {B}, map[4] = {B, 1, r->height, r->width}, img[4] = {B, 3, r->height, r->width};
    if (!s)
        s = uf_st_writer_add(w, "log_jac_det", UF_DT_F32, 1, b1, r->log_jac_det, err);
    if (!s)
        s = uf_st_writer_add(w, "anomaly_map", UF_DT_F32, 4, map, r->anomaly_map, err);
    if (!s)
        s = uf_st_writer_add(w, "pred_score", UF_DT_F32, 1, b1, r->pred_score, err);
    if (!s && image)
        s = uf_st_writer_add(w, "image", UF_DT_F32, 4, img, image, err);
    if (!s && nfa)
        s = uf_st_writer_add(w, "minus_log10_nfa", UF_DT_F64, 4, map, nfa->minus_log10_nfa, err);
    if (!s && nfa)
        s = uf_st_writer_add(w, "nfa_mask", UF_DT_U8, 4, map, nfa->mask, err);
    if (!s)
        s = uf_st_writer_meta(w, "producer", "uflow infer " UF_VERSION_STRING, err);
    if (!s)
        s = uf_st_writer_save(w, path, err);
    uf_st_writer_free(w);
    return s ? -1 : 0;
}

/* The whole batch's outputs, filled chunk by chunk: the context (and its scratch, ~35 MB per
 * image at resnet18@256) is sized for one chunk, not for B, so a large batch stays in a small,
 * warm working set instead of first-touching hundreds of MB (docs/benchmarks.md "Whole runs"). */
typedef struct {
    uf_result r;
    uf_nfa_result n;
    float *z[UF_MAX_SCALES], *ljd, *map, *score;
    double *nfa;
    uint8_t *mask;
} infer_acc;

static void acc_free(infer_acc *a)
{
    for (int k = 0; k < UF_MAX_SCALES; k++)
        free(a->z[k]);
    free(a->ljd), free(a->map), free(a->score), free(a->nfa), free(a->mask);
}

static int acc_alloc(infer_acc *a, const uf_result *r, int B, int nfa)
{
    a->r = *r;
    a->r.batch = B;
    size_t hw = (size_t)r->height * r->width;
    int ok = 1;
    for (int k = 0; k < r->n_scales; k++) {
        a->z[k] = malloc(sizeof(float) * B * r->z_channels[k] * r->z_height[k] * r->z_width[k]);
        a->r.z[k] = a->z[k];
        ok = ok && a->z[k];
    }
    a->r.log_jac_det = a->ljd = malloc(sizeof(float) * B);
    a->r.anomaly_map = a->map = malloc(sizeof(float) * B * hw);
    a->r.pred_score = a->score = malloc(sizeof(float) * B);
    ok = ok && a->ljd && a->map && a->score;
    if (nfa) {
        a->n.minus_log10_nfa = a->nfa = malloc(sizeof(double) * B * hw);
        a->n.mask = a->mask = malloc((size_t)B * hw);
        ok = ok && a->nfa && a->mask;
    }
    return ok ? 0 : -1;
}

/* Copies chunk results for images [i0, i0 + n) into the accumulator. */
static void acc_put(infer_acc *a, const uf_result *r, const uf_nfa_result *nr, int i0, int n)
{
    size_t hw = (size_t)r->height * r->width;
    for (int k = 0; k < r->n_scales; k++) {
        size_t per = (size_t)r->z_channels[k] * r->z_height[k] * r->z_width[k];
        memcpy(a->z[k] + per * i0, r->z[k], sizeof(float) * per * n);
    }
    memcpy(a->ljd + i0, r->log_jac_det, sizeof(float) * n);
    memcpy(a->map + hw * i0, r->anomaly_map, sizeof(float) * hw * n);
    memcpy(a->score + i0, r->pred_score, sizeof(float) * n);
    if (nr) {
        memcpy(a->nfa + hw * i0, nr->minus_log10_nfa, sizeof(double) * hw * n);
        memcpy(a->mask + hw * i0, nr->mask, hw * n);
    }
}

/* Runs the batch through ctx (sized for `chunk` images) and fills *a. */
static int run_chunked(uf_ctx *ctx, const float *x, size_t per, int B, int chunk, int nfa,
                       const uf_nfa_opts *no, infer_acc *a, uf_error *err)
{
    for (int i0 = 0; i0 < B; i0 += chunk) {
        int n = B - i0 < chunk ? B - i0 : chunk;
        uf_result r;
        uf_nfa_result nr;
        if (uf_ctx_run(ctx, x + per * i0, n, &r, err) != UF_OK)
            return -1;
        if (nfa && uf_ctx_nfa(ctx, no, &nr, err) != UF_OK)
            return -1;
        if (i0 == 0 && acc_alloc(a, &r, B, nfa) != 0) {
            snprintf(err->msg, sizeof err->msg, "out of memory");
            return -1;
        }
        acc_put(a, &r, nfa ? &nr : NULL, i0, n);
    }
    return 0;
}

int cmd_infer(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"tensor", required_argument, 0, 't'},
        {"image", required_argument, 0, 'i'}, {"out", required_argument, 0, 'o'},
        {"nfa", no_argument, 0, 'n'},         {"threads", required_argument, 0, 'T'},
        {"nfa-window", required_argument, 0, 'W'}, {"nfa-prob-thr", required_argument, 0, 'P'},
        {"nfa-epsilon", required_argument, 0, 'E'}, {"nfa-high-precision", no_argument, 0, 'H'},
        {"allow-any-format", no_argument, 0, 'A'}, {"chunk", required_argument, 0, 'C'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    const char *model = NULL, *tensor = NULL, *out = NULL, *images[MAX_IMAGES];
    int n_images = 0, nfa = 0, threads = 0, chunk = DEFAULT_CHUNK, c;
    uf_nfa_opts no = uf_nfa_opts_default();
    uf_image_opts io = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 't': tensor = optarg; break;
        case 'i':
            if (n_images == MAX_IMAGES) {
                fprintf(stderr, "uflow infer: at most %d images\n", MAX_IMAGES);
                return CLI_USAGE;
            }
            images[n_images++] = optarg;
            break;
        case 'o': out = optarg; break;
        case 'n': nfa = 1; break;
        case 'W': if (cli_nfa_opt("infer", "window", optarg, &no)) return CLI_USAGE; break;
        case 'P': if (cli_nfa_opt("infer", "prob-thr", optarg, &no)) return CLI_USAGE; break;
        case 'E': if (cli_nfa_opt("infer", "epsilon", optarg, &no)) return CLI_USAGE; break;
        case 'H': no.high_precision = 1; break;
        case 'T':
            if ((threads = cli_int("infer", "--threads", optarg, 1, 256)) < 0)
                return CLI_USAGE;
            break;
        case 'A': io.any_format = 1; break;
        case 'C':
            if ((chunk = cli_int("infer", "--chunk", optarg, 1, 1024)) < 0)
                return CLI_USAGE;
            break;
        case 'h': help(stdout); return CLI_OK;
        default: help(stderr); return CLI_USAGE;
        }
    }
    if (!model || !out || (!tensor == !n_images) || optind != argc) {
        fprintf(stderr, "uflow infer: need --model, --out and exactly one of --tensor / --image\n");
        help(stderr);
        return CLI_USAGE;
    }
    uf_model *m = cli_load_model("infer", model);
    if (!m)
        return CLI_FAIL;
    const uf_model_info *info = uf_model_get_info(m);
    uf_error err = {0};
    int B = n_images, rc = CLI_FAIL;
    float *x = NULL;
    uf_ctx *ctx = NULL;
    infer_acc acc = {0};
    size_t per = (size_t)3 * info->height * info->width;
    if (tensor) {
        if (!(x = read_tensor(tensor, info, &B, &err)))
            goto done;
    } else {
        if (!(x = malloc(sizeof(float) * per * B))) {
            snprintf(err.msg, sizeof err.msg, "out of memory");
            goto done;
        }
        for (int i = 0; i < B; i++)
            if (uf_image_load_file(images[i], info, &io, x + per * i, &err) != UF_OK) {
                cli_image_hint(&err);
                goto done;
            }
    }
    if (chunk > B)
        chunk = B;
    uf_ctx_opts o = {.max_batch = chunk, .threads = threads > 0 ? threads : cli_default_threads()};
    if (uf_ctx_init(m, &o, &ctx, &err) != UF_OK ||
        run_chunked(ctx, x, per, B, chunk, nfa, &no, &acc, &err) != 0)
        goto done;
    if (write_out(out, &acc.r, nfa ? &acc.n : NULL, tensor ? NULL : x, B, &err) != 0)
        goto done;
    rc = CLI_OK;
done:
    if (rc != CLI_OK)
        cli_fail("infer", &err);
    uf_ctx_free(ctx);
    acc_free(&acc);
    free(x);
    uf_model_free(m);
    return rc;
}
